//! Canary: run the operator with recognisable credentials through create, a rejected key,
//! rotation and deletion, with every log at TRACE level captured, and assert that no
//! credential appears — in clear or base64 — in any log line, Event, status, metric or error
//! message. The Azure scenario covers the typed block; the service scenario puts a canary in
//! every secret key of every service of the operator's table and allows it only in the bodies
//! of the requests that write the endpoint to Elasticsearch.
//!
//! Its own test binary, because it installs the process-wide tracing subscriber (once, shared
//! by both scenarios: a log line of one is checked by the other too, which only adds text).

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use inference_operator::elasticsearch::service::{SecretKeys, ServiceProfile, KNOWN};
use inference_testenv::es::{aws_credential, custom_credential, Route, ServiceSpec};
use inference_testenv::{poll, EnvOptions, TestEnv, ES_PASSWORD};
use kube::api::{DeleteParams, ListParams};
use serde_json::{json, Map, Value};
use support::*;
use tracing_subscriber::fmt::MakeWriter;

const FIRST: &str = "CANARY-first-7f3a9c1e5b2d4068";
const REJECTED: &str = "CANARY-rejected-1b2c3d4e5f607182";
const ROTATED: &str = "CANARY-rotated-a9b8c7d6e5f40312";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every form in which a secret could leak: clear text and the base64 variants (Secret data,
/// basic-auth headers).
fn forms(secret: &str) -> Vec<String> {
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut forms = vec![secret.to_owned()];
    for engine in engines {
        let encoded = engine.encode(secret);
        // A leak inside a longer base64 string is aligned differently; the middle part of the
        // encoding is stable enough to catch it.
        forms.push(encoded[..encoded.len() - 4].to_owned());
    }
    forms
}

fn assert_clean(what: &str, text: &str) {
    assert_free_of(what, text, &[FIRST, REJECTED, ROTATED, ES_PASSWORD]);
}

fn assert_free_of(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        for form in forms(secret) {
            assert!(
                !text.contains(&form),
                "{what} contains a credential ({form})"
            );
        }
    }
}

/// Every log line of this process at TRACE level, from the one subscriber.
fn capture() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(captured.clone())
                .with_ansi(false)
                .init();
            captured
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_logs_events_status_or_errors() {
    let captured = capture();

    let env = TestEnv::start().await;
    env.es.azure().accept_credential(FIRST);
    env.es.azure().accept_credential(ROTATED);
    // Probed every 300 ms: the probe's answers, a revoked key's included, must carry no secret.
    let config = inference_operator::controller::Config {
        health_check_interval: Some(Duration::from_millis(300)),
        ..test_config()
    };
    let operator = start_operator(&env, config);

    // Create, then rotate to a key Azure rejects (9.1: the update is not validated, so use a
    // fresh object for the rejection path), then rotate to a valid one, then delete.
    env.put_secret("azure", &[("apiKey", FIRST)]).await;
    create(&env, Iep::embedding("canary").secret("azure").es(&env)).await;
    wait_ready(&env, "canary", "True", "Created").await;
    wait_healthy(&env, "canary", "True").await;
    env.es.azure().revoke_credential(FIRST);
    wait_healthy(&env, "canary", "False").await;
    env.es.azure().accept_credential(FIRST);
    wait_healthy(&env, "canary", "True").await;

    // A rotation to a key the provider refuses, rolled back after the probe (9.1).
    env.put_secret("azure-rot", &[("apiKey", FIRST)]).await;
    create(
        &env,
        Iep::embedding("canary-rot").secret("azure-rot").es(&env),
    )
    .await;
    wait_ready(&env, "canary-rot", "True", "Created").await;
    env.put_secret("azure-rot", &[("apiKey", REJECTED)]).await;
    wait_ready(&env, "canary-rot", "False", "CredentialsRejected").await;

    env.put_secret("azure-bad", &[("apiKey", REJECTED)]).await;
    create(
        &env,
        Iep::embedding("canary-bad").secret("azure-bad").es(&env),
    )
    .await;
    wait_ready(&env, "canary-bad", "False", "AzureRejectedCredentials").await;

    env.put_secret("azure", &[("apiKey", ROTATED)]).await;
    // On 9.1 the rotation also makes Elasticsearch reset the chunking (issue #139574): that
    // report, too, must carry no secret.
    wait_ready(&env, "canary", "True", "ChunkingReset").await;
    assert_eq!(
        env.es.stored_secret("canary"),
        Some(("api_key".into(), ROTATED.into()))
    );

    let statuses: Vec<_> = api(&env)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|iep| serde_json::to_string(&iep.status).unwrap())
        .collect();
    assert_clean("status", &statuses.join("\n"));

    api(&env)
        .delete("canary", &DeleteParams::default())
        .await
        .unwrap();
    api(&env)
        .delete("canary-bad", &DeleteParams::default())
        .await
        .unwrap();
    api(&env)
        .delete("canary-rot", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&env, "canary").await;
    wait_gone(&env, "canary-bad").await;
    wait_gone(&env, "canary-rot").await;
    assert_clean("metrics", &operator.metrics.encode());

    let mut event_text = String::new();
    for name in ["canary", "canary-bad", "canary-rot"] {
        for event in events(&env, name).await {
            event_text.push_str(&serde_json::to_string(&event).unwrap());
        }
    }
    assert!(
        event_text.contains("AzureRejectedCredentials")
            && event_text.contains("ProviderRejectedCredentials")
            && event_text.contains("CredentialsRejected"),
        "events were captured"
    );
    assert_clean("events", &event_text);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture really saw the operator and its HTTP stacks at TRACE level.
    assert!(
        logs.contains("created inference endpoint"),
        "operator logs captured"
    );
    assert!(logs.contains("TRACE"), "trace-level logs captured");
    assert_clean("logs", &logs);
}

/// Wait for the `Healthy` condition's status.
async fn wait_healthy(env: &TestEnv, name: &str, status: &str) {
    let api = api(env);
    let seen = poll(WAIT, inference_testenv::POLL_INTERVAL, || async {
        let iep = api.get(name).await.map_err(|e| e.to_string())?;
        match condition(&iep, "Healthy") {
            Some(c) if c.status == status => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    if let Err(last) = seen {
        panic!("{name}: no Healthy={status}; last {last}");
    }
}

/// One endpoint of the service scenario: a service of the table with a canary in each secret
/// key it sends (a service with a choice of keys has one endpoint per key).
struct Case {
    /// Object, Secret and inference id.
    name: String,
    profile: &'static ServiceProfile,
    /// The secret keys this endpoint sends.
    keys: Vec<&'static str>,
}

impl Case {
    /// Every secret key of every service in the table, each in at least one case.
    fn all() -> Vec<Case> {
        let mut cases = Vec::new();
        for profile in KNOWN {
            let sets: Vec<Vec<&'static str>> = match profile.secrets {
                SecretKeys::None => vec![],
                SecretKeys::AllOf(keys) => vec![keys.to_vec()],
                SecretKeys::OneOf(keys) | SecretKeys::Optional(keys) => {
                    keys.iter().map(|k| vec![*k]).collect()
                }
                SecretKeys::Map(key) => vec![vec![key]],
            };
            for keys in sets {
                let name = format!("c{:02}-{}", cases.len(), profile.service).replace('_', "-");
                cases.push(Case {
                    name,
                    profile,
                    keys,
                });
            }
        }
        cases
    }

    /// The canary of `key` in `round` (0: created with, 1: rotated to). A map's canary is the
    /// value of its `token` entry.
    fn canary(&self, key: &str, round: u8) -> String {
        format!("CANARY-{}-{key}-r{round}-5e1f0a93c7d2", self.name).replace('_', "")
    }

    fn canaries(&self, round: u8) -> Vec<String> {
        self.keys.iter().map(|k| self.canary(k, round)).collect()
    }

    /// The Secret's data in `round`: one entry per secret key (for a map, its entries).
    fn secret_data(&self, round: u8) -> Vec<(String, String)> {
        self.keys
            .iter()
            .flat_map(|key| {
                if self.profile.secrets.is_map(key) {
                    vec![
                        ("token".to_owned(), self.canary(key, round)),
                        ("user".to_owned(), "canary-user".to_owned()),
                    ]
                } else {
                    vec![(key.replace('_', "-"), self.canary(key, round))]
                }
            })
            .collect()
    }

    /// What the fake providers (or fake Azure) must accept for the round's credential.
    fn accept(&self, env: &TestEnv, round: u8) {
        let providers = env.es.providers();
        let canaries = self.canaries(round);
        match (self.profile.secrets, canaries.as_slice()) {
            (SecretKeys::AllOf(_), [access, secret]) => {
                providers.accept_credential(&aws_credential(access, secret))
            }
            (SecretKeys::Map(_), [token]) => providers.accept_credential(&custom_credential(&[
                ("token", token.as_str()),
                ("user", "canary-user"),
            ])),
            (_, [one]) if self.profile.service == "azureopenai" => {
                env.es.azure().accept_credential(one)
            }
            (_, [one]) => providers.accept_credential(one),
            _ => panic!("{}: unexpected secret shape", self.name),
        }
    }

    /// Teach the double the services it does not emulate, so that every case goes through
    /// create and rotation (the double answers `Unknown service` otherwise).
    fn register(&self, env: &TestEnv) {
        if EMULATED.contains(&self.profile.service) {
            return;
        }
        let keys = inference_testenv::es::SecretKeys::all_of(&self.keys);
        let task = self.profile.tasks[0].0.as_str();
        env.es
            .register_service(ServiceSpec::open(self.profile.service, keys, &[task]));
    }

    async fn put_secret(&self, env: &TestEnv, round: u8) {
        let data = self.secret_data(round);
        let pairs: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.put_secret(&self.name, &pairs).await;
    }

    fn iep(&self, env: &TestEnv) -> Iep {
        let mut secret_settings = Map::new();
        for key in &self.keys {
            let source = if self.profile.secrets.is_map(key) {
                json!({"secretRef": {"name": self.name}})
            } else {
                json!({"secretKeyRef": {"name": self.name, "key": key.replace('_', "-")}})
            };
            secret_settings.insert((*key).to_owned(), source);
        }
        let task = self.profile.tasks[0].0.as_str();
        let mut block = json!({
            "name": self.profile.service,
            "settings": settings_for(self.profile.service),
            "secretSettings": secret_settings,
        });
        if let Some(oauth2) = self
            .profile
            .oauth2
            .filter(|o| self.keys.contains(&o.secret))
        {
            for field in oauth2.fields {
                let value = if *field == "scopes" {
                    json!(["https://cognitiveservices.azure.com/.default"])
                } else {
                    json!(format!("canary-{field}"))
                };
                block["settings"][*field] = value;
            }
        }
        Iep::service(&self.name, task, block).es(env)
    }
}

/// The services the double emulates itself (tests/harness/src/es/services.rs `builtin`,
/// `azure.rs`, `ml.rs`).
const EMULATED: &[&str] = &[
    "azureopenai",
    "openai",
    "cohere",
    "amazonbedrock",
    "googlevertexai",
    "custom",
    "hugging_face",
    "elastic",
    "mistral",
    "anthropic",
    "voyageai",
    "jinaai",
    "elasticsearch",
    "elser",
];

/// Its provider refuses the first canary (Elasticsearch's error reaches status and Events).
const REFUSES_FIRST_KEY: &str = "cohere";

/// `service_settings` without secrets that the double accepts for the service's first task type
/// (tests/harness/src/es/services.rs); a `model_id` for the others, which the double may refuse —
/// its error message must then carry no canary either.
fn settings_for(service: &str) -> Value {
    match service {
        "azureopenai" => {
            json!({"resource_name": "canary-res", "deployment_id": "emb", "api_version": "2024-10-21"})
        }
        "amazonbedrock" => {
            json!({"region": "us-east-1", "provider": "amazontitan", "model": "amazon.titan-embed-text-v2:0"})
        }
        "googlevertexai" => {
            json!({"location": "us-central1", "project_id": "p", "model_id": "text-embedding-004"})
        }
        "custom" => json!({"url": "https://api.example.com/embed",
            "headers": {"Authorization": "Bearer ${token}"}, "batch_size": 10,
            "request": "{\"input\": ${input}}",
            "response": {"json_parser": {"text_embeddings": "$.data[*].embedding[*]"}}}),
        "hugging_face" | "hugging_face_elser" => json!({"url": "https://hf.example.com/embed"}),
        "amazon_sagemaker" => {
            json!({"endpoint_name": "canary", "region": "us-east-1", "api": "openai"})
        }
        _ => json!({"model_id": "canary-model"}),
    }
}

/// Whether a request may carry a secret: only the bodies that write the endpoint.
fn writes_endpoint(route: Route) -> bool {
    matches!(route, Route::Put | Route::Update)
}

/// Wait until every canary has reached Elasticsearch in the body of a write.
async fn wait_sent(env: &TestEnv, canaries: &[String]) {
    let sent = poll(WAIT, Duration::from_millis(50), || async {
        let bodies: String = env
            .es
            .requests()
            .iter()
            .filter(|r| writes_endpoint(r.route))
            .map(|r| r.raw_body.clone())
            .collect();
        let missing: Vec<_> = canaries.iter().filter(|c| !bodies.contains(*c)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{missing:?}"))
        }
    })
    .await;
    sent.unwrap_or_else(|missing| panic!("never sent to Elasticsearch: {missing}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_secret_key_of_every_service_reaches_only_the_request_to_elasticsearch() {
    let captured = capture();
    let env = TestEnv::start_with(EnvOptions {
        es_version: "9.5.0".into(),
        ..EnvOptions::default()
    })
    .await;
    let operator = start_operator(&env, test_config());
    let cases = Case::all();
    let covered: Vec<(&str, &str)> = cases
        .iter()
        .flat_map(|c| c.keys.iter().map(|k| (c.profile.service, *k)))
        .collect();
    for profile in KNOWN {
        for key in profile.secrets.names() {
            assert!(
                covered.contains(&(profile.service, key)),
                "{} {key}",
                profile.service
            );
        }
    }

    // Create every endpoint, then rotate every Secret: each canary must reach Elasticsearch
    // (the scenario really exercised it) and nothing else.
    for case in &cases {
        case.register(&env);
        // One provider refuses the first key: its error path must be as clean.
        if case.profile.service != REFUSES_FIRST_KEY {
            case.accept(&env, 0);
        }
        case.accept(&env, 1);
        case.put_secret(&env, 0).await;
        create(&env, case.iep(&env)).await;
    }
    let first: Vec<String> = cases.iter().flat_map(|c| c.canaries(0)).collect();
    wait_sent(&env, &first).await;
    for case in &cases {
        wait_settled(&env, &case.name).await;
    }
    for case in &cases {
        case.put_secret(&env, 1).await;
    }
    let rotated: Vec<String> = cases.iter().flat_map(|c| c.canaries(1)).collect();
    wait_sent(&env, &rotated).await;
    for case in &cases {
        wait_settled(&env, &case.name).await;
    }
    let all: Vec<&str> = first.iter().chain(&rotated).map(String::as_str).collect();

    let statuses: Vec<_> = api(&env)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|iep| serde_json::to_string(&iep.status).unwrap())
        .collect();
    assert_eq!(statuses.len(), cases.len());
    assert_free_of("status", &statuses.join("\n"), &all);

    for case in &cases {
        api(&env)
            .delete(&case.name, &DeleteParams::default())
            .await
            .unwrap();
    }
    let mut event_text = String::new();
    for case in &cases {
        wait_gone(&env, &case.name).await;
        for event in events(&env, &case.name).await {
            event_text.push_str(&serde_json::to_string(&event).unwrap());
        }
    }
    assert!(event_text.contains("Created"), "events were captured");
    assert!(
        event_text.contains("ProviderRejectedCredentials"),
        "the refused first key of {REFUSES_FIRST_KEY} was reported"
    );
    assert_free_of("events", &event_text, &all);

    for request in env.es.requests() {
        let where_ = format!("{} {}", request.method, request.path);
        let url = format!("{}?{}", request.path, request.query.unwrap_or_default());
        assert_free_of(&format!("URL of {where_}"), &url, &all);
        if !writes_endpoint(request.route) {
            assert_free_of(&format!("body of {where_}"), &request.raw_body, &all);
        }
    }
    assert_free_of("metrics", &operator.metrics.encode(), &all);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("TRACE"), "trace-level logs captured");
    assert_free_of("logs", &logs, &all);
}

/// Wait until the object reports on its current generation (Ready with any status, and not a
/// transient `Reconciling` still retrying).
async fn wait_settled(env: &TestEnv, name: &str) {
    let seen = poll(WAIT, Duration::from_millis(50), || async {
        let iep = api(env).get(name).await.map_err(|e| e.to_string())?;
        let ready = condition(&iep, "Ready").cloned().ok_or("no Ready")?;
        let reconciling = condition(&iep, "Reconciling").is_some_and(|c| c.status == "True");
        if reconciling {
            return Err(format!("Reconciling: {}", ready.message));
        }
        Ok(())
    })
    .await;
    seen.unwrap_or_else(|last| panic!("{name}: not settled; {last}"));
}
