//! hivestream's core: collect events over HTTP, make them durable in a WAL,
//! and route them into hourly Hive-partitioned gzip JSONL objects in S3 or a
//! local directory, exactly once.
//!
//! The source tree follows the data, one folder per stage:
//!
//! ```text
//!  collect ──▶ log ──▶ route ──▶ sink
//!  (HTTP,      (WAL,    (partition, seal,   (S3 or a local
//!   validate)   group    gzip, ledger,       directory)
//!               commit)  upload)
//!                  │
//!                  ▼
//!                state (alias index, cohorts)
//! ```
//!
//! [`collect::server`] validates ([`collect::event`]) and encodes records
//! ([`log::record`]) → [`log::ingest`] group-commits them to the WAL →
//! [`route`] partitions ([`route::keys`]), compresses and seals files, then
//! uploads them through [`sink`] → the checkpoint lets the WAL be reclaimed.

pub mod backoff;
pub mod clock;
pub mod collect;
pub mod config;
pub mod conformance;
pub mod corpus;
pub mod data_format;
pub mod disk;
pub mod doctor;
pub mod failpoint;
pub mod log;
pub mod metrics;
pub mod route;
pub mod secret;
pub mod serve;
pub mod signal;
pub mod sink;
pub mod snapshot;
pub mod state;
pub mod tables;
