//! `inference-operator`: run the controller, print the CRDs, or print the version.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use inference_operator::controller;
use inference_operator::http::{self, Health};
use inference_operator::leader;
use inference_operator::metrics::Metrics;
use inference_operator::shutdown::{self, Stopped};
use tokio::sync::watch;
use tracing::Instrument;
use tracing_subscriber::{fmt, EnvFilter};

#[derive(Parser)]
#[command(
    name = "inference-operator",
    version,
    about = "Keeps Elasticsearch inference endpoints in sync with InferenceEndpoint objects"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster of the current kubeconfig (or in-cluster config).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
    /// Print the version.
    Version,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    config: controller::Config,
    /// Log format [default: json when stderr (the log) is not a terminal, as in a pod; text on a
    /// terminal].
    #[arg(long, env = "INFERENCE_OPERATOR_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `inference_operator=debug,kube=info` (RUST_LOG syntax); an
    /// invalid filter stops the start [default: RUST_LOG if set, else `info`].
    #[arg(long, env = "INFERENCE_OPERATOR_LOG_LEVEL")]
    log_level: Option<String>,
    /// Address serving /metrics, /livez and /readyz.
    #[arg(
        long,
        env = "INFERENCE_OPERATOR_METRICS_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    metrics_address: SocketAddr,
    /// Reconcile only while holding a coordination.k8s.io Lease (for more than one replica).
    #[arg(long, env = "INFERENCE_OPERATOR_LEADER_ELECT")]
    leader_elect: bool,
    /// Name of the Lease used for leader election.
    #[arg(
        long,
        env = "INFERENCE_OPERATOR_LEASE_NAME",
        default_value = "inference-operator"
    )]
    lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// How long a Lease is valid without renewal: the longest a failed leader blocks a standby.
    #[arg(long, env = "INFERENCE_OPERATOR_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

fn main() -> std::process::ExitCode {
    // One TLS provider for kube and reqwest, before any client exists
    // (docs/reference/design.md#one-tls-provider).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", inference_operator::api::crd_yaml());
            std::process::ExitCode::SUCCESS
        }
        Command::Version => {
            println!("inference-operator {}", env!("CARGO_PKG_VERSION"));
            std::process::ExitCode::SUCCESS
        }
        Command::Run(args) => run(*args),
    }
}

fn run(args: RunArgs) -> std::process::ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    malloc::trim_periodically(Duration::from_secs(5));
    if let Err(message) = init_logging(args.log_format, args.log_level.as_deref()) {
        eprintln!("inference-operator: {message}");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    let kube_config = match runtime.block_on(kube::Config::infer()) {
        Ok(kube_config) => kube_config,
        Err(error) => {
            tracing::error!(%error, "cannot build a Kubernetes client: no kubeconfig or in-cluster config could be read");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Every line logged while running names the API server, so a connection error says which
    // server does not answer (the URL without user information: never a credential).
    let api_server = shutdown::api_server_url(&kube_config.cluster_url);
    let span = tracing::info_span!("operator", api_server = %api_server);
    runtime.block_on(async move {
        let client = match kube::client::ClientBuilder::try_from(kube_config) {
            Ok(builder) => builder
                .with_layer(&tower::layer::layer_fn(leader::fenced))
                .build(),
            Err(error) => {
                tracing::error!(%error, "cannot build a Kubernetes client (kubeconfig or in-cluster config)");
                return std::process::ExitCode::FAILURE;
            }
        };
        let config = args.config.normalized();
        // One shutdown source: the signal handler drops the sender, every waiter wakes up.
        let (stop, stopped) = watch::channel(());
        tokio::spawn(force_exit_after_shutdown(stop, config.shutdown_grace).in_current_span());
        let metrics = Arc::new(Metrics::default());
        let health = Arc::new(Health::default());
        let listener = match http::bind(args.metrics_address).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, address = %args.metrics_address, "cannot listen for /metrics");
                return std::process::ExitCode::FAILURE;
            }
        };
        let server = http::serve(
            listener,
            http::router(health.clone(), metrics.clone()),
            wait(stopped.clone()),
        );
        let server = tokio::spawn(server);
        let outcome = if args.leader_elect {
            let election = leader::Election {
                lease_name: args.lease_name,
                namespace: args.lease_namespace.unwrap_or_else(|| "default".into()),
                identity: identity(),
                duration: args.lease_duration,
            };
            leader::run_as_leader(client, config, metrics, health, election, wait(stopped)).await
        } else {
            Ok(controller::run_all(client, config, metrics, health, wait(stopped)).await)
        };
        let stopped = match outcome {
            Ok(stopped) => stopped,
            Err(error) => {
                tracing::error!(%error, "leader election failed");
                return std::process::ExitCode::FAILURE;
            }
        };
        match server.await {
            // Reconciles cut short by the grace period: say so to whatever restarts us.
            Ok(Ok(())) if stopped == Stopped::CutShort => std::process::ExitCode::FAILURE,
            Ok(Ok(())) => std::process::ExitCode::SUCCESS,
            Ok(Err(error)) => {
                tracing::error!(%error, address = %args.metrics_address, "metrics server failed");
                std::process::ExitCode::FAILURE
            }
            Err(_) => std::process::ExitCode::FAILURE,
        }
    }.instrument(span))
}

/// Wait for SIGTERM/SIGINT and drop `stop`, which starts the shutdown. A second signal, or a
/// shutdown still not done a second after the grace period (a Lease release or the metrics
/// server hanging on an API server that does not answer), ends the process at once, non-zero.
async fn force_exit_after_shutdown(stop: watch::Sender<()>, grace: Duration) {
    shutdown_signal().await;
    drop(stop);
    let reason = tokio::select! {
        () = shutdown_signal() => "second signal",
        () = tokio::time::sleep(grace + Duration::from_secs(1)) => "shutdown did not finish in time",
    };
    tracing::warn!(reason, "exiting now");
    std::process::exit(1);
}

async fn wait(mut stopped: watch::Receiver<()>) {
    let _ = stopped.changed().await;
}

/// The Lease holder identity: the pod name, else host name and process id.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "inference-operator".into());
        format!("{host}-{}", std::process::id())
    })
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight reconciles");
}

/// The log filter: an explicit `--log-level` (or its environment twin) wins over `RUST_LOG`,
/// which wins over `info`. An invalid filter is an error rather than a silent fallback, so a
/// typo cannot hide the log the on-call engineer asked for.
fn log_filter(level: Option<&str>) -> Result<EnvFilter, String> {
    let (source, directives) = match level {
        Some(level) => ("--log-level", level.to_owned()),
        None => match std::env::var(EnvFilter::DEFAULT_ENV) {
            Ok(value) => (EnvFilter::DEFAULT_ENV, value),
            Err(_) => ("default", "info".to_owned()),
        },
    };
    EnvFilter::try_new(with_kube_trace_off(&directives))
        .map_err(|error| format!("invalid {source} filter {directives:?}: {error}"))
}

/// kube's HTTP trace layer logs every failed request at ERROR from inside the client
/// (`kube_client::client::builder`, "failed with error client error (Connect)"), once per
/// retry and without saying which server; the operator logs its own line for each failure
/// (one WARN per API server outage, naming it). Silenced unless the filter names `kube_client`
/// itself, which is how to see kube's HTTP trace (`--log-level info,kube_client=debug`).
fn with_kube_trace_off(directives: &str) -> String {
    if directives.contains("kube_client") {
        directives.to_owned()
    } else if directives.trim().is_empty() {
        "kube_client::client::builder=off".to_owned()
    } else {
        format!("{directives},kube_client::client::builder=off")
    }
}

/// Logs go to stderr: JSON unless asked otherwise when stderr is not a terminal (a pod, a
/// pipe: one object per line for a log collector), readable text on a terminal. ANSI colour
/// only on a terminal, so piped or collected text logs carry no escape codes.
fn init_logging(format: Option<LogFormat>, level: Option<&str>) -> Result<(), String> {
    use std::io::IsTerminal;
    let filter = log_filter(level)?;
    // NO_COLOR (https://no-color.org) still turns colour off on a terminal.
    let terminal = std::io::stderr().is_terminal();
    let colour = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let format = format.unwrap_or(if terminal {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every environment twin carries the operator's prefix, so a user's shell (`CONCURRENCY`,
    /// `LOG_LEVEL`, ...) cannot configure the operator by accident; only the names the
    /// Kubernetes downward API fills in keep their plain names.
    #[test]
    fn every_environment_twin_is_prefixed() {
        let cli = Cli::command();
        let run = cli.find_subcommand("run").expect("the run subcommand");
        let mut names = Vec::new();
        for arg in run.get_arguments() {
            if let Some(env) = arg.get_env() {
                names.push(env.to_str().unwrap().to_owned());
            }
        }
        assert!(names.len() > 15, "{names:?}");
        for name in &names {
            assert!(
                name.starts_with("INFERENCE_OPERATOR_") || name == "POD_NAMESPACE",
                "{name} lacks the INFERENCE_OPERATOR_ prefix"
            );
        }
        assert!(names.iter().any(|n| n == "INFERENCE_OPERATOR_CONCURRENCY"));
    }

    #[test]
    fn an_invalid_filter_is_an_error() {
        let error = log_filter(Some("inference_operator=loud")).unwrap_err();
        assert!(error.contains("--log-level"), "{error}");
        assert!(log_filter(Some("inference_operator=debug,kube=info")).is_ok());
    }

    #[test]
    fn kube_http_trace_is_off_unless_the_filter_names_it() {
        assert_eq!(
            with_kube_trace_off("info"),
            "info,kube_client::client::builder=off"
        );
        assert_eq!(
            with_kube_trace_off("debug,kube_client=trace"),
            "debug,kube_client=trace"
        );
        assert_eq!(with_kube_trace_off(""), "kube_client::client::builder=off");
    }
}

/// glibc malloc keeps what a burst freed: after a create wave of 1,000 objects 7.6 MB of the
/// operator's 19.5 MB of malloc memory were free but still resident
/// (docs/benchmarks.md#memory-after-bounding-the-burst-issue-16). `malloc_trim(0)` returns the
/// free pages of every arena to the kernel (`madvise`, glibc since 2.8: `man 3 malloc_trim`);
/// a small thread calls it every few seconds (well under a millisecond when nothing is free).
/// Measured against mimalloc and jemalloc, which save about as much at 1,000 objects but
/// cost more when idle.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod malloc {
    use std::time::Duration;

    pub fn trim_periodically(every: Duration) {
        let trimmer = std::thread::Builder::new()
            .name("malloc-trim".into())
            .stack_size(64 * 1024)
            .spawn(move || loop {
                std::thread::sleep(every);
                // SAFETY: no arguments beyond a size; glibc locks each arena while trimming.
                unsafe { libc::malloc_trim(0) };
            });
        // Without the thread the operator only keeps more memory: nothing to report.
        drop(trimmer);
    }
}
