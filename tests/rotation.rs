//! Verified rotation: a rotated key the provider refuses never stays in use. On 9.4+
//! Elasticsearch tries it during `_update` and keeps the previous key; before, the operator
//! probes right after `_update` and puts the previous key back (docs/lifecycle.md, "Health and
//! verified rotation").

mod support;

use std::time::Duration;

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
    let env = env_at("9.3.1").await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("rot").secret("azure").es(&env)).await;
    wait_ready(&env, "rot", "True", "Created").await;

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
    let env = env_at("9.4.0").await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("rot94").secret("azure").es(&env)).await;
    wait_ready(&env, "rot94", "True", "Created").await;

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
    let env = env_at("9.3.1").await;
    let operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("fine").secret("azure").es(&env)).await;
    wait_ready(&env, "fine", "True", "Created").await;
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
