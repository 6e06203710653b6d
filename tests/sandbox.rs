//! The README's first command, as a test: the sandbox applies every example and each becomes
//! Ready well within 10 s with the real operator binary — among them an OpenAI, a Cohere rerank,
//! an Amazon Bedrock and an ELSER endpoint through the generic `service` block, each validated by
//! the double's fake provider with the example's placeholder key (or, for ELSER, deployed on the
//! emulated ML nodes).

use std::time::Duration;

use inference_testenv::tools::sandbox::{run, SandboxOptions, SandboxReport};

/// Example object name → (inference id, Elasticsearch `service`) that must end Ready.
const GENERIC: [(&str, &str, &str); 4] = [
    ("openai-embeddings", "openai-embeddings", "openai"),
    ("cohere-rerank", "cohere-rerank", "cohere"),
    ("bedrock-embeddings", "bedrock-embeddings", "amazonbedrock"),
    ("elser", "elser", "elasticsearch"),
];

async fn run_sandbox(tag: &str) -> (SandboxReport, std::path::PathBuf) {
    let work_dir = std::env::temp_dir().join(format!("iep-sandbox-{tag}-{}", std::process::id()));
    let report = run(SandboxOptions {
        operator_bin: env!("CARGO_BIN_EXE_inference-operator").into(),
        work_dir: work_dir.clone(),
        // 9.4: the Azure OAuth2 example needs it.
        es_version: "9.4.0".into(),
        exit_when_ready: true,
        ready_timeout: Duration::from_secs(10),
    })
    .await
    .expect("sandbox run");
    (report, work_dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_brings_every_example_to_ready() {
    let (report, work_dir) = run_sandbox("all").await;
    let took = report.all_ready_after.expect("all Ready");
    println!("sandbox: every example Ready after {took:?}");
    assert!(took < Duration::from_secs(10));
    assert!(report.endpoints.len() >= 9, "{:#?}", report.endpoints);
    assert!(report
        .endpoints
        .values()
        .all(|line| line.starts_with("Ready=True")));
    assert!(work_dir.join("kubeconfig").exists());

    // The four generic-block examples the issue names: Ready, stored in Elasticsearch under
    // their service, and (those with a provider) validated with the example's key.
    for (object, inference_id, service) in GENERIC {
        let line = report.endpoints.get(object).map(String::as_str);
        assert!(
            line.is_some_and(|l| l.starts_with("Ready=True")),
            "{object}: {line:?}"
        );
        assert_eq!(
            report.elasticsearch.get(inference_id).map(String::as_str),
            Some(service),
            "{inference_id} in Elasticsearch: {:#?}",
            report.elasticsearch
        );
    }
    for service in ["openai", "cohere", "amazonbedrock"] {
        assert!(
            report.accepted_provider_calls.get(service) >= Some(&1),
            "{service}: the fake provider accepted no call: {:#?}",
            report.accepted_provider_calls
        );
    }
    assert_eq!(
        report.deployments.get("elser").map(String::as_str),
        Some("started"),
        "{:#?}",
        report.deployments
    );
    let _ = std::fs::remove_dir_all(work_dir);
}
