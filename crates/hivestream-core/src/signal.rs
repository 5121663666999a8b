//! [`Signal`]: wakes a sleeping thread; a `notify` before `wait` is not
//! lost. A leaf: the log's owner wakes the router with it when records are
//! committed, uploads wake it when files are in the bucket, and a cluster
//! worker wakes it to stop.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// A wake-up counter and its condition variable.
#[derive(Default)]
pub struct Signal {
    generation: Mutex<u64>,
    cond: Condvar,
}

impl Signal {
    pub fn notify(&self) {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cond.notify_all();
    }

    /// The current generation, to pass to [`Signal::wait_since`].
    pub fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps until a notify after `seen` or until `timeout`.
    pub fn wait_since(&self, seen: u64, timeout: Duration) {
        let guard = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.cond.wait_timeout_while(guard, timeout, |g| *g == seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_notify_before_the_wait_is_not_lost() {
        let s = Signal::default();
        let seen = s.generation();
        s.notify();
        let t = Instant::now();
        s.wait_since(seen, Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_wait_ends_on_notify_or_timeout() {
        let s = Arc::new(Signal::default());
        let t = Instant::now();
        s.wait_since(s.generation(), Duration::from_millis(30));
        assert!(t.elapsed() >= Duration::from_millis(30));
        let seen = s.generation();
        let other = Arc::clone(&s);
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.notify();
        });
        s.wait_since(seen, Duration::from_secs(5));
        waker.join().unwrap();
        assert!(s.generation() > seen);
    }
}
