//! The operator's own re-check of a spec, for objects the API server never validated against
//! today's schema: stored under an older CRD, or written with admission bypassed.
//!
//! Everything admission refuses and the operator can check without the old object is refused
//! here too, so such an object ends `InvalidSpec` (naming the field) and nothing is read or sent
//! on its behalf. The OpenAPI bounds and patterns are read from the generated schema itself (one
//! source for both sides); the CEL rules that guard the connection are repeated as code, and
//! `tests.rs` holds both sides to the same table of cases.
//! Messages never quote the offending value: a URL with user information holds a password.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::{
    InferenceEndpointSpec, TaskType, DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN,
    MAX_HEADER_NAME_LENGTH,
};
use crate::elasticsearch::ServiceProfile;

/// Largest serialized (compact JSON) spec the operator acts on. The schema's bounds keep every
/// spec it admits below this even in the worst case, where every character is a control character
/// that JSON escapes as `\u00XX` (about 200 KiB; `tests.rs` builds that spec), so only objects
/// that bypassed the schema are refused. It stops an object stored before the bounds existed
/// (say 1 MiB of headers) from being copied into the desired state and sent to Elasticsearch.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;

pub const URL_USERINFO_MESSAGE: &str = "must not contain user information (user:password@): \
     put the credentials in the Secret named by credentialsSecretRef";
pub const SKIP_TLS_VERIFY_WITH_CA_MESSAGE: &str = "insecureSkipTlsVerify cannot be combined \
     with caSecretRef: remove insecureSkipTlsVerify to verify the certificate with that CA";
pub const HEADER_NAME_MESSAGE: &str = "header names must be at most 128 characters";
pub const SETTING_NAME_MESSAGE: &str = "setting names must be at most 64 characters";

/// A rule the spec breaks: the field (`spec.elasticsearch.url`) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecViolation {
    pub field: String,
    pub message: String,
}

impl SpecViolation {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecViolation {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The first rule `spec` breaks, if any.
pub fn check_spec(spec: &InferenceEndpointSpec) -> Result<(), SpecViolation> {
    let value = serde_json::to_value(spec)
        .map_err(|e| SpecViolation::new("spec", format!("cannot be serialized: {e}")))?;
    let size = value.to_string().len();
    if size > MAX_SPEC_BYTES {
        return Err(SpecViolation::new(
            "spec",
            format!(
                "is {size} bytes, more than the {MAX_SPEC_BYTES} the operator accepts; \
                 shorten the largest fields (taskSettings.headers, chunkingSettings.separators)"
            ),
        ));
    }
    check_schema(&spec_schema().schema, &value, "spec")?;
    check_connection(spec)?;
    check_header_names(spec)?;
    check_health(spec)?;
    check_service(spec)
}

/// The CEL bounds of `healthCheck.interval` (the pattern is re-checked with the schema).
fn check_health(spec: &InferenceEndpointSpec) -> Result<(), SpecViolation> {
    match &spec.health_check {
        Some(health) => health
            .interval()
            .map(|_| ())
            .map_err(|message| SpecViolation::new("spec.healthCheck.interval", message)),
        None => Ok(()),
    }
}

/// The service rules admission applies through CEL (`validation`, `services`): one service
/// block, the task types of Azure and of known services, chunking only for embeddings, no
/// secret inline in `settings`, and exactly the secret keys a known service takes.
fn check_service(spec: &InferenceEndpointSpec) -> Result<(), SpecViolation> {
    let task = spec.task_type;
    if spec.chunking_settings.is_some() && !task.supports_chunking() {
        return Err(SpecViolation::new(
            "spec.chunkingSettings",
            super::CHUNKING_TASK_TYPES_MESSAGE,
        ));
    }
    let service = match (&spec.azure_open_ai, &spec.service) {
        (Some(azure), None) => return check_azure(azure, task),
        (None, Some(service)) => service,
        _ => return Err(SpecViolation::new("spec", super::SERVICE_BLOCK_MESSAGE)),
    };
    let inline = super::services::inline_secret_names();
    if let Some(key) = service
        .settings
        .iter()
        .flat_map(|s| s.keys())
        .find(|k| inline.contains(k))
    {
        return Err(SpecViolation::new(
            format!("spec.service.settings.{key}"),
            super::services::inline_secret_message(key),
        ));
    }
    if service
        .secret_settings
        .keys()
        .any(|k| k.chars().count() > 64)
    {
        return Err(SpecViolation::new(
            "spec.service.secretSettings",
            SETTING_NAME_MESSAGE,
        ));
    }
    if service
        .secret_settings
        .values()
        .any(|s| s.secret_key_ref.is_some() == s.secret_ref.is_some())
    {
        return Err(SpecViolation::new(
            "spec.service.secretSettings",
            "exactly one of secretKeyRef or secretRef must be set",
        ));
    }
    let Some(profile) = ServiceProfile::lookup(&service.name) else {
        return Ok(());
    };
    let given: Vec<&str> = service.secret_settings.keys().map(String::as_str).collect();
    profile.secrets.check(&given).map_err(|needs| {
        SpecViolation::new(
            "spec.service.secretSettings",
            format!("service {} takes {needs}", service.name),
        )
    })?;
    let kind_ok = service
        .secret_settings
        .iter()
        .all(|(k, s)| s.secret_ref.is_some() == profile.secrets.is_map(k));
    if !kind_ok {
        return Err(SpecViolation::new(
            "spec.service.secretSettings",
            super::services::SECRET_VALUE_KIND_MESSAGE,
        ));
    }
    if profile.min_version_for(task).is_none() {
        return Err(SpecViolation::new(
            "spec.taskType",
            format!("service {} does not offer taskType {task}", service.name),
        ));
    }
    Ok(())
}

fn check_azure(azure: &super::AzureOpenAi, task: TaskType) -> Result<(), SpecViolation> {
    let credentials = [
        azure.api_key_secret_ref.is_some(),
        azure.entra_id_secret_ref.is_some(),
        azure.oauth2.is_some(),
    ];
    if credentials.iter().filter(|set| **set).count() != 1 {
        return Err(SpecViolation::new(
            "spec.azureOpenAI",
            super::AZURE_ONE_CREDENTIAL_MESSAGE,
        ));
    }
    let offered =
        ServiceProfile::lookup("azureopenai").is_some_and(|p| p.min_version_for(task).is_some());
    if !offered {
        return Err(SpecViolation::new(
            "spec.taskType",
            super::AZURE_TASK_TYPES_MESSAGE,
        ));
    }
    Ok(())
}

fn check_connection(spec: &InferenceEndpointSpec) -> Result<(), SpecViolation> {
    let Some(connection) = &spec.elasticsearch else {
        return Ok(());
    };
    if has_userinfo(&connection.url) {
        return Err(SpecViolation::new(
            "spec.elasticsearch.url",
            URL_USERINFO_MESSAGE,
        ));
    }
    if connection.insecure_skip_tls_verify && connection.ca_secret_ref.is_some() {
        return Err(SpecViolation::new(
            "spec.elasticsearch.insecureSkipTlsVerify",
            SKIP_TLS_VERIFY_WITH_CA_MESSAGE,
        ));
    }
    Ok(())
}

/// The CEL rule `validation::URL_WITHOUT_USERINFO`: an `@` in the authority (between `://` and
/// the first `/`, `?` or `#`).
fn has_userinfo(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if scheme.is_empty() || scheme.contains(['/', '?', '#']) {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.contains('@')
}

fn check_header_names(spec: &InferenceEndpointSpec) -> Result<(), SpecViolation> {
    let headers = spec
        .azure_open_ai
        .as_ref()
        .and_then(|a| a.task_settings.as_ref())
        .and_then(|t| t.headers.as_ref());
    match headers {
        Some(headers)
            if headers
                .keys()
                .any(|name| name.chars().count() > MAX_HEADER_NAME_LENGTH) =>
        {
            Err(SpecViolation::new(
                "spec.azureOpenAI.taskSettings.headers",
                HEADER_NAME_MESSAGE,
            ))
        }
        _ => Ok(()),
    }
}

/// The spec's schema as the CRD serves it, with its patterns compiled once.
struct SpecSchema {
    schema: Value,
    patterns: HashMap<String, Regex>,
}

fn spec_schema() -> &'static SpecSchema {
    static SCHEMA: OnceLock<SpecSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = serde_json::to_value(super::crd()).unwrap_or_default();
        let schema = crd
            .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
            .cloned()
            .unwrap_or_default();
        let mut patterns = HashMap::new();
        collect_patterns(&schema, &mut patterns);
        SpecSchema { schema, patterns }
    })
}

fn collect_patterns(schema: &Value, out: &mut HashMap<String, Regex>) {
    match schema {
        Value::Object(map) => {
            if let Some(pattern) = map.get("pattern").and_then(Value::as_str) {
                // The derive emits only patterns that compile (tests.rs compiles every one).
                if let Ok(regex) = Regex::new(pattern) {
                    out.insert(pattern.to_owned(), regex);
                }
            }
            map.values().for_each(|v| collect_patterns(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_patterns(v, out)),
        _ => {}
    }
}

fn bound(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

/// The OpenAPI value validations of `schema` (lengths, patterns, ranges, item and property
/// counts), recursively. Types, enums and required fields are already guaranteed by decoding
/// into the typed spec.
fn check_schema(schema: &Value, value: &Value, path: &str) -> Result<(), SpecViolation> {
    match value {
        Value::String(s) => check_string(schema, s, path),
        Value::Number(n) => check_number(schema, n, path),
        Value::Array(items) => {
            if bound(schema, "maxItems").is_some_and(|max| items.len() as f64 > max)
                || bound(schema, "minItems").is_some_and(|min| (items.len() as f64) < min)
            {
                return Err(SpecViolation::new(path, count_message(schema, "items")));
            }
            let item_schema = schema.get("items").unwrap_or(&Value::Null);
            for (index, item) in items.iter().enumerate() {
                check_schema(item_schema, item, &format!("{path}[{index}]"))?;
            }
            Ok(())
        }
        Value::Object(map) => {
            if bound(schema, "maxProperties").is_some_and(|max| map.len() as f64 > max) {
                return Err(SpecViolation::new(path, count_message(schema, "entries")));
            }
            let properties = schema.get("properties");
            let additional = schema.get("additionalProperties");
            for (key, child) in map {
                let child_schema = properties
                    .and_then(|p| p.get(key))
                    .or(additional)
                    .unwrap_or(&Value::Null);
                check_schema(child_schema, child, &format!("{path}.{key}"))?;
            }
            Ok(())
        }
        Value::Bool(_) | Value::Null => Ok(()),
    }
}

fn check_string(schema: &Value, s: &str, path: &str) -> Result<(), SpecViolation> {
    // The API server counts characters (runes), not bytes.
    let length = s.chars().count() as f64;
    let too_long = bound(schema, "maxLength").is_some_and(|max| length > max);
    let too_short = bound(schema, "minLength").is_some_and(|min| length < min);
    if too_long || too_short {
        let min = bound(schema, "minLength").unwrap_or(0.0);
        let max = bound(schema, "maxLength").unwrap_or(f64::INFINITY);
        return Err(SpecViolation::new(
            path,
            format!("must be {min} to {max} characters long"),
        ));
    }
    let Some(pattern) = schema.get("pattern").and_then(Value::as_str) else {
        return Ok(());
    };
    match spec_schema().patterns.get(pattern) {
        Some(regex) if !regex.is_match(s) => {
            Err(SpecViolation::new(path, pattern_message(pattern)))
        }
        _ => Ok(()),
    }
}

/// Integers are compared exactly (an f64 rounds above 2^53, so 2^53 + 1 would read as 2^53) and
/// quoted as given.
fn check_number(schema: &Value, n: &serde_json::Number, path: &str) -> Result<(), SpecViolation> {
    let outside = |bound_value: f64, above: bool| match n.as_i64() {
        // Schema bounds are integers well inside ±2^53 here, so `as i64` is exact.
        Some(i) if bound_value.fract() == 0.0 && bound_value.abs() < 9.0e15 => {
            let b = bound_value as i64;
            if above {
                i > b
            } else {
                i < b
            }
        }
        _ => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if above {
                f > bound_value
            } else {
                f < bound_value
            }
        }
    };
    let above = bound(schema, "maximum").is_some_and(|max| outside(max, true));
    let below = bound(schema, "minimum").is_some_and(|min| outside(min, false));
    if above || below {
        let min = bound(schema, "minimum").map_or("-∞".to_owned(), |m| m.to_string());
        let max = bound(schema, "maximum").map_or("∞".to_owned(), |m| m.to_string());
        return Err(SpecViolation::new(
            path,
            format!("{n} is out of range: must be between {min} and {max}"),
        ));
    }
    Ok(())
}

fn count_message(schema: &Value, what: &str) -> String {
    let min = bound(schema, "minItems").unwrap_or(0.0);
    match bound(schema, "maxItems").or(bound(schema, "maxProperties")) {
        Some(max) => format!("must have {min} to {max} {what}"),
        None => format!("must have at least {min} {what}"),
    }
}

fn pattern_message(pattern: &str) -> String {
    if pattern == DNS_SUBDOMAIN_PATTERN {
        "must be a DNS subdomain name: lowercase letters, digits, '-' and '.', starting and \
         ending with a letter or digit"
            .to_owned()
    } else if pattern == DNS_LABEL_PATTERN {
        "must be a DNS label: lowercase letters, digits and '-', starting and ending with a \
         letter or digit"
            .to_owned()
    } else {
        format!("must match the pattern '{pattern}'")
    }
}
