//! In-cluster models (`elasticsearch`, `elser`) whose deployment outlasts the PUT: the object says
//! `ModelDeploying` while the model starts, turns `Created` once it has, and the operator sends
//! exactly one PUT and holds no reconcile slot meanwhile (docs/lifecycle.md#slow-model-deployments).
//! The Elasticsearch double answers such a PUT with 408 after its `timeout` and keeps deploying
//! (`tests/harness/src/es/ml.rs`).

mod support;

use std::time::Duration;

use inference_operator::controller::Config;
use inference_testenv::{eventually, TestEnv};
use kube::api::{Patch, PatchParams};
use serde_json::{json, Value};
use support::*;

const KEY: &str = "azure-key-0123456789abcdef";
/// What the operator asks Elasticsearch to wait in these tests, and how often it checks again:
/// both shorter than the double's deploy time.
const WAIT: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_secs(1);

/// An ELSER endpoint through the generic block.
fn elser(env: &TestEnv, name: &str) -> Iep {
    Iep::embedding(name)
        .set("/azureOpenAI", Value::Null)
        .task("sparse_embedding")
        .set(
            "/service",
            json!({"name": "elasticsearch", "settings": {
                "model_id": ".elser_model_2", "num_threads": 1, "num_allocations": 1}}),
        )
        .es(env)
}

fn deploy_config(base: Config) -> Config {
    Config {
        model_deploy_wait: WAIT,
        model_deploy_poll: POLL,
        ..base
    }
}

/// Requests to `path_prefix` with `method`.
/// Requests by method and path prefix; the dry-run DELETEs that read the endpoint's users
/// (`status.usedBy`) delete nothing and are left out.
fn requests(env: &TestEnv, method: &str, path_prefix: &str) -> usize {
    env.es
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path.starts_with(path_prefix) && !r.is_dry_run())
        .count()
}

fn stats_reads(env: &TestEnv) -> usize {
    requests(env, "GET", "/_ml/trained_models/")
}

#[tokio::test]
async fn a_slow_deployment_is_model_deploying_then_created_with_one_put() {
    let env = TestEnv::start().await;
    env.es.set_model_deploy_time(Duration::from_secs(3));
    let _operator = start_operator(
        &env,
        deploy_config(recheck_every(Duration::from_millis(500))),
    );
    create(&env, elser(&env, "elser")).await;

    let deploying = wait_ready_within(
        &env,
        "elser",
        ("False", "ModelDeploying"),
        Duration::from_secs(5),
        Duration::from_millis(50),
    )
    .await;
    let ready = condition(&deploying, "Ready").unwrap();
    for needle in [
        ".elser_model_2",
        "elser",
        "Timed out after [500ms]",
        "no second PUT",
    ] {
        assert!(
            ready.message.contains(needle),
            "{needle}: {}",
            ready.message
        );
    }
    assert_eq!(
        condition(&deploying, "Reconciling").map(|c| c.status.as_str()),
        Some("True"),
        "kstatus InProgress"
    );
    assert!(condition(&deploying, "Stalled").is_none());
    let status = deploying.status.as_ref().unwrap();
    assert_eq!(
        status.inference_id.as_deref(),
        Some("elser"),
        "the endpoint is recorded as this object's while it deploys"
    );
    let put = env
        .es
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.query_param("timeout").as_deref(), Some("500ms"));
    wait_event(&env, "elser", "ModelDeploying", "Normal").await;

    let created = wait_ready(&env, "elser", "True", "Created").await;
    let message = &condition(&created, "Ready").unwrap().message;
    assert!(
        message.contains("model .elser_model_2 is deployed"),
        "{message}"
    );
    assert_eq!(
        env.es.deployment_stats("elser").unwrap()["state"],
        "started"
    );
    assert_eq!(requests(&env, "PUT", "/_inference"), 1, "exactly one PUT");
    // Followed at the poll interval, not hot and not with a backoff that outgrows the deploy.
    let reads = stats_reads(&env);
    assert!(
        (1..=6).contains(&reads),
        "{reads} stats reads for a 3 s deploy"
    );

    // Ready: re-checks are one GET each; no write, no `_ml` call.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stats_reads(&env), reads, "no _ml polling once Ready");
    for method in ["PUT", "POST", "DELETE"] {
        assert_eq!(
            requests(&env, method, "/_inference"),
            usize::from(method == "PUT"),
            "{method}"
        );
    }
    assert!(
        requests(&env, "GET", "/_inference") >= 4,
        "the re-checks ran"
    );
}

#[tokio::test]
async fn a_deploying_model_does_not_hold_the_reconcile_slot() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    env.es.set_model_deploy_time(Duration::from_secs(60));
    // One reconcile at a time: a PUT that waited for the model would block everything else.
    let config = Config {
        concurrency: 1,
        ..deploy_config(test_config())
    };
    let _operator = start_operator(&env, config);
    create(&env, elser(&env, "elser")).await;
    wait_ready_within(
        &env,
        "elser",
        ("False", "ModelDeploying"),
        Duration::from_secs(5),
        Duration::from_millis(50),
    )
    .await;

    create(&env, Iep::embedding("azure").secret("azure").es(&env)).await;
    wait_ready_within(
        &env,
        "azure",
        ("True", "Created"),
        Duration::from_secs(5),
        Duration::from_millis(50),
    )
    .await;
    let elser = api(&env).get("elser").await.unwrap();
    assert_eq!(condition(&elser, "Ready").unwrap().reason, "ModelDeploying");
    assert_eq!(
        requests(&env, "PUT", "/_inference/sparse_embedding"),
        1,
        "one PUT while the model deploys"
    );
}

#[tokio::test]
async fn num_allocations_change_after_the_deploy_goes_through_update() {
    let env = TestEnv::start().await;
    env.es.set_model_deploy_time(Duration::from_secs(2));
    let _operator = start_operator(&env, deploy_config(test_config()));
    create(&env, elser(&env, "elser")).await;
    wait_ready(&env, "elser", "True", "Created").await;

    let patch = json!({"spec": {"service": {"settings": {"num_allocations": 2}}}});
    api(&env)
        .patch("elser", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_ready(&env, "elser", "True", "Updated").await;
    assert_eq!(
        requests(&env, "PUT", "/_inference"),
        2,
        "the create and one _update"
    );
    let updates: Vec<_> = env
        .es
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/_update"))
        .collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(
        updates[0].body.as_ref().unwrap()["service_settings"]["num_allocations"],
        2
    );
    assert_eq!(
        env.es.deployment_stats("elser").unwrap()["number_of_allocations"],
        2,
        "the running deployment was changed"
    );
}

#[tokio::test]
async fn a_deployment_gone_before_it_started_gets_one_new_put() {
    let env = TestEnv::start().await;
    env.es.set_model_deploy_time(Duration::from_secs(2));
    let _operator = start_operator(&env, deploy_config(test_config()));
    create(&env, elser(&env, "elser")).await;
    wait_ready_within(
        &env,
        "elser",
        ("False", "ModelDeploying"),
        Duration::from_secs(5),
        Duration::from_millis(50),
    )
    .await;
    // Nothing stored and no deployment under the id (as after a 408 on a release that deploys
    // before it stores, once that deployment failed): the rule allows one PUT again.
    assert!(env.es.delete_out_of_band("elser"));
    eventually(WAIT_LONG, "a second PUT", || async {
        (requests(&env, "PUT", "/_inference") == 2).then_some(())
    })
    .await;
    wait_ready(&env, "elser", "True", "Created").await;
    assert_eq!(requests(&env, "PUT", "/_inference"), 2);
}

const WAIT_LONG: Duration = Duration::from_secs(10);
