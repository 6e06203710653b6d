//! What the real operator binary logs for the on-call engineer (docs/lifecycle.md, "Reading
//! the log"): one WARN per transition into a failure, naming the object, the reason and the
//! status message; the retries of a transient failure at INFO with the next delay; success at
//! INFO; never a secret. And with the API server unreachable: one WARN for the outage, not an
//! ERROR from inside the Kubernetes client for every retry.

mod support;

use support::TempFile;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inference_testenv::fixtures::Iep;
use inference_testenv::{eventually, TestEnv, ES_CREDENTIALS_SECRET, ES_PASSWORD};
use kube::api::DeleteParams;
use serde_json::Value;
use tokio::process::{Child, Command};

const KEY: &str = "azure-key-LOG-MARKER-7d21";
const REVOKED: &str = "revoked-key-LOG-MARKER-90ab";
const TOKEN: &str = "kube-token-LOG-MARKER-3c44";

struct Operator {
    _child: Child,
    log: Arc<Mutex<String>>,
}

impl Operator {
    /// JSON, as in a pod; fast backoff so a transient failure retries several times.
    fn start(kubeconfig: &std::path::Path, flags: &[&str]) -> Operator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_inference-operator"))
            .args(["run", "--metrics-address", "127.0.0.1:0"])
            .args(["--log-format", "json", "--log-level", "info"])
            .args(["--backoff-initial", "200ms", "--backoff-max", "1s"])
            .args(flags)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start inference-operator");
        let log = support::collect_stderr(&mut child);
        Operator { _child: child, log }
    }

    /// Every line, parsed: the log is one JSON object per line.
    fn lines(&self) -> Vec<Value> {
        let log = self.log.lock().unwrap().clone();
        log.lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    }

    fn raw(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

fn field<'a>(line: &'a Value, name: &str) -> &'a str {
    line[name].as_str().unwrap_or_default()
}

/// The lines about `object` ("namespace/name") at `level` with `reason`.
fn about<'a>(lines: &'a [Value], object: &str, level: &str, reason: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| field(l, "object") == object)
        .filter(|l| field(l, "level") == level && field(l, "reason") == reason)
        .collect()
}

/// "0.4s", "1.0s": what the retry lines carry.
fn is_delay(text: &str) -> bool {
    text.strip_suffix('s')
        .is_some_and(|n| n.parse::<f64>().is_ok_and(|secs| secs > 0.0))
}

/// A port on 127.0.0.1 nothing listens on: bound once, then released.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test]
async fn each_failure_is_one_warn_retries_carry_the_delay_and_no_secret_is_logged() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    env.put_secret("revoked", &[("apiKey", REVOKED)]).await;
    env.put_secret("nokey", &[("wrongKey", KEY)]).await;
    let kubeconfig = TempFile::new("logs", "kubeconfig");
    env.kube
        .write_kubeconfig(&kubeconfig.0)
        .expect("write kubeconfig");
    let operator = Operator::start(&kubeconfig.0, &["--namespace", &env.namespace]);
    let dead_es = format!("http://127.0.0.1:{}", dead_port());
    let objects = [
        Iep::embedding("ok").secret("azure").es(&env),
        Iep::embedding("late").secret("not-there").es(&env),
        Iep::embedding("badkey").secret("revoked").es(&env),
        Iep::embedding("nokey").secret("nokey").es(&env),
        Iep::embedding("down")
            .secret("azure")
            .es_url(&dead_es, ES_CREDENTIALS_SECRET),
    ];
    for iep in objects {
        support::create(&env, iep).await;
    }
    for (name, reason) in [
        ("ok", "Created"),
        ("late", "SecretNotFound"),
        ("badkey", "AzureRejectedCredentials"),
        ("nokey", "SecretKeyMissing"),
        ("down", "ElasticsearchUnreachable"),
    ] {
        let ready = if name == "ok" { "True" } else { "False" };
        support::wait_ready(&env, name, ready, reason).await;
    }
    // A deletion the endpoint's users block: a transition of an object that was Ready.
    env.es.add_index_reference("ok", "articles");
    support::api(&env)
        .delete("ok", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_ready(&env, "ok", "False", "DeletionBlocked").await;
    let ns = env.namespace.clone();
    // Enough time for the unreachable one and the blocked deletion to retry a few times.
    eventually(Duration::from_secs(20), "retry lines", || {
        let lines = operator.lines();
        let down = format!("{ns}/down");
        let blocked = format!("{ns}/ok");
        let retries = about(&lines, &down, "INFO", "ElasticsearchUnreachable").len();
        let blocked = about(&lines, &blocked, "INFO", "DeletionBlocked").len();
        async move { (retries >= 3 && blocked >= 2).then_some(()) }
    })
    .await;

    let lines = operator.lines();
    let log = operator.raw();
    for (name, reason) in [
        ("late", "SecretNotFound"),
        ("badkey", "AzureRejectedCredentials"),
        ("nokey", "SecretKeyMissing"),
        ("down", "ElasticsearchUnreachable"),
        ("ok", "DeletionBlocked"),
    ] {
        let object = format!("{ns}/{name}");
        let warns = about(&lines, &object, "WARN", reason);
        assert_eq!(
            warns.len(),
            1,
            "one WARN for {object} {reason}; log:\n{log}"
        );
        assert!(
            !field(warns[0], "message").is_empty(),
            "the status message: {}",
            warns[0]
        );
        // Nothing else about the object warns: no second line for the same transition.
        let all_warns = lines
            .iter()
            .filter(|l| field(l, "object") == object && field(l, "level") == "WARN")
            .count();
        assert_eq!(all_warns, 1, "{object}; log:\n{log}");
    }
    let missing = about(&lines, &format!("{ns}/late"), "WARN", "SecretNotFound");
    assert!(
        field(missing[0], "message").contains("not-there"),
        "the message names the Secret: {}",
        missing[0]
    );
    // Success is INFO, once.
    let created = about(&lines, &format!("{ns}/ok"), "INFO", "Created");
    assert_eq!(created.len(), 1, "log:\n{log}");
    // Retries carry the next delay; a failure that waits for a change says so.
    for line in about(
        &lines,
        &format!("{ns}/down"),
        "INFO",
        "ElasticsearchUnreachable",
    ) {
        assert!(is_delay(field(line, "retry_in")), "{line}");
    }
    let waiting = about(
        &lines,
        &format!("{ns}/badkey"),
        "WARN",
        "AzureRejectedCredentials",
    );
    assert_eq!(field(waiting[0], "retry_in"), "on change", "{}", waiting[0]);
    for secret in [KEY, REVOKED, ES_PASSWORD] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
    assert!(
        !lines.iter().any(|l| field(l, "level") == "ERROR"),
        "log:\n{log}"
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_one_warn_naming_it_not_an_error_per_retry() {
    let kubeconfig = TempFile::new("logs", "kubeconfig");
    let server = format!("http://127.0.0.1:{}", dead_port());
    let config = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n\
         clusters:\n- name: dead\n  cluster:\n    server: {server}\n\
         users:\n- name: dead\n  user:\n    token: {TOKEN}\n\
         contexts:\n- name: dead\n  context:\n    cluster: dead\n    user: dead\n"
    );
    std::fs::write(&kubeconfig.0, config).expect("write kubeconfig");
    let operator = Operator::start(&kubeconfig.0, &[]);
    // The watch backoff starts near 1 s: several retries within 5 s.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let lines = operator.lines();
    let log = operator.raw();
    let warns: Vec<_> = lines
        .iter()
        .filter(|l| field(l, "level") == "WARN")
        .collect();
    assert_eq!(warns.len(), 1, "one WARN for the outage; log:\n{log}");
    assert!(
        field(warns[0], "message").contains("Kubernetes API server"),
        "{}",
        warns[0]
    );
    assert_eq!(
        field(&warns[0]["span"], "api_server"),
        server,
        "the line names the API server: {}",
        warns[0]
    );
    assert!(
        !lines.iter().any(|l| field(l, "level") == "ERROR"),
        "no ERROR from inside the Kubernetes client; log:\n{log}"
    );
    assert!(!log.contains(TOKEN), "log:\n{log}");
}
