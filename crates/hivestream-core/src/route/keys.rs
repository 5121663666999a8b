//! Partitions and object keys (contract §1).
//!
//! `{prefix}type={type}/year=YYYY/month=MM/day=DD/hour=HH/{ts}-{hash}-{worker}.jsonl.gz`
//! for hourly types and `{prefix}type=segment/{ts}-{hash}-{worker}.jsonl.gz`
//! for snapshots. Every part is either produced here from numbers or checked
//! against a strict character set, so no input can put `..`, `//` or other
//! path tricks into a key.

use std::fmt::Write as _;

use thiserror::Error;

use crate::clock::{civil, HOUR_MS};
use crate::log::record::DataType;

/// Where a record's file goes: a data type and, for hourly types, the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub data_type: DataType,
    /// Hours since the Unix epoch (UTC); `None` for unpartitioned types.
    pub hour: Option<i64>,
}

impl Partition {
    /// The partition of a record of `data_type` with the given `time`.
    pub fn of(data_type: DataType, time_ms: i64) -> Self {
        let hour = data_type.is_hourly().then(|| time_ms.div_euclid(HOUR_MS));
        Self { data_type, hour }
    }

    /// Appends this partition's key prefix (after the configured prefix).
    pub fn write_dir(&self, out: &mut String) {
        let _ = write!(out, "type={}/", self.data_type.name());
        if let Some(hour) = self.hour {
            let c = civil(hour * HOUR_MS);
            let _ = write!(
                out,
                "year={:04}/month={:02}/day={:02}/hour={:02}/",
                c.year, c.month, c.day, c.hour
            );
        }
    }
}

/// Invalid key parts in the configuration.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("worker_id {0:?} must be 1 to 64 characters of A-Z, a-z, 0-9 and _")]
    WorkerId(String),
    #[error("prefix {0:?} must not contain empty, '.' or '..' segments or characters other than A-Z a-z 0-9 ! - _ . * ' ( ) = /")]
    Prefix(String),
}

/// A validated worker id (`[A-Za-z0-9_]{1,64}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerId(String);

impl WorkerId {
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(KeyError::WorkerId(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Normalises a configured prefix: no leading `/`, and a trailing `/`
/// unless empty. Rejects segments that are empty, `.` or `..`, and
/// characters outside S3's "safe" set.
pub fn normalize_prefix(raw: &str) -> Result<String, KeyError> {
    let trimmed = raw.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()=".contains(c);
    let ok = trimmed
        .split('/')
        .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && seg.chars().all(safe));
    if !ok {
        return Err(KeyError::Prefix(raw.to_string()));
    }
    Ok(format!("{trimmed}/"))
}

/// Builds the full object key of a file.
pub fn object_key(
    prefix: &str,
    partition: &Partition,
    first_time_ms: i64,
    content_hash: u64,
    worker: &WorkerId,
) -> String {
    let mut key = String::with_capacity(prefix.len() + 96);
    key.push_str(prefix);
    partition.write_dir(&mut key);
    let _ = write!(
        key,
        "{:013}-{:016x}-{}.jsonl.gz",
        first_time_ms.max(0),
        content_hash,
        worker.as_str()
    );
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hourly_key_layout() {
        let p = Partition::of(DataType::Events, 1_764_057_600_123 + 5 * HOUR_MS);
        let w = WorkerId::parse("w_1").unwrap();
        let key = object_key("raw/", &p, 1_764_075_600_123, 0xabc, &w);
        assert_eq!(
            key,
            "raw/type=events/year=2025/month=11/day=25/hour=13/1764075600123-0000000000000abc-w_1.jsonl.gz"
        );
    }

    #[test]
    fn segment_key_is_unpartitioned() {
        let p = Partition::of(DataType::Segment, 1_764_057_600_000);
        let key = object_key(
            "",
            &p,
            1_764_057_600_000,
            u64::MAX,
            &WorkerId::parse("a").unwrap(),
        );
        assert_eq!(
            key,
            "type=segment/1764057600000-ffffffffffffffff-a.jsonl.gz"
        );
    }

    #[test]
    fn sync_aliases_use_their_own_tree() {
        let p = Partition::of(DataType::SyncAliases, 0);
        let mut dir = String::new();
        p.write_dir(&mut dir);
        assert_eq!(dir, "type=sync_aliases/year=1970/month=01/day=01/hour=00/");
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert_eq!(normalize_prefix("/").unwrap(), "");
        assert_eq!(normalize_prefix("a/b").unwrap(), "a/b/");
        assert_eq!(normalize_prefix("/a/b/").unwrap(), "a/b/");
        for bad in ["a//b", "../x", "a/./b", "a b", "a\\b", "a/%2e%2e", "é"] {
            assert!(normalize_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn worker_ids() {
        assert!(WorkerId::parse("abc_DEF_09").is_ok());
        assert!(WorkerId::parse(&"x".repeat(64)).is_ok());
        for bad in ["", "a-b", "a/b", "..", &"x".repeat(65)] {
            assert!(WorkerId::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn hour_partition_contains_time(t in 0i64..4_102_444_800_000) {
            let p = Partition::of(DataType::Events, t);
            let hour = p.hour.unwrap();
            prop_assert!(hour * HOUR_MS <= t && t < (hour + 1) * HOUR_MS);
            let c = civil(t);
            let mut dir = String::new();
            p.write_dir(&mut dir);
            let expected = format!(
                "type=events/year={:04}/month={:02}/day={:02}/hour={:02}/",
                c.year, c.month, c.day, c.hour
            );
            prop_assert_eq!(dir, expected);
        }

        #[test]
        fn keys_never_contain_dot_segments(prefix in "[a-z./]{0,12}", t in 0i64..i64::MAX / 4, h in any::<u64>()) {
            if let Ok(prefix) = normalize_prefix(&prefix) {
                let key = object_key(&prefix, &Partition::of(DataType::Events, t), t, h, &WorkerId::parse("w").unwrap());
                prop_assert!(!key.split('/').any(|s| s.is_empty() || s == "." || s == ".."));
            }
        }
    }
}
