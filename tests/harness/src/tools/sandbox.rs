//! The sandbox: watch the operator work without a cluster, and make it fail on purpose.
//!
//! Starts the Kubernetes API emulator (with `crds/`) and the Elasticsearch double, writes a
//! kubeconfig so `kubectl` works against the emulator, runs the real operator binary against
//! them, applies every object in `examples/` as `kubectl apply --server-side -f examples/` would
//! — unchanged except that `spec.elasticsearch.url` points at the double, whose users, fake
//! Azure and fake providers accept the placeholder credentials the examples reference — and
//! prints every InferenceEndpoint's Ready and Healthy conditions as they change, and its
//! deletion, in every namespace: objects you apply yourself are reported like the examples. The
//! operator runs with health checks on (`--health-check`, every 30 s by default), so `kubectl
//! get iep -o wide` shows Ready, Healthy and Used-By for every example.
//!
//! **Your own objects.** The sandbox does not rewrite what you apply: it prints the URL to put
//! in `spec.elasticsearch.url` (the double's), the placeholder Elasticsearch user your
//! credentials Secret needs, and the `/metrics` URL of the operator ([`Sandbox::urls`]).
//!
//! **Error paths.** [`Switches`] set at start and [`Control`] commands typed while it runs (one
//! per line on stdin; `help` lists them) make the fake Azure and the fake providers reject the
//! examples' keys or rate-limit them, mark an endpoint as used (so deleting its object shows
//! `DeletionBlocked`), delete an endpoint behind the operator's back (drift, repaired at the next
//! re-check: `--recheck 20s` shows it within a minute), revoke the keys of running endpoints
//! (`reject-key` while it runs: Healthy=False with the provider's reason at the next probe), and
//! rotate an object's key to one the providers refuse (`bad-key NAME`: refused by Elasticsearch
//! 9.4+, rolled back by the operator on 9.3, see [`ROLLBACK_ES_VERSION`]).
//!
//! Several example files carry the same Secret (the Elasticsearch credentials), so each file
//! can be applied alone; applying them all is idempotent, as long as the copies agree
//! ([`example_documents`] refuses copies that differ).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Map, Value};

use crate::env::{client_for, crds_dir};
use crate::es::{
    aws_credential, custom_credential, EsAuth, EsDouble, EsOptions, EsVersion, ProviderOutcome,
};
use crate::kube::{EmulatorOptions, KubeEmulator};
use crate::tools::bench::OperatorProcess;

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
    /// The error paths switched on from the start.
    pub switches: Switches,
}

/// The Elasticsearch version of the sandbox's `--rollback`: up to 9.3 `_update` stores a new
/// key without calling the provider; 9.4.0 validates it first (elastic/elasticsearch#140003;
/// docs/reference/elasticsearch-inference-api.md#update-by-version). So a rotated key the
/// provider refuses is caught by the operator's probe and rolled back (docs/lifecycle.md,
/// "Health and verified rotation"). 9.3.1 rather than 9.3.0, which drops the chunking settings
/// on `_update` (docs/reference/elasticsearch-inference-api.md#update-chunking-reset).
pub const ROLLBACK_ES_VERSION: &str = "9.3.1";

/// Switches set at start (the sandbox's flags; [`Control`] changes them while it runs).
#[derive(Args, Clone, Debug)]
pub struct Switches {
    /// The operator's --recheck-interval: how soon it notices drift (an endpoint changed or
    /// deleted behind its back, see the `drift` command). `20s` shows a repair within a minute.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub recheck: Duration,
    /// The operator's --health-check-interval: every InferenceEndpoint is probed this often
    /// (Healthy in `kubectl get iep -o wide`), so a key revoked at the provider (`reject-key`
    /// while it runs) shows Healthy=False within it. Objects whose spec.healthCheck sets an
    /// interval (examples/text-embedding.yaml, cohere-rerank.yaml: 10m) keep theirs.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub health_check: Duration,
    /// The fake Azure and the fake providers reject the examples' keys (401): their endpoints
    /// end AzureRejectedCredentials / ProviderRejectedCredentials.
    #[arg(long)]
    pub reject_key: bool,
    /// The fake Azure and the fake providers rate-limit the examples' keys (429): their
    /// endpoints retry with backoff (AzureRateLimited / ProviderRateLimited) until
    /// `rate-limit off`.
    #[arg(long)]
    pub rate_limit: bool,
    /// Every example endpoint is used by a `semantic_text` field of an empty index (Elasticsearch
    /// 8.16+): creating it works, deleting its object (`kubectl delete iep NAME`) shows
    /// DeletionBlocked until `unuse ID`.
    #[arg(long)]
    pub in_use: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            recheck: Duration::from_secs(300),
            health_check: Duration::from_secs(30),
            reject_key: false,
            rate_limit: false,
            in_use: false,
        }
    }
}

/// What a finished sandbox run measured.
#[derive(Debug)]
pub struct SandboxReport {
    /// Time from applying the examples until every example InferenceEndpoint was Ready.
    pub all_ready_after: Option<Duration>,
    /// The last line reported for each InferenceEndpoint, by [`Change::key`].
    pub endpoints: BTreeMap<String, String>,
    /// The last `Healthy=` line of each InferenceEndpoint that has the condition.
    pub health: BTreeMap<String, String>,
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

/// The index whose `semantic_text` fields use the endpoints `--in-use` marks, and the pipeline
/// the `use` command adds.
const IN_USE_INDEX: &str = "sandbox-semantic-index";
const IN_USE_PIPELINE: &str = "sandbox-pipeline";

/// A command typed while the sandbox runs, one per line on stdin.
#[derive(Parser, Debug)]
#[command(
    name = "sandbox>",
    no_binary_name = true,
    disable_help_flag = true,
    help_template = "{subcommands}"
)]
struct ControlLine {
    #[command(subcommand)]
    command: Control,
}

/// `on` or `off`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

/// The commands the sandbox takes on stdin while it runs (`help` lists them).
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// [on|off] the fake Azure and providers reject the examples' keys (401), as if
    /// revoked: running endpoints show Healthy=False at their next probe (--health-check); a
    /// create or key change (`drift ID`) ends Ready=False.
    RejectKey {
        #[arg(default_value = "on")]
        state: OnOff,
    },
    /// [on|off] the fake Azure and providers answer 429 to the examples' keys:
    /// Healthy=False at the next probe, retries with backoff on the next create or key change;
    /// `off` lets them succeed.
    RateLimit {
        #[arg(default_value = "on")]
        state: OnOff,
    },
    /// ID: an ingest pipeline uses endpoint ID, so deleting its object
    /// (`kubectl delete iep NAME`) shows DeletionBlocked.
    Use { inference_id: String },
    /// ID: nothing uses endpoint ID any more (a blocked deletion then completes).
    Unuse { inference_id: String },
    /// ID: delete endpoint ID in Elasticsearch behind the operator's back; the next
    /// re-check (--recheck) recreates it (Ready reason Recreated).
    Drift { inference_id: String },
    /// NAME: a bad rotation: put a key the providers refuse into the Secret that
    /// InferenceEndpoint NAME (`ns/name` outside default) reads. 9.4+ refuses the _update;
    /// on 9.3 (--rollback) the operator probes and puts the previous key back. Both: Ready=False
    /// CredentialsRejected, the endpoint still serving.
    BadKey { name: String },
    /// NAME: put the example's own key back into that Secret (Ready again).
    GoodKey { name: String },
    /// Print the URLs again (Elasticsearch for your own objects, /metrics, kubeconfig).
    Urls,
}

/// The commands' help, for `--help` and the `help` command.
pub fn control_help() -> String {
    use clap::CommandFactory;
    ControlLine::command().render_help().to_string()
}

/// The keys' outcome at the fake providers for the switches: a rejection wins over a rate limit.
fn key_outcome(reject_key: bool, rate_limit: bool) -> Option<ProviderOutcome> {
    if reject_key {
        Some(ProviderOutcome::Reject401)
    } else if rate_limit {
        Some(ProviderOutcome::RateLimited429)
    } else {
        None
    }
}

/// One reported change of an InferenceEndpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `name` in namespace `default`, `namespace/name` elsewhere.
    pub key: String,
    /// `Ready=<status> <reason> <message>`, or `deleted`.
    pub line: String,
    /// Since the examples were applied.
    pub at: Duration,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = &self.key;
        write!(
            f,
            "{:>6.2}s  {key:<24} {}",
            self.at.as_secs_f64(),
            self.line
        )
    }
}

const DELETED: &str = "deleted";

/// The line reported for an object: its Ready condition.
fn ready_line(object: &Value) -> String {
    let ready = object["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    match ready {
        Some(c) => format!(
            "Ready={:<5} {:<26} {}",
            c["status"].as_str().unwrap_or("?"),
            c["reason"].as_str().unwrap_or(""),
            c["message"].as_str().unwrap_or("")
        ),
        None => "Ready=?     (not reconciled yet)".to_owned(),
    }
}

/// The line reported for an object's `Healthy` condition; `None` without one (health checks off
/// for it, or not reconciled yet).
fn health_line(object: &Value) -> Option<String> {
    let healthy = object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Healthy")?;
    Some(format!(
        "Healthy={:<5} {:<26} {}",
        healthy["status"].as_str().unwrap_or("?"),
        healthy["reason"].as_str().unwrap_or(""),
        healthy["message"].as_str().unwrap_or("")
    ))
}

/// A Ready line that settles an example: Ready, or refused for good because the emulated
/// version cannot take it (the Azure OAuth2 example before 9.4).
fn settled(line: &str) -> bool {
    line.starts_with("Ready=True") || line.split_whitespace().nth(1) == Some("UnsupportedByCluster")
}

/// The changes from `seen` to `now` (key → line): new or changed lines, and `deleted` for a key
/// that is gone. Updates `seen`.
fn diff(
    seen: &mut BTreeMap<String, String>,
    now: BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut changes = vec![];
    for key in seen.keys() {
        if !now.contains_key(key) {
            changes.push((key.clone(), DELETED.to_owned()));
        }
    }
    for (key, line) in &now {
        if seen.get(key) != Some(line) {
            changes.push((key.clone(), line.clone()));
        }
    }
    *seen = now;
    changes
}

/// `name` in `default`, `namespace/name` elsewhere.
fn key_of(namespace: &str, name: &str) -> String {
    if namespace == "default" {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

/// A running sandbox: the doubles, the operator, and what it reported so far.
pub struct Sandbox {
    pub kube: KubeEmulator,
    pub es: EsDouble,
    client: kube::Client,
    _operator: OperatorProcess,
    pub kubeconfig: PathBuf,
    pub log_path: PathBuf,
    /// `http://ADDRESS/metrics` of the operator.
    pub metrics_url: String,
    es_version: String,
    /// The credentials the examples reference, at the fake Azure and the fake providers.
    keys: Vec<String>,
    switches: Mutex<Switches>,
    /// Keys of the example InferenceEndpoints.
    pub examples: Vec<String>,
    applied_at: Instant,
    seen: Mutex<BTreeMap<String, String>>,
    /// The last `Healthy=` line of each object that has the condition.
    seen_health: Mutex<BTreeMap<String, String>>,
    /// Every change reported so far.
    history: Mutex<Vec<Change>>,
    /// The examples' Secret values, by (namespace, Secret, key): what `good-key` puts back.
    example_keys: BTreeMap<(String, String, String), String>,
    /// The bad rotations `bad-key` made, by object key.
    bad_keys: Mutex<BTreeMap<String, BadRotation>>,
}

/// A rotation `bad-key` made: the endpoint it targets and the key it wrote.
#[derive(Clone, Debug)]
struct BadRotation {
    inference_id: String,
    key: String,
}

/// A Secret key an InferenceEndpoint reads its provider credential from.
struct KeyRef {
    /// The object's key ([`Change::key`]).
    object: String,
    namespace: String,
    secret: String,
    key: String,
}

impl Sandbox {
    /// Start the doubles and the operator, apply `examples/`, print where everything is.
    pub async fn start(options: &SandboxOptions) -> Result<Sandbox, String> {
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
        let keys = [placeholders.azure, placeholders.providers].concat();
        for key in &keys {
            es.providers().accept_credential(key);
        }
        let kubeconfig = options.work_dir.join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig)
            .map_err(|e| e.to_string())?;
        let log_path = options.work_dir.join("operator.log");
        let recheck = humantime::format_duration(options.switches.recheck).to_string();
        let health = humantime::format_duration(options.switches.health_check).to_string();
        let args = [
            "--backoff-initial",
            "200ms",
            "--backoff-max",
            "5s",
            "--recheck-interval",
            &recheck,
            "--health-check-interval",
            &health,
            // Who uses each endpoint (the Used-By column) is read at the first reconcile one
            // interval after its create: seconds here, not the default hour.
            "--used-by-interval",
            "3s",
        ]
        .map(str::to_owned);
        let mut operator =
            OperatorProcess::spawn(&options.operator_bin, &kubeconfig, &log_path, &args, &[])?;
        let metrics_url = format!("http://{}/metrics", operator.metrics_address().await?);
        let sandbox = Sandbox {
            client: client_for(&kube.url(), "default"),
            kube,
            es,
            _operator: operator,
            kubeconfig,
            log_path,
            metrics_url,
            es_version: options.es_version.clone(),
            keys,
            switches: Mutex::new(options.switches.clone()),
            examples: vec![],
            applied_at: Instant::now(),
            seen: Mutex::new(BTreeMap::new()),
            seen_health: Mutex::new(BTreeMap::new()),
            history: Mutex::new(vec![]),
            example_keys: example_secret_values(&documents),
            bad_keys: Mutex::new(BTreeMap::new()),
        };
        sandbox.apply_key_outcome();
        if options.switches.in_use {
            sandbox.es.set_index_empty(IN_USE_INDEX, true);
            for id in example_inference_ids(&documents) {
                sandbox.es.add_index_reference(&id, IN_USE_INDEX);
            }
        }
        println!("{}", sandbox.urls());
        let mut sandbox = sandbox;
        sandbox.applied_at = Instant::now();
        sandbox.examples = apply(&sandbox.client, &documents, &sandbox.es).await?;
        println!(
            "applied {} objects from examples/ ({} InferenceEndpoints)",
            documents.len(),
            sandbox.examples.len()
        );
        Ok(sandbox)
    }

    /// Where everything is, and what to put in your own objects.
    pub fn urls(&self) -> String {
        let recheck = humantime::format_duration(self.switches().recheck);
        let health = humantime::format_duration(self.switches().health_check);
        [
            format!("Kubernetes API emulator  {}", self.kube.url()),
            format!("kubeconfig               {}", self.kubeconfig.display()),
            format!(
                "Elasticsearch double     {} (version {})",
                self.es.url(),
                self.es_version
            ),
            format!("operator /metrics        {}", self.metrics_url),
            format!("operator log             {} (re-checks every {recheck}, probes every {health})", self.log_path.display()),
            String::new(),
            "your own objects, in any namespace (apply a Namespace first), are reported too; in them put".to_owned(),
            format!("  spec.elasticsearch.url: {}", self.es.url()),
            "  credentialsSecretRef:   a Secret in the object's namespace like examples/'".to_owned(),
            "                          elasticsearch-credentials (username elastic, password".to_owned(),
            "                          replace-with-your-elastic-password, label esinference.io/credentials: \"true\")".to_owned(),
            "  the fake Azure and providers accept the examples' placeholder keys, no others".to_owned(),
            format!("try:  KUBECONFIG={} kubectl get iep -A -o wide", self.kubeconfig.display()),
        ]
        .join("\n")
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub fn switches(&self) -> Switches {
        self.switches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The examples' keys at the fake providers, from the reject-key and rate-limit switches.
    fn apply_key_outcome(&self) {
        let switches = self.switches();
        let outcome = key_outcome(switches.reject_key, switches.rate_limit);
        for key in &self.keys {
            self.es.providers().set_credential_outcome(key, outcome);
        }
    }

    /// Run one command line (as typed on stdin); returns what to print.
    pub async fn control(&self, line: &str) -> String {
        match ControlLine::try_parse_from(line.split_whitespace()) {
            Ok(parsed) => match parsed.command {
                Control::BadKey { name } => self.bad_key(&name).await,
                Control::GoodKey { name } => self.good_key(&name).await,
                command => self.run_control(command),
            },
            Err(error) => error.render().to_string(),
        }
    }

    fn run_control(&self, command: Control) -> String {
        let recheck = humantime::format_duration(self.switches().recheck);
        let health = humantime::format_duration(self.switches().health_check);
        let on = |state: OnOff| state == OnOff::On;
        let seen_when = "seen when the operator next creates an endpoint or pushes a key: \
                         `drift ID`, or change a key in its Secret";
        match command {
            Control::RejectKey { state } => {
                self.set_switch(|s| s.reject_key = on(state));
                if on(state) {
                    format!(
                        "the examples' keys are rejected (401), as if revoked: running endpoints show \
                         Healthy=False at their next probe (every {health}, or their spec.healthCheck \
                         interval); a create or key change (`drift ID`) ends Ready=False"
                    )
                } else {
                    format!(
                        "the examples' keys are accepted: Healthy=True at the next probe (every {health})"
                    )
                }
            }
            Control::RateLimit { state } => {
                self.set_switch(|s| s.rate_limit = on(state));
                format!(
                    "the examples' keys are {}; {seen_when}, and at the next probe (every {health})",
                    if on(state) {
                        "rate-limited (429)"
                    } else {
                        "no longer rate-limited"
                    }
                )
            }
            Control::Use { inference_id } => {
                self.es
                    .add_pipeline_reference(&inference_id, IN_USE_PIPELINE);
                format!("pipeline {IN_USE_PIPELINE} uses {inference_id}: `kubectl delete iep` of its object shows DeletionBlocked until `unuse {inference_id}`")
            }
            Control::Unuse { inference_id } => {
                self.es
                    .remove_pipeline_reference(&inference_id, IN_USE_PIPELINE);
                self.es.remove_index_reference(&inference_id, IN_USE_INDEX);
                format!("nothing uses {inference_id} any more")
            }
            Control::Drift { inference_id } => {
                if self.es.delete_out_of_band(&inference_id) {
                    format!("deleted {inference_id} in Elasticsearch behind the operator's back; it re-checks every {recheck} and recreates it")
                } else {
                    format!(
                        "Elasticsearch holds no endpoint {inference_id} (ids: {})",
                        self.es.endpoint_ids().join(", ")
                    )
                }
            }
            Control::Urls => self.urls(),
            Control::BadKey { .. } | Control::GoodKey { .. } => {
                unreachable!("run by Sandbox::control")
            }
        }
    }

    /// `bad-key NAME`: write a key no fake provider accepts into the object's credential Secret.
    async fn bad_key(&self, name: &str) -> String {
        let (object, reference) = match self.key_ref(name).await {
            Ok(found) => found,
            Err(error) => return error,
        };
        let n = self
            .bad_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        let key = format!("sandbox-rejected-key-{n}");
        if let Err(error) = self.write_key(&reference, &key).await {
            return error;
        }
        let inference_id = object["spec"]["inferenceId"]
            .as_str()
            .or(object["metadata"]["name"].as_str())
            .unwrap_or_default()
            .to_owned();
        self.bad_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reference.object.clone(), BadRotation { inference_id, key });
        // 9.4 tries a key given to `_update` (the double's `v94` gate).
        let what = if EsVersion::parse(&self.es_version).v94() {
            "Elasticsearch refuses the _update and keeps the previous key"
        } else {
            "Elasticsearch stores it without trying it; the operator's probe catches it and puts the previous key back"
        };
        format!(
            "Secret {}/{} key {} now holds a key the providers refuse: {what}. Expect Ready=False \
             CredentialsRejected; `good-key {name}` puts the example's key back",
            reference.namespace, reference.secret, reference.key
        )
    }

    /// `good-key NAME`: put the example's key back into the object's credential Secret.
    async fn good_key(&self, name: &str) -> String {
        let reference = match self.key_ref(name).await {
            Ok((_, reference)) => reference,
            Err(error) => return error,
        };
        let original = self.example_keys.get(&(
            reference.namespace.clone(),
            reference.secret.clone(),
            reference.key.clone(),
        ));
        let Some(original) = original else {
            return format!(
                "Secret {}/{} is not an example's: put a good key back yourself",
                reference.namespace, reference.secret
            );
        };
        match self.write_key(&reference, original).await {
            Ok(()) => format!(
                "Secret {}/{} key {} holds the example's key again: Ready=True CredentialsRotated",
                reference.namespace, reference.secret, reference.key
            ),
            Err(error) => error,
        }
    }

    /// The InferenceEndpoint `name` (`ns/name` outside `default`) and the Secret key its provider
    /// credential comes from: `azureOpenAI.apiKeySecretRef`, else the first `secretKeyRef` of
    /// `service.secretSettings`.
    async fn key_ref(&self, name: &str) -> Result<(Value, KeyRef), String> {
        let (namespace, object_name) = match name.split_once('/') {
            Some((namespace, object_name)) => (namespace.to_owned(), object_name.to_owned()),
            None => ("default".to_owned(), name.to_owned()),
        };
        let api =
            Api::<DynamicObject>::namespaced_with(self.client.clone(), &namespace, &resource());
        let object = api
            .get(&object_name)
            .await
            .map_err(|e| format!("InferenceEndpoint {name}: {e}"))?;
        let object = serde_json::to_value(&object).map_err(|e| e.to_string())?;
        let spec = &object["spec"];
        let settings = spec["service"]["secretSettings"].as_object();
        let reference = Some(&spec["azureOpenAI"]["apiKeySecretRef"])
            .filter(|r| r.is_object())
            .or_else(|| settings?.values().map(|s| &s["secretKeyRef"]).find(|r| r.is_object()))
            .ok_or_else(|| {
                format!("InferenceEndpoint {name} reads no API key from a Secret (apiKeySecretRef or a secretKeyRef)")
            })?;
        let text = |k: &str| reference[k].as_str().unwrap_or_default().to_owned();
        let reference = KeyRef {
            object: key_of(&namespace, &object_name),
            namespace,
            secret: text("name"),
            key: text("key"),
        };
        Ok((object, reference))
    }

    async fn write_key(&self, reference: &KeyRef, value: &str) -> Result<(), String> {
        use base64::Engine;
        let secrets = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Secret"));
        let api = Api::<DynamicObject>::namespaced_with(
            self.client.clone(),
            &reference.namespace,
            &secrets,
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        let patch = json!({"data": {&reference.key: encoded}});
        api.patch(
            &reference.secret,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("Secret {}/{}: {e}", reference.namespace, reference.secret))
    }

    /// After `bad-key` on object `key`: how the rejected key was handled, from the double's
    /// request log. Before 9.4, how long Elasticsearch held it: from the `_update` that stored it
    /// to the `_update` that put the previous key back. `None` while that is not over.
    pub fn rotation_note(&self, key: &str) -> Option<String> {
        let bad = self
            .bad_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()?;
        let path = format!("/{}/_update", bad.inference_id);
        let updates: Vec<_> = self
            .es
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT" && r.path.ends_with(&path))
            .collect();
        let stored = updates
            .iter()
            .rposition(|r| r.raw_body.contains(&bad.key))?;
        let update = &updates[stored];
        if update.status != Some(200) {
            return Some(format!(
                "{}: Elasticsearch {} refused the _update with the rejected key (HTTP {}); the previous key never left",
                bad.inference_id,
                self.es_version,
                update.status.map_or("-".to_owned(), |s| s.to_string())
            ));
        }
        let rollback = updates[stored + 1..]
            .iter()
            .find(|r| r.status == Some(200))?;
        Some(format!(
            "{}: Elasticsearch {} held the rejected key for {:.0?} (from the _update that stored it to the one that put the previous key back)",
            bad.inference_id,
            self.es_version,
            rollback.at.duration_since(update.at)
        ))
    }

    fn set_switch(&self, change: impl FnOnce(&mut Switches)) {
        change(&mut self.switches.lock().unwrap_or_else(|e| e.into_inner()));
        self.apply_key_outcome();
    }

    /// Read every InferenceEndpoint (all namespaces) and report what changed since last time.
    pub async fn poll(&self) -> Result<Vec<Change>, String> {
        let api = Api::<DynamicObject>::all_with(self.client.clone(), &resource());
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing InferenceEndpoints: {e}"))?;
        let keyed = |o: &DynamicObject| {
            let namespace = o.metadata.namespace.as_deref().unwrap_or("default");
            key_of(namespace, o.metadata.name.as_deref().unwrap_or_default())
        };
        let now: BTreeMap<String, String> = list
            .items
            .iter()
            .map(|o| (keyed(o), ready_line(&o.data)))
            .collect();
        let health: BTreeMap<String, String> = list
            .items
            .iter()
            .filter_map(|o| Some((keyed(o), health_line(&o.data)?)))
            .collect();
        let at = self.applied_at.elapsed();
        let ready = diff(
            &mut self.seen.lock().unwrap_or_else(|e| e.into_inner()),
            now,
        );
        // A deletion is reported once, with the Ready line.
        let healthy = diff(
            &mut self.seen_health.lock().unwrap_or_else(|e| e.into_inner()),
            health,
        )
        .into_iter()
        .filter(|(_, line)| line != DELETED);
        let changes: Vec<Change> = ready
            .into_iter()
            .chain(healthy)
            .map(|(key, line)| Change { key, line, at })
            .collect();
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(changes.iter().cloned());
        Ok(changes)
    }

    /// Every change reported so far.
    pub fn history(&self) -> Vec<Change> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The last Ready line of each InferenceEndpoint.
    pub fn lines(&self) -> BTreeMap<String, String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The last Healthy line of each InferenceEndpoint that has the condition.
    pub fn health_lines(&self) -> BTreeMap<String, String> {
        self.seen_health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether every example is settled: Ready (or refused for good by the emulated version),
    /// and each Ready one probed (its Healthy no longer `NotProbed`).
    fn examples_ready(&self) -> bool {
        let (lines, health) = (self.lines(), self.health_lines());
        let probed = |k: &String| {
            health
                .get(k)
                .is_some_and(|l| l.split_whitespace().nth(1) != Some("NotProbed"))
        };
        self.examples.iter().all(|k| match lines.get(k) {
            Some(line) if line.starts_with("Ready=True") => probed(k),
            Some(line) => settled(line),
            None => false,
        })
    }

    /// The examples not Ready although settled (the emulated version cannot take them).
    fn examples_refused(&self) -> Vec<String> {
        let lines = self.lines();
        self.examples
            .iter()
            .filter(|k| lines.get(*k).is_some_and(|l| !l.starts_with("Ready=True")))
            .cloned()
            .collect()
    }

    /// Poll (printing each change) until a reported change of `key` satisfies `want`; the change.
    pub async fn wait_for(
        &self,
        key: &str,
        want: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<Change, String> {
        let deadline = Instant::now() + timeout;
        loop {
            for change in self.poll().await? {
                println!("{change}");
            }
            let found = self
                .history()
                .into_iter()
                .find(|c| c.key == key && want(&c.line));
            if let Some(change) = found {
                return Ok(change);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{key}: no such change within {timeout:?}; reported: {:#?}",
                    self.history()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the double holds and saw, for the report.
    fn report(&self, all_ready_after: Option<Duration>) -> SandboxReport {
        let es = &self.es;
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
            endpoints: self.lines(),
            health: self.health_lines(),
            elasticsearch,
            accepted_provider_calls,
            deployments,
        }
    }
}

/// Every key of the examples' Secrets (`stringData`), by (namespace, Secret, key).
fn example_secret_values(documents: &[Value]) -> BTreeMap<(String, String, String), String> {
    let mut values = BTreeMap::new();
    for ((namespace, secret), data) in Secrets::of(documents).0 {
        for (key, value) in data {
            let text = value.as_str().unwrap_or_default().to_owned();
            values.insert((namespace.clone(), secret.clone(), key.clone()), text);
        }
    }
    values
}

/// The inference id of each example InferenceEndpoint (`spec.inferenceId`, else its name).
fn example_inference_ids(documents: &[Value]) -> Vec<String> {
    documents
        .iter()
        .filter(|d| d["kind"] == "InferenceEndpoint")
        .filter_map(|d| {
            d["spec"]["inferenceId"]
                .as_str()
                .or(d["metadata"]["name"].as_str())
                .map(str::to_owned)
        })
        .collect()
}

/// Start the sandbox and report every change until Ctrl-C (or, with `exit_when_ready`, until
/// every example is Ready), taking [`Control`] commands from stdin.
pub async fn run(options: SandboxOptions) -> Result<SandboxReport, String> {
    let sandbox = Sandbox::start(&options).await?;
    let mut commands = stdin_lines();
    let mut all_ready_after = None;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut noted: Vec<String> = vec![];
    println!();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(line) = commands.recv() => {
                if !line.trim().is_empty() {
                    println!("{}", sandbox.control(&line).await);
                }
                continue;
            }
            _ = tokio::signal::ctrl_c() => {
                println!("\nstopping");
                return Ok(sandbox.report(all_ready_after));
            }
        }
        for change in sandbox.poll().await? {
            println!("{change}");
            if change.line.split_whitespace().nth(1) == Some("CredentialsRejected") {
                noted.push(change.key);
            }
        }
        // A rejected rotation's note needs the rollback, which may come a moment later.
        noted.retain(|key| match sandbox.rotation_note(key) {
            Some(note) => {
                println!("        {note}");
                false
            }
            None => true,
        });
        if all_ready_after.is_none() && sandbox.examples_ready() {
            let took = sandbox.applied_at.elapsed();
            all_ready_after = Some(took);
            let refused = sandbox.examples_refused();
            let unless = if refused.is_empty() {
                String::new()
            } else {
                format!(
                    " but {} (Elasticsearch {} cannot take them)",
                    refused.join(", "),
                    sandbox.es_version
                )
            };
            println!(
                "\nall {} example InferenceEndpoints Ready{unless} after {:.2}s, and probed",
                sandbox.examples.len(),
                took.as_secs_f64()
            );
            if options.exit_when_ready {
                return Ok(sandbox.report(all_ready_after));
            }
            println!("watching every InferenceEndpoint; type `help` for the commands that show the error paths; Ctrl-C stops everything");
        }
        if options.exit_when_ready && sandbox.applied_at.elapsed() > options.ready_timeout {
            return Err(format!(
                "not all Ready after {:?}: {:#?}",
                options.ready_timeout,
                sandbox.lines()
            ));
        }
    }
}

/// Lines typed on stdin. A thread, not tokio's stdin: a read blocked on a terminal must not
/// hold up the runtime's shutdown. At end of input (stdin closed, as under CI) nothing more comes.
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (send, receive) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// Apply the example objects server-side (as `kubectl apply --server-side` does, so a Secret that
/// several files carry is applied once per file without conflict); InferenceEndpoints are
/// pointed at the double. Returns the InferenceEndpoints' keys.
async fn apply(
    client: &kube::Client,
    documents: &[Value],
    es: &EsDouble,
) -> Result<Vec<String>, String> {
    let mut keys = vec![];
    for doc in documents {
        let mut doc = doc.clone();
        let (kind, namespace, name) = identity(&doc);
        let resource = if kind == "InferenceEndpoint" {
            if doc["spec"]["elasticsearch"].is_object() {
                doc["spec"]["elasticsearch"]["url"] = json!(es.url());
            }
            keys.push(key_of(&namespace, &name));
            resource()
        } else if kind == "Secret" {
            ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Secret"))
        } else {
            return Err(format!(
                "examples/ holds a {kind}, which the sandbox does not apply"
            ));
        };
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &resource);
        api.patch(&name, &PatchParams::apply("kubectl"), &Patch::Apply(&doc))
            .await
            .map_err(|e| format!("applying {kind} {name}: {e}"))?;
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_reports_new_changed_and_deleted_objects() {
        let mut seen = BTreeMap::new();
        let now = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let first = diff(&mut seen, now(&[("a", "Ready=?"), ("ns/b", "Ready=True")]));
        assert_eq!(first.len(), 2);
        assert!(diff(&mut seen, now(&[("a", "Ready=?"), ("ns/b", "Ready=True")])).is_empty());
        let third = diff(&mut seen, now(&[("a", "Ready=True")]));
        assert_eq!(
            third,
            vec![
                ("ns/b".to_owned(), DELETED.to_owned()),
                ("a".to_owned(), "Ready=True".to_owned())
            ]
        );
    }

    #[test]
    fn an_example_settles_ready_or_refused_by_its_version() {
        assert!(settled("Ready=True  Created  created"));
        assert!(settled(
            "Ready=False UnsupportedByCluster       OAuth2 client credentials need Elasticsearch 9.4+"
        ));
        assert!(!settled(
            "Ready=False SecretNotFound  Secret default/x not found"
        ));
        assert!(!settled("Ready=?     (not reconciled yet)"));
        let object = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "Created", "message": "m"},
            {"type": "Healthy", "status": "False", "reason": "ProviderRejectedCredentials", "message": "401"}
        ]}});
        let line = health_line(&object).unwrap();
        assert!(
            line.starts_with("Healthy=False ProviderRejectedCredentials"),
            "{line}"
        );
        assert_eq!(health_line(&json!({"status": {}})), None);
    }

    #[test]
    fn a_rejected_key_wins_over_a_rate_limit() {
        assert_eq!(key_outcome(true, true), Some(ProviderOutcome::Reject401));
        assert_eq!(
            key_outcome(false, true),
            Some(ProviderOutcome::RateLimited429)
        );
        assert_eq!(key_outcome(false, false), None);
    }

    #[test]
    fn control_lines_parse_and_help_lists_every_command() {
        let parse =
            |line: &str| ControlLine::try_parse_from(line.split_whitespace()).map(|c| c.command);
        assert_eq!(
            parse("reject-key").unwrap(),
            Control::RejectKey { state: OnOff::On }
        );
        assert_eq!(
            parse("rate-limit off").unwrap(),
            Control::RateLimit { state: OnOff::Off }
        );
        assert_eq!(
            parse("drift x").unwrap(),
            Control::Drift {
                inference_id: "x".into()
            }
        );
        assert_eq!(
            parse("bad-key team-a/mine").unwrap(),
            Control::BadKey {
                name: "team-a/mine".into()
            }
        );
        assert!(parse("explode").is_err());
        let help = control_help();
        for command in [
            "reject-key",
            "rate-limit",
            "use",
            "unuse",
            "drift",
            "bad-key",
            "good-key",
            "urls",
        ] {
            assert!(help.contains(command), "{command} missing from:\n{help}");
        }
    }
}
