//! The sandbox: watch the operator work without a cluster.
//!
//! Starts the Kubernetes API emulator (with `crds/`) and the Elasticsearch double, writes a
//! kubeconfig so `kubectl` works against the emulator, runs the real operator binary against
//! them, applies every object in `examples/` — unchanged except that `spec.elasticsearch.url`
//! points at the double, whose users and fake Azure accept the examples' placeholder
//! credentials — and prints each InferenceEndpoint's Ready condition as it changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::env::{client_for, crds_dir};
use crate::es::{EsAuth, EsDouble, EsOptions};
use crate::kube::{EmulatorOptions, KubeEmulator};

pub struct SandboxOptions {
    /// The `inference-operator` binary to run.
    pub operator_bin: PathBuf,
    /// Where the kubeconfig and the operator's log are written.
    pub work_dir: PathBuf,
    /// Elasticsearch version the double emulates.
    pub es_version: String,
    /// Return once every example is Ready (for tests) instead of running until Ctrl-C.
    pub exit_when_ready: bool,
    /// Give up (error) if not everything is Ready by then; only with `exit_when_ready`.
    pub ready_timeout: Duration,
}

/// What a finished sandbox run measured.
#[derive(Debug)]
pub struct SandboxReport {
    /// Time from applying the examples until every InferenceEndpoint was Ready.
    pub all_ready_after: Option<Duration>,
    pub endpoints: BTreeMap<String, String>,
}

pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "esinference.io",
        "v1alpha1",
        "InferenceEndpoint",
    ))
}

/// Every YAML document in `examples/`.
pub fn example_documents() -> Result<Vec<Value>, String> {
    let mut paths: Vec<_> = std::fs::read_dir(examples_dir())
        .map_err(|e| format!("examples/: {e}"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    let mut documents = vec![];
    for path in paths {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        documents.extend(docs.into_iter().filter(|d| !d.is_null()));
    }
    Ok(documents)
}

/// Credentials found in the examples' Secrets, so the double accepts exactly those.
fn placeholder_credentials(documents: &[Value]) -> (EsAuth, Vec<String>) {
    let mut auth = EsAuth::default();
    let mut azure_keys = vec![];
    for doc in documents.iter().filter(|d| d["kind"] == "Secret") {
        let data = &doc["stringData"];
        if let (Some(user), Some(password)) = (data["username"].as_str(), data["password"].as_str())
        {
            auth.basic.push((user.to_owned(), password.to_owned()));
        }
        if let Some(key) = data["apiKey"].as_str() {
            // An Elasticsearch API key or an Azure key: accept it in both places.
            auth.api_keys.push(key.to_owned());
            azure_keys.push(key.to_owned());
        }
    }
    (auth, azure_keys)
}

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

pub async fn run(options: SandboxOptions) -> Result<SandboxReport, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::create_dir_all(&options.work_dir).map_err(|e| e.to_string())?;
    let documents = example_documents()?;

    let kube = KubeEmulator::start(EmulatorOptions::default()).await;
    for entry in std::fs::read_dir(crds_dir()).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            kube.register_crd_file(&path);
        }
    }
    let (auth, azure_keys) = placeholder_credentials(&documents);
    let es = EsDouble::start(EsOptions {
        version: options.es_version.clone(),
        auth,
        ..EsOptions::default()
    })
    .await;
    for key in &azure_keys {
        es.azure().accept_credential(key);
    }
    let kubeconfig = options.work_dir.join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig)
        .map_err(|e| e.to_string())?;
    let log_path = options.work_dir.join("operator.log");
    println!("Kubernetes API emulator  {}", kube.url());
    println!(
        "Elasticsearch double     {} (version {})",
        es.url(),
        options.es_version
    );
    println!("kubeconfig               {}", kubeconfig.display());
    println!("operator log             {}", log_path.display());
    println!();

    let _operator = start_operator(&options.operator_bin, &kubeconfig, &log_path)?;
    let client = client_for(&kube.url(), "default");
    let applied_at = Instant::now();
    let names = apply(&client, &documents, &es).await?;
    println!(
        "applied {} objects from examples/ ({} InferenceEndpoints)",
        documents.len(),
        names.len()
    );
    println!(
        "try:  KUBECONFIG={} kubectl get iep -o wide",
        kubeconfig.display()
    );
    println!();

    if options.exit_when_ready {
        return watch(&client, &names, applied_at, &options).await;
    }
    tokio::select! {
        result = watch(&client, &names, applied_at, &options) => result,
        _ = tokio::signal::ctrl_c() => {
            println!("\nstopping");
            Ok(SandboxReport { all_ready_after: None, endpoints: BTreeMap::new() })
        }
    }
}

fn start_operator(binary: &Path, kubeconfig: &Path, log_path: &Path) -> Result<Operator, String> {
    let log =
        std::fs::File::create(log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let child = Command::new(binary)
        .args([
            "run",
            "--log-format",
            "text",
            "--metrics-address",
            "127.0.0.1:0",
        ])
        .args(["--backoff-initial", "200ms", "--backoff-max", "5s"])
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    Ok(Operator(child))
}

/// Create the example objects; InferenceEndpoints are pointed at the double.
async fn apply(
    client: &kube::Client,
    documents: &[Value],
    es: &EsDouble,
) -> Result<Vec<String>, String> {
    let mut names = vec![];
    for doc in documents {
        let mut doc = doc.clone();
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let namespace = doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let (api, resource) = if kind == "InferenceEndpoint" {
            if doc["spec"]["elasticsearch"].is_object() {
                doc["spec"]["elasticsearch"]["url"] = json!(es.url());
            }
            names.push(
                doc["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            (
                Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &resource()),
                kind,
            )
        } else if kind == "Secret" {
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Secret"));
            (
                Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &resource),
                kind,
            )
        } else {
            return Err(format!(
                "examples/ holds a {kind}, which the sandbox does not apply"
            ));
        };
        let object: DynamicObject = serde_json::from_value(doc).map_err(|e| e.to_string())?;
        api.create(&PostParams::default(), &object)
            .await
            .map_err(|e| {
                format!(
                    "applying {resource} {}: {e}",
                    object.metadata.name.clone().unwrap_or_default()
                )
            })?;
    }
    Ok(names)
}

/// Print every Ready change until all are Ready (then return) or the timeout passes.
async fn watch(
    client: &kube::Client,
    names: &[String],
    applied_at: Instant,
    options: &SandboxOptions,
) -> Result<SandboxReport, String> {
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), "default", &resource());
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut all_ready_after = None;
    loop {
        for name in names {
            let Ok(object) = api.get(name).await else {
                continue;
            };
            let ready = object.data["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .cloned();
            let line = match ready {
                Some(c) => format!(
                    "Ready={:<5} {:<26} {}",
                    c["status"].as_str().unwrap_or("?"),
                    c["reason"].as_str().unwrap_or(""),
                    c["message"].as_str().unwrap_or("")
                ),
                None => "Ready=?     (not reconciled yet)".to_owned(),
            };
            if seen.get(name) != Some(&line) {
                println!(
                    "{:>6.2}s  {name:<20} {line}",
                    applied_at.elapsed().as_secs_f64()
                );
                seen.insert(name.clone(), line);
            }
        }
        let ready = seen
            .values()
            .filter(|l| l.starts_with("Ready=True"))
            .count();
        if all_ready_after.is_none() && ready == names.len() {
            let took = applied_at.elapsed();
            all_ready_after = Some(took);
            println!(
                "\nall {} InferenceEndpoints Ready after {:.2}s",
                names.len(),
                took.as_secs_f64()
            );
            if options.exit_when_ready {
                break;
            }
            println!("watching for changes; Ctrl-C stops everything");
        }
        if options.exit_when_ready && applied_at.elapsed() > options.ready_timeout {
            return Err(format!(
                "not all Ready after {:?}: {seen:#?}",
                options.ready_timeout
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(SandboxReport {
        all_ready_after,
        endpoints: seen,
    })
}
