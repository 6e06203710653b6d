//! Reading credentials out of Kubernetes Secrets, and fingerprinting them.
//!
//! Values leave this module only as [`SecretString`], whose `Debug` is redacted, so a stray
//! `{:?}` cannot print a key. Errors name the Secret and the key, never the value.

use std::time::Duration;

use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// How long a single Secret read may take inside a reconcile (the kube client has no read
/// timeout of its own).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("Secret {name:?} not found in namespace {namespace:?}")]
    NotFound { namespace: String, name: String },
    #[error("Secret {name:?} has no key {key:?}")]
    KeyMissing { name: String, key: String },
    #[error("Secret {name:?} key {key:?} is empty or not valid UTF-8")]
    KeyInvalid { name: String, key: String },
    #[error("reading Secret {name:?}: {source}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading Secret {name:?} timed out after {READ_TIMEOUT:?}")]
    Timeout { name: String },
}

impl SecretError {
    /// Stable condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SecretError::NotFound { .. } => "SecretNotFound",
            SecretError::KeyMissing { .. } => "SecretKeyMissing",
            SecretError::KeyInvalid { .. } => "SecretKeyInvalid",
            SecretError::Api { source, .. } if is_forbidden(source) => "SecretForbidden",
            SecretError::Api { .. } | SecretError::Timeout { .. } => "KubernetesApiError",
        }
    }

    /// Missing Secrets and keys wait for the Secret watch; API trouble is retried.
    pub fn is_transient(&self) -> bool {
        matches!(self, SecretError::Api { .. } | SecretError::Timeout { .. })
            && self.reason() != "SecretForbidden"
    }
}

fn is_forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_forbidden())
}

/// Secrets of one namespace, read on demand (never cached: only their metadata is watched).
#[derive(Clone)]
pub struct SecretReader {
    api: Api<Secret>,
    namespace: String,
}

impl SecretReader {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        SecretReader {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }

    pub async fn get(&self, name: &str) -> Result<Secret, SecretError> {
        let read = tokio::time::timeout(READ_TIMEOUT, self.api.get_opt(name)).await;
        match read {
            Err(_) => Err(SecretError::Timeout {
                name: name.to_owned(),
            }),
            Ok(Err(source)) => Err(SecretError::Api {
                name: name.to_owned(),
                source,
            }),
            Ok(Ok(None)) => Err(SecretError::NotFound {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
            }),
            Ok(Ok(Some(secret))) => Ok(secret),
        }
    }

    /// One key of one Secret, as text.
    pub async fn key(&self, name: &str, key: &str) -> Result<SecretString, SecretError> {
        let secret = self.get(name).await?;
        text_value(&secret, name, key)
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

/// A keyed, non-reversible fingerprint of a credential, safe to store in status.
///
/// HMAC-SHA256 keyed with the object's uid, over the Elasticsearch field name and the value,
/// truncated to 128 bits. The uid key makes fingerprints differ between objects sharing a key,
/// so equal fingerprints across objects reveal nothing; credentials here are high-entropy
/// service keys, which a truncated HMAC does not expose to guessing.
pub fn fingerprint(object_uid: &str, field: &str, value: &SecretString) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(object_uid.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(field.as_bytes());
    mac.update(&[0]);
    mac.update(value.expose_secret().as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("hmac-sha256:{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(missing.reason(), "SecretKeyMissing");
        assert_eq!(missing.to_string(), r#"Secret "azure" has no key "other""#);
        let empty = text_value(&s, "azure", "apiKey").unwrap_err();
        assert_eq!(empty.reason(), "SecretKeyInvalid");
        let binary = text_value(&secret("apiKey", &[0xff, 0xfe]), "azure", "apiKey").unwrap_err();
        assert_eq!(binary.reason(), "SecretKeyInvalid");
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
        let key = SecretString::from("sk-CANARY-0123456789abcdef");
        let a = fingerprint("uid-1", "api_key", &key);
        assert_eq!(a, fingerprint("uid-1", "api_key", &key));
        assert_ne!(a, fingerprint("uid-2", "api_key", &key));
        assert_ne!(a, fingerprint("uid-1", "entra_id", &key));
        assert_ne!(
            a,
            fingerprint("uid-1", "api_key", &SecretString::from("sk-other"))
        );
        assert!(a.starts_with("hmac-sha256:") && a.len() == "hmac-sha256:".len() + 32);
        assert!(!a.contains("CANARY"));
    }
}
