//! Elasticsearch inference-endpoint client.
//!
//! Everything the operator needs to talk to the `_inference` API lives here:
//!
//! * [`version`]: the cluster version and the feature gates derived from it;
//! * [`error`]: one typed error built from the Elasticsearch error envelope or from a transport
//!   failure, with a stable condition reason and a transient/permanent split;
//! * [`body`]: the desired endpoint ([`EndpointConfig`]), the credential ([`ServiceSecret`]) and
//!   the request bodies for create and `_update` (redacted in `Debug`);
//! * [`normalize`]: a pure comparison of desired vs observed (GET) configuration;
//! * [`service`]: the small table of per-service defaults (only `azureopenai` today);
//! * [`client`]: the HTTP client ([`EsClient`]).
//!
//! The module never depends on `crate::api`; the CRD module re-uses [`TaskType`] from here.
//! Facts come from docs/reference/elasticsearch-inference-api.md (cited by section anchor)
//! and docs/reference/elasticsearch-services.md.

pub mod body;
pub mod client;
pub mod error;
pub mod normalize;
pub mod service;
pub mod version;

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use body::{
    create_body, unsupported_features, update_body, BodyError, Endpoint, EndpointConfig,
    RequestBody, ServiceSecret,
};
pub use client::{
    Auth, ClusterInfo, ConnectionConfig, DeleteOptions, DeleteOutcome, DeleteResponse, EsClient,
};
pub use error::{ApiError, ErrorCause, ErrorClass, EsError};
pub use normalize::{all_updatable, compare, identity_matches, Difference};
pub use service::ServiceProfile;
pub use version::EsVersion;

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
