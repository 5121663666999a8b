//! State derived from the log or kept beside it: the alias index
//! ([`identity`]), cohorts and their `segment` snapshots ([`cohorts`]), and
//! the reopenable redb database both live in ([`index_db`]), and the
//! leases that give a job one doer at a time ([`lease`]).

pub mod cohorts;
pub mod dedup;
pub mod identity;
pub mod index_db;
pub mod lease;
pub mod snapshot_rule;
