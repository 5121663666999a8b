//! Cohorts in the replicated KV bucket `HS_COHORTS`, served by every
//! collector, and the `segment` snapshot writer (lease `snapshot`).
//!
//! Keys: `c.{uuid}` → the cohort's JSON; `n.{xxh3-128 of the name}` → the
//! id holding that name (names are unique among cohorts); `meta.code`
//! → the last code given out; `meta.workspace` → the workspace id made by
//! the first node that needed one (unless `workspace_id` is set). Every write is a compare-and-set, so
//! concurrent changes through different collectors serialise. A crash
//! between reserving a name and writing the cohort leaves a reservation
//! whose cohort does not exist; the next create of that name takes it over.
//!
//! The bucket's stream sequence is the cohorts' generation: any change
//! moves it. The snapshot writer keeps its progress in `HS_LEDGER` under
//! `snapshot` (outside the bucket) and decides by the rule `serve` uses too
//! (`hivestream_core::state::snapshot_rule`): when the generation moved and
//! the content differs from the last snapshot's, or when
//! `segment_snapshot_interval` passed, it publishes one `segment` record
//! into the events log:
//!
//! ```text
//!  1. ledger: {pending: {gen, at_ms}}          (CAS)
//!  2. publish segment record, Nats-Msg-Id = segment-{gen}-{at_ms}
//!  3. ledger: {covered: gen, at_ms}            (CAS)
//! ```
//!
//! A writer that dies between 1 and 3 is replaced by one that finds the
//! pending snapshot and publishes it again under the same message id, so
//! the stream stores it once.

use std::time::Duration;

use async_nats::jetstream::context::GetStreamError;
use async_nats::jetstream::kv::{self, CreateErrorKind, DeleteErrorKind, UpdateErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::InfoError;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use hivestream_core::backoff::Backoff;
use hivestream_core::collect::backend::CohortApi;
use hivestream_core::log::record::{DataType, Record};
use hivestream_core::state::cohorts::{snapshot_lines, Cohort, CohortError, CohortInput};
use hivestream_core::state::lease::Lease;
use hivestream_core::state::snapshot_rule::{
    content_hash, decide, needs_content, SnapshotProgress, SnapshotStep,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;
use uuid::Uuid;

use crate::log::{encode_message, publish, PublishFailure};
use crate::names::{partition_of, SNAPSHOT_KEY, SNAPSHOT_LEASE};
use crate::setup::Cluster;
use crate::worker::TaskJob;

fn db(e: impl std::fmt::Display) -> CohortError {
    CohortError::Db(e.to_string())
}

fn name_key(name: &str) -> String {
    format!("n.{:032x}", xxhash_rust::xxh3::xxh3_128(name.as_bytes()))
}

fn cohort_key(id: &Uuid) -> String {
    format!("c.{}", id.simple())
}

const WORKSPACE_KEY: &str = "meta.workspace";

/// The configured workspace id, or the one every node of the cluster
/// shares: read from the bucket, or made and stored create-only by the
/// first node that asks (a node that loses that race reads the winner's).
pub async fn workspace_id(kv: &kv::Store, configured: Option<Uuid>) -> Result<Uuid, CohortError> {
    if let Some(id) = configured {
        return Ok(id);
    }
    // A cluster just started may not have elected the bucket's leader yet:
    // retry for a while before failing the start.
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let deadline = std::time::Instant::now() + WORKSPACE_PATIENCE;
    loop {
        match read_or_make_workspace(kv).await {
            Ok(Some(id)) => return Ok(id),
            Ok(None) => continue, // another node made it first: read it
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "workspace id: cohort bucket not ready; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How long a node waits for the cohort bucket at start-up.
const WORKSPACE_PATIENCE: Duration = Duration::from_secs(30);

/// The stored workspace id, or a new one stored create-only; `None` when
/// another node stored one in between.
async fn read_or_make_workspace(kv: &kv::Store) -> Result<Option<Uuid>, CohortError> {
    if let Some(e) = kv.entry(WORKSPACE_KEY).await.map_err(db)? {
        if e.operation == kv::Operation::Put {
            let text = String::from_utf8_lossy(&e.value);
            return Uuid::try_parse(&text)
                .map(Some)
                .map_err(|_| db(format!("{WORKSPACE_KEY} {text:?} is not a UUID")));
        }
    }
    let id = Uuid::new_v4();
    match kv.create(WORKSPACE_KEY, id.to_string().into()).await {
        Ok(_) => Ok(Some(id)),
        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(db(e)),
    }
}

/// Cohort CRUD on the KV bucket.
#[derive(Clone)]
pub struct KvCohorts {
    kv: kv::Store,
    workspace: Uuid,
}

impl KvCohorts {
    /// The cohorts in `kv`, of `workspace` (see [`workspace_id`]).
    pub fn new(kv: kv::Store, workspace: Uuid) -> Self {
        Self { kv, workspace }
    }

    async fn read(&self, id: &Uuid) -> Result<Option<(Cohort, u64)>, CohortError> {
        match self.kv.entry(cohort_key(id)).await.map_err(db)? {
            Some(e) if e.operation == kv::Operation::Put => {
                let c = Cohort::from_stored(&e.value, self.workspace).map_err(db)?;
                Ok(Some((c, e.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Adds one to the counter at `key` and returns the new value.
    async fn next_code(&self) -> Result<u64, CohortError> {
        loop {
            let (value, rev) = match self.kv.entry("meta.code").await.map_err(db)? {
                Some(e) if e.operation == kv::Operation::Put => {
                    let v: u64 = std::str::from_utf8(&e.value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| db("meta.code is not a number"))?;
                    (v, e.revision)
                }
                _ => (0, 0),
            };
            let next = value + 1;
            let bytes: Bytes = next.to_string().into();
            let written = if rev == 0 {
                self.kv
                    .create("meta.code", bytes)
                    .await
                    .map(|_| ())
                    .map_err(|e| (e.kind() == CreateErrorKind::AlreadyExists, e.to_string()))
            } else {
                self.kv
                    .update("meta.code", bytes, rev)
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            e.kind() == UpdateErrorKind::WrongLastRevision,
                            e.to_string(),
                        )
                    })
            };
            match written {
                Ok(()) => return Ok(next),
                Err((true, _)) => continue,
                Err((false, e)) => return Err(db(e)),
            }
        }
    }

    /// Reserves `name` for `id`; a reservation whose cohort is gone (a
    /// crash mid-create, or a delete cut short) is taken over.
    async fn reserve_name(&self, name: &str, id: &Uuid) -> Result<(), CohortError> {
        let key = name_key(name);
        loop {
            match self.kv.create(&key, id.to_string().into()).await {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(db(e)),
            }
            let Some(entry) = self.kv.entry(&key).await.map_err(db)? else {
                continue;
            };
            let holder = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|s| Uuid::try_parse(s).ok());
            if let Some(holder) = holder {
                if self
                    .read(&holder)
                    .await?
                    .is_some_and(|(c, _)| c.name == name)
                {
                    return Err(CohortError::DuplicateName(name.to_string()));
                }
            }
            match self
                .kv
                .update(&key, id.to_string().into(), entry.revision)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(db(e)),
            }
        }
    }

    async fn free_name(&self, name: &str, id: &Uuid) {
        let key = name_key(name);
        if let Ok(Some(e)) = self.kv.entry(&key).await {
            if e.value.as_ref() == id.to_string().as_bytes() {
                let _ = self.kv.delete_expect_revision(&key, Some(e.revision)).await;
            }
        }
    }

    async fn put(&self, c: &Cohort, rev: u64) -> Result<u64, CohortError> {
        let value: Bytes = serde_json::to_vec(c).expect("cohorts serialise").into();
        let key = cohort_key(&c.id);
        let written = if rev == 0 {
            self.kv.create(&key, value).await.map_err(db)
        } else {
            self.kv
                .update(&key, value, rev)
                .await
                .map_err(|e| match e.kind() {
                    UpdateErrorKind::WrongLastRevision => CohortError::Conflict,
                    _ => db(e),
                })
        };
        written
    }
}

#[async_trait]
impl CohortApi for KvCohorts {
    async fn create(&self, input: CohortInput, now_ms: i64) -> Result<Cohort, CohortError> {
        input.validate()?;
        let name = input
            .name
            .clone()
            .ok_or_else(|| CohortError::Invalid("name", "required".into()))?;
        let code = self.next_code().await?;
        let mut cohort = input.into_cohort(name, code, now_ms);
        cohort.workspace_id = self.workspace;
        self.reserve_name(&cohort.name, &cohort.id).await?;
        self.put(&cohort, 0).await?;
        Ok(cohort)
    }

    async fn get(&self, id: Uuid) -> Result<Cohort, CohortError> {
        self.read(&id)
            .await?
            .map(|(c, _)| c)
            .ok_or(CohortError::NotFound(id))
    }

    async fn list(&self) -> Result<Vec<Cohort>, CohortError> {
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(db)?
            .try_collect()
            .await
            .map_err(db)?;
        let ids: Vec<Uuid> = keys
            .iter()
            .filter_map(|k| k.strip_prefix("c."))
            .filter_map(|s| Uuid::try_parse(s).ok())
            .collect();
        let mut out: Vec<Cohort> = futures::stream::iter(ids)
            .map(|id| async move { self.read(&id).await })
            .buffer_unordered(32)
            .try_filter_map(|c| async move { Ok(c.map(|(c, _)| c)) })
            .try_collect()
            .await?;
        out.sort_by_key(|c| c.code);
        Ok(out)
    }

    async fn patch(
        &self,
        id: Uuid,
        input: CohortInput,
        now_ms: i64,
    ) -> Result<Cohort, CohortError> {
        input.validate()?;
        loop {
            let (mut cohort, rev) = self.read(&id).await?.ok_or(CohortError::NotFound(id))?;
            let old_name = cohort.name.clone();
            let renamed = input.name.clone().filter(|n| *n != old_name);
            if let Some(name) = &renamed {
                self.reserve_name(name, &id).await?;
            }
            input.clone().apply_to(&mut cohort, now_ms);
            match self.put(&cohort, rev).await {
                Ok(_) => {
                    if renamed.is_some() {
                        self.free_name(&old_name, &id).await;
                    }
                    return Ok(cohort);
                }
                Err(CohortError::Conflict) => {
                    if let Some(name) = &renamed {
                        self.free_name(name, &id).await;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn delete(&self, id: Uuid) -> Result<Cohort, CohortError> {
        let (cohort, rev) = self.read(&id).await?.ok_or(CohortError::NotFound(id))?;
        self.kv
            .delete_expect_revision(cohort_key(&id), Some(rev))
            .await
            .map_err(|e| match e.kind() {
                DeleteErrorKind::WrongLastRevision => CohortError::Conflict,
                _ => db(e),
            })?;
        self.free_name(&cohort.name, &id).await;
        Ok(cohort)
    }
}

/// Why a `segment` snapshot was not written this time (the writer tries
/// again on its next tick).
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("snapshot progress could not be read: {0}")]
    ReadProgress(#[from] kv::EntryError),
    #[error("snapshot progress is damaged: {0}")]
    DecodeProgress(#[from] serde_json::Error),
    /// The first write of the progress key lost to another writer, or failed.
    #[error("snapshot progress (another writer?): {0}")]
    CreateProgress(#[from] kv::CreateError),
    /// A compare-and-set of the progress key lost to another writer, or failed.
    #[error("snapshot progress (another writer?): {0}")]
    UpdateProgress(#[from] kv::UpdateError),
    #[error("the cohort bucket's stream is unavailable: {0}")]
    CohortStream(#[from] GetStreamError),
    #[error("the cohort bucket's generation could not be read: {0}")]
    Generation(#[from] InfoError),
    #[error("the cohorts could not be listed: {0}")]
    Cohorts(#[from] CohortError),
    #[error("the segment record was not published: {0}")]
    Publish(#[from] PublishFailure),
}

/// The snapshot writer's progress, in the ledger bucket.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    /// Generation the last published snapshot covered.
    covered: Option<u64>,
    /// Content hash of the last published snapshot: a generation that moved
    /// without a visible change (a code reserved, a name freed) publishes
    /// nothing.
    #[serde(default)]
    content_hash: Option<u64>,
    at_ms: i64,
    /// A snapshot chosen but maybe not published: `(generation, at_ms)`.
    pending: Option<(u64, i64)>,
}

impl Progress {
    /// The part of the progress the snapshot rule decides from.
    fn rule(&self) -> SnapshotProgress {
        SnapshotProgress {
            covered: self.covered,
            content_hash: self.content_hash,
            at_ms: self.at_ms,
        }
    }
}

/// Writes `segment` snapshots while it holds the `snapshot` lease.
pub struct SnapshotWriter {
    pub cluster: Cluster,
    /// The workspace of the cohorts (see [`workspace_id`]).
    pub workspace: Uuid,
    pub interval: Duration,
    pub tick: Duration,
}

#[async_trait]
impl TaskJob for SnapshotWriter {
    fn name(&self) -> String {
        SNAPSHOT_LEASE.into()
    }

    async fn run(&self, lease: watch::Receiver<Lease>, mut stop: watch::Receiver<bool>) {
        loop {
            if lease.borrow().expired() {
                return;
            }
            if let Err(e) = self.once().await {
                tracing::warn!(error = %e, "segment snapshot not written; will retry");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.tick) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

impl SnapshotWriter {
    async fn progress(&self) -> Result<(Progress, u64), SnapshotError> {
        match self.cluster.ledger.entry(SNAPSHOT_KEY).await? {
            Some(e) if e.operation == kv::Operation::Put => {
                let p = serde_json::from_slice(&e.value)?;
                Ok((p, e.revision))
            }
            Some(e) => Ok((Progress::default(), e.revision)),
            None => Ok((Progress::default(), 0)),
        }
    }

    async fn save(&self, p: &Progress, rev: u64) -> Result<u64, SnapshotError> {
        let value: Bytes = serde_json::to_vec(p).expect("serialises").into();
        let kv = &self.cluster.ledger;
        if rev == 0 {
            Ok(kv.create(SNAPSHOT_KEY, value).await?)
        } else {
            Ok(kv.update(SNAPSHOT_KEY, value, rev).await?)
        }
    }

    async fn generation(&self) -> Result<u64, SnapshotError> {
        let name = format!("KV_{}", self.cluster.names.cohort_bucket());
        let mut stream = self.cluster.js.get_stream(name).await?;
        Ok(stream.info().await?.state.last_sequence)
    }

    /// Publishes a snapshot if one is due (or pending from a writer that died).
    async fn once(&self) -> Result<(), SnapshotError> {
        let (mut progress, mut rev) = self.progress().await?;
        let now = hivestream_core::clock::now_ms();
        if let Some((generation, at_ms)) = progress.pending {
            // A writer died between choosing and recording: publish that
            // snapshot again, under the same message id.
            let content = self.content().await?;
            return self
                .publish_and_record(progress, rev, &content, generation, at_ms)
                .await;
        }
        let generation = self.generation().await?;
        let interval = self.interval.as_millis() as i64;
        if !needs_content(&progress.rule(), generation, now, interval) {
            return Ok(());
        }
        let content = self.content().await?;
        match decide(
            &progress.rule(),
            generation,
            content_hash(&content),
            now,
            interval,
        ) {
            SnapshotStep::UpToDate => Ok(()),
            SnapshotStep::Cover { generation } => {
                progress.covered = Some(generation);
                self.save(&progress, rev).await.map(|_| ())
            }
            SnapshotStep::Write { generation, .. } => {
                progress.pending = Some((generation, now));
                rev = self.save(&progress, rev).await?;
                self.publish_and_record(progress, rev, &content, generation, now)
                    .await
            }
        }
    }

    /// Every cohort as `segment` lines.
    async fn content(&self) -> Result<Vec<u8>, SnapshotError> {
        let mut cohorts = KvCohorts::new(self.cluster.cohorts.clone(), self.workspace)
            .list()
            .await?;
        Ok(snapshot_lines(&mut cohorts))
    }

    /// Publishes the pending snapshot, then records it as covered.
    async fn publish_and_record(
        &self,
        mut progress: Progress,
        rev: u64,
        content: &[u8],
        generation: u64,
        at_ms: i64,
    ) -> Result<(), SnapshotError> {
        self.publish(content, generation, at_ms).await?;
        progress.pending = None;
        progress.covered = Some(generation);
        progress.content_hash = Some(content_hash(content));
        progress.at_ms = at_ms;
        self.save(&progress, rev).await?;
        tracing::info!(
            generation,
            bytes = content.len(),
            "segment snapshot written"
        );
        Ok(())
    }

    /// Publishes one `segment` record under the snapshot's message id.
    async fn publish(
        &self,
        content: &[u8],
        generation: u64,
        at_ms: i64,
    ) -> Result<(), SnapshotError> {
        let mut record = Vec::with_capacity(content.len() + 16);
        Record {
            data_type: DataType::Segment,
            time_ms: at_ms,
            line: content,
        }
        .encode(&mut record);
        let payload = encode_message([record.as_slice()]);
        let id = format!("segment-{generation}-{at_ms}");
        let p = partition_of(&id, self.cluster.settings.partitions);
        let subject = self.cluster.names.events_subject(p);
        let msg = PublishMessage::build()
            .payload(payload.into())
            .message_id(&id);
        publish(
            &self.cluster.js,
            &subject,
            msg,
            self.cluster.settings.publish_timeout,
        )
        .await?;
        Ok(())
    }
}
