//! Every name the cluster uses in JetStream, in one place: streams,
//! subjects, KV buckets and keys, and how a request picks its partition.
//! With the default `cluster_name` `hs`:
//!
//! | thing | name |
//! |---|---|
//! | events log (R3, `discard: new`) | stream `HS_EV`, subjects `hs.ev.00` … `hs.ev.{N-1}` |
//! | identity log (every alias link) | stream `HS_ID`, subject `hs.id` |
//! | seal ledgers, one key per log partition | KV `HS_LEDGER`, keys `ev.07`, `id` |
//! | leases (`max_age` = lease TTL) | KV `HS_LEASE`, keys `route.ev.07`, `route.id`, `identity`, `snapshot`, `member.{node}` |
//! | cohorts | KV `HS_COHORTS`, keys `c.{uuid}`, `n.{name hash}`, `meta.code` |
//! | client event ids routed (dedup window) | KV `HS_DEDUP`, keys `e.{uuid}` |
//! | identity service (request/reply) | subject `hs.svc.identity` |

/// The lease of the identity leader.
pub const IDENTITY_LEASE: &str = "identity";
/// The lease of the `segment` snapshot writer.
pub const SNAPSHOT_LEASE: &str = "snapshot";
/// The ledger key of the `segment` snapshot writer's progress.
pub const SNAPSHOT_KEY: &str = "snapshot";

/// The names of one deployment's streams, buckets and subjects. Every name
/// starts with the configured `cluster_name` (default `hs`), so several
/// deployments (or test runs) can share one NATS cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Lower case, `[a-z0-9_]`: the subject prefix.
    ns: String,
}

impl Names {
    /// Names under `cluster_name` (validated by the configuration).
    pub fn new(cluster_name: &str) -> Self {
        Self {
            ns: cluster_name.to_ascii_lowercase(),
        }
    }

    fn upper(&self, what: &str) -> String {
        format!("{}_{what}", self.ns.to_ascii_uppercase())
    }

    /// The events stream (`HS_EV`).
    pub fn events_stream(&self) -> String {
        self.upper("EV")
    }

    /// Every events subject (`hs.ev.*`).
    pub fn events_wildcard(&self) -> String {
        format!("{}.ev.*", self.ns)
    }

    /// The subject of events partition `p` (`hs.ev.07`).
    pub fn events_subject(&self, p: u32) -> String {
        format!("{}.ev.{p:02}", self.ns)
    }

    /// The identity stream (`HS_ID`).
    pub fn identity_stream(&self) -> String {
        self.upper("ID")
    }

    /// The identity stream's only subject (`hs.id`).
    pub fn identity_subject(&self) -> String {
        format!("{}.id", self.ns)
    }

    /// Seal ledgers (`HS_LEDGER`).
    pub fn ledger_bucket(&self) -> String {
        self.upper("LEDGER")
    }

    /// Leases and membership (`HS_LEASE`).
    pub fn lease_bucket(&self) -> String {
        self.upper("LEASE")
    }

    /// Client event ids already routed (`HS_DEDUP`).
    pub fn dedup_bucket(&self) -> String {
        self.upper("DEDUP")
    }

    /// Cohort metadata (`HS_COHORTS`).
    pub fn cohort_bucket(&self) -> String {
        self.upper("COHORTS")
    }

    /// Where collectors ask the identity leader (`hs.svc.identity`).
    pub fn identity_service(&self) -> String {
        format!("{}.svc.identity", self.ns)
    }

    /// The stream and subject partition `p` is read from.
    pub fn stream_subject(&self, p: LogPartition) -> (String, String) {
        match p {
            LogPartition::Events(i) => (self.events_stream(), self.events_subject(i)),
            LogPartition::Identity => (self.identity_stream(), self.identity_subject()),
        }
    }
}

/// A log partition routed by one worker at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogPartition {
    /// Partition `p` of the events stream.
    Events(u32),
    /// The identity stream (exported as `sync_aliases`).
    Identity,
}

impl LogPartition {
    /// Every partition of a cluster with `n` events partitions.
    pub fn all(n: u32) -> Vec<LogPartition> {
        let mut out: Vec<LogPartition> = (0..n).map(LogPartition::Events).collect();
        out.push(LogPartition::Identity);
        out
    }

    /// Its ledger key (`ev.07`, `id`).
    pub fn ledger_key(self) -> String {
        match self {
            LogPartition::Events(p) => format!("ev.{p:02}"),
            LogPartition::Identity => "id".into(),
        }
    }

    /// The name of the lease on routing it.
    pub fn lease(self) -> String {
        format!("route.{}", self.ledger_key())
    }

    /// The `{worker_id}` part of its object keys: whoever rebuilds a sealed
    /// file writes the same key.
    pub fn worker_id(self) -> String {
        match self {
            LogPartition::Events(p) => format!("p{p:02}"),
            LogPartition::Identity => "pid".into(),
        }
    }

    /// Whether routing it may purge what is below its checkpoint. The
    /// identity stream is kept: the alias index is derived from it.
    pub fn purges(self) -> bool {
        matches!(self, LogPartition::Events(_))
    }
}

/// FNV-1a, 32 bits: the partition function nats-server uses for subject
/// mappings, so a stream transform could route third-party publishers the
/// same way.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The events partition of a request: derived from its id, so every retry
/// of the request goes to the same partition (dedup is per stream, and a
/// retry must meet its first attempt).
pub fn partition_of(request_id: &str, partitions: u32) -> u32 {
    fnv1a(request_id.as_bytes()) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn partitions_have_stable_names() {
        let all = LogPartition::all(16);
        assert_eq!(all.len(), 17);
        assert_eq!(all[7].ledger_key(), "ev.07");
        assert_eq!(all[7].worker_id(), "p07");
        assert_eq!(all[7].lease(), "route.ev.07");
        let names = Names::new("hs");
        assert_eq!(
            names.stream_subject(all[16]),
            ("HS_ID".to_string(), "hs.id".to_string())
        );
        assert_eq!(names.stream_subject(all[7]).1, "hs.ev.07");
        assert_eq!(Names::new("t1").ledger_bucket(), "T1_LEDGER");
        assert!(!LogPartition::Identity.purges());
        let p = partition_of("5f0c1f5e-0a4b-4b7b-9a4e-1234567890ab", 16);
        assert_eq!(p, partition_of("5f0c1f5e-0a4b-4b7b-9a4e-1234567890ab", 16));
        assert!(p < 16);
    }
}
