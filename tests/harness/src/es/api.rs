//! The ES REST actions: routing, create, get, delete and update, as described in the sections
//! "Routing" to "Update API" of docs/reference/elasticsearch-inference-api.md.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::azure;
use super::errors::EsError;
use super::json::{java_list, java_map, J};
use super::model::{old_default_chunking, Stored, TaskType, AZURE};
use super::version::EsVersion;
use super::{EsAuth, Fault, RecordedRequest, Route};

pub(crate) struct FaultRule {
    pub(crate) route: Route,
    pub(crate) fault: Fault,
    pub(crate) remaining: Option<usize>,
}

pub(crate) struct State {
    pub(crate) version: EsVersion,
    pub(crate) license: String,
    pub(crate) endpoints: BTreeMap<String, Stored>,
    pub(crate) preconfigured: BTreeMap<String, Stored>,
    pub(crate) show_preconfigured: bool,
    pub(crate) pipelines: BTreeMap<String, BTreeSet<String>>,
    pub(crate) indexes: BTreeMap<String, BTreeSet<String>>,
    /// Indexes holding no documents (their `semantic_text` references do not block a create).
    pub(crate) empty_indexes: BTreeSet<String>,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) auth: EsAuth,
    pub(crate) faults: Vec<FaultRule>,
    pub(crate) latency: Duration,
    pub(crate) route_latency: HashMap<Route, Duration>,
    /// `None`: issue #139574 as the emulated version has it; `Some` forces it on or off.
    pub(crate) update_chunking_bug: Option<bool>,
    pub(crate) skip_validation: bool,
    /// `cluster_uuid` of `GET /`; changes when the cluster is replaced.
    pub(crate) cluster_uuid: String,
    /// Services registered by tests ([`super::EsDouble::register_service`]); they win over the
    /// built-in table.
    pub(crate) registered: Vec<super::ServiceSpec>,
    /// Model deployments of `elasticsearch` endpoints, by deployment id (= inference id).
    pub(crate) deployments: BTreeMap<String, super::ml::Deployment>,
    /// How long a new deployment takes to start.
    pub(crate) model_deploy_time: Duration,
    /// Requests still to hold inside Elasticsearch, by route ([`super::EsDouble::hold_next`]).
    pub(crate) holds: Vec<(Route, usize)>,
    /// Requests held right now.
    pub(crate) held: usize,
    /// Names the client of a new connection ([`super::EsDouble::set_connection_tagger`]).
    pub(crate) tagger: Option<super::ConnectionTagger>,
    /// Sequence number of the next recorded request.
    pub(crate) next_seq: u64,
}

impl State {
    /// Preconfigured endpoints are visible from 8.16 when enabled.
    fn visible_preconfigured(&self) -> bool {
        self.show_preconfigured && self.version.preconfigured()
    }

    pub(crate) fn lookup(&self, id: &str) -> Option<&Stored> {
        self.endpoints.get(id).or_else(|| {
            self.visible_preconfigured()
                .then(|| self.preconfigured.get(id))
                .flatten()
        })
    }

    /// What `GET _inference/_all` (and `GET _inference/{task_type}/_all`) lists: the stored
    /// endpoints, at most [`LISTING_LIMIT`] of them in id order, then the preconfigured ones,
    /// sorted by id. Elasticsearch's `TransportGetInferenceModelAction` serves `_all`/`*` from
    /// `ModelRegistry.getAllModels` (one search, `setSize(10_000)`, sorted by id, then
    /// `addAllDefaultConfigsIfMissing`) or `getModelsByTaskType`, and sorts the answer by id
    /// (x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/action/TransportGetInferenceModelAction.java,
    /// .../registry/ModelRegistry.java; routes in the REST spec,
    /// elastic/elasticsearch-specification `specification/inference/get/GetRequest.ts`;
    /// docs/reference/elasticsearch-inference-api.md#get-api). That
    /// persisted defaults count toward the 10,000 is (inferred) and not emulated.
    pub(crate) fn all(&self) -> Vec<&Stored> {
        let mut v: Vec<&Stored> = self.endpoints.values().take(LISTING_LIMIT).collect();
        if self.visible_preconfigured() {
            v.extend(self.preconfigured.values());
        }
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

/// Stored endpoints `GET _inference/_all` reads at most ([`State::all`]).
pub(crate) const LISTING_LIMIT: usize = 10_000;

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) providers: super::FakeProviders,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Preconfigured default endpoints (inferred: shapes approximated) so operators exercise filtering of
/// dotted ids (docs/reference/elasticsearch-services.md#preconfigured-endpoints).
pub(crate) fn preconfigured() -> BTreeMap<String, Stored> {
    let mk = |id: &str, tt: TaskType, model: &str| {
        Stored {
        id: id.into(),
        task_type: tt,
        service: "elasticsearch".into(),
        service_settings: json!({
            "num_threads": 1,
            "model_id": model,
            "adaptive_allocations": {"enabled": true, "min_number_of_allocations": 0, "max_number_of_allocations": 32}
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
        task_settings: Map::new(),
        chunking: Some(super::model::default_chunking()),
        secret: None,
        secrets: Map::new(),
        dims_set_by_user: false,
        oauth2: false,
    }
    };
    [
        mk(
            ".elser-2-elasticsearch",
            TaskType::SparseEmbedding,
            ".elser_model_2",
        ),
        mk(
            ".multilingual-e5-small-elasticsearch",
            TaskType::TextEmbedding,
            ".multilingual-e5-small",
        ),
    ]
    .into_iter()
    .map(|s| (s.id.clone(), s))
    .collect()
}

pub(crate) struct Req {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) uri: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Option<Vec<u8>>,
}

impl Req {
    fn param(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) body: J,
    pub(crate) headers: Vec<(String, String)>,
    /// A Server-Sent-Events body sent instead of `body` (the chat stream).
    pub(crate) stream: Option<String>,
}

impl Resp {
    pub(crate) fn ok(body: J) -> Resp {
        Resp {
            status: 200,
            body,
            headers: vec![],
            stream: None,
        }
    }
}

impl From<EsError> for Resp {
    fn from(e: EsError) -> Resp {
        Resp {
            status: e.status,
            body: e.render(),
            headers: e.headers.clone(),
            stream: None,
        }
    }
}

/// Which route a request targets (for faults/latency and recording).
pub(crate) fn classify(method: &str, segs: &[String]) -> Route {
    match segs.first().map(String::as_str) {
        None => Route::Root,
        Some("_inference") => match method {
            "GET" => Route::Get,
            "PUT" if segs.last().map(String::as_str) == Some("_update") && segs.len() > 2 => {
                Route::Update
            }
            "PUT" => Route::Put,
            "DELETE" => Route::Delete,
            _ => Route::Other,
        },
        _ => Route::Other,
    }
}

/// ES's RestController answer for an unknown path (inferred: generic ES behaviour).
fn no_handler(req: &Req) -> EsError {
    EsError::plain(
        400,
        format!(
            "no handler found for uri [{}] and method [{}]",
            req.uri, req.method
        ),
    )
}

/// ES's RestController answer for a known path with a wrong method (inferred: generic ES behaviour).
fn wrong_method(req: &Req, allowed: &[&str]) -> EsError {
    EsError::plain(
        405,
        format!(
            "Incorrect HTTP method for uri [{}] and method [{}], allowed: {}",
            req.uri,
            req.method,
            java_list(allowed)
        ),
    )
    .with_header("Allow", &allowed.join(","))
}

pub(crate) async fn dispatch(sh: &Arc<Shared>, req: &Req) -> Resp {
    let v = sh.lock().version;
    match route(sh, req, v).await {
        Ok(r) => r,
        Err(e) => e.into(),
    }
}

async fn route(sh: &Arc<Shared>, req: &Req, v: EsVersion) -> Result<Resp, EsError> {
    let segs = req.segments();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    match (m, s.as_slice()) {
        ("GET" | "HEAD", []) => Ok(Resp::ok(root_info(sh, v))),
        (_, []) => Err(wrong_method(req, &["GET", "HEAD"])),
        ("GET", ["_ml", "trained_models", model, "_stats"]) => Ok(Resp::ok(J::V(
            super::generic::model_stats(&sh.lock(), model),
        ))),
        ("GET", ["_license"]) => {
            let lic = sh.lock().license.clone();
            Ok(Resp::ok(J::V(json!({"license": {
                "status": "active", "uid": "00000000-0000-0000-0000-000000000000", "type": lic,
                "issue_date_in_millis": 0, "issued_to": "es-double", "issuer": "elasticsearch",
                "max_nodes": 1000, "start_date_in_millis": -1}}))))
        }
        ("GET", ["_inference"]) => {
            check_params(req, &[])?;
            get(sh, v, TaskType::Any, "_all")
        }
        (_, ["_inference"]) => Err(wrong_method(req, &["GET"])),
        (_, ["_inference", id]) => match m {
            "GET" => {
                check_params(req, &[])?;
                get(sh, v, TaskType::Any, id)
            }
            "PUT" => create(sh, req, v, TaskType::Any, id).await,
            "DELETE" => delete(sh, req, v, TaskType::Any, id),
            "POST" => super::inference::infer(sh, req, v, TaskType::Any, id, false).await,
            _ => Err(not_emulated(req)),
        },
        (_, ["_inference", id, "_update"]) if v.update_api() && (m == "PUT" || m == "POST") => {
            if m == "POST" {
                return Err(wrong_method(req, &["PUT"]));
            }
            update(sh, req, v, TaskType::Any, id, true).await
        }
        (_, ["_inference", tt, id]) => {
            let tt = TaskType::parse(tt, v)?;
            match m {
                "GET" => {
                    check_params(req, &[])?;
                    get(sh, v, tt, id)
                }
                "PUT" => create(sh, req, v, tt, id).await,
                "DELETE" => delete(sh, req, v, tt, id),
                "POST" => super::inference::infer(sh, req, v, tt, id, false).await,
                _ => Err(not_emulated(req)),
            }
        }
        ("POST", ["_inference", "chat_completion", id, "_stream"]) if v.knows_chat_completion() => {
            super::inference::infer(sh, req, v, TaskType::ChatCompletion, id, true).await
        }
        (_, ["_inference", tt, id, "_update"]) if v.update_api() => match m {
            "PUT" => {
                let tt = TaskType::parse(tt, v)?;
                update(sh, req, v, tt, id, false).await
            }
            _ => Err(wrong_method(req, &["PUT"])),
        },
        _ => Err(no_handler(req)),
    }
}

fn not_emulated(req: &Req) -> EsError {
    EsError::plain(
        400,
        format!(
            "es-double: [{} {}] (perform inference / streaming) is not emulated",
            req.method, req.path
        ),
    )
}

fn root_info(sh: &Shared, v: EsVersion) -> J {
    let (wire, index) = if v.major >= 9 {
        ("8.19.0", "8.0.0")
    } else {
        ("7.17.0", "7.0.0")
    };
    J::O(vec![
        ("name".into(), J::s("es-double-0")),
        ("cluster_name".into(), J::s("es-double")),
        ("cluster_uuid".into(), J::s(&sh.lock().cluster_uuid)),
        (
            "version".into(),
            J::O(vec![
                ("number".into(), J::s(v.to_string())),
                ("build_flavor".into(), J::s("default")),
                ("build_type".into(), J::s("docker")),
                (
                    "build_hash".into(),
                    J::s("0000000000000000000000000000000000000000"),
                ),
                ("build_date".into(), J::s("2026-01-01T00:00:00.000Z")),
                ("build_snapshot".into(), J::V(json!(false))),
                ("lucene_version".into(), J::s(v.lucene_version())),
                ("minimum_wire_compatibility_version".into(), J::s(wire)),
                ("minimum_index_compatibility_version".into(), J::s(index)),
            ]),
        ),
        ("tagline".into(), J::s("You Know, for Search")),
    ])
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const GLOBAL_PARAMS: [&str; 4] = ["pretty", "human", "error_trace", "filter_path"];

/// `BaseRestHandler` unconsumed-parameter check (inferred:
/// docs/reference/elasticsearch-inference-api.md#create-api).
fn check_params(req: &Req, allowed: &[&str]) -> Result<(), EsError> {
    let mut unknown: Vec<&str> = Vec::new();
    for (k, _) in &req.query {
        if !allowed.contains(&k.as_str())
            && !GLOBAL_PARAMS.contains(&k.as_str())
            && !unknown.contains(&k.as_str())
        {
            unknown.push(k);
        }
    }
    match unknown.len() {
        0 => Ok(()),
        1 => Err(EsError::illegal_argument(format!(
            "request [{}] contains unrecognized parameter: [{}]",
            req.path, unknown[0]
        ))),
        _ => Err(EsError::illegal_argument(format!(
            "request [{}] contains unrecognized parameters: {}",
            req.path,
            unknown
                .iter()
                .map(|k| format!("[{k}]"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// ES `TimeValue` parsing. `Ok(None)` for `-1` (no timeout) — also 0 on 9.5 means "default".
fn parse_time(key: &str, s: &str) -> Result<Option<Duration>, EsError> {
    let err = || {
        EsError::parse(format!(
            "failed to parse setting [{key}] with value [{s}] as a time value: unit is missing or unrecognized"
        ))
    };
    if s == "-1" {
        return Ok(None);
    }
    if s == "0" {
        return Ok(Some(Duration::ZERO));
    }
    let units: [(&str, f64); 7] = [
        ("nanos", 1e-9),
        ("micros", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
        ("d", 86400.0),
    ];
    for (u, mult) in units {
        if let Some(n) = s.strip_suffix(u) {
            let n: f64 = n.trim().parse().map_err(|_| err())?;
            return Ok(Some(Duration::from_secs_f64(n * mult)));
        }
    }
    Err(err())
}

fn parse_bool(v: Option<&str>) -> Result<bool, EsError> {
    match v {
        None => Ok(false),
        Some("") | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(x) => Err(EsError::illegal_argument(format!(
            "Failed to parse value [{x}] as only [true] or [false] are allowed."
        ))),
    }
}

/// `Invalid inference_id` request validation
/// (docs/reference/elasticsearch-inference-api.md#id-rules):
/// `^[a-z0-9](?:[a-z0-9_\-\.]*[a-z0-9])?$`, not `_all`.
fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && id != "_all"
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter()
            .all(|&c| alnum(c) || c == b'_' || c == b'-' || c == b'.')
}

fn body_object(req: &Req) -> Result<Map<String, Value>, EsError> {
    let body = req
        .body
        .as_ref()
        .ok_or_else(|| EsError::parse("request body is required"))?;
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        // (inferred) ES fails `XContentHelper.convertToMap` with a parse exception.
        _ => Err(EsError::parse("Failed to parse content to map")),
    }
}

pub(crate) fn mismatch(requested: TaskType, stored: TaskType) -> EsError {
    EsError::bad_request(format!(
        "Requested task type [{}] does not match the inference endpoint's task type [{}]",
        requested.as_str(),
        stored.as_str()
    ))
}

pub(crate) fn fmt_timeout(d: Duration, raw: Option<&str>) -> String {
    if let Some(r) = raw {
        return r.to_string();
    }
    let s = d.as_secs();
    if s.is_multiple_of(60) && s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// ES's validation call to the fake Azure
/// (docs/reference/elasticsearch-inference-api.md#validation-call), bounded by `timeout`
/// (docs/reference/elasticsearch-inference-api.md#timeout).
#[allow(clippy::too_many_arguments)]
async fn call_azure(
    sh: &Shared,
    id: &str,
    tt: TaskType,
    ss: &Map<String, Value>,
    ts: &Map<String, Value>,
    secret: &(String, String),
    requested_dims: Option<i64>,
    timeout: (Duration, String),
) -> Result<Option<i64>, EsError> {
    let call = azure::provider_call(id, tt, (ss, ts), secret, requested_dims);
    let url = call.url.clone();
    let fail = |o| azure::validation_failure(o, id, &url);
    let dims = sh.providers.validate(call, &timeout, fail).await?;
    Ok((tt == TaskType::TextEmbedding).then_some(dims))
}

// ---------------------------------------------------------------------------------------------
// Create (docs/reference/elasticsearch-inference-api.md#create-api), in the order of
// docs/reference/elasticsearch-inference-api.md#validation-order
// ---------------------------------------------------------------------------------------------

/// The effective create `timeout` and how ES prints it: absent or `0` = the default (30 s; 120 s
/// for non-embedding tasks on 9.5, docs/reference/elasticsearch-inference-api.md#timeout), `-1`
/// = none.
fn resolve_timeout(
    v: EsVersion,
    tt: TaskType,
    timeout: Option<Duration>,
    raw: Option<&str>,
) -> (Duration, String) {
    let default = if v.v95() && tt != TaskType::TextEmbedding {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(30)
    };
    let t = match timeout {
        Some(d) if d.is_zero() => default,
        Some(d) => d,
        None => Duration::MAX,
    };
    (t, fmt_timeout(t, raw.filter(|r| *r != "0")))
}

async fn create(
    sh: &Arc<Shared>,
    req: &Req,
    v: EsVersion,
    path_tt: TaskType,
    id: &str,
) -> Result<Resp, EsError> {
    if req.body.is_none() {
        return Err(EsError::parse("request body is required"));
    }
    let allowed: &[&str] = if v.put_timeout() { &["timeout"] } else { &[] };
    check_params(req, allowed)?;
    let raw_timeout = req.param("timeout").filter(|_| v.put_timeout());
    let timeout = match raw_timeout {
        Some(t) => parse_time("timeout", t)?,
        None => Some(Duration::ZERO),
    };
    if !valid_id(id) {
        return Err(EsError::action_validation(&[format!(
            "Invalid inference_id; '{id}' can contain lowercase alphanumeric (a-z and 0-9), hyphens or underscores; must start and end with alphanumeric"
        )]));
    }
    let mut config = body_object(req)?;
    {
        let st = sh.lock();
        if !matches!(st.license.as_str(), "enterprise" | "trial") {
            // (inferred) 403 from `LicenseUtils.newComplianceException`
            // (docs/reference/elasticsearch-inference-api.md#license).
            return Err(EsError::new(
                403,
                "security_exception",
                "current license is non-compliant for [inference]",
            )
            .with_extra("license.expired.feature", json!("inference")));
        }
        if st.preconfigured.contains_key(id) && v.preconfigured() {
            return Err(EsError::bad_request(format!("[{id}] is a reserved inference ID. Cannot create a new inference endpoint with a reserved ID.")));
        }
    }
    // Task type resolution (`ServiceUtils.resolveTaskType`,
    // docs/reference/elasticsearch-inference-api.md#create-api).
    let tt = match config.remove("task_type") {
        None | Some(Value::Null) => {
            if path_tt == TaskType::Any {
                return Err(EsError::bad_request(
                    "model is missing required setting [task_type]",
                ));
            }
            path_tt
        }
        Some(b) => {
            let b = super::json::java(&b);
            let body_tt = TaskType::parse(&b, v)?;
            if body_tt == TaskType::Any {
                return Err(EsError::bad_request(
                    "task_type [any] is not valid type for inference",
                ));
            }
            if path_tt != TaskType::Any && path_tt != body_tt {
                return Err(EsError::bad_request(format!("Cannot resolve conflicting task_type parameter in the request URL [{}] and the request body [{}]", path_tt.as_str(), body_tt.as_str())));
            }
            body_tt
        }
    };
    let service = match config.remove("service") {
        None | Some(Value::Null) => {
            return Err(EsError::bad_request(
                "Inference endpoint configuration is missing the [service] setting",
            ))
        }
        Some(s) => super::json::java(&s),
    };
    if service != AZURE {
        let timeout = resolve_timeout(v, tt, timeout, raw_timeout);
        return super::generic::create(sh, v, tt, id, &service, config, timeout).await;
    }
    let mut parsed = azure::parse_create(v, tt, &mut config)?;
    refuse_referenced_id_on_create(sh, v, id)?;

    let skip = sh.lock().skip_validation;
    let validate = !skip && (tt == TaskType::TextEmbedding || v.validates_completion());
    if validate {
        let timeout = resolve_timeout(v, tt, timeout, raw_timeout);
        let requested = if parsed.dims_set_by_user {
            parsed
                .service_settings
                .get("dimensions")
                .and_then(Value::as_i64)
        } else {
            None
        };
        let dims = call_azure(
            sh,
            id,
            tt,
            &parsed.service_settings,
            &parsed.task_settings,
            &parsed.secret,
            requested,
            timeout,
        )
        .await?;
        if let Some(d) = dims {
            if let Some(user) = requested {
                if user != d {
                    return Err(EsError::bad_request(format!("The retrieved embeddings size [{d}] does not match the size specified in the settings [{user}]. Please recreate the [{id}] configuration with the correct dimensions")));
                }
            }
            parsed
                .service_settings
                .insert("dimensions".into(), json!(d));
            parsed
                .service_settings
                .entry("similarity")
                .or_insert(json!("dot_product"));
        }
    }
    let mut st = sh.lock();
    // Stored last, create-only: `ModelRegistry.storeModel` indexes with `OpType.CREATE` and turns
    // the version conflict into this error (elastic/elasticsearch x-pack/plugin/inference/src/main/
    // java/org/elasticsearch/xpack/inference/registry/ModelRegistry.java; docs/reference/elasticsearch-inference-api.md#error-table).
    if st.lookup(id).is_some() {
        return Err(EsError::new(
            400,
            "resource_already_exists_exception",
            format!("Inference endpoint [{id}] already exists"),
        ));
    }
    let stored = Stored {
        id: id.to_string(),
        task_type: tt,
        service,
        service_settings: parsed.service_settings,
        task_settings: parsed.task_settings,
        chunking: parsed.chunking,
        secret: Some(parsed.secret),
        secrets: Map::new(),
        dims_set_by_user: parsed.dims_set_by_user,
        oauth2: parsed.oauth2,
    };
    let body = stored.render(v);
    st.endpoints.insert(id.to_string(), stored);
    Ok(Resp::ok(body))
}

/// [`referenced_id_refusal`] on the versions that have it, for every service's create.
pub(crate) fn refuse_referenced_id_on_create(
    sh: &Shared,
    v: EsVersion,
    id: &str,
) -> Result<(), EsError> {
    if !v.refuses_referenced_id_on_create() {
        return Ok(());
    }
    referenced_id_refusal(&sh.lock(), id).map_or(Ok(()), Err)
}

/// PR #137055 (8.19.7, 9.1.7, 9.2.1, 9.3.0): an id that ingest pipelines reference, or that
/// `semantic_text` fields of non-empty indices use, cannot be created (a new endpoint with other
/// settings would silently break them). Checked in `TransportPutInferenceModelAction` after the
/// request is parsed and before the provider validation call, as on releases before PR #150150 (the
/// reversed order of #150150, release inferred 9.5, is not emulated):
/// docs/reference/elasticsearch-inference-api.md#create-refused-while-referenced. (inferred) Status 400
/// `status_exception` and the wording below are modelled on the DELETE refusal; the exact text was
/// not found in the sources read. The operator keys on "could not be created" plus the lists, not
/// on the full sentence.
pub(crate) fn referenced_id_refusal(st: &State, id: &str) -> Option<EsError> {
    let pipelines: Vec<String> = st
        .pipelines
        .get(id)
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    let indexes: Vec<String> = st
        .indexes
        .get(id)
        .map(|s| {
            s.iter()
                .filter(|i| !st.empty_indexes.contains(*i))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut uses = Vec::new();
    if !pipelines.is_empty() {
        uses.push(format!(
            "referenced by pipelines: {}",
            java_list(&pipelines)
        ));
    }
    if !indexes.is_empty() {
        uses.push(format!(
            "used in the mappings of non-empty indices: {}",
            java_list(&indexes)
        ));
    }
    (!uses.is_empty()).then(|| {
        EsError::bad_request(format!(
            "Inference endpoint [{id}] could not be created because the inference_id is already {}. \
             Please either use a different inference_id or update the index mappings and pipelines to refer to a new inference_id.",
            uses.join(" and ")
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Get (docs/reference/elasticsearch-inference-api.md#get-api)
// ---------------------------------------------------------------------------------------------

fn get(sh: &Shared, v: EsVersion, tt: TaskType, id: &str) -> Result<Resp, EsError> {
    let st = sh.lock();
    let items: Vec<J> = if id == "_all" || id == "*" {
        st.all()
            .into_iter()
            .filter(|e| tt == TaskType::Any || e.task_type == tt)
            .map(|e| e.render(v))
            .collect()
    } else {
        let e = st.lookup(id).ok_or_else(|| EsError::not_found(id))?;
        if tt != TaskType::Any && tt != e.task_type {
            return Err(mismatch(tt, e.task_type));
        }
        vec![e.render(v)]
    };
    Ok(Resp::ok(J::O(vec![("endpoints".into(), J::A(items))])))
}

// ---------------------------------------------------------------------------------------------
// Delete (docs/reference/elasticsearch-inference-api.md#delete-api)
// ---------------------------------------------------------------------------------------------

fn delete(sh: &Shared, req: &Req, v: EsVersion, tt: TaskType, id: &str) -> Result<Resp, EsError> {
    let allowed: &[&str] = if v.delete_flags() {
        &["dry_run", "force"]
    } else {
        &[]
    };
    let dry_run = parse_bool(req.param("dry_run").filter(|_| v.delete_flags()))?;
    let force = parse_bool(req.param("force").filter(|_| v.delete_flags()))?;
    check_params(req, allowed)?;
    let mut st = sh.lock();
    let e = st.lookup(id).ok_or_else(|| EsError::not_found(id))?;
    if tt != TaskType::Any && tt != e.task_type {
        return Err(mismatch(tt, e.task_type));
    }
    let is_default = !st.endpoints.contains_key(id);
    if is_default && !force {
        // (inferred) message recalled from TransportDeleteInferenceEndpointAction (not on
        // docs/reference/elasticsearch-inference-api.md#delete-api).
        return Err(EsError::bad_request(format!("[{id}] is a reserved inference endpoint. Use the force=true query parameter to delete the inference endpoint.")));
    }
    let pipelines: Vec<String> = if v.delete_flags() {
        st.pipelines
            .get(id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    } else {
        vec![]
    };
    let indexes: Vec<String> = if v.index_refs() {
        st.indexes
            .get(id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    } else {
        vec![]
    };
    let mut msg = String::new();
    if !pipelines.is_empty() && !v.index_refs() {
        // 8.15 `TransportDeleteInferenceEndpointAction.endpointIsReferencedInPipelines`
        // (elastic/elasticsearch @038918c5): one sentence, pipelines only, 409.
        msg.push_str(&format!("Inference endpoint {id} is referenced by pipelines and cannot be deleted. Use `force` to delete it anyway, or use `dry_run` to list the pipelines that reference it."));
    } else if !pipelines.is_empty() {
        msg.push_str(&format!("Inference endpoint {id} is referenced by pipelines: {}. Ensure that no pipelines are using this inference endpoint, or use force to ignore this warning and delete the inference endpoint.", java_list(&pipelines)));
    }
    if !indexes.is_empty() {
        msg.push_str(&format!(" Inference endpoint {id} is being used in the mapping for indexes: {}. Ensure that no index mappings are using this inference endpoint, or use force to ignore this warning and delete the inference endpoint.", java_list(&indexes)));
    }
    // The dry run's shape by version: `pipelines` from 8.15, `indexes` and `error_message` from
    // 8.16 (docs/reference/elasticsearch-inference-api.md#used-by); the operator's
    // `status.usedBy` is read from it. Lists are sorted (BTreeSet; Elasticsearch's own order is
    // a Java set's, inferred).
    let list = |l: &[String]| J::V(json!(l));
    let response = |ack: bool, p: &[String], i: &[String], err: Option<&str>| {
        let mut f = vec![("acknowledged".to_string(), J::V(json!(ack)))];
        if v.delete_flags() {
            f.push(("pipelines".into(), list(p)));
        }
        if v.index_refs() {
            f.push(("indexes".into(), list(i)));
        }
        // 8.15's dry run answers `Response(false, pipelineIds)` only (@038918c5); the
        // `error_message` field came with the 8.16 rework (PR #110399).
        if let Some(e) = err.filter(|_| v.index_refs()) {
            f.push(("error_message".into(), J::s(e)));
        }
        J::O(f)
    };
    if dry_run {
        return Ok(Resp::ok(response(false, &pipelines, &indexes, Some(&msg))));
    }
    if !msg.is_empty() && !force {
        return Err(EsError::status(409, msg));
    }
    st.endpoints.remove(id);
    st.preconfigured.remove(id);
    // `ElasticsearchInternalService.stop`: deleting the endpoint stops its deployment.
    st.deployments.remove(id);
    Ok(Resp::ok(response(true, &[], &[], None)))
}

// ---------------------------------------------------------------------------------------------
// Update (docs/reference/elasticsearch-inference-api.md#update-api,
// docs/reference/elasticsearch-inference-api.md#update-by-version)
// ---------------------------------------------------------------------------------------------

async fn update(
    sh: &Arc<Shared>,
    req: &Req,
    v: EsVersion,
    path_tt: TaskType,
    id: &str,
    one_segment: bool,
) -> Result<Resp, EsError> {
    if one_segment && !v.v95() {
        // The one-segment form hit the handler's `else` branch in the versions read; we assume
        // it was fixed by 9.5 (inferred) (docs/reference/elasticsearch-inference-api.md#update-api).
        return Err(EsError::bad_request(
            "Inference ID must be provided in the path",
        ));
    }
    let allowed: &[&str] = if v.v95() {
        &["timeout", "master_timeout"]
    } else {
        &["master_timeout"]
    };
    check_params(req, allowed)?;
    let raw_timeout = req.param("timeout").filter(|_| v.v95());
    let timeout = match raw_timeout {
        Some(t) => parse_time("timeout", t)?,
        None => Some(Duration::ZERO),
    };
    let mut body = body_object(req)?;
    if body.is_empty() {
        return Err(EsError::bad_request("Request body is empty"));
    }
    let mut updatable = vec!["service_settings", "task_settings", "task_type"];
    if v.v95() {
        updatable.push("chunking_settings");
    }
    let extra: Map<String, Value> = body
        .iter()
        .filter(|(k, _)| !updatable.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !extra.is_empty() {
        return Err(EsError::bad_request(format!(
            "Request contained fields which cannot be updated, remove these fields and try again [{}]",
            java_map(&extra)
        )));
    }
    let body_tt = match body.remove("task_type") {
        None | Some(Value::Null) => None,
        Some(t) => Some(TaskType::parse(&super::json::java(&t), v)?),
    };
    let existing = {
        let st = sh.lock();
        st.lookup(id)
            .cloned()
            .ok_or_else(|| EsError::not_found(id))?
    };
    let tt_mismatch = (path_tt != TaskType::Any && path_tt != existing.task_type)
        || body_tt.is_some_and(|b| b != existing.task_type);
    if tt_mismatch {
        return Err(EsError::bad_request(
            "Task type must match the task type of the existing endpoint",
        ));
    }
    if existing.service != AZURE {
        let timeout = match timeout {
            Some(d) if d.is_zero() => Duration::from_secs(30),
            Some(d) => d,
            None => Duration::MAX,
        };
        let t = (
            timeout,
            fmt_timeout(timeout, raw_timeout.filter(|r| *r != "0")),
        );
        return super::generic::update(sh, v, existing, body, t).await;
    }
    let obj = |k: &str, b: &mut Map<String, Value>| -> Result<Map<String, Value>, EsError> {
        match b.remove(k) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m),
            Some(o) => Err(EsError::validation(&[format!(
                "field [{k}] is not of the expected type. The value [{}] cannot be converted to a [Map]",
                super::json::java(&o)
            )])),
        }
    };
    let ss = obj("service_settings", &mut body)?;
    let ts = obj("task_settings", &mut body)?;
    let mut next = existing.clone();

    if v.v95() {
        let upd = azure::parse_update_95(
            v,
            ss,
            existing.secret.as_ref().map(|(k, _)| k.as_str()),
            existing.oauth2,
        )?;
        if let Some(tokens) = upd.max_input_tokens {
            if existing.task_type == TaskType::TextEmbedding {
                next.service_settings
                    .insert("max_input_tokens".into(), json!(tokens));
            }
        }
        if let Some(rpm) = upd.rate_limit {
            next.service_settings
                .insert("rate_limit".into(), json!({ "requests_per_minute": rpm }));
        }
        next.service_settings.extend(upd.oauth2);
        if let Some(s) = upd.secret {
            next.secret = Some(s);
        }
        if let Some(c) = body.remove("chunking_settings") {
            if existing.task_type != TaskType::TextEmbedding {
                let mut m = Map::new();
                m.insert("chunking_settings".into(), c);
                return Err(azure::unknown_settings(v, &m));
            }
            next.chunking = Some(azure::parse_chunking(v, Some(c))?);
        }
    } else if !ss.is_empty() {
        // ≤9.4: any non-empty service_settings is parsed as a fresh secret; other keys ignored
        // (docs/reference/elasticsearch-inference-api.md#update-by-version).
        let mut ss = ss;
        next.secret = Some(azure::parse_secret(v, &mut ss, existing.oauth2)?);
    }
    next.task_settings = azure::merge_task_settings(v, &existing.task_settings, ts)?;

    if v.update_skips_unchanged() && next == existing {
        // Nothing to change: answered from the stored model, no provider call.
        return Ok(Resp::ok(existing.render(v)));
    }
    if v.v94() && !sh.lock().skip_validation {
        let t = match timeout {
            Some(d) if d.is_zero() => Duration::from_secs(30),
            Some(d) => d,
            None => Duration::MAX,
        };
        let raw = raw_timeout.filter(|r| *r != "0");
        let secret = next.secret.clone().unwrap_or_default();
        let requested = if next.dims_set_by_user {
            next.service_settings
                .get("dimensions")
                .and_then(Value::as_i64)
        } else {
            None
        };
        call_azure(
            sh,
            id,
            next.task_type,
            &next.service_settings,
            &next.task_settings,
            &secret,
            requested,
            (t, fmt_timeout(t, raw)),
        )
        .await?;
    }
    let mut st = sh.lock();
    let chunking_bug = st
        .update_chunking_bug
        .unwrap_or_else(|| v.update_resets_chunking());
    if chunking_bug && next.task_type == TaskType::TextEmbedding {
        // Issue #139574: the updated model is rebuilt without the stored chunking settings, so
        // they read back as the pre-8.16 default word/250/100.
        next.chunking = Some(old_default_chunking());
    }
    let Some(current) = st.endpoints.get_mut(id) else {
        return Err(EsError::not_found(id));
    };
    if *current != next {
        *current = next;
    }
    Ok(Resp::ok(current.render(v)))
}
