//! Crash points for the chaos tests.
//!
//! Random `kill -9` rarely lands in the windows that matter (a file sealed
//! but not uploaded, uploaded but not checkpointed, a ledger rewrite half
//! done), because each lasts microseconds. A failpoint makes the process
//! abort exactly there: with `HIVESTREAM_FAILPOINT=NAME:N` set, the N-th
//! time execution passes [`hit`]`("NAME")` the process calls
//! `std::process::abort()`: no destructors, no flushes, like SIGKILL.
//!
//! Unset (always, in production), a failpoint costs two relaxed atomic
//! loads. The names are listed in [`NAMES`]; the crash suite walks through
//! them.
//!
//! In-process crashes: [`arm_panic`] makes the N-th hit *panic* instead (the
//! model test, `tests/model.rs`, catches it and reopens every component from
//! its durable state, as a restart after `kill -9` would).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

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

/// Whether a panic failpoint is armed (the fast path checks only this).
static PANIC_ARMED: AtomicBool = AtomicBool::new(false);
/// The armed panic failpoint: name, hits left before it fires.
static PANIC_AT: Mutex<Option<(&'static str, u64)>> = Mutex::new(None);
/// Set when an armed failpoint fired, until [`disarm`].
static PANICKED: AtomicBool = AtomicBool::new(false);

/// The payload of a failpoint's panic.
pub const PANIC_MESSAGE: &str = "failpoint: in-process crash";

/// Makes the `n`-th next hit of `name` panic with [`PANIC_MESSAGE`]
/// (`n` ≥ 1). For tests that crash and reopen components in one process.
pub fn arm_panic(name: &'static str, n: u64) {
    assert!(NAMES.contains(&name) && n >= 1, "unknown failpoint {name}");
    *PANIC_AT.lock().unwrap_or_else(|e| e.into_inner()) = Some((name, n));
    PANICKED.store(false, Ordering::SeqCst);
    PANIC_ARMED.store(true, Ordering::SeqCst);
}

/// Disarms the panic failpoint and clears [`panicked`].
pub fn disarm() {
    PANIC_ARMED.store(false, Ordering::SeqCst);
    *PANIC_AT.lock().unwrap_or_else(|e| e.into_inner()) = None;
    PANICKED.store(false, Ordering::SeqCst);
}

/// Whether the armed failpoint fired since it was armed.
pub fn panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

fn panic_if_armed(name: &'static str) {
    let mut at = PANIC_AT.lock().unwrap_or_else(|e| e.into_inner());
    let Some((target, left)) = at.as_mut() else {
        return;
    };
    if *target != name {
        return;
    }
    *left -= 1;
    if *left == 0 {
        *at = None;
        PANIC_ARMED.store(false, Ordering::SeqCst);
        PANICKED.store(true, Ordering::SeqCst);
        drop(at);
        std::panic::panic_any(PANIC_MESSAGE);
    }
}

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
    if PANIC_ARMED.load(Ordering::Relaxed) {
        panic_if_armed(name);
    }
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
