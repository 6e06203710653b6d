//! Which object may manage an endpoint when several name the same one. Pure: works on a
//! snapshot of the controller's store.
//!
//! An endpoint is identified by (cluster, inference id). An object already recorded as managing
//! it (status `inferenceId` and cluster UUID) keeps it. Among objects that have not created
//! anything yet and point at the same Elasticsearch (same URL or same ECK reference), the
//! oldest wins; ties are broken by namespace/name. An owner being deleted keeps its claim until
//! it is gone (its cleanup may still delete the endpoint); a newcomer being deleted has none.

use std::sync::Arc;

use kube::ResourceExt;

use crate::api::InferenceEndpoint;

/// `namespace/name` of another object that manages `inference_id` in cluster `cluster_uuid`
/// (or will, being older and aimed at the same Elasticsearch), if any.
pub fn claimed_by(
    iep: &InferenceEndpoint,
    others: &[Arc<InferenceEndpoint>],
    inference_id: &str,
    cluster_uuid: &str,
) -> Option<String> {
    if owns(iep, inference_id, cluster_uuid) {
        return None;
    }
    others
        .iter()
        .filter(|other| other.uid() != iep.uid())
        .filter(|other| other.inference_id() == inference_id)
        .find(|other| {
            let status = other.status.as_ref();
            let owns = status.and_then(|s| s.inference_id.as_deref()) == Some(inference_id)
                && status
                    .and_then(|s| s.cluster.as_ref())
                    .map(|c| c.uuid.as_str())
                    == Some(cluster_uuid);
            let unclaimed_elder = other.metadata.deletion_timestamp.is_none()
                && status.and_then(|s| s.inference_id.as_ref()).is_none()
                && same_target(iep, other)
                && is_older(other, iep);
            owns || unclaimed_elder
        })
        .map(|other| {
            format!(
                "{}/{}",
                other.namespace().unwrap_or_default(),
                other.name_any()
            )
        })
}

/// Whether status records `iep` as managing `inference_id` in cluster `cluster_uuid`.
fn owns(iep: &InferenceEndpoint, inference_id: &str, cluster_uuid: &str) -> bool {
    let status = iep.status.as_ref();
    status.and_then(|s| s.inference_id.as_deref()) == Some(inference_id)
        && status
            .and_then(|s| s.cluster.as_ref())
            .map(|c| c.uuid.as_str())
            == Some(cluster_uuid)
}

/// Whether two objects address the same Elasticsearch by their specs.
fn same_target(a: &InferenceEndpoint, b: &InferenceEndpoint) -> bool {
    let url = |iep: &InferenceEndpoint| {
        iep.spec
            .elasticsearch
            .as_ref()
            .map(|c| c.url.trim_end_matches('/').to_ascii_lowercase())
    };
    let eck = |iep: &InferenceEndpoint| {
        iep.spec.elasticsearch_ref.as_ref().map(|r| {
            let namespace = r
                .namespace
                .clone()
                .unwrap_or_else(|| iep.namespace().unwrap_or_default());
            (namespace, r.name.clone())
        })
    };
    (url(a).is_some() && url(a) == url(b)) || (eck(a).is_some() && eck(a) == eck(b))
}

fn is_older(a: &InferenceEndpoint, b: &InferenceEndpoint) -> bool {
    let key = |iep: &InferenceEndpoint| {
        (
            iep.metadata.creation_timestamp.clone(),
            iep.namespace().unwrap_or_default(),
            iep.name_any(),
        )
    };
    key(a) < key(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn iep(name: &str, created: &str, url: &str, status: Value) -> Arc<InferenceEndpoint> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
                "metadata": {"name": name, "namespace": "ns", "uid": name, "creationTimestamp": created},
                "spec": {
                    "elasticsearch": {"url": url}, "inferenceId": "shared", "taskType": "completion",
                    "azureOpenAI": {"resourceName": "r", "deploymentId": "d", "apiVersion": "v",
                                    "apiKeySecretRef": {"name": "s", "key": "k"}}
                },
                "status": status
            }))
            .unwrap(),
        )
    }

    #[test]
    fn the_recorded_owner_keeps_the_endpoint() {
        let owner = iep(
            "b-owner",
            "2026-01-02T00:00:00Z",
            "https://es:9200",
            json!({"inferenceId": "shared", "cluster": {"uuid": "c1", "version": "9.1.0"}}),
        );
        let newcomer = iep(
            "a-new",
            "2026-01-01T00:00:00Z",
            "https://es:9200",
            json!({}),
        );
        let all = vec![owner.clone(), newcomer.clone()];
        assert_eq!(
            claimed_by(&newcomer, &all, "shared", "c1").as_deref(),
            Some("ns/b-owner")
        );
        assert_eq!(claimed_by(&owner, &all, "shared", "c1"), None);
        // In another cluster the recorded ownership does not count.
        assert_eq!(claimed_by(&newcomer, &all, "shared", "c2"), None);
    }

    #[test]
    fn among_newcomers_the_oldest_wins() {
        let first = iep(
            "first",
            "2026-01-01T00:00:00Z",
            "https://es:9200/",
            json!({}),
        );
        let second = iep(
            "second",
            "2026-01-02T00:00:00Z",
            "https://ES:9200",
            json!({}),
        );
        let all = vec![first.clone(), second.clone()];
        assert_eq!(
            claimed_by(&second, &all, "shared", "c1").as_deref(),
            Some("ns/first")
        );
        assert_eq!(claimed_by(&first, &all, "shared", "c1"), None);
    }

    #[test]
    fn different_targets_and_deleting_newcomers_do_not_claim() {
        let elsewhere = iep(
            "elsewhere",
            "2026-01-01T00:00:00Z",
            "https://other:9200",
            json!({}),
        );
        let me = iep("me", "2026-01-02T00:00:00Z", "https://es:9200", json!({}));
        assert_eq!(
            claimed_by(&me, &[elsewhere, me.clone()], "shared", "c1"),
            None
        );
        let mut leaving = (*iep(
            "leaving",
            "2026-01-01T00:00:00Z",
            "https://es:9200",
            json!({}),
        ))
        .clone();
        leaving.metadata.deletion_timestamp = me.metadata.creation_timestamp.clone();
        assert_eq!(
            claimed_by(&me, &[Arc::new(leaving), me.clone()], "shared", "c1"),
            None
        );
    }

    #[test]
    fn an_owner_being_deleted_keeps_its_claim_until_gone() {
        let me = iep("me", "2026-01-02T00:00:00Z", "https://es:9200", json!({}));
        let mut owner = (*iep(
            "owner",
            "2026-01-01T00:00:00Z",
            "https://es:9200",
            json!({"inferenceId": "shared", "cluster": {"uuid": "c1", "version": "9.1.0"}}),
        ))
        .clone();
        owner.metadata.deletion_timestamp = me.metadata.creation_timestamp.clone();
        assert_eq!(
            claimed_by(&me, &[Arc::new(owner), me.clone()], "shared", "c1").as_deref(),
            Some("ns/owner")
        );
    }
}
