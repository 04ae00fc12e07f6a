//! Prometheus metrics, per tenant and app, served as text on the admin
//! listener's `/metrics`. Label values are bounded by what is deployed
//! (tenant, app) or by fixed sets (status class, `verge-error` code).

use crate::runtime::Usage;
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

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<AppLabels, Histogram>,
    fuel: Family<AppLabels, Counter>,
    peak_memory: Family<AppLabels, Histogram>,
    in_flight: Gauge,
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
        Self {
            registry,
            requests,
            latency,
            fuel,
            peak_memory,
            in_flight,
        }
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn request(
        &self,
        tenant: &str,
        app: &str,
        status: u16,
        error: &str,
        elapsed: Duration,
        usage: Usage,
    ) {
        let (fuel, peak_memory) = (usage.fuel, usage.peak_memory);
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
        if fuel > 0 || peak_memory > 0 {
            self.fuel.get_or_create(&app_labels).inc_by(fuel);
            self.peak_memory
                .get_or_create(&app_labels)
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

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_by_labels_and_encodes_text() {
        let m = Metrics::default();
        m.request(
            "t",
            "a",
            200,
            "",
            Duration::from_micros(120),
            Usage {
                fuel: 5000,
                peak_memory: 131_072,
            },
        );
        m.request(
            "t",
            "a",
            503,
            "cpu-limit",
            Duration::from_millis(50),
            Usage {
                fuel: 600,
                peak_memory: 131_072,
            },
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
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
