//! Pure translation of an `InferenceEndpoint` spec into what Elasticsearch should hold, and the
//! version gates that decide whether the target cluster can hold it.

use serde_json::{json, Map, Value};

use crate::api::{
    AzureOpenAi, ChunkingSettings, InferenceEndpoint, InferenceService, SecretKeyRef,
};
use crate::controller::conditions::{Failure, Reason};
use crate::elasticsearch::body::unsupported_features;
use crate::elasticsearch::EsVersion;
use crate::endpoint::EndpointConfig;

/// The endpoint configuration (without secrets) plus where each secret key comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub config: EndpointConfig,
    /// One entry per secret `service_settings` key, in field order; empty for services
    /// without secrets.
    pub secrets: Vec<SecretInput>,
}

/// A secret `service_settings` key and the Secret its value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInput {
    /// `api_key`, `entra_id`, `access_key`, `secret_parameters`, ...
    pub field: String,
    pub from: SecretFrom,
}

/// Where a secret value is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretFrom {
    /// One key of a Secret: the value is its text.
    Key(SecretKeyRef),
    /// A whole Secret (by name): the value is a map of every key to its text.
    Secret(String),
}

impl SecretInput {
    fn key(field: &str, secret: &SecretKeyRef) -> Self {
        SecretInput {
            field: field.to_owned(),
            from: SecretFrom::Key(secret.clone()),
        }
    }
}

impl Desired {
    /// The secret field names, for version gates and messages.
    pub fn secret_fields(&self) -> Vec<&str> {
        self.secrets.iter().map(|s| s.field.as_str()).collect()
    }
}

/// Build the desired endpoint. Fails only for objects the schema should have rejected (written
/// before the CRD was installed, or with admission bypassed): those become `InvalidSpec`.
pub fn desired(iep: &InferenceEndpoint) -> Result<Desired, Failure> {
    crate::api::checks::check_spec(&iep.spec)
        .map_err(|violation| Failure::new(Reason::InvalidSpec, violation.to_string()))?;
    let task_type = iep.spec.task_type;
    let chunking_settings = match &iep.spec.chunking_settings {
        None => None,
        Some(chunking) if task_type.supports_chunking() => Some(chunking_map(chunking)),
        Some(_) => {
            return Err(Failure::new(
                Reason::InvalidSpec,
                format!(
                    "spec.chunkingSettings: {}",
                    crate::api::CHUNKING_TASK_TYPES_MESSAGE
                ),
            ))
        }
    };
    let config = |service: &str, service_settings, task_settings| EndpointConfig {
        inference_id: iep.inference_id().to_owned(),
        task_type,
        service: service.to_owned(),
        service_settings,
        task_settings,
        chunking_settings: chunking_settings.clone(),
    };
    match (&iep.spec.azure_open_ai, &iep.spec.service) {
        (Some(azure), None) => Ok(Desired {
            config: config(
                "azureopenai",
                azure_service_settings(azure),
                azure_task_settings(azure),
            ),
            secrets: vec![azure_credential(azure)?],
        }),
        (None, Some(service)) => Ok(Desired {
            config: config(
                &service.name,
                service.settings.clone().unwrap_or_default(),
                service.task_settings.clone().unwrap_or_default(),
            ),
            secrets: generic_secrets(service),
        }),
        _ => Err(Failure::new(
            Reason::InvalidSpec,
            format!("spec: {}", crate::api::SERVICE_BLOCK_MESSAGE),
        )),
    }
}

fn generic_secrets(service: &InferenceService) -> Vec<SecretInput> {
    service
        .secret_settings
        .iter()
        .filter_map(|(field, source)| {
            let from = match (&source.secret_key_ref, &source.secret_ref) {
                (Some(key), _) => SecretFrom::Key(key.clone()),
                (None, Some(secret)) => SecretFrom::Secret(secret.name.clone()),
                // Refused by `check_spec` before this point.
                (None, None) => return None,
            };
            Some(SecretInput {
                field: field.clone(),
                from,
            })
        })
        .collect()
}

fn azure_credential(azure: &AzureOpenAi) -> Result<SecretInput, Failure> {
    let oauth2 = azure.oauth2.as_ref().map(|o| &o.client_secret_secret_ref);
    match (
        &azure.api_key_secret_ref,
        &azure.entra_id_secret_ref,
        oauth2,
    ) {
        (Some(secret), None, None) => Ok(SecretInput::key("api_key", secret)),
        (None, Some(secret), None) => Ok(SecretInput::key("entra_id", secret)),
        (None, None, Some(secret)) => Ok(SecretInput::key("client_secret", secret)),
        _ => Err(Failure::new(
            Reason::InvalidSpec,
            format!(
                "spec.azureOpenAI: {}",
                crate::api::AZURE_ONE_CREDENTIAL_MESSAGE
            ),
        )),
    }
}

fn azure_service_settings(azure: &AzureOpenAi) -> Map<String, Value> {
    let mut settings = Map::new();
    settings.insert("resource_name".into(), json!(azure.resource_name));
    settings.insert("deployment_id".into(), json!(azure.deployment_id));
    settings.insert("api_version".into(), json!(azure.api_version));
    if let Some(dimensions) = azure.dimensions {
        settings.insert("dimensions".into(), json!(dimensions));
    }
    if let Some(similarity) = azure.similarity {
        settings.insert("similarity".into(), json!(similarity.as_str()));
    }
    if let Some(tokens) = azure.max_input_tokens {
        settings.insert("max_input_tokens".into(), json!(tokens));
    }
    if let Some(rate_limit) = &azure.rate_limit {
        settings.insert(
            "rate_limit".into(),
            json!({"requests_per_minute": rate_limit.requests_per_minute}),
        );
    }
    if let Some(oauth2) = &azure.oauth2 {
        settings.insert("client_id".into(), json!(oauth2.client_id));
        settings.insert("tenant_id".into(), json!(oauth2.tenant_id));
        settings.insert("scopes".into(), json!(oauth2.scopes));
    }
    settings
}

fn azure_task_settings(azure: &AzureOpenAi) -> Map<String, Value> {
    let mut settings = Map::new();
    if let Some(task) = &azure.task_settings {
        if let Some(user) = &task.user {
            settings.insert("user".into(), json!(user));
        }
        if let Some(headers) = task.headers.as_ref().filter(|h| !h.is_empty()) {
            settings.insert("headers".into(), json!(headers));
        }
    }
    settings
}

fn chunking_map(chunking: &ChunkingSettings) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("strategy".into(), json!(chunking.strategy.as_str()));
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            map.insert(key.into(), value);
        }
    };
    put("max_chunk_size", chunking.max_chunk_size.map(Value::from));
    put(
        "sentence_overlap",
        chunking.sentence_overlap.map(Value::from),
    );
    put("overlap", chunking.overlap.map(Value::from));
    put(
        "separator_group",
        chunking.separator_group.map(|g| Value::from(g.as_str())),
    );
    put("separators", chunking.separators.clone().map(Value::from));
    map
}

/// Refuse what the cluster's version cannot hold, with a message naming the version needed,
/// instead of letting Elasticsearch answer with an opaque 400
/// (docs/reference/elasticsearch-inference-api.md#version-history).
pub fn check_supported(desired: &Desired, version: &EsVersion) -> Result<(), Failure> {
    let missing = unsupported_features(&desired.config, &desired.secret_fields(), version);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            Reason::UnsupportedByCluster,
            missing.join("; "),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn iep(spec: Value) -> InferenceEndpoint {
        serde_json::from_value(json!({
            "apiVersion": "esinference.io/v1alpha1",
            "kind": "InferenceEndpoint",
            "metadata": {"name": "emb", "namespace": "ns", "uid": "u1"},
            "spec": spec,
        }))
        .expect("valid object")
    }

    fn embedding() -> Value {
        json!({
            "elasticsearch": {"url": "http://es:9200"},
            "taskType": "text_embedding",
            "azureOpenAI": {
                "resourceName": "res", "deploymentId": "dep", "apiVersion": "2024-10-21",
                "apiKeySecretRef": {"name": "azure", "key": "apiKey"},
                "dimensions": 256, "similarity": "cosine", "maxInputTokens": 512,
                "rateLimit": {"requestsPerMinute": 100},
                "taskSettings": {"user": "search", "headers": {}}
            },
            "chunkingSettings": {"strategy": "word", "maxChunkSize": 100, "overlap": 10}
        })
    }

    #[test]
    fn embedding_spec_maps_to_elasticsearch_names() {
        let d = desired(&iep(embedding())).unwrap();
        assert_eq!(d.config.inference_id, "emb");
        assert_eq!(d.config.service, "azureopenai");
        assert_eq!(
            Value::Object(d.config.service_settings),
            json!({"resource_name": "res", "deployment_id": "dep", "api_version": "2024-10-21",
                   "dimensions": 256, "similarity": "cosine", "max_input_tokens": 512,
                   "rate_limit": {"requests_per_minute": 100}})
        );
        assert_eq!(
            Value::Object(d.config.task_settings),
            json!({"user": "search"}),
            "empty headers are not sent"
        );
        assert_eq!(
            d.config.chunking_settings.map(Value::Object),
            Some(json!({"strategy": "word", "max_chunk_size": 100, "overlap": 10}))
        );
        assert_eq!(
            d.secrets,
            vec![SecretInput::key(
                "api_key",
                &SecretKeyRef {
                    name: "azure".into(),
                    key: "apiKey".into()
                }
            )]
        );
    }

    #[test]
    fn entra_id_credential_maps_to_entra_id_field() {
        let mut spec = embedding();
        let azure = spec["azureOpenAI"].as_object_mut().unwrap();
        azure.remove("apiKeySecretRef");
        azure.insert(
            "entraIdSecretRef".into(),
            json!({"name": "entra", "key": "token"}),
        );
        let d = desired(&iep(spec)).unwrap();
        assert_eq!(d.secret_fields(), ["entra_id"]);
        assert!(matches!(&d.secrets[0].from, SecretFrom::Key(k) if k.key == "token"));
    }

    #[test]
    fn azure_oauth2_sends_its_fields_and_the_client_secret_and_needs_9_4() {
        let mut spec = embedding();
        let azure = spec["azureOpenAI"].as_object_mut().unwrap();
        azure.remove("apiKeySecretRef");
        azure.insert(
            "oauth2".into(),
            json!({"clientId": "cid", "tenantId": "tid", "scopes": ["s/.default"],
                   "clientSecretSecretRef": {"name": "oauth", "key": "secret"}}),
        );
        spec.as_object_mut().unwrap().remove("chunkingSettings");
        let d = desired(&iep(spec)).unwrap();
        assert_eq!(d.secret_fields(), ["client_secret"]);
        let ss = &d.config.service_settings;
        assert_eq!(ss["client_id"], "cid");
        assert_eq!(ss["tenant_id"], "tid");
        assert_eq!(ss["scopes"], json!(["s/.default"]));
        let v = |s: &str| EsVersion::parse(s).unwrap();
        let err = check_supported(&d, &v("9.3.2")).unwrap_err();
        assert!(
            err.message
                .contains("OAuth2 client credentials need Elasticsearch 9.4+"),
            "{}",
            err.message
        );
        assert!(check_supported(&d, &v("9.4.0")).is_ok());
    }

    #[test]
    fn generic_block_passes_settings_through_and_reads_each_secret() {
        let d = desired(&iep(json!({
            "elasticsearch": {"url": "http://es:9200"},
            "taskType": "text_embedding",
            "service": {
                "name": "amazonbedrock",
                "settings": {"region": "us-east-1", "model": "amazon.titan-embed-text-v2:0",
                             "provider": "amazontitan", "rate_limit": {"requests_per_minute": 60}},
                "secretSettings": {
                    "secret_key": {"secretKeyRef": {"name": "aws", "key": "secret"}},
                    "access_key": {"secretKeyRef": {"name": "aws", "key": "access"}}
                },
                "taskSettings": {}
            },
            "chunkingSettings": {"strategy": "sentence", "maxChunkSize": 250}
        })))
        .unwrap();
        assert_eq!(d.config.service, "amazonbedrock");
        assert_eq!(
            Value::Object(d.config.service_settings.clone()),
            json!({"region": "us-east-1", "model": "amazon.titan-embed-text-v2:0",
                   "provider": "amazontitan", "rate_limit": {"requests_per_minute": 60}})
        );
        assert_eq!(d.secret_fields(), ["access_key", "secret_key"]);
        assert!(d.config.chunking_settings.is_some());
        let custom = desired(&iep(json!({
            "elasticsearch": {"url": "http://es:9200"},
            "taskType": "completion",
            "service": {"name": "custom", "settings": {"url": "https://x", "request": "{}"},
                        "secretSettings": {"secret_parameters": {"secretRef": {"name": "params"}}}}
        })))
        .unwrap();
        assert_eq!(
            custom.secrets,
            vec![SecretInput {
                field: "secret_parameters".into(),
                from: SecretFrom::Secret("params".into())
            }]
        );
    }

    #[test]
    fn objects_that_bypassed_admission_are_reported_not_sent() {
        let mut spec = embedding();
        spec["azureOpenAI"]["entraIdSecretRef"] = json!({"name": "entra", "key": "token"});
        assert_eq!(desired(&iep(spec)).unwrap_err().reason, Reason::InvalidSpec);
        let mut spec = embedding();
        spec["taskType"] = json!("completion");
        assert_eq!(desired(&iep(spec)).unwrap_err().reason, Reason::InvalidSpec);
    }

    #[test]
    fn version_gates_name_the_version_needed() {
        let v = |s: &str| EsVersion::parse(s).unwrap();
        let d = desired(&iep(embedding())).unwrap();
        assert!(check_supported(&d, &v("8.18.0")).is_ok());
        let err = check_supported(&d, &v("8.15.0")).unwrap_err();
        assert_eq!(err.reason, Reason::UnsupportedByCluster);
        assert!(
            err.message
                .contains("chunking_settings needs Elasticsearch 8.16+"),
            "{}",
            err.message
        );

        let mut spec = embedding();
        spec["taskType"] = json!("chat_completion");
        for field in ["dimensions", "similarity", "maxInputTokens"] {
            spec["azureOpenAI"].as_object_mut().unwrap().remove(field);
        }
        spec.as_object_mut().unwrap().remove("chunkingSettings");
        let chat = desired(&iep(spec)).unwrap();
        let err = check_supported(&chat, &v("9.2.0")).unwrap_err();
        assert!(
            err.message.contains(
                "task type [chat_completion] of service [azureopenai] needs Elasticsearch 9.3+"
            ),
            "{}",
            err.message
        );
        assert!(check_supported(&chat, &v("9.3.0")).is_ok());

        let mut spec = embedding();
        spec["azureOpenAI"]["taskSettings"]["headers"] = json!({"X-Team": "search"});
        let with_headers = desired(&iep(spec)).unwrap();
        assert!(check_supported(&with_headers, &v("9.3.0")).is_err());
        assert!(check_supported(&with_headers, &v("9.4.0")).is_ok());
    }
}
