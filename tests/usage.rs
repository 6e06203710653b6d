//! `status.usedBy`: who uses an endpoint, read with Elasticsearch's dry-run DELETE on its own
//! clock (`--used-by-interval`) and before every delete or recreate, never on a plain re-check,
//! bounded, version-gated, and never failing the reconcile (docs/lifecycle.md#who-uses-an-endpoint).

mod support;

use std::time::Duration;

use inference_operator::api::{InferenceEndpoint, UsedBy};
use inference_operator::controller::Config;
use inference_testenv::es::{Fault, Route};
use inference_testenv::{eventually, EnvOptions, TestEnv};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use support::*;

const KEY: &str = "azure-key-usage-0001";

async fn env_on(version: &str) -> TestEnv {
    let env = TestEnv::start_with(EnvOptions {
        es_version: version.into(),
        ..EnvOptions::default()
    })
    .await;
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    env
}

/// Re-checks every `recheck`, users read every `used_by`.
fn clocks(recheck: Duration, used_by: Duration) -> Config {
    Config {
        used_by_interval: used_by,
        ..recheck_every(recheck)
    }
}

async fn used_by(env: &TestEnv, name: &str) -> Option<UsedBy> {
    api(env).get(name).await.ok()?.status?.used_by
}

async fn wait_used_by(
    env: &TestEnv,
    name: &str,
    what: &str,
    check: impl Fn(&UsedBy) -> bool,
) -> UsedBy {
    eventually(Duration::from_secs(20), what, || async {
        used_by(env, name).await.filter(|u| check(u))
    })
    .await
}

#[tokio::test]
async fn used_by_lists_pipelines_and_indexes_capped_with_the_total() {
    let env = env_on("9.1.0").await;
    let _operator = start_operator(
        &env,
        clocks(Duration::from_millis(200), Duration::from_millis(400)),
    );
    create(&env, Iep::embedding("emb").secret("azure").es(&env)).await;
    wait_ready(&env, "emb", "True", "Created").await;
    let first = wait_used_by(&env, "emb", "a first read", |_| true).await;
    assert_eq!((first.total, first.index_count), (0, Some(0)), "{first:?}");

    for i in 0..25 {
        env.es
            .add_pipeline_reference("emb", &format!("ingest-{i:02}"));
    }
    env.es.add_index_reference("emb", "articles");
    env.es.add_index_reference("emb", "docs");
    let used = wait_used_by(&env, "emb", "the users on the next read", |u| u.total > 0).await;
    assert_eq!(used.pipelines.len(), 20, "capped: {used:?}");
    assert_eq!(used.pipelines[0], "ingest-00");
    assert_eq!(used.pipeline_count, 25);
    assert_eq!(used.indexes, ["articles", "docs"]);
    assert_eq!(used.index_count, Some(2));
    assert_eq!(used.total, 27);
    assert!(!used.stale);
    assert!(used.observed_at >= first.observed_at);
    // Ready is untouched by what uses the endpoint.
    wait_ready(&env, "emb", "True", "Created").await;

    env.es.remove_index_reference("emb", "docs");
    let detached = wait_used_by(&env, "emb", "the detached index gone", |u| u.total == 26).await;
    assert_eq!(detached.indexes, ["articles"]);
}

/// The create's pass does not read the users (a create is a GET and a PUT); they are read one
/// `--used-by-interval` after the object became Ready, and recorded then.
#[tokio::test]
async fn a_new_endpoint_is_read_one_interval_after_its_create() {
    let env = env_on("9.1.0").await;
    let _operator = start_operator(
        &env,
        clocks(Duration::from_millis(200), Duration::from_secs(2)),
    );
    create(&env, Iep::embedding("fresh").secret("azure").es(&env)).await;
    let iep = wait_ready(&env, "fresh", "True", "Created").await;
    assert_eq!(
        iep.status.unwrap().used_by,
        None,
        "not read in the create's pass"
    );
    assert_eq!(env.es.usage_reads("fresh"), 0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        env.es.usage_reads("fresh"),
        0,
        "re-checks within the interval do not read"
    );
    let used = wait_used_by(&env, "fresh", "the read one interval later", |_| true).await;
    assert_eq!((used.total, used.index_count), (0, Some(0)), "{used:?}");
    assert_eq!(env.es.usage_reads("fresh"), 1);
}

#[tokio::test]
async fn a_plain_recheck_does_not_read_the_users() {
    let env = env_on("9.1.0").await;
    let _operator = start_operator(
        &env,
        clocks(Duration::from_millis(200), Duration::from_secs(3600)),
    );
    create(&env, Iep::embedding("steady").secret("azure").es(&env)).await;
    wait_ready(&env, "steady", "True", "Created").await;

    env.es.clear_requests();
    tokio::time::sleep(Duration::from_millis(1400)).await;
    let rechecks = env
        .es
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/_inference/text_embedding/steady")
        .count();
    assert!(rechecks >= 3, "re-checks ran (saw {rechecks})");
    assert_eq!(env.es.usage_reads("steady"), 0, "no read on a re-check");
}

#[tokio::test]
async fn users_are_read_again_before_a_delete_and_shown_while_it_is_blocked() {
    let env = env_on("9.1.0").await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("used").secret("azure").es(&env)).await;
    wait_ready(&env, "used", "True", "Created").await;
    env.es.add_pipeline_reference("used", "ingest-docs");
    env.es.add_index_reference("used", "articles");

    api(&env)
        .delete("used", &DeleteParams::default())
        .await
        .unwrap();
    wait_ready(&env, "used", "False", "DeletionBlocked").await;
    let used = wait_used_by(&env, "used", "the users behind the refusal", |u| {
        u.total == 2
    })
    .await;
    assert_eq!(used.pipelines, ["ingest-docs"]);
    assert_eq!(used.indexes, ["articles"]);

    env.es.remove_pipeline_reference("used", "ingest-docs");
    env.es.remove_index_reference("used", "articles");
    wait_gone(&env, "used").await;
    assert!(env.es.endpoint("used").is_none());
}

#[tokio::test]
async fn users_are_read_before_a_recreate() {
    let env = env_on("9.1.0").await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("moving").secret("azure").es(&env)).await;
    wait_ready(&env, "moving", "True", "Created").await;
    let reads = env.es.usage_reads("moving");

    env.es.add_pipeline_reference("moving", "ingest");
    let patch = json!({"spec": {"updatePolicy": "Recreate", "azureOpenAI": {"deploymentId": "embeddings-v2"}}});
    api(&env)
        .patch("moving", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_ready(&env, "moving", "False", "RecreateBlocked").await;
    let used = wait_used_by(&env, "moving", "the pipeline that blocks it", |u| {
        u.total == 1
    })
    .await;
    assert_eq!(used.pipelines, ["ingest"]);
    assert_eq!(
        env.es.usage_reads("moving"),
        reads + 1,
        "the recreate's own dry run is the read; no second one"
    );
}

#[tokio::test]
async fn a_failing_read_keeps_the_last_lists_marked_stale_and_the_object_ready() {
    let env = env_on("9.1.0").await;
    let operator = start_operator(
        &env,
        clocks(Duration::from_millis(200), Duration::from_millis(300)),
    );
    create(&env, Iep::embedding("flaky").secret("azure").es(&env)).await;
    wait_ready(&env, "flaky", "True", "Created").await;
    env.es.add_pipeline_reference("flaky", "ingest");
    wait_used_by(&env, "flaky", "the pipeline", |u| u.total == 1).await;

    env.es.inject_fault(Route::Delete, Fault::Status(503), None);
    let stale = wait_used_by(&env, "flaky", "the read marked stale", |u| u.stale).await;
    assert_eq!(stale.pipelines, ["ingest"], "last lists kept");
    let iep: InferenceEndpoint = api(&env).get("flaky").await.unwrap();
    let ready = condition(&iep, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Created")
    );
    assert!(condition(&iep, "Reconciling").is_none());
    assert!(!operator.metrics.encode().contains(r#"result="transient""#));

    env.es.clear_faults();
    let fresh = wait_used_by(&env, "flaky", "a good read", |u| !u.stale).await;
    // observedAt has whole seconds (metav1.Time): later or the same second.
    assert!(fresh.observed_at >= stale.observed_at);
}

#[tokio::test]
async fn on_8_15_only_pipelines_are_listed_and_8_14_is_not_asked() {
    let env = env_on("8.15.3").await;
    let read_soon = clocks(Duration::from_millis(200), Duration::from_millis(300));
    let _operator = start_operator(&env, read_soon.clone());
    env.es.add_pipeline_reference("old", "ingest");
    env.es.add_index_reference("old", "articles");
    create(&env, Iep::embedding("old").secret("azure").es(&env)).await;
    wait_ready(&env, "old", "True", "Created").await;
    let used = wait_used_by(&env, "old", "the 8.15 read", |_| true).await;
    assert_eq!(used.pipelines, ["ingest"]);
    assert_eq!(used.index_count, None, "8.15 does not report indexes");
    assert!(used.indexes.is_empty());
    assert_eq!(used.total, 1);

    let older = env_on("8.14.3").await;
    let _operator = start_operator(&older, read_soon);
    create(&older, Iep::embedding("oldest").secret("azure").es(&older)).await;
    wait_ready(&older, "oldest", "True", "Created").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(used_by(&older, "oldest").await, None);
    assert_eq!(older.es.usage_reads("oldest"), 0);
}

/// A 9.1 cluster and the previous main's CRD, which has neither `usedBy` nor
/// `targetInferenceId` in its status schema.
async fn with_the_previous_crd() -> TestEnv {
    let env = env_on("9.1.0").await;
    env.kube.register_crd_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/previous-main/inferenceendpoint.yaml"
    ));
    env
}

#[tokio::test]
async fn with_the_previous_crd_status_is_written_without_used_by() {
    let env = with_the_previous_crd().await;
    let _operator = start_operator(
        &env,
        clocks(Duration::from_millis(200), Duration::from_millis(300)),
    );
    create(&env, Iep::embedding("upgraded").secret("azure").es(&env)).await;
    let iep = wait_ready(&env, "upgraded", "True", "Created").await;
    assert!(iep.status.unwrap().used_by.is_none());
    // Reads go on at their own pace (not at every re-check) although status cannot keep them.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let reads = env.es.usage_reads("upgraded");
    assert!((1..=4).contains(&reads), "saw {reads} reads");

    // Once the CRD is updated, the next read is recorded.
    env.kube
        .register_crd_file(inference_testenv::crds_dir().join("inferenceendpoint.yaml"));
    wait_used_by(&env, "upgraded", "usedBy once the CRD declares it", |u| {
        u.total == 0
    })
    .await;
}

// `status.targetInferenceId` (the `Inference ID` column) is another status field newer than the
// previous CRD: the tests of what the operator writes there, and of the previous CRD, are here
// with those of `usedBy`.

#[tokio::test]
async fn the_intended_id_is_in_status_before_the_endpoint_exists() {
    let env = env_on("9.1.0").await;
    let _operator = start_operator(&env, recheck_every(Duration::from_millis(200)));
    create(
        &env,
        Iep::embedding("renamed")
            .secret("missing")
            .es(&env)
            .inference_id("emb-v1"),
    )
    .await;
    create(&env, Iep::embedding("by-name").secret("missing").es(&env)).await;
    for (name, id) in [("renamed", "emb-v1"), ("by-name", "by-name")] {
        let iep = wait_ready(&env, name, "False", "SecretNotFound").await;
        let status = iep.status.expect("status");
        assert_eq!(status.target_inference_id.as_deref(), Some(id), "{name}");
        assert_eq!(status.inference_id, None, "{name}: no endpoint yet");
    }
}

#[tokio::test]
async fn with_the_previous_crd_a_steady_object_writes_no_status() {
    let env = with_the_previous_crd().await;
    // Users are read once (the object has none recorded yet), then not for an hour.
    let _operator = start_operator(
        &env,
        clocks(Duration::from_millis(200), Duration::from_secs(3600)),
    );
    create(&env, Iep::embedding("upgraded").secret("azure").es(&env)).await;
    let iep = wait_ready(&env, "upgraded", "True", "Created").await;
    assert_eq!(iep.status.unwrap().target_inference_id, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = env.kube.write_count("inferenceendpoints", Some("status"));
    // Five re-checks: the status differs from the stored one only in targetInferenceId, which
    // this CRD cannot hold, so nothing is applied (neither refused nor repeated).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let writes = env.kube.write_count("inferenceendpoints", Some("status")) - before;
    assert_eq!(writes, 0, "status applies during steady re-checks");
    let iep = api(&env).get("upgraded").await.unwrap();
    assert_eq!(condition(&iep, "Ready").unwrap().status, "True");
}

#[tokio::test]
async fn the_users_of_an_endpoint_that_is_not_ours_are_not_read() {
    let env = env_on("9.1.0").await;
    env.es.put_out_of_band(json!({
        "inference_id": "theirs", "task_type": "text_embedding", "service": "azureopenai",
        "service_settings": {"resource_name": "test-resource", "deployment_id": "embeddings",
                             "api_version": "2024-10-21", "api_key": "someone-elses-key"},
        "task_settings": {"user": "legacy"}
    }));
    env.es.add_pipeline_reference("theirs", "their-pipeline");
    let _operator = start_operator(
        &env,
        clocks(Duration::from_millis(200), Duration::from_millis(300)),
    );
    create(
        &env,
        Iep::embedding("intruder")
            .secret("azure")
            .es(&env)
            .inference_id("theirs")
            .set("/azureOpenAI/taskSettings", json!({"user": "search"})),
    )
    .await;
    wait_ready(&env, "intruder", "False", "Conflict").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        env.es.usage_reads("theirs"),
        0,
        "no dry run on someone else's endpoint"
    );
    assert_eq!(used_by(&env, "intruder").await, None);
}
