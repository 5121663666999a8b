//! A background load for the chaos suites: worker threads that send event
//! batches until stopped, recording every acknowledged event id and every
//! status, so a suite can compare "acknowledged" with "in the bucket".

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{event_json_padded, request, JSON};

/// What the load saw.
#[derive(Debug, Default, Clone)]
pub struct LoadStats {
    /// Event ids of items answered 201 inside a 200 batch response.
    pub acked: Vec<String>,
    /// Responses by status (0: the connection failed, e.g. the server died).
    pub statuses: BTreeMap<u16, usize>,
    /// 503 answers without a usable `Retry-After` header.
    pub unavailable_without_retry_after: usize,
    pub first_unavailable: Option<Instant>,
    pub last_ok: Option<Instant>,
}

impl LoadStats {
    pub fn count(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Backpressure done right: every answer was a 200 or a 503 (never
    /// another error, never a dropped connection), and every 503 said when
    /// to retry.
    pub fn assert_only_ok_or_unavailable(&self) {
        let unexpected: Vec<_> = self
            .statuses
            .keys()
            .filter(|s| **s != 200 && **s != 503)
            .collect();
        assert!(
            unexpected.is_empty(),
            "statuses other than 200/503: {:?}",
            self.statuses
        );
        assert_eq!(
            self.unavailable_without_retry_after, 0,
            "503 without Retry-After"
        );
    }
}

/// Worker threads sending batches of `batch` events, `pause` apart.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<Mutex<LoadStats>>,
}

/// Load settings.
#[derive(Clone, Copy)]
pub struct LoadShape {
    pub workers: usize,
    pub batch: usize,
    pub pause: Duration,
    /// Bytes of padding in each event's properties.
    pub pad: usize,
}

impl Load {
    /// Starts sending to `addr`; `next` hands out event numbers, so several
    /// loads over restarts never reuse one.
    pub fn start(addr: &str, shape: LoadShape, next: Arc<AtomicUsize>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(LoadStats::default()));
        let threads = (0..shape.workers)
            .map(|_| {
                let (addr, stop, stats, next) = (
                    addr.to_string(),
                    Arc::clone(&stop),
                    Arc::clone(&stats),
                    Arc::clone(&next),
                );
                std::thread::spawn(move || worker(&addr, shape, &stop, &stats, &next))
            })
            .collect();
        Self {
            stop,
            threads,
            stats,
        }
    }

    /// A copy of what the load has seen so far.
    pub fn stats(&self) -> LoadStats {
        self.stats.lock().unwrap().clone()
    }

    /// Stops the workers and returns everything they saw.
    pub fn stop(self) -> LoadStats {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        Arc::try_unwrap(self.stats)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_else(|a| a.lock().unwrap().clone())
    }
}

fn worker(
    addr: &str,
    shape: LoadShape,
    stop: &AtomicBool,
    stats: &Mutex<LoadStats>,
    next: &AtomicUsize,
) {
    while !stop.load(Ordering::Relaxed) {
        let from = next.fetch_add(shape.batch, Ordering::Relaxed);
        let body = format!(
            "[{}]",
            (from..from + shape.batch)
                .map(|i| event_json_padded(i, shape.pad))
                .collect::<Vec<_>>()
                .join(",")
        );
        let resp = request(addr, "POST", "/v2.0/events/batch", &[JSON], body.as_bytes());
        let ids: Vec<String> = if resp.status == 200 {
            resp.json()["results"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|x| x["event_id"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        {
            let mut s = stats.lock().unwrap();
            *s.statuses.entry(resp.status).or_default() += 1;
            s.acked.extend(ids);
            match resp.status {
                200 => s.last_ok = Some(Instant::now()),
                503 => {
                    s.first_unavailable.get_or_insert_with(Instant::now);
                    let ok = resp
                        .header("retry-after")
                        .is_some_and(|v| v.parse::<u64>().is_ok_and(|n| n > 0));
                    if !ok {
                        s.unavailable_without_retry_after += 1;
                    }
                }
                _ => {}
            }
        }
        if resp.status != 200 {
            // Do not spin on a server that is down or full.
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(shape.pause);
    }
}
