//! `cargo run -p inference-testenv --bin sandbox [-- --es-version 9.4.0] [--exit-when-ready]`
//!
//! The default version is 9.4.0, the first release that takes every example (Azure OAuth2 arrived
//! in 9.4).
//!
//! Builds the operator (debug profile, the same build the tests use), then runs it against an
//! emulated cluster and Elasticsearch with `examples/` applied. See `inference_testenv::tools::sandbox`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use inference_testenv::tools::sandbox::{run, SandboxOptions};

fn main() -> ExitCode {
    let mut es_version = "9.4.0".to_owned();
    let mut exit_when_ready = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--es-version" => es_version = args.next().unwrap_or(es_version),
            "--exit-when-ready" => exit_when_ready = true,
            "-h" | "--help" => {
                println!("usage: sandbox [--es-version X.Y.Z] [--exit-when-ready]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}; see --help");
                return ExitCode::FAILURE;
            }
        }
    }
    let operator_bin = match build_operator() {
        Ok(path) => path,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workspace = workspace.canonicalize().unwrap_or(workspace);
    let options = SandboxOptions {
        operator_bin,
        work_dir: workspace.join("target/sandbox"),
        es_version,
        exit_when_ready,
        ready_timeout: Duration::from_secs(30),
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(options)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sandbox failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo build --bin inference-operator` (the debug build the tests use).
fn build_operator() -> Result<PathBuf, String> {
    inference_testenv::tools::build_operator(false)
}
