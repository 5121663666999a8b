//! Reads the servers' own `/metrics` during a benchmark: how many records
//! they have uploaded (to time the whole pipeline, ingest to bucket, without
//! re-reading the bucket; summed over a cluster's workers) and the peak
//! resident memory.

use std::time::{Duration, Instant};

/// The servers under test, seen through `GET /metrics`.
pub struct ServerProbe {
    client: reqwest::Client,
    urls: Vec<String>,
}

impl ServerProbe {
    /// `bases`: comma-separated base URLs.
    pub fn new(client: reqwest::Client, bases: &str) -> Self {
        let urls = bases
            .split(',')
            .map(|b| b.trim().trim_end_matches('/'))
            .filter(|b| !b.is_empty())
            .map(|b| format!("{b}/metrics"))
            .collect();
        Self { client, urls }
    }

    async fn one(&self, url: &str, name: &str) -> Option<f64> {
        let text = self.client.get(url).send().await.ok()?.text().await.ok()?;
        hivestream_core::metrics::sample(&text, name)
    }

    /// The sum of an unlabelled sample over the servers (the largest, for
    /// a peak), or `None` when none can be asked.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let mut found = None;
        for url in &self.urls {
            if let Some(v) = self.one(url, name).await {
                let peak = name.contains("peak");
                found = Some(match found {
                    Some(f) if peak => f64::max(f, v),
                    Some(f) => f + v,
                    None => v,
                });
            }
        }
        found
    }

    /// Waits until the server has uploaded `target` records in all; returns
    /// when that happened, or `None` after `timeout`.
    pub async fn wait_uploaded(&self, target: f64, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .metric("hivestream_uploaded_records_total")
                .await
                .is_some_and(|n| n >= target)
            {
                return Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}
