//! Every Elasticsearch service through the generic `spec.service` block, end to end in one
//! process: the real controller against the Kubernetes API emulator and the Elasticsearch
//! double with its fake providers. For each service: create → Ready `Created`; several
//! re-checks with no write to Elasticsearch or Kubernetes; a rotated Secret reaches
//! Elasticsearch through `_update` (never a DELETE); deleting the object deletes the endpoint.

mod support;

use std::time::Duration;

use inference_operator::api::InferenceEndpoint;
use inference_testenv::es::{
    aws_credential, custom_credential, RecordedRequest, Route, SecretKeys, ServiceSpec, TaskSpec,
};
use inference_testenv::{EnvOptions, TestEnv};
use kube::api::DeleteParams;
use serde_json::{json, Value};
use support::*;

/// A release with every service and task type below, where `_update` does not rewrite chunking
/// (elastic/elasticsearch#139574 is fixed there), so a rotation is reported as such.
const ES_VERSION: &str = "9.4.0";
/// Re-check interval of the steady-state checks.
const RECHECK: Duration = Duration::from_millis(300);

async fn env_at(version: &str) -> TestEnv {
    TestEnv::start_with(EnvOptions {
        es_version: version.into(),
        ..EnvOptions::default()
    })
    .await
}

/// One key of a Secret, as `secretSettings` names it.
fn key_ref(secret: &str, key: &str) -> Value {
    json!({"secretKeyRef": {"name": secret, "key": key}})
}

fn requests_on(env: &TestEnv, route: Route) -> Vec<RecordedRequest> {
    env.es
        .requests()
        .into_iter()
        .filter(|r| r.route == route)
        .collect()
}

/// Create the object, wait for Ready `Created` and its Event (Events trail the status; one
/// arriving later would count as a write of the steady state).
async fn create_ready(env: &TestEnv, iep: Iep) -> InferenceEndpoint {
    let name = iep.name().to_owned();
    create(env, iep.es(env)).await;
    let iep = wait_ready(env, &name, "True", "Created").await;
    wait_event(env, &name, "Created", "Normal").await;
    // The double is reached over http://, which the operator reports once (a Warning).
    wait_event(env, &name, "PlaintextCredentials", "Warning").await;
    iep
}

/// Several re-checks of an endpoint that matches its spec: each reads it (GET), none writes to
/// Elasticsearch (PUT, `_update`, DELETE) or to Kubernetes (status, Events, finalizers).
async fn idles_without_writes(env: &TestEnv, task: &str, id: &str) {
    env.es.clear_requests();
    env.kube.clear_requests();
    tokio::time::sleep(RECHECK * 5 + RECHECK / 3).await;
    let requests = env.es.requests();
    let iep = api(env).get(id).await.unwrap();
    let ready = condition(&iep, "Ready").unwrap();
    assert_eq!(ready.status, "True", "{id}: still Ready: {}", ready.message);
    let path = format!("/_inference/{task}/{id}");
    let reads = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count();
    assert!(
        reads >= 3,
        "{id}: at least three re-checks (saw {reads}): {:?}",
        requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "{id}: Elasticsearch writes {writes:?}");
    let kube_writes: Vec<_> = env
        .kube
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        kube_writes.is_empty(),
        "{id}: Kubernetes writes {kube_writes:?}"
    );
}

/// Replace the Secret's data, wait until the object reports the rotation (a new fingerprint,
/// Ready `CredentialsRotated`), and return the one `_update` that carried it. No DELETE, no
/// create.
async fn rotate(env: &TestEnv, name: &str, secret: &str, pairs: &[(&str, &str)]) -> Value {
    let before = api(env).get(name).await.unwrap();
    let before = before.status.unwrap().credential_fingerprint;
    env.es.clear_requests();
    env.put_secret(secret, pairs).await;
    let seen = inference_testenv::poll(WAIT, Duration::from_millis(25), || async {
        let iep = api(env).get(name).await.map_err(|e| e.to_string())?;
        let ready = condition(&iep, "Ready").cloned().ok_or("no Ready")?;
        let status = iep.status.unwrap_or_default();
        if ready.reason == "CredentialsRotated" && status.credential_fingerprint != before {
            return Ok(());
        }
        Err(format!(
            "Ready={} {}: {}",
            ready.status, ready.reason, ready.message
        ))
    })
    .await;
    seen.unwrap_or_else(|last| panic!("{name}: no rotation; last seen {last}"));
    let updates = requests_on(env, Route::Update);
    assert_eq!(updates.len(), 1, "{name}: one _update");
    assert!(
        requests_on(env, Route::Delete).is_empty(),
        "{name}: no DELETE"
    );
    assert!(requests_on(env, Route::Put).is_empty(), "{name}: no create");
    updates[0].body.clone().expect("a JSON _update body")
}

/// Delete the object; the endpoint goes with it.
async fn delete_gone(env: &TestEnv, name: &str) {
    api(env)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(env, name).await;
    assert!(env.es.endpoint(name).is_none(), "{name}: endpoint deleted");
    // Before it, a dry run reads who uses the endpoint (status.usedBy); it deletes nothing.
    let (dry_runs, deletes): (Vec<_>, Vec<_>) = requests_on(env, Route::Delete)
        .into_iter()
        .partition(|r| r.is_dry_run());
    assert_eq!(deletes.len(), 1, "{name}: one DELETE");
    assert!(dry_runs.len() <= 1, "{name}: {dry_runs:?}");
}

#[tokio::test]
async fn openai_text_embedding_lives_idles_rotates_and_goes() {
    let env = env_at(ES_VERSION).await;
    env.es.providers().accept_credential("sk-openai-1");
    env.es.providers().accept_credential("sk-openai-2");
    env.put_secret("openai", &[("apiKey", "sk-openai-1")]).await;
    let _operator = start_operator(&env, recheck_every(RECHECK));
    let iep = Iep::service(
        "oai",
        "text_embedding",
        json!({"name": "openai", "settings": {"model_id": "text-embedding-3-small"},
               "secretSettings": {"api_key": key_ref("openai", "apiKey")}}),
    );
    let ready = create_ready(&env, iep).await;
    let endpoint = ready.status.unwrap().endpoint.unwrap();
    assert_eq!(endpoint.service, "openai");
    assert_eq!(endpoint.dimensions, Some(1536), "learnt from the provider");
    let put = &requests_on(&env, Route::Put)[0];
    assert_eq!(
        put.body.as_ref().unwrap()["service_settings"]["api_key"],
        "sk-openai-1"
    );

    idles_without_writes(&env, "text_embedding", "oai").await;

    let update = rotate(&env, "oai", "openai", &[("apiKey", "sk-openai-2")]).await;
    assert_eq!(update["service_settings"]["api_key"], "sk-openai-2");
    assert_eq!(
        env.es.stored_secrets("oai").unwrap()["api_key"],
        "sk-openai-2"
    );
    idles_without_writes(&env, "text_embedding", "oai").await;

    delete_gone(&env, "oai").await;
}

#[tokio::test]
async fn cohere_rerank_lives_idles_rotates_and_goes() {
    let env = env_at(ES_VERSION).await;
    env.es.providers().accept_credential("co-key-1");
    env.es.providers().accept_credential("co-key-2");
    env.put_secret("cohere", &[("apiKey", "co-key-1")]).await;
    let _operator = start_operator(&env, recheck_every(RECHECK));
    let iep = Iep::service(
        "rr",
        "rerank",
        json!({"name": "cohere", "settings": {"model_id": "rerank-v3.5"},
               "secretSettings": {"api_key": key_ref("cohere", "apiKey")},
               "taskSettings": {"top_n": 5, "return_documents": true}}),
    );
    create_ready(&env, iep).await;
    assert_eq!(
        env.es.endpoint("rr").unwrap()["task_settings"]["top_n"],
        5,
        "task settings reached Elasticsearch"
    );

    idles_without_writes(&env, "rerank", "rr").await;

    let update = rotate(&env, "rr", "cohere", &[("apiKey", "co-key-2")]).await;
    assert_eq!(update["service_settings"]["api_key"], "co-key-2");
    assert_eq!(env.es.stored_secrets("rr").unwrap()["api_key"], "co-key-2");

    delete_gone(&env, "rr").await;
}

#[tokio::test]
async fn amazonbedrock_rotates_both_keys_together_whichever_changed() {
    let env = env_at(ES_VERSION).await;
    let providers = env.es.providers();
    for (access, secret) in [("AKIA1", "s1"), ("AKIA2", "s2"), ("AKIA2", "s3")] {
        providers.accept_credential(&aws_credential(access, secret));
    }
    env.put_secret("aws", &[("accessKey", "AKIA1"), ("secretKey", "s1")])
        .await;
    let _operator = start_operator(&env, recheck_every(RECHECK));
    let iep = Iep::service(
        "titan",
        "text_embedding",
        json!({"name": "amazonbedrock",
               "settings": {"region": "us-east-1", "provider": "amazontitan",
                            "model": "amazon.titan-embed-text-v2:0"},
               "secretSettings": {"access_key": key_ref("aws", "accessKey"),
                                  "secret_key": key_ref("aws", "secretKey")}}),
    );
    create_ready(&env, iep).await;
    let stored = |id| env.es.stored_secrets(id).unwrap();
    assert_eq!(stored("titan")["access_key"], "AKIA1");

    idles_without_writes(&env, "text_embedding", "titan").await;

    // Both keys change in one Secret change: one `_update` with both.
    let update = rotate(
        &env,
        "titan",
        "aws",
        &[("accessKey", "AKIA2"), ("secretKey", "s2")],
    )
    .await;
    let sent = &update["service_settings"];
    assert_eq!(
        (&sent["access_key"], &sent["secret_key"]),
        (&json!("AKIA2"), &json!("s2"))
    );
    assert_eq!(
        (
            &stored("titan")["access_key"],
            &stored("titan")["secret_key"]
        ),
        (&json!("AKIA2"), &json!("s2"))
    );

    // Only the secret key changes: the `_update` still carries the pair (AwsSecretSettings
    // needs both keys together).
    let update = rotate(
        &env,
        "titan",
        "aws",
        &[("accessKey", "AKIA2"), ("secretKey", "s3")],
    )
    .await;
    let sent = &update["service_settings"];
    assert_eq!(
        (&sent["access_key"], &sent["secret_key"]),
        (&json!("AKIA2"), &json!("s3"))
    );
    assert_eq!(stored("titan")["secret_key"], "s3");
    let last = providers.calls_for("amazonbedrock").pop().unwrap();
    assert_eq!(last.credential, aws_credential("AKIA2", "s3"));

    idles_without_writes(&env, "text_embedding", "titan").await;
    delete_gone(&env, "titan").await;
}

#[tokio::test]
async fn elser_without_a_secret_lives_idles_and_goes() {
    let env = env_at(ES_VERSION).await;
    // Deploys at once here; the slow deploy has its own tests.
    env.es.set_model_deploy_time(Duration::ZERO);
    let _operator = start_operator(&env, recheck_every(RECHECK));
    let iep = Iep::service(
        "elser",
        "sparse_embedding",
        json!({"name": "elasticsearch",
               "settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1}}),
    );
    let ready = create_ready(&env, iep).await;
    assert_eq!(
        ready.status.unwrap().endpoint.unwrap().service,
        "elasticsearch"
    );
    assert_eq!(
        env.es.stored_secrets("elser").unwrap().len(),
        0,
        "no secret"
    );
    assert_eq!(
        env.es.deployment_stats("elser").unwrap()["state"],
        "started"
    );

    idles_without_writes(&env, "sparse_embedding", "elser").await;
    delete_gone(&env, "elser").await;
}

#[tokio::test]
async fn googlevertexai_takes_its_service_account_json_from_a_secret() {
    let env = env_at(ES_VERSION).await;
    let first = r#"{"type":"service_account","private_key_id":"k1"}"#;
    let second = r#"{"type":"service_account","private_key_id":"k2"}"#;
    env.es.providers().accept_credential(first);
    env.es.providers().accept_credential(second);
    env.put_secret("vertex", &[("key.json", first)]).await;
    let _operator = start_operator(&env, recheck_every(RECHECK));
    let iep = Iep::service(
        "vtx",
        "text_embedding",
        json!({"name": "googlevertexai",
               "settings": {"location": "us-central1", "project_id": "p", "model_id": "text-embedding-004"},
               "secretSettings": {"service_account_json": key_ref("vertex", "key.json")}}),
    );
    create_ready(&env, iep).await;
    assert_eq!(
        env.es.stored_secrets("vtx").unwrap()["service_account_json"],
        first
    );

    idles_without_writes(&env, "text_embedding", "vtx").await;

    let update = rotate(&env, "vtx", "vertex", &[("key.json", second)]).await;
    assert_eq!(update["service_settings"]["service_account_json"], second);
    assert_eq!(
        env.es.stored_secrets("vtx").unwrap()["service_account_json"],
        second
    );

    delete_gone(&env, "vtx").await;
}

/// A `custom` text_embedding endpoint whose `secret_parameters` are every key of Secret
/// `custom-params`, with `more` settings.
fn custom_embedding(name: &str, more: Value) -> Iep {
    let mut settings = json!({"url": "https://api.example.com/embed",
        "headers": {"Authorization": "Bearer ${api_key}"},
        "request": "{\"input\": ${input}}",
        "response": {"json_parser": {"text_embeddings": "$.data[*].embedding[*]"}}});
    for (key, value) in more.as_object().unwrap() {
        settings[key] = value.clone();
    }
    Iep::service(
        name,
        "text_embedding",
        json!({"name": "custom", "settings": settings,
               "secretSettings": {"secret_parameters": {"secretRef": {"name": "custom-params"}}}}),
    )
}

#[tokio::test]
async fn custom_takes_secret_parameters_from_a_whole_secret_and_rotation_replaces_the_map() {
    let env = env_at(ES_VERSION).await;
    let providers = env.es.providers();
    providers.accept_credential(&custom_credential(&[("api_key", "c1"), ("org", "o1")]));
    providers.accept_credential(&custom_credential(&[("api_key", "c2")]));
    env.put_secret("custom-params", &[("api_key", "c1"), ("org", "o1")])
        .await;
    let _operator = start_operator(&env, recheck_every(RECHECK));
    // `batch_size` left to Elasticsearch's default (10), which the table lists as filled in.
    let iep = custom_embedding("cust", json!({}));
    create_ready(&env, iep).await;
    assert_eq!(
        env.es.stored_secrets("cust").unwrap()["secret_parameters"],
        json!({"api_key": "c1", "org": "o1"})
    );

    idles_without_writes(&env, "text_embedding", "cust").await;

    // The Secret loses a key and changes the other: the whole map is sent, and replaces the
    // stored one (nothing of the old map is left behind).
    let update = rotate(&env, "cust", "custom-params", &[("api_key", "c2")]).await;
    assert_eq!(
        update["service_settings"]["secret_parameters"],
        json!({"api_key": "c2"})
    );
    assert_eq!(
        env.es.stored_secrets("cust").unwrap()["secret_parameters"],
        json!({"api_key": "c2"})
    );

    delete_gone(&env, "cust").await;
}

/// `acme`: a service this Elasticsearch knows and the operator's table does not. Elasticsearch
/// fills in settings the user did not set (a rate limit, an `api_version`).
fn register_acme(env: &TestEnv) {
    let mut acme = ServiceSpec::open("acme", SecretKeys::all_of(&["token"]), &[]);
    acme.tasks = vec![TaskSpec::new("text_embedding", "8.0.0", &["model_id"], &[])
        .rate_limit(100)
        .default("api_version", json!("v2"))];
    env.es.register_service(acme);
}

#[tokio::test]
async fn a_service_missing_from_the_table_is_passed_through_with_a_warning() {
    let env = env_at(ES_VERSION).await;
    register_acme(&env);
    env.es.providers().accept_credential("acme-1");
    env.es.providers().accept_credential("acme-2");
    env.put_secret("acme", &[("token", "acme-1")]).await;
    let _operator = start_operator(&env, recheck_every(RECHECK));
    let iep = Iep::service(
        "acme",
        "text_embedding",
        json!({"name": "acme", "settings": {"model_id": "m1"},
               "secretSettings": {"token": key_ref("acme", "token")}}),
    );
    let ready = create_ready(&env, iep).await;
    let unknown = condition(&ready, "UnknownService").expect("UnknownService condition");
    assert_eq!(
        (unknown.status.as_str(), unknown.reason.as_str()),
        ("True", "NotInServiceTable")
    );
    assert!(unknown.message.contains("acme"), "{}", unknown.message);
    wait_event(&env, "acme", "NotInServiceTable", "Warning").await;
    assert_eq!(env.es.stored_secrets("acme").unwrap()["token"], "acme-1");
    let stored = env.es.endpoint("acme").unwrap();
    assert_eq!(stored["service_settings"]["api_version"], "v2", "filled in");

    // What Elasticsearch filled in is not compared: no write. That holds for task settings
    // too (a default Elasticsearch reports for a newer service, here added behind the scenes).
    idles_without_writes(&env, "text_embedding", "acme").await;
    env.es.modify_out_of_band("acme", |config| {
        config["task_settings"] = json!({"truncate": "END"});
    });
    idles_without_writes(&env, "text_embedding", "acme").await;

    let update = rotate(&env, "acme", "acme", &[("token", "acme-2")]).await;
    assert_eq!(update["service_settings"]["token"], "acme-2");
    assert_eq!(env.es.stored_secrets("acme").unwrap()["token"], "acme-2");

    // What the user set is compared: a model changed behind the operator's back is drift.
    env.es.modify_out_of_band("acme", |config| {
        config["service_settings"]["model_id"] = json!("m2");
    });
    let seen = inference_testenv::poll(WAIT, Duration::from_millis(25), || async {
        let iep = api(&env).get("acme").await.map_err(|e| e.to_string())?;
        let ready = condition(&iep, "Ready").cloned().ok_or("no Ready")?;
        if ready.status == "False" && ready.message.contains("model_id") {
            return Ok(());
        }
        Err(format!(
            "Ready={} {}: {}",
            ready.status, ready.reason, ready.message
        ))
    })
    .await;
    seen.unwrap_or_else(|last| panic!("drift of model_id not reported; last seen {last}"));
    assert!(
        requests_on(&env, Route::Put).is_empty(),
        "drift is reported, not overwritten"
    );

    env.es.clear_requests();
    delete_gone(&env, "acme").await;
}

#[tokio::test]
async fn a_rejected_key_is_a_provider_reason_and_azure_keeps_its_own() {
    let env = env_at(ES_VERSION).await;
    env.put_secret("openai", &[("apiKey", "sk-revoked")]).await;
    env.put_secret("azure", &[("apiKey", "azure-revoked")])
        .await;
    let _operator = start_operator(&env, test_config());
    let openai = Iep::service(
        "bad-oai",
        "text_embedding",
        json!({"name": "openai", "settings": {"model_id": "text-embedding-3-small"},
               "secretSettings": {"api_key": key_ref("openai", "apiKey")}}),
    );
    create(&env, openai.es(&env)).await;
    create(&env, Iep::embedding("bad-azure").secret("azure").es(&env)).await;

    let iep = wait_ready(&env, "bad-oai", "False", "ProviderRejectedCredentials").await;
    let message = &condition(&iep, "Ready").unwrap().message;
    assert!(!message.contains("sk-revoked"), "{message}");
    wait_ready(&env, "bad-azure", "False", "AzureRejectedCredentials").await;
    assert!(env.es.endpoint("bad-oai").is_none());
}

#[tokio::test]
async fn a_task_type_the_cluster_lacks_is_refused_with_the_release_that_has_it() {
    // Bedrock's chat_completion arrived in 9.2.
    let env = env_at("9.1.0").await;
    env.put_secret("aws", &[("accessKey", "AKIA1"), ("secretKey", "s1")])
        .await;
    let _operator = start_operator(&env, test_config());
    let iep = Iep::service(
        "chat",
        "chat_completion",
        json!({"name": "amazonbedrock",
               "settings": {"region": "us-east-1", "provider": "anthropic",
                            "model": "anthropic.claude-3-haiku"},
               "secretSettings": {"access_key": key_ref("aws", "accessKey"),
                                  "secret_key": key_ref("aws", "secretKey")}}),
    );
    create(&env, iep.es(&env)).await;
    let iep = wait_ready(&env, "chat", "False", "UnsupportedByCluster").await;
    let message = &condition(&iep, "Ready").unwrap().message;
    assert!(message.contains("needs Elasticsearch 9.4+"), "{message}");
    assert!(
        message.contains("9.1.0"),
        "names the cluster's version: {message}"
    );
    assert!(
        requests_on(&env, Route::Put).is_empty(),
        "refused before any PUT"
    );
}

/// The fingerprint the previous release stored for a single credential: HMAC-SHA256 keyed with
/// the object's uid over `field`, NUL, value, truncated to 128 bits (src/secrets.rs before the
/// generic block; written out here so that a change of the formula fails this test).
fn previous_fingerprint(uid: &str, field: &str, value: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(uid.as_bytes()).unwrap();
    mac.update(format!("{field}\0{value}").as_bytes());
    format!(
        "hmac-sha256:{}",
        hex::encode(&mac.finalize().into_bytes()[..16])
    )
}

/// `examples/text-embedding.yaml` as the previous release shipped it (the typed Azure block),
/// with its placeholders except the Elasticsearch URL, which points at the double.
async fn apply_previous_example(env: &TestEnv) {
    let text = include_str!("fixtures/previous-main/text-embedding.yaml");
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).unwrap();
    for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
        if doc["kind"] == "Secret" {
            let secret = serde_json::from_value(doc).unwrap();
            env.secrets()
                .create(&Default::default(), &secret)
                .await
                .expect("the previous example's Secret");
        } else {
            doc["spec"]["elasticsearch"]["url"] = json!(env.es.url());
            let iep: InferenceEndpoint = serde_json::from_value(doc).unwrap();
            api(env)
                .create(&Default::default(), &iep)
                .await
                .expect("the previous example applies unchanged");
        }
    }
}

#[tokio::test]
async fn an_azure_object_of_the_previous_release_ends_ready_and_an_upgrade_pushes_no_rotation() {
    let env = TestEnv::start().await;
    // The example's placeholders are the credentials of this Azure and this Elasticsearch.
    let key = "replace-with-your-azure-openai-key";
    env.es.azure().accept_credential(key);
    env.es.set_auth(inference_testenv::es::EsAuth::basic(
        "elastic",
        "replace-with-your-elastic-password",
    ));
    apply_previous_example(&env).await;
    let before = start_operator(&env, test_config());
    let ready = wait_ready(&env, "azure-embeddings", "True", "Created").await;
    drop(before);

    // The status as the previous release wrote it: its fingerprint formula, for this object.
    let uid = ready.metadata.uid.clone().unwrap();
    let previous = previous_fingerprint(&uid, "api_key", key);
    let status = ready.status.clone().unwrap();
    assert_eq!(
        status.credential_fingerprint.as_deref(),
        Some(previous.as_str()),
        "one key fingerprints as before"
    );
    let patch = json!({"status": {"credentialFingerprint": previous}});
    api(&env)
        .patch_status(
            "azure-embeddings",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();

    // The upgraded operator starts: it re-checks and finds nothing to push.
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.es.clear_requests();
    let _after = start_operator(&env, recheck_every(RECHECK));
    tokio::time::sleep(RECHECK * 4).await;
    let reads = requests_on(&env, Route::Get).len();
    assert!(
        reads >= 3,
        "the upgraded operator re-checked ({reads} GETs)"
    );
    for route in [Route::Put, Route::Update, Route::Delete] {
        assert!(
            requests_on(&env, route).is_empty(),
            "no {route:?} after the upgrade"
        );
    }
    let iep = api(&env).get("azure-embeddings").await.unwrap();
    let now = condition(&iep, "Ready").unwrap();
    assert_eq!(
        (now.status.as_str(), now.reason.as_str()),
        ("True", "Created")
    );
    assert_eq!(
        iep.status.unwrap().credential_fingerprint.as_deref(),
        Some(previous.as_str())
    );
}

/// Every task type of every service the double emulates, with the settings it requires: after
/// create, the re-checks find nothing to change (the table's normalisation matches what
/// Elasticsearch fills in).
fn emulated_matrix() -> Vec<(&'static str, &'static str, Value)> {
    let openai = json!({"model_id": "gpt-4o"});
    let bedrock = json!({"region": "us-east-1", "provider": "amazontitan", "model": "amazon.titan-embed-text-v2:0"});
    let bedrock_chat = json!({"region": "us-east-1", "provider": "anthropic", "model": "anthropic.claude-3-haiku"});
    let vertex =
        json!({"location": "us-central1", "project_id": "p", "model_id": "text-embedding-004"});
    let custom = json!({"url": "https://api.example.com/x", "request": "{\"input\": ${input}}",
        "response": {"json_parser": {"text_embeddings": "$.data[*].embedding[*]"}}});
    let hf = json!({"url": "https://hf.example.com/x"});
    let hf_chat = json!({"url": "https://hf.example.com/x", "model_id": "m"});
    let model = json!({"model_id": "m"});
    let ml = |m: &str| json!({"model_id": m, "num_allocations": 1, "num_threads": 1});
    let mut rows = vec![];
    for task in ["text_embedding", "completion", "chat_completion"] {
        rows.push(("openai", task, openai.clone()));
        rows.push(("mistral", task, model.clone()));
    }
    for task in ["text_embedding", "rerank", "completion"] {
        rows.push(("cohere", task, model.clone()));
    }
    rows.push(("amazonbedrock", "text_embedding", bedrock));
    rows.push(("amazonbedrock", "completion", bedrock_chat.clone()));
    rows.push(("amazonbedrock", "chat_completion", bedrock_chat));
    for task in ["text_embedding", "completion", "chat_completion"] {
        rows.push(("googlevertexai", task, vertex.clone()));
    }
    rows.push((
        "googlevertexai",
        "rerank",
        json!({"project_id": "p", "model_id": "semantic-ranker-512"}),
    ));
    for task in ["text_embedding", "sparse_embedding", "rerank", "completion"] {
        rows.push(("custom", task, custom.clone()));
    }
    for task in ["text_embedding", "rerank"] {
        rows.push(("hugging_face", task, hf.clone()));
    }
    for task in ["completion", "chat_completion"] {
        rows.push(("hugging_face", task, hf_chat.clone()));
    }
    for task in [
        "sparse_embedding",
        "chat_completion",
        "text_embedding",
        "rerank",
        "completion",
    ] {
        rows.push(("elastic", task, model.clone()));
    }
    rows.push(("anthropic", "completion", model.clone()));
    for task in ["text_embedding", "rerank"] {
        rows.push(("voyageai", task, model.clone()));
        rows.push(("jinaai", task, model.clone()));
    }
    rows.push(("elasticsearch", "sparse_embedding", ml(".elser_model_2")));
    rows.push((
        "elasticsearch",
        "text_embedding",
        ml(".multilingual-e5-small"),
    ));
    rows.push(("elasticsearch", "rerank", ml(".rerank-v1")));
    rows
}

/// Create one endpoint per row (all secrets accepted), let them settle, and return what is
/// wrong: objects not Ready, and every write to Elasticsearch over several re-checks.
async fn idle_writes(rows: Vec<(&'static str, &'static str, Value)>) -> Vec<String> {
    let env = env_at(ES_VERSION).await;
    env.es
        .providers()
        .set_unknown_credential_outcome(inference_testenv::es::ProviderOutcome::Accept);
    let pairs = [
        ("apiKey", "matrix-key-1"),
        ("accessKey", "matrix-access-1"),
        ("secretKey", "matrix-secret-1"),
        ("sa", r#"{"type": "service_account"}"#),
    ];
    env.put_secret("matrix", &pairs).await;
    env.put_secret("matrix-params", &[("token", "matrix-token-1")])
        .await;
    let _operator = start_operator(&env, recheck_every(RECHECK));
    let mut names = vec![];
    for (i, (service, task, settings)) in rows.into_iter().enumerate() {
        let secrets = match service {
            "amazonbedrock" => json!({"access_key": key_ref("matrix", "accessKey"),
                                      "secret_key": key_ref("matrix", "secretKey")}),
            "googlevertexai" => json!({"service_account_json": key_ref("matrix", "sa")}),
            "custom" => json!({"secret_parameters": {"secretRef": {"name": "matrix-params"}}}),
            "elastic" | "elasticsearch" => json!({}),
            _ => json!({"api_key": key_ref("matrix", "apiKey")}),
        };
        let name = format!("m{i:02}-{service}-{task}").replace('_', "-");
        let block = json!({"name": service, "settings": settings, "secretSettings": secrets});
        create(&env, Iep::service(&name, task, block).es(&env)).await;
        names.push(name);
    }
    tokio::time::sleep(RECHECK * 8).await;
    let mut wrong = vec![];
    for name in &names {
        let iep = api(&env).get(name).await.unwrap();
        match condition(&iep, "Ready") {
            Some(ready) if ready.status == "True" => {}
            Some(ready) => wrong.push(format!("{name}: {} {}", ready.reason, ready.message)),
            None => wrong.push(format!("{name}: no Ready")),
        }
    }
    env.es.clear_requests();
    tokio::time::sleep(RECHECK * 4).await;
    for r in env.es.requests().iter().filter(|r| r.method != "GET") {
        wrong.push(format!("{} {} {}", r.method, r.path, r.raw_body));
    }
    wrong
}

#[tokio::test]
async fn every_emulated_service_and_task_type_idles_without_writes() {
    let rows = emulated_matrix();
    assert!(rows.len() >= 30, "the matrix covers the double's services");
    let wrong = idle_writes(rows).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Azure OpenAI with OAuth2 client credentials (the typed block's third credential, 9.4+):
/// created with `client_id`/`tenant_id`/`scopes` and the client secret from a Secret, idle
/// without writes, the client secret rotated through `_update`; refused with the release needed
/// on 9.3.
#[tokio::test]
async fn azure_oauth2_client_credentials_live_rotate_and_are_gated_by_version() {
    let oauth2 = |name: &str| {
        Iep::embedding(name).set(
            "/azureOpenAI",
            json!({"resourceName": "res", "deploymentId": "emb", "apiVersion": "2024-10-21",
                   "oauth2": {"clientId": "cid", "tenantId": "tid",
                              "scopes": ["https://cognitiveservices.azure.com/.default"],
                              "clientSecretSecretRef": {"name": "azure-oauth", "key": "secret"}}}),
        )
    };
    let env = env_at(ES_VERSION).await;
    env.es.azure().accept_credential("oauth-secret-1");
    env.es.azure().accept_credential("oauth-secret-2");
    env.put_secret("azure-oauth", &[("secret", "oauth-secret-1")])
        .await;
    let _operator = start_operator(&env, recheck_every(RECHECK));
    create_ready(&env, oauth2("oauth")).await;
    let stored = env.es.endpoint("oauth").unwrap();
    assert_eq!(stored["service_settings"]["client_id"], "cid");
    assert_eq!(stored["service_settings"]["tenant_id"], "tid");
    assert_eq!(
        env.es.stored_secrets("oauth").unwrap()["client_secret"],
        "oauth-secret-1"
    );
    idles_without_writes(&env, "text_embedding", "oauth").await;
    let update = rotate(
        &env,
        "oauth",
        "azure-oauth",
        &[("secret", "oauth-secret-2")],
    )
    .await;
    assert_eq!(
        update["service_settings"]["client_secret"],
        "oauth-secret-2"
    );
    assert_eq!(
        env.es.stored_secrets("oauth").unwrap()["client_secret"],
        "oauth-secret-2"
    );
    delete_gone(&env, "oauth").await;

    let old = env_at("9.3.2").await;
    old.put_secret("azure-oauth", &[("secret", "oauth-secret-1")])
        .await;
    let _old_operator = start_operator(&old, test_config());
    create(&old, oauth2("early").es(&old)).await;
    let iep = wait_ready(&old, "early", "False", "UnsupportedByCluster").await;
    let message = &condition(&iep, "Ready").unwrap().message;
    assert!(
        message.contains("OAuth2 client credentials need Elasticsearch 9.4+"),
        "{message}"
    );
    assert!(old.es.endpoint("early").is_none());
}
