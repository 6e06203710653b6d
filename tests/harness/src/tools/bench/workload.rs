//! The objects the benchmark applies, and counting what the operator sent to whom.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

use crate::env::{ES_CREDENTIALS_SECRET, ES_PASSWORD, ES_USER};
use crate::es::{RecordedRequest, Route};
use crate::kube::{KubeEmulator, RequestRecord};

/// Namespace of the benchmark's InferenceEndpoints.
pub const NAMESPACE: &str = "bench";
/// Namespace of the start-up probe (one pre-existing object).
pub const PROBE_NAMESPACE: &str = "bench-probe";
/// Namespace of the unrelated Secrets.
pub const UNRELATED_NAMESPACE: &str = "unrelated";
/// How many client requests the benchmark keeps in flight when it applies objects.
pub const APPLY_PARALLELISM: usize = 32;

pub fn iep_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "esinference.io",
        "v1alpha1",
        "InferenceEndpoint",
    ))
}

pub fn ieps(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &iep_resource())
}

pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An Opaque Secret carrying the operator's opt-in label (`esinference.io/credentials`).
pub fn secret(namespace: &str, name: &str, pairs: &[(&str, &[u8])]) -> Secret {
    let data: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(base64(v))))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {crate::env::CREDENTIALS_LABEL: "true"}},
        "type": "Opaque",
        "data": data,
    }))
    .expect("Secret")
}

pub fn es_credentials(namespace: &str) -> Secret {
    secret(
        namespace,
        ES_CREDENTIALS_SECRET,
        &[
            ("username", ES_USER.as_bytes()),
            ("password", ES_PASSWORD.as_bytes()),
        ],
    )
}

/// The Secret holding the double's CA (`spec.elasticsearch.caSecretRef`, key `ca.crt`).
pub const ES_CA_SECRET: &str = "es-ca";

pub fn es_ca(namespace: &str, ca_pem: &str) -> Secret {
    secret(namespace, ES_CA_SECRET, &[("ca.crt", ca_pem.as_bytes())])
}

/// The Secret holding endpoint `name`'s Azure key.
pub fn key_secret_name(name: &str) -> String {
    format!("azure-{name}")
}

pub fn key_secret(namespace: &str, name: &str, key: &str) -> Secret {
    secret(
        namespace,
        &key_secret_name(name),
        &[("apiKey", key.as_bytes())],
    )
}

/// A text_embedding InferenceEndpoint against the double, its key in its own Secret; an
/// `https://` double is verified with the CA in [`ES_CA_SECRET`] (the production path: over
/// `http://` every object also gets the `PlaintextCredentials` warning and its Event).
pub fn endpoint(namespace: &str, name: &str, es_url: &str, finalizer: bool) -> DynamicObject {
    let mut metadata = json!({"name": name, "namespace": namespace});
    if finalizer {
        // As left by an earlier run of the operator.
        metadata["finalizers"] = json!(["esinference.io/cleanup"]);
    }
    let mut connection =
        json!({"url": es_url, "credentialsSecretRef": {"name": ES_CREDENTIALS_SECRET}});
    if es_url.starts_with("https://") {
        connection["caSecretRef"] = json!({"name": ES_CA_SECRET});
    }
    serde_json::from_value(json!({
        "apiVersion": "esinference.io/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": metadata,
        "spec": {
            "elasticsearch": connection,
            "taskType": "text_embedding",
            "azureOpenAI": {
                "resourceName": "bench-resource",
                "deploymentId": "embeddings",
                "apiVersion": "2024-10-21",
                "apiKeySecretRef": {"name": key_secret_name(name), "key": "apiKey"}
            }
        }
    }))
    .expect("InferenceEndpoint")
}

pub fn endpoint_name(index: usize) -> String {
    format!("bench-{index:05}")
}

/// Create Secrets with `parallelism` requests in flight.
pub async fn create_secrets(
    client: &kube::Client,
    secrets: Vec<Secret>,
    parallelism: usize,
) -> Result<Duration, String> {
    let started = Instant::now();
    futures::stream::iter(secrets.into_iter().map(Ok::<_, String>))
        .try_for_each_concurrent(parallelism, |secret| {
            let client = client.clone();
            async move {
                let namespace = secret.metadata.namespace.clone().unwrap_or_default();
                let api: Api<Secret> = Api::namespaced(client, &namespace);
                api.create(&PostParams::default(), &secret)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("create Secret: {e}"))
            }
        })
        .await?;
    Ok(started.elapsed())
}

/// Create InferenceEndpoints with `parallelism` requests in flight.
pub async fn create_endpoints(
    client: &kube::Client,
    objects: Vec<DynamicObject>,
    parallelism: usize,
) -> Result<Duration, String> {
    let started = Instant::now();
    futures::stream::iter(objects.into_iter().map(Ok::<_, String>))
        .try_for_each_concurrent(parallelism, |object| {
            let client = client.clone();
            async move {
                let namespace = object.metadata.namespace.clone().unwrap_or_default();
                ieps(&client, &namespace)
                    .create(&PostParams::default(), &object)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("create InferenceEndpoint: {e}"))
            }
        })
        .await?;
    Ok(started.elapsed())
}

/// Whether a stored object's Ready condition is True.
pub fn is_ready(object: &Value) -> bool {
    object["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// How many of `names` (in `namespace`) are Ready, read in-process from the emulator's store
/// (no HTTP request, so nothing is added to the request log).
pub fn ready_count(kube: &KubeEmulator, namespace: &str, names: &BTreeSet<String>) -> usize {
    kube.count_objects("inferenceendpoints", |o| {
        o["metadata"]["namespace"] == namespace
            && o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| names.contains(n))
            && is_ready(o)
    })
}

/// Poll until every name is Ready; returns when that was first observed.
pub async fn wait_all_ready(
    kube: &KubeEmulator,
    namespace: &str,
    names: &BTreeSet<String>,
    timeout: Duration,
) -> Result<Instant, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let polled = Instant::now();
        let ready = ready_count(kube, namespace, names);
        if ready == names.len() {
            return Ok(polled);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {ready} of {} InferenceEndpoints Ready after {timeout:?}",
                names.len()
            ));
        }
        // Listing holds the emulator's lock: poll at most ~10 % of the time.
        let spent = polled.elapsed();
        tokio::time::sleep((spent * 10).max(Duration::from_millis(20))).await;
    }
}

/// Elasticsearch request kinds, as the double classifies them; a dry-run DELETE is the read
/// of what uses an endpoint (`status.usedBy`), not a delete.
pub fn es_kind(request: &RecordedRequest) -> &'static str {
    match request.route {
        Route::Delete if request.is_dry_run() => "used-by read (DELETE ?dry_run)",
        Route::Root => "info (GET /)",
        Route::Get if is_listing(request) => "list (GET _inference/_all)",
        Route::Get => "get (GET _inference)",
        Route::Put => "create (PUT)",
        Route::Update => "update (PUT _update)",
        Route::Delete => "delete (DELETE)",
        Route::Other | Route::Any => "other",
    }
}

pub fn is_es_write(request: &RecordedRequest) -> bool {
    matches!(request.route, Route::Put | Route::Update | Route::Delete) && !request.is_dry_run()
}

pub fn es_counts(requests: &[RecordedRequest]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in requests {
        *counts.entry(es_kind(r).to_owned()).or_insert(0) += 1;
    }
    counts
}

/// `GET _inference/_all` (or `GET _inference`): every endpoint at once, the operator's batched
/// re-check (docs/lifecycle.md#batched-re-checks).
pub fn is_listing(r: &RecordedRequest) -> bool {
    r.route == Route::Get && matches!(r.path.as_str(), "/_inference/_all" | "/_inference")
}

/// Distinct inference ids read with `GET _inference/...` (one per re-verified object); a
/// listing reads them all (`usize::MAX`).
pub fn es_ids_read(requests: &[RecordedRequest]) -> usize {
    if requests
        .iter()
        .any(|r| is_listing(r) && r.status == Some(200))
    {
        return usize::MAX;
    }
    requests
        .iter()
        .filter(|r| r.route == Route::Get)
        .filter_map(|r| r.path.rsplit('/').next())
        .collect::<BTreeSet<_>>()
        .len()
}

/// Kubernetes API requests counted by `METHOD resource[/subresource]`; watches are left out
/// (they are long-running streams, not requests per object).
pub fn k8s_counts(requests: &[RequestRecord], writes: bool) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in requests.iter().filter(|r| !r.watch) {
        if (r.method != "GET") != writes {
            continue;
        }
        let target = match (&r.resource, &r.subresource) {
            (Some(res), Some(sub)) => format!("{res}/{sub}"),
            (Some(res), None) => res.clone(),
            (None, _) => "(discovery)".to_owned(),
        };
        let kind = if r.method == "GET" && r.name.is_none() {
            format!("LIST {target}")
        } else {
            format!("{} {target}", r.method)
        };
        *counts.entry(kind).or_insert(0) += 1;
    }
    counts
}

/// Status writes among counted Kubernetes writes.
pub fn status_writes(writes: &BTreeMap<String, usize>) -> usize {
    writes
        .iter()
        .filter(|(k, _)| k.ends_with("inferenceendpoints/status"))
        .map(|(_, v)| v)
        .sum()
}

/// The `p`-quantile (0..=1) by nearest rank, in milliseconds.
pub fn percentile_ms(samples: &[Duration], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1].as_secs_f64() * 1000.0)
}

/// Pseudo-random bytes (xorshift), so Secrets do not compress to nothing.
pub fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// What the operator has read and written, split off a request log by index.
pub struct Snapshot {
    pub es: usize,
    pub kube: usize,
}

impl Snapshot {
    pub fn take(es: &crate::es::EsDouble, kube: &KubeEmulator) -> Snapshot {
        Snapshot {
            es: es.requests().len(),
            kube: kube.requests().len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, route: Route, query: Option<&str>) -> RecordedRequest {
        RecordedRequest {
            method: method.into(),
            path: "/_inference/text_embedding/e1".into(),
            query: query.map(str::to_owned),
            body: None,
            raw_body: String::new(),
            auth: crate::es::AuthKind::None,
            route,
            at: Instant::now(),
            tag: None,
            status: Some(200),
            seq: 0,
        }
    }

    #[test]
    fn a_dry_run_delete_is_a_read_not_a_write() {
        let used_by = request("DELETE", Route::Delete, Some("dry_run=true"));
        let delete = request("DELETE", Route::Delete, None);
        assert!(!is_es_write(&used_by));
        assert!(is_es_write(&delete));
        assert!(is_es_write(&request("PUT", Route::Put, None)));
        assert!(!is_es_write(&request("GET", Route::Get, None)));
        let counts = es_counts(&[used_by, delete]);
        assert_eq!(counts["used-by read (DELETE ?dry_run)"], 1);
        assert_eq!(counts["delete (DELETE)"], 1);
    }

    #[test]
    fn an_https_double_is_verified_with_the_ca_secret() {
        let spec = |url: &str| serde_json::to_value(endpoint("ns", "a", url, false)).unwrap();
        let tls = spec("https://127.0.0.1:9200");
        assert_eq!(
            tls["spec"]["elasticsearch"]["caSecretRef"]["name"],
            ES_CA_SECRET
        );
        let plain = spec("http://127.0.0.1:9200");
        assert!(plain["spec"]["elasticsearch"].get("caSecretRef").is_none());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&samples, 0.5), Some(50.0));
        assert_eq!(percentile_ms(&samples, 0.99), Some(99.0));
        assert_eq!(percentile_ms(&samples[..1], 0.99), Some(1.0));
        assert_eq!(percentile_ms(&[], 0.5), None);
    }
}
