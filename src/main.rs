//! `inference-operator`: run the controller, print the CRDs, or print the version.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use inference_operator::controller::{self, connection::ConnectionSettings, destination};
use inference_operator::http::{self, Health};
use inference_operator::leader;
use inference_operator::metrics::Metrics;
use tokio::sync::watch;
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
    /// Watch only these namespaces, comma-separated (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE", value_delimiter = ',')]
    namespace: Vec<String>,
    /// How often Ready endpoints are re-checked against Elasticsearch.
    #[arg(long, env = "RECHECK_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    recheck_interval: Duration,
    /// Timeout of Elasticsearch reads and deletes (creates wait for Elasticsearch's own timeout).
    #[arg(long, env = "ES_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    es_request_timeout: Duration,
    /// First retry delay after a transient failure; it doubles per failure.
    #[arg(long, env = "BACKOFF_INITIAL", default_value = "1s", value_parser = humantime::parse_duration)]
    backoff_initial: Duration,
    /// Longest retry delay after transient failures.
    #[arg(long, env = "BACKOFF_MAX", default_value = "5m", value_parser = humantime::parse_duration)]
    backoff_max: Duration,
    /// Objects reconciled in parallel.
    #[arg(long, env = "CONCURRENCY", default_value_t = 32)]
    concurrency: u16,
    /// URL of an ECK cluster's HTTP service (placeholders `{name}`, `{namespace}`); change it
    /// for a non-default cluster domain or when running outside the cluster.
    #[arg(long, env = "ECK_URL_TEMPLATE", default_value = controller::DEFAULT_ECK_URL_TEMPLATE)]
    eck_url_template: String,
    /// Allow `elasticsearchRef.namespace` to name another namespace (the Elasticsearch must
    /// also consent, with annotation `esinference.io/allowed-namespaces`).
    #[arg(long, env = "ALLOW_CROSS_NAMESPACE_REFS")]
    allow_cross_namespace_refs: bool,
    /// Read a Secret an InferenceEndpoint names only when it carries the label
    /// `esinference.io/credentials=true`; `false` reads any Secret of the object's namespace
    /// (see docs/security.md before turning it off).
    #[arg(long, env = "REQUIRE_SECRET_OPT_IN", default_value_t = true, action = clap::ArgAction::Set)]
    require_secret_opt_in: bool,
    /// Where `spec.elasticsearch.url` may point: comma-separated IPs, CIDRs, host names and
    /// `*.domain` patterns (default: anywhere not denied).
    #[arg(long, env = "ES_ALLOW", default_value = "", value_parser = parse_rules)]
    es_allow: Rules,
    /// Destinations `spec.elasticsearch.url` may never reach, same syntax as --es-allow; checked
    /// against every address the host resolves to. Default: link-local and cloud metadata.
    #[arg(long, env = "ES_DENY", default_value = destination::DEFAULT_DENY, value_parser = parse_rules)]
    es_deny: Rules,
    /// Refuse every `spec.elasticsearch`: only `elasticsearchRef` (ECK) connections.
    #[arg(long, env = "ECK_ONLY")]
    eck_only: bool,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `inference_operator=debug,kube=info` (RUST_LOG syntax).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Address serving /metrics, /livez and /readyz.
    #[arg(long, env = "METRICS_ADDRESS", default_value = "0.0.0.0:8080")]
    metrics_address: SocketAddr,
    /// Reconcile only while holding a coordination.k8s.io Lease (for more than one replica).
    #[arg(long, env = "LEADER_ELECT")]
    leader_elect: bool,
    /// Name of the Lease used for leader election.
    #[arg(long, env = "LEASE_NAME", default_value = "inference-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// How long a Lease is valid without renewal: the longest a failed leader blocks a standby.
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
}

/// A parsed rule list (one flag value, comma-separated).
#[derive(Clone)]
struct Rules(Vec<destination::Rule>);

fn parse_rules(text: &str) -> Result<Rules, String> {
    destination::parse_rules(text).map(Rules)
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
    init_logging(args.log_format, &args.log_level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let client = match kube::Client::try_default().await {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot build a Kubernetes client (kubeconfig or in-cluster config)");
                return std::process::ExitCode::FAILURE;
            }
        };
        let config = controller::Config {
            // An empty WATCH_NAMESPACE means all namespaces.
            namespaces: args.namespace.into_iter().filter(|n| !n.is_empty()).collect(),
            recheck_interval: args.recheck_interval,
            backoff_initial: args.backoff_initial,
            backoff_max: args.backoff_max,
            concurrency: args.concurrency,
            connection: ConnectionSettings {
                request_timeout: args.es_request_timeout,
                allow_cross_namespace_refs: args.allow_cross_namespace_refs,
                eck_url_template: args.eck_url_template,
                require_secret_opt_in: args.require_secret_opt_in,
                destinations: destination::DestinationPolicy {
                    allow: args.es_allow.0,
                    deny: args.es_deny.0,
                    eck_only: args.eck_only,
                },
            },
            ..controller::Config::default()
        };
        // One shutdown source: the signal handler drops the sender, every waiter wakes up.
        let (stop, stopped) = watch::channel(());
        tokio::spawn(async move {
            shutdown_signal().await;
            drop(stop);
        });
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
            controller::run_all(client, config, metrics, health, wait(stopped)).await;
            Ok(())
        };
        if let Err(error) = outcome {
            tracing::error!(%error, "leader election failed");
            return std::process::ExitCode::FAILURE;
        }
        match server.await {
            Ok(Ok(())) => std::process::ExitCode::SUCCESS,
            Ok(Err(error)) => {
                tracing::error!(%error, address = %args.metrics_address, "metrics server failed");
                std::process::ExitCode::FAILURE
            }
            Err(_) => std::process::ExitCode::FAILURE,
        }
    })
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

fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}
