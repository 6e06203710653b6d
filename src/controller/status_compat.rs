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
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::api::InferenceEndpointStatus;

/// The status fields the previous release's CRD lacks (`tests/fixtures/previous-main/`), as
/// they are named on the wire: the one list both the recognition of a refusal and the stripping
/// work from.
pub const NEWER_FIELDS: &[&str] = &[
    "usedBy",
    "rejectedCredentialFingerprint",
    "targetInferenceId",
];

/// The API server refused an apply because its CRD lacks one of [`NEWER_FIELDS`].
pub fn lacks_newer_field(message: &str) -> bool {
    NEWER_FIELDS
        .iter()
        .any(|f| message.contains(&format!(".status.{f}: field not declared in schema")))
}

/// `status` as the previous CRD can take it; `None` when it has none of the newer fields (so
/// there is nothing to retry without).
pub fn without_newer_fields(status: &InferenceEndpointStatus) -> Option<InferenceEndpointStatus> {
    let mut value = serde_json::to_value(status).ok()?;
    let fields = value.as_object_mut()?;
    let stripped = NEWER_FIELDS
        .iter()
        .filter(|f| fields.remove(**f).is_some())
        .count();
    if stripped == 0 {
        return None;
    }
    serde_json::from_value(value).ok()
}

/// What this operator learnt about the CRD its cluster serves: when a status apply last found
/// it lacking [`NEWER_FIELDS`]; cleared by an apply that carries them and succeeds (the CRD was
/// updated). One per controller (its `Context`), so controllers on different clusters, or the
/// tests' operators in one process, do not share it.
#[derive(Debug, Default)]
pub struct CrdCompat {
    refused_at: Mutex<Option<Instant>>,
}

/// How long a refusal is trusted for the status writes that would change only
/// `targetInferenceId`: once it is older, the next such write is tried again, so an updated CRD
/// gets the field within this time even when nothing else in status changes.
const TRUST_REFUSAL: Duration = Duration::from_secs(300);

/// Whether `status` is worth an apply over `previous` (what the API server holds). On a CRD
/// known to lack the newer fields, a status that differs only in `targetInferenceId` is not:
/// that field is derived from the spec, the server cannot keep it, and applying it anyway would
/// cost a refused and a repeated apply at every reconcile.
impl CrdCompat {
    pub fn worth_writing(
        &self,
        previous: &InferenceEndpointStatus,
        status: &InferenceEndpointStatus,
    ) -> bool {
        worth_writing_at(previous, status, *self.lock(), Instant::now())
    }

    /// An apply carrying `status` succeeded: if it had newer fields, the CRD declares them.
    pub fn applied(&self, status: &InferenceEndpointStatus) {
        if without_newer_fields(status).is_some() {
            *self.lock() = None;
        }
    }

    /// The CRD served by this cluster is older than the operator: remember it, and say once per
    /// process what to do.
    pub fn refused(&self) {
        *self.lock() = Some(Instant::now());
        warn_once();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.refused_at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn worth_writing_at(
    previous: &InferenceEndpointStatus,
    status: &InferenceEndpointStatus,
    refused_at: Option<Instant>,
    now: Instant,
) -> bool {
    if status == previous {
        return false;
    }
    let only_the_target = *previous
        == InferenceEndpointStatus {
            target_inference_id: previous.target_inference_id.clone(),
            ..status.clone()
        };
    let old_crd = refused_at.is_some_and(|at| now.saturating_duration_since(at) < TRUST_REFUSAL);
    !(only_the_target && old_crd)
}

static WARNED: AtomicBool = AtomicBool::new(false);

fn warn_once() {
    if WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    warn!(
        fields = ?NEWER_FIELDS,
        "the InferenceEndpoint CRD served by this cluster is older than the operator and does not \
         declare all of its status fields: status is written without them until the CRD is \
         updated (who uses an endpoint is not shown, the Inference ID column stays empty until \
         the endpoint exists, and a rejected rotated key is tried again at each reconcile). \
         Apply crds/inferenceendpoint.yaml of this release (helm upgrade does it for the chart's \
         CRD); see docs/upgrading.md"
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

    #[test]
    fn every_newer_field_is_stripped() {
        let full = InferenceEndpointStatus {
            target_inference_id: Some("emb".into()),
            rejected_credential_fingerprint: Some("fp".into()),
            inference_id: Some("emb".into()),
            ..InferenceEndpointStatus::default()
        };
        let stripped = without_newer_fields(&full).expect("retried");
        let wire = serde_json::to_value(&stripped).unwrap();
        for field in NEWER_FIELDS {
            assert!(wire.get(field).is_none(), "{field} kept in {wire}");
        }
        assert_eq!(wire["inferenceId"], "emb");
    }

    #[test]
    fn on_an_old_crd_the_target_id_alone_is_not_written() {
        let held = InferenceEndpointStatus {
            observed_generation: Some(1),
            ..InferenceEndpointStatus::default()
        };
        let targeted = InferenceEndpointStatus {
            target_inference_id: Some("emb".into()),
            ..held.clone()
        };
        let advanced = InferenceEndpointStatus {
            observed_generation: Some(2),
            ..targeted.clone()
        };
        let now = Instant::now();
        let refused = Some(now);
        assert!(!worth_writing_at(&held, &held, None, now));
        assert!(
            worth_writing_at(&held, &targeted, None, now),
            "a current CRD gets the id"
        );
        assert!(!worth_writing_at(&held, &targeted, refused, now));
        assert!(
            worth_writing_at(&held, &advanced, refused, now),
            "anything else is written"
        );
        let later = now + TRUST_REFUSAL;
        assert!(
            worth_writing_at(&held, &targeted, refused, later),
            "tried again after a while"
        );
    }

    #[test]
    fn a_successful_apply_with_newer_fields_forgets_the_refusal() {
        let compat = CrdCompat::default();
        compat.refused();
        assert!(compat.lock().is_some());
        compat.applied(&InferenceEndpointStatus::default());
        assert!(compat.lock().is_some(), "nothing newer was applied");
        compat.applied(&InferenceEndpointStatus {
            target_inference_id: Some("emb".into()),
            ..InferenceEndpointStatus::default()
        });
        assert!(compat.lock().is_none());
        assert!(
            CrdCompat::default().lock().is_none(),
            "another controller's CRD is its own"
        );
    }
}
