//! Retried events: finds the events of a batch whose client-given id was
//! acknowledged before (in the dedup index, see [`crate::state::dedup`], or
//! earlier in the same group commit, or earlier in the same request), so
//! the committer skips them and answers with what was stored the first
//! time. Runs on the committer thread, in log order, like identity.

use std::collections::HashMap;

use uuid::Uuid;

use crate::log::batch::Batch;
use crate::state::dedup::Stored;
use crate::state::identity::{IdentityError, IdentityIndex};

/// Where a retried event's stored result comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// Acknowledged before this request.
    Stored(Stored),
    /// The same id earlier in this very request: its result, once known.
    Item(usize),
}

/// Client ids written in the current group (not yet in the index).
#[derive(Default)]
pub struct Retries {
    staged: HashMap<Uuid, Stored>,
}

impl Retries {
    /// Forgets the group's ids (they are in the index now, or dropped).
    pub fn clear(&mut self) {
        self.staged.clear();
    }

    /// Marks the batch's retried events as skipped; returns each with where
    /// its stored result comes from.
    pub fn check(
        &self,
        index: &IdentityIndex,
        batch: &mut Batch,
    ) -> Result<Vec<(usize, Prior)>, IdentityError> {
        if batch.client_ids().is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = batch.client_ids().iter().map(|(_, id)| *id).collect();
        let known = index.seen(&ids)?;
        let mut first_in_batch: HashMap<Uuid, usize> = HashMap::new();
        let mut retried = Vec::new();
        for ((item, id), known) in batch.client_ids().to_vec().into_iter().zip(known) {
            let prior = match (known, self.staged.get(&id), first_in_batch.get(&id)) {
                (Some(s), _, _) | (None, Some(&s), _) => Some(Prior::Stored(s)),
                (None, None, Some(&first)) => Some(Prior::Item(first)),
                (None, None, None) => None,
            };
            match prior {
                Some(p) => {
                    batch.skip(item);
                    retried.push((item, p));
                }
                None => {
                    first_in_batch.insert(id, item);
                }
            }
        }
        Ok(retried)
    }

    /// After the batch's users are set: the stored results of its new
    /// client ids, remembered for the rest of the group.
    pub fn note(&mut self, batch: &Batch) -> Vec<(Uuid, Stored)> {
        let fresh: Vec<(Uuid, Stored)> = batch
            .client_ids()
            .iter()
            .filter(|(item, _)| !batch.is_skipped(*item))
            .filter_map(|(item, id)| batch.stored(*item).map(|s| (*id, s)))
            .collect();
        self.staged.extend(fresh.iter().copied());
        fresh
    }
}

/// The stored result of every retried item, `Prior::Item` resolved against
/// the batch.
pub fn resolve_priors(batch: &Batch, retried: &[(usize, Prior)]) -> Vec<(usize, Stored)> {
    retried
        .iter()
        .filter_map(|(item, prior)| match prior {
            Prior::Stored(s) => Some((*item, *s)),
            Prior::Item(first) => batch.stored(*first).map(|s| (*item, s)),
        })
        .collect()
}

/// The user of every alias-only event in push order: `live` (decided now,
/// for the events written, in order) merged with the stored users of the
/// retried ones. `pending` is every waiting item, retries included.
pub fn merge_users(
    pending: &[usize],
    live: Vec<Uuid>,
    duplicates: &[(usize, Stored)],
) -> Vec<Uuid> {
    let mut live = live.into_iter();
    pending
        .iter()
        .filter_map(|item| match duplicates.iter().find(|(i, _)| i == item) {
            Some((_, s)) => Some(s.user),
            None => live.next(),
        })
        .collect()
}
