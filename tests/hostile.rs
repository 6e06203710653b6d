//! The tenant as attacker: `spec.elasticsearch.url` points at a server of their own (the
//! harness's hostile server) instead of Elasticsearch. The real operator binary runs against the
//! Kubernetes API emulator; each test asserts what reached the hostile server and what came back
//! into status, Events and the operator's own log (docs/security.md, "What comes back from the
//! far side of `spec.elasticsearch.url`").

mod support;

use support::TempFile;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inference_operator::api::InferenceEndpoint;
use inference_testenv::fixtures::Iep;
use inference_testenv::hostile::{
    elasticsearch_without_product_header, Delivery, HostileServer, Reply,
};
use inference_testenv::{eventually, TestEnv, ES_CREDENTIALS_SECRET, ES_PASSWORD};
use k8s_openapi::api::events::v1::Event;

use serde_json::json;
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(20);
/// The Azure key each object references: it must never reach a hostile server.
const AZURE_KEY: &str = "azure-key-never-for-strangers-91c2";

/// The operator binary as a child process, with its log (stderr, trace level) collected.
struct Operator {
    _child: Child,
    log: Arc<Mutex<String>>,
    _kubeconfig: TempFile,
}

impl Operator {
    fn start(env: &TestEnv) -> Operator {
        let kubeconfig = TempFile::new("hostile", "kubeconfig");
        env.kube
            .write_kubeconfig(&kubeconfig.0)
            .expect("write kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_inference-operator"))
            .args(["run", "--namespace", &env.namespace])
            .args(["--metrics-address", "127.0.0.1:0", "--log-format", "text"])
            .args(["--backoff-initial", "100ms", "--backoff-max", "1s"])
            // Slow and silent answers end within a test's patience.
            .args(["--es-request-timeout", "2s"])
            .env("KUBECONFIG", &kubeconfig.0)
            .env("POD_NAME", "hostile-test-operator")
            .env("RUST_LOG", "trace")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start inference-operator");
        let log = support::collect_stderr(&mut child);
        Operator {
            _child: child,
            log,
            _kubeconfig: kubeconfig,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

async fn env_with_azure_key() -> TestEnv {
    let env = TestEnv::start().await;
    env.put_secret("azure", &[("apiKey", AZURE_KEY)]).await;
    env
}

/// An embeddings object whose Elasticsearch is `url`, with the env's ES credentials.
async fn create(env: &TestEnv, name: &str, url: &str) {
    let iep = Iep::embedding(name)
        .secret("azure")
        .es_url(url, ES_CREDENTIALS_SECRET);
    support::create(env, iep).await;
}

/// Wait for Ready=False with `reason`; returns the object. On timeout, says what it was.
async fn wait_not_ready(env: &TestEnv, name: &str, reason: &str) -> InferenceEndpoint {
    let every = Duration::from_millis(50);
    support::wait_ready_within(env, name, ("False", reason), WAIT, every).await
}

fn ready_message(iep: &InferenceEndpoint) -> String {
    support::condition(iep, "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// The whole status as text (every condition, every field).
fn status_text(iep: &InferenceEndpoint) -> String {
    serde_json::to_string(&iep.status).expect("status serialises")
}

/// Wait for the Warning Event with `reason` about `name`; returns every Event about it.
async fn wait_event(env: &TestEnv, name: &str, reason: &str) -> Vec<Event> {
    eventually(WAIT, &format!("{name}: Event {reason}"), || async move {
        let events = support::events(env, name).await;
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some("Warning"))
            .then_some(events)
    })
    .await
}

fn assert_nothing_secret_reached(server: &HostileServer) {
    for request in server.requests() {
        assert!(
            !request.contains(AZURE_KEY),
            "the Azure key reached the hostile server: {} {}",
            request.method,
            request.path
        );
        assert_ne!(request.method, "PUT", "a PUT reached the hostile server");
    }
}

/// Wait until the operator watches Secrets (its list answered), and its events had time to land.
async fn secrets_watched(env: &TestEnv) {
    eventually(Duration::from_secs(20), "a Secret watch", || async {
        env.kube
            .requests()
            .iter()
            .any(|r| r.watch && r.resource.as_deref() == Some("secrets"))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_server_without_the_product_header_receives_no_put_and_no_azure_key() {
    let env = env_with_azure_key().await;
    let hostile = HostileServer::start(elasticsearch_without_product_header).await;
    let operator = Operator::start(&env);
    // The Secret watch's first list, if it lands after the object, triggers one more reconcile
    // (one more `GET /`): start from a synced operator.
    secrets_watched(&env).await;
    create(&env, "look-alike", hostile.url()).await;

    let iep = wait_not_ready(&env, "look-alike", "NotElasticsearch").await;
    let message = ready_message(&iep);
    assert!(message.contains("X-Elastic-Product"), "{message}");
    assert!(
        iep.status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True"),
        "NotElasticsearch is permanent"
    );
    wait_event(&env, "look-alike", "NotElasticsearch").await;
    // Permanent: nothing is retried; the server only ever saw the first GET /.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let requests = hostile.requests();
    let seen: Vec<_> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(seen, ["GET /"], "only the product check's GET / reached it");
    assert_nothing_secret_reached(&hostile);
    assert!(!operator.log().contains(AZURE_KEY));
    assert!(!operator.log().contains(ES_PASSWORD));
}

#[tokio::test]
async fn no_marker_from_a_hostile_body_reaches_status_events_or_the_log() {
    const MARKER: &str = "HOSTILE-BODY-MARKER-5e1d";
    let html = format!("<html><body><h1>internal admin</h1>{MARKER}</body></html>");
    let envelope = Reply::es_error(400, "status_exception", &format!("reflected {MARKER}"));
    let cases: Vec<(&str, &str, HostileServer)> = vec![
        (
            "html-ok",
            "NotElasticsearch",
            HostileServer::answering(Reply::html(200, &html)).await,
        ),
        (
            "html-bad-gateway",
            "ElasticsearchUnavailable",
            HostileServer::answering(Reply::html(502, &html)).await,
        ),
        (
            "text-not-found",
            "UnexpectedResponse",
            HostileServer::answering(Reply::text(404, "text/plain", &html)).await,
        ),
        (
            "envelope-without-header",
            "InvalidSettings",
            HostileServer::answering(envelope).await,
        ),
        (
            "garbage-with-header",
            "UnexpectedResponse",
            HostileServer::answering(
                Reply::text(200, "application/json", &format!("{{\"{MARKER}\": "))
                    .with_product_header(),
            )
            .await,
        ),
        (
            "version-with-header",
            "UnexpectedResponse",
            HostileServer::answering(Reply::es_root(MARKER, "u").with_product_header()).await,
        ),
        (
            "endpoint-shape-with-header",
            "UnexpectedResponse",
            HostileServer::start(|r| match r.path.as_str() {
                "/" => Reply::es_root("9.1.0", "u").with_product_header(),
                _ => Reply::json(200, &json!({"endpoints": MARKER})).with_product_header(),
            })
            .await,
        ),
    ];
    let env = env_with_azure_key().await;
    let operator = Operator::start(&env);
    for (name, _, server) in &cases {
        create(&env, name, server.url()).await;
    }
    for (name, reason, server) in &cases {
        let iep = wait_not_ready(&env, name, reason).await;
        let status = status_text(&iep);
        assert!(!status.contains(MARKER), "{name}: {status}");
        for event in wait_event(&env, name, reason).await {
            let note = event.note.unwrap_or_default();
            assert!(!note.contains(MARKER), "{name}: Event {note}");
        }
        assert_nothing_secret_reached(server);
    }
    let html_ok = support::api(&env).get("html-bad-gateway").await.unwrap();
    let message = ready_message(&html_ok);
    assert!(
        message.contains("HTTP 502") && message.contains("text/html"),
        "described: {message}"
    );
    let log = operator.log();
    assert!(!log.is_empty(), "the operator logged");
    assert!(
        !log.contains(MARKER),
        "a hostile body reached the operator's log"
    );
}

#[tokio::test]
async fn redirects_are_reported_and_nothing_reaches_their_target() {
    let env = env_with_azure_key().await;
    // The target would answer like Elasticsearch: following the redirect would create there.
    let target = HostileServer::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/") => Reply::es_root("9.1.0", "target").with_product_header(),
        _ => Reply::es_error(
            404,
            "resource_not_found_exception",
            "Inference endpoint not found",
        )
        .with_product_header(),
    })
    .await;
    let location = format!("{}/", target.url_as_localhost());
    let mut redirectors = Vec::new();
    for status in [302, 307, 308] {
        let server = HostileServer::answering(Reply::redirect(status, &location)).await;
        let name = format!("redirect-{status}");
        create(&env, &name, server.url()).await;
        redirectors.push((name, status, server));
    }
    let _operator = Operator::start(&env);
    for (name, status, server) in &redirectors {
        let iep = wait_not_ready(&env, name, "ElasticsearchRedirected").await;
        let message = ready_message(&iep);
        assert!(message.contains(&format!("HTTP {status}")), "{message}");
        assert!(
            message.contains(&format!("localhost:{}", target.port())),
            "names the target host: {message}"
        );
        wait_event(&env, name, "ElasticsearchRedirected").await;
        assert_nothing_secret_reached(server);
    }
    assert!(
        target.requests().is_empty(),
        "nothing reached the redirect target: {:?}",
        target.requests()
    );
}

#[tokio::test]
async fn elasticsearch_reasons_reach_status_without_control_characters() {
    const MARKER: &str = "QUOTED-REASON-MARKER-0b7e";
    let reason = format!(
        "Validation Failed: 1: \u{1b}[2J\u{1b}[31mbad setting\u{1b}[0m\r\nsecond line\u{202e} {MARKER};"
    );
    let env = env_with_azure_key().await;
    // Elasticsearch itself (the product header on every answer), refusing the PUT with a
    // reason full of terminal escapes.
    let server = HostileServer::start(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/") => Reply::es_root("9.1.0", "es").with_product_header(),
        ("GET", _) => Reply::es_error(
            404,
            "resource_not_found_exception",
            "Inference endpoint not found",
        )
        .with_product_header(),
        _ => Reply::es_error(400, "validation_exception", &reason).with_product_header(),
    })
    .await;
    let operator = Operator::start(&env);
    create(&env, "escapes", server.url()).await;
    let iep = wait_not_ready(&env, "escapes", "InvalidSettings").await;
    let message = ready_message(&iep);
    assert!(
        message.contains(MARKER),
        "Elasticsearch's reason is quoted: {message}"
    );
    assert!(
        message.starts_with("Validation Failed: 1: [2J [31mbad setting [0m second line"),
        "{message:?}"
    );
    let clean = |text: &str| !text.chars().any(|c| c.is_control() || c == '\u{202e}');
    for condition in &iep.status.as_ref().unwrap().conditions {
        assert!(clean(&condition.message), "{:?}", condition.message);
    }
    for event in wait_event(&env, "escapes", "InvalidSettings").await {
        let note = event.note.unwrap_or_default();
        assert!(clean(&note), "{note:?}");
    }
    // The text log colours its own fields with ANSI sequences; the far side's must not pass.
    let log = operator.log();
    for injected in ["\u{1b}[2J", "\u{1b}[31mbad", "\r", "\u{202e}"] {
        assert!(
            !log.contains(injected),
            "{injected:?} reached the operator's log"
        );
    }
    assert!(
        !log.lines().any(|l| l.starts_with("second line")),
        "a newline from the reason split a log line"
    );
}

/// The response read cap (`MAX_RESPONSE_BYTES`, src/elasticsearch/client.rs).
const READ_CAP: usize = 4 * 1024 * 1024;

/// An answer claiming to be Elasticsearch (product header, JSON) with `body`, sent as `delivery`.
fn claimed(body: impl Into<Vec<u8>>, delivery: Delivery) -> Reply {
    Reply::new(200, "application/json", body)
        .with_product_header()
        .delivered(delivery)
}

/// Elasticsearch's `GET /` answer, sent as `delivery`.
fn root(delivery: Delivery) -> Reply {
    Reply::es_root("9.1.0", "u")
        .with_product_header()
        .delivered(delivery)
}

/// Every broken way of answering (issue 15): each object ends with a condition saying so, its
/// server got nothing past the first request's answer, the operator read no more than its cap,
/// and an object on a healthy Elasticsearch still gets Ready meanwhile. HTML pages (200 and 5xx)
/// and redirects have their own tests above.
#[tokio::test]
async fn broken_answers_are_conditions_and_other_objects_keep_reconciling() {
    let trickle = Delivery::Trickle {
        every: Duration::from_millis(50),
    };
    let endless = claimed(vec![b'x'; 64 * 1024], Delivery::Endless);
    let past_cap = claimed(vec![b'x'; READ_CAP + 1024 * 1024], Delivery::Whole);
    let nested = claimed("[".repeat(1_000_000), Delivery::Whole);
    let non_utf8 = claimed(
        b"{\"name\": \"\xff\xfe\xc0\x80\"}".to_vec(),
        Delivery::Whole,
    );
    // Read up to the cap, judged on that (and said so), the rest never read.
    let capped = format!("body of {READ_CAP} bytes");
    // (name, reason, a phrase of the message, the answer)
    let plain: Vec<(&str, &str, &str, Reply)> = vec![
        (
            "truncated",
            "ElasticsearchUnreachable",
            "or closed",
            root(Delivery::Truncated),
        ),
        ("non-utf8", "UnexpectedResponse", "(not shown)", non_utf8),
        ("past-cap", "UnexpectedResponse", &capped, past_cap),
        ("endless", "UnexpectedResponse", &capped, endless),
        (
            "silent-headers",
            "ElasticsearchTimeout",
            "within 2s",
            root(Delivery::HeadersThenSilence),
        ),
        (
            "trickled",
            "ElasticsearchTimeout",
            "within 2s",
            root(trickle),
        ),
        (
            "no-answer",
            "ElasticsearchTimeout",
            "within 2s",
            root(Delivery::Hang),
        ),
        ("nested", "UnexpectedResponse", "(not shown)", nested),
    ];
    let env = env_with_azure_key().await;
    env.es.azure().accept_credential(AZURE_KEY);
    let mut cases = Vec::new();
    for (name, reason, phrase, reply) in plain {
        let server = HostileServer::answering(reply).await;
        let connection =
            json!({"url": server.url(), "credentialsSecretRef": {"name": ES_CREDENTIALS_SECRET}});
        cases.push((name, reason, phrase, server, connection));
    }
    // TLS: a certificate for another name (its CA trusted), and one from an unknown CA.
    let elasticsearch = |r: &inference_testenv::hostile::Recorded| {
        elasticsearch_without_product_header(r).with_product_header()
    };
    let (other_name, ca) = HostileServer::start_tls(&["elsewhere.invalid"], elasticsearch).await;
    env.put_secret("other-name-ca", &[("ca.crt", &ca)]).await;
    let (unknown_ca, _) =
        HostileServer::start_tls(&["127.0.0.1", "localhost"], elasticsearch).await;
    for (name, phrase, server, ca) in [
        (
            "tls-other-name",
            "not valid for the host name",
            other_name,
            Some("other-name-ca"),
        ),
        (
            "tls-unknown-ca",
            "not signed by a trusted CA",
            unknown_ca,
            None,
        ),
    ] {
        let mut connection =
            json!({"url": server.url(), "credentialsSecretRef": {"name": ES_CREDENTIALS_SECRET}});
        if let Some(ca) = ca {
            connection["caSecretRef"] = json!({"name": ca});
        }
        cases.push((name, "ElasticsearchTLSFailed", phrase, server, connection));
    }
    let operator = Operator::start(&env);
    for (name, _, _, _, connection) in &cases {
        let iep = Iep::embedding(name)
            .secret("azure")
            .elasticsearch(connection.clone());
        support::create(&env, iep).await;
    }
    // Meanwhile, an object on a healthy Elasticsearch.
    support::create(&env, Iep::embedding("healthy").secret("azure").es(&env)).await;
    support::wait_ready_within(
        &env,
        "healthy",
        ("True", "Created"),
        WAIT,
        Duration::from_millis(50),
    )
    .await;

    for (name, reason, phrase, server, _) in &cases {
        let iep = wait_not_ready(&env, name, reason).await;
        let message = ready_message(&iep);
        println!("{name}: {reason}: {message}");
        assert!(message.contains(phrase), "{name}: {message}");
        wait_event(&env, name, reason).await;
        assert_nothing_secret_reached(server);
        let seen: Vec<_> = server
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(
            seen.iter().all(|r| r == "GET /"),
            "{name}: only GET / reached it: {seen:?}"
        );
        if name.starts_with("tls-") {
            assert!(
                seen.is_empty(),
                "{name}: the handshake failed, nothing was sent: {seen:?}"
            );
        }
    }
    // Bounded memory: per request, what the endless server could push before the operator hung
    // up is the cap plus what the sockets buffer, not the 2 s timeout's worth.
    let (_, _, _, endless, _) = cases.iter().find(|c| c.0 == "endless").unwrap();
    let requests = endless.requests().len().max(1);
    let per_request = endless.body_bytes_sent() / requests;
    println!("endless: {per_request} bytes sent per request ({requests} requests)");
    assert!(
        per_request < 3 * READ_CAP,
        "{per_request} bytes per request"
    );
    assert!(!operator.log().contains(AZURE_KEY));
    assert!(!operator.log().contains("panicked"), "no panic");
}
