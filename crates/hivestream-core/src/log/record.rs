//! Records as they travel through the WAL, and the data types they belong to.
//!
//! A WAL payload is `version u8 (=1) | data type u8 | time_ms i64 LE | line`,
//! where `line` is the record's final JSON object, exactly the bytes that go
//! into the output file (without the trailing `\n`). Encoding the final line
//! at ingest means the router never parses or re-serialises JSON: it copies.
//!
//! A [`DataType`] is stored elsewhere (seals in the ledgers) by its
//! [`DataType::name`], the same string as in object keys.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

const VERSION: u8 = 1;
/// Bytes before the JSON line.
pub const RECORD_HEADER_LEN: usize = 10;

/// The three exported data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataType {
    /// Events, partitioned by the hour of their `time`.
    Events,
    /// Alias syncs, partitioned by the hour of their `time`.
    SyncAliases,
    /// Cohort metadata snapshots; one record is a whole file.
    Segment,
}

impl DataType {
    pub const ALL: [DataType; 3] = [DataType::Events, DataType::SyncAliases, DataType::Segment];

    /// The name used in object keys (`type={name}`).
    pub fn name(self) -> &'static str {
        match self {
            DataType::Events => "events",
            DataType::SyncAliases => "sync_aliases",
            DataType::Segment => "segment",
        }
    }

    /// Whether objects of this type go into hourly partitions.
    pub fn is_hourly(self) -> bool {
        !matches!(self, DataType::Segment)
    }

    fn code(self) -> u8 {
        match self {
            DataType::Events => 0,
            DataType::SyncAliases => 1,
            DataType::Segment => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The data type [`DataType::name`] calls `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Serialised as its [`DataType::name`] (`"events"`, ...).
impl Serialize for DataType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Read from its [`DataType::name`]; any other string is an error that
/// names it and the known types.
impl<'de> Deserialize<'de> for DataType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        DataType::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = DataType::ALL.iter().map(|t| t.name()).collect();
            D::Error::custom(format!(
                "unknown data type {name:?} (known: {})",
                known.join(", ")
            ))
        })
    }
}

/// A record read back from the WAL, borrowing its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub data_type: DataType,
    pub time_ms: i64,
    pub line: &'a [u8],
}

/// Why a WAL payload is not a record.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record payload of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("unknown record version {0}")]
    Version(u8),
    #[error("unknown data type code {0}")]
    DataType(u8),
}

impl<'a> Record<'a> {
    /// Appends this record's WAL payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(RECORD_HEADER_LEN + self.line.len());
        out.push(VERSION);
        out.push(self.data_type.code());
        out.extend_from_slice(&self.time_ms.to_le_bytes());
        out.extend_from_slice(self.line);
    }

    /// Decodes a WAL payload.
    pub fn decode(payload: &'a [u8]) -> Result<Self, RecordError> {
        if payload.len() < RECORD_HEADER_LEN {
            return Err(RecordError::Short(payload.len()));
        }
        if payload[0] != VERSION {
            return Err(RecordError::Version(payload[0]));
        }
        let data_type = DataType::from_code(payload[1]).ok_or(RecordError::DataType(payload[1]))?;
        let time_ms = i64::from_le_bytes(payload[2..10].try_into().expect("8 bytes"));
        Ok(Record {
            data_type,
            time_ms,
            line: &payload[RECORD_HEADER_LEN..],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_every_type() {
        for data_type in DataType::ALL {
            let rec = Record {
                data_type,
                time_ms: -5,
                line: b"{\"a\":1}",
            };
            let mut buf = Vec::new();
            rec.encode(&mut buf);
            assert_eq!(Record::decode(&buf), Ok(rec));
        }
    }

    #[test]
    fn data_types_serialise_as_their_names() {
        for t in DataType::ALL {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.name()));
            assert_eq!(serde_json::from_str::<DataType>(&json).unwrap(), t);
            assert_eq!(DataType::from_name(t.name()), Some(t));
        }
        let e = serde_json::from_str::<DataType>("\"bogus\"").unwrap_err();
        assert!(e.to_string().contains("unknown data type \"bogus\""), "{e}");
        assert!(serde_json::from_str::<DataType>("7").is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Record::decode(&buf);
        }
    }
}
