//! The quick benchmark (issue 6) as a CI smoke test: N = 50 endpoints, L = 20 ms, the debug
//! operator binary as a child process. It fails only on gross regressions — an endpoint that
//! never becomes Ready, any Elasticsearch or status write in steady state, a Secret rotation
//! that never reaches Elasticsearch, more than one Event per created object (the double serves
//! TLS, so no plain-HTTP warning is due) — never on timing. The full benchmark and its figures:
//! `docs/benchmarks.md`.

use std::path::PathBuf;

use inference_testenv::tools::bench::{run, BenchOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_benchmark_shows_no_gross_regression() {
    let work_dir = std::env::temp_dir().join(format!("iep-bench-smoke-{}", std::process::id()));
    let mut options = BenchOptions::quick(
        PathBuf::from(env!("CARGO_BIN_EXE_inference-operator")),
        work_dir.clone(),
    );
    options.progress = false;
    // `run` errors when an object never becomes Ready (or the operator dies).
    let report = run(options).await.expect("quick benchmark");
    println!("{}", report.render());

    assert_eq!(report.convergence.endpoints, 50);
    let regressions = report.gross_regressions();
    assert!(
        regressions.is_empty(),
        "gross regressions: {regressions:#?}"
    );
    let _ = std::fs::remove_dir_all(&work_dir);
}
