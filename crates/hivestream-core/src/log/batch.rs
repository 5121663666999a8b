//! A batch: the records of one request, encoded as log payloads back to
//! back, with the events whose user must still be decided from their
//! aliases (their lines hold a placeholder UUID until then).

use uuid::Uuid;

use crate::collect::event::Alias;
use crate::log::record::{DataType, Record, RECORD_HEADER_LEN};
use crate::state::identity::{write_sync_line, Link};

/// An event whose user is known only by aliases; its line holds a
/// placeholder UUID at `user_offset` that the committer overwrites.
#[derive(Debug)]
struct PendingUser {
    item: usize,
    user_offset: usize,
    aliases: Vec<Alias>,
}

/// Records to append together, encoded as WAL payloads back to back.
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    ends: Vec<usize>,
    pending: Vec<PendingUser>,
    /// Holds `sync_aliases` records: an alias change, which must reach the
    /// identity index before the client hears 2xx (read-your-writes).
    links: bool,
}

impl Batch {
    pub fn push(&mut self, rec: &Record<'_>) {
        rec.encode(&mut self.buf);
        self.ends.push(self.buf.len());
        self.links |= rec.data_type == DataType::SyncAliases;
    }

    /// Whether committing this batch needs a healthy identity index: it
    /// resolves users from aliases, or it changes aliases.
    pub fn needs_index(&self) -> bool {
        self.links || !self.pending.is_empty()
    }

    /// Pushes an event whose `user_id` the committer resolves from
    /// `aliases`; `user_offset` is where the 36-character placeholder UUID
    /// starts in `rec.line`.
    pub fn push_resolving(&mut self, rec: &Record<'_>, user_offset: usize, aliases: Vec<Alias>) {
        let user_offset = self.buf.len() + RECORD_HEADER_LEN + user_offset;
        self.pending.push(PendingUser {
            item: self.ends.len(),
            user_offset,
            aliases,
        });
        self.push(rec);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Encoded size of every record.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The records, encoded as log payloads, in push order.
    pub fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(s, e)| &self.buf[s..e])
    }

    /// Whether it holds `sync_aliases` records (an identify).
    pub fn has_links(&self) -> bool {
        self.links
    }

    /// How many events wait for their user.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The aliases and time of each event waiting for its user, in push
    /// order.
    pub fn pending_aliases(&self) -> Vec<(Vec<Alias>, i64)> {
        self.pending
            .iter()
            .map(|p| (p.aliases.clone(), self.item_time(p.item)))
            .collect()
    }

    /// Writes the users chosen for the waiting events (one each, in push
    /// order) into their lines; nothing waits afterwards.
    pub fn set_users(&mut self, users: &[Uuid]) {
        debug_assert_eq!(users.len(), self.pending.len());
        for (p, user) in std::mem::take(&mut self.pending).iter().zip(users) {
            let mut hex = [0u8; 36];
            user.hyphenated().encode_lower(&mut hex);
            self.buf[p.user_offset..p.user_offset + 36].copy_from_slice(&hex);
        }
    }

    fn item_time(&self, item: usize) -> i64 {
        let start = if item == 0 { 0 } else { self.ends[item - 1] };
        Record::decode(&self.buf[start..self.ends[item]])
            .map_or_else(|_| crate::clock::now_ms(), |r| r.time_ms)
    }
}

/// The WAL payload of one `sync_aliases` record.
pub fn sync_payload(time_ms: i64, link: &Link) -> Vec<u8> {
    let mut line = Vec::with_capacity(160);
    write_sync_line(time_ms, link, &mut line);
    let mut out = Vec::with_capacity(line.len() + RECORD_HEADER_LEN);
    Record {
        data_type: DataType::SyncAliases,
        time_ms,
        line: &line,
    }
    .encode(&mut out);
    out
}
