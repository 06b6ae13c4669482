//! One run of a packet program through BPF_PROG_TEST_RUN, for the fixtures' loaders: the frame
//! in (with an optional context), room for what the program adds, the verdict and the frame
//! as it left.

use aya::programs::{ProgramError, TestRun, TestRunAttrs, TestRunOptions, TestRunResult};

/// Runs `frame` once through `prog` with `ctx` as its context; `room` is how many bytes the
/// program may add. The verdict and the output frame.
pub(crate) fn run_once<P>(
    prog: &P,
    frame: &[u8],
    ctx: Option<&[u8]>,
    room: usize,
) -> Result<(u32, Vec<u8>), ProgramError>
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let mut out = vec![0u8; frame.len() + room];
    let opts = TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ctx_in: ctx,
        ctx_out: None,
        repeat: 1,
        attrs: TestRunAttrs::new(),
    };
    let r = prog.test_run(opts)?;
    out.truncate((r.data_size_out as usize).min(out.len()));
    Ok((r.return_value, out))
}
