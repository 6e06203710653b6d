//! HTTP client for the `_inference` API (reqwest + rustls).
//!
//! * Every call has a timeout: the connection's `request_timeout`, or for PUT (and 9.4+
//!   `_update`, which calls the provider) the server-side timeout plus a margin.
//! * Ids and task types are percent-escaped as single path segments; the two-segment form
//!   `_inference/{task_type}/{id}` is always used.
//! * Credentials are default headers marked sensitive; redirects are not followed but reported
//!   (`ElasticsearchRedirected`). Nothing logged contains a body or a header: one debug event per
//!   request with method, path, status.
//! * Product check, as the official clients do: a 2xx answer without `X-Elastic-Product:
//!   Elasticsearch` is `NotElasticsearch`, and the caller sends that server nothing more. The
//!   check runs on every answer, so on the `GET /` every connection starts with, and on the
//!   `GET` whose answer decides whether a PUT (carrying the provider key) follows. Error answers
//!   without the header are described, never quoted (see `error.rs`).
//! * TLS uses rustls with whatever process-wide crypto provider is installed (the binary installs
//!   ring first). If none is installed, ring is installed here rather than letting reqwest panic.

use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use super::body::{create_body, Endpoint, EndpointConfig, RequestBody, ServiceSecrets};
use super::error::{clean_text, redact_url, ApiError, EsError};
use super::version::EsVersion;
use super::TaskType;

/// Extra client-side time on top of Elasticsearch's own timeout, so that ES answers (with its
/// timeout error) before the client gives up.
const SERVER_TIMEOUT_MARGIN: Duration = Duration::from_secs(15);
/// The longest this client waits for a PUT of `task` to `version` (without a shorter `wait`):
/// Elasticsearch's own timeout plus the margin, or `request_timeout` if longer. Elasticsearch
/// finishes a PUT whose client has gone (src/controller/in_flight.rs), so a create is taken to
/// land or fail within this of being sent (inferred: Elasticsearch's timeout bounds the PUT).
pub fn put_deadline(request_timeout: Duration, version: &EsVersion, task: TaskType) -> Duration {
    request_timeout.max(version.put_server_timeout(task) + SERVER_TIMEOUT_MARGIN)
}
/// Upper bound for the TCP/TLS connect phase.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read (endpoint configs are small; this guards against proxies).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the operator authenticates to Elasticsearch.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    #[default]
    None,
    /// HTTP basic (`Authorization: Basic ...`).
    Basic {
        username: String,
        password: SecretString,
    },
    /// Elasticsearch API key (`Authorization: ApiKey ...`): either the `encoded` value returned
    /// by the create-API-key API, or `id:api_key` (encoded here).
    ApiKey(SecretString),
}

/// Where Elasticsearch is and how to reach it.
#[derive(Clone)]
pub struct ConnectionConfig {
    /// Base URL (`https://es-http.ns.svc:9200`); a path prefix is kept. Userinfo in the URL is
    /// used as basic auth when `auth` is `None` and is never shown in messages.
    pub url: Url,
    pub auth: Auth,
    /// PEM bundle of trusted CA certificates; when set, only these are trusted.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any server certificate (explicit opt-out).
    pub insecure_skip_tls_verify: bool,
    /// Timeout of ordinary calls (GET, DELETE, pre-9.4 `_update`).
    pub request_timeout: Duration,
    /// Addresses to connect to for the URL's host name instead of resolving it again: the ones
    /// the destination policy checked (empty: resolve as usual).
    pub resolved: Vec<std::net::SocketAddr>,
}

impl ConnectionConfig {
    /// No auth, system roots, 30 s request timeout.
    pub fn new(url: Url) -> Self {
        Self {
            url,
            auth: Auth::None,
            ca_pem: None,
            insecure_skip_tls_verify: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            resolved: Vec::new(),
        }
    }
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.auth {
            Auth::None => "none",
            Auth::Basic { .. } => "basic",
            Auth::ApiKey(_) => "api_key",
        };
        f.debug_struct("ConnectionConfig")
            .field("url", &redact_url(&self.url))
            .field("auth", &auth)
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// What `GET /` says about the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    pub version: EsVersion,
    pub cluster_uuid: String,
    pub cluster_name: String,
    /// `default` or `serverless` (absent on old versions).
    pub build_flavor: Option<String>,
}

/// Elasticsearch's cluster UUID is 22 URL-safe base64 characters (`_na_` before the first
/// election); the cluster name is a setting. Room to spare, but bounded.
const MAX_CLUSTER_UUID_CHARS: usize = 64;
const MAX_CLUSTER_NAME_CHARS: usize = 256;

/// Query options of DELETE (8.15+).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Only report what references the endpoint; delete nothing.
    pub dry_run: bool,
    /// Delete even when pipelines / `semantic_text` mappings reference the endpoint.
    pub force: bool,
}

/// The DELETE answer body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResponse {
    pub acknowledged: bool,
    /// Ingest pipelines referencing the endpoint.
    #[serde(default)]
    pub pipelines: Vec<String>,
    /// Indices whose `semantic_text` mappings reference the endpoint (8.16+).
    #[serde(default)]
    pub indexes: Vec<String>,
    /// Dry run only: the text a real delete would refuse with (`""` when unreferenced).
    #[serde(default)]
    pub error_message: Option<String>,
}

/// Result of a DELETE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Elasticsearch answered 200 (deleted, or the dry-run report).
    Done(DeleteResponse),
    /// There was no such endpoint (404).
    NotFound,
}

impl DeleteOutcome {
    /// Whether the endpoint existed.
    pub fn found(&self) -> bool {
        matches!(self, DeleteOutcome::Done(_))
    }

    /// The answer body, if the endpoint existed.
    pub fn response(&self) -> Option<&DeleteResponse> {
        match self {
            DeleteOutcome::Done(r) => Some(r),
            DeleteOutcome::NotFound => None,
        }
    }
}

/// Client for one Elasticsearch cluster. Cheap to clone.
#[derive(Clone)]
pub struct EsClient {
    http: reqwest::Client,
    base: Url,
    request_timeout: Duration,
    /// When each endpoint id was last written through this client (shared by its clones), so a
    /// listing taken before the write is not trusted for that id ([`EsClient::written_since`]).
    writes: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>,
}

impl fmt::Debug for EsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EsClient")
            .field("base", &redact_url(&self.base))
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn sensitive(value: String) -> Result<HeaderValue, EsError> {
    let mut v = HeaderValue::from_str(&value).map_err(|_| {
        EsError::Config("credentials contain characters not allowed in an HTTP header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn auth_header(auth: &Auth) -> Result<Option<HeaderValue>, EsError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match auth {
        Auth::None => Ok(None),
        Auth::Basic { username, password } => {
            let raw = format!("{username}:{}", password.expose_secret());
            sensitive(format!("Basic {}", b64.encode(raw))).map(Some)
        }
        Auth::ApiKey(key) => {
            let key = key.expose_secret().trim();
            if key.is_empty() {
                return Err(EsError::Config("the API key is empty".into()));
            }
            // Base64 never contains ':'; `id:key` is the raw form.
            let encoded = if key.contains(':') {
                b64.encode(key)
            } else {
                key.to_owned()
            };
            sensitive(format!("ApiKey {encoded}")).map(Some)
        }
    }
}

#[derive(Deserialize)]
struct RootResponse {
    #[serde(default)]
    cluster_name: String,
    #[serde(default)]
    cluster_uuid: String,
    version: RootVersion,
}

#[derive(Deserialize)]
struct RootVersion {
    number: String,
    #[serde(default)]
    build_flavor: Option<String>,
}

#[derive(Deserialize)]
struct GetResponse {
    endpoints: Vec<Endpoint>,
}

impl EsClient {
    /// Build a client. Fails on an unusable URL, bad CA PEM or credentials that cannot be a header.
    pub fn new(cfg: ConnectionConfig) -> Result<Self, EsError> {
        ensure_crypto_provider();
        let mut base = cfg.url.clone();
        if !matches!(base.scheme(), "http" | "https") {
            return Err(EsError::Config(format!(
                "unsupported URL scheme [{}] (http or https)",
                base.scheme()
            )));
        }
        if base.cannot_be_a_base() || base.host_str().is_none_or(str::is_empty) {
            return Err(EsError::Config(format!(
                "[{}] is not a usable base URL",
                redact_url(&base)
            )));
        }
        let mut auth = cfg.auth.clone();
        if !base.username().is_empty() || base.password().is_some() {
            if matches!(auth, Auth::None) {
                let decode = |s: &str| {
                    percent_decode(s).ok_or_else(|| {
                        EsError::Config("URL userinfo is not valid percent-encoded UTF-8".into())
                    })
                };
                auth = Auth::Basic {
                    username: decode(base.username())?,
                    password: SecretString::from(decode(base.password().unwrap_or(""))?),
                };
            }
            let _ = base.set_username("");
            let _ = base.set_password(None);
        }
        base.set_query(None);
        base.set_fragment(None);

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(v) = auth_header(&auth)? {
            headers.insert(AUTHORIZATION, v);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(cfg.request_timeout.min(MAX_CONNECT_TIMEOUT))
            .user_agent(concat!("inference-operator/", env!("CARGO_PKG_VERSION")));
        if let (Some(url::Host::Domain(domain)), false) = (base.host(), cfg.resolved.is_empty()) {
            builder = builder.resolve_to_addrs(domain, &cfg.resolved);
        }
        if cfg.insecure_skip_tls_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        } else if let Some(pem) = &cfg.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| EsError::Config(format!("cannot read the CA certificate PEM: {e}")))?;
            if certs.is_empty() {
                return Err(EsError::Config(
                    "the CA bundle contains no PEM certificate".into(),
                ));
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| EsError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            request_timeout: cfg.request_timeout,
            writes: Default::default(),
        })
    }

    /// Whether endpoint `inference_id` was written (created, updated or deleted, whatever the
    /// answer) through this client at or after `since`: a listing requested at `since` may not
    /// show that write.
    pub fn written_since(&self, inference_id: &str, since: Instant) -> bool {
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.get(inference_id).is_some_and(|at| *at >= since)
    }

    /// Forget writes older than `before`: no listing still served was requested before it.
    pub fn forget_writes_before(&self, before: Instant) {
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.retain(|_, at| *at >= before);
    }

    /// Recorded when a write's answer (or failure) comes back: until then no listing could
    /// be trusted to show it either, and a listing requested before this instant is not.
    fn wrote(&self, inference_id: &str) {
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(inference_id.to_owned(), Instant::now());
    }

    /// The base URL (without userinfo).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url, EsError> {
        let mut url = self.base.clone();
        if !segments.is_empty() {
            let mut segs = url
                .path_segments_mut()
                .map_err(|_| EsError::Config("base URL cannot have a path".into()))?;
            segs.pop_if_empty();
            segs.extend(segments);
        }
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Send one request; `Ok` only for a 2xx answer from Elasticsearch, with the body bytes.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&RequestBody>,
        timeout: Duration,
    ) -> Result<Answered, EsError> {
        let method_str = method.as_str().to_owned();
        let (head, bytes) = self.exchange(method, url.clone(), body, timeout).await?;
        judge(&method_str, &url, head, bytes)
    }

    /// Send one request and read its answer (bounded), whatever its status; logged.
    async fn exchange(
        &self,
        method: Method,
        url: Url,
        body: Option<&RequestBody>,
        timeout: Duration,
    ) -> Result<(Head, Vec<u8>), EsError> {
        let started = Instant::now();
        let method_str = method.as_str().to_owned();
        let path = url.path().to_owned();
        let mut req = self.http.request(method, url.clone()).timeout(timeout);
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_bytes());
        }
        let result = async {
            let mut resp = req.send().await?;
            let head = Head::of(&resp);
            let mut buf = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                let room = MAX_RESPONSE_BYTES.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    break;
                }
            }
            Ok::<_, reqwest::Error>((head, buf))
        }
        .await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok((head, bytes)) => {
                tracing::debug!(
                    method = %method_str,
                    path = %path,
                    status = head.status.as_u16(),
                    elastic_product = head.product == Product::Elasticsearch,
                    bytes = bytes.len(),
                    elapsed_ms,
                    "elasticsearch request"
                );
                Ok((head, bytes))
            }
            Err(e) => {
                let err = EsError::from_reqwest(e, &method_str, &url, timeout);
                tracing::debug!(
                    method = %method_str,
                    path = %path,
                    elapsed_ms,
                    error = %err,
                    detail = err.log_detail().unwrap_or_default(),
                    "elasticsearch request failed"
                );
                Err(err)
            }
        }
    }

    /// `GET /`: version, cluster UUID and name.
    pub async fn info(&self) -> Result<ClusterInfo, EsError> {
        let url = self.url(&[], &[])?;
        let answer = self
            .send(Method::GET, url.clone(), None, self.request_timeout)
            .await?;
        cluster_info(&url, &answer)
    }

    /// `GET _inference/{task}/{id}`. `Ok(None)` when the endpoint does not exist; an error of
    /// class `TaskTypeMismatch` when it exists with another task type
    /// ([`EsError::stored_task_type`] tells which).
    pub async fn get_endpoint(
        &self,
        task: TaskType,
        inference_id: &str,
    ) -> Result<Option<Endpoint>, EsError> {
        let url = self.url(&["_inference", task.as_str(), inference_id], &[])?;
        match self
            .send(Method::GET, url.clone(), None, self.request_timeout)
            .await
        {
            Ok(answer) => endpoint_in(&url, &answer, inference_id),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET _inference/_all`: every endpoint the credential may see, the preconfigured ones
    /// included, sorted by id. The same action (`cluster:monitor/xpack/inference/get`, cluster
    /// privilege `monitor_inference`) as the GET of one id; Elasticsearch reads at most 10,000
    /// stored endpoints for it ([`LISTING_LIMIT`];
    /// docs/reference/elasticsearch-inference-api.md#get-api).
    pub async fn list_endpoints(&self) -> Result<Vec<Endpoint>, EsError> {
        let url = self.url(&["_inference", "_all"], &[])?;
        let answer = self
            .send(Method::GET, url.clone(), None, self.request_timeout)
            .await?;
        endpoints_in(&url, &answer)
    }

    /// `PUT _inference/{task}/{id}` (create only). Sends `?timeout=` when the version accepts it;
    /// the client waits the server timeout plus a margin. A client-side timeout does not mean
    /// the endpoint was not created: GET before retrying.
    pub async fn create_endpoint(
        &self,
        cfg: &EndpointConfig,
        secrets: &ServiceSecrets,
        version: &EsVersion,
    ) -> Result<Endpoint, EsError> {
        self.create_endpoint_within(cfg, secrets, version, None)
            .await
    }

    /// [`Self::create_endpoint`], asking Elasticsearch to wait at most `wait` (instead of its
    /// default) where the version accepts `?timeout=`: for a model deployment, which answers 408
    /// when it has not started by then and goes on in the background
    /// (docs/reference/elasticsearch-services.md#in-cluster-deployments). Versions without the
    /// parameter wait their default.
    pub async fn create_endpoint_within(
        &self,
        cfg: &EndpointConfig,
        secrets: &ServiceSecrets,
        version: &EsVersion,
        wait: Option<Duration>,
    ) -> Result<Endpoint, EsError> {
        let takes_timeout = version.supports_put_timeout_param();
        let server_timeout = match wait {
            Some(wait) if takes_timeout => wait,
            _ => version.put_server_timeout(cfg.task_type),
        };
        let query = if takes_timeout {
            vec![("timeout", time_value(server_timeout))]
        } else {
            Vec::new()
        };
        let url = self.url(
            &["_inference", cfg.task_type.as_str(), &cfg.inference_id],
            &query,
        )?;
        let body = create_body(cfg, secrets);
        let timeout = self
            .request_timeout
            .max(server_timeout + SERVER_TIMEOUT_MARGIN);
        let created = self.put_endpoint(url, &body, timeout).await;
        self.wrote(&cfg.inference_id);
        created
    }

    /// `GET _ml/trained_models/{deployment_id}/_stats`: the model deployment with that id
    /// (for an in-cluster endpoint, its inference id), `None` when there is none (404, or no
    /// entry with that deployment id). The stats API takes a deployment id as well as a model id
    /// and needs the `monitor_ml` cluster privilege
    /// (<https://www.elastic.co/guide/en/elasticsearch/reference/8.0/get-trained-models-stats.html>;
    /// docs/reference/elasticsearch-services.md#in-cluster-deployments).
    pub async fn deployment_stats(
        &self,
        deployment_id: &str,
    ) -> Result<Option<DeploymentStats>, EsError> {
        let url = self.url(&["_ml", "trained_models", deployment_id, "_stats"], &[])?;
        match self
            .send(Method::GET, url.clone(), None, self.request_timeout)
            .await
        {
            Ok(answer) => {
                let stats: StatsResponse = decode("GET", &url, &answer)?;
                Ok(deployment_in(&stats, deployment_id))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT _inference/{task}/{id}/_update` with a body from [`super::body::update_body`].
    /// `?timeout=` on 9.5+; on 9.4+ (provider validation) the client waits 30 s plus a margin.
    /// The body's secret is scrubbed from echoed error texts.
    pub async fn update_endpoint(
        &self,
        task: TaskType,
        inference_id: &str,
        body: &RequestBody,
        version: &EsVersion,
    ) -> Result<Endpoint, EsError> {
        let server_timeout = version.update_server_timeout();
        let query = match server_timeout {
            Some(t) if version.supports_update_timeout_param() => {
                vec![("timeout", format!("{}s", t.as_secs()))]
            }
            _ => Vec::new(),
        };
        let url = self.url(
            &["_inference", task.as_str(), inference_id, "_update"],
            &query,
        )?;
        let timeout = server_timeout.map_or(self.request_timeout, |t| {
            self.request_timeout.max(t + SERVER_TIMEOUT_MARGIN)
        });
        let updated = self.put_endpoint(url, body, timeout).await;
        self.wrote(inference_id);
        updated
    }

    /// A PUT that answers with the endpoint; the body's secrets are scrubbed from any error it
    /// echoes.
    async fn put_endpoint(
        &self,
        url: Url,
        body: &RequestBody,
        timeout: Duration,
    ) -> Result<Endpoint, EsError> {
        let secrets = body.secret_values();
        let scrub = |e: EsError| secrets.iter().fold(e, |e, s| e.scrub(s));
        let answer = self
            .send(Method::PUT, url.clone(), Some(body), timeout)
            .await
            .map_err(scrub)?;
        decode("PUT", &url, &answer).map_err(scrub)
    }

    /// `DELETE _inference/{task}/{id}`. 404 → [`DeleteOutcome::NotFound`]; refused because the
    /// endpoint is referenced → error of class `InUse` (message = Elasticsearch's text).
    /// `dry_run`/`force` are only sent when set (8.15+).
    pub async fn delete_endpoint(
        &self,
        task: TaskType,
        inference_id: &str,
        opts: DeleteOptions,
    ) -> Result<DeleteOutcome, EsError> {
        let mut query = Vec::new();
        if opts.dry_run {
            query.push(("dry_run", "true".to_owned()));
        }
        if opts.force {
            query.push(("force", "true".to_owned()));
        }
        let url = self.url(&["_inference", task.as_str(), inference_id], &query)?;
        let sent = self
            .send(Method::DELETE, url.clone(), None, self.request_timeout)
            .await;
        if !opts.dry_run {
            self.wrote(inference_id);
        }
        match sent {
            Ok(answer) => decode("DELETE", &url, &answer).map(DeleteOutcome::Done),
            Err(e) if e.is_not_found() => Ok(DeleteOutcome::NotFound),
            Err(e) => Err(e),
        }
    }
}

impl EsClient {
    /// The health probe ([`super::probe::probe_request`]): `Ok` when the provider answered,
    /// within `timeout` (the probe's own time box, not the client's request timeout). An
    /// `event: error` in a streamed answer is an error like any other; the answer is otherwise
    /// not read. `secrets` are scrubbed from echoed texts (Elasticsearch never echoes them in
    /// the versions read; this is a second line of defence).
    pub async fn probe(
        &self,
        task: TaskType,
        inference_id: &str,
        timeout: Duration,
        secrets: &[&str],
    ) -> Result<(), EsError> {
        let (path, body) = super::probe::probe_request(task, inference_id);
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        let url = self.url(&segments, &[])?;
        let body = RequestBody::plain(body);
        let scrub = |e: EsError| secrets.iter().fold(e, |e, s| e.scrub(s));
        let (mut head, mut bytes) = self
            .exchange(Method::POST, url.clone(), Some(&body), timeout)
            .await
            .map_err(scrub)?;
        if head.media == "text/event-stream" {
            if let Some((status, data)) = super::probe::stream_error(&bytes) {
                head.status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                head.media = "application/json";
                bytes = data;
            }
        }
        judge("POST", &url, head, bytes).map(|_| ()).map_err(scrub)
    }
}

/// A model deployment as the trained model stats API reports it (`deployment_stats`,
/// elastic/elasticsearch-specification `specification/ml/_types/TrainedModel.ts`
/// `TrainedModelDeploymentStats`). Its texts reach status messages: cleaned and bounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentStats {
    /// `starting`, `started`, `stopping`, `failed`.
    pub state: String,
    /// Why it is in that state (set for `failed`).
    pub reason: Option<String>,
    /// `allocation_status.state`: `starting` (no node yet), `started` (at least one node),
    /// `fully_allocated`.
    pub allocation_state: Option<String>,
    pub allocation_count: Option<u64>,
    pub target_allocation_count: Option<u64>,
}

impl DeploymentStats {
    /// Started as the PUT itself waits for it: the deployment `started`, and an allocation
    /// serving (allocation state `started` or `fully_allocated`, or none reported).
    pub fn is_started(&self) -> bool {
        self.state == "started"
            && self
                .allocation_state
                .as_deref()
                .is_none_or(|a| a == "started" || a == "fully_allocated")
    }

    /// `deployment state starting, allocation state starting (0 of 1 allocations)`.
    pub fn describe(&self) -> String {
        let mut out = format!("deployment state {}", self.state);
        if let Some(reason) = &self.reason {
            out.push_str(&format!(" ({reason})"));
        }
        if let Some(allocation) = &self.allocation_state {
            out.push_str(&format!(", allocation state {allocation}"));
        }
        if let (Some(n), Some(target)) = (self.allocation_count, self.target_allocation_count) {
            out.push_str(&format!(" ({n} of {target} allocations)"));
        }
        out
    }
}

#[derive(Deserialize)]
struct StatsResponse {
    #[serde(default)]
    trained_model_stats: Vec<ModelStats>,
}

#[derive(Deserialize)]
struct ModelStats {
    #[serde(default)]
    model_id: String,
    #[serde(default)]
    deployment_stats: Option<RawDeployment>,
}

#[derive(Deserialize)]
struct RawDeployment {
    #[serde(default)]
    deployment_id: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    allocation_status: Option<RawAllocation>,
}

#[derive(Deserialize)]
struct RawAllocation {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    allocation_count: Option<u64>,
    #[serde(default)]
    target_allocation_count: Option<u64>,
}

/// Longest state or reason text kept from a stats answer.
const MAX_DEPLOYMENT_TEXT_CHARS: usize = 256;

/// The deployment `id` in a stats answer (pure). Releases before deployment ids (8.8) keyed the
/// deployment by its model id.
fn deployment_in(stats: &StatsResponse, id: &str) -> Option<DeploymentStats> {
    let clean = |t: &str| clean_text(t, MAX_DEPLOYMENT_TEXT_CHARS);
    stats.trained_model_stats.iter().find_map(|m| {
        let d = m.deployment_stats.as_ref()?;
        let dep_id = d.deployment_id.as_deref().unwrap_or(&m.model_id);
        (dep_id == id).then(|| DeploymentStats {
            state: clean(d.state.as_deref().unwrap_or("unknown")),
            reason: d.reason.as_deref().map(clean),
            allocation_state: d
                .allocation_status
                .as_ref()
                .and_then(|a| a.state.as_deref())
                .map(clean),
            allocation_count: d
                .allocation_status
                .as_ref()
                .and_then(|a| a.allocation_count),
            target_allocation_count: d
                .allocation_status
                .as_ref()
                .and_then(|a| a.target_allocation_count),
        })
    })
}

/// A duration as an Elasticsearch time value: whole seconds as `5s`, anything finer as `1500ms`.
fn time_value(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A 2xx answer that passed the product check.
struct Answered {
    status: StatusCode,
    media: &'static str,
    bytes: Vec<u8>,
}

impl Answered {
    /// A 2xx answer that is not what the API documents, described without its body.
    fn unexpected(&self, method: &str, url: &Url, problem: &str) -> EsError {
        EsError::UnexpectedResponse {
            method: method.to_owned(),
            path: url.path().to_owned(),
            status: self.status.as_u16(),
            detail: format!(
                "a {} body of {} bytes: {problem} (not shown)",
                self.media,
                self.bytes.len()
            ),
        }
    }
}

/// What `X-Elastic-Product` said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Product {
    Elasticsearch,
    Missing,
    Other,
}

/// The parts of an answer's head the client looks at.
#[derive(Clone, Debug)]
struct Head {
    status: StatusCode,
    product: Product,
    media: &'static str,
    location: Option<String>,
}

impl Head {
    fn of(resp: &reqwest::Response) -> Self {
        Self::from_parts(resp.status(), resp.headers())
    }

    fn from_parts(status: StatusCode, headers: &HeaderMap) -> Self {
        // Elasticsearch adds `X-elastic-product: Elasticsearch` to every REST answer since 7.14
        // (elastic/elasticsearch#73434, `RestController.dispatchRequest` / `dispatchBadRequest`);
        // the official clients compare the value exactly (elasticsearch-java
        // `ElasticsearchTransportBase.checkProductHeader`, elasticsearch-py `BaseClient.perform_request`).
        let product = match headers.get("x-elastic-product") {
            None => Product::Missing,
            Some(v) if v.as_bytes() == b"Elasticsearch" => Product::Elasticsearch,
            Some(_) => Product::Other,
        };
        Head {
            status,
            product,
            media: media_kind(headers.get(CONTENT_TYPE)),
            location: headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }
}

fn decode<T: DeserializeOwned>(method: &str, url: &Url, answer: &Answered) -> Result<T, EsError> {
    serde_json::from_slice(&answer.bytes)
        .map_err(|e| answer.unexpected(method, url, json_problem(&e)))
}

/// `GET /`'s body: version, cluster UUID and name.
fn cluster_info(url: &Url, answer: &Answered) -> Result<ClusterInfo, EsError> {
    let root: RootResponse = decode("GET", url, answer)?;
    // The parse error would quote the text: describe it instead.
    let version = EsVersion::parse(&root.version.number)
        .map_err(|_| answer.unexpected("GET", url, "its version.number is not a version number"))?;
    // Both go into status: cleaned like any text from the far side of the URL.
    Ok(ClusterInfo {
        version,
        cluster_uuid: clean_text(&root.cluster_uuid, MAX_CLUSTER_UUID_CHARS),
        cluster_name: clean_text(&root.cluster_name, MAX_CLUSTER_NAME_CHARS),
        build_flavor: root.version.build_flavor,
    })
}

/// `GET _inference/{task}/{id}`'s body: the endpoint with that id, if listed.
/// How many stored endpoints `GET _inference/_all` reads at most: its search asks for 10,000
/// hits (`ModelRegistry.getAllModels`, `setSize(10_000)`, in
/// x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/registry/ModelRegistry.java).
/// A listing this long may leave endpoints out.
pub const LISTING_LIMIT: usize = 10_000;

fn endpoints_in(url: &Url, answer: &Answered) -> Result<Vec<Endpoint>, EsError> {
    let resp: GetResponse = decode("GET", url, answer)?;
    Ok(resp.endpoints)
}

fn endpoint_in(
    url: &Url,
    answer: &Answered,
    inference_id: &str,
) -> Result<Option<Endpoint>, EsError> {
    let resp: GetResponse = decode("GET", url, answer)?;
    let mut endpoints = resp.endpoints;
    let idx = endpoints
        .iter()
        .position(|e| e.inference_id == inference_id);
    Ok(idx.map(|i| endpoints.swap_remove(i)))
}

/// The client's reading of answers without a connection: the same judgement of the head and the
/// same decoding of each body a real answer goes through, for the fuzz targets (`tests/fuzz`)
/// and their replay test. `url` is only used in messages.
pub mod offline {
    use super::*;

    fn answered(
        url: &Url,
        status: u16,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Answered, EsError> {
        let status = StatusCode::from_u16(status)
            .map_err(|_| EsError::Config(format!("status {status} is not an HTTP status")))?;
        judge("GET", url, Head::from_parts(status, headers), body)
    }

    /// An answer to `GET /`.
    pub fn cluster_info(
        url: &Url,
        status: u16,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<ClusterInfo, EsError> {
        super::cluster_info(url, &answered(url, status, headers, body)?)
    }

    /// An answer to `GET _inference/{task}/{id}`.
    pub fn get_endpoint(
        url: &Url,
        status: u16,
        headers: &HeaderMap,
        body: Vec<u8>,
        id: &str,
    ) -> Result<Option<Endpoint>, EsError> {
        super::endpoint_in(url, &answered(url, status, headers, body)?, id)
    }

    /// An answer to `GET _inference/_all`.
    pub fn list_endpoints(
        url: &Url,
        status: u16,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Vec<Endpoint>, EsError> {
        super::endpoints_in(url, &answered(url, status, headers, body)?)
    }

    /// An answer to a PUT (create or `_update`).
    pub fn put_endpoint(
        url: &Url,
        status: u16,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Endpoint, EsError> {
        decode("PUT", url, &answered(url, status, headers, body)?)
    }

    /// An answer to `DELETE _inference/{task}/{id}` (dry run or not).
    pub fn delete_endpoint(
        url: &Url,
        status: u16,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<DeleteResponse, EsError> {
        decode("DELETE", url, &answered(url, status, headers, body)?)
    }

    /// An answer to `GET _ml/trained_models/{id}/_stats`.
    pub fn deployment_stats(
        url: &Url,
        status: u16,
        headers: &HeaderMap,
        body: Vec<u8>,
        id: &str,
    ) -> Result<Option<DeploymentStats>, EsError> {
        let stats: StatsResponse = decode("GET", url, &answered(url, status, headers, body)?)?;
        Ok(deployment_in(&stats, id))
    }
}

/// Decide what one answer means (pure). 3xx: a redirect, never followed. 2xx: usable only with
/// the product header (the official clients check 2xx answers only: elasticsearch-py
/// elastic/elasticsearch-py#1807, elasticsearch-java checks status 200). Anything else is an
/// error answer, quoted only when it says it is from Elasticsearch.
fn judge(method: &str, url: &Url, head: Head, bytes: Vec<u8>) -> Result<Answered, EsError> {
    let status = head.status.as_u16();
    if head.status.is_redirection() {
        return Err(EsError::Redirected {
            method: method.to_owned(),
            path: url.path().to_owned(),
            status,
            target: head
                .location
                .as_deref()
                .and_then(|l| redirect_target(url, l)),
        });
    }
    let from_elasticsearch = head.product == Product::Elasticsearch;
    if head.status.is_success() {
        if !from_elasticsearch {
            return Err(EsError::NotElasticsearch {
                method: method.to_owned(),
                path: url.path().to_owned(),
                status,
                header: match head.product {
                    Product::Other => "with an X-Elastic-Product header other than Elasticsearch",
                    _ => "without the X-Elastic-Product: Elasticsearch header",
                },
            });
        }
        return Ok(Answered {
            status: head.status,
            media: head.media,
            bytes,
        });
    }
    Err(EsError::Api(ApiError::from_answer(
        status,
        head.media,
        from_elasticsearch,
        &bytes,
    )))
}

/// `host[:port]` a `Location` points to (relative locations resolve against the request URL).
fn redirect_target(request: &Url, location: &str) -> Option<String> {
    let target = request.join(location).ok()?;
    let host = target.host_str()?;
    let shown = match target.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    Some(clean_text(&shown, 260))
}

/// A fixed name for an answer's content type: the header's own text is never shown.
fn media_kind(content_type: Option<&HeaderValue>) -> &'static str {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return "untyped";
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    const KNOWN: &[&str] = &[
        "application/json",
        "application/vnd.elasticsearch+json",
        "text/html",
        "text/plain",
        "text/xml",
        "application/xml",
        "application/octet-stream",
        "application/yaml",
        "application/cbor",
        "application/smile",
        "text/event-stream",
    ];
    KNOWN
        .iter()
        .find(|k| essence.eq_ignore_ascii_case(k))
        .copied()
        .unwrap_or("other-typed")
}

/// What was wrong with a 2xx body, in fixed words (serde's text can quote the body).
fn json_problem(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => "not valid JSON",
        Category::Data => "JSON without the fields Elasticsearch documents",
        Category::Io => "unreadable",
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elasticsearch::body::{update_body, ServiceSecret};
    use crate::elasticsearch::error::ErrorClass;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap as AxHeaders, Method as AxMethod, Uri};
    use axum::response::Response;
    use serde_json::{json, Map, Value};
    use std::sync::{Arc, Mutex};

    const SECRET: &str = "azure-KEY-do-not-leak";

    #[derive(Clone, Debug)]
    struct Seen {
        method: String,
        path_and_query: String,
        headers: AxHeaders,
        body: Vec<u8>,
    }

    /// One answer of the test server: exactly this status, these headers and this body, after
    /// `delay`.
    struct Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        delay: Duration,
    }

    type Reply = Box<dyn Fn(&Seen) -> Answer + Send + Sync>;

    struct Double {
        seen: Mutex<Vec<Seen>>,
        reply: Reply,
    }

    async fn handle(
        State(d): State<Arc<Double>>,
        method: AxMethod,
        uri: Uri,
        headers: AxHeaders,
        body: Bytes,
    ) -> Response {
        let seen = Seen {
            method: method.to_string(),
            path_and_query: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers,
            body: body.to_vec(),
        };
        let answer = (d.reply)(&seen);
        d.seen.lock().unwrap().push(seen);
        if !answer.delay.is_zero() {
            tokio::time::sleep(answer.delay).await;
        }
        let mut resp = Response::builder().status(answer.status);
        for (k, v) in answer.headers {
            resp = resp.header(k, v);
        }
        resp.body(axum::body::Body::from(answer.body)).unwrap()
    }

    /// A throwaway HTTP server answering with `reply`; returns its base URL and the log.
    async fn serve_answers(
        reply: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
    ) -> (Url, Arc<Double>) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let double = Arc::new(Double {
            seen: Mutex::new(Vec::new()),
            reply: Box::new(reply),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(double.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (Url::parse(&format!("http://{addr}")).unwrap(), double)
    }

    /// An Elasticsearch-like server: `reply` gives status, JSON body and delay; the answer carries
    /// JSON's content type and `X-Elastic-Product: Elasticsearch`.
    async fn serve(
        reply: impl Fn(&Seen) -> (u16, Value, Duration) + Send + Sync + 'static,
    ) -> (Url, Arc<Double>) {
        serve_answers(move |seen| {
            let (status, json, delay) = reply(seen);
            Answer {
                status,
                headers: vec![
                    ("content-type", "application/json".to_owned()),
                    ("x-elastic-product", "Elasticsearch".to_owned()),
                ],
                body: json.to_string().into_bytes(),
                delay,
            }
        })
        .await
    }

    fn ok(v: Value) -> (u16, Value, Duration) {
        (200, v, Duration::ZERO)
    }

    fn client(url: Url, auth: Auth) -> EsClient {
        let mut cfg = ConnectionConfig::new(url);
        cfg.auth = auth;
        cfg.request_timeout = Duration::from_secs(5);
        EsClient::new(cfg).unwrap()
    }

    fn v(s: &str) -> EsVersion {
        EsVersion::parse(s).unwrap()
    }

    fn m(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!(),
        }
    }

    fn endpoint_json(id: &str, task: &str) -> Value {
        json!({"inference_id": id, "task_type": task, "service": "azureopenai",
            "service_settings": {"resource_name": "r", "deployment_id": "d", "api_version": "2024-02-01",
                "rate_limit": {"requests_per_minute": 120}}})
    }

    fn config(id: &str, task: TaskType) -> EndpointConfig {
        EndpointConfig {
            inference_id: id.into(),
            task_type: task,
            service: "azureopenai".into(),
            service_settings: m(
                json!({"resource_name": "r", "deployment_id": "d", "api_version": "2024-02-01"}),
            ),
            task_settings: Map::new(),
            chunking_settings: None,
        }
    }

    /// The cluster's name and UUID are copied into status, where `kubectl get -o yaml` prints
    /// them: whatever answers at the URL must not smuggle ESC sequences or lines in there.
    #[tokio::test]
    async fn cluster_identity_is_cleaned_and_bounded() {
        let (url, _d) = serve(|_| {
            ok(json!({"name": "n0", "cluster_name": format!("prod\u{1b}[31m\nFAKE{}", "x".repeat(400)),
                "cluster_uuid": "u-1\r\nInjected: yes",
                "version": {"number": "9.1.2"}}))
        })
        .await;
        let info = client(url, Auth::None).info().await.unwrap();
        assert_eq!(info.cluster_uuid, "u-1 Injected: yes");
        assert!(
            info.cluster_name.starts_with("prod [31m FAKExxx"),
            "{}",
            info.cluster_name
        );
        assert!(!info.cluster_name.chars().any(char::is_control));
        // Cut after MAX_CLUSTER_NAME_CHARS visible characters (collapsed spaces come on top).
        assert!(info.cluster_name.ends_with('…'), "{}", info.cluster_name);
        assert!(info.cluster_name.chars().count() < 2 * MAX_CLUSTER_NAME_CHARS);
    }

    #[tokio::test]
    async fn info_and_basic_auth() {
        let (url, d) = serve(|_| {
            ok(json!({"name": "n0", "cluster_name": "prod", "cluster_uuid": "u-1",
                "version": {"number": "9.1.2-SNAPSHOT", "build_flavor": "default"}, "tagline": "You Know, for Search"}))
        })
        .await;
        let c = client(
            url,
            Auth::Basic {
                username: "elastic".into(),
                password: "pw:with:colons".into(),
            },
        );
        let info = c.info().await.unwrap();
        assert_eq!(info.version, EsVersion::new(9, 1, 2));
        assert_eq!(info.cluster_uuid, "u-1");
        assert_eq!(info.cluster_name, "prod");
        let seen = d.seen.lock().unwrap();
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].path_and_query, "/");
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("elastic:pw:with:colons")
        );
        assert_eq!(seen[0].headers["authorization"], expected.as_str());
        assert!(!format!("{c:?}").contains("pw:with"));
    }

    #[tokio::test]
    async fn api_key_auth_forms_and_userinfo() {
        let (url, d) = serve(|_| ok(json!({"endpoints": []}))).await;
        let b64 = base64::engine::general_purpose::STANDARD;
        let c = client(
            url.clone(),
            Auth::ApiKey("VnVhQ2ZH:ui2lp2axTNmsyakw9tvNnw".into()),
        );
        c.get_endpoint(TaskType::Completion, "x").await.unwrap();
        let c = client(url.clone(), Auth::ApiKey("ZW5jb2RlZA==".into()));
        c.get_endpoint(TaskType::Completion, "x").await.unwrap();
        let mut with_user = url.clone();
        with_user.set_username("bob").unwrap();
        with_user.set_password(Some("s%3Acret")).unwrap();
        let c = client(with_user, Auth::None);
        assert!(!format!("{c:?}").contains("cret"));
        assert_eq!(c.base_url().username(), "");
        c.get_endpoint(TaskType::Completion, "x").await.unwrap();
        let c = client(url, Auth::None);
        c.get_endpoint(TaskType::Completion, "x").await.unwrap();
        let seen = d.seen.lock().unwrap();
        assert_eq!(
            seen[0].headers["authorization"],
            format!("ApiKey {}", b64.encode("VnVhQ2ZH:ui2lp2axTNmsyakw9tvNnw")).as_str()
        );
        assert_eq!(seen[1].headers["authorization"], "ApiKey ZW5jb2RlZA==");
        assert_eq!(
            seen[2].headers["authorization"],
            format!("Basic {}", b64.encode("bob:s:cret")).as_str()
        );
        assert!(seen[3].headers.get("authorization").is_none());
    }

    #[tokio::test]
    async fn get_found_missing_and_mismatch() {
        let (url, d) = serve(|s| match s.path_and_query.as_str() {
            "/_inference/completion/here" => ok(json!({"endpoints": [endpoint_json("here", "completion")]})),
            "/_inference/completion/wrong-type" => (
                400,
                json!({"error": {"root_cause": [{"type": "status_exception", "reason": "Requested task type [completion] does not match the inference endpoint's task type [text_embedding]"}],
                    "type": "status_exception", "reason": "Requested task type [completion] does not match the inference endpoint's task type [text_embedding]"}, "status": 400}),
                Duration::ZERO,
            ),
            "/_inference/completion/a%2Fb%3F%20c" => ok(json!({"endpoints": []})),
            _ => (
                404,
                json!({"error": {"root_cause": [{"type": "resource_not_found_exception", "reason": "Inference endpoint not found [gone]"}],
                    "type": "resource_not_found_exception", "reason": "Inference endpoint not found [gone]"}, "status": 404}),
                Duration::ZERO,
            ),
        })
        .await;
        let c = client(url, Auth::None);
        let e = c
            .get_endpoint(TaskType::Completion, "here")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.inference_id, "here");
        assert_eq!(e.task_type(), Some(TaskType::Completion));
        assert!(c
            .get_endpoint(TaskType::Completion, "gone")
            .await
            .unwrap()
            .is_none());
        let err = c
            .get_endpoint(TaskType::Completion, "wrong-type")
            .await
            .unwrap_err();
        assert_eq!(err.reason().as_str(), "TaskTypeMismatch");
        assert_eq!(err.stored_task_type(), Some("text_embedding"));
        // Escaping: a hostile id stays one path segment.
        assert!(c
            .get_endpoint(TaskType::Completion, "a/b? c")
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            d.seen.lock().unwrap().last().unwrap().path_and_query,
            "/_inference/completion/a%2Fb%3F%20c"
        );
    }

    #[tokio::test]
    async fn create_sends_timeout_by_version_and_secret_on_the_wire_only() {
        let (url, d) = serve(|s| {
            let task = s
                .path_and_query
                .split('/')
                .nth(2)
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_owned();
            ok(endpoint_json("e1", &task))
        })
        .await;
        let c = client(url, Auth::None);
        let secret = ServiceSecrets::from(ServiceSecret::api_key(SECRET));
        let cases = [
            (
                "8.18.0",
                TaskType::TextEmbedding,
                "/_inference/text_embedding/e1",
            ),
            ("9.0.0", TaskType::Completion, "/_inference/completion/e1"),
            (
                "8.19.0",
                TaskType::Completion,
                "/_inference/completion/e1?timeout=30s",
            ),
            (
                "9.1.0",
                TaskType::TextEmbedding,
                "/_inference/text_embedding/e1?timeout=30s",
            ),
            (
                "9.5.0",
                TaskType::Completion,
                "/_inference/completion/e1?timeout=120s",
            ),
            (
                "9.5.0",
                TaskType::ChatCompletion,
                "/_inference/chat_completion/e1?timeout=120s",
            ),
        ];
        for (ver, task, _) in cases {
            let got = c
                .create_endpoint(&config("e1", task), &secret, &v(ver))
                .await
                .unwrap();
            assert_eq!(got.task_type, task.as_str());
        }
        let seen = d.seen.lock().unwrap();
        for (i, (_, _, path)) in cases.iter().enumerate() {
            assert_eq!(seen[i].method, "PUT");
            assert_eq!(seen[i].path_and_query, *path);
            assert_eq!(seen[i].headers["content-type"], "application/json");
            let body: Value = serde_json::from_slice(&seen[i].body).unwrap();
            assert_eq!(body["service_settings"]["api_key"], SECRET);
            assert_eq!(body["service"], "azureopenai");
        }
    }

    /// A deploying model's PUT carries the short wait as `?timeout=` where the version takes it
    /// (whole seconds as `s`, anything finer as `ms`), and the server default elsewhere.
    #[tokio::test]
    async fn create_within_sends_the_wait_where_the_version_takes_it() {
        let (url, d) = serve(|_| ok(endpoint_json("e1", "sparse_embedding"))).await;
        let c = client(url, Auth::None);
        let none = ServiceSecrets::default();
        let cases = [
            (
                "9.1.0",
                Duration::from_secs(5),
                "/_inference/sparse_embedding/e1?timeout=5s",
            ),
            (
                "8.19.0",
                Duration::from_millis(1500),
                "/_inference/sparse_embedding/e1?timeout=1500ms",
            ),
            (
                "9.0.0",
                Duration::from_secs(5),
                "/_inference/sparse_embedding/e1",
            ),
        ];
        for (ver, wait, _) in cases {
            let cfg = config("e1", TaskType::SparseEmbedding);
            c.create_endpoint_within(&cfg, &none, &v(ver), Some(wait))
                .await
                .unwrap();
        }
        let seen = d.seen.lock().unwrap();
        for (i, (_, _, path)) in cases.iter().enumerate() {
            assert_eq!(seen[i].path_and_query, *path);
        }
    }

    fn stats_json(deployment_id: &str, state: &str, allocation: &str, count: u64) -> Value {
        json!({"count": 1, "trained_model_stats": [{
            "model_id": ".elser_model_2",
            "deployment_stats": {
                "deployment_id": deployment_id, "model_id": ".elser_model_2", "state": state,
                "allocation_status": {"allocation_count": count, "target_allocation_count": 1, "state": allocation}
            }
        }]})
    }

    /// `GET _ml/trained_models/<id>/_stats`: the entry of this deployment; 404 or no entry is
    /// no deployment; the product check applies like everywhere.
    #[tokio::test]
    async fn deployment_stats_reads_the_deployment_under_the_id() {
        let (url, d) = serve(|seen| match seen.path_and_query.as_str() {
            "/_ml/trained_models/starting/_stats" => ok(stats_json("starting", "starting", "starting", 0)),
            "/_ml/trained_models/started/_stats" => ok(stats_json("started", "started", "fully_allocated", 1)),
            "/_ml/trained_models/other/_stats" => ok(stats_json("someone-else", "started", "started", 1)),
            "/_ml/trained_models/empty/_stats" => ok(json!({"count": 0, "trained_model_stats": []})),
            _ => (404, json!({"error": {"type": "resource_not_found_exception", "reason": "No known trained model with model_id [gone]"}, "status": 404}), Duration::ZERO),
        })
        .await;
        let c = client(url, Auth::None);
        let starting = c.deployment_stats("starting").await.unwrap().unwrap();
        assert_eq!(starting.state, "starting");
        assert!(!starting.is_started());
        assert_eq!(starting.allocation_count, Some(0));
        assert!(c
            .deployment_stats("started")
            .await
            .unwrap()
            .unwrap()
            .is_started());
        for absent in ["other", "empty", "gone"] {
            assert_eq!(c.deployment_stats(absent).await.unwrap(), None, "{absent}");
        }
        assert_eq!(d.seen.lock().unwrap()[0].method, "GET");

        let (url, _d) = serve_answers(|_| Answer {
            status: 200,
            headers: vec![("content-type", "application/json".to_owned())],
            body: stats_json("x", "started", "started", 1)
                .to_string()
                .into_bytes(),
            delay: Duration::ZERO,
        })
        .await;
        let err = client(url, Auth::None)
            .deployment_stats("x")
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::NotElasticsearch);
    }

    /// Started means what the PUT itself waits for: the deployment `started` with at least one
    /// allocation serving (allocation state `started` or `fully_allocated`).
    #[test]
    fn a_deployment_is_started_once_an_allocation_serves() {
        let read = |state: &str, allocation: Option<&str>| {
            let mut body = stats_json("d", state, allocation.unwrap_or(""), 0);
            if allocation.is_none() {
                body["trained_model_stats"][0]["deployment_stats"]
                    .as_object_mut()
                    .unwrap()
                    .remove("allocation_status");
            }
            deployment_in(&serde_json::from_value(body).unwrap(), "d").unwrap()
        };
        assert!(read("started", Some("started")).is_started());
        assert!(read("started", Some("fully_allocated")).is_started());
        assert!(read("started", None).is_started());
        assert!(!read("started", Some("starting")).is_started());
        assert!(!read("starting", Some("starting")).is_started());
        assert!(!read("failed", None).is_started());
        let described = read("starting", Some("starting")).describe();
        assert_eq!(
            described,
            "deployment state starting, allocation state starting (0 of 1 allocations)"
        );
    }

    #[tokio::test]
    async fn create_error_never_echoes_the_secret() {
        let (url, _d) = serve(|_| {
            (
                400,
                json!({"error": {"root_cause": [{"type": "status_exception", "reason": format!("Received an authentication error status code for request from inference entity id [e1] status [401]. Error message: [key {SECRET} is invalid]")}],
                    "type": "status_exception",
                    "reason": "Could not complete inference endpoint creation as validation call to service threw an exception.",
                    "caused_by": {"type": "status_exception", "reason": format!("Received an authentication error status code for request from inference entity id [e1] status [401]. Error message: [key {SECRET} is invalid]")}},
                    "status": 400}),
                Duration::ZERO,
            )
        })
        .await;
        let c = client(url, Auth::None);
        let err = c
            .create_endpoint(
                &config("e1", TaskType::TextEmbedding),
                &ServiceSecret::api_key(SECRET).into(),
                &v("9.1.0"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::ProviderRejectedCredentials);
        assert!(!err.is_transient());
        for text in [err.to_string(), err.message(), format!("{err:?}")] {
            assert!(!text.contains(SECRET), "{text}");
        }
        assert!(err.message().contains("status [401]"));
    }

    #[tokio::test]
    async fn update_uses_two_segment_update_path_and_timeout_on_9_5() {
        let (url, d) = serve(|_| ok(endpoint_json("e1", "completion"))).await;
        let c = client(url, Auth::None);
        let secret = ServiceSecrets::from(ServiceSecret::entra_id(SECRET));
        for ver in ["8.17.0", "9.4.0", "9.5.0"] {
            let body = update_body(
                &config("e1", TaskType::Completion),
                Some(&secret),
                None,
                &v(ver),
            )
            .unwrap();
            c.update_endpoint(TaskType::Completion, "e1", &body, &v(ver))
                .await
                .unwrap();
        }
        let seen = d.seen.lock().unwrap();
        assert_eq!(seen[0].path_and_query, "/_inference/completion/e1/_update");
        assert_eq!(seen[1].path_and_query, "/_inference/completion/e1/_update");
        assert_eq!(
            seen[2].path_and_query,
            "/_inference/completion/e1/_update?timeout=30s"
        );
        assert!(seen.iter().all(|s| s.method == "PUT"));
        let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
        assert_eq!(
            body,
            json!({"service_settings": {"entra_id": SECRET}, "task_settings": {}})
        );
    }

    #[tokio::test]
    async fn delete_outcomes() {
        let in_use = "Inference endpoint busy is referenced by pipelines: [p1]. Ensure that no pipelines are using this inference endpoint, or use force to ignore this warning and delete the inference endpoint.";
        let (url, d) = serve(move |s| match s.path_and_query.as_str() {
            "/_inference/text_embedding/busy" => (
                409,
                json!({"error": {"root_cause": [{"type": "status_exception", "reason": in_use}], "type": "status_exception", "reason": in_use}, "status": 409}),
                Duration::ZERO,
            ),
            "/_inference/text_embedding/busy?dry_run=true" => ok(
                json!({"acknowledged": false, "pipelines": ["p1"], "indexes": [], "error_message": in_use}),
            ),
            "/_inference/text_embedding/busy?force=true" | "/_inference/text_embedding/free" => {
                ok(json!({"acknowledged": true, "pipelines": [], "indexes": []}))
            }
            "/_inference/text_embedding/old" => ok(json!({"acknowledged": true})),
            _ => (
                404,
                json!({"error": {"root_cause": [{"type": "resource_not_found_exception", "reason": "Inference endpoint not found [gone]"}],
                    "type": "resource_not_found_exception", "reason": "Inference endpoint not found [gone]"}, "status": 404}),
                Duration::ZERO,
            ),
        })
        .await;
        let c = client(url, Auth::None);
        let t = TaskType::TextEmbedding;
        let err = c
            .delete_endpoint(t, "busy", DeleteOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.reason().as_str(), "InUse");
        assert_eq!(err.message(), in_use);
        let dry = c
            .delete_endpoint(
                t,
                "busy",
                DeleteOptions {
                    dry_run: true,
                    force: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            dry,
            DeleteOutcome::Done(DeleteResponse {
                acknowledged: false,
                pipelines: vec!["p1".into()],
                indexes: vec![],
                error_message: Some(in_use.into()),
            })
        );
        let forced = c
            .delete_endpoint(
                t,
                "busy",
                DeleteOptions {
                    dry_run: false,
                    force: true,
                },
            )
            .await
            .unwrap();
        assert!(matches!(forced, DeleteOutcome::Done(r) if r.acknowledged));
        assert!(matches!(
            c.delete_endpoint(t, "old", DeleteOptions::default()).await.unwrap(),
            DeleteOutcome::Done(r) if r.acknowledged && r.indexes.is_empty()
        ));
        assert_eq!(
            c.delete_endpoint(t, "gone", DeleteOptions::default())
                .await
                .unwrap(),
            DeleteOutcome::NotFound
        );
        assert!(d.seen.lock().unwrap().iter().all(|s| s.method == "DELETE"));
    }

    #[tokio::test]
    async fn slow_server_times_out() {
        let (url, _d) = serve(|_| (200, json!({"endpoints": []}), Duration::from_secs(3))).await;
        let mut cfg = ConnectionConfig::new(url);
        cfg.request_timeout = Duration::from_millis(200);
        let c = EsClient::new(cfg).unwrap();
        let started = Instant::now();
        let err = c.get_endpoint(TaskType::Completion, "x").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(err.class(), ErrorClass::ElasticsearchTimeout, "{err}");
        assert!(err.is_transient());
        let err = c
            .delete_endpoint(TaskType::Completion, "x", DeleteOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::ElasticsearchTimeout);
    }

    #[tokio::test]
    async fn server_errors_and_garbage() {
        let (url, _d) = serve(|s| match s.path_and_query.as_str() {
            "/" => ok(json!({"version": {"number": "banana"}})),
            "/_inference/completion/busy" => (
                429,
                json!({"error": {"type": "es_rejected_execution_exception", "reason": "rejected"}, "status": 429}),
                Duration::ZERO,
            ),
            "/_inference/completion/weird" => ok(json!({"unexpected": true})),
            _ => (503, json!({"error": {"type": "cluster_block_exception", "reason": "blocked"}, "status": 503}), Duration::ZERO),
        })
        .await;
        let c = client(url, Auth::None);
        assert_eq!(
            c.info().await.unwrap_err().reason().as_str(),
            "UnexpectedResponse"
        );
        let e = c
            .get_endpoint(TaskType::Completion, "busy")
            .await
            .unwrap_err();
        assert_eq!(
            (e.reason().as_str(), e.is_transient()),
            ("RateLimited", true)
        );
        let e = c
            .get_endpoint(TaskType::Completion, "weird")
            .await
            .unwrap_err();
        assert_eq!(e.reason().as_str(), "UnexpectedResponse");
        let e = c
            .get_endpoint(TaskType::Completion, "other")
            .await
            .unwrap_err();
        assert_eq!(
            (e.reason().as_str(), e.is_transient()),
            ("ElasticsearchUnavailable", true)
        );
        assert_eq!(e.message(), "blocked");
    }

    #[tokio::test]
    async fn connection_refused_is_unreachable_and_hides_password() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = Url::parse(&format!(
            "http://elastic:topsecret@127.0.0.1:{port}/prefix/"
        ))
        .unwrap();
        let c = client(url, Auth::None);
        let err = c.info().await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::ElasticsearchUnreachable, "{err}");
        assert!(err.is_transient());
        let text = format!("{err} {err:?} {}", err.message());
        assert!(!text.contains("topsecret"), "{text}");
        assert!(text.contains("/prefix/"), "{text}");
    }

    #[tokio::test]
    async fn base_path_prefix_is_kept() {
        let (mut url, d) = serve(|_| ok(json!({"endpoints": []}))).await;
        url.set_path("/es/");
        let c = client(url, Auth::None);
        c.get_endpoint(TaskType::TextEmbedding, "x").await.unwrap();
        assert_eq!(
            d.seen.lock().unwrap()[0].path_and_query,
            "/es/_inference/text_embedding/x"
        );
    }

    #[test]
    fn config_errors() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bad = |cfg: ConnectionConfig| EsClient::new(cfg).unwrap_err();
        let url = Url::parse("https://es.example:9200").unwrap();
        let e = bad(ConnectionConfig::new(
            Url::parse("ftp://es.example").unwrap(),
        ));
        assert_eq!(e.reason().as_str(), "InvalidConnectionConfig");
        let mut cfg = ConnectionConfig::new(url.clone());
        cfg.ca_pem = Some(b"not a pem".to_vec());
        assert_eq!(bad(cfg).reason().as_str(), "InvalidConnectionConfig");
        let mut cfg = ConnectionConfig::new(url.clone());
        cfg.auth = Auth::ApiKey("bad\nkey".into());
        let e = bad(cfg);
        assert!(!e.to_string().contains("bad\nkey"));
        let mut cfg = ConnectionConfig::new(url.clone());
        cfg.ca_pem = Some(TEST_CA_PEM.as_bytes().to_vec());
        EsClient::new(cfg).unwrap();
        let mut cfg = ConnectionConfig::new(url);
        cfg.insecure_skip_tls_verify = true;
        cfg.auth = Auth::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        let dbg = format!("{cfg:?}");
        assert!(dbg.contains("basic") && !dbg.contains("\"p\""), "{dbg}");
        EsClient::new(cfg).unwrap();
    }

    #[test]
    fn userinfo_percent_decoding() {
        assert_eq!(percent_decode("s%3Acret").as_deref(), Some("s:cret"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("trail%4"), None);
        assert_eq!(percent_decode("%"), None);
    }

    /// A self-signed CA certificate (test data only).
    const TEST_CA_PEM: &str = include_str!("testdata/ca.pem");
    /// A leaf for 127.0.0.1 signed by `TEST_CA_PEM`, and its key (test data only).
    const TEST_SERVER_PEM: &str = include_str!("testdata/server.pem");
    const TEST_SERVER_KEY: &str = include_str!("testdata/server.key");

    /// A minimal HTTPS server answering every request with `GET /`'s body.
    async fn tls_server() -> Url {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs = CertificateDer::pem_slice_iter(TEST_SERVER_PEM.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(TEST_SERVER_KEY.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = json!({"cluster_name": "tls", "cluster_uuid": "u",
                        "version": {"number": "9.4.0"}})
                    .to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-elastic-product: Elasticsearch\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Url::parse(&format!("https://127.0.0.1:{}", addr.port())).unwrap()
    }

    #[tokio::test]
    async fn tls_custom_ca_insecure_and_untrusted() {
        let url = tls_server().await;
        // Trusted through the configured CA only.
        let mut cfg = ConnectionConfig::new(url.clone());
        cfg.ca_pem = Some(TEST_CA_PEM.as_bytes().to_vec());
        let info = EsClient::new(cfg).unwrap().info().await.unwrap();
        assert_eq!(info.version, EsVersion::new(9, 4, 0));
        // Explicit opt-out of verification.
        let mut cfg = ConnectionConfig::new(url.clone());
        cfg.insecure_skip_tls_verify = true;
        EsClient::new(cfg).unwrap().info().await.unwrap();
        // System roots do not know the test CA.
        let mut cfg = ConnectionConfig::new(url);
        cfg.request_timeout = Duration::from_secs(5);
        let err = EsClient::new(cfg).unwrap().info().await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::ElasticsearchTlsFailed, "{err}");
        assert!(
            err.message().contains("not signed by a trusted CA"),
            "{} / {:?}",
            err.message(),
            err.log_detail()
        );
    }

    // ---- the far side of the URL: product check, redirects, no reflection ----

    const MARKER: &str = "hostile-MARKER-7f3a";

    /// A server answering exactly `reply` (status, headers, body): no header is added.
    async fn serve_raw(
        reply: impl Fn(&Seen) -> (u16, Vec<(&'static str, String)>, Vec<u8>) + Send + Sync + 'static,
    ) -> (Url, Arc<Double>) {
        serve_answers(move |seen| {
            let (status, headers, body) = reply(seen);
            Answer {
                status,
                headers,
                body,
                delay: Duration::ZERO,
            }
        })
        .await
    }

    fn json_headers(product: Option<&str>) -> Vec<(&'static str, String)> {
        let mut h = vec![("content-type", "application/json".to_owned())];
        if let Some(p) = product {
            h.push(("x-elastic-product", p.to_owned()));
        }
        h
    }

    fn root_body() -> Vec<u8> {
        json!({"name": "n", "cluster_name": "c", "cluster_uuid": "u",
            "version": {"number": "9.1.0"}, "tagline": "You Know, for Search"})
        .to_string()
        .into_bytes()
    }

    fn assert_no_marker(err: &EsError) {
        for text in [err.to_string(), err.message(), format!("{err:?}")] {
            assert!(!text.contains(MARKER), "{text}");
        }
    }

    #[tokio::test]
    async fn success_without_the_product_header_is_not_elasticsearch() {
        let (url, _d) = serve_raw(|s| match s.path_and_query.as_str() {
            "/" => (200, json_headers(None), root_body()),
            "/_inference/completion/other" => (
                200,
                json_headers(Some("OpenSearch")),
                b"{\"endpoints\": []}".to_vec(),
            ),
            _ => (200, json_headers(None), b"{\"endpoints\": []}".to_vec()),
        })
        .await;
        let c = client(url, Auth::None);
        let err = c.info().await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::NotElasticsearch, "{err}");
        assert!(!err.is_transient());
        assert!(
            err.message().contains("without the X-Elastic-Product"),
            "{}",
            err.message()
        );
        let err = c.get_endpoint(TaskType::Completion, "x").await.unwrap_err();
        assert_eq!(err.reason().as_str(), "NotElasticsearch");
        let err = c
            .get_endpoint(TaskType::Completion, "other")
            .await
            .unwrap_err();
        assert_eq!(err.reason().as_str(), "NotElasticsearch");
        assert!(
            err.message().contains("other than Elasticsearch"),
            "{}",
            err.message()
        );
        assert!(
            !err.message().contains("OpenSearch"),
            "the header's value is not shown"
        );
    }

    #[tokio::test]
    async fn a_not_found_without_the_product_header_is_not_absence() {
        // A 404 is what makes the operator PUT (with the provider key): only Elasticsearch's counts.
        let body = json!({"error": {"type": "resource_not_found_exception", "reason": MARKER}, "status": 404});
        let (url, _d) =
            serve_raw(move |_| (404, json_headers(None), body.to_string().into_bytes())).await;
        let c = client(url, Auth::None);
        let err = c.get_endpoint(TaskType::Completion, "x").await.unwrap_err();
        assert_eq!(err.reason().as_str(), "UnexpectedResponse", "{err}");
        assert_no_marker(&err);
        let err = c
            .delete_endpoint(TaskType::Completion, "x", DeleteOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.reason().as_str(), "UnexpectedResponse", "{err}");
    }

    #[tokio::test]
    async fn redirects_are_reported_with_their_target_and_not_followed() {
        let (url, d) = serve_raw(|s| match s.path_and_query.as_str() {
            "/" => (
                302,
                vec![("location", "http://elsewhere.example:9300/steal".to_owned())],
                Vec::new(),
            ),
            "/_inference/completion/rel" => {
                (307, vec![("location", "/other".to_owned())], Vec::new())
            }
            "/_inference/completion/none" => (308, Vec::new(), Vec::new()),
            _ => (
                200,
                json_headers(Some("Elasticsearch")),
                b"{\"endpoints\": []}".to_vec(),
            ),
        })
        .await;
        let c = client(url.clone(), Auth::None);
        let err = c.info().await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::ElasticsearchRedirected, "{err}");
        assert!(!err.is_transient());
        assert!(err.message().contains("HTTP 302"), "{}", err.message());
        assert!(
            err.message().contains("elsewhere.example:9300"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains("/steal"), "{}", err.message());
        let err = c
            .get_endpoint(TaskType::Completion, "rel")
            .await
            .unwrap_err();
        assert_eq!(err.reason().as_str(), "ElasticsearchRedirected");
        assert!(
            err.message().contains(url.host_str().unwrap()),
            "{}",
            err.message()
        );
        let err = c
            .get_endpoint(TaskType::Completion, "none")
            .await
            .unwrap_err();
        assert!(
            err.message().contains("no valid location"),
            "{}",
            err.message()
        );
        let paths: Vec<_> = d
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.path_and_query.clone())
            .collect();
        assert_eq!(
            paths,
            [
                "/",
                "/_inference/completion/rel",
                "/_inference/completion/none"
            ]
        );
    }

    #[tokio::test]
    async fn answers_that_are_not_elasticsearch_errors_are_described_not_quoted() {
        let html = format!("<html><body>{MARKER}</body></html>").into_bytes();
        let (url, _d) = serve_raw(move |s| {
            let es = Some("Elasticsearch");
            match s.path_and_query.as_str() {
                "/" => (
                    200,
                    json_headers(es),
                    json!({"version": {"number": MARKER}})
                        .to_string()
                        .into_bytes(),
                ),
                "/_inference/completion/html" => (
                    502,
                    vec![("content-type", "text/html; charset=utf-8".into())],
                    html.clone(),
                ),
                "/_inference/completion/typed" => (
                    500,
                    vec![("content-type", format!("text/{MARKER}"))],
                    html.clone(),
                ),
                "/_inference/completion/garbage" => {
                    (200, json_headers(es), format!("{{{MARKER}").into_bytes())
                }
                "/_inference/completion/shape" => (
                    200,
                    json_headers(es),
                    json!({"endpoints": MARKER}).to_string().into_bytes(),
                ),
                "/_inference/completion/es-html" => (
                    503,
                    vec![
                        ("content-type", "text/html".into()),
                        ("x-elastic-product", "Elasticsearch".into()),
                    ],
                    html.clone(),
                ),
                _ => (
                    400,
                    json_headers(None),
                    json!({"error": {"type": "x", "reason": MARKER}})
                        .to_string()
                        .into_bytes(),
                ),
            }
        })
        .await;
        let c = client(url, Auth::None);
        let err = c.info().await.unwrap_err();
        assert_eq!(err.reason().as_str(), "UnexpectedResponse");
        assert_no_marker(&err);
        let t = TaskType::Completion;
        let err = c.get_endpoint(t, "html").await.unwrap_err();
        assert_eq!(
            (err.reason().as_str(), err.is_transient()),
            ("ElasticsearchUnavailable", true)
        );
        assert_no_marker(&err);
        let m = err.message();
        assert!(
            m.contains("HTTP 502")
                && m.contains("text/html")
                && m.contains(&format!("{} bytes", 26 + MARKER.len())),
            "{m}"
        );
        assert!(m.contains("without the X-Elastic-Product header"), "{m}");
        let err = c.get_endpoint(t, "typed").await.unwrap_err();
        assert_no_marker(&err);
        assert!(err.message().contains("other-typed"), "{}", err.message());
        for (id, problem) in [
            ("garbage", "not valid JSON"),
            ("shape", "without the fields"),
        ] {
            let err = c.get_endpoint(t, id).await.unwrap_err();
            assert_eq!(err.reason().as_str(), "UnexpectedResponse", "{err}");
            assert!(err.message().contains(problem), "{}", err.message());
            assert_no_marker(&err);
        }
        let err = c.get_endpoint(t, "es-html").await.unwrap_err();
        assert!(
            err.message().contains("not an error envelope"),
            "{}",
            err.message()
        );
        assert_no_marker(&err);
        // A JSON error envelope without the product header is not quoted either.
        let err = c.get_endpoint(t, "envelope").await.unwrap_err();
        assert_eq!(err.reason().as_str(), "InvalidSettings");
        assert_no_marker(&err);
    }

    #[tokio::test]
    async fn elasticsearch_reasons_are_quoted_without_control_characters() {
        let reason = format!("bad \u{1b}[31mred\u{1b}[0m\r\nsecond line\t{MARKER}\u{202e}txt");
        let body = json!({"error": {"root_cause": [{"type": "x", "reason": reason}], "type": "status_exception\n", "reason": reason,
            "caused_by": {"type": "y", "reason": format!("inner\n{MARKER}")}}, "status": 400});
        let (url, _d) = serve_raw(move |_| {
            (
                400,
                json_headers(Some("Elasticsearch")),
                body.to_string().into_bytes(),
            )
        })
        .await;
        let c = client(url, Auth::None);
        let err = c.get_endpoint(TaskType::Completion, "x").await.unwrap_err();
        for text in [err.message(), err.to_string()] {
            assert!(
                text.contains(MARKER),
                "Elasticsearch's own reason is quoted: {text}"
            );
            assert!(
                !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{text:?}"
            );
        }
        assert!(
            err.message()
                .starts_with(&format!("bad [31mred [0m second line {MARKER} txt")),
            "{}",
            err.message()
        );
        assert!(
            err.message()
                .contains(&format!("Caused by: inner {MARKER}")),
            "{}",
            err.message()
        );
        assert_eq!(err.api().unwrap().kind(), "status_exception");
    }
}
