//! An in-memory Kubernetes API server emulator for testing kube-rs clients without a cluster.
//!
//! It serves plain HTTP on 127.0.0.1 and follows docs/reference/kubernetes-api.md:
//! discovery, CRUD, list/watch with resourceVersions, status subresource, generation,
//! finalizers, JSON/merge/apply patches, optimistic concurrency, CRD admission (pruning,
//! defaulting, OpenAPI schema and CEL), `fieldValidation` (`fieldvalidation.rs`) and fault hooks
//! (counted ones here; switched ones — watches closed, 410 on resume, refused writes — in
//! `faults.rs`).
//! Where Kubernetes releases differ in what users see, it follows the release in
//! [`EmulatorOptions::kubernetes_version`] (default 1.34).
//!
//! It also serves what the real `kubectl` needs (see `tests/kubectl.rs`): server-side printing
//! (`meta.k8s.io/v1` `Table` from a CRD's `additionalPrinterColumns`, `table.rs` and
//! `jsonpath.rs`), core/v1 `events` as a read-only view of the events.k8s.io/v1 store
//! (`events.rs`, for `kubectl describe` and `kubectl get events`) and a small OpenAPI v3
//! (`openapi.rs`, for `kubectl explain` and `kubectl apply`'s validation check).
//!
//! ```no_run
//! # async fn demo() {
//! use inference_testenv::kube::{EmulatorOptions, KubeEmulator};
//! let emu = KubeEmulator::start(EmulatorOptions::default()).await;
//! emu.register_crd_yaml(include_str!("../../tests/fixtures/widget-crd.yaml"));
//! // let config = kube::Config::new(emu.url().parse().unwrap());
//! // let client = kube::Client::try_from(config).unwrap();
//! # }
//! ```

mod discovery;
mod errors;
mod events;
mod faults;
mod fields;
mod fieldvalidation;
mod http;
mod jsonpath;
mod openapi;
mod patch;
mod protobuf;
mod schema;
mod selector;
mod store;
mod table;

pub use faults::{FaultCounts, Writes};
pub use http::RequestRecord;

use http::{FaultRule, Shared};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::State;
use tokio::sync::watch;

/// The Kubernetes release the emulator claims in `/version` and follows where releases differ
/// in what users see (today: how a failed CEL rule shows its value, see `schema.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KubeVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        KubeVersion {
            major,
            minor,
            patch,
        }
    }

    /// The default: 1.34, the newest release of the 1.30–1.34 line whose messages most
    /// clusters show today.
    pub const DEFAULT: KubeVersion = KubeVersion::new(1, 34, 0);

    /// `v1.34.0`
    pub fn git_version(&self) -> String {
        format!("v{}.{}.{}", self.major, self.minor, self.patch)
    }

    /// Whether this release is `major.minor` or newer.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl Default for KubeVersion {
    fn default() -> Self {
        KubeVersion::DEFAULT
    }
}

/// Start-up options.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// CRDs (apiextensions.k8s.io/v1 `CustomResourceDefinition` as JSON) registered at start.
    pub crds: Vec<Value>,
    /// Namespaces created at start, in addition to `default` (and `kube-system`).
    pub namespaces: Vec<String>,
    /// How often an idle watch with `allowWatchBookmarks=true` gets a BOOKMARK. `None`: never.
    /// The real apiserver sends one about every minute.
    pub bookmark_interval: Option<Duration>,
    /// How many change events are kept for watches. A watch (or continue token) from a
    /// resourceVersion older than the retained window gets 410 Expired. `None`: unbounded.
    pub watch_history: Option<usize>,
    /// The Kubernetes release to emulate (see [`KubeVersion`]); default 1.34.
    pub kubernetes_version: KubeVersion,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            crds: vec![],
            namespaces: vec![],
            bookmark_interval: Some(Duration::from_secs(60)),
            watch_history: None,
            kubernetes_version: KubeVersion::DEFAULT,
        }
    }
}

/// A running emulator. Dropping it stops the listener and ends all watches.
pub struct KubeEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for KubeEmulator {
    fn drop(&mut self) {
        self.close_all_watches();
        self.server.abort();
    }
}

/// Parse one or more YAML documents (or JSON) into values, skipping empty documents.
fn parse_yaml_docs(text: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return vec![v];
    }
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("invalid YAML: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

impl KubeEmulator {
    /// Bind 127.0.0.1 on a free port and serve.
    pub async fn start(opts: EmulatorOptions) -> KubeEmulator {
        let (rv_tx, _) = watch::channel(0u64);
        let (kill_tx, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(opts.watch_history, opts.kubernetes_version)),
            rv_tx,
            kill_tx,
            faults: Mutex::new(vec![]),
            log: Mutex::new(vec![]),
            latency: Mutex::new(Duration::ZERO),
            bookmark_interval: Mutex::new(opts.bookmark_interval),
            host: Mutex::new(String::new()),
            switches: Default::default(),
            watch_holds: Mutex::new(Default::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        *shared.host.lock().expect("host") = addr.to_string();
        let sh = shared.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let sh = sh.clone();
            async move { http::handle(sh, req).await }
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let emu = KubeEmulator {
            shared,
            addr,
            server,
        };
        emu.create_namespace("default");
        emu.create_namespace("kube-system");
        for ns in &opts.namespaces {
            emu.create_namespace(ns);
        }
        for crd in opts.crds {
            emu.register_crd(crd);
        }
        emu
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = {
            let mut st = self.shared.state.lock().expect("state");
            f(&mut st)
        };
        self.shared.notify();
        r
    }

    /// Register (create or update) a CRD given as JSON. Panics if it is malformed.
    pub fn register_crd(&self, crd: Value) {
        if let Err(e) = self.try_register_crd(crd) {
            panic!("register_crd failed: {e}");
        }
    }

    /// Register a CRD, returning the apiserver-style error message on failure.
    pub fn try_register_crd(&self, crd: Value) -> Result<(), String> {
        if crd.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            return Err("not a CustomResourceDefinition".into());
        }
        let mut bad = Vec::new();
        for v in crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(s) = v.pointer("/schema/openAPIV3Schema") {
                schema::check_rules(s, "openAPIV3Schema", &mut bad);
            }
        }
        if !bad.is_empty() {
            return Err(format!("CEL rules do not compile: {}", bad.join("; ")));
        }
        self.with_state(|st| st.upsert_crd(crd))
            .map_err(|e| e.body["message"].as_str().unwrap_or("error").to_string())
    }

    /// Register every CustomResourceDefinition found in a (multi-document) YAML string.
    pub fn register_crd_yaml(&self, yaml: &str) {
        for doc in parse_yaml_docs(yaml) {
            if doc.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
                self.register_crd(doc);
            }
        }
    }

    /// Register the CRDs in a YAML file.
    pub fn register_crd_file(&self, path: impl AsRef<Path>) {
        let text = std::fs::read_to_string(path.as_ref())
            .unwrap_or_else(|e| panic!("read {}: {e}", path.as_ref().display()));
        self.register_crd_yaml(&text);
    }

    /// Create a namespace if it does not exist.
    pub fn create_namespace(&self, name: &str) {
        self.with_state(|st| {
            let rd = st.find_def("", "v1", "namespaces").expect("namespaces");
            if st.get(&rd, "", name).is_none() {
                let opts = store::WriteOpts::internal();
                st.create(&rd, "", json!({"metadata": {"name": name}}), &opts)
                    .unwrap_or_else(|e| panic!("create namespace {name}: {:?}", e.body));
            }
        });
    }

    /// Test-only: store `object` (a resource `plural` such as `inferenceendpoints`, in
    /// `namespace`, `""` for cluster-scoped) exactly as given, skipping admission: no OpenAPI
    /// schema validation, no CEL, no pruning or defaulting. It stands for an object an older,
    /// looser CRD version accepted, which the apiserver keeps serving as stored (it validates
    /// on writes only). A real server prunes unknown fields on read; this hook does not, so pass
    /// fields the schema knows (with values it would refuse today, e.g. an int32 overflow). uid,
    /// resourceVersion, `generation: 1` and creationTimestamp are assigned as on create, and
    /// watchers see an ADDED event. Returns the stored object. Panics on an unknown resource,
    /// a missing name or namespace, or a name that is taken.
    pub fn insert_unvalidated(&self, plural: &str, namespace: &str, object: Value) -> Value {
        self.with_state(|st| {
            let rd = st
                .find_def_by_plural(plural)
                .unwrap_or_else(|| panic!("insert_unvalidated: unknown resource {plural}"));
            st.insert_unvalidated(&rd, namespace, object)
                .unwrap_or_else(|e| panic!("insert_unvalidated {plural}: {:?}", e.body))
        })
    }

    /// A kubeconfig for this emulator: insecure http, namespace `default`.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: {}\ncontexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: emulator\n    namespace: default\ncurrent-context: emulator\nusers:\n- name: emulator\n  user: {{}}\npreferences: {{}}\n",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// [`Self::write_kubeconfig`] whose user sends bearer `token` (the emulator authenticates
    /// nobody; the token only tells this client apart: [`Self::aim_write_faults_at`]).
    pub fn write_kubeconfig_with_token(
        &self,
        path: impl AsRef<Path>,
        token: &str,
    ) -> std::io::Result<()> {
        let yaml = self
            .kubeconfig_yaml()
            .replace("  user: {}\n", &format!("  user:\n    token: {token}\n"));
        std::fs::write(path, yaml)
    }

    // ----------------------------------------------------------------- faults

    /// End every open watch stream now (clients see EOF and re-watch from their last RV).
    pub fn close_all_watches(&self) {
        self.shared.kill_tx.send_modify(|e| *e += 1);
    }

    /// Fail the next `n` requests (any) with `status` (500 → InternalError Status JSON, 429 →
    /// the plain-text priority-and-fairness body with `Retry-After: 1`, others → a Status).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.fail_next_matching(n, status, None, None);
    }

    /// Fail the next `n` requests whose method equals `method` (if given) and whose
    /// `path?query` contains `path_contains` (if given), e.g. `Some("watch=true")`.
    pub fn fail_next_matching(
        &self,
        n: usize,
        status: u16,
        method: Option<&str>,
        path_contains: Option<&str>,
    ) {
        self.shared.faults.lock().expect("faults").push(FaultRule {
            remaining: n,
            status,
            method: method.map(String::from),
            path_contains: path_contains.map(String::from),
        });
    }

    /// Forget all pending injected failures.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().expect("faults").clear();
    }

    /// Delay every request by `d` before it is handled.
    pub fn set_latency(&self, d: Duration) {
        *self.shared.latency.lock().expect("latency") = d;
    }

    /// Hold back the watch events of resource `plural` written after resourceVersion `rv`
    /// (`None`: deliver them now). A watcher's cache is eventually consistent: the watch is
    /// served from the API server's watch cache, which trails storage, and events reach each
    /// client asynchronously after the write's response
    /// ([API concepts, efficient detection of changes](https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes));
    /// a hold makes that lag as long as a test needs it (how long it is in a real cluster is
    /// not specified: inferred). Only running watch streams lag; a new list or initial-events
    /// watch sees the current state.
    pub fn hold_watch_events_after(&self, plural: &str, rv: Option<u64>) {
        let mut holds = self.shared.watch_holds.lock().expect("holds");
        match rv {
            Some(rv) => holds.insert(plural.to_owned(), rv),
            None => holds.remove(plural),
        };
        drop(holds);
        // Wake the watches so they deliver what was held.
        self.shared.notify();
    }

    /// Change the idle bookmark interval for watches started from now on.
    pub fn set_bookmark_interval(&self, d: Option<Duration>) {
        *self.shared.bookmark_interval.lock().expect("bookmark") = d;
    }

    /// Keep only the last `n` change events (`None`: unbounded). Older watch RVs get 410.
    pub fn set_watch_history(&self, n: Option<usize>) {
        self.with_state(|st| {
            st.max_history = n;
            if let Some(max) = n {
                while st.history.len() > max {
                    if let Some(e) = st.history.pop_front() {
                        st.history_start = e.rv;
                    }
                }
            }
        });
    }

    /// Drop all watch history: any watch from an RV below the current one gets the 410
    /// ERROR event (running watches that fall behind too).
    pub fn compact(&self) {
        self.with_state(|st| st.compact());
    }

    // ----------------------------------------------------------- introspection

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.state.lock().expect("state").rv
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.lock().expect("log").clone()
    }

    pub fn clear_requests(&self) {
        self.shared.log.lock().expect("log").clear();
    }

    /// Number of write requests (POST, PUT, PATCH, DELETE) received for a resource plural
    /// (e.g. `inferenceendpoints`) and subresource (`None` for the main resource,
    /// `Some("status")`), whatever their outcome.
    pub fn write_count(&self, resource: &str, subresource: Option<&str>) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                r.method != "GET"
                    && r.resource.as_deref() == Some(resource)
                    && r.subresource.as_deref() == subresource
            })
            .count()
    }

    /// Write requests per `plural` or `plural/subresource`.
    pub fn write_counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in self.requests().iter().filter(|r| r.method != "GET") {
            if let Some(res) = &r.resource {
                let k = match &r.subresource {
                    Some(s) => format!("{res}/{s}"),
                    None => res.clone(),
                };
                *m.entry(k).or_insert(0) += 1;
            }
        }
        m
    }

    /// The stored object (as the server would return it) for a resource plural, namespace
    /// (`""` for cluster-scoped) and name.
    pub fn get_object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let st = self.shared.state.lock().expect("state");
        let rd = st.find_def_by_plural(resource)?;
        st.get(&rd, namespace, name).map(|o| State::present(&rd, o))
    }

    /// All stored objects of a resource plural, in (namespace, name) order.
    pub fn list_objects(&self, resource: &str) -> Vec<Value> {
        let st = self.shared.state.lock().expect("state");
        let Some(rd) = st.find_def_by_plural(resource) else {
            return vec![];
        };
        st.select(&rd, None, &Default::default(), &Default::default())
            .iter()
            .map(|o| State::present(&rd, o))
            .collect()
    }

    /// How many stored objects of a resource plural satisfy `f`, counted under the lock without
    /// copying them (a benchmark polling 10,000 objects with [`Self::list_objects`] copied each
    /// one twice per poll while the emulator waited).
    pub fn count_objects(&self, resource: &str, f: impl Fn(&Value) -> bool) -> usize {
        let st = self.shared.state.lock().expect("state");
        let Some(rd) = st.find_def_by_plural(resource) else {
            return 0;
        };
        st.objects
            .get(&rd.key())
            .map_or(0, |objects| objects.values().filter(|o| f(o)).count())
    }
}
