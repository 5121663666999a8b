//! WAL append + group commit: how many ~800-byte records per second one
//! fdatasync carries, for group sizes from 1 (no batching) to 1024.
//! `cargo bench -p hivestream-wal`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hivestream_wal::{Wal, WalOptions};

fn group_commit(c: &mut Criterion) {
    let record = vec![b'x'; 800];
    let mut g = c.benchmark_group("wal_group_commit");
    for group in [1usize, 16, 128, 1024] {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        g.throughput(Throughput::Elements(group as u64));
        g.bench_with_input(BenchmarkId::from_parameter(group), &group, |b, &n| {
            b.iter(|| {
                for _ in 0..n {
                    wal.append(&record).unwrap();
                }
                wal.commit().unwrap();
                if wal.disk_bytes() > 256 << 20 {
                    let end = wal.end_lsn();
                    wal.truncate_before(end).unwrap();
                }
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = group_commit
}
criterion_main!(benches);
