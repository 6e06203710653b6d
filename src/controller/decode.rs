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

/// kubectl's copy of the applied object (it may hold a key in plain text, docs/security.md).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drop what no reconcile reads before an object enters the cache (and the indexes that
/// watch the stream): `managedFields` (~40 % of an object as stored), kubectl's last-applied
/// copy, labels and owner references. Everything else stays: the spec (desired state, the
/// Secret index), the whole status (the previous status each reconcile compares its new one
/// with, so a trimmed status would be written back on every re-check), and the metadata the
/// reconcile, the finalizer patch (`resourceVersion`), the ownership index
/// (`creationTimestamp`) and the triggers (generation, finalizers, deletion, annotations)
/// read. The record of creates sent (`in_flight::CREATE_INTENT_ANNOTATION`) goes too once the
/// status records an endpoint: ownership is then the record's alone, and nothing reads it.
pub fn trim(object: &mut Decoded) {
    let recorded = object
        .typed()
        .and_then(|iep| iep.status.as_ref())
        .is_some_and(|status| status.inference_id.is_some());
    let meta = object.meta_mut();
    meta.managed_fields = None;
    meta.labels = None;
    meta.owner_references = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if recorded {
            annotations.remove(crate::controller::in_flight::CREATE_INTENT_ANNOTATION);
        }
        if annotations.is_empty() {
            meta.annotations = None;
        }
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
    use crate::controller::identity::Identity;
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

    /// An object as a GitOps tool leaves it: labels, owner, managedFields, kubectl's copy.
    fn as_stored() -> Value {
        let mut value = object(json!({"dimensions": 1536}), None);
        let spec = value["spec"].clone();
        value["metadata"] = json!({
            "name": "big", "namespace": "ns", "uid": "u1", "generation": 3,
            "resourceVersion": "812", "creationTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": ["esinference.io/cleanup"],
            "labels": {"app.kubernetes.io/instance": "search", "app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"esinference.io/adopt": "true",
                            LAST_APPLIED: serde_json::to_string(&json!({"spec": spec})).unwrap()},
            "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                                 "name": "search", "uid": "a1"}],
            "managedFields": [{"manager": "kubectl", "operation": "Apply",
                               "apiVersion": "esinference.io/v1alpha1", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:spec": {"f:taskType": {}, "f:azureOpenAI": {}}}},
                              {"manager": "inference-operator", "operation": "Apply",
                               "subresource": "status", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:status": {"f:inferenceId": {}, "f:cluster": {}}}}]
        });
        value["status"]["conditions"] = json!([{"type": "Ready", "status": "True",
            "reason": "Created", "message": "created inference endpoint big in cluster n (9.1.0)",
            "observedGeneration": 3, "lastTransitionTime": "2026-01-01T00:00:01Z"}]);
        value
    }

    #[test]
    fn a_trimmed_object_keeps_what_reconciles_read() {
        let decoded: Decoded = serde_json::from_value(as_stored()).unwrap();
        let mut trimmed = decoded.clone();
        trim(&mut trimmed);
        let (before, after) = (decoded.typed().unwrap(), trimmed.typed().unwrap());
        // The same desired endpoint, Secrets and previous status: the same plan and report.
        assert_eq!(
            crate::controller::desired::desired(after),
            crate::controller::desired::desired(before)
        );
        assert_eq!(
            crate::controller::secret_index::secrets_of(after),
            crate::controller::secret_index::secrets_of(before)
        );
        assert_eq!(after.spec, before.spec);
        assert_eq!(after.status, before.status);
        let (b, a) = (&before.metadata, &after.metadata);
        assert_eq!(
            Identity::of(&trimmed).unwrap(),
            Identity::of(&decoded).unwrap()
        );
        assert_eq!(
            (&a.generation, &a.finalizers, &a.resource_version),
            (&b.generation, &b.finalizers, &b.resource_version)
        );
        assert_eq!(a.creation_timestamp, b.creation_timestamp);
        assert_eq!(a.deletion_timestamp, b.deletion_timestamp);
        assert_eq!(
            a.annotations.as_ref().unwrap().get("esinference.io/adopt"),
            Some(&"true".to_owned()),
            "the operator's annotations stay"
        );
        // What is gone is what nothing reads.
        assert!(a.managed_fields.is_none() && a.labels.is_none() && a.owner_references.is_none());
        assert!(!a.annotations.as_ref().unwrap().contains_key(LAST_APPLIED));
    }

    #[test]
    fn the_record_of_creates_sent_is_kept_only_until_the_status_records_an_endpoint() {
        let intent = crate::controller::in_flight::CREATE_INTENT_ANNOTATION;
        let mut value = as_stored();
        value["metadata"]["annotations"][intent] = json!("[]");
        let kept = |value: &serde_json::Value| {
            let mut decoded: Decoded = serde_json::from_value(value.clone()).unwrap();
            trim(&mut decoded);
            decoded
                .meta()
                .annotations
                .as_ref()
                .unwrap()
                .contains_key(intent)
        };
        assert!(value["status"]["inferenceId"].is_string());
        assert!(!kept(&value), "recorded: ownership is the status's");
        value["status"]
            .as_object_mut()
            .unwrap()
            .remove("inferenceId");
        assert!(kept(&value), "nothing recorded: the record decides");
    }

    #[test]
    fn a_trimmed_object_is_smaller() {
        let decoded: Decoded = serde_json::from_value(as_stored()).unwrap();
        let mut trimmed = decoded.clone();
        trim(&mut trimmed);
        let size = |d: &Decoded| serde_json::to_vec(d.typed().unwrap()).unwrap().len();
        let (before, after) = (size(&decoded), size(&trimmed));
        assert!(
            after * 2 < before,
            "stored {before} bytes, trimmed {after} bytes"
        );
    }

    #[test]
    fn an_undecodable_object_is_trimmed_too() {
        let mut value = as_stored();
        value["spec"]["azureOpenAI"]["dimensions"] = json!(2147483648_i64);
        let mut decoded: Decoded = serde_json::from_value(value).unwrap();
        trim(&mut decoded);
        let meta = decoded.meta();
        assert!(meta.managed_fields.is_none() && meta.labels.is_none());
        assert_eq!(
            meta.finalizers.as_deref(),
            Some(&["esinference.io/cleanup".to_owned()][..])
        );
    }

    #[test]
    fn an_object_without_readable_metadata_still_fails() {
        assert!(serde_json::from_value::<Decoded>(json!({"metadata": {"name": 5}})).is_err());
    }
}
