//! An Elasticsearch test double for the inference-endpoint API with the `azureopenai` service
//! and the other services of its table (`services.rs`; the in-cluster `elasticsearch` service in
//! `ml.rs`), whose validation calls go to one fake-provider surface ([`FakeProviders`]).
//!
//! It emulates what docs/reference/elasticsearch-inference-api.md describes (each item below cites
//! its section): routes, validation order and exact messages, error envelopes, defaults filled
//! and secrets stripped in responses, version differences, and the Azure validation call
//! against a switchable fake Azure ([`FakeAzure`], an Azure-worded view of [`FakeProviders`]).
//! On top of that it offers test controls: request recording, out-of-band changes (drift),
//! pipeline/index references, fault injection (latency, statuses, resets, hangs, holds that
//! outlive their client, outages), per-connection client tags, ES security
//! (basic / API key / bearer), license level, and optional TLS.
//!
//! ```no_run
//! # async fn demo() {
//! use inference_testenv::es::{EsDouble, EsOptions};
//! let es = EsDouble::start(EsOptions { version: "9.1.0".into(), ..Default::default() }).await;
//! es.azure().accept_credential("good-key");
//! let url = es.url(); // http://127.0.0.1:PORT
//! # }
//! ```
//!
//! Behaviour marked (inferred) in comments is not stated by a real source (docs/reference/ lacks it, or marks it
//! inferred).

mod api;
mod azure;
mod errors;
mod extract;
mod generic;
mod inference;
mod json;
mod ml;
mod model;
mod provider;
mod providers;
mod server;
mod services;
mod tls;
mod version;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::watch;

pub use azure::{AzureCall, AzureCredential, AzureOutcome, FakeAzure};
pub use provider::{CallKeys, ProviderControl, Scope};
pub use providers::{
    aws_credential, custom_credential, FakeProviders, FakeService, ProviderCall, ProviderOutcome,
    ES_PROVIDER_ATTEMPTS,
};
pub use services::{Rotation, SecretKeys, ServiceSpec, TaskSpec};
pub use version::EsVersion;

use api::{FaultRule, Shared, State};
use model::{Stored, TaskType};

/// Start-up options.
#[derive(Clone, Debug)]
pub struct EsOptions {
    /// Emulated version, e.g. `"8.15.0"`, `"9.4.0"`. Switchable later with [`EsDouble::set_version`].
    pub version: String,
    /// Serve HTTPS with a generated CA ([`EsDouble::ca_pem`]).
    pub tls: bool,
    /// Security realm; [`EsAuth::none`] (default) disables authentication.
    pub auth: EsAuth,
    /// License type: `"trial"` (default), `"enterprise"`, `"basic"`, ... Only enterprise/trial
    /// may PUT (docs/reference/elasticsearch-inference-api.md#license).
    pub license: String,
    /// List preconfigured dotted endpoints (`.elser-2-elasticsearch`, ...) on 8.16+ (default true).
    pub preconfigured_endpoints: bool,
}

impl Default for EsOptions {
    fn default() -> Self {
        EsOptions {
            version: "9.4.0".into(),
            tls: false,
            auth: EsAuth::none(),
            license: "trial".into(),
            preconfigured_endpoints: true,
        }
    }
}

/// Accepted credentials. Authentication is on when any list is non-empty.
#[derive(Clone, Debug, Default)]
pub struct EsAuth {
    /// `(user, password)` pairs for `Authorization: Basic`.
    pub basic: Vec<(String, String)>,
    /// Encoded API keys as sent in `Authorization: ApiKey <encoded>` (see [`EsAuth::encode_api_key`]).
    pub api_keys: Vec<String>,
    /// Tokens for `Authorization: Bearer <token>`.
    pub bearer_tokens: Vec<String>,
}

impl EsAuth {
    pub fn none() -> Self {
        EsAuth::default()
    }

    pub fn basic(user: &str, password: &str) -> Self {
        EsAuth {
            basic: vec![(user.into(), password.into())],
            ..Default::default()
        }
    }

    pub fn api_key(encoded: &str) -> Self {
        EsAuth {
            api_keys: vec![encoded.into()],
            ..Default::default()
        }
    }

    /// `base64(id:key)`, the form ES hands out as `encoded`.
    pub fn encode_api_key(id: &str, key: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{key}"))
    }

    fn enabled(&self) -> bool {
        !(self.basic.is_empty() && self.api_keys.is_empty() && self.bearer_tokens.is_empty())
    }
}

/// The kind of `Authorization` header a request carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthKind {
    None,
    Basic { user: String },
    ApiKey,
    Bearer,
    Other(String),
}

/// Route classes, for recording, latency and faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// Matches every request (faults/latency only).
    Any,
    /// `GET /`.
    Root,
    /// `GET /_inference...`.
    Get,
    /// `PUT /_inference/...` (create).
    Put,
    /// `DELETE /_inference/...`.
    Delete,
    /// `PUT /_inference/.../_update`.
    Update,
    /// Anything else.
    Other,
}

/// A network-level fault, applied after latency and before authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and an ES-style error body (429 → `es_rejected_execution_exception`,
    /// 503 → `cluster_block_exception`, other → `exception`).
    Status(u16),
    /// Close the connection with a TCP RST without answering.
    Reset,
    /// Never answer (until [`EsDouble::release_hung`] or [`EsDouble::clear_faults`]; then the
    /// request is processed normally).
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Raw query string without `?`.
    pub query: Option<String>,
    /// Parsed JSON body (None when absent or not JSON).
    pub body: Option<Value>,
    pub raw_body: String,
    pub auth: AuthKind,
    pub route: Route,
    /// When the request arrived (its body read).
    pub at: std::time::Instant,
    /// What the connection tagger named the client ([`EsDouble::set_connection_tagger`]).
    pub tag: Option<String>,
    /// Status answered; `None` while in flight, held or hung, or when the connection was reset.
    pub status: Option<u16>,
    /// Order of arrival, for [`RecordedRequest::status`] to find its record.
    pub seq: u64,
}

impl RecordedRequest {
    /// Decoded value of a query parameter.
    pub fn query_param(&self, key: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// A `DELETE ...?dry_run=true`: a read of the endpoint's users that deletes nothing
    /// (docs/reference/elasticsearch-inference-api.md#delete-api).
    pub fn is_dry_run(&self) -> bool {
        self.method == "DELETE" && self.query_param("dry_run").as_deref() == Some("true")
    }
}

/// Names the client of a connection from its peer address (e.g. which process holds the
/// socket); the name is recorded with every request on that connection.
pub type ConnectionTagger = Arc<dyn Fn(SocketAddr) -> Option<String> + Send + Sync>;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Handle to a running double. Clones share the same server; the server stops when the last
/// handle is dropped (or with the tokio runtime).
#[derive(Clone)]
pub struct EsDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: bool,
    ca_pem: Option<String>,
    release: Arc<watch::Sender<u64>>,
    _server: Arc<AbortOnDrop>,
}

impl EsDouble {
    /// Binds `127.0.0.1:0` and serves in a tokio task.
    pub async fn start(opts: EsOptions) -> EsDouble {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                version: EsVersion::parse(&opts.version),
                license: opts.license.clone(),
                endpoints: BTreeMap::new(),
                preconfigured: api::preconfigured(),
                show_preconfigured: opts.preconfigured_endpoints,
                pipelines: BTreeMap::new(),
                indexes: BTreeMap::new(),
                empty_indexes: Default::default(),
                requests: Vec::new(),
                auth: opts.auth.clone(),
                faults: Vec::new(),
                latency: Duration::ZERO,
                route_latency: HashMap::new(),
                update_chunking_bug: None,
                skip_validation: false,
                cluster_uuid: format!("esdouble{:016x}", nanos as u64),
                registered: Vec::new(),
                deployments: BTreeMap::new(),
                model_deploy_time: Duration::ZERO,
                holds: Vec::new(),
                held: 0,
                tagger: None,
                next_seq: 0,
            }),
            providers: FakeProviders::default(),
        });
        let (tx, rx) = watch::channel(0u64);
        let (acceptor, ca_pem) = if opts.tls {
            let m = tls::generate();
            (
                Some(tokio_rustls::TlsAcceptor::from(m.config)),
                Some(m.ca_pem),
            )
        } else {
            (None, None)
        };
        let task = tokio::spawn(server::serve(listener, shared.clone(), acceptor, rx));
        EsDouble {
            shared,
            addr,
            tls: opts.tls,
            ca_pem,
            release: Arc::new(tx),
            _server: Arc::new(AbortOnDrop(task)),
        }
    }

    /// `http://127.0.0.1:PORT` (or `https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// URL with `localhost` as host (matches the certificate's DNS SAN).
    pub fn url_localhost(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://localhost:{}", self.addr.port())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the CA that signed the server certificate (TLS only).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock()
    }

    pub fn version(&self) -> EsVersion {
        self.lock().version
    }

    /// Switch the emulated version (e.g. to simulate an upgrade). Stored endpoints stay.
    pub fn set_version(&self, v: &str) {
        self.lock().version = EsVersion::parse(v);
    }

    /// License type (`"basic"` makes PUT answer 403, the status inferred:
    /// docs/reference/elasticsearch-inference-api.md#license).
    /// The cluster was replaced behind the same address: a new `cluster_uuid`, and no
    /// endpoints, pipelines or index references (a rebuilt cluster starts empty).
    pub fn replace_cluster(&self) {
        let mut st = self.shared.lock();
        st.cluster_uuid = format!("{}-rebuilt", st.cluster_uuid);
        st.endpoints.clear();
        st.pipelines.clear();
        st.indexes.clear();
        st.deployments.clear();
    }

    /// `cluster_uuid` reported by `GET /`.
    pub fn cluster_uuid(&self) -> String {
        self.shared.lock().cluster_uuid.clone()
    }

    pub fn set_license(&self, license: &str) {
        self.lock().license = license.into();
    }

    pub fn set_auth(&self, auth: EsAuth) {
        self.lock().auth = auth;
    }

    /// Show/hide preconfigured dotted endpoints.
    pub fn set_preconfigured_endpoints(&self, on: bool) {
        self.lock().show_preconfigured = on;
    }

    /// Cluster setting `xpack.inference.skip_validate_and_start`
    /// (docs/reference/elasticsearch-inference-api.md#validation-call): no Azure call on
    /// PUT/update.
    pub fn set_skip_validation(&self, on: bool) {
        self.lock().skip_validation = on;
    }

    /// Force issue #139574 (`_update` rewrites chunking to word/250/100) on or off. By default the
    /// double shows it exactly on the versions that have it ([`EsVersion::update_resets_chunking`]).
    pub fn set_update_chunking_bug(&self, on: bool) {
        self.lock().update_chunking_bug = Some(on);
    }

    /// The fake Azure OpenAI behind this double: the `azureopenai` service of
    /// [`EsDouble::providers`], in Azure's words.
    pub fn azure(&self) -> FakeAzure {
        FakeAzure::new(&self.shared.providers)
    }

    /// The fake providers of every service, `azureopenai` included (see [`FakeProviders`]).
    pub fn providers(&self) -> FakeProviders {
        self.shared.providers.clone()
    }

    /// Teach the double a service the operator's table may not know (see [`ServiceSpec::open`]).
    /// Replaces a registered service of the same name and wins over the built-in table (even for
    /// `elasticsearch`).
    pub fn register_service(&self, spec: ServiceSpec) {
        let mut st = self.lock();
        st.registered.retain(|s| s.name != spec.name);
        st.registered.push(spec);
    }

    /// How long a model deployment of an `elasticsearch` endpoint takes to start (default zero).
    /// Applies to deployments started from now on.
    pub fn set_model_deploy_time(&self, d: Duration) {
        self.lock().model_deploy_time = d;
    }

    /// `deployment_stats` of the endpoint's deployment as `GET _ml/trained_models/<id>/_stats`
    /// shows it (`state`: `starting` / `started`), or None if it has none.
    pub fn deployment_stats(&self, inference_id: &str) -> Option<Value> {
        self.lock()
            .deployments
            .get(inference_id)
            .map(|d| d.stats(inference_id))
    }

    /// The secrets stored for an endpoint, by key: `{"api_key": ..}`, `{"access_key": ..,
    /// "secret_key": ..}`, `{"secret_parameters": {..}}` (`custom`), `{"entra_id": ..}` (Azure);
    /// empty for a service without secrets; None if the endpoint does not exist.
    pub fn stored_secrets(&self, id: &str) -> Option<Map<String, Value>> {
        self.lock().endpoints.get(id).map(|e| match &e.secret {
            Some((k, val)) => std::iter::once((k.clone(), Value::String(val.clone()))).collect(),
            None => e.secrets.clone(),
        })
    }

    // -- recording ---------------------------------------------------------------------------

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// How many dry-run DELETEs (reads of the users) `inference_id` received.
    pub fn usage_reads(&self, inference_id: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.is_dry_run() && r.path.rsplit('/').next() == Some(inference_id))
            .count()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    // -- stored state ------------------------------------------------------------------------

    /// The endpoint as a single GET entry would show it for the current version
    /// (preconfigured endpoints included when visible).
    pub fn endpoint(&self, id: &str) -> Option<Value> {
        let st = self.lock();
        let v = st.version;
        st.lookup(id).map(|e| e.render(v).to_value())
    }

    /// Ids of user-created endpoints (no preconfigured ones), sorted.
    pub fn endpoint_ids(&self) -> Vec<String> {
        self.lock().endpoints.keys().cloned().collect()
    }

    /// `(field, value)` of the stored Azure secret: `api_key`, `entra_id` or `client_secret`
    /// (other services: [`EsDouble::stored_secrets`]).
    pub fn stored_secret(&self, id: &str) -> Option<(String, String)> {
        self.lock().endpoints.get(id).and_then(|e| e.secret.clone())
    }

    /// Delete without any checks (someone else deleted it; its deployment stops too). Returns
    /// whether it existed.
    pub fn delete_out_of_band(&self, id: &str) -> bool {
        let mut st = self.lock();
        st.deployments.remove(id);
        st.endpoints.remove(id).is_some() || st.preconfigured.remove(id).is_some()
    }

    /// Store an endpoint without validation or Azure call (someone else created it). `config`
    /// uses the filtered response shape; secrets (`api_key`/`entra_id`/`client_secret`) may be
    /// inside `service_settings` and are moved to the secret store. Replaces an existing id.
    pub fn put_out_of_band(&self, config: Value) {
        let mut cfg = config.as_object().cloned().unwrap_or_default();
        let s = |c: &Map<String, Value>, k: &str| {
            c.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let id = s(&cfg, "inference_id");
        let v = self.version();
        let tt = TaskType::parse(&s(&cfg, "task_type"), v).expect("valid task_type");
        let service = cfg
            .get("service")
            .and_then(Value::as_str)
            .unwrap_or(model::AZURE)
            .to_string();
        let obj = |c: &mut Map<String, Value>, k: &str| match c.remove(k) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let mut ss = obj(&mut cfg, "service_settings");
        let mut secret = None;
        let mut secrets = Map::new();
        if service == model::AZURE {
            for k in ["api_key", "entra_id", "client_secret"] {
                if let Some(Value::String(val)) = ss.remove(k) {
                    secret = Some((k.to_string(), val));
                }
            }
        } else if let Some(spec) = generic::spec_of(&self.lock(), v, &service) {
            for k in spec.secrets.names() {
                if let Some(val) = ss.remove(&k) {
                    secrets.insert(k, val);
                }
            }
        }
        let oauth2 = ss.contains_key("client_id");
        let stored = Stored {
            id: id.clone(),
            task_type: tt,
            service,
            service_settings: ss,
            task_settings: obj(&mut cfg, "task_settings"),
            chunking: cfg.remove("chunking_settings").filter(|c| c.is_object()),
            secret,
            secrets,
            dims_set_by_user: false,
            oauth2,
        };
        self.lock().endpoints.insert(id, stored);
    }

    /// Change a stored endpoint in place (drift). `f` gets the filtered config
    /// (`inference_id`, `task_type`, `service`, `service_settings`, `task_settings`,
    /// `chunking_settings`); changes to the last four are written back. Returns false if absent.
    pub fn modify_out_of_band(&self, id: &str, f: impl FnOnce(&mut Value)) -> bool {
        let mut st = self.lock();
        let v = st.version;
        let Some(e) = st.endpoints.get_mut(id) else {
            return false;
        };
        let mut val = serde_json::json!({
            "inference_id": e.id,
            "task_type": e.task_type.as_str(),
            "service": e.service,
            "service_settings": e.service_settings,
            "task_settings": e.task_settings,
        });
        if let Some(c) = &e.chunking {
            val["chunking_settings"] = c.clone();
        }
        f(&mut val);
        if let Some(tt) = val
            .get("task_type")
            .and_then(Value::as_str)
            .and_then(|t| TaskType::parse(t, v).ok())
        {
            e.task_type = tt;
        }
        if let Some(s) = val.get("service").and_then(Value::as_str) {
            e.service = s.to_string();
        }
        if let Some(Value::Object(m)) = val.get("service_settings") {
            e.service_settings = m.clone();
        }
        e.task_settings = match val.get("task_settings") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        e.chunking = val
            .get("chunking_settings")
            .filter(|c| c.is_object())
            .cloned();
        true
    }

    /// Replace the stored secret (e.g. someone rotated it directly in ES).
    pub fn set_secret_out_of_band(&self, id: &str, field: &str, value: &str) -> bool {
        match self.lock().endpoints.get_mut(id) {
            Some(e) => {
                e.secret = Some((field.into(), value.into()));
                true
            }
            None => false,
        }
    }

    /// An ingest pipeline uses this endpoint (DELETE refuses with 409 unless `force`:
    /// docs/reference/elasticsearch-inference-api.md#delete-api).
    pub fn add_pipeline_reference(&self, inference_id: &str, pipeline: &str) {
        self.lock()
            .pipelines
            .entry(inference_id.into())
            .or_default()
            .insert(pipeline.into());
    }

    pub fn remove_pipeline_reference(&self, inference_id: &str, pipeline: &str) {
        if let Some(s) = self.lock().pipelines.get_mut(inference_id) {
            s.remove(pipeline);
        }
    }

    /// A `semantic_text` mapping of this index uses the endpoint (checked from 8.16:
    /// docs/reference/elasticsearch-inference-api.md#delete-api).
    pub fn add_index_reference(&self, inference_id: &str, index: &str) {
        self.lock()
            .indexes
            .entry(inference_id.into())
            .or_default()
            .insert(index.into());
    }

    /// Whether `index` holds no documents. An empty index's `semantic_text` reference does not
    /// stop a create (PR #137055 counts documents); DELETE still reports it.
    pub fn set_index_empty(&self, index: &str, empty: bool) {
        let mut st = self.lock();
        if empty {
            st.empty_indexes.insert(index.into());
        } else {
            st.empty_indexes.remove(index);
        }
    }

    pub fn remove_index_reference(&self, inference_id: &str, index: &str) {
        if let Some(s) = self.lock().indexes.get_mut(inference_id) {
            s.remove(index);
        }
    }

    // -- faults ------------------------------------------------------------------------------

    /// Latency added to every request.
    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// Latency added to one route class (on top of [`EsDouble::set_latency`]).
    pub fn set_route_latency(&self, route: Route, d: Duration) {
        self.lock().route_latency.insert(route, d);
    }

    /// Inject a fault for the next `times` matching requests (`None` = until cleared).
    /// Rules are checked in insertion order; the first matching one applies.
    pub fn inject_fault(&self, route: Route, fault: Fault, times: Option<usize>) {
        if times == Some(0) {
            return;
        }
        self.lock().faults.push(FaultRule {
            route,
            fault,
            remaining: times,
        });
    }

    /// The next `n` requests (any route) answer `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.inject_fault(Route::Any, Fault::Status(status), Some(n));
    }

    /// The next `n` requests get their connection reset.
    pub fn reset_next(&self, n: usize) {
        self.inject_fault(Route::Any, Fault::Reset, Some(n));
    }

    /// The next `n` requests hang.
    pub fn hang_next(&self, n: usize) {
        self.inject_fault(Route::Any, Fault::Hang, Some(n));
    }

    /// Let hung requests proceed.
    pub fn release_hung(&self) {
        self.release.send_modify(|g| *g += 1);
    }

    /// Hold the next `n` requests of `route` inside Elasticsearch: accepted (recorded), then
    /// kept until [`EsDouble::release_hung`] or [`EsDouble::clear_faults`], and then carried out
    /// even if the client has gone meanwhile, as Elasticsearch finishes a request whose client
    /// disconnected: a PUT's REST handler runs the action on the plain node client, not the
    /// channel-bound `RestCancellableNodeClient` (elastic/elasticsearch
    /// x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/rest/RestPutInferenceModelAction.java);
    /// for a DELETE inferred (docs/reference/elasticsearch-inference-api.md#timeout). Unlike
    /// [`Fault::Hang`], which a closed connection cancels, this lets a test kill the client in
    /// the middle of a PUT or DELETE that still takes effect.
    pub fn hold_next(&self, route: Route, n: usize) {
        if n > 0 {
            self.lock().holds.push((route, n));
        }
    }

    /// How many requests are held right now ([`EsDouble::hold_next`]).
    pub fn held(&self) -> usize {
        self.lock().held
    }

    /// Name the client of every new connection by its peer address; the name is recorded as
    /// [`RecordedRequest::tag`]. A test uses it to tell apart several processes that send the
    /// same credentials (replicas of an operator).
    pub fn set_connection_tagger(&self, tagger: ConnectionTagger) {
        self.lock().tagger = Some(tagger);
    }

    /// Elasticsearch cannot be reached: every request from now on has its connection reset
    /// (recorded first, so a test counts what was sent), until [`EsDouble::clear_faults`].
    pub fn start_outage(&self) {
        self.inject_fault(Route::Any, Fault::Reset, None);
    }

    /// Remove all fault rules and latencies, and release hung requests.
    pub fn clear_faults(&self) {
        {
            let mut st = self.lock();
            st.holds.clear();
            st.faults.clear();
            st.latency = Duration::ZERO;
            st.route_latency.clear();
        }
        self.release_hung();
    }
}
