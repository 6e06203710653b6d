//! The `azureopenai` service: request parsing with ES's messages and ordering
//! (docs/reference/elasticsearch-inference-api.md#azure-service-settings,
//! docs/reference/elasticsearch-inference-api.md#validation-order), and the fake Azure OpenAI that
//! ES "calls" to validate an endpoint
//! (docs/reference/elasticsearch-inference-api.md#validation-call).

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::errors::EsError;
use super::extract::{
    empty_string, missing, opt_int, opt_positive, opt_string, parse_rate_limit, req_string,
    take_settings_maps, type_err, unknown_settings_for,
};
use super::json::{java, java_list};
use super::model::{default_chunking, TaskType, AZURE};
use super::providers::{
    failed_validation, FakeProviders, FakeService, ProviderCall, ProviderOutcome,
};
use super::version::EsVersion;

// ---------------------------------------------------------------------------------------------
// PUT parsing
// ---------------------------------------------------------------------------------------------

/// Result of parsing a create request for azureopenai.
#[derive(Debug)]
pub(crate) struct ParsedCreate {
    pub(crate) service_settings: Map<String, Value>,
    pub(crate) task_settings: Map<String, Value>,
    pub(crate) chunking: Option<Value>,
    pub(crate) secret: (String, String),
    pub(crate) dims_set_by_user: bool,
    pub(crate) oauth2: bool,
}

pub(crate) fn default_rate_limit(tt: TaskType) -> i64 {
    if tt == TaskType::TextEmbedding {
        1440
    } else {
        120
    }
}

/// `AzureOpenAiService.parseRequestConfig` order
/// (docs/reference/elasticsearch-inference-api.md#validation-order): `service_settings`
/// required → task settings → chunking (text_embedding, 8.16+) → task type supported →
/// service settings (errors collected; a bad `rate_limit` key throws at once) → task settings →
/// secrets → leftover keys (top level, then service_settings, then task_settings).
pub(crate) fn parse_create(
    v: EsVersion,
    tt: TaskType,
    config: &mut Map<String, Value>,
) -> Result<ParsedCreate, EsError> {
    let (mut ss, mut ts) = take_settings_maps(config)?;
    let mut chunking = None;
    if tt == TaskType::TextEmbedding && v.chunking() {
        chunking = Some(parse_chunking(v, config.remove("chunking_settings"))?);
    }
    let supported = match tt {
        TaskType::TextEmbedding => true,
        TaskType::Completion => v.azure_completion(),
        TaskType::ChatCompletion => v.azure_chat_completion(),
        _ => false,
    };
    if !supported {
        return Err(EsError::bad_request(format!(
            "The [{AZURE}] service does not support task type [{}]",
            tt.as_str()
        )));
    }

    let svc = parse_service_settings(v, tt, &mut ss)?;
    let task_settings = parse_task_settings_create(v, &mut ts)?;
    let secret = parse_secret(v, &mut ss, svc.oauth2)?;

    if !config.is_empty() {
        return Err(unknown_settings(v, config));
    }
    if !ss.is_empty() {
        return Err(unknown_settings(v, &ss));
    }
    if !ts.is_empty() {
        return Err(unknown_settings(v, &ts));
    }
    Ok(ParsedCreate {
        service_settings: svc.exposed,
        task_settings,
        chunking,
        secret,
        dims_set_by_user: svc.dims_set_by_user,
        oauth2: svc.oauth2,
    })
}

/// `throwIfNotEmptyMap` for the `azureopenai` parser.
pub(crate) fn unknown_settings(v: EsVersion, m: &Map<String, Value>) -> EsError {
    unknown_settings_for(v, AZURE, m)
}

struct ServiceParse {
    exposed: Map<String, Value>,
    dims_set_by_user: bool,
    oauth2: bool,
}

const OAUTH2_FIELDS: [&str; 3] = ["client_id", "scopes", "tenant_id"];

/// OAuth2 non-secret fields (9.4+, docs/reference/elasticsearch-inference-api.md#azure-secrets).
/// Returns the fields found (possibly partial).
fn parse_oauth2(ss: &mut Map<String, Value>, errs: &mut Vec<String>) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(c) = opt_string(ss, "client_id", "service_settings", errs) {
        out.insert("client_id".into(), json!(c));
    }
    match ss.remove("scopes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(|s| s.is_string()) && !a.is_empty() => {
            out.insert("scopes".into(), Value::Array(a));
        }
        Some(Value::Array(a)) if a.is_empty() => errs.push(
            "[service_settings] Invalid value empty list. [scopes] must be a non-empty list".into(),
        ),
        Some(other) => errs.push(type_err("scopes", &other, "List")),
    }
    if let Some(t) = opt_string(ss, "tenant_id", "service_settings", errs) {
        out.insert("tenant_id".into(), json!(t));
    }
    out
}

fn parse_service_settings(
    v: EsVersion,
    tt: TaskType,
    ss: &mut Map<String, Value>,
) -> Result<ServiceParse, EsError> {
    let scope = "service_settings";
    let mut errs = Vec::new();
    let mut out = Map::new();
    for key in ["resource_name", "deployment_id", "api_version"] {
        if let Some(s) = req_string(ss, key, scope, &mut errs) {
            out.insert(key.into(), json!(s));
        }
    }
    let mut dims_set_by_user = false;
    if tt == TaskType::TextEmbedding {
        if let Some(d) = opt_positive(ss, "dimensions", scope, &mut errs, false) {
            out.insert("dimensions".into(), json!(d));
            dims_set_by_user = true;
        }
        if let Some(d) = opt_positive(ss, "max_input_tokens", scope, &mut errs, false) {
            out.insert("max_input_tokens".into(), json!(d));
        }
        if let Some(s) = opt_string(ss, "similarity", scope, &mut errs) {
            let l = s.to_ascii_lowercase();
            if ["cosine", "dot_product", "l2_norm"].contains(&l.as_str()) {
                out.insert("similarity".into(), json!(l));
            } else {
                errs.push(format!(
                    "[{scope}] Invalid value [{s}] received. [similarity] must be one of [cosine, dot_product, l2_norm]"
                ));
            }
        }
    }
    let rpm = parse_rate_limit(v, AZURE, ss, &mut errs)?.unwrap_or_else(|| default_rate_limit(tt));
    out.insert("rate_limit".into(), json!({ "requests_per_minute": rpm }));
    if ss.remove("dimensions_set_by_user").is_some() {
        errs.push(format!(
            "[{scope}] does not allow the setting [dimensions_set_by_user]"
        ));
    }
    let mut oauth2 = false;
    if v.v94() {
        let o = parse_oauth2(ss, &mut errs);
        if !o.is_empty() {
            let missing: Vec<&str> = OAUTH2_FIELDS
                .iter()
                .copied()
                .filter(|k| !o.contains_key(*k))
                .collect();
            if missing.is_empty() {
                oauth2 = true;
                out.extend(o);
            } else {
                errs.push(format!(
                    "[{scope}] all Azure OpenAI OAuth2 fields must be provided together; missing: {}",
                    java_list(&missing)
                ));
            }
        }
    }
    if !errs.is_empty() {
        return Err(EsError::validation(&errs));
    }
    Ok(ServiceParse {
        exposed: out,
        dims_set_by_user,
        oauth2,
    })
}

/// `headers` (9.4+, docs/reference/elasticsearch-inference-api.md#azure-task-settings):
/// string→string; `null` values dropped; empty ≙ not set.
fn parse_headers(v: Value, errs: &mut Vec<String>) -> Option<Map<String, Value>> {
    match v {
        Value::Null => None,
        Value::Object(h) => {
            let mut out = Map::new();
            for (k, val) in h {
                match val {
                    Value::Null => {}
                    Value::String(s) => {
                        out.insert(k, json!(s));
                    }
                    other => errs.push(type_err(&k, &other, "String")),
                }
            }
            (!out.is_empty()).then_some(out)
        }
        other => {
            errs.push(type_err("headers", &other, "Map"));
            None
        }
    }
}

fn parse_task_settings_create(
    v: EsVersion,
    ts: &mut Map<String, Value>,
) -> Result<Map<String, Value>, EsError> {
    let mut errs = Vec::new();
    let mut out = Map::new();
    if let Some(u) = opt_string(ts, "user", "task_settings", &mut errs) {
        out.insert("user".into(), json!(u));
    }
    if v.v94() {
        if let Some(h) = ts
            .remove("headers")
            .and_then(|h| parse_headers(h, &mut errs))
        {
            out.insert("headers".into(), Value::Object(h));
        }
    }
    if !errs.is_empty() {
        return Err(EsError::validation(&errs));
    }
    Ok(out)
}

/// Update-time task settings merge
/// (docs/reference/elasticsearch-inference-api.md#azure-task-settings): provided keys replace
/// stored ones; on 9.4+ `null` clears and unknown keys are rejected; before 9.4 unknown keys are
/// ignored (inferred).
pub(crate) fn merge_task_settings(
    v: EsVersion,
    stored: &Map<String, Value>,
    mut new: Map<String, Value>,
) -> Result<Map<String, Value>, EsError> {
    let mut out = stored.clone();
    let mut errs = Vec::new();
    match new.remove("user") {
        None => {}
        Some(Value::Null) if v.v94() => {
            out.remove("user");
        }
        Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => errs.push(empty_string("task_settings", "user")),
        Some(Value::String(s)) => {
            out.insert("user".into(), json!(s));
        }
        Some(other) => errs.push(type_err("user", &other, "String")),
    }
    if v.v94() {
        if let Some(h) = new.remove("headers") {
            match parse_headers(h, &mut errs) {
                Some(h) => out.insert("headers".into(), Value::Object(h)),
                None => out.remove("headers"),
            };
        }
    }
    if !errs.is_empty() {
        return Err(EsError::validation(&errs));
    }
    if v.v94() && !new.is_empty() {
        return Err(unknown_settings(v, &new));
    }
    Ok(out)
}

/// Secrets from `service_settings` (docs/reference/elasticsearch-inference-api.md#azure-secrets),
/// messages by version.
pub(crate) fn parse_secret(
    v: EsVersion,
    ss: &mut Map<String, Value>,
    oauth2: bool,
) -> Result<(String, String), EsError> {
    let scope = "secret_settings";
    let mut errs = Vec::new();
    let kinds: &[&str] = if v.v94() {
        &["api_key", "entra_id", "client_secret"]
    } else {
        &["api_key", "entra_id"]
    };
    let mut found: Vec<(String, String)> = Vec::new();
    for k in kinds {
        if let Some(s) = opt_string(ss, k, scope, &mut errs) {
            found.push((k.to_string(), s));
        }
    }
    if !v.v94() {
        if found.is_empty() {
            errs.push(format!(
                "[{scope}] must have either the [api_key] or the [entra_id] key set"
            ));
        } else if found.len() > 1 {
            errs.push(format!(
                "[{scope}] must have only one of the [api_key] or the [entra_id] key set"
            ));
        }
    } else {
        // 9.4 `AzureOpenAiSecretSettings` names the map the user wrote, `service_settings`
        // (issue 9's quote of the 9.4 message; 9.3 and earlier say `secret_settings`).
        let base = "[service_settings] must have exactly one of [api_key], [entra_id], or [client_secret] field set".to_string();
        if found.is_empty() {
            errs.push(base);
        } else if found.len() > 1 {
            let names: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
            errs.push(format!("{base}, received: {}", java_list(&names)));
        } else if found[0].0 == "client_secret" && !oauth2 {
            errs.push(
                "OAuth2 requires the fields [client_id, scopes, tenant_id], to be set.".into(),
            );
        } else if found[0].0 != "client_secret" && oauth2 {
            // (inferred) `OAuth2Settings.clientSecretRequiredError` wording was not verified
            // (docs/reference/elasticsearch-inference-api.md#azure-secrets).
            errs.push(format!(
                "OAuth2 requires the [client_secret] field to be set, received: [{}]",
                found[0].0
            ));
        }
    }
    if !errs.is_empty() {
        return Err(EsError::validation(&errs));
    }
    Ok(found.remove(0))
}

// ---------------------------------------------------------------------------------------------
// Update (docs/reference/elasticsearch-inference-api.md#update-api,
// docs/reference/elasticsearch-inference-api.md#update-by-version)
// ---------------------------------------------------------------------------------------------

/// What a 9.5 `service_settings` update changes.
pub(crate) struct ServiceUpdate {
    pub(crate) rate_limit: Option<i64>,
    /// Embeddings only (the caller checks the task type).
    pub(crate) max_input_tokens: Option<i64>,
    pub(crate) oauth2: Map<String, Value>,
    pub(crate) secret: Option<(String, String)>,
}

const IMMUTABLE: [&str; 5] = [
    "resource_name",
    "deployment_id",
    "api_version",
    "dimensions",
    "similarity",
];

/// 9.5 semantics (PRs #145233/#149628/#149430, inferred release): `rate_limit` mutable, OAuth2
/// non-secret fields mutable only on OAuth2 endpoints, secrets optional but only the same kind,
/// immutable fields ignored (inferred: #145233 makes them immutable; whether they are ignored or rejected
/// was not read, docs/reference/elasticsearch-inference-api.md#update-by-version), other keys
/// rejected as unknown.
pub(crate) fn parse_update_95(
    v: EsVersion,
    mut ss: Map<String, Value>,
    stored_secret_kind: Option<&str>,
    stored_oauth2: bool,
) -> Result<ServiceUpdate, EsError> {
    let mut errs = Vec::new();
    let rate_limit = parse_rate_limit(v, AZURE, &mut ss, &mut errs)?;
    // 9.5 `AzureOpenAiEmbeddingsServiceSettings.updateServiceSettings` takes `max_input_tokens`
    // (PR #149628, updatable service settings) (inferred: release 9.5.0).
    let max_input_tokens = if v.update_accepts_max_input_tokens() {
        opt_positive(
            &mut ss,
            "max_input_tokens",
            "service_settings",
            &mut errs,
            false,
        )
    } else {
        ss.remove("max_input_tokens");
        None
    };
    let oauth2 = parse_oauth2(&mut ss, &mut errs);
    if !oauth2.is_empty() && !stored_oauth2 {
        errs.push("Cannot update OAuth2 fields as the service was not configured with OAuth2 settings. Please create a new Inference Endpoint with the OAuth2 settings instead.".into());
    }
    let mut found = Vec::new();
    for k in ["api_key", "entra_id", "client_secret"] {
        if let Some(s) = opt_string(&mut ss, k, "secret_settings", &mut errs) {
            found.push((k.to_string(), s));
        }
    }
    let mut secret = None;
    if found.len() > 1 {
        let names: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        errs.push(format!("[service_settings] must have exactly one of [api_key], [entra_id], or [client_secret] field set, received: {}", java_list(&names)));
    } else if let Some((k, val)) = found.pop() {
        match stored_secret_kind {
            Some(sk) if sk != k => {
                // (inferred) wording not read (#149628,
                // docs/reference/elasticsearch-inference-api.md#update-by-version).
                errs.push(format!(
                    "only [{sk}] can be updated for this secret, received: [{k}]"
                ))
            }
            _ => secret = Some((k, val)),
        }
    }
    for k in IMMUTABLE {
        ss.remove(k);
    }
    if !errs.is_empty() {
        return Err(EsError::validation(&errs));
    }
    if !ss.is_empty() {
        return Err(unknown_settings(v, &ss));
    }
    Ok(ServiceUpdate {
        rate_limit,
        max_input_tokens,
        oauth2,
        secret,
    })
}

// ---------------------------------------------------------------------------------------------
// Chunking settings (docs/reference/elasticsearch-inference-api.md#chunking-settings)
// ---------------------------------------------------------------------------------------------

fn invalid_keys(m: &Map<String, Value>, valid: &[&str]) -> Vec<String> {
    m.keys()
        .filter(|k| !valid.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn chunk_int(
    m: &mut Map<String, Value>,
    key: &str,
    errs: &mut Vec<String>,
    required: bool,
) -> Option<i64> {
    if required && matches!(m.get(key), None | Some(Value::Null)) {
        errs.push(missing("chunking_settings", key));
        return None;
    }
    opt_int(m, key, errs, "Integer")
}

fn bounds(n: i64, key: &str, min: i64, max: Option<i64>, errs: &mut Vec<String>) -> bool {
    if n < min {
        errs.push(format!(
            "[chunking_settings] Invalid value [{n}]. [{key}] must be a greater than or equal to [{min}]"
        ));
        return false;
    }
    if let Some(max) = max {
        if n > max {
            errs.push(format!(
                "[chunking_settings] Invalid value [{n}]. [{key}] must be a less than or equal to [{max}]"
            ));
            return false;
        }
    }
    true
}

/// Separator lists for `separator_group` (inferred: copied from memory of `SeparatorGroup`).
fn separator_group(name: &str) -> Option<Value> {
    match name {
        "plaintext" => Some(json!(["(?<!\\n)\\n\\n(?!\\n)", "(?<!\\n)\\n(?!\\n)"])),
        "markdown" => Some(json!([
            "\n# ",
            "\n## ",
            "\n### ",
            "\n#### ",
            "\n##### ",
            "\n###### ",
            "\n^(?!\\s*$).*\\n-{1,}\\n",
            "\n^(?!\\s*$).*\\n={1,}\\n"
        ])),
        _ => None,
    }
}

/// `ChunkingSettingsBuilder.fromMap`
/// (docs/reference/elasticsearch-inference-api.md#chunking-settings). Returns the normalised stored
/// object.
pub(crate) fn parse_chunking(v: EsVersion, raw: Option<Value>) -> Result<Value, EsError> {
    let mut m = match raw {
        None | Some(Value::Null) => return Ok(default_chunking()),
        Some(Value::Object(m)) if m.is_empty() => return Ok(default_chunking()),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(EsError::validation(&[type_err(
                "chunking_settings",
                &other,
                "Map",
            )]))
        }
    };
    let strategy = match m.get("strategy") {
        None | Some(Value::Null) => {
            return Err(EsError::illegal_argument(
                "Can't generate Chunker without ChunkingStrategy provided",
            ))
        }
        Some(s) => java(s).to_ascii_lowercase(),
    };
    let mut errs = Vec::new();
    let out = match strategy.as_str() {
        "sentence" => {
            let bad = invalid_keys(&m, &["strategy", "max_chunk_size", "sentence_overlap"]);
            if !bad.is_empty() {
                errs.push(format!(
                    "Sentence based chunking settings can not have the following settings: {}",
                    java_list(&bad)
                ));
            }
            let max = chunk_int(&mut m, "max_chunk_size", &mut errs, true);
            if let Some(n) = max {
                bounds(n, "max_chunk_size", 20, None, &mut errs);
            }
            let overlap = chunk_int(&mut m, "sentence_overlap", &mut errs, false).unwrap_or(1);
            if !(0..=1).contains(&overlap) {
                errs.push(format!("sentence_overlap[{overlap}] must be either 0 or 1"));
            }
            json!({"strategy": "sentence", "max_chunk_size": max, "sentence_overlap": overlap})
        }
        "word" => {
            let bad = invalid_keys(&m, &["strategy", "max_chunk_size", "overlap"]);
            if !bad.is_empty() {
                errs.push(format!(
                    "Word based chunking settings can not have the following settings: {}",
                    java_list(&bad)
                ));
            }
            let max = chunk_int(&mut m, "max_chunk_size", &mut errs, true);
            let max_ok = max.is_some_and(|n| bounds(n, "max_chunk_size", 10, Some(300), &mut errs));
            let overlap = chunk_int(&mut m, "overlap", &mut errs, true);
            if let Some(o) = overlap {
                if o <= 0 {
                    errs.push(format!("[chunking_settings] Invalid value [{o}]. [overlap] must be a positive integer"));
                } else if max_ok {
                    bounds(o, "overlap", 1, max.map(|n| n / 2), &mut errs);
                }
            }
            json!({"strategy": "word", "max_chunk_size": max, "overlap": overlap})
        }
        "recursive" if v.recursive_chunking() => {
            let bad = invalid_keys(
                &m,
                &[
                    "strategy",
                    "max_chunk_size",
                    "separator_group",
                    "separators",
                ],
            );
            if !bad.is_empty() {
                errs.push(format!(
                    "Recursive chunking settings can not have the following settings: {}",
                    java_list(&bad)
                ));
            }
            let max = chunk_int(&mut m, "max_chunk_size", &mut errs, true);
            if let Some(n) = max {
                bounds(n, "max_chunk_size", 10, Some(300), &mut errs);
            }
            let group = m.remove("separator_group");
            let seps = m.remove("separators");
            let separators = match (group, seps) {
                (Some(_), Some(_)) => {
                    errs.push("Recursive chunking settings can not have both separators and separator_group".into());
                    Value::Null
                }
                (None, Some(Value::Array(a))) if a.is_empty() => {
                    errs.push(
                        "Recursive chunking settings can not have an empty list of separators"
                            .into(),
                    );
                    Value::Null
                }
                (None, Some(Value::Array(a))) => Value::Array(a),
                (None, Some(other)) => {
                    errs.push(type_err("separators", &other, "List"));
                    Value::Null
                }
                (Some(g), None) => {
                    let name = java(&g).to_ascii_lowercase();
                    separator_group(&name).unwrap_or_else(|| {
                        errs.push(format!("[chunking_settings] Invalid value [{}] received. [separator_group] must be one of [plaintext, markdown]", java(&g)));
                        Value::Null
                    })
                }
                (None, None) => separator_group("plaintext").unwrap_or_default(),
            };
            json!({"strategy": "recursive", "max_chunk_size": max, "separators": separators})
        }
        "none" if v.none_chunking() => {
            let bad = invalid_keys(&m, &["strategy"]);
            if !bad.is_empty() {
                errs.push(format!(
                    "None chunking settings can not have the following settings: {}",
                    java_list(&bad)
                ));
            }
            json!({"strategy": "none"})
        }
        _ => {
            // (inferred) `ChunkingStrategy.fromString` message.
            return Err(EsError::illegal_argument(format!(
                "Invalid chunkingStrategy {}",
                java(&m["strategy"])
            )));
        }
    };
    if !errs.is_empty() {
        return Err(EsError::validation(&errs));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Fake Azure OpenAI (docs/reference/elasticsearch-inference-api.md#validation-call): the
// `azureopenai` service of the one fake-provider surface (`providers.rs`), in Azure's words
// ---------------------------------------------------------------------------------------------

/// What the fake Azure answers to ES's validation call: the providers' outcomes, where
/// `UnknownHost` is a `<resource>.openai.azure.com` that does not resolve (a mistyped
/// `resourceName`).
pub type AzureOutcome = ProviderOutcome;

/// The credential ES presented to Azure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AzureCredential {
    /// Sent as header `api-key`.
    ApiKey(String),
    /// Sent as `Authorization: Bearer <entra_id>`.
    EntraId(String),
    /// OAuth2 client credentials (9.4+); ES would exchange these for a token.
    ClientSecret {
        client_id: String,
        tenant_id: String,
        secret: String,
    },
}

impl AzureCredential {
    /// The secret string (api key, entra id token, or client secret).
    pub fn value(&self) -> &str {
        match self {
            AzureCredential::ApiKey(s) | AzureCredential::EntraId(s) => s,
            AzureCredential::ClientSecret { secret, .. } => secret,
        }
    }

    /// The credential of a recorded call: its one secret key, with the OAuth2 fields from the
    /// service settings for a `client_secret`.
    fn of(call: &ProviderCall) -> AzureCredential {
        let text = |m: &Map<String, Value>, k: &str| {
            m.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (kind, secret) = call
            .secrets
            .iter()
            .next()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default().to_string()))
            .unwrap_or_default();
        match kind {
            "api_key" => AzureCredential::ApiKey(secret),
            "entra_id" => AzureCredential::EntraId(secret),
            _ => AzureCredential::ClientSecret {
                client_id: text(&call.settings, "client_id"),
                tenant_id: text(&call.settings, "tenant_id"),
                secret,
            },
        }
    }
}

/// One validation call ES made to the fake Azure.
#[derive(Clone, Debug)]
pub struct AzureCall {
    pub inference_id: String,
    pub task_type: String,
    /// e.g. `https://res.openai.azure.com/openai/deployments/dep/embeddings?api-version=2024-02-01`.
    pub url: String,
    pub credential: AzureCredential,
    /// `dimensions` sent to Azure (only when the user set it).
    pub dimensions: Option<i64>,
    pub user: Option<String>,
    pub headers: Map<String, Value>,
    /// ES validates with the input `"how big"`
    /// (docs/reference/elasticsearch-inference-api.md#validation-call).
    pub input: String,
    pub outcome: AzureOutcome,
}

impl From<ProviderCall> for AzureCall {
    fn from(call: ProviderCall) -> Self {
        let ts = &call.task_settings;
        AzureCall {
            credential: AzureCredential::of(&call),
            user: ts.get("user").and_then(Value::as_str).map(str::to_string),
            headers: ts
                .get("headers")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            input: "how big".into(),
            inference_id: call.inference_id,
            task_type: call.task_type,
            url: call.url,
            dimensions: call.dimensions,
            outcome: call.outcome,
        }
    }
}

/// Handle to the fake Azure OpenAI behind the double: the `azureopenai` service of
/// [`FakeProviders`] (the one surface), in Azure's words. Cheap to clone.
///
/// Decision for a call, first match wins: a global override of the whole surface → this
/// service's override ([`FakeAzure::set_outcome`]) → per-resource-name outcome
/// ([`FakeAzure::set_resource_outcome`], the call's target) → per-deployment outcome (its model)
/// → per-credential outcome (see [`super::ProviderControl`]) → `Accept` if the credential was
/// accepted with [`FakeAzure::accept_credential`] → the unknown-credential outcome (default
/// `Reject401`). Credentials, deployment and resource rules are the surface's, shared with
/// every service; latency, retry delay, dimensions and the unknown-credential outcome are
/// Azure's own.
#[derive(Clone)]
pub struct FakeAzure {
    azure: FakeService,
}

impl FakeAzure {
    pub(crate) fn new(providers: &FakeProviders) -> Self {
        FakeAzure {
            azure: providers.service(AZURE),
        }
    }

    fn surface(&self) -> &FakeProviders {
        self.azure.providers()
    }

    /// Make an `api_key`, `entra_id` token or OAuth2 `client_secret` valid.
    pub fn accept_credential(&self, value: &str) {
        self.surface().accept_credential(value);
    }

    /// Make a credential invalid again (revoked key).
    pub fn revoke_credential(&self, value: &str) {
        self.surface().revoke_credential(value);
    }

    /// Force an outcome for calls made with this credential.
    pub fn set_credential_outcome(&self, value: &str, outcome: AzureOutcome) {
        self.surface().set_credential_outcome(value, Some(outcome));
    }

    /// Force an outcome for calls to this deployment (e.g. `NotFound404`).
    pub fn set_deployment_outcome(&self, deployment_id: &str, outcome: AzureOutcome) {
        self.surface()
            .set_model_outcome(deployment_id, Some(outcome));
    }

    /// Force an outcome for calls to this Azure resource (`resource_name`), e.g. `UnknownHost`
    /// for a name that has no `<name>.openai.azure.com`. `None` removes the rule (the name
    /// resolves again).
    pub fn set_resource_outcome(&self, resource_name: &str, outcome: Option<AzureOutcome>) {
        self.surface().set_target_outcome(resource_name, outcome);
    }

    /// Override for every Azure call (`None` removes it).
    pub fn set_outcome(&self, outcome: Option<AzureOutcome>) {
        self.azure.set_outcome(outcome);
    }

    /// Pause between Elasticsearch's tries of a retryable answer (default zero; the real
    /// cluster waits about 1–5 s, see [`super::ES_PROVIDER_ATTEMPTS`]). Tests use a few
    /// milliseconds.
    pub fn set_retry_delay(&self, d: Duration) {
        self.azure.set_retry_delay(d);
    }

    /// Outcome for credentials never accepted (default `Reject401`; `Accept` = any key works).
    pub fn set_unknown_credential_outcome(&self, outcome: AzureOutcome) {
        self.azure.set_unknown_credential_outcome(outcome);
    }

    /// Length of the vector returned when the user did not set `dimensions` (default 1536).
    pub fn set_native_dimensions(&self, n: i64) {
        self.azure.set_native_dimensions(n);
    }

    /// Always return vectors of this length, even if the user asked for other `dimensions`
    /// (provokes ES's dims-mismatch error,
    /// docs/reference/elasticsearch-inference-api.md#error-table). `None` = honour the request.
    pub fn force_returned_dimensions(&self, n: Option<i64>) {
        self.azure.force_returned_dimensions(n);
    }

    /// How long each validation call takes (bounded by ES's `timeout`,
    /// docs/reference/elasticsearch-inference-api.md#timeout).
    pub fn set_latency(&self, d: Duration) {
        self.azure.set_latency(d);
    }

    /// Validation calls made to Azure so far.
    pub fn calls(&self) -> Vec<AzureCall> {
        self.azure
            .calls()
            .into_iter()
            .map(AzureCall::from)
            .collect()
    }

    /// Forget the Azure calls (other services' stay).
    pub fn clear_calls(&self) {
        self.azure.clear_calls();
    }
}

/// The validation call ES makes for an Azure endpoint: to [`azure_url`], keyed on
/// `resource_name` (target) and `deployment_id` (model), with the one secret it was given.
pub(crate) fn provider_call(
    id: &str,
    tt: TaskType,
    (ss, ts): (&Map<String, Value>, &Map<String, Value>),
    secret: &(String, String),
    requested_dims: Option<i64>,
) -> ProviderCall {
    let text = |k: &str| {
        ss.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut secrets = Map::new();
    secrets.insert(secret.0.clone(), json!(secret.1));
    ProviderCall {
        service: AZURE.into(),
        inference_id: id.to_string(),
        task_type: tt.as_str().to_string(),
        url: azure_url(ss, tt),
        target: text("resource_name"),
        model: text("deployment_id"),
        credential: secret.1.clone(),
        secrets,
        settings: ss.clone(),
        task_settings: ts.clone(),
        dimensions: requested_dims,
        outcome: ProviderOutcome::Accept,
    }
}

/// Azure URL ES would call (`AzureOpenAiModel#buildUri`,
/// docs/reference/elasticsearch-inference-api.md#azure-service-settings).
pub(crate) fn azure_url(ss: &Map<String, Value>, tt: TaskType) -> String {
    let g = |k: &str| {
        ss.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let op = if tt == TaskType::TextEmbedding {
        "embeddings"
    } else {
        "chat/completions"
    };
    format!(
        "https://{}.openai.azure.com/openai/deployments/{}/{op}?api-version={}",
        g("resource_name"),
        g("deployment_id"),
        g("api_version")
    )
}

/// The wrapped 400 for a failed validation call, with Azure's own error texts
/// (docs/reference/elasticsearch-inference-api.md#provider-errors).
pub(crate) fn validation_failure(outcome: AzureOutcome, id: &str, url: &str) -> EsError {
    let azure_msg = match outcome {
        AzureOutcome::Reject401 => "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        AzureOutcome::Forbidden403 => "Access denied due to Virtual Network/Firewall rules.",
        AzureOutcome::NotFound404 => "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
        AzureOutcome::RateLimited429 => "Requests to the OpenAI API have exceeded call rate limit of your current pricing tier. Please retry after 1 second.",
        AzureOutcome::ServerError500 => "The server had an error while processing your request. Sorry about that!",
        AzureOutcome::ServerBusy503 => "The service is temporarily unable to process your request. Please try again later.",
        AzureOutcome::Accept | AzureOutcome::Timeout | AzureOutcome::UnknownHost => "",
    };
    // Azure's 429 names the remaining tokens and requests it read from the answer's headers
    // (docs/reference/elasticsearch-inference-api.md#provider-errors).
    let detail = if outcome == AzureOutcome::RateLimited429 {
        ". Remaining tokens [0]. Remaining requests [0]."
    } else {
        ""
    };
    failed_validation(outcome, id, url, detail, azure_msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> EsVersion {
        EsVersion::parse(s)
    }

    #[test]
    fn missing_fields_are_numbered_together() {
        let mut cfg = json!({"service_settings": {"api_key": "k"}})
            .as_object()
            .unwrap()
            .clone();
        let e = parse_create(v("9.1.0"), TaskType::TextEmbedding, &mut cfg).unwrap_err();
        assert_eq!(e.kind(), "validation_exception");
        assert_eq!(e.reason(), "Validation Failed: 1: [service_settings] does not contain the required setting [resource_name];2: [service_settings] does not contain the required setting [deployment_id];3: [service_settings] does not contain the required setting [api_version];");
    }

    #[test]
    fn chunking_rules() {
        let e = parse_chunking(
            v("9.1.0"),
            Some(json!({"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 2})),
        )
        .unwrap_err();
        assert_eq!(
            e.reason(),
            "Validation Failed: 1: sentence_overlap[2] must be either 0 or 1;"
        );
        let e = parse_chunking(v("9.1.0"), Some(json!({"max_chunk_size": 250}))).unwrap_err();
        assert_eq!(e.kind(), "illegal_argument_exception");
        assert!(parse_chunking(v("8.18.0"), Some(json!({"strategy": "none"}))).is_err());
        assert_eq!(
            parse_chunking(v("9.1.0"), Some(json!({"strategy": "none"}))).unwrap(),
            json!({"strategy": "none"})
        );
        let e = parse_chunking(
            v("9.1.0"),
            Some(json!({"strategy": "word", "max_chunk_size": 100, "overlap": 60})),
        )
        .unwrap_err();
        assert!(
            e.reason()
                .contains("[overlap] must be a less than or equal to [50]"),
            "{}",
            e.reason()
        );
    }

    #[test]
    fn secret_messages_by_version() {
        let mut ss = Map::new();
        let e = parse_secret(v("9.3.0"), &mut ss, false).unwrap_err();
        assert_eq!(e.reason(), "Validation Failed: 1: [secret_settings] must have either the [api_key] or the [entra_id] key set;");
        let mut ss = json!({"api_key": "a", "entra_id": "b"})
            .as_object()
            .unwrap()
            .clone();
        let e = parse_secret(v("9.4.0"), &mut ss, false).unwrap_err();
        assert_eq!(e.reason(), "Validation Failed: 1: [service_settings] must have exactly one of [api_key], [entra_id], or [client_secret] field set, received: [api_key, entra_id];");
    }
}
