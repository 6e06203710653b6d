//! The controller: watches wiring, shared context, and the retry policy.
//!
//! * [`desired`], [`plan`] and [`conditions`] are pure and carry most of the logic;
//! * [`reconcile`] drives one object through observe → decide → act → status → Event;
//! * [`connection`] resolves and caches Elasticsearch clients;
//! * this module wires the kube `Controller`: the InferenceEndpoint watch (status-only changes
//!   filtered out), a metadata-only Secret watch mapped to the objects that reference each Secret,
//!   finalizer handling, and per-object exponential backoff.

pub mod conditions;
pub mod connection;
pub mod decode;
pub mod desired;
pub mod destination;
pub mod events;
pub mod health;
pub mod identity;
pub mod in_flight;
pub mod outcome_log;
pub mod outcomes;
pub mod own_writes;
pub mod ownership;
pub mod plan;
pub mod previous_key;
pub mod reconcile;
pub mod secret_index;
pub mod slots;
pub mod snapshot;
pub mod status_compat;
pub mod usage;

use std::collections::HashMap;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};
use tracing::{info, warn, Instrument};

use crate::api::FINALIZER;
use crate::controller::conditions::{Outcome, Reason, State};
use crate::controller::connection::{ConnectionSettings, Connections};
use crate::controller::decode::Decoded;
use crate::controller::identity::Identity;
use crate::controller::outcome_log::{ApiServerEpisodes, Level, Next};
use crate::controller::ownership::OwnershipIndex;
use crate::controller::secret_index::{SecretIndex, SecretRouter};
use crate::controller::slots::Slots;
use crate::http::Health;
use crate::metrics::{Metrics, ReconcileResult};
use crate::secrets::SecretReader;
use crate::shutdown::{self, Stopped};

/// ECK's HTTP service for an `Elasticsearch` named `{name}` in `{namespace}`.
pub const DEFAULT_ECK_URL_TEMPLATE: &str = "https://{name}-es-http.{namespace}.svc:9200";

/// Field manager for status writes and the Event reporter name.
pub const FIELD_MANAGER: &str = "inference-operator";

/// The controller's settings: the command line (`inference-operator run`, each flag with an
/// environment twin), where every default is written once. [`Config::default`] is those
/// defaults, the environment left out.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Watch only these namespaces, comma-separated (default: all namespaces).
    #[arg(
        long = "namespace",
        env = "INFERENCE_OPERATOR_WATCH_NAMESPACE",
        value_delimiter = ',',
        value_name = "NAMESPACE"
    )]
    pub namespaces: Vec<String>,
    /// How often Ready endpoints are re-checked against Elasticsearch.
    #[arg(long, env = "INFERENCE_OPERATOR_RECHECK_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub recheck_interval: Duration,
    /// How often what uses each endpoint (`status.usedBy`) is read again, jittered per object;
    /// it is also read before any delete or recreate (docs/lifecycle.md#who-uses-an-endpoint).
    #[arg(long, env = "INFERENCE_OPERATOR_USED_BY_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub used_by_interval: Duration,
    /// First retry delay after a transient failure; it doubles per failure.
    #[arg(long, env = "INFERENCE_OPERATOR_BACKOFF_INITIAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub backoff_initial: Duration,
    /// Longest retry delay after transient failures.
    #[arg(long, env = "INFERENCE_OPERATOR_BACKOFF_MAX", default_value = "5m", value_parser = humantime::parse_duration)]
    pub backoff_max: Duration,
    /// Objects reconciled in parallel, shared fairly between namespaces: a pass holds its slot
    /// until its last Elasticsearch request has answered, and its status write and Event, as many
    /// at most, follow outside it (docs/lifecycle.md#fair-reconcile-slots; 0: no limit).
    #[arg(long, env = "INFERENCE_OPERATOR_CONCURRENCY", default_value_t = 32)]
    pub concurrency: u16,
    /// Timeout of each Kubernetes call made inside a reconcile (not a flag).
    #[arg(skip = Duration::from_secs(15))]
    pub kube_timeout: Duration,
    /// How long a PUT of an in-cluster model (`elasticsearch`, `elser`) asks Elasticsearch to
    /// wait for the deployment (`?timeout=`), and how often a deployment still starting is
    /// checked again (not flags; docs/lifecycle.md#slow-model-deployments says why these values).
    #[arg(skip = reconcile::MODEL_DEPLOY_WAIT)]
    pub model_deploy_wait: Duration,
    #[arg(skip = reconcile::MODEL_DEPLOY_POLL)]
    pub model_deploy_poll: Duration,
    /// How long in-flight reconciles may finish after a shutdown is requested (not a flag;
    /// docs/lifecycle.md#stopping).
    #[arg(skip = shutdown::SHUTDOWN_GRACE)]
    pub shutdown_grace: Duration,
    /// Probe every InferenceEndpoint this often unless its spec.healthCheck says otherwise
    /// (e.g. 10m; default: off, only objects with spec.healthCheck are probed).
    #[arg(long, env = "INFERENCE_OPERATOR_HEALTH_CHECK_INTERVAL", value_parser = humantime::parse_duration)]
    pub health_check_interval: Option<Duration>,
    /// Probes in flight at once, over every object (a probe that finds no free slot is postponed).
    #[arg(
        long,
        env = "INFERENCE_OPERATOR_HEALTH_CHECK_CONCURRENCY",
        default_value_t = 4
    )]
    pub health_check_concurrency: u16,
    /// Longest wait for one probe's answer.
    #[arg(long, env = "INFERENCE_OPERATOR_HEALTH_CHECK_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub health_check_timeout: Duration,
    /// Export the per-InferenceEndpoint metric series (labels namespace, name); turn off for very
    /// large installations.
    #[arg(long, env = "INFERENCE_OPERATOR_PER_OBJECT_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub per_object_metrics: bool,
    /// Keep the previous accepted credential of each endpoint in an operator-owned Secret in its
    /// namespace too, so a restart between a rejected rotation and its rollback (clusters before
    /// 9.4) still puts it back. Needs `create` and `patch` on Secrets (docs/security.md).
    #[arg(long, env = "INFERENCE_OPERATOR_PERSIST_PREVIOUS_CREDENTIAL")]
    pub persist_previous_credential: bool,
    /// How long the deletion of an object that may have a create in flight (finalizer set, no
    /// endpoint recorded) waits for it to land before letting go
    /// (docs/lifecycle.md#a-create-in-flight-at-deletion; default: the PUT's client deadline).
    #[arg(long, env = "INFERENCE_OPERATOR_CREATE_IN_FLIGHT_WAIT", value_parser = humantime::parse_duration)]
    pub create_in_flight_wait: Option<Duration>,
    #[command(flatten)]
    pub connection: ConnectionSettings,
}

impl Default for Config {
    fn default() -> Self {
        defaults()
    }
}

impl Config {
    /// An empty `INFERENCE_OPERATOR_WATCH_NAMESPACE` (or `--namespace ''`) means all namespaces.
    pub fn normalized(mut self) -> Self {
        self.namespaces.retain(|n| !n.is_empty());
        self
    }
}

/// The defaults of a part of the command line: parsed from no arguments, with the environment
/// twins switched off so that a variable set in the environment (a test's, a shell's) cannot
/// leak in.
pub fn defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults")).mut_args(|arg| arg.env(None));
    command
        .try_get_matches_from(["defaults"])
        .and_then(|matches| T::from_arg_matches(&matches))
        .expect("the command line's defaults parse")
}

/// Failures that escape a reconcile (domain failures are reported on the object instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("Kubernetes API call timed out: {0}")]
    KubeTimeout(&'static str),
    #[error(transparent)]
    Unidentified(#[from] identity::Unidentified),
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: kube::Client,
    /// Ownership facts of every InferenceEndpoint in every watched scope.
    pub ownership: Arc<OwnershipIndex>,
    /// Events waiting to be published, bounded (reconciles never wait for an Event).
    pub events: events::EventQueue,
    pub metrics: Arc<Metrics>,
    pub config: Config,
    pub connections: Connections,
    /// When each object's users were last read (by uid), so a failing read is not retried at
    /// every re-check.
    pub usage: usage::UsageReads,
    /// The reconcile slots (`concurrency`), shared fairly between namespaces.
    pub slots: Arc<Slots>,
    /// Consecutive failures per object (by uid), for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The probe schedule, last verdicts and probe slots.
    pub probes: health::Probes,
    /// Per object (by uid): the service secrets last accepted for its endpoint, kept only where
    /// a rejected rotation is rolled back (clusters that do not validate `_update` themselves;
    /// [`previous_key`] keeps them in a Secret too when asked).
    pub accepted_secrets: Mutex<HashMap<String, previous_key::Remembered>>,
    /// The creates this process sent, for a deletion to wait out one still in flight.
    pub creates: in_flight::CreatesSent,
    /// The object versions this process's own writes superseded: no reconcile acts on one.
    pub own_writes: Arc<own_writes::OwnWrites>,
    /// Whether the served CRD lacks status fields this operator writes.
    pub crd_compat: status_compat::CrdCompat,
}

impl Context {
    pub fn new(
        client: kube::Client,
        config: Config,
        metrics: Arc<Metrics>,
        ownership: Arc<OwnershipIndex>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        metrics.set_per_object(config.per_object_metrics);
        Context {
            probes: health::Probes::new(usize::from(config.health_check_concurrency)),
            accepted_secrets: Mutex::new(HashMap::new()),
            creates: in_flight::CreatesSent::default(),
            own_writes: Arc::default(),
            crd_compat: status_compat::CrdCompat::default(),
            events: events::EventQueue::new(
                EventRecorder {
                    client: client.clone(),
                    reporter,
                },
                events::QUEUE_CAPACITY,
                events::WORKERS,
                config.kube_timeout,
                metrics.clone(),
            ),
            connections: Connections::new(config.connection.clone(), metrics.clone()),
            slots: Slots::new(slot_count(config.concurrency)),
            metrics,
            ownership,
            client,
            config,
            usage: usage::UsageReads::default(),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// [`Context::next`] for a Ready object, brought forward to its next probe when it has one.
    pub fn next_or_probe(&self, who: &Identity, outcome: &Outcome) -> Next {
        let next = self.next(who, outcome);
        let Some(due) = self.probes.next(&who.uid) else {
            return next;
        };
        let probe = due.saturating_duration_since(std::time::Instant::now());
        match next {
            Next::Recheck(delay) | Next::Retry(delay) if delay <= probe => next,
            _ => Next::Recheck(probe),
        }
    }

    /// When the object is looked at next after a reconcile that ended in `outcome` (and the
    /// backoff bookkeeping); [`action`] makes it the kube `Action`.
    pub fn next(&self, who: &Identity, outcome: &Outcome) -> Next {
        if outcome.reason == Reason::ModelDeploying {
            // Progress, not a failure: checked at a fixed interval, the backoff not grown.
            self.forget(who);
            return Next::Recheck(jitter(self.config.model_deploy_poll));
        }
        match outcome.state() {
            State::Ready => {
                self.forget(who);
                Next::Recheck(jitter(self.config.recheck_interval))
            }
            State::Transient => Next::Retry(self.backoff_delay(who)),
            State::Permanent if outcome.resolves_elsewhere() => {
                self.forget(who);
                Next::Recheck(jitter(self.config.recheck_interval))
            }
            // The Secret watch and the object watch bring it back when something changes.
            State::Permanent => {
                self.forget(who);
                Next::AwaitChange
            }
        }
    }

    /// Follow the Secret versions the metadata watch keeps, so re-checks skip unchanged
    /// Secrets (docs/lifecycle.md#batched-re-checks).
    pub fn with_secret_versions(
        mut self,
        versions: Arc<crate::controller::secret_index::SecretVersions>,
    ) -> Self {
        self.connections = self.connections.with_versions(versions);
        self
    }

    /// Record this process's writes in `own_writes`, which the object watch follows.
    pub fn with_own_writes(mut self, own_writes: Arc<own_writes::OwnWrites>) -> Self {
        self.own_writes = own_writes;
        self
    }

    /// Secrets of `namespace` as this operator may read them (opt-in label or not).
    pub fn secrets(&self, namespace: &str) -> SecretReader {
        SecretReader::new(self.client.clone(), namespace)
            .require_opt_in(self.config.connection.require_secret_opt_in)
    }

    /// Record one more failure and return how long to wait before the next attempt.
    pub fn backoff_delay(&self, who: &Identity) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(who.uid.clone()).or_insert(0);
        *count = count.saturating_add(1);
        backoff(self.config.backoff_initial, self.config.backoff_max, *count)
    }

    pub fn forget(&self, who: &Identity) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&who.uid);
    }
}

/// Publishes Events through kube's `Recorder`, without its memory: kube 5's `Recorder` keeps
/// every Event it published (key and whole Event, kube-runtime `events.rs`) for 6 minutes to
/// turn a repeat into a series, and its map never shrinks — after 1,000 creates that was the
/// largest per-object allocation of the operator (docs/benchmarks.md#memory-issue-16). The operator
/// publishes on transitions only, so repeats within 6 minutes are rare; each Event is created
/// on its own instead.
#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    reporter: Reporter,
}

impl EventRecorder {
    pub async fn publish(
        &self,
        event: &kube::runtime::events::Event,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
    ) -> Result<(), kube::Error> {
        // A recorder per Event: its cache is dropped with it.
        Recorder::new(self.client.clone(), self.reporter.clone())
            .publish(event, reference)
            .await
    }
}

/// `--concurrency` as slots: 0 keeps meaning no limit, as it did for kube-rs.
fn slot_count(concurrency: u16) -> usize {
    match concurrency {
        0 => usize::MAX / 2,
        n => usize::from(n),
    }
}

/// `initial * 2^(failures-1)`, capped, with ±10 % jitter so many objects failing together do
/// not retry in lockstep.
pub fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let delay = initial.saturating_mul(1 << exponent).min(max);
    jitter(delay)
}

/// Something came back from the API server: the end of an outage, if there was one, is said.
fn api_server_answers(episodes: &ApiServerEpisodes) {
    if episodes.succeeded() {
        info!("the Kubernetes API server answers again");
    }
}

/// The kube `Action` for `next`.
pub fn action(next: Next) -> Action {
    match next.delay() {
        Some(delay) => Action::requeue(delay),
        None => Action::await_change(),
    }
}

fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// Reconcile entry point: an object that does not match the types is reported (and let go
/// when deleted); any other is held by the finalizer first, then applied, and cleaned up when
/// deleted (the finalizer goes only once the cleanup is done; a blocked one requeues itself).
pub async fn reconcile(object: Arc<Decoded>, ctx: Arc<Context>) -> Result<Action, Error> {
    let who = Identity::of(object.as_ref())?;
    // A cached copy this process's own write superseded: nothing is decided from it, and no
    // slot is taken; the watch brings the newer one within moments (`own_writes`).
    let rv = object.meta().resource_version.as_deref();
    if let own_writes::Verdict::Stale(delay) = ctx.own_writes.verdict(&who.uid, rv) {
        tracing::debug!(namespace = %who.namespace, name = %who.name, ?delay, "the cache has not caught up with our own write yet");
        return Ok(Action::requeue(delay));
    }
    // Held until the pass's last Elasticsearch request has answered (a create or an update:
    // `reconcile::apply_in`), else until the reconcile ends; `None`: shutting down, and this one
    // had not started.
    let Some(slot) = ctx.slots.acquire(&who.namespace).await else {
        return Ok(Action::await_change());
    };
    let mut slot = Some(slot);
    let span = tracing::info_span!(
        "reconcile",
        namespace = %who.namespace,
        name = %who.name,
        generation = object.meta().generation.unwrap_or_default()
    );
    let iep = match &object.0 {
        Ok(iep) => Arc::new(iep.clone()),
        Err(invalid) => {
            return reconcile::undecodable(&object, &who, invalid, ctx)
                .instrument(span)
                .await
        }
    };
    let held = iep.finalizers().iter().any(|f| f == FINALIZER);
    let deleting = iep.meta().deletion_timestamp.is_some();
    match (deleting, held) {
        (false, false) => {
            let pass = reconcile::hold_in(iep, &who, ctx, &mut slot);
            pass.instrument(span).await
        }
        (false, true) => {
            let pass = reconcile::apply_in(iep, &who, ctx, &mut slot);
            pass.instrument(span).await
        }
        (true, true) => reconcile::cleanup(iep, &who, ctx).instrument(span).await,
        // Deleted before it was ever held: nothing was created.
        (true, false) => Ok(Action::await_change()),
    }
}

fn error_policy(iep: Arc<Decoded>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconciled(ReconcileResult::Error, Duration::ZERO);
    // An object without an identity has been said so (the error); it waits the longest delay.
    let retry = match Identity::of(iep.as_ref()) {
        Ok(who) => ctx.backoff_delay(&who),
        Err(_) => ctx.config.backoff_max,
    };
    let object = reflector::ObjectRef::from_obj(iep.as_ref());
    warn!(%object, %error, ?retry, "reconcile failed");
    Action::requeue(retry)
}

/// Which changes of an InferenceEndpoint deserve a reconcile: spec (generation), finalizers,
/// deletion and annotations. Status-only writes (our own) are filtered out, so writing status
/// does not trigger another Elasticsearch read. Generation alone would swallow finalizer and
/// delete events (docs/reference/design.md#reconcile-triggers). This operator's own finalizer
/// is left out: it is added in the pass that applies (`reconcile::hold`), and its event would
/// only bring a second pass; removed by hand, it is put back at the next re-check. So is the
/// operator's record of the creates it sends (`in_flight::CREATE_INTENT_ANNOTATION`), written
/// in the same pass.
fn relevant_change(iep: &impl Resource) -> Option<u64> {
    let meta = iep.meta();
    let mut hasher = DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    let others = meta.finalizers.iter().flatten().filter(|f| *f != FINALIZER);
    others.collect::<Vec<_>>().hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    let annotations = meta.annotations.iter().flatten();
    let annotations = annotations.filter(|(k, _)| *k != in_flight::CREATE_INTENT_ANNOTATION);
    annotations.collect::<Vec<_>>().hash(&mut hasher);
    Some(hasher.finish())
}

/// Run the controller for every watched scope (all namespaces, or one controller per listed
/// namespace, each with its own watches and store, sharing one ownership index) until
/// `shutdown` resolves; then see [`run`].
pub async fn run_all(
    client: kube::Client,
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Stopped {
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    health.expect_synced(scopes.len());
    let shutdown = shutdown.shared();
    let router = Arc::new(SecretRouter::default());
    let ownership = Arc::new(OwnershipIndex::default());
    let stores: Vec<_> = scopes.iter().map(|_| reflector::store()).collect();
    // The readiness gauge is counted over every scope's store at scrape time.
    let readers: Vec<Store<Decoded>> = stores.iter().map(|(reader, _)| reader.clone()).collect();
    metrics.count_endpoints_with(Box::new(move || {
        readers
            .iter()
            .map(readiness_counts)
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    }));
    let controllers = scopes.into_iter().zip(stores).map(|(scope, (_, writer))| {
        run(
            client.clone(),
            config.clone(),
            scope,
            writer,
            ownership.clone(),
            metrics.clone(),
            health.clone(),
            router.clone(),
            shutdown.clone(),
        )
    });
    let stopped = futures::future::join_all(controllers).await;
    metrics.stop_counting_endpoints();
    stopped.into_iter().fold(Stopped::Drained, Stopped::and)
}

/// Run the controller for one scope (a namespace, or all when `None`) until `shutdown`
/// resolves; in-flight reconciles get `config.shutdown_grace` to finish (none are waited for
/// if the objects were never listed: the watches are not waited for). Reports to `health` once both watches have
/// listed everything once. `writer` fills this scope's store; `ownership` is shared with the
/// other scopes' controllers.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: kube::Client,
    config: Config,
    namespace: Option<String>,
    writer: reflector::store::Writer<Decoded>,
    ownership: Arc<OwnershipIndex>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    router: Arc<SecretRouter>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Stopped {
    let shutdown = shutdown.shared();
    // Decoded one object at a time, so one object that does not match the types cannot fail
    // the whole LIST (see `decode`).
    let (ieps, secrets): (Api<Decoded>, Api<PartialObjectMeta<Secret>>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let reader = writer.as_reader();
    // Readiness is taken from each watch's first InitDone. (Store::wait_until_ready is not
    // used: with the Controller also waiting on it, only one waiter is woken in kube 5.0.)
    let (ieps_synced, mut ieps_listed) = tokio::sync::watch::channel(false);
    let listed = ieps_listed.clone();
    let index = Arc::new(SecretIndex::default());
    let triggered = router.join(index.clone());
    // One WARN per API server outage, not one per retry (see `outcome_log`).
    let episodes = Arc::new(ApiServerEpisodes::default());
    let own_writes = Arc::new(own_writes::OwnWrites::default());
    let iep_stream = watcher(ieps, watcher::Config::default().any_semantic())
        .default_backoff()
        // The cache (and the indexes below) keep only what reconciles read (`decode::trim`).
        .modify(decode::trim)
        .inspect({
            let index = index.clone();
            let ownership = ownership.clone();
            let scope = namespace.clone();
            let episodes = episodes.clone();
            move |event| {
                if let Ok(event) = event {
                    // `Init` starts a (re)list before any request: not an answer.
                    if !matches!(event, watcher::Event::Init) {
                        api_server_answers(&episodes);
                    }
                    index.apply(event);
                    ownership.apply(&scope, event);
                    if matches!(event, watcher::Event::InitDone) {
                        ieps_synced.send_replace(true);
                    }
                }
            }
        })
        .reflect(writer)
        // After the store took the event: what it holds now ends the wait on our writes.
        .inspect({
            let own_writes = own_writes.clone();
            move |event| {
                if let Ok(event) = event {
                    own_writes.follow(event);
                }
            }
        })
        .applied_objects()
        .predicate_filter(relevant_change, Default::default());
    // Metadata only: the operator never caches Secret contents. Only namespace and name are
    // used; annotations (kubectl's last-applied copy may hold a key in plain text), labels
    // and managedFields are dropped at once so nothing downstream can log or keep them.
    let (secrets_synced, mut secrets_listed) = tokio::sync::watch::channel(false);
    let versions = Arc::new(secret_index::SecretVersions::default());
    let secret_stream = watcher(secrets, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|secret: &mut PartialObjectMeta<Secret>| {
            let meta = &mut secret.metadata;
            meta.annotations = None;
            meta.labels = None;
            meta.managed_fields = None;
        })
        // The Secrets that changed (`SecretVersions::is_change`), as `touched_objects` would
        // give them but without the listings that change nothing.
        .filter_map({
            let versions = versions.clone();
            move |event| {
                let changed = match event {
                    Ok(event) => {
                        let news = versions.is_change(&event);
                        versions.apply(&event);
                        if matches!(event, watcher::Event::InitDone) {
                            secrets_synced.send_replace(true);
                        }
                        match event {
                            watcher::Event::Apply(s) | watcher::Event::Delete(s) => Some(Ok(s)),
                            watcher::Event::InitApply(s) if news => Some(Ok(s)),
                            _ => None,
                        }
                    }
                    Err(error) => Some(Err(error)),
                };
                futures::future::ready(changed)
            }
        });
    tokio::spawn({
        async move {
            let listed = ieps_listed.wait_for(|listed| *listed).await.is_ok()
                && secrets_listed.wait_for(|listed| *listed).await.is_ok();
            if listed {
                info!("watches synced; ready");
                health.synced();
            }
        }
    });
    let concurrency = config.concurrency;
    let grace = config.shutdown_grace;
    let (probe_wake, probe_woken) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Arc::new(
        Context::new(client, config, metrics, ownership)
            .with_secret_versions(versions)
            .with_own_writes(own_writes),
    );
    ctx.probes.wake_with(probe_wake);
    tokio::spawn({
        let (slots, shutdown) = (ctx.slots.clone(), shutdown.clone());
        async move {
            shutdown.await;
            slots.close();
        }
    });
    info!(concurrency, "starting controller");
    // Unbounded in kube-rs: the limit is `ctx.slots`, shared fairly (a reconcile waiting there
    // holds no slot); kube-rs still never runs two reconciles of one object at once.
    let controller = Controller::for_stream(iep_stream, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(0))
        .watches_stream(secret_stream, move |secret| {
            // Secrets are namespaced: the API server gives every one a namespace.
            match secret.namespace() {
                Some(namespace) => router.route(&index, &namespace, &secret.name_any()),
                None => Vec::new(),
            }
        })
        // Secret events of other scopes that concern objects here (cross-namespace ECK refs),
        // and objects whose postponed probe has a free slot now (`health::Probes`).
        .reconcile_on(futures::stream::select(
            tokio_stream_of(triggered),
            tokio_stream_of(probe_woken),
        ))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, ctx)
        .for_each(move |result| {
            let episodes = episodes.clone();
            async move {
                match result {
                    // A watch that cannot list or watch: the span of `main` names the API
                    // server. kube's own ERROR line for the failed request is filtered out
                    // (`main`), so this is the one line of the outage.
                    Err(kube::runtime::controller::Error::QueueError(error)) => {
                        match episodes.failed() {
                            Level::Warn => warn!(
                                %error,
                                "cannot watch the Kubernetes API server; retrying (repeats at debug)"
                            ),
                            _ => tracing::debug!(%error, "cannot watch the Kubernetes API server; retrying"),
                        }
                    }
                    Err(error) => tracing::debug!(%error, "controller event"),
                    Ok(_) => api_server_answers(&episodes),
                }
            }
        });
    let stopped = shutdown::drain(controller, shutdown, listed, grace).await;
    info!(?stopped, "controller stopped");
    stopped
}

fn tokio_stream_of<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Count objects by their Ready condition, for the `endpoints` gauge.
pub fn readiness_counts(store: &Store<Decoded>) -> (i64, i64, i64) {
    let (mut ready, mut not_ready, mut unknown) = (0, 0, 0);
    for object in store.state() {
        let Some(iep) = object.typed() else {
            // Reported InvalidSpec: not ready.
            not_ready += 1;
            continue;
        };
        let condition = iep
            .status
            .as_ref()
            .and_then(|s| conditions::ready(&s.conditions));
        match condition.map(|c| c.status.as_str()) {
            Some("True") => ready += 1,
            Some("False") => not_ready += 1,
            _ => unknown += 1,
        }
    }
    (ready, not_ready, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::InferenceEndpoint;
    use serde_json::json;

    fn iep(name: &str, namespace: &str, spec: serde_json::Value) -> InferenceEndpoint {
        serde_json::from_value(json!({
            "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let initial = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        let within = |d: Duration, secs: f64| {
            let s = d.as_secs_f64();
            s >= secs * 0.9 - 1e-9 && s <= secs * 1.1 + 1e-9
        };
        assert!(within(backoff(initial, max, 1), 1.0));
        assert!(within(backoff(initial, max, 2), 2.0));
        assert!(within(backoff(initial, max, 5), 16.0));
        assert!(within(backoff(initial, max, 7), 60.0));
        assert!(within(backoff(initial, max, u32::MAX), 60.0));
    }

    #[test]
    fn status_only_changes_are_filtered_out() {
        let spec = json!({
            "elasticsearch": {"url": "https://es:9200"}, "taskType": "completion",
            "azureOpenAI": {"resourceName": "r", "deploymentId": "d", "apiVersion": "v", "apiKeySecretRef": {"name": "azure", "key": "k"}}
        });
        let mut a = iep("a", "ns", spec);
        a.metadata.generation = Some(1);
        let mut b = a.clone();
        b.status = Some(Default::default());
        b.metadata.resource_version = Some("99".into());
        assert_eq!(relevant_change(&a), relevant_change(&b));
        // Our finalizer is added in the pass that applies: no second pass for it; another
        // controller's is a change.
        let mut c = a.clone();
        c.metadata.finalizers = Some(vec![FINALIZER.into()]);
        assert_eq!(relevant_change(&a), relevant_change(&c));
        c.metadata.finalizers = Some(vec![FINALIZER.into(), "example.com/other".into()]);
        assert_ne!(relevant_change(&a), relevant_change(&c));
        let mut d = a.clone();
        d.metadata.generation = Some(2);
        assert_ne!(relevant_change(&a), relevant_change(&d));
        // So is the record of the creates sent, written in the pass that sends them; any other
        // annotation is a change.
        let mut e = a.clone();
        let intent = (
            in_flight::CREATE_INTENT_ANNOTATION.to_owned(),
            "[]".to_owned(),
        );
        e.metadata.annotations = Some([intent].into());
        assert_eq!(relevant_change(&a), relevant_change(&e));
        e.metadata.annotations =
            Some([(crate::api::ADOPT_ANNOTATION.to_owned(), "true".to_owned())].into());
        assert_ne!(relevant_change(&a), relevant_change(&e));
    }

    #[test]
    fn the_defaults_are_the_command_lines() {
        let config = Config::default();
        assert!(config.namespaces.is_empty());
        assert_eq!(config.recheck_interval, Duration::from_secs(300));
        assert_eq!(config.backoff_initial, Duration::from_secs(1));
        assert_eq!(config.backoff_max, Duration::from_secs(300));
        assert_eq!(config.concurrency, 32);
        assert_eq!(config.kube_timeout, Duration::from_secs(15));
        let connection = &config.connection;
        assert_eq!(connection.request_timeout, Duration::from_secs(30));
        assert!(!connection.allow_cross_namespace_refs);
        assert_eq!(connection.eck_url_template, DEFAULT_ECK_URL_TEMPLATE);
        assert!(connection.require_secret_opt_in);
        let destinations = &connection.destinations;
        assert!(destinations.allow.is_empty() && !destinations.eck_only);
        assert_eq!(
            destinations.deny,
            destination::parse_rules(destination::DEFAULT_DENY).unwrap()
        );
    }

    #[test]
    fn flags_fill_the_same_struct() {
        use clap::{Args, FromArgMatches};
        let command = Config::augment_args(clap::Command::new("run")).mut_args(|a| a.env(None));
        let matches = command
            .try_get_matches_from([
                "run",
                "--namespace",
                "a,b",
                "--require-secret-opt-in",
                "false",
                "--es-deny",
                "10.0.0.0/8,*.internal",
                "--es-request-timeout",
                "5s",
            ])
            .unwrap();
        let config = Config::from_arg_matches(&matches).unwrap().normalized();
        assert_eq!(config.namespaces, ["a", "b"]);
        assert!(!config.connection.require_secret_opt_in);
        assert_eq!(config.connection.destinations.deny.len(), 2);
        assert_eq!(config.connection.request_timeout, Duration::from_secs(5));
        let empty = Config {
            namespaces: vec![String::new()],
            ..Config::default()
        };
        assert!(empty.normalized().namespaces.is_empty(), "'' means all");
    }
}
