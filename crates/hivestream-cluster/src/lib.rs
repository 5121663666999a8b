//! hivestream's cluster mode on NATS JetStream: any number of identical
//! nodes behind a load balancer, on a replicated log that is an existing,
//! trusted distributed engine.
//!
//! ```text
//!            HTTP                       NATS JetStream cluster (R3, sync always)
//!  clients ──────▶ collect ──publish──▶ HS_EV  hs.ev.00 … hs.ev.15 ──┐
//!                  (stateless)          HS_ID  hs.id (alias links)  ──┤ ordered consumers
//!                     │  request/reply                                │
//!                     └──────────────▶ identity leader (lease)       ▼
//!                                        route workers: one Router per log partition
//!                                        (lease + CAS ledger in HS_LEDGER) ──▶ S3
//! ```
//!
//! Everything between the log and the bucket is `hivestream-core`'s single
//! pipeline (router, file builder, keys, deflate, uploads); this crate only
//! puts JetStream behind its seams: [`log`] (the `LogReader` and publishes),
//! [`ledger`] (`LedgerStore` with compare-and-set), [`lease`] (`Leases`),
//! and runs the roles: the stateless collector, the router worker, the
//! identity leader and the snapshot writer.

pub mod assign;
pub mod cohorts;
pub mod collect;
pub mod dedup;
pub mod identity;
pub mod lease;
pub mod ledger;
pub mod log;
pub mod names;
pub mod node;
pub mod setup;
pub mod worker;
