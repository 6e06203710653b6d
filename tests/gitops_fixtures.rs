//! The GitOps health-check cases (`docs/gitops/test/cases/*.json`, checked by `bash
//! .ci/gitops.sh` with the Argo CD Lua script and the kstatus port) carry statuses the operator
//! really writes: this test drives the real controller (Kubernetes API emulator, Elasticsearch
//! double) into the state each case names, takes the object's `.status` and the metadata the
//! checks read (`generation`, `finalizers`, `deletionTimestamp`), normalises what changes from
//! run to run, and compares it with the committed case.
//!
//!     UPDATE_GITOPS_FIXTURES=1 cargo test --test gitops_fixtures
//!
//! rewrites the cases instead (the expected Argo CD and kstatus messages follow the new
//! condition message and generations; their expected health does not change, so the checks
//! still say whether each status reads right). A few cases model a moment the operator writes
//! no status for (before its first reconcile, a status some other writer left): those are
//! listed in [`HAND_WRITTEN`] with why, and every case file must be in one list or the other.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use inference_testenv::{EnvOptions, TestEnv, ES_CREDENTIALS_SECRET};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{json, Value};
use support::*;

const KEY: &str = "azure-key-gitops-1f3a";
/// What the cases show instead of the run's volatile values.
const TIME: &str = "2025-06-02T09:00:05Z";
const DELETION_TIME: &str = "2025-06-02T10:00:00Z";
const CLUSTER_UUID: &str = "Xq3bYH0sQnK7d1Jv2m5wLA";
const FINGERPRINT: &str = "hmac-sha256:3b1f0c9a7d5e2b4c";
const REJECTED_FINGERPRINT: &str = "hmac-sha256:9c2e4a1f0b3d5e7a";
/// How long a rolled-back key was held, as the cases show it (the run's varies).
const HELD_MS: &str = "61";
const ES_URL: &str = "https://elasticsearch.example.svc:9200";
/// The object's name in the cases (and its inference id).
const NAME: &str = "azure-embeddings";
const NAMESPACE: &str = "ml";

/// Cases whose status no reconcile of this operator writes, and why.
const HAND_WRITTEN: &[(&str, &str)] = &[
    (
        "01-no-status",
        "before the first reconcile there is no status",
    ),
    (
        "02-observed-generation-defaulted",
        "a CRD default of -1, not a reconcile",
    ),
    (
        "14-ready-false-alone",
        "the operator never writes Ready=False alone",
    ),
    (
        "15-ready-unknown",
        "the operator never writes Ready=Unknown",
    ),
    (
        "16-observed-without-conditions",
        "the operator always writes Ready",
    ),
    ("17-ready-and-reconciling", "the operator never writes both"),
    (
        "22-ready-unknown-service",
        "not generated yet: the double validates known services only",
    ),
];

/// How a case is derived from a status the operator wrote: as written, or the moment right
/// after a user's change the operator has not reconciled yet.
#[derive(Clone, Copy, Debug)]
enum Moment {
    AsWritten,
    /// The spec was edited: `metadata.generation` one ahead of `status.observedGeneration`.
    SpecEdited,
    /// `kubectl delete`: generation one ahead and a deletion timestamp.
    DeletionRequested,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn case_path(case: &str) -> PathBuf {
    root().join(format!("docs/gitops/test/cases/{case}.json"))
}

async fn env() -> TestEnv {
    let env = TestEnv::start_with(EnvOptions {
        es_version: "9.1.3".into(),
        es_tls: true,
        namespace: NAMESPACE.into(),
    })
    .await;
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    // The cases show the ordinary outcome of an `_update`; the chunking reset of 9.1 has its
    // own tests (lifecycle.rs).
    env.es.set_update_chunking_bug(false);
    env
}

fn embedding(env: &TestEnv) -> Iep {
    Iep::embedding(NAME).secret("azure").es(env)
}

async fn object(env: &TestEnv) -> Value {
    serde_json::to_value(api(env).get(NAME).await.expect("get")).expect("to JSON")
}

/// The object once its status reports on its current generation (a deletion bumps it).
async fn observed(env: &TestEnv) -> Value {
    inference_testenv::eventually(WAIT, "status.observedGeneration to catch up", || async {
        let object = object(env).await;
        let generation = &object["metadata"]["generation"];
        (object["status"]["observedGeneration"] == *generation).then_some(object)
    })
    .await
}

async fn patch_spec(env: &TestEnv, spec: Value) {
    api(env)
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await
        .expect("patch spec");
}

async fn delete(env: &TestEnv) {
    api(env)
        .delete(NAME, &DeleteParams::default())
        .await
        .expect("delete");
}

/// Drive a fresh operator into the state `case` names; the object as the API server holds it,
/// and the moment the case shows.
async fn drive(case: &str) -> (Value, Moment, TestEnv) {
    let env = env().await;
    let config = match case {
        "08-ready-recreated" => recheck_every(Duration::from_millis(300)),
        // Health checks on for every object (the flag: the spec stays as the case shows it).
        "23-ready-unhealthy" => probing(Duration::from_millis(300)),
        "24-stalled-credentials-rejected" => probing(Duration::from_secs(600)),
        _ => test_config(),
    };
    let mut operator = start_operator(&env, config.clone());
    let moment = match case {
        "03-ready-created" | "19-deleting-not-yet-observed" => {
            create(&env, embedding(&env)).await;
            wait_ready(&env, NAME, "True", "Created").await;
            if case == "03-ready-created" {
                Moment::AsWritten
            } else {
                Moment::DeletionRequested
            }
        }
        "04-ready-in-sync" | "09-generation-not-observed" => {
            // A failure that clears with the endpoint untouched: the reconcile after it finds
            // the endpoint as desired.
            create(&env, embedding(&env)).await;
            wait_ready(&env, NAME, "True", "Created").await;
            env.delete_secret("azure").await;
            wait_ready(&env, NAME, "False", "SecretNotFound").await;
            env.put_secret("azure", &[("apiKey", KEY)]).await;
            wait_ready(&env, NAME, "True", "InSync").await;
            if case == "04-ready-in-sync" {
                Moment::AsWritten
            } else {
                Moment::SpecEdited
            }
        }
        "06-ready-updated" => {
            create(&env, embedding(&env)).await;
            wait_ready(&env, NAME, "True", "Created").await;
            patch_spec(
                &env,
                json!({"azureOpenAI": {"taskSettings": {"user": "search"}}}),
            )
            .await;
            wait_ready(&env, NAME, "True", "Updated").await;
            Moment::AsWritten
        }
        "07-ready-credentials-rotated" => {
            create(&env, embedding(&env)).await;
            wait_ready(&env, NAME, "True", "Created").await;
            env.es.azure().accept_credential("azure-key-gitops-rotated");
            env.put_secret("azure", &[("apiKey", "azure-key-gitops-rotated")])
                .await;
            wait_ready(&env, NAME, "True", "CredentialsRotated").await;
            Moment::AsWritten
        }
        "05-ready-adopted" => {
            // An equal endpoint someone else made: here an earlier object that kept it
            // (deletionPolicy Retain) and is gone.
            create(
                &env,
                embedding(&env).set("/deletionPolicy", json!("Retain")),
            )
            .await;
            wait_ready(&env, NAME, "True", "Created").await;
            delete(&env).await;
            wait_gone(&env, NAME).await;
            assert!(env.es.endpoint(NAME).is_some(), "the endpoint was retained");
            create(&env, embedding(&env)).await;
            wait_ready(&env, NAME, "True", "Adopted").await;
            Moment::AsWritten
        }
        "08-ready-recreated" => {
            create(&env, embedding(&env)).await;
            wait_ready(&env, NAME, "True", "Created").await;
            assert!(env.es.delete_out_of_band(NAME));
            wait_ready(&env, NAME, "True", "Recreated").await;
            Moment::AsWritten
        }
        "10-generation-not-observed-after-stall"
        | "11-stalled-secret-not-found"
        | "20-deleting-stale-stall" => {
            create(&env, embedding(&env).secret("azure-openai")).await;
            wait_ready(&env, NAME, "False", "SecretNotFound").await;
            match case {
                "11-stalled-secret-not-found" => Moment::AsWritten,
                "10-generation-not-observed-after-stall" => Moment::SpecEdited,
                _ => Moment::DeletionRequested,
            }
        }
        "12-stalled-azure-rejected-credentials" => {
            env.put_secret("revoked", &[("apiKey", "revoked-key-gitops")])
                .await;
            create(&env, embedding(&env).secret("revoked")).await;
            wait_ready(&env, NAME, "False", "AzureRejectedCredentials").await;
            Moment::AsWritten
        }
        "13-reconciling-elasticsearch-unreachable" => {
            let dead = format!("https://127.0.0.1:{}", dead_port());
            create(&env, embedding(&env).es_url(&dead, ES_CREDENTIALS_SECRET)).await;
            wait_ready(&env, NAME, "False", "ElasticsearchUnreachable").await;
            Moment::AsWritten
        }
        "18-deleting-in-use" => {
            create(&env, embedding(&env)).await;
            wait_ready(&env, NAME, "True", "Created").await;
            env.es.add_index_reference(NAME, "docs");
            delete(&env).await;
            wait_ready(&env, NAME, "False", "DeletionBlocked").await;
            Moment::AsWritten
        }
        "21-deleting-stalled" => {
            create(&env, embedding(&env)).await;
            wait_ready(&env, NAME, "True", "Created").await;
            env.delete_secret(ES_CREDENTIALS_SECRET).await;
            wait_ready(&env, NAME, "False", "SecretNotFound").await;
            // A running operator remembers how it connected and still cleans up; one started
            // after the Secret went (a restart, a new leader) cannot reach Elasticsearch.
            drop(operator);
            delete(&env).await;
            operator = start_operator(&env, config);
            wait_ready(&env, NAME, "False", "SecretNotFound").await;
            Moment::AsWritten
        }
        "23-ready-unhealthy" => {
            // A key revoked in the provider: the next probe is refused, Ready stays True.
            create(&env, embedding(&env)).await;
            wait_condition(&env, "Healthy", "True", "ProbeSucceeded").await;
            env.es.azure().revoke_credential(KEY);
            wait_condition(&env, "Healthy", "False", "ProviderRejectedCredentials").await;
            wait_ready(&env, NAME, "True", "Created").await;
            Moment::AsWritten
        }
        "24-stalled-credentials-rejected" => {
            // A rotated key the provider refuses, on a cluster whose `_update` does not try it
            // (before 9.4): probed, rolled back, the previous key keeps serving.
            create(&env, embedding(&env)).await;
            wait_condition(&env, "Healthy", "True", "ProbeSucceeded").await;
            env.put_secret("azure", &[("apiKey", "azure-key-gitops-refused")])
                .await;
            wait_ready(&env, NAME, "False", "CredentialsRejected").await;
            Moment::AsWritten
        }
        other => panic!("no scenario for case {other}: add one, or list it in HAND_WRITTEN"),
    };
    let object = observed(&env).await;
    drop(operator);
    (object, moment, env)
}

/// Health checks on for every object, every `interval`.
fn probing(interval: Duration) -> inference_operator::controller::Config {
    inference_operator::controller::Config {
        health_check_interval: Some(interval),
        health_check_timeout: Duration::from_secs(2),
        ..test_config()
    }
}

/// Wait until condition `type_` of the case's object has `status` and `reason`.
async fn wait_condition(env: &TestEnv, type_: &str, status: &str, reason: &str) {
    let what = format!("{type_}={status} {reason}");
    inference_testenv::eventually(WAIT, &what, || async {
        let iep = api(env).get(NAME).await.ok()?;
        let c = condition(&iep, type_)?;
        (c.status == status && c.reason == reason).then_some(())
    })
    .await;
}

/// A port on 127.0.0.1 nothing listens on: bound once, then released.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Every string of `value` with the run's URLs and names replaced by the cases' ones.
fn normalise_strings(value: &mut Value, replace: &[(String, String)]) {
    match value {
        Value::String(s) => {
            for (from, to) in replace {
                *s = s.replace(from.as_str(), to);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| normalise_strings(v, replace)),
        Value::Object(map) => map.values_mut().for_each(|v| normalise_strings(v, replace)),
        _ => {}
    }
}

/// The status as the cases show it: times, the cluster's uuid, the fingerprint (keyed per
/// run) fixed; the double's URL (and a dead one), the test Secret names the cases' ones.
fn normalised_status(object: &Value, env: &TestEnv) -> Value {
    let mut status = object["status"].clone();
    for condition in status["conditions"].as_array_mut().into_iter().flatten() {
        condition["lastTransitionTime"] = json!(TIME);
    }
    if status["usedBy"]["observedAt"].is_string() {
        status["usedBy"]["observedAt"] = json!(TIME);
    }
    if status["cluster"].is_object() {
        status["cluster"]["uuid"] = json!(CLUSTER_UUID);
    }
    if status["credentialFingerprint"].is_string() {
        status["credentialFingerprint"] = json!(FINGERPRINT);
    }
    if status["rejectedCredentialFingerprint"].is_string() {
        status["rejectedCredentialFingerprint"] = json!(REJECTED_FINGERPRINT);
    }
    let replace = vec![
        (
            env.es.url().trim_end_matches('/').to_owned(),
            ES_URL.to_owned(),
        ),
        (
            format!("\"{ES_CREDENTIALS_SECRET}\""),
            "\"elasticsearch-credentials\"".to_owned(),
        ),
        // The service key's Secret as the cases' spec names it.
        (
            "Secret azure (key".to_owned(),
            "Secret azure-openai (key".to_owned(),
        ),
    ];
    normalise_strings(&mut status, &replace);
    // A dead port differs per run.
    let mut text = status.to_string();
    while let Some(start) = text.find("https://127.0.0.1:") {
        let rest = &text[start + "https://127.0.0.1:".len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        text.replace_range(start..start + "https://127.0.0.1:".len() + digits, ES_URL);
    }
    replace_number_after(&mut text, "put back after ", HELD_MS);
    serde_json::from_str(&text).expect("still JSON")
}

/// Every run of digits right after `prefix` in `text` replaced by `with`.
fn replace_number_after(text: &mut String, prefix: &str, with: &str) {
    let mut from = 0;
    while let Some(found) = text[from..].find(prefix) {
        let start = from + found + prefix.len();
        let digits = text[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .count();
        text.replace_range(start..start + digits, with);
        from = start + with.len();
    }
}

fn ready_message(object: &Value) -> Option<String> {
    let conditions = object["status"]["conditions"].as_array()?;
    let ready = conditions.iter().find(|c| c["type"] == "Ready")?;
    Some(ready["message"].as_str()?.to_owned())
}

/// The committed case with the generated status and metadata; the expected messages follow
/// the new condition message and generations.
fn regenerated(committed: &Value, object: &Value, moment: Moment, env: &TestEnv) -> Value {
    let mut case = committed.clone();
    let target = &mut case["object"];
    let status = normalised_status(object, env);
    let observed = status["observedGeneration"]
        .as_i64()
        .expect("observedGeneration");
    let generation = match moment {
        Moment::AsWritten => object["metadata"]["generation"]
            .as_i64()
            .expect("generation"),
        Moment::SpecEdited | Moment::DeletionRequested => observed + 1,
    };
    let metadata = &mut target["metadata"];
    metadata["generation"] = json!(generation);
    metadata["finalizers"] = object["metadata"]["finalizers"].clone();
    let metadata = metadata.as_object_mut().expect("metadata");
    let deleting = matches!(moment, Moment::DeletionRequested)
        || object["metadata"]["deletionTimestamp"].is_string();
    if deleting {
        metadata.insert("deletionTimestamp".into(), json!(DELETION_TIME));
    } else {
        metadata.remove("deletionTimestamp");
    }
    let old = committed["object"].clone();
    target["status"] = status;
    let new = target.clone();
    for tool in ["argocd", "kstatus"] {
        let message = case[tool]["message"].as_str().unwrap_or_default();
        case[tool]["message"] = json!(carry_over(message, &old, &new));
    }
    case
}

/// An expected message about the `old` object, rewritten for the `new` one: its condition
/// message and generation numbers.
fn carry_over(message: &str, old: &Value, new: &Value) -> String {
    let mut message = message.to_owned();
    if let (Some(from), Some(to)) = (ready_message(old), ready_message(new)) {
        message = message.replace(&from, &to);
    }
    let number = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_i64);
    for (pointer, before) in [
        ("/metadata/generation", "generation is "),
        ("/metadata/generation", "observe generation "),
        ("/status/observedGeneration", "observed generation is "),
    ] {
        if let (Some(from), Some(to)) = (number(old, pointer), number(new, pointer)) {
            message = message.replace(&format!("{before}{from}"), &format!("{before}{to}"));
        }
    }
    message
}

fn case_names() -> Vec<String> {
    let dir = root().join("docs/gitops/test/cases");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("cases dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON") + "\n"
}

#[tokio::test]
async fn gitops_cases_are_the_statuses_the_operator_writes() {
    let update = std::env::var_os("UPDATE_GITOPS_FIXTURES").is_some_and(|v| v == "1");
    let generated: Vec<String> = case_names()
        .into_iter()
        .filter(|name| !HAND_WRITTEN.iter().any(|(n, _)| n == name))
        .collect();
    assert!(generated.len() >= 12, "{generated:?}");
    let runs = generated.iter().map(|case| async move {
        let (object, moment, env) = drive(case).await;
        let path = case_path(case);
        let text = std::fs::read_to_string(&path).expect("read case");
        let committed: Value = serde_json::from_str(&text).expect("case JSON");
        let case_now = regenerated(&committed, &object, moment, &env);
        (path, text, pretty(&case_now))
    });
    let mut stale = Vec::new();
    for (path, text, now) in futures::future::join_all(runs).await {
        if text == now {
            continue;
        }
        if update {
            std::fs::write(&path, &now).expect("write case");
        } else {
            stale.push(format!("{}:\n{now}", path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "these cases differ from what the operator writes; run \
         UPDATE_GITOPS_FIXTURES=1 cargo test --test gitops_fixtures, then bash .ci/gitops.sh\n{}",
        stale.join("\n")
    );
}

#[test]
fn every_case_is_generated_or_says_why_not() {
    let names = case_names();
    for (name, _) in HAND_WRITTEN {
        assert!(names.iter().any(|n| n == name), "{name} is listed but gone");
    }
}

#[test]
fn expected_messages_follow_the_new_condition_message_and_generations() {
    let old = json!({"metadata": {"generation": 3},
        "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "message": "old words"}]}});
    let new = json!({"metadata": {"generation": 2},
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "message": "new words"}]}});
    assert_eq!(
        carry_over("Created: old words", &old, &new),
        "Created: new words"
    );
    assert_eq!(
        carry_over(
            "generation is 3, but latest observed generation is 2",
            &old,
            &new
        ),
        "generation is 2, but latest observed generation is 1"
    );
    assert_eq!(
        carry_over(
            "Waiting for the operator to observe generation 3",
            &old,
            &new
        ),
        "Waiting for the operator to observe generation 2"
    );
}
