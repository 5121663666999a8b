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

use async_nats::jetstream::message::PublishMessage;
use async_trait::async_trait;
use hivestream_core::collect::backend::{AliasEntry, Ingest, NotReady};
use hivestream_core::log::ingest::{Batch, CommitError, Committed};
use hivestream_core::log::record::Record;
use hivestream_core::state::identity::link_of;
use uuid::Uuid;

use crate::identity::{IdentityClient, Request};
use crate::log::{encode_message, publish, PublishFailure};
use crate::names::partition_of;
use crate::setup::Cluster;

/// Writes requests to the cluster.
pub struct ClusterIngest {
    cluster: Cluster,
    identity: IdentityClient,
}

impl ClusterIngest {
    pub fn new(cluster: Cluster) -> Self {
        Self {
            identity: IdentityClient::new(cluster.clone()),
            cluster,
        }
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
            .map_err(CommitError::Identity)?;
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
            .map_err(CommitError::Identity)?
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
        let users = if batch.pending_len() > 0 {
            self.resolve(format!("{id}.resolve"), &mut batch).await?
        } else {
            Vec::new()
        };
        let payload = encode_message(batch.payloads());
        let max = self.cluster.client.server_info().max_payload;
        if payload.len() + 512 > max {
            return Err(CommitError::TooLarge(format!(
                "the request's {} bytes of records do not fit in one log message (the servers' max_payload is {max}); send smaller batches",
                payload.len()
            )));
        }
        let p = partition_of(&id, self.cluster.settings.partitions);
        let subject = self.cluster.names.events_subject(p);
        let msg = PublishMessage::build()
            .payload(payload.into())
            .message_id(&id);
        let timeout = self.cluster.settings.publish_timeout;
        match publish(&self.cluster.js, &subject, msg, timeout).await {
            Ok(_) => Ok(Committed {
                users,
                duplicates: Vec::new(),
            }),
            Err(PublishFailure::Full(e)) => Err(CommitError::LogFull(e)),
            Err(e) => Err(CommitError::LogUnavailable(e.to_string())),
        }
    }

    async fn aliases_of(&self, user: Uuid) -> Result<Vec<AliasEntry>, String> {
        let reply = self.identity.ask(&Request::Aliases { user }).await?;
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
