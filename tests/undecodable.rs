//! One stored object that does not match the operator's types must not stall the others.
//!
//! A real API server does not enforce `format: int32`, so `spec.azureOpenAI.dimensions:
//! 2147483648` is stored (and so is anything an older, looser CRD version accepted). kube's
//! typed LIST then failed as a whole: the watcher retried for ever, nothing was reconciled and
//! readiness never turned. The emulator's `insert_unvalidated` stores such an object.

mod support;

use std::time::Duration;

use inference_operator::controller::decode::Decoded;
use inference_testenv::{eventually, TestEnv};
use serde_json::{json, Value};
use support::*;

const KEY: &str = "azure-key-0123456789abcdef";

/// Store `bad`: a text_embedding object whose `dimensions` overflows i32.
fn insert_bad(env: &TestEnv) {
    let bad = Iep::embedding("bad")
        .namespace(&env.namespace)
        .secret("azure")
        .es(env)
        .set("/azureOpenAI/dimensions", json!(2147483648_i64));
    env.kube
        .insert_unvalidated("inferenceendpoints", &env.namespace, bad.object());
}

/// Elasticsearch requests that name `id` in their path.
fn requests_for(env: &TestEnv, id: &str) -> Vec<String> {
    env.es
        .requests()
        .into_iter()
        .filter(|r| r.path.split('/').any(|segment| segment == id))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// The stored `bad` object (the typed client cannot read it) once its Ready condition has
/// `status` and `reason`; returns the object and that condition.
async fn wait_bad(env: &TestEnv, status: &str, reason: &str) -> (Value, Value) {
    eventually(WAIT, &format!("bad: Ready={status} {reason}"), || async {
        let object = env
            .kube
            .get_object("inferenceendpoints", &env.namespace, "bad")?;
        let ready = object["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        (ready["status"] == status && ready["reason"] == reason).then_some((object, ready))
    })
    .await
}

async fn wait_healthy(operator: &Operator) {
    eventually(WAIT, "readiness", || async {
        operator.health.is_ready().then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_undecodable_object_is_reported_and_the_others_reconcile() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    create(&env, Iep::embedding("good-1").secret("azure").es(&env)).await;
    insert_bad(&env);

    // Present at the first LIST, and another good object arriving by watch afterwards.
    let operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("good-2").secret("azure").es(&env)).await;
    wait_ready(&env, "good-1", "True", "Created").await;
    wait_ready(&env, "good-2", "True", "Created").await;
    wait_healthy(&operator).await;

    let (bad, ready) = wait_bad(&env, "False", "InvalidSpec").await;
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("spec.azureOpenAI.dimensions: invalid value: integer `2147483648`"),
        "names the field and the value: {message}"
    );
    assert_eq!(ready["observedGeneration"], bad["metadata"]["generation"]);
    assert_eq!(
        bad["status"]["observedGeneration"],
        bad["metadata"]["generation"]
    );
    let stalled = bad["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Stalled");
    assert_eq!(stalled.map(|c| c["status"].clone()), Some(json!("True")));
    assert!(
        bad["metadata"]["finalizers"].is_null(),
        "nothing was created, so nothing to clean up"
    );
    wait_event(&env, "bad", "InvalidSpec", "Warning").await;
    assert_eq!(requests_for(&env, "bad"), Vec::<String>::new());

    // A restart with the object still present: the good ones are re-verified, readiness turns.
    drop(operator);
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.es.clear_requests();
    let operator = start_operator(&env, test_config());
    wait_healthy(&operator).await;
    for id in ["good-1", "good-2"] {
        // Read with a GET of its id, or from the listing that serves a restart's re-checks
        // (docs/lifecycle.md#batched-re-checks).
        eventually(WAIT, &format!("{id} re-checked"), || async {
            let listed = env
                .es
                .requests()
                .iter()
                .any(|r| r.path == "/_inference/_all");
            (listed || requests_for(&env, id).iter().any(|r| r.starts_with("GET "))).then_some(())
        })
        .await;
        wait_ready(&env, id, "True", "Created").await;
    }
    wait_bad(&env, "False", "InvalidSpec").await;
    assert_eq!(requests_for(&env, "bad"), Vec::<String>::new());

    // Fixing the field through the API lets the object proceed as usual.
    let patch = json!({"spec": {"azureOpenAI": {"dimensions": 1536}}});
    api(&env)
        .patch(
            "bad",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    wait_ready(&env, "bad", "True", "Created").await;
}

#[tokio::test]
async fn an_undecodable_owner_keeps_its_claim_and_is_let_go_on_deletion() {
    let env = TestEnv::start().await;
    // Removing the finalizer is an update of an object whose spec breaks today's schema. A real
    // API server from 1.30 accepts it, ratcheting the unchanged invalid field (KEP-4008,
    // CRDValidationRatcheting: beta and on by default in 1.30, GA in 1.33); the emulator does
    // not ratchet, so the cluster keeps the CRD from before the bounds, under which the update
    // is valid.
    env.kube.register_crd_yaml(include_str!(
        "fixtures/inferenceendpoint-crd-before-bounds.yaml"
    ));
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    // As an older operator left it: finalizer set, status recording the endpoint it manages.
    let mut bad = Iep::embedding("bad")
        .namespace(&env.namespace)
        .secret("azure")
        .es(&env)
        .inference_id("shared")
        .set("/azureOpenAI/dimensions", json!(2147483648_i64))
        .object();
    bad["metadata"]["finalizers"] = json!(["esinference.io/cleanup"]);
    bad["status"] = json!({"inferenceId": "shared"});
    env.kube
        .insert_unvalidated("inferenceendpoints", &env.namespace, bad);
    let _operator = start_operator(&env, test_config());
    wait_bad(&env, "False", "InvalidSpec").await;

    create(
        &env,
        Iep::embedding("twin")
            .secret("azure")
            .es(&env)
            .inference_id("shared"),
    )
    .await;
    let conflict = wait_ready(&env, "twin", "False", "Conflict").await;
    let message = &condition(&conflict, "Ready").unwrap().message;
    assert!(message.contains("default/bad"), "{message}");

    // The guard reads the object back where the typed client cannot.
    let guarded: kube::Api<Decoded> = kube::Api::namespaced(env.client.clone(), &env.namespace);
    guarded.delete("bad", &Default::default()).await.unwrap();
    wait_gone(&env, "bad").await;
    let note = eventually(WAIT, "a Warning saying what was left", || async {
        events(&env, "bad").await.into_iter().find_map(|e| {
            let deleted = e.reason.as_deref() == Some("InvalidSpec")
                && e.action.as_deref() == Some("Delete")
                && e.type_.as_deref() == Some("Warning");
            deleted.then_some(e.note?)
        })
    })
    .await;
    assert!(
        note.contains("shared") && note.contains("left in Elasticsearch"),
        "{note}"
    );
    // The twin only looked (GET); nobody wrote or deleted.
    let writes: Vec<_> = requests_for(&env, "shared")
        .into_iter()
        .filter(|r| !r.starts_with("GET "))
        .collect();
    assert_eq!(writes, Vec::<String>::new());
}
