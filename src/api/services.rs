//! The parts of the CRD schema that depend on the service table (`elasticsearch::service`):
//! CEL rules that refuse, at `kubectl apply`, a secret written inline in `settings`, secret keys
//! a known service does not take, and task types it does not offer; and the schema of the
//! free-form settings maps. The rules never select a snake_case field by name (see
//! [`settings_schema`]). Generated from the table so the API server and the operator
//! (`checks::check_service`) hold one definition. Services missing from the table pass these
//! rules (their secrets are whatever the user puts under `secretSettings`).

use kube::core::cel::{Message, Rule};
use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::Map;

use super::MAX_FREE_FORM_KEYS;
use crate::elasticsearch::service::{known_secret_names, SecretKeys, ServiceProfile, KNOWN};

/// camelCase spellings of the table's secret names: not Elasticsearch keys (it would refuse
/// them as unknown settings), but a key written so must not land in a spec either.
fn camel_case(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Every key refused inline in `settings` (computed once): the table's secret names and their
/// camelCase forms.
pub fn inline_secret_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<String> = known_secret_names()
            .iter()
            .flat_map(|n| [(*n).to_owned(), camel_case(n)])
            .collect();
        names.sort();
        names.dedup();
        names
    })
}

/// `service.settings`: free-form (Elasticsearch's own keys), at most [`MAX_FREE_FORM_KEYS`]
/// keys. Each secret name is declared as a property whose rule always fails, so a secret written
/// inline is refused naming the key. A property-level rule, not `has(self.settings.api_key)` on
/// the parent: Kubernetes gives CEL no access to undeclared fields of a
/// `x-kubernetes-preserve-unknown-fields` object, and the CEL library our API emulator uses
/// escapes `_` in field names where the API server does not
/// (docs/reference/kubernetes-api.md#cel-and-free-form-objects).
pub fn settings_schema(_: &mut SchemaGenerator) -> Schema {
    let mut properties = Map::new();
    for name in inline_secret_names() {
        // `size(self) < 0` never holds: the property exists only to be refused.
        // `FieldValueForbidden`: from 1.35 a failed rule otherwise shows the scalar it refused,
        // here the very secret (docs/reference/kubernetes-api.md#cel-message-format).
        let refuse = serde_json::json!([{
            "rule": "size(self) < 0",
            "message": inline_secret_message(name),
            "reason": "FieldValueForbidden",
        }]);
        let schema = if name == "secret_parameters" || name == "secretParameters" {
            serde_json::json!({
                "type": "object",
                "additionalProperties": {"type": "string"},
                "x-kubernetes-validations": refuse,
            })
        } else {
            serde_json::json!({"type": "string", "x-kubernetes-validations": refuse})
        };
        properties.insert(name.clone(), schema);
    }
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "maxProperties": MAX_FREE_FORM_KEYS,
        "properties": properties,
    })
}

/// Why a secret key in `settings` is refused.
pub fn inline_secret_message(key: &str) -> String {
    format!(
        "{key} is a secret and must not be written in the spec: move it to secretSettings, \
         with a secretKeyRef to a Secret"
    )
}

/// `service.taskSettings`: free-form, at most [`MAX_FREE_FORM_KEYS`] keys.
pub fn task_settings_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "maxProperties": MAX_FREE_FORM_KEYS,
    })
}

fn quoted(s: &str) -> String {
    format!("'{s}'")
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

/// A CEL map literal `{'openai': <value>, ...}` over the table.
fn by_service(value: impl Fn(&ServiceProfile) -> String) -> String {
    let entries: Vec<String> = KNOWN
        .iter()
        .map(|p| format!("{}: {}", quoted(p.service), value(p)))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

/// How many secret keys a service takes: `[min, max]`.
fn secret_count(keys: &SecretKeys) -> (usize, usize) {
    match keys {
        SecretKeys::None => (0, 0),
        SecretKeys::OneOf(_) => (1, 1),
        SecretKeys::AllOf(keys) => (keys.len(), keys.len()),
        SecretKeys::Optional(_) | SecretKeys::Map(_) => (0, 1),
    }
}

/// On the service block: a known service gets exactly the secret keys it takes.
pub fn secret_keys_rule() -> Rule {
    let allowed = by_service(|p| list(p.secrets.names().iter().map(|n| quoted(n))));
    let counts = by_service(|p| {
        let (min, max) = secret_count(&p.secrets);
        format!("[{min}, {max}]")
    });
    let rule = format!(
        "!(self.name in {allowed}) || (has(self.secretSettings) \
         ? (self.secretSettings.all(k, k in {allowed}[self.name]) \
            && size(self.secretSettings) >= {counts}[self.name][0] \
            && size(self.secretSettings) <= {counts}[self.name][1]) \
         : {counts}[self.name][0] == 0)"
    );
    let described = by_service(|p| quoted(&p.secrets.describe()));
    let message = format!("'service ' + self.name + ' takes ' + {described}[self.name]");
    Rule::new(rule)
        .message(Message::Expression(message))
        .field_path(".secretSettings")
}

/// On the service block: map-valued secret keys (`custom`'s `secret_parameters`) come from a
/// whole Secret (`secretRef`), every other secret key of a known service from one key.
pub fn secret_value_kind_rule() -> Rule {
    let maps = by_service(|p| {
        list(
            p.secrets
                .names()
                .iter()
                .filter(|n| p.secrets.is_map(n))
                .map(|n| quoted(n)),
        )
    });
    let rule = format!(
        "!has(self.secretSettings) || !(self.name in {maps}) \
         || self.secretSettings.all(k, has(self.secretSettings[k].secretRef) == (k in {maps}[self.name]))"
    );
    Rule::new(rule)
        .message(SECRET_VALUE_KIND_MESSAGE)
        .field_path(".secretSettings")
}

pub const SECRET_VALUE_KIND_MESSAGE: &str = "a secret setting holding a map (custom's \
     secret_parameters) takes a whole Secret (secretRef); every other one a single key \
     (secretKeyRef)";

/// On the spec: a known service gets only the task types it offers.
pub fn task_type_rule() -> Rule {
    let tasks = by_service(|p| list(p.task_types().map(|t| quoted(t.as_str()))));
    let rule = format!(
        "!has(self.service) || !(self.service.name in {tasks}) \
         || self.taskType in {tasks}[self.service.name]"
    );
    let message = "'service ' + self.service.name + ' does not offer taskType ' + self.taskType";
    Rule::new(rule)
        .message(Message::Expression(message.to_owned()))
        .field_path(".taskType")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_spellings() {
        assert_eq!(camel_case("service_account_json"), "serviceAccountJson");
        assert_eq!(camel_case("api_key"), "apiKey");
        let names = inline_secret_names();
        for n in ["api_key", "apiKey", "secret_parameters", "accessKey"] {
            assert!(names.iter().any(|x| x == n), "{n}");
        }
    }
}
