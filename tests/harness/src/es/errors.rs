//! ES error envelopes (docs/reference/elasticsearch-inference-api.md#error-envelope) and the
//! generic REST-layer errors.

use serde_json::{json, Value};

use super::json::J;

/// One exception in an ES error chain: `type`, `reason` and extra top-level metadata fields.
#[derive(Clone, Debug)]
pub(crate) struct Cause {
    pub(crate) kind: String,
    pub(crate) reason: String,
    pub(crate) extra: Vec<(String, Value)>,
}

impl Cause {
    pub(crate) fn new(kind: &str, reason: impl Into<String>) -> Self {
        Cause {
            kind: kind.into(),
            reason: reason.into(),
            extra: vec![],
        }
    }

    fn fields(&self) -> Vec<(String, J)> {
        let mut f = vec![
            ("type".to_string(), J::s(&self.kind)),
            ("reason".to_string(), J::s(&self.reason)),
        ];
        for (k, v) in &self.extra {
            f.push((k.clone(), J::V(v.clone())));
        }
        f
    }
}

/// An error response the double sends.
#[derive(Clone, Debug)]
pub(crate) struct EsError {
    pub(crate) status: u16,
    pub(crate) body: Box<ErrBody>,
    pub(crate) headers: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub(crate) enum ErrBody {
    /// `{"error":{root_cause,type,reason,caused_by?},"status":N}`
    /// (docs/reference/elasticsearch-inference-api.md#error-envelope).
    Structured {
        top: Cause,
        caused_by: Option<Cause>,
    },
    /// `{"error":"text","status":N}` — ES's RestController errors (no handler / wrong method).
    Plain(String),
}

impl EsError {
    pub(crate) fn new(status: u16, kind: &str, reason: impl Into<String>) -> Self {
        EsError {
            status,
            body: Box::new(ErrBody::Structured {
                top: Cause::new(kind, reason),
                caused_by: None,
            }),
            headers: vec![],
        }
    }

    /// `status_exception` (ElasticsearchStatusException) with an explicit status.
    pub(crate) fn status(status: u16, reason: impl Into<String>) -> Self {
        Self::new(status, "status_exception", reason)
    }

    pub(crate) fn bad_request(reason: impl Into<String>) -> Self {
        Self::status(400, reason)
    }

    /// `validation_exception`: `Validation Failed: 1: a;2: b;`
    /// (docs/reference/elasticsearch-inference-api.md#azure-secrets,
    /// docs/reference/elasticsearch-inference-api.md#error-table).
    pub(crate) fn validation(errors: &[String]) -> Self {
        Self::new(400, "validation_exception", numbered(errors))
    }

    /// `action_request_validation_exception` (request validation, e.g. the id regex:
    /// docs/reference/elasticsearch-inference-api.md#error-table).
    pub(crate) fn action_validation(errors: &[String]) -> Self {
        Self::new(400, "action_request_validation_exception", numbered(errors))
    }

    pub(crate) fn illegal_argument(reason: impl Into<String>) -> Self {
        Self::new(400, "illegal_argument_exception", reason)
    }

    pub(crate) fn parse(reason: impl Into<String>) -> Self {
        Self::new(400, "parse_exception", reason)
    }

    pub(crate) fn not_found(id: &str) -> Self {
        Self::new(
            404,
            "resource_not_found_exception",
            format!("Inference endpoint not found [{id}]"),
        )
    }

    pub(crate) fn wrapped(status: u16, top: Cause, inner: Cause) -> Self {
        EsError {
            status,
            body: Box::new(ErrBody::Structured {
                top,
                caused_by: Some(inner),
            }),
            headers: vec![],
        }
    }

    pub(crate) fn plain(status: u16, text: impl Into<String>) -> Self {
        EsError {
            status,
            body: Box::new(ErrBody::Plain(text.into())),
            headers: vec![],
        }
    }

    pub(crate) fn with_extra(mut self, key: &str, value: Value) -> Self {
        if let ErrBody::Structured { top, .. } = &mut *self.body {
            top.extra.push((key.to_string(), value));
        }
        self
    }

    pub(crate) fn with_header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// The JSON body, keys in ES order.
    pub(crate) fn render(&self) -> J {
        let error = match &*self.body {
            ErrBody::Plain(t) => J::s(t),
            ErrBody::Structured { top, caused_by } => {
                let root = caused_by.as_ref().unwrap_or(top);
                let mut f = vec![("root_cause".to_string(), J::A(vec![J::O(root.fields())]))];
                f.extend(top.fields());
                if let Some(c) = caused_by {
                    f.push(("caused_by".to_string(), J::O(c.fields())));
                }
                J::O(f)
            }
        };
        J::O(vec![
            ("error".to_string(), error),
            ("status".to_string(), J::V(json!(self.status))),
        ])
    }

    /// Top-level `type` (tests/diagnostics).
    #[cfg(test)]
    pub(crate) fn kind(&self) -> &str {
        match &*self.body {
            ErrBody::Structured { top, .. } => &top.kind,
            ErrBody::Plain(_) => "",
        }
    }

    #[cfg(test)]
    pub(crate) fn reason(&self) -> &str {
        match &*self.body {
            ErrBody::Structured { top, .. } => &top.reason,
            ErrBody::Plain(t) => t,
        }
    }
}

/// `Validation Failed: 1: a;2: b;`
pub(crate) fn numbered(errors: &[String]) -> String {
    let mut s = String::from("Validation Failed: ");
    for (i, e) in errors.iter().enumerate() {
        s.push_str(&format!("{}: {};", i + 1, e));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape() {
        let e = EsError::bad_request("boom");
        let s = String::from_utf8(e.render().to_bytes()).unwrap();
        assert_eq!(
            s,
            r#"{"error":{"root_cause":[{"type":"status_exception","reason":"boom"}],"type":"status_exception","reason":"boom"},"status":400}"#
        );
        assert_eq!(
            numbered(&["a".into(), "b".into()]),
            "Validation Failed: 1: a;2: b;"
        );
    }
}
