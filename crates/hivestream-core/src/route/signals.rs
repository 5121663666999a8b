//! What a router shares with the tasks around it, split by who needs it:
//! [`RouterSignals`] for whoever starts and stops a router (serve, a
//! cluster worker) and [`UploadTracker`] for the uploads it hands out.
//!
//! ```text
//!  serve / worker ──(input_closed, abort, wake)──▶ Router
//!  Router ──UploadJob{tracker}──▶ uploader ──(done, spool lost, wake)──▶ Router
//!  log owner ──(wake: Arc<Signal>)──▶ Router    (records committed)
//! ```
//!
//! Invariant: an id is in [`UploadTracker::in_flight`] from before its job
//! is sent until the file is in the bucket (or its spool copy is lost), so
//! a restarted router never rebuilds a spool file an upload still reads.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::signal::Signal;

/// A router's controls.
pub struct RouterSignals {
    /// Wakes the router: new records, finished uploads, stop requests.
    pub wake: Arc<Signal>,
    /// No more records will come: seal and upload what was read, then stop.
    input_closed: AtomicBool,
    /// This process lost the right to route this log (its lease expired):
    /// stop at once, sealing nothing more.
    abort: AtomicBool,
    /// The uploads of files this router sealed.
    pub uploads: Arc<UploadTracker>,
}

impl Default for RouterSignals {
    fn default() -> Self {
        Self::new(Arc::default())
    }
}

impl RouterSignals {
    /// Signals around the wake-up `wake` (shared with the log's owner).
    pub fn new(wake: Arc<Signal>) -> Self {
        Self {
            uploads: Arc::new(UploadTracker::new(Arc::clone(&wake))),
            wake,
            input_closed: AtomicBool::new(false),
            abort: AtomicBool::new(false),
        }
    }

    pub fn input_closed(&self) -> bool {
        self.input_closed.load(Ordering::Acquire)
    }

    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }

    /// Asks for a graceful stop once everything read is uploaded.
    pub fn close_input(&self) {
        self.input_closed.store(true, Ordering::Release);
        self.wake.notify();
    }

    /// Asks for a stop at once.
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Release);
        self.wake.notify();
    }

    /// Clears both requests before a router starts again.
    pub fn rearm(&self) {
        self.input_closed.store(false, Ordering::Release);
        self.abort.store(false, Ordering::Release);
    }
}

/// The uploads a router handed out and has not seen finish.
pub struct UploadTracker {
    in_flight: Mutex<HashSet<u64>>,
    spool_lost: AtomicBool,
    wake: Arc<Signal>,
}

impl UploadTracker {
    fn new(wake: Arc<Signal>) -> Self {
        Self {
            in_flight: Mutex::new(HashSet::new()),
            spool_lost: AtomicBool::new(false),
            wake,
        }
    }

    /// Ids of sealed files handed to the uploader and not yet uploaded.
    pub fn in_flight(&self) -> MutexGuard<'_, HashSet<u64>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The upload of `id` ended: uploaded, or its spool copy is gone (the
    /// router restarts to rebuild it from the log). Wakes the router.
    pub fn finished(&self, id: u64, spool_lost: bool) {
        self.in_flight().remove(&id);
        if spool_lost {
            self.spool_lost.store(true, Ordering::Release);
        }
        self.wake.notify();
    }

    /// Whether a spool copy was lost since the last call.
    pub fn take_spool_lost(&self) -> bool {
        self.spool_lost.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_upload_leaves_the_set_and_wakes_the_router() {
        let s = RouterSignals::default();
        s.uploads.in_flight().insert(7);
        let seen = s.wake.generation();
        s.uploads.finished(7, false);
        assert!(s.uploads.in_flight().is_empty());
        assert!(s.wake.generation() > seen);
        assert!(!s.uploads.take_spool_lost());
        s.uploads.in_flight().insert(8);
        s.uploads.finished(8, true);
        assert!(s.uploads.take_spool_lost());
        assert!(!s.uploads.take_spool_lost(), "reported once");
    }

    #[test]
    fn stop_requests_wake_and_rearm_clears_them() {
        let s = RouterSignals::default();
        let seen = s.wake.generation();
        s.close_input();
        s.abort();
        assert!(s.input_closed() && s.aborted());
        assert!(s.wake.generation() >= seen + 2);
        s.rearm();
        assert!(!s.input_closed() && !s.aborted());
    }
}
