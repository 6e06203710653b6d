//! The domain model: the endpoint the operator wants (in Elasticsearch's field names, without
//! secrets), its task type, and the secrets it carries. The Elasticsearch client builds
//! request bodies from these; the controller builds them from an `InferenceEndpoint`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Inference task type of an endpoint (the first path segment of `_inference/{task_type}/{id}`;
/// Elasticsearch's `TaskType`, docs/reference/elasticsearch-services.md#catalogue). Which service
/// offers which, since when, is in the service table (`elasticsearch::service`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    /// Dense vector embeddings (`text_embedding`).
    TextEmbedding,
    /// Sparse (learned term weight) embeddings such as ELSER (`sparse_embedding`).
    SparseEmbedding,
    /// Re-ranking documents against a query (`rerank`).
    Rerank,
    /// Single-turn text completion (`completion`).
    Completion,
    /// Chat completion through the unified/streaming chat API (`chat_completion`).
    ChatCompletion,
    /// Multimodal dense embeddings (`embedding`).
    Embedding,
}

impl TaskType {
    /// Every task type, in a stable order.
    pub const ALL: [TaskType; 6] = [
        TaskType::TextEmbedding,
        TaskType::SparseEmbedding,
        TaskType::Rerank,
        TaskType::Completion,
        TaskType::ChatCompletion,
        TaskType::Embedding,
    ];

    /// The Elasticsearch wire name (`text_embedding`, `completion`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskType::TextEmbedding => "text_embedding",
            TaskType::SparseEmbedding => "sparse_embedding",
            TaskType::Rerank => "rerank",
            TaskType::Completion => "completion",
            TaskType::ChatCompletion => "chat_completion",
            TaskType::Embedding => "embedding",
        }
    }

    /// Whether Elasticsearch accepts `chunking_settings` for this task type: the embedding
    /// types (docs/reference/elasticsearch-inference-api.md#chunking-settings).
    pub const fn supports_chunking(self) -> bool {
        matches!(
            self,
            TaskType::TextEmbedding | TaskType::SparseEmbedding | TaskType::Embedding
        )
    }

    /// Completion-like task types (long provider calls).
    pub const fn is_completion(self) -> bool {
        matches!(self, TaskType::Completion | TaskType::ChatCompletion)
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when a string is not one of the managed task types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported task type [{0}]")]
pub struct UnknownTaskType(pub String);

impl FromStr for TaskType {
    type Err = UnknownTaskType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTaskType(s.to_owned()))
    }
}

/// The endpoint the operator wants, in Elasticsearch field names, without secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointConfig {
    pub inference_id: String,
    pub task_type: TaskType,
    /// Elasticsearch `service` (e.g. `azureopenai`, `cohere`).
    pub service: String,
    /// Non-secret `service_settings` (e.g. `resource_name`, `deployment_id`, `api_version`,
    /// `rate_limit: {requests_per_minute}`, `dimensions`, `similarity`). Only user-set keys.
    #[serde(default)]
    pub service_settings: Map<String, Value>,
    /// `task_settings` (e.g. `user`, `headers`); empty = none.
    #[serde(default)]
    pub task_settings: Map<String, Value>,
    /// `chunking_settings`; `None` = Elasticsearch's default (text_embedding only).
    #[serde(default)]
    pub chunking_settings: Option<Map<String, Value>>,
}

/// The value of one secret `service_settings` key: a string (`api_key`, `secret_key`,
/// `service_account_json`, ...) or, for `custom`'s `secret_parameters`, a map of strings.
#[derive(Clone)]
pub enum SecretValue {
    Text(SecretString),
    Map(BTreeMap<String, SecretString>),
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretValue::Text(_) => f.write_str("Text(<redacted>)"),
            SecretValue::Map(map) => f
                .debug_map()
                .entries(map.keys().map(|k| (k, "<redacted>")))
                .finish(),
        }
    }
}

impl SecretValue {
    /// The JSON to send. Only for request bodies.
    pub(crate) fn expose_json(&self) -> Value {
        match self {
            SecretValue::Text(s) => Value::String(s.expose_secret().to_owned()),
            SecretValue::Map(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.expose_secret().to_owned())))
                    .collect(),
            ),
        }
    }
}

/// One secret `service_settings` key of an endpoint and its value. `Debug` is redacted.
#[derive(Debug, Clone)]
pub struct ServiceSecret {
    /// Elasticsearch field name inside `service_settings`.
    pub field: String,
    pub value: SecretValue,
}

impl ServiceSecret {
    pub fn new(field: impl Into<String>, value: impl Into<SecretString>) -> Self {
        Self {
            field: field.into(),
            value: SecretValue::Text(value.into()),
        }
    }

    /// A map-valued secret (`custom`'s `secret_parameters`).
    pub fn map(field: impl Into<String>, value: BTreeMap<String, SecretString>) -> Self {
        Self {
            field: field.into(),
            value: SecretValue::Map(value),
        }
    }

    /// `api_key`.
    pub fn api_key(value: impl Into<SecretString>) -> Self {
        Self::new("api_key", value)
    }

    /// `entra_id` (a static bearer token; Elasticsearch never refreshes it).
    pub fn entra_id(value: impl Into<SecretString>) -> Self {
        Self::new("entra_id", value)
    }
}

/// Every secret key of an endpoint, in field order. Empty for services without secrets
/// (`elasticsearch`, `elastic`). Elasticsearch takes them all out of `service_settings` on create
/// and needs them all together on a rotating `_update`
/// (docs/reference/elasticsearch-services.md#update-rotation).
#[derive(Debug, Clone, Default)]
pub struct ServiceSecrets(Vec<ServiceSecret>);

impl ServiceSecrets {
    pub fn new(mut secrets: Vec<ServiceSecret>) -> Self {
        secrets.sort_by(|a, b| a.field.cmp(&b.field));
        Self(secrets)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ServiceSecret> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The field names, for messages (never the values).
    pub fn fields(&self) -> Vec<&str> {
        self.0.iter().map(|s| s.field.as_str()).collect()
    }
}

impl From<ServiceSecret> for ServiceSecrets {
    fn from(secret: ServiceSecret) -> Self {
        Self(vec![secret])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_type_round_trips() {
        for t in TaskType::ALL {
            assert_eq!(t.as_str().parse::<TaskType>().unwrap(), t);
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::Value::String(t.as_str().into())
            );
            let back: TaskType = serde_json::from_value(serde_json::json!(t.as_str())).unwrap();
            assert_eq!(back, t);
        }
        assert!("reranking".parse::<TaskType>().is_err());
        assert_eq!(
            "sparse_embedding".parse::<TaskType>(),
            Ok(TaskType::SparseEmbedding)
        );
        assert!(TaskType::TextEmbedding.supports_chunking());
        assert!(!TaskType::Completion.supports_chunking());
    }
}
