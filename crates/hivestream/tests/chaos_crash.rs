//! Crash chaos: under steady batch load the server crashes
//! `HIVESTREAM_CHAOS_CRASHES` times per backend (default 20) and is
//! restarted each time. Half the crashes are SIGKILLs at random moments
//! (some while it drains after a SIGTERM); the other half abort at a named
//! failpoint (`hivestream_core::failpoint::NAMES`, each in turn, at its 1st
//! to 3rd pass), because the windows that matter most (sealed but not
//! uploaded, uploaded but not checkpointed, a ledger rewrite half done) are
//! too short for a random kill to find. On the local sink the end-of-run
//! check also walks the bucket directory: nothing but complete objects with
//! contract keys may be there (no partial writes). Flush intervals and file-size limits
//! vary, so files are sealed by age, size and shutdown. At the end every
//! event that got a 2xx must be in the bucket exactly once, and no event
//! may be in two objects.
//!
//! The seed is printed; `HIVESTREAM_CHAOS_SEED` replays a run.

mod common;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use common::load::{Load, LoadShape};
use common::verify::assert_exactly_once;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How one round ends.
#[derive(Debug)]
enum Crash {
    Kill { after_ms: u64, mid_drain: bool },
    Failpoint { name: &'static str, at: u64 },
}

/// The failpoints a backend can reach (the local bucket's own write path
/// is not used with S3).
fn failpoints(backend: &Backend) -> Vec<&'static str> {
    hivestream_core::failpoint::NAMES
        .iter()
        .copied()
        .filter(|n| matches!(backend, Backend::Local) || !n.starts_with("upload.local"))
        .collect()
}

fn pick_crash(round: u64, names: &[&'static str], rng: &mut StdRng) -> Crash {
    if round % 2 == 1 {
        let name = names[(round as usize / 2) % names.len()];
        // The ledger is rewritten once per start; the rest pass often.
        let at = if name.starts_with("ledger.") {
            1
        } else {
            rng.random_range(1..=3)
        };
        return Crash::Failpoint { name, at };
    }
    Crash::Kill {
        after_ms: rng.random_range(50..1500),
        mid_drain: rng.random_bool(0.25),
    }
}

/// One round: start, load, crash as told. Returns the acknowledged ids and
/// whether the crash happened as planned (a failpoint that was not reached
/// in time ends with a SIGKILL instead).
fn round(
    setup: &mut Setup,
    crash: &Crash,
    rng: &mut StdRng,
    next: &Arc<AtomicUsize>,
) -> (Vec<String>, bool) {
    let flush = ["200ms", "500ms", "2s"][rng.random_range(0..3)];
    setup.extra = match rng.random_range(0..3) {
        0 => vec!["--max-file-bytes".into(), "4096".into()],
        1 => vec!["--max-file-bytes".into(), "200000".into()],
        _ => Vec::new(),
    };
    setup.env = match crash {
        Crash::Failpoint { name, at } => {
            vec![("HIVESTREAM_FAILPOINT".into(), format!("{name}:{at}"))]
        }
        Crash::Kill { .. } => Vec::new(),
    };
    let Some(mut server) = setup.try_start(flush) else {
        return (Vec::new(), true); // died at a start-up failpoint
    };
    let shape = LoadShape {
        workers: 3,
        batch: rng.random_range(1..80),
        pause: Duration::ZERO,
        pad: 0,
    };
    let load = Load::start(&server.addr, shape, Arc::clone(next));
    let as_planned = match crash {
        Crash::Kill {
            after_ms,
            mid_drain,
        } => {
            std::thread::sleep(Duration::from_millis(*after_ms));
            if *mid_drain {
                signal(server.pid(), "-TERM");
                std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
            }
            true
        }
        Crash::Failpoint { .. } => server.exited_within(Duration::from_secs(10)),
    };
    server.kill9();
    (load.stop().acked, as_planned)
}

#[test]
fn crashes_at_random_points_and_failpoints_lose_and_duplicate_nothing() {
    let rounds = env_number("HIVESTREAM_CHAOS_CRASHES", 20);
    let seed = env_number("HIVESTREAM_CHAOS_SEED", rand::rng().random());
    eprintln!("crash chaos: {rounds} crashes per backend, HIVESTREAM_CHAOS_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    for backend in backends() {
        let mut setup = Setup::new(backend.clone(), "crash");
        let next = Arc::new(AtomicUsize::new(0));
        let mut acked = Vec::new();
        let mut failpoints_hit = Vec::new();
        for r in 0..rounds {
            let crash = pick_crash(r, &failpoints(&backend), &mut rng);
            let (ids, as_planned) = round(&mut setup, &crash, &mut rng, &next);
            acked.extend(ids);
            if let (Crash::Failpoint { name, .. }, true) = (&crash, as_planned) {
                failpoints_hit.push(*name);
            }
        }
        setup.extra.clear();
        setup.env.clear();
        let server = setup.start("200ms");
        assert_eq!(
            server.terminate(),
            0,
            "{backend:?}: clean exit after the last restart"
        );
        assert!(
            acked.len() as u64 > 50 * rounds,
            "{backend:?}: load too small ({})",
            acked.len()
        );
        let d = assert_exactly_once(&setup, &acked);
        let log = std::fs::read_to_string(setup.log_path()).unwrap();
        assert!(
            !log.contains("differs from its seal"),
            "{backend:?}: a file rebuilt after a crash was not byte-identical to its seal"
        );
        eprintln!(
            "{backend:?}: {rounds} crashes, failpoints hit: {failpoints_hit:?}: {} acknowledged, \
             {} found, {} missing, {} duplicated, {} objects",
            d.acknowledged, d.found, d.missing, d.duplicated, d.objects
        );
    }
}
