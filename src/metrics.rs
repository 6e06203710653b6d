//! Prometheus metrics. Every label is static and bounded (results, operations, status classes,
//! reasons' readiness): no object names, namespaces or ids, so cardinality does not grow with
//! the number of InferenceEndpoints.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::elasticsearch::EsError;

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReconcileResult {
    Ready,
    Transient,
    Permanent,
    Error,
}

impl ReconcileResult {
    fn label(self) -> &'static str {
        match self {
            ReconcileResult::Ready => "ready",
            ReconcileResult::Transient => "transient",
            ReconcileResult::Permanent => "permanent",
            ReconcileResult::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Elasticsearch operations the operator performs.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum EsOperation {
    Info,
    Get,
    Create,
    Update,
    Delete,
}

impl EsOperation {
    fn label(self) -> &'static str {
        match self {
            EsOperation::Info => "info",
            EsOperation::Get => "get",
            EsOperation::Create => "create",
            EsOperation::Update => "update",
            EsOperation::Delete => "delete",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EsLabels {
    operation: &'static str,
    /// `2xx`, `4xx`, `5xx`, or `none` when no HTTP answer came (connect failure, timeout, TLS).
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    ready: &'static str,
}

pub struct Metrics {
    registry: Registry,
    reconciliations: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    es_requests: Family<EsLabels, Counter>,
    es_duration: Family<OperationLabels, Histogram>,
    endpoints: Family<ReadyLabels, Gauge>,
    /// Counts the `endpoints` gauge at scrape time, while a controller runs.
    endpoint_counts: Mutex<Option<EndpointCounter>>,
}

/// `(ready, not ready, unknown)` over every object the running controller knows.
pub type EndpointCounter = Box<dyn Fn() -> (i64, i64, i64) + Send + Sync>;

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("inference_operator");
        let reconciliations = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciliations",
            "Reconciliations by result (ready, transient or permanent failure, error)",
            reconciliations.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            reconcile_duration.clone(),
        );
        let es_requests = Family::<EsLabels, Counter>::default();
        registry.register(
            "elasticsearch_requests",
            "Elasticsearch requests by operation and HTTP status class",
            es_requests.clone(),
        );
        let es_duration = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "elasticsearch_request_duration_seconds",
            "Latency of Elasticsearch requests by operation",
            es_duration.clone(),
        );
        let endpoints = Family::<ReadyLabels, Gauge>::default();
        registry.register(
            "endpoints",
            "InferenceEndpoint objects by Ready condition (true, false, unknown)",
            endpoints.clone(),
        );
        Metrics {
            registry,
            reconciliations,
            reconcile_duration,
            es_requests,
            es_duration,
            endpoints,
            endpoint_counts: Mutex::new(None),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, result: ReconcileResult, took: Duration) {
        self.reconciliations
            .get_or_create(&ResultLabels {
                result: result.label(),
            })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    pub fn elasticsearch<T>(
        &self,
        operation: EsOperation,
        result: &Result<T, EsError>,
        took: Duration,
    ) {
        let status_class = match result {
            Ok(_) => "2xx",
            Err(error) => match error.status() {
                Some(status) if status >= 500 => "5xx",
                Some(_) => "4xx",
                None => "none",
            },
        };
        let operation = operation.label();
        self.es_requests
            .get_or_create(&EsLabels {
                operation,
                status_class,
            })
            .inc();
        self.es_duration
            .get_or_create(&OperationLabels { operation })
            .observe(took.as_secs_f64());
    }

    /// Set the per-readiness object counts.
    pub fn set_endpoints(&self, ready: i64, not_ready: i64, unknown: i64) {
        for (label, value) in [("true", ready), ("false", not_ready), ("unknown", unknown)] {
            self.endpoints
                .get_or_create(&ReadyLabels { ready: label })
                .set(value);
        }
    }

    /// Count the `endpoints` gauge with `counter` at every scrape, so it is exact and covers
    /// every watched scope at once. Replaces any earlier counter.
    pub fn count_endpoints_with(&self, counter: EndpointCounter) {
        *self.lock_counter() = Some(counter);
    }

    /// The controller stopped (shutdown, or leadership lost): report no objects, so a standby
    /// does not keep reporting what it last saw as leader (summed over pods, counts stay right).
    pub fn stop_counting_endpoints(&self) {
        *self.lock_counter() = None;
        self.set_endpoints(0, 0, 0);
    }

    fn lock_counter(&self) -> std::sync::MutexGuard<'_, Option<EndpointCounter>> {
        self.endpoint_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        if let Some(counter) = self.lock_counter().as_ref() {
            let (ready, not_ready, unknown) = counter();
            self.set_endpoints(ready, not_ready, unknown);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_bounded_labels() {
        let metrics = Metrics::default();
        metrics.reconciled(ReconcileResult::Ready, Duration::from_millis(12));
        metrics.reconciled(ReconcileResult::Permanent, Duration::from_millis(3));
        metrics.elasticsearch::<()>(EsOperation::Create, &Ok(()), Duration::from_millis(200));
        metrics.set_endpoints(2, 1, 0);
        let text = metrics.encode();
        assert!(
            text.contains(r#"inference_operator_reconciliations_total{result="ready"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"inference_operator_elasticsearch_requests_total{operation="create",status_class="2xx"} 1"#), "{text}");
        assert!(
            text.contains(r#"inference_operator_endpoints{ready="true"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("inference_operator_reconcile_duration_seconds_bucket"),
            "{text}"
        );
    }

    #[test]
    fn the_endpoints_gauge_is_counted_at_scrape_time() {
        let metrics = Metrics::default();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(1));
        let counter = seen.clone();
        metrics.count_endpoints_with(Box::new(move || {
            (counter.load(std::sync::atomic::Ordering::SeqCst), 4, 0)
        }));
        assert!(metrics
            .encode()
            .contains(r#"inference_operator_endpoints{ready="true"} 1"#));
        seen.store(3, std::sync::atomic::Ordering::SeqCst);
        let text = metrics.encode();
        assert!(
            text.contains(r#"inference_operator_endpoints{ready="true"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"inference_operator_endpoints{ready="false"} 4"#));
        metrics.stop_counting_endpoints();
        assert!(metrics
            .encode()
            .contains(r#"inference_operator_endpoints{ready="true"} 0"#));
    }
}
