//! Multi-tenant safety, playing a user who may create InferenceEndpoints but not read Secrets:
//! the operator must not become their way to read a Secret, reach a server they choose with
//! someone's credentials, or use another namespace's Elasticsearch without its consent
//! (docs/security.md). Each scenario asserts on what the emulator served, what Elasticsearch
//! (or a recording TCP listener) received, and the object's status.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use inference_operator::controller::destination::parse_rules;
use inference_operator::controller::Config;
use inference_testenv::es::EsAuth;
use inference_testenv::kube::RequestRecord;
use inference_testenv::{eventually, EnvOptions, TestEnv, ES_PASSWORD, ES_USER};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::*;

const KEY: &str = "azure-key-tenancy-0123456789";
const VICTIM_KEY: &str = "victim-key-must-never-leave";

/// A TCP listener that counts the connections it accepts (and closes them): where the
/// attacker's server would be.
struct Listener {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

async fn listener() -> Listener {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = socket.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    Listener { port, accepted }
}

/// Every request for Secret `name` that could have returned its content: a GET by name, or a
/// LIST of whole Secrets (not metadata-only) that did not require the opt-in label.
fn content_reads(requests: &[RequestRecord], name: &str) -> Vec<RequestRecord> {
    requests
        .iter()
        .filter(|r| r.resource.as_deref() == Some("secrets") && r.method == "GET" && !r.watch)
        .filter(|r| {
            let metadata_only = r
                .accept
                .as_deref()
                .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
            let by_name = r.name.as_deref() == Some(name);
            let labelled = r
                .query
                .contains("labelSelector=esinference.io%2Fcredentials%3Dtrue")
                || r.query
                    .contains("labelSelector=elasticsearch.k8s.elastic.co%2Fcluster-name%3D");
            by_name || (r.name.is_none() && !metadata_only && !labelled)
        })
        .cloned()
        .collect()
}

async fn wait_message(env: &TestEnv, name: &str, reason: &str) -> String {
    let iep = wait_ready(env, name, "False", reason).await;
    condition(&iep, "Ready").unwrap().message.clone()
}

#[tokio::test]
async fn a_secret_without_the_label_is_never_read_nor_sent() {
    let env = TestEnv::start().await;
    // Another team's Secret in the same namespace; the attacker cannot read it.
    env.put_unlabelled_secret(
        "victim",
        &[
            ("apiKey", VICTIM_KEY),
            ("username", "u"),
            ("password", VICTIM_KEY),
        ],
    )
    .await;
    let attacker = listener().await;
    let _operator = start_operator(&env, test_config());
    env.kube.clear_requests();
    let url = format!("http://127.0.0.1:{}", attacker.port);
    create(
        &env,
        Iep::embedding("steal")
            .secret("victim")
            .es_url(&url, "victim"),
    )
    .await;

    let message = wait_message(&env, "steal", "SecretNotAllowed").await;
    assert!(
        message.contains("kubectl label secret victim -n default esinference.io/credentials=true"),
        "{message}"
    );
    assert!(!message.contains(VICTIM_KEY));
    let iep = api(&env).get("steal").await.unwrap();
    assert_eq!(
        condition(&iep, "Stalled").unwrap().status,
        "True",
        "permanent"
    );
    // Give retries a chance to show up, then check nothing read or sent the Secret.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        attacker.accepted.load(Ordering::SeqCst),
        0,
        "the attacker's server got a connection"
    );
    let reads = content_reads(&env.kube.requests(), "victim");
    assert!(
        reads.is_empty(),
        "requests that could return the Secret: {reads:#?}"
    );
    let secret_lists = env
        .kube
        .requests()
        .into_iter()
        .filter(|r| {
            r.resource.as_deref() == Some("secrets") && !r.watch && r.query.contains("victim")
        })
        .count();
    assert!(secret_lists > 0, "the operator did look the Secret up");
    wait_event(&env, "steal", "SecretNotAllowed", "Warning").await;
}

#[tokio::test]
async fn labelling_the_secret_makes_the_object_ready_without_touching_it() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY);
    env.put_unlabelled_secret("azure", &[("apiKey", KEY)]).await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("emb").secret("azure").es(&env)).await;
    wait_message(&env, "emb", "SecretNotAllowed").await;
    assert_eq!(es_requests(&env, "PUT"), 0);
    let before = api(&env).get("emb").await.unwrap();

    env.label_secret("azure", true).await;
    let after = wait_ready(&env, "emb", "True", "Created").await;
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.metadata.annotations, before.metadata.annotations);
    assert_eq!(
        env.es.stored_secret("emb"),
        Some(("api_key".into(), KEY.into()))
    );

    // Taking the label away stops its use again (the next reconcile says so).
    env.label_secret("azure", false).await;
    wait_message(&env, "emb", "SecretNotAllowed").await;
}

#[tokio::test]
async fn with_the_opt_in_turned_off_unlabelled_secrets_are_used() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY);
    env.put_unlabelled_secret("azure", &[("apiKey", KEY)]).await;
    let config = Config {
        connection: inference_operator::controller::connection::ConnectionSettings {
            require_secret_opt_in: false,
            ..test_config().connection
        },
        ..test_config()
    };
    let _operator = start_operator(&env, config);
    create(&env, Iep::embedding("emb").secret("azure").es(&env)).await;
    wait_ready(&env, "emb", "True", "Created").await;
}

/// docs/upgrading.md, "Secrets and connections": an object made before the opt-in existed
/// (Ready, its Secret unlabelled) ends with SecretNotAllowed and the fix, its endpoint left in
/// place; labelling the Secret brings it back.
#[tokio::test]
async fn an_object_made_before_the_opt_in_says_what_to_do() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY);
    env.put_unlabelled_secret("azure", &[("apiKey", KEY)]).await;
    {
        // The previous behaviour: any Secret of the namespace is read.
        let mut old = test_config();
        old.connection.require_secret_opt_in = false;
        let _operator = start_operator(&env, old);
        create(&env, Iep::embedding("emb").secret("azure").es(&env)).await;
        wait_ready(&env, "emb", "True", "Created").await;
    }
    let _operator = start_operator(&env, test_config());
    let message = wait_message(&env, "emb", "SecretNotAllowed").await;
    assert!(
        message.contains("kubectl label secret azure -n default esinference.io/credentials=true")
    );
    assert!(
        env.es.endpoint("emb").is_some(),
        "the endpoint is left alone"
    );
    env.label_secret("azure", true).await;
    wait_ready(&env, "emb", "True", "InSync").await;
}

fn with_destinations(allow: &str, deny: &str, eck_only: bool) -> Config {
    let mut config = test_config();
    config.connection.destinations.allow = parse_rules(allow).unwrap();
    config.connection.destinations.deny = parse_rules(deny).unwrap();
    config.connection.destinations.eck_only = eck_only;
    config
}

#[tokio::test]
async fn the_cloud_metadata_address_is_refused_before_any_connection() {
    let env = TestEnv::start().await;
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    let _operator = start_operator(&env, test_config());
    for (name, url) in [
        ("imds", "http://169.254.169.254/latest"),
        ("imds-hex", "http://0xA9FEA9FE/"),
        ("imds-v6", "http://[fd00:ec2::254]/"),
        ("gcp", "http://metadata.google.internal/"),
    ] {
        create(
            &env,
            Iep::embedding(name)
                .secret("azure")
                .es_url(url, "es-credentials"),
        )
        .await;
        let message = wait_message(&env, name, "ElasticsearchUrlNotAllowed").await;
        assert!(message.contains("--es-deny"), "{name}: {message}");
        let iep = api(&env).get(name).await.unwrap();
        assert_eq!(
            condition(&iep, "Stalled").unwrap().status,
            "True",
            "{name}: permanent"
        );
    }
}

#[tokio::test]
async fn a_name_resolving_to_a_denied_address_is_refused_before_any_connection() {
    let env = TestEnv::start().await;
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    let attacker = listener().await;
    // `localhost` resolves to loopback; deny loopback as a metadata range would be denied.
    let _operator = start_operator(&env, with_destinations("", "127.0.0.0/8,::1/128", false));
    let url = format!("http://localhost:{}", attacker.port);
    create(
        &env,
        Iep::embedding("rebind")
            .secret("azure")
            .es_url(&url, "es-credentials"),
    )
    .await;
    let message = wait_message(&env, "rebind", "ElasticsearchUrlNotAllowed").await;
    assert!(
        message.contains("resolves to") && message.contains("--es-deny"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(attacker.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn only_allowed_destinations_are_reached() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    let attacker = listener().await;
    // The double is allowed by name (localhost); the attacker's address is not.
    let _operator = start_operator(&env, with_destinations("localhost,10.0.0.0/8", "", false));
    let outside = format!("http://127.0.0.1:{}", attacker.port);
    create(
        &env,
        Iep::embedding("outside")
            .secret("azure")
            .es_url(&outside, "es-credentials"),
    )
    .await;
    let message = wait_message(&env, "outside", "ElasticsearchUrlNotAllowed").await;
    assert!(
        message.contains("--es-allow list (localhost, 10.0.0.0/8)"),
        "{message}"
    );
    create(
        &env,
        Iep::embedding("inside")
            .secret("azure")
            .es(&env)
            .set("/elasticsearch/url", json!(env.es.url_localhost())),
    )
    .await;
    wait_ready(&env, "inside", "True", "Created").await;
    assert_eq!(attacker.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn eck_only_refuses_every_direct_url() {
    let env = TestEnv::start().await;
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    let _operator = start_operator(&env, with_destinations("", "", true));
    create(&env, Iep::embedding("direct").secret("azure").es(&env)).await;
    let message = wait_message(&env, "direct", "ElasticsearchUrlNotAllowed").await;
    assert!(message.contains("--eck-only"), "{message}");
    assert!(
        env.es.requests().is_empty(),
        "nothing reached Elasticsearch"
    );
}

#[tokio::test]
async fn plain_http_is_reported_once_and_ready_keeps_its_meaning() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    let _operator = start_operator(&env, test_config());
    create(&env, Iep::embedding("emb").secret("azure").es(&env)).await;
    let iep = wait_ready(&env, "emb", "True", "Created").await;
    let warning = condition(&iep, "InsecureTransport").expect("InsecureTransport condition");
    assert_eq!(
        (warning.status.as_str(), warning.reason.as_str()),
        ("True", "PlaintextCredentials")
    );
    wait_event(&env, "emb", "PlaintextCredentials", "Warning").await;
    // Another reconcile (an annotation change) does not announce it again.
    api(&env)
        .patch(
            "emb",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})),
        )
        .await
        .unwrap();
    eventually(WAIT, "the annotation change reconciled", || {
        let env = &env;
        async move { (es_requests(env, "GET") >= 2).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let warnings = events(&env, "emb")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("PlaintextCredentials"))
        .count();
    assert_eq!(warnings, 1);
}

async fn eck_env(namespaces: &[&str]) -> TestEnv {
    let env = TestEnv::start_with(EnvOptions {
        es_tls: true,
        ..EnvOptions::default()
    })
    .await;
    for namespace in namespaces {
        env.kube.create_namespace(namespace);
    }
    register_eck_crd(&env);
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    env
}

/// ECK's Secrets for `quickstart` in `namespace`, as ECK makes them: no opt-in label, ECK's own
/// labels (`label.NewLabels` in ECK's pkg/controller/elasticsearch/label/label.go).
async fn eck_secrets(env: &TestEnv, namespace: &str, password: &str) {
    let secrets: kube::Api<Secret> = kube::Api::namespaced(env.client.clone(), namespace);
    for (name, key, value) in [
        ("quickstart-es-elastic-user", "elastic", password.to_owned()),
        (
            "quickstart-es-http-certs-public",
            "ca.crt",
            env.es.ca_pem().unwrap(),
        ),
    ] {
        let secret = OpaqueSecret::eck(name, "quickstart")
            .namespace(namespace)
            .data(key, &value)
            .build();
        secrets
            .patch(
                name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&secret),
            )
            .await
            .expect("apply ECK Secret");
    }
}

fn eck_config(env: &TestEnv, namespaces: &[&str]) -> Config {
    let mut config = test_config();
    config.namespaces = namespaces.iter().map(|n| n.to_string()).collect();
    config.connection.eck_url_template = format!("https://localhost:{}", env.es.addr().port());
    config.connection.allow_cross_namespace_refs = true;
    config
}

/// A completion endpoint on ECK `Elasticsearch` `elastic/quickstart`.
fn on_eck(name: &str) -> Iep {
    Iep::completion(name)
        .resource("r")
        .secret("azure")
        .eck(json!({"name": "quickstart", "namespace": "elastic"}))
}

#[tokio::test]
async fn a_cross_namespace_ref_needs_the_elasticsearchs_consent() {
    let env = eck_env(&["elastic"]).await;
    eck_secrets(&env, "elastic", ES_PASSWORD).await;
    create_elasticsearch(&env, "elastic", "quickstart", Some("team-x, other")).await;
    let mut config = eck_config(&env, &[]);
    // Consent is not watched: it is re-checked at the periodic interval.
    config.recheck_interval = Duration::from_millis(300);
    let _operator = start_operator(&env, config);
    create(&env, on_eck("eck")).await;
    let message = wait_message(&env, "eck", "CrossNamespaceRefNotAllowed").await;
    assert!(
        message.contains("kubectl annotate elasticsearch quickstart -n elastic esinference.io/allowed-namespaces=default"),
        "{message}"
    );
    assert!(
        env.es.requests().is_empty(),
        "nothing reached Elasticsearch"
    );
    let reads = content_reads(&env.kube.requests(), "quickstart-es-elastic-user");
    assert!(
        reads.is_empty(),
        "ECK's password was read without consent: {reads:#?}"
    );

    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("elasticsearch.k8s.elastic.co", "v1", "Elasticsearch"),
        "elasticsearches",
    );
    let elasticsearches: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(env.client.clone(), "elastic", &resource);
    let consent = json!({"metadata": {"annotations": {"esinference.io/allowed-namespaces": "team-x,default"}}});
    elasticsearches
        .patch(
            "quickstart",
            &PatchParams::default(),
            &Patch::Merge(&consent),
        )
        .await
        .unwrap();
    wait_ready(&env, "eck", "True", "Created").await;
}

#[tokio::test]
async fn a_rotated_eck_password_in_another_watched_namespace_retriggers() {
    let env = eck_env(&["elastic"]).await;
    eck_secrets(&env, "elastic", ES_PASSWORD).await;
    create_elasticsearch(&env, "elastic", "quickstart", Some("*")).await;
    // One controller per namespace: the ECK Secrets' events arrive at `elastic`'s.
    let _operator = start_operator(&env, eck_config(&env, &["default", "elastic"]));
    create(&env, on_eck("eck")).await;
    wait_ready(&env, "eck", "True", "Created").await;

    env.es.set_auth(EsAuth::basic(ES_USER, "rotated-password"));
    env.es.clear_requests();
    eck_secrets(&env, "elastic", "rotated-password").await;
    eventually(WAIT, "a reconcile with the rotated password", || {
        let requests = env.es.requests();
        async move {
            requests
                .iter()
                .any(|r| r.method == "GET" && r.path.starts_with("/_inference"))
                .then_some(())
        }
    })
    .await;
    let iep = wait_ready(&env, "eck", "True", "Created").await;
    assert!(condition(&iep, "Reconciling").is_none());
}

/// A Secret that only has ECK's naming pattern (`<name>-es-elastic-user`) is not ECK's: an
/// `elasticsearchRef` to a name nobody's ECK manages must not pull it into the operator and
/// send it to the ECK service URL. Found against a real API server: the exception for ECK's
/// Secrets read any Secret with a matching name.
#[tokio::test]
async fn a_secret_with_ecks_name_but_not_its_label_is_not_read() {
    let env = eck_env(&[]).await;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(env.client.clone(), "default");
    for (name, key) in [
        ("shadow-es-elastic-user", "elastic"),
        ("shadow-es-http-certs-public", "ca.crt"),
    ] {
        let secret = serde_json::from_value(json!({
            "metadata": {"name": name}, "stringData": {key: VICTIM_KEY}
        }))
        .unwrap();
        secrets.create(&Default::default(), &secret).await.unwrap();
    }
    let _operator = start_operator(&env, eck_config(&env, &[]));
    create(&env, on_eck("shadow").eck(json!({"name": "shadow"}))).await;
    let message = wait_message(&env, "shadow", "SecretNotAllowed").await;
    assert!(
        message.contains(
            "does not carry ECK's label elasticsearch.k8s.elastic.co/cluster-name=shadow"
        ),
        "{message}"
    );
    let reads = content_reads(&env.kube.requests(), "shadow-es-elastic-user");
    assert!(reads.is_empty(), "read without ECK's label: {reads:#?}");
    let unnarrowed: Vec<_> = env
        .kube
        .requests()
        .into_iter()
        .filter(|r| r.resource.as_deref() == Some("secrets") && r.query.contains("shadow-es"))
        .filter(|r| {
            !r.accept
                .as_deref()
                .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
        })
        .filter(|r| !r.query.contains("labelSelector="))
        .collect();
    assert!(
        unnarrowed.is_empty(),
        "content LIST without a label: {unnarrowed:#?}"
    );
    assert!(
        env.es.requests().is_empty(),
        "nothing reached Elasticsearch"
    );
}
