//! Disk full: the data dir lives on a small filesystem (a loop-mounted ext4
//! image, where ENOSPC can surface at fsync as on a real disk; tmpfs when
//! loop devices are not available), which is filled up under load.
//!
//! Expected: writes get 503 with `Retry-After` (never a 2xx for data that
//! could not be made durable, never a 500 or a dropped connection); health
//! and reads keep working; when space returns, writes succeed again without
//! a restart; the WAL is not corrupted (a restart opens it cleanly); every
//! acknowledged event is in the bucket exactly once.
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it the test says so and
//! skips.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::load::{Load, LoadShape};
use common::verify::assert_exactly_once;
use common::*;

/// A small mounted filesystem, unmounted on drop.
struct SmallFs {
    _base: tempfile::TempDir,
    mount: PathBuf,
    kind: &'static str,
}

fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

impl SmallFs {
    fn mount(mib: u64) -> Option<Self> {
        let base = tempfile::tempdir().unwrap();
        let mount = base.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let image = base.path().join("fs.img");
        let (m, i) = (mount.to_str().unwrap(), image.to_str().unwrap());
        let size = format!("{mib}M");
        let ext4 = run("truncate", &["-s", &size, i])
            && run("mkfs.ext4", &["-q", "-F", i])
            && run("mount", &["-o", "loop", i, m]);
        if ext4 {
            return Some(Self {
                _base: base,
                mount,
                kind: "ext4 on a loop device",
            });
        }
        let opt = format!("size={mib}m");
        run("mount", &["-t", "tmpfs", "-o", &opt, "tmpfs", m]).then_some(Self {
            _base: base,
            mount,
            kind: "tmpfs",
        })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        run("umount", &["-l", self.mount.to_str().unwrap()]);
    }
}

/// Writes a file until the filesystem is full; returns its size.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a; 256 << 10];
    let mut written = 0;
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.sync_all();
    written
}

/// How a scenario treats the disk reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reserve {
    /// The default reserve; the load keeps going the whole time, and the
    /// server must get back to 2xx on its own once space returns.
    Default,
    /// No reserve (`--min-free-bytes 0`): the WAL and the index hit ENOSPC
    /// themselves. Without a reserve nothing stops new writes from eating
    /// freed space again, so the load stops when space returns, as an
    /// operator would pause traffic; then everything must drain.
    Disabled,
}

#[test]
fn full_disk_with_the_default_reserve_recovers_under_load() {
    scenario(Reserve::Default);
}

#[test]
fn wal_and_index_survive_enospc_without_a_reserve() {
    scenario(Reserve::Disabled);
}

fn scenario(reserve: Reserve) {
    let Some(fs) = SmallFs::mount(48) else {
        eprintln!("cannot mount a small filesystem here (needs root); skipped");
        return;
    };
    let mut setup = Setup::new(Backend::Local, "diskfull");
    setup.data = fs.mount.join("data");
    setup.extra = vec!["--max-backlog-bytes".into(), (256u64 << 20).to_string()];
    if reserve == Reserve::Disabled {
        setup.extra.extend(["--min-free-bytes".into(), "0".into()]);
    }
    let server = setup.start("300ms");
    let shape = LoadShape {
        workers: 2,
        batch: 40,
        pause: Duration::from_millis(10),
        pad: 1000,
    };
    let mut load = Some(Load::start(
        &server.addr,
        shape,
        Arc::new(AtomicUsize::new(0)),
    ));
    let stats_now = |l: &Option<Load>| l.as_ref().expect("load running").stats();
    std::thread::sleep(Duration::from_secs(2));
    assert!(stats_now(&load).count(200) > 0);

    let filler = fs.mount.join("filler");
    let filled = fill(&filler);
    let full = server.wait_until(Duration::from_secs(30), |_| {
        stats_now(&load).first_unavailable.is_some()
    });
    assert!(
        full,
        "no 503 after the disk filled up ({filled} bytes of filler)"
    );
    while_full(&server, Duration::from_secs(5));

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut stats = None;
    if reserve == Reserve::Disabled {
        stats = load.take().map(Load::stop);
        let drained = server.wait_until(Duration::from_secs(60), |s| {
            s.metric("hivestream_pending_uploads") == Some(0.0)
                && s.metric("hivestream_backlog_bytes")
                    .is_some_and(|b| b < 1048576.0)
        });
        assert!(drained, "the backlog did not drain after space returned");
    }
    let mut probe_acks = Vec::new();
    let recovered = server.wait_until(Duration::from_secs(60), |s| {
        let ids = send_batch(&s.addr, 1 << 40, 1);
        let ok = !ids.is_empty();
        probe_acks.extend(ids);
        ok
    });
    assert!(
        recovered,
        "writes did not succeed again after space returned"
    );
    let identified = server.wait_until(Duration::from_secs(30), |s| {
        identify(s, "after").status == 200
    });
    assert!(
        identified,
        "identify did not work again after space returned"
    );
    let aliases = server.get(&format!("/v2.0/users/{UID}/aliases")).json();
    assert!(
        aliases
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "after"),
        "{aliases}"
    );
    let recovered_after = freed.elapsed();
    let stats = stats.unwrap_or_else(|| {
        std::thread::sleep(Duration::from_secs(2));
        load.take().expect("load running").stop()
    });
    let metric = |name| server.metric(name).unwrap_or(0.0);
    let (commit_errors, router_restarts, index_reopens) = (
        metric("hivestream_wal_commit_errors_total"),
        metric("hivestream_router_restarts_total"),
        metric("hivestream_index_reopens_total"),
    );
    assert_eq!(server.terminate(), 0);
    if reserve == Reserve::Disabled {
        assert!(
            commit_errors > 0.0,
            "the WAL never hit ENOSPC: the scenario tested nothing"
        );
    }

    // The WAL and the router's state open cleanly after all that.
    let again = setup.start("300ms");
    assert_eq!(again.terminate(), 0);
    let log = std::fs::read_to_string(setup.log_path()).unwrap();
    assert!(
        !log.contains("corrupt"),
        "corruption reported after the disk-full episode"
    );

    stats.assert_only_ok_or_unavailable();
    let mut acked = stats.acked.clone();
    acked.extend(probe_acks);
    let d = assert_exactly_once(&setup, &acked);
    eprintln!(
        "disk full ({reserve:?} reserve) on {}: {filled} bytes of filler; {commit_errors} failed WAL \
         commits, {router_restarts} router restarts, {index_reopens} index reopens; statuses {:?}; \
         writes and identify back {:.1}s after space returned; {} acknowledged, {} found, {} missing, \
         {} duplicated",
        fs.kind,
        stats.statuses,
        recovered_after.as_secs_f64(),
        d.acknowledged,
        d.found,
        d.missing,
        d.duplicated
    );
}

/// While the disk is full: health and reads work, identify answers 200 or
/// 503 (never a 500).
fn while_full(server: &Server, period: Duration) {
    let since = Instant::now();
    while since.elapsed() < period {
        assert_eq!(
            server.get("/healthz").status,
            200,
            "health while the disk is full"
        );
        assert_eq!(
            server.get("/v2/cohorts").status,
            200,
            "reads while the disk is full"
        );
        let status = identify(server, "during").status;
        assert!(
            status == 200 || status == 503,
            "identify while full: {status}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn identify(server: &Server, id: &str) -> Response {
    let body =
        format!(r#"{{"user_id":"{UID}","aliases":[{{"priority":0,"tag":"device","id":"{id}"}}]}}"#);
    server.post("/v2.0/identify", &[JSON], body.as_bytes())
}
