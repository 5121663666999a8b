//! The output read by the tools users query it with, not by our own code:
//! DuckDB (`read_json` with `hive_partitioning`) and pyarrow
//! (`pyarrow.dataset`, format json, hive partitioning) must read exactly
//! the acknowledged events, with their partition columns, from files of
//! several compression blocks, including awkward but valid values (escapes,
//! surrogate pairs, extreme floats, deep nesting); and the `sync_aliases`
//! and `segment` trees too. `scripts/test` installs both (`pip install
//! duckdb pyarrow`).

mod common;

use std::collections::HashSet;

use common::*;
use hivestream_core::corpus::Corpus;

const SCRIPT: &str = r#"
import json, sys
import duckdb, pyarrow.dataset as ds
root = sys.argv[1]
def duck(sql):
    return duckdb.sql(sql).fetchall()
events = f"read_json('{root}/type=events/**/*.jsonl.gz', hive_partitioning = true)"
ids_duck = [str(r[0]) for r in duck(f"SELECT event_id FROM {events}")]
bad_hour = duck(f"SELECT count(*) FROM {events} WHERE CAST(hour AS INT) != hour(CAST(time AS TIMESTAMP))")[0][0]
t = ds.dataset(f"{root}/type=events", format="json", partitioning="hive").to_table()
aliases = duck(f"SELECT count(*) FROM read_json('{root}/type=sync_aliases/**/*.jsonl.gz', hive_partitioning = true)")[0][0]
newest = duck(f"SELECT max(file) FROM glob('{root}/type=segment/*.jsonl.gz')")[0][0]
cohorts = duck(f"SELECT count(*) FROM read_json('{newest}')")[0][0]
print(json.dumps({
    "duckdb_ids": ids_duck,
    "duckdb_bad_hour": bad_hour,
    "pyarrow_ids": [str(x) for x in t.column("event_id").to_pylist()],
    "pyarrow_partitions": [n for n in t.schema.names if n in ("year", "month", "day", "hour")],
    "sync_aliases": aliases,
    "segment_cohorts": cohorts,
}))
"#;

/// Valid events with values that trip careless writers or readers.
fn awkward_events() -> Vec<String> {
    let deep = format!("{}1{}", "[".repeat(60), "]".repeat(60));
    [
        r#"{"q":"quote \" backslash \\ slash \/ tab \t nl \n","e":"é ü 中文 \ud83d\ude00"}"#
            .to_string(),
        r#"{"big":1.7976931348623157e308,"tiny":5e-324,"neg":-0,"int":9007199254740993}"#
            .to_string(),
        format!(r#"{{"deep":{deep}}}"#),
        r#"{"empty":{},"arr":[],"null":null,"t":true,"f":false}"#.to_string(),
    ]
    .into_iter()
    .map(|p| format!(r#"{{"name":"Awkward","user_id":"{UID}","properties":{p}}}"#))
    .collect()
}

fn post_batch(server: &Server, events: &[String]) -> Vec<String> {
    let v = post_items(server, events);
    assert_eq!(v["rejected"], 0, "{v}");
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["event_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn duckdb_and_pyarrow_read_exactly_what_was_acknowledged() {
    let setup = Setup::new(Backend::Local, "readers");
    let server = setup.start("1s");
    let mut corpus = Corpus::new(3, 500);
    let mut acked = post_batch(&server, &awkward_events());
    for _ in 0..30 {
        let batch: Vec<String> = (0..200).map(|_| corpus.event()).collect();
        acked.extend(post_batch(&server, &batch));
    }
    for i in 0..5 {
        let r = server.post("/v2.0/identify", &[JSON], corpus.identify().as_bytes());
        assert_eq!(r.status, 200, "identify {i}");
    }
    for i in 0..3 {
        assert_eq!(
            server
                .post("/v2/cohorts", &[JSON], corpus.cohort(i).as_bytes())
                .status,
            201
        );
    }
    assert_eq!(server.terminate(), 0);

    let bucket = setup.dir.path().join("bucket");
    let v = python_json(SCRIPT, &[bucket.to_str().unwrap()]);
    let expected: HashSet<&str> = acked.iter().map(String::as_str).collect();
    for reader in ["duckdb_ids", "pyarrow_ids"] {
        let ids: Vec<&str> = v[reader]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), acked.len(), "{reader}: rows");
        assert_eq!(
            ids.into_iter().collect::<HashSet<_>>(),
            expected,
            "{reader}: ids"
        );
    }
    assert_eq!(
        v["duckdb_bad_hour"], 0,
        "hour partition disagrees with time"
    );
    assert_eq!(
        v["pyarrow_partitions"],
        serde_json::json!(["year", "month", "day", "hour"])
    );
    assert_eq!(v["sync_aliases"], 10, "two aliases per identify");
    assert_eq!(
        v["segment_cohorts"], 3,
        "the newest snapshot holds every cohort"
    );
}
