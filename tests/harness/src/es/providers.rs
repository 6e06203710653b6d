//! The one fake-provider surface of the double: what a provider answers to Elasticsearch's
//! validation call (docs/reference/elasticsearch-inference-api.md#validation-call), for every
//! service including `azureopenai` ([`super::FakeAzure`] is an Azure-worded view of it), per
//! credential, per model, per target host, per service or globally, with every call recorded.
//! The fidelity, health-probe and sandbox work reuse it; [`FakeProviders::service`] scopes the
//! knobs (latency, unknown credentials, dimensions, ...) to one service.
//!
//! **Credential identity.** A rule or an accepted credential names one string:
//! * one secret key (`api_key`, `entra_id`, `client_secret`, `service_account_json`): its value;
//! * Amazon (`access_key` + `secret_key`): `"<access_key>:<secret_key>"` ([`aws_credential`]);
//! * `custom`: the `secret_parameters` entries sorted by key as `k=v` joined by `,`
//!   ([`custom_credential`]);
//! * no secret (`elastic`, registered services without secret keys): the empty string, and such
//!   a call is never refused for its credential (there is none to refuse); only model, target,
//!   service or global rules apply.
//!
//! Decision for a call, first match wins: global override → per-service → per-target (the host:
//! Azure's `resource_name`, else a configured `url`'s host) → per-model (Azure's
//! `deployment_id`) → per-credential ([`ProviderControl`]) → `Accept` if the credential was
//! accepted → the unknown-credential outcome (default `Reject401`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::errors::{Cause, EsError};
use super::provider::{CallKeys, ProviderControl, Scope};

/// What a fake provider answers to Elasticsearch's validation call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderOutcome {
    /// 200 with a result (an embedding of the configured length for `text_embedding`).
    Accept,
    /// 401: the credential is wrong.
    Reject401,
    /// 403: the credential is valid but may not use this model/resource (network rules, a
    /// missing role).
    Forbidden403,
    /// 404: the model (or Azure deployment) does not exist.
    NotFound404,
    /// 429: rate-limited. Elasticsearch retries it ([`ES_PROVIDER_ATTEMPTS`] tries).
    RateLimited429,
    /// 500. Elasticsearch retries it.
    ServerError500,
    /// 503. Elasticsearch retries it.
    ServerBusy503,
    /// The provider never answers: the call outlives the request's `timeout`.
    Timeout,
    /// The host does not resolve (for Azure: `<resource>.openai.azure.com`, a mistyped
    /// `resourceName`). Nothing answers, so nothing is retried.
    UnknownHost,
}

impl ProviderOutcome {
    /// The HTTP status the provider answered (None for a timeout, an unknown host or an
    /// accepted call).
    pub fn status(self) -> Option<u16> {
        match self {
            ProviderOutcome::Accept | ProviderOutcome::Timeout | ProviderOutcome::UnknownHost => {
                None
            }
            ProviderOutcome::Reject401 => Some(401),
            ProviderOutcome::Forbidden403 => Some(403),
            ProviderOutcome::NotFound404 => Some(404),
            ProviderOutcome::RateLimited429 => Some(429),
            ProviderOutcome::ServerError500 => Some(500),
            ProviderOutcome::ServerBusy503 => Some(503),
        }
    }

    /// 429, 500 and 503 are retried by `RetryingHttpSender` through the services' response
    /// handlers (x-pack/plugin/inference/.../external/http/retry/BaseResponseHandler.java
    /// `checkForFailureStatusCode`: server errors and rate limits throw `RetryException(true, ..)`;
    /// `OpenAiResponseHandler`, which `AzureOpenAiResponseHandler` extends, does the same for 429,
    /// 500 and 503 only: x-pack/plugin/inference/.../external/openai/OpenAiResponseHandler.java)
    /// (inferred: per-service handlers can differ in detail; this is the base behaviour).
    pub fn retried_by_elasticsearch(self) -> bool {
        matches!(
            self,
            ProviderOutcome::RateLimited429
                | ProviderOutcome::ServerError500
                | ProviderOutcome::ServerBusy503
        )
    }
}

/// How many times Elasticsearch calls the provider for a retryable answer before it gives up.
/// `RetrySettings` defaults: `xpack.inference.http.retry.initial_delay` 1s,
/// `max_delay_bound` 5s, `timeout` 30s (x-pack/plugin/inference/.../external/http/retry/
/// RetrySettings.java); with `RetryableAction`'s randomised exponential backoff that is about
/// three tries within the 30 s (inferred: the count depends on the random delays; 3 is what the
/// operator should expect).
pub const ES_PROVIDER_ATTEMPTS: usize = 3;

/// One validation call Elasticsearch made to a fake provider.
#[derive(Clone, Debug)]
pub struct ProviderCall {
    pub service: String,
    pub inference_id: String,
    pub task_type: String,
    /// The URL Elasticsearch calls: Azure's deployment URL, else the configured `url`, else
    /// `<service>/<model>` (inferred: a stand-in for the service's fixed endpoint).
    pub url: String,
    /// The host the call goes to, which per-target rules match: Azure's `resource_name`, else
    /// the host of a configured `url`; empty for a service's fixed endpoint.
    pub target: String,
    /// The model the call names (`model_id`, Bedrock's `model`, Azure's `deployment_id`, ...),
    /// empty if none.
    pub model: String,
    /// The credential identity (see the module docs).
    pub credential: String,
    /// The secret keys ES presented, by name (as stored for the endpoint).
    pub secrets: Map<String, Value>,
    /// The endpoint's (non-secret) `service_settings` the call was built from.
    pub settings: Map<String, Value>,
    /// The endpoint's `task_settings` (Azure sends `user` and `headers` from them).
    pub task_settings: Map<String, Value>,
    /// `dimensions` sent to the provider (only when the user set it); the provider honours it.
    pub dimensions: Option<i64>,
    pub outcome: ProviderOutcome,
}

/// The host part of a URL (`https://h:1/p` → `h:1`).
pub(crate) fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or_default().to_string()
}

/// Knobs that can be set for every service and overridden for one.
#[derive(Clone, Copy, Debug, Default)]
struct Knobs {
    unknown_credential: Option<ProviderOutcome>,
    latency: Option<Duration>,
    retry_delay: Option<Duration>,
    native_dimensions: Option<i64>,
    forced_dimensions: Option<i64>,
}

impl Knobs {
    /// `self` where set, else `base`.
    fn or(self, base: Knobs) -> Knobs {
        Knobs {
            unknown_credential: self.unknown_credential.or(base.unknown_credential),
            latency: self.latency.or(base.latency),
            retry_delay: self.retry_delay.or(base.retry_delay),
            native_dimensions: self.native_dimensions.or(base.native_dimensions),
            forced_dimensions: self.forced_dimensions.or(base.forced_dimensions),
        }
    }
}

#[derive(Default)]
struct ProvidersState {
    valid: HashSet<String>,
    control: ProviderControl<ProviderOutcome>,
    /// Knobs of every service; `per_service` overrides them.
    all: Knobs,
    per_service: HashMap<String, Knobs>,
    calls: Vec<ProviderCall>,
    /// Inference calls in flight now and the most at once (tests of probe concurrency).
    inference_in_flight: (usize, usize),
}

impl ProvidersState {
    fn knobs(&self, service: &str) -> Knobs {
        let own = self.per_service.get(service).copied().unwrap_or_default();
        own.or(self.all)
    }

    fn knobs_mut(&mut self, service: &str) -> &mut Knobs {
        self.per_service.entry(service.to_string()).or_default()
    }
}

/// Handle to the fake providers behind the double. Cheap to clone.
#[derive(Clone, Default)]
pub struct FakeProviders {
    inner: Arc<Mutex<ProvidersState>>,
}

/// Credential identity of an Amazon key pair (`amazonbedrock`, `amazon_sagemaker`).
pub fn aws_credential(access_key: &str, secret_key: &str) -> String {
    format!("{access_key}:{secret_key}")
}

/// Credential identity of a `custom` service's `secret_parameters`.
pub fn custom_credential<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let sorted: BTreeMap<&str, &str> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Length of the vector a provider returns when nobody configured one: 1536 for `openai` and
/// `azureopenai` (text-embedding-3-small / ada-002), 1024 otherwise (inferred: a typical size;
/// tests set their own with [`FakeProviders::set_native_dimensions`]).
fn default_dimensions(service: &str) -> i64 {
    if service == "openai" || service == super::model::AZURE {
        1536
    } else {
        1024
    }
}

impl FakeProviders {
    fn lock(&self) -> std::sync::MutexGuard<'_, ProvidersState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The knobs of one service (`"openai"`, `"azureopenai"`, ...), over this same surface.
    pub fn service(&self, service: &str) -> FakeService {
        FakeService {
            providers: self.clone(),
            service: service.to_string(),
        }
    }

    /// Make a credential valid (for every service; identities are unique strings anyway).
    pub fn accept_credential(&self, credential: &str) {
        self.lock().valid.insert(credential.to_string());
    }

    /// Make a credential invalid again (a revoked key).
    pub fn revoke_credential(&self, credential: &str) {
        self.lock().valid.remove(credential);
    }

    /// Force an outcome for calls made with this credential.
    pub fn set_credential_outcome(&self, credential: &str, outcome: Option<ProviderOutcome>) {
        self.set_rule(Scope::Credential, credential, outcome);
    }

    /// Force an outcome for calls naming this model (an Azure deployment; e.g. `NotFound404`).
    pub fn set_model_outcome(&self, model: &str, outcome: Option<ProviderOutcome>) {
        self.set_rule(Scope::Model, model, outcome);
    }

    /// Force an outcome for calls to this host ([`ProviderCall::target`]), e.g. `UnknownHost`
    /// for a name that does not resolve. `None` removes the rule (the name resolves again).
    pub fn set_target_outcome(&self, target: &str, outcome: Option<ProviderOutcome>) {
        self.set_rule(Scope::Target, target, outcome);
    }

    /// Force an outcome for every call to one service (`"openai"`, `"elastic"`, ...).
    pub fn set_service_outcome(&self, service: &str, outcome: Option<ProviderOutcome>) {
        self.set_rule(Scope::Service, service, outcome);
    }

    /// Global override for every call (`None` removes it).
    pub fn set_outcome(&self, outcome: Option<ProviderOutcome>) {
        self.lock().control.set_global(outcome);
    }

    /// Outcome for credentials never accepted, for every service without its own (default
    /// `Reject401`; `Accept` = any key works).
    pub fn set_unknown_credential_outcome(&self, outcome: ProviderOutcome) {
        self.lock().all.unknown_credential = Some(outcome);
    }

    /// Length of the embeddings one service returns (learnt as `dimensions` on create).
    pub fn set_native_dimensions(&self, service: &str, n: i64) {
        self.lock().knobs_mut(service).native_dimensions = Some(n);
    }

    /// One service always returns vectors of this length, even if the user asked for other
    /// `dimensions` (provokes ES's dims-mismatch error,
    /// docs/reference/elasticsearch-inference-api.md#error-table). `None` = honour the request.
    pub fn force_returned_dimensions(&self, service: &str, n: Option<i64>) {
        self.lock().knobs_mut(service).forced_dimensions = n;
    }

    /// How long each provider call takes, for every service without its own (bounded by the
    /// request's `timeout`, docs/reference/elasticsearch-inference-api.md#timeout).
    pub fn set_latency(&self, d: Duration) {
        self.lock().all.latency = Some(d);
    }

    /// Pause between Elasticsearch's tries of a retryable answer, for every service without
    /// its own (default zero; the real cluster waits about 1–5 s, see [`ES_PROVIDER_ATTEMPTS`]).
    /// Tests use a few milliseconds.
    pub fn set_retry_delay(&self, d: Duration) {
        self.lock().all.retry_delay = Some(d);
    }

    /// Calls made so far, oldest first.
    pub fn calls(&self) -> Vec<ProviderCall> {
        self.lock().calls.clone()
    }

    /// Calls made to one service.
    pub fn calls_for(&self, service: &str) -> Vec<ProviderCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.service == service)
            .collect()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The most inference calls (`POST _inference/...`) the providers were answering at once.
    pub fn max_concurrent_inference(&self) -> usize {
        self.lock().inference_in_flight.1
    }

    /// An inference call starts (`true`) or ends (`false`).
    pub(crate) fn inference_in_flight(&self, starts: bool) {
        let mut st = self.lock();
        let (now, most) = &mut st.inference_in_flight;
        if starts {
            *now += 1;
            *most = (*most).max(*now);
        } else {
            *now = now.saturating_sub(1);
        }
    }

    fn set_rule(&self, scope: Scope, key: &str, outcome: Option<ProviderOutcome>) {
        let mut st = self.lock();
        match outcome {
            Some(o) => st.control.set(scope, key, o),
            None => st.control.clear(scope, key),
        }
    }

    /// Decide and record one validation with ES's retries (each try recorded). Returns the
    /// time the tries take and `Ok(vector length)` or the failing outcome.
    pub(crate) fn decide(
        &self,
        mut call: ProviderCall,
    ) -> (Duration, Result<i64, ProviderOutcome>) {
        let mut st = self.lock();
        let knobs = st.knobs(&call.service);
        let keys = CallKeys {
            service: &call.service,
            target: &call.target,
            model: &call.model,
            credential: &call.credential,
        };
        let by_credential = if call.credential.is_empty() || st.valid.contains(&call.credential) {
            ProviderOutcome::Accept
        } else {
            knobs
                .unknown_credential
                .unwrap_or(ProviderOutcome::Reject401)
        };
        let outcome = st.control.decide(keys).unwrap_or(by_credential);
        call.outcome = outcome;
        let dims = knobs
            .forced_dimensions
            .or(call.dimensions)
            .or(knobs.native_dimensions)
            .unwrap_or_else(|| default_dimensions(&call.service));
        let tries = if outcome.retried_by_elasticsearch() {
            ES_PROVIDER_ATTEMPTS
        } else {
            1
        };
        for _ in 0..tries {
            st.calls.push(call.clone());
        }
        let (latency, retry_delay) = (
            knobs.latency.unwrap_or_default(),
            knobs.retry_delay.unwrap_or_default(),
        );
        let spent = match outcome {
            ProviderOutcome::Timeout => Duration::MAX,
            // An unknown host answers nothing: no provider latency (DNS fails at once).
            ProviderOutcome::UnknownHost => Duration::ZERO,
            _ => latency * tries as u32 + retry_delay * (tries as u32 - 1),
        };
        let res = if outcome == ProviderOutcome::Accept {
            Ok(dims)
        } else {
            Err(outcome)
        };
        (spent, res)
    }

    /// ES's validation call, bounded by the request's `timeout` (`(limit, as ES prints it)`,
    /// docs/reference/elasticsearch-inference-api.md#timeout): the vector length, or the error
    /// ES answers — [`validation_timeout`] for a call that outlives it, else `fail(outcome)`.
    pub(crate) async fn validate(
        &self,
        call: ProviderCall,
        timeout: &(Duration, String),
        fail: impl FnOnce(ProviderOutcome) -> EsError,
    ) -> Result<i64, EsError> {
        let id = call.inference_id.clone();
        let (spent, result) = self.decide(call);
        if spent > timeout.0 || result == Err(ProviderOutcome::Timeout) {
            tokio::time::sleep(timeout.0).await;
            return Err(validation_timeout(&id, &timeout.1));
        }
        tokio::time::sleep(spent).await;
        result.map_err(fail)
    }
}

/// One service's knobs on the one surface ([`FakeProviders::service`]). Cheap to clone.
#[derive(Clone)]
pub struct FakeService {
    providers: FakeProviders,
    service: String,
}

impl FakeService {
    /// The whole surface this view belongs to.
    pub fn providers(&self) -> &FakeProviders {
        &self.providers
    }

    /// Override every call to this service (`None` removes it; a global override still wins).
    pub fn set_outcome(&self, outcome: Option<ProviderOutcome>) {
        self.providers.set_service_outcome(&self.service, outcome);
    }

    /// Outcome for credentials never accepted, for this service.
    pub fn set_unknown_credential_outcome(&self, outcome: ProviderOutcome) {
        self.providers
            .lock()
            .knobs_mut(&self.service)
            .unknown_credential = Some(outcome);
    }

    /// How long each call to this service takes.
    pub fn set_latency(&self, d: Duration) {
        self.providers.lock().knobs_mut(&self.service).latency = Some(d);
    }

    /// Pause between Elasticsearch's tries of a retryable answer, for this service.
    pub fn set_retry_delay(&self, d: Duration) {
        self.providers.lock().knobs_mut(&self.service).retry_delay = Some(d);
    }

    /// Length of the vector returned when the user did not set `dimensions`.
    pub fn set_native_dimensions(&self, n: i64) {
        self.providers.set_native_dimensions(&self.service, n);
    }

    /// See [`FakeProviders::force_returned_dimensions`].
    pub fn force_returned_dimensions(&self, n: Option<i64>) {
        self.providers.force_returned_dimensions(&self.service, n);
    }

    /// Calls made to this service, oldest first.
    pub fn calls(&self) -> Vec<ProviderCall> {
        self.providers.calls_for(&self.service)
    }

    /// Forget the calls made to this service (other services' stay).
    pub fn clear_calls(&self) {
        let service = &self.service;
        self.providers
            .lock()
            .calls
            .retain(|c| &c.service != service);
    }
}

// ---------------------------------------------------------------------------------------------
// What ES answers when the validation call fails
// (docs/reference/elasticsearch-inference-api.md#provider-errors)
// ---------------------------------------------------------------------------------------------

const VALIDATION_FAILED: &str =
    "Could not complete inference endpoint creation as validation call to service threw an exception.";

/// The prefix ES's response handler puts before a failed status (`BaseResponseHandler`,
/// x-pack/plugin/inference/.../external/http/retry/BaseResponseHandler.java).
pub(crate) fn status_prefix(outcome: ProviderOutcome, url: &str) -> String {
    match outcome {
        ProviderOutcome::Reject401 => "Received an authentication error status code".into(),
        // (inferred) `BaseResponseHandler.PERMISSION_DENIED` wording; handlers without a 403 branch
        // answer "Received an unsuccessful status code" instead. Either way `status [403]`.
        ProviderOutcome::Forbidden403 => "Received a permission denied error status code".into(),
        ProviderOutcome::NotFound404 => format!("Resource not found at [{url}]"),
        ProviderOutcome::RateLimited429 => "Received a rate limit status code".into(),
        ProviderOutcome::ServerError500 => "Received a server error status code".into(),
        ProviderOutcome::ServerBusy503 => "Received a server busy error status code".into(),
        ProviderOutcome::Accept | ProviderOutcome::Timeout | ProviderOutcome::UnknownHost => {
            unreachable!("accepted calls do not fail; timeouts and unknown hosts are handled apart")
        }
    }
}

/// The wrapped 400 for a failed validation call: the handler's [`status_prefix`] (with a
/// service's `detail` after it) and the provider's own error text; an unknown host is
/// [`unknown_host`] instead.
pub(crate) fn failed_validation(
    outcome: ProviderOutcome,
    id: &str,
    url: &str,
    detail: &str,
    provider_text: &str,
) -> EsError {
    if outcome == ProviderOutcome::UnknownHost {
        return unknown_host(url);
    }
    let prefix = status_prefix(outcome, url);
    let status = outcome.status().unwrap_or_default();
    let inner = format!(
        "{prefix}{detail} for request from inference entity id [{id}] status [{status}]. Error message: [{provider_text}]"
    );
    EsError::wrapped(
        400,
        Cause::new("status_exception", VALIDATION_FAILED),
        Cause::new("status_exception", inner),
    )
}

/// A host that does not resolve: `RetryingHttpSender` turns the `UnknownHostException` into a
/// 400 `Invalid host [<uri>], please check that the URL is correct.` (not retried), which the
/// validator wraps like any failed call (x-pack/plugin/inference/.../external/http/retry/
/// RetryingHttpSender.java; wording as quoted in elastic/elasticsearch's inference code)
/// (inferred: the JDK exception below it is rendered as `unknown_host_exception` with the host name).
fn unknown_host(url: &str) -> EsError {
    let mut invalid = Cause::new(
        "status_exception",
        format!("Invalid host [{url}], please check that the URL is correct."),
    );
    invalid.extra.push((
        "caused_by".into(),
        json!({"type": "unknown_host_exception", "reason": host_of(url)}),
    ));
    EsError::wrapped(
        400,
        Cause::new("status_exception", VALIDATION_FAILED),
        invalid,
    )
}

/// Validation call that outlived ES's `timeout`
/// (docs/reference/elasticsearch-inference-api.md#validation-timeout) (inferred: shape taken from the 9.5
/// update example).
pub(crate) fn validation_timeout(id: &str, timeout: &str) -> EsError {
    EsError::wrapped(
        400,
        Cause::new("status_exception", VALIDATION_FAILED),
        Cause::new(
            "timeout_exception",
            format!("Request timed out after [{timeout}] for inference id [{id}]"),
        ),
    )
}
