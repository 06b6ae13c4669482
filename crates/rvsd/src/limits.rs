//! The director's resource limits: the open-files limit, lifted to its hard maximum at start,
//! and the cap on client connections, which the file's `[director] max_connections` sets or
//! which follows from the open-files limit.

use std::num::{NonZeroU32, NonZeroUsize};

use rustix::process::{getrlimit, setrlimit, Resource};
use tracing::warn;

/// File descriptors kept back from the connection cap: the API, health checks, pipes.
const RESERVED_FDS: u64 = 512;

/// Lifts the open-files limit to its hard maximum: each proxied connection takes two sockets
/// and, while it splices, up to four pipe ends.
pub fn raise_nofile_limit() {
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, lim) {
            warn!(error = %e, "cannot raise the open-files limit");
        }
    }
}

/// The connection cap: the configured one, else as many connections as the open-files limit
/// holds at two sockets each, less a reserve (so that the cap, not EMFILE, is what stops
/// accepting).
pub fn connection_cap(configured: Option<NonZeroU32>) -> NonZeroUsize {
    rvs_dataplane::conn_limit::cap(configured)
        .unwrap_or_else(|| cap_for_nofile(getrlimit(Resource::Nofile).current.unwrap_or(1 << 20)))
}

fn cap_for_nofile(nofile: u64) -> NonZeroUsize {
    let n = nofile.saturating_sub(RESERVED_FDS) / 2;
    NonZeroUsize::new(usize::try_from(n).unwrap_or(usize::MAX)).unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_follows_the_open_files_limit_and_the_file_wins() {
        assert_eq!(cap_for_nofile(20_000).get(), 9_744);
        assert_eq!(cap_for_nofile(100).get(), 1, "a tiny limit still lets a connection in");
        assert_eq!(connection_cap(NonZeroU32::new(7)).get(), 7);
    }
}
