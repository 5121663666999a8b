//! Idempotent retries: events that carry their own `event_id` are written
//! once, however often a client sends them again within the dedup window:
//! whole batches sent twice, batches partly made of retries, the same id
//! twice in one batch, single events (answered with the very body stored
//! the first time), alias-only events (no second user) and retries across
//! a `kill -9` right after the first acknowledgement and a clean restart.

mod common;

use std::collections::HashSet;

use common::verify::{assert_exactly_once, sync_records};
use common::*;

fn id(n: u128) -> String {
    uuid::Uuid::from_u128(0x5f0c_1f5e_0a4b_4b7b_9a4e_0000_0000_0000 | n).to_string()
}

fn ev(n: u128) -> String {
    format!(
        r#"{{"event_id":"{}","name":"Retry","user_id":"{UID}","properties":{{"n":{n}}}}}"#,
        id(n)
    )
}

fn batch(server: &Server, items: &[String]) -> serde_json::Value {
    post_items(server, items)
}

#[test]
fn retried_events_are_written_once() {
    let setup = Setup::new(Backend::Local, "retries");
    let server = setup.start("300ms");
    let first: Vec<String> = (0..10).map(ev).collect();
    let a = batch(&server, &first);
    assert_eq!(a["accepted"], 10);
    assert_eq!(
        event_ids(&a),
        (0..10).map(id).collect::<Vec<_>>(),
        "the client's ids are kept"
    );
    let again = batch(&server, &first);
    assert_eq!(again, a, "a retried batch gets the very same answer");

    // Half retries, half new, and two bad items.
    let mut mixed: Vec<String> = (5..15).map(ev).collect();
    mixed.push(r#"{"name":"bad name!","user_id":"x"}"#.into());
    mixed.push(format!(
        r#"{{"event_id":"not-a-uuid","name":"a","user_id":"{UID}"}}"#
    ));
    let m = batch(&server, &mixed);
    assert_eq!(
        (m["accepted"].as_u64(), m["rejected"].as_u64()),
        (Some(10), Some(2))
    );

    // The same id twice in one batch: stored once.
    let twice = batch(&server, &[ev(20), ev(20)]);
    assert_eq!(twice["accepted"], 2);

    // A single event answered with the body stored the first time.
    let one = server.post("/v2.0/events", &[JSON], ev(30).as_bytes());
    assert_eq!(one.status, 201);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let one_again = server.post("/v2.0/events", &[JSON], ev(30).as_bytes());
    assert_eq!(
        (one_again.status, &one_again.body),
        (201, &one.body),
        "same time, same body"
    );

    // An alias-only event retried: the same user, no second user.
    let alias = format!(
        r#"{{"event_id":"{}","name":"Login","aliases":[{{"priority":0,"tag":"email","id":"retry@example.com"}}]}}"#,
        id(40)
    );
    let u1 = server
        .post("/v2.0/events", &[JSON], alias.as_bytes())
        .json()["user_id"]
        .clone();
    let u2 = server
        .post("/v2.0/events", &[JSON], alias.as_bytes())
        .json()["user_id"]
        .clone();
    assert_eq!(u1, u2);
    let in_batch = batch(&server, std::slice::from_ref(&alias));
    assert_eq!(
        in_batch["results"][0]["user_id"], u1,
        "a batch tells the user chosen for an alias-only event"
    );

    // kill -9 at once after an acknowledgement (before the index's durable
    // commit): the retry after the restart is still recognised, from the WAL.
    let late: Vec<String> = (50..60).map(ev).collect();
    assert_eq!(batch(&server, &late)["accepted"], 10);
    server.kill9();
    let server = setup.start("300ms");
    assert_eq!(batch(&server, &late)["accepted"], 10);
    assert_eq!(server.terminate(), 0);
    // And after a clean restart.
    let server = setup.start("300ms");
    assert_eq!(batch(&server, &first)["accepted"], 10);
    assert_eq!(batch(&server, &late)["accepted"], 10);
    let dedup = server
        .metric("hivestream_events_deduplicated_total")
        .unwrap();
    assert_eq!(server.terminate(), 0);

    let expected: Vec<String> = (0..15).chain([20, 30, 40]).chain(50..60).map(id).collect();
    let d = assert_exactly_once(&setup, &expected);
    assert_eq!(d.found, expected.len(), "nothing but the expected events");
    let logins: HashSet<String> = sync_records(&setup.objects())
        .iter()
        .filter(|s| s["id"] == "retry@example.com")
        .map(|s| s["user_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logins.len(), 1, "one user for the retried alias-only event");
    assert_eq!(dedup, 20.0, "the last restart's retries were counted");
}
