//! Replay after a restart: records the reader meets again inside a seal
//! from before the restart are skipped (the seal is uploaded) or rebuild
//! that very file (it is not), and a rebuild is uploaded only when it is
//! byte for byte its seal.

use super::file::FileBuilder;
use super::ledger::Seal;
use super::upload::UploadKind;
use super::{Router, RouterError};
use crate::log::record::Record;
use crate::log::Pos;
use crate::metrics::METRICS;
use crate::route::keys::Partition;

/// A seal found in the ledger at start-up that covers records not yet read.
pub(super) struct KnownSeal {
    pub seal: Seal,
    pub done: bool,
}

impl Router {
    /// The pre-restart seal of partition `p` covering `lsn`, if any; drops
    /// seals that the reader has passed.
    pub(super) fn known_seal(&mut self, p: &Partition, lsn: u64) -> Option<(Seal, bool)> {
        let seals = self.known.get_mut(p)?;
        seals.retain(|k| k.seal.end >= lsn);
        let found = seals
            .iter()
            .find(|k| k.seal.start <= lsn)
            .map(|k| (k.seal.clone(), k.done));
        if seals.is_empty() {
            self.known.remove(p);
        }
        found
    }

    pub(super) fn replay_into(
        &mut self,
        (seal, done): (Seal, bool),
        lsn: u64,
        rec: &Record<'_>,
    ) -> Result<(), RouterError> {
        // Uploaded, or still being uploaded by a job from before an
        // in-process restart: its records are in that file already.
        if done || self.links.signals.uploads.in_flight().contains(&seal.id) {
            return Ok(());
        }
        let spool_err = self.spool_err();
        match self.rebuilding.get_mut(&seal.id) {
            Some((_, b)) => b.push(lsn, rec).map_err(spool_err)?,
            None => {
                let p = Partition::of(rec.data_type, rec.time_ms);
                let mut b =
                    FileBuilder::create(seal.id, &self.files, lsn, rec, p).map_err(spool_err)?;
                b.first_ack_ms = self.ack_ms();
                self.rebuilding.insert(seal.id, (seal.clone(), b));
            }
        }
        if lsn == seal.end {
            self.finish_rebuild(seal.id)?;
        }
        Ok(())
    }

    /// Finishes rebuilds whose seal ends below `pos`: the log no longer has
    /// their last record, so they cannot match.
    pub(super) fn finish_passed_rebuilds(&mut self, pos: Pos) -> Result<(), RouterError> {
        let passed: Vec<u64> = self
            .rebuilding
            .values()
            .filter(|(seal, _)| seal.end < pos)
            .map(|(seal, _)| seal.id)
            .collect();
        for id in passed {
            self.finish_rebuild(id)?;
        }
        Ok(())
    }

    /// Uploads a rebuilt file under its sealed key if it is byte for byte
    /// the sealed file; otherwise uploads nothing and only has the
    /// uploader check that the sealed object is in the bucket.
    fn finish_rebuild(&mut self, id: u64) -> Result<(), RouterError> {
        let (seal, b) = self.rebuilding.remove(&id).expect("present");
        let f = b.finish().map_err(self.spool_err())?;
        let key = self.key_of(&f);
        if key != seal.key || f.records != seal.records {
            METRICS.rebuild_mismatches.inc();
            tracing::error!(seal = seal.id, expected = %seal.key, expected_records = seal.records,
                rebuilt = %key, rebuilt_records = f.records, start = seal.start, end = seal.end,
                "router: rebuilt file differs from its seal (the log lost or changed records); \
                 uploading nothing under the sealed key, checking it is in the bucket");
            let _ = std::fs::remove_file(&f.path);
            self.send_job(seal.id, seal.key, UploadKind::VerifyExists, f);
            return Ok(());
        }
        tracing::info!(key = %seal.key, records = f.records, "router: re-uploading file sealed before restart");
        self.send_job(seal.id, seal.key, UploadKind::Upload, f);
        Ok(())
    }
}
