//! HTTP routing, list/watch and request introspection.

use super::discovery;
use super::errors::{ApiError, FieldError, GroupResource};
use super::events;
use super::fields::Writer;
use super::fieldvalidation::{self, FieldValidation};
use super::openapi;
use super::protobuf;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{matches, Class, EventRec, ResDef, State, WriteOpts};
use super::table::{self, TableRequest};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// One request as received, for test introspection.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// Raw (still url-encoded) query string, without `?`.
    pub query: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    /// Resource plural (e.g. `secrets`) when the path addressed a resource.
    pub resource: Option<String>,
    /// Subresource (e.g. `status`) when present.
    pub subresource: Option<String>,
    /// Object name when the path addressed one object.
    pub name: Option<String>,
    /// True for `?watch=true` requests.
    pub watch: bool,
    /// HTTP status of the response (0 while a handler runs).
    pub status: u16,
}

#[derive(Debug, Clone)]
pub struct FaultRule {
    pub remaining: usize,
    pub status: u16,
    pub method: Option<String>,
    pub path_contains: Option<String>,
}

pub struct Shared {
    pub state: Mutex<State>,
    pub rv_tx: watch::Sender<u64>,
    pub kill_tx: watch::Sender<u64>,
    pub faults: Mutex<Vec<FaultRule>>,
    pub log: Mutex<Vec<RequestRecord>>,
    pub latency: Mutex<Duration>,
    pub bookmark_interval: Mutex<Option<Duration>>,
    pub host: Mutex<String>,
    /// Faults switched on until switched off (`faults.rs`).
    pub switches: super::faults::Switches,
    /// Per resource plural: running watches deliver its events only up to this
    /// resourceVersion ([`super::KubeEmulator::hold_watch_events_after`]).
    pub watch_holds: Mutex<HashMap<String, u64>>,
}

impl Shared {
    pub fn notify(&self) {
        let rv = self.state.lock().expect("state").rv;
        self.rv_tx.send_replace(rv);
    }
}

type Query = HashMap<String, String>;

fn json_response(code: u16, v: &Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap_or_default()))
        .expect("response")
}

fn error_response(e: &ApiError) -> Response {
    if let Some(t) = &e.plain_text {
        let mut b = Response::builder()
            .status(e.code)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
        if e.code == 429 {
            b = b.header(header::RETRY_AFTER, "1");
        }
        return b.body(Body::from(t.clone())).expect("response");
    }
    json_response(e.code, &e.body)
}

fn plain_not_found() -> Response {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from("404 page not found\n"))
        .expect("response")
}

fn fault_error(status: u16) -> ApiError {
    match status {
        429 => ApiError::too_many_requests(),
        500 => ApiError::internal_error("injected fault"),
        503 => ApiError::new(
            503,
            "ServiceUnavailable",
            "injected fault: service unavailable",
            None,
        ),
        504 => ApiError::new(504, "Timeout", "injected fault: timeout", None),
        409 => ApiError::new(409, "Conflict", "injected fault: conflict", None),
        404 => ApiError::new(404, "NotFound", "injected fault: not found", None),
        other => ApiError::new(other, "", format!("injected fault {other}"), None),
    }
}

enum Target {
    Version,
    Api,
    CoreV1,
    Apis,
    Group(String),
    GroupVersion(String, String),
    Resource {
        rd: Box<ResDef>,
        ns: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
    Health,
    OpenApiIndex,
    OpenApiDoc(String),
    NotFound,
}

fn route(st: &State, path: &str) -> Target {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["version"] => return Target::Version,
        ["healthz" | "readyz" | "livez", ..] => return Target::Health,
        ["openapi", "v3"] => return Target::OpenApiIndex,
        ["openapi", "v3", rest @ ..] => return Target::OpenApiDoc(rest.join("/")),
        ["api"] => return Target::Api,
        ["api", "v1"] => return Target::CoreV1,
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis"] => return Target::Apis,
        ["apis", g] => return Target::Group(g.to_string()),
        ["apis", g, v] => return Target::GroupVersion(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Target::NotFound,
    };
    let (ns, plural, name, sub, extra) = if rest.len() >= 3
        && rest[0] == "namespaces"
        && st
            .find_def(group, version, rest[2])
            .is_some_and(|d| d.namespaced)
    {
        (
            Some(rest[1]),
            rest[2],
            rest.get(3),
            rest.get(4),
            rest.len() > 5,
        )
    } else {
        (None, rest[0], rest.get(1), rest.get(2), rest.len() > 3)
    };
    if extra {
        return Target::NotFound;
    }
    let Some(rd) = st.find_def(group, version, plural) else {
        return Target::NotFound;
    };
    if (!rd.namespaced && ns.is_some()) || (rd.namespaced && ns.is_none() && name.is_some()) {
        return Target::NotFound;
    }
    Target::Resource {
        rd: Box::new(rd),
        ns: ns.map(String::from),
        name: name.map(|s| s.to_string()),
        sub: sub.map(|s| s.to_string()),
    }
}

/// `?fieldSelector=` for a resource, with the labels of views mapped into their store.
fn field_selector(rd: &ResDef, q: &Query) -> Result<FieldSelector, String> {
    let fs = FieldSelector::parse(
        q.get("fieldSelector").map(String::as_str).unwrap_or(""),
        &rd.field_labels(),
    )?;
    Ok(if rd.class == Class::CoreEvent {
        fs.map_fields(events::stored_field)
    } else {
        fs
    })
}

fn parse_query(q: &str) -> Query {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

pub async fn handle(sh: Arc<Shared>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = parse_query(&raw_query);
    let headers = parts.headers.clone();
    let hv = |h: header::HeaderName| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let is_watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));

    let target = {
        let st = sh.state.lock().expect("state");
        route(&st, &path)
    };
    let (resource, subresource, name) = match &target {
        Target::Resource { rd, name, sub, .. } => {
            (Some(rd.plural.clone()), sub.clone(), name.clone())
        }
        _ => (None, None, None),
    };
    let switched = sh.switches.write_fault(
        method.as_str(),
        resource.as_deref(),
        subresource.as_deref(),
        hv(header::AUTHORIZATION).as_deref(),
    );
    let idx = {
        let mut log = sh.log.lock().expect("log");
        log.push(RequestRecord {
            method: method.to_string(),
            path: path.clone(),
            query: raw_query.clone(),
            content_type: hv(header::CONTENT_TYPE),
            accept: hv(header::ACCEPT),
            resource,
            subresource,
            name,
            watch: is_watch,
            status: 0,
        });
        log.len() - 1
    };

    let latency = *sh.latency.lock().expect("latency");
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let fault = {
        let mut faults = sh.faults.lock().expect("faults");
        let mut hit = None;
        for f in faults.iter_mut() {
            let m_ok = f
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()));
            let p_ok = f
                .path_contains
                .as_deref()
                .is_none_or(|p| format!("{path}?{raw_query}").contains(p));
            if f.remaining > 0 && m_ok && p_ok {
                f.remaining -= 1;
                hit = Some(f.status);
                break;
            }
        }
        faults.retain(|f| f.remaining > 0);
        hit
    };
    let fault = fault.or(switched);

    let resp = match fault {
        Some(code) => error_response(&fault_error(code)),
        None => dispatch(&sh, target, &method, &headers, &query, &bytes, is_watch).await,
    };
    if let Some(r) = sh.log.lock().expect("log").get_mut(idx) {
        r.status = resp.status().as_u16();
    }
    resp
}

async fn dispatch(
    sh: &Arc<Shared>,
    target: Target,
    method: &Method,
    headers: &HeaderMap,
    q: &Query,
    body: &Bytes,
    is_watch: bool,
) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let aggregated = discovery::wants_aggregated(accept);
    let agg = |v: Value| {
        Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, discovery::AGGREGATED_CT)
            .body(Body::from(serde_json::to_vec(&v).unwrap_or_default()))
            .expect("response")
    };
    match target {
        Target::NotFound => plain_not_found(),
        Target::Health => Response::new(Body::from("ok")),
        Target::OpenApiIndex => {
            let st = sh.state.lock().expect("state");
            json_response(200, &openapi::index(&st))
        }
        Target::OpenApiDoc(gv) => {
            let st = sh.state.lock().expect("state");
            match openapi::group_version_doc(&st, &gv) {
                Some(v) => json_response(200, &v),
                None => plain_not_found(),
            }
        }
        Target::Version => {
            let version = sh.state.lock().expect("state").version;
            json_response(200, &discovery::version(version))
        }
        Target::Api => {
            let st = sh.state.lock().expect("state");
            if aggregated {
                agg(discovery::aggregated_core(&st))
            } else {
                json_response(
                    200,
                    &discovery::api_versions(&sh.host.lock().expect("host")),
                )
            }
        }
        Target::CoreV1 => {
            let st = sh.state.lock().expect("state");
            json_response(
                200,
                &discovery::resource_list(&st, "", "v1").unwrap_or(json!({})),
            )
        }
        Target::Apis => {
            let st = sh.state.lock().expect("state");
            if aggregated {
                agg(discovery::aggregated_apis(&st))
            } else {
                json_response(200, &discovery::api_group_list(&st))
            }
        }
        Target::Group(g) => {
            let st = sh.state.lock().expect("state");
            match discovery::api_group(&st, &g) {
                Some(v) => json_response(200, &v),
                None => plain_not_found(),
            }
        }
        Target::GroupVersion(g, v) => {
            let st = sh.state.lock().expect("state");
            match discovery::resource_list(&st, &g, &v) {
                Some(v) => json_response(200, &v),
                None => plain_not_found(),
            }
        }
        Target::Resource { rd, ns, name, sub } => {
            let table_req = match table::negotiate(accept).filter(|_| *method == Method::GET) {
                None => None,
                Some(api_version) => {
                    match table::include_param(q.get("includeObject").map(String::as_str)) {
                        Ok(include) => Some(TableRequest {
                            api_version,
                            include,
                        }),
                        Err(e) => return error_response(&e),
                    }
                }
            };
            let meta_only = table_req.is_none() && accept.contains("as=PartialObjectMetadata");
            if is_watch && *method == Method::GET && name.is_none() {
                return watch(sh.clone(), *rd, ns, q, meta_only, table_req);
            }
            let (r, warnings) =
                resource_op(sh, &rd, ns, name, sub, method, headers, q, body, meta_only);
            sh.notify();
            let mut resp = match (r, table_req) {
                (Ok((code, v)), Some(tr)) => Response::builder()
                    .status(code)
                    .header(header::CONTENT_TYPE, table::content_type(tr.api_version))
                    .body(Body::from(
                        serde_json::to_vec(&table::to_table(&rd, &v, &tr)).unwrap_or_default(),
                    ))
                    .expect("response"),
                (Ok((code, v)), None) => json_response(code, &v),
                (Err(e), _) => error_response(&e),
            };
            // the apiserver's warning recorder drops repeats (apiserver
            // `pkg/endpoints/filters/warning.go` `recorder.AddWarning`)
            let mut seen = std::collections::HashSet::new();
            for w in warnings.into_iter().filter(|w| seen.insert(w.clone())) {
                if let Ok(v) = fieldvalidation::warning_header(&w).parse() {
                    resp.headers_mut().append(header::WARNING, v);
                }
            }
            resp
        }
    }
}

fn to_partial(v: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
           "metadata": v.get("metadata").cloned().unwrap_or(json!({}))})
}

/// The write parameters of a request: dry run, field manager, subresource, fieldValidation.
fn write_opts(
    method: &Method,
    headers: &HeaderMap,
    q: &Query,
    body: &Bytes,
    sub: &Option<String>,
) -> Result<WriteOpts, ApiError> {
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All");
    let fm = q.get("fieldManager").cloned().unwrap_or_default();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_apply = content_type.starts_with("application/apply-patch");
    let manager = if fm.is_empty() && !is_apply {
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    } else {
        fm
    };
    let options_kind = match *method {
        Method::POST => "CreateOptions",
        Method::PUT => "UpdateOptions",
        _ => "PatchOptions",
    };
    let writes = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    let field_validation = if writes {
        FieldValidation::parse(q.get("fieldValidation").map(String::as_str), options_kind)?
    } else {
        FieldValidation::Ignore
    };
    let decode_errors = if matches!(*method, Method::POST | Method::PUT) {
        fieldvalidation::duplicate_fields(body)
    } else {
        vec![]
    };
    Ok(WriteOpts {
        dry_run,
        writer: Writer::Update { manager },
        subresource: sub.clone().unwrap_or_default(),
        field_validation,
        decode_errors,
        warnings: Default::default(),
    })
}

/// The media types the emulator decodes a create, update or delete body from.
///
/// A real API server also decodes YAML, and protobuf for every built-in type; the emulator
/// parses JSON, and protobuf only for core/v1 Secrets and ConfigMaps (`protobuf.rs`), so it lists
/// what it really accepts (inferred: the list is the emulator's, the behaviour is the server's).
fn body_media_types(rd: &ResDef) -> &'static [&'static str] {
    if protobuf_kind(rd) {
        &["application/json", protobuf::MEDIA_TYPE]
    } else {
        &["application/json"]
    }
}

fn protobuf_kind(rd: &ResDef) -> bool {
    rd.group.is_empty() && matches!(rd.plural.as_str(), "secrets" | "configmaps")
}

/// The request body as JSON, or the API server's refusal of one it cannot decode.
///
/// `NegotiateInputSerializerForMediaType` (apiserver
/// `pkg/endpoints/handlers/negotiation/negotiate.go`) treats an empty Content-Type as the first
/// supported type (JSON), otherwise strips the parameters and answers
/// `NewUnsupportedMediaTypeError` (`negotiation/errors.go`: 415 `UnsupportedMediaType`, "the body
/// of the request was in an unknown format - accepted media types include: ..."). Create and
/// update always negotiate (`handlers/create.go`, `handlers/update.go`); delete and
/// deletecollection only when a body is sent (`handlers/delete.go`). Patch has its own list
/// (`handlers/patch.go`, see `store/patching.rs`). A protobuf Secret or ConfigMap (what
/// `kubectl create secret|configmap` sends) is turned into its JSON object.
fn json_body(
    rd: &ResDef,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Bytes, ApiError> {
    let negotiates = match *method {
        Method::POST | Method::PUT => true,
        Method::DELETE => !body.is_empty(),
        _ => false,
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !negotiates || media_type.is_empty() || media_type == "application/json" {
        return Ok(body.clone());
    }
    let unsupported = || ApiError::unsupported_media_type(body_media_types(rd));
    if media_type != protobuf::MEDIA_TYPE || !protobuf_kind(rd) || *method == Method::DELETE {
        return Err(unsupported());
    }
    match protobuf::to_json(body) {
        Ok(v) => Ok(Bytes::from(serde_json::to_vec(&v).unwrap_or_default())),
        Err(protobuf::Refusal::Unsupported) => Err(unsupported()),
        Err(protobuf::Refusal::Malformed(e)) => Err(ApiError::bad_request(format!(
            "error decoding request body: {e}"
        ))),
    }
}

/// A resource request, with the warnings it produced (for `Warning` headers).
#[allow(clippy::too_many_arguments)]
fn resource_op(
    sh: &Arc<Shared>,
    rd: &ResDef,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    method: &Method,
    headers: &HeaderMap,
    q: &Query,
    body: &Bytes,
    meta_only: bool,
) -> (Result<(u16, Value), ApiError>, Vec<String>) {
    let body = &match json_body(rd, method, headers, body) {
        Ok(b) => b,
        Err(e) => return (Err(e), vec![]),
    };
    let opts = match write_opts(method, headers, q, body, &sub) {
        Ok(o) => o,
        Err(e) => return (Err(e), vec![]),
    };
    let r = resource_op_with(
        sh, rd, ns, name, sub, method, headers, q, body, meta_only, &opts,
    );
    (r, opts.warnings.take())
}

#[allow(clippy::too_many_arguments)]
fn resource_op_with(
    sh: &Arc<Shared>,
    rd: &ResDef,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    method: &Method,
    headers: &HeaderMap,
    q: &Query,
    body: &Bytes,
    meta_only: bool,
    opts: &WriteOpts,
) -> Result<(u16, Value), ApiError> {
    let ns_str = ns.clone().unwrap_or_default();
    let dry_run = opts.dry_run;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let parse_body = || -> Result<Value, ApiError> {
        if body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
    };
    let present = |v: Value| if meta_only { to_partial(&v) } else { v };
    if rd.class == Class::CoreEvent && *method != Method::GET {
        let verb = match *method {
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if name.is_none() => "deletecollection",
            Method::DELETE => "delete",
            _ => "unknown",
        };
        let mut e = ApiError::method_not_allowed(verb, &rd.gr());
        e.body["message"] = json!(format!(
            "{verb} is not supported on core/v1 events by the emulator: it stores events.k8s.io/v1 Events and serves core/v1 as a read-only view"
        ));
        return Err(e);
    }
    let mut st = sh.state.lock().expect("state");

    let Some(name) = name else {
        return match *method {
            Method::GET => list(&st, rd, ns.as_deref(), q, meta_only)
                .inspect(|v| {
                    sh.switches.listed(&v["metadata"]["resourceVersion"]);
                })
                .map(|v| (200, v)),
            Method::POST => {
                if rd.namespaced && ns.is_none() {
                    return Err(ApiError::method_not_allowed("create", &rd.gr()));
                }
                let r = st.create(rd, &ns_str, parse_body()?, opts)?;
                Ok((r.code, present(r.body)))
            }
            Method::DELETE => {
                if rd.namespaced && ns.is_none() {
                    return Err(ApiError::method_not_allowed("deletecollection", &rd.gr()));
                }
                let ls =
                    LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
                        .map_err(ApiError::bad_request)?;
                let fs = field_selector(rd, q).map_err(ApiError::bad_request)?;
                let items = st.select(rd, ns.as_deref(), &ls, &fs);
                let mut deleted = Vec::new();
                let opts_body = parse_body()?;
                for it in items {
                    let n = it["metadata"]["name"].as_str().unwrap_or("").to_string();
                    if st.delete(rd, &ns_str, &n, &opts_body, dry_run).is_ok() {
                        deleted.push(State::present(rd, &it));
                    }
                }
                Ok((
                    200,
                    json!({"kind": format!("{}List", rd.kind), "apiVersion": rd.gv(),
                                "metadata": {"resourceVersion": st.rv.to_string()}, "items": deleted}),
                ))
            }
            _ => Err(ApiError::method_not_allowed(
                &method.as_str().to_lowercase(),
                &rd.gr(),
            )),
        };
    };

    if let Some(s) = &sub {
        if !(s == "status" && rd.status_sub) {
            return Err(ApiError::not_found(&rd.gr(), &name));
        }
        if !matches!(*method, Method::GET | Method::PUT | Method::PATCH) {
            let verb = if *method == Method::DELETE {
                "delete"
            } else {
                "create"
            };
            return Err(ApiError::method_not_allowed(verb, &rd.gr()));
        }
    }
    match *method {
        Method::GET => match st.get(rd, &ns_str, &name) {
            Some(o) => Ok((200, present(State::present(rd, o)))),
            None => Err(ApiError::not_found(&rd.gr(), &name)),
        },
        Method::PUT => {
            let r = st.replace(rd, &ns_str, &name, parse_body()?, opts)?;
            Ok((r.code, present(r.body)))
        }
        Method::PATCH => {
            let force = q.get("force").is_some_and(|v| v == "true");
            let r = st.patch(rd, &ns_str, &name, &content_type, body, force, opts)?;
            Ok((r.code, present(r.body)))
        }
        Method::DELETE => {
            let r = st.delete(rd, &ns_str, &name, &parse_body()?, dry_run)?;
            let is_status = r.body.get("kind").and_then(Value::as_str) == Some("Status");
            Ok((r.code, if is_status { r.body } else { present(r.body) }))
        }
        Method::POST => Err(ApiError::method_not_allowed("create", &rd.gr())),
        _ => Err(ApiError::method_not_allowed(
            &method.as_str().to_lowercase(),
            &rd.gr(),
        )),
    }
}

fn list_options_invalid(msgs: Vec<FieldError>) -> ApiError {
    ApiError::invalid(&GroupResource::new("meta.k8s.io", "ListOptions"), "", &msgs)
}

fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))
}

fn list(
    st: &State,
    rd: &ResDef,
    ns: Option<&str>,
    q: &Query,
    meta_only: bool,
) -> Result<Value, ApiError> {
    let rv = q.get("resourceVersion").cloned().unwrap_or_default();
    let rvm = q.get("resourceVersionMatch").cloned().unwrap_or_default();
    let cont = q.get("continue").cloned().unwrap_or_default();
    if q.contains_key("sendInitialEvents") {
        return Err(list_options_invalid(vec![FieldError::forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for list",
        )]));
    }
    if !rvm.is_empty() {
        if rv.is_empty() {
            return Err(list_options_invalid(vec![FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )]));
        }
        if !cont.is_empty() {
            return Err(list_options_invalid(vec![FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            )]));
        }
        if rvm == "Exact" && rv == "0" {
            return Err(list_options_invalid(vec![FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            )]));
        }
        if rvm != "Exact" && rvm != "NotOlderThan" {
            return Err(list_options_invalid(vec![FieldError::not_supported(
                "resourceVersionMatch",
                json!(rvm),
                &[json!("Exact"), json!("NotOlderThan")],
            )]));
        }
    }
    if !cont.is_empty() && !rv.is_empty() && rv != "0" {
        return Err(ApiError::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    let ls = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fs = field_selector(rd, q).map_err(ApiError::bad_request)?;
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);

    let mut list_rv = st.rv;
    let mut start_after: Option<(String, String)> = None;
    if !cont.is_empty() {
        let tok: Value = base64::engine::general_purpose::STANDARD
            .decode(&cont)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
        let trv = tok["rv"].as_u64().unwrap_or(0);
        if trv < st.history_start {
            let mut e = ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.");
            e.body["metadata"] = json!({"continue": encode_token(st.rv, tok["ns"].as_str().unwrap_or(""), tok["name"].as_str().unwrap_or(""))});
            return Err(e);
        }
        list_rv = trv;
        start_after = Some((
            tok["ns"].as_str().unwrap_or("").to_string(),
            tok["name"].as_str().unwrap_or("").to_string(),
        ));
    } else if !rv.is_empty() && rv != "0" {
        let n = parse_rv(&rv)?;
        let exact = rvm == "Exact" || (rvm.is_empty() && limit > 0);
        if n > st.rv {
            return Err(ApiError::new(
                504,
                "Timeout",
                format!("Too large resource version: {n}, current: {}", st.rv),
                Some(
                    json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
                ),
            ));
        }
        if exact && n < st.history_start {
            return Err(ApiError::expired(
                "The resourceVersion for the provided list is too old.",
            ));
        }
    }
    let all = st.select(rd, ns, &ls, &fs);
    let items: Vec<&Value> = all
        .iter()
        .filter(|o| match &start_after {
            None => true,
            Some((sn, sname)) => {
                let k = (
                    o["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                );
                k > (sn.clone(), sname.clone())
            }
        })
        .collect();
    let (page, more) = if limit > 0 && items.len() > limit {
        (&items[..limit], true)
    } else {
        (&items[..], false)
    };
    let mut md = json!({"resourceVersion": list_rv.to_string()});
    if more {
        let last = page.last().expect("non-empty page");
        md["continue"] = json!(encode_token(
            list_rv,
            last["metadata"]["namespace"].as_str().unwrap_or(""),
            last["metadata"]["name"].as_str().unwrap_or("")
        ));
        if ls.is_empty() && fs.is_empty() {
            md["remainingItemCount"] = json!(items.len() - page.len());
        }
    }
    let out_items: Vec<Value> = page
        .iter()
        .map(|o| {
            let p = State::present(rd, o);
            if meta_only {
                to_partial(&p)
            } else {
                p
            }
        })
        .collect();
    let (kind, api_version) = if meta_only {
        (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (format!("{}List", rd.kind), rd.gv())
    };
    Ok(json!({"kind": kind, "apiVersion": api_version, "metadata": md, "items": out_items}))
}

fn encode_token(rv: u64, ns: &str, name: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(json!({"rv": rv, "ns": ns, "name": name}).to_string())
}

/// Turn a stored change into what a watcher with these selectors sees
/// (docs/reference/kubernetes-api.md#watch-wire-format).
fn transform(
    e: &EventRec,
    ls: &LabelSelector,
    fs: &FieldSelector,
) -> Option<(&'static str, Value)> {
    let new_m = matches(&e.obj, ls, fs);
    match e.etype {
        "ADDED" => new_m.then(|| ("ADDED", e.obj.clone())),
        "MODIFIED" => {
            let old_m = e.old.as_ref().is_some_and(|o| matches(o, ls, fs));
            match (old_m, new_m) {
                (true, true) => Some(("MODIFIED", e.obj.clone())),
                (false, true) => Some(("ADDED", e.obj.clone())),
                (true, false) => {
                    let mut o = e.old.clone().expect("old");
                    o["metadata"]["resourceVersion"] = e.obj["metadata"]["resourceVersion"].clone();
                    Some(("DELETED", o))
                }
                (false, false) => None,
            }
        }
        _ => new_m.then(|| ("DELETED", e.obj.clone())),
    }
}

fn line(etype: &str, obj: Value) -> Bytes {
    let mut s = serde_json::to_vec(&json!({"type": etype, "object": obj})).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

fn watch(
    sh: Arc<Shared>,
    rd: ResDef,
    ns: Option<String>,
    q: &Query,
    meta_only: bool,
    table_req: Option<TableRequest>,
) -> Response {
    let send_initial = q.get("sendInitialEvents").map(|v| v == "true");
    let rvm = q.get("resourceVersionMatch").cloned().unwrap_or_default();
    if send_initial.is_some() && rvm != "NotOlderThan" {
        return error_response(&list_options_invalid(vec![FieldError::forbidden(
            "resourceVersionMatch",
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        )]));
    }
    if send_initial.is_none() && !rvm.is_empty() {
        return error_response(&list_options_invalid(vec![FieldError::forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        )]));
    }
    let ls = match LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or("")) {
        Ok(l) => l,
        Err(e) => return error_response(&ApiError::bad_request(e)),
    };
    let fs = match field_selector(&rd, q) {
        Ok(f) => f,
        Err(e) => return error_response(&ApiError::bad_request(e)),
    };
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let requested = if rv_param.is_empty() || rv_param == "0" {
        None
    } else {
        match parse_rv(&rv_param) {
            Ok(n) => Some(n),
            Err(e) => return error_response(&e),
        }
    };
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);

    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(256);
    let present = move |rd: &ResDef, o: &Value| {
        let p = State::present(rd, o);
        if let Some(tr) = &table_req {
            table::to_table(rd, &p, tr)
        } else if meta_only {
            to_partial(&p)
        } else {
            p
        }
    };
    let bookmark = {
        let rd = rd.clone();
        move |rv: u64, end: bool| {
            let (kind, av) = if meta_only {
                (
                    "PartialObjectMetadata".to_string(),
                    "meta.k8s.io/v1".to_string(),
                )
            } else {
                (rd.kind.clone(), rd.gv())
            };
            let mut md = json!({"resourceVersion": rv.to_string()});
            if end {
                md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            line(
                "BOOKMARK",
                json!({"kind": kind, "apiVersion": av, "metadata": md}),
            )
        }
    };
    // Initial state under the lock.
    let (initial, mut pos, too_old, end_bookmark) = {
        let st = sh.state.lock().expect("state");
        let initial_mode =
            send_initial == Some(true) || (send_initial.is_none() && requested.is_none());
        if initial_mode {
            let objs = st.select(&rd, ns.as_deref(), &ls, &fs);
            (objs, st.rv, None, bookmarks)
        } else {
            let start = requested.unwrap_or(st.rv);
            if requested.is_some_and(|rv| sh.switches.expires(rv)) {
                (vec![], start, Some(st.rv), false)
            } else if start < st.history_start {
                (vec![], start, Some(st.history_start + 1), false)
            } else {
                (vec![], start, None, false)
            }
        }
    };
    let bookmark_every = *sh.bookmark_interval.lock().expect("bookmark");
    tokio::spawn(async move {
        let send = |b: Bytes| {
            let tx = tx.clone();
            async move { tx.send(Ok(b)).await.is_ok() }
        };
        if let Some(oldest) = too_old {
            let st = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {pos} ({oldest})"), "reason": "Expired", "code": 410});
            send(line("ERROR", st)).await;
            return;
        }
        for o in &initial {
            if !send(line("ADDED", present(&rd, o))).await {
                return;
            }
        }
        if end_bookmark && !send(bookmark(pos, true)).await {
            return;
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut rv_rx = sh.rv_tx.subscribe();
        let mut kill_rx = sh.kill_tx.subscribe();
        kill_rx.borrow_and_update();
        let mut tick = bookmark_every.filter(|_| bookmarks).map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        loop {
            rv_rx.borrow_and_update();
            let batch: Result<Vec<(&'static str, Value)>, u64> = {
                let st = sh.state.lock().expect("state");
                // Checked under the lock so that a close_all_watches() issued before a write
                // guarantees this stream does not deliver that write.
                if kill_rx.has_changed().unwrap_or(true) {
                    return;
                }
                if pos < st.history_start {
                    Err(st.history_start + 1)
                } else {
                    let key = rd.key();
                    // A held resource's watch lags behind at the hold (never going back).
                    let held = sh
                        .watch_holds
                        .lock()
                        .expect("holds")
                        .get(&rd.plural)
                        .copied();
                    let upto = held.map_or(st.rv, |rv| rv.min(st.rv).max(pos));
                    let start = st.history.partition_point(|e| e.rv <= pos);
                    let out = st
                        .history
                        .range(start..)
                        .take_while(|e| e.rv <= upto)
                        .filter(|e| e.key == key && ns.as_deref().is_none_or(|n| n == e.ns))
                        .filter_map(|e| transform(e, &ls, &fs))
                        .collect();
                    pos = upto;
                    Ok(out)
                }
            };
            match batch {
                Err(oldest) => {
                    let st = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": format!("too old resource version: {pos} ({oldest})"), "reason": "Expired", "code": 410});
                    send(line("ERROR", st)).await;
                    return;
                }
                Ok(evs) => {
                    for (t, o) in evs {
                        if !send(line(t, present(&rd, &o))).await {
                            return;
                        }
                    }
                }
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let ticked = async {
                match tick.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = rv_rx.changed() => { if r.is_err() { return; } }
                _ = kill_rx.changed() => return,
                _ = sleep => return,
                _ = tx.closed() => return,
                _ = ticked => {
                    let cur = sh.state.lock().expect("state").rv;
                    // Only advertise an RV whose events this watcher has already seen.
                    if cur == pos && !send(bookmark(pos, false)).await {
                        return;
                    }
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .expect("response")
}
