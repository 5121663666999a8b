//! Crash points for the chaos tests.
//!
//! Random `kill -9` rarely lands in the windows that matter (a file sealed
//! but not uploaded, uploaded but not checkpointed, a ledger rewrite half
//! done), because each lasts microseconds. A failpoint makes the process
//! abort exactly there: with `HIVESTREAM_FAILPOINT=NAME:N` set, the N-th
//! time execution passes [`hit`]`("NAME")` the process calls
//! `std::process::abort()`: no destructors, no flushes, like SIGKILL.
//!
//! Unset (always, in production), a failpoint costs one atomic load.
//! The names are listed in [`NAMES`]; the crash suite walks through them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Every failpoint in the code, in pipeline order.
pub const NAMES: &[&str] = &[
    // A group commit is synced; no client has its answer yet.
    "commit.after_sync",
    // A file's seal is durable in the ledger; its upload has not started.
    "router.after_seal",
    // Half of a local-bucket object is written to its staging file.
    "upload.local_partial_write",
    // An object is in the bucket; the router has not heard of it.
    "upload.after_put",
    // The router noted uploads as done (not synced); no checkpoint yet.
    "router.after_done",
    // A checkpoint is durable; the WAL below it is not deleted yet.
    "router.after_checkpoint",
    // The ledger's rewrite is synced under its temporary name only.
    "ledger.compact_before_rename",
    // The identity index made a durable commit.
    "identity.after_durable",
];

static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn target() -> Option<&'static (String, u64)> {
    TARGET
        .get_or_init(|| {
            std::env::var("HIVESTREAM_FAILPOINT")
                .ok()
                .and_then(|v| parse(&v))
        })
        .as_ref()
}

/// `NAME:N` (N ≥ 1; `NAME` alone means 1).
fn parse(v: &str) -> Option<(String, u64)> {
    let (name, n) = match v.split_once(':') {
        Some((name, n)) => (name, n.parse().ok().filter(|n| *n >= 1)?),
        None => (v, 1),
    };
    NAMES.contains(&name).then(|| (name.to_string(), n))
}

/// Aborts the process if this is the configured failpoint's N-th hit.
#[inline]
pub fn hit(name: &'static str) {
    debug_assert!(NAMES.contains(&name), "unknown failpoint {name}");
    let Some((target, at)) = target() else {
        return;
    };
    if target == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *at {
        eprintln!("failpoint {name} hit {at} time(s): aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_known_names() {
        assert_eq!(
            parse("router.after_seal:3"),
            Some(("router.after_seal".into(), 3))
        );
        assert_eq!(
            parse("router.after_seal"),
            Some(("router.after_seal".into(), 1))
        );
        assert_eq!(parse("router.after_seal:0"), None);
        assert_eq!(parse("nope:1"), None);
    }
}
