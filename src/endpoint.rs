//! The domain model: the endpoint the operator wants (in Elasticsearch's field names, without
//! secrets), its task type, and the one secret it carries. The Elasticsearch client builds
//! request bodies from these; the controller builds them from an `InferenceEndpoint`.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Inference task type of an endpoint (the first path segment of `_inference/{task_type}/{id}`).
///
/// Only the task types the operator manages are listed; Elasticsearch also knows
/// `sparse_embedding`, `rerank` and `embedding`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    /// Dense vector embeddings (`text_embedding`).
    TextEmbedding,
    /// Single-turn text completion (`completion`).
    Completion,
    /// Chat completion through the unified/streaming chat API (`chat_completion`).
    ChatCompletion,
}

impl TaskType {
    /// Every task type, in a stable order.
    pub const ALL: [TaskType; 3] = [
        TaskType::TextEmbedding,
        TaskType::Completion,
        TaskType::ChatCompletion,
    ];

    /// The Elasticsearch wire name (`text_embedding`, `completion`, `chat_completion`).
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskType::TextEmbedding => "text_embedding",
            TaskType::Completion => "completion",
            TaskType::ChatCompletion => "chat_completion",
        }
    }

    /// Whether Elasticsearch accepts `chunking_settings` for this task type.
    pub const fn supports_chunking(self) -> bool {
        matches!(self, TaskType::TextEmbedding)
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
    /// Elasticsearch `service` (e.g. `azureopenai`).
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

/// The one secret `service_settings` field of an endpoint (`api_key`, `entra_id`,
/// `client_secret`, ...). `Debug` is redacted by [`SecretString`].
#[derive(Debug, Clone)]
pub struct ServiceSecret {
    /// Elasticsearch field name inside `service_settings`.
    pub field: String,
    pub value: SecretString,
}

impl ServiceSecret {
    pub fn new(field: impl Into<String>, value: impl Into<SecretString>) -> Self {
        Self {
            field: field.into(),
            value: value.into(),
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
        assert!("rerank".parse::<TaskType>().is_err());
        assert!(TaskType::TextEmbedding.supports_chunking());
        assert!(!TaskType::Completion.supports_chunking());
    }
}
