//! Reading frames back: a chunked cursor over one file and the [`WalReader`]
//! that follows the log across segments.
//!
//! The cursor reads with positioned reads into a reusable buffer and never
//! past the limit it is given, so memory stays at one chunk (or one frame,
//! when a frame is larger) whatever the segment size.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::frame::{decode_frame, FrameError, FRAME_HEADER_LEN};
use crate::{io_err, list_segments, segment_path, Lsn, WalError, HEADER_LEN};

const CHUNK: usize = 1 << 20;

/// Sequential frame reader over a byte range of one file.
pub(crate) struct FrameCursor {
    file: File,
    path: PathBuf,
    /// File offset of `buf[start]`.
    offset: u64,
    buf: Vec<u8>,
    start: usize,
}

/// What the cursor found at its position.
pub(crate) enum Next {
    /// A valid frame: its payload is `cursor.payload()`; it spans `len` bytes.
    Frame(usize),
    /// No whole frame before the limit.
    End,
    /// The bytes at the position are not a valid frame.
    Damaged(FrameError),
}

impl FrameCursor {
    pub(crate) fn open(path: &Path, offset: u64) -> Result<Self, WalError> {
        let file = File::open(path).map_err(io_err(path))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            offset,
            buf: Vec::new(),
            start: 0,
        })
    }

    /// File offset of the next unread byte.
    pub(crate) fn position(&self) -> u64 {
        self.offset + self.start as u64
    }

    /// Decodes the frame at the position, reading no byte at or past `limit`
    /// (a file offset). Call [`FrameCursor::advance`] after a `Frame`.
    pub(crate) fn next(&mut self, limit: u64) -> Result<Next, WalError> {
        loop {
            let avail = &self.buf[self.start..];
            match decode_frame(avail) {
                Ok(Some((_, used))) => return Ok(Next::Frame(used)),
                Err(e) => return Ok(Next::Damaged(e)),
                Ok(None) => {}
            }
            let want = if avail.len() >= FRAME_HEADER_LEN {
                let len = u32::from_le_bytes(avail[0..4].try_into().expect("4 bytes"));
                FRAME_HEADER_LEN + len as usize
            } else {
                FRAME_HEADER_LEN
            };
            if !self.fill(want, limit)? {
                return Ok(Next::End);
            }
        }
    }

    /// Moves past the frame `next` just returned (of `used` bytes) and
    /// returns its payload.
    pub(crate) fn take(&mut self, used: usize) -> &[u8] {
        let start = self.start;
        self.start += used;
        &self.buf[start + FRAME_HEADER_LEN..start + used]
    }

    /// Reads more bytes so that at least `want` are buffered, without reading
    /// at or past `limit`. Returns false when no more bytes could be read.
    fn fill(&mut self, want: usize, limit: u64) -> Result<bool, WalError> {
        self.buf.drain(..self.start);
        self.offset += self.start as u64;
        self.start = 0;
        let end = self.offset + self.buf.len() as u64;
        if end >= limit {
            return Ok(false);
        }
        let room = want.max(CHUNK).saturating_sub(self.buf.len());
        let to_read = room.min((limit - end) as usize);
        let old = self.buf.len();
        self.buf.resize(old + to_read, 0);
        let n = read_at_most(&self.file, &mut self.buf[old..], end).map_err(io_err(&self.path))?;
        self.buf.truncate(old + n);
        Ok(n > 0)
    }
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Returns the byte length of the valid frame prefix of a segment's body and
/// how many bytes follow it (a torn tail).
pub(crate) fn scan_valid_prefix(path: &Path, base: Lsn) -> Result<(u64, u64), WalError> {
    let file_len = std::fs::metadata(path).map_err(io_err(path))?.len();
    let mut header = [0u8; HEADER_LEN as usize];
    let file = File::open(path).map_err(io_err(path))?;
    let n = read_at_most(&file, &mut header, 0).map_err(io_err(path))?;
    if n < header.len() || &header != crate::SEGMENT_HEADER {
        return Err(WalError::Corrupt {
            path: path.to_path_buf(),
            lsn: base,
            reason: "bad segment header".into(),
        });
    }
    let mut cursor = FrameCursor::open(path, HEADER_LEN)?;
    while let Next::Frame(used) = cursor.next(file_len)? {
        cursor.take(used);
    }
    let valid = cursor.position() - HEADER_LEN;
    Ok((valid, file_len - HEADER_LEN - valid))
}

/// Reads committed frames in LSN order, across segments.
pub struct WalReader {
    dir: PathBuf,
    lsn: Lsn,
    segment: Option<(Lsn, FrameCursor)>,
}

impl WalReader {
    /// A reader positioned at `lsn`, which must be a frame boundary (or the
    /// end of the log).
    pub fn open(dir: impl AsRef<Path>, lsn: Lsn) -> Result<Self, WalError> {
        Ok(Self {
            dir: dir.as_ref().to_path_buf(),
            lsn,
            segment: None,
        })
    }

    /// LSN of the next frame this reader will return.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// Reads the next frame if it lies entirely below `limit` (the committed
    /// end LSN). Returns its LSN and payload.
    pub fn next(&mut self, limit: Lsn) -> Result<Option<(Lsn, &[u8])>, WalError> {
        if self.lsn >= limit {
            return Ok(None);
        }
        let (base, used) = loop {
            let (base, cursor) = self.cursor()?;
            let file_limit = HEADER_LEN + (limit - base);
            match cursor.next(file_limit)? {
                Next::Frame(used) => break (base, used),
                Next::Damaged(e) => {
                    return Err(WalError::Corrupt {
                        path: segment_path(&self.dir, base),
                        lsn: self.lsn,
                        reason: e.to_string(),
                    })
                }
                // The frame at this LSN is in the next segment.
                Next::End => {
                    if self.next_segment_exists()? {
                        self.segment = None;
                        continue;
                    }
                    return Ok(None);
                }
            }
        };
        let lsn = self.lsn;
        self.lsn += used as u64;
        let (_, cursor) = self.segment.as_mut().expect("open segment");
        debug_assert_eq!(cursor.position() - HEADER_LEN + base, lsn);
        Ok(Some((lsn, cursor.take(used))))
    }

    fn next_segment_exists(&self) -> Result<bool, WalError> {
        let current = self.segment.as_ref().map(|(b, _)| *b);
        Ok(segment_path(&self.dir, self.lsn).exists() && current != Some(self.lsn))
    }

    fn cursor(&mut self) -> Result<(Lsn, &mut FrameCursor), WalError> {
        if self.segment.is_none() {
            let base = self.find_segment()?;
            let path = segment_path(&self.dir, base);
            let cursor = FrameCursor::open(&path, HEADER_LEN + (self.lsn - base))?;
            self.segment = Some((base, cursor));
        }
        let (base, cursor) = self.segment.as_mut().expect("just opened");
        Ok((*base, cursor))
    }

    /// The base of the segment holding `self.lsn`.
    fn find_segment(&self) -> Result<Lsn, WalError> {
        let segments = list_segments(&self.dir)?;
        let oldest = segments.first().map_or(0, |s| s.0);
        segments
            .iter()
            .rev()
            .map(|s| s.0)
            .find(|&base| base <= self.lsn)
            .ok_or(WalError::Truncated(self.lsn, oldest))
    }
}
