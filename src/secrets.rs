//! Reading credentials out of Kubernetes Secrets, and fingerprinting them.
//!
//! Values leave this module only as [`SecretString`], whose `Debug` is redacted, so a stray
//! `{:?}` cannot print a key. Errors name the Secret and the key, never the value.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::core::{ObjectList, PartialObjectMeta, Request};
use kube::Resource;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::endpoint::{SecretValue, ServiceSecrets};
use crate::reason::{Kind, Reason};

/// How long a single Secret read may take inside a reconcile (the kube client has no read
/// timeout of its own).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The label a Secret carries to say an InferenceEndpoint may use it (`"true"`). Without it the
/// operator does not read the Secret for an object that names it: a user who may create
/// InferenceEndpoints but not read Secrets cannot make the operator send them one.
pub const CREDENTIALS_LABEL: &str = "esinference.io/credentials";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("Secret {name:?} not found in namespace {namespace:?}")]
    NotFound { namespace: String, name: String },
    #[error(
        "Secret {name:?} in namespace {namespace:?} is not labelled for use by InferenceEndpoints, \
         so the operator did not read it; if this object may use it, run: \
         kubectl label secret {name} -n {namespace} {CREDENTIALS_LABEL}=true"
    )]
    NotAllowed { namespace: String, name: String },
    #[error(
        "Secret {name:?} in namespace {namespace:?} does not carry ECK's label \
         {ECK_CLUSTER_LABEL}={cluster}, so it is not a Secret ECK made for Elasticsearch {cluster:?} \
         and the operator did not read it; check spec.elasticsearchRef.name, or that ECK manages \
         that Elasticsearch"
    )]
    NotEcks {
        namespace: String,
        name: String,
        cluster: String,
    },
    #[error("Secret {name:?} has no key {key:?}")]
    KeyMissing { name: String, key: String },
    #[error("Secret {name:?} has no keys")]
    Empty { name: String },
    #[error("Secret {name:?} key {key:?} is empty or not valid UTF-8")]
    KeyInvalid { name: String, key: String },
    #[error(
        "reading Secret {name:?} in namespace {namespace:?} is forbidden to the operator (RBAC)"
    )]
    Forbidden { namespace: String, name: String },
    /// Only the HTTP status or a short class of failure: the API server's `Status` (and a
    /// decoding error, which may quote the answer) never reaches a message.
    #[error("reading Secret {name:?} failed: {failure}")]
    Api { name: String, failure: String },
    #[error("reading Secret {name:?} timed out after {READ_TIMEOUT:?}")]
    Timeout { name: String },
}

impl SecretError {
    /// The condition reason.
    pub fn reason(&self) -> Reason {
        match self {
            SecretError::NotFound { .. } => Reason::SecretNotFound,
            SecretError::NotAllowed { .. } | SecretError::NotEcks { .. } => {
                Reason::SecretNotAllowed
            }
            SecretError::KeyMissing { .. } | SecretError::Empty { .. } => Reason::SecretKeyMissing,
            SecretError::KeyInvalid { .. } => Reason::SecretKeyInvalid,
            SecretError::Forbidden { .. } => Reason::SecretForbidden,
            SecretError::Api { .. } | SecretError::Timeout { .. } => Reason::KubernetesApiError,
        }
    }

    /// Missing, unlabelled or forbidden Secrets wait for the Secret watch (or a change of the
    /// object); API trouble is retried.
    pub fn is_transient(&self) -> bool {
        self.reason().kind() == Kind::Transient
    }
}

/// A short description of a failed API call: the HTTP status, or what kind of failure it was.
fn describe_failure(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("the Kubernetes API answered HTTP {}", status.code),
        kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) => {
            "the Kubernetes API's answer could not be decoded".to_owned()
        }
        _ => "the Kubernetes API could not be reached".to_owned(),
    }
}

/// Whether the Secret is marked for use by InferenceEndpoints.
pub fn is_opted_in(labels: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    labels
        .and_then(|labels| labels.get(CREDENTIALS_LABEL))
        .is_some_and(|value| value == "true")
}

/// Kubernetes names Secrets with DNS subdomains (RFC 1123, at most 253 characters); a name
/// that is not one cannot exist, and must not be spliced into a field selector.
fn is_secret_name(name: &str) -> bool {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    name.len() <= 253 && name.split('.').all(label_ok)
}

/// A valid label value (at most 63 characters of alphanumerics, `-`, `_`, `.`, starting and
/// ending with an alphanumeric; apimachinery `validation.IsValidLabelValue`), so it can be put
/// in a label selector as is.
fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !value.is_empty()
        && value.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The label ECK puts on the Secrets it makes for an `Elasticsearch` (its name as value):
/// `ClusterNameLabelName` in ECK's `pkg/controller/elasticsearch/label/label.go`, set by
/// `NewLabels` on the `-es-elastic-user` and `-es-http-certs-public` Secrets.
pub const ECK_CLUSTER_LABEL: &str = "elasticsearch.k8s.elastic.co/cluster-name";

/// Which kind of read: a Secret the object names (opt-in label required unless turned off), or
/// one of ECK's Secrets behind `elasticsearchRef` (no opt-in label, but ECK's own label for that
/// cluster: a Secret that only has ECK's naming pattern is not ECK's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access<'a> {
    OptIn,
    Eck { cluster: &'a str },
}

/// Secrets of one namespace, read on demand (never cached: only their metadata is watched).
///
/// Contents are read with a LIST narrowed to the one name (`fieldSelector=metadata.name=`) and,
/// for Secrets an object names, to the opt-in label (`labelSelector`): the API server returns an
/// unlabelled Secret's content to nobody, so it never reaches the operator's memory. Only when
/// that LIST is empty does a metadata-only LIST tell "not labelled" from "not found". The
/// apiserver serves a name-only field selector as a single-key read
/// (k8s.io/apiserver/pkg/registry/generic/registry/store.go, `ListPredicate` with
/// `MatchesSingle`), so this costs what a GET costs. Answers are decoded here, not by
/// `kube::Client::request`, which logs the whole body at WARN when decoding fails.
#[derive(Clone)]
pub struct SecretReader {
    client: kube::Client,
    namespace: String,
    require_opt_in: bool,
}

impl SecretReader {
    /// A reader that requires the opt-in label (see [`SecretReader::require_opt_in`]).
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        SecretReader {
            client,
            namespace: namespace.to_owned(),
            require_opt_in: true,
        }
    }

    /// Whether Secrets an object names must carry [`CREDENTIALS_LABEL`]`=true`
    /// (`--require-secret-opt-in`).
    pub fn require_opt_in(mut self, required: bool) -> Self {
        self.require_opt_in = required;
        self
    }

    /// A Secret an InferenceEndpoint names.
    pub async fn get(&self, name: &str) -> Result<Secret, SecretError> {
        self.read(name, Access::OptIn).await
    }

    /// One of ECK's conventional Secrets for Elasticsearch `cluster`, which `elasticsearchRef`
    /// resolves: the user names an Elasticsearch, not a Secret, so the opt-in label is not
    /// required — ECK's own label for that cluster is.
    pub async fn get_eck(&self, name: &str, cluster: &str) -> Result<Secret, SecretError> {
        self.read(name, Access::Eck { cluster }).await
    }

    /// One key of a Secret an InferenceEndpoint names, as text.
    pub async fn key(&self, name: &str, key: &str) -> Result<SecretString, SecretError> {
        let secret = self.get(name).await?;
        text_value(&secret, name, key)
    }

    /// Every key of a Secret an InferenceEndpoint names, each as text (`custom`'s
    /// `secret_parameters`).
    pub async fn all_keys(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, SecretString>, SecretError> {
        let secret = self.get(name).await?;
        text_values(&secret, name)
    }

    async fn read(&self, name: &str, access: Access<'_>) -> Result<Secret, SecretError> {
        if !is_secret_name(name) {
            return Err(self.not_found(name));
        }
        let read = tokio::time::timeout(READ_TIMEOUT, self.read_untimed(name, access)).await;
        read.unwrap_or_else(|_| {
            Err(SecretError::Timeout {
                name: name.to_owned(),
            })
        })
    }

    async fn read_untimed(&self, name: &str, access: Access<'_>) -> Result<Secret, SecretError> {
        let selector = match access {
            Access::OptIn if self.require_opt_in => Some(format!("{CREDENTIALS_LABEL}=true")),
            Access::OptIn => None,
            Access::Eck { cluster } if is_label_value(cluster) => {
                Some(format!("{ECK_CLUSTER_LABEL}={cluster}"))
            }
            // Not a possible label value, so no Secret can carry it: nothing to read.
            Access::Eck { .. } => return Err(self.not_ecks(name, access)),
        };
        let labelled = selector.is_some();
        let mut params = ListParams::default().fields(&format!("metadata.name={name}"));
        if let Some(selector) = &selector {
            params = params.labels(selector);
        }
        let found: ObjectList<Secret> = self.list(name, |r| r.list(&params)).await?;
        if let Some(secret) = found
            .items
            .into_iter()
            .find(|s| s.meta().name.as_deref() == Some(name))
        {
            return Ok(secret);
        }
        if !labelled {
            return Err(self.not_found(name));
        }
        let params = ListParams::default().fields(&format!("metadata.name={name}"));
        let metadata: ObjectList<PartialObjectMeta<Secret>> =
            self.list(name, |r| r.list_metadata(&params)).await?;
        let exists = metadata
            .items
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(name));
        Err(if exists {
            match access {
                Access::OptIn => SecretError::NotAllowed {
                    namespace: self.namespace.clone(),
                    name: name.to_owned(),
                },
                Access::Eck { .. } => self.not_ecks(name, access),
            }
        } else {
            self.not_found(name)
        })
    }

    /// One LIST of this namespace's Secrets, decoded without ever quoting the answer.
    async fn list<T: DeserializeOwned + Clone>(
        &self,
        name: &str,
        build: impl FnOnce(&Request) -> Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<ObjectList<T>, SecretError> {
        let api_error = |failure: String| SecretError::Api {
            name: name.to_owned(),
            failure,
        };
        let request = Request::new(Secret::url_path(&(), Some(&self.namespace)));
        let request =
            build(&request).map_err(|_| api_error("the request could not be built".to_owned()))?;
        let text = self
            .client
            .request_text(request)
            .await
            .map_err(|error| match &error {
                kube::Error::Api(status) if status.is_forbidden() => SecretError::Forbidden {
                    namespace: self.namespace.clone(),
                    name: name.to_owned(),
                },
                _ => api_error(describe_failure(&error)),
            })?;
        serde_json::from_str(&text)
            .map_err(|_| api_error("the Kubernetes API's answer could not be decoded".to_owned()))
    }

    fn not_ecks(&self, name: &str, access: Access<'_>) -> SecretError {
        let cluster = match access {
            Access::Eck { cluster } => cluster,
            Access::OptIn => "",
        };
        SecretError::NotEcks {
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            cluster: cluster.to_owned(),
        }
    }

    fn not_found(&self, name: &str) -> SecretError {
        SecretError::NotFound {
            namespace: self.namespace.clone(),
            name: name.to_owned(),
        }
    }
}

/// The value of `key` in `secret`, as trimmed UTF-8 text.
///
/// Surrounding whitespace is dropped: a Secret made with `echo $KEY | base64` carries a trailing
/// newline that no API key or token legitimately contains.
pub fn text_value(secret: &Secret, name: &str, key: &str) -> Result<SecretString, SecretError> {
    let bytes = optional_value(secret, key).ok_or_else(|| SecretError::KeyMissing {
        name: name.to_owned(),
        key: key.to_owned(),
    })?;
    let text = std::str::from_utf8(bytes)
        .map(str::trim)
        .ok()
        .filter(|text| !text.is_empty())
        .ok_or_else(|| SecretError::KeyInvalid {
            name: name.to_owned(),
            key: key.to_owned(),
        })?;
    Ok(SecretString::from(text))
}

/// Every key of `secret` as trimmed UTF-8 text; a Secret without keys is an error (an empty map
/// would leave the service without its parameters).
pub fn text_values(
    secret: &Secret,
    name: &str,
) -> Result<BTreeMap<String, SecretString>, SecretError> {
    let keys: BTreeSet<&String> = secret
        .data
        .iter()
        .flat_map(|d| d.keys())
        .chain(secret.string_data.iter().flat_map(|d| d.keys()))
        .collect();
    if keys.is_empty() {
        return Err(SecretError::Empty {
            name: name.to_owned(),
        });
    }
    keys.into_iter()
        .map(|key| Ok((key.clone(), text_value(secret, name, key)?)))
        .collect()
}

/// Raw bytes of `key` from `data`, falling back to `stringData` (which the API server merges
/// into `data` on write, but test fixtures and dry runs may still carry).
pub fn optional_value<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|bytes| bytes.0.as_slice())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|data| data.get(key))
                .map(String::as_bytes)
        })
}

/// A keyed, non-reversible fingerprint of an endpoint's secrets, safe to store in status.
///
/// HMAC-SHA256 keyed with the object's uid, over each Elasticsearch field name and its value
/// (a map's keys and values in order), truncated to 128 bits. The uid key makes fingerprints
/// differ between objects sharing a key, so equal fingerprints across objects reveal nothing;
/// credentials here are high-entropy service keys, which a truncated HMAC does not expose to
/// guessing. One text secret hashes exactly as the single-credential fingerprint of earlier
/// versions did (`field`, NUL, value), so an upgrade does not see a rotation.
pub fn fingerprint(object_uid: &str, secrets: &ServiceSecrets) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(object_uid.as_bytes())
        .expect("HMAC accepts keys of any length");
    for (i, secret) in secrets.iter().enumerate() {
        if i > 0 {
            mac.update(&[0]);
        }
        mac.update(secret.field.as_bytes());
        mac.update(&[0]);
        match &secret.value {
            SecretValue::Text(value) => mac.update(value.expose_secret().as_bytes()),
            SecretValue::Map(map) => {
                for (key, value) in map {
                    mac.update(&[1]);
                    mac.update(key.as_bytes());
                    mac.update(&[0]);
                    mac.update(value.expose_secret().as_bytes());
                }
            }
        }
    }
    let digest = mac.finalize().into_bytes();
    format!("hmac-sha256:{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::ServiceSecret;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(key: &str, value: &[u8]) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(value.to_vec()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn reads_and_trims_text_values() {
        let value = text_value(&secret("apiKey", b"abc123\n"), "azure", "apiKey").unwrap();
        assert_eq!(value.expose_secret(), "abc123");
    }

    #[test]
    fn missing_empty_and_binary_keys_are_named_errors_without_values() {
        let s = secret("apiKey", b"  \n");
        let missing = text_value(&s, "azure", "other").unwrap_err();
        assert_eq!(missing.reason().as_str(), "SecretKeyMissing");
        assert_eq!(missing.to_string(), r#"Secret "azure" has no key "other""#);
        let empty = text_value(&s, "azure", "apiKey").unwrap_err();
        assert_eq!(empty.reason().as_str(), "SecretKeyInvalid");
        let binary = text_value(&secret("apiKey", &[0xff, 0xfe]), "azure", "apiKey").unwrap_err();
        assert_eq!(binary.reason().as_str(), "SecretKeyInvalid");
        assert!(!missing.is_transient() && !empty.is_transient());
    }

    #[test]
    fn string_data_is_honoured() {
        let s = Secret {
            string_data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
            ..Default::default()
        };
        assert_eq!(text_value(&s, "n", "k").unwrap().expose_secret(), "v");
    }

    #[test]
    fn fingerprints_are_stable_keyed_and_do_not_contain_the_value() {
        let one = |field: &str, value: &str| {
            ServiceSecrets::from(ServiceSecret::new(field, SecretString::from(value)))
        };
        let key = "sk-CANARY-0123456789abcdef";
        let a = fingerprint("uid-1", &one("api_key", key));
        assert_eq!(a, fingerprint("uid-1", &one("api_key", key)));
        assert_ne!(a, fingerprint("uid-2", &one("api_key", key)));
        assert_ne!(a, fingerprint("uid-1", &one("entra_id", key)));
        assert_ne!(a, fingerprint("uid-1", &one("api_key", "sk-other")));
        assert!(a.starts_with("hmac-sha256:") && a.len() == "hmac-sha256:".len() + 32);
        assert!(!a.contains("CANARY"));

        // The single-credential fingerprint of earlier versions: HMAC(uid; field NUL value).
        let mut mac = Hmac::<Sha256>::new_from_slice(b"uid-1").unwrap();
        mac.update(b"api_key\0sk-CANARY-0123456789abcdef");
        let old = format!(
            "hmac-sha256:{}",
            hex::encode(&mac.finalize().into_bytes()[..16])
        );
        assert_eq!(a, old, "an upgrade must not look like a rotation");
    }

    #[test]
    fn fingerprints_cover_every_secret_and_map_entry() {
        let pair = |access: &str, secret: &str| {
            ServiceSecrets::new(vec![
                ServiceSecret::new("access_key", SecretString::from(access)),
                ServiceSecret::new("secret_key", SecretString::from(secret)),
            ])
        };
        let a = fingerprint("u", &pair("AKIA1", "s1"));
        assert_ne!(a, fingerprint("u", &pair("AKIA1", "s2")));
        assert_ne!(a, fingerprint("u", &pair("AKIA2", "s1")));
        let map = |v: &str| {
            ServiceSecrets::from(ServiceSecret::map(
                "secret_parameters",
                BTreeMap::from([
                    ("token".to_owned(), SecretString::from(v)),
                    ("user".to_owned(), SecretString::from("u")),
                ]),
            ))
        };
        assert_ne!(fingerprint("u", &map("t1")), fingerprint("u", &map("t2")));
        assert_eq!(fingerprint("u", &map("t1")), fingerprint("u", &map("t1")));
    }

    #[test]
    fn whole_secrets_read_every_key_as_text() {
        let mut s = secret("token", b"abc\n");
        s.string_data = Some(BTreeMap::from([("user".to_owned(), "me".to_owned())]));
        let all = text_values(&s, "custom").unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["token", "user"]);
        assert_eq!(all["token"].expose_secret(), "abc");
        let err = text_values(&Secret::default(), "custom").unwrap_err();
        assert_eq!(err.reason(), Reason::SecretKeyMissing);
        assert_eq!(err.to_string(), "Secret \"custom\" has no keys");
        let err = text_values(&secret("bin", &[0xff]), "custom").unwrap_err();
        assert!(err.to_string().contains("\"bin\""), "{err}");
    }

    #[test]
    fn only_the_exact_label_value_opts_in() {
        let labels =
            |value: &str| BTreeMap::from([(CREDENTIALS_LABEL.to_owned(), value.to_owned())]);
        assert!(is_opted_in(Some(&labels("true"))));
        for value in ["True", "yes", "", "false"] {
            assert!(!is_opted_in(Some(&labels(value))), "{value}");
        }
        assert!(!is_opted_in(None));
        assert!(!is_opted_in(Some(&BTreeMap::new())));
    }

    #[test]
    fn names_that_cannot_be_secrets_are_never_put_in_a_selector() {
        for name in ["azure", "es-creds.v2", "a1"] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "",
            "Azure",
            "a,metadata.name!=b",
            "x=y",
            "-a",
            "a-",
            "a..b",
            "azure#frag",
            "?limit=1",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
        assert!(!is_secret_name(&"a".repeat(254)));
    }

    #[test]
    fn failures_name_the_secret_and_what_is_missing_only() {
        let not_allowed = SecretError::NotAllowed {
            namespace: "team-a".into(),
            name: "azure".into(),
        };
        assert_eq!(not_allowed.reason().as_str(), "SecretNotAllowed");
        assert!(!not_allowed.is_transient());
        assert!(not_allowed
            .to_string()
            .ends_with("kubectl label secret azure -n team-a esinference.io/credentials=true"));
        let forbidden = SecretError::Forbidden {
            namespace: "team-a".into(),
            name: "azure".into(),
        };
        assert_eq!(forbidden.reason().as_str(), "SecretForbidden");
        assert!(!forbidden.is_transient());
        let status = kube::core::Status::failure(
            "secrets \"azure\" is forbidden: User \"x\"",
            "InternalError",
        )
        .with_code(500);
        let api = SecretError::Api {
            name: "azure".into(),
            failure: describe_failure(&kube::Error::Api(status.boxed())),
        };
        assert_eq!(
            api.to_string(),
            r#"reading Secret "azure" failed: the Kubernetes API answered HTTP 500"#
        );
        assert!(api.is_transient());
        assert_eq!(api.reason().as_str(), "KubernetesApiError");
    }
}
