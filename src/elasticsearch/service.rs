//! Per-service facts the generic code needs: secret field names, defaults Elasticsearch fills in,
//! fields it infers, and what `_update` can change. Only `azureopenai` is described today (the
//! "Azure" sections of docs/reference/elasticsearch-inference-api.md); other services fall back to
//! a lenient, service-agnostic behaviour.

use super::version::Since;
use super::TaskType;

/// What the operator knows about one Elasticsearch inference `service`.
#[derive(Debug, Clone, Copy)]
pub struct ServiceProfile {
    /// The `service` string in the PUT body.
    pub service: &'static str,
    /// `service_settings` keys that are secrets (never returned by GET).
    pub secret_fields: &'static [&'static str],
    /// Default `rate_limit.requests_per_minute` per task type (filled in by Elasticsearch).
    pub default_requests_per_minute: fn(TaskType) -> Option<u64>,
    /// `service_settings` keys Elasticsearch fills in itself when the user did not set them
    /// (learned from the provider's validation response), per task type.
    pub inferred_fields: fn(TaskType) -> &'static [&'static str],
    /// Non-secret `service_settings` keys (top level) that `_update` can change on 9.5+ (only to
    /// a value: none of them can be removed in place).
    pub updatable_service_settings: &'static [&'static str],
    /// Of those, keys that can only be updated when the endpoint already uses OAuth2
    /// (i.e. GET shows `client_id`).
    pub oauth2_fields: &'static [&'static str],
    /// Since when the service offers each task type; `None` = unsupported.
    pub min_version: fn(TaskType) -> Option<Since>,
    /// Since when `task_settings.headers` is accepted (`None`: never).
    pub task_setting_headers: Option<Since>,
    /// Since when OAuth2 client credentials are accepted (`None`: never).
    pub oauth2: Option<Since>,
}

/// Azure OpenAI (`azureopenai`): docs/reference/elasticsearch-inference-api.md#azure-task-types,
/// docs/reference/elasticsearch-inference-api.md#azure-service-settings.
pub const AZURE_OPENAI: ServiceProfile = ServiceProfile {
    service: "azureopenai",
    secret_fields: &["api_key", "entra_id", "client_secret"],
    default_requests_per_minute: |task| match task {
        TaskType::TextEmbedding => Some(1440),
        TaskType::Completion | TaskType::ChatCompletion => Some(120),
    },
    inferred_fields: |task| match task {
        TaskType::TextEmbedding => &["dimensions", "similarity"],
        TaskType::Completion | TaskType::ChatCompletion => &[],
    },
    // 9.5: `rate_limit` and the OAuth2 fields (PR #145233), `max_input_tokens` of embeddings
    // (PR #149628) [I: release 9.5.0].
    updatable_service_settings: &[
        "rate_limit",
        "max_input_tokens",
        "client_id",
        "scopes",
        "tenant_id",
    ],
    oauth2_fields: &["client_id", "scopes", "tenant_id"],
    min_version: |task| match task {
        TaskType::TextEmbedding => Some(Since::release(8, 14)),
        TaskType::Completion => Some(Since::release(8, 15)),
        TaskType::ChatCompletion => Some(Since::release(9, 3)),
    },
    task_setting_headers: Some(Since::release(9, 4)),
    oauth2: Some(Since::release(9, 4)),
};

const KNOWN: &[ServiceProfile] = &[AZURE_OPENAI];

/// Secret keys used by services without a profile
/// (docs/reference/elasticsearch-services.md#catalogue). Used only to keep such keys out of
/// comparisons and logs.
const GENERIC_SECRET_FIELDS: &[&str] = &[
    "api_key",
    "entra_id",
    "client_secret",
    "access_key",
    "secret_key",
    "service_account_json",
    "secret_parameters",
];

impl ServiceProfile {
    /// The profile of a known service.
    pub fn lookup(service: &str) -> Option<&'static ServiceProfile> {
        KNOWN.iter().find(|p| p.service == service)
    }

    /// Default `rate_limit.requests_per_minute`.
    pub fn default_rpm(&self, task: TaskType) -> Option<u64> {
        (self.default_requests_per_minute)(task)
    }

    /// Since when the service offers `task`.
    pub fn min_version_for(&self, task: TaskType) -> Option<Since> {
        (self.min_version)(task)
    }
}

/// Whether `key` is a secret `service_settings` key for `service`.
pub fn is_secret_field(service: &str, key: &str) -> bool {
    match ServiceProfile::lookup(service) {
        Some(p) => p.secret_fields.contains(&key),
        None => GENERIC_SECRET_FIELDS.contains(&key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_table() {
        let p = ServiceProfile::lookup("azureopenai").unwrap();
        assert_eq!(p.default_rpm(TaskType::TextEmbedding), Some(1440));
        assert_eq!(p.default_rpm(TaskType::Completion), Some(120));
        assert_eq!(p.default_rpm(TaskType::ChatCompletion), Some(120));
        assert_eq!(
            (p.inferred_fields)(TaskType::TextEmbedding),
            &["dimensions", "similarity"]
        );
        assert!((p.inferred_fields)(TaskType::Completion).is_empty());
        assert_eq!(
            p.min_version_for(TaskType::ChatCompletion),
            Some(Since::release(9, 3))
        );
        assert!(ServiceProfile::lookup("openai").is_none());
        assert!(is_secret_field("azureopenai", "entra_id"));
        assert!(!is_secret_field("azureopenai", "deployment_id"));
        assert!(is_secret_field("amazonbedrock", "secret_key"));
    }

    #[test]
    fn azure_version_gates() {
        let v = |s: &str| crate::elasticsearch::EsVersion::parse(s).unwrap();
        let p = ServiceProfile::lookup("azureopenai").unwrap();
        let offers = |s: &str, task| p.min_version_for(task).unwrap().contains(&v(s));
        assert!(!offers("8.13.4", TaskType::TextEmbedding));
        assert!(offers("8.14.0", TaskType::TextEmbedding));
        assert!(!offers("8.14.3", TaskType::Completion));
        assert!(offers("8.15.0", TaskType::Completion));
        assert!(!offers("8.19.0", TaskType::ChatCompletion));
        assert!(!offers("9.2.9", TaskType::ChatCompletion));
        assert!(offers("9.3.0", TaskType::ChatCompletion));
        for (s, on) in [("9.3.5", false), ("9.4.0", true), ("8.19.9", false)] {
            assert_eq!(p.task_setting_headers.unwrap().contains(&v(s)), on, "{s}");
            assert_eq!(p.oauth2.unwrap().contains(&v(s)), on, "{s}");
        }
    }
}
