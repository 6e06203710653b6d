//! The sandbox: watch the operator work without a cluster.
//!
//! Starts the Kubernetes API emulator (with `crds/`) and the Elasticsearch double, writes a
//! kubeconfig so `kubectl` works against the emulator, runs the real operator binary against
//! them, applies every object in `examples/` as `kubectl apply --server-side -f examples/` would
//! — unchanged except that `spec.elasticsearch.url` points at the double, whose users, fake
//! Azure and fake providers accept the placeholder credentials the examples reference — and
//! prints each InferenceEndpoint's Ready condition as it changes.
//!
//! Several example files carry the same Secret (the Elasticsearch credentials), so each file
//! can be applied alone; applying them all is idempotent, as long as the copies agree
//! ([`example_documents`] refuses copies that differ).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Map, Value};
use tokio::process::{Child, Command};

use crate::env::{client_for, crds_dir};
use crate::es::{aws_credential, custom_credential, EsAuth, EsDouble, EsOptions, ProviderOutcome};
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
    /// What the double holds once everything was Ready: each endpoint's inference id and
    /// `service`.
    pub elasticsearch: BTreeMap<String, String>,
    /// Provider validation calls the fake providers accepted, by service (`azureopenai` included).
    pub accepted_provider_calls: BTreeMap<String, usize>,
    /// `deployment_stats.state` of each in-cluster model deployment, by inference id.
    pub deployments: BTreeMap<String, String>,
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

/// Every YAML document in `examples/`. An object (kind, namespace, name) that several files
/// carry must be the same in each: applying them all would otherwise depend on the order.
pub fn example_documents() -> Result<Vec<Value>, String> {
    let mut paths: Vec<_> = std::fs::read_dir(examples_dir())
        .map_err(|e| format!("examples/: {e}"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    let mut documents: Vec<Value> = vec![];
    for path in paths {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            match documents.iter().find(|d| identity(d) == identity(&doc)) {
                Some(known) if *known == doc => {}
                Some(_) => {
                    return Err(format!(
                        "{}: {:?} differs from its copy in another example file",
                        path.display(),
                        identity(&doc)
                    ))
                }
                None => documents.push(doc),
            }
        }
    }
    Ok(documents)
}

/// (kind, namespace, name) of a manifest.
fn identity(doc: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
    (
        s(&doc["kind"]),
        namespace.to_owned(),
        s(&doc["metadata"]["name"]),
    )
}

/// What the double must accept so the examples' placeholder credentials work.
#[derive(Default)]
struct Placeholders {
    /// Elasticsearch users and API keys (from `spec.elasticsearch.credentialsSecretRef`).
    es: EsAuth,
    /// Azure OpenAI api keys, Entra ID tokens and OAuth2 client secrets.
    azure: Vec<String>,
    /// Credential identities of the other services, as [`crate::es::FakeProviders`] names them.
    providers: Vec<String>,
}

/// The examples' Secrets (`stringData`) by namespace and name.
struct Secrets<'a>(BTreeMap<(String, String), &'a Map<String, Value>>);

impl<'a> Secrets<'a> {
    fn of(documents: &'a [Value]) -> Self {
        let secrets = documents.iter().filter(|d| d["kind"] == "Secret");
        Secrets(
            secrets
                .filter_map(|d| {
                    let (_, namespace, name) = identity(d);
                    Some(((namespace, name), d["stringData"].as_object()?))
                })
                .collect(),
        )
    }

    /// The Secret a `{name}` reference names.
    fn data(&self, namespace: &str, reference: &Value) -> Option<&'a Map<String, Value>> {
        let name = reference["name"].as_str()?;
        self.0
            .get(&(namespace.to_owned(), name.to_owned()))
            .copied()
    }

    /// The text of the key a `{name, key}` reference names, trimmed as the operator reads it
    /// (`src/secrets.rs`: a key file's final newline is not part of the key).
    fn key(&self, namespace: &str, reference: &Value) -> Option<&'a str> {
        let data = self.data(namespace, reference)?;
        data.get(reference["key"].as_str()?)?
            .as_str()
            .map(str::trim)
    }
}

/// The credentials each example InferenceEndpoint references, read from the examples' Secrets,
/// so the double accepts exactly those.
fn placeholder_credentials(documents: &[Value]) -> Placeholders {
    let secrets = Secrets::of(documents);
    let mut found = Placeholders::default();
    for doc in documents
        .iter()
        .filter(|d| d["kind"] == "InferenceEndpoint")
    {
        let (_, ns, _) = identity(doc);
        let spec = &doc["spec"];
        if let Some(data) = secrets.data(&ns, &spec["elasticsearch"]["credentialsSecretRef"]) {
            let text = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_owned);
            if let (Some(user), Some(password)) = (text("username"), text("password")) {
                found.es.basic.push((user, password));
            }
            found.es.api_keys.extend(text("apiKey"));
        }
        let azure = &spec["azureOpenAI"];
        for reference in [
            &azure["apiKeySecretRef"],
            &azure["entraIdSecretRef"],
            &azure["oauth2"]["clientSecretSecretRef"],
        ] {
            found
                .azure
                .extend(secrets.key(&ns, reference).map(str::to_owned));
        }
        if let Some(settings) = spec["service"]["secretSettings"].as_object() {
            found
                .providers
                .extend(provider_credential(&secrets, &ns, settings));
        }
    }
    found
}

/// A service's credential identity (see `crate::es::FakeProviders`): one key's value, the Amazon
/// pair, or `custom`'s whole map (a `secretRef`: every key of the Secret).
fn provider_credential(
    secrets: &Secrets<'_>,
    namespace: &str,
    settings: &Map<String, Value>,
) -> Option<String> {
    let one = |name: &str| secrets.key(namespace, &settings.get(name)?["secretKeyRef"]);
    if let (Some(access), Some(secret_key)) = (one("access_key"), one("secret_key")) {
        return Some(aws_credential(access, secret_key));
    }
    let whole = settings
        .values()
        .find_map(|s| secrets.data(namespace, &s["secretRef"]));
    if let Some(map) = whole {
        let pairs: Vec<(&str, &str)> = map
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default().trim()))
            .collect();
        return Some(custom_credential(&pairs));
    }
    settings
        .values()
        .find_map(|s| secrets.key(namespace, &s["secretKeyRef"]))
        .map(str::to_owned)
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
    let placeholders = placeholder_credentials(&documents);
    let es = EsDouble::start(EsOptions {
        version: options.es_version.clone(),
        auth: placeholders.es,
        ..EsOptions::default()
    })
    .await;
    for key in &placeholders.azure {
        es.azure().accept_credential(key);
    }
    for credential in &placeholders.providers {
        es.providers().accept_credential(credential);
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
        let (all_ready_after, endpoints) = watch(&client, &names, applied_at, &options).await?;
        return Ok(report(&es, all_ready_after, endpoints));
    }
    tokio::select! {
        result = watch(&client, &names, applied_at, &options) => {
            result.map(|(after, endpoints)| report(&es, after, endpoints))
        }
        _ = tokio::signal::ctrl_c() => {
            println!("\nstopping");
            Ok(report(&es, None, BTreeMap::new()))
        }
    }
}

/// What the double holds and saw, for the report.
fn report(
    es: &EsDouble,
    all_ready_after: Option<Duration>,
    endpoints: BTreeMap<String, String>,
) -> SandboxReport {
    let mut elasticsearch = BTreeMap::new();
    let mut deployments = BTreeMap::new();
    for id in es.endpoint_ids() {
        let service = es.endpoint(&id).map(|e| e["service"].clone());
        let service = service.and_then(|s| s.as_str().map(str::to_owned));
        elasticsearch.insert(id.clone(), service.unwrap_or_default());
        if let Some(stats) = es.deployment_stats(&id) {
            let state = stats["state"].as_str().unwrap_or_default().to_owned();
            deployments.insert(id, state);
        }
    }
    let mut accepted_provider_calls = BTreeMap::new();
    for call in es.providers().calls() {
        if call.outcome == ProviderOutcome::Accept {
            *accepted_provider_calls.entry(call.service).or_insert(0) += 1;
        }
    }
    SandboxReport {
        all_ready_after,
        endpoints,
        elasticsearch,
        accepted_provider_calls,
        deployments,
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

/// Apply the example objects server-side (as `kubectl apply --server-side` does, so a Secret that
/// several files carry is applied once per file without conflict); InferenceEndpoints are
/// pointed at the double.
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
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        api.patch(&name, &PatchParams::apply("kubectl"), &Patch::Apply(&doc))
            .await
            .map_err(|e| format!("applying {resource} {name}: {e}"))?;
    }
    Ok(names)
}

/// Print every Ready change until all are Ready (then return) or the timeout passes.
async fn watch(
    client: &kube::Client,
    names: &[String],
    applied_at: Instant,
    options: &SandboxOptions,
) -> Result<(Option<Duration>, BTreeMap<String, String>), String> {
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
                    "{:>6.2}s  {name:<24} {line}",
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
    Ok((all_ready_after, seen))
}
