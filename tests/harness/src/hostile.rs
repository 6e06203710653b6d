//! A small hostile HTTP server: what a tenant could put behind `spec.elasticsearch.url`.
//!
//! It answers whatever the test scripts (an Elasticsearch look-alike without the product header,
//! HTML pages, JSON errors carrying ESC sequences and newlines, non-JSON bodies, redirects to
//! another host) and records every request it receives — method, path, query, headers, body —
//! so that a test can assert what reached it: no PUT, no Azure key, no Authorization header.
//! The fault suite reuses it.
//!
//! ```no_run
//! # async fn demo() {
//! use inference_testenv::hostile::{HostileServer, Reply};
//! let server = HostileServer::start(|_request| Reply::html(502, "<h1>MARKER</h1>")).await;
//! // point spec.elasticsearch.url at server.url(), then:
//! assert!(server.requests().iter().all(|r| r.method != "PUT"));
//! # }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{json, Value};

/// One request as the hostile server received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Every header, names lower-case, values lossily decoded.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether `needle` appears anywhere in what was received (path, query, headers, body).
    pub fn contains(&self, needle: &str) -> bool {
        self.path.contains(needle)
            || self.query.as_deref().is_some_and(|q| q.contains(needle))
            || self
                .headers
                .iter()
                .any(|(k, v)| k.contains(needle) || v.contains(needle))
            || self.body_text().contains(needle)
    }
}

/// One scripted answer: exactly these status, headers and body (nothing is added, in particular
/// no `X-Elastic-Product` unless a header says so).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How the answer goes out on the wire (all at once unless a test says otherwise).
    pub delivery: Delivery,
}

/// How a [`Reply`] is delivered: the broken and slow ways a server (or a proxy in front of one)
/// answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Headers and the whole body at once.
    Whole,
    /// Nothing at all: the request is read, no status line is ever sent.
    Hang,
    /// Status and headers, then no body byte ever.
    HeadersThenSilence,
    /// The body one byte at a time, `every` apart.
    Trickle { every: Duration },
    /// The body, then the body again, forever (chunked).
    Endless,
    /// `Content-Length` of the whole body, then only its first half and the connection closed.
    Truncated,
}

/// The header Elasticsearch sends on every REST answer since 7.14 (elastic/elasticsearch#73434,
/// `RestController.dispatchRequest`).
pub const PRODUCT_HEADER: (&str, &str) = ("x-elastic-product", "Elasticsearch");

impl Reply {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            delivery: Delivery::Whole,
        }
    }

    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::new(status, "application/json", body.to_string())
    }

    /// An HTML page (a proxy's error page, an internal web service).
    pub fn html(status: u16, body: &str) -> Reply {
        Reply::new(status, "text/html; charset=utf-8", body)
    }

    /// A body that is not JSON, with any content type.
    pub fn text(status: u16, content_type: &str, body: &str) -> Reply {
        Reply::new(status, content_type, body)
    }

    /// Elasticsearch's error envelope (`{"error": {"root_cause", "type", "reason"}, "status"}`,
    /// `ElasticsearchException.generateFailureXContent`) with `reason` as given — control
    /// characters included — and no product header (add one with [`Reply::with_product_header`]).
    pub fn es_error(status: u16, kind: &str, reason: &str) -> Reply {
        Reply::json(
            status,
            &json!({
                "error": {
                    "root_cause": [{"type": kind, "reason": reason}],
                    "type": kind,
                    "reason": reason
                },
                "status": status
            }),
        )
    }

    /// The body of Elasticsearch's `GET /` (`RestMainAction`: name, cluster name and UUID,
    /// version, tagline) for `version`, without the product header.
    pub fn es_root(version: &str, cluster_uuid: &str) -> Reply {
        Reply::json(
            200,
            &json!({
                "name": "node-0",
                "cluster_name": "look-alike",
                "cluster_uuid": cluster_uuid,
                "version": {
                    "number": version,
                    "build_flavor": "default",
                    "build_type": "docker",
                    "lucene_version": "10.2.1",
                    "minimum_wire_compatibility_version": "8.19.0",
                    "minimum_index_compatibility_version": "8.0.0"
                },
                "tagline": "You Know, for Search"
            }),
        )
    }

    /// A redirect (`Location: location`) with an empty body.
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply {
            status,
            headers: vec![("location".into(), location.into())],
            body: Vec::new(),
            delivery: Delivery::Whole,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The same answer, claiming to be Elasticsearch.
    pub fn with_product_header(self) -> Reply {
        self.with_header(PRODUCT_HEADER.0, PRODUCT_HEADER.1)
    }

    /// The same answer, delivered as `delivery` says.
    pub fn delivered(mut self, delivery: Delivery) -> Reply {
        self.delivery = delivery;
        self
    }
}

/// Behaves like Elasticsearch 9.1 (product header included) up to the create, then never
/// answers the PUT: a cluster whose master is stuck, or a proxy that swallows writes.
pub fn elasticsearch_hanging_on_put(request: &Recorded) -> Reply {
    match request.method.as_str() {
        "PUT" => Reply::json(200, &json!({})).delivered(Delivery::Hang),
        _ => elasticsearch_without_product_header(request).with_product_header(),
    }
}

/// Behaves like Elasticsearch 9.1 for the operator's first create — `GET /`, a 404 for the
/// endpoint, a 200 for the PUT — but never sends the product header. An operator without the
/// product check sends this server its PUT, Azure key included.
pub fn elasticsearch_without_product_header(request: &Recorded) -> Reply {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/") => Reply::es_root("9.1.0", "look-alike-uuid"),
        ("GET", path) if path.starts_with("/_inference/") => {
            let id = path.rsplit('/').next().unwrap_or_default();
            Reply::es_error(
                404,
                "resource_not_found_exception",
                &format!("Inference endpoint not found [{id}]"),
            )
        }
        ("PUT", path) if path.starts_with("/_inference/") => {
            let mut segments = path.trim_start_matches("/_inference/").split('/');
            let task = segments.next().unwrap_or_default();
            let id = segments.next().unwrap_or_default();
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            Reply::json(
                200,
                &json!({"inference_id": id, "task_type": task, "service": body["service"],
                    "service_settings": body["service_settings"], "task_settings": {}}),
            )
        }
        _ => Reply::es_error(400, "illegal_argument_exception", "unexpected request"),
    }
}

type Script = Box<dyn Fn(&Recorded) -> Reply + Send + Sync>;

struct Inner {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<Arc<Script>>,
    /// Requests whose answer is not finished (the handler or its body still running).
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Body bytes handed to the connection (what a client may have read at most).
    body_bytes: AtomicUsize,
}

/// Counts one request in flight until dropped (with the handler, or with its body stream).
struct InFlight(Arc<Inner>);

impl InFlight {
    fn new(inner: &Arc<Inner>) -> InFlight {
        let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        inner.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(inner.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running hostile server (plain HTTP on 127.0.0.1); stops when dropped.
pub struct HostileServer {
    url: String,
    port: u16,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostileServer {
    /// Start a server answering every request with `script(request)`.
    pub async fn start(script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the hostile server");
        let port = listener.local_addr().expect("local address").port();
        HostileServer::serve(listener, format!("http://127.0.0.1:{port}"), port, script)
    }

    /// Start the server over HTTPS with a certificate for `names` only, from a CA of its own
    /// made for it; returns the server and that CA (PEM). A certificate for another name than
    /// the URL's, or a CA the client does not trust, is refused during the handshake, so a
    /// refusing client sends it no request at all.
    pub async fn start_tls(
        names: &[&str],
        script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> (Self, String) {
        let (config, ca_pem) = tls_material(names);
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the hostile server");
        let port = tcp.local_addr().expect("local address").port();
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(config),
        };
        let url = format!("https://127.0.0.1:{port}");
        (HostileServer::serve(listener, url, port, script), ca_pem)
    }

    fn serve<L>(
        listener: L,
        url: String,
        port: u16,
        script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        let inner = Arc::new(Inner {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(Arc::new(Box::new(script))),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            body_bytes: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HostileServer {
            url,
            port,
            inner,
            task,
        }
    }

    /// Start a server giving every request the same answer.
    pub async fn answering(reply: Reply) -> Self {
        HostileServer::start(move |_| reply.clone()).await
    }

    /// `http://127.0.0.1:<port>` (`https://` from [`HostileServer::start_tls`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same server under the name `localhost`: a different host in a URL (for redirects
    /// "to another host") that still reaches this process.
    pub fn url_as_localhost(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Replace the script (requests already recorded are kept).
    pub fn set_script(&self, script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        *lock(&self.inner.script) = Arc::new(Box::new(script));
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.inner.requests).clone()
    }

    /// Requests being answered right now (a hanging one counts until the client hangs up).
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests ever answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight.load(Ordering::SeqCst)
    }

    /// Body bytes handed to connections so far: an upper bound of what clients read.
    pub fn body_bytes_sent(&self) -> usize {
        self.inner.body_bytes.load(Ordering::SeqCst)
    }

    /// Whether any request so far contained `needle` (path, query, headers or body).
    pub fn received(&self, needle: &str) -> bool {
        self.requests().iter().any(|r| r.contains(needle))
    }
}

/// TLS on top of a TCP listener, the handshake done in `accept` (one at a time: enough for a
/// test); a failed handshake is dropped and the next connection accepted.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A CA of its own and a server certificate it signs for `names` (rcgen, rustls with ring).
fn tls_material(names: &[&str]) -> (Arc<rustls::ServerConfig>, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "inference-testenv hostile CA");
    let ca_cert = ca.self_signed(&ca_key).expect("self-sign the CA");
    let issuer = Issuer::from_params(&ca, &ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut leaf = CertificateParams::new(names).expect("leaf params");
    leaf.is_ca = IsCa::ExplicitNoCa;
    let leaf = leaf.signed_by(&leaf_key, &issuer).expect("sign the leaf");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .expect("server certificate");
    (Arc::new(config), ca_cert.pem())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let in_flight = InFlight::new(&inner);
    let script = lock(&inner.script).clone();
    let reply = script(&request);
    lock(&inner.requests).push(request);
    if reply.delivery == Delivery::Hang {
        // Dropped (and counted out) when the client hangs up.
        std::future::pending::<()>().await;
    }
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    if reply.delivery == Delivery::Truncated {
        response = response.header("content-length", reply.body.len().to_string());
    }
    let body = match reply.delivery {
        Delivery::Whole | Delivery::Hang => {
            inner
                .body_bytes
                .fetch_add(reply.body.len(), Ordering::SeqCst);
            Body::from(reply.body)
        }
        delivery => Body::from_stream(body_stream(delivery, reply.body, in_flight)),
    };
    response
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// The body of a reply delivered other than whole; `in_flight` lives as long as the stream.
fn body_stream(
    delivery: Delivery,
    body: Vec<u8>,
    in_flight: InFlight,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let body = Bytes::from(body);
    futures::stream::unfold((0usize, in_flight), move |(sent, in_flight)| {
        let body = body.clone();
        async move {
            let chunk = match delivery {
                Delivery::HeadersThenSilence => std::future::pending().await,
                Delivery::Trickle { every } if sent < body.len() => {
                    tokio::time::sleep(every).await;
                    body.slice(sent..sent + 1)
                }
                Delivery::Endless if !body.is_empty() => body.clone(),
                Delivery::Truncated if sent == 0 => body.slice(..body.len() / 2),
                // The end; for Truncated, short of the Content-Length: hyper closes the
                // connection.
                _ => return None,
            };
            in_flight
                .0
                .body_bytes
                .fetch_add(chunk.len(), Ordering::SeqCst);
            Some((Ok(chunk.clone()), (sent + chunk.len(), in_flight)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_requests_and_answers_the_script_exactly() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server =
            HostileServer::start(|r| Reply::redirect(302, &format!("http://other{}", r.path)))
                .await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http
            .put(format!("{}/a/b?x=1", server.url()))
            .header("Authorization", "ApiKey c2VjcmV0")
            .body("payload-MARK")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()["location"], "http://other/a/b");
        assert!(resp.headers().get("x-elastic-product").is_none());
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].method.as_str(), seen[0].path.as_str()),
            ("PUT", "/a/b")
        );
        assert_eq!(seen[0].query.as_deref(), Some("x=1"));
        assert_eq!(seen[0].header("authorization"), Some("ApiKey c2VjcmV0"));
        assert!(server.received("payload-MARK") && !server.received("absent"));

        server.set_script(|_| Reply::es_error(400, "x", "r\u{1b}[31m\n").with_product_header());
        let resp = http.get(server.url()).send().await.unwrap();
        assert_eq!(resp.headers()["x-elastic-product"], "Elasticsearch");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["reason"], "r\u{1b}[31m\n");
    }

    #[tokio::test]
    async fn the_look_alike_walks_an_operator_into_a_put() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = HostileServer::start(elasticsearch_without_product_header).await;
        let http = reqwest::Client::new();
        let root = http.get(server.url()).send().await.unwrap();
        assert!(root.headers().get("x-elastic-product").is_none());
        assert_eq!(
            root.json::<Value>().await.unwrap()["version"]["number"],
            "9.1.0"
        );
        let get = http
            .get(format!("{}/_inference/text_embedding/e1", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 404);
        let put = http
            .put(format!("{}/_inference/text_embedding/e1", server.url()))
            .body(r#"{"service": "azureopenai", "service_settings": {"api_key": "k"}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 200);
        assert_eq!(put.json::<Value>().await.unwrap()["inference_id"], "e1");
    }

    #[tokio::test]
    async fn deliveries_break_the_answer_as_named_and_are_counted() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A fresh connection per request: the truncated answer closes its own.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let server = HostileServer::answering(
            Reply::text(200, "application/json", "0123456789").delivered(Delivery::Truncated),
        )
        .await;
        // hyper closes the connection when the body ends short of its Content-Length; whether
        // the head was flushed before depends on its buffering, so the cut shows in either.
        let truncated = match http.get(server.url()).send().await {
            Ok(answer) => answer.bytes().await.is_err(),
            Err(error) => error.is_request(),
        };
        assert!(truncated, "5 of 10 promised bytes, then closed");

        server.set_script(|_| Reply::text(200, "text/plain", "ab").delivered(Delivery::Endless));
        let mut endless = http.get(server.url()).send().await.unwrap();
        let mut read = 0;
        while read < 1000 {
            read += endless.chunk().await.unwrap().unwrap().len();
        }
        assert!(server.body_bytes_sent() >= 1000);

        server.set_script(|_| Reply::text(200, "text/plain", "x").delivered(Delivery::Hang));
        let hung = http
            .get(server.url())
            .timeout(std::time::Duration::from_millis(300))
            .send()
            .await;
        assert!(hung.unwrap_err().is_timeout());
        assert!(
            server.max_in_flight() >= 2,
            "the endless and the hung answers overlapped"
        );
        drop(endless);
    }
}
