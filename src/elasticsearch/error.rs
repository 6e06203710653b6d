//! Typed errors of the Elasticsearch client.
//!
//! An [`EsError`] is built either from the Elasticsearch error envelope
//! (docs/reference/elasticsearch-inference-api.md#error-envelope) or from a transport failure.
//! [`EsError::class`] maps it onto an [`ErrorClass`]: a stable CamelCase condition reason plus a
//! transient/permanent split (docs/reference/elasticsearch-inference-api.md#error-table,
//! docs/reference/elasticsearch-inference-api.md#provider-errors).
//!
//! Secret hygiene: nothing here ever holds a request body or an auth header. URLs in transport
//! errors have their userinfo stripped, and [`EsError::scrub`] removes a known secret value from
//! any text Elasticsearch echoed back.
//!
//! No reflection (docs/security.md, "What comes back from the far side"): the only text from the
//! far side of the URL that ever reaches a message is Elasticsearch's own error envelope (`type`
//! and `reason` of an answer that carried `X-Elastic-Product: Elasticsearch`), with control and
//! bidirectional-override characters removed and each text bounded. Every other answer is
//! described (status, kind of content type, size), never quoted; connection failures say
//! "unreachable" without telling refused, timed out and unresolved apart.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::reason::{Kind, Reason};

/// Longest message, in bytes, the operator puts in a condition or an Event: Kubernetes rejects an
/// Event whose `note` is longer than 1024 bytes (`NoteLengthLimit`,
/// kubernetes `pkg/apis/core/validation/events.go`). [`truncate_message`] enforces it.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Longest `type` or `reason` kept from one node of an error envelope (characters).
const MAX_QUOTED_CHARS: usize = 1024;
/// Top-level reason of a failed provider validation call (PUT, and update on 9.4+, where the same
/// wrapper is inferred): docs/reference/elasticsearch-inference-api.md#provider-errors.
const VALIDATION_WRAPPER_MARKER: &str = "validation call to service";
const REDACTED: &str = "[REDACTED]";

/// One node of the Elasticsearch error envelope: `{type, reason, root_cause[], caused_by{}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCause {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_cause: Vec<ErrorCause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<Box<ErrorCause>>,
}

impl ErrorCause {
    fn reason_str(&self) -> &str {
        self.reason.as_deref().unwrap_or("")
    }

    /// The deepest `caused_by`, or `None` when this node wraps nothing.
    pub fn innermost_cause(&self) -> Option<&ErrorCause> {
        let mut cur = self.caused_by.as_deref()?;
        while let Some(next) = cur.caused_by.as_deref() {
            cur = next;
        }
        Some(cur)
    }

    /// Every node below this one (the `caused_by` chain and all `root_cause` entries,
    /// recursively), not including `self`.
    fn descendants(&self) -> Vec<&ErrorCause> {
        let mut out = Vec::new();
        let mut stack: Vec<&ErrorCause> = Vec::new();
        stack.extend(self.caused_by.as_deref());
        stack.extend(self.root_cause.iter());
        while let Some(n) = stack.pop() {
            out.push(n);
            stack.extend(n.caused_by.as_deref());
            stack.extend(n.root_cause.iter());
        }
        out
    }

    /// Remove control characters and bound every `type` and `reason` (they reach
    /// `kubectl get`/`describe`, Events and logs). Root causes past the first few are dropped.
    fn clean(&mut self) {
        const MAX_ROOT_CAUSES: usize = 8;
        const MAX_DEPTH: usize = 16;
        let mut node = Some(self);
        let mut depth = 0;
        while let Some(n) = node {
            n.kind = clean_text(&n.kind, MAX_QUOTED_CHARS);
            if let Some(r) = n.reason.as_mut() {
                *r = clean_text(r, MAX_QUOTED_CHARS);
            }
            n.root_cause.truncate(MAX_ROOT_CAUSES);
            for c in &mut n.root_cause {
                c.caused_by = None;
                c.root_cause.clear();
                c.kind = clean_text(&c.kind, MAX_QUOTED_CHARS);
                if let Some(r) = c.reason.as_mut() {
                    *r = clean_text(r, MAX_QUOTED_CHARS);
                }
            }
            depth += 1;
            if depth >= MAX_DEPTH {
                n.caused_by = None;
            }
            node = n.caused_by.as_deref_mut();
        }
    }

    fn scrub(&mut self, secret: &str) {
        if let Some(r) = self.reason.as_mut() {
            if r.contains(secret) {
                *r = r.replace(secret, REDACTED);
            }
        }
        for c in &mut self.root_cause {
            c.scrub(secret);
        }
        if let Some(c) = self.caused_by.as_mut() {
            c.scrub(secret);
        }
    }
}

/// An error answer (any non-2xx, non-3xx status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The `error` object of Elasticsearch's envelope, cleaned (for a string `error`: `kind`
    /// empty, `reason` the text). Empty when the answer was not Elasticsearch's envelope.
    pub error: ErrorCause,
    /// What the answer was, when it is not quoted (not an envelope, or not from Elasticsearch).
    pub described: Option<Described>,
}

/// An answer that is not quoted: what it looked like, without its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Described {
    /// Whether it carried `X-Elastic-Product: Elasticsearch`.
    pub from_elasticsearch: bool,
    /// The kind of its `Content-Type` (a fixed word, never the header's own text).
    pub media: &'static str,
    /// Body size in bytes (as read, at most the client's limit).
    pub bytes: usize,
}

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.from_elasticsearch {
            f.write_str("without the X-Elastic-Product header, so not as Elasticsearch: ")?;
        }
        if self.bytes == 0 {
            return f.write_str("an empty body");
        }
        write!(f, "a {} body of {} bytes", self.media, self.bytes)?;
        if self.from_elasticsearch {
            f.write_str(" that is not an error envelope")?;
        }
        f.write_str(" (not shown)")
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: Option<EnvelopeError>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EnvelopeError {
    Object(ErrorCause),
    Text(String),
}

impl ApiError {
    /// Parse an error answer that carried the product header and a JSON content type.
    pub fn from_response(status: u16, body: &[u8]) -> Self {
        Self::from_answer(status, "application/json", true, body)
    }

    /// Parse an error answer. Never fails. Elasticsearch's envelope is kept (cleaned, bounded)
    /// only when the answer says it is from Elasticsearch; anything else is only described.
    pub fn from_answer(
        status: u16,
        media: &'static str,
        from_elasticsearch: bool,
        body: &[u8],
    ) -> Self {
        let envelope = if from_elasticsearch {
            serde_json::from_slice::<Envelope>(body)
                .ok()
                .and_then(|e| e.error)
        } else {
            None
        };
        let (error, described) = match envelope {
            Some(EnvelopeError::Object(mut e)) => {
                e.clean();
                (e, None)
            }
            Some(EnvelopeError::Text(t)) => {
                let cause = ErrorCause {
                    reason: Some(clean_text(&t, MAX_QUOTED_CHARS)),
                    ..ErrorCause::default()
                };
                (cause, None)
            }
            None => {
                let described = Described {
                    from_elasticsearch,
                    media,
                    bytes: body.len(),
                };
                (ErrorCause::default(), Some(described))
            }
        };
        Self {
            status,
            error,
            described,
        }
    }

    /// The top-level `type`.
    pub fn kind(&self) -> &str {
        &self.error.kind
    }

    /// The top-level `reason`.
    pub fn reason(&self) -> &str {
        self.error.reason_str()
    }

    /// The reason of the innermost cause when this error wraps another (deepest `caused_by`,
    /// else the first `root_cause` that differs from the top level).
    pub fn inner_reason(&self) -> Option<&str> {
        let top = self.reason();
        let inner = self
            .error
            .innermost_cause()
            .or_else(|| self.error.root_cause.first())?;
        let r = inner.reason_str();
        (!r.is_empty() && r != top).then_some(r)
    }

    /// Some node carries the response handler's `for request from inference entity id [`
    /// (docs/reference/elasticsearch-inference-api.md#provider-errors).
    fn relays_provider_failure(&self) -> bool {
        const MARKER: &str = "for request from inference entity id [";
        std::iter::once(&self.error)
            .chain(self.error.descendants())
            .any(|c| c.reason_str().contains(MARKER))
    }

    fn is_validation_wrapper(&self) -> bool {
        self.reason().contains(VALIDATION_WRAPPER_MARKER)
            || (self.status == 400
                && self
                    .error
                    .descendants()
                    .iter()
                    .any(|c| c.kind == "timeout_exception"))
    }

    fn classify(&self) -> ErrorClass {
        let kind = self.kind();
        let reason = self.reason();
        match self.status {
            401 => ErrorClass::ElasticsearchAuthFailed,
            403 if is_license_error(&self.error) => ErrorClass::LicenseRequired,
            403 => ErrorClass::ElasticsearchForbidden,
            404 if kind == "resource_not_found_exception" => ErrorClass::NotFound,
            404 => ErrorClass::UnexpectedResponse,
            405 => ErrorClass::UnsupportedByElasticsearch,
            409 => ErrorClass::InUse,
            429 => ErrorClass::RateLimited,
            504 => ErrorClass::ElasticsearchTimeout,
            408 if is_model_deployment_timeout(&self.error) => ErrorClass::ModelDeploying,
            _ if self.is_validation_wrapper() => classify_provider_failure(&self.error),
            500..=599 if kind == "timeout_exception" => ErrorClass::ElasticsearchTimeout,
            500..=599 => ErrorClass::ElasticsearchUnavailable,
            _ if kind == "resource_already_exists_exception" => ErrorClass::AlreadyExists,
            400 if is_referenced_id_refusal(reason) => ErrorClass::InferenceIdReferenced,
            _ if mismatched_task_type_text(reason) => ErrorClass::TaskTypeMismatch,
            _ if is_unsupported_text(reason) => ErrorClass::UnsupportedByElasticsearch,
            _ if kind == "timeout_exception" => ErrorClass::ElasticsearchTimeout,
            408 => ErrorClass::ElasticsearchTimeout,
            400 => ErrorClass::InvalidSettings,
            _ => ErrorClass::ElasticsearchError,
        }
    }

    /// `Some(stored)` for `Requested task type [a] does not match the inference endpoint's task
    /// type [b]`: the task type the endpoint really has.
    pub fn stored_task_type(&self) -> Option<&str> {
        let r = self.reason();
        let marker = "does not match the inference endpoint's task type [";
        let start = r.find(marker)? + marker.len();
        let end = r[start..].find(']')? + start;
        Some(&r[start..end])
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.described {
            return match (d.from_elasticsearch, d.bytes) {
                (true, 0) => write!(f, "{}", self.status_text()),
                (true, _) => write!(f, "{} with {d}", self.status_text()),
                (false, _) => write!(f, "{} {d}", self.status_text()),
            };
        }
        write!(f, "Elasticsearch returned HTTP {}", self.status)?;
        if !self.error.kind.is_empty() {
            write!(f, " {}", self.error.kind)?;
        }
        if !self.reason().is_empty() {
            write!(f, ": {}", self.reason())?;
        }
        if let Some(inner) = self.inner_reason() {
            write!(f, " (caused by: {inner})")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// "Elasticsearch returned HTTP n", or "HTTP n" when the answer did not say it is Elasticsearch.
    fn status_text(&self) -> String {
        match self.described {
            Some(d) if !d.from_elasticsearch => format!("the server answered HTTP {}", self.status),
            _ => format!("Elasticsearch returned HTTP {}", self.status),
        }
    }
}

/// `text` without control characters (C0, DEL, C1: ESC sequences, newlines) and without the
/// invisible formatting characters that reorder or hide text in a terminal (bidirectional
/// overrides and isolates, zero-width characters, BOM); each run of them and of whitespace
/// becomes one space. At most `max_chars` characters are kept (then `…`).
pub fn clean_text(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut kept = 0;
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_control() || c.is_whitespace() || is_invisible_format(c) {
            pending_space = !out.is_empty();
            continue;
        }
        // The joining space counts towards `max_chars` too.
        let needed = if pending_space { 2 } else { 1 };
        if kept + needed > max_chars {
            out.push('…');
            return out;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
        kept += needed;
    }
    out
}

fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The one message bound of the operator: at most [`MAX_MESSAGE_BYTES`] bytes, cut on a
/// character boundary and ended with `…` when cut. Used for Elasticsearch messages, condition
/// messages and Event notes alike.
pub fn truncate_message(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE_BYTES - '…'.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

fn is_license_error(e: &ErrorCause) -> bool {
    std::iter::once(e).chain(e.descendants()).any(|c| {
        let r = c.reason_str().to_ascii_lowercase();
        r.contains("license") || r.contains("non-compliant")
    })
}

/// The 408 of a PUT whose model deployment did not start within the PUT `timeout`
/// (`ModelDeploymentTimeoutException`: `Timed out after [30s] waiting for trained model deployment
/// [<id>] to start. ...`, and the older `... waiting for model deployment to start. ...`;
/// docs/reference/elasticsearch-services.md#in-cluster-deployments). Looked for in every node, in
/// case a release wraps it.
fn is_model_deployment_timeout(e: &ErrorCause) -> bool {
    std::iter::once(e).chain(e.descendants()).any(|c| {
        let r = c.reason_str();
        r.starts_with("Timed out after [")
            && r.contains("model deployment")
            && r.contains("to start")
    })
}

fn mismatched_task_type_text(reason: &str) -> bool {
    reason.contains("does not match the inference endpoint's task type")
        || reason.contains("Task type must match the task type of the existing endpoint")
}

fn is_unsupported_text(reason: &str) -> bool {
    reason.contains("contains unrecognized parameter")
        || reason.contains("no handler found for uri")
        || reason.contains("service does not support task type")
        || reason.starts_with("Unknown service [")
}

/// CREATE refused because pipelines or `semantic_text` fields of non-empty indices still use the
/// id (elastic/elasticsearch PR #137055; 8.19.7, 9.1.7, 9.2.1, 9.3.0). Keyed on the parts of the
/// sentence that name what holds the id [I: the full wording was not found in the sources read].
fn is_referenced_id_refusal(reason: &str) -> bool {
    reason.contains("could not be created")
        && (reason.contains("pipelines") || reason.contains("indices"))
}

/// Parse the provider status from `... status [401]` (last occurrence).
fn parse_provider_status(text: &str) -> Option<u16> {
    let marker = "status [";
    let start = text.rfind(marker)? + marker.len();
    let end = text[start..].find(']')? + start;
    text[start..end].trim().parse().ok()
}

/// Classify a failed provider validation call from the causes it wraps
/// (docs/reference/elasticsearch-inference-api.md#provider-errors,
/// docs/reference/elasticsearch-inference-api.md#unknown-host).
fn classify_provider_failure(top: &ErrorCause) -> ErrorClass {
    let causes = top.descendants();
    if causes.iter().any(|c| c.kind == "timeout_exception") {
        return ErrorClass::ProviderTimeout;
    }
    let texts: Vec<&str> = causes
        .iter()
        .map(|c| c.reason_str())
        .filter(|r| !r.is_empty())
        .collect();
    let has = |needle: &str| texts.iter().any(|t| t.contains(needle));
    let status = texts.iter().find_map(|t| parse_provider_status(t));

    // A host that does not resolve (mistyped resource name): `RetryingHttpSender` answers
    // `Invalid host [<uri>], please check that the URL is correct.` (400, not retried); older
    // versions surface the JDK's `UnknownHostException` itself.
    if has("Invalid host [") || causes.iter().any(|c| c.kind == "unknown_host_exception") {
        return ErrorClass::ProviderUnknownHost;
    }
    // 401 and 403 both need a change by the user: another key or token, a role assignment
    // or the resource's network rules. ES relays 403 as `... status [403]`.
    if has("authentication error status code") || matches!(status, Some(401 | 403)) {
        ErrorClass::ProviderRejectedCredentials
    } else if has("Resource not found at") || status == Some(404) {
        ErrorClass::ProviderNotFound
    } else if has("rate limit status code") || status == Some(429) {
        ErrorClass::ProviderRateLimited
    } else if has("server error status code")
        || has("server busy")
        || matches!(status, Some(500..=599))
    {
        ErrorClass::ProviderUnavailable
    } else if has("timed out") || status == Some(408) {
        ErrorClass::ProviderTimeout
    } else if causes.iter().any(|c| is_network_failure(c)) {
        ErrorClass::ProviderUnreachable
    } else {
        ErrorClass::ProviderValidationFailed
    }
}

fn is_network_failure(c: &ErrorCause) -> bool {
    const KINDS: &[&str] = &[
        "connect_exception",
        "unknown_host_exception",
        "no_route_to_host_exception",
        "socket_exception",
        "connection_closed_exception",
        "i_o_exception",
    ];
    KINDS.contains(&c.kind.as_str()) || c.reason_str().contains("Connection refused")
}

impl ApiError {
    /// For [`ErrorClass::ProviderUnknownHost`]: the host Elasticsearch could not resolve, from
    /// `Invalid host [https://host/...]` or the `unknown_host_exception` reason.
    pub fn unknown_host(&self) -> Option<String> {
        let causes = self.error.descendants();
        let from_invalid = causes.iter().find_map(|c| {
            let r = c.reason_str();
            let start = r.find("Invalid host [")? + "Invalid host [".len();
            let uri = &r[start..start + r[start..].find(']')?];
            let host = uri.split("://").nth(1).unwrap_or(uri);
            Some(host.split(['/', '?']).next().unwrap_or(host).to_owned())
        });
        from_invalid.or_else(|| {
            causes
                .iter()
                .find(|c| c.kind == "unknown_host_exception")
                .map(|c| c.reason_str().to_owned())
        })
    }
}

/// The category of an [`EsError`]: a stable condition reason and whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// No HTTP answer: refused, connect timeout, DNS failure, reset, not HTTP (one message for
    /// all, see [`EsError::Connect`]). Transient.
    ElasticsearchUnreachable,
    /// No answer within the client timeout, HTTP 504, or an ES `timeout_exception`. Transient;
    /// after a timed-out PUT the endpoint may exist: GET before retrying.
    ElasticsearchTimeout,
    /// TLS handshake / certificate verification failed. Transient (the CA may be rotating).
    ElasticsearchTlsFailed,
    /// HTTP 5xx. Transient.
    ElasticsearchUnavailable,
    /// HTTP 429 from Elasticsearch. Transient.
    RateLimited,
    /// HTTP 401: the operator's Elasticsearch credentials were refused. Permanent.
    ElasticsearchAuthFailed,
    /// HTTP 403 other than licensing: missing `manage_inference`/`monitor_inference`. Permanent.
    ElasticsearchForbidden,
    /// HTTP 403 license compliance (inference needs Enterprise/trial). Permanent.
    LicenseRequired,
    /// The provider refused the credentials during validation (401/403). Permanent.
    ProviderRejectedCredentials,
    /// The provider answered 404 (wrong resource/deployment/api version). Permanent.
    ProviderNotFound,
    /// The provider rate-limited the validation call (429). Transient.
    ProviderRateLimited,
    /// The provider failed (5xx / server busy). Transient.
    ProviderUnavailable,
    /// The validation call timed out. Transient.
    ProviderTimeout,
    /// Elasticsearch could not reach the provider (connect refused, reset). Transient.
    ProviderUnreachable,
    /// The provider's host does not resolve (a mistyped `resourceName`). Permanent for backoff,
    /// reported as `InvalidSettings`, but re-checked at the periodic interval: a DNS blip at
    /// create time must not stick.
    ProviderUnknownHost,
    /// CREATE refused: ingest pipelines or `semantic_text` fields of non-empty indices still
    /// reference the id. Permanent for backoff, re-checked at the periodic interval (freeing
    /// the id is nothing the operator can watch).
    InferenceIdReferenced,
    /// Any other failed validation call (e.g. provider 400). Permanent.
    ProviderValidationFailed,
    /// 400 validation/parse/status errors: the settings are wrong. Permanent.
    InvalidSettings,
    /// The cluster does not know a route, parameter, service or task type. Permanent.
    UnsupportedByElasticsearch,
    /// The endpoint exists with another task type. Permanent (needs delete + recreate).
    TaskTypeMismatch,
    /// PUT on an existing id. Transient: GET again and adopt/compare.
    AlreadyExists,
    /// 408: an in-cluster model's deployment did not start within the PUT `timeout`; the
    /// endpoint is stored (in most releases) and the deployment goes on. Transient, but polled
    /// at a fixed interval rather than with backoff.
    ModelDeploying,
    /// DELETE refused (409): referenced by pipelines or `semantic_text` mappings. Transient:
    /// retried (slowly) until the references are gone.
    InUse,
    /// 404 `resource_not_found_exception`. Permanent (callers usually handle it).
    NotFound,
    /// An answer that is not what the API documents (bad JSON, HTML from a proxy, stray 404).
    /// Transient.
    UnexpectedResponse,
    /// The connection settings are unusable (bad URL, bad CA PEM, bad header value). Permanent.
    InvalidConnectionConfig,
    /// Any other 4xx. Permanent.
    ElasticsearchError,
    /// A successful answer without `X-Elastic-Product: Elasticsearch`: whatever answers at the
    /// URL is not Elasticsearch, and is sent nothing more. Permanent.
    NotElasticsearch,
    /// The server answered with a redirect (3xx). Redirects are never followed. Permanent.
    ElasticsearchRedirected,
}

impl ErrorClass {
    /// The condition reason (for status conditions, metrics and Events).
    pub const fn reason(self) -> Reason {
        match self {
            ErrorClass::ElasticsearchUnreachable => Reason::ElasticsearchUnreachable,
            ErrorClass::ElasticsearchTimeout => Reason::ElasticsearchTimeout,
            ErrorClass::ElasticsearchTlsFailed => Reason::ElasticsearchTlsFailed,
            ErrorClass::ElasticsearchUnavailable => Reason::ElasticsearchUnavailable,
            ErrorClass::RateLimited => Reason::RateLimited,
            ErrorClass::ElasticsearchAuthFailed => Reason::ElasticsearchAuthFailed,
            ErrorClass::ElasticsearchForbidden => Reason::ElasticsearchForbidden,
            ErrorClass::LicenseRequired => Reason::LicenseRequired,
            ErrorClass::ProviderRejectedCredentials => Reason::ProviderRejectedCredentials,
            ErrorClass::ProviderNotFound => Reason::ProviderNotFound,
            ErrorClass::ProviderRateLimited => Reason::ProviderRateLimited,
            ErrorClass::ProviderUnavailable => Reason::ProviderUnavailable,
            ErrorClass::ProviderTimeout => Reason::ProviderTimeout,
            ErrorClass::ProviderUnreachable => Reason::ProviderUnreachable,
            ErrorClass::ProviderUnknownHost => Reason::InvalidSettings,
            ErrorClass::InferenceIdReferenced => Reason::InferenceIdReferenced,
            ErrorClass::ProviderValidationFailed => Reason::ProviderValidationFailed,
            ErrorClass::InvalidSettings => Reason::InvalidSettings,
            ErrorClass::UnsupportedByElasticsearch => Reason::UnsupportedByElasticsearch,
            ErrorClass::TaskTypeMismatch => Reason::TaskTypeMismatch,
            ErrorClass::AlreadyExists => Reason::AlreadyExists,
            ErrorClass::ModelDeploying => Reason::ModelDeploying,
            ErrorClass::InUse => Reason::InUse,
            ErrorClass::NotFound => Reason::NotFound,
            ErrorClass::UnexpectedResponse => Reason::UnexpectedResponse,
            ErrorClass::InvalidConnectionConfig => Reason::InvalidConnectionConfig,
            ErrorClass::ElasticsearchError => Reason::ElasticsearchError,
            ErrorClass::NotElasticsearch => Reason::NotElasticsearch,
            ErrorClass::ElasticsearchRedirected => Reason::ElasticsearchRedirected,
        }
    }

    /// Permanent failures whose cause can go away without any change the operator sees: wait for
    /// the periodic re-check instead of a change of the object or its Secrets.
    pub const fn rechecks_periodically(self) -> bool {
        matches!(
            self,
            ErrorClass::ProviderUnknownHost | ErrorClass::InferenceIdReferenced
        )
    }

    /// Whether retrying the same request later can succeed without a spec/Secret change (the
    /// kind of its reason).
    pub const fn is_transient(self) -> bool {
        matches!(self.reason().kind(), Kind::Transient)
    }
}

/// The one text of every connection failure (see [`EsError::Connect`]).
const UNREACHABLE: &str =
    "no answer (connection refused, timed out or closed, or the host name did not resolve)";

/// An error of the Elasticsearch client.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    /// The connection settings are unusable.
    #[error("invalid Elasticsearch connection settings: {0}")]
    Config(String),
    /// No HTTP answer: refused, DNS failure, connect timeout, reset, or bytes that are not HTTP.
    /// One text for all of them, so that the status cannot be used to tell a closed port from a
    /// filtered one or a non-HTTP service; `detail` is for the operator's debug log only.
    #[error("Elasticsearch at {url} is unreachable: {UNREACHABLE}")]
    Connect { url: String, detail: String },
    /// TLS handshake or certificate verification failed; `problem` is a fixed phrase, `detail`
    /// (which may name the certificate's hosts) is for the operator's debug log only.
    #[error("TLS with Elasticsearch at {url} failed: {problem}")]
    Tls {
        url: String,
        problem: &'static str,
        detail: String,
    },
    /// No answer within the client-side timeout, after the connection was made.
    #[error("Elasticsearch did not answer {method} {path} within {}s", .timeout.as_secs_f64())]
    Timeout {
        method: String,
        path: String,
        timeout: Duration,
    },
    /// A 2xx answer that does not have the documented shape (`detail` describes it, never
    /// quotes it).
    #[error("unexpected answer to {method} {path} (HTTP {status}): {detail}")]
    UnexpectedResponse {
        method: String,
        path: String,
        status: u16,
        detail: String,
    },
    /// A successful answer without `X-Elastic-Product: Elasticsearch`.
    #[error("{method} {path} answered HTTP {status} {header}: the server is not Elasticsearch (Elasticsearch 7.14 and later send it on every answer), so the operator sends it nothing more; check spec.elasticsearch.url, and that no proxy in between drops the header")]
    NotElasticsearch {
        method: String,
        path: String,
        status: u16,
        /// Fixed phrase: missing, or another value (never the value itself).
        header: &'static str,
    },
    /// A 3xx answer; redirects are never followed.
    #[error("Elasticsearch answered {method} {path} with a redirect (HTTP {status}) to {}; the operator does not follow redirects: set spec.elasticsearch.url to the address that serves Elasticsearch", .target.as_deref().unwrap_or("no valid location"))]
    Redirected {
        method: String,
        path: String,
        status: u16,
        /// `host[:port]` of the `Location`, when it is a valid URL.
        target: Option<String>,
    },
    /// Elasticsearch answered with an error.
    #[error("{0}")]
    Api(ApiError),
}

impl EsError {
    /// Category: condition reason + transient flag.
    pub fn class(&self) -> ErrorClass {
        match self {
            EsError::Config(_) => ErrorClass::InvalidConnectionConfig,
            EsError::Connect { .. } => ErrorClass::ElasticsearchUnreachable,
            EsError::Tls { .. } => ErrorClass::ElasticsearchTlsFailed,
            EsError::Timeout { .. } => ErrorClass::ElasticsearchTimeout,
            EsError::UnexpectedResponse { .. } => ErrorClass::UnexpectedResponse,
            EsError::NotElasticsearch { .. } => ErrorClass::NotElasticsearch,
            EsError::Redirected { .. } => ErrorClass::ElasticsearchRedirected,
            EsError::Api(e) => e.classify(),
        }
    }

    /// The condition reason.
    pub fn reason(&self) -> Reason {
        self.class().reason()
    }

    /// The category of a failed inference call (the health probe). Elasticsearch relays a
    /// provider's failure unwrapped, with the provider's status when below 500 (else 400) and
    /// the response handler's text naming it (`... for request from inference entity id [id]
    /// status [401]`; `BaseResponseHandler.toRestStatus`,
    /// docs/reference/elasticsearch-inference-api.md#perform-inference): so a 401 there is the
    /// provider's, not the operator's credentials. Anything else is classified as usual.
    pub fn inference_class(&self) -> ErrorClass {
        match self.api() {
            Some(api) if api.relays_provider_failure() => {
                let wrapper = ErrorCause {
                    caused_by: Some(Box::new(api.error.clone())),
                    ..ErrorCause::default()
                };
                classify_provider_failure(&wrapper)
            }
            _ => self.class(),
        }
    }

    /// Whether the operator should retry with backoff (vs. wait for a spec/Secret change).
    pub fn is_transient(&self) -> bool {
        self.class().is_transient()
    }

    /// The Elasticsearch answer, if there was one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            EsError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// HTTP status of an Elasticsearch error answer.
    pub fn status(&self) -> Option<u16> {
        self.api().map(|e| e.status)
    }

    /// After a PUT of an in-cluster model: whether the deployment goes on — the 408 of a
    /// deployment that did not start within the PUT `timeout`, or no answer within the client's
    /// timeout (the PUT may still be at work). Either way the next step is a GET and a look at
    /// the deployment, never a second PUT.
    pub fn leaves_deployment_under_way(&self) -> bool {
        matches!(self, EsError::Timeout { .. }) || self.class() == ErrorClass::ModelDeploying
    }

    /// 404 `resource_not_found_exception`.
    pub fn is_not_found(&self) -> bool {
        self.class() == ErrorClass::NotFound
    }

    /// For [`ErrorClass::TaskTypeMismatch`] on GET/DELETE: the endpoint's stored task type.
    pub fn stored_task_type(&self) -> Option<&str> {
        self.api().and_then(ApiError::stored_task_type)
    }

    /// Human message for a status condition: Elasticsearch's reason, plus the innermost cause's
    /// reason when wrapped (both cleaned when parsed); a description for anything that is not
    /// Elasticsearch's envelope. Never includes request bodies, credentials, or the body of an
    /// answer that is not Elasticsearch's error. At most [`MAX_MESSAGE_BYTES`].
    pub fn message(&self) -> String {
        let text = match self {
            EsError::Api(e) if e.described.is_none() => {
                let mut m = String::from(e.reason());
                if m.is_empty() {
                    m = e.status_text();
                    if !e.kind().is_empty() {
                        m.push(' ');
                        m.push_str(e.kind());
                    }
                }
                if let Some(inner) = e.inner_reason() {
                    m.push_str(" Caused by: ");
                    m.push_str(inner);
                }
                m
            }
            other => other.to_string(),
        };
        truncate_message(&text)
    }

    /// What the operator's debug log may add to [`EsError::message`] (transport error chains;
    /// never a body). Not for status or Events.
    pub fn log_detail(&self) -> Option<&str> {
        match self {
            EsError::Connect { detail, .. } | EsError::Tls { detail, .. } => Some(detail),
            _ => None,
        }
    }

    /// Replace every occurrence of `secret` in texts Elasticsearch echoed back.
    pub fn scrub(mut self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        match &mut self {
            EsError::Api(e) => e.error.scrub(secret),
            EsError::Config(d)
            | EsError::Connect { detail: d, .. }
            | EsError::Tls { detail: d, .. }
            | EsError::UnexpectedResponse { detail: d, .. } => {
                if d.contains(secret) {
                    *d = d.replace(secret, REDACTED);
                }
            }
            EsError::Timeout { .. }
            | EsError::NotElasticsearch { .. }
            | EsError::Redirected { .. } => {}
        }
        self
    }

    /// Map a reqwest failure. `url` is the request URL (userinfo is stripped from messages).
    pub(crate) fn from_reqwest(
        err: reqwest::Error,
        method: &str,
        url: &Url,
        timeout: Duration,
    ) -> Self {
        let err = err.without_url();
        let path = url.path().to_owned();
        let detail = error_chain_text(&err);
        if let Some(problem) = tls_problem(&err) {
            EsError::Tls {
                url: redact_url(url),
                problem,
                detail,
            }
        } else if err.is_builder() {
            EsError::Config(detail)
        } else if err.is_timeout() && !err.is_connect() {
            // The connection was made and the answer did not come in time. A connect timeout is
            // reported like a refused connection (below): telling them apart would let the status
            // tell a filtered port from a closed one.
            EsError::Timeout {
                method: method.to_owned(),
                path,
                timeout,
            }
        } else {
            EsError::Connect {
                url: redact_url(url),
                detail,
            }
        }
    }
}

/// The URL without userinfo (and so without passwords), for messages.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

fn error_chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// A fixed phrase for a TLS failure, or `None` when `err` is not one. The phrase never carries
/// text from the certificate (its names go to the debug log only, with the error chain).
fn tls_problem(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let chain = || std::iter::successors(Some(err), |e| e.source());
    let rustls_error = chain().find_map(|e| {
        // hyper-rustls wraps tokio-rustls's io::Error (which wraps the rustls error) in another
        // io::Error, and io::Error::source skips the wrapped error: unwrap them by hand.
        let mut cur: &(dyn std::error::Error + 'static) = e;
        loop {
            if let Some(r) = cur.downcast_ref::<rustls::Error>() {
                return Some(r);
            }
            cur = cur.downcast_ref::<std::io::Error>()?.get_ref()?;
        }
    });
    if let Some(r) = rustls_error {
        return Some(tls_phrase(r));
    }
    chain()
        .any(|e| {
            let s = e.to_string().to_ascii_lowercase();
            s.contains("certificate") || s.contains("tls handshake") || s.contains("invalid peer")
        })
        .then_some("the TLS handshake failed")
}

fn tls_phrase(e: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "the server's certificate is not signed by a trusted CA (check caSecretRef)"
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => "the server's certificate is not valid for the host name in the URL",
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => "the server's certificate is expired or not yet valid",
        rustls::Error::InvalidCertificate(_) => "the server's certificate was rejected",
        _ => "the TLS handshake failed (is the server speaking TLS?)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api(status: u16, body: serde_json::Value) -> EsError {
        EsError::Api(ApiError::from_response(
            status,
            &serde_json::to_vec(&body).unwrap(),
        ))
    }

    /// The standard envelope (docs/reference/elasticsearch-inference-api.md#error-envelope), no
    /// wrapped cause.
    fn simple(status: u16, kind: &str, reason: &str) -> EsError {
        api(
            status,
            json!({
                "error": {
                    "root_cause": [{"type": kind, "reason": reason}],
                    "type": kind,
                    "reason": reason
                },
                "status": status
            }),
        )
    }

    const WRAPPER: &str =
        "Could not complete inference endpoint creation as validation call to service threw an exception.";

    /// A failed validation call (docs/reference/elasticsearch-inference-api.md#provider-errors):
    /// top-level 400 wrapping the provider error.
    fn wrapped(inner_kind: &str, inner_reason: &str) -> EsError {
        api(
            400,
            json!({
                "error": {
                    "root_cause": [{"type": inner_kind, "reason": inner_reason}],
                    "type": "status_exception",
                    "reason": WRAPPER,
                    "caused_by": {"type": inner_kind, "reason": inner_reason}
                },
                "status": 400
            }),
        )
    }

    fn assert_class(e: &EsError, class: ErrorClass, transient: bool) {
        assert_eq!(e.class(), class, "{e}");
        assert_eq!(e.reason(), class.reason());
        assert_eq!(e.is_transient(), transient, "{e}");
    }

    #[test]
    fn parses_envelope() {
        let e = wrapped(
            "status_exception",
            "Received an authentication error status code for request from inference entity id [my-id] status [401]",
        );
        let a = e.api().unwrap();
        assert_eq!(a.status, 400);
        assert_eq!(a.kind(), "status_exception");
        assert_eq!(a.reason(), WRAPPER);
        assert_eq!(a.error.root_cause.len(), 1);
        assert!(a.inner_reason().unwrap().contains("status [401]"));
    }

    #[test]
    fn parses_deeply_nested_and_odd_envelopes() {
        let e = api(
            400,
            json!({"error": {"type": "a", "reason": "top", "caused_by": {"type": "b", "reason": "mid",
                "caused_by": {"type": "c", "reason": "deepest", "extra": 1}}, "header": {"x": "y"}},
                "status": 400}),
        );
        assert_eq!(e.api().unwrap().inner_reason(), Some("deepest"));
        // `error` as a plain string (e.g. "no handler found").
        let e = api(
            400,
            json!({"error": "no handler found for uri [/_inference/x/y/_update] and method [POST]", "status": 400}),
        );
        assert_class(&e, ErrorClass::UnsupportedByElasticsearch, false);
        // Non-JSON body from a proxy.
        let e = EsError::Api(ApiError::from_response(502, b"<html>\nBad gateway</html>"));
        assert_class(&e, ErrorClass::ElasticsearchUnavailable, true);
        assert!(!e.message().contains("Bad gateway"), "{}", e.message());
        assert!(e.message().contains("HTTP 502"), "{}", e.message());
        // Empty body.
        let e = EsError::Api(ApiError::from_response(503, b""));
        assert_class(&e, ErrorClass::ElasticsearchUnavailable, true);
        assert_eq!(e.message(), "Elasticsearch returned HTTP 503");
    }

    // ---- docs/reference/elasticsearch-inference-api.md#error-table, row by row ----

    #[test]
    fn table_invalid_id() {
        let e = simple(400, "action_request_validation_exception",
            "Validation Failed: 1: Invalid inference_id; 'My_Id' can contain lowercase alphanumeric (a-z and 0-9), hyphens or underscores; must start and end with alphanumeric;");
        assert_class(&e, ErrorClass::InvalidSettings, false);
        assert!(e
            .message()
            .starts_with("Validation Failed: 1: Invalid inference_id"));
    }

    /// A PUT of an in-cluster model whose deployment did not start within the PUT `timeout`:
    /// 408 `ModelDeploymentTimeoutException` (docs/reference/elasticsearch-services.md#in-cluster-deployments),
    /// in the 9.x wording and the older one. The endpoint is stored and deploying: transient,
    /// reported as `ModelDeploying`. Any other 408 is a plain timeout.
    #[test]
    fn model_deployment_timeout_is_deploying() {
        for reason in [
            "Timed out after [5s] waiting for trained model deployment [my-elser] to start. Use the trained model stats API to track the state of the deployment and try again once it has started.",
            "Timed out after [30s] waiting for model deployment to start. Use the trained model stats API to track the state of the deployment.",
        ] {
            let e = simple(408, "status_exception", reason);
            assert_class(&e, ErrorClass::ModelDeploying, true);
            assert_eq!(e.reason(), Reason::ModelDeploying);
            assert!(e.message().contains("waiting for"), "{}", e.message());
        }
        let other = simple(408, "status_exception", "request timed out");
        assert_class(&other, ErrorClass::ElasticsearchTimeout, true);
        assert!(!other.leaves_deployment_under_way());
        let deploying = simple(
            408,
            "status_exception",
            "Timed out after [5s] waiting for model deployment to start.",
        );
        assert!(deploying.leaves_deployment_under_way());
        let gave_up = EsError::Timeout {
            method: "PUT".into(),
            path: "/_inference/sparse_embedding/e".into(),
            timeout: Duration::from_secs(30),
        };
        assert!(gave_up.leaves_deployment_under_way());
        assert!(!simple(400, "status_exception", "bad").leaves_deployment_under_way());
    }

    #[test]
    fn table_already_exists() {
        let e = simple(
            400,
            "resource_already_exists_exception",
            "Inference endpoint [my-id] already exists",
        );
        assert_class(&e, ErrorClass::AlreadyExists, true);
    }

    #[test]
    fn table_not_found() {
        let e = simple(
            404,
            "resource_not_found_exception",
            "Inference endpoint not found [my-id]",
        );
        assert_class(&e, ErrorClass::NotFound, false);
        assert!(e.is_not_found());
        // A 404 that is not Elasticsearch's (wrong base path behind a proxy) is not "absent".
        let e = EsError::Api(ApiError::from_response(404, b"Not Found"));
        assert_class(&e, ErrorClass::UnexpectedResponse, true);
    }

    #[test]
    fn table_task_type_mismatch() {
        let e = simple(
            400,
            "status_exception",
            "Requested task type [text_embedding] does not match the inference endpoint's task type [completion]",
        );
        assert_class(&e, ErrorClass::TaskTypeMismatch, false);
        assert_eq!(e.stored_task_type(), Some("completion"));
        let e = simple(
            400,
            "status_exception",
            "Task type must match the task type of the existing endpoint",
        );
        assert_class(&e, ErrorClass::TaskTypeMismatch, false);
        assert_eq!(e.stored_task_type(), None);
    }

    #[test]
    fn table_invalid_settings_rows() {
        let rows = [
            ("status_exception", "Unknown task_type [bad]"),
            ("status_exception", "Inference endpoint configuration is missing the [service] setting"),
            ("status_exception", "Missing required field [service_settings]"),
            ("validation_exception", "Validation Failed: 1: [service_settings] does not contain the required setting [resource_name];"),
            ("validation_exception", "Validation Failed: 1: [service_settings] Invalid value empty string. [resource_name] must be a non-empty string;"),
            ("validation_exception", "Validation Failed: 1: field [dimensions] is not of the expected type. The value [abc] cannot be converted to a [Integer];"),
            ("validation_exception", "Validation Failed: 1: [service_settings] Invalid value [foo] received. [similarity] must be one of [cosine, dot_product, l2_norm];"),
            ("status_exception", "Model configuration contains settings [{foo=bar}] unknown to the [azureopenai] service"),
            ("status_exception", "Configuration contains settings [{foo=bar}] unknown to the [azureopenai] service"),
            ("status_exception", "[.elser-2-elasticsearch] is a reserved inference ID. Cannot create a new inference endpoint with a reserved ID."),
            ("status_exception", "Request contained fields which cannot be updated, remove these fields and try again [{service=azureopenai}]"),
            ("status_exception", "Request body is empty"),
            ("status_exception", "The retrieved embeddings size [1536] does not match the size specified in the settings [256]. Please recreate the [my-id] configuration with the correct dimensions"),
            ("validation_exception", "Validation Failed: 1: [secret_settings] must have either the [api_key] or the [entra_id] key set;"),
            ("validation_exception", "Validation Failed: 1: [secret_settings] must have exactly one of [api_key], [entra_id], or [client_secret] field set, received: [api_key, entra_id];"),
            // 9.4+ names the map the user wrote.
            ("validation_exception", "Validation Failed: 1: [service_settings] must have exactly one of [api_key], [entra_id], or [client_secret] field set;"),
            ("illegal_argument_exception", "Can't generate Chunker without ChunkingStrategy provided"),
        ];
        for (kind, reason) in rows {
            let e = simple(400, kind, reason);
            assert_class(&e, ErrorClass::InvalidSettings, false);
            assert_eq!(e.message(), reason);
        }
    }

    #[test]
    fn table_unsupported_rows() {
        for reason in [
            "Unknown service [foo]",
            "The [azureopenai] service does not support task type [rerank]",
            "request [/_inference/text_embedding/x] contains unrecognized parameter: [timeout]",
        ] {
            let kind = if reason.contains("unrecognized") {
                "illegal_argument_exception"
            } else {
                "status_exception"
            };
            assert_class(
                &simple(400, kind, reason),
                ErrorClass::UnsupportedByElasticsearch,
                false,
            );
        }
        assert_class(
            &simple(405, "", "Incorrect HTTP method"),
            ErrorClass::UnsupportedByElasticsearch,
            false,
        );
    }

    #[test]
    fn table_delete_in_use() {
        let reason = "Inference endpoint my-id is referenced by pipelines: [p1]. Ensure that no pipelines are using this inference endpoint, or use force to ignore this warning and delete the inference endpoint. Inference endpoint my-id is being used in the mapping for indexes: [idx]. Ensure that no index mappings are using this inference endpoint, or use force to ignore this warning and delete the inference endpoint.";
        let e = simple(409, "status_exception", reason);
        assert_class(&e, ErrorClass::InUse, true);
        assert_eq!(e.message(), reason);
    }

    #[test]
    fn security_and_license() {
        let e = simple(
            401,
            "security_exception",
            "unable to authenticate user [elastic] for REST request [/_inference/text_embedding/x]",
        );
        assert_class(&e, ErrorClass::ElasticsearchAuthFailed, false);
        let e = simple(403, "security_exception",
            "action [cluster:admin/xpack/inference/put] is unauthorized for user [op] with effective roles [viewer], this action is granted by the cluster privileges [manage_inference,manage_ml,all]");
        assert_class(&e, ErrorClass::ElasticsearchForbidden, false);
        let e = simple(
            403,
            "security_exception",
            "current license is non-compliant for [inference]",
        );
        assert_class(&e, ErrorClass::LicenseRequired, false);
        assert!(e.message().contains("non-compliant"));
    }

    #[test]
    fn server_side_statuses() {
        assert_class(
            &simple(429, "es_rejected_execution_exception", "rejected execution"),
            ErrorClass::RateLimited,
            true,
        );
        assert_class(
            &simple(429, "circuit_breaking_exception", "[parent] Data too large"),
            ErrorClass::RateLimited,
            true,
        );
        assert_class(
            &simple(503, "master_not_discovered_exception", ""),
            ErrorClass::ElasticsearchUnavailable,
            true,
        );
        assert_class(
            &simple(500, "null_pointer_exception", "boom"),
            ErrorClass::ElasticsearchUnavailable,
            true,
        );
        assert_class(
            &simple(
                504,
                "timeout_exception",
                "Request timed out after [30s] for inference id [x]",
            ),
            ErrorClass::ElasticsearchTimeout,
            true,
        );
        assert_class(
            &simple(500, "timeout_exception", "timed out"),
            ErrorClass::ElasticsearchTimeout,
            true,
        );
        assert_class(
            &simple(418, "whatever", "teapot"),
            ErrorClass::ElasticsearchError,
            false,
        );
    }

    // ---- docs/reference/elasticsearch-inference-api.md#provider-errors: wrapped failures ----

    #[test]
    fn azure_401() {
        let e = wrapped("status_exception", "Received an authentication error status code for request from inference entity id [my-id] status [401]. Error message: [Access denied due to invalid subscription key or wrong API endpoint.]");
        assert_class(&e, ErrorClass::ProviderRejectedCredentials, false);
        let m = e.message();
        assert!(m.starts_with(WRAPPER), "{m}");
        assert!(m.contains("status [401]"), "{m}");
    }

    #[test]
    fn azure_404() {
        let e = wrapped("status_exception", "Resource not found at [https://res.openai.azure.com/openai/deployments/dep/embeddings?api-version=2024-02-01] for request from inference entity id [my-id] status [404]. Error message: [The API deployment for this resource does not exist.]");
        assert_class(&e, ErrorClass::ProviderNotFound, false);
    }

    #[test]
    fn azure_429() {
        let e = wrapped("status_exception", "Received a rate limit status code. Remaining tokens [x]. Remaining requests [y]. for request from inference entity id [my-id] status [429]");
        assert_class(&e, ErrorClass::ProviderRateLimited, true);
    }

    #[test]
    fn azure_5xx() {
        let e = wrapped("status_exception", "Received a server error status code for request from inference entity id [my-id] status [500]");
        assert_class(&e, ErrorClass::ProviderUnavailable, true);
        let e = wrapped("status_exception", "Received a server busy error status code for request from inference entity id [my-id] status [503]");
        assert_class(&e, ErrorClass::ProviderUnavailable, true);
        // Status only (text unknown).
        let e = wrapped(
            "status_exception",
            "Something new for request from inference entity id [my-id] status [502]",
        );
        assert_class(&e, ErrorClass::ProviderUnavailable, true);
    }

    #[test]
    fn azure_400_and_other() {
        let e = wrapped("status_exception", "Received a bad request status code for request from inference entity id [my-id] status [400]. Error message: [Unsupported data type]");
        assert_class(&e, ErrorClass::ProviderValidationFailed, false);
        assert!(e.message().contains("Unsupported data type"));
    }

    #[test]
    fn azure_timeout_and_network() {
        let e = api(
            400,
            json!({"error": {"root_cause": [{"type": "timeout_exception", "reason": "Request timed out after [1ms] for inference id [id]"}],
                "type": "status_exception",
                "reason": "Could not complete inference endpoint update as validation call to service threw an exception.",
                "caused_by": {"type": "timeout_exception", "reason": "Request timed out after [1ms] for inference id [id]"}},
                "status": 400}),
        );
        assert_class(&e, ErrorClass::ProviderTimeout, true);
        let e = wrapped("connect_exception", "Connection refused");
        assert_class(&e, ErrorClass::ProviderUnreachable, true);
    }

    #[test]
    fn unknown_azure_host_is_permanent_invalid_settings_rechecked() {
        // RetryingHttpSender's 400 inside the validation wrapper.
        let e = api(
            400,
            json!({"error": {"root_cause": [{"type": "status_exception",
                "reason": "Invalid host [https://typo.openai.azure.com/openai/deployments/d/embeddings?api-version=v], please check that the URL is correct."}],
                "type": "status_exception", "reason": WRAPPER,
                "caused_by": {"type": "status_exception",
                    "reason": "Invalid host [https://typo.openai.azure.com/openai/deployments/d/embeddings?api-version=v], please check that the URL is correct.",
                    "caused_by": {"type": "unknown_host_exception", "reason": "typo.openai.azure.com"}}},
                "status": 400}),
        );
        assert_class(&e, ErrorClass::ProviderUnknownHost, false);
        assert_eq!(e.reason().as_str(), "InvalidSettings");
        assert!(e.class().rechecks_periodically());
        assert_eq!(
            e.api().unwrap().unknown_host().as_deref(),
            Some("typo.openai.azure.com")
        );
        // Older versions: the JDK exception itself.
        let e = wrapped("unknown_host_exception", "nope.openai.azure.com");
        assert_class(&e, ErrorClass::ProviderUnknownHost, false);
        assert_eq!(
            e.api().unwrap().unknown_host().as_deref(),
            Some("nope.openai.azure.com")
        );
        assert!(!ErrorClass::InvalidSettings.rechecks_periodically());
    }

    #[test]
    fn azure_403_is_permanent() {
        let e = wrapped("status_exception", "Received a permission denied error status code for request from inference entity id [x] status [403]. Error message: [Access denied due to Virtual Network/Firewall rules.]");
        assert_class(&e, ErrorClass::ProviderRejectedCredentials, false);
        let e = wrapped(
            "status_exception",
            "Received an unsuccessful status code for request from inference entity id [x] status [403]",
        );
        assert_class(&e, ErrorClass::ProviderRejectedCredentials, false);
    }

    #[test]
    fn create_refused_for_a_referenced_id_is_rechecked() {
        let e = simple(400, "status_exception", "Inference endpoint [emb] could not be created because the inference_id is already referenced by pipelines: [p1] and used in the mappings of non-empty indices: [docs]. Please either use a different inference_id or update the index mappings and pipelines to refer to a new inference_id.");
        assert_class(&e, ErrorClass::InferenceIdReferenced, false);
        assert!(e.class().rechecks_periodically());
        assert!(e.message().contains("[p1]") && e.message().contains("[docs]"));
    }

    #[test]
    fn wrapper_status_only_in_root_cause() {
        let e = api(
            400,
            json!({"error": {"root_cause": [{"type": "status_exception",
                "reason": "Received an authentication error status code for request from inference entity id [x] status [401]"}],
                "type": "status_exception", "reason": WRAPPER}, "status": 400}),
        );
        assert_class(&e, ErrorClass::ProviderRejectedCredentials, false);
        assert!(e.message().contains("status [401]"));
    }

    #[test]
    fn provider_status_parsing() {
        assert_eq!(parse_provider_status("x status [401]"), Some(401));
        assert_eq!(
            parse_provider_status("a status [400] b status [429]. Error message: [m]"),
            Some(429)
        );
        assert_eq!(parse_provider_status("status [abc]"), None);
        assert_eq!(parse_provider_status("no status"), None);
    }

    #[test]
    fn scrub_removes_echoed_secret() {
        let e = simple(
            400,
            "status_exception",
            "Model configuration contains settings [{api_key=sk-SECRET-123}] unknown",
        )
        .scrub("sk-SECRET-123");
        assert!(!e.to_string().contains("sk-SECRET-123"));
        assert!(!e.message().contains("sk-SECRET-123"));
        assert!(!format!("{e:?}").contains("sk-SECRET-123"));
        assert!(e.message().contains("[REDACTED]"));
    }

    #[test]
    fn transport_messages_strip_userinfo() {
        let url =
            Url::parse("https://elastic:hunter2@es.example:9200/_inference/x?timeout=30s").unwrap();
        assert_eq!(redact_url(&url), "https://es.example:9200/_inference/x");
        let e = EsError::Connect {
            url: redact_url(&url),
            detail: "tcp connect error".into(),
        };
        assert!(!e.to_string().contains("hunter2"));
        assert_class(&e, ErrorClass::ElasticsearchUnreachable, true);
        let e = EsError::Timeout {
            method: "PUT".into(),
            path: "/_inference/x".into(),
            timeout: Duration::from_secs(40),
        };
        assert_eq!(
            e.to_string(),
            "Elasticsearch did not answer PUT /_inference/x within 40s"
        );
        assert_class(&e, ErrorClass::ElasticsearchTimeout, true);
        assert_class(
            &EsError::Config("bad".into()),
            ErrorClass::InvalidConnectionConfig,
            false,
        );
    }

    #[test]
    fn message_is_truncated() {
        let long = "x".repeat(5000);
        let e = simple(400, "status_exception", &long);
        assert_eq!(e.message().len(), MAX_MESSAGE_BYTES);
        assert!(e.message().ends_with('…'));
    }

    // ---- what comes back from the far side: quoted, described, or one fixed text ----

    #[test]
    fn clean_text_strips_controls_and_invisible_formatting() {
        let raw = "a\u{1b}[2J\u{1b}]0;title\u{7}b\r\n\tc\u{85}d\u{202e}e\u{200b}f\u{feff}  g ";
        assert_eq!(clean_text(raw, 100), "a [2J ]0;title b c d e f g");
        assert_eq!(clean_text("\n\nlead", 100), "lead");
        assert_eq!(clean_text("éééé", 2), "éé…");
        assert_eq!(clean_text("", 5), "");
    }

    #[test]
    fn one_truncation_bound_in_bytes() {
        assert_eq!(truncate_message("short"), "short");
        let exact = "a".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(truncate_message(&exact), exact);
        let cut = truncate_message(&"€".repeat(MAX_MESSAGE_BYTES));
        assert!(
            cut.len() <= MAX_MESSAGE_BYTES && cut.ends_with('…'),
            "{}",
            cut.len()
        );
    }

    #[test]
    fn envelopes_are_quoted_only_from_elasticsearch() {
        let body = br#"{"error": {"type": "status_exception", "reason": "secret-looking text"}, "status": 400}"#;
        let e = EsError::Api(ApiError::from_answer(400, "application/json", false, body));
        assert!(!e.message().contains("secret-looking"), "{}", e.message());
        assert!(!e.to_string().contains("secret-looking"));
        assert!(
            e.message()
                .starts_with("the server answered HTTP 400 without the X-Elastic-Product header"),
            "{}",
            e.message()
        );
        assert_eq!(
            e.reason().as_str(),
            "InvalidSettings",
            "the status still classifies it"
        );
        let e = EsError::Api(ApiError::from_answer(400, "application/json", true, body));
        assert_eq!(e.message(), "secret-looking text");
        let text = br#"{"error": "no handler found\u001b[0m\nfor uri", "status": 400}"#;
        let e = EsError::Api(ApiError::from_answer(400, "application/json", true, text));
        assert_eq!(e.message(), "no handler found [0m for uri");
    }

    #[test]
    fn connection_failures_share_one_text() {
        let refused = EsError::Connect {
            url: "http://10.0.0.1:22/".into(),
            detail: "tcp connect error: Connection refused (os error 111)".into(),
        };
        let unresolved = EsError::Connect {
            url: "http://10.0.0.1:22/".into(),
            detail: "dns error: failed to lookup address information".into(),
        };
        assert_eq!(refused.message(), unresolved.message());
        assert!(
            !refused.message().contains("os error"),
            "{}",
            refused.message()
        );
        assert!(refused.message().contains("unreachable"));
        assert_eq!(
            refused.log_detail(),
            Some("tcp connect error: Connection refused (os error 111)")
        );
    }
}
