//! Parallel, deterministic gzip, the way pigz does it: a file's input is
//! cut into fixed-size blocks; each block is deflated on a pool thread with
//! the previous block's last 32 KiB as its dictionary and ends with a sync
//! flush (the last one with a final block); the results, written in order
//! between a gzip header and trailer, form one ordinary gzip member that any
//! reader decompresses.
//!
//! Determinism: a block's bytes depend only on its input, its dictionary
//! and the level (each job starts from a fresh compressor), and block
//! boundaries fall every [`BLOCK`] input bytes, so the same records always
//! give the same file, whatever the thread timing: the replay guarantee of
//! the router holds. Compression uses every core instead of only the
//! router's, which matters most when ingest pauses and one core would
//! otherwise sit idle while a backlog is compressed.
//!
//! Memory: per open file one block buffer (at most [`BLOCK`]) and at most
//! [`MAX_IN_FLIGHT`] blocks being compressed; per pool thread, the deflate
//! state of the block it is compressing.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{mpsc, Arc, Mutex};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Uncompressed bytes per block.
pub const BLOCK: usize = 256 << 10;
/// Window carried from one block into the next as a dictionary.
const DICT: usize = 32 << 10;
/// Blocks of one file being compressed at once.
pub const MAX_IN_FLIGHT: usize = 4;

/// gzip header: no name, no mtime (so output depends on content only), OS
/// unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

struct Job {
    level: u32,
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    reply: mpsc::SyncSender<io::Result<Vec<u8>>>,
}

/// Compression threads shared by every file; cheap to clone. The threads
/// exit when the last handle is dropped.
#[derive(Clone)]
pub struct DeflatePool {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for DeflatePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeflatePool")
    }
}

impl DeflatePool {
    /// A pool of `threads` compression threads (at least one).
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("deflate-{i}"))
                .spawn(move || work(&rx))
                .expect("spawn deflate thread");
        }
        Self { tx }
    }

    /// One thread per core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

fn work(rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // A fresh compressor per block, never a reset one: zlib-rs (like
        // zlib-ng) hashes 4 bytes at a time, so inserting the end of a
        // dictionary reads window bytes past it, and a reset keeps the
        // previous job's window. A reused compressor's output then depends
        // on which block that thread compressed before, and a rebuilt file
        // would differ from the original. Allocating and zeroing the state
        // costs about 1% of compressing a block.
        let mut state = Compress::new(Compression::new(job.level), false);
        let _ = job.reply.send(deflate_block(&mut state, &job));
    }
}

/// Raw-deflates one block from a fresh state: dictionary, data, then a sync
/// flush (or, for the last block, the end of the stream).
fn deflate_block(c: &mut Compress, job: &Job) -> io::Result<Vec<u8>> {
    if !job.dict.is_empty() {
        c.set_dictionary(&job.dict).map_err(io::Error::other)?;
    }
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(job.data.len() / 2 + 64);
    let start = c.total_in();
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = (c.total_in() - start) as usize;
        let status = c
            .compress_vec(&job.data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = (c.total_in() - start) as usize == job.data.len();
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => return Ok(out),
            Status::Ok | Status::BufError if !job.last && all_in && room_left => return Ok(out),
            Status::Ok | Status::BufError => {}
        }
    }
}

/// One gzip file being written: input is buffered into blocks that the pool
/// compresses; results are written to `out` in order.
pub struct GzipStream<W: Write> {
    pool: DeflatePool,
    level: u32,
    out: W,
    written: u64,
    crc: Crc,
    block: Vec<u8>,
    dict: Vec<u8>,
    pending: VecDeque<mpsc::Receiver<io::Result<Vec<u8>>>>,
}

impl<W: Write> GzipStream<W> {
    /// Writes the gzip header to `out` and starts the stream.
    pub fn new(pool: DeflatePool, level: u32, mut out: W) -> io::Result<Self> {
        out.write_all(&GZIP_HEADER)?;
        Ok(Self {
            pool,
            level,
            out,
            written: GZIP_HEADER.len() as u64,
            crc: Crc::new(),
            block: Vec::new(),
            dict: Vec::new(),
            pending: VecDeque::new(),
        })
    }

    /// Compressed bytes written so far (blocks still being compressed are
    /// not counted yet).
    pub fn compressed_bytes(&self) -> u64 {
        self.written
    }

    /// Adds uncompressed bytes.
    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.crc.update(data);
        while !data.is_empty() {
            if self.block.capacity() == 0 {
                self.block.reserve_exact(BLOCK);
            }
            let take = (BLOCK - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() == BLOCK {
                self.submit(false)?;
            }
        }
        Ok(())
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        if self.pending.len() >= MAX_IN_FLIGHT {
            self.write_oldest()?;
        }
        let data = std::mem::take(&mut self.block);
        let tail = data[data.len().saturating_sub(DICT)..].to_vec();
        let dict = std::mem::replace(&mut self.dict, tail);
        let (reply, rx) = mpsc::sync_channel(1);
        let job = Job {
            level: self.level,
            dict,
            data,
            last,
            reply,
        };
        self.pool
            .tx
            .send(job)
            .map_err(|_| io::Error::other("the deflate pool has stopped"))?;
        self.pending.push_back(rx);
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(rx) = self.pending.pop_front() else {
            return Ok(());
        };
        let bytes = rx
            .recv()
            .map_err(|_| io::Error::other("a deflate thread died"))??;
        self.out.write_all(&bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Compresses what is left, writes the trailer (CRC-32 and length), and
    /// returns the writer and the total compressed size.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        Ok((self.out, self.written + 8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip(pool: &DeflatePool, level: u32, chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = GzipStream::new(pool.clone(), level, Vec::new()).unwrap();
        for c in chunks {
            s.write_all(c).unwrap();
        }
        let (out, n) = s.finish().unwrap();
        assert_eq!(n, out.len() as u64);
        out
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                format!("{{\"i\":{i},\"url\":\"https://e.com/{}\"}}\n", i % 977).into_bytes()
            })
            .collect()
    }

    #[test]
    fn one_gzip_member_that_round_trips_and_is_deterministic() {
        let pool = DeflatePool::new(3);
        let data = text(40_000); // several blocks
        assert!(data.len() > 3 * BLOCK);
        // Reference: one thread, every block on a compressor that has done
        // nothing before.
        let fresh = DeflatePool::new(1);
        for level in [1, 4, 6, 9] {
            let a = gzip(&fresh, level, &[&data]);
            // Threads that have finished other files before must agree
            // (a reset compressor did not: it kept the old window).
            for _ in 0..8 {
                assert_eq!(a, gzip(&pool, level, &[&data]), "level {level}");
            }
            // Different write boundaries and timing, same bytes.
            let chunks: Vec<&[u8]> = data.chunks(7919).collect();
            assert_eq!(a, gzip(&pool, level, &chunks), "level {level}");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&a[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "level {level}");
            // A single member: a multi-member reader finds nothing after it.
            let mut multi = Vec::new();
            flate2::read::MultiGzDecoder::new(&a[..])
                .read_to_end(&mut multi)
                .unwrap();
            assert_eq!(multi.len(), data.len());
        }
    }

    #[test]
    fn empty_and_exact_block_inputs() {
        let pool = DeflatePool::new(1);
        for n in [0, 1, BLOCK, 2 * BLOCK] {
            let data = vec![b'x'; n];
            let z = gzip(&pool, 6, &[&data]);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&z[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back.len(), n);
        }
    }
}
