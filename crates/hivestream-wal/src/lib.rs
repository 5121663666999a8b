//! A small, synchronous, segmented write-ahead log.
//!
//! # On-disk format
//! A log is a directory of segment files named `{base_lsn:020}.wal`. Each
//! segment starts with the 8-byte header `HSWAL\0\0\x01` (magic and format
//! version 1) followed by frames (see [`frame`]): `len u32 LE | crc32c u32 LE
//! | payload`. The CRC covers the length bytes and the payload.
//!
//! An LSN (log sequence number) is a byte position in the logical stream of
//! frames, headers excluded: the frame at byte `p` of segment `base` has LSN
//! `base + p - 8`, and the next segment's base is where the previous one ends.
//! LSNs only grow; truncation deletes whole segments from the front.
//!
//! # Durability and fsync policy
//! [`Wal::append`] only stages a frame in memory. [`Wal::commit`] writes every
//! staged frame with one `write` and then calls `fdatasync` once, so many
//! appends (a group commit) share a single sync. A commit is all-or-nothing:
//! if the write or the sync fails (a full disk, say), the segment is cut back
//! to its length before the commit and every staged frame is dropped, so a
//! failed commit never leaves bytes that a later commit would sit behind.
//! New segments are created under a temporary name, synced, renamed and the
//! directory synced, so a segment file either exists with its header or not
//! at all; deleting segments also syncs the directory.
//!
//! # Recovery
//! [`Wal::open`] checks the last segment frame by frame and cuts it at the
//! first frame that is incomplete, has a bad length or a bad CRC: that is a
//! write torn by a crash, and since a commit is acknowledged only after its
//! sync, none of it was acknowledged. Earlier segments were synced before the
//! next one was created, so they are trusted; readers still check every CRC.
//!
//! # Readers
//! A [`WalReader`] reads frames below a limit LSN given by the caller (the
//! committed end) with positioned reads, so it never sees bytes that a failed
//! commit may later overwrite.

pub mod frame;
mod reader;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub use frame::{decode_frame, encode_frame, FrameError, MAX_PAYLOAD_LEN};
use reader::scan_valid_prefix;
pub use reader::WalReader;
use thiserror::Error;

/// Segment file header: magic and format version.
pub const SEGMENT_HEADER: &[u8; 8] = b"HSWAL\0\0\x01";
/// The segment format this release writes and reads (the header's last byte).
pub const FORMAT_VERSION: u8 = SEGMENT_HEADER[7];
const HEADER_LEN: u64 = SEGMENT_HEADER.len() as u64;

/// A position in the log (see the module doc).
pub type Lsn = u64;

/// Errors from the log.
#[derive(Debug, Error)]
pub enum WalError {
    /// An operating-system call failed.
    #[error("WAL I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A segment's header or a frame inside the committed range is damaged.
    #[error("WAL corrupt in {path} at lsn {lsn}: {reason}")]
    Corrupt {
        path: PathBuf,
        lsn: Lsn,
        reason: String,
    },
    /// A payload is empty or larger than [`MAX_PAYLOAD_LEN`].
    #[error("WAL payload of {0} bytes is outside 1..={MAX_PAYLOAD_LEN}")]
    PayloadSize(usize),
    /// A reader was asked for an LSN that was truncated away.
    #[error("lsn {0} is no longer in the WAL (oldest is {1})")]
    Truncated(Lsn, Lsn),
    /// A segment was written by a newer release in a format this one
    /// cannot read; nothing was changed.
    #[error(
        "WAL segment {path} has format version {found}; this binary reads version {FORMAT_VERSION}. \
         It was written by a newer hivestream: run that release (or newer) until the backlog is uploaded"
    )]
    NewerFormat { path: PathBuf, found: u8 },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Tuning for a [`Wal`].
#[derive(Debug, Clone, Copy)]
pub struct WalOptions {
    /// A new segment is started once the active one holds this many bytes.
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What [`Wal::open`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from the end of the last segment (a torn write).
    pub truncated_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    base: Lsn,
    /// Frame bytes in the segment (file length minus the header).
    len: u64,
}

/// The writer side of the log. One per directory.
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    segments: Vec<Segment>,
    active: File,
    staged: Vec<u8>,
    poisoned: bool,
}

pub(crate) fn segment_path(dir: &Path, base: Lsn) -> PathBuf {
    dir.join(format!("{base:020}.wal"))
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(Lsn, u64)>, WalError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        let Ok(base) = stem.parse::<Lsn>() else {
            continue;
        };
        let len = entry.metadata().map_err(io_err(&entry.path()))?.len();
        found.push((base, len));
    }
    found.sort_unstable();
    Ok(found)
}

impl Wal {
    /// Opens (or creates) the log in `dir`, cutting a torn tail.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<(Self, Recovery), WalError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        clean_temp_files(&dir)?;
        let mut segments = Vec::new();
        for (base, file_len) in list_segments(&dir)? {
            if file_len < HEADER_LEN {
                return Err(corrupt(&dir, base, base, "segment shorter than its header"));
            }
            check_header(&dir, base)?;
            segments.push(Segment {
                base,
                len: file_len - HEADER_LEN,
            });
        }
        check_contiguous(&dir, &segments)?;
        if segments.is_empty() {
            create_segment(&dir, 0)?;
            segments.push(Segment { base: 0, len: 0 });
        }
        let last = segments.last_mut().expect("at least one segment");
        let path = segment_path(&dir, last.base);
        let (valid, truncated_bytes) = scan_valid_prefix(&path, last.base)?;
        let active = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        if truncated_bytes > 0 {
            active.set_len(HEADER_LEN + valid).map_err(io_err(&path))?;
            active.sync_all().map_err(io_err(&path))?;
        }
        last.len = valid;
        let wal = Self {
            dir,
            opts,
            segments,
            active,
            staged: Vec::new(),
            poisoned: false,
        };
        Ok((wal, Recovery { truncated_bytes }))
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// LSN of the oldest frame still on disk.
    pub fn start_lsn(&self) -> Lsn {
        self.segments[0].base
    }

    /// LSN just past the last committed frame.
    pub fn end_lsn(&self) -> Lsn {
        let last = self.segments.last().expect("at least one segment");
        last.base + last.len
    }

    /// Bytes of committed frames on disk (headers excluded).
    pub fn disk_bytes(&self) -> u64 {
        self.end_lsn() - self.start_lsn()
    }

    /// Bytes staged by [`Wal::append`] and not yet committed.
    pub fn staged_bytes(&self) -> usize {
        self.staged.len()
    }

    /// Stages a frame; returns the LSN it will have once committed.
    pub fn append(&mut self, payload: &[u8]) -> Result<Lsn, WalError> {
        if payload.is_empty() || payload.len() > MAX_PAYLOAD_LEN {
            return Err(WalError::PayloadSize(payload.len()));
        }
        let lsn = self.end_lsn() + self.staged.len() as u64;
        encode_frame(payload, &mut self.staged);
        Ok(lsn)
    }

    /// Drops every staged frame without writing it.
    pub fn discard_staged(&mut self) {
        self.staged.clear();
    }

    /// Writes and syncs every staged frame; returns the new end LSN.
    ///
    /// On error nothing staged is kept and the log is as it was before.
    pub fn commit(&mut self) -> Result<Lsn, WalError> {
        if self.poisoned {
            self.repair()?;
        }
        if self.staged.is_empty() {
            return Ok(self.end_lsn());
        }
        if self.active_len() >= self.opts.segment_bytes {
            if let Err(e) = self.roll() {
                self.staged.clear();
                return Err(e);
            }
        }
        let result = self.write_staged();
        let written = self.staged.len() as u64;
        self.staged.clear();
        match result {
            Ok(()) => {
                self.segments.last_mut().expect("segment").len += written;
                Ok(self.end_lsn())
            }
            Err(e) => {
                self.poisoned = true;
                let _ = self.repair();
                Err(e)
            }
        }
    }

    fn active_len(&self) -> u64 {
        self.segments.last().expect("segment").len
    }

    fn active_path(&self) -> PathBuf {
        segment_path(&self.dir, self.segments.last().expect("segment").base)
    }

    fn write_staged(&mut self) -> Result<(), WalError> {
        let path = self.active_path();
        let offset = HEADER_LEN + self.active_len();
        write_all_at(&self.active, &self.staged, offset).map_err(io_err(&path))?;
        self.active.sync_data().map_err(io_err(&path))
    }

    /// Cuts the active segment back to its committed length after a failed
    /// write, so the next commit starts on a clean frame boundary.
    fn repair(&mut self) -> Result<(), WalError> {
        let path = self.active_path();
        self.active
            .set_len(HEADER_LEN + self.active_len())
            .and_then(|()| self.active.sync_all())
            .map_err(io_err(&path))?;
        self.poisoned = false;
        Ok(())
    }

    fn roll(&mut self) -> Result<(), WalError> {
        let base = self.end_lsn();
        let file = create_segment(&self.dir, base)?;
        self.active = file;
        self.segments.push(Segment { base, len: 0 });
        Ok(())
    }

    /// Deletes every segment that ends at or before `lsn`, keeping the active
    /// one. Returns how many were deleted.
    pub fn truncate_before(&mut self, lsn: Lsn) -> Result<usize, WalError> {
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[1].base <= lsn {
            let seg = self.segments[0];
            let path = segment_path(&self.dir, seg.base);
            fs::remove_file(&path).map_err(io_err(&path))?;
            self.segments.remove(0);
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

/// Writes all of `buf` at `offset` with positioned writes.
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
}

/// Refuses a segment that is not ours, or is of a newer format, before any
/// of it is read: a newer format must never be mistaken for a torn tail
/// and cut.
fn check_header(dir: &Path, base: Lsn) -> Result<(), WalError> {
    let path = segment_path(dir, base);
    let mut header = [0u8; HEADER_LEN as usize];
    File::open(&path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(io_err(&path))?;
    if header == *SEGMENT_HEADER {
        return Ok(());
    }
    if header[..7] == SEGMENT_HEADER[..7] && header[7] > FORMAT_VERSION {
        return Err(WalError::NewerFormat {
            path,
            found: header[7],
        });
    }
    Err(corrupt(
        dir,
        base,
        base,
        "not a hivestream WAL segment header",
    ))
}

fn corrupt(dir: &Path, base: Lsn, lsn: Lsn, reason: &str) -> WalError {
    WalError::Corrupt {
        path: segment_path(dir, base),
        lsn,
        reason: reason.to_string(),
    }
}

fn check_contiguous(dir: &Path, segments: &[Segment]) -> Result<(), WalError> {
    for pair in segments.windows(2) {
        if pair[0].base + pair[0].len != pair[1].base {
            let reason = format!(
                "segment ends at lsn {} but the next starts at {}",
                pair[0].base + pair[0].len,
                pair[1].base
            );
            return Err(corrupt(
                dir,
                pair[0].base,
                pair[0].base + pair[0].len,
                &reason,
            ));
        }
    }
    Ok(())
}

fn clean_temp_files(dir: &Path) -> Result<(), WalError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

fn create_segment(dir: &Path, base: Lsn) -> Result<File, WalError> {
    let path = segment_path(dir, base);
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(SEGMENT_HEADER)
        .and_then(|()| file.sync_all())
        .map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok(file)
}

#[cfg(test)]
mod tests;
