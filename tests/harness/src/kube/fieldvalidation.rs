//! Server-side field validation (`?fieldValidation=Strict|Warn|Ignore`, KEP-2885, GA in 1.27):
//! what the apiserver does with unknown and duplicate fields in a write.
//!
//! What the emulator follows (apiserver `pkg/endpoints/handlers/{create,update,patch}.go`,
//! apiextensions-apiserver `pkg/apiserver/customresource_handler.go` `schemaCoercingDecoder`,
//! and the cases of `test/integration/apiserver/field_validation_test.go`; user docs:
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation>):
//! - absent parameter = `Warn` (`handlers/rest.go` `fieldValidation`); other values than
//!   `Ignore`, `Warn`, `Strict` are refused as an invalid `CreateOptions` / `UpdateOptions` /
//!   `PatchOptions` (apimachinery `meta/v1/validation` `ValidateFieldValidation`);
//! - a custom resource's unknown fields are what structural pruning drops, reported as
//!   `unknown field "spec.x"` (metadata first, then the rest in sorted order), after the
//!   duplicate keys of the JSON body (`duplicate field "spec.x"`, in document order);
//! - `Strict` on create / update: 400 BadRequest, `<Kind> in version "<v>" cannot be handled as
//!   a <Kind>: strict decoding error: <errors joined by ", ">` (`transformDecodeError`);
//! - `Strict` on a JSON merge or JSON patch: 422 with an empty kind and name, one cause on field
//!   `patch` whose value is the patched object (`jsonPatcher.applyPatchToCurrentObject`);
//! - `Warn`: the write succeeds (pruned) and each error becomes a `Warning: 299 - "<text>"`
//!   response header (`addStrictDecodingWarnings`, apiserver `pkg/endpoints/handlers/warning`);
//! - `Ignore`: pruned silently;
//! - server-side apply refuses an undeclared field whatever `fieldValidation` says, with a 500
//!   and no reason (apimachinery `util/managedfields/internal/structuredmerge.go`: "failed to
//!   create typed patch object", a plain error turned into 500 by `ErrorToAPIStatus`; see
//!   kubernetes/kubernetes#122480 and #139253). Duplicate keys in an apply YAML body are not
//!   detected by the emulator.
//!
//! Only custom resources with a schema are checked; built-in kinds are decoded leniently.

use super::errors::{ApiError, FieldError, GroupResource};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashSet;

/// The `fieldValidation` directive of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    /// Parse the query parameter; `options_kind` is `CreateOptions`, `UpdateOptions` or
    /// `PatchOptions` for the error.
    pub fn parse(value: Option<&str>, options_kind: &str) -> Result<Self, ApiError> {
        match value.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Strict" => Ok(FieldValidation::Strict),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(ApiError::invalid(
                &GroupResource::new("meta.k8s.io", options_kind),
                "",
                &[FieldError::not_supported(
                    "fieldValidation",
                    json!(other),
                    &[json!(""), json!("Ignore"), json!("Strict"), json!("Warn")],
                )],
            )),
        }
    }
}

/// `strict decoding error: a, b` (apimachinery `runtime.NewStrictDecodingError`).
pub fn strict_message(errors: &[String]) -> String {
    format!("strict decoding error: {}", errors.join(", "))
}

/// `unknown field "p"` for each path.
pub fn unknown(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect()
}

/// A `Warning` header value: `299 - "<text>"` with `\` and `"` escaped (apimachinery
/// `pkg/util/net/http.go` `NewWarningHeader`, RFC 7234 5.5).
pub fn warning_header(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("299 - \"{escaped}\"")
}

/// `duplicate field "path"` for every repeated key in a JSON document, in document order
/// (sigs.k8s.io/json strict decoding). Not JSON: nothing.
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let found = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let walk = Walk {
        path: String::new(),
        found: &found,
    };
    if walk.deserialize(&mut de).is_err() {
        return vec![];
    }
    found
        .into_inner()
        .into_iter()
        .map(|p| format!("duplicate field \"{p}\""))
        .collect()
}

/// Errors in the operations of a JSON patch itself: unknown keys and repeated keys, as
/// `json patch unknown field "[0].foo"` / `json patch duplicate field "[1].path"`
/// (apiserver `handlers/patch.go` strict decoding of the patch).
pub fn json_patch_errors(body: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = duplicate_fields(body)
        .into_iter()
        .map(|d| format!("json patch {d}"))
        .collect();
    let ops: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap_or_default();
    for (i, op) in ops.iter().enumerate() {
        for k in op.as_object().into_iter().flat_map(|m| m.keys()) {
            if !matches!(k.as_str(), "op" | "path" | "value" | "from") {
                out.push(format!("json patch unknown field \"[{i}].{k}\""));
            }
        }
    }
    // per operation, in order
    out.sort_by_key(|e| {
        e.split_once("\"[")
            .and_then(|(_, r)| r.split_once(']'))
            .and_then(|(i, _)| i.parse::<usize>().ok())
    });
    out
}

struct Walk<'a> {
    path: String,
    found: &'a RefCell<Vec<String>>,
}

impl Walk<'_> {
    fn child(&self, seg: &str) -> String {
        if self.path.is_empty() {
            seg.to_string()
        } else {
            format!("{}.{seg}", self.path)
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let walk = Walk {
                path: format!("{}[{i}]", self.path),
                found: self.found,
            };
            if seq.next_element_seed(walk)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            let path = self.child(&k);
            if !seen.insert(k) {
                self.found.borrow_mut().push(path.clone());
            }
            map.next_value_seed(Walk {
                path,
                found: self.found,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_with_their_paths_in_order() {
        let body = br#"{"metadata": {"name": "a", "name": "b"},
            "spec": {"k": 1, "k": 2, "ports": [{"p": 1, "p": 2}]}}"#;
        assert_eq!(
            duplicate_fields(body),
            vec![
                r#"duplicate field "metadata.name""#,
                r#"duplicate field "spec.k""#,
                r#"duplicate field "spec.ports[0].p""#
            ]
        );
        assert!(duplicate_fields(b"not json").is_empty());
    }

    #[test]
    fn json_patch_op_errors() {
        let body = br#"[{"op": "add", "path": "/spec/a", "value": 1, "foo": "bar"},
                         {"op": "add", "path": "/spec/b", "path": "/spec/c", "value": 2}]"#;
        assert_eq!(
            json_patch_errors(body),
            vec![
                r#"json patch unknown field "[0].foo""#,
                r#"json patch duplicate field "[1].path""#
            ]
        );
    }

    #[test]
    fn warning_header_escapes() {
        assert_eq!(
            warning_header(r#"unknown field "spec.x""#),
            r#"299 - "unknown field \"spec.x\"""#
        );
    }

    #[test]
    fn parse_directive() {
        assert_eq!(
            FieldValidation::parse(None, "CreateOptions").unwrap(),
            FieldValidation::Warn
        );
        let e = FieldValidation::parse(Some("strict"), "CreateOptions").unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.body["message"],
            "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"strict\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        );
    }
}
