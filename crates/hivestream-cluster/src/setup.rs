//! Connects to the NATS cluster and makes sure every stream and bucket
//! exists with settings that cannot lose acknowledged data, creating them
//! on first start and checking them on every start.
//!
//! Names are those of [`Names`] (`HS_…` with the default `cluster_name`).
//!
//! | stream / bucket | settings |
//! |---|---|
//! | `HS_EV` | file, `replicas`, retention limits, `discard: new`, `max_bytes = stream_max_bytes`, no `max_age`, `duplicate_window` |
//! | `HS_ID` | the same, `max_bytes = identity_max_bytes` |
//! | `HS_LEDGER`, `HS_COHORTS` | KV, file, `replicas`, history 1 (ledger) / 5 (cohorts) |
//! | `HS_LEASE` | KV, file, `replicas`, history 1, `max_age = lease_ttl` |
//! | `HS_DEDUP` | KV, file, `replicas`, history 1, `max_age = dedup_window`, `max_msgs = dedup_max_ids`, `discard: old` |
//!
//! Refused at start, with the reason: fewer replicas than configured (one
//! lost disk would lose acknowledged events), `discard: old` or a
//! `max_age`/`max_msgs` limit on a log (the stream would delete events that
//! wait for upload), a duplicate window shorter than the collectors' retry
//! span, a lease bucket whose TTL differs from `lease_ttl` (two TTLs mean
//! two owners), and an events stream with another partition count.
//! What clients cannot see is the servers' `sync_interval: always`, without
//! which a quorum's ack may still be only in page cache: the README says
//! so, and `scripts/nats-cluster` sets it.

use std::time::Duration;

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use async_nats::{Client, ConnectOptions};
use hivestream_core::backoff::Backoff;
use hivestream_core::config::ClusterSettings;
use thiserror::Error;

use crate::names::*;

/// Why the cluster cannot be used.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error("no NATS servers configured: set `nats` (HIVESTREAM_NATS or --nats)")]
    NoServers,
    #[error("cannot connect to NATS at {urls}: {reason}")]
    Connect { urls: String, reason: String },
    #[error("JetStream {what}: {reason}")]
    JetStream { what: String, reason: String },
    #[error("refusing to run: {0}")]
    Unsafe(String),
}

fn js_err(what: impl Into<String>, e: impl std::fmt::Display) -> SetupError {
    SetupError::JetStream {
        what: what.into(),
        reason: e.to_string(),
    }
}

/// A connection with every stream and bucket checked.
#[derive(Clone)]
pub struct Cluster {
    pub names: Names,
    pub client: Client,
    pub js: Context,
    pub settings: ClusterSettings,
    pub events: stream::Stream,
    pub identity: stream::Stream,
    pub ledger: kv::Store,
    pub leases: kv::Store,
    pub cohorts: kv::Store,
    pub dedup: kv::Store,
}

/// Connects (retrying until the servers answer) and prepares the streams
/// and buckets. `name` shows in the servers' connection list.
pub async fn connect(settings: &ClusterSettings, name: &str) -> Result<Cluster, SetupError> {
    if settings.nats.is_empty() {
        return Err(SetupError::NoServers);
    }
    let urls = settings.nats.join(",");
    let opts = ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(2))
        .max_reconnects(None::<usize>)
        .reconnect_delay_callback(|attempt| {
            Duration::from_millis((attempt as u64 * 100).clamp(50, 1000))
        })
        .event_callback(|event| async move {
            tracing::info!(%event, "NATS connection event");
        });
    let client = opts
        .connect(settings.nats.as_slice())
        .await
        .map_err(|e| SetupError::Connect {
            urls: urls.clone(),
            reason: e.to_string(),
        })?;
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .build(client.clone());
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match prepare(&js, &client, settings).await {
            Ok(cluster) => return Ok(cluster),
            Err(e @ SetupError::Unsafe(_)) => return Err(e),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                    "cluster not ready (no JetStream meta leader yet, or a server is down); retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Creates or checks every stream and bucket.
async fn prepare(
    js: &Context,
    client: &Client,
    settings: &ClusterSettings,
) -> Result<Cluster, SetupError> {
    let js = js.clone();
    let client = client.clone();
    let names = Names::new(&settings.cluster_name);
    let events = ensure_stream(&js, events_config(&names, settings), settings).await?;
    check_partitions(&events, settings)?;
    let identity = ensure_stream(&js, identity_config(&names, settings), settings).await?;
    let ledger = ensure_kv(
        &js,
        kv_config(&names.ledger_bucket(), 1, Duration::ZERO, settings),
    )
    .await?;
    let leases = ensure_kv(
        &js,
        kv_config(&names.lease_bucket(), 1, settings.lease_ttl, settings),
    )
    .await?;
    let cohorts = ensure_kv(
        &js,
        kv_config(&names.cohort_bucket(), 5, Duration::ZERO, settings),
    )
    .await?;
    let dedup = ensure_dedup(&js, &names.dedup_bucket(), settings).await?;
    Ok(Cluster {
        dedup,
        names,
        client,
        js,
        settings: settings.clone(),
        events,
        identity,
        ledger,
        leases,
        cohorts,
    })
}

fn log_config(
    name: &str,
    subjects: Vec<String>,
    max_bytes: u64,
    s: &ClusterSettings,
) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::New,
        max_bytes: max_bytes.min(i64::MAX as u64) as i64,
        max_messages: -1,
        max_messages_per_subject: -1,
        max_age: Duration::ZERO,
        storage: StorageType::File,
        num_replicas: s.replicas as usize,
        duplicate_window: s.duplicate_window,
        allow_direct: true,
        ..Default::default()
    }
}

/// The events stream's configuration.
pub fn events_config(names: &Names, s: &ClusterSettings) -> stream::Config {
    let mut c = log_config(
        &names.events_stream(),
        vec![names.events_wildcard()],
        s.stream_max_bytes,
        s,
    );
    c.description = Some(format!(
        "hivestream events log: {} partitions {}-{}",
        s.partitions,
        names.events_subject(0),
        names.events_subject(s.partitions - 1)
    ));
    c
}

/// The identity stream's configuration.
pub fn identity_config(names: &Names, s: &ClusterSettings) -> stream::Config {
    let mut c = log_config(
        &names.identity_stream(),
        vec![names.identity_subject()],
        s.identity_max_bytes,
        s,
    );
    c.description = Some("hivestream identity log: every alias link, in decision order".into());
    c
}

fn kv_config(bucket: &str, history: i64, max_age: Duration, s: &ClusterSettings) -> kv::Config {
    kv::Config {
        bucket: bucket.into(),
        history,
        max_age,
        storage: StorageType::File,
        num_replicas: s.replicas as usize,
        ..Default::default()
    }
}

/// Creates the stream, or checks the one that exists is safe.
async fn ensure_stream(
    js: &Context,
    want: stream::Config,
    s: &ClusterSettings,
) -> Result<stream::Stream, SetupError> {
    let name = want.name.clone();
    let mut stream = js
        .get_or_create_stream(want)
        .await
        .map_err(|e| js_err(format!("stream {name}"), e))?;
    let info = stream
        .info()
        .await
        .map_err(|e| js_err(format!("stream {name} info"), e))?;
    check_log(&info.config, s)?;
    Ok(stream)
}

/// Refuses a log stream whose settings could lose acknowledged events.
pub fn check_log(c: &stream::Config, s: &ClusterSettings) -> Result<(), SetupError> {
    let name = &c.name;
    let problems = [
        (c.num_replicas < s.replicas as usize).then(|| format!(
            "stream {name} has {} replicas, fewer than replicas = {}: losing one disk would lose acknowledged events (nats stream edit {name} --replicas {})",
            c.num_replicas, s.replicas, s.replicas)),
        (c.discard != DiscardPolicy::New).then(|| format!(
            "stream {name} has discard: old: when full it would delete events that wait for upload (set discard: new)")),
        (c.retention != RetentionPolicy::Limits).then(|| format!(
            "stream {name} has {:?} retention: routers read it without acknowledging, so only limits retention keeps events until they are uploaded", c.retention)),
        (!c.max_age.is_zero()).then(|| format!(
            "stream {name} has max_age {:?}: events older than that would be deleted before upload during an outage (set max_age 0)", c.max_age)),
        (c.max_messages >= 0 || c.max_messages_per_subject >= 0).then(|| format!(
            "stream {name} limits its message count: a full stream must refuse writes by bytes only (set max_msgs and max_msgs_per_subject to -1)")),
        (c.storage != StorageType::File).then(|| format!(
            "stream {name} is in memory: a restart of every server would lose it")),
        (c.duplicate_window < s.publish_timeout * 2).then(|| format!(
            "stream {name} remembers request ids for {:?}, less than twice publish_timeout ({:?}): a retried publish could be stored twice",
            c.duplicate_window, s.publish_timeout)),
    ];
    match problems.into_iter().flatten().next() {
        Some(p) => Err(SetupError::Unsafe(p)),
        None => Ok(()),
    }
}

fn check_partitions(stream: &stream::Stream, s: &ClusterSettings) -> Result<(), SetupError> {
    let desc = stream
        .cached_info()
        .config
        .description
        .clone()
        .unwrap_or_default();
    let want = format!("{} partitions", s.partitions);
    if !desc.contains(&want) {
        return Err(SetupError::Unsafe(format!(
            "stream {} was created for another partition count ({desc:?}), \
             not partitions = {}: every node must use the partition count the stream was created with",
            stream.cached_info().config.name,
            s.partitions
        )));
    }
    Ok(())
}

/// The dedup bucket: a KV bucket whose stream forgets the oldest ids
/// (`discard: old`, `max_msgs = dedup_max_ids`) and expires them after
/// `dedup_window`, which `create_key_value` cannot set up.
async fn ensure_dedup(
    js: &Context,
    bucket: &str,
    s: &ClusterSettings,
) -> Result<kv::Store, SetupError> {
    let window = Duration::from_millis(s.dedup.window_ms.max(1) as u64);
    let config = stream::Config {
        name: format!("KV_{bucket}"),
        description: Some("hivestream client event ids already routed".into()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_messages: s.dedup.max_ids.min(i64::MAX as u64) as i64,
        max_age: window,
        storage: StorageType::File,
        num_replicas: s.replicas as usize,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::Old,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| js_err(format!("bucket {bucket}"), e))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| js_err(format!("bucket {bucket}"), e))
}

/// Creates the bucket, or checks the one that exists matches.
async fn ensure_kv(js: &Context, want: kv::Config) -> Result<kv::Store, SetupError> {
    let bucket = want.bucket.clone();
    let store = match js.get_key_value(&bucket).await {
        Ok(store) => store,
        Err(_) => js
            .create_key_value(want.clone())
            .await
            .map_err(|e| js_err(format!("bucket {bucket}"), e))?,
    };
    let info = js
        .get_stream(format!("KV_{bucket}"))
        .await
        .map_err(|e| js_err(format!("bucket {bucket}"), e))?
        .cached_info()
        .config
        .clone();
    if info.num_replicas < want.num_replicas {
        return Err(SetupError::Unsafe(format!(
            "bucket {bucket} has {} replicas, fewer than replicas = {}",
            info.num_replicas, want.num_replicas
        )));
    }
    if info.max_age != want.max_age {
        return Err(SetupError::Unsafe(format!(
            "bucket {bucket} has max_age {:?} but this node wants {:?}: every node must use the same lease_ttl",
            info.max_age, want.max_age
        )));
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        hivestream_core::config::RawConfig::default()
            .validate()
            .unwrap()
            .cluster
    }

    #[test]
    fn created_configs_pass_their_own_check_and_unsafe_ones_fail() {
        let s = settings();
        let names = Names::new("hs");
        check_log(&events_config(&names, &s), &s).unwrap();
        check_log(&identity_config(&names, &s), &s).unwrap();
        let unsafe_edits: [fn(&mut stream::Config); 6] = [
            |c| c.num_replicas = 1,
            |c| c.discard = DiscardPolicy::Old,
            |c| c.max_age = Duration::from_secs(3600),
            |c| c.max_messages = 1000,
            |c| c.storage = StorageType::Memory,
            |c| c.duplicate_window = Duration::from_secs(1),
        ];
        for edit in unsafe_edits {
            let mut c = events_config(&names, &s);
            edit(&mut c);
            assert!(matches!(check_log(&c, &s), Err(SetupError::Unsafe(_))));
        }
    }
}
