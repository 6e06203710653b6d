//! Resolving where an object's Elasticsearch is and how to authenticate, and keeping one client
//! (with the cluster's version, read once) per distinct connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use k8s_openapi::api::core::v1::Secret;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use url::Url;

use crate::api::{ElasticsearchConnection, ElasticsearchRef, InferenceEndpoint};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::Api;

use crate::controller::conditions::{Failure, Reason};
use crate::controller::destination::{self, host_of, DestinationPolicy, Refusal};
use crate::controller::outcomes;
use crate::controller::secret_index::{
    version_of, versions_key, SecretKey, SecretVersions, Version,
};
use crate::controller::snapshot::Listings;
use crate::controller::DEFAULT_ECK_URL_TEMPLATE;
use crate::elasticsearch::{Auth, ClusterInfo, ConnectionConfig, EsClient};
use crate::metrics::{EsOperation, Metrics};
use crate::secrets::{optional_value, text_value, SecretReader};

/// A ready-to-use client and what the cluster said about itself when it was built.
pub struct Connection {
    pub client: EsClient,
    pub info: ClusterInfo,
    /// Cache key; pass back to [`Connections::forget`] after a transport failure.
    pub key: String,
    /// The last `GET _inference/_all` made with this connection's credential: it serves the
    /// re-checks of objects on this connection only ([`crate::controller::snapshot`]).
    pub listing: Listings,
    /// How many objects last used this connection ([`Connections::remember`]).
    users: AtomicUsize,
}

impl Connection {
    /// How many objects last used this connection.
    pub fn users(&self) -> usize {
        self.users.load(Ordering::Relaxed)
    }
}

/// Settings that shape every connection: part of the command line
/// ([`crate::controller::Config`]), where their defaults are written.
#[derive(Clone, Debug, clap::Args)]
pub struct ConnectionSettings {
    /// Timeout of Elasticsearch reads and deletes (creates wait for Elasticsearch's own timeout).
    #[arg(long = "es-request-timeout", env = "INFERENCE_OPERATOR_ES_REQUEST_TIMEOUT", value_name = "ES_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Allow `elasticsearchRef.namespace` to name another namespace (the Elasticsearch must
    /// also consent, with annotation `esinference.io/allowed-namespaces`).
    #[arg(long, env = "INFERENCE_OPERATOR_ALLOW_CROSS_NAMESPACE_REFS")]
    pub allow_cross_namespace_refs: bool,
    /// URL of an ECK cluster's HTTP service (placeholders `{name}`, `{namespace}`); change it
    /// for a non-default cluster domain or when running outside the cluster.
    #[arg(long, env = "INFERENCE_OPERATOR_ECK_URL_TEMPLATE", default_value = DEFAULT_ECK_URL_TEMPLATE)]
    pub eck_url_template: String,
    /// Read a Secret an InferenceEndpoint names only when it carries the label
    /// `esinference.io/credentials=true`; `false` reads any Secret of the object's namespace
    /// (see docs/security.md before turning it off).
    #[arg(long, env = "INFERENCE_OPERATOR_REQUIRE_SECRET_OPT_IN", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_secret_opt_in: bool,
    #[command(flatten)]
    pub destinations: DestinationPolicy,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        crate::controller::defaults()
    }
}

/// Cached connections, keyed by a hash of everything that identifies one (URL, credentials,
/// CA, TLS mode). A rotated Elasticsearch credential gives a new key, hence a new client.
pub struct Connections {
    settings: ConnectionSettings,
    metrics: Arc<Metrics>,
    cache: Mutex<HashMap<String, Arc<Slot<Arc<Connection>>>>>,
    /// The connection each object (by uid) last used, so its cleanup can still reach
    /// Elasticsearch after its Secrets are gone (namespace deletion removes them in parallel).
    last_used: Mutex<HashMap<String, Arc<Connection>>>,
    /// The resourceVersion of every watched Secret ([`Connections::with_versions`]).
    versions: Arc<SecretVersions>,
    /// Connections by what they were resolved from: the object's namespace, its connection
    /// spec and the versions of the Secrets that spec names. A hit needs no Secret read; a
    /// changed Secret is another key (docs/lifecycle.md#batched-re-checks).
    resolved: Mutex<HashMap<u64, Arc<Slot<Arc<Connection>>>>>,
    /// Resolutions in flight while the Secrets' versions are unknown, by namespace and spec.
    unversioned: Mutex<HashMap<u64, Arc<ReadOnce>>>,
    /// Per object (by uid): the service secrets' fingerprint last computed and what it was
    /// computed from ([`Connections::recall_service`]).
    service: Mutex<HashMap<String, ServiceRecord>>,
}

/// A connection and the resourceVersions of the Secrets it was resolved from.
type ReadOnce = Slot<(Arc<Connection>, Option<Vec<String>>)>;

/// A value built once and shared, like [`OnceCell`], except that a failed build answers every
/// caller that was already waiting for it, not only the one that ran it. With a plain
/// `OnceCell` each waiter runs its own build in turn: while an Elasticsearch cluster does not
/// answer, the reconciles of its objects connected one after another, each waiting out the
/// previous one's timeout, so retries ran seconds later than their backoff
/// (docs/reliability.md#elasticsearch-unreachable). A caller that arrives after a failure
/// builds again.
pub struct Slot<T> {
    cell: OnceCell<T>,
    /// When the last build failed, and how.
    failed: Mutex<Option<(Instant, Failure)>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            cell: OnceCell::new(),
            failed: Mutex::new(None),
        }
    }
}

impl<T: Clone> Slot<T> {
    pub fn ready(value: T) -> Self {
        Slot {
            cell: OnceCell::new_with(Some(value)),
            failed: Mutex::new(None),
        }
    }

    pub fn get(&self) -> Option<&T> {
        self.cell.get()
    }

    pub async fn get_or_try_init<F, Fut>(&self, build: F) -> Result<T, Failure>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let arrived = Instant::now();
        let build_unless_answered = || async {
            if let Some((at, failure)) = lock(&self.failed).clone() {
                if at >= arrived {
                    return Err(failure);
                }
            }
            let built = build().await;
            if let Err(failure) = &built {
                *lock(&self.failed) = Some((Instant::now(), failure.clone()));
            }
            built
        };
        self.cell
            .get_or_try_init(build_unless_answered)
            .await
            .cloned()
    }
}

/// The service secrets of one object as last read: their fingerprint, under a key made of what
/// the spec names and the Secrets' versions. Never the values.
struct ServiceRecord {
    key: u64,
    fingerprint: String,
}

/// Upper bound on cached clients; past it the cache starts over (stale entries from rotated
/// credentials would otherwise accumulate).
const MAX_CACHED: usize = 256;
/// Upper bound on remembered resolutions (one per connection spec and Secret versions).
const MAX_RESOLVED: usize = 4096;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Caches: a panic while holding one cannot leave it worse than stale.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// An object stopped using `connection`; with no user left (a rotated credential, a changed
/// URL) its listing is dropped, though the client stays cached a while.
fn left(connection: &Connection) {
    if connection.users.fetch_sub(1, Ordering::Relaxed) == 1 {
        connection.listing.clear();
    }
}

/// Add the resourceVersion of a Secret read to `read` (`None` once one had none).
fn note_version(read: &mut Option<Vec<String>>, secret: &Secret) {
    match (read.as_mut(), secret.metadata.resource_version.as_ref()) {
        (Some(versions), Some(version)) => versions.push(version.clone()),
        _ => *read = None,
    }
}

/// The connection spec as text and the Secrets it reads (in the order they are read), for
/// [`Connections::resolution_key`]; `None` for a cross-namespace `elasticsearchRef`.
fn described(iep: &InferenceEndpoint, namespace: &str) -> Option<(String, Vec<SecretKey>)> {
    let spec = &iep.spec;
    match (&spec.elasticsearch, &spec.elasticsearch_ref) {
        (Some(direct), None) => Some((
            serde_json::to_string(direct).ok()?,
            direct_secrets(direct, namespace),
        )),
        (None, Some(eck)) if eck.namespace.as_deref().is_none_or(|n| n == namespace) => Some((
            serde_json::to_string(eck).ok()?,
            eck_secrets(&eck.name, namespace),
        )),
        _ => None,
    }
}

/// The Secrets a `spec.elasticsearch` reads (credentials, CA), in the object's namespace.
fn direct_secrets(spec: &ElasticsearchConnection, namespace: &str) -> Vec<SecretKey> {
    let credentials = spec.credentials_secret_ref.as_ref().map(|r| &r.name);
    let ca = spec.ca_secret_ref.as_ref().map(|r| &r.name);
    [credentials, ca]
        .into_iter()
        .flatten()
        .map(|name| (namespace.to_owned(), name.clone()))
        .collect()
}

/// ECK's conventional Secrets for Elasticsearch `name` ([`Connections::eck`]).
fn eck_secrets(name: &str, namespace: &str) -> Vec<SecretKey> {
    ["-es-elastic-user", "-es-http-certs-public"]
        .into_iter()
        .map(|suffix| (namespace.to_owned(), format!("{name}{suffix}")))
        .collect()
}

impl Connections {
    pub fn new(settings: ConnectionSettings, metrics: Arc<Metrics>) -> Self {
        Connections {
            settings,
            metrics,
            cache: Mutex::new(HashMap::new()),
            last_used: Mutex::new(HashMap::new()),
            versions: Arc::default(),
            resolved: Mutex::new(HashMap::new()),
            unversioned: Mutex::new(HashMap::new()),
            service: Mutex::new(HashMap::new()),
        }
    }

    /// Use the Secret versions the metadata watch keeps (without them every reconcile reads
    /// its Secrets).
    pub fn with_versions(mut self, versions: Arc<SecretVersions>) -> Self {
        self.versions = versions;
        self
    }

    /// The versions the Secret watch last saw.
    pub fn versions(&self) -> &SecretVersions {
        &self.versions
    }

    /// The connection for `iep`, building it (and reading the cluster's version) when new.
    /// When every Secret its connection spec names is unchanged since a connection was resolved
    /// from them, that connection is used without reading them again; concurrent reconciles
    /// with the same spec and Secrets share one resolution (after a restart each Secret is read
    /// once, not once per object).
    pub async fn connect(
        &self,
        iep: &InferenceEndpoint,
        namespace: &str,
        kube: &kube::Client,
    ) -> Result<Arc<Connection>, Failure> {
        let Some(resolution) = self.resolution_key(iep, namespace) else {
            return self.connect_unversioned(iep, namespace, kube).await;
        };
        let slot = {
            let mut resolved = lock(&self.resolved);
            if resolved.len() >= MAX_RESOLVED && !resolved.contains_key(&resolution) {
                resolved.clear();
            }
            resolved.entry(resolution).or_default().clone()
        };
        let read = || async { Ok(self.connect_read(iep, namespace, kube).await?.0) };
        slot.get_or_try_init(read).await
    }

    /// [`Self::connect`] before the Secret watch knows the versions (a restart's first
    /// reconciles): concurrent reconciles with the same connection spec share one read, and
    /// the connection is remembered under the versions of the Secrets as read, which the watch
    /// reports unless they changed since.
    async fn connect_unversioned(
        &self,
        iep: &InferenceEndpoint,
        namespace: &str,
        kube: &kube::Client,
    ) -> Result<Arc<Connection>, Failure> {
        let Some((described, _)) = described(iep, namespace) else {
            return Ok(self.connect_read(iep, namespace, kube).await?.0);
        };
        let shared = versions_key(&[namespace, &described, "unversioned"], &[]);
        let slot = lock(&self.unversioned).entry(shared).or_default().clone();
        let read = slot
            .get_or_try_init(|| self.connect_read(iep, namespace, kube))
            .await;
        // Only while reads are in flight: later callers look the versions up again.
        let mut unversioned = lock(&self.unversioned);
        if unversioned
            .get(&shared)
            .is_some_and(|s| Arc::ptr_eq(s, &slot))
        {
            unversioned.remove(&shared);
        }
        drop(unversioned);
        let (connection, read) = read?;
        if let Some(key) = self.key_of(iep, namespace, read.as_deref()) {
            let mut resolved = lock(&self.resolved);
            if resolved.len() < MAX_RESOLVED {
                let known = Arc::new(Slot::ready(connection.clone()));
                resolved.entry(key).or_insert(known);
            }
        }
        Ok(connection)
    }

    /// What a connection is resolved from, hashed: `None` when a Secret's version is unknown
    /// (not watched in this scope) or the spec needs a read on every use (a cross-namespace
    /// `elasticsearchRef`, whose consent annotation is not watched).
    fn resolution_key(&self, iep: &InferenceEndpoint, namespace: &str) -> Option<u64> {
        let (described, secrets) = described(iep, namespace)?;
        let versions = self.versions.all(&secrets)?;
        Some(versions_key(&[namespace, &described], &versions))
    }

    /// [`Self::resolution_key`] from the versions of the Secrets as read.
    fn key_of(
        &self,
        iep: &InferenceEndpoint,
        namespace: &str,
        read: Option<&[String]>,
    ) -> Option<u64> {
        let (described, secrets) = described(iep, namespace)?;
        let read = read?;
        if read.len() != secrets.len() {
            return None;
        }
        let versions: Vec<Version> = read.iter().map(|v| version_of(v)).collect();
        Some(versions_key(&[namespace, &described], &versions))
    }

    /// Read the connection's Secrets and connect; with the resourceVersions of the Secrets
    /// read (`None` if one had none).
    async fn connect_read(
        &self,
        iep: &InferenceEndpoint,
        namespace: &str,
        kube: &kube::Client,
    ) -> Result<(Arc<Connection>, Option<Vec<String>>), Failure> {
        let mut read = Some(Vec::new());
        let config = self.resolve(iep, namespace, kube, &mut read).await?;
        let direct = iep.spec.elasticsearch.is_some();
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
            let config = self.pin_checked(config, direct).await?;
            let client = EsClient::new(config).map_err(|e| outcomes::from_es(&e))?;
            let started = std::time::Instant::now();
            let info = client.info().await;
            self.metrics
                .elasticsearch(EsOperation::Info, &info, started.elapsed());
            let info = info.map_err(|e| outcomes::from_es(&e))?;
            Ok(Arc::new(Connection {
                client,
                info,
                key,
                listing: Listings::default(),
                users: AtomicUsize::new(0),
            }))
        })
        .await
        .map(|connection| (connection, read))
    }

    /// Drop a connection so the next use reconnects and re-reads the version (the cluster may
    /// have been upgraded or rebuilt behind the same URL).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
        lock(&self.resolved).retain(|_, slot| slot.get().is_none_or(|c| c.key != key));
    }

    pub fn remember(&self, uid: &str, connection: &Arc<Connection>) {
        let mut last_used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        match last_used.get(uid) {
            Some(known) if Arc::ptr_eq(known, connection) => {}
            _ => {
                connection.users.fetch_add(1, Ordering::Relaxed);
                if let Some(before) = last_used.insert(uid.to_owned(), connection.clone()) {
                    left(&before);
                }
            }
        }
    }

    /// The fingerprint of `uid`'s service secrets when they were last read under `key` (what
    /// the spec names and the Secrets' versions): unchanged Secrets need no read.
    pub fn recall_service(&self, uid: &str, key: u64) -> Option<String> {
        lock(&self.service)
            .get(uid)
            .filter(|r| r.key == key)
            .map(|r| r.fingerprint.clone())
    }

    pub fn record_service(&self, uid: &str, key: u64, fingerprint: &str) {
        let record = ServiceRecord {
            key,
            fingerprint: fingerprint.to_owned(),
        };
        lock(&self.service).insert(uid.to_owned(), record);
    }

    pub fn remembered(&self, uid: &str) -> Option<Arc<Connection>> {
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .cloned()
    }

    pub fn forget_remembered(&self, uid: &str) {
        let before = self
            .last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
        if let Some(before) = before {
            left(&before);
        }
        lock(&self.service).remove(uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot<Arc<Connection>>>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn resolve(
        &self,
        iep: &InferenceEndpoint,
        namespace: &str,
        kube: &kube::Client,
        read: &mut Option<Vec<String>>,
    ) -> Result<ConnectionConfig, Failure> {
        match (&iep.spec.elasticsearch, &iep.spec.elasticsearch_ref) {
            (Some(direct), None) => {
                let secrets = SecretReader::new(kube.clone(), namespace)
                    .require_opt_in(self.settings.require_secret_opt_in);
                self.direct(direct, &secrets, read).await
            }
            (None, Some(eck)) => self.eck(eck, namespace, kube, read).await,
            _ => Err(Failure::new(
                Reason::InvalidSpec,
                "exactly one of spec.elasticsearchRef or spec.elasticsearch must be set",
            )),
        }
    }

    async fn direct(
        &self,
        spec: &ElasticsearchConnection,
        secrets: &SecretReader,
        read: &mut Option<Vec<String>>,
    ) -> Result<ConnectionConfig, Failure> {
        let url = Url::parse(&spec.url).map_err(|e| {
            Failure::new(
                Reason::InvalidSpec,
                format!("spec.elasticsearch.url is not a URL: {e}"),
            )
        })?;
        // Refused by name before any Secret is read or any address resolved.
        if let Some(host) = host_of(&url) {
            self.settings
                .destinations
                .check_host(&host)
                .map_err(not_allowed)?;
        }
        let auth = match &spec.credentials_secret_ref {
            None => Auth::None,
            Some(reference) => {
                let secret = secrets
                    .get(&reference.name)
                    .await
                    .map_err(|e| outcomes::from_secret(&e))?;
                note_version(read, &secret);
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
                note_version(read, &secret);
                let pem = optional_value(&secret, &reference.key).ok_or_else(|| {
                    Failure::new(
                        Reason::SecretKeyMissing,
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
            resolved: Vec::new(),
        })
    }

    /// ECK conventions: service `<name>-es-http`, user `elastic` with the password in
    /// `<name>-es-elastic-user`, CA in `<name>-es-http-certs-public` key `ca.crt`.
    async fn eck(
        &self,
        reference: &ElasticsearchRef,
        namespace: &str,
        kube: &kube::Client,
        read: &mut Option<Vec<String>>,
    ) -> Result<ConnectionConfig, Failure> {
        let target_namespace = reference.namespace.as_deref().unwrap_or(namespace);
        if target_namespace != namespace && !self.settings.allow_cross_namespace_refs {
            return Err(Failure::new(
                Reason::CrossNamespaceRefDenied,
                format!(
                    "spec.elasticsearchRef points to namespace {target_namespace:?}; the operator is not configured to allow cross-namespace references"
                ),
            ));
        }
        if target_namespace != namespace {
            consent(kube, &reference.name, target_namespace, namespace).await?;
        }
        let secrets = SecretReader::new(kube.clone(), target_namespace);
        let name = &reference.name;
        let user_secret = format!("{name}-es-elastic-user");
        let users = secrets
            .get_eck(&user_secret, name)
            .await
            .map_err(|e| outcomes::from_secret(&e))?;
        note_version(read, &users);
        let password =
            text_value(&users, &user_secret, "elastic").map_err(|e| outcomes::from_secret(&e))?;
        let ca_secret = format!("{name}-es-http-certs-public");
        let ca = secrets
            .get_eck(&ca_secret, name)
            .await
            .map_err(|e| outcomes::from_secret(&e))?;
        note_version(read, &ca);
        let ca_pem = optional_value(&ca, "ca.crt").map(<[u8]>::to_vec);
        let url = eck_url(&self.settings.eck_url_template, name, target_namespace);
        let url = Url::parse(&url).map_err(|e| {
            Failure::new(
                Reason::InvalidSpec,
                format!("cannot build ECK service URL: {e}"),
            )
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
            resolved: Vec::new(),
        })
    }
}

impl Connections {
    /// For a `spec.elasticsearch` URL: resolve its host, check every address against the
    /// destination policy, and pin the connection to those addresses. Nothing is connected to
    /// before this passes.
    async fn pin_checked(
        &self,
        mut config: ConnectionConfig,
        direct: bool,
    ) -> Result<ConnectionConfig, Failure> {
        let Some(host) = host_of(&config.url).filter(|_| direct) else {
            return Ok(config);
        };
        let policy = &self.settings.destinations;
        let by_name = policy.check_host(&host).map_err(not_allowed)?;
        let port = config.url.port_or_known_default().unwrap_or(9200);
        let addresses = destination::resolve(&host, port)
            .await
            .map_err(|message| Failure::new(Reason::ElasticsearchUnreachable, message))?;
        let ips: Vec<_> = addresses.iter().map(|a| a.ip()).collect();
        policy
            .check_addresses(&host, &by_name, &ips)
            .map_err(not_allowed)?;
        config.resolved = addresses;
        Ok(config)
    }
}

fn not_allowed(refusal: Refusal) -> Failure {
    Failure::new(
        Reason::ElasticsearchUrlNotAllowed,
        format!("spec.elasticsearch.url is not allowed: {}", refusal.0),
    )
}

/// The annotation on an ECK `Elasticsearch` naming the other namespaces whose
/// InferenceEndpoints may use it (comma-separated, or `*` for all).
pub const ALLOWED_NAMESPACES_ANNOTATION: &str = "esinference.io/allowed-namespaces";

/// Whether the annotation's value lets `namespace` use the Elasticsearch.
pub fn consents(annotation: Option<&str>, namespace: &str) -> bool {
    annotation.is_some_and(|value| {
        value
            .split(',')
            .map(str::trim)
            .any(|allowed| allowed == "*" || allowed == namespace)
    })
}

/// A cross-namespace `elasticsearchRef` needs consent from the Elasticsearch it names: its
/// owners list this object's namespace in [`ALLOWED_NAMESPACES_ANNOTATION`]. Only the
/// Elasticsearch's metadata is read.
async fn consent(
    kube: &kube::Client,
    name: &str,
    target_namespace: &str,
    namespace: &str,
) -> Result<(), Failure> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("elasticsearch.k8s.elastic.co", "v1", "Elasticsearch"),
        "elasticsearches",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(kube.clone(), target_namespace, &resource);
    let read = tokio::time::timeout(CONSENT_READ_TIMEOUT, api.get_metadata_opt(name)).await;
    let missing = |what: String| Failure::new(Reason::CrossNamespaceRefNotAllowed, what);
    let metadata = match read {
        Err(_) => {
            return Err(Failure::new(
                Reason::KubernetesApiError,
                format!("reading Elasticsearch {target_namespace}/{name} timed out"),
            ))
        }
        Ok(Err(kube::Error::Api(status))) if status.is_forbidden() => {
            return Err(missing(format!(
                "the operator may not read Elasticsearch {target_namespace}/{name} (RBAC: get elasticsearches.elasticsearch.k8s.elastic.co), so it cannot see whether namespace {namespace:?} may use it"
            )))
        }
        Ok(Err(kube::Error::Api(status))) if status.code != 404 => {
            return Err(Failure::new(
                Reason::KubernetesApiError,
                format!(
                    "reading Elasticsearch {target_namespace}/{name} failed: the Kubernetes API answered HTTP {}",
                    status.code
                ),
            ))
        }
        Ok(Err(kube::Error::Api(_))) | Ok(Ok(None)) => {
            return Err(missing(format!(
                "spec.elasticsearchRef names Elasticsearch {target_namespace}/{name}, which does not exist (or ECK is not installed)"
            )))
        }
        Ok(Err(_)) => {
            return Err(Failure::new(
                Reason::KubernetesApiError,
                format!("reading Elasticsearch {target_namespace}/{name} failed: the Kubernetes API could not be reached"),
            ))
        }
        Ok(Ok(Some(metadata))) => metadata,
    };
    let annotation = metadata
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ALLOWED_NAMESPACES_ANNOTATION));
    if consents(annotation.map(String::as_str), namespace) {
        return Ok(());
    }
    Err(missing(format!(
        "Elasticsearch {target_namespace}/{name} does not list namespace {namespace:?} in its annotation {ALLOWED_NAMESPACES_ANNOTATION}; \
         its owners can allow it with: kubectl annotate elasticsearch {name} -n {target_namespace} {ALLOWED_NAMESPACES_ANNOTATION}={namespace}"
    )))
}

const CONSENT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection the operator makes but the user should know is unsafe: credentials over plain
/// HTTP, or TLS without verification. Reported as a Warning, never refused (Ready keeps its
/// meaning). `(reason, message)`.
pub fn insecure_transport(iep: &InferenceEndpoint) -> Option<(Reason, String)> {
    let direct = iep.spec.elasticsearch.as_ref()?;
    if direct.insecure_skip_tls_verify {
        return Some((
            Reason::TlsVerificationDisabled,
            "spec.elasticsearch.insecureSkipTlsVerify is true: the operator accepts any certificate, so anyone on the network path can read the Elasticsearch credentials and the service key. Set spec.elasticsearch.caSecretRef instead".to_owned(),
        ));
    }
    // Not only the Elasticsearch credentials: the service key travels in every create and
    // update body.
    let plaintext = Url::parse(&direct.url).is_ok_and(|url| url.scheme() == "http");
    plaintext.then(|| {
        (
            Reason::PlaintextCredentials,
            "spec.elasticsearch.url uses http://: the Elasticsearch credentials and the service key cross the network unencrypted. Use https://".to_owned(),
        )
    })
}

fn eck_url(template: &str, name: &str, namespace: &str) -> String {
    template
        .replace("{name}", name)
        .replace("{namespace}", namespace)
}

/// Basic credentials (`username` + `password`) or an API key (`apiKey`), never both.
fn credentials_from(secret: &Secret, name: &str) -> Result<Auth, Failure> {
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
        (true, true) => Err(Failure::new(
            Reason::InvalidCredentialsSecret,
            format!("Secret {name:?} must hold either username and password or apiKey, not both"),
        )),
        (false, false) => Err(Failure::new(
            Reason::SecretKeyMissing,
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

    #[tokio::test]
    async fn a_failed_build_answers_every_caller_already_waiting_and_the_next_builds_again() {
        use std::sync::atomic::AtomicUsize;
        let slot: Slot<u32> = Slot::default();
        let builds = AtomicUsize::new(0);
        let failing = || async {
            builds.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(Failure::new(Reason::ElasticsearchUnreachable, "no answer"))
        };
        let waiting = (0..8).map(|_| slot.get_or_try_init(failing));
        let answers = futures::future::join_all(waiting).await;
        assert!(answers.iter().all(Result::is_err), "{answers:?}");
        assert_eq!(
            builds.load(Ordering::SeqCst),
            1,
            "one build answered all eight"
        );
        // A caller arriving after the failure tries again, and a success is kept.
        assert!(slot.get_or_try_init(failing).await.is_err());
        assert_eq!(builds.load(Ordering::SeqCst), 2);
        assert_eq!(slot.get_or_try_init(|| async { Ok(7) }).await, Ok(7));
        assert_eq!(slot.get_or_try_init(failing).await, Ok(7));
        assert_eq!(builds.load(Ordering::SeqCst), 2);
    }
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
        assert_eq!(both.unwrap_err().reason, Reason::InvalidCredentialsSecret);
        let neither = credentials_from(&secret(&[("other", "x")]), "es");
        assert_eq!(neither.unwrap_err().reason, Reason::SecretKeyMissing);
        let half = credentials_from(&secret(&[("username", "u")]), "es");
        assert_eq!(half.unwrap_err().reason, Reason::SecretKeyMissing);
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
            resolved: Vec::new(),
        };
        let a = cache_key(&config("first-password"));
        assert_eq!(a, cache_key(&config("first-password")));
        assert_ne!(a, cache_key(&config("second-password")));
        assert!(!a.contains("first-password"));
    }

    #[test]
    fn consent_names_the_namespace_or_everyone() {
        assert!(consents(Some("team-a"), "team-a"));
        assert!(consents(Some("team-b, team-a"), "team-a"));
        assert!(consents(Some("*"), "anything"));
        assert!(!consents(Some("team-ab,team"), "team-a"));
        assert!(!consents(Some(""), "team-a"));
        assert!(!consents(None, "team-a"));
    }

    fn direct_iep(connection: serde_json::Value) -> InferenceEndpoint {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {
                "elasticsearch": connection, "taskType": "completion",
                "azureOpenAI": {"resourceName": "r", "deploymentId": "d", "apiVersion": "v", "apiKeySecretRef": {"name": "azure", "key": "k"}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn plain_http_and_unverified_tls_are_reported() {
        let reason = |connection| insecure_transport(&direct_iep(connection)).map(|(r, _)| r);
        assert_eq!(reason(serde_json::json!({"url": "https://es:9200"})), None);
        assert_eq!(
            reason(
                serde_json::json!({"url": "http://es:9200", "credentialsSecretRef": {"name": "c"}})
            ),
            Some(Reason::PlaintextCredentials)
        );
        // The service key travels in the create body even without Elasticsearch credentials.
        assert_eq!(
            reason(serde_json::json!({"url": "HTTP://es:9200"})),
            Some(Reason::PlaintextCredentials)
        );
        assert_eq!(
            reason(serde_json::json!({"url": "https://es:9200", "insecureSkipTlsVerify": true})),
            Some(Reason::TlsVerificationDisabled)
        );
    }
}
