//! Prometheus metrics. The operator-wide families have static, bounded labels (results,
//! operations, status classes, reasons' readiness). The per-endpoint families
//! (`inference_operator_endpoint_*`, labels `namespace` and `name`) have one series per object,
//! removed when the object goes; `--per-object-metrics=false` turns them off for installations
//! with very many objects.

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
    /// One connection's listing (`GET _inference/_all`) serving a re-check round.
    List,
    Create,
    Update,
    Delete,
    /// The health probe's inference call.
    Probe,
    /// The `status.usedBy` read: a dry-run DELETE, which deletes nothing.
    UsedBy,
}

impl EsOperation {
    fn label(self) -> &'static str {
        match self {
            EsOperation::Info => "info",
            EsOperation::Get => "get",
            EsOperation::List => "list",
            EsOperation::Create => "create",
            EsOperation::Update => "update",
            EsOperation::Delete => "delete",
            EsOperation::Probe => "probe",
            EsOperation::UsedBy => "used_by",
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

/// One InferenceEndpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    namespace: String,
    name: String,
}

/// One InferenceEndpoint and a result (`healthy|unhealthy|unknown`, `applied|rejected`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectResultLabels {
    namespace: String,
    name: String,
    result: &'static str,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The per-endpoint families.
#[derive(Default)]
struct PerObject {
    ready: Family<ObjectLabels, Gauge>,
    healthy: Family<ObjectLabels, Gauge>,
    probe_duration: Family<ObjectLabels, FloatGauge>,
    last_success: Family<ObjectLabels, FloatGauge>,
    probes: Family<ObjectResultLabels, Counter>,
    rotations: Family<ObjectResultLabels, Counter>,
}

const PROBE_RESULTS: [&str; 3] = ["healthy", "unhealthy", "unknown"];
const ROTATION_RESULTS: [&str; 2] = ["applied", "rejected"];

pub struct Metrics {
    registry: Registry,
    per_object: PerObject,
    per_object_on: std::sync::atomic::AtomicBool,
    reconciliations: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    es_requests: Family<EsLabels, Counter>,
    es_duration: Family<OperationLabels, Histogram>,
    endpoints: Family<ReadyLabels, Gauge>,
    /// Events the bounded Event queue dropped (controller::events).
    events_dropped: Counter,
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
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped",
            "Events not published because the Event queue was full (the oldest is dropped)",
            events_dropped.clone(),
        );
        let per_object = PerObject::default();
        per_object.register(&mut registry);
        Metrics {
            registry,
            per_object,
            per_object_on: std::sync::atomic::AtomicBool::new(true),
            reconciliations,
            reconcile_duration,
            es_requests,
            es_duration,
            endpoints,
            events_dropped,
            endpoint_counts: Mutex::new(None),
        }
    }
}

impl PerObject {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "endpoint_ready",
            "Per InferenceEndpoint: 1 when its Ready condition is True, else 0",
            self.ready.clone(),
        );
        registry.register(
            "endpoint_healthy",
            "Per InferenceEndpoint with health checks: 1 Healthy, 0 unhealthy, -1 unknown",
            self.healthy.clone(),
        );
        registry.register(
            "endpoint_probe_duration_seconds",
            "Per InferenceEndpoint: how long its last probe took",
            self.probe_duration.clone(),
        );
        registry.register(
            "endpoint_probe_last_success_timestamp_seconds",
            "Per InferenceEndpoint: when its last successful probe ended (Unix time)",
            self.last_success.clone(),
        );
        registry.register(
            "endpoint_probes",
            "Per InferenceEndpoint: probes by result (healthy, unhealthy, unknown)",
            self.probes.clone(),
        );
        registry.register(
            "endpoint_rotations",
            "Per InferenceEndpoint: credential rotations by result (applied, rejected)",
            self.rotations.clone(),
        );
    }
}

fn object(namespace: &str, name: &str) -> ObjectLabels {
    ObjectLabels {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

fn object_result(namespace: &str, name: &str, result: &'static str) -> ObjectResultLabels {
    ObjectResultLabels {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        result,
    }
}

impl Metrics {
    /// The Event queue was full and dropped its oldest Event.
    pub fn event_dropped(&self) {
        self.events_dropped.inc();
    }

    /// How many Events the Event queue dropped so far.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped.get()
    }

    /// Turn the per-endpoint series on or off (`--per-object-metrics`).
    pub fn set_per_object(&self, on: bool) {
        self.per_object_on
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn per_object(&self) -> Option<&PerObject> {
        self.per_object_on
            .load(std::sync::atomic::Ordering::Relaxed)
            .then_some(&self.per_object)
    }

    /// An object's Ready state, and its Healthy state when it is probed (`None`: no series).
    pub fn endpoint_state(&self, namespace: &str, name: &str, ready: bool, healthy: Option<i64>) {
        let Some(m) = self.per_object() else { return };
        let labels = object(namespace, name);
        m.ready.get_or_create(&labels).set(i64::from(ready));
        match healthy {
            Some(h) => {
                m.healthy.get_or_create(&labels).set(h);
            }
            None => {
                m.healthy.remove(&labels);
            }
        }
    }

    /// One probe: its result label, how long it took, and (on success) when it ended.
    pub fn probed(&self, namespace: &str, name: &str, result: &'static str, took: Duration) {
        let Some(m) = self.per_object() else { return };
        let labels = object(namespace, name);
        m.probe_duration
            .get_or_create(&labels)
            .set(took.as_secs_f64());
        if result == PROBE_RESULTS[0] {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            m.last_success.get_or_create(&labels).set(now.as_secs_f64());
        }
        m.probes
            .get_or_create(&object_result(namespace, name, result))
            .inc();
    }

    /// A credential rotation `applied` or `rejected`.
    pub fn rotated(&self, namespace: &str, name: &str, applied: bool) {
        let Some(m) = self.per_object() else { return };
        let result = ROTATION_RESULTS[usize::from(!applied)];
        m.rotations
            .get_or_create(&object_result(namespace, name, result))
            .inc();
    }

    /// The object is gone: remove every series of it.
    pub fn forget_endpoint(&self, namespace: &str, name: &str) {
        let m = &self.per_object;
        let labels = object(namespace, name);
        m.ready.remove(&labels);
        m.healthy.remove(&labels);
        m.probe_duration.remove(&labels);
        m.last_success.remove(&labels);
        for result in PROBE_RESULTS {
            m.probes.remove(&object_result(namespace, name, result));
        }
        for result in ROTATION_RESULTS {
            m.rotations.remove(&object_result(namespace, name, result));
        }
    }

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
    fn per_endpoint_series_come_and_go_with_the_object() {
        let metrics = Metrics::default();
        metrics.endpoint_state("ns", "a", true, Some(1));
        metrics.probed("ns", "a", "healthy", Duration::from_millis(250));
        metrics.rotated("ns", "a", false);
        metrics.endpoint_state("ns", "b", false, None);
        let text = metrics.encode();
        for line in [
            r#"inference_operator_endpoint_ready{namespace="ns",name="a"} 1"#,
            r#"inference_operator_endpoint_healthy{namespace="ns",name="a"} 1"#,
            r#"inference_operator_endpoint_probe_duration_seconds{namespace="ns",name="a"} 0.25"#,
            r#"inference_operator_endpoint_probes_total{namespace="ns",name="a",result="healthy"} 1"#,
            r#"inference_operator_endpoint_rotations_total{namespace="ns",name="a",result="rejected"} 1"#,
            r#"inference_operator_endpoint_ready{namespace="ns",name="b"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        assert!(text.contains("inference_operator_endpoint_probe_last_success_timestamp_seconds{namespace=\"ns\",name=\"a\"}"));
        assert!(!text.contains(r#"endpoint_healthy{namespace="ns",name="b"}"#));
        metrics.forget_endpoint("ns", "a");
        let text = metrics.encode();
        assert!(!text.contains(r#"name="a""#), "{text}");
        metrics.set_per_object(false);
        metrics.endpoint_state("ns", "c", true, None);
        assert!(!metrics.encode().contains(r#"name="c""#));
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
