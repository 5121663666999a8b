//! hivestream's core: collect events over HTTP, make them durable in a WAL,
//! and route them into hourly Hive-partitioned gzip JSONL objects in S3 or a
//! local directory, exactly once.
//!
//! Data flow: [`server`] validates ([`event`]) and encodes records
//! ([`record`]) → [`ingest`] group-commits them to the WAL → [`router`]
//! partitions ([`keys`]), compresses and seals files, then uploads them
//! through [`sink`] → the checkpoint lets the WAL be reclaimed.

pub mod api_error;
pub mod clock;
pub mod cohorts;
pub mod config;
pub mod corpus;
pub mod disk;
pub mod doctor;
pub mod event;
pub mod failpoint;
pub mod identity;
pub mod index_db;
pub mod ingest;
pub mod json_scan;
pub mod keys;
pub mod metrics;
pub mod record;
pub mod router;
pub mod serve;
pub mod server;
pub mod shared;
pub mod sink;
