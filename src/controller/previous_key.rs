//! Where the previous accepted credential of an endpoint is kept, for the rollback of a rejected
//! rotation on clusters whose `_update` does not try the key (8.17 – 9.3; docs/lifecycle.md,
//! "Health and verified rotation").
//!
//! Always in memory ([`Context::accepted_secrets`]). With `--persist-previous-credential` also in
//! an operator-owned Secret in the object's namespace, named after the object's uid, labelled as
//! the operator's and owned by the InferenceEndpoint (an ownerReference, so Kubernetes' garbage
//! collector deletes it with the object): a restart between a rejected `_update` and its rollback
//! still finds the key to put back. That Secret is written only when the accepted credential
//! changes (compared by fingerprint with the in-memory copy, so a steady state writes nothing)
//! and read only when the in-memory copy is missing (after a restart): at the first accepted
//! reconcile, to learn it already holds the key, and by a rollback. Reads and writes go through
//! [`kube::Client::request_text`] and are decoded here: kube's typed calls log an undecodable
//! answer whole, and this one holds a credential. No value ever reaches a log, an Event, status
//! or a metric; the Secret itself holds it as any credential Secret does (docs/security.md).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::ByteString;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::{ObjectList, Request};
use kube::Resource;
use secrecy::SecretString;
use serde_json::{Map, Value};
use tracing::warn;

use crate::api::InferenceEndpoint;
use crate::controller::identity::Identity;
use crate::controller::{Context, FIELD_MANAGER};
use crate::endpoint::{ServiceSecret, ServiceSecrets};
use crate::secrets::fingerprint;

/// The label every Secret the operator writes carries (the Kubernetes recommended label).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// What the kept Secret holds, as its `app.kubernetes.io/component` label says.
pub const COMPONENT: &str = "previous-credential";
/// The Secret's one data key: the service secrets as JSON (`{field: value | {key: value}}`).
pub const DATA_KEY: &str = "credentials.json";
/// The name of the InferenceEndpoint it belongs to (an annotation: names can exceed a label's
/// 63 characters).
pub const OWNER_ANNOTATION: &str = "esinference.io/inference-endpoint";

/// What this process remembers of one object's credentials.
#[derive(Clone, Debug, Default)]
pub struct Remembered {
    /// The credential last accepted (none yet: not seen accepted since this process started).
    pub accepted: Option<Accepted>,
}

/// The credential last accepted for one object, and whether its kept copy is known to hold it.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub secrets: ServiceSecrets,
    pub fingerprint: String,
    pub persisted: bool,
}

/// The kept Secret's name: fixed per object (its uid, 36 characters), so no two objects share
/// one and a renamed-and-recreated object never finds another's.
pub fn secret_name(uid: &str) -> String {
    format!("{FIELD_MANAGER}-previous-{uid}")
}

/// Keep `secrets` (just accepted by Elasticsearch) as the key to roll back to: in memory, and in
/// the kept Secret when persistence is on and it does not hold them yet.
pub async fn remember(ctx: &Context, who: &Identity, secrets: &ServiceSecrets, print: &str) {
    let persist = ctx.config.persist_previous_credential;
    let known = lock(ctx)
        .get(&who.uid)
        .and_then(|r| r.accepted.as_ref())
        .map(|a| a.fingerprint == print && (a.persisted || !persist));
    if known == Some(true) {
        return;
    }
    set(ctx, who, secrets, print, false);
    if !persist {
        return;
    }
    // After a restart: the kept copy may hold this key already (nothing to write).
    if known.is_none()
        && matches!(read(ctx, who).await, Ok(Some(kept)) if kept.fingerprint == print)
    {
        set(ctx, who, secrets, print, true);
        return;
    }
    match write(ctx, who, secrets, print).await {
        Ok(()) => set(ctx, who, secrets, print, true),
        Err(failure) => warn!(
            secret = secret_name(&who.uid),
            %failure,
            "could not keep the previous credential in its Secret; it is kept in memory only \
             and written again at the next reconcile"
        ),
    }
}

/// The credential to put back after `rejected` (the fingerprint of the refused one) was stored:
/// the in-memory copy, else (persistence on, after a restart) the kept Secret. `Err`: why there
/// is none, for the condition message (names only).
pub async fn previous(
    ctx: &Context,
    who: &Identity,
    rejected: &str,
) -> Result<ServiceSecrets, String> {
    let accepted = lock(ctx)
        .get(&who.uid)
        .and_then(|r| r.accepted.clone())
        .filter(|a| a.fingerprint != rejected);
    if let Some(accepted) = accepted {
        return Ok(accepted.secrets);
    }
    if !ctx.config.persist_previous_credential {
        let why = "the operator does not hold the previous key (it restarted since applying it, \
                   and --persist-previous-credential is off)";
        return Err(why.to_owned());
    }
    let name = secret_name(&who.uid);
    match read(ctx, who).await {
        Ok(Some(kept)) if kept.fingerprint != rejected => Ok(kept.secrets),
        Ok(_) => Err(format!(
            "the operator does not hold the previous key (Secret {name} does not keep one)"
        )),
        Err(failure) => Err(format!(
            "the operator could not read the previous key from Secret {name}: {failure}"
        )),
    }
}

fn lock(ctx: &Context) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Remembered>> {
    ctx.accepted_secrets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn set(ctx: &Context, who: &Identity, secrets: &ServiceSecrets, print: &str, persisted: bool) {
    lock(ctx).entry(who.uid.clone()).or_default().accepted = Some(Accepted {
        secrets: secrets.clone(),
        fingerprint: print.to_owned(),
        persisted,
    });
}

/// The kept Secret, if there is one of this operator's for this object (LIST narrowed by name
/// and label, as every Secret read of the operator: docs/security.md).
async fn read(ctx: &Context, who: &Identity) -> Result<Option<Accepted>, String> {
    let name = secret_name(&who.uid);
    let params = ListParams::default()
        .fields(&format!("metadata.name={name}"))
        .labels(&format!("{MANAGED_BY_LABEL}={FIELD_MANAGER}"));
    let request = Request::new(Secret::url_path(&(), Some(&who.namespace)))
        .list(&params)
        .map_err(|_| "the request could not be built".to_owned())?;
    let text = call(ctx, request).await?;
    let list: ObjectList<Secret> = serde_json::from_str(&text)
        .map_err(|_| "the Kubernetes API's answer could not be decoded".to_owned())?;
    let Some(secret) = list
        .items
        .into_iter()
        .find(|s| s.metadata.name.as_deref() == Some(name.as_str()) && owned_by(s, who))
    else {
        return Ok(None);
    };
    let secrets = secret
        .data
        .as_ref()
        .and_then(|data| data.get(DATA_KEY))
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes.0).ok())
        .and_then(|value| decode(&value))
        .ok_or_else(|| format!("Secret {name} does not hold a readable {DATA_KEY}"))?;
    Ok(Some(Accepted {
        fingerprint: fingerprint(&who.uid, &secrets),
        secrets,
        persisted: true,
    }))
}

/// Server-side apply of the kept Secret (create or update: RBAC `create` and `patch`).
async fn write(
    ctx: &Context,
    who: &Identity,
    secrets: &ServiceSecrets,
    print: &str,
) -> Result<(), String> {
    let secret = kept_secret(who, secrets, print);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let request = Request::new(Secret::url_path(&(), Some(&who.namespace)))
        .patch(&secret_name(&who.uid), &params, &Patch::Apply(&secret))
        .map_err(|_| "the request could not be built".to_owned())?;
    call(ctx, request).await.map(drop)
}

/// One call, time-boxed like every Kubernetes call of a reconcile; the answer as text (never
/// logged), a failure as its HTTP status or kind.
async fn call(ctx: &Context, request: http::Request<Vec<u8>>) -> Result<String, String> {
    match tokio::time::timeout(ctx.config.kube_timeout, ctx.client.request_text(request)).await {
        Err(_) => Err("the Kubernetes API did not answer in time".to_owned()),
        Ok(Err(kube::Error::Api(status))) => {
            Err(format!("the Kubernetes API answered HTTP {}", status.code))
        }
        Ok(Err(_)) => Err("the Kubernetes API could not be reached".to_owned()),
        Ok(Ok(text)) => Ok(text),
    }
}

/// The kept Secret: labelled as the operator's, owned by the InferenceEndpoint (no
/// `blockOwnerDeletion`, which would need `update` on the object's finalizers).
fn kept_secret(who: &Identity, secrets: &ServiceSecrets, print: &str) -> Secret {
    let mut secret = Secret {
        data: Some(BTreeMap::from([(
            DATA_KEY.to_owned(),
            ByteString(encode(secrets).to_string().into_bytes()),
        )])),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    };
    let meta = &mut secret.metadata;
    meta.name = Some(secret_name(&who.uid));
    meta.namespace = Some(who.namespace.clone());
    meta.labels = Some(BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), FIELD_MANAGER.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            COMPONENT.to_owned(),
        ),
    ]));
    meta.annotations = Some(BTreeMap::from([
        (OWNER_ANNOTATION.to_owned(), who.name.clone()),
        // The keyed fingerprint status shows too (never the value).
        (
            "esinference.io/credential-fingerprint".to_owned(),
            print.to_owned(),
        ),
    ]));
    meta.owner_references = Some(vec![owner_reference(who)]);
    secret
}

fn owner_reference(who: &Identity) -> OwnerReference {
    OwnerReference {
        api_version: InferenceEndpoint::api_version(&()).into_owned(),
        kind: InferenceEndpoint::kind(&()).into_owned(),
        name: who.name.clone(),
        uid: who.uid.clone(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

fn owned_by(secret: &Secret, who: &Identity) -> bool {
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == who.uid && o.kind == InferenceEndpoint::kind(&()))
}

/// `{field: "value" | {key: "value"}}`.
fn encode(secrets: &ServiceSecrets) -> Value {
    let fields: Map<String, Value> = secrets
        .iter()
        .map(|s| (s.field.clone(), s.value.expose_json()))
        .collect();
    Value::Object(fields)
}

fn decode(value: &Value) -> Option<ServiceSecrets> {
    let fields = value.as_object()?;
    let secrets = fields
        .iter()
        .map(|(field, value)| match value {
            Value::String(text) => {
                Some(ServiceSecret::new(field, SecretString::from(text.clone())))
            }
            Value::Object(map) => {
                let map = map
                    .iter()
                    .map(|(k, v)| Some((k.clone(), SecretString::from(v.as_str()?.to_owned()))))
                    .collect::<Option<BTreeMap<_, _>>>()?;
                Some(ServiceSecret::map(field, map))
            }
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    (!secrets.is_empty()).then(|| ServiceSecrets::new(secrets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who() -> Identity {
        Identity {
            namespace: "ml".into(),
            name: "emb".into(),
            uid: "6f1c2d3e-0000-4000-8000-00000000a1b2".into(),
        }
    }

    fn texts(secrets: &ServiceSecrets) -> Vec<(String, Value)> {
        secrets
            .iter()
            .map(|s| (s.field.clone(), s.value.expose_json()))
            .collect()
    }

    /// Every fingerprint the operator writes to `status.rejectedCredentialFingerprint` fits the
    /// schema's bound (an API server would refuse the status otherwise).
    #[test]
    fn the_rejected_fingerprint_fits_its_schema_bound() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(InferenceEndpoint::crd()).unwrap();
        let max = crd
            .pointer(
                "/spec/versions/0/schema/openAPIV3Schema/properties/status/properties/\
                 rejectedCredentialFingerprint/maxLength",
            )
            .and_then(Value::as_u64)
            .expect("a maxLength");
        let long = ServiceSecrets::new(vec![
            ServiceSecret::api_key("k".repeat(10_000)),
            ServiceSecret::map(
                "secret_parameters",
                BTreeMap::from([("t".repeat(300), SecretString::from("v".repeat(5_000)))]),
            ),
        ]);
        for secrets in [ServiceSecrets::default(), long] {
            let print = fingerprint(&"u".repeat(300), &secrets);
            assert!(print.len() as u64 <= max, "{print} is longer than {max}");
        }
    }

    #[test]
    fn text_and_map_secrets_round_trip_with_their_fingerprint() {
        let secrets = ServiceSecrets::new(vec![
            ServiceSecret::api_key("k-1"),
            ServiceSecret::map(
                "secret_parameters",
                BTreeMap::from([("token".to_owned(), SecretString::from("t-2"))]),
            ),
        ]);
        let back = decode(&encode(&secrets)).expect("decodes");
        assert_eq!(texts(&back), texts(&secrets));
        assert_eq!(
            fingerprint("uid", &back),
            fingerprint("uid", &secrets),
            "the fingerprint a rollback compares survives the round trip"
        );
        assert!(decode(&json!({})).is_none(), "nothing kept is no key");
        assert!(decode(&json!({"api_key": 1})).is_none());
    }

    #[test]
    fn the_kept_secret_is_labelled_owned_and_named_by_uid() {
        let secret = kept_secret(
            &who(),
            &ServiceSecret::api_key("k-1").into(),
            "hmac-sha256:ab",
        );
        let meta = &secret.metadata;
        assert_eq!(
            meta.name.as_deref(),
            Some("inference-operator-previous-6f1c2d3e-0000-4000-8000-00000000a1b2")
        );
        assert_eq!(
            meta.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
            "inference-operator"
        );
        assert!(
            !meta
                .labels
                .as_ref()
                .unwrap()
                .contains_key(crate::secrets::CREDENTIALS_LABEL),
            "never opted in: no InferenceEndpoint can name it as its credential"
        );
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.name.as_str()),
            ("InferenceEndpoint", who().uid.as_str(), "emb")
        );
        assert_eq!(owner.api_version, "esinference.io/v1alpha1");
        assert!(owned_by(&secret, &who()));
        let other = Identity {
            uid: "another".into(),
            ..who()
        };
        assert!(
            !owned_by(&secret, &other),
            "another object's Secret is not read"
        );
        let data = &secret.data.as_ref().unwrap()[DATA_KEY].0;
        assert_eq!(
            serde_json::from_slice::<Value>(data).unwrap(),
            json!({"api_key": "k-1"})
        );
    }
}
