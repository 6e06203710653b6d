//! ECK integration: `elasticsearchRef` resolves ECK's conventions (service
//! `<name>-es-http`, user `elastic` with the password from `<name>-es-elastic-user`, CA from
//! `<name>-es-http-certs-public`), against the Elasticsearch double serving TLS with a generated
//! CA. The service URL template points at the double, as `--eck-url-template` would for an
//! operator running outside the cluster.

mod support;

use inference_operator::controller::Config;
use inference_testenv::{EnvOptions, TestEnv, ES_PASSWORD};
use serde_json::json;
use support::*;

const KEY: &str = "azure-key-eck";

async fn eck_env() -> TestEnv {
    let env = TestEnv::start_with(EnvOptions {
        es_tls: true,
        ..EnvOptions::default()
    })
    .await;
    env.kube.create_namespace("elastic");
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    env
}

fn config_for(env: &TestEnv, allow_cross_namespace: bool) -> Config {
    let mut config = test_config();
    let port = env.es.addr().port();
    // The double's certificate names localhost; ECK's would name the service.
    config.connection.eck_url_template = format!("https://localhost:{port}");
    config.connection.allow_cross_namespace_refs = allow_cross_namespace;
    config
}

async fn eck_secrets(env: &TestEnv, namespace: &str) {
    let ca = env.es.ca_pem().expect("the double serves TLS");
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(env.client.clone(), namespace);
    for (name, key, value) in [
        (
            "quickstart-es-elastic-user",
            "elastic",
            ES_PASSWORD.to_owned(),
        ),
        ("quickstart-es-http-certs-public", "ca.crt", ca),
    ] {
        let secret = OpaqueSecret::eck(name, "quickstart")
            .namespace(namespace)
            .data(key, &value);
        secrets
            .create(&Default::default(), &secret.build())
            .await
            .expect("create ECK Secret");
    }
}

/// A completion endpoint on ECK `Elasticsearch` `reference`.
fn on_eck(name: &str, reference: serde_json::Value) -> Iep {
    Iep::completion(name)
        .resource("r")
        .secret("azure")
        .eck(reference)
}

#[tokio::test]
async fn elasticsearch_ref_uses_eck_secrets_and_ca() {
    let env = eck_env().await;
    eck_secrets(&env, "default").await;
    let _operator = start_operator(&env, config_for(&env, false));
    create(&env, on_eck("eck", json!({"name": "quickstart"}))).await;
    let iep = wait_ready(&env, "eck", "True", "Created").await;
    assert!(iep.status.unwrap().cluster.is_some());
    let put = env
        .es
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("a PUT");
    assert_eq!(
        format!("{:?}", put.auth),
        format!(
            "{:?}",
            inference_testenv::es::AuthKind::Basic {
                user: "elastic".into()
            }
        )
    );
}

#[tokio::test]
async fn cross_namespace_refs_need_the_operator_flag_and_consent() {
    let env = eck_env().await;
    eck_secrets(&env, "elastic").await;
    let reference = json!({"name": "quickstart", "namespace": "elastic"});
    {
        let _operator = start_operator(&env, config_for(&env, false));
        create(&env, on_eck("denied", reference.clone())).await;
        let iep = wait_ready(&env, "denied", "False", "CrossNamespaceRefDenied").await;
        assert!(condition(&iep, "Ready")
            .unwrap()
            .message
            .contains("\"elastic\""));
        assert_eq!(es_requests(&env, "PUT"), 0);
    }
    // The flag and the Elasticsearch's consent (docs/security.md).
    register_eck_crd(&env);
    create_elasticsearch(&env, "elastic", "quickstart", Some("default")).await;
    let _operator = start_operator(&env, config_for(&env, true));
    create(&env, on_eck("allowed", reference)).await;
    wait_ready(&env, "allowed", "True", "Created").await;
}

#[tokio::test]
async fn a_wrong_ca_is_a_tls_failure_not_a_silent_downgrade() {
    let env = eck_env().await;
    eck_secrets(&env, "default").await;
    // Replace the CA with an unrelated one (the double of another run).
    let other = inference_testenv::es::EsDouble::start(inference_testenv::es::EsOptions {
        tls: true,
        ..Default::default()
    })
    .await;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(env.client.clone(), "default");
    secrets
        .delete("quickstart-es-http-certs-public", &Default::default())
        .await
        .unwrap();
    let secret = OpaqueSecret::eck("quickstart-es-http-certs-public", "quickstart")
        .data("ca.crt", &other.ca_pem().unwrap())
        .build();
    secrets.create(&Default::default(), &secret).await.unwrap();
    let _operator = start_operator(&env, config_for(&env, false));
    create(&env, on_eck("untrusted", json!({"name": "quickstart"}))).await;
    wait_ready(&env, "untrusted", "False", "ElasticsearchTLSFailed").await;
    assert_eq!(es_requests(&env, "PUT"), 0);
}
