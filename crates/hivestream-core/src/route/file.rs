//! One output file being built: records are hashed and gzip-compressed as
//! they arrive (on the deflate pool, see [`super::deflate`]) into a spool
//! file on disk, so memory per open file is one block buffer and the blocks
//! in flight, whatever the file's size.
//!
//! The output is a pure function of the records pushed (and the level): the
//! gzip header carries no time or name and block boundaries depend only on
//! the input, so rebuilding a file from the WAL after a crash gives the same
//! bytes and the same content hash.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use xxhash_rust::xxh3::Xxh3;

use super::deflate::{DeflatePool, GzipStream};
use crate::log::record::Record;
use crate::route::keys::Partition;

/// Where and how files are built.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// Directory for files under construction and awaiting upload.
    pub spool: PathBuf,
    /// Gzip level 1-9.
    pub level: u32,
    pub pool: DeflatePool,
}

/// A file under construction.
pub struct FileBuilder {
    pub id: u64,
    pub partition: Partition,
    /// LSN of the first and last record in the file.
    pub start: u64,
    pub end: u64,
    pub first_time_ms: i64,
    pub records: u64,
    pub opened_at: Instant,
    /// When the log acknowledged the file's first record (for freshness).
    pub first_ack_ms: i64,
    hasher: Xxh3,
    gz: GzipStream<File>,
    path: PathBuf,
}

/// The spool file of file `id`.
pub fn spool_path(spool: &Path, id: u64) -> PathBuf {
    spool.join(format!("{id:020}.jsonl.gz"))
}

/// A finished file, ready for upload.
#[derive(Debug)]
pub struct Finished {
    pub id: u64,
    pub partition: Partition,
    pub start: u64,
    pub end: u64,
    pub first_time_ms: i64,
    pub records: u64,
    pub hash: u64,
    pub path: PathBuf,
    pub bytes: u64,
    pub first_ack_ms: i64,
}

impl FileBuilder {
    /// Starts file `id` with its first record.
    pub fn create(
        id: u64,
        opts: &FileOptions,
        lsn: u64,
        rec: &Record<'_>,
        partition: Partition,
    ) -> std::io::Result<Self> {
        let path = spool_path(&opts.spool, id);
        let gz = GzipStream::new(opts.pool.clone(), opts.level, File::create(&path)?)?;
        let mut builder = Self {
            id,
            partition,
            start: lsn,
            end: lsn,
            first_time_ms: rec.time_ms,
            records: 0,
            opened_at: Instant::now(),
            first_ack_ms: crate::clock::now_ms(),
            hasher: Xxh3::new(),
            gz,
            path,
        };
        builder.push(lsn, rec)?;
        Ok(builder)
    }

    /// Appends a record: one line for hourly types; for snapshot types the
    /// record is the whole content, its lines already `\n`-terminated.
    pub fn push(&mut self, lsn: u64, rec: &Record<'_>) -> std::io::Result<()> {
        let newline: &[u8] = if rec.data_type.is_hourly() {
            b"\n"
        } else {
            b""
        };
        self.hasher.update(rec.line);
        self.hasher.update(newline);
        self.gz.write_all(rec.line)?;
        self.gz.write_all(newline)?;
        self.end = lsn;
        self.records += 1;
        Ok(())
    }

    /// Compressed bytes produced so far.
    pub fn compressed_bytes(&self) -> u64 {
        self.gz.compressed_bytes()
    }

    /// Ends the gzip stream (no fsync: a spool file lost in a crash is
    /// rebuilt from the WAL).
    pub fn finish(self) -> std::io::Result<Finished> {
        let (_file, bytes) = self.gz.finish()?;
        Ok(Finished {
            id: self.id,
            partition: self.partition,
            start: self.start,
            end: self.end,
            first_time_ms: self.first_time_ms,
            records: self.records,
            hash: self.hasher.digest(),
            path: self.path,
            bytes,
            first_ack_ms: self.first_ack_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::DataType;
    use std::io::Read;

    fn build(dir: &Path, id: u64, lines: &[&str]) -> Finished {
        let recs: Vec<Record> = lines
            .iter()
            .map(|l| Record {
                data_type: DataType::Events,
                time_ms: 7,
                line: l.as_bytes(),
            })
            .collect();
        let p = Partition::of(DataType::Events, 7);
        let opts = FileOptions {
            spool: dir.to_path_buf(),
            level: 6,
            pool: DeflatePool::new(2),
        };
        let mut b = FileBuilder::create(id, &opts, 100, &recs[0], p).unwrap();
        for (i, r) in recs.iter().enumerate().skip(1) {
            b.push(100 + i as u64, r).unwrap();
        }
        b.finish().unwrap()
    }

    #[test]
    fn same_records_give_same_bytes_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let a = build(dir.path(), 1, &["{\"a\":1}", "{\"b\":2}"]);
        let b = build(dir.path(), 2, &["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(a.hash, b.hash);
        assert_eq!(
            std::fs::read(&a.path).unwrap(),
            std::fs::read(&b.path).unwrap()
        );
        assert_eq!(
            (a.start, a.end, a.records, a.first_time_ms),
            (100, 101, 2, 7)
        );
        let c = build(dir.path(), 3, &["{\"a\":1}"]);
        assert_ne!(a.hash, c.hash);
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(&a.path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(a.bytes, std::fs::metadata(&a.path).unwrap().len());
    }
}
