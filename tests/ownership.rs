//! Ownership across watched scopes: with `--namespace a,b` the operator runs one controller per
//! namespace, and an object in one namespace must never take over, write to or delete the
//! endpoint an object in another namespace manages (issue: an identical object in `b` adopted
//! `a`'s endpoint, pushed its own key, and deleting it deleted `a`'s endpoint).

mod support;

use inference_operator::api::InferenceEndpoint;
use inference_operator::controller::Config;
use inference_testenv::{eventually, TestEnv, ES_CREDENTIALS_SECRET, ES_PASSWORD, ES_USER};
use kube::api::{Api, DeleteParams};
use support::*;

const KEY_A: &str = "azure-key-of-team-a-0123456789";
const KEY_B: &str = "azure-key-of-team-b-0123456789";

/// The Secrets an object in `namespace` reads: its Azure key and the double's credentials.
async fn namespace_with_secrets(env: &TestEnv, namespace: &str, key: &str) {
    env.kube.create_namespace(namespace);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(env.client.clone(), namespace);
    for secret in [
        OpaqueSecret::labelled("azure").data("apiKey", key),
        OpaqueSecret::labelled(ES_CREDENTIALS_SECRET)
            .data("username", ES_USER)
            .data("password", ES_PASSWORD),
    ] {
        secrets
            .create(&Default::default(), &secret.build())
            .await
            .unwrap();
    }
}

/// Object `emb` in `namespace`.
fn emb(env: &TestEnv, namespace: &str) -> Iep {
    Iep::embedding("emb")
        .namespace(namespace)
        .secret("azure")
        .es(env)
}

async fn wait_reason(
    api: &Api<InferenceEndpoint>,
    status: &str,
    reason: &str,
) -> InferenceEndpoint {
    eventually(WAIT, &format!("Ready={status} {reason}"), || async {
        let iep = api.get("emb").await.ok()?;
        let ready = condition(&iep, "Ready")?;
        (ready.status == status && ready.reason == reason).then_some(iep.clone())
    })
    .await
}

/// Elasticsearch requests that write or delete an endpoint.
fn writes(env: &TestEnv) -> Vec<String> {
    env.es
        .requests()
        .into_iter()
        // A dry-run DELETE reads the endpoint's users (status.usedBy) and deletes nothing.
        .filter(|r| r.path.starts_with("/_inference") && r.method != "GET" && !r.is_dry_run())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn an_identical_object_in_another_watched_namespace_is_a_conflict() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY_A);
    env.es.azure().accept_credential(KEY_B);
    namespace_with_secrets(&env, "a", KEY_A).await;
    namespace_with_secrets(&env, "b", KEY_B).await;
    let _operator = start_operator(
        &env,
        Config {
            namespaces: vec!["a".into(), "b".into()],
            ..test_config()
        },
    );
    let in_a: Api<InferenceEndpoint> = Api::namespaced(env.client.clone(), "a");
    let in_b: Api<InferenceEndpoint> = Api::namespaced(env.client.clone(), "b");

    in_a.create(
        &Default::default(),
        &emb(&env, "a").inference_id("shared").build(),
    )
    .await
    .unwrap();
    wait_reason(&in_a, "True", "Created").await;
    let before_b = writes(&env);
    assert_eq!(before_b.len(), 1, "a's one PUT: {before_b:?}");

    in_b.create(
        &Default::default(),
        &emb(&env, "b").inference_id("shared").build(),
    )
    .await
    .unwrap();
    let b = wait_reason(&in_b, "False", "Conflict").await;
    let message = &condition(&b, "Ready").unwrap().message;
    assert!(message.contains("a/emb"), "names the owner: {message}");
    assert!(
        b.status.as_ref().unwrap().inference_id.is_none(),
        "b records no ownership"
    );
    assert_eq!(
        writes(&env),
        before_b,
        "b sent no PUT, _update or DELETE (its key never left the operator)"
    );

    in_b.delete("emb", &DeleteParams::default()).await.unwrap();
    eventually(WAIT, "b gone", || async {
        in_b.get_opt("emb").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(writes(&env), before_b, "deleting b deleted nothing");
    assert!(
        env.es.endpoint("shared").is_some(),
        "a's endpoint is still there"
    );
    let a = in_a.get("emb").await.unwrap();
    let ready = condition(&a, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Created")
    );
}

#[tokio::test]
async fn the_endpoints_gauge_counts_every_watched_namespace() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY_A);
    env.es.azure().accept_credential(KEY_B);
    namespace_with_secrets(&env, "a", KEY_A).await;
    namespace_with_secrets(&env, "b", KEY_B).await;
    let operator = start_operator(
        &env,
        Config {
            namespaces: vec!["a".into(), "b".into()],
            ..test_config()
        },
    );
    for (namespace, id) in [("a", "emb-a"), ("b", "emb-b")] {
        let api: Api<InferenceEndpoint> = Api::namespaced(env.client.clone(), namespace);
        api.create(
            &Default::default(),
            &emb(&env, namespace).inference_id(id).build(),
        )
        .await
        .unwrap();
        wait_reason(&api, "True", "Created").await;
    }
    let text = operator.metrics.encode();
    for line in [
        r#"inference_operator_endpoints{ready="true"} 2"#,
        r#"inference_operator_endpoints{ready="false"} 0"#,
        r#"inference_operator_endpoints{ready="unknown"} 0"#,
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
}
