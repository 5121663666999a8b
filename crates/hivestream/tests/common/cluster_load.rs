//! A steady mixed load on a cluster's collectors, which survives any of
//! them dying: event batches (some events known only by aliases from a
//! shared pool), identify calls and cohort changes. It records what was
//! acknowledged, so a suite can check the bucket against it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{event_json, request, JSON};

/// What the load got a 2xx for.
#[derive(Debug, Default, Clone)]
pub struct Acked {
    pub events: Vec<String>,
    /// `(user, crm id)` of each acknowledged identify.
    pub identifies: Vec<(String, String)>,
    /// Names of cohorts acknowledged as created.
    pub cohorts: Vec<String>,
    /// Requests answered 503 (with `Retry-After`) and requests that failed
    /// (connection refused or cut: a collector died).
    pub unavailable: usize,
    pub failed: usize,
    pub other: Vec<u16>,
}

/// The load's threads.
pub struct ClusterLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    acked: Arc<Mutex<Acked>>,
}

/// Alias sets events draw from: many events share each, so most sightings
/// are of known aliases and some are first sightings, on any collector.
pub const ALIAS_POOL: usize = 300;

fn alias_event(i: usize) -> String {
    let k = (i * 7919) % ALIAS_POOL;
    format!(
        r#"{{"name":"Login","aliases":[{{"priority":0,"tag":"email","id":"pool{k}@example.com"}},{{"priority":1,"tag":"cookie","id":"pk{k}"}}],"properties":{{"i":{i}}}}}"#
    )
}

/// Sends to the first live collector from `start` on; returns the answer.
fn send(addrs: &[String], start: usize, method: &str, path: &str, body: &str) -> super::Response {
    let mut last = None;
    for k in 0..addrs.len() {
        let r = request(
            &addrs[(start + k) % addrs.len()],
            method,
            path,
            &[JSON],
            body.as_bytes(),
        );
        if r.status != 0 {
            return r;
        }
        last = Some(r);
    }
    last.expect("at least one collector")
}

fn record(acked: &Mutex<Acked>, status: u16) {
    let mut a = acked.lock().unwrap();
    match status {
        200 | 201 => {}
        503 => a.unavailable += 1,
        0 => a.failed += 1,
        s => a.other.push(s),
    }
}

impl ClusterLoad {
    pub fn start(addrs: Vec<String>, event_threads: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Acked::default()));
        let next = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for t in 0..event_threads {
            let (addrs, stop, acked, next) =
                (addrs.clone(), stop.clone(), acked.clone(), next.clone());
            threads.push(std::thread::spawn(move || {
                events(&addrs, t, &stop, &acked, &next)
            }));
        }
        let (a, s, k) = (addrs.clone(), stop.clone(), acked.clone());
        threads.push(std::thread::spawn(move || identifies(&a, &s, &k)));
        let (a, s, k) = (addrs, stop.clone(), acked.clone());
        threads.push(std::thread::spawn(move || cohorts(&a, &s, &k)));
        Self {
            stop,
            threads,
            acked,
        }
    }

    pub fn acked(&self) -> Acked {
        self.acked.lock().unwrap().clone()
    }

    pub fn stop(self) -> Acked {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let a = self.acked.lock().unwrap().clone();
        a
    }
}

fn events(addrs: &[String], t: usize, stop: &AtomicBool, acked: &Mutex<Acked>, next: &AtomicUsize) {
    let mut turn = t;
    while !stop.load(Ordering::Relaxed) {
        let from = next.fetch_add(20, Ordering::Relaxed);
        let items: Vec<String> = (from..from + 20)
            .map(|i| {
                if i % 4 == 0 {
                    alias_event(i)
                } else {
                    event_json(i)
                }
            })
            .collect();
        let body = format!("[{}]", items.join(","));
        let r = send(addrs, turn, "POST", "/v2.0/events/batch", &body);
        turn += 1;
        record(acked, r.status);
        if r.status == 200 {
            let ids = r.json()["results"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|x| x["event_id"].as_str().map(str::to_string))
                .collect::<Vec<_>>();
            acked.lock().unwrap().events.extend(ids);
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn identifies(addrs: &[String], stop: &AtomicBool, acked: &Mutex<Acked>) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let user = uuid::Uuid::new_v4().to_string();
        let crm = format!("crm-{n}-{}", &user[..8]);
        let body = format!(
            r#"{{"user_id":"{user}","aliases":[{{"priority":0,"tag":"crm","id":"{crm}"}}]}}"#
        );
        let r = send(addrs, n, "POST", "/v2.0/identify", &body);
        record(acked, r.status);
        if r.status == 200 {
            acked.lock().unwrap().identifies.push((user, crm));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cohorts(addrs: &[String], stop: &AtomicBool, acked: &Mutex<Acked>) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("cohort-{n}");
        let body = format!(r#"{{"name":"{name}","tags":["chaos"]}}"#);
        let r = send(addrs, n, "POST", "/v2/cohorts", &body);
        record(acked, r.status);
        if r.status == 201 {
            acked.lock().unwrap().cohorts.push(name);
        }
        std::thread::sleep(Duration::from_millis(700));
    }
}
