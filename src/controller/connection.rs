//! Resolving where an object's Elasticsearch is and how to authenticate, and keeping one client
//! (with the cluster's version, read once) per distinct connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use k8s_openapi::api::core::v1::Secret;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use url::Url;

use crate::api::{ElasticsearchConnection, ElasticsearchRef, InferenceEndpoint};
use crate::controller::conditions::Outcome;
use crate::controller::outcomes;
use crate::elasticsearch::{Auth, ClusterInfo, ConnectionConfig, EsClient};
use crate::metrics::{EsOperation, Metrics};
use crate::secrets::{optional_value, text_value, SecretReader};

/// A ready-to-use client and what the cluster said about itself when it was built.
pub struct Connection {
    pub client: EsClient,
    pub info: ClusterInfo,
    /// Cache key; pass back to [`Connections::forget`] after a transport failure.
    pub key: String,
}

/// Settings that shape every connection.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    pub request_timeout: Duration,
    /// Whether `elasticsearchRef.namespace` may name another namespace.
    pub allow_cross_namespace_refs: bool,
    /// URL of an ECK cluster's HTTP service, with `{name}` and `{namespace}` placeholders.
    pub eck_url_template: String,
}

/// Cached connections, keyed by a hash of everything that identifies one (URL, credentials,
/// CA, TLS mode). A rotated Elasticsearch credential gives a new key, hence a new client.
pub struct Connections {
    settings: ConnectionSettings,
    metrics: Arc<Metrics>,
    cache: Mutex<HashMap<String, Arc<OnceCell<Arc<Connection>>>>>,
    /// The connection each object (by uid) last used, so its cleanup can still reach
    /// Elasticsearch after its Secrets are gone (namespace deletion removes them in parallel).
    last_used: Mutex<HashMap<String, Arc<Connection>>>,
}

/// Upper bound on cached clients; past it the cache starts over (stale entries from rotated
/// credentials would otherwise accumulate).
const MAX_CACHED: usize = 256;

impl Connections {
    pub fn new(settings: ConnectionSettings, metrics: Arc<Metrics>) -> Self {
        Connections {
            settings,
            metrics,
            cache: Mutex::new(HashMap::new()),
            last_used: Mutex::new(HashMap::new()),
        }
    }

    /// The connection for `iep`, building it (and reading the cluster's version) when new.
    pub async fn connect(
        &self,
        iep: &InferenceEndpoint,
        namespace: &str,
        kube: &kube::Client,
    ) -> Result<Arc<Connection>, Outcome> {
        let config = self.resolve(iep, namespace, kube).await?;
        let key = cache_key(&config);
        // One slot per connection: concurrent reconciles of objects sharing a cluster wait for
        // a single client build and `GET /` instead of each making their own. A failed build
        // leaves the slot empty, so the next caller tries again.
        let slot = {
            let mut cache = self.lock();
            if cache.len() >= MAX_CACHED && !cache.contains_key(&key) {
                cache.clear();
            }
            cache.entry(key.clone()).or_default().clone()
        };
        slot.get_or_try_init(|| async {
            let client = EsClient::new(config).map_err(|e| outcomes::from_es(&e))?;
            let started = std::time::Instant::now();
            let info = client.info().await;
            self.metrics
                .elasticsearch(EsOperation::Info, &info, started.elapsed());
            let info = info.map_err(|e| outcomes::from_es(&e))?;
            Ok(Arc::new(Connection { client, info, key }))
        })
        .await
        .cloned()
    }

    /// Drop a connection so the next use reconnects and re-reads the version (the cluster may
    /// have been upgraded or rebuilt behind the same URL).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    pub fn remember(&self, uid: &str, connection: &Arc<Connection>) {
        let mut last_used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        match last_used.get(uid) {
            Some(known) if Arc::ptr_eq(known, connection) => {}
            _ => {
                last_used.insert(uid.to_owned(), connection.clone());
            }
        }
    }

    pub fn remembered(&self, uid: &str) -> Option<Arc<Connection>> {
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .cloned()
    }

    pub fn forget_remembered(&self, uid: &str) {
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OnceCell<Arc<Connection>>>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn resolve(
        &self,
        iep: &InferenceEndpoint,
        namespace: &str,
        kube: &kube::Client,
    ) -> Result<ConnectionConfig, Outcome> {
        match (&iep.spec.elasticsearch, &iep.spec.elasticsearch_ref) {
            (Some(direct), None) => {
                let secrets = SecretReader::new(kube.clone(), namespace);
                self.direct(direct, &secrets).await
            }
            (None, Some(eck)) => self.eck(eck, namespace, kube).await,
            _ => Err(Outcome::permanent(
                "InvalidSpec",
                "exactly one of spec.elasticsearchRef or spec.elasticsearch must be set",
            )),
        }
    }

    async fn direct(
        &self,
        spec: &ElasticsearchConnection,
        secrets: &SecretReader,
    ) -> Result<ConnectionConfig, Outcome> {
        let url = Url::parse(&spec.url).map_err(|e| {
            Outcome::permanent(
                "InvalidSpec",
                format!("spec.elasticsearch.url is not a URL: {e}"),
            )
        })?;
        let auth = match &spec.credentials_secret_ref {
            None => Auth::None,
            Some(reference) => {
                let secret = secrets
                    .get(&reference.name)
                    .await
                    .map_err(|e| outcomes::from_secret(&e))?;
                credentials_from(&secret, &reference.name)?
            }
        };
        let ca_pem = match &spec.ca_secret_ref {
            None => None,
            Some(reference) => {
                let secret = secrets
                    .get(&reference.name)
                    .await
                    .map_err(|e| outcomes::from_secret(&e))?;
                let pem = optional_value(&secret, &reference.key).ok_or_else(|| {
                    Outcome::permanent(
                        "SecretKeyMissing",
                        format!("Secret {:?} has no key {:?}", reference.name, reference.key),
                    )
                })?;
                Some(pem.to_vec())
            }
        };
        Ok(ConnectionConfig {
            url,
            auth,
            ca_pem,
            insecure_skip_tls_verify: spec.insecure_skip_tls_verify,
            request_timeout: self.settings.request_timeout,
        })
    }

    /// ECK conventions: service `<name>-es-http`, user `elastic` with the password in
    /// `<name>-es-elastic-user`, CA in `<name>-es-http-certs-public` key `ca.crt`.
    async fn eck(
        &self,
        reference: &ElasticsearchRef,
        namespace: &str,
        kube: &kube::Client,
    ) -> Result<ConnectionConfig, Outcome> {
        let target_namespace = reference.namespace.as_deref().unwrap_or(namespace);
        if target_namespace != namespace && !self.settings.allow_cross_namespace_refs {
            return Err(Outcome::permanent(
                "CrossNamespaceRefDenied",
                format!(
                    "spec.elasticsearchRef points to namespace {target_namespace:?}; the operator is not configured to allow cross-namespace references"
                ),
            ));
        }
        let secrets = SecretReader::new(kube.clone(), target_namespace);
        let name = &reference.name;
        let user_secret = format!("{name}-es-elastic-user");
        let password = secrets
            .key(&user_secret, "elastic")
            .await
            .map_err(|e| outcomes::from_secret(&e))?;
        let ca_secret = format!("{name}-es-http-certs-public");
        let ca = secrets
            .get(&ca_secret)
            .await
            .map_err(|e| outcomes::from_secret(&e))?;
        let ca_pem = optional_value(&ca, "ca.crt").map(<[u8]>::to_vec);
        let url = eck_url(&self.settings.eck_url_template, name, target_namespace);
        let url = Url::parse(&url).map_err(|e| {
            Outcome::permanent("InvalidSpec", format!("cannot build ECK service URL: {e}"))
        })?;
        Ok(ConnectionConfig {
            url,
            auth: Auth::Basic {
                username: "elastic".to_owned(),
                password,
            },
            ca_pem,
            insecure_skip_tls_verify: false,
            request_timeout: self.settings.request_timeout,
        })
    }
}

fn eck_url(template: &str, name: &str, namespace: &str) -> String {
    template
        .replace("{name}", name)
        .replace("{namespace}", namespace)
}

/// Basic credentials (`username` + `password`) or an API key (`apiKey`), never both.
fn credentials_from(secret: &Secret, name: &str) -> Result<Auth, Outcome> {
    let has = |key: &str| optional_value(secret, key).is_some();
    match (has("username") || has("password"), has("apiKey")) {
        (true, false) => {
            let username =
                text_value(secret, name, "username").map_err(|e| outcomes::from_secret(&e))?;
            let password =
                text_value(secret, name, "password").map_err(|e| outcomes::from_secret(&e))?;
            Ok(Auth::Basic {
                username: username.expose_secret().to_owned(),
                password,
            })
        }
        (false, true) => Ok(Auth::ApiKey(
            text_value(secret, name, "apiKey").map_err(|e| outcomes::from_secret(&e))?,
        )),
        (true, true) => Err(Outcome::permanent(
            "InvalidCredentialsSecret",
            format!("Secret {name:?} must hold either username and password or apiKey, not both"),
        )),
        (false, false) => Err(Outcome::permanent(
            "SecretKeyMissing",
            format!("Secret {name:?} must hold keys username and password, or apiKey"),
        )),
    }
}

fn cache_key(config: &ConnectionConfig) -> String {
    let mut hash = Sha256::new();
    hash.update(config.url.as_str());
    hash.update([0]);
    match &config.auth {
        Auth::None => hash.update(b"none"),
        Auth::Basic { username, password } => {
            hash.update(b"basic\0");
            hash.update(username.as_bytes());
            hash.update([0]);
            hash.update(password.expose_secret().as_bytes());
        }
        Auth::ApiKey(key) => {
            hash.update(b"apikey\0");
            hash.update(key.expose_secret().as_bytes());
        }
    }
    hash.update([0]);
    if let Some(ca) = &config.ca_pem {
        hash.update(ca);
    }
    hash.update([u8::from(config.insecure_skip_tls_verify)]);
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use secrecy::SecretString;
    use std::collections::BTreeMap;

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn credentials_are_basic_or_api_key_but_not_both() {
        match credentials_from(
            &secret(&[("username", "elastic"), ("password", "pw")]),
            "es",
        )
        .unwrap()
        {
            Auth::Basic { username, password } => {
                assert_eq!(username, "elastic");
                assert_eq!(password.expose_secret(), "pw");
            }
            _ => panic!("expected basic auth"),
        }
        assert!(matches!(
            credentials_from(&secret(&[("apiKey", "abc")]), "es").unwrap(),
            Auth::ApiKey(_)
        ));
        let both = credentials_from(
            &secret(&[("apiKey", "abc"), ("username", "u"), ("password", "p")]),
            "es",
        );
        assert_eq!(both.unwrap_err().reason, "InvalidCredentialsSecret");
        let neither = credentials_from(&secret(&[("other", "x")]), "es");
        assert_eq!(neither.unwrap_err().reason, "SecretKeyMissing");
        let half = credentials_from(&secret(&[("username", "u")]), "es");
        assert_eq!(half.unwrap_err().reason, "SecretKeyMissing");
    }

    #[test]
    fn eck_service_url_follows_the_template() {
        assert_eq!(
            eck_url(
                crate::controller::DEFAULT_ECK_URL_TEMPLATE,
                "quickstart",
                "elastic"
            ),
            "https://quickstart-es-http.elastic.svc:9200"
        );
        assert_eq!(
            eck_url(
                "https://{name}-es-http.{namespace}.svc.corp.example:9200",
                "q",
                "ns"
            ),
            "https://q-es-http.ns.svc.corp.example:9200"
        );
    }

    #[test]
    fn cache_key_changes_with_credentials_but_does_not_contain_them() {
        let config = |password: &str| ConnectionConfig {
            url: Url::parse("https://es:9200").unwrap(),
            auth: Auth::Basic {
                username: "elastic".into(),
                password: SecretString::from(password),
            },
            ca_pem: None,
            insecure_skip_tls_verify: false,
            request_timeout: Duration::from_secs(30),
        };
        let a = cache_key(&config("first-password"));
        assert_eq!(a, cache_key(&config("first-password")));
        assert_ne!(a, cache_key(&config("second-password")));
        assert!(!a.contains("first-password"));
    }
}
