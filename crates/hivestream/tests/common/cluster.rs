//! Harness for the cluster suites: the 3-node NATS JetStream cluster that
//! `scripts/nats-cluster` started (`HIVESTREAM_TEST_NATS`,
//! `HIVESTREAM_TEST_NATS_DIR`), and hivestream `collect` / `route` / `node`
//! processes on it, each test in a deployment of its own (`--cluster-name`).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{backends, signal, Backend, Setup};

/// The test NATS cluster.
pub struct Nats {
    pub urls: String,
    pub dir: PathBuf,
}

impl Nats {
    pub fn from_env() -> Self {
        let need = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run scripts/test, or start scripts/nats-cluster DIR and export HIVESTREAM_TEST_NATS and HIVESTREAM_TEST_NATS_DIR")
            })
        };
        Self {
            urls: need("HIVESTREAM_TEST_NATS"),
            dir: PathBuf::from(need("HIVESTREAM_TEST_NATS_DIR")),
        }
    }

    /// The pid of server `n` (1..=3).
    pub fn pid(&self, n: usize) -> u32 {
        std::fs::read_to_string(self.dir.join(format!("n{n}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn kill9(&self, n: usize) {
        assert!(signal(self.pid(n), "-KILL"), "kill -9 nats n{n}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let proc_dir = PathBuf::from(format!("/proc/{}", self.pid(n)));
        while proc_dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts server `n` again with its config file and waits until its
    /// JetStream is healthy.
    pub fn restart(&self, n: usize) {
        // Started through sh and put in the background, so that it is not
        // this test's child: scripts/nats-cluster --stop ends it by pid file.
        let conf = self.dir.join(format!("n{n}.conf"));
        let log = self.dir.join(format!("n{n}.log"));
        let status = Command::new("sh")
            .arg("-c")
            .arg(r#"nats-server -c "$1" >>"$2" 2>&1 &"#)
            .arg("sh")
            .arg(&conf)
            .arg(&log)
            .status()
            .expect("start nats-server");
        assert!(status.success());
        let url = format!("http://127.0.0.1:{}/healthz", 18221 + n);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if http_ok(&url) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("nats n{n} did not come back");
    }

    /// Runs `f` with a JetStream context on the test cluster (on a
    /// runtime of its own); `None` if the cluster cannot be reached.
    pub fn try_jetstream<R>(
        &self,
        f: impl AsyncFnOnce(async_nats::jetstream::Context) -> R,
    ) -> Option<R> {
        let urls: Vec<String> = self.urls.split(',').map(str::to_string).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let client = async_nats::connect(urls.as_slice()).await.ok()?;
            Some(f(async_nats::jetstream::new(client)).await)
        })
    }

    /// [`Nats::try_jetstream`], failing the test if the cluster is down.
    pub fn jetstream<R>(&self, f: impl AsyncFnOnce(async_nats::jetstream::Context) -> R) -> R {
        self.try_jetstream(f)
            .expect("cannot connect to the test NATS cluster")
    }

    /// Which server (1..=3) leads `stream` now.
    pub fn stream_leader(&self, stream: &str) -> usize {
        self.jetstream(async |js| {
            let mut s = js.get_stream(stream).await.unwrap();
            let info = s.info().await.unwrap();
            let leader = info
                .cluster
                .as_ref()
                .and_then(|c| c.leader.clone())
                .unwrap();
            leader.trim_start_matches('n').parse().unwrap()
        })
    }
}

fn http_ok(url: &str) -> bool {
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let path = &url[url.find(&addr).unwrap() + addr.len()..];
    super::request(&addr, "GET", path, &[], b"").status == 200
}

/// A free loopback port (so a collector restarts on the same address).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One deployment under test: a bucket prefix (through [`Setup`]) and a
/// cluster name of its own.
pub struct ClusterSetup {
    pub sink: Setup,
    pub nats: Nats,
    pub name: String,
    /// Extra flags for every process.
    pub extra: Vec<String>,
}

impl Drop for ClusterSetup {
    /// Deletes the deployment's streams and buckets, so test runs do not
    /// pile up reservations on the shared NATS cluster.
    fn drop(&mut self) {
        let prefix = self.name.to_uppercase();
        self.nats.try_jetstream(async |js| {
            use futures::StreamExt;
            let names: Vec<String> = js
                .stream_names()
                .filter_map(|n| async move { n.ok() })
                .collect()
                .await;
            for name in names {
                if name.starts_with(&format!("{prefix}_"))
                    || name.starts_with(&format!("KV_{prefix}_"))
                {
                    let _ = js.delete_stream(&name).await;
                }
            }
        });
    }
}

/// A running hivestream process of the cluster.
pub struct NodeProc {
    pub id: String,
    pub child: Child,
    /// The HTTP address of a collector.
    pub addr: Option<String>,
    /// The metrics address of a router worker.
    pub metrics: Option<String>,
}

impl ClusterSetup {
    /// On S3 when the suite has SeaweedFS, else on a local directory.
    pub fn new(test: &str) -> Self {
        let backend = backends().pop().unwrap_or(Backend::Local);
        let sink = Setup::new(backend, test);
        let name = format!("t{}_{}", test.replace('-', "_"), std::process::id());
        Self {
            sink,
            nats: Nats::from_env(),
            name,
            extra: Vec::new(),
        }
    }

    /// The suite's defaults for every flag `extra` does not set.
    fn defaults(&self) -> Vec<String> {
        let defaults = [
            ("--flush-interval", "1s"),
            ("--lease-ttl", "3s"),
            ("--partitions", "8"),
            ("--stream-max-bytes", "268435456"),
            ("--identity-max-bytes", "67108864"),
            ("--shutdown-timeout", "30s"),
        ];
        defaults
            .iter()
            .filter(|(flag, _)| !self.extra.iter().any(|e| e.as_str() == *flag))
            .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
            .collect()
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.sink.dir.path().join(format!("{id}.log"))
    }

    /// Starts `hivestream ROLE` (`collect`, `route` or `node`) as `id`,
    /// listening on `port` when it collects; waits until it is ready.
    pub fn spawn(&self, role: &str, id: &str, port: Option<u16>) -> NodeProc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .unwrap();
        let listen = format!("127.0.0.1:{}", port.unwrap_or(0));
        let mut child = Command::new(env!("CARGO_BIN_EXE_hivestream"))
            .arg(role)
            .args(["--nats", &self.nats.urls, "--cluster-name", &self.name])
            .args(["--listen", &listen, "--worker-id", id])
            .arg("--data-dir")
            .arg(self.sink.dir.path().join(id))
            .args(self.sink.sink_args())
            .args(self.defaults())
            .args(&self.extra)
            .env("HIVESTREAM_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn hivestream");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .map(str::to_string);
        let metrics = line
            .trim()
            .split_once(", metrics on ")
            .map(|(_, a)| a.to_string());
        assert!(
            addr.is_some() || metrics.is_some(),
            "{id} did not start; see {}",
            self.log_path(id).display()
        );
        NodeProc {
            id: id.to_string(),
            child,
            addr,
            metrics,
        }
    }
}

impl NodeProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    pub fn terminate(mut self, within: Duration) -> i32 {
        signal(self.child.id(), "-TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit after SIGTERM",
                self.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
