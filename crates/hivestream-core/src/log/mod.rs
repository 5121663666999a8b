//! Log: records ([`record`]) made durable before the client's 2xx. In
//! `serve` that is the local WAL, written by the group committer
//! ([`ingest`]), which also decides identity in log order.

pub mod ingest;
pub mod record;
