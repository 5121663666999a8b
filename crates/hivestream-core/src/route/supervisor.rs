//! Keeps the router running through errors.
//!
//! A router error (a full disk while writing a spool file or the ledger, a
//! WAL read that fails) does not stop routing for good: the router is
//! dropped and opened again from its durable state after a backoff, exactly
//! as after a crash. That is safe for the same reason a crash is: the ledger
//! and the WAL say which records are in which sealed file, and a replay
//! rebuilds the same files. Uploads still running from before the restart
//! keep their spool files (see [`UploadTracker::in_flight`](super::signals::UploadTracker::in_flight)).
//!
//! While input is closed (shutdown) the supervisor gives up after the
//! shutdown timeout, like the router itself: what is left uploads at the
//! next start.
//!
//! A fenced router (another worker took its log partition over) is never
//! restarted: the supervisor returns the error and the caller drops the
//! partition.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Router, RouterBackend, RouterConfig, RouterError, RouterLinks};
use crate::backoff::Backoff;
use crate::metrics::METRICS;

/// Runs the router until it finishes (shutdown), restarting it after
/// errors. Returns an error when it is fenced; `first` is the router opened
/// by the caller (so that a configuration or permission problem fails the
/// start-up, where the operator sees it).
pub fn run_router(
    cfg: RouterConfig,
    links: RouterLinks,
    done: mpsc::Receiver<u64>,
    first: Router,
    backend: &dyn RouterBackend,
) -> Result<(), RouterError> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut router = Some(first);
    let mut closed_since: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let result = match router.take() {
            Some(mut r) => r.run(&done),
            None => {
                Router::open(cfg.clone(), links.clone(), backend).and_then(|mut r| r.run(&done))
            }
        };
        let Err(e) = result else {
            return Ok(());
        };
        if e.is_fenced() {
            tracing::warn!(error = %e, "router fenced: another worker owns this log partition now");
            return Err(e);
        }
        METRICS.router_restarts.inc();
        if started.elapsed() > Duration::from_secs(60) {
            // A failure after a long healthy run starts a fresh backoff.
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::error!(error = %e, retry_in_ms = delay.as_millis() as u64,
            "router failed; restarting it from its ledger and the log");
        if links.signals.input_closed() {
            let since = *closed_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= cfg.settings().shutdown_timeout {
                tracing::warn!(
                    "router: shutdown timeout while failing; the rest uploads at next start"
                );
                return Ok(());
            }
        }
        std::thread::sleep(delay);
    }
}
