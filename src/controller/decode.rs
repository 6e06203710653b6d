//! InferenceEndpoints decoded one object at a time.
//!
//! kube decodes a LIST response as a whole, so one stored object that does not match the Rust
//! types fails the list, and the watcher retries it for ever: no InitDone, no readiness, nothing
//! reconciled. Such objects exist: the API server does not enforce `format: int32` (only
//! `maximum`, where the schema has one), so `spec.azureOpenAI.dimensions: 2147483648` is stored,
//! and so is anything an older CRD version accepted (it validates on write only).
//!
//! [`Decoded`] is kube's `DeserializeGuard` (kube-core `error_boundary.rs`) with one addition:
//! the error names the field. Serde's derived errors carry no path ("invalid value: integer
//! `2147483648`, expected i32"), so a failed decode is repeated through `serde_path_to_error`;
//! the success path decodes once. The undecodable object keeps its metadata (for the status
//! patch, the Event and the finalizer) and, when that part still decodes, its status (for the
//! ownership it records).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::api::{InferenceEndpoint, InferenceEndpointStatus};
use crate::elasticsearch::error::clean_text;

/// Longest decode error kept (it may quote a value from the spec).
const MAX_ERROR_LEN: usize = 300;

/// An InferenceEndpoint as watched: the typed object, or what is left of one that does not
/// match the types.
#[derive(Clone, Debug)]
pub struct Decoded(pub Result<InferenceEndpoint, Undecodable>);

/// A stored InferenceEndpoint that does not match the types.
#[derive(Clone, Debug)]
pub struct Undecodable {
    /// `field.path: serde's message`, bounded, without control characters.
    pub error: String,
    pub metadata: ObjectMeta,
    /// The status, if that part decodes.
    pub status: Option<InferenceEndpointStatus>,
}

impl<'de> Deserialize<'de> for Decoded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if let Ok(iep) = InferenceEndpoint::deserialize(&value) {
            return Ok(Decoded(Ok(iep)));
        }
        let error = match serde_path_to_error::deserialize::<_, InferenceEndpoint>(&value) {
            Err(e) => describe(&e.path().to_string(), &e.inner().to_string()),
            // Not expected (the same input failed just before); say so rather than guess.
            Ok(_) => "the object could not be decoded".to_owned(),
        };
        // Without readable metadata the object cannot be named at all: fail as kube would.
        let metadata = value
            .get("metadata")
            .map(ObjectMeta::deserialize)
            .transpose()
            .map_err(serde::de::Error::custom)?
            .unwrap_or_default();
        let status = value
            .get("status")
            .and_then(|s| InferenceEndpointStatus::deserialize(s).ok());
        Ok(Decoded(Err(Undecodable {
            error,
            metadata,
            status,
        })))
    }
}

/// `path: message`, cleaned and cut to [`MAX_ERROR_LEN`] characters by the operator's one text
/// cleaner (`clean_text`, which also bounds Elasticsearch's quoted text).
fn describe(path: &str, message: &str) -> String {
    let full = if path.is_empty() || path == "." {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    };
    clean_text(&full, MAX_ERROR_LEN)
}

impl Decoded {
    pub fn typed(&self) -> Option<&InferenceEndpoint> {
        self.0.as_ref().ok()
    }
}

impl Resource for Decoded {
    type DynamicType = ();
    type Scope = <InferenceEndpoint as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        InferenceEndpoint::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        InferenceEndpoint::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        InferenceEndpoint::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        InferenceEndpoint::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        match &self.0 {
            Ok(iep) => &iep.metadata,
            Err(invalid) => &invalid.metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match &mut self.0 {
            Ok(iep) => &mut iep.metadata,
            Err(invalid) => &mut invalid.metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(azure_extra: Value, chunking: Option<Value>) -> Value {
        let mut azure = json!({"resourceName": "r", "deploymentId": "d", "apiVersion": "v",
                               "apiKeySecretRef": {"name": "s", "key": "k"}});
        azure
            .as_object_mut()
            .unwrap()
            .extend(azure_extra.as_object().unwrap().clone());
        let mut spec = json!({"elasticsearch": {"url": "https://es:9200"},
                              "taskType": "text_embedding", "azureOpenAI": azure});
        if let Some(chunking) = chunking {
            spec["chunkingSettings"] = chunking;
        }
        json!({
            "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
            "metadata": {"name": "big", "namespace": "ns", "uid": "u1", "generation": 3},
            "spec": spec,
            "status": {"inferenceId": "big", "cluster": {"uuid": "c1", "name": "n", "version": "9.1.0"}}
        })
    }

    fn undecodable(value: Value) -> Undecodable {
        serde_json::from_value::<Decoded>(value)
            .expect("the guard itself decodes")
            .0
            .expect_err("the object does not match the types")
    }

    #[test]
    fn a_valid_object_decodes_as_usual() {
        let decoded: Decoded =
            serde_json::from_value(object(json!({"dimensions": 1536}), None)).unwrap();
        assert_eq!(
            decoded
                .typed()
                .unwrap()
                .spec
                .azure_open_ai
                .as_ref()
                .unwrap()
                .dimensions,
            Some(1536)
        );
        assert_eq!(decoded.meta().name.as_deref(), Some("big"));
    }

    #[test]
    fn every_integer_out_of_range_names_its_field_and_value() {
        let cases = [
            (
                object(json!({"dimensions": 2147483648_i64}), None),
                "spec.azureOpenAI.dimensions",
                "2147483648",
            ),
            (
                object(json!({"maxInputTokens": 2147483648_i64}), None),
                "spec.azureOpenAI.maxInputTokens",
                "2147483648",
            ),
            (
                object(
                    json!({}),
                    Some(json!({"strategy": "word", "maxChunkSize": 4294967296_i64, "overlap": 1})),
                ),
                "spec.chunkingSettings.maxChunkSize",
                "4294967296",
            ),
            (
                object(
                    json!({"rateLimit": {"requestsPerMinute": 9223372036854775808_u64}}),
                    None,
                ),
                "spec.azureOpenAI.rateLimit.requestsPerMinute",
                "9223372036854775808",
            ),
        ];
        for (value, field, number) in cases {
            let invalid = undecodable(value);
            assert!(
                invalid.error.starts_with(&format!("{field}: ")),
                "{field}: {}",
                invalid.error
            );
            assert!(invalid.error.contains(number), "{}", invalid.error);
            assert_eq!(invalid.metadata.name.as_deref(), Some("big"));
            assert_eq!(invalid.metadata.generation, Some(3));
            assert_eq!(
                invalid.status.and_then(|s| s.inference_id).as_deref(),
                Some("big"),
                "the recorded ownership survives"
            );
        }
    }

    #[test]
    fn the_error_is_bounded_and_printable() {
        let long = format!("\u{1b}[31m{}\nend", "x".repeat(2000));
        let invalid = undecodable(object(json!({"dimensions": long}), None));
        assert!(invalid.error.chars().count() <= MAX_ERROR_LEN + 1);
        assert!(
            !invalid.error.chars().any(char::is_control),
            "{}",
            invalid.error
        );
        assert!(invalid.error.starts_with("spec.azureOpenAI.dimensions: "));
    }

    #[test]
    fn an_object_without_readable_metadata_still_fails() {
        assert!(serde_json::from_value::<Decoded>(json!({"metadata": {"name": 5}})).is_err());
    }
}
