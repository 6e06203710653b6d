//! The reconcile loop end to end in one process: the real kube `Controller` wiring against the
//! Kubernetes API emulator, the real Elasticsearch client against the Elasticsearch double.
//! Each scenario asserts on what Elasticsearch received and what the object's status says.

mod support;

use std::time::Duration;

use inference_testenv::es::{Fault, Route};
use inference_testenv::{eventually, TestEnv};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use support::*;

const KEY: &str = "azure-key-0123456789abcdef";

async fn env_with_key() -> TestEnv {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    env
}

#[tokio::test]
async fn text_embedding_endpoint_is_created_and_reported_ready() {
    let env = env_with_key().await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("emb").secret("azure").es(&env)).await;

    let iep = wait_ready(&env, "emb", "True", "Created").await;
    let status = iep.status.as_ref().unwrap();
    assert_eq!(status.observed_generation, iep.metadata.generation);
    assert_eq!(status.inference_id.as_deref(), Some("emb"));
    assert_eq!(status.cluster.as_ref().unwrap().version, "9.1.0");
    let endpoint = status.endpoint.as_ref().unwrap();
    assert_eq!(endpoint.service, "azureopenai");
    assert_eq!(
        endpoint.dimensions,
        Some(1536),
        "dimensions Elasticsearch learned from Azure"
    );
    assert_eq!(endpoint.requests_per_minute, Some(1440));
    assert!(status
        .credential_fingerprint
        .as_deref()
        .unwrap()
        .starts_with("hmac-sha256:"));
    assert!(condition(&iep, "Reconciling").is_none() && condition(&iep, "Stalled").is_none());
    assert_eq!(
        iep.metadata.finalizers.as_deref(),
        Some(&["esinference.io/cleanup".to_owned()][..])
    );

    // GET before PUT, exactly one PUT, on the two-segment path, with the key from the Secret.
    let puts: Vec<_> = env
        .es
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].path, "/_inference/text_embedding/emb");
    assert_eq!(
        env.es.stored_secret("emb"),
        Some(("api_key".into(), KEY.into()))
    );
    let first_get = env
        .es
        .requests()
        .iter()
        .position(|r| r.method == "GET" && r.path == "/_inference/text_embedding/emb");
    let put = env.es.requests().iter().position(|r| r.method == "PUT");
    assert!(first_get < put, "GET precedes PUT");

    wait_event(&env, "emb", "Created", "Normal").await;
}

#[tokio::test]
async fn completion_endpoint_with_entra_id_token() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential("entra-token-xyz");
    env.put_secret("entra", &[("token", "entra-token-xyz")])
        .await;
    let _operator = start_operator(&env, test_config());
    let chat = Iep::completion("chat")
        .es(&env)
        .inference_id("gpt-completion")
        .entra_id("entra", "token")
        .set("/azureOpenAI/taskSettings", json!({"user": "search"}));
    create(&env, chat).await;
    let iep = wait_ready(&env, "chat", "True", "Created").await;
    assert_eq!(
        iep.status.unwrap().inference_id.as_deref(),
        Some("gpt-completion")
    );
    let stored = env.es.endpoint("gpt-completion").expect("endpoint stored");
    assert_eq!(stored["task_type"], "completion");
    assert_eq!(stored["task_settings"], json!({"user": "search"}));
    assert_eq!(
        stored["service_settings"]["rate_limit"]["requests_per_minute"],
        120
    );
    assert_eq!(
        env.es.stored_secret("gpt-completion"),
        Some(("entra_id".into(), "entra-token-xyz".into()))
    );
}

#[tokio::test]
async fn nothing_changed_means_no_elasticsearch_or_status_writes() {
    let env = env_with_key().await;
    let config = recheck_every(Duration::from_millis(300));
    let _operator = start_operator(&env, config);
    create(&env, Iep::embedding("steady").secret("azure").es(&env)).await;
    wait_ready(&env, "steady", "True", "Created").await;

    env.es.clear_requests();
    env.kube.clear_requests();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let requests = env.es.requests();
    let reads = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/_inference/text_embedding/steady")
        .count();
    let writes: Vec<_> = requests.iter().filter(|r| r.method != "GET").collect();
    assert!(
        reads >= 3,
        "at least three re-checks ran (saw {reads} reads)"
    );
    assert!(
        writes.is_empty(),
        "no Elasticsearch writes in steady state: {writes:?}"
    );
    let kube_writes: Vec<_> = env
        .kube
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(
        kube_writes.is_empty(),
        "no Kubernetes writes in steady state: {kube_writes:?}"
    );
}

#[tokio::test]
async fn missing_secret_is_reported_then_picked_up_when_created() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY);
    let _operator = start_operator(&env, test_config());
    let created = create(&env, Iep::embedding("late").secret("azure-late").es(&env)).await;

    let iep = wait_ready(&env, "late", "False", "SecretNotFound").await;
    let ready = condition(&iep, "Ready").unwrap();
    assert!(
        ready.message.contains(r#"Secret "azure-late" not found"#),
        "{}",
        ready.message
    );
    assert_eq!(condition(&iep, "Stalled").unwrap().status, "True");
    assert_eq!(es_requests(&env, "PUT"), 0);
    wait_event(&env, "late", "SecretNotFound", "Warning").await;

    // Creating the Secret alone (the object is untouched) brings the endpoint up: the
    // metadata-only Secret watch maps it to this object; the re-check interval is an hour.
    env.put_secret("azure-late", &[("apiKey", KEY)]).await;
    let iep = wait_ready(&env, "late", "True", "Created").await;
    assert_eq!(iep.metadata.generation, created.metadata.generation);
    assert!(condition(&iep, "Stalled").is_none());
}

#[tokio::test]
async fn missing_key_in_secret_is_reported() {
    let env = TestEnv::start().await;
    env.put_secret("azure", &[("wrongKey", KEY)]).await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("nokey").secret("azure").es(&env)).await;
    let iep = wait_ready(&env, "nokey", "False", "SecretKeyMissing").await;
    let message = &condition(&iep, "Ready").unwrap().message;
    assert_eq!(message, r#"Secret "azure" has no key "apiKey""#);
    assert_eq!(es_requests(&env, "PUT"), 0);
}

#[tokio::test]
async fn rejected_azure_key_is_reported_with_elasticsearch_reason_and_not_retried() {
    let env = TestEnv::start().await;
    env.put_secret("azure", &[("apiKey", "revoked-key")]).await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("badkey").secret("azure").es(&env)).await;

    let iep = wait_ready(&env, "badkey", "False", "AzureRejectedCredentials").await;
    let message = &condition(&iep, "Ready").unwrap().message;
    assert!(
        message.contains("Received an authentication error status code"),
        "message quotes Elasticsearch: {message}"
    );
    assert!(!message.contains("revoked-key"));
    assert_eq!(condition(&iep, "Stalled").unwrap().status, "True");

    // Permanent: no retry storm while nothing changes (backoff would have retried ~10 times).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        es_requests(&env, "PUT"),
        1,
        "the rejected PUT is not retried"
    );

    // Fixing the Secret is enough.
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    wait_ready(&env, "badkey", "True", "Created").await;
    assert_eq!(
        env.es.stored_secret("badkey"),
        Some(("api_key".into(), KEY.into()))
    );
}

#[tokio::test]
async fn unreachable_elasticsearch_backs_off_then_converges() {
    let env = env_with_key().await;
    env.es.inject_fault(Route::Any, Fault::Reset, Some(4));
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("flaky").secret("azure").es(&env)).await;

    let iep = wait_ready(&env, "flaky", "True", "Created").await;
    assert!(condition(&iep, "Reconciling").is_none());
    // The transient failure was announced.
    wait_event(&env, "flaky", "ElasticsearchUnreachable", "Warning").await;
    assert_eq!(es_requests(&env, "PUT"), 1);
}

#[tokio::test]
async fn transient_failure_sets_reconciling_until_elasticsearch_returns() {
    let env = env_with_key().await;
    env.es.inject_fault(Route::Any, Fault::Status(503), None);
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("down").secret("azure").es(&env)).await;
    let iep = wait_ready(&env, "down", "False", "ElasticsearchUnavailable").await;
    assert_eq!(condition(&iep, "Reconciling").unwrap().status, "True");
    assert!(condition(&iep, "Stalled").is_none());

    // Attempts are spaced by a growing delay (100 ms doubling, capped at 1 s): over 2 s a hot
    // loop would make hundreds of requests.
    env.es.clear_requests();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let attempts = env.es.requests().len();
    assert!(
        (1..=8).contains(&attempts),
        "backoff bounds attempts: {attempts}"
    );

    env.es.clear_faults();
    wait_ready(&env, "down", "True", "Created").await;
}

#[tokio::test]
async fn delete_policy_removes_the_endpoint_and_releases_the_finalizer() {
    let env = env_with_key().await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("gone").secret("azure").es(&env)).await;
    wait_ready(&env, "gone", "True", "Created").await;

    api(&env)
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&env, "gone").await;
    assert!(env.es.endpoint("gone").is_none());
    assert_eq!(es_requests(&env, "DELETE"), 1);
}

#[tokio::test]
async fn retain_policy_leaves_the_endpoint() {
    let env = env_with_key().await;
    let _operator = start_operator(&env, test_config());
    create(
        &env,
        Iep::embedding("kept")
            .secret("azure")
            .es(&env)
            .set("/deletionPolicy", json!("Retain")),
    )
    .await;
    wait_ready(&env, "kept", "True", "Created").await;

    api(&env)
        .delete("kept", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&env, "kept").await;
    assert!(env.es.endpoint("kept").is_some());
    assert_eq!(es_requests(&env, "DELETE"), 0);
}

#[tokio::test]
async fn delete_when_elasticsearch_already_lost_the_endpoint() {
    let env = env_with_key().await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("lost").secret("azure").es(&env)).await;
    wait_ready(&env, "lost", "True", "Created").await;
    assert!(env.es.delete_out_of_band("lost"));

    api(&env)
        .delete("lost", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&env, "lost").await;
    assert_eq!(es_requests(&env, "DELETE"), 1, "the 404 counts as done");
}

#[tokio::test]
async fn delete_refused_while_in_use_is_reported_not_forced() {
    let env = env_with_key().await;
    let operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("used").secret("azure").es(&env)).await;
    wait_ready(&env, "used", "True", "Created").await;
    env.es.add_pipeline_reference("used", "ingest-docs");

    api(&env)
        .delete("used", &DeleteParams::default())
        .await
        .unwrap();
    let iep = wait_ready(&env, "used", "False", "DeletionBlocked").await;
    let message = &condition(&iep, "Ready").unwrap().message;
    assert!(
        message.contains("ingest-docs"),
        "names the pipeline: {message}"
    );
    assert!(env.es.endpoint("used").is_some());
    assert!(
        env.es
            .requests()
            .iter()
            .all(|r| r.query_param("force").is_none()),
        "never forced"
    );

    env.es.remove_pipeline_reference("used", "ingest-docs");
    wait_gone(&env, "used").await;
    assert!(env.es.endpoint("used").is_none());

    // Each blocked attempt is one transient reconcile, not also an error with no duration.
    let text = operator.metrics.encode();
    assert!(
        !text.contains(r#"result="error""#),
        "a blocked deletion is not an error:\n{text}"
    );
    let value = |prefix: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert!(value(r#"inference_operator_reconciliations_total{result="transient"}"#) >= 1);
    assert_eq!(
        value("inference_operator_reconciliations_total"),
        value("inference_operator_reconcile_duration_seconds_count"),
        "every reconcile counted once, with its duration:\n{text}"
    );
}

#[tokio::test]
async fn rotated_key_reaches_elasticsearch_through_update_without_delete() {
    let env = env_with_key().await;
    // Elasticsearch 9.1 also rewrites chunking on `_update` (issue #139574): that report is
    // covered in lifecycle.rs; here the cluster behaves like a fixed release.
    env.es.set_update_chunking_bug(false);
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("rot").secret("azure").es(&env)).await;
    let before = wait_ready(&env, "rot", "True", "Created").await;

    env.es.azure().accept_credential("azure-key-rotated");
    env.put_secret("azure", &[("apiKey", "azure-key-rotated")])
        .await;
    let after = wait_ready(&env, "rot", "True", "CredentialsRotated").await;
    assert_ne!(
        before.status.unwrap().credential_fingerprint,
        after.status.unwrap().credential_fingerprint
    );
    assert_eq!(
        env.es.stored_secret("rot"),
        Some(("api_key".into(), "azure-key-rotated".into()))
    );
    let update = env
        .es
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/_update"))
        .expect("an _update");
    assert_eq!(update.path, "/_inference/text_embedding/rot/_update");
    assert_eq!(es_requests(&env, "DELETE"), 0);
}

#[tokio::test]
async fn settings_the_cluster_version_lacks_are_refused_before_any_request() {
    let env = env_with_key().await;
    let _operator = start_operator(&env, test_config());
    // The schema allows chunking settings; an 8.15 cluster does not know them. The operator
    // says so instead of sending a request Elasticsearch would answer with an opaque 400.
    env.es.set_version("8.15.0");
    create(
        &env,
        Iep::embedding("old").secret("azure").es(&env).set(
            "/chunkingSettings",
            json!({"strategy": "sentence", "maxChunkSize": 100}),
        ),
    )
    .await;
    let iep = wait_ready(&env, "old", "False", "UnsupportedByCluster").await;
    assert!(condition(&iep, "Ready").unwrap().message.contains("8.16"));
    assert_eq!(
        env.es
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/_inference"))
            .count(),
        0,
        "refused before any endpoint request"
    );

    // Dropping the field fixes it.
    let patch = json!({"spec": {"chunkingSettings": null}});
    api(&env)
        .patch("old", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let iep = wait_ready(&env, "old", "True", "Created").await;
    assert_eq!(iep.status.as_ref().unwrap().observed_generation, Some(2));
    let _ = eventually(Duration::from_secs(1), "one PUT", || async {
        (es_requests(&env, "PUT") == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn only_the_listed_namespaces_are_watched() {
    let env = env_with_key().await;
    for namespace in ["team-a", "team-b", "team-c"] {
        env.kube.create_namespace(namespace);
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(env.client.clone(), namespace);
        for secret in [
            OpaqueSecret::labelled("azure").data("apiKey", KEY),
            OpaqueSecret::labelled(inference_testenv::ES_CREDENTIALS_SECRET)
                .data("username", inference_testenv::ES_USER)
                .data("password", inference_testenv::ES_PASSWORD),
        ] {
            secrets
                .create(&Default::default(), &secret.build())
                .await
                .unwrap();
        }
    }
    let config = inference_operator::controller::Config {
        namespaces: vec!["team-a".into(), "team-b".into()],
        ..test_config()
    };
    let operator = start_operator(&env, config);
    let apis: Vec<kube::Api<inference_operator::api::InferenceEndpoint>> =
        ["team-a", "team-b", "team-c"]
            .iter()
            .map(|ns| kube::Api::namespaced(env.client.clone(), ns))
            .collect();
    for (api, ns) in apis.iter().zip(["team-a", "team-b", "team-c"]) {
        let object = Iep::embedding("emb")
            .namespace(ns)
            .secret("azure")
            .es(&env)
            .inference_id(&format!("emb-{ns}"));
        api.create(&Default::default(), &object.build())
            .await
            .unwrap();
    }
    for ns in ["team-a", "team-b"] {
        let id = format!("emb-{ns}");
        eventually(WAIT, &id, || async { env.es.endpoint(&id).map(|_| ()) }).await;
    }
    eventually(WAIT, "ready once both namespaces synced", || async {
        operator.health.is_ready().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        env.es.endpoint("emb-team-c").is_none(),
        "team-c is not watched"
    );
    let untouched = apis[2].get("emb").await.unwrap();
    assert!(untouched.status.is_none() || untouched.status.unwrap().conditions.is_empty());
    assert!(
        untouched.metadata.finalizers.is_none(),
        "no finalizer added outside the scope"
    );
}

/// Writes (PUT, PATCH) of InferenceEndpoints or their `subresource`: the operator's (the test
/// only creates them).
fn operator_writes(env: &TestEnv, subresource: Option<&str>) -> usize {
    env.kube
        .requests()
        .iter()
        .filter(|r| matches!(r.method.as_str(), "PUT" | "PATCH"))
        .filter(|r| r.resource.as_deref() == Some("inferenceendpoints"))
        .filter(|r| r.subresource.as_deref() == subresource)
        .count()
}

/// One pass per create (issue 16, point 2): the pass that adds the finalizer goes on into the
/// apply with the object the patch answered, so the endpoint exists when that pass returns.
#[tokio::test]
async fn the_pass_that_adds_the_finalizer_creates_the_endpoint() {
    use inference_operator::controller::identity::Identity;
    use inference_operator::controller::ownership::OwnershipIndex;
    use inference_operator::controller::{reconcile, Context};
    use inference_operator::metrics::Metrics;
    use std::sync::Arc;

    let env = env_with_key().await;
    let object = create(&env, Iep::embedding("onepass").secret("azure").es(&env)).await;
    let who = Identity::of(&object).expect("identity");
    let ctx = Arc::new(Context::new(
        env.client.clone(),
        test_config(),
        Arc::new(Metrics::default()),
        Arc::new(OwnershipIndex::default()),
    ));

    // The finalizer cannot be stored: no write reaches Elasticsearch (the reads that overlap
    // the patch may: `the_first_pass_reads_while_the_finalizer_patch_is_in_flight`).
    env.kube
        .fail_next_matching(1, 500, Some("PATCH"), Some("/inferenceendpoints/onepass"));
    let refused = reconcile::hold(Arc::new(object.clone()), &who, ctx.clone()).await;
    assert!(refused.is_err(), "a refused finalizer fails the pass");
    assert_eq!(
        es_writes(&env),
        Vec::<String>::new(),
        "nothing written to Elasticsearch before the finalizer is stored"
    );

    reconcile::hold(Arc::new(object), &who, ctx)
        .await
        .expect("the pass succeeds");
    assert!(
        env.es.endpoint("onepass").is_some(),
        "the same pass created the endpoint"
    );
    let stored = api(&env).get("onepass").await.expect("object");
    assert_eq!(
        stored.metadata.finalizers.as_deref(),
        Some(&["esinference.io/cleanup".to_owned()][..])
    );
    let ready = condition(&stored, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Created")
    );
    // The finalizer patch (refused once, then stored) and the status: nothing else.
    assert_eq!(operator_writes(&env, None), 2);
    assert_eq!(operator_writes(&env, Some("status")), 1);
}

/// With the controller running, a create costs one pass: 2 Kubernetes writes (finalizer,
/// status) and one Event, one GET and one PUT, and no second pass after the finalizer's own
/// watch event (which would GET again, and, reading a store without the status yet, write it
/// twice).
#[tokio::test]
async fn a_create_is_one_pass_two_writes_and_one_event() {
    let env = env_with_key().await;
    let operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("counted").secret("azure").es(&env)).await;
    wait_ready(&env, "counted", "True", "Created").await;
    wait_event(&env, "counted", "Created", "Normal").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let object_writes = operator_writes(&env, None);
    let status_writes = operator_writes(&env, Some("status"));
    assert_eq!((object_writes, status_writes), (1, 1), "finalizer + status");
    // Besides the one-off warning that the double is reached over http://.
    let events: Vec<_> = events(&env, "counted")
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .filter(|r| r != "PlaintextCredentials")
        .collect();
    assert_eq!(events, ["Created"], "one Event");
    let requests = env.es.requests();
    let on_id = |method: &str| {
        requests
            .iter()
            .filter(|r| r.method == method && r.path == "/_inference/text_embedding/counted")
            .count()
    };
    assert_eq!((on_id("GET"), on_id("PUT")), (1, 1), "{requests:?}");
    // Nothing else about the endpoint: its users are read later, on their own clock
    // (tests/usage.rs), not by a dry-run DELETE in the create's pass.
    let endpoint_requests = requests
        .iter()
        .filter(|r| r.path.starts_with("/_inference"))
        .count();
    assert_eq!(
        endpoint_requests, 2,
        "a create is a GET and a PUT: {requests:?}"
    );
    let passes = operator.metrics.encode();
    let reconciled: f64 = passes
        .lines()
        .filter(|l| l.starts_with("inference_operator_reconciliations_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(reconciled, 1.0, "one reconcile pass:\n{passes}");
}

/// A second pass that starts from the cache before the watch delivered the first pass's own
/// writes (the cache `lag` writes past the create: 0, the object as created; 1, with the
/// finalizer but no status) writes nothing from it: it waits for the cache to catch up
/// (controller::own_writes). Triggered by a change of the Secret (an unrelated key) while the
/// object's watch is held back.
async fn second_pass_from_a_stale_cache(lag: u64) {
    let env = env_with_key().await;
    let operator = start_operator(&env, test_config());
    eventually(WAIT, "watches synced", || async {
        operator.health.is_ready().then_some(())
    })
    .await;
    let create_rv = env.kube.resource_version() + 1;
    env.kube
        .hold_watch_events_after("inferenceendpoints", Some(create_rv + lag));
    let object = create(&env, Iep::embedding("stale").secret("azure").es(&env)).await;
    assert_eq!(
        object.metadata.resource_version,
        Some(create_rv.to_string())
    );
    // The first pass, read from the API server (the operator's cache lags behind it).
    wait_ready(&env, "stale", "True", "Created").await;
    env.put_secret("azure", &[("apiKey", KEY), ("unrelated", "touched")])
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    env.kube.hold_watch_events_after("inferenceendpoints", None);
    tokio::time::sleep(Duration::from_millis(800)).await;

    let stored = api(&env).get("stale").await.expect("object");
    let ready = condition(&stored, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Created")
    );
    assert_eq!(
        (
            operator_writes(&env, None),
            operator_writes(&env, Some("status"))
        ),
        (1, 1),
        "one finalizer patch and one status write: {:?}",
        env.kube
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .collect::<Vec<_>>()
    );
    assert_eq!(es_requests(&env, "PUT"), 1);
    let events: Vec<_> = events(&env, "stale")
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .filter(|r| r != "PlaintextCredentials")
        .collect();
    assert_eq!(
        events,
        ["Created"],
        "no Adopted from a cache without the status"
    );
}

#[tokio::test]
async fn a_pass_from_the_cached_object_before_its_finalizer_waits_for_the_cache() {
    second_pass_from_a_stale_cache(0).await;
}

#[tokio::test]
async fn a_pass_from_the_cached_object_before_its_status_waits_for_the_cache() {
    second_pass_from_a_stale_cache(1).await;
}

/// A create Elasticsearch refused for good is not sent again by a pass queued meanwhile (the
/// Secret written again with an unrelated key), even once the cache holds the refusal: status
/// records nothing that a plan could tell a refused create by, so this is the case the stale
/// cache guard cannot cover and `CreatesSent::refused` does (for 10 s).
#[tokio::test]
async fn a_refused_create_is_not_sent_again_by_a_pass_queued_meanwhile() {
    let env = TestEnv::start().await;
    env.put_secret("azure", &[("apiKey", "revoked-key")]).await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("refused").secret("azure").es(&env)).await;
    wait_ready(&env, "refused", "False", "AzureRejectedCredentials").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.put_secret(
        "azure",
        &[("apiKey", "revoked-key"), ("unrelated", "touched")],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        es_requests(&env, "PUT"),
        1,
        "the refused PUT is not sent again"
    );
}

/// The Elasticsearch requests that write (anything but GET and HEAD), as `METHOD path`.
fn es_writes(env: &TestEnv) -> Vec<String> {
    let requests = env.es.requests();
    let writes = requests
        .iter()
        .filter(|r| !matches!(r.method.as_str(), "GET" | "HEAD"));
    writes.map(|r| format!("{} {}", r.method, r.path)).collect()
}

/// A Context of its own, for a pass driven by the test (no controller running).
fn bare_context(env: &TestEnv) -> std::sync::Arc<inference_operator::controller::Context> {
    use inference_operator::controller::ownership::OwnershipIndex;
    use inference_operator::controller::Context;
    use inference_operator::metrics::Metrics;
    use std::sync::Arc;
    Arc::new(Context::new(
        env.client.clone(),
        test_config(),
        Arc::new(Metrics::default()),
        Arc::new(OwnershipIndex::default()),
    ))
}

/// The first pass observes while its finalizer patch is in flight (issue 16, point 2): the
/// Secret read and the GET of the id overlap the patch, so a refused patch has already sent
/// the GET, but nothing that writes; and, with every Kubernetes request taking `lag`, the pass
/// costs about three of them (patch with the reads, status), not four (patch, reads, status).
#[tokio::test]
async fn the_first_pass_reads_while_the_finalizer_patch_is_in_flight() {
    use inference_operator::controller::identity::Identity;
    use inference_operator::controller::reconcile;
    use std::sync::Arc;
    use std::time::Instant;

    let env = env_with_key().await;
    let object = create(&env, Iep::embedding("overlap").secret("azure").es(&env)).await;
    let who = Identity::of(&object).expect("identity");
    let ctx = bare_context(&env);
    env.kube
        .fail_next_matching(1, 500, Some("PATCH"), Some("/inferenceendpoints/overlap"));
    let refused = reconcile::hold(Arc::new(object.clone()), &who, ctx.clone()).await;
    assert!(refused.is_err(), "a refused finalizer fails the pass");
    let get = "/_inference/text_embedding/overlap";
    let gets = |env: &TestEnv| {
        env.es
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == get)
            .count()
    };
    assert_eq!(gets(&env), 1, "the GET overlapped the refused patch");
    assert_eq!(
        es_writes(&env),
        Vec::<String>::new(),
        "but nothing was written"
    );

    let lag = Duration::from_millis(700);
    env.kube.set_latency(lag);
    let started = Instant::now();
    reconcile::hold(Arc::new(object), &who, ctx)
        .await
        .expect("the pass succeeds");
    let took = started.elapsed();
    env.kube.set_latency(Duration::ZERO);
    let stored = api(&env).get("overlap").await.expect("object");
    let ready = condition(&stored, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Created")
    );
    assert_eq!(es_writes(&env), [format!("PUT {get}")], "one create");
    // Patch and reads together, then the status patch: 2 x lag; one after another: 3 x lag.
    assert!(
        took < lag * 5 / 2,
        "the reads did not overlap the finalizer patch: {took:?} for a pass at {lag:?} per Kubernetes request"
    );
}

/// An observation made while the finalizer patch was in flight is used only for the object it
/// observed: when the patch answers with another spec (here the test's copy is out of date; in
/// a cluster, a mutating webhook), the pass observes again. The stored spec names an id that
/// someone else's endpoint holds, the copy a free one: observed from the copy, the pass would
/// PUT over it.
#[tokio::test]
async fn an_early_observation_of_another_spec_is_not_acted_on() {
    use inference_operator::controller::identity::Identity;
    use inference_operator::controller::reconcile;
    use std::sync::Arc;

    let env = env_with_key().await;
    env.es.put_out_of_band(json!({
        "inference_id": "taken", "task_type": "text_embedding", "service": "azureopenai",
        "service_settings": {"resource_name": "someone-else", "deployment_id": "embeddings",
                             "api_version": "2024-10-21", "api_key": "someone-elses-key"}
    }));
    let object = create(&env, Iep::embedding("taken").secret("azure").es(&env)).await;
    let who = Identity::of(&object).expect("identity");
    let mut stale = object.clone();
    stale.spec.inference_id = Some("free".into());
    reconcile::hold(Arc::new(stale), &who, bare_context(&env))
        .await
        .expect("the pass succeeds");
    let stored = api(&env).get("taken").await.expect("object");
    let ready = condition(&stored, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Conflict"),
        "{}",
        ready.message
    );
    assert_eq!(
        es_writes(&env),
        Vec::<String>::new(),
        "nothing written over someone else's endpoint"
    );
}
