//! `cargo run -p inference-testenv --bin sandbox [-- --help]`
//!
//! Builds the operator (debug profile, the same build the tests use; nothing is compiled when it
//! is up to date), then runs it against an emulated cluster and Elasticsearch with `examples/`
//! applied, reporting every InferenceEndpoint, and takes commands on stdin that show the error
//! paths. See `inference_testenv::tools::sandbox`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser};
use inference_testenv::tools::sandbox::{
    control_help, run, SandboxOptions, Switches, ROLLBACK_ES_VERSION,
};

/// Watch the inference operator work without a cluster: a Kubernetes API emulator, an
/// Elasticsearch double with fake Azure OpenAI and fake providers, the real operator binary, and
/// every object in examples/ applied. Every InferenceEndpoint's Ready and Healthy changes and
/// deletions are printed, in every namespace (your own objects too); kubectl works with the
/// kubeconfig it prints (`kubectl get iep -A -o wide`: Ready, Healthy, Used-By).
#[derive(Parser)]
#[command(
    name = "sandbox",
    override_usage = "cargo run -p inference-testenv --bin sandbox -- [OPTIONS]"
)]
struct Cli {
    /// Elasticsearch version the double emulates. 9.4.0 is the first that takes every example
    /// (Azure OAuth2 arrived in 9.4).
    #[arg(long, default_value = "9.4.0", value_name = "X.Y.Z")]
    es_version: String,
    /// Run the double as Elasticsearch 9.3.1, whose _update stores a rotated key without trying
    /// it: after a bad rotation (`bad-key NAME` while it runs) the operator's probe catches the
    /// refused key and puts the previous one back, and the sandbox prints how long Elasticsearch
    /// held it. (On 9.4+ Elasticsearch itself refuses the _update.) The Azure OAuth2 example
    /// needs 9.4 and ends UnsupportedByCluster.
    #[arg(long, conflicts_with = "es_version")]
    rollback: bool,
    /// Run this inference-operator binary instead of building one (`cargo build --bin
    /// inference-operator`). The tests pass the one cargo built for them, whose dependency
    /// features differ from a plain build's.
    #[arg(long, value_name = "PATH")]
    operator_bin: Option<PathBuf>,
    /// Exit once every example is Ready and probed, or refused for good by the emulated version
    /// (exit status 1 if not within 30 s), for scripts and CI.
    #[arg(long)]
    exit_when_ready: bool,
    #[command(flatten)]
    switches: Switches,
}

fn main() -> ExitCode {
    let help = format!(
        "While it runs, type a command and Enter (`help` lists them):\n{}",
        control_help()
    );
    let matches = Cli::command().after_help(help).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let operator_bin = match cli.operator_bin {
        Some(path) => {
            println!("operator: {} (--operator-bin, not built)", path.display());
            path
        }
        None => match build_operator() {
            Ok(path) => path,
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let es_version = if cli.rollback {
        ROLLBACK_ES_VERSION.to_owned()
    } else {
        cli.es_version
    };
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workspace = workspace.canonicalize().unwrap_or(workspace);
    let options = SandboxOptions {
        operator_bin,
        work_dir: workspace.join("target/sandbox"),
        es_version,
        exit_when_ready: cli.exit_when_ready,
        ready_timeout: Duration::from_secs(30),
        switches: cli.switches,
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let outcome = runtime.block_on(run(options));
    // The stdin reader may be blocked on a terminal: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sandbox failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo build --bin inference-operator` (the debug build the tests use), saying so: it takes
/// minutes the first time, and well under a second when nothing changed.
fn build_operator() -> Result<PathBuf, String> {
    println!("building the operator…");
    let started = Instant::now();
    let build = inference_testenv::tools::build_operator_counted(false)?;
    let compiled = match build.compiled {
        0 => "up to date, nothing compiled".to_owned(),
        n => format!("compiled {n} crates"),
    };
    println!(
        "operator built in {:.1}s ({compiled}): {}",
        started.elapsed().as_secs_f64(),
        build.executable.display()
    );
    Ok(build.executable)
}
