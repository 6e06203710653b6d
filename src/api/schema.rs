//! Post-processing of the generated CRD schema.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use serde_json::Value;

/// Make the optional fields under `spec` non-nullable: drop `nullable: true` and the `null`
/// entries schemars adds to the enum of an `Option` enum.
///
/// Why: an explicit `null` then means "unset". The API server prunes a null from a field that
/// is not nullable (and has no default) before defaulting and validation (Kubernetes docs,
/// "Defaulting and Nullable", custom-resource-definitions). With `nullable: true` the null is
/// kept, and for an enum it is refused even when the enum lists null: kube-openapi's enum check
/// skips nil entries (`pkg/validation/validate/validator.go`, `basicCommonValidator.Validate`),
/// so `similarity: null` or `separatorGroup: null` could not be applied at all. The Rust types
/// read a missing field and a null alike (`Option::None`), so nothing else changes. `status`
/// is written by the operator only and keeps the generated shape.
pub(super) fn spec_fields_not_nullable(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        let spec = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("spec"));
        if let Some(spec) = spec {
            *spec = without_nullable(spec);
        }
    }
}

fn without_nullable(schema: &JSONSchemaProps) -> JSONSchemaProps {
    let mut value = serde_json::to_value(schema).expect("schema serializes");
    strip(&mut value);
    serde_json::from_value(value).expect("schema deserializes")
}

/// Remove `nullable` and null enum entries from every schema node (property values are nodes;
/// a property literally named `nullable` would be a node, not a flag, and is kept).
fn strip(node: &mut Value) {
    let Value::Object(map) = node else { return };
    if map.get("nullable").is_some_and(Value::is_boolean) {
        map.remove("nullable");
    }
    if let Some(Value::Array(entries)) = map.get_mut("enum") {
        entries.retain(|e| !e.is_null());
    }
    for (key, child) in map.iter_mut() {
        match (key.as_str(), child) {
            ("properties" | "patternProperties" | "definitions", Value::Object(props)) => {
                props.values_mut().for_each(strip)
            }
            ("allOf" | "anyOf" | "oneOf", Value::Array(list)) => list.iter_mut().for_each(strip),
            ("items", Value::Array(list)) => list.iter_mut().for_each(strip),
            ("items" | "additionalProperties" | "not", child @ Value::Object(_)) => strip(child),
            _ => {}
        }
    }
}

/// Join the lines of every description into paragraphs: the derive copies doc comments with
/// their source line breaks, and `kubectl explain` then breaks sentences mid-way. A blank line
/// (paragraph) and a line starting a list item (`- `, `* `) keep their break.
pub(super) fn descriptions_as_paragraphs(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            let mut value = serde_json::to_value(&*schema).expect("schema serializes");
            reflow(&mut value);
            *schema = serde_json::from_value(value).expect("schema deserializes");
        }
    }
}

fn reflow(node: &mut Value) {
    match node {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    Value::String(text) if key == "description" => *text = paragraphs(text),
                    _ => reflow(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(reflow),
        _ => {}
    }
}

fn paragraphs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        out.push_str(line.trim_end());
        let Some(next) = lines.peek() else { break };
        let next = next.trim_start();
        let breaks = line.trim().is_empty()
            || next.is_empty()
            || next.starts_with("- ")
            || next.starts_with("* ");
        out.push(if breaks { '\n' } else { ' ' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_paragraphs_not_source_lines() {
        assert_eq!(
            paragraphs("Desired state: where the cluster is, and what\nhappens on deletion."),
            "Desired state: where the cluster is, and what happens on deletion."
        );
        assert_eq!(
            paragraphs("One.\n\nTwo\nlines.\n- item\n- item"),
            "One.\n\nTwo lines.\n- item\n- item"
        );
        let crd = super::super::crd();
        let text = serde_json::to_string(&crd).unwrap();
        assert!(
            !text.contains("what\\nhappens"),
            "a sentence still breaks at a source line"
        );
    }

    use serde_json::json;

    #[test]
    fn nullable_and_null_enum_entries_go_everywhere_below() {
        let mut v = json!({
            "type": "object", "nullable": true,
            "properties": {
                "mode": {"type": "string", "nullable": true, "enum": ["a", null]},
                "nullable": {"type": "boolean", "nullable": true},
                "list": {"type": "array", "items": {"type": "object", "nullable": true,
                         "properties": {"x": {"type": "integer", "nullable": true}}}},
                "map": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}}
            }
        });
        strip(&mut v);
        assert_eq!(
            v,
            json!({
                "type": "object",
                "properties": {
                    "mode": {"type": "string", "enum": ["a"]},
                    "nullable": {"type": "boolean"},
                    "list": {"type": "array", "items": {"type": "object",
                             "properties": {"x": {"type": "integer"}}}},
                    "map": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            })
        );
    }
}
