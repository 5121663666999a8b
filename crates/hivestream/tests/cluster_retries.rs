//! Idempotent retries in cluster mode: an event with its own `event_id` is
//! written once whichever collector each copy reaches, and even when two
//! copies got into the log further apart than JetStream's duplicate window
//! (a collector that died between its publish and its note in the dedup
//! bucket, then a late retry): the worker routes only the first copy.

mod common;

use std::time::Duration;

use common::cluster::{free_port, ClusterSetup};
use common::verify::{assert_exactly_once, wait_for_ids};
use common::*;
use hivestream_cluster::dedup::client_msg_id;
use hivestream_cluster::log::encode_message;
use hivestream_cluster::names::{partition_of, Names};
use hivestream_core::log::record::{DataType, Record};

fn id(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x7a00_0000_0000_4000_8000_0000_0000_0000 | n)
}

fn ev(n: u128) -> String {
    format!(
        r#"{{"event_id":"{}","name":"Retry","user_id":"{UID}","properties":{{"n":{n}}}}}"#,
        id(n)
    )
}

/// Publishes event `n` straight to its partition, as a collector would.
fn publish_copy(setup: &ClusterSetup, n: u128) {
    let line = format!(
        r#"{{"event_id":"{}","time":"2026-11-26T10:00:00.000Z","name":"Copy","user_id":"{UID}","session_id":null,"view_id":null,"segments":[],"cohorts":[],"properties":{{}}}}"#,
        id(n)
    );
    let mut record = Vec::new();
    Record {
        data_type: DataType::Events,
        time_ms: 1_795_687_200_000,
        line: line.as_bytes(),
    }
    .encode(&mut record);
    let payload = encode_message([record.as_slice()]);
    let names = Names::new(&setup.name);
    let subject = names.events_subject(partition_of(&id(n).to_string(), 8));
    setup.nats.jetstream(async |js| {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            client_msg_id(&id(n)).as_str(),
        );
        let ack = js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(
            !ack.duplicate,
            "the copies are further apart than the duplicate window"
        );
    });
}

#[test]
fn retries_are_written_once_whichever_collector_they_reach() {
    let mut setup = ClusterSetup::new("cluster-retries");
    setup.extra = ["--publish-timeout", "1s", "--duplicate-window", "2s"]
        .map(String::from)
        .to_vec();
    let c0 = setup.spawn("collect", "c0", Some(free_port()));
    let c1 = setup.spawn("collect", "c1", Some(free_port()));
    let (a0, a1) = (c0.addr.clone().unwrap(), c1.addr.clone().unwrap());

    // A batch of client-id events and plain ones; then the same batch again
    // through the other collector.
    let mut items: Vec<String> = (0..10).map(ev).collect();
    items.extend((0..5).map(|i| event_json(1000 + i)));
    let body = format!("[{}]", items.join(","));
    let first = request(&a0, "POST", "/v2.0/events/batch", &[JSON], body.as_bytes());
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let again = request(&a1, "POST", "/v2.0/events/batch", &[JSON], body.as_bytes());
    assert_eq!(again.status, 200);
    let (ids1, ids2) = (event_ids(&first.json()), event_ids(&again.json()));
    assert_eq!(ids1[..10], ids2[..10], "the client's ids, answered alike");

    // A single event: the retry gets the body stored the first time.
    let one = request(&a0, "POST", "/v2.0/events", &[JSON], ev(20).as_bytes());
    std::thread::sleep(Duration::from_millis(5));
    let one_again = request(&a1, "POST", "/v2.0/events", &[JSON], ev(20).as_bytes());
    assert_eq!((one.status, one_again.status), (201, 201));
    assert_eq!(one.body, one_again.body, "the stored event, same time");

    // Two copies in the log, 3 s apart (the duplicate window is 2 s) and
    // never noted in the dedup bucket: the worker routes the first only.
    publish_copy(&setup, 30);
    std::thread::sleep(Duration::from_secs(3));
    publish_copy(&setup, 30);

    let worker = setup.spawn("route", "w0", None);
    let mut expected: Vec<String> = ids1.clone();
    expected.extend(ids2[10..].iter().cloned());
    expected.push(id(20).to_string());
    expected.push(id(30).to_string());
    assert_eq!(
        wait_for_ids(&setup.sink, &expected, Duration::from_secs(60)),
        0
    );
    std::thread::sleep(Duration::from_secs(2));
    for node in [worker, c0, c1] {
        assert_eq!(node.terminate(Duration::from_secs(60)), 0);
    }
    let d = assert_exactly_once(&setup.sink, &expected);
    assert_eq!(
        d.found,
        expected.len(),
        "no copy beyond the expected events"
    );
    eprintln!("cluster retries: {d:?}");
}
