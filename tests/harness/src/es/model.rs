//! Task types and the stored endpoint with its filtered rendering
//! (docs/reference/elasticsearch-inference-api.md#response-shape,
//! docs/reference/elasticsearch-inference-api.md#azure-responses).

use serde_json::{json, Map, Value};

use super::errors::EsError;
use super::json::{ordered, J};
use super::version::EsVersion;

pub(crate) const AZURE: &str = "azureopenai";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TaskType {
    TextEmbedding,
    SparseEmbedding,
    Rerank,
    Completion,
    ChatCompletion,
    Embedding,
    Any,
}

impl TaskType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TaskType::TextEmbedding => "text_embedding",
            TaskType::SparseEmbedding => "sparse_embedding",
            TaskType::Rerank => "rerank",
            TaskType::Completion => "completion",
            TaskType::ChatCompletion => "chat_completion",
            TaskType::Embedding => "embedding",
            TaskType::Any => "any",
        }
    }

    /// `TaskType.fromStringOrStatusException`: case-insensitive; unknown → 400
    /// `Unknown task_type [x]` (docs/reference/elasticsearch-inference-api.md#routing).
    pub(crate) fn parse(s: &str, v: EsVersion) -> Result<TaskType, EsError> {
        let t = match s.trim().to_ascii_lowercase().as_str() {
            "text_embedding" => Some(TaskType::TextEmbedding),
            "sparse_embedding" => Some(TaskType::SparseEmbedding),
            "rerank" => Some(TaskType::Rerank),
            "completion" => Some(TaskType::Completion),
            "any" => Some(TaskType::Any),
            "chat_completion" if v.knows_chat_completion() => Some(TaskType::ChatCompletion),
            "embedding" if v.knows_embedding() => Some(TaskType::Embedding),
            _ => None,
        };
        t.ok_or_else(|| EsError::bad_request(format!("Unknown task_type [{s}]")))
    }
}

/// Chunking defaults (docs/reference/elasticsearch-inference-api.md#chunking-settings).
pub(crate) fn default_chunking() -> Value {
    json!({"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1})
}

/// What endpoints created before 8.16 read back as (`OLD_DEFAULT_SETTINGS`,
/// docs/reference/elasticsearch-inference-api.md#chunking-settings).
pub(crate) fn old_default_chunking() -> Value {
    json!({"strategy": "word", "max_chunk_size": 250, "overlap": 100})
}

/// One stored endpoint (config + secrets doc, as ES keeps them separately).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stored {
    pub(crate) id: String,
    pub(crate) task_type: TaskType,
    pub(crate) service: String,
    /// Exposed service settings (no secrets, no `dimensions_set_by_user`).
    pub(crate) service_settings: Map<String, Value>,
    pub(crate) task_settings: Map<String, Value>,
    /// `None` = stored without chunking settings (created before 8.16).
    pub(crate) chunking: Option<Value>,
    /// `(field, value)` — `api_key`, `entra_id` or `client_secret` (`azureopenai` only).
    pub(crate) secret: Option<(String, String)>,
    /// The secrets document of every other service: the keys its `SecretSettings` claimed
    /// (`custom`: `{"secret_parameters": {..}}`).
    pub(crate) secrets: Map<String, Value>,
    pub(crate) dims_set_by_user: bool,
    pub(crate) oauth2: bool,
}

const SERVICE_SETTINGS_ORDER: &[&str] = &[
    "resource_name",
    "deployment_id",
    "api_version",
    "client_id",
    "scopes",
    "tenant_id",
    "rate_limit",
    "dimensions",
    "max_input_tokens",
    "similarity",
];
const CHUNKING_ORDER: &[&str] = &[
    "strategy",
    "max_chunk_size",
    "sentence_overlap",
    "overlap",
    "separator_group",
    "separators",
];

impl Stored {
    /// The filtered form returned by PUT/GET/update (`toFilteredXContent`,
    /// docs/reference/elasticsearch-inference-api.md#response-shape): keys in order
    /// `inference_id`, `task_type`, `service`, `service_settings`, `task_settings` (only if
    /// non-empty), `chunking_settings` (only if non-null). Secrets are never included.
    pub(crate) fn render(&self, v: EsVersion) -> J {
        let mut f = vec![
            ("inference_id".to_string(), J::s(&self.id)),
            ("task_type".to_string(), J::s(self.task_type.as_str())),
            ("service".to_string(), J::s(&self.service)),
            (
                "service_settings".to_string(),
                ordered(&self.service_settings, SERVICE_SETTINGS_ORDER),
            ),
        ];
        if !self.task_settings.is_empty() {
            f.push((
                "task_settings".to_string(),
                ordered(&self.task_settings, &["user", "headers"]),
            ));
        }
        if v.chunking() {
            let chunking = match (&self.chunking, self.task_type) {
                (Some(c), _) => Some(c.clone()),
                (None, TaskType::TextEmbedding) if self.service == AZURE => {
                    Some(old_default_chunking())
                }
                _ => None,
            };
            if let Some(Value::Object(c)) = chunking {
                f.push(("chunking_settings".to_string(), ordered(&c, CHUNKING_ORDER)));
            }
        }
        J::O(f)
    }
}
