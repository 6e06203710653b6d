//! Lifecycle behaviour after creation (issue "Full lifecycle"): rotation latency, drift,
//! deletion safety and force, ownership between objects, adoption, recreate policy, a replaced
//! cluster, and version gates across emulated Elasticsearch versions. In-process controller
//! against the Kubernetes emulator and the Elasticsearch double, as in `reconcile.rs`.

mod support;

use std::time::{Duration, Instant};

use inference_testenv::{eventually, EnvOptions, TestEnv};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use support::*;

const KEY: &str = "azure-key-lifecycle-0001";

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

async fn annotate(env: &TestEnv, name: &str, key: &str, value: &str) {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api(env)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
}

async fn patch_spec(env: &TestEnv, name: &str, spec: serde_json::Value) {
    api(env)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await
        .expect("patch spec");
}

fn message(iep: &inference_operator::api::InferenceEndpoint) -> String {
    condition(iep, "Ready").unwrap().message.clone()
}

#[tokio::test]
async fn rotation_reaches_elasticsearch_within_two_seconds() {
    let env = env_on("9.1.0").await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("rotating").secret("azure").es(&env)).await;
    wait_ready(&env, "rotating", "True", "Created").await;

    let mut latencies = vec![];
    for round in 0..5 {
        let key = format!("azure-key-rotated-{round}");
        env.es.azure().accept_credential(&key);
        let started = Instant::now();
        env.put_secret("azure", &[("apiKey", &key)]).await;
        eventually(
            Duration::from_secs(2),
            "the rotated key in Elasticsearch",
            || {
                let stored = env.es.stored_secret("rotating");
                let key = key.clone();
                async move { (stored == Some(("api_key".into(), key))).then_some(()) }
            },
        )
        .await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "rotation → _update in Elasticsearch: min {:?}, median {:?}, max {:?}",
        latencies[0], latencies[2], latencies[4]
    );
    assert!(latencies[4] < Duration::from_secs(2));
    assert_eq!(es_requests(&env, "DELETE"), 0, "rotation never deletes");
    assert_eq!(
        es_requests(&env, "PUT") - 1,
        5,
        "one _update per rotation, plus the create"
    );
}

#[tokio::test]
async fn out_of_band_deletion_is_healed_and_announced() {
    let env = env_on("9.1.0").await;
    let config = recheck_every(Duration::from_millis(300));
    let _operator = start_operator(&env, config);
    create(&env, Iep::embedding("healed").secret("azure").es(&env)).await;
    wait_ready(&env, "healed", "True", "Created").await;
    assert!(env.es.delete_out_of_band("healed"));
    wait_ready(&env, "healed", "True", "Recreated").await;
    assert!(env.es.endpoint("healed").is_some());
    wait_event(&env, "healed", "Recreated", "Normal").await;
}

#[tokio::test]
async fn out_of_band_task_setting_change_is_restored() {
    // 9.2.6 keeps chunking on `_update` (issue #139574 fixed); 9.1 would report ChunkingReset.
    let env = env_on("9.2.6").await;
    let config = recheck_every(Duration::from_millis(300));
    let _operator = start_operator(&env, config);
    create(
        &env,
        Iep::embedding("drifting")
            .secret("azure")
            .es(&env)
            .set("/azureOpenAI/taskSettings", json!({"user": "search"})),
    )
    .await;
    wait_ready(&env, "drifting", "True", "Created").await;
    env.es.modify_out_of_band("drifting", |endpoint| {
        endpoint["task_settings"]["user"] = json!("someone-else");
    });
    wait_ready(&env, "drifting", "True", "Updated").await;
    assert_eq!(
        env.es.endpoint("drifting").unwrap()["task_settings"]["user"],
        "search"
    );
}

#[tokio::test]
async fn deletion_is_blocked_while_in_use_then_forced_by_annotation() {
    let env = env_on("9.1.0").await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("blocked").secret("azure").es(&env)).await;
    wait_ready(&env, "blocked", "True", "Created").await;
    env.es.add_index_reference("blocked", "articles");

    api(&env)
        .delete("blocked", &DeleteParams::default())
        .await
        .unwrap();
    let iep = wait_ready(&env, "blocked", "False", "DeletionBlocked").await;
    assert!(message(&iep).contains("articles"), "{}", message(&iep));
    assert!(message(&iep).contains("esinference.io/force-delete=true"));
    assert!(env.es.endpoint("blocked").is_some());

    annotate(&env, "blocked", "esinference.io/force-delete", "true").await;
    wait_gone(&env, "blocked").await;
    assert!(env.es.endpoint("blocked").is_none());
    let forced = env
        .es
        .requests()
        .into_iter()
        .rfind(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(forced.query_param("force").as_deref(), Some("true"));
}

#[tokio::test]
async fn deletion_after_the_secrets_are_gone_still_cleans_up() {
    // A namespace deletion removes Secrets and InferenceEndpoints in parallel.
    let env = env_on("9.1.0").await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("teardown").secret("azure").es(&env)).await;
    wait_ready(&env, "teardown", "True", "Created").await;
    env.delete_secret(inference_testenv::ES_CREDENTIALS_SECRET)
        .await;
    env.delete_secret("azure").await;
    api(&env)
        .delete("teardown", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&env, "teardown").await;
    assert!(env.es.endpoint("teardown").is_none());
}

#[tokio::test]
async fn two_objects_claiming_one_endpoint_the_later_one_never_writes() {
    let env = env_on("9.1.0").await;
    env.put_secret("azure-other", &[("apiKey", "azure-key-other")])
        .await;
    env.es.azure().accept_credential("azure-key-other");
    let _operator = start_operator(&env, test_config());
    create(
        &env,
        Iep::embedding("first")
            .secret("azure")
            .es(&env)
            .inference_id("shared-embeddings"),
    )
    .await;
    wait_ready(&env, "first", "True", "Created").await;

    create(
        &env,
        Iep::embedding("second")
            .secret("azure-other")
            .es(&env)
            .inference_id("shared-embeddings"),
    )
    .await;
    let iep = wait_ready(&env, "second", "False", "Conflict").await;
    assert!(message(&iep).contains("default/first"), "{}", message(&iep));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.es.stored_secret("shared-embeddings"),
        Some(("api_key".into(), KEY.into())),
        "the later object did not push its credential"
    );
    assert_eq!(es_requests(&env, "PUT"), 1);
}

#[tokio::test]
async fn an_existing_endpoint_is_adopted_only_when_it_matches_or_when_annotated() {
    let env = env_on("9.1.0").await;
    env.es.put_out_of_band(json!({
        "inference_id": "preexisting", "task_type": "text_embedding", "service": "azureopenai",
        "service_settings": {"resource_name": "test-resource", "deployment_id": "embeddings",
                             "api_version": "2024-10-21", "api_key": "someone-elses-key"},
        "task_settings": {"user": "legacy"}
    }));
    let _operator = start_operator(&env, test_config());
    create(
        &env,
        Iep::embedding("adopter")
            .secret("azure")
            .es(&env)
            .inference_id("preexisting")
            .set("/azureOpenAI/taskSettings", json!({"user": "search"})),
    )
    .await;
    let iep = wait_ready(&env, "adopter", "False", "Conflict").await;
    assert!(message(&iep).contains("task_settings"), "{}", message(&iep));
    assert!(message(&iep).contains("esinference.io/adopt=true"));
    assert_eq!(
        env.es.stored_secret("preexisting").unwrap().1,
        "someone-elses-key"
    );

    annotate(&env, "adopter", "esinference.io/adopt", "true").await;
    wait_ready(&env, "adopter", "True", "Updated").await;
    let endpoint = env.es.endpoint("preexisting").unwrap();
    assert_eq!(endpoint["task_settings"]["user"], "search");
    assert_eq!(
        env.es.stored_secret("preexisting").unwrap().1,
        KEY,
        "adoption installs our key"
    );
}

#[tokio::test]
async fn immutable_change_is_reported_or_recreated_only_when_unused() {
    let env = env_on("9.1.0").await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("moving").secret("azure").es(&env)).await;
    wait_ready(&env, "moving", "True", "Created").await;

    patch_spec(
        &env,
        "moving",
        json!({"azureOpenAI": {"deploymentId": "embeddings-v2"}}),
    )
    .await;
    let iep = wait_ready(&env, "moving", "False", "ImmutableFieldChanged").await;
    assert!(
        message(&iep).contains("service_settings.deployment_id"),
        "{}",
        message(&iep)
    );
    assert_eq!(
        env.es.endpoint("moving").unwrap()["service_settings"]["deployment_id"],
        "embeddings"
    );

    env.es.add_pipeline_reference("moving", "ingest");
    patch_spec(&env, "moving", json!({"updatePolicy": "Recreate"})).await;
    let iep = wait_ready(&env, "moving", "False", "RecreateBlocked").await;
    assert!(message(&iep).contains("ingest"), "{}", message(&iep));
    assert_eq!(
        env.es.endpoint("moving").unwrap()["service_settings"]["deployment_id"],
        "embeddings"
    );

    env.es.remove_pipeline_reference("moving", "ingest");
    // Nothing about the object changed; the user re-applies (here: a label) to retry.
    annotate(&env, "moving", "retry", "1").await;
    wait_ready(&env, "moving", "True", "Recreated").await;
    assert_eq!(
        env.es.endpoint("moving").unwrap()["service_settings"]["deployment_id"],
        "embeddings-v2"
    );
    assert!(env
        .es
        .requests()
        .iter()
        .all(|r| r.query_param("force").is_none()));
}

#[tokio::test]
async fn a_replaced_cluster_is_reported_not_written_until_accepted() {
    let env = env_on("9.1.0").await;
    let config = recheck_every(Duration::from_millis(300));
    let _operator = start_operator(&env, config);
    create(&env, Iep::embedding("rebuilt").secret("azure").es(&env)).await;
    let before = wait_ready(&env, "rebuilt", "True", "Created").await;
    let old_uuid = before.status.unwrap().cluster.unwrap().uuid;

    env.es.replace_cluster();
    let iep = wait_ready(&env, "rebuilt", "False", "ClusterChanged").await;
    assert!(message(&iep).contains(&old_uuid));
    assert!(
        env.es.endpoint("rebuilt").is_none(),
        "nothing written to the new cluster"
    );

    annotate(
        &env,
        "rebuilt",
        "esinference.io/accept-cluster",
        &env.es.cluster_uuid(),
    )
    .await;
    let iep = wait_ready(&env, "rebuilt", "True", "Created").await;
    assert_eq!(
        iep.status.unwrap().cluster.unwrap().uuid,
        env.es.cluster_uuid()
    );
    assert!(env.es.endpoint("rebuilt").is_some());
}

#[tokio::test]
async fn version_gates_on_8_15_8_18_and_9_3() {
    // 8.15: no chunking settings, no update API (rotation reported, not attempted).
    let env = env_on("8.15.0").await;
    let _operator = start_operator(&env, test_config());
    create(
        &env,
        Iep::embedding("chunked").secret("azure").es(&env).set(
            "/chunkingSettings",
            json!({"strategy": "sentence", "maxChunkSize": 250}),
        ),
    )
    .await;
    wait_ready(&env, "chunked", "False", "UnsupportedByCluster").await;
    create(&env, Iep::embedding("plain").secret("azure").es(&env)).await;
    wait_ready(&env, "plain", "True", "Created").await;
    env.es.azure().accept_credential("azure-key-new");
    env.put_secret("azure", &[("apiKey", "azure-key-new")])
        .await;
    let iep = wait_ready(&env, "plain", "False", "RotationUnsupported").await;
    assert!(message(&iep).contains("8.17"), "{}", message(&iep));
    assert!(env
        .es
        .requests()
        .iter()
        .all(|r| !r.path.ends_with("/_update")));
    drop(_operator);

    // 8.18: chunking and the update API; chat_completion not yet.
    let env = env_on("8.18.0").await;
    let _operator = start_operator(&env, test_config());
    create(
        &env,
        Iep::embedding("chunked").secret("azure").es(&env).set(
            "/chunkingSettings",
            json!({"strategy": "word", "maxChunkSize": 100, "overlap": 10}),
        ),
    )
    .await;
    wait_ready(&env, "chunked", "True", "Created").await;
    create(
        &env,
        Iep::embedding("chat")
            .secret("azure")
            .es(&env)
            .task("chat_completion"),
    )
    .await;
    let iep = wait_ready(&env, "chat", "False", "UnsupportedByCluster").await;
    assert!(message(&iep).contains("9.3"), "{}", message(&iep));
    drop(_operator);

    // 9.3: chat_completion works; PUT carries the timeout parameter.
    let env = env_on("9.3.0").await;
    let _operator = start_operator(&env, test_config());
    create(
        &env,
        Iep::embedding("chat")
            .secret("azure")
            .es(&env)
            .task("chat_completion"),
    )
    .await;
    wait_ready(&env, "chat", "True", "Created").await;
    let put = env
        .es
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.path, "/_inference/chat_completion/chat");
    assert_eq!(put.query_param("timeout").as_deref(), Some("30s"));
}

#[tokio::test]
async fn a_changed_elasticsearch_password_reconnects_without_writing() {
    let env = env_on("9.1.0").await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("reconnect").secret("azure").es(&env)).await;
    wait_ready(&env, "reconnect", "True", "Created").await;
    env.es.clear_requests();

    // The Elasticsearch password is rotated: the cluster first, then the Secret.
    env.es.set_auth(inference_testenv::es::EsAuth::basic(
        inference_testenv::ES_USER,
        "rotated-es-password",
    ));
    env.put_secret(
        inference_testenv::ES_CREDENTIALS_SECRET,
        &[
            ("username", inference_testenv::ES_USER),
            ("password", "rotated-es-password"),
        ],
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "a new connection reading GET /",
        || async {
            env.es
                .requests()
                .iter()
                .any(|r| r.method == "GET" && r.path == "/")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes: Vec<_> = env
        .es
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(writes.is_empty(), "no Elasticsearch writes: {writes:?}");
    let iep = api(&env).get("reconnect").await.unwrap();
    assert_eq!(condition(&iep, "Ready").unwrap().status, "True");
}

// ---- issue 9, point 4: Elasticsearch error classes ------------------------------------------

/// PR #137055 (9.3.0): an endpoint deleted out of band while a pipeline still uses its id cannot
/// be created again. The refusal is reported once (no retry storm), and the periodic re-check
/// recreates the endpoint as soon as the pipeline lets go.
#[tokio::test]
async fn an_id_held_by_a_pipeline_is_reported_then_recreated_once_freed() {
    let env = env_on("9.3.0").await;
    let config = recheck_every(Duration::from_millis(300));
    let _operator = start_operator(&env, config);
    create(&env, Iep::embedding("held").secret("azure").es(&env)).await;
    wait_ready(&env, "held", "True", "Created").await;
    env.es.add_pipeline_reference("held", "ingest-held");
    assert!(env.es.delete_out_of_band("held"));
    let iep = wait_ready(&env, "held", "False", "InferenceIdReferenced").await;
    let text = message(&iep);
    assert!(text.contains("[ingest-held]"), "{text}");
    assert!(text.contains("spec.inferenceId"), "{text}");
    assert_eq!(condition(&iep, "Stalled").unwrap().status, "True");
    // Re-checked at the periodic interval, not in a backoff storm.
    let puts = es_requests(&env, "PUT");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let more = es_requests(&env, "PUT") - puts;
    assert!(more <= 4, "{more} creates in 0.7 s at a 0.3 s re-check");
    env.es.remove_pipeline_reference("held", "ingest-held");
    wait_ready(&env, "held", "True", "Recreated").await;
    assert!(env.es.endpoint("held").is_some());
}

/// A mistyped resourceName: Elasticsearch's `Invalid host` 400 is InvalidSettings naming the
/// host, tried again at the periodic re-check (the name may start resolving).
#[tokio::test]
async fn an_unknown_azure_host_is_invalid_settings_and_rechecked() {
    let env = env_on("9.1.0").await;
    let config = recheck_every(Duration::from_millis(300));
    let _operator = start_operator(&env, config);
    let typo = Iep::embedding("typo").secret("azure").es(&env);
    let resource = typo.spec()["azureOpenAI"]["resourceName"]
        .as_str()
        .unwrap()
        .to_owned();
    env.es.azure().set_resource_outcome(
        &resource,
        Some(inference_testenv::es::AzureOutcome::UnknownHost),
    );
    create(&env, typo).await;
    let iep = wait_ready(&env, "typo", "False", "InvalidSettings").await;
    let text = message(&iep);
    assert!(
        text.contains(&format!("{resource}.openai.azure.com")),
        "{text}"
    );
    assert!(text.contains("resourceName"), "{text}");
    assert_eq!(condition(&iep, "Stalled").unwrap().status, "True");
    env.es.azure().set_resource_outcome(&resource, None);
    wait_ready(&env, "typo", "True", "Created").await;
}

/// Issue #139574 on 9.1: a rotation makes Elasticsearch rewrite the chunking. That is reported
/// (Ready stays True, Warning Event) and never turns into a recreate, even under
/// `updatePolicy: Recreate`.
#[tokio::test]
async fn a_rotation_that_resets_chunking_is_reported_and_never_recreates() {
    let env = env_on("9.1.0").await;
    let config = recheck_every(Duration::from_millis(300));
    let _operator = start_operator(&env, config);
    create(
        &env,
        Iep::embedding("chunky")
            .secret("azure")
            .es(&env)
            .set("/updatePolicy", json!("Recreate"))
            .set(
                "/chunkingSettings",
                json!({"strategy": "sentence", "maxChunkSize": 300, "sentenceOverlap": 0}),
            ),
    )
    .await;
    wait_ready(&env, "chunky", "True", "Created").await;
    env.es.azure().accept_credential("azure-key-rotated-chunky");
    env.put_secret("azure", &[("apiKey", "azure-key-rotated-chunky")])
        .await;
    let iep = wait_ready(&env, "chunky", "True", "ChunkingReset").await;
    assert!(message(&iep).contains("#139574"), "{}", message(&iep));
    wait_event(&env, "chunky", "ChunkingReset", "Warning").await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(es_requests(&env, "DELETE"), 0, "never recreated on its own");
    assert_eq!(
        env.es.endpoint("chunky").unwrap()["chunking_settings"]["strategy"],
        "word"
    );
    let iep = wait_ready(&env, "chunky", "True", "ChunkingReset").await;
    assert!(condition(&iep, "Stalled").is_none());
}
