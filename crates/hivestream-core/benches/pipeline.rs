//! The hot stages on a realistic corpus (`hivestream_core::corpus`, the
//! same events `hivestream bench` sends): validating and encoding events as
//! the HTTP handlers do, and partitioning + hashing + gzip-compressing
//! records as the router does, at several levels.
//! `cargo bench -p hivestream-core`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hivestream_core::collect::event::parse_event;
use hivestream_core::corpus::Corpus;
use hivestream_core::log::ingest::Batch;
use hivestream_core::log::record::{DataType, Record};
use hivestream_core::route::keys::Partition;
use hivestream_core::route::{DeflatePool, FileBuilder, FileOptions};

const EVENTS: usize = 2000;
const TIME_MS: i64 = 1_764_000_000_000;

fn corpus() -> Vec<String> {
    let mut c = Corpus::new(7, 5000);
    (0..EVENTS).map(|_| c.event()).collect()
}

/// The stored lines of the corpus, as the router reads them.
fn lines(events: &[String]) -> Vec<Vec<u8>> {
    events
        .iter()
        .map(|e| {
            let mut line = Vec::new();
            let ev = parse_event(e.as_bytes()).unwrap();
            let user = match &ev.user {
                hivestream_core::collect::event::UserRef::Id(u) => *u,
                _ => uuid::Uuid::nil(),
            };
            ev.write_line(&uuid::Uuid::new_v4(), TIME_MS, &user, &mut line);
            line
        })
        .collect()
}

fn validate_and_encode(c: &mut Criterion) {
    let events = corpus();
    let bytes: usize = events.iter().map(String::len).sum();
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("validate_encode_batch", |b| {
        let mut line = Vec::with_capacity(2048);
        b.iter(|| {
            let mut batch = Batch::default();
            for e in &events {
                let ev = parse_event(e.as_bytes()).unwrap();
                line.clear();
                let id = uuid::Uuid::new_v4();
                ev.write_line(&id, TIME_MS, &id, &mut line);
                batch.push(&Record {
                    data_type: DataType::Events,
                    time_ms: TIME_MS,
                    line: &line,
                });
            }
            batch
        })
    });
    g.finish();
}

fn compress(c: &mut Criterion) {
    let lines = lines(&corpus());
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let spool = tempfile::tempdir().unwrap();
    let pool = DeflatePool::per_core();
    let mut g = c.benchmark_group("router_compress");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(20);
    for level in [1u32, 2, 3, 4, 5, 6, 9] {
        let size = build(&lines, spool.path(), &pool, level);
        if level == 1 {
            dump_for_gzip(&lines);
        }
        eprintln!(
            "level {level}: {bytes} -> {size} bytes, ratio {:.3}",
            bytes as f64 / size as f64
        );
        g.bench_with_input(BenchmarkId::new("level", level), &level, |b, &level| {
            b.iter(|| build(&lines, spool.path(), &pool, level))
        });
    }
    g.finish();
}

/// With `HIVESTREAM_BENCH_DUMP=FILE`, writes the lines there, to compare
/// with `gzip -6` on exactly the same bytes.
fn dump_for_gzip(lines: &[Vec<u8>]) {
    if let Some(path) = std::env::var_os("HIVESTREAM_BENCH_DUMP") {
        let mut text = Vec::new();
        for l in lines {
            text.extend_from_slice(l);
            text.push(b'\n');
        }
        std::fs::write(path, text).unwrap();
    }
}

/// Compresses every line into one file; returns its compressed size.
fn build(lines: &[Vec<u8>], spool: &std::path::Path, pool: &DeflatePool, level: u32) -> u64 {
    fn rec(l: &[u8]) -> Record<'_> {
        Record {
            data_type: DataType::Events,
            time_ms: TIME_MS,
            line: l,
        }
    }
    let p = Partition::of(DataType::Events, TIME_MS);
    let opts = FileOptions {
        spool: spool.to_path_buf(),
        level,
        pool: pool.clone(),
    };
    let mut f = FileBuilder::create(1, &opts, 0, &rec(&lines[0]), p).unwrap();
    for (i, l) in lines.iter().enumerate().skip(1) {
        f.push(i as u64, &rec(l)).unwrap();
    }
    f.finish().unwrap().bytes
}

criterion_group!(benches, validate_and_encode, compress);
criterion_main!(benches);
