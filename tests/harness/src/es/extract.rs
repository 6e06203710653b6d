//! Setting extractors shared by every service (ES's `ServiceUtils`: `extractRequiredString`,
//! `extractOptionalPositiveInteger`, `throwIfNotEmptyMap`, `RateLimitSettings.of`, in
//! x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/services/ServiceUtils.java
//! and .../services/settings/RateLimitSettings.java). Each pushes its message into an error list
//! that the caller throws as one numbered `validation_exception`, as ES's `ValidationException` does.

use serde_json::{Map, Value};

use super::errors::EsError;
use super::json::{java, java_map};
use super::version::EsVersion;

// ---------------------------------------------------------------------------------------------
// Extractors (ServiceUtils): errors are collected into a Vec, then thrown as one
// `validation_exception` with numbered messages.
// ---------------------------------------------------------------------------------------------

pub(crate) fn type_err(key: &str, v: &Value, ty: &str) -> String {
    format!(
        "field [{key}] is not of the expected type. The value [{}] cannot be converted to a [{ty}]",
        java(v)
    )
}

pub(crate) fn missing(scope: &str, key: &str) -> String {
    format!("[{scope}] does not contain the required setting [{key}]")
}

pub(crate) fn empty_string(scope: &str, key: &str) -> String {
    format!("[{scope}] Invalid value empty string. [{key}] must be a non-empty string")
}

pub(crate) fn opt_string(
    m: &mut Map<String, Value>,
    key: &str,
    scope: &str,
    errs: &mut Vec<String>,
) -> Option<String> {
    match m.remove(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => {
            errs.push(empty_string(scope, key));
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            errs.push(type_err(key, &other, "String"));
            None
        }
    }
}

pub(crate) fn req_string(
    m: &mut Map<String, Value>,
    key: &str,
    scope: &str,
    errs: &mut Vec<String>,
) -> Option<String> {
    if matches!(m.get(key), None | Some(Value::Null)) {
        m.remove(key);
        errs.push(missing(scope, key));
        return None;
    }
    opt_string(m, key, scope, errs)
}

pub(crate) fn opt_int(
    m: &mut Map<String, Value>,
    key: &str,
    errs: &mut Vec<String>,
    ty: &str,
) -> Option<i64> {
    match m.remove(key) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        Some(other) => {
            errs.push(type_err(key, &other, ty));
            None
        }
    }
}

pub(crate) fn opt_positive(
    m: &mut Map<String, Value>,
    key: &str,
    scope: &str,
    errs: &mut Vec<String>,
    long: bool,
) -> Option<i64> {
    let (ty, word) = if long {
        ("Long", "long")
    } else {
        ("Integer", "integer")
    };
    let n = opt_int(m, key, errs, ty)?;
    if n <= 0 {
        errs.push(format!(
            "[{scope}] Invalid value [{n}]. [{key}] must be a positive {word}"
        ));
        return None;
    }
    Some(n)
}

/// `ServiceUtils.unknownSettingsError` (`throwIfNotEmptyMap`,
/// docs/reference/elasticsearch-inference-api.md#error-table): wording by version, naming the
/// service whose parser was left with the keys.
pub(crate) fn unknown_settings_for(v: EsVersion, service: &str, m: &Map<String, Value>) -> EsError {
    let prefix = if v.new_unknown_settings_wording() {
        "Configuration"
    } else {
        "Model configuration"
    };
    EsError::bad_request(format!(
        "{prefix} contains settings [{}] unknown to the [{service}] service",
        java_map(m)
    ))
}

pub(crate) fn as_object(v: Option<Value>, key: &str) -> Result<Map<String, Value>, EsError> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(EsError::validation(&[type_err(key, &other, "Map")])),
    }
}

type Obj = Map<String, Value>;

/// The two maps every service's `parseRequestConfig` takes first, in this order: the required
/// `service_settings` (`ServiceUtils.removeFromMapOrThrowIfNull`: `Missing required field
/// [service_settings]`), then the optional `task_settings` (`removeFromMapOrDefaultEmpty`)
/// (docs/reference/elasticsearch-inference-api.md#validation-order).
pub(crate) fn take_settings_maps(config: &mut Map<String, Value>) -> Result<(Obj, Obj), EsError> {
    let ss = match config.remove("service_settings") {
        None | Some(Value::Null) => {
            return Err(EsError::bad_request(
                "Missing required field [service_settings]",
            ))
        }
        other => as_object(other, "service_settings")?,
    };
    let ts = as_object(config.remove("task_settings"), "task_settings")?;
    Ok((ss, ts))
}

/// Parses `rate_limit` (`RateLimitSettings.of`): unknown keys inside throw immediately
/// (docs/reference/elasticsearch-inference-api.md#azure-service-settings).
pub(crate) fn parse_rate_limit(
    v: EsVersion,
    service: &str,
    ss: &mut Map<String, Value>,
    errs: &mut Vec<String>,
) -> Result<Option<i64>, EsError> {
    match ss.remove("rate_limit") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(mut rl)) => {
            let rpm = opt_positive(&mut rl, "requests_per_minute", "rate_limit", errs, true);
            if !rl.is_empty() {
                return Err(unknown_settings_for(v, service, &rl));
            }
            Ok(rpm)
        }
        Some(other) => {
            errs.push(type_err("rate_limit", &other, "Map"));
            Ok(None)
        }
    }
}
