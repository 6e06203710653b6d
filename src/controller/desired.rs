//! Pure translation of an `InferenceEndpoint` spec into what Elasticsearch should hold, and the
//! version gates that decide whether the target cluster can hold it.

use serde_json::{json, Map, Value};

use crate::api::{AzureOpenAi, ChunkingSettings, InferenceEndpoint, SecretKeyRef};
use crate::controller::conditions::{Failure, Reason};
use crate::elasticsearch::body::unsupported_features;
use crate::elasticsearch::EsVersion;
use crate::endpoint::{EndpointConfig, TaskType};

/// The endpoint configuration (without secrets) plus where its credential comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub config: EndpointConfig,
    pub credential: CredentialSource,
}

/// A Secret key and the Elasticsearch `service_settings` field it fills.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialSource {
    pub secret: SecretKeyRef,
    /// `api_key` or `entra_id`.
    pub field: &'static str,
}

/// Build the desired endpoint. Fails only for objects the schema should have rejected (written
/// before the CRD was installed, or with admission bypassed): those become `InvalidSpec`.
pub fn desired(iep: &InferenceEndpoint) -> Result<Desired, Failure> {
    crate::api::checks::check_spec(&iep.spec)
        .map_err(|violation| Failure::new(Reason::InvalidSpec, violation.to_string()))?;
    let azure = iep.spec.azure_open_ai.as_ref().ok_or_else(|| {
        Failure::new(
            Reason::InvalidSpec,
            "spec.azureOpenAI is required (no other service is supported yet)",
        )
    })?;
    let credential = azure_credential(azure)?;
    let chunking_settings = match (&iep.spec.chunking_settings, iep.spec.task_type) {
        (None, _) => None,
        (Some(chunking), TaskType::TextEmbedding) => Some(chunking_map(chunking)),
        (Some(_), _) => {
            return Err(Failure::new(
                Reason::InvalidSpec,
                "spec.chunkingSettings applies only to taskType text_embedding",
            ))
        }
    };
    Ok(Desired {
        config: EndpointConfig {
            inference_id: iep.inference_id().to_owned(),
            task_type: iep.spec.task_type,
            service: "azureopenai".to_owned(),
            service_settings: azure_service_settings(azure),
            task_settings: azure_task_settings(azure),
            chunking_settings,
        },
        credential,
    })
}

fn azure_credential(azure: &AzureOpenAi) -> Result<CredentialSource, Failure> {
    match (&azure.api_key_secret_ref, &azure.entra_id_secret_ref) {
        (Some(secret), None) => Ok(CredentialSource {
            secret: secret.clone(),
            field: "api_key",
        }),
        (None, Some(secret)) => Ok(CredentialSource {
            secret: secret.clone(),
            field: "entra_id",
        }),
        _ => Err(Failure::new(
            Reason::InvalidSpec,
            "exactly one of spec.azureOpenAI.apiKeySecretRef or entraIdSecretRef must be set",
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
    let missing = unsupported_features(&desired.config, Some(desired.credential.field), version);
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
        assert_eq!(d.credential.field, "api_key");
        assert_eq!(d.credential.secret.name, "azure");
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
        assert_eq!(d.credential.field, "entra_id");
        assert_eq!(d.credential.secret.key, "token");
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
