//! Follows a bucket while the benchmark runs and notes when each event id
//! first becomes visible in an `events` object, to measure ack→visible.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

/// A running bucket follower.
pub struct Watcher {
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
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
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(e) = endpoint {
        b = b.with_endpoint(e).with_allow_http(true);
    }
    let prefix = prefix.trim_matches('/');
    let events = if prefix.is_empty() {
        "type=events".to_string()
    } else {
        format!("{prefix}/type=events")
    };
    Ok((Arc::new(b.build()?), ObjectPath::from(events)))
}

impl Watcher {
    pub fn start(sink: &str, endpoint: Option<&str>) -> anyhow::Result<Self> {
        let (store, prefix) = open(sink, endpoint)?;
        let seen: Seen = Arc::default();
        let task = tokio::spawn(follow(store, prefix, Arc::clone(&seen)));
        Ok(Self { seen, task })
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
        self.task.abort();
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

async fn follow(store: Arc<dyn ObjectStore>, prefix: ObjectPath, seen: Seen) {
    let mut done: HashSet<ObjectPath> = HashSet::new();
    loop {
        let mut list = store.list(Some(&prefix));
        let mut fresh = Vec::new();
        while let Some(Ok(meta)) = list.next().await {
            if !done.contains(&meta.location) {
                fresh.push(meta.location);
            }
        }
        for location in fresh {
            let Ok(got) = store.get(&location).await else {
                continue;
            };
            let Ok(bytes) = got.bytes().await else {
                continue;
            };
            let now = Instant::now();
            let mut text = String::new();
            if flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .is_err()
            {
                continue;
            }
            let mut seen = seen.lock().expect("seen lock");
            for line in text.lines() {
                // Lines start with {"event_id":"<36 characters>".
                if let Some(id) = line.get(13..49) {
                    seen.entry(id.to_string()).or_insert(now);
                }
            }
            done.insert(location);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
