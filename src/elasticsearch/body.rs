//! The observed endpoint, and request bodies for create and `_update` built from the desired one
//! ([`EndpointConfig`], in [`crate::endpoint`]).
//!
//! Secrets live only in [`ServiceSecrets`] (`SecretString`s) and in [`RequestBody`], whose
//! `Debug` prints the JSON with the secret value replaced. Neither type implements `Display` or
//! `Serialize`, so a body cannot be logged or serialised by accident.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::normalize::{chunking_acceptable_when_unset, default_chunking};
use super::service::{is_secret_field, ServiceProfile};
use super::version::{EsVersion, Since};
use crate::endpoint::TaskType;
pub use crate::endpoint::{EndpointConfig, SecretValue, ServiceSecret, ServiceSecrets};

const REDACTED: &str = "<redacted>";

/// An endpoint as returned by GET / PUT / `_update` (secrets filtered out by Elasticsearch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub inference_id: String,
    /// Kept as a string: GET may return task types the operator does not manage.
    pub task_type: String,
    pub service: String,
    #[serde(default)]
    pub service_settings: Map<String, Value>,
    #[serde(default)]
    pub task_settings: Map<String, Value>,
    #[serde(default)]
    pub chunking_settings: Option<Map<String, Value>>,
}

impl Endpoint {
    /// The task type, if it is one the operator manages.
    pub fn task_type(&self) -> Option<TaskType> {
        self.task_type.parse().ok()
    }
}

/// A JSON request body that may carry a secret. `Debug` redacts it; use
/// [`RequestBody::expose_secret_json`] only to send it.
#[derive(Clone)]
pub struct RequestBody {
    json: Value,
    /// The `service_settings` keys that hold secrets.
    secret_fields: Vec<String>,
}

impl RequestBody {
    /// A body without secrets (the health probe's).
    pub(crate) fn plain(json: Value) -> Self {
        RequestBody {
            json,
            secret_fields: Vec::new(),
        }
    }

    /// The JSON including the secret. Only for sending (and tests).
    pub fn expose_secret_json(&self) -> &Value {
        &self.json
    }

    /// The JSON with the secret value replaced by `<redacted>`; safe to log.
    pub fn redacted(&self) -> Value {
        let mut json = self.json.clone();
        for field in &self.secret_fields {
            if let Some(v) = json
                .get_mut("service_settings")
                .and_then(|s| s.get_mut(field.as_str()))
            {
                *v = Value::String(REDACTED.to_owned());
            }
        }
        json
    }

    /// Whether a secret is in the body.
    pub fn carries_secret(&self) -> bool {
        !self.secret_fields.is_empty()
    }

    /// Every secret string in the body (to scrub them from echoed error texts).
    pub(crate) fn secret_values(&self) -> Vec<&str> {
        let Some(settings) = self.json.get("service_settings") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for field in &self.secret_fields {
            match settings.get(field.as_str()) {
                Some(Value::String(s)) => out.push(s.as_str()),
                Some(Value::Object(map)) => out.extend(map.values().filter_map(Value::as_str)),
                _ => {}
            }
        }
        out
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        // Serialising a `Value` cannot fail.
        serde_json::to_vec(&self.json).unwrap_or_default()
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestBody")
            .field(&self.redacted())
            .finish()
    }
}

/// Why an update body cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("Elasticsearch {0} has no update API (8.17+)")]
    UpdateApiUnavailable(EsVersion),
}

/// Drop secret keys from a settings map (defensive: desired settings should not carry any).
fn non_secret_settings(service: &str, settings: &Map<String, Value>) -> Map<String, Value> {
    settings
        .iter()
        .filter(|(k, _)| !is_secret_field(service, k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Remove `null` values and empty objects (Elasticsearch drops null header values and treats
/// an empty `headers` map as unset).
pub(crate) fn strip_empty(map: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in map {
        match v {
            Value::Null => {}
            Value::Object(inner) => {
                let inner = strip_empty(inner);
                if !inner.is_empty() {
                    out.insert(k.clone(), Value::Object(inner));
                }
            }
            other => {
                out.insert(k.clone(), other.clone());
            }
        }
    }
    out
}

/// Body of `PUT _inference/{task_type}/{inference_id}`: `service`, `service_settings` (with the
/// secret), `task_settings` only when non-empty, `chunking_settings` only when set.
pub fn create_body(cfg: &EndpointConfig, secrets: &ServiceSecrets) -> RequestBody {
    let mut ss = non_secret_settings(&cfg.service, &cfg.service_settings);
    insert_secrets(&mut ss, secrets);
    let mut body = Map::new();
    body.insert("service".into(), Value::String(cfg.service.clone()));
    body.insert("service_settings".into(), Value::Object(ss));
    let ts = strip_empty(&cfg.task_settings);
    if !ts.is_empty() {
        body.insert("task_settings".into(), Value::Object(ts));
    }
    if let Some(cs) = cfg.chunking_settings.as_ref().filter(|c| !c.is_empty()) {
        body.insert("chunking_settings".into(), Value::Object(cs.clone()));
    }
    RequestBody {
        json: Value::Object(body),
        secret_fields: secret_fields(secrets),
    }
}

fn insert_secrets(settings: &mut Map<String, Value>, secrets: &ServiceSecrets) {
    for secret in secrets.iter() {
        settings.insert(secret.field.clone(), secret.value.expose_json());
    }
}

fn secret_fields(secrets: &ServiceSecrets) -> Vec<String> {
    secrets.iter().map(|s| s.field.clone()).collect()
}

/// Body of `PUT _inference/{task_type}/{inference_id}/_update`, by version
/// (docs/reference/elasticsearch-inference-api.md#update-by-version,
/// docs/reference/elasticsearch-services.md#update-rotation):
///
/// * always `task_settings` = the full desired task settings (ES merges them). On 9.4+ keys that
///   `observed` has but the desired spec dropped are sent as `null` (clears them); before 9.4 a
///   task setting cannot be removed in place (see [`super::normalize::Difference::updatable_on`]).
/// * `service_settings` carries every secret key when `secrets` is given (Elasticsearch builds
///   the new secret from the update alone: both AWS keys, the whole `custom` map), plus the
///   non-secret keys the service's table entry lets `_update` change on this version
///   (`rate_limit` with its default filled in; OAuth2 `client_id`/`scopes`/`tenant_id` only if
///   the endpoint already uses OAuth2). Before 9.5 that is the secrets alone for every external
///   service: other keys would be ignored.
/// * 9.5+: `chunking_settings` (replace semantics) is sent when the user set it, or the default
///   when the observed chunking is neither default nor a tolerated legacy value.
pub fn update_body(
    desired: &EndpointConfig,
    secrets: Option<&ServiceSecrets>,
    observed: Option<&Endpoint>,
    version: &EsVersion,
) -> Result<RequestBody, BodyError> {
    if !version.supports_update_api() {
        return Err(BodyError::UpdateApiUnavailable(*version));
    }
    let mut body = Map::new();

    // service_settings
    let mut ss = updatable_service_settings(desired, observed, version);
    if let Some(secrets) = secrets {
        insert_secrets(&mut ss, secrets);
    }
    if !ss.is_empty() {
        body.insert("service_settings".into(), Value::Object(ss));
    }

    // task_settings
    let mut ts = strip_empty(&desired.task_settings);
    // A service without a table entry is compared on the user's keys only, so what only
    // Elasticsearch set is left alone.
    let profile = ServiceProfile::lookup(&desired.service);
    let filled_in: &[&str] =
        profile.map_or(&[], |p| (p.filled_in_task_settings)(desired.task_type));
    if version.update_can_clear_task_settings() && profile.is_some() {
        if let Some(o) = observed {
            for key in o.task_settings.keys() {
                if !ts.contains_key(key) && !filled_in.contains(&key.as_str()) {
                    ts.insert(key.clone(), Value::Null);
                }
            }
        }
    }
    body.insert("task_settings".into(), Value::Object(ts));

    // chunking_settings (9.5+)
    if version.update_accepts_chunking_settings()
        && version.supports_chunking_settings()
        && desired.task_type.supports_chunking()
    {
        let explicit = desired.chunking_settings.as_ref().filter(|c| !c.is_empty());
        let chunking = match explicit {
            Some(c) => Some(c.clone()),
            None => {
                let observed_cs = observed.and_then(|o| o.chunking_settings.as_ref());
                match observed_cs {
                    Some(o) if !chunking_acceptable_when_unset(o) => Some(default_chunking()),
                    _ => None,
                }
            }
        };
        if let Some(c) = chunking {
            body.insert("chunking_settings".into(), Value::Object(c));
        }
    }

    Ok(RequestBody {
        json: Value::Object(body),
        secret_fields: secrets.map(secret_fields).unwrap_or_default(),
    })
}

/// Since when `_update` can change `service_settings.<key>` of `service`. Nothing for services
/// without a table entry: Elasticsearch's default ignores such changes silently
/// (docs/reference/elasticsearch-services.md#update-settings), so they follow `updatePolicy`.
pub(crate) fn updatable_since(service: &str, key: &str) -> Option<Since> {
    ServiceProfile::lookup(service).and_then(|p| p.updatable_since(key))
}

/// The non-secret `service_settings` of `desired` that `_update` can change on `version`.
fn updatable_service_settings(
    desired: &EndpointConfig,
    observed: Option<&Endpoint>,
    version: &EsVersion,
) -> Map<String, Value> {
    let service = desired.service.as_str();
    let profile = ServiceProfile::lookup(service);
    let uses_oauth2 = observed.is_some_and(|o| o.service_settings.contains_key("client_id"));
    let updatable_now =
        |key: &str| updatable_since(service, key).is_some_and(|since| since.contains(version));
    let desired_ss = non_secret_settings(service, &desired.service_settings);
    let mut ss: Map<String, Value> = desired_ss
        .into_iter()
        .filter(|(key, _)| updatable_now(key))
        .filter(|(key, _)| uses_oauth2 || !profile.is_some_and(|p| p.is_oauth2_field(key)))
        .collect();
    if !ss.contains_key("rate_limit") && updatable_now("rate_limit") {
        if let Some(rpm) = profile.and_then(|p| p.default_rpm(desired.task_type)) {
            ss.insert(
                "rate_limit".into(),
                serde_json::json!({ "requests_per_minute": rpm }),
            );
        }
    }
    ss
}

/// Features of `cfg` (and of its secret keys) the cluster version does not offer, as short
/// human messages; empty = all supported. Gates from the service table: task types, optional
/// settings such as `task_settings.headers`, OAuth2; and the generic chunking gates.
pub fn unsupported_features(
    cfg: &EndpointConfig,
    secret_fields: &[&str],
    version: &EsVersion,
) -> Vec<String> {
    let mut out = Vec::new();
    let profile = ServiceProfile::lookup(&cfg.service);
    if let Some(p) = profile {
        match p.min_version_for(cfg.task_type) {
            Some(since) if !since.contains(version) => out.push(format!(
                "task type [{}] of service [{}] needs Elasticsearch {}.{}+ (cluster is {version})",
                cfg.task_type, cfg.service, since.from.0, since.from.1
            )),
            None => out.push(format!(
                "service [{}] does not support task type [{}]",
                cfg.service, cfg.task_type
            )),
            _ => {}
        }
    }
    if let Some(cs) = cfg.chunking_settings.as_ref().filter(|c| !c.is_empty()) {
        if !cfg.task_type.supports_chunking() {
            out.push(format!(
                "chunking_settings is only accepted for embedding task types, not [{}]",
                cfg.task_type
            ));
        } else if !version.supports_chunking_settings() {
            out.push(format!(
                "chunking_settings needs Elasticsearch 8.16+ (cluster is {version})"
            ));
        } else if let Some(strategy) = cs.get("strategy").and_then(Value::as_str) {
            if !version.supports_chunking_strategy(strategy) {
                out.push(format!(
                    "chunking strategy [{strategy}] is not supported by Elasticsearch {version}"
                ));
            }
        }
    }
    if let Some(p) = profile {
        for gate in p.gates {
            let (scope, key) = gate.path.split_once('.').unwrap_or(("", gate.path));
            let settings = match scope {
                "task_settings" => &cfg.task_settings,
                _ => &cfg.service_settings,
            };
            if settings.contains_key(key) && !gate.since.contains(version) {
                out.push(format!(
                    "{} needs Elasticsearch {} (cluster is {version})",
                    gate.path,
                    needs(Some(gate.since))
                ));
            }
        }
        if let Some(oauth2) = p.oauth2 {
            let used = oauth2
                .fields
                .iter()
                .any(|k| cfg.service_settings.contains_key(*k))
                || secret_fields.contains(&oauth2.secret);
            if used && !oauth2.since.contains(version) {
                out.push(format!(
                    "OAuth2 client credentials need Elasticsearch {} (cluster is {version})",
                    needs(Some(oauth2.since))
                ));
            }
        }
    }
    out
}

/// `9.4+`, or `a version that offers it` when no release does.
fn needs(since: Option<Since>) -> String {
    since.map_or_else(
        || "a version that offers it".to_owned(),
        |s| format!("{}.{}+", s.from.0, s.from.1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "sk-VERY-SECRET-value-42";

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn cfg(task: TaskType) -> EndpointConfig {
        EndpointConfig {
            inference_id: "azure-emb".into(),
            task_type: task,
            service: "azureopenai".into(),
            service_settings: obj(json!({
                "resource_name": "my-res",
                "deployment_id": "my-dep",
                "api_version": "2024-02-01"
            })),
            task_settings: Map::new(),
            chunking_settings: None,
        }
    }

    fn v(s: &str) -> EsVersion {
        EsVersion::parse(s).unwrap()
    }

    fn assert_secret_only_in_service_settings(body: &RequestBody, field: &str) {
        let json = body.expose_secret_json();
        assert_eq!(json["service_settings"][field], json!(SECRET));
        let mut without = json.clone();
        without["service_settings"]
            .as_object_mut()
            .unwrap()
            .remove(field);
        assert!(!without.to_string().contains(SECRET), "secret elsewhere");
        assert!(!format!("{body:?}").contains(SECRET), "Debug leaks");
        assert!(!body.redacted().to_string().contains(SECRET));
        assert!(format!("{body:?}").contains(REDACTED));
    }

    #[test]
    fn create_body_each_task_and_credential() {
        for task in TaskType::ALL {
            for secret in [
                ServiceSecret::api_key(SECRET),
                ServiceSecret::entra_id(SECRET),
            ] {
                let body = create_body(&cfg(task), &secret.clone().into());
                assert_secret_only_in_service_settings(&body, &secret.field);
                let json = body.expose_secret_json();
                assert_eq!(json["service"], "azureopenai");
                assert_eq!(json["service_settings"]["deployment_id"], "my-dep");
                assert_eq!(json["service_settings"]["resource_name"], "my-res");
                assert_eq!(json["service_settings"]["api_version"], "2024-02-01");
                assert_eq!(json["service_settings"].as_object().unwrap().len(), 4);
                assert!(json.get("task_settings").is_none(), "empty task_settings");
                assert!(json.get("chunking_settings").is_none());
                assert!(json.get("task_type").is_none());
                assert!(json.get("inference_id").is_none());
                assert!(!format!("{secret:?}").contains(SECRET));
            }
        }
    }

    #[test]
    fn create_body_with_everything() {
        let mut c = cfg(TaskType::TextEmbedding);
        c.service_settings.insert("dimensions".into(), json!(256));
        c.service_settings
            .insert("rate_limit".into(), json!({"requests_per_minute": 100}));
        c.task_settings.insert("user".into(), json!("me"));
        c.task_settings
            .insert("headers".into(), json!({"X-A": "1", "X-Null": null}));
        c.chunking_settings = Some(obj(
            json!({"strategy": "word", "max_chunk_size": 100, "overlap": 20}),
        ));
        // A secret key smuggled into the non-secret map is dropped in favour of the secret.
        c.service_settings
            .insert("api_key".into(), json!("stale-from-spec"));
        let body = create_body(&c, &ServiceSecret::api_key(SECRET).into());
        let json = body.expose_secret_json();
        assert_eq!(
            json,
            &json!({
                "service": "azureopenai",
                "service_settings": {
                    "resource_name": "my-res", "deployment_id": "my-dep", "api_version": "2024-02-01",
                    "dimensions": 256, "rate_limit": {"requests_per_minute": 100}, "api_key": SECRET
                },
                "task_settings": {"user": "me", "headers": {"X-A": "1"}},
                "chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 20}
            })
        );
        assert!(!json.to_string().contains("stale-from-spec"));
        assert_secret_only_in_service_settings(&body, "api_key");
    }

    #[test]
    fn update_body_pre_9_5_sends_only_secret_and_task_settings() {
        let mut c = cfg(TaskType::Completion);
        c.service_settings
            .insert("rate_limit".into(), json!({"requests_per_minute": 50}));
        c.task_settings.insert("user".into(), json!("u2"));
        for ver in ["8.17.0", "9.0.0", "9.3.2", "9.4.0"] {
            let body = update_body(
                &c,
                Some(&ServiceSecret::entra_id(SECRET).into()),
                None,
                &v(ver),
            )
            .unwrap();
            assert_eq!(
                body.expose_secret_json(),
                &json!({"service_settings": {"entra_id": SECRET}, "task_settings": {"user": "u2"}}),
                "{ver}"
            );
            assert_secret_only_in_service_settings(&body, "entra_id");
            // Without a secret: no service_settings at all.
            let body = update_body(&c, None, None, &v(ver)).unwrap();
            assert_eq!(
                body.expose_secret_json(),
                &json!({"task_settings": {"user": "u2"}})
            );
            assert!(!body.carries_secret());
        }
    }

    #[test]
    fn update_body_rejected_before_8_17() {
        assert_eq!(
            update_body(&cfg(TaskType::TextEmbedding), None, None, &v("8.16.1")).unwrap_err(),
            BodyError::UpdateApiUnavailable(v("8.16.1"))
        );
    }

    #[test]
    fn update_body_clears_removed_task_settings_on_9_4() {
        let c = cfg(TaskType::TextEmbedding);
        let observed = Endpoint {
            inference_id: "azure-emb".into(),
            task_type: "text_embedding".into(),
            service: "azureopenai".into(),
            service_settings: Map::new(),
            task_settings: obj(json!({"user": "old"})),
            chunking_settings: None,
        };
        let body = update_body(&c, None, Some(&observed), &v("9.4.0")).unwrap();
        assert_eq!(
            body.expose_secret_json(),
            &json!({"task_settings": {"user": null}})
        );
        let body = update_body(&c, None, Some(&observed), &v("9.3.0")).unwrap();
        assert_eq!(body.expose_secret_json(), &json!({"task_settings": {}}));
    }

    #[test]
    fn update_body_9_5_rate_limit_and_chunking() {
        let mut c = cfg(TaskType::TextEmbedding);
        c.service_settings
            .insert("rate_limit".into(), json!({"requests_per_minute": 600}));
        c.chunking_settings = Some(obj(
            json!({"strategy": "sentence", "max_chunk_size": 200, "sentence_overlap": 0}),
        ));
        let body = update_body(
            &c,
            Some(&ServiceSecret::api_key(SECRET).into()),
            None,
            &v("9.5.0"),
        )
        .unwrap();
        assert_eq!(
            body.expose_secret_json(),
            &json!({
                "service_settings": {"rate_limit": {"requests_per_minute": 600}, "api_key": SECRET},
                "task_settings": {},
                "chunking_settings": {"strategy": "sentence", "max_chunk_size": 200, "sentence_overlap": 0}
            })
        );
        assert_secret_only_in_service_settings(&body, "api_key");

        // Nothing user-set: default rate limit; chunking only when observed is off-default.
        let c = cfg(TaskType::TextEmbedding);
        let mut observed = Endpoint {
            inference_id: "azure-emb".into(),
            task_type: "text_embedding".into(),
            service: "azureopenai".into(),
            service_settings: Map::new(),
            task_settings: Map::new(),
            chunking_settings: Some(obj(
                json!({"strategy": "word", "max_chunk_size": 250, "overlap": 100}),
            )),
        };
        let body = update_body(&c, None, Some(&observed), &v("9.5.0")).unwrap();
        assert_eq!(
            body.expose_secret_json(),
            &json!({"service_settings": {"rate_limit": {"requests_per_minute": 1440}}, "task_settings": {}})
        );
        observed.chunking_settings = Some(obj(
            json!({"strategy": "word", "max_chunk_size": 50, "overlap": 10}),
        ));
        let body = update_body(&c, None, Some(&observed), &v("9.5.0")).unwrap();
        assert_eq!(
            body.expose_secret_json()["chunking_settings"],
            json!({"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1})
        );
        // Completion never gets chunking.
        let body = update_body(&cfg(TaskType::Completion), None, None, &v("9.5.0")).unwrap();
        assert_eq!(
            body.expose_secret_json(),
            &json!({"service_settings": {"rate_limit": {"requests_per_minute": 120}}, "task_settings": {}})
        );
    }

    #[test]
    fn update_body_9_5_oauth2_fields_only_when_endpoint_uses_oauth2() {
        let mut c = cfg(TaskType::Completion);
        c.service_settings.insert("client_id".into(), json!("cid"));
        c.service_settings.insert("tenant_id".into(), json!("tid"));
        c.service_settings.insert(
            "scopes".into(),
            json!(["https://cognitiveservices.azure.com/.default"]),
        );
        let body = update_body(&c, None, None, &v("9.5.0")).unwrap();
        assert!(body.expose_secret_json()["service_settings"]
            .get("client_id")
            .is_none());
        let observed = Endpoint {
            inference_id: "azure-emb".into(),
            task_type: "completion".into(),
            service: "azureopenai".into(),
            service_settings: obj(json!({"client_id": "old"})),
            task_settings: Map::new(),
            chunking_settings: None,
        };
        let body = update_body(
            &c,
            Some(&ServiceSecrets::from(ServiceSecret::new(
                "client_secret",
                SECRET,
            ))),
            Some(&observed),
            &v("9.5.0"),
        )
        .unwrap();
        let ss = &body.expose_secret_json()["service_settings"];
        assert_eq!(ss["client_id"], "cid");
        assert_eq!(ss["tenant_id"], "tid");
        assert!(ss.get("resource_name").is_none(), "immutable keys not sent");
        assert_secret_only_in_service_settings(&body, "client_secret");
    }

    #[test]
    fn endpoint_deserialises_filtered_shape() {
        let e: Endpoint = serde_json::from_value(json!({
            "inference_id": "azure-emb",
            "task_type": "text_embedding",
            "service": "azureopenai",
            "service_settings": {"resource_name": "my-res", "deployment_id": "my-embed",
                "api_version": "2024-02-01", "rate_limit": {"requests_per_minute": 1440},
                "dimensions": 1536, "similarity": "dot_product"},
            "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
        }))
        .unwrap();
        assert_eq!(e.task_type(), Some(TaskType::TextEmbedding));
        assert!(e.task_settings.is_empty());
        let e: Endpoint = serde_json::from_value(json!({
            "inference_id": "r", "task_type": "some_future_task", "service": "x", "service_settings": {}
        }))
        .unwrap();
        assert_eq!(e.task_type(), None);
    }

    #[test]
    fn version_feature_check() {
        let mut c = cfg(TaskType::ChatCompletion);
        assert_eq!(unsupported_features(&c, &["api_key"], &v("9.3.0")).len(), 0);
        assert_eq!(unsupported_features(&c, &["api_key"], &v("9.2.0")).len(), 1);
        c.task_settings.insert("headers".into(), json!({"a": "b"}));
        assert_eq!(
            unsupported_features(&c, &["client_secret"], &v("9.3.0")).len(),
            2
        );
        assert!(unsupported_features(&c, &["client_secret"], &v("9.4.0")).is_empty());
        c.chunking_settings = Some(obj(json!({"strategy": "sentence"})));
        assert_eq!(unsupported_features(&c, &[], &v("9.4.0")).len(), 1);
        let mut e = cfg(TaskType::TextEmbedding);
        e.chunking_settings = Some(obj(
            json!({"strategy": "recursive", "max_chunk_size": 100, "separator_group": "markdown"}),
        ));
        assert_eq!(unsupported_features(&e, &[], &v("8.19.0")).len(), 1);
        assert!(unsupported_features(&e, &[], &v("9.1.0")).is_empty());
        assert_eq!(unsupported_features(&e, &[], &v("8.15.0")).len(), 1);
    }
}
