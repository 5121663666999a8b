//! `hivestream tables`: the DuckDB statements, run against a real tree
//! written by `serve`, return exactly the acknowledged events, alias syncs
//! and the newest cohort snapshot; the Athena and Spark statements parse
//! (sqlglot, in their dialects) and define the contract's columns, the
//! partition projection ranges and the location template.

mod common;

use std::collections::HashSet;
use std::process::Command;

use common::*;

const DUCKDB: &str = r#"
import duckdb, json, sys
con = duckdb.connect()
con.execute(open(sys.argv[1]).read())
q = lambda s: con.execute(s).fetchall()
print(json.dumps({
    "ids": [str(r[0]) for r in q("SELECT event_id FROM events")],
    "hours": q("SELECT count(*) FROM events WHERE hour(time AT TIME ZONE 'UTC') != CAST(hour AS INT)")[0][0],
    "urls": q("SELECT count(*) FROM events WHERE properties->>'url' LIKE 'https://example.com/p/%'")[0][0],
    "aliases": q("SELECT count(*) FROM sync_aliases")[0][0],
    "alias_users": q("SELECT count(DISTINCT user_id) FROM sync_aliases")[0][0],
    "latest": sorted(r[0] for r in q("SELECT name FROM segment_latest")),
    "snapshot_rows": q("SELECT count(*) FROM read_json('" + sys.argv[2] + "/type=segment/*.jsonl.gz')")[0][0],
}))
"#;

const PARSE: &str = r#"
import sqlglot, json, sys
from sqlglot import exp
out = {}
for path, dialect in [(sys.argv[1], "athena"), (sys.argv[2], "spark")]:
    tables = {}
    for s in sqlglot.parse(open(path).read(), read=dialect):
        if isinstance(s, exp.Create) and s.kind == "TABLE":
            schema = s.this
            cols = [c.name for c in schema.expressions if isinstance(c, exp.ColumnDef)]
            tables[schema.this.name] = cols
    out[dialect] = tables
print(json.dumps(out))
"#;

fn tables(engine: &str, sink: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hivestream"))
        .args(["tables", "--engine", engine, "--sink", sink])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn duckdb_views_return_the_acknowledged_data_and_ddl_parses() {
    let setup = Setup::new(Backend::Local, "tables");
    let server = setup.start("300ms");
    let mut acked = Vec::new();
    for i in 0..10 {
        acked.extend(send_batch(&server.addr, i * 30, 30));
    }
    for i in 0..3 {
        let body = format!(
            r#"{{"user_id":"{}","aliases":[{{"priority":0,"tag":"crm","id":"c{i}"}},{{"priority":1,"tag":"idfa","id":"a{i}"}}]}}"#,
            uuid::Uuid::new_v4()
        );
        assert_eq!(
            server
                .post("/v2.0/identify", &[JSON], body.as_bytes())
                .status,
            200
        );
    }
    for name in ["Sports", "Finance"] {
        let body = format!(r#"{{"name":"{name}"}}"#);
        assert_eq!(
            server.post("/v2/cohorts", &[JSON], body.as_bytes()).status,
            201
        );
        // Let a snapshot of this state be written before the next change.
        std::thread::sleep(std::time::Duration::from_millis(800));
    }
    assert_eq!(server.terminate(), 0);

    let bucket = setup.dir.path().join("bucket");
    let sql = tables("duckdb", &format!("file://{}", bucket.display()));
    let sql_path = setup.dir.path().join("views.sql");
    std::fs::write(&sql_path, &sql).unwrap();
    let v = python_json(
        DUCKDB,
        &[sql_path.to_str().unwrap(), bucket.to_str().unwrap()],
    );
    let ids: HashSet<&str> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(
        v["ids"].as_array().unwrap().len(),
        acked.len(),
        "one row per acknowledged event"
    );
    assert_eq!(ids, acked.iter().map(String::as_str).collect());
    assert_eq!(
        v["hours"], 0,
        "the hour partition matches each event's time"
    );
    assert_eq!(
        v["urls"],
        acked.len(),
        "properties is JSON the engine extracts from"
    );
    assert_eq!(
        (v["aliases"].as_u64(), v["alias_users"].as_u64()),
        (Some(6), Some(3))
    );
    assert_eq!(
        v["latest"],
        serde_json::json!(["Finance", "Sports"]),
        "the newest snapshot"
    );
    assert_eq!(
        v["snapshot_rows"], 3,
        "an older snapshot (Sports alone) exists and is left out"
    );

    let athena = setup.dir.path().join("athena.sql");
    let spark = setup.dir.path().join("spark.sql");
    std::fs::write(&athena, tables("athena", "s3://my-bucket/raw")).unwrap();
    std::fs::write(&spark, tables("spark", "s3://my-bucket/raw")).unwrap();
    let p = python_json(PARSE, &[athena.to_str().unwrap(), spark.to_str().unwrap()]);
    let fields: Vec<&str> = common::verify::FIELDS.to_vec();
    for dialect in ["athena", "spark"] {
        let events: Vec<&str> = p[dialect]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(
            &events[..9],
            &fields[..],
            "{dialect}: the contract's event columns, in order"
        );
        assert!(
            p[dialect]["sync_aliases"].is_array() && p[dialect]["segment"].is_array(),
            "{dialect}"
        );
    }
    assert_eq!(
        p["spark"]["events"].as_array().unwrap()[9..],
        ["year", "month", "day", "hour"].map(serde_json::Value::from)
    );
    let text = std::fs::read_to_string(&athena).unwrap();
    assert!(text.contains("'projection.month.range' = '1,12'"));
    assert!(text.contains("'projection.day.range' = '1,31'"));
    assert!(text.contains(
        "'storage.location.template' = 's3://my-bucket/raw/type=sync_aliases/year=${year}/month=${month}/day=${day}/hour=${hour}/'"
    ));
}
