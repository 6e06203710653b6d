//! Stopping the real operator binary (docs/lifecycle.md, "Stopping"): SIGTERM ends the process
//! within a few seconds whether or not the Kubernetes API server answers, and a clean stop
//! exits 0.

mod support;

use support::TempFile;

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inference_testenv::fixtures::Iep;
use inference_testenv::{eventually, TestEnv, ES_CREDENTIALS_SECRET};
use tokio::process::{Child, Command};

/// How long the process may take to be gone after SIGTERM.
const GONE_WITHIN: Duration = Duration::from_secs(5);

struct Operator {
    child: Child,
    log: Arc<Mutex<String>>,
    /// Ends when the process's stderr closes.
    collector: Option<tokio::task::JoinHandle<()>>,
}

impl Operator {
    /// Flags on the command line, not environment twins, so a rename of the twins cannot
    /// change what this test runs.
    fn start(kubeconfig: &std::path::Path) -> Operator {
        Operator::start_with(kubeconfig, &[])
    }

    fn start_with(kubeconfig: &std::path::Path, flags: &[&str]) -> Operator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_inference-operator"))
            .args(["run", "--metrics-address", "127.0.0.1:0"])
            .args(flags)
            .args(["--log-format", "text", "--log-level", "info"])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start inference-operator");
        let (log, collector) = support::collect_stderr_to_eof(&mut child);
        Operator {
            child,
            log,
            collector: Some(collector),
        }
    }

    fn terminate(&self) {
        let pid = self.child.id().expect("running") as libc::pid_t;
        // SAFETY: kill(2) with a pid this test spawned and has not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "send SIGTERM");
    }

    /// The exit code, or a failure naming what the log said if the process is still there.
    /// Once it exited, its log is read to the end before this returns.
    async fn exit_code_within(&mut self, limit: Duration) -> i32 {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => {
                if let Some(collector) = self.collector.take() {
                    let _ = tokio::time::timeout(Duration::from_secs(5), collector).await;
                }
                status.expect("wait").code().expect("exited, not killed")
            }
            Err(_) => panic!(
                "still running {limit:?} after SIGTERM; log:\n{}",
                self.log()
            ),
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// A port on 127.0.0.1 nothing listens on: bound once, then released.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn write_dead_kubeconfig(path: &std::path::Path, server: &str) {
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n\
         clusters:\n- name: dead\n  cluster:\n    server: {server}\n\
         users:\n- name: dead\n  user:\n    token: not-a-real-token-5f1c\n\
         contexts:\n- name: dead\n  context:\n    cluster: dead\n    user: dead\n"
    );
    std::fs::write(path, kubeconfig).expect("write kubeconfig");
}

#[tokio::test]
async fn sigterm_ends_the_process_while_the_api_server_is_unreachable() {
    let kubeconfig = TempFile::new("shutdown", "kubeconfig");
    let server = format!("http://127.0.0.1:{}", dead_port());
    write_dead_kubeconfig(&kubeconfig.0, &server);
    let mut operator = Operator::start(&kubeconfig.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    operator.terminate();
    // Nothing was ever listed, so nothing could be in flight: a clean stop.
    let code = operator.exit_code_within(GONE_WITHIN).await;
    let log = operator.log();
    assert_eq!(code, 0, "log:\n{log}");
    assert!(log.contains("shutdown requested"), "log:\n{log}");
    // The on-call engineer sees which API server does not answer, and never the credentials.
    assert!(
        log.contains(&server),
        "the API server URL is named; log:\n{log}"
    );
    assert!(!log.contains("not-a-real-token-5f1c"), "log:\n{log}");
}

#[tokio::test]
async fn sigterm_with_a_live_api_server_stops_cleanly() {
    let env = TestEnv::start().await;
    let kubeconfig = TempFile::new("shutdown", "kubeconfig");
    env.kube
        .write_kubeconfig(&kubeconfig.0)
        .expect("write kubeconfig");
    let mut operator = Operator::start(&kubeconfig.0);
    eventually(Duration::from_secs(20), "the watches to sync", || async {
        operator
            .log()
            .contains("watches synced; ready")
            .then_some(())
    })
    .await;
    operator.terminate();
    let code = operator.exit_code_within(GONE_WITHIN).await;
    let log = operator.log();
    assert_eq!(code, 0, "log:\n{log}");
    assert!(log.contains("controller stopped"), "log:\n{log}");
}

/// An "Elasticsearch" that accepts connections and never answers: a reconcile talking to it
/// stays in flight (until the operator's 30 s request timeout). Counts the connections.
async fn silent_elasticsearch() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (url, accepted)
}

/// The operator against the emulator, one reconcile stuck on a silent Elasticsearch.
async fn operator_with_a_reconcile_in_flight(env: &TestEnv, kubeconfig: &TempFile) -> Operator {
    env.kube
        .write_kubeconfig(&kubeconfig.0)
        .expect("write kubeconfig");
    env.put_secret("azure", &[("apiKey", "azure-key-5b8e")])
        .await;
    let (url, accepted) = silent_elasticsearch().await;
    let operator = Operator::start_with(&kubeconfig.0, &["--namespace", &env.namespace]);
    let iep = Iep::embedding("stuck")
        .secret("azure")
        .es_url(&url, ES_CREDENTIALS_SECRET);
    support::create(env, iep).await;
    eventually(
        Duration::from_secs(20),
        "a reconcile to reach Elasticsearch",
        || {
            let accepted = accepted.clone();
            async move { (accepted.load(Ordering::SeqCst) > 0).then_some(()) }
        },
    )
    .await;
    operator
}

#[tokio::test]
async fn a_reconcile_still_running_after_the_grace_is_cut_short_with_exit_1() {
    let env = TestEnv::start().await;
    let kubeconfig = TempFile::new("shutdown", "kubeconfig");
    let mut operator = operator_with_a_reconcile_in_flight(&env, &kubeconfig).await;
    operator.terminate();
    let code = operator.exit_code_within(GONE_WITHIN).await;
    let log = operator.log();
    assert_eq!(code, 1, "log:\n{log}");
    assert!(
        log.contains("did not finish in the grace period"),
        "log:\n{log}"
    );
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let env = TestEnv::start().await;
    let kubeconfig = TempFile::new("shutdown", "kubeconfig");
    let mut operator = operator_with_a_reconcile_in_flight(&env, &kubeconfig).await;
    operator.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    operator.terminate();
    // Well inside the 3 s grace the first signal alone would have waited.
    let code = operator.exit_code_within(Duration::from_secs(1)).await;
    let log = operator.log();
    assert_eq!(code, 1, "log:\n{log}");
    assert!(log.contains("second signal"), "log:\n{log}");
}
