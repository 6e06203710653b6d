//! Verified rotation: a rotated key the provider refuses never stays in use. On 9.4+
//! Elasticsearch tries it during `_update` and keeps the previous key; before, the operator
//! probes right after `_update` and puts the previous key back (docs/lifecycle.md, "Health and
//! verified rotation").

mod support;

use std::time::Duration;

use inference_operator::controller::Config;
use inference_testenv::TestEnv;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::*;

const GOOD: &str = "azure-key-good-0123456789";
const BAD: &str = "azure-key-bad-9876543210";
const NEXT: &str = "azure-key-next-5555555555";

async fn env_at(version: &str) -> TestEnv {
    let env = TestEnv::start().await;
    env.es.set_version(version);
    env.es.azure().accept_credential(GOOD);
    env.es.azure().accept_credential(NEXT);
    env.put_secret("azure", &[("apiKey", GOOD)]).await;
    env
}

/// A Ready endpoint `name` on a double of `version` with the good key, and the operator that
/// made it (in this process, with `config`).
async fn ready_on(version: &str, name: &str, config: Config) -> (TestEnv, Operator) {
    let env = env_at(version).await;
    let operator = start_operator(&env, config);
    create(&env, Iep::embedding(name).secret("azure").es(&env)).await;
    wait_ready(&env, name, "True", "Created").await;
    (env, operator)
}

fn updates(env: &TestEnv) -> usize {
    env.es
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/_update"))
        .count()
}

/// The rejected-rotation status every version shares: Ready=False CredentialsRejected naming the
/// Secret and saying the previous key stays in use, never the key.
async fn assert_rejected(env: &TestEnv, name: &str) -> String {
    let iep = wait_ready(env, name, "False", "CredentialsRejected").await;
    let ready = condition(&iep, "Ready").unwrap();
    assert!(
        ready.message.contains("Secret azure (key apiKey)")
            && ready.message.contains("The previous key stays in use"),
        "{}",
        ready.message
    );
    assert!(!ready.message.contains(BAD) && !ready.message.contains(GOOD));
    assert_eq!(condition(&iep, "Stalled").unwrap().status, "True");
    let status = iep.status.as_ref().unwrap();
    assert!(status.rejected_credential_fingerprint.is_some());
    wait_event(env, name, "CredentialsRejected", "Warning").await;
    ready.message.clone()
}

/// The rejection is not tried again until the Secret changes: another reconcile (an annotation)
/// sends nothing; a working key in the Secret is applied.
async fn no_retry_until_the_secret_changes(env: &TestEnv, name: &str, sent: usize) {
    let patch = json!({"metadata": {"annotations": {"touch": "1"}}});
    api(env)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        updates(env),
        sent,
        "nothing sent for the rejected key again"
    );
    env.put_secret("azure", &[("apiKey", NEXT)]).await;
    wait_ready(env, name, "True", "CredentialsRotated").await;
    assert_eq!(
        env.es.stored_secret(name),
        Some(("api_key".into(), NEXT.into()))
    );
}

#[tokio::test]
async fn a_bad_rotation_on_9_3_is_rolled_back_and_the_old_key_keeps_serving() {
    let (env, _operator) = ready_on("9.3.1", "rot", test_config()).await;

    env.put_secret("azure", &[("apiKey", BAD)]).await;
    let message = assert_rejected(&env, "rot").await;
    assert!(
        message.contains("the previous key was put back"),
        "{message}"
    );
    assert_eq!(
        env.es.stored_secret("rot"),
        Some(("api_key".into(), GOOD.into())),
        "rolled back"
    );
    assert_eq!(updates(&env), 2, "the bad key, then the previous one");
    // How long the endpoint held the rejected key: from the `_update` to the rollback.
    let held: u64 = message
        .split("put back after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|ms| ms.parse().ok())
        .expect("the message says how long");
    println!("the endpoint held the rejected key for {held} ms (one probe plus one _update)");
    assert!(held < 5_000, "{held} ms");
    // The endpoint still works with the old key: a probe through the double answers.
    let probe = reqwest_probe(&env, "rot").await;
    assert_eq!(probe, 200, "the old key still answers");
    no_retry_until_the_secret_changes(&env, "rot", 2).await;
}

#[tokio::test]
async fn a_bad_rotation_on_9_4_is_refused_by_elasticsearch_and_nothing_is_rolled_back() {
    let (env, _operator) = ready_on("9.4.0", "rot94", test_config()).await;

    env.put_secret("azure", &[("apiKey", BAD)]).await;
    let message = assert_rejected(&env, "rot94").await;
    assert!(message.contains("Elasticsearch tried it"), "{message}");
    assert_eq!(updates(&env), 1, "one refused _update, no rollback");
    assert_eq!(
        env.es.stored_secret("rot94"),
        Some(("api_key".into(), GOOD.into()))
    );
    let inference_calls = env
        .es
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(
        inference_calls, 0,
        "no probe needed: Elasticsearch validated it"
    );
    no_retry_until_the_secret_changes(&env, "rot94", 1).await;
}

#[tokio::test]
async fn a_good_rotation_on_9_3_is_verified_and_applied() {
    let (env, operator) = ready_on("9.3.1", "fine", test_config()).await;
    env.put_secret("azure", &[("apiKey", NEXT)]).await;
    wait_ready(&env, "fine", "True", "CredentialsRotated").await;
    let probes = env
        .es
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(
        probes, 1,
        "the rotation probe runs with periodic health checks off"
    );
    let text = operator.metrics.encode();
    let line = format!(
        r#"inference_operator_endpoint_rotations_total{{namespace="{}",name="fine",result="applied"}} 1"#,
        env.namespace
    );
    assert!(text.contains(&line), "{text}");
}

/// One inference call through the double with whatever key it stores for `id` (HTTP status).
async fn reqwest_probe(env: &TestEnv, id: &str) -> u16 {
    use inference_operator::elasticsearch::{Auth, ConnectionConfig, EsClient};
    let mut config = ConnectionConfig::new(env.es.url().parse().unwrap());
    config.auth = Auth::Basic {
        username: inference_testenv::ES_USER.into(),
        password: inference_testenv::ES_PASSWORD.to_owned().into(),
    };
    let client = EsClient::new(config).unwrap();
    match client
        .probe(
            inference_operator::elasticsearch::TaskType::TextEmbedding,
            id,
            Duration::from_secs(5),
            &[],
        )
        .await
    {
        Ok(()) => 200,
        Err(e) => e.status().unwrap_or(0),
    }
}

// ---------------------------------------------------------------------------------------------
// The previous key kept in a Secret (--persist-previous-credential)

const PREVIOUS_KEY_PREFIX: &str = "inference-operator-previous-";

fn persisting() -> Config {
    Config {
        persist_previous_credential: true,
        ..test_config()
    }
}

/// The operator's writes of its kept Secrets (server-side apply), and its reads of them.
fn kept_secret_calls(env: &TestEnv) -> (usize, usize) {
    let requests = env.kube.requests();
    let ours =
        |r: &&inference_testenv::kube::RequestRecord| r.resource.as_deref() == Some("secrets");
    let writes = requests
        .iter()
        .filter(ours)
        .filter(|r| r.method != "GET")
        .filter(|r| {
            r.name
                .as_deref()
                .is_some_and(|n| n.starts_with(PREVIOUS_KEY_PREFIX))
        })
        .count();
    let reads = requests
        .iter()
        .filter(ours)
        .filter(|r| r.method == "GET" && r.query.contains(PREVIOUS_KEY_PREFIX))
        .count();
    (writes, reads)
}

async fn kept_secret(env: &TestEnv, name: &str) -> Option<k8s_openapi::api::core::v1::Secret> {
    let uid = api(env).get(name).await.ok()?.metadata.uid?;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(env.client.clone(), &env.namespace);
    secrets
        .get_opt(&format!("{PREVIOUS_KEY_PREFIX}{uid}"))
        .await
        .unwrap()
}

fn kept_key(secret: &k8s_openapi::api::core::v1::Secret) -> serde_json::Value {
    let data = &secret.data.as_ref().unwrap()["credentials.json"].0;
    serde_json::from_slice(data).unwrap()
}

#[tokio::test]
async fn the_persisted_previous_key_is_written_when_it_changes_only() {
    let (env, _operator) = ready_on("9.3.1", "kept", persisting()).await;
    let iep = api(&env).get("kept").await.unwrap();
    let secret =
        inference_testenv::eventually(WAIT, "the kept Secret", || kept_secret(&env, "kept")).await;
    assert_eq!(kept_key(&secret), json!({"api_key": GOOD}));
    let meta = &secret.metadata;
    assert_eq!(
        meta.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "inference-operator"
    );
    let owner = &meta.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        (
            "InferenceEndpoint",
            "kept",
            iep.metadata.uid.as_deref().unwrap()
        ),
        "garbage-collected with the object"
    );
    assert_eq!(
        kept_secret_calls(&env),
        (1, 1),
        "read once (none yet), written once"
    );

    // Steady state: reconciles that change nothing write nothing and read nothing.
    for touch in 0..3 {
        let patch = json!({"metadata": {"annotations": {"touch": touch.to_string()}}});
        api(&env)
            .patch("kept", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(kept_secret_calls(&env), (1, 1), "no steady-state writes");

    // A verified rotation: the new key is the one kept.
    env.put_secret("azure", &[("apiKey", NEXT)]).await;
    wait_ready(&env, "kept", "True", "CredentialsRotated").await;
    let secret = kept_secret(&env, "kept").await.unwrap();
    assert_eq!(kept_key(&secret), json!({"api_key": NEXT}));
    assert_eq!(kept_secret_calls(&env), (2, 1));
    let status = serde_json::to_string(&api(&env).get("kept").await.unwrap().status).unwrap();
    assert!(!status.contains(NEXT) && !status.contains(GOOD));
}

/// The real binary, against the emulator and the double (tests/faults.rs does the same).
struct Process {
    child: tokio::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Process {
    fn start(env: &TestEnv, kubeconfig: &TempFile, extra: &[&str]) -> Process {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_inference-operator"))
            .args(["run", "--namespace", &env.namespace])
            .args(["--metrics-address", "127.0.0.1:0"])
            .args(["--backoff-initial", "100ms", "--backoff-max", "1s"])
            .args(["--recheck-interval", "1h"])
            .args(["--log-format", "text", "--log-level", "info"])
            .args(extra)
            .env("KUBECONFIG", &kubeconfig.0)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start inference-operator");
        let log = collect_stderr(&mut child);
        Process { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// A bad key applied through `_update` on 9.3, the operator SIGKILLed while its probe of the new
/// key is held inside Elasticsearch (so before any rollback), and a new operator process started.
/// Returns once the new process reports the rejection: the new process, and the first one's log.
async fn restart_between_the_bad_update_and_the_rollback(
    env: &TestEnv,
    kubeconfig: &TempFile,
    name: &str,
    extra: &[&str],
) -> (Process, String) {
    use inference_testenv::es::Route;
    env.kube
        .write_kubeconfig(&kubeconfig.0)
        .expect("kubeconfig");
    let mut first = Process::start(env, kubeconfig, extra);
    create(env, Iep::embedding(name).secret("azure").es(env)).await;
    wait_ready(env, name, "True", "Created").await;
    if extra.contains(&"--persist-previous-credential") {
        inference_testenv::eventually(WAIT, "the kept Secret", || kept_secret(env, name)).await;
    }

    env.es.hold_next(Route::Other, 1);
    env.put_secret("azure", &[("apiKey", BAD)]).await;
    inference_testenv::eventually(WAIT, "the probe of the bad key to be held", || async {
        (env.es.held() == 1).then_some(())
    })
    .await;
    let held = env.es.requests();
    let probe = held.iter().rev().find(|r| r.route == Route::Other).unwrap();
    assert_eq!(
        (probe.method.as_str(), probe.path.as_str()),
        (
            "POST",
            format!("/_inference/text_embedding/{name}").as_str()
        ),
        "the held request is the probe after the _update"
    );
    assert_eq!(updates(env), 1);
    assert_eq!(
        env.es.stored_secret(name),
        Some(("api_key".into(), BAD.into())),
        "Elasticsearch stored the bad key untried"
    );
    first.child.kill().await.expect("SIGKILL the operator");
    env.es.release_hung();
    let second = Process::start(env, kubeconfig, extra);
    wait_ready(env, name, "False", "CredentialsRejected").await;
    (second, first.log())
}

#[tokio::test]
async fn a_restart_between_the_rejected_rotation_and_the_rollback_puts_the_kept_key_back() {
    let env = env_at("9.3.1").await;
    let kubeconfig = TempFile::new("rotation", "kubeconfig");
    let flag = ["--persist-previous-credential"];
    let (second, first_log) =
        restart_between_the_bad_update_and_the_rollback(&env, &kubeconfig, "restart", &flag).await;
    let message = assert_rejected(&env, "restart").await;
    assert!(
        message.contains("the previous key was put back"),
        "{message}"
    );
    assert_eq!(
        env.es.stored_secret("restart"),
        Some(("api_key".into(), GOOD.into())),
        "rolled back to the kept key by the new process"
    );
    assert_eq!(
        updates(&env),
        3,
        "the bad key, again by the new process, then the kept one"
    );
    assert_eq!(
        reqwest_probe(&env, "restart").await,
        200,
        "the old key still answers"
    );
    no_retry_until_the_secret_changes(&env, "restart", 3).await;
    let log = first_log + &second.log();
    assert!(
        !log.contains(GOOD) && !log.contains(BAD) && !log.contains(NEXT),
        "no key in the log"
    );
}

#[tokio::test]
async fn without_the_kept_key_a_restart_leaves_the_rejected_key_and_says_so() {
    let env = env_at("9.3.1").await;
    let kubeconfig = TempFile::new("rotation", "kubeconfig");
    let (second, first_log) =
        restart_between_the_bad_update_and_the_rollback(&env, &kubeconfig, "lost", &[]).await;
    let iep = wait_ready(&env, "lost", "False", "CredentialsRejected").await;
    let ready = condition(&iep, "Ready").unwrap();
    assert!(
        ready
            .message
            .contains("the operator does not hold the previous key")
            && ready
                .message
                .contains("--persist-previous-credential is off")
            && ready.message.contains(
                "now uses the rejected key and fails until the Secret holds a working one"
            ),
        "{}",
        ready.message
    );
    assert!(
        !ready.message.contains("The previous key stays in use"),
        "{}",
        ready.message
    );
    assert_eq!(condition(&iep, "Stalled").unwrap().status, "True");
    assert!(iep
        .status
        .as_ref()
        .unwrap()
        .rejected_credential_fingerprint
        .is_some());
    assert_eq!(
        env.es.stored_secret("lost"),
        Some(("api_key".into(), BAD.into())),
        "nothing to put back"
    );
    assert_eq!(updates(&env), 2);
    assert_eq!(reqwest_probe(&env, "lost").await, 401, "the endpoint fails");
    assert_eq!(
        kept_secret_calls(&env),
        (0, 0),
        "off: no Secret written or read"
    );
    // A working key in the Secret heals it.
    no_retry_until_the_secret_changes(&env, "lost", 2).await;
    let log = first_log + &second.log();
    assert!(
        !log.contains(GOOD) && !log.contains(BAD) && !log.contains(NEXT),
        "no key in the log"
    );
}

/// A second pass from a cached copy without the rejection's status (the object's watch held
/// back after the rejection is written, then the Secret written again with an unrelated key)
/// sends the rejected key no second time: it waits for the cache (controller::own_writes), and
/// the status it then reads records the rejected credential.
#[tokio::test]
async fn a_pass_from_a_cache_without_the_rejection_sends_nothing_again() {
    let (env, _operator) = ready_on("9.3.1", "stale", test_config()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.kube
        .hold_watch_events_after("inferenceendpoints", Some(env.kube.resource_version()));
    env.put_secret("azure", &[("apiKey", BAD)]).await;
    wait_ready(&env, "stale", "False", "CredentialsRejected").await;
    assert_eq!(updates(&env), 2, "the bad key, then the previous one");
    env.put_secret("azure", &[("apiKey", BAD), ("unrelated", "touched")])
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    env.kube.hold_watch_events_after("inferenceendpoints", None);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(updates(&env), 2, "the rejected key is not sent again");
    assert_eq!(
        env.es.stored_secret("stale"),
        Some(("api_key".into(), GOOD.into()))
    );
    assert_rejected(&env, "stale").await;
}
