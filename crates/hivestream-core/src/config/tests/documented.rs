//! The defaults as the docs state them. Doc comments cannot interpolate
//! constants, so the reference names each one, ``[`DEFAULT_X`] (value)``,
//! and these tests check every such value against the constant: in the
//! reference (`raw.rs`), the sample `deploy/hivestream.toml` and README's
//! configuration tables. Every `DEFAULT_` constant must be listed in
//! [`DOCUMENTED`] and named in its setting's doc.

use std::time::Duration;

use super::super::*;

const RAW_RS: &str = include_str!("../raw.rs");
const DEFAULTS_RS: &str = include_str!("../defaults.rs");
const SAMPLE: &str = include_str!("../../../../../deploy/hivestream.toml");
const README: &str = include_str!("../../../../../README.md");

/// A constant's value, and so how the docs write it.
#[derive(Debug, Clone, Copy)]
enum Value {
    /// In backticks, as the setting is written: `` `60s` ``.
    Duration(Duration),
    /// In backticks: `` `hs` ``.
    Text(&'static str),
    /// In whole binary units: `64 MiB`.
    Bytes(u64),
    /// A number with thousands separators: `16`, `10,000`.
    Count(u64),
}

/// `(setting it is the default of, constant name, value)`.
type Entry = (Option<&'static str>, &'static str, Value);

macro_rules! entry {
    ($setting:expr, $name:ident, Bytes) => {
        ($setting, stringify!($name), Value::Bytes($name as u64))
    };
    ($setting:expr, $name:ident, Count) => {
        ($setting, stringify!($name), Value::Count($name as u64))
    };
    ($setting:expr, $name:ident, $kind:ident) => {
        ($setting, stringify!($name), Value::$kind($name))
    };
}

/// Every constant the docs name: the defaults (with their setting), then
/// bounds named in docs.
const DOCUMENTED: &[Entry] = &[
    entry!(Some("listen"), DEFAULT_LISTEN, Text),
    entry!(Some("data_dir"), DEFAULT_DATA_DIR, Text),
    entry!(Some("sink"), DEFAULT_BUCKET_DIR, Text),
    entry!(Some("flush_interval"), DEFAULT_FLUSH_INTERVAL, Duration),
    entry!(Some("max_file_bytes"), DEFAULT_MAX_FILE_BYTES, Bytes),
    entry!(Some("max_backlog_bytes"), DEFAULT_MAX_BACKLOG_BYTES, Bytes),
    entry!(Some("max_body_bytes"), DEFAULT_MAX_BODY_BYTES, Bytes),
    entry!(
        Some("max_inflight_body_bytes"),
        DEFAULT_MAX_INFLIGHT_BODY_BYTES,
        Bytes
    ),
    entry!(Some("body_timeout"), DEFAULT_BODY_TIMEOUT, Duration),
    entry!(Some("max_batch_items"), DEFAULT_MAX_BATCH_ITEMS, Count),
    entry!(Some("compression_level"), DEFAULT_COMPRESSION_LEVEL, Count),
    entry!(
        Some("upload_concurrency"),
        DEFAULT_UPLOAD_CONCURRENCY,
        Count
    ),
    entry!(Some("shutdown_timeout"), DEFAULT_SHUTDOWN_TIMEOUT, Duration),
    entry!(
        Some("segment_snapshot_interval"),
        DEFAULT_SEGMENT_SNAPSHOT_INTERVAL,
        Duration
    ),
    entry!(Some("index_cache_bytes"), DEFAULT_INDEX_CACHE_BYTES, Bytes),
    entry!(Some("header_timeout"), DEFAULT_HEADER_TIMEOUT, Duration),
    entry!(Some("idle_timeout"), DEFAULT_IDLE_TIMEOUT, Duration),
    entry!(Some("dedup_window"), DEFAULT_DEDUP_WINDOW, Duration),
    entry!(Some("dedup_max_ids"), DEFAULT_DEDUP_MAX_IDS, Count),
    entry!(Some("cluster_name"), DEFAULT_CLUSTER_NAME, Text),
    entry!(Some("partitions"), DEFAULT_PARTITIONS, Count),
    entry!(Some("lease_ttl"), DEFAULT_LEASE_TTL, Duration),
    entry!(Some("replicas"), DEFAULT_REPLICAS, Count),
    entry!(Some("stream_max_bytes"), DEFAULT_STREAM_MAX_BYTES, Bytes),
    entry!(
        Some("identity_max_bytes"),
        DEFAULT_IDENTITY_MAX_BYTES,
        Bytes
    ),
    entry!(Some("duplicate_window"), DEFAULT_DUPLICATE_WINDOW, Duration),
    entry!(Some("publish_timeout"), DEFAULT_PUBLISH_TIMEOUT, Duration),
    entry!(None, MIN_KEY_CHARS, Count),
];

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Whether `shown` is how the docs write `value`.
fn shows(value: Value, shown: &str) -> bool {
    let ticked = shown.strip_prefix('`').and_then(|s| s.strip_suffix('`'));
    match value {
        Value::Duration(d) => {
            ticked.is_some_and(|s| parse_duration("doc", s).is_ok_and(|p| p == d))
        }
        Value::Text(t) => ticked == Some(t),
        Value::Bytes(n) => ["KiB", "MiB", "GiB"]
            .iter()
            .zip([10, 20, 30])
            .any(|(unit, shift)| {
                n.is_multiple_of(1 << shift) && shown == format!("{} {unit}", n >> shift)
            }),
        Value::Count(n) => shown == grouped(n),
    }
}

/// Each ``[`NAME`] (value)`` in `text` (constant names only: all caps).
fn mentions(text: &str) -> Vec<(&str, Option<&str>)> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("[`") {
        let rest = &text[at + 2..];
        let len = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        let (name, after) = rest.split_at(len);
        let Some(after) = after.strip_prefix("`]").filter(|_| !name.is_empty()) else {
            continue;
        };
        let value = after
            .strip_prefix(" (")
            .and_then(|v| v.find(')').map(|end| &v[..end]));
        out.push((name, value));
    }
    out
}

/// The comment lines of `text` that start with `marker`, joined by spaces.
fn comment_text(text: &str, marker: &str) -> String {
    let lines = text.lines().map(str::trim);
    let docs: Vec<&str> = lines.filter_map(|l| l.strip_prefix(marker)).collect();
    docs.iter().map(|d| d.trim()).collect::<Vec<_>>().join(" ")
}

/// `RawConfig`'s fields with their joined doc comments.
fn reference_docs() -> Vec<(String, String)> {
    let start = RAW_RS.find("pub struct RawConfig {").unwrap();
    let body = &RAW_RS[start..start + RAW_RS[start..].find("\n}\n").unwrap()];
    let mut out = Vec::new();
    let mut doc = Vec::new();
    for line in body.lines().skip(1).map(str::trim) {
        if let Some(d) = line.strip_prefix("///") {
            doc.push(d.trim());
        } else if let Some(field) = line.strip_prefix("pub ") {
            let name = field.split(':').next().unwrap().to_string();
            out.push((name, std::mem::take(&mut doc).join(" ")));
        }
    }
    out
}

/// The sample's comment above `# setting = `, joined.
fn sample_doc(setting: &str) -> String {
    let lines: Vec<&str> = SAMPLE.lines().collect();
    let marker = format!("# {setting} = ");
    let at = lines.iter().position(|l| l.starts_with(&marker));
    let at = at.unwrap_or_else(|| panic!("{setting} is not in the sample"));
    let above = lines[..at].iter().rev().take_while(|l| l.starts_with('#'));
    let mut block: Vec<&str> = above.map(|l| l.trim_start_matches('#').trim()).collect();
    block.reverse();
    block.join(" ")
}

/// The default column of README's row for `setting`.
fn readme_default(setting: &str) -> Option<&'static str> {
    let key = format!("`{setting}`");
    README.lines().find_map(|l| {
        let cells: Vec<&str> = l.split('|').map(str::trim).collect();
        (cells.len() > 3 && cells[0].is_empty() && cells[1] == key).then(|| cells[2])
    })
}

fn entry(name: &str) -> &'static Entry {
    DOCUMENTED
        .iter()
        .find(|(_, n, _)| *n == name)
        .unwrap_or_else(|| panic!("[`{name}`] is named in a doc but not in DOCUMENTED"))
}

#[test]
fn every_constant_named_in_a_doc_has_its_value_there() {
    let texts = [
        ("raw.rs", comment_text(RAW_RS, "///")),
        ("deploy/hivestream.toml", comment_text(SAMPLE, "#")),
    ];
    for (file, text) in &texts {
        for (name, shown) in mentions(text) {
            let (_, _, value) = entry(name);
            let shown = shown.unwrap_or_else(|| panic!("{file}: [`{name}`] without (value)"));
            assert!(
                shows(*value, shown),
                "{file}: [`{name}`] ({shown}) is {value:?}"
            );
        }
    }
}

#[test]
fn every_default_is_named_where_its_setting_is_documented() {
    let reference = reference_docs();
    for (setting, name, value) in DOCUMENTED {
        let Some(setting) = setting else { continue };
        let link = format!("[`{name}`] (");
        let (_, doc) = reference.iter().find(|(f, _)| f == setting).unwrap();
        assert!(
            doc.contains(&link),
            "raw.rs: {setting} does not name {name}"
        );
        assert!(
            sample_doc(setting).contains(&link),
            "sample: {setting} does not name {name}"
        );
        let shown = readme_default(setting).unwrap_or_else(|| panic!("README: no {setting} row"));
        if *setting == "sink" {
            assert_eq!(shown, format!("`file://{{data_dir}}/{DEFAULT_BUCKET_DIR}`"));
        } else {
            assert!(
                shows(*value, shown),
                "README: {setting} {shown} is {value:?}"
            );
        }
    }
    for line in DEFAULTS_RS.lines() {
        if let Some(rest) = line.strip_prefix("pub const DEFAULT_") {
            let name = format!("DEFAULT_{}", rest.split(':').next().unwrap());
            assert!(
                entry(&name).0.is_some(),
                "{name} has no setting in DOCUMENTED"
            );
        }
    }
}

#[test]
fn no_default_is_written_without_its_constant() {
    for (field, doc) in reference_docs() {
        for (at, _) in doc.match_indices("Default") {
            let next = &doc[at + "Default".len()..];
            assert!(
                [" [`", ":", " from"].iter().any(|p| next.starts_with(p)),
                "{field}: \"Default{}\" names no constant (write \"Default [`DEFAULT_…`] (value)\" or \"Default: …\")",
                &next[..next.len().min(20)]
            );
        }
    }
}
