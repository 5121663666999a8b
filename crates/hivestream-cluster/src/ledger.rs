//! The seal ledger of one log partition, in the replicated KV bucket
//! `HS_LEDGER`, every write a compare-and-set.
//!
//! The value of key `ev.07` is the whole ledger state as JSON:
//!
//! ```json
//! {"epoch":12,"owner":"n2-4f1c","checkpoint":184467,"next_id":9912,
//!  "seals":[{"id":9907,"data_type":"events","hour":491234,"start":184467,
//!            "end":185901,"key":"type=events/…","records":1203,"done":false}]}
//! ```
//!
//! Taking a partition over is a write too: load the entry, bump `epoch`,
//! name the new owner, and write it with the loaded revision. From then on
//! every seal and checkpoint is written with the revision of the previous
//! write, so the revision is the fencing token: once another worker has
//! taken over, the old owner's next write fails with a wrong revision and
//! it stops ([`LedgerError::Fenced`]) before sealing, checkpointing or
//! uploading anything the new owner did not decide. Done marks are kept in
//! memory and written with the next seal or checkpoint (losing one only
//! costs a re-upload of identical bytes).
//!
//! A write that times out is ambiguous (it may have been stored): the
//! ledger reports it unavailable and the router restarts, which takes the
//! partition over again from whatever is stored.

use std::time::Duration;

use async_nats::jetstream::kv::{self, UpdateErrorKind};
use hivestream_core::log::Pos;
use hivestream_core::route::ledger::{LedgerError, LedgerState, LedgerStore, Seal};
use serde::{Deserialize, Serialize};

/// How long one KV write may take before the ledger gives up on it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
struct SealEntry {
    #[serde(flatten)]
    seal: Seal,
    done: bool,
}

/// The stored JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    epoch: u64,
    owner: String,
    checkpoint: Pos,
    next_id: u64,
    seals: Vec<SealEntry>,
}

impl Stored {
    fn from_state(state: &LedgerState, epoch: u64, owner: &str) -> Self {
        Stored {
            epoch,
            owner: owner.to_string(),
            checkpoint: state.checkpoint,
            next_id: state.next_id,
            seals: state
                .seals
                .values()
                .map(|(seal, done)| SealEntry {
                    seal: seal.clone(),
                    done: *done,
                })
                .collect(),
        }
    }

    /// Parses the value stored under `key`; a value that is not a ledger
    /// (an unknown data type in a seal, say) is [`LedgerError::Corrupt`].
    fn decode(key: &str, value: &[u8]) -> Result<Self, LedgerError> {
        serde_json::from_slice(value)
            .map_err(|e| LedgerError::Corrupt(format!("ledger {key}: {e}")))
    }

    fn into_state(self) -> LedgerState {
        LedgerState {
            checkpoint: self.checkpoint,
            next_id: self.next_id,
            seals: self
                .seals
                .into_iter()
                .map(|e| (e.seal.id, (e.seal, e.done)))
                .collect(),
        }
    }
}

/// A partition's ledger held by this worker.
pub struct KvLedger {
    kv: kv::Store,
    key: String,
    owner: String,
    epoch: u64,
    revision: u64,
    state: LedgerState,
    rt: tokio::runtime::Handle,
}

fn unavailable(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Unavailable(e.to_string())
}

impl KvLedger {
    /// Takes partition `key` over for `owner`: loads the stored state and
    /// writes it back with a new epoch. Blocks the calling (non-async)
    /// thread on `rt`.
    pub fn take_over(
        kv: kv::Store,
        key: &str,
        owner: &str,
        rt: &tokio::runtime::Handle,
    ) -> Result<Self, LedgerError> {
        rt.block_on(Self::take_over_async(kv, key, owner, rt.clone()))
    }

    async fn take_over_async(
        kv: kv::Store,
        key: &str,
        owner: &str,
        rt: tokio::runtime::Handle,
    ) -> Result<Self, LedgerError> {
        loop {
            let entry = kv.entry(key).await.map_err(unavailable)?;
            let (stored, revision) = match entry {
                Some(e) if e.operation == kv::Operation::Put => {
                    (Stored::decode(key, &e.value)?, e.revision)
                }
                Some(e) => (Stored::default(), e.revision),
                None => (Stored::default(), 0),
            };
            let mut ledger = KvLedger {
                epoch: stored.epoch + 1,
                state: stored.into_state(),
                kv: kv.clone(),
                key: key.to_string(),
                owner: owner.to_string(),
                revision,
                rt: rt.clone(),
            };
            match ledger.write_async().await {
                Ok(()) => {
                    tracing::info!(
                        key,
                        owner,
                        epoch = ledger.epoch,
                        "ledger: partition taken over"
                    );
                    return Ok(ledger);
                }
                // Someone wrote in between (a zombie's last seal, say): load again.
                Err(LedgerError::Fenced(_)) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The epoch this owner wrote at takeover.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    async fn write_async(&mut self) -> Result<(), LedgerError> {
        let stored = Stored::from_state(&self.state, self.epoch, &self.owner);
        let value = serde_json::to_vec(&stored).expect("ledger state serialises");
        let write = async {
            if self.revision == 0 {
                self.kv
                    .create(&self.key, value.into())
                    .await
                    .map_err(|e| match e.kind() {
                        kv::CreateErrorKind::AlreadyExists => LedgerError::Fenced(format!(
                            "ledger {}: created by another owner",
                            self.key
                        )),
                        _ => unavailable(e),
                    })
            } else {
                self.kv
                    .update(&self.key, value.into(), self.revision)
                    .await
                    .map_err(|e| match e.kind() {
                        UpdateErrorKind::WrongLastRevision => LedgerError::Fenced(format!(
                            "ledger {} was written by another owner since revision {}",
                            self.key, self.revision
                        )),
                        _ => unavailable(e),
                    })
            }
        };
        let revision = tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| unavailable("ledger write timed out"))??;
        self.revision = revision;
        Ok(())
    }

    fn write(&mut self) -> Result<(), LedgerError> {
        let rt = self.rt.clone();
        rt.block_on(self.write_async())
    }
}

impl LedgerStore for KvLedger {
    fn state(&self) -> &LedgerState {
        &self.state
    }

    fn next_id(&mut self) -> u64 {
        self.state.take_id()
    }

    fn seal(&mut self, seal: Seal) -> Result<(), LedgerError> {
        let before = self.state.clone();
        self.state
            .apply(hivestream_core::route::ledger::Entry::Seal(seal));
        self.write().inspect_err(|_| self.state = before)
    }

    fn done(&mut self, ids: &[u64]) -> Result<(), LedgerError> {
        for &id in ids {
            self.state
                .apply(hivestream_core::route::ledger::Entry::Done(id));
        }
        Ok(())
    }

    fn checkpoint(&mut self, pos: Pos) -> Result<(), LedgerError> {
        let before = self.state.clone();
        self.state
            .apply(hivestream_core::route::ledger::Entry::Checkpoint {
                lsn: pos,
                next_id: self.state.next_id,
            });
        self.write().inspect_err(|_| self.state = before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hivestream_core::log::record::DataType;

    /// A stored ledger exactly as the version that kept `Seal.data_type`
    /// as a `String` wrote it.
    const V1_STORED: &str = concat!(
        r#"{"epoch":12,"owner":"n2-4f1c","checkpoint":184467,"next_id":9912,"seals":["#,
        r#"{"id":9907,"data_type":"events","hour":491234,"start":184467,"end":185901,"#,
        r#""key":"type=events/year=2026/month=01/day=15/hour=02/1768442460000-3f2a9c1e-n2.jsonl.gz","#,
        r#""records":1203,"done":false},"#,
        r#"{"id":9908,"data_type":"sync_aliases","hour":491234,"start":184470,"end":185850,"#,
        r#""key":"type=sync_aliases/year=2026/month=01/day=15/hour=02/1768442460000-9b01d4aa-n2.jsonl.gz","#,
        r#""records":12,"done":false},"#,
        r#"{"id":9909,"data_type":"segment","hour":null,"start":185000,"end":185000,"#,
        r#""key":"type=segment/1768442470000-77aa01bc-n2.jsonl.gz","records":1,"done":true}]}"#,
    );

    fn seal(id: u64, data_type: DataType, span: (u64, u64), key: &str, records: u64) -> Seal {
        Seal {
            id,
            data_type,
            hour: data_type.is_hourly().then_some(491_234),
            start: span.0,
            end: span.1,
            key: key.to_string(),
            records,
        }
    }

    fn v1_seals() -> [Seal; 3] {
        let dir = "year=2026/month=01/day=15/hour=02";
        [
            seal(
                9907,
                DataType::Events,
                (184_467, 185_901),
                &format!("type=events/{dir}/1768442460000-3f2a9c1e-n2.jsonl.gz"),
                1203,
            ),
            seal(
                9908,
                DataType::SyncAliases,
                (184_470, 185_850),
                &format!("type=sync_aliases/{dir}/1768442460000-9b01d4aa-n2.jsonl.gz"),
                12,
            ),
            seal(
                9909,
                DataType::Segment,
                (185_000, 185_000),
                "type=segment/1768442470000-77aa01bc-n2.jsonl.gz",
                1,
            ),
        ]
    }

    #[test]
    fn reads_a_ledger_written_by_an_earlier_version() {
        let stored = Stored::decode("ev.07", V1_STORED.as_bytes()).unwrap();
        assert_eq!((stored.epoch, stored.owner.as_str()), (12, "n2-4f1c"));
        let state = stored.into_state();
        assert_eq!((state.checkpoint, state.next_id), (184_467, 9912));
        let [s9907, s9908, s9909] = v1_seals();
        let seals: Vec<_> = state.seals.values().cloned().collect();
        assert_eq!(seals, vec![(s9907, false), (s9908, false), (s9909, true)]);
        // Written back, it is the same bytes.
        let again = serde_json::to_string(&Stored::from_state(&state, 12, "n2-4f1c")).unwrap();
        assert_eq!(again, V1_STORED);
    }

    #[test]
    fn an_unknown_data_type_is_a_damaged_ledger() {
        let stored = V1_STORED.replace(r#""data_type":"segment""#, r#""data_type":"clicks""#);
        match Stored::decode("ev.07", stored.as_bytes()) {
            Err(LedgerError::Corrupt(why)) => {
                assert!(why.starts_with("ledger ev.07: "), "{why}");
                assert!(why.contains("unknown data type \"clicks\""), "{why}");
            }
            other => panic!("expected a damaged ledger, got {other:?}"),
        }
    }
}
