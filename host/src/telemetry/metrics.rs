//! Prometheus metrics, per tenant and app, served as text on the admin
//! listener's `/metrics`. Label values are bounded by what is deployed
//! (tenant, app) or by fixed sets (status class, `verge-error` code).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Tenant, or `-` when no route matched.
    pub tenant: String,
    /// App, or `-`.
    pub app: String,
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub status_class: String,
    /// The `verge-error` code, empty for guest responses.
    pub error: String,
}

/// Labels per tenant and app.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    /// Tenant.
    pub tenant: String,
    /// App.
    pub app: String,
}

/// Labels of one capability call (KV operation or fetch).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// Tenant.
    pub tenant: String,
    /// `get`, `set`, `delete`, `list`, `increment`, `compare-and-swap`
    /// for KV; `send` for fetch.
    pub op: &'static str,
    /// `ok`, or the error's kind.
    pub outcome: &'static str,
}

/// Status classes, in [`AppMeters`]' order.
const STATUS_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// One app's request series, resolved on their first use and kept (the
/// handles share the families' counters), so recording a request builds no
/// labels and takes no lock: what [`Metrics::request_of`] uses.
#[derive(Debug)]
pub struct AppMeters {
    labels: AppLabels,
    /// Guest answers (no `verge-error`) by status class.
    answers: [std::sync::OnceLock<Counter>; 4],
    latency: std::sync::OnceLock<Histogram>,
    fuel: std::sync::OnceLock<Counter>,
    peak_memory: std::sync::OnceLock<Histogram>,
}

impl AppMeters {
    /// The series of `tenant`'s `app`, none created yet.
    pub fn new(tenant: &str, app: &str) -> Self {
        Self {
            labels: AppLabels {
                tenant: tenant.to_owned(),
                app: app.to_owned(),
            },
            answers: Default::default(),
            latency: Default::default(),
            fuel: Default::default(),
            peak_memory: Default::default(),
        }
    }
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<AppLabels, Histogram>,
    fuel: Family<AppLabels, Counter>,
    peak_memory: Family<AppLabels, Histogram>,
    in_flight: Gauge,
    admission_waiting: Gauge,
    kv_ops: Family<CallLabels, Counter>,
    fetches: Family<CallLabels, Counter>,
    fetch_in_flight: Gauge,
    background: Family<CallLabels, Counter>,
    cache_lookups: Family<CallLabels, Counter>,
    cluster_connected: Gauge,
    cluster_revision_lag: Gauge,
    fleet_diverged: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("verge");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by tenant, app, status class and verge-error code",
            requests.clone(),
        );
        // 50 µs .. ~13 s: hello is ~100 µs, the wall-clock limit is 30 s.
        let latency = Family::<AppLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
        });
        registry.register(
            "request_duration_seconds",
            "Time from request head to response",
            latency.clone(),
        );
        let fuel = Family::<AppLabels, Counter>::default();
        registry.register("guest_fuel", "Fuel consumed by guests", fuel.clone());
        // 64 KiB .. 4 GiB.
        let peak_memory = Family::<AppLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(65_536.0, 2.0, 17))
        });
        registry.register(
            "guest_peak_memory_bytes",
            "Peak linear memory per request",
            peak_memory.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "instances_in_flight",
            "Guest instances running now (instance pool occupancy)",
            in_flight.clone(),
        );
        let admission_waiting = Gauge::default();
        registry.register(
            "admission_waiting",
            "Requests queued for a concurrency slot (global, tenant or app)",
            admission_waiting.clone(),
        );
        let kv_ops = Family::<CallLabels, Counter>::default();
        registry.register(
            "kv_operations",
            "KV operations by tenant, operation and outcome",
            kv_ops.clone(),
        );
        let fetches = Family::<CallLabels, Counter>::default();
        registry.register(
            "fetch_requests",
            "Outbound fetches (redirect hops included) by tenant and outcome",
            fetches.clone(),
        );
        let fetch_in_flight = Gauge::default();
        registry.register(
            "fetch_in_flight",
            "Outbound fetches running now, started and not yet answered or aborted",
            fetch_in_flight.clone(),
        );
        let background = Family::<CallLabels, Counter>::default();
        registry.register(
            "background_tasks",
            "Work run after the response (op: fetch or deferred) by tenant and outcome",
            background.clone(),
        );
        let cache_lookups = Family::<CallLabels, Counter>::default();
        registry.register(
            "cache_lookups",
            "Cache reads by tenant and result: hit, stale, fill (lookup) or miss (get)",
            cache_lookups.clone(),
        );
        let cluster_connected = Gauge::default();
        registry.register(
            "cluster_connected",
            "1 while this fleet node reaches the control plane in Redis (0 on a single node)",
            cluster_connected.clone(),
        );
        let cluster_revision_lag = Gauge::default();
        registry.register(
            "cluster_revision_lag",
            "Control-plane revisions this fleet node is behind Redis, as last seen",
            cluster_revision_lag.clone(),
        );
        let fleet_diverged = Gauge::default();
        registry.register(
            "fleet_diverged",
            "1 while this fleet node refuses Redis's control plane for being older than its own (Redis emptied, restored or failed over): it serves its snapshot and refuses writes until an operator re-seeds or accepts",
            fleet_diverged.clone(),
        );
        Self {
            registry,
            cluster_connected,
            cluster_revision_lag,
            fleet_diverged,
            requests,
            latency,
            fuel,
            peak_memory,
            in_flight,
            admission_waiting,
            kv_ops,
            fetches,
            fetch_in_flight,
            background,
            cache_lookups,
        }
    }
}

impl Metrics {
    /// Records one finished request and the fuel and peak linear memory
    /// (bytes) its guest used.
    #[allow(
        clippy::too_many_arguments,
        reason = "the labels and plain figures of one request"
    )]
    pub fn request(
        &self,
        tenant: &str,
        app: &str,
        status: u16,
        error: &str,
        elapsed: Duration,
        fuel: u64,
        peak_memory: usize,
    ) {
        let class = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let labels = RequestLabels {
            tenant: tenant.to_owned(),
            app: app.to_owned(),
            status_class: class.to_owned(),
            error: error.to_owned(),
        };
        self.requests.get_or_create(&labels).inc();
        let app_labels = AppLabels {
            tenant: labels.tenant,
            app: labels.app,
        };
        self.latency
            .get_or_create(&app_labels)
            .observe(elapsed.as_secs_f64());
        self.record_usage(&app_labels, fuel, peak_memory);
    }

    /// [`Metrics::request`] for an app whose series `meters` holds: no
    /// labels built, no family lock taken once each series exists. Only a
    /// host error (a non-empty `verge-error`) goes through the families.
    pub fn request_of(
        &self,
        meters: &AppMeters,
        status: u16,
        error: &str,
        elapsed: Duration,
        fuel: u64,
        peak_memory: usize,
    ) {
        if !error.is_empty() {
            let labels = &meters.labels;
            self.request(
                &labels.tenant,
                &labels.app,
                status,
                error,
                elapsed,
                fuel,
                peak_memory,
            );
            return;
        }
        let class = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            _ => 3,
        };
        meters.answers[class]
            .get_or_init(|| {
                let labels = RequestLabels {
                    tenant: meters.labels.tenant.clone(),
                    app: meters.labels.app.clone(),
                    status_class: STATUS_CLASSES[class].to_owned(),
                    error: String::new(),
                };
                self.requests.get_or_create(&labels).clone()
            })
            .inc();
        meters
            .latency
            .get_or_init(|| self.latency.get_or_create(&meters.labels).clone())
            .observe(elapsed.as_secs_f64());
        self.usage_of(meters, fuel, peak_memory);
    }

    /// Records a guest's usage known only after its response was sent
    /// (proxy-world components finish after streaming their body).
    pub fn usage_of(&self, meters: &AppMeters, fuel: u64, peak_memory: usize) {
        if fuel > 0 || peak_memory > 0 {
            meters
                .fuel
                .get_or_init(|| self.fuel.get_or_create(&meters.labels).clone())
                .inc_by(fuel);
            meters
                .peak_memory
                .get_or_init(|| self.peak_memory.get_or_create(&meters.labels).clone())
                .observe(peak_memory as f64);
        }
    }

    fn record_usage(&self, labels: &AppLabels, fuel: u64, peak_memory: usize) {
        if fuel > 0 || peak_memory > 0 {
            self.fuel.get_or_create(labels).inc_by(fuel);
            self.peak_memory
                .get_or_create(labels)
                .observe(peak_memory as f64);
        }
    }

    /// A guest instance started (`true`) or finished (`false`).
    pub fn instance(&self, started: bool) {
        if started {
            self.in_flight.inc();
        } else {
            self.in_flight.dec();
        }
    }

    /// A request started (`true`) or stopped (`false`) waiting for a slot.
    pub fn admission_wait(&self, waiting: bool) {
        if waiting {
            self.admission_waiting.inc();
        } else {
            self.admission_waiting.dec();
        }
    }

    /// Counts one KV operation.
    pub fn kv_op(&self, tenant: &str, op: &'static str, outcome: &'static str) {
        self.kv_ops
            .get_or_create(&CallLabels {
                tenant: tenant.to_owned(),
                op,
                outcome,
            })
            .inc();
    }

    /// Whether this fleet node refuses Redis's older control plane.
    pub fn fleet_diverged(&self, diverged: bool) {
        self.fleet_diverged.set(i64::from(diverged));
    }

    /// Records whether this fleet node reaches Redis and how many
    /// revisions it is behind (`None`: unknown, keep the last figure).
    pub fn cluster(&self, connected: bool, lag: Option<u64>) {
        self.cluster_connected.set(i64::from(connected));
        if let Some(lag) = lag {
            self.cluster_revision_lag
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
    }

    /// A fetch task started (`true`) or ended.
    pub fn fetch_in_flight(&self, started: bool) {
        if started {
            self.fetch_in_flight.inc();
        } else {
            self.fetch_in_flight.dec();
        }
    }

    /// Counts one piece of work run after a response: `op` is `fetch` or
    /// `deferred`, `outcome` is `ok` or what stopped it.
    pub fn background(&self, tenant: &str, op: &'static str, outcome: &'static str) {
        self.background
            .get_or_create(&CallLabels {
                tenant: tenant.to_owned(),
                op,
                outcome,
            })
            .inc();
    }

    /// Counts one outbound fetch.
    pub fn fetch(&self, tenant: &str, outcome: &'static str) {
        self.fetches
            .get_or_create(&CallLabels {
                tenant: tenant.to_owned(),
                op: "send",
                outcome,
            })
            .inc();
    }

    /// Counts one cache read.
    pub fn cache_lookup(&self, tenant: &str, result: &'static str) {
        self.cache_lookups
            .get_or_create(&CallLabels {
                tenant: tenant.to_owned(),
                op: "lookup",
                outcome: result,
            })
            .inc();
    }

    /// The Prometheus text exposition, process metrics included.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        let process = super::process::encode();
        match out.rfind("# EOF") {
            Some(at) => out.insert_str(at, &process),
            None => out.push_str(&process),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_record_the_same_series_as_the_labelled_path() {
        let (by_labels, by_meters) = (Metrics::default(), Metrics::default());
        let meters = AppMeters::new("t", "a");
        for (status, error) in [(200, ""), (200, ""), (404, ""), (503, "cpu-limit")] {
            let elapsed = Duration::from_micros(120);
            by_labels.request("t", "a", status, error, elapsed, 5000, 131_072);
            by_meters.request_of(&meters, status, error, elapsed, 5000, 131_072);
        }
        // A proxy-world guest's usage, recorded after its body streamed.
        let labels = AppLabels {
            tenant: "t".into(),
            app: "a".into(),
        };
        by_labels.record_usage(&labels, 7, 65_536);
        by_meters.usage_of(&meters, 7, 65_536);
        // The app's series, not the process gauges (RSS moves between reads).
        let series = |m: &Metrics| -> Vec<String> {
            let mut lines: Vec<String> = m
                .encode()
                .lines()
                .filter(|l| l.contains("tenant="))
                .map(str::to_owned)
                .collect();
            lines.sort();
            lines
        };
        assert_eq!(series(&by_labels), series(&by_meters));
        assert!(
            by_meters.encode().contains(
                r#"verge_requests_total{tenant="t",app="a",status_class="2xx",error=""} 2"#
            )
        );
        assert!(
            !by_meters.encode().contains("3xx"),
            "no series before its first use"
        );
    }

    #[test]
    fn counts_requests_by_labels_and_encodes_text() {
        let m = Metrics::default();
        m.request("t", "a", 200, "", Duration::from_micros(120), 5000, 131_072);
        m.request(
            "t",
            "a",
            503,
            "cpu-limit",
            Duration::from_millis(50),
            600,
            131_072,
        );
        m.instance(true);
        let text = m.encode();
        assert!(
            text.contains(
                r#"verge_requests_total{tenant="t",app="a",status_class="2xx",error=""} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"verge_requests_total{tenant="t",app="a",status_class="5xx",error="cpu-limit"} 1"#
        ));
        assert!(text.contains(r#"verge_guest_fuel_total{tenant="t",app="a"} 5600"#));
        assert!(text.contains("verge_instances_in_flight 1"));
        m.kv_op("t", "get", "ok");
        m.fetch("t", "denied");
        let text = m.encode();
        assert!(text.contains(r#"verge_kv_operations_total{tenant="t",op="get",outcome="ok"} 1"#));
        assert!(
            text.contains(r#"verge_fetch_requests_total{tenant="t",op="send",outcome="denied"} 1"#)
        );
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
