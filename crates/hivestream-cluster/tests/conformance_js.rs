//! The conformance suite (`hivestream_core::conformance`) on the JetStream
//! backends: a stream subject as the log, a KV ledger and KV leases, on the
//! 3-node cluster `scripts/nats-cluster` starts (`HIVESTREAM_TEST_NATS`).
//! Each test works in streams and buckets of its own name.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use async_trait::async_trait;
use hivestream_cluster::lease::KvLeases;
use hivestream_cluster::ledger::KvLedger;
use hivestream_cluster::log::{encode_message, publish, JsLogReader, ReadOptions};
use hivestream_core::conformance::{self, LogUnderTest};
use hivestream_core::log::{LogReader, Pos};
use hivestream_core::route::ledger::LedgerStore;

async fn jetstream() -> jetstream::Context {
    let urls = std::env::var("HIVESTREAM_TEST_NATS").expect(
        "HIVESTREAM_TEST_NATS is not set: run scripts/test, or scripts/nats-cluster DIR and export its URLs",
    );
    let urls: Vec<&str> = urls.split(',').collect();
    let client = async_nats::connect(urls.as_slice()).await.unwrap();
    jetstream::new(client)
}

fn unique(what: &str) -> String {
    format!(
        "CONF_{what}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

struct StreamLog {
    js: jetstream::Context,
    stream: stream::Stream,
    subject: String,
}

#[async_trait]
impl LogUnderTest for StreamLog {
    async fn append(&self, idem: &str, records: Vec<Vec<u8>>) -> Result<(), String> {
        let payload = encode_message(records.iter().map(Vec::as_slice));
        let msg = async_nats::jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(idem);
        publish(&self.js, &self.subject, msg, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn reader(&self, from: Pos) -> Box<dyn LogReader> {
        Box::new(JsLogReader::open(
            self.stream.clone(),
            self.subject.clone(),
            from,
            Arc::default(),
            ReadOptions {
                purge: true,
                dedup: None,
            },
            &tokio::runtime::Handle::current(),
        ))
    }

    fn dedups(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_log() {
    let js = jetstream().await;
    let name = unique("EV");
    let subject = format!("{}.p", name.to_lowercase());
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{}.*", name.to_lowercase())],
            num_replicas: 3,
            discard: stream::DiscardPolicy::New,
            duplicate_window: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap();
    // Another subject interleaved, as partitions share the events stream.
    let other = format!("{}.q", name.to_lowercase());
    js.publish(other.clone(), "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let log = StreamLog {
        js: js.clone(),
        stream,
        subject,
    };
    conformance::log(&log).await;
    js.delete_stream(&name).await.unwrap();
}

async fn bucket(js: &jetstream::Context, name: &str, max_age: Duration) -> kv::Store {
    js.create_key_value(kv::Config {
        bucket: name.to_string(),
        history: 1,
        max_age,
        num_replicas: 3,
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_ledger() {
    let js = jetstream().await;
    let name = unique("LEDGER");
    let kv = bucket(&js, &name, Duration::ZERO).await;
    let rt = tokio::runtime::Handle::current();
    // The ledger blocks its (router) thread: run the suite on one.
    tokio::task::spawn_blocking(move || {
        let mut n = 0;
        conformance::ledger(
            &mut || {
                n += 1;
                KvLedger::take_over(kv.clone(), "ev.07", &format!("owner{n}"), &rt)
                    .map(|l| Box::new(l) as Box<dyn LedgerStore>)
            },
            true,
        );
    })
    .await
    .unwrap();
    js.delete_key_value(&name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_leases() {
    let js = jetstream().await;
    let name = unique("LEASE");
    let ttl = Duration::from_secs(2);
    let kv = bucket(&js, &name, ttl).await;
    conformance::leases(&KvLeases::new(kv, ttl)).await;
    js.delete_key_value(&name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_cohorts() {
    let js = jetstream().await;
    let name = unique("COHORTS");
    let kv = bucket(&js, &name, Duration::ZERO).await;
    let workspace = hivestream_cluster::cohorts::workspace_id(&kv, None)
        .await
        .unwrap();
    assert_eq!(
        hivestream_cluster::cohorts::workspace_id(&kv, None)
            .await
            .unwrap(),
        workspace,
        "every node reads the first node's workspace"
    );
    let api = hivestream_cluster::cohorts::KvCohorts::new(kv, workspace);
    conformance::cohorts(&api, "conf ", workspace).await;
    js.delete_key_value(&name).await.unwrap();
}
