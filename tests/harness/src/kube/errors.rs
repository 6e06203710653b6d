//! `Status` error bodies and field errors, shaped like the apiserver's
//! (docs/reference/kubernetes-api.md#status-errors).

use serde_json::{json, Map, Value};

/// An API error: HTTP code plus a `Status` body (or plain text for 429 from P&F).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
    /// When set, the response is this plain text instead of JSON.
    pub plain_text: Option<String>,
}

impl ApiError {
    pub fn new(
        code: u16,
        reason: &str,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> Self {
        let mut m = Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), json!(message.into()));
        if !reason.is_empty() {
            m.insert("reason".into(), json!(reason));
        }
        if let Some(d) = details {
            m.insert("details".into(), d);
        }
        m.insert("code".into(), json!(code));
        ApiError {
            code,
            body: Value::Object(m),
            plain_text: None,
        }
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", msg, None)
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        // A non-Status Go error becomes 500 with an empty reason.
        Self::new(500, "", msg, None)
    }

    pub fn internal_error(msg: &str) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {msg}"),
            Some(json!({"causes": [{"message": msg}]})),
        )
    }

    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", gr.qualified(), name),
            Some(gr.details(name)),
        )
    }

    pub fn already_exists(gr: &GroupResource, name: &str, deleting: bool) -> Self {
        let prefix = if deleting {
            "object is being deleted: "
        } else {
            ""
        };
        Self::new(
            409,
            "AlreadyExists",
            format!("{prefix}{} \"{}\" already exists", gr.qualified(), name),
            Some(gr.details(name)),
        )
    }

    pub fn conflict(gr: &GroupResource, name: &str, err: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                gr.qualified(),
                name,
                err
            ),
            Some(gr.details(name)),
        )
    }

    pub fn optimistic_conflict(gr: &GroupResource, name: &str) -> Self {
        Self::conflict(
            gr,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid. `gk` is the qualified kind (`Kind.group`), or the resource for some paths.
    pub fn invalid(gk: &GroupResource, name: &str, errs: &[FieldError]) -> Self {
        let mut seen: Vec<String> = Vec::new();
        let mut causes = Vec::new();
        for e in errs {
            let s = e.to_string();
            if seen.contains(&s) {
                continue;
            }
            seen.push(s);
            causes.push(json!({"reason": e.reason(), "message": e.body(), "field": e.field_str()}));
        }
        let agg = if seen.len() == 1 {
            seen[0].clone()
        } else {
            format!("[{}]", seen.join(", "))
        };
        let mut details = gk.details(name);
        details["causes"] = Value::Array(causes);
        Self::new(
            422,
            "Invalid",
            format!("{} \"{}\" is invalid: {}", gk.qualified(), name, agg),
            Some(details),
        )
    }

    pub fn method_not_allowed(verb: &str, gr: &GroupResource) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "{verb} is not supported on resources of kind \"{}\"",
                gr.qualified()
            ),
            None,
        )
    }

    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
            None,
        )
    }

    pub fn expired(msg: impl Into<String>) -> Self {
        Self::new(410, "Expired", msg, None)
    }

    pub fn too_many_requests() -> Self {
        ApiError {
            code: 429,
            body: Value::Null,
            plain_text: Some("Too many requests, please try again later.\n".to_string()),
        }
    }

    pub fn forbidden(gr: &GroupResource, name: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("{} \"{}\" is forbidden: {}", gr.qualified(), name, why),
            Some(gr.details(name)),
        )
    }
}

/// A group plus a resource (or kind) name, for messages like `plural.group "x"`.
#[derive(Debug, Clone)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
    pub fn details(&self, name: &str) -> Value {
        let mut m = Map::new();
        if !name.is_empty() {
            m.insert("name".into(), json!(name));
        }
        if !self.group.is_empty() {
            m.insert("group".into(), json!(self.group));
        }
        m.insert("kind".into(), json!(self.resource));
        Value::Object(m)
    }
}

/// Field error types (`k8s.io/apimachinery/pkg/util/validation/field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrType {
    Required,
    Invalid,
    NotSupported,
    TooLong,
    TooMany,
    TypeInvalid,
    Forbidden,
    Duplicate,
}

/// How the bad value is shown in an error body.
#[derive(Debug, Clone, PartialEq)]
pub enum BadValue {
    None,
    /// Omitted (1.35 style for objects/arrays in CEL errors): `Invalid value: <detail>`.
    Omit,
    Value(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub etype: ErrType,
    /// Dotted path without a leading dot; empty means `<nil>`.
    pub field: String,
    pub value: BadValue,
    pub detail: String,
}

/// Go-ish rendering of a value in field errors: strings quoted, numbers and bools plain,
/// everything else as JSON.
pub fn fmt_value(v: &Value) -> String {
    match v {
        Value::Number(n) => fmt_number(n),
        _ => serde_json::to_string(v).unwrap_or_default(),
    }
}

/// Render a number like Go's `%v`: integers plain, whole floats without a fraction.
pub fn fmt_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    fmt_f64(f)
}

pub fn fmt_f64(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i128)
    } else {
        format!("{f}")
    }
}

impl FieldError {
    pub fn new(
        etype: ErrType,
        field: impl Into<String>,
        value: BadValue,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            etype,
            field: field.into(),
            value,
            detail: detail.into(),
        }
    }
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(ErrType::Required, field, BadValue::None, detail)
    }
    pub fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(ErrType::Invalid, field, BadValue::Value(value), detail)
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(ErrType::Forbidden, field, BadValue::None, detail)
    }
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self::new(
            ErrType::TooLong,
            field,
            BadValue::None,
            format!("may not be more than {max} bytes"),
        )
    }
    pub fn not_supported(field: impl Into<String>, value: Value, supported: &[Value]) -> Self {
        let list: Vec<String> = supported.iter().map(fmt_value).collect();
        Self::new(
            ErrType::NotSupported,
            field,
            BadValue::Value(value),
            format!("supported values: {}", list.join(", ")),
        )
    }

    pub fn reason(&self) -> &'static str {
        match self.etype {
            ErrType::Required => "FieldValueRequired",
            ErrType::Invalid => "FieldValueInvalid",
            ErrType::NotSupported => "FieldValueNotSupported",
            ErrType::TooLong => "FieldValueTooLong",
            ErrType::TooMany => "FieldValueTooMany",
            ErrType::TypeInvalid => "FieldValueTypeInvalid",
            ErrType::Forbidden => "FieldValueForbidden",
            ErrType::Duplicate => "FieldValueDuplicate",
        }
    }

    fn type_str(&self) -> &'static str {
        match self.etype {
            ErrType::Required => "Required value",
            ErrType::Invalid | ErrType::TypeInvalid => "Invalid value",
            ErrType::NotSupported => "Unsupported value",
            ErrType::TooLong => "Too long",
            ErrType::TooMany => "Too many",
            ErrType::Forbidden => "Forbidden",
            ErrType::Duplicate => "Duplicate value",
        }
    }

    /// The error text without the field (the cause `message`).
    pub fn body(&self) -> String {
        let mut s = match (&self.etype, &self.value) {
            (ErrType::Required | ErrType::Forbidden | ErrType::TooLong, _) => {
                self.type_str().to_string()
            }
            (_, BadValue::Value(v)) => format!("{}: {}", self.type_str(), fmt_value(v)),
            _ => self.type_str().to_string(),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    pub fn field_str(&self) -> String {
        if self.field.is_empty() {
            "<nil>".to_string()
        } else {
            self.field.clone()
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field_str(), self.body())
    }
}
