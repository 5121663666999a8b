//! Test harness: starts the real `hivestream` binary, talks HTTP to it over
//! plain sockets, and reads the bucket back through `object_store` (local
//! directory, or SeaweedFS when `HIVESTREAM_TEST_S3_ENDPOINT` is set).

#![allow(dead_code)]

pub mod cluster;
pub mod cluster_load;
pub mod load;
pub mod proxy;
pub mod verify;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};

pub const UID: &str = "0b1e4c7c-1f53-4d8e-9a4e-7f1c2d3e4f50";

/// Where a test's objects go.
#[derive(Clone, Debug)]
pub enum Backend {
    Local,
    S3 { endpoint: String, bucket: String },
}

impl Backend {
    /// The same S3 bucket reached through another endpoint (a proxy).
    pub fn via(&self, endpoint: &str) -> Backend {
        match self {
            Backend::S3 { bucket, .. } => Backend::S3 {
                endpoint: endpoint.to_string(),
                bucket: bucket.clone(),
            },
            Backend::Local => Backend::Local,
        }
    }
}

/// Every backend this run can test: always the local directory, plus S3 when
/// the test script started SeaweedFS.
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Local];
    if let Ok(endpoint) = std::env::var("HIVESTREAM_TEST_S3_ENDPOINT") {
        let bucket =
            std::env::var("HIVESTREAM_TEST_S3_BUCKET").unwrap_or_else(|_| "hivestream-test".into());
        out.push(Backend::S3 { endpoint, bucket });
    }
    out
}

/// One server setup: a data dir and a sink, kept across restarts.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    pub prefix: String,
    pub extra: Vec<String>,
    /// Extra environment for the server process.
    pub env: Vec<(String, String)>,
    /// The server's data dir (default `{dir}/data`).
    pub data: PathBuf,
}

impl Setup {
    /// A fresh setup in a temporary dir (kept, and its path printed, when
    /// `HIVESTREAM_TEST_KEEP` is set, to read the server log after a failure).
    pub fn new(backend: Backend, name: &str) -> Self {
        let keep = std::env::var_os("HIVESTREAM_TEST_KEEP").is_some();
        let dir = tempfile::Builder::new()
            .prefix(&format!("hivestream-{name}-"))
            .disable_cleanup(keep)
            .tempdir()
            .unwrap();
        if keep {
            eprintln!("{name}: keeping {}", dir.path().display());
        }
        let prefix = format!("t-{name}-{}", std::process::id());
        Self {
            backend,
            prefix,
            extra: Vec::new(),
            env: Vec::new(),
            data: dir.path().join("data"),
            dir,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    pub fn sink_args(&self) -> Vec<String> {
        match &self.backend {
            Backend::Local => vec![
                "--sink".into(),
                format!("file://{}", self.dir.path().join("bucket").display()),
            ],
            Backend::S3 { endpoint, bucket } => vec![
                "--sink".into(),
                format!("s3://{bucket}/{}", self.prefix),
                "--endpoint".into(),
                endpoint.clone(),
                "--region".into(),
                "us-east-1".into(),
            ],
        }
    }

    /// Starts the server and waits until it listens.
    pub fn start(&self, flush: &str) -> Server {
        self.try_start(flush).unwrap_or_else(|| {
            panic!(
                "the server exited before listening; see {}",
                self.log_path().display()
            )
        })
    }

    /// The server's stderr, appended across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Starts the server; `None` when it exits before listening (a
    /// failpoint at start-up, say).
    pub fn try_start(&self, flush: &str) -> Option<Server> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hivestream"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--flush-interval")
            .arg(flush)
            .args(self.sink_args())
            .args(&self.extra)
            .env("HIVESTREAM_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file(self.dir.path())));
        let mut child = cmd.spawn().expect("spawn hivestream");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        };
        Some(Server {
            child,
            addr: addr.to_string(),
        })
    }

    /// The store the server writes to, as the tests read it.
    pub fn store(&self) -> (Arc<dyn ObjectStore>, Option<object_store::path::Path>) {
        match &self.backend {
            Backend::Local => {
                let dir = self.dir.path().join("bucket");
                std::fs::create_dir_all(&dir).unwrap();
                (
                    Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap()),
                    None,
                )
            }
            Backend::S3 { endpoint, bucket } => {
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_endpoint(endpoint)
                    .with_allow_http(true)
                    .with_region("us-east-1")
                    .build()
                    .unwrap();
                (
                    Arc::new(s3),
                    Some(object_store::path::Path::from(self.prefix.as_str())),
                )
            }
        }
    }

    /// Every object under this setup's prefix: key (relative) → lines.
    pub fn objects(&self) -> HashMap<String, Vec<String>> {
        let (store, prefix) = self.store();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use futures::StreamExt;
            let mut out = HashMap::new();
            let mut list = store.list(prefix.as_ref());
            while let Some(meta) = list.next().await {
                let meta = meta.unwrap();
                let bytes = store
                    .get(&meta.location)
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let mut text = String::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_string(&mut text)
                    .unwrap();
                // Every line ends in \n; a snapshot of zero cohorts is empty.
                assert!(
                    text.is_empty() || text.ends_with('\n'),
                    "{} does not end with a newline",
                    meta.location
                );
                let key = meta.location.to_string();
                let rel = match &prefix {
                    Some(p) => key.strip_prefix(&format!("{p}/")).unwrap().to_string(),
                    None => key,
                };
                out.insert(rel, text.lines().map(str::to_string).collect());
            }
            out
        })
    }
}

fn log_file(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap()
}

/// A running server.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits; returns the exit code.
    pub fn terminate(mut self) -> i32 {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        request(&self.addr, "POST", path, headers, body)
    }

    pub fn get(&self, path: &str) -> Response {
        request(&self.addr, "GET", path, &[], b"")
    }

    /// A sample from `GET /metrics`, summed over its label sets.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = String::from_utf8(self.get("/metrics").body).ok()?;
        hivestream_core::metrics::sample(&text, name)
    }

    /// Polls `check` every 100 ms until it holds or `timeout` passes.
    pub fn wait_until(&self, timeout: Duration, mut check: impl FnMut(&Server) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if check(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        check(self)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the process to exit by itself; true if it did.
    pub fn exited_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client (one request per connection). Errors (the
/// server was killed mid-request) come back as status 0.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let failed = Response {
        status: 0,
        headers: Vec::new(),
        body: Vec::new(),
    };
    let Ok(mut s) = TcpStream::connect(addr) else {
        return failed;
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    // A server may answer (413, say) and close before the body is sent:
    // read its answer even when the write fails.
    let _ = s.write_all(req.as_bytes()).and_then(|()| s.write_all(body));
    let mut raw = Vec::new();
    if s.read_to_end(&mut raw).is_err() {
        return failed;
    }
    parse_response(&raw).unwrap_or(failed)
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let body = raw[split + 4..].to_vec();
    Some(Response {
        status,
        headers,
        body,
    })
}

/// A number from the environment (a suite's size or seed), or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sends `sig` (`-TERM`, `-STOP`, …) to process `pid` with kill(1); returns
/// whether it was delivered.
pub fn signal(pid: impl std::fmt::Display, sig: &str) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// An event with `pad` bytes of filler in its properties (for suites that
/// need volume to fill a backlog or a disk).
pub fn event_json_padded(i: usize, pad: usize) -> String {
    if pad == 0 {
        return event_json(i);
    }
    // Pseudo-random letters: compresses about as well as real text, so the
    // bytes that reach the bucket grow with the load.
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let filler: String = (0..pad)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'a' + (x % 26) as u8) as char
        })
        .collect();
    format!(
        r#"{{"name":"Pageview","user_id":"{UID}","segments":[{i}],"properties":{{"i":{i},"pad":"{filler}"}}}}"#
    )
}

pub fn event_json(i: usize) -> String {
    format!(
        r#"{{"name":"Pageview","user_id":"{UID}","segments":[{i},2],"cohorts":["c{i}"],"properties":{{"i":{i},"url":"https://example.com/p/{i}","title":"Page \"{i}\""}}}}"#
    )
}

pub const JSON: (&str, &str) = ("content-type", "application/json");

/// Posts raw JSON items as one batch; asserts 200 and returns the answer.
pub fn post_items(server: &Server, items: &[String]) -> serde_json::Value {
    let body = format!("[{}]", items.join(","));
    let r = server.post("/v2.0/events/batch", &[JSON], body.as_bytes());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Sends a batch; returns the acknowledged event ids (empty if not 200).
pub fn send_batch(addr: &str, from: usize, n: usize) -> Vec<String> {
    let body = format!(
        "[{}]",
        (from..from + n)
            .map(event_json)
            .collect::<Vec<_>>()
            .join(",")
    );
    let resp = request(addr, "POST", "/v2.0/events/batch", &[JSON], body.as_bytes());
    if resp.status != 200 {
        return Vec::new();
    }
    event_ids(&resp.json())
}

/// The `event_id`s a batch answer acknowledged, in order.
pub fn event_ids(v: &serde_json::Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["event_id"].as_str().map(str::to_string))
        .collect()
}

/// Polls until `check` passes on the bucket's objects or `timeout` passes.
pub fn wait_for_objects(
    setup: &Setup,
    timeout: Duration,
    check: impl Fn(&HashMap<String, Vec<String>>) -> bool,
) -> HashMap<String, Vec<String>> {
    let deadline = Instant::now() + timeout;
    loop {
        let objects = setup.objects();
        if check(&objects) || Instant::now() > deadline {
            return objects;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// event_id → how many times it appears across all objects.
pub fn event_counts(objects: &HashMap<String, Vec<String>>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for lines in objects
        .iter()
        .filter(|(k, _)| k.starts_with("type=events/"))
        .map(|(_, v)| v)
    {
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            *counts
                .entry(v["event_id"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    counts
}

/// Objects of one data type, as (key, parsed lines), oldest first by key.
pub fn of_type(
    objects: &HashMap<String, Vec<String>>,
    data_type: &str,
) -> Vec<(String, Vec<serde_json::Value>)> {
    let mut out: Vec<_> = objects
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("type={data_type}/")))
        .map(|(k, lines)| {
            (
                k.clone(),
                lines
                    .iter()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect(),
            )
        })
        .collect();
    out.sort_by(|a: &(String, Vec<serde_json::Value>), b| {
        a.0.rsplit('/').next().cmp(&b.0.rsplit('/').next())
    });
    out
}

/// Runs a Python script with `args` (the suites' readers and clients:
/// DuckDB, pyarrow, boto3, sqlglot, which `scripts/test` installs) and
/// parses its stdout as JSON; a failure shows the script's stderr.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python failed (scripts/test installs its packages): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}
