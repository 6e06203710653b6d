//! HTTP plumbing: accept loop (plain or TLS), request recording, latency, fault injection,
//! authentication, and ES's mandatory response headers
//! (docs/reference/elasticsearch-inference-api.md#product-header).

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::api::{classify, dispatch, Req, Resp, Shared, State};
use super::errors::EsError;
use super::{AuthKind, Fault, RecordedRequest, Route};

pub(crate) async fn serve(
    listener: TcpListener,
    sh: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    release: watch::Receiver<u64>,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        // Named once, while the client certainly holds the socket.
        let tagger = sh.lock().tagger.clone();
        let tag: Option<Arc<str>> = tagger.and_then(|t| t(peer)).map(Arc::from);
        let sh = sh.clone();
        let tls = tls.clone();
        let release = release.clone();
        tokio::spawn(async move {
            // A duplicate of the socket lets a handler set SO_LINGER=0 so that dropping the
            // connection sends a TCP RST (fault `Reset`).
            let Ok(std_stream) = stream.into_std() else {
                return;
            };
            let Ok(dup) = std_stream.try_clone() else {
                return;
            };
            let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
                return;
            };
            let dup = Arc::new(dup);
            let svc = service_fn(move |req| {
                handle(sh.clone(), release.clone(), dup.clone(), tag.clone(), req)
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match tls {
                Some(acceptor) => {
                    if let Ok(s) = acceptor.accept(stream).await {
                        let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                    }
                }
                None => {
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                }
            }
        });
    }
}

fn auth_kind(header: Option<&str>) -> AuthKind {
    let Some(h) = header else {
        return AuthKind::None;
    };
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            use base64::Engine;
            let user = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .map(|s| s.split_once(':').map(|(u, _)| u.to_string()).unwrap_or(s))
                .unwrap_or_default();
            AuthKind::Basic { user }
        }
        "apikey" => AuthKind::ApiKey,
        "bearer" => AuthKind::Bearer,
        other => AuthKind::Other(other.to_string()),
    }
}

const WWW_AUTHENTICATE: [&str; 3] = [
    "Basic realm=\"security\", charset=\"UTF-8\"",
    "Bearer realm=\"security\"",
    "ApiKey",
];

/// Security realm check. Failure: 401 `security_exception` with `WWW-Authenticate` headers
/// (inferred: general ES behaviour, not on the docs/reference/ pages).
fn check_auth(st: &State, header: Option<&str>, uri: &str) -> Result<(), EsError> {
    if !st.auth.enabled() {
        return Ok(());
    }
    let fail = |reason: String| {
        let mut e = EsError::new(401, "security_exception", reason)
            .with_extra("header", json!({"WWW-Authenticate": WWW_AUTHENTICATE}));
        for h in WWW_AUTHENTICATE {
            e = e.with_header("WWW-Authenticate", h);
        }
        e
    };
    let Some(h) = header else {
        return Err(fail(format!(
            "missing authentication credentials for REST request [{uri}]"
        )));
    };
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let rest = rest.trim();
    let ok = match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let (u, p) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
            if st.auth.basic.iter().any(|(bu, bp)| bu == u && bp == p) {
                true
            } else {
                return Err(fail(format!(
                    "unable to authenticate user [{u}] for REST request [{uri}]"
                )));
            }
        }
        "apikey" => st.auth.api_keys.iter().any(|k| k == rest),
        "bearer" => st.auth.bearer_tokens.iter().any(|k| k == rest),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(fail(
            "unable to authenticate with provided credentials and anonymous access is not allowed for this request".into(),
        ))
    }
}

fn take_fault(st: &mut State, route: Route) -> Option<Fault> {
    let idx = st
        .faults
        .iter()
        .position(|f| f.route == Route::Any || f.route == route)?;
    let rule = &mut st.faults[idx];
    let fault = rule.fault;
    if let Some(n) = rule.remaining.as_mut() {
        *n -= 1;
        if *n == 0 {
            st.faults.remove(idx);
        }
    }
    Some(fault)
}

/// Body for an injected status (inferred: typical ES errors for these statuses).
fn injected(status: u16) -> EsError {
    match status {
        429 => EsError::new(
            429,
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation [es-double injected fault]",
        ),
        503 => EsError::new(
            503,
            "cluster_block_exception",
            "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
        ),
        s => EsError::new(s, "exception", format!("es-double injected fault [{s}]")),
    }
}

/// Every answer carries `X-elastic-product: Elasticsearch`, as every REST answer of Elasticsearch
/// does since 7.14 (elastic/elasticsearch#73434): `RestController.dispatchRequest` adds it before
/// any handler runs — so errors, 404s and the 401 of the security layer carry it too — and
/// `dispatchBadRequest` adds it to answers for malformed requests and failed header validation
/// (the 8.x authentication path). The one route known to lack it, snapshot create
/// (elastic/elasticsearch#82358), is not emulated. The operator refuses a 2xx answer without it
/// (`NotElasticsearch`), as the official clients do.
fn build(r: Resp, head: bool) -> Response<Full<Bytes>> {
    let media = if r.stream.is_some() {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut b = Response::builder()
        .status(r.status)
        .header("content-type", media)
        .header("x-elastic-product", "Elasticsearch");
    for (k, v) in &r.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let body = match (&r.stream, head) {
        (_, true) => Vec::new(),
        (Some(text), false) => text.clone().into_bytes(),
        (None, false) => r.body.to_bytes(),
    };
    b.body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Take one hold of `route` if any is pending ([`super::EsDouble::hold_next`]).
fn take_hold(st: &mut State, route: Route) -> bool {
    let Some(idx) = st
        .holds
        .iter()
        .position(|(r, _)| *r == Route::Any || *r == route)
    else {
        return false;
    };
    st.holds[idx].1 -= 1;
    if st.holds[idx].1 == 0 {
        st.holds.remove(idx);
    }
    true
}

/// Wait for [`super::EsDouble::release_hung`], counted in `held` meanwhile.
async fn held(sh: &Shared, mut release: watch::Receiver<u64>) {
    let start = *release.borrow_and_update();
    while release.changed().await.is_ok() && *release.borrow() == start {}
    sh.lock().held -= 1;
}

/// Record the status answered to request `seq`.
fn record_status(sh: &Shared, seq: u64, status: u16) {
    let mut st = sh.lock();
    if let Some(r) = st.requests.iter_mut().rev().find(|r| r.seq == seq) {
        r.status = Some(status);
    }
}

async fn handle(
    sh: Arc<Shared>,
    release: watch::Receiver<u64>,
    dup: Arc<std::net::TcpStream>,
    tag: Option<Arc<str>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().map(str::to_string);
    let uri = match &raw_query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let query: Vec<(String, String)> = raw_query
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let auth_header = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let req = Req {
        method: method.clone(),
        path: path.clone(),
        uri: uri.clone(),
        query,
        body: (!bytes.is_empty()).then(|| bytes.to_vec()),
    };
    let route = classify(&method, &req.segments());
    let (latency, fault, hold, seq) = {
        let mut st = sh.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.requests.push(RecordedRequest {
            method: method.clone(),
            path,
            query: raw_query,
            body: serde_json::from_slice::<Value>(&bytes).ok(),
            raw_body: String::from_utf8_lossy(&bytes).into_owned(),
            auth: auth_kind(auth_header.as_deref()),
            route,
            at: std::time::Instant::now(),
            tag: tag.as_deref().map(str::to_owned),
            status: None,
            seq,
        });
        let latency = st.latency + st.route_latency.get(&route).copied().unwrap_or_default();
        let fault = take_fault(&mut st, route);
        let hold = fault.is_none() && take_hold(&mut st, route);
        if hold {
            st.held += 1;
        }
        (latency, fault, hold, seq)
    };
    let response = answer(
        sh.clone(),
        release,
        dup,
        req,
        auth_header,
        seq,
        (latency, fault, hold),
    )
    .await;
    if let Ok(r) = &response {
        record_status(&sh, seq, r.status().as_u16());
    }
    response
}

/// Carry out a recorded request: latency, then the fault or hold it drew, then authentication
/// and the API.
async fn answer(
    sh: Arc<Shared>,
    release: watch::Receiver<u64>,
    dup: Arc<std::net::TcpStream>,
    req: Req,
    auth_header: Option<String>,
    seq: u64,
    (latency, fault, hold): (Duration, Option<Fault>, bool),
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (method, uri) = (req.method.clone(), req.uri.clone());
    if fault.is_none() {
        // Elasticsearch finishes what it started even when the client goes away (a closed
        // connection does not cancel a create, inferred:
        // docs/reference/elasticsearch-inference-api.md#timeout), so the work runs in its own task
        // that a dropped connection does not cancel.
        let work = tokio::spawn(async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            if hold {
                held(&sh, release).await;
            }
            let auth = {
                let st = sh.lock();
                check_auth(&st, auth_header.as_deref(), &uri)
            };
            if let Err(e) = auth {
                return build(e.into(), method == "HEAD");
            }
            let resp = build(dispatch(&sh, &req).await, method == "HEAD");
            // Recorded here too: the client may be gone, the work is done all the same.
            record_status(&sh, seq, resp.status().as_u16());
            resp
        });
        return work.await.map_err(std::io::Error::other);
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Some(Fault::Reset) => {
            let _ = socket2::SockRef::from(&*dup).set_linger(Some(Duration::ZERO));
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "es-double injected connection reset",
            ));
        }
        Some(Fault::Hang) => {
            let mut rx = release;
            let start = *rx.borrow_and_update();
            loop {
                if rx.changed().await.is_err() {
                    pending::<()>().await;
                }
                if *rx.borrow() != start {
                    break;
                }
            }
        }
        Some(Fault::Status(s)) => return Ok(build(injected(s).into(), false)),
        None => {}
    }
    let auth = {
        let st = sh.lock();
        check_auth(&st, auth_header.as_deref(), &uri)
    };
    if let Err(e) = auth {
        return Ok(build(e.into(), method == "HEAD"));
    }
    let resp = dispatch(&sh, &req).await;
    Ok(build(resp, method == "HEAD"))
}
