//! Arbitrary text through `rvsadm -R` (rules on stdin, one ipvsadm command a line), with and
//! without `--fullnat` (the first byte). Nothing panics; the whole input answers as its lines
//! do one by one (the first bad line is the one named, with its number); each accepted
//! command reads back from its JSON (what goes to rvsd) as the same command, and converts to a
//! core command as rvsd would, or is refused with a field named. Host names are not looked up
//! (numeric addresses only): a run never waits on a resolver.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_api::ApiCommand;
use rvs_core::TableModel;
use rvsadm::addr::Lookup;
use rvsadm::restore::parse_rules_with;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let fullnat = flags & 1 != 0;
    let whole = parse_rules_with(text, fullnat, Lookup::Numeric);

    // Line by line: the same commands, or the error of the first line that has one.
    let mut by_line = Vec::new();
    let mut first_error = None;
    for (i, line) in text.lines().enumerate() {
        match parse_rules_with(line, fullnat, Lookup::Numeric) {
            Ok(cmds) => by_line.extend(cmds.into_iter().map(|(n, c)| {
                assert_eq!(n, 1);
                (i + 1, c)
            })),
            Err(mut e) => {
                assert_eq!(e.line, 1);
                e.line = i + 1;
                first_error = Some(e);
                break;
            }
        }
    }
    match (&whole, first_error) {
        (Ok(cmds), None) => assert_eq!(*cmds, by_line),
        (Err(e), Some(first)) => {
            assert_eq!(*e, first);
            assert!(e.code != 0 && !e.message.is_empty());
        }
        (w, f) => panic!("whole input: {w:?}, line by line: {f:?}"),
    }

    let Ok(cmds) = whole else { return };
    let model = TableModel::default();
    for (_, cmd) in &cmds {
        let json = serde_json::to_string(cmd).expect("serializes");
        let again: ApiCommand = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(again, *cmd);
        if let Err(e) = cmd.to_core(&model) {
            assert!(e.field.is_some(), "{cmd:?} refused without a field: {e:?}");
        }
    }
});
