//! Perform inference: `POST _inference/{task}/{id}` and, for `chat_completion`, the streaming
//! `POST _inference/chat_completion/{id}/_stream`
//! (docs/reference/elasticsearch-inference-api.md#perform-inference). The call goes to the same
//! fake providers as the validation call ([`super::FakeProviders`]), so a key revoked there, a
//! rate limit or a timeout set at any moment is what the next inference meets; a failure is
//! relayed unwrapped, with the provider's status below 500 and 400 otherwise
//! (docs/reference/elasticsearch-inference-api.md#provider-failure-at-inference).
//!
//! Not emulated: the answer's content (a fixed vector, token, text or score), several inputs,
//! `input_type`, task settings in the request, the `timeout` parameter (the request's default).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::api::{mismatch, Req, Resp, Shared};
use super::errors::EsError;
use super::json::J;
use super::model::{Stored, TaskType, AZURE};
use super::providers::{host_of, status_prefix, ProviderCall, ProviderOutcome};
use super::version::EsVersion;
use super::{azure, generic, services};

/// The request's default `timeout` (the specification's `@server_default 30s`; 120s for the
/// chat stream), which bounds a provider that never answers.
const TIMEOUT: Duration = Duration::from_secs(30);
const CHAT_TIMEOUT: Duration = Duration::from_secs(120);

/// `POST _inference/{tt}/{id}` (`stream`: `.../_stream`).
pub(crate) async fn infer(
    sh: &Arc<Shared>,
    req: &Req,
    v: EsVersion,
    tt: TaskType,
    id: &str,
    stream: bool,
) -> Result<Resp, EsError> {
    let stored = {
        let st = sh.lock();
        st.lookup(id)
            .cloned()
            .ok_or_else(|| EsError::not_found(id))?
    };
    if tt != TaskType::Any && tt != stored.task_type {
        return Err(mismatch(tt, stored.task_type));
    }
    if stored.task_type == TaskType::ChatCompletion && !stream {
        // (inferred) the unified chat API is served on `_stream` only (UnifiedRequest.ts); the
        // non-streaming route refuses the task type.
        return Err(EsError::bad_request(format!(
            "The [{}] task type is only supported via the streaming API",
            stored.task_type.as_str()
        )));
    }
    check_body(req, stored.task_type)?;
    let call = provider_call(sh, v, &stored);
    let url = call.url.clone();
    let (spent, result) = sh.providers.decide(call);
    let limit = if stream { CHAT_TIMEOUT } else { TIMEOUT };
    let timed_out_call = spent > limit || result == Err(ProviderOutcome::Timeout);
    sh.providers.inference_in_flight(true);
    tokio::time::sleep(if timed_out_call { limit } else { spent }).await;
    sh.providers.inference_in_flight(false);
    if timed_out_call {
        return Err(timed_out(v, limit));
    }
    let answer = match result {
        Ok(dims) => Ok(success(stored.task_type, dims)),
        Err(outcome) => Err(relayed(outcome, id, &url)),
    };
    Ok(if stream {
        as_events(answer)
    } else {
        as_json(answer)
    })
}

/// The body's required field: `input` (and `query` for rerank), `messages` for the chat stream
/// (docs/reference/elasticsearch-inference-api.md#perform-inference). (inferred) The wording of
/// the refusal.
fn check_body(req: &Req, tt: TaskType) -> Result<(), EsError> {
    let body: Map<String, Value> = req
        .body
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    let required: &[&str] = match tt {
        TaskType::ChatCompletion => &["messages"],
        TaskType::Rerank => &["input", "query"],
        _ => &["input"],
    };
    match required.iter().find(|k| !body.contains_key(**k)) {
        Some(k) => Err(EsError::validation(&[format!(
            "Field [{k}] cannot be null"
        )])),
        None => Ok(()),
    }
}

/// The call the endpoint's service makes, keyed as the validation call is (credential, model,
/// target): Azure by its deployment URL, the other services by their configured `url` or
/// `<service>/<model>`, in-cluster models with no credential.
fn provider_call(sh: &Shared, v: EsVersion, stored: &Stored) -> ProviderCall {
    let id = &stored.id;
    if stored.service == AZURE {
        let secret = stored.secret.clone().unwrap_or_default();
        let ss = &stored.service_settings;
        return azure::provider_call(
            id,
            stored.task_type,
            (ss, &stored.task_settings),
            &secret,
            None,
        );
    }
    let ss = &stored.service_settings;
    let model = services::model_of(ss);
    let configured = ss.get("url").and_then(Value::as_str);
    let credential = generic::spec_of(&sh.lock(), v, &stored.service)
        .map(|spec| services::credential_of(&spec.secrets, &stored.secrets))
        .unwrap_or_default();
    ProviderCall {
        service: stored.service.clone(),
        inference_id: id.clone(),
        task_type: stored.task_type.as_str().to_string(),
        url: configured.map_or_else(|| format!("{}/{model}", stored.service), str::to_string),
        target: configured.map(host_of).unwrap_or_default(),
        model,
        credential,
        secrets: stored.secrets.clone(),
        settings: ss.clone(),
        task_settings: stored.task_settings.clone(),
        dimensions: None,
        outcome: ProviderOutcome::Accept,
    }
}

/// The answer's shape per task type (docs/reference/elasticsearch-inference-api.md#perform-inference);
/// the values are fixed.
fn success(tt: TaskType, dims: i64) -> Value {
    let vector: Vec<f64> = (0..dims.clamp(1, 4096))
        .map(|i| 0.01 * (i % 7) as f64)
        .collect();
    match tt {
        TaskType::TextEmbedding => json!({"text_embedding": [{"embedding": vector}]}),
        TaskType::Embedding => json!({"embeddings": [{"embedding": vector}]}),
        TaskType::SparseEmbedding => {
            json!({"sparse_embedding": [{"is_truncated": false, "embedding": {"ping": 1.0}}]})
        }
        TaskType::Completion => json!({"completion": [{"result": "pong"}]}),
        TaskType::Rerank => json!({"rerank": [{"index": 0, "relevance_score": 0.9}]}),
        TaskType::ChatCompletion | TaskType::Any => json!({"chat_completion": {
            "id": "chatcmpl-es-double",
            "choices": [{"delta": {"content": "pong", "role": "assistant"}, "index": 0}],
            "model": "fake",
            "object": "chat.completion.chunk"
        }}),
    }
}

/// The provider's failure as Elasticsearch relays it at inference: `status_exception`, the
/// response handler's prefix and `for request from inference entity id [..] status [..]`, the
/// REST status `toRestStatus(provider status)` (x-pack/plugin/inference/.../external/http/retry/
/// BaseResponseHandler.java). A host that does not resolve: 400 `Invalid host [..]`
/// (RetryingHttpSender.java), unwrapped here too.
fn relayed(outcome: ProviderOutcome, id: &str, url: &str) -> EsError {
    if outcome == ProviderOutcome::UnknownHost {
        return EsError::bad_request(format!(
            "Invalid host [{url}], please check that the URL is correct."
        ));
    }
    let status = outcome.status().unwrap_or(500);
    let rest_status = if status < 500 { status } else { 400 };
    EsError::status(
        rest_status,
        format!(
            "{} for request from inference entity id [{id}] status [{status}]. Error message: [fake provider answered {status}]",
            status_prefix(outcome, url)
        ),
    )
}

/// The inference outlived its `timeout`: `timeout_exception`, 504 from 9.4
/// (elastic/elasticsearch#145838), (inferred) 500 before, and the wording of the validation
/// example (docs/reference/elasticsearch-inference-api.md#provider-failure-at-inference).
fn timed_out(v: EsVersion, limit: Duration) -> EsError {
    let status = if v.v94() { 504 } else { 500 };
    EsError::new(
        status,
        "timeout_exception",
        format!("Request timed out after [{}s]", limit.as_secs()),
    )
}

fn as_json(answer: Result<Value, EsError>) -> Resp {
    match answer {
        Ok(v) => Resp::ok(J::V(v)),
        Err(e) => e.into(),
    }
}

/// Server-Sent Events (INF/rest/ServerSentEventsRestActionListener.java): a byte-order mark, then
/// `event: message` chunks and `data: [DONE]`; a failure before the stream opens is its status
/// with one `event: error` carrying the error object and `status`.
fn as_events(answer: Result<Value, EsError>) -> Resp {
    let (status, text) = match answer {
        Ok(chunk) => (
            200,
            format!("\u{feff}event: message\ndata: {chunk}\n\nevent: message\ndata: [DONE]\n\n"),
        ),
        Err(e) => {
            let body = String::from_utf8_lossy(&e.render().to_bytes()).into_owned();
            (e.status, format!("\u{feff}event: error\ndata: {body}\n\n"))
        }
    };
    Resp {
        status,
        body: J::V(Value::Null),
        headers: vec![],
        stream: Some(text),
    }
}
