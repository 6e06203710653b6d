//! One fake-provider surface for every service other than `azureopenai` (which keeps
//! [`super::FakeAzure`]): what the provider answers to Elasticsearch's validation call, per
//! credential, per model, per service or globally, with every call recorded. The fidelity,
//! health-probe and sandbox work reuse it.
//!
//! **Credential identity.** A rule or an accepted credential names one string:
//! * one secret key (`api_key`, `client_secret`, `service_account_json`): its value;
//! * Amazon (`access_key` + `secret_key`): `"<access_key>:<secret_key>"` ([`aws_credential`]);
//! * `custom`: the `secret_parameters` entries sorted by key as `k=v` joined by `,`
//!   ([`custom_credential`]);
//! * no secret (`elastic`, registered services without secret keys): the empty string, and such
//!   a call is never refused for its credential (there is none to refuse); only model, service
//!   or global rules apply.
//!
//! Decision for a call, first match wins: global override → per-service → per-model →
//! per-credential ([`ProviderControl`] with `Resource` = service name, `Deployment` = model) →
//! `Accept` if the credential was accepted → the unknown-credential outcome (default
//! `Reject401`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

use super::provider::{CallKeys, ProviderControl, Scope};

/// What a fake provider answers to Elasticsearch's validation call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderOutcome {
    /// 200 with a result (an embedding of the configured length for `text_embedding`).
    Accept,
    /// 401: the credential is wrong.
    Reject401,
    /// 403: the credential is valid but may not use this model/resource.
    Forbidden403,
    /// 404: the model (or deployment) does not exist.
    NotFound404,
    /// 429: rate-limited. Elasticsearch retries it ([`super::ES_PROVIDER_ATTEMPTS`] tries).
    RateLimited429,
    /// 500. Elasticsearch retries it.
    ServerError500,
    /// 503. Elasticsearch retries it.
    ServerBusy503,
    /// The provider never answers: the call outlives the request's `timeout`.
    Timeout,
}

impl ProviderOutcome {
    /// The HTTP status the provider answered (None for a timeout or an accepted call).
    pub fn status(self) -> Option<u16> {
        match self {
            ProviderOutcome::Accept | ProviderOutcome::Timeout => None,
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
    /// `checkForFailureStatusCode`: server errors and rate limits throw `RetryException(true, ..)`)
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

/// One validation call Elasticsearch made to a fake provider.
#[derive(Clone, Debug)]
pub struct ProviderCall {
    pub service: String,
    pub inference_id: String,
    pub task_type: String,
    /// The model the call names (`model_id`, Bedrock's `model`, ...), empty if none.
    pub model: String,
    /// The credential identity (see the module docs).
    pub credential: String,
    /// The secret keys ES presented, by name (as stored for the endpoint).
    pub secrets: Map<String, Value>,
    pub outcome: ProviderOutcome,
}

struct ProvidersState {
    valid: HashSet<String>,
    control: ProviderControl<ProviderOutcome>,
    unknown_credential: ProviderOutcome,
    native_dimensions: HashMap<String, i64>,
    latency: Duration,
    retry_delay: Duration,
    calls: Vec<ProviderCall>,
}

/// Handle to the fake providers behind the double. Cheap to clone.
#[derive(Clone)]
pub struct FakeProviders {
    inner: Arc<Mutex<ProvidersState>>,
}

impl Default for FakeProviders {
    fn default() -> Self {
        FakeProviders {
            inner: Arc::new(Mutex::new(ProvidersState {
                valid: HashSet::new(),
                control: ProviderControl::default(),
                unknown_credential: ProviderOutcome::Reject401,
                native_dimensions: HashMap::new(),
                latency: Duration::ZERO,
                retry_delay: Duration::ZERO,
                calls: Vec::new(),
            })),
        }
    }
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

/// Length of the vector a provider returns when nobody configured one: 1536 for `openai`
/// (text-embedding-3-small), 1024 otherwise (inferred: a typical size; tests set their own with
/// [`FakeProviders::set_native_dimensions`]).
fn default_dimensions(service: &str) -> i64 {
    if service == "openai" {
        1536
    } else {
        1024
    }
}

impl FakeProviders {
    fn lock(&self) -> std::sync::MutexGuard<'_, ProvidersState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Force an outcome for calls naming this model (e.g. `NotFound404`).
    pub fn set_model_outcome(&self, model: &str, outcome: Option<ProviderOutcome>) {
        self.set_rule(Scope::Deployment, model, outcome);
    }

    /// Force an outcome for every call to one service (`"openai"`, `"elastic"`, ...).
    pub fn set_service_outcome(&self, service: &str, outcome: Option<ProviderOutcome>) {
        self.set_rule(Scope::Resource, service, outcome);
    }

    /// Global override for every call (`None` removes it).
    pub fn set_outcome(&self, outcome: Option<ProviderOutcome>) {
        self.lock().control.set_global(outcome);
    }

    /// Outcome for credentials never accepted (default `Reject401`; `Accept` = any key works).
    pub fn set_unknown_credential_outcome(&self, outcome: ProviderOutcome) {
        self.lock().unknown_credential = outcome;
    }

    /// Length of the embeddings one service returns (learnt as `dimensions` on create).
    pub fn set_native_dimensions(&self, service: &str, n: i64) {
        self.lock().native_dimensions.insert(service.into(), n);
    }

    /// How long each provider call takes (bounded by the request's `timeout`).
    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// Pause between Elasticsearch's tries of a retryable answer (default zero).
    pub fn set_retry_delay(&self, d: Duration) {
        self.lock().retry_delay = d;
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
        let keys = CallKeys {
            resource: &call.service,
            deployment: &call.model,
            credential: &call.credential,
        };
        let by_credential = if call.credential.is_empty() || st.valid.contains(&call.credential) {
            ProviderOutcome::Accept
        } else {
            st.unknown_credential
        };
        let outcome = st.control.decide(keys).unwrap_or(by_credential);
        call.outcome = outcome;
        let dims = st
            .native_dimensions
            .get(&call.service)
            .copied()
            .unwrap_or_else(|| default_dimensions(&call.service));
        let tries = if outcome.retried_by_elasticsearch() {
            super::ES_PROVIDER_ATTEMPTS
        } else {
            1
        };
        for _ in 0..tries {
            st.calls.push(call.clone());
        }
        let latency = if outcome == ProviderOutcome::Timeout {
            Duration::MAX
        } else {
            st.latency * tries as u32 + st.retry_delay * (tries as u32 - 1)
        };
        let res = if outcome == ProviderOutcome::Accept {
            Ok(dims)
        } else {
            Err(outcome)
        };
        (latency, res)
    }
}
