//! How stale the bucket is: each router reports the acknowledgement time of
//! the oldest record it has not yet seen in the bucket (in an open file, a
//! sealed file waiting for upload, or not yet read), and `/metrics` shows
//! the age of the oldest of them all as
//! `hivestream_oldest_unuploaded_record_age_seconds` (0 when everything is
//! uploaded).
//!
//! Acknowledgement times come from the log: the WAL committer's group
//! commit times (kept for the records not yet checkpointed), JetStream's
//! publish timestamps. After a restart the records of files sealed before
//! it count from the moment they are read again, so the gauge can read low
//! for one flush interval after a restart.

use std::collections::HashMap;
use std::sync::Mutex;

static OLDEST: Mutex<Option<HashMap<String, i64>>> = Mutex::new(None);

/// Router `router` has nothing older than `ack_ms` waiting for the bucket
/// (`None`: nothing at all).
pub fn report(router: &str, ack_ms: Option<i64>) {
    let mut guard = OLDEST.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    match ack_ms {
        Some(ms) => {
            map.insert(router.to_string(), ms);
        }
        None => {
            map.remove(router);
        }
    }
}

/// Seconds since the oldest acknowledgement still waiting, at `now_ms`.
pub fn oldest_age_seconds(now_ms: i64) -> f64 {
    let guard = OLDEST.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .as_ref()
        .and_then(|m| m.values().min().copied())
        .map_or(0.0, |oldest| (now_ms - oldest).max(0) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_router_sets_the_age() {
        report("test-a", Some(10_000));
        report("test-b", Some(4_000));
        assert_eq!(oldest_age_seconds(14_000), 10.0);
        report("test-b", None);
        assert_eq!(oldest_age_seconds(14_000), 4.0);
        report("test-a", None);
    }
}
