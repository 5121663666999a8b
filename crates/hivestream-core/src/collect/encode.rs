//! Encoding a validated event into its WAL record: the stored line (the
//! contract's fields, in order) added to a [`Batch`], with what the
//! committer must decide for it (the user of an alias-only event, whether a
//! client id is a retry). The HTTP handlers and the model test build
//! batches through this one function.

use uuid::Uuid;

use crate::collect::event::{UserRef, ValidEvent};
use crate::log::batch::Batch;
use crate::log::record::{DataType, Record};

/// Encodes a valid event into its stored line and adds it to `batch`; an
/// alias-only event gets its user from the committer, and an event with
/// the client's own id is checked for being a retry. Returns the event id
/// and where the user id sits in `line`.
pub fn encode(
    ev: ValidEvent<'_>,
    time_ms: i64,
    line: &mut Vec<u8>,
    batch: &mut Batch,
) -> (Uuid, usize) {
    let client_id = ev.event_id;
    let event_id = client_id.unwrap_or_else(Uuid::new_v4);
    line.clear();
    let user = match &ev.user {
        UserRef::Id(id) => *id,
        UserRef::Aliases(_) => Uuid::nil(),
    };
    let user_offset = ev.write_line(&event_id, time_ms, &user, line);
    let rec = Record {
        data_type: DataType::Events,
        time_ms,
        line,
    };
    match ev.user {
        UserRef::Id(_) => batch.push(&rec),
        UserRef::Aliases(aliases) => batch.push_resolving(&rec, user_offset, aliases),
    }
    if let Some(id) = client_id {
        batch.mark_client_id(id);
    }
    (event_id, user_offset)
}
