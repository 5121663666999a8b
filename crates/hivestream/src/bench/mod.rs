//! `hivestream bench`: a load generator for sizing a deployment.
//!
//! It builds a seeded corpus of realistic events, sends it with N concurrent
//! connections as batches (or single events) at a fixed or unlimited rate,
//! and reports throughput, latency percentiles of the 2xx answers and errors
//! by status. With `--watch SINK` it also follows the bucket and reports how
//! long each acknowledged event took to become visible there.

mod server;
mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use hivestream_core::corpus::Corpus;

/// Which API the load goes to.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `POST /v2.0/events` (with `--batch 1`) or `/v2.0/events/batch`.
    Events,
    /// `POST /v2.0/identify`, one user with two aliases per request.
    Identify,
    /// `POST /v2/cohorts`, one new cohort per request.
    Cohorts,
}

/// Options of `hivestream bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Base URL of the server; several, comma-separated, for a cluster's
    /// collectors (connections are spread over them).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Base URLs whose `/metrics` upload counters are summed to time the
    /// pipeline end to end (a cluster's router workers); default: `--url`.
    #[arg(long)]
    metrics: Option<String>,
    /// The API to load.
    #[arg(long, value_enum, default_value = "events")]
    api: Api,
    /// Events (or identify calls, or cohorts) to send.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Events per request; 1 uses `POST /v2.0/events`, more use the batch endpoint.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Events per second in total; 0 sends as fast as the server answers.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Corpus seed (same seed, same events).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Distinct users in the corpus.
    #[arg(long, default_value_t = 50_000)]
    users: usize,
    /// API key to send in `x-api-key`.
    #[arg(long, env = "HIVESTREAM_BENCH_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Write the corpus as NDJSON to this file and exit without sending.
    #[arg(long)]
    emit_corpus: Option<PathBuf>,
    /// Follow this sink (`file://DIR`, or `s3://BUCKET[/PREFIX]` with `--watch-endpoint`
    /// and AWS_* credentials) and report ack→visible latency.
    #[arg(long)]
    watch: Option<String>,
    #[arg(long)]
    watch_endpoint: Option<String>,
    /// How long to wait for events to become visible after the load ends.
    #[arg(long, default_value = "120s")]
    watch_timeout: String,
    /// Do not wait for the server to upload every acknowledged event.
    #[arg(long)]
    no_wait: bool,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

/// One request's worth of events.
struct Body {
    bytes: bytes::Bytes,
    events: usize,
}

fn build_bodies(args: &BenchArgs) -> Vec<Body> {
    let mut corpus = Corpus::new(args.seed, args.users);
    if args.api != Api::Events {
        return (0..args.events)
            .map(|i| Body {
                bytes: match args.api {
                    Api::Identify => corpus.identify(),
                    _ => corpus.cohort(i),
                }
                .into(),
                events: 1,
            })
            .collect();
    }
    let batch = args.batch.max(1);
    let mut bodies = Vec::with_capacity(args.events / batch + 1);
    let mut left = args.events;
    while left > 0 {
        let n = left.min(batch);
        let events: Vec<String> = (0..n).map(|_| corpus.event()).collect();
        let text = if batch == 1 {
            events.concat()
        } else {
            format!("[{}]", events.join(","))
        };
        bodies.push(Body {
            bytes: text.into(),
            events: n,
        });
        left -= n;
    }
    bodies
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    /// Completion times of 2xx answers, to find the longest stall.
    ok_at: Vec<Instant>,
    statuses: BTreeMap<u16, usize>,
    events_ok: usize,
    bytes_ok: usize,
    acks: Vec<(String, Instant)>,
}

/// Runs the benchmark; returns the process exit code.
pub fn run(args: BenchArgs) -> anyhow::Result<i32> {
    if let Some(path) = &args.emit_corpus {
        let mut corpus = Corpus::new(args.seed, args.users);
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for _ in 0..args.events {
            use std::io::Write;
            writeln!(out, "{}", corpus.event())?;
        }
        std::io::Write::flush(&mut out)?;
        eprintln!("wrote {} events to {}", args.events, path.display());
        return Ok(0);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: BenchArgs) -> anyhow::Result<i32> {
    let gen_start = Instant::now();
    let bodies = Arc::new(build_bodies(&args));
    let corpus_bytes: usize = bodies.iter().map(|b| b.bytes.len()).sum();
    if !args.json {
        eprintln!(
            "corpus: {} events, {:.1} MB, built in {:.2?}",
            args.events,
            corpus_bytes as f64 / 1e6,
            gen_start.elapsed()
        );
    }
    let watcher = match &args.watch {
        Some(sink) => Some(watch::Watcher::start(sink, args.watch_endpoint.as_deref())?),
        None => None,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let urls: Vec<String> = args
        .url
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
        .collect();
    let metrics = args.metrics.as_deref().unwrap_or(&args.url);
    let probe = server::ServerProbe::new(client.clone(), metrics);
    let uploaded_before = probe
        .metric("hivestream_uploaded_records_total")
        .await
        .unwrap_or(0.0);
    let path = match args.api {
        Api::Identify => "/v2.0/identify",
        Api::Cohorts => "/v2/cohorts",
        Api::Events if args.batch <= 1 => "/v2.0/events",
        Api::Events => "/v2.0/events/batch",
    };
    let next = Arc::new(AtomicUsize::new(0));
    let sent_events = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let progress = (!args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .then(|| tokio::spawn(progress(Arc::clone(&sent_events), args.events, start)));
    let mut tasks = Vec::new();
    for i in 0..args.concurrency.max(1) {
        let ctx = Worker {
            client: client.clone(),
            url: format!("{}{path}", urls[i % urls.len()]),
            api_key: args.api_key.clone(),
            bodies: Arc::clone(&bodies),
            next: Arc::clone(&next),
            sent_events: Arc::clone(&sent_events),
            tally: Arc::clone(&tally),
            rate: args.rate,
            start,
            want_ids: watcher.is_some() && args.api == Api::Events,
            single: args.batch <= 1,
        };
        tasks.push(tokio::spawn(ctx.run()));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let mut tally = std::mem::take(&mut *tally.lock().expect("tally lock"));
    let timeout = hivestream_core::config::parse_duration("watch_timeout", &args.watch_timeout)?;
    let e2e = if args.no_wait || args.api != Api::Events {
        None
    } else {
        let target = uploaded_before + tally.events_ok as f64;
        probe
            .wait_uploaded(target, timeout)
            .await
            .map(|t| t.duration_since(start))
    };
    let peak_rss = probe
        .metric("hivestream_process_peak_resident_memory_bytes")
        .await;
    let visible = match watcher {
        Some(w) => Some(w.finish(&tally.acks, timeout).await),
        None => None,
    };
    let summary = summarize(&mut tally, (start, elapsed), e2e, peak_rss, visible);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_text(&summary);
    }
    Ok(if tally.events_ok == args.events { 0 } else { 1 })
}

struct Worker {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
    bodies: Arc<Vec<Body>>,
    next: Arc<AtomicUsize>,
    sent_events: Arc<AtomicUsize>,
    tally: Arc<Mutex<Tally>>,
    rate: u64,
    start: Instant,
    want_ids: bool,
    single: bool,
}

impl Worker {
    async fn run(self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(body) = self.bodies.get(i) else {
                return;
            };
            let before = self.sent_events.fetch_add(body.events, Ordering::Relaxed);
            if self.rate > 0 {
                let due = self.start + Duration::from_secs_f64(before as f64 / self.rate as f64);
                tokio::time::sleep_until(due.into()).await;
            }
            self.send(body).await;
        }
    }

    async fn send(&self, body: &Body) {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.bytes.clone());
        if let Some(k) = &self.api_key {
            req = req.header("x-api-key", k);
        }
        let sent = Instant::now();
        let result = req.send().await;
        let (status, text) = match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.bytes().await.unwrap_or_default())
            }
            Err(_) => (0, bytes::Bytes::new()),
        };
        let done = Instant::now();
        let ids = if self.want_ids && (200..300).contains(&status) {
            event_ids(&text, self.single)
        } else {
            Vec::new()
        };
        let mut t = self.tally.lock().expect("tally lock");
        *t.statuses.entry(status).or_default() += 1;
        if (200..300).contains(&status) {
            t.latencies_us
                .push(done.duration_since(sent).as_micros() as u64);
            t.ok_at.push(done);
            t.events_ok += body.events;
            t.bytes_ok += body.bytes.len();
            t.acks.extend(ids.into_iter().map(|id| (id, done)));
        }
    }
}

/// Event ids acknowledged in a response.
fn event_ids(body: &[u8], single: bool) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    if single {
        return v["event_id"]
            .as_str()
            .map(String::from)
            .into_iter()
            .collect();
    }
    v["results"].as_array().map_or_else(Vec::new, |r| {
        r.iter()
            .filter_map(|x| x["event_id"].as_str().map(String::from))
            .collect()
    })
}

async fn progress(sent: Arc<AtomicUsize>, total: usize, start: Instant) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = sent.load(Ordering::Relaxed).min(total);
        let width = 30;
        let filled = n * width / total.max(1);
        let rate = n as f64 / start.elapsed().as_secs_f64();
        eprint!(
            "\r[{}{}] {n}/{total} events, {rate:.0} ev/s ",
            "#".repeat(filled),
            " ".repeat(width - filled)
        );
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

/// The longest time without a 2xx answer while the load ran: a write
/// stall (a failover), in milliseconds.
fn longest_stall_ms(ok_at: &mut [Instant], start: Instant) -> f64 {
    ok_at.sort_unstable();
    let mut prev = start;
    let mut worst = Duration::ZERO;
    for &t in ok_at.iter() {
        worst = worst.max(t.saturating_duration_since(prev));
        prev = t;
    }
    worst.as_secs_f64() * 1000.0
}

fn summarize(
    t: &mut Tally,
    (start, elapsed): (Instant, Duration),
    e2e: Option<Duration>,
    peak_rss: Option<f64>,
    visible: Option<watch::Visibility>,
) -> serde_json::Value {
    t.latencies_us.sort_unstable();
    let stall = longest_stall_ms(&mut t.ok_at, start);
    let secs = elapsed.as_secs_f64();
    // Ingest to "every acknowledged event uploaded", by the server's count.
    let e2e = e2e.map(|d| {
        let s = d.as_secs_f64();
        serde_json::json!({
            "seconds": s,
            "events_per_sec": t.events_ok as f64 / s,
            "mb_per_sec": t.bytes_ok as f64 / 1e6 / s,
        })
    });
    serde_json::json!({
        "events_ok": t.events_ok,
        "bytes_ok": t.bytes_ok,
        "seconds": secs,
        "events_per_sec": t.events_ok as f64 / secs,
        "mb_per_sec": t.bytes_ok as f64 / 1e6 / secs,
        "ack_ms": {
            "p50": percentile(&t.latencies_us, 0.50),
            "p99": percentile(&t.latencies_us, 0.99),
            "p999": percentile(&t.latencies_us, 0.999),
            "max": t.latencies_us.last().map_or(0.0, |m| *m as f64 / 1000.0),
        },
        "longest_stall_ms": stall,
        "statuses": t.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "e2e": e2e,
        "server_peak_rss_mib": peak_rss.map(|b| b / (1024.0 * 1024.0)),
        "visible": visible,
    })
}

fn print_text(s: &serde_json::Value) {
    println!(
        "{} events in {:.2}s: {:.0} events/s, {:.1} MB/s",
        s["events_ok"],
        s["seconds"].as_f64().unwrap_or(0.0),
        s["events_per_sec"].as_f64().unwrap_or(0.0),
        s["mb_per_sec"].as_f64().unwrap_or(0.0)
    );
    println!(
        "ack latency ms: p50 {} p99 {} p99.9 {} max {}; longest time without a 2xx: {:.0} ms",
        s["ack_ms"]["p50"],
        s["ack_ms"]["p99"],
        s["ack_ms"]["p999"],
        s["ack_ms"]["max"],
        s["longest_stall_ms"].as_f64().unwrap_or(0.0)
    );
    println!("statuses: {}", s["statuses"]);
    if let Some(e) = s["e2e"].as_object() {
        println!(
            "end to end (ingest → every event uploaded): {:.2}s, {:.0} events/s, {:.1} MB/s",
            e["seconds"].as_f64().unwrap_or(0.0),
            e["events_per_sec"].as_f64().unwrap_or(0.0),
            e["mb_per_sec"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(rss) = s["server_peak_rss_mib"].as_f64() {
        println!("server peak RSS: {rss:.1} MiB");
    }
    if !s["visible"].is_null() {
        println!("ack→visible: {}", s["visible"]);
    }
}
