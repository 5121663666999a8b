//! `hivestream tables`: the statements that make the bucket queryable at
//! once, for Athena (Glue catalog), DuckDB and Spark SQL, from the same
//! configuration as `serve` (sink, prefix, endpoint, region).
//!
//! Column types follow the contract (§1). Two choices apply to every
//! engine:
//! - `properties` is a JSON *string* (Athena `string`, DuckDB `JSON`,
//!   Spark `STRING`): properties are free-form, often nested and mixed, so
//!   a `map<string,string>` would fail on the first nested object or
//!   number; extract fields with `json_extract_scalar(properties, '$.url')`
//!   (Athena), `properties->>'url'` (DuckDB) or
//!   `get_json_object(properties, '$.url')` (Spark).
//! - `time` is a timestamp where the engine parses RFC 3339 by itself
//!   (DuckDB, Spark) and a string in Athena, whose JSON SerDe does not;
//!   there use `from_iso8601_timestamp(time)`.
//!
//! Athena gets partition projection on year/month/day/hour with a
//! `storage.location.template`, so new hours are queryable the moment
//! their first object lands: no crawler, no `MSCK REPAIR TABLE`.

use std::fmt::Write as _;

use crate::config::{Config, SinkTarget};

/// The engines statements can be printed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Athena,
    DuckDb,
    Spark,
}

/// A column: name and type per engine (Athena/Hive, DuckDB, Spark).
struct Column {
    name: &'static str,
    athena: &'static str,
    duckdb: &'static str,
    spark: &'static str,
}

const fn col(
    name: &'static str,
    athena: &'static str,
    duckdb: &'static str,
    spark: &'static str,
) -> Column {
    Column {
        name,
        athena,
        duckdb,
        spark,
    }
}

const EVENTS: &[Column] = &[
    col("event_id", "string", "UUID", "STRING"),
    col("time", "string", "TIMESTAMPTZ", "TIMESTAMP"),
    col("name", "string", "VARCHAR", "STRING"),
    col("user_id", "string", "UUID", "STRING"),
    col("session_id", "string", "UUID", "STRING"),
    col("view_id", "string", "UUID", "STRING"),
    col("segments", "array<bigint>", "BIGINT[]", "ARRAY<BIGINT>"),
    col("cohorts", "array<string>", "VARCHAR[]", "ARRAY<STRING>"),
    col("properties", "string", "JSON", "STRING"),
];

const SYNC_ALIASES: &[Column] = &[
    col("time", "string", "TIMESTAMPTZ", "TIMESTAMP"),
    col("user_id", "string", "UUID", "STRING"),
    col("tag", "string", "VARCHAR", "STRING"),
    col("id", "string", "VARCHAR", "STRING"),
    col("priority", "bigint", "BIGINT", "BIGINT"),
];

const SEGMENT: &[Column] = &[
    col("id", "string", "UUID", "STRING"),
    col("code", "bigint", "BIGINT", "BIGINT"),
    col("name", "string", "VARCHAR", "STRING"),
    col("description", "string", "VARCHAR", "STRING"),
    col("tags", "array<string>", "VARCHAR[]", "ARRAY<STRING>"),
    col("state", "string", "VARCHAR", "STRING"),
    col("workspace_id", "string", "UUID", "STRING"),
    col("segment_type", "string", "VARCHAR", "STRING"),
    col("created_at", "string", "TIMESTAMPTZ", "TIMESTAMP"),
    col("last_updated_at", "string", "TIMESTAMPTZ", "TIMESTAMP"),
];

/// The three tables: name, columns, hourly or not.
const TABLES: [(&str, &[Column], bool); 3] = [
    ("events", EVENTS, true),
    ("sync_aliases", SYNC_ALIASES, true),
    ("segment", SEGMENT, false),
];

/// Why statements cannot be printed for a sink.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error(
        "{0} reads only S3: configure an s3:// sink (a local directory works with --engine duckdb)"
    )]
    NeedsS3(&'static str),
    #[error("the memory:// sink keeps nothing to query")]
    Memory,
    #[error("--database {0:?} must be 1-64 characters of a-z, 0-9 and _")]
    Database(String),
}

/// Where the data types live: `(scheme://bucket/prefix, is_s3)`.
fn root(cfg: &Config, s3_scheme: &str) -> Result<(String, bool), TablesError> {
    match &cfg.sink {
        SinkTarget::S3 { bucket } => Ok((format!("{s3_scheme}://{bucket}/{}", cfg.prefix), true)),
        SinkTarget::Local(dir) => {
            let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            Ok((format!("{}/", abs.display()), false))
        }
        SinkTarget::Memory => Err(TablesError::Memory),
    }
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Prints the statements for `engine`.
pub fn statements(
    cfg: &Config,
    engine: Engine,
    database: &str,
    this_year: i64,
) -> Result<String, TablesError> {
    let db_ok = (1..=64).contains(&database.len())
        && database
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !db_ok {
        return Err(TablesError::Database(database.to_string()));
    }
    match engine {
        Engine::Athena => athena(cfg, database, this_year),
        Engine::DuckDb => duckdb(cfg),
        Engine::Spark => spark(cfg, database),
    }
}

fn athena(cfg: &Config, db: &str, this_year: i64) -> Result<String, TablesError> {
    let (root, s3) = root(cfg, "s3")?;
    if !s3 {
        return Err(TablesError::NeedsS3("Athena"));
    }
    let mut out = format!(
        "-- Athena / Glue: the three data types of {root}, queryable at once (partition projection:\n\
         -- no crawler, no MSCK REPAIR). Filter on year/month/day/hour to read only those hours.\n\
         CREATE DATABASE IF NOT EXISTS {db};\n\n"
    );
    for (name, cols, hourly) in TABLES {
        let columns: Vec<String> = cols
            .iter()
            .map(|c| format!("  `{}` {}", c.name, c.athena))
            .collect();
        let location = format!("{root}type={name}/");
        let _ = write!(
            out,
            "CREATE EXTERNAL TABLE IF NOT EXISTS {db}.{name} (\n{}\n)\n",
            columns.join(",\n")
        );
        if hourly {
            out.push_str(
                "PARTITIONED BY (`year` string, `month` string, `day` string, `hour` string)\n",
            );
        }
        let _ = write!(
            out,
            "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n\
             STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'\n\
             OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\n\
             LOCATION {}\n",
            sql_str(&location)
        );
        if hourly {
            let template =
                format!("{location}year=${{year}}/month=${{month}}/day=${{day}}/hour=${{hour}}/");
            let props = [
                ("projection.enabled", "true".to_string()),
                ("projection.year.type", "integer".into()),
                (
                    "projection.year.range",
                    format!("{},{}", this_year - 1, this_year + 20),
                ),
                ("projection.year.digits", "4".into()),
                ("projection.month.type", "integer".into()),
                ("projection.month.range", "1,12".into()),
                ("projection.month.digits", "2".into()),
                ("projection.day.type", "integer".into()),
                ("projection.day.range", "1,31".into()),
                ("projection.day.digits", "2".into()),
                ("projection.hour.type", "integer".into()),
                ("projection.hour.range", "0,23".into()),
                ("projection.hour.digits", "2".into()),
                ("storage.location.template", template),
            ];
            let props: Vec<String> = props
                .iter()
                .map(|(k, v)| format!("  {} = {}", sql_str(k), sql_str(v)))
                .collect();
            let _ = write!(out, "TBLPROPERTIES (\n{}\n)", props.join(",\n"));
        } else {
            out.push_str("TBLPROPERTIES ('has_encrypted_data' = 'false')");
        }
        out.push_str(";\n\n");
    }
    let _ = write!(
        out,
        "-- The newest snapshot's cohorts: names start with the snapshot's time, so the largest path is the newest.\n\
         CREATE OR REPLACE VIEW {db}.segment_latest AS\n\
         SELECT * FROM {db}.segment WHERE \"$path\" = (SELECT max(\"$path\") FROM {db}.segment);\n"
    );
    Ok(out)
}

fn duckdb_columns(cols: &[Column]) -> String {
    let inner: Vec<String> = cols
        .iter()
        .map(|c| format!("{}: {}", c.name, sql_str(c.duckdb)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn duckdb(cfg: &Config) -> Result<String, TablesError> {
    let (root, s3) = root(cfg, "s3")?;
    let mut out = String::new();
    if s3 {
        out.push_str(
            "-- DuckDB over S3: credentials come from the AWS environment / profile (the aws extension).\n\
             INSTALL httpfs; LOAD httpfs; INSTALL aws; LOAD aws;\n",
        );
        let mut secret =
            String::from("CREATE OR REPLACE SECRET hivestream (TYPE s3, PROVIDER credential_chain");
        if let Some(region) = &cfg.s3.region {
            let _ = write!(secret, ", REGION {}", sql_str(region));
        }
        if let Some(endpoint) = &cfg.s3.endpoint {
            let (ssl, host) = match endpoint.strip_prefix("http://") {
                Some(h) => (false, h),
                None => (true, endpoint.trim_start_matches("https://")),
            };
            let _ = write!(
                secret,
                ", ENDPOINT {}, URL_STYLE 'path', USE_SSL {ssl}",
                sql_str(host.trim_end_matches('/'))
            );
        }
        out.push_str(&secret);
        out.push_str(");\n");
    } else {
        let _ = writeln!(out, "-- DuckDB over the local bucket directory {root}");
    }
    for (name, cols, hourly) in TABLES {
        let glob = if hourly {
            format!("{root}type={name}/*/*/*/*/*.jsonl.gz")
        } else {
            format!("{root}type={name}/*.jsonl.gz")
        };
        let _ = writeln!(
            out,
            "CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_json({}, format = 'newline_delimited', \
             hive_partitioning = {hourly}, columns = {});",
            sql_str(&glob),
            duckdb_columns(cols)
        );
    }
    let glob = sql_str(&format!("{root}type=segment/*.jsonl.gz"));
    let _ = writeln!(
        out,
        "CREATE OR REPLACE VIEW segment_latest AS SELECT * EXCLUDE (filename) FROM read_json({glob}, \
         format = 'newline_delimited', filename = true, columns = {}) \
         WHERE filename = (SELECT max(file) FROM glob({glob}));",
        duckdb_columns(SEGMENT)
    );
    Ok(out)
}

fn spark(cfg: &Config, db: &str) -> Result<String, TablesError> {
    let (root, _) = root(cfg, "s3a")?;
    let mut out = format!(
        "-- Spark SQL: JSON tables over {root}. New hours appear after\n\
         -- ALTER TABLE … RECOVER PARTITIONS (run it as often as you need fresh hours).\n\
         CREATE DATABASE IF NOT EXISTS {db};\n"
    );
    for (name, cols, hourly) in TABLES {
        let mut columns: Vec<String> = cols
            .iter()
            .map(|c| format!("  `{}` {}", c.name, c.spark))
            .collect();
        if hourly {
            columns.extend(["year", "month", "day", "hour"].map(|p| format!("  `{p}` STRING")));
        }
        let _ = write!(
            out,
            "CREATE TABLE IF NOT EXISTS {db}.{name} (\n{}\n)\nUSING json\nOPTIONS (path {}, timestampFormat \"yyyy-MM-dd'T'HH:mm:ss.SSSXXX\")\n",
            columns.join(",\n"),
            sql_str(&format!("{root}type={name}/"))
        );
        if hourly {
            let _ = write!(
                out,
                "PARTITIONED BY (year, month, day, hour);\nALTER TABLE {db}.{name} RECOVER PARTITIONS;\n"
            );
        } else {
            out.push_str(";\n");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn cfg(sink: &str) -> Config {
        RawConfig {
            sink: Some(sink.into()),
            endpoint: Some("http://127.0.0.1:8333".into()),
            region: Some("eu-west-1".into()),
            ..Default::default()
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn athena_projects_every_hour_of_both_hourly_types() {
        let sql = statements(
            &cfg("s3://my-bucket/raw"),
            Engine::Athena,
            "hivestream",
            2026,
        )
        .unwrap();
        for t in ["events", "sync_aliases"] {
            assert!(sql.contains(&format!(
                "'storage.location.template' = 's3://my-bucket/raw/type={t}/year=${{year}}/month=${{month}}/day=${{day}}/hour=${{hour}}/'"
            )));
        }
        assert!(sql.contains("'projection.year.range' = '2025,2046'"));
        assert!(sql.contains("'projection.hour.range' = '0,23'"));
        assert!(sql.contains("LOCATION 's3://my-bucket/raw/type=segment/'"));
        assert!(sql.contains("CREATE OR REPLACE VIEW hivestream.segment_latest"));
        assert!(sql.contains("`properties` string"));
        assert!(matches!(
            statements(&cfg("file:///tmp/b"), Engine::Athena, "hivestream", 2026),
            Err(TablesError::NeedsS3(_))
        ));
        assert!(statements(&cfg("s3://my-bucket"), Engine::Athena, "Bad-Name", 2026).is_err());
    }

    #[test]
    fn duckdb_sets_up_a_custom_endpoint_without_secrets() {
        let sql = statements(&cfg("s3://my-bucket/raw"), Engine::DuckDb, "x", 2026).unwrap();
        assert!(sql.contains("ENDPOINT '127.0.0.1:8333', URL_STYLE 'path', USE_SSL false"));
        assert!(sql.contains("PROVIDER credential_chain"));
        assert!(sql.contains("read_json('s3://my-bucket/raw/type=events/*/*/*/*/*.jsonl.gz'"));
        let spark = statements(&cfg("s3://my-bucket/raw"), Engine::Spark, "hs", 2026).unwrap();
        assert!(spark.contains("OPTIONS (path 's3a://my-bucket/raw/type=events/'"));
        assert!(spark.contains("PARTITIONED BY (year, month, day, hour)"));
    }
}
