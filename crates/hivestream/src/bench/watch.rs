//! Follows a bucket while the benchmark runs and notes when each event id
//! first becomes visible in an `events` object, to measure ack→visible.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

/// A running bucket follower.
pub struct Watcher {
    seen: Seen,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// Ack→visible latency summary.
#[derive(Debug, Serialize)]
pub struct Visibility {
    pub acked: usize,
    pub visible: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn open(sink: &str, endpoint: Option<&str>) -> anyhow::Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    if let Some(dir) = sink.strip_prefix("file://") {
        return Ok((
            Arc::new(LocalFileSystem::new_with_prefix(dir)?),
            ObjectPath::from("type=events"),
        ));
    }
    let rest = sink
        .strip_prefix("s3://")
        .ok_or_else(|| anyhow::anyhow!("--watch takes file://DIR or s3://BUCKET[/PREFIX]"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // The same builder serve uses: same credential chain, region default
    // and path-style requests on a custom endpoint.
    let settings = hivestream_core::config::S3Settings {
        endpoint: endpoint.map(str::to_string),
        ..Default::default()
    };
    let store = hivestream_core::sink::s3_builder(bucket, &settings).build()?;
    let prefix = prefix.trim_matches('/');
    let events = if prefix.is_empty() {
        "type=events".to_string()
    } else {
        format!("{prefix}/type=events")
    };
    Ok((Arc::new(store), ObjectPath::from(events)))
}

impl Watcher {
    /// Starts following on a thread of its own, so that decompressing
    /// objects never waits behind the load generator's tasks (which would
    /// make events look visible later than they were).
    pub fn start(sink: &str, endpoint: Option<&str>) -> anyhow::Result<Self> {
        let (store, prefix) = open(sink, endpoint)?;
        let seen: Seen = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bench-watch".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("watcher runtime");
                rt.block_on(async {
                    // Objects already in the bucket are not this run's: skip
                    // them unread, or reading them would delay spotting new ones.
                    let old = list(store.as_ref(), &prefix).await;
                    let _ = ready_tx.send(());
                    follow(store, prefix, old, seen2, stop2).await
                });
            })?;
        ready_rx.recv()?;
        Ok(Self { seen, stop, thread })
    }

    /// Waits until every acknowledged id is visible (or `timeout`), then
    /// summarises the latencies.
    pub async fn finish(self, acks: &[(String, Instant)], timeout: Duration) -> Visibility {
        let deadline = Instant::now() + timeout;
        loop {
            let visible = {
                let seen = self.seen.lock().expect("seen lock");
                acks.iter().filter(|(id, _)| seen.contains_key(id)).count()
            };
            if visible == acks.len() || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let seen = self.seen.lock().expect("seen lock");
        let mut lat: Vec<u64> = acks
            .iter()
            .filter_map(|(id, acked)| {
                seen.get(id)
                    .map(|v| v.saturating_duration_since(*acked).as_micros() as u64)
            })
            .collect();
        lat.sort_unstable();
        Visibility {
            acked: acks.len(),
            visible: lat.len(),
            p50_ms: super::percentile(&lat, 0.5),
            p99_ms: super::percentile(&lat, 0.99),
            max_ms: lat.last().map_or(0.0, |m| *m as f64 / 1000.0),
        }
    }
}

/// Every object under `prefix` (errors reported once, then ignored).
async fn list(store: &dyn ObjectStore, prefix: &ObjectPath) -> HashSet<ObjectPath> {
    let mut out = HashSet::new();
    let mut listing = store.list(Some(prefix));
    while let Some(meta) = listing.next().await {
        match meta {
            Ok(meta) => {
                out.insert(meta.location);
            }
            Err(e) => {
                eprintln!("watch: cannot list the bucket: {e}");
                break;
            }
        }
    }
    out
}

async fn follow(
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    mut done: HashSet<ObjectPath>,
    seen: Seen,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let fresh: Vec<ObjectPath> = list(store.as_ref(), &prefix)
            .await
            .into_iter()
            .filter(|l| !done.contains(l))
            .collect();
        for location in fresh {
            if let Some(ids) = read_ids(store.as_ref(), &location).await {
                let now = Instant::now();
                let mut seen = seen.lock().expect("seen lock");
                for id in ids {
                    seen.entry(id).or_insert(now);
                }
                done.insert(location);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The event ids in one object (lines start with `{"event_id":"<36 chars>"`).
async fn read_ids(store: &dyn ObjectStore, location: &ObjectPath) -> Option<Vec<String>> {
    let bytes = store.get(location).await.ok()?.bytes().await.ok()?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .ok()?;
    Some(
        text.lines()
            .filter_map(|line| line.get(13..49).map(str::to_string))
            .collect(),
    )
}
