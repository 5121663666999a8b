//! Checks of what is in the bucket, shared by every suite: key layout,
//! content hash in the name, field order, and exactly-once delivery of a
//! set of acknowledged event ids.

use std::collections::{HashMap, HashSet};

use super::{event_counts, Setup};

pub use hivestream_core::collect::event::FIELDS;

/// Checks a key is `type=events/year=YYYY/month=MM/day=DD/hour=HH/{13 digits}-{16 hex}-{worker}.jsonl.gz`
/// and agrees with its records' times and content.
pub fn check_key(key: &str, lines: &[String]) {
    let parts: Vec<&str> = key.split('/').collect();
    assert_eq!(parts.len(), 6, "{key}");
    assert_eq!(parts[0], "type=events");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let time = first["time"].as_str().unwrap();
    assert_eq!(parts[1], format!("year={}", &time[0..4]), "{key}");
    assert_eq!(parts[2], format!("month={}", &time[5..7]), "{key}");
    assert_eq!(parts[3], format!("day={}", &time[8..10]), "{key}");
    assert_eq!(parts[4], format!("hour={}", &time[11..13]), "{key}");
    let name = parts[5].strip_suffix(".jsonl.gz").unwrap();
    let mut pieces = name.splitn(3, '-');
    let (ts, hash, worker) = (
        pieces.next().unwrap(),
        pieces.next().unwrap(),
        pieces.next().unwrap(),
    );
    assert_eq!(ts.len(), 13, "{key}");
    assert!(
        hash.len() == 16
            && hash
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{key}"
    );
    assert!(
        !worker.is_empty()
            && worker
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "{key}"
    );
    let mut content = lines.join("\n");
    content.push('\n');
    assert_eq!(
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(content.as_bytes())),
        hash,
        "{key}: hash is of the content"
    );
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["time"].as_str().unwrap().starts_with(&time[..13]),
            "{key}: record of another hour"
        );
    }
}

/// Checks one `events` line has the contract's fields, in order.
pub fn check_line(line: &str) {
    let positions: Vec<usize> = FIELDS
        .iter()
        .map(|f| {
            line.find(&format!("\"{f}\":"))
                .unwrap_or_else(|| panic!("{f} missing: {line}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "field order: {line}"
    );
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 9, "{line}");
    let t = v["time"].as_str().unwrap();
    assert!(
        t.len() == 24 && t.ends_with('Z') && &t[19..20] == ".",
        "{t}"
    );
}

/// What the bucket holds, measured against the acknowledged ids.
#[derive(Debug)]
pub struct Delivery {
    pub acknowledged: usize,
    pub found: usize,
    pub missing: usize,
    pub duplicated: usize,
    pub objects: usize,
}

/// Asserts every object (any data type) holds exactly the bytes its name's
/// hash says: the content hash in `{timestamp}-{hash}-{worker}.jsonl.gz`.
pub fn assert_hashes_match_names(objects: &HashMap<String, Vec<String>>) {
    for (key, lines) in objects {
        assert!(is_contract_key(key), "not a contract key: {key}");
        let name = key.rsplit('/').next().unwrap();
        let hash = name.split('-').nth(1).unwrap();
        let mut content = lines.join("\n");
        if !lines.is_empty() {
            content.push('\n');
        }
        assert_eq!(
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(content.as_bytes())),
            hash,
            "{key}: the bytes do not match the hash in the name"
        );
    }
}

/// Every `sync_aliases` record in the bucket.
pub fn sync_records(objects: &HashMap<String, Vec<String>>) -> Vec<serde_json::Value> {
    objects
        .iter()
        .filter(|(k, _)| k.starts_with("type=sync_aliases/"))
        .flat_map(|(_, lines)| lines.iter())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls until every id in `ids` is in the bucket (or `timeout` passes);
/// returns how many are missing.
pub fn wait_for_ids(setup: &Setup, ids: &[String], timeout: std::time::Duration) -> usize {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let counts = event_counts(&setup.objects());
        let missing = ids.iter().filter(|id| !counts.contains_key(*id)).count();
        if missing == 0 || std::time::Instant::now() > deadline {
            return missing;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Whether `key` (relative to the prefix) has the contract's shape:
/// `type=events|sync_aliases/year=YYYY/month=MM/day=DD/hour=HH/NAME` or
/// `type=segment/NAME`, with NAME `{13 digits}-{16 hex}-{worker}.jsonl.gz`.
pub fn is_contract_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let hourly = |p: &[&str]| {
        p.len() == 5
            && p[0].strip_prefix("year=").is_some_and(|v| digits(v, 4))
            && p[1].strip_prefix("month=").is_some_and(|v| digits(v, 2))
            && p[2].strip_prefix("day=").is_some_and(|v| digits(v, 2))
            && p[3].strip_prefix("hour=").is_some_and(|v| digits(v, 2))
    };
    let dir_ok = match parts.first().copied() {
        Some("type=events") | Some("type=sync_aliases") => hourly(&parts[1..]),
        Some("type=segment") => parts.len() == 2,
        _ => false,
    };
    let Some(name) = parts.last().and_then(|n| n.strip_suffix(".jsonl.gz")) else {
        return false;
    };
    let mut pieces = name.splitn(3, '-');
    let (ts, hash, worker) = match (pieces.next(), pieces.next(), pieces.next()) {
        (Some(t), Some(h), Some(w)) => (t, h, w),
        _ => return false,
    };
    dir_ok
        && digits(ts, 13)
        && hash.len() == 16
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && !worker.is_empty()
        && worker
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Every file under `root` (what a directory reader or `aws s3 sync`
/// sees: no listing API hides partial writes here), relative to it.
pub fn files_under(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// For a local-directory sink: asserts the bucket tree holds nothing but
/// complete objects with contract keys (no staging or partial files).
pub fn assert_only_contract_objects(setup: &Setup) {
    if !matches!(setup.backend, super::Backend::Local) {
        return;
    }
    let root = setup.dir.path().join("bucket");
    let strays: Vec<String> = files_under(&root)
        .into_iter()
        .filter(|k| !is_contract_key(k))
        .collect();
    assert!(
        strays.is_empty(),
        "the local bucket holds files that are not contract objects: {strays:?}"
    );
}

/// Reads every object back, checks every events key and line, and asserts
/// that each acknowledged id is there exactly once and that no id (even an
/// unacknowledged one, whose request died with the server) is there twice.
pub fn assert_exactly_once(setup: &Setup, acked: &[String]) -> Delivery {
    assert_only_contract_objects(setup);
    let objects = setup.objects();
    for (key, lines) in objects
        .iter()
        .filter(|(k, _)| k.starts_with("type=events/"))
    {
        check_key(key, lines);
        lines.iter().for_each(|l| check_line(l));
    }
    let counts: HashMap<String, usize> = event_counts(&objects);
    let acked_set: HashSet<&String> = acked.iter().collect();
    assert_eq!(
        acked_set.len(),
        acked.len(),
        "the server gave an event id twice"
    );
    let missing: Vec<&&String> = acked_set
        .iter()
        .filter(|id| !counts.contains_key(**id))
        .collect();
    let duplicated: Vec<(&String, &usize)> = counts.iter().filter(|(_, &n)| n > 1).collect();
    let delivery = Delivery {
        acknowledged: acked.len(),
        found: counts.len(),
        missing: missing.len(),
        duplicated: duplicated.len(),
        objects: objects.len(),
    };
    assert!(
        missing.is_empty() && duplicated.is_empty(),
        "{:?}: {delivery:?}; missing e.g. {:?}, duplicated e.g. {:?}",
        setup.backend,
        missing.iter().take(3).collect::<Vec<_>>(),
        duplicated.iter().take(3).collect::<Vec<_>>()
    );
    delivery
}
