//! The README's first command, as a test: the sandbox applies every example and each becomes
//! Ready well within 10 s with the real operator binary.

use std::time::Duration;

use inference_testenv::tools::sandbox::{run, SandboxOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_brings_every_example_to_ready() {
    let work_dir = std::env::temp_dir().join(format!("iep-sandbox-{}", std::process::id()));
    let report = run(SandboxOptions {
        operator_bin: env!("CARGO_BIN_EXE_inference-operator").into(),
        work_dir: work_dir.clone(),
        es_version: "9.1.0".into(),
        exit_when_ready: true,
        ready_timeout: Duration::from_secs(10),
    })
    .await
    .expect("sandbox run");
    let took = report.all_ready_after.expect("all Ready");
    println!("sandbox: every example Ready after {took:?}");
    assert!(took < Duration::from_secs(10));
    assert!(report.endpoints.len() >= 2);
    assert!(report
        .endpoints
        .values()
        .all(|line| line.starts_with("Ready=True")));
    assert!(work_dir.join("kubeconfig").exists());
    let _ = std::fs::remove_dir_all(work_dir);
}
