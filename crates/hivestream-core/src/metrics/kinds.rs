//! The metric kinds behind [`super::METRICS`]: thin wrappers around
//! `prometheus-client`'s types with the calls the code makes, each able to
//! register itself under its name.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as PCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge as PGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::log::record::DataType;

/// prometheus-client appends `_total` to counter names itself.
fn counter_name(name: &'static str) -> &'static str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// A monotonically increasing count.
#[derive(Default, Debug)]
pub struct Counter(PCounter<u64, AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.0.inc();
    }
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
    pub(super) fn register(&self, r: &mut Registry, name: &'static str, help: &str) {
        r.register(counter_name(name), help, self.0.clone());
    }
}

/// A value that goes up and down.
#[derive(Default, Debug)]
pub struct Gauge(PGauge<i64, AtomicI64>);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.set(v.min(i64::MAX as u64) as i64);
    }
    pub fn add(&self, n: u64) {
        self.0.inc_by(n as i64);
    }
    pub fn sub(&self, n: u64) {
        self.0.dec_by(n as i64);
    }
    pub fn get(&self) -> u64 {
        self.0.get().max(0) as u64
    }
    pub(super) fn register(&self, r: &mut Registry, name: &'static str, help: &str) {
        r.register(name, help, self.0.clone());
    }
}

/// A gauge of seconds.
#[derive(Default, Debug)]
pub struct Seconds(PGauge<f64, AtomicU64>);

impl Seconds {
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }
    pub(super) fn register(&self, r: &mut Registry, name: &'static str, help: &str) {
        r.register(name, help, self.0.clone());
    }
}

/// A histogram.
#[derive(Debug)]
pub struct Hist(Histogram);

impl Hist {
    pub fn new(buckets: impl IntoIterator<Item = f64>) -> Self {
        Self(Histogram::new(buckets))
    }
    pub fn observe(&self, v: f64) {
        self.0.observe(v);
    }
    pub(super) fn register(&self, r: &mut Registry, name: &'static str, help: &str) {
        r.register(name, help, self.0.clone());
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    data_type: &'static str,
}

/// A counter per data type.
#[derive(Default, Debug)]
pub struct ByType(Family<TypeLabel, PCounter<u64, AtomicU64>>);

impl ByType {
    pub fn inc(&self, t: DataType) {
        self.add(t, 1);
    }
    pub fn add(&self, t: DataType, n: u64) {
        self.0
            .get_or_create(&TypeLabel {
                data_type: t.name(),
            })
            .inc_by(n);
    }
    /// The sum over data types.
    pub fn total(&self) -> u64 {
        DataType::ALL
            .iter()
            .map(|t| {
                self.0
                    .get_or_create(&TypeLabel {
                        data_type: t.name(),
                    })
                    .get()
            })
            .sum()
    }
    pub(super) fn register(&self, r: &mut Registry, name: &'static str, help: &str) {
        // Every data type's series exists from the start, at 0, so rates
        // and alerts see it before the first record of that type.
        for t in DataType::ALL {
            self.add(t, 0);
        }
        r.register(counter_name(name), help, self.0.clone());
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

type HistFamily = Family<RouteLabel, Histogram, fn() -> Histogram>;

/// A histogram per route template (a fixed set, plus `unmatched`).
#[derive(Debug)]
pub struct ByRoute(HistFamily);

impl Default for ByRoute {
    fn default() -> Self {
        Self(Family::new_with_constructor(super::seconds_histogram))
    }
}

impl ByRoute {
    pub fn observe(&self, route: &str, v: f64) {
        self.0
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .observe(v);
    }
    pub(super) fn register(&self, r: &mut Registry, name: &'static str, help: &str) {
        r.register(name, help, self.0.clone());
    }
}
