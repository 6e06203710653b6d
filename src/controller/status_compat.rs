//! Status fields newer than the previous release's CRD, and what to do when the cluster still
//! serves that CRD.
//!
//! Server-side apply refuses a whole status patch carrying a field the served schema does not
//! declare: structured-merge-diff's "field not declared in schema" (apimachinery
//! `util/managedfields/internal/structuredmerge.go`, kubernetes/kubernetes#122480). `helm
//! upgrade` updates the chart's CRD with the operator, but a CRD applied separately (`kubectl
//! apply -f crds/`, GitOps, another release) can lag behind for a while. The rest of status,
//! Ready included, matters more than the new fields: the status is applied again without them,
//! and the log says once what to do (docs/upgrading.md#statususedby-with-the-previous-crd).

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::warn;

use crate::api::InferenceEndpointStatus;

/// The status fields the previous release's CRD lacks (`tests/fixtures/previous-main/`).
pub const NEWER_FIELDS: &[&str] = &["usedBy", "rejectedCredentialFingerprint"];

/// The API server refused an apply because its CRD lacks one of [`NEWER_FIELDS`].
pub fn lacks_newer_field(message: &str) -> bool {
    NEWER_FIELDS
        .iter()
        .any(|f| message.contains(&format!(".status.{f}: field not declared in schema")))
}

/// `status` as the previous CRD can take it; `None` when it has none of the newer fields (so
/// there is nothing to retry without).
pub fn without_newer_fields(status: &InferenceEndpointStatus) -> Option<InferenceEndpointStatus> {
    if status.used_by.is_none() && status.rejected_credential_fingerprint.is_none() {
        return None;
    }
    Some(InferenceEndpointStatus {
        used_by: None,
        rejected_credential_fingerprint: None,
        ..status.clone()
    })
}

static WARNED: AtomicBool = AtomicBool::new(false);

/// Say once per process what to do about a CRD older than the operator.
pub fn warn_once() {
    if WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    warn!(
        fields = ?NEWER_FIELDS,
        "the InferenceEndpoint CRD served by this cluster is older than the operator and does not \
         declare all of its status fields: status is written without them until the CRD is \
         updated (who uses an endpoint is not shown, and a rejected rotated key is tried again \
         at each reconcile). Apply crds/inferenceendpoint.yaml of this release (helm upgrade \
         does it for the chart's CRD); see docs/upgrading.md"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_crd_is_recognised_by_a_field_it_lacks() {
        // The emulator's text (tests/harness/src/kube/store/patching.rs), as the API server
        // prints it.
        for field in NEWER_FIELDS {
            let refusal = format!("failed to create typed patch object (default/emb; esinference.io/v1alpha1, Kind=InferenceEndpoint): .status.{field}: field not declared in schema");
            assert!(lacks_newer_field(&refusal), "{refusal}");
        }
        assert!(!lacks_newer_field(
            "failed to create typed patch object (...): .status.other: field not declared in schema"
        ));
    }

    #[test]
    fn only_a_status_with_newer_fields_is_retried() {
        let plain = InferenceEndpointStatus::default();
        assert_eq!(without_newer_fields(&plain), None);
        let rejected = InferenceEndpointStatus {
            rejected_credential_fingerprint: Some("fp".into()),
            observed_generation: Some(3),
            ..plain
        };
        let stripped = without_newer_fields(&rejected).expect("retried");
        assert_eq!(stripped.rejected_credential_fingerprint, None);
        assert_eq!(stripped.observed_generation, Some(3));
    }
}
