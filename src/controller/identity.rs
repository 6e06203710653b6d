//! The identity of a watched object: namespace, name and uid. The API server gives every stored
//! InferenceEndpoint all three; one without them is refused here, once, as an error, instead of
//! being defaulted to `""` (which would share one backoff counter, one remembered connection
//! and one ownership claim between all such objects).

use kube::Resource;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// An object without a namespace, name or uid.
#[derive(Debug, thiserror::Error)]
#[error(
    "object {name:?} has no {missing}; the API server gives every stored InferenceEndpoint one"
)]
pub struct Unidentified {
    pub name: String,
    pub missing: &'static str,
}

impl Identity {
    pub fn of(object: &impl Resource) -> Result<Self, Unidentified> {
        let meta = object.meta();
        let name = meta.name.clone().unwrap_or_else(|| "(unnamed)".to_owned());
        let missing = |missing| Unidentified {
            name: name.clone(),
            missing,
        };
        Ok(Identity {
            namespace: meta.namespace.clone().ok_or_else(|| missing("namespace"))?,
            uid: meta.uid.clone().ok_or_else(|| missing("uid"))?,
            name: meta.name.clone().ok_or_else(|| missing("name"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::decode::Decoded;

    fn decoded(metadata: serde_json::Value) -> Decoded {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
            "metadata": metadata, "spec": {}
        }))
        .unwrap()
    }

    #[test]
    fn an_object_without_namespace_or_uid_is_refused() {
        let whole = decoded(serde_json::json!({"name": "a", "namespace": "ns", "uid": "u"}));
        assert_eq!(
            Identity::of(&whole).unwrap(),
            Identity {
                namespace: "ns".into(),
                name: "a".into(),
                uid: "u".into()
            }
        );
        let no_uid = Identity::of(&decoded(
            serde_json::json!({"name": "a", "namespace": "ns"}),
        ));
        assert_eq!(no_uid.unwrap_err().missing, "uid");
        let no_namespace = Identity::of(&decoded(serde_json::json!({"name": "a", "uid": "u"})));
        assert_eq!(no_namespace.unwrap_err().missing, "namespace");
    }
}
