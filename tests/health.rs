//! The live probe (`Healthy`) end to end: the controller in-process against the Kubernetes API
//! emulator and the Elasticsearch double, whose fake providers start refusing a key or answering
//! slowly at any moment (docs/lifecycle.md, "Health and verified rotation").

mod support;

use std::time::{Duration, Instant};

use inference_testenv::es::ProviderOutcome;
use inference_testenv::{eventually, poll, TestEnv, POLL_INTERVAL};
use kube::api::DeleteParams;
use serde_json::json;
use support::*;

const KEY: &str = "azure-key-health-0123456789";

async fn env_with_key() -> TestEnv {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    env
}

/// Health checks on for every object, every `interval` (the flag; no minimum there).
fn probing(interval: Duration) -> inference_operator::controller::Config {
    inference_operator::controller::Config {
        health_check_interval: Some(interval),
        health_check_timeout: Duration::from_secs(2),
        ..test_config()
    }
}

/// Wait for `Healthy` with `status` and `reason`.
async fn wait_healthy(env: &TestEnv, name: &str, status: &str, reason: &str, within: Duration) {
    let api = api(env);
    let seen = poll(within, POLL_INTERVAL, || async {
        let iep = api.get(name).await.map_err(|e| e.to_string())?;
        let Some(c) = condition(&iep, "Healthy") else {
            return Err("no Healthy condition".to_owned());
        };
        if c.status == status && c.reason == reason {
            return Ok(());
        }
        Err(format!("Healthy={} {}: {}", c.status, c.reason, c.message))
    })
    .await;
    if let Err(last) = seen {
        panic!("{name}: waited {within:?} for Healthy={status} {reason}; last seen {last}");
    }
}

fn probes(env: &TestEnv) -> Vec<inference_testenv::es::RecordedRequest> {
    env.es
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/_inference/"))
        .collect()
}

#[tokio::test]
async fn a_probed_endpoint_reports_healthy_with_the_smallest_call() {
    let env = env_with_key().await;
    let _operator = start_operator(&env, test_config());
    let iep = Iep::embedding("emb")
        .secret("azure")
        .es(&env)
        .set("/healthCheck", json!({"interval": "10m"}));
    create(&env, iep).await;
    wait_ready(&env, "emb", "True", "Created").await;
    wait_healthy(&env, "emb", "True", "ProbeSucceeded", WAIT).await;
    let sent = probes(&env);
    assert_eq!(sent.len(), 1, "one probe, at once for a new object");
    assert_eq!(sent[0].path, "/_inference/text_embedding/emb");
    assert_eq!(sent[0].body, Some(json!({"input": "ping"})));
    let iep = api(&env).get("emb").await.unwrap();
    assert_eq!(condition(&iep, "Ready").unwrap().reason, "Created");
}

#[tokio::test]
async fn objects_without_health_checks_are_never_probed() {
    let env = env_with_key().await;
    let _operator = start_operator(&env, recheck_every(Duration::from_millis(200)));
    create(&env, Iep::embedding("quiet").secret("azure").es(&env)).await;
    wait_ready(&env, "quiet", "True", "Created").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(probes(&env).is_empty(), "off by default");
    let iep = api(&env).get("quiet").await.unwrap();
    assert!(condition(&iep, "Healthy").is_none());
}

#[tokio::test]
async fn a_revoked_key_turns_healthy_false_within_one_interval_while_ready_stays_true() {
    let env = env_with_key().await;
    let interval = Duration::from_millis(600);
    let _operator = start_operator(&env, probing(interval));
    create(&env, Iep::embedding("revoked").secret("azure").es(&env)).await;
    wait_healthy(&env, "revoked", "True", "ProbeSucceeded", WAIT).await;

    env.es.azure().revoke_credential(KEY);
    let revoked = Instant::now();
    // One interval, plus the reconcile and the poll.
    wait_healthy(
        &env,
        "revoked",
        "False",
        "ProviderRejectedCredentials",
        interval + Duration::from_millis(900),
    )
    .await;
    println!("revoked key seen after {:?}", revoked.elapsed());
    let iep = api(&env).get("revoked").await.unwrap();
    let healthy = condition(&iep, "Healthy").unwrap();
    assert!(
        healthy
            .message
            .contains("Received an authentication error status code")
            && healthy.message.contains("status [401]"),
        "the provider's message as Elasticsearch relays it: {}",
        healthy.message
    );
    assert!(!healthy.message.contains(KEY));
    let ready = condition(&iep, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Created")
    );
    wait_event(&env, "revoked", "ProviderRejectedCredentials", "Warning").await;

    // Healed in the provider: healthy again at the next probe.
    env.es.azure().accept_credential(KEY);
    wait_healthy(&env, "revoked", "True", "ProbeSucceeded", interval * 3).await;
}

#[tokio::test]
async fn rate_limits_and_timeouts_are_unhealthy_with_their_reasons() {
    let env = env_with_key().await;
    let interval = Duration::from_millis(400);
    let _operator = start_operator(&env, probing(interval));
    create(&env, Iep::embedding("flaky").secret("azure").es(&env)).await;
    wait_healthy(&env, "flaky", "True", "ProbeSucceeded", WAIT).await;
    let service = env.es.providers().service("azureopenai");
    service.set_outcome(Some(ProviderOutcome::RateLimited429));
    wait_healthy(&env, "flaky", "False", "ProviderRateLimited", interval * 4).await;
    service.set_outcome(Some(ProviderOutcome::Timeout));
    // The probe's own time box (2 s here) ends the wait.
    wait_healthy(
        &env,
        "flaky",
        "False",
        "ProviderTimeout",
        interval * 4 + Duration::from_secs(3),
    )
    .await;
    service.set_outcome(None);
    wait_healthy(
        &env,
        "flaky",
        "True",
        "ProbeSucceeded",
        Duration::from_secs(6),
    )
    .await;
}

#[tokio::test]
async fn a_chat_endpoint_is_probed_through_the_stream() {
    let env = TestEnv::start().await;
    env.es.set_version("9.3.0");
    env.es.azure().accept_credential(KEY);
    env.put_secret("azure", &[("apiKey", KEY)]).await;
    let interval = Duration::from_millis(500);
    let _operator = start_operator(&env, probing(interval));
    create(
        &env,
        Iep::completion("chat")
            .task("chat_completion")
            .secret("azure")
            .es(&env),
    )
    .await;
    wait_healthy(&env, "chat", "True", "ProbeSucceeded", WAIT).await;
    let sent = probes(&env);
    assert_eq!(sent[0].path, "/_inference/chat_completion/chat/_stream");
    assert_eq!(
        sent[0].body.as_ref().unwrap()["messages"][0]["content"],
        "ping"
    );
    env.es.azure().revoke_credential(KEY);
    wait_healthy(
        &env,
        "chat",
        "False",
        "ProviderRejectedCredentials",
        interval * 4,
    )
    .await;
}

#[tokio::test]
async fn per_endpoint_metrics_are_present_and_removed_on_delete() {
    let env = env_with_key().await;
    let operator = start_operator(&env, probing(Duration::from_secs(60)));
    create(&env, Iep::embedding("measured").secret("azure").es(&env)).await;
    wait_healthy(&env, "measured", "True", "ProbeSucceeded", WAIT).await;
    let ns = &env.namespace;
    let labels = format!(r#"namespace="{ns}",name="measured""#);
    eventually(WAIT, "the per-endpoint series", || async {
        let text = operator.metrics.encode();
        let want = [
            format!("inference_operator_endpoint_ready{{{labels}}} 1"),
            format!("inference_operator_endpoint_healthy{{{labels}}} 1"),
            format!("inference_operator_endpoint_probes_total{{{labels},result=\"healthy\"}} 1"),
            format!("inference_operator_endpoint_probe_duration_seconds{{{labels}}}"),
            format!("inference_operator_endpoint_probe_last_success_timestamp_seconds{{{labels}}}"),
        ];
        want.iter().all(|w| text.contains(w.as_str())).then_some(())
    })
    .await;
    api(&env)
        .delete("measured", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&env, "measured").await;
    eventually(WAIT, "the series to go", || async {
        (!operator.metrics.encode().contains(&labels)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_hundred_objects_never_exceed_the_probe_concurrency() {
    let env = env_with_key().await;
    let concurrency = 3;
    // Every probe takes a while, so probes pile up unless bounded.
    env.es
        .providers()
        .service("azureopenai")
        .set_latency(Duration::from_millis(150));
    let config = inference_operator::controller::Config {
        health_check_concurrency: concurrency,
        ..test_config()
    };
    let _operator = start_operator(&env, config);
    // New objects are probed at once: 100 probes due together, on 3 slots; the ones that find
    // no free slot are postponed by 10–30 % of the interval (6–18 s), never retried at once.
    let names: Vec<String> = (0..100).map(|i| format!("many-{i}")).collect();
    let started = Instant::now();
    futures::future::join_all(names.iter().map(|n| {
        let iep = Iep::embedding(n)
            .secret("azure")
            .es(&env)
            .set("/healthCheck", json!({"interval": "1m"}));
        create(&env, iep)
    }))
    .await;
    // The machine may be slow: enough probes to see them overlap, not necessarily all 100.
    let enough = 30;
    eventually(Duration::from_secs(240), "30 probes", || async {
        (probes(&env).len() >= enough).then_some(())
    })
    .await;
    let sent = probes(&env);
    let most = env.es.providers().max_concurrent_inference();
    println!(
        "{} probes of 100 objects in {:?}, at most {most} at once",
        sent.len(),
        started.elapsed()
    );
    assert!(most <= usize::from(concurrency), "{most} probes at once");
    assert!(most >= 2, "probes did run in parallel ({most})");
    let mut paths: Vec<&str> = sent.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    let all = paths.len();
    paths.dedup();
    assert_eq!(paths.len(), all, "one probe per object per interval");
}

#[tokio::test]
async fn a_first_probe_without_a_free_slot_runs_once_one_is_given_back() {
    let env = env_with_key().await;
    env.es
        .providers()
        .service("azureopenai")
        .set_latency(Duration::from_millis(100));
    // One slot for six new objects: five find it taken. Postponed by a tenth of the 10-minute
    // interval they would wait a minute or more; each slot given back wakes the next instead.
    let config = inference_operator::controller::Config {
        health_check_concurrency: 1,
        ..test_config()
    };
    let _operator = start_operator(&env, config);
    let names: Vec<String> = (0..6).map(|i| format!("queued-{i}")).collect();
    futures::future::join_all(names.iter().map(|n| {
        let iep = Iep::embedding(n)
            .secret("azure")
            .es(&env)
            .set("/healthCheck", json!({"interval": "10m"}));
        create(&env, iep)
    }))
    .await;
    for name in &names {
        wait_healthy(
            &env,
            name,
            "True",
            "ProbeSucceeded",
            Duration::from_secs(20),
        )
        .await;
    }
    assert_eq!(env.es.providers().max_concurrent_inference(), 1);
}
