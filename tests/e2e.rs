//! End-to-end: the real `inference-operator run` binary, as a child process, against a cluster
//! and an Elasticsearch.
//!
//! By default the cluster is the Kubernetes API emulator and Elasticsearch is the double (both
//! from `inference-testenv`). Every scenario also has a `*_real` twin, ignored by default, that
//! runs unchanged against a real cluster and Elasticsearch:
//!
//! ```sh
//! E2E_KUBECONFIG=~/.kube/config E2E_ES_URL=https://localhost:9200 E2E_ES_PASSWORD=... \
//! E2E_AZURE_RESOURCE=my-resource E2E_AZURE_API_KEY=... \
//! E2E_AZURE_EMBEDDING_DEPLOYMENT=text-embedding-3-small E2E_AZURE_COMPLETION_DEPLOYMENT=gpt-4o \
//!   cargo test --test e2e -- --ignored --test-threads 1
//! ```
//!
//! (`E2E_ES_USERNAME` defaults to `elastic`, `E2E_AZURE_API_VERSION` to `2024-10-21`,
//! `E2E_ES_INSECURE=true` skips TLS verification for a self-signed dev cluster.) The CRD must be
//! installed (`kubectl apply -f crds/`); each scenario works in a fresh namespace it deletes
//! afterwards. Assertions on Elasticsearch go through its REST API, so they hold on both
//! targets; a few extra assertions (request counts, fault injection) need the double and are
//! skipped on a real cluster.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inference_operator::api::InferenceEndpoint;
use inference_testenv::es::{EsDouble, Route};
use inference_testenv::fixtures::{Iep, OpaqueSecret};
use inference_testenv::{eventually, TestEnv};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(20);

/// Where a scenario runs: emulated (default) or a real cluster + Elasticsearch.
struct Target {
    client: kube::Client,
    kubeconfig: std::path::PathBuf,
    namespace: String,
    es_url: String,
    es_user: String,
    es_password: String,
    es_insecure: bool,
    azure: Azure,
    /// The emulated environment, when emulated; `None` on a real cluster.
    env: Option<TestEnv>,
    _dir: TempDir,
}

struct Azure {
    resource: String,
    api_version: String,
    embedding_deployment: String,
    completion_deployment: String,
    good_key: String,
    bad_key: String,
}

impl Target {
    async fn emulated() -> Target {
        let env = TestEnv::start().await;
        let dir = TempDir::new();
        let kubeconfig = dir.path().join("kubeconfig");
        env.kube
            .write_kubeconfig(&kubeconfig)
            .expect("write kubeconfig");
        let good_key = "e2e-azure-key-4d5e6f".to_owned();
        env.es.azure().accept_credential(&good_key);
        Target {
            client: env.client.clone(),
            kubeconfig,
            namespace: env.namespace.clone(),
            es_url: env.es.url(),
            es_user: inference_testenv::ES_USER.into(),
            es_password: inference_testenv::ES_PASSWORD.into(),
            es_insecure: false,
            azure: Azure {
                resource: "e2e-resource".into(),
                api_version: "2024-10-21".into(),
                embedding_deployment: "embeddings".into(),
                completion_deployment: "gpt-4o".into(),
                good_key,
                bad_key: "e2e-revoked-key".into(),
            },
            env: Some(env),
            _dir: dir,
        }
    }

    async fn real() -> Target {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let var = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("{name} is required for real-cluster e2e"))
        };
        let opt =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let kubeconfig = std::path::PathBuf::from(var("E2E_KUBECONFIG"));
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).expect("read E2E_KUBECONFIG"),
            &Default::default(),
        )
        .await
        .expect("kubeconfig");
        let client = kube::Client::try_from(config).expect("client");
        let namespace = format!("iep-e2e-{}", std::process::id() ^ fastrand::u32(..));
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
            )
            .await
            .expect("create namespace");
        let target = Target {
            client,
            kubeconfig,
            namespace,
            es_url: var("E2E_ES_URL"),
            es_user: opt("E2E_ES_USERNAME", "elastic"),
            es_password: var("E2E_ES_PASSWORD"),
            es_insecure: opt("E2E_ES_INSECURE", "false") == "true",
            azure: Azure {
                resource: var("E2E_AZURE_RESOURCE"),
                api_version: opt("E2E_AZURE_API_VERSION", "2024-10-21"),
                embedding_deployment: var("E2E_AZURE_EMBEDDING_DEPLOYMENT"),
                completion_deployment: var("E2E_AZURE_COMPLETION_DEPLOYMENT"),
                good_key: var("E2E_AZURE_API_KEY"),
                bad_key: "e2e-invalid-key-0000000000000000".into(),
            },
            env: None,
            _dir: TempDir::new(),
        };
        target
            .put_secret(
                "es-credentials",
                &[
                    ("username", &target.es_user),
                    ("password", &target.es_password),
                ],
            )
            .await;
        target
    }

    fn double(&self) -> Option<&EsDouble> {
        self.env.as_ref().map(|env| &env.es)
    }

    fn api(&self) -> Api<InferenceEndpoint> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn put_secret(&self, name: &str, pairs: &[(&str, &str)]) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let secret = OpaqueSecret::labelled(name).pairs(pairs).build();
        let _ = secrets.delete(name, &DeleteParams::default()).await;
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("create Secret");
    }

    fn es_connection(&self) -> Value {
        let mut connection =
            json!({"url": self.es_url, "credentialsSecretRef": {"name": "es-credentials"}});
        if self.es_insecure {
            connection["insecureSkipTlsVerify"] = json!(true);
        }
        connection
    }

    /// Object `name` of `task` (on this target's Azure deployment for it), its key in Secret
    /// `secret`, on this target's Elasticsearch.
    fn iep(&self, name: &str, task: &str, secret: &str) -> Iep {
        let deployment = match task {
            "text_embedding" => &self.azure.embedding_deployment,
            _ => &self.azure.completion_deployment,
        };
        Iep::embedding(name)
            .namespace(&self.namespace)
            .task(task)
            .resource(&self.azure.resource)
            .deployment(deployment)
            .api_version(&self.azure.api_version)
            .secret(secret)
            .elasticsearch(self.es_connection())
    }

    /// A unique inference id per run, so real clusters are not polluted across runs.
    fn id(&self, base: &str) -> String {
        format!("{base}-{}", self.namespace)
    }

    async fn create(&self, iep: Iep, inference_id: &str) -> InferenceEndpoint {
        self.api()
            .create(
                &PostParams::default(),
                &iep.inference_id(inference_id).build(),
            )
            .await
            .expect("create InferenceEndpoint")
    }

    async fn wait_ready(&self, name: &str, status: &str, reasons: &[&str]) -> InferenceEndpoint {
        let api = self.api();
        eventually(WAIT, &format!("{name} Ready={status} {reasons:?}"), || {
            let api = api.clone();
            async move {
                let iep = api.get(name).await.ok()?;
                let ready = iep
                    .status
                    .as_ref()?
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Ready")?;
                (ready.status == status && reasons.contains(&ready.reason.as_str())).then_some(iep)
            }
        })
        .await
    }

    /// Delete the object and wait until the operator has released its finalizer.
    async fn delete_and_wait(&self, name: &str) {
        self.api()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete InferenceEndpoint");
        self.wait_gone(name).await;
    }

    async fn wait_gone(&self, name: &str) {
        let api = self.api();
        eventually(WAIT, &format!("{name} deleted"), || {
            let api = api.clone();
            async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
        })
        .await
    }

    /// A request to Elasticsearch's REST API with the test's credentials.
    fn es_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(self.es_insecure)
            .build()
            .unwrap();
        http.request(
            method,
            format!("{}/{path}", self.es_url.trim_end_matches('/')),
        )
        .basic_auth(&self.es_user, Some(&self.es_password))
    }

    /// The endpoint as Elasticsearch's REST API reports it (works on both targets).
    async fn es_endpoint(&self, task: &str, id: &str) -> Option<Value> {
        let response = self
            .es_request(reqwest::Method::GET, &format!("_inference/{task}/{id}"))
            .send()
            .await
            .expect("GET endpoint");
        if response.status() == 404 {
            return None;
        }
        assert!(
            response.status().is_success(),
            "GET {id}: {}",
            response.status()
        );
        let body: Value = response.json().await.unwrap();
        body["endpoints"].get(0).cloned()
    }

    /// The scenarios delete objects whose create was refused within seconds of the operator's
    /// start: a short in-flight wait (docs/lifecycle.md#a-create-in-flight-at-deletion) instead
    /// of the PUT's 45 s deadline, which would outlast `WAIT`.
    fn operator(&self) -> OperatorProcess {
        let wait = ["--create-in-flight-wait", "2s"];
        OperatorProcess::spawn(&self.kubeconfig, &self.namespace, &wait, "e2e-operator")
    }

    /// A replica with leader election on, identified by `identity`.
    fn replica(&self, identity: &str) -> OperatorProcess {
        let lease = format!("--lease-namespace={}", self.namespace);
        OperatorProcess::spawn(
            &self.kubeconfig,
            &self.namespace,
            &["--leader-elect", "--lease-duration", "3s", &lease],
            identity,
        )
    }

    async fn cleanup(self) {
        if self.env.is_none() {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            let _ = namespaces
                .delete(&self.namespace, &DeleteParams::default())
                .await;
        }
    }
}

/// The operator binary as a child process; its stderr is collected for assertions.
struct OperatorProcess {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl OperatorProcess {
    fn spawn(
        kubeconfig: &std::path::Path,
        namespace: &str,
        extra: &[&str],
        pod_name: &str,
    ) -> OperatorProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_inference-operator"))
            .args([
                "run",
                "--namespace",
                namespace,
                "--metrics-address",
                "127.0.0.1:0",
            ])
            .args([
                "--log-format",
                "text",
                "--backoff-initial",
                "100ms",
                "--backoff-max",
                "1s",
            ])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", pod_name)
            .env("RUST_LOG", "trace")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start inference-operator");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        OperatorProcess { child, log }
    }

    /// SIGKILL: no graceful shutdown, no chance to finish anything.
    async fn kill(&mut self) {
        self.child.kill().await.expect("kill operator");
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// A temporary directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "iep-e2e-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn count(double: &EsDouble, method: &str, path: &str) -> usize {
    double
        .requests()
        .iter()
        // A dry-run DELETE reads the endpoint's users (status.usedBy); it deletes nothing.
        .filter(|r| r.method == method && r.path == path && !r.is_dry_run())
        .count()
}

// ---------------------------------------------------------------------------------------------
// Scenarios: each runs on a Target and asserts through the Kubernetes and Elasticsearch APIs.

async fn create_becomes_ready(t: Target) {
    let operator = t.operator();
    t.put_secret("azure", &[("apiKey", &t.azure.good_key)])
        .await;
    for (name, task) in [
        ("embeddings", "text_embedding"),
        ("completion", "completion"),
    ] {
        let id = t.id(name);
        t.create(t.iep(name, task, "azure"), &id).await;
        let iep = t.wait_ready(name, "True", &["Created"]).await;
        assert_eq!(
            iep.status.as_ref().unwrap().inference_id.as_deref(),
            Some(id.as_str())
        );
        let endpoint = t
            .es_endpoint(task, &id)
            .await
            .expect("endpoint exists in Elasticsearch");
        assert_eq!(endpoint["service"], "azureopenai");
        assert_eq!(endpoint["task_type"], task);
        assert!(
            endpoint["service_settings"].get("api_key").is_none(),
            "secrets never come back"
        );
    }
    if let Some(double) = t.double() {
        assert_eq!(
            double.stored_secret(&t.id("embeddings")),
            Some(("api_key".into(), t.azure.good_key.clone()))
        );
    }
    let log = operator.log();
    assert!(
        !log.contains(&t.azure.good_key),
        "the key is not in the operator's trace log"
    );
    assert!(
        !log.contains(&t.es_password),
        "the Elasticsearch password is not in the log"
    );
    for name in ["embeddings", "completion"] {
        t.delete_and_wait(name).await;
    }
    t.cleanup().await;
}

async fn bad_key_is_reported_without_retry_storm(t: Target) {
    let _operator = t.operator();
    t.put_secret("azure", &[("apiKey", &t.azure.bad_key)]).await;
    let id = t.id("badkey");
    t.create(t.iep("badkey", "text_embedding", "azure"), &id)
        .await;
    let iep = t
        .wait_ready("badkey", "False", &["AzureRejectedCredentials"])
        .await;
    let ready = iep
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(
        ready.message.contains("validation call to service"),
        "quotes Elasticsearch: {}",
        ready.message
    );
    assert!(iep
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .any(|c| c.type_ == "Stalled" && c.status == "True"));
    assert!(t.es_endpoint("text_embedding", &id).await.is_none());
    if let Some(double) = t.double() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            count(double, "PUT", &format!("/_inference/text_embedding/{id}")),
            1,
            "no retry storm"
        );
    }
    t.delete_and_wait("badkey").await;
    t.cleanup().await;
}

async fn missing_secret_then_created(t: Target) {
    let _operator = t.operator();
    let id = t.id("late");
    let created = t
        .create(t.iep("late", "completion", "azure-late"), &id)
        .await;
    t.wait_ready("late", "False", &["SecretNotFound"]).await;
    t.put_secret("azure-late", &[("apiKey", &t.azure.good_key)])
        .await;
    let iep = t.wait_ready("late", "True", &["Created"]).await;
    assert_eq!(
        iep.metadata.generation, created.metadata.generation,
        "the object was not touched"
    );
    assert!(t.es_endpoint("completion", &id).await.is_some());
    t.delete_and_wait("late").await;
    t.cleanup().await;
}

async fn delete_and_retain(t: Target) {
    let _operator = t.operator();
    t.put_secret("azure", &[("apiKey", &t.azure.good_key)])
        .await;
    let (deleted, retained) = (t.id("deleted"), t.id("retained"));
    t.create(t.iep("deleted", "completion", "azure"), &deleted)
        .await;
    let retained_iep = t
        .iep("retained", "completion", "azure")
        .set("/deletionPolicy", json!("Retain"));
    t.create(retained_iep, &retained).await;
    t.wait_ready("deleted", "True", &["Created"]).await;
    t.wait_ready("retained", "True", &["Created"]).await;

    for name in ["deleted", "retained"] {
        t.delete_and_wait(name).await;
    }
    assert!(
        t.es_endpoint("completion", &deleted).await.is_none(),
        "Delete removed the endpoint"
    );
    assert!(
        t.es_endpoint("completion", &retained).await.is_some(),
        "Retain kept the endpoint"
    );
    if let Some(double) = t.double() {
        assert_eq!(
            count(
                double,
                "DELETE",
                &format!("/_inference/completion/{deleted}")
            ),
            1
        );
        assert_eq!(
            count(
                double,
                "DELETE",
                &format!("/_inference/completion/{retained}")
            ),
            0
        );
    } else {
        delete_out_of_band(&t, "completion", &retained).await;
    }
    t.cleanup().await;
}

async fn delete_out_of_band(t: &Target, task: &str, id: &str) {
    let _ = t
        .es_request(reqwest::Method::DELETE, &format!("_inference/{task}/{id}"))
        .send()
        .await;
}

async fn elasticsearch_down_then_back(t: Target) {
    let Some(double) = t.double() else {
        eprintln!("skipped on a real cluster: needs fault injection");
        return;
    };
    double.inject_fault(Route::Any, inference_testenv::es::Fault::Status(503), None);
    let _operator = t.operator();
    t.put_secret("azure", &[("apiKey", &t.azure.good_key)])
        .await;
    let id = t.id("outage");
    t.create(t.iep("outage", "text_embedding", "azure"), &id)
        .await;
    t.wait_ready("outage", "False", &["ElasticsearchUnavailable"])
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    double.clear_faults();
    t.wait_ready("outage", "True", &["Created"]).await;
    assert_eq!(
        count(double, "PUT", &format!("/_inference/text_embedding/{id}")),
        1
    );
    t.cleanup().await;
}

async fn killed_mid_create_then_restarted(t: Target) {
    let Some(double) = t.double() else {
        eprintln!("skipped on a real cluster: needs a slow PUT to kill the operator during");
        return;
    };
    // The PUT takes 1.5 s (Elasticsearch's validation call to Azure); kill the operator while it
    // is in flight. Elasticsearch finishes the create; the operator never records it.
    double.set_route_latency(Route::Put, Duration::from_millis(1500));
    let mut operator = t.operator();
    t.put_secret("azure", &[("apiKey", &t.azure.good_key)])
        .await;
    let id = t.id("killed");
    let put = format!("/_inference/text_embedding/{id}");
    t.create(t.iep("killed", "text_embedding", "azure"), &id)
        .await;
    eventually(WAIT, "the PUT to start", || async {
        (count(double, "PUT", &put) == 1).then_some(())
    })
    .await;
    operator.kill().await;
    eventually(WAIT, "Elasticsearch to finish the create", || async {
        double.endpoint(&id).map(|_| ())
    })
    .await;

    let _restarted = t.operator();
    // Adopting pushes the credential through `_update`; on versions with issue #139574 that
    // also resets the chunking, which is reported as ChunkingReset.
    let iep = t
        .wait_ready("killed", "True", &["Adopted", "InSync", "ChunkingReset"])
        .await;
    assert_eq!(
        count(double, "PUT", &put),
        1,
        "no duplicate PUT after the restart"
    );
    assert_eq!(
        iep.status.as_ref().unwrap().inference_id.as_deref(),
        Some(id.as_str())
    );

    t.delete_and_wait("killed").await;
    assert!(
        double.endpoint(&id).is_none(),
        "the adopted endpoint is cleaned up: no leaked finalizer or endpoint"
    );
    t.cleanup().await;
}

async fn invalid_object_rejected_at_admission(t: Target) {
    // Dimensions on a completion endpoint: the CRD's CEL rule refuses it.
    let object: InferenceEndpoint = t
        .iep("invalid", "completion", "azure")
        .set("/azureOpenAI/dimensions", json!(256))
        .build();
    let error = t
        .api()
        .create(&PostParams::default(), &object)
        .await
        .expect_err("rejected");
    let message = error.to_string();
    assert!(
        message.contains("dimensions apply only to taskType text_embedding"),
        "{message}"
    );
    t.cleanup().await;
}

async fn only_the_leader_reconciles_and_a_standby_takes_over(t: Target) {
    t.put_secret("azure", &[("apiKey", &t.azure.good_key)])
        .await;
    let mut first = t.replica("replica-a");
    eventually(WAIT, "replica-a to lead", || async {
        first
            .log()
            .contains("acquired the leader Lease")
            .then_some(())
    })
    .await;
    let second = t.replica("replica-b");
    eventually(WAIT, "replica-b to stand by", || async {
        second
            .log()
            .contains("waiting for the leader Lease")
            .then_some(())
    })
    .await;

    let before = t.id("before");
    t.create(t.iep("before", "completion", "azure"), &before)
        .await;
    t.wait_ready("before", "True", &["Created"]).await;
    assert!(first.log().contains("created inference endpoint"));
    assert!(
        !second.log().contains("created inference endpoint"),
        "the standby never writes"
    );
    assert!(!second.log().contains("acquired the leader Lease"));

    // SIGKILL: the Lease is not released and must expire (3 s) before the standby takes over.
    first.kill().await;
    let killed_at = std::time::Instant::now();
    eventually(WAIT, "replica-b to take over", || async {
        second
            .log()
            .contains("acquired the leader Lease")
            .then_some(())
    })
    .await;
    let takeover = killed_at.elapsed();
    println!("standby took over {takeover:?} after the leader was killed");
    assert!(
        takeover < Duration::from_secs(10),
        "within the lease duration plus a renewal period"
    );

    let after = t.id("after");
    t.create(t.iep("after", "completion", "azure"), &after)
        .await;
    t.wait_ready("after", "True", &["Created"]).await;
    assert!(second.log().contains("created inference endpoint"));
    for name in ["before", "after"] {
        t.delete_and_wait(name).await;
    }
    t.cleanup().await;
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod emulated {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Target::emulated().await).await;
                }
            )*
        }
        mod real {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs E2E_KUBECONFIG, E2E_ES_URL and Azure credentials (see the module docs)"]
                async fn $name() {
                    super::$name(super::Target::real().await).await;
                }
            )*
        }
    };
}

scenarios!(
    create_becomes_ready,
    bad_key_is_reported_without_retry_storm,
    missing_secret_then_created,
    delete_and_retain,
    elasticsearch_down_then_back,
    killed_mid_create_then_restarted,
    invalid_object_rejected_at_admission,
    only_the_leader_reconciles_and_a_standby_takes_over,
);
