//! Helpers shared by the in-process integration tests: run the real controller against the
//! Kubernetes API emulator and the Elasticsearch double, build objects, wait for conditions.
#![allow(dead_code)]

pub mod helm;

use std::sync::Arc;
use std::time::Duration;

use inference_operator::api::InferenceEndpoint;
use inference_operator::controller::{self, Config};
use inference_operator::http::Health;
use inference_operator::metrics::Metrics;
#[allow(unused_imports)]
pub use inference_testenv::fixtures::{Iep, OpaqueSecret};
use inference_testenv::{eventually, poll, TestEnv, POLL_INTERVAL};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use tokio::sync::watch;

pub const WAIT: Duration = Duration::from_secs(10);

/// The controller running in this test process; stopped (gracefully) on drop.
pub struct Operator {
    stop: Option<watch::Sender<()>>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop.take();
    }
}

/// Settings for tests: fast backoff, and a re-check interval long enough that only the
/// behaviour under test triggers reconciles.
pub fn test_config() -> Config {
    Config {
        recheck_interval: Duration::from_secs(3600),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        // No test holds a PUT past the operator's start: a deletion of an object that never
        // recorded an endpoint need not wait the PUT's 45 s deadline (tests/faults.rs tests it).
        create_in_flight_wait: Some(Duration::from_millis(500)),
        ..Config::default()
    }
}

/// [`test_config`] with a short re-check interval, for tests of what the periodic re-check finds.
pub fn recheck_every(interval: Duration) -> Config {
    Config {
        recheck_interval: interval,
        ..test_config()
    }
}

pub fn start_operator(env: &TestEnv, config: Config) -> Operator {
    let (stop, mut stopped) = watch::channel(());
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    tokio::spawn(controller::run_all(
        env.client.clone(),
        config,
        metrics.clone(),
        health.clone(),
        async move {
            let _ = stopped.changed().await;
        },
    ));
    Operator {
        stop: Some(stop),
        metrics,
        health,
    }
}

pub fn api(env: &TestEnv) -> Api<InferenceEndpoint> {
    Api::namespaced(env.client.clone(), &env.namespace)
}

/// Create the object `iep` builds, in the environment's namespace unless it names one.
pub async fn create(env: &TestEnv, iep: Iep) -> InferenceEndpoint {
    let iep = iep.namespace_or(&env.namespace);
    let namespace = iep.namespace_name().unwrap_or(&env.namespace);
    let api: Api<InferenceEndpoint> = Api::namespaced(env.client.clone(), namespace);
    api.create(&PostParams::default(), &iep.build())
        .await
        .expect("create InferenceEndpoint")
}

pub fn condition<'a>(iep: &'a InferenceEndpoint, type_: &str) -> Option<&'a Condition> {
    iep.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Wait until the Ready condition has `status` and `reason`; on timeout, say what it was.
pub async fn wait_ready(
    env: &TestEnv,
    name: &str,
    status: &str,
    reason: &str,
) -> InferenceEndpoint {
    wait_ready_within(env, name, (status, reason), WAIT, POLL_INTERVAL).await
}

/// [`wait_ready`] with its own timeout and polling interval.
pub async fn wait_ready_within(
    env: &TestEnv,
    name: &str,
    (status, reason): (&str, &str),
    timeout: Duration,
    every: Duration,
) -> InferenceEndpoint {
    let api = api(env);
    let seen = poll(timeout, every, || async {
        let iep = api
            .get(name)
            .await
            .map_err(|e| format!("no object ({e})"))?;
        let Some(ready) = condition(&iep, "Ready") else {
            return Err("no Ready condition".into());
        };
        if ready.status == status && ready.reason == reason {
            return Ok(iep.clone());
        }
        Err(format!(
            "Ready={} {}: {}",
            ready.status, ready.reason, ready.message
        ))
    })
    .await;
    seen.unwrap_or_else(|last| {
        panic!("{name}: waited {timeout:?} for Ready={status} reason={reason}; last seen {last}")
    })
}

pub async fn wait_gone(env: &TestEnv, name: &str) {
    let api = api(env);
    eventually(WAIT, &format!("{name} to be deleted"), || {
        let api = api.clone();
        async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
    })
    .await
}

pub async fn events(env: &TestEnv, name: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.namespace);
    events
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

/// Wait for an Event about `name` with `reason` and `type_` (Events are published off the
/// reconcile path, so they may trail the status by a moment).
pub async fn wait_event(env: &TestEnv, name: &str, reason: &str, type_: &str) {
    let seen = poll(WAIT, POLL_INTERVAL, || async {
        let seen = events(env, name).await;
        if seen
            .iter()
            .any(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some(type_))
        {
            return Ok(());
        }
        let reasons: Vec<_> = seen.iter().map(|e| e.reason.clone()).collect();
        Err(format!("{reasons:?}"))
    })
    .await;
    seen.unwrap_or_else(|reasons| {
        panic!("{name}: no {type_} Event {reason} after {WAIT:?}; saw {reasons}")
    })
}

/// Elasticsearch requests to `_inference/...` with `method`, excluding GETs of `/` and the
/// dry-run DELETEs that read an endpoint's users (`status.usedBy`), which delete nothing.
pub fn es_requests(env: &TestEnv, method: &str) -> usize {
    env.es
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path.starts_with("/_inference") && !r.is_dry_run())
        .count()
}

/// Register a minimal ECK `Elasticsearch` CRD (group `elasticsearch.k8s.elastic.co`, version
/// `v1`, plural `elasticsearches`, namespaced, as in elastic/cloud-on-k8s
/// config/crds/v1/resources/elasticsearch.k8s.elastic.co_elasticsearches.yaml), with a
/// schema that keeps any spec: the operator reads only an Elasticsearch's metadata.
pub fn register_eck_crd(env: &TestEnv) {
    env.kube.register_crd(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "elasticsearches.elasticsearch.k8s.elastic.co"},
        "spec": {
            "group": "elasticsearch.k8s.elastic.co",
            "scope": "Namespaced",
            "names": {"plural": "elasticsearches", "singular": "elasticsearch", "kind": "Elasticsearch", "listKind": "ElasticsearchList", "shortNames": ["es"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    }));
}

/// Create an ECK `Elasticsearch` named `name` in `namespace`, with annotation
/// `esinference.io/allowed-namespaces: <allowed>` when given.
pub async fn create_elasticsearch(
    env: &TestEnv,
    namespace: &str,
    name: &str,
    allowed: Option<&str>,
) {
    let mut metadata = json!({"name": name, "namespace": namespace});
    if let Some(allowed) = allowed {
        metadata["annotations"] = json!({"esinference.io/allowed-namespaces": allowed});
    }
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("elasticsearch.k8s.elastic.co", "v1", "Elasticsearch"),
        "elasticsearches",
    );
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(env.client.clone(), namespace, &resource);
    let object: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "elasticsearch.k8s.elastic.co/v1", "kind": "Elasticsearch",
        "metadata": metadata, "spec": {"version": "9.1.0"}
    }))
    .expect("Elasticsearch");
    api.create(&PostParams::default(), &object)
        .await
        .expect("create Elasticsearch");
}

/// A file in the temporary directory, removed when dropped (a kubeconfig for the operator
/// binary, say). The name carries the test binary's `prefix`, the process id and a random part.
pub struct TempFile(pub std::path::PathBuf);

impl TempFile {
    pub fn new(prefix: &str, name: &str) -> TempFile {
        TempFile(std::env::temp_dir().join(format!(
            "iep-{prefix}-{}-{}-{name}",
            std::process::id(),
            fastrand::u64(..)
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Collect a child process's stderr, line by line, into a shared string (its log).
pub fn collect_stderr(child: &mut tokio::process::Child) -> Arc<std::sync::Mutex<String>> {
    collect_stderr_to_eof(child).0
}

/// [`collect_stderr`], and the task that collects: it ends at the pipe's end of file, so a test
/// that reads the log of an exited process can wait for its last lines first (the exit can be
/// seen before the collector has read them).
pub fn collect_stderr_to_eof(
    child: &mut tokio::process::Child,
) -> (Arc<std::sync::Mutex<String>>, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let sink = log.clone();
    let collector = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    (log, collector)
}
