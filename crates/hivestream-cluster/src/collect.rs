//! The stateless collector's [`Ingest`]: the same HTTP handlers as
//! `serve`, writing to JetStream instead of a local WAL.
//!
//! A request becomes one message on its partition's subject, with the
//! request's id as `Nats-Msg-Id` and the partition derived from that id, so
//! a publish retried after an ambiguous timeout (same id, same partition)
//! is stored once. The 2xx waits for the stream's ack, which a quorum of
//! an R3 stream gives after fsync (`sync_interval: always`). Alias-only
//! events get their users from the identity leader first; an identify is
//! the leader's to write. A full stream (`discard: new`), no quorum or no
//! ack within `publish_timeout` is a 503 with `Retry-After`, never a 2xx.
//!
//! Events that carry their own id are looked up in the dedup bucket first
//! (a known retry is answered with its stored result and not published),
//! then published one message each, on the partition of their id, before
//! the rest of the request; see [`crate::dedup`].

use async_nats::jetstream::message::PublishMessage;
use async_trait::async_trait;
use hivestream_core::collect::backend::{AliasEntry, AliasesError, Ingest, NotReady};
use hivestream_core::log::ingest::{Batch, CommitError, Committed};
use hivestream_core::log::record::Record;
use hivestream_core::log::replay::link_of;
use hivestream_core::log::retries::merge_users;
use hivestream_core::state::dedup::Stored;
use uuid::Uuid;

use crate::dedup::{client_msg_id, Done, KvDedup};
use crate::identity::{IdentityClient, Request};
use crate::log::{encode_message, publish, PublishFailure};
use crate::names::partition_of;
use crate::setup::Cluster;

/// Writes requests to the cluster.
pub struct ClusterIngest {
    cluster: Cluster,
    identity: IdentityClient,
    dedup: KvDedup,
}

fn publish_error(e: PublishFailure) -> CommitError {
    match e {
        PublishFailure::Full(e) => CommitError::LogFull(e),
        e => CommitError::LogUnavailable(e.to_string()),
    }
}

impl ClusterIngest {
    pub fn new(cluster: Cluster) -> Self {
        Self {
            identity: IdentityClient::new(cluster.clone()),
            dedup: KvDedup::new(cluster.dedup.clone()),
            cluster,
        }
    }

    /// Marks the client-id events already routed as skipped; returns their
    /// stored results.
    async fn known_retries(&self, batch: &mut Batch) -> Result<Vec<(usize, Stored)>, CommitError> {
        let client = batch.client_ids().to_vec();
        if client.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = client.iter().map(|(_, id)| *id).collect();
        let known = self
            .dedup
            .lookup(&ids)
            .await
            .map_err(|e| CommitError::LogUnavailable(e.to_string()))?;
        let mut retried = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for ((item, id), known) in client.into_iter().zip(known) {
            if let Some(done) = known {
                batch.skip(item);
                retried.push((item, done.stored()));
            } else if !seen.insert(id) {
                // The same new id twice in one request: one copy is enough.
                batch.skip(item);
            }
        }
        Ok(retried)
    }

    /// Publishes each new client-id event alone (pipelined), under its id;
    /// returns the stored results of copies that turned out to be retries.
    async fn publish_client_events(
        &self,
        batch: &Batch,
    ) -> Result<Vec<(usize, Stored)>, CommitError> {
        let timeout = self.cluster.settings.publish_timeout;
        let partitions = self.cluster.settings.partitions;
        let sends = batch
            .client_ids()
            .iter()
            .filter(|(item, _)| !batch.is_skipped(*item))
            .map(|&(item, id)| {
                let payload = encode_message([batch.item(item)]);
                let subject = self
                    .cluster
                    .names
                    .events_subject(partition_of(&id.to_string(), partitions));
                let msg = PublishMessage::build()
                    .payload(payload.into())
                    .message_id(client_msg_id(&id));
                async move {
                    let ack = publish(&self.cluster.js, &subject, msg, timeout).await?;
                    Ok::<_, PublishFailure>((item, id, ack))
                }
            });
        let acks = futures::future::join_all(sends).await;
        let mut retried = Vec::new();
        for ack in acks {
            let (item, id, ack) = ack.map_err(publish_error)?;
            let Some(stored) = batch.stored(item) else {
                continue;
            };
            let done = Done {
                time_ms: stored.time_ms,
                user: stored.user,
                seq: ack.sequence,
            };
            if ack.duplicate {
                // Stored by an earlier attempt moments ago: answer with its
                // record when it is there already.
                let first = self.dedup.lookup(&[id]).await.ok().and_then(|v| v[0]);
                retried.push((item, first.map_or(stored, |d| d.stored())));
            } else {
                self.dedup.remember(&id, done).await;
            }
        }
        Ok(retried)
    }

    async fn identify(&self, id: String, batch: &Batch) -> Result<Committed, CommitError> {
        let mut time_ms = 0;
        let mut links = Vec::with_capacity(batch.len());
        for p in batch.payloads() {
            if let Ok(rec) = Record::decode(p) {
                time_ms = rec.time_ms;
            }
            links.extend(link_of(p));
        }
        let req = Request::Link { id, time_ms, links };
        self.identity
            .ask(&req)
            .await
            .map_err(|e| CommitError::Identity(e.to_string()))?;
        Ok(Committed::default())
    }

    async fn resolve(&self, id: String, batch: &mut Batch) -> Result<Vec<Uuid>, CommitError> {
        let req = Request::Resolve {
            id,
            items: batch.pending_aliases(),
        };
        let users = self
            .identity
            .ask(&req)
            .await
            .map_err(|e| CommitError::Identity(e.to_string()))?
            .users
            .ok_or_else(|| CommitError::Identity("the leader sent no users".into()))?;
        if users.len() != batch.pending_len() {
            return Err(CommitError::Identity(
                "the leader sent the wrong number of users".into(),
            ));
        }
        batch.set_users(&users);
        Ok(users)
    }
}

#[async_trait]
impl Ingest for ClusterIngest {
    async fn append(&self, mut batch: Batch) -> Result<Committed, CommitError> {
        let id = Uuid::new_v4().to_string();
        if batch.has_links() {
            return self.identify(id, &batch).await;
        }
        let mut duplicates = self.known_retries(&mut batch).await?;
        let pending = batch.pending_items();
        let live_users = if batch.pending_len() > 0 {
            self.resolve(format!("{id}.resolve"), &mut batch).await?
        } else {
            Vec::new()
        };
        let max = self.cluster.client.server_info().max_payload;
        let rest: Vec<&[u8]> = (0..batch.len())
            .filter(|i| !batch.is_skipped(*i) && !batch.client_ids().iter().any(|(c, _)| c == i))
            .map(|i| batch.item(i))
            .collect();
        let payload = encode_message(rest.iter().copied());
        if payload.len() + 512 > max {
            return Err(CommitError::TooLarge(format!(
                "the request's {} bytes of records do not fit in one log message (the servers' max_payload is {max}); send smaller batches",
                payload.len()
            )));
        }
        // Client-id events first: if the rest then fails, a retry finds
        // them in the dedup bucket (or as duplicates) and writes the rest.
        duplicates.extend(self.publish_client_events(&batch).await?);
        if !rest.is_empty() {
            let p = partition_of(&id, self.cluster.settings.partitions);
            let subject = self.cluster.names.events_subject(p);
            let msg = PublishMessage::build()
                .payload(payload.into())
                .message_id(&id);
            let timeout = self.cluster.settings.publish_timeout;
            publish(&self.cluster.js, &subject, msg, timeout)
                .await
                .map_err(publish_error)?;
        }
        Ok(Committed {
            users: merge_users(&pending, live_users, &duplicates),
            duplicates,
        })
    }

    async fn aliases_of(&self, user: Uuid) -> Result<Vec<AliasEntry>, AliasesError> {
        let reply = self
            .identity
            .ask(&Request::Aliases { user })
            .await
            .map_err(|e| AliasesError::Remote(Box::new(e)))?;
        Ok(reply.aliases.unwrap_or_default())
    }

    fn readiness(&self) -> Result<(), NotReady> {
        match self.cluster.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            _ => Err((
                "not connected to NATS",
                "the collector has no connection to the cluster",
            )),
        }
    }
}
