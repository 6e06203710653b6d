//! The harness's own throughput, measured alone (no operator running), so the operator is not
//! blamed for the emulator or the double.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde_json::json;

use super::workload::{self, NAMESPACE};
use crate::env::{client_for, crds_dir, ES_PASSWORD, ES_USER};
use crate::es::{EsAuth, EsDouble, EsOptions};
use crate::kube::{EmulatorOptions, KubeEmulator};

#[derive(Clone, Debug, Default, Serialize)]
pub struct HarnessLimits {
    /// Requests per measurement, and how many were in flight.
    pub operations: usize,
    pub parallelism: usize,
    /// Emulator: Secret creates per second.
    pub kube_secret_creates_per_s: f64,
    /// Emulator: InferenceEndpoint creates per second (schema + CEL admission).
    pub kube_iep_creates_per_s: f64,
    /// Emulator: server-side-apply status patches per second (what the operator writes).
    pub kube_status_patches_per_s: f64,
    /// Emulator: Secret GETs per second (what the operator reads per reconcile).
    pub kube_secret_gets_per_s: f64,
    /// Double, no latency: endpoint creates (PUT) per second.
    pub es_puts_per_s: f64,
    /// Double, no latency: endpoint GETs per second.
    pub es_gets_per_s: f64,
    /// Double with the benchmark's Azure latency L: `wide_puts` PUTs (N, at most
    /// [`MAX_WIDE_PUTS`]) all in flight at once; `latency_puts` (N) with C in flight below.
    pub latency_puts: usize,
    pub wide_puts: usize,
    pub latency_puts_wall_ms: f64,
    pub latency_ms: f64,
    /// The same N PUTs with only C in flight (the operator's concurrency): the harness's own
    /// floor for the N·L/C bound.
    pub bounded_puts_parallelism: usize,
    pub bounded_puts_wall_ms: f64,
}

fn rate(operations: usize, took: Duration) -> f64 {
    operations as f64 / took.as_secs_f64().max(1e-9)
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        .build()
        .expect("HTTP client")
}

/// The body a client sends to create an Azure OpenAI text_embedding endpoint.
pub fn put_body(key: &str) -> serde_json::Value {
    json!({
        "service": "azureopenai",
        "service_settings": {
            "resource_name": "bench-resource",
            "deployment_id": "embeddings",
            "api_version": "2024-10-21",
            "api_key": key
        }
    })
}

/// PUT one endpoint to the double; fails on a non-2xx answer.
pub async fn put_endpoint(http: &reqwest::Client, es_url: &str, id: &str) -> Result<(), String> {
    let response = http
        .put(format!("{es_url}/_inference/text_embedding/{id}"))
        .basic_auth(ES_USER, Some(ES_PASSWORD))
        .json(&put_body("bench-key"))
        .send()
        .await
        .map_err(|e| format!("PUT {id}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "PUT {id}: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        ));
    }
    Ok(())
}

/// GET one endpoint from the double, as a client reads before it writes (Terraform's refresh);
/// a 404 (not created yet) is an answer too.
pub async fn get_endpoint(http: &reqwest::Client, es_url: &str, id: &str) -> Result<(), String> {
    let response = http
        .get(format!("{es_url}/_inference/text_embedding/{id}"))
        .basic_auth(ES_USER, Some(ES_PASSWORD))
        .send()
        .await
        .map_err(|e| format!("GET {id}: {e}"))?;
    let status = response.status();
    if !(status.is_success() || status == reqwest::StatusCode::NOT_FOUND) {
        return Err(format!("GET {id}: {status}"));
    }
    Ok(())
}

/// Terraform's default parallelism: `terraform apply -parallelism=n`, "Defaults to 10"
/// (<https://developer.hashicorp.com/terraform/cli/commands/apply>, options).
pub const TERRAFORM_PARALLELISM: usize = 10;

/// A Terraform-like client: `parallelism` endpoints in flight, each read (GET) and then created
/// (PUT), as a provider's read-before-create does; the time for `count` endpoints.
pub async fn terraform_like(
    http: &reqwest::Client,
    es_url: &str,
    count: usize,
    parallelism: usize,
) -> Result<Duration, String> {
    timed_concurrent(count, parallelism, |i| {
        let (http, url) = (http.clone(), es_url.to_owned());
        async move {
            let id = format!("tf-{i}");
            get_endpoint(&http, &url, &id).await?;
            put_endpoint(&http, &url, &id).await
        }
    })
    .await
}

/// The most PUTs the harness sends all at once (one connection each; beyond this the test
/// measures the machine's socket limits, not the double).
pub const MAX_WIDE_PUTS: usize = 2000;

/// A double like the benchmark's: security on, any Azure key accepted, Azure latency `latency`.
pub async fn start_double(es_version: &str, latency: Duration) -> EsDouble {
    start_double_with(es_version, latency, false).await
}

/// [`start_double`], over TLS when `tls` (a throw-away CA: [`EsDouble::ca_pem`]).
pub async fn start_double_with(es_version: &str, latency: Duration, tls: bool) -> EsDouble {
    let es = EsDouble::start(EsOptions {
        version: es_version.into(),
        auth: EsAuth::basic(ES_USER, ES_PASSWORD),
        tls,
        ..EsOptions::default()
    })
    .await;
    es.azure()
        .set_unknown_credential_outcome(crate::es::AzureOutcome::Accept);
    es.azure().set_latency(latency);
    es
}

async fn timed_concurrent<F, Fut>(
    operations: usize,
    parallelism: usize,
    f: F,
) -> Result<Duration, String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    futures::stream::iter((0..operations).map(Ok::<_, String>))
        .try_for_each_concurrent(parallelism, f)
        .await?;
    Ok(started.elapsed())
}

pub async fn measure(
    operations: usize,
    parallelism: usize,
    latency: Duration,
    latency_puts: usize,
    concurrency: usize,
    es_version: &str,
) -> Result<HarnessLimits, String> {
    let mut limits = HarnessLimits {
        operations,
        parallelism,
        latency_puts,
        bounded_puts_parallelism: concurrency,
        latency_ms: latency.as_secs_f64() * 1000.0,
        ..HarnessLimits::default()
    };

    // The emulator, with the CRD and its admission rules, as the operator sees it.
    let kube = KubeEmulator::start(EmulatorOptions::default()).await;
    for entry in std::fs::read_dir(crds_dir()).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            kube.register_crd_file(&path);
        }
    }
    kube.create_namespace(NAMESPACE);
    let client = client_for(&kube.url(), NAMESPACE);
    let secrets: Vec<Secret> = (0..operations)
        .map(|i| workload::key_secret(NAMESPACE, &workload::endpoint_name(i), "k"))
        .collect();
    let took = workload::create_secrets(&client, secrets, parallelism).await?;
    limits.kube_secret_creates_per_s = rate(operations, took);

    let objects = (0..operations)
        .map(|i| {
            workload::endpoint(
                NAMESPACE,
                &workload::endpoint_name(i),
                "http://127.0.0.1:9",
                false,
            )
        })
        .collect();
    let took = workload::create_endpoints(&client, objects, parallelism).await?;
    limits.kube_iep_creates_per_s = rate(operations, took);

    let ieps = workload::ieps(&client, NAMESPACE);
    let params = PatchParams::apply("inference-operator").force();
    let took = timed_concurrent(operations, parallelism, |i| {
        let (ieps, params) = (ieps.clone(), params.clone());
        async move {
            let body = json!({
                "apiVersion": "esinference.io/v1alpha1",
                "kind": "InferenceEndpoint",
                "status": {
                    "observedGeneration": 1,
                    "inferenceId": workload::endpoint_name(i),
                    "conditions": [{
                        "type": "Ready", "status": "True", "reason": "Created",
                        "message": "created", "observedGeneration": 1,
                        "lastTransitionTime": "2025-01-01T00:00:00Z"
                    }]
                }
            });
            ieps.patch_status(&workload::endpoint_name(i), &params, &Patch::Apply(&body))
                .await
                .map(|_| ())
                .map_err(|e| format!("status patch: {e}"))
        }
    })
    .await?;
    limits.kube_status_patches_per_s = rate(operations, took);

    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let took = timed_concurrent(operations, parallelism, |i| {
        let api = secrets_api.clone();
        async move {
            api.get(&workload::key_secret_name(&workload::endpoint_name(i)))
                .await
                .map(|_| ())
                .map_err(|e| format!("get Secret: {e}"))
        }
    })
    .await?;
    limits.kube_secret_gets_per_s = rate(operations, took);
    drop(kube);

    // The double, no latency: its processing capacity.
    let es = start_double(es_version, Duration::ZERO).await;
    let http = http_client();
    let url = es.url();
    let took = timed_concurrent(operations, parallelism, |i| {
        let (http, url) = (http.clone(), url.clone());
        async move { put_endpoint(&http, &url, &format!("limit-{i}")).await }
    })
    .await?;
    limits.es_puts_per_s = rate(operations, took);
    let took = timed_concurrent(operations, parallelism, |i| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.get(format!("{url}/_inference/text_embedding/limit-{i}"))
                .basic_auth(ES_USER, Some(ES_PASSWORD))
                .send()
                .await
                .map_err(|e| format!("GET: {e}"))?
                .error_for_status()
                .map(|_| ())
                .map_err(|e| format!("GET: {e}"))
        }
    })
    .await?;
    limits.es_gets_per_s = rate(operations, took);
    drop(es);

    // The double with latency L and every PUT in flight at once: should take about L.
    let es = start_double(es_version, latency).await;
    let url = es.url();
    let started = Instant::now();
    let wide = latency_puts.min(MAX_WIDE_PUTS);
    limits.wide_puts = wide;
    futures::stream::iter(0..wide)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            async move { put_endpoint(&http, &url, &format!("wide-{i}")).await }
        })
        .buffer_unordered(wide.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    limits.latency_puts_wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let took = timed_concurrent(latency_puts, concurrency, |i| {
        let (http, url) = (http.clone(), url.clone());
        async move { put_endpoint(&http, &url, &format!("bounded-{i}")).await }
    })
    .await?;
    limits.bounded_puts_wall_ms = took.as_secs_f64() * 1000.0;
    Ok(limits)
}
