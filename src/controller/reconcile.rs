//! The reconcile, in phases: `observe` (Secrets, connection, Elasticsearch GET, the ownership
//! index) → `decide` (pure: ownership, [`plan`], and the wording of the outcome) → `act` (the
//! Elasticsearch calls the plan names) → status (built from what was applied, one patch, only if
//! it changed) → Event (only on a transition). [`apply_in`] drives them.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::api::{
    ClusterStatus, DeletionPolicy, EndpointStatus, InferenceEndpoint, InferenceEndpointStatus,
    UpdatePolicy, UsedBy, ACCEPT_CLUSTER_ANNOTATION, ADOPT_ANNOTATION, FINALIZER,
    FORCE_DELETE_ANNOTATION,
};
use crate::controller::conditions::{self, Applied, Failure, Outcome, Reason, Warning};
use crate::controller::connection::{insecure_transport, Connection};
use crate::controller::decode::{Decoded, Undecodable};
use crate::controller::desired::{check_supported, desired, Desired, SecretFrom, SecretInput};
use crate::controller::health;
use crate::controller::identity::Identity;
use crate::controller::in_flight::{self, Intents};
use crate::controller::outcome_log::{self, Next};
use crate::controller::ownership::{self, Claimant, Record};
use crate::controller::plan::{
    chunking_reset_outcome, deployed, deploying_after_put, deployment_id, plan, still_deploying,
    unused_before_recreate, users_can_be_listed, Change, Plan, PlanInput, SecretRotation,
};
use crate::controller::previous_key;
use crate::reason::Kind;

use crate::controller::secret_index::{version_of, versions_key, Version};
use crate::controller::slots::Slot;
use crate::controller::snapshot::{self, Found, Listing};
use crate::controller::status_compat;
use crate::controller::usage::{self, UsageRead};
use crate::controller::{self, outcomes, Context, Error, FIELD_MANAGER};
use crate::elasticsearch::client::put_deadline;
use crate::elasticsearch::client::LISTING_LIMIT;
use crate::elasticsearch::normalize::compare;
use crate::elasticsearch::service::same_service;
use crate::elasticsearch::service::SecretKeys;
use crate::elasticsearch::{
    update_body, DeleteOptions, DeleteOutcome, DeploymentStats, Difference, Endpoint, EsError,
};
use crate::elasticsearch::{ServiceProfile, TaskType};
use crate::endpoint::{EndpointConfig, ServiceSecret, ServiceSecrets};
use crate::metrics::EsOperation;
use crate::secrets::{fingerprint, text_value, text_values, SecretError, SecretReader};

/// How long a PUT of an in-cluster model (`elasticsearch`, `elser`) asks Elasticsearch to wait
/// for the model's deployment (`?timeout=`, 8.19 and 9.1 on; Elasticsearch's default is 30 s).
/// Long enough that a model already on the ML nodes usually starts within it, so the common case
/// is one reconcile; short enough that a reconcile slot (one of `--concurrency`) is never held
/// while a model downloads and deploys, which takes minutes (docs/lifecycle.md#slow-model-deployments).
pub const MODEL_DEPLOY_WAIT: Duration = Duration::from_secs(5);
/// How often a deployment that has not started yet is checked again (±10 % jitter): a GET of
/// the endpoint and one of the deployment's stats, no write. Not the error backoff, which would
/// grow to minutes while the model is merely loading; not faster, as a deployment takes tens of
/// seconds to minutes.
pub const MODEL_DEPLOY_POLL: Duration = Duration::from_secs(15);

/// Bring Elasticsearch in line with the object, then report: the driver of the phases
/// observe → decide → act (`reconcile_endpoint`) → status → Event (`report`). Runs in reconcile
/// slot `slot`, given back once the pass's last Elasticsearch request has answered: the status
/// patch and the Event hold none (docs/lifecycle.md#fair-reconcile-slots).
pub async fn apply_in(
    iep: Arc<InferenceEndpoint>,
    who: &Identity,
    ctx: Arc<Context>,
    slot: &mut Option<Slot>,
) -> Result<Action, Error> {
    apply_from(iep, who, ctx, slot, None).await
}

/// [`apply_in`], starting from `early`, an observation made while the finalizer patch was in
/// flight ([`hold_in`]).
async fn apply_from(
    iep: Arc<InferenceEndpoint>,
    who: &Identity,
    ctx: Arc<Context>,
    slot: &mut Option<Slot>,
    early: Option<Result<Observed, Failure>>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let previous = iep.status.clone().unwrap_or_default();
    let mut usage = UsageRead::NotRead;
    let endpoint = reconcile_endpoint(&iep, who, &ctx, &previous, &mut usage, early).await;
    let _reporting = match slot.take() {
        Some(held) => Some(held.report().await),
        None => None,
    };
    let (mut status, outcome) = match endpoint {
        Ok(applied) => (
            recorded_status(&previous, &applied.applied),
            Outcome::from(&keep_steady_state_wording(&previous, applied)),
        ),
        // A failure changes nothing the status records about the endpoint (but a rejected
        // credential, which is not tried again until the Secret changes).
        Err(failure) => {
            let mut status = previous.clone();
            if let Some(rejected) = &failure.rejected_fingerprint {
                status.rejected_credential_fingerprint = Some(rejected.clone());
            }
            (
                status,
                Outcome::from(keep_rejection_wording(&previous, failure)),
            )
        }
    };
    status.used_by = record_usage(&ctx, who, previous.used_by.as_ref(), &usage);
    status.target_inference_id = Some(iep.inference_id().to_owned());
    let transition = conditions::is_transition(&previous.conditions, &outcome);
    let verdict = health_verdict(&iep, who, &ctx, &previous);
    report(
        iep.as_ref(),
        who,
        &ctx,
        previous,
        status,
        &outcome,
        warnings(&iep),
        verdict.as_ref(),
        "Reconcile",
    )
    .await?;
    ctx.metrics
        .reconciled(outcome.state().into(), started.elapsed());
    ctx.metrics.endpoint_state(
        &who.namespace,
        &who.name,
        outcome.is_ready(),
        verdict.map(|v| v.health.gauge()),
    );
    Ok(logged_action(who, &ctx, &outcome, transition))
}

/// The next action after `outcome`, and the log line that reports the outcome with it. Only a
/// Ready object is probed: its next reconcile comes at its next probe at the latest.
fn logged_action(who: &Identity, ctx: &Context, outcome: &Outcome, transition: bool) -> Action {
    let next = if outcome.is_ready() {
        ctx.next_or_probe(who, outcome)
    } else {
        ctx.next(who, outcome)
    };
    outcome_log::log(who, outcome, transition, next);
    controller::action(next)
}

/// The `Healthy` verdict to report: the last probe of this process, else what status recorded
/// (a restart), else `NotProbed`; `None` (and the schedule dropped) when health checks are off.
fn health_verdict(
    iep: &InferenceEndpoint,
    who: &Identity,
    ctx: &Context,
    previous: &InferenceEndpointStatus,
) -> Option<health::Verdict> {
    let on = health::interval(
        iep.spec.health_check.as_ref(),
        ctx.config.health_check_interval,
    )
    .is_some();
    if !on {
        ctx.probes.forget(&who.uid);
        return None;
    }
    ctx.probes
        .verdict(&who.uid)
        .or_else(|| health::healthy(&previous.conditions).and_then(health::recorded))
        .or_else(|| Some(health::not_probed(iep.inference_id())))
}

/// While a rejected credential waits for the Secret to change, the reconciles that find it
/// unchanged keep the message of the rejection (which says how it was rejected), so they write
/// no status.
fn keep_rejection_wording(previous: &InferenceEndpointStatus, failure: Failure) -> Failure {
    let waiting =
        failure.reason == Reason::CredentialsRejected && failure.rejected_fingerprint.is_none();
    match conditions::ready(&previous.conditions) {
        Some(ready) if waiting && ready.reason == Reason::CredentialsRejected.as_str() => Failure {
            message: ready.message.clone(),
            ..failure
        },
        _ => failure,
    }
}

/// Observe, decide, act: what was applied, or why not. A provider's failure carries the
/// service's reason (`AzureRejectedCredentials` for Azure OpenAI, `ProviderRejectedCredentials`
/// for the others).
async fn reconcile_endpoint(
    iep: &InferenceEndpoint,
    who: &Identity,
    ctx: &Context,
    previous: &InferenceEndpointStatus,
    usage: &mut UsageRead,
    early: Option<Result<Observed, Failure>>,
) -> Result<Applied<Recorded>, Failure> {
    let desired = desired(iep)?;
    let service = desired.config.service.as_str();
    let result = async {
        let mut observed = match early {
            Some(early) => early?.recorded_on(iep, previous),
            None => observe(iep, who, ctx, &desired, previous, Freshness::Recheck).await?,
        };
        // A re-check observes from the listing and without reading unchanged Secrets; what
        // is to be written, or probed with the key, is observed again, fresh.
        let stale = observed.listed || !observed.secrets_read;
        if (stale && writes(&decide(iep, &desired.config, &observed, previous)))
            || (!observed.secrets_read && probe_due(iep, who, ctx))
        {
            observed = observe(iep, who, ctx, &desired, previous, Freshness::Now).await?;
        }
        let plan = decide(iep, &desired.config, &observed, previous);
        debug!(inference_id = desired.config.inference_id, ?plan, "planned");
        if let Some(waiting) = awaiting_deployment(ctx, &desired.config, &observed, &plan) {
            return Ok(waiting);
        }
        // A create's users are not read in its pass (which costs a GET and a PUT only), but one
        // `--used-by-interval` after it became Ready (`usage_due`).
        let creates = matches!(plan, Plan::Create(_));
        let acted = act(
            ctx,
            who,
            &desired,
            &observed,
            plan,
            chunking_reset_seen(previous),
            usage,
        )
        .await;
        // Only this object's endpoint: a blocked plan may face someone else's under the id.
        let cluster = &observed.connection.info.cluster_uuid;
        let owned = Record::of(Some(previous)).owns(&desired.config.inference_id, cluster);
        let ours = acted.is_ok() || (owned && observed.endpoint.is_some());
        if ours && !creates && !usage.was_attempted() && usage_due(ctx, who, previous) {
            let config = &desired.config;
            let id = config.inference_id.as_str();
            *usage = read_usage(ctx, &observed.connection, config.task_type, id).await;
        }
        let applied = acted?;
        probe_if_due(iep, who, ctx, &observed, &desired.config).await;
        Ok(applied)
    };
    result
        .await
        .map_err(|failure: Failure| failure.for_service(service))
}

/// The object is being deleted: remove the endpoint under policy `Delete`.
pub async fn cleanup(
    iep: Arc<InferenceEndpoint>,
    who: &Identity,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let mut usage = UsageRead::NotRead;
    let outcome = match remove(&iep, who, &ctx, &mut usage).await {
        Ok(Removal::Done(applied)) => Outcome::from(&applied),
        Ok(Removal::Waiting(delay)) => return Ok(Action::requeue(delay)),
        Err(failure) => Outcome::from(failure),
    };
    let action = if outcome.is_ready() {
        release(iep.as_ref(), who, &ctx).await?;
        forget_object(&ctx, who);
        publish(&ctx, iep.as_ref(), &outcome, "Delete");
        Action::await_change()
    } else {
        // Keep the finalizer, say why on the object, and retry with backoff: deletion is not
        // something a change of the object can unblock, so even "permanent" refusals are
        // re-checked. Not an error: the reconcile did its work, Elasticsearch said no.
        let previous = iep.status.clone().unwrap_or_default();
        let transition = conditions::is_transition(&previous.conditions, &outcome);
        let status = InferenceEndpointStatus {
            used_by: record_usage(&ctx, who, previous.used_by.as_ref(), &usage),
            ..previous.clone()
        };
        report(
            iep.as_ref(),
            who,
            &ctx,
            previous,
            status,
            &outcome,
            warnings(&iep),
            recorded_health(&iep).as_ref(),
            "Delete",
        )
        .await?;
        let next = Next::Retry(ctx.backoff_delay(who));
        outcome_log::log(who, &outcome, transition, next);
        controller::action(next)
    };
    ctx.metrics
        .reconciled(outcome.state().into(), started.elapsed());
    Ok(action)
}

/// Add this operator's finalizer, then apply in the same pass to the object the patch answers
/// with: the patch returns once the finalizer is stored, so nothing reaches Elasticsearch
/// before it (the guarantee of kube's `finalizer()`, without its second pass). The finalizer is
/// also the mark that a create may have been sent ([`unrecorded`]), and the same patch records
/// the settings of that create ([`in_flight::CREATE_INTENT_ANNOTATION`]), so that an endpoint it
/// leaves unseen is still known as this object's. Its own watch event brings no second pass
/// (`controller::relevant_change` leaves this finalizer and that annotation out).
pub async fn hold(
    iep: Arc<InferenceEndpoint>,
    who: &Identity,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    hold_in(iep, who, ctx, &mut None).await
}

/// [`hold`] in reconcile slot `slot` (see [`apply_in`]). The reads of the first pass (the
/// service Secrets, the connection, the GET of the id) run while the finalizer patch is in
/// flight: they send nothing Elasticsearch would store, and every write waits for the patch.
/// The object the patch answers with is applied from that observation only if it is the one
/// observed ([`observed_alike`]), else observed again.
pub async fn hold_in(
    iep: Arc<InferenceEndpoint>,
    who: &Identity,
    ctx: Arc<Context>,
    slot: &mut Option<Slot>,
) -> Result<Action, Error> {
    let patch = finalizer_patch(&iep);
    let previous = iep.status.clone().unwrap_or_default();
    let early = async {
        let desired = desired(&iep).ok()?;
        Some(observe(&iep, who, &ctx, &desired, &previous, Freshness::Recheck).await)
    };
    let stored = patch_metadata(iep.as_ref(), who, &ctx, patch, "add finalizer");
    let (stored, early) = tokio::join!(stored, early);
    match stored?.0 {
        Ok(held) => {
            let early = early.filter(|_| observed_alike(&iep, &held));
            apply_from(Arc::new(held), who, ctx, slot, early).await
        }
        // Changed meanwhile into something that does not decode: its watch event reports it.
        Err(_) => Ok(Action::await_change()),
    }
}

/// Whether an observation of `observed` holds for `held`, the object the finalizer patch
/// answered with: the same spec, generation and status, and the same annotations but the
/// record of creates the patch added (an observation reads nothing else of the object). The
/// patch is guarded by the resourceVersion observed, so they differ only if the API server
/// changed the object on the way (a mutating admission webhook, inferred).
fn observed_alike(observed: &InferenceEndpoint, held: &InferenceEndpoint) -> bool {
    let others = |iep: &InferenceEndpoint| {
        let annotations = iep.metadata.annotations.iter().flatten();
        annotations
            .filter(|(k, _)| *k != in_flight::CREATE_INTENT_ANNOTATION)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    observed.metadata.generation == held.metadata.generation
        && observed.spec == held.spec
        && observed.status == held.status
        && others(observed) == others(held)
}

/// The metadata the first pass merges: this operator's finalizer, and the record of the create
/// about to be sent when the spec has a config ([`in_flight::CREATE_INTENT_ANNOTATION`]).
fn finalizer_patch(iep: &InferenceEndpoint) -> serde_json::Value {
    let mut finalizers = iep.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    let mut metadata = json!({"finalizers": finalizers});
    // A spec without a config creates nothing; its reconcile reports why.
    if let Ok(desired) = desired(iep) {
        let intents = Intents::of(iep.metadata.annotations.as_ref());
        let value = (!intents.covers(&desired.config))
            .then(|| intents.with(&desired.config))
            .flatten();
        if let Some(value) = value {
            metadata["annotations"] = json!({ in_flight::CREATE_INTENT_ANNOTATION: value });
        }
    }
    metadata
}

/// An object whose spec does not match the types (stored under a looser schema): say which
/// field, send nothing to Elasticsearch, and wait for a change of the object. Being deleted, it
/// is let go without a cleanup: its spec cannot say where the endpoint lives, so whatever it
/// created is left in Elasticsearch, and the Event says so.
pub async fn undecodable(
    object: &Decoded,
    who: &Identity,
    invalid: &Undecodable,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let previous = invalid.status.clone().unwrap_or_default();
    let deleting = object.meta().deletion_timestamp.is_some();
    let outcome = Outcome::from(undecodable_outcome(invalid, deleting));
    ctx.metrics
        .reconciled(outcome.state().into(), started.elapsed());
    if deleting {
        let (reason, message) = (outcome.reason.as_str(), &outcome.message);
        let named = format!("{}/{}", who.namespace, who.name);
        warn!(object = named, reason, message, "let go without a cleanup");
        release(object, who, &ctx).await?;
        forget_object(&ctx, who);
        publish(&ctx, object, &outcome, "Delete");
        return Ok(Action::await_change());
    }
    let transition = conditions::is_transition(&previous.conditions, &outcome);
    report(
        object,
        who,
        &ctx,
        previous.clone(),
        previous,
        &outcome,
        Vec::new(),
        invalid
            .status
            .as_ref()
            .and_then(|s| health::healthy(&s.conditions))
            .and_then(health::recorded)
            .as_ref(),
        "Reconcile",
    )
    .await?;
    Ok(logged_action(who, &ctx, &outcome, transition))
}

/// `InvalidSpec`, naming the field and value serde could not decode, and (when the object is
/// being deleted) the endpoint left behind.
fn undecodable_outcome(invalid: &Undecodable, deleting: bool) -> Failure {
    let schema = format!(
        "the object does not match the InferenceEndpoint schema ({})",
        invalid.error
    );
    let recorded = invalid
        .status
        .as_ref()
        .and_then(|s| s.inference_id.as_deref());
    let message = match (deleting, recorded) {
        (false, _) => format!(
            "{schema}; nothing is sent to Elasticsearch. Correct that field"
        ),
        (true, Some(id)) => format!(
            "{schema}; it is let go without a cleanup, so inference endpoint {id} is left in Elasticsearch"
        ),
        (true, None) => format!("{schema}; it is let go (it recorded no inference endpoint)"),
    };
    Failure::new(Reason::InvalidSpec, message)
}

/// The `Healthy` verdict status records (kept as it is while the object is not reconciled).
fn recorded_health(iep: &InferenceEndpoint) -> Option<health::Verdict> {
    let status = iep.status.as_ref()?;
    health::healthy(&status.conditions).and_then(health::recorded)
}

/// Everything kept per object in memory and in the metrics: the object is gone.
fn forget_object(ctx: &Context, who: &Identity) {
    ctx.forget(who);
    ctx.connections.forget_remembered(&who.uid);
    ctx.usage.forget(&who.uid);
    ctx.probes.forget(&who.uid);
    ctx.creates.forget(&who.uid);
    ctx.own_writes.forget(&who.uid);
    ctx.accepted_secrets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&who.uid);
    ctx.metrics.forget_endpoint(&who.namespace, &who.name);
}

/// Remove this operator's finalizer (if present).
async fn release(object: &impl Resource, who: &Identity, ctx: &Context) -> Result<(), Error> {
    let finalizers = object.finalizers();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let rest: Vec<String> = finalizers
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(object, who, ctx, &rest, "remove finalizer")
        .await
        .map(|_| ())
}

/// Set the finalizers, guarded by the resourceVersion read: a concurrent change (another
/// controller's finalizer) fails the patch instead of being overwritten, and is retried. The
/// object as stored is the answer.
async fn patch_finalizers(
    object: &impl Resource,
    who: &Identity,
    ctx: &Context,
    finalizers: &[String],
    what: &'static str,
) -> Result<Decoded, Error> {
    let metadata = json!({"finalizers": finalizers});
    patch_metadata(object, who, ctx, metadata, what).await
}

/// Merge `metadata` into the object's, guarded by the resourceVersion read (see
/// [`patch_finalizers`]). The object as stored is the answer.
async fn patch_metadata(
    object: &impl Resource,
    who: &Identity,
    ctx: &Context,
    mut metadata: serde_json::Value,
    what: &'static str,
) -> Result<Decoded, Error> {
    metadata["resourceVersion"] = json!(object.resource_version());
    let patch = json!({ "metadata": metadata });
    let api: Api<Decoded> = Api::namespaced(ctx.client.clone(), &who.namespace);
    let stored = tokio::time::timeout(
        ctx.config.kube_timeout,
        api.patch(&who.name, &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    .map_err(|_| Error::KubeTimeout(what))?
    .map_err(Error::Kube)?;
    let after = stored.meta().resource_version.as_deref();
    ctx.own_writes
        .wrote(&who.uid, object.resource_version().as_deref(), after);
    Ok(stored)
}

/// What a reconcile reads before deciding.
struct Observed {
    /// The connection, and through it the cluster's identity and version.
    connection: Arc<Connection>,
    /// The service's secrets (none for in-cluster services) and their fingerprint. Left empty
    /// on a re-check that found the Secrets unchanged (`secrets_read` false): the fingerprint
    /// is then the one applied.
    secrets: ServiceSecrets,
    secrets_read: bool,
    /// The endpoint was answered from the connection's listing, not by a GET of its id.
    listed: bool,
    fingerprint: String,
    /// The fingerprint of no secret at all: what status records for an endpoint created
    /// without one.
    keyless_fingerprint: String,
    /// What Elasticsearch holds under the id (`None`: GET answered 404).
    endpoint: Option<Endpoint>,
    /// Another object (`namespace/name`) that manages the id in this cluster, from the
    /// ownership facts of every watched scope.
    claimed_by: Option<String>,
    /// The model deployment of an in-cluster endpoint, read only while one is awaited (the last
    /// outcome was `ModelDeploying`): once Ready, no `_ml` call is made.
    deployment: Option<DeploymentStats>,
    /// The creates the object records it may have sent, while its status records no endpoint
    /// (`None` once it does: ownership is then the record's alone).
    intents: Option<Intents>,
}

impl Observed {
    /// This observation for `iep`, which is the object observed with the record of creates the
    /// finalizer patch added ([`hold_in`]): the record is read from `iep`, so the create it
    /// covers is not recorded a second time ([`intend`]).
    fn recorded_on(self, iep: &InferenceEndpoint, previous: &InferenceEndpointStatus) -> Self {
        Observed {
            intents: recorded_intents(iep, previous),
            ..self
        }
    }
}

/// The creates the object records it may have sent, while its status records no endpoint.
fn recorded_intents(
    iep: &InferenceEndpoint,
    previous: &InferenceEndpointStatus,
) -> Option<Intents> {
    let unrecorded = Record::of(Some(previous)).inference_id.is_none();
    unrecorded.then(|| Intents::of(iep.metadata.annotations.as_ref()))
}

/// How fresh an observation must be ([`observe`]).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Freshness {
    /// A re-check: unchanged Secrets are not read again, and the endpoint may come from the
    /// connection's listing.
    Recheck,
    /// Something is to be written (or probed): read the service Secrets and GET the id.
    Now,
}

/// Read the service credential, connect, and GET the endpoint. What the cluster's version
/// cannot hold is refused before any endpoint request.
async fn observe(
    iep: &InferenceEndpoint,
    who: &Identity,
    ctx: &Context,
    desired: &Desired,
    previous: &InferenceEndpointStatus,
    freshness: Freshness,
) -> Result<Observed, Failure> {
    let namespace = &who.namespace;
    let uid = &who.uid;
    // The service's secrets and the connection's Secrets are independent reads.
    let (secrets, connection) = tokio::join!(
        service_secrets(ctx, who, desired, previous, freshness),
        ctx.connections.connect(iep, namespace, &ctx.client),
    );
    let (secrets, current) = secrets.map_err(|e| outcomes::from_secret(&e))?;
    let mut connection = connection?;
    check_supported(desired, &connection.info.version)?;
    let listed = freshness == Freshness::Recheck
        && snapshot::may_use_listing(
            conditions::ready(&previous.conditions).is_some_and(|c| c.status == "True"),
            iep.meta().generation,
            previous.observed_generation,
            &current,
            previous.credential_fingerprint.as_deref(),
        );
    let (mut endpoint, mut listed) =
        observe_endpoint(ctx, &connection, &desired.config, listed).await?;
    if endpoint.is_none() && Record::of(Some(previous)).names(&desired.config.inference_id) {
        // Our endpoint is gone. Before recreating it, make sure the same cluster still answers
        // at this address (a rebuilt cluster is reported, not silently written to): the
        // cached connection read the cluster's identity when it was built.
        ctx.connections.forget(&connection.key);
        connection = ctx.connections.connect(iep, namespace, &ctx.client).await?;
        check_supported(desired, &connection.info.version)?;
        endpoint = get(ctx, &connection, &desired.config).await?;
        listed = false;
    }
    ctx.connections.remember(uid, &connection);
    let id = &desired.config.inference_id;
    let me = Claimant::of(who, iep);
    let claimed_by = ownership::claimed_by(
        &me,
        &ctx.ownership.claimants(id),
        &connection.info.cluster_uuid,
    );
    let deployment = if awaits_deployment(&desired.config, previous) {
        deployment(ctx, &connection, &desired.config).await?
    } else {
        None
    };
    Ok(Observed {
        deployment,
        intents: recorded_intents(iep, previous),
        secrets_read: secrets.is_some(),
        listed,
        secrets: secrets.unwrap_or_default(),
        fingerprint: current,
        keyless_fingerprint: fingerprint(uid, &ServiceSecrets::default()),
        connection,
        endpoint,
        claimed_by,
    })
}

/// The service secrets and their fingerprint. On a re-check of a Ready object, Secrets whose
/// versions (from the metadata watch) are those last read, giving the fingerprint that was
/// applied, are not read again: `None` and the applied fingerprint. Any other case reads them.
async fn service_secrets(
    ctx: &Context,
    who: &Identity,
    desired: &Desired,
    previous: &InferenceEndpointStatus,
    freshness: Freshness,
) -> Result<(Option<ServiceSecrets>, String), SecretError> {
    let uid = &who.uid;
    let key = secrets_key(ctx, &who.namespace, &desired.secrets);
    let applied = previous.credential_fingerprint.as_deref();
    // Only a Ready object skips the read: any other is about to retry something.
    let ready = conditions::ready(&previous.conditions).is_some_and(|c| c.status == "True");
    if let (Freshness::Recheck, Some(key), true) = (freshness, key, ready) {
        let recalled = ctx.connections.recall_service(uid, key);
        if let Some(fingerprint) = recalled.filter(|f| Some(f.as_str()) == applied) {
            return Ok((None, fingerprint));
        }
    }
    let (secrets, read) = read_secrets(&ctx.secrets(&who.namespace), &desired.secrets).await?;
    let fingerprint = fingerprint(uid, &secrets);
    // Remembered under the versions as read (the watch may not have listed them yet).
    if let Some(key) = read.and_then(|read| secrets_key_of(&who.namespace, &desired.secrets, &read))
    {
        ctx.connections.record_service(uid, key, &fingerprint);
    }
    Ok((Some(secrets), fingerprint))
}

/// What the service secrets are read from (the spec's references and the versions of the
/// Secrets they name, as the watch saw them), hashed; `None` when a version is unknown.
fn secrets_key(ctx: &Context, namespace: &str, inputs: &[SecretInput]) -> Option<u64> {
    let names: Vec<_> = inputs
        .iter()
        .map(|input| (namespace.to_owned(), secret_name(input).to_owned()))
        .collect();
    let versions = ctx.connections.versions().all(&names)?;
    Some(keyed(namespace, inputs, &versions))
}

/// [`secrets_key`] from the resourceVersions of the Secrets as read.
fn secrets_key_of(namespace: &str, inputs: &[SecretInput], read: &[String]) -> Option<u64> {
    let versions: Vec<_> = read.iter().map(|v| version_of(v)).collect();
    (versions.len() == inputs.len()).then(|| keyed(namespace, inputs, &versions))
}

fn secret_name(input: &SecretInput) -> &str {
    match &input.from {
        SecretFrom::Key(key) => &key.name,
        SecretFrom::Secret(name) => name,
    }
}

fn keyed(namespace: &str, inputs: &[SecretInput], versions: &[Version]) -> u64 {
    let mut described = Vec::with_capacity(inputs.len() * 3 + 1);
    for input in inputs {
        let key = match &input.from {
            SecretFrom::Key(key) => key.key.as_str(),
            SecretFrom::Secret(_) => "",
        };
        described.extend([input.field.as_str(), secret_name(input), key]);
    }
    described.push(namespace);
    versions_key(&described, versions)
}

/// The endpoint under the id: from the connection's listing when `listed` and the listing can
/// tell, else a GET of the id; and whether it came from the listing.
async fn observe_endpoint(
    ctx: &Context,
    connection: &Connection,
    config: &EndpointConfig,
    listed: bool,
) -> Result<(Option<Endpoint>, bool), Failure> {
    let single = || async { Ok((get(ctx, connection, config).await?, false)) };
    if !listed {
        return single().await;
    }
    let freshness = snapshot::freshness(ctx.config.recheck_interval);
    let client = &connection.client;
    let list = || async {
        let requested = Instant::now();
        let endpoints = timed(ctx, EsOperation::List, client.list_endpoints()).await?;
        Ok(Listing::new(requested, endpoints, LISTING_LIMIT))
    };
    let replaced = |before| client.forget_writes_before(before);
    let listing = if snapshot::worth_listing(connection.users()) {
        connection.listing.current(freshness, list, replaced).await
    } else {
        connection.listing.fresh(freshness).await
    };
    let Some(listing) = listing else {
        return single().await;
    };
    let id = &config.inference_id;
    let written = client.written_since(id, listing.requested);
    match snapshot::lookup(&listing, config.task_type, id, written) {
        Found::Endpoint(endpoint) => Ok((Some(endpoint), true)),
        Found::Absent => Ok((None, true)),
        Found::Unknown => single().await,
    }
}

/// Whether a plan writes to Elasticsearch: then what it acts on must be fresh.
fn writes(plan: &Plan<'_>) -> bool {
    !matches!(
        plan,
        Plan::Blocked(_)
            | Plan::Change {
                change: Change::Nothing,
                ..
            }
    )
}

/// Every secret key of the endpoint, read concurrently from the Secrets the spec names; with
/// the resourceVersions of the Secrets read, in the order of `inputs` (`None` if one had none).
async fn read_secrets(
    reader: &SecretReader,
    inputs: &[SecretInput],
) -> Result<(ServiceSecrets, Option<Vec<String>>), SecretError> {
    let reads = inputs.iter().map(|input| async move {
        let name = secret_name(input);
        let secret = reader.get(name).await?;
        let version = secret.metadata.resource_version.clone();
        let value = match &input.from {
            SecretFrom::Key(key) => {
                ServiceSecret::new(&input.field, text_value(&secret, name, &key.key)?)
            }
            SecretFrom::Secret(_) => ServiceSecret::map(&input.field, text_values(&secret, name)?),
        };
        Ok::<_, SecretError>((value, version))
    });
    let (values, versions): (Vec<_>, Vec<_>) = futures::future::try_join_all(reads)
        .await?
        .into_iter()
        .unzip();
    let versions = versions.into_iter().collect::<Option<Vec<String>>>();
    Ok((ServiceSecrets::new(values), versions))
}

/// The pure decision: ownership (per cluster: an endpoint recorded in another cluster is not
/// ours here), then the plan and the wording of its success.
fn decide<'e>(
    iep: &InferenceEndpoint,
    desired: &EndpointConfig,
    observed: &'e Observed,
    previous: &InferenceEndpointStatus,
) -> Plan<'e> {
    let info = &observed.connection.info;
    let record = Record::of(Some(previous));
    // One that matches the spec is adopted as before (and worded so); the recorded creates
    // decide for one that differs: an earlier spec's create, landed unseen.
    let landed = |endpoint, intents| {
        ownership::own_create_landed(&record, intents, endpoint, &info.version)
            && !compare(desired, endpoint, &info.version).is_empty()
    };
    let owned = record.owns(&desired.inference_id, &info.cluster_uuid)
        || matches!((&observed.endpoint, &observed.intents), (Some(e), Some(i)) if landed(e, i));
    let plan = plan(&PlanInput {
        desired,
        observed: observed.endpoint.as_ref(),
        owned,
        fingerprint: &observed.fingerprint,
        applied_fingerprint: previous.credential_fingerprint.as_deref().filter(|_| owned),
        version: &info.version,
        adopt: iep.annotated(ADOPT_ANNOTATION, "true"),
        recreate: iep.spec.update_policy == UpdatePolicy::Recreate,
        claimed_by: observed.claimed_by.as_deref(),
        cluster_uuid: &info.cluster_uuid,
        recorded_cluster_uuid: record.recorded_cluster(),
        accepted_cluster_uuid: iep
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ACCEPT_CLUSTER_ANNOTATION))
            .map(String::as_str),
        chunking_reset_seen: chunking_reset_seen(previous),
        cluster_name: &info.cluster_name,
        credential_recorded: previous.credential_fingerprint.is_some(),
        secrets: secret_rotation(
            &desired.service,
            &observed.secrets,
            previous.credential_fingerprint.as_deref() == Some(&observed.keyless_fingerprint),
        ),
        rejected_fingerprint: previous.rejected_credential_fingerprint.as_deref(),
    });
    if !awaits_deployment(desired, previous) {
        return plan;
    }
    let cluster = format!("cluster {} ({})", info.cluster_name, info.version);
    plan.reworded(|done| deployed(desired, done, &cluster))
}

/// The object last reported `ModelDeploying` for a service that deploys a model: its
/// deployment is awaited.
fn awaits_deployment(config: &EndpointConfig, previous: &InferenceEndpointStatus) -> bool {
    deploys_model(config)
        && conditions::ready(&previous.conditions).and_then(|c| Reason::parse(&c.reason))
            == Some(Reason::ModelDeploying)
}

fn deploys_model(config: &EndpointConfig) -> bool {
    ServiceProfile::lookup(&config.service).is_some_and(|p| p.deploys_model)
}

/// `GET _ml/trained_models/{deployment}/_stats`. Refused for want of `monitor_ml`: reported,
/// and tried again at the periodic re-check (a granted privilege is nothing the operator sees).
async fn deployment(
    ctx: &Context,
    connection: &Connection,
    config: &EndpointConfig,
) -> Result<Option<DeploymentStats>, Failure> {
    let call = connection.client.deployment_stats(deployment_id(config));
    timed(ctx, EsOperation::Get, call).await.map_err(|e| {
        let failure = es_failure(ctx, connection, &e);
        if failure.reason != Reason::ElasticsearchForbidden {
            return failure;
        }
        Failure::rechecked(
            failure.reason,
            format!(
                "cannot read the model deployment of inference endpoint {}: {} The operator's \
                 Elasticsearch user needs the monitor_ml cluster privilege to follow a deployment",
                config.inference_id, failure.message
            ),
        )
    })
}

/// While the awaited deployment has not started, nothing is written and the object says
/// `ModelDeploying` (see plan.rs, "In-cluster models"); a blocked plan is reported as it is.
fn awaiting_deployment(
    ctx: &Context,
    config: &EndpointConfig,
    observed: &Observed,
    plan: &Plan<'_>,
) -> Option<Applied<Recorded>> {
    if matches!(plan, Plan::Blocked(_)) {
        return None;
    }
    let message = still_deploying(
        config,
        observed.endpoint.is_some(),
        observed.deployment.as_ref(),
        ctx.config.model_deploy_poll,
    )?;
    Some(deploying(config, observed, message))
}

/// `ModelDeploying`: the one outcome that is not Ready yet records what was applied. The
/// endpoint is in Elasticsearch, or being stored, on this object's behalf: without the record the
/// next reconcile would take it for someone else's endpoint.
fn deploying(config: &EndpointConfig, observed: &Observed, message: String) -> Applied<Recorded> {
    let endpoint = observed.endpoint.as_ref().map_or_else(
        || EndpointStatus {
            service: config.service.clone(),
            ..EndpointStatus::default()
        },
        endpoint_status,
    );
    Applied {
        reason: Reason::ModelDeploying,
        message,
        applied: recorded(config, observed, endpoint),
    }
}

/// How the endpoint's secrets change, by the service table (services it does not know rotate
/// through `_update`, as most do). A service whose secret is optional cannot be given one once
/// it was created without (`applied_keyless`): Elasticsearch keeps its empty secret settings and
/// ignores the update (elastic/elasticsearch#140888,
/// docs/reference/elasticsearch-services.md#update-rotation).
fn secret_rotation(
    service: &str,
    secrets: &ServiceSecrets,
    applied_keyless: bool,
) -> SecretRotation {
    let profile = ServiceProfile::lookup(service);
    let optional = profile.is_some_and(|p| matches!(p.secrets, SecretKeys::Optional(_)));
    if secrets.is_empty() {
        SecretRotation::NoSecrets
    } else if optional && applied_keyless {
        SecretRotation::NotInPlace
    } else if profile.is_none_or(|p| p.rotates_in_place) {
        SecretRotation::InPlace
    } else {
        SecretRotation::NotInPlace
    }
}

/// The object last reported `ChunkingReset` (see [`chunking_reset_outcome`]).
fn chunking_reset_seen(previous: &InferenceEndpointStatus) -> bool {
    conditions::ready(&previous.conditions).and_then(|c| Reason::parse(&c.reason))
        == Some(Reason::ChunkingReset)
}

/// Make the Elasticsearch calls the plan names; what was applied, for the status.
async fn act(
    ctx: &Context,
    who: &Identity,
    desired: &Desired,
    observed: &Observed,
    plan: Plan<'_>,
    chunking_reset_seen: bool,
    usage: &mut UsageRead,
) -> Result<Applied<Recorded>, Failure> {
    let config = &desired.config;
    let connection = &observed.connection;
    let version = &connection.info.version;
    let id = config.inference_id.as_str();
    let (endpoint, done) = match plan {
        Plan::Blocked(failure) => return Err(failure),
        Plan::Create(done) => {
            intend(ctx, who, observed, config).await?;
            match create(ctx, who, connection, config, observed).await? {
                Put::Created(created) => (created, done),
                Put::Deploying(message) => return Ok(deploying(config, observed, message)),
            }
        }
        Plan::Change {
            endpoint,
            change: Change::Nothing,
            done,
        } => (endpoint.clone(), done),
        Plan::Change {
            change: Change::Recreate { differences },
            done,
            ..
        } => {
            delete_unused(ctx, connection, config, &differences, usage).await?;
            match create(ctx, who, connection, config, observed).await? {
                Put::Created(created) => {
                    info!(inference_id = id, "recreated inference endpoint");
                    (created, done)
                }
                Put::Deploying(message) => return Ok(deploying(config, observed, message)),
            }
        }
        Plan::Change {
            endpoint,
            change,
            done,
        } => {
            let updated = if matches!(change, Change::PushCredential)
                && done.reason == Reason::CredentialsRotated
            {
                rotate(ctx, who, desired, observed, endpoint).await?
            } else {
                update(ctx, connection, config, &observed.secrets, Some(endpoint)).await?
            };
            info!(inference_id = id, reason = %done.reason, "updated inference endpoint");
            let reset = chunking_reset_outcome(
                config,
                Some(endpoint),
                &updated,
                version,
                chunking_reset_seen,
            );
            (updated, reset.unwrap_or(done))
        }
    };
    remember_accepted(ctx, who, observed).await;
    Ok(done.with(recorded(config, observed, endpoint_status(&endpoint))))
}

/// Elasticsearch now holds the Secret's credential: keep it as the one to roll back to, where a
/// rejected rotation is rolled back (an update API that does not validate: 8.17 – 9.3); in
/// memory, and in its kept Secret with `--persist-previous-credential` ([`previous_key`]).
async fn remember_accepted(ctx: &Context, who: &Identity, observed: &Observed) {
    let version = &observed.connection.info.version;
    if !version.supports_update_api() || version.update_validates_with_provider() {
        return;
    }
    if observed.secrets.is_empty() {
        return;
    }
    previous_key::remember(ctx, who, &observed.secrets, &observed.fingerprint).await;
}

/// Push a rotated credential and make sure the provider takes it. On 9.4+ Elasticsearch tries it
/// itself and keeps the previous key when the provider refuses. Before, `_update` stores it
/// untried: the endpoint is probed at once, and a 401/403 puts the previous key back with a second
/// `_update` (docs/lifecycle.md, "Health and verified rotation"). A refused key is not sent
/// again: status records it (`rejectedCredentialFingerprint`, which the plan reads), and no
/// reconcile starts from a cached copy older than that status (`controller::own_writes`).
async fn rotate(
    ctx: &Context,
    who: &Identity,
    desired: &Desired,
    observed: &Observed,
    endpoint: &Endpoint,
) -> Result<Endpoint, Failure> {
    let config = &desired.config;
    let connection = &observed.connection;
    let validates = connection.info.version.update_validates_with_provider();
    let started = Instant::now();
    let updated = match update(ctx, connection, config, &observed.secrets, Some(endpoint)).await {
        Ok(updated) => updated,
        Err(f) if validates && f.reason == Reason::ProviderRejectedCredentials => {
            ctx.metrics.rotated(&who.namespace, &who.name, false);
            return Err(rejected(
                desired,
                observed,
                &f.message,
                "Elasticsearch tried it with the provider and kept the previous key",
                Serving::PreviousKey,
            ));
        }
        Err(f) => return Err(f),
    };
    if validates {
        ctx.metrics.rotated(&who.namespace, &who.name, true);
        return Ok(updated);
    }
    let verdict = {
        let _slot = ctx.probes.slot().await;
        probe(ctx, who, connection, config, &observed.secrets).await
    };
    if !health::rejects_credentials(&verdict) {
        ctx.metrics.rotated(&who.namespace, &who.name, true);
        return Ok(updated);
    }
    let previous = previous_key::previous(ctx, who, &observed.fingerprint).await;
    ctx.metrics.rotated(&who.namespace, &who.name, false);
    let previous = match previous {
        Ok(previous) => previous,
        Err(why) => {
            return Err(rejected(
                desired,
                observed,
                &verdict.message,
                &format!(
                    "Elasticsearch stored it without trying it, the probe was refused, and {why}"
                ),
                Serving::RejectedKey,
            ))
        }
    };
    update(ctx, connection, config, &previous, Some(&updated))
        .await
        .map_err(|f| Failure {
            message: format!(
                "the provider rejected the rotated credential and putting the previous key back \
                 failed: {}; the endpoint may use the rejected key. Retried with backoff",
                f.message
            ),
            ..f
        })?;
    let held = started.elapsed();
    info!(
        inference_id = config.inference_id,
        held_ms = u64::try_from(held.as_millis()).unwrap_or(u64::MAX),
        "rolled back a rejected credential"
    );
    Err(rejected(
        desired,
        observed,
        &verdict.message,
        &format!(
            "Elasticsearch stored it without trying it, the probe was refused, and the previous \
             key was put back after {} ms",
            held.as_millis()
        ),
        Serving::PreviousKey,
    ))
}

/// What the endpoint uses while a rejected credential waits for the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Serving {
    /// Elasticsearch kept it, or the operator put it back: the endpoint keeps working.
    PreviousKey,
    /// Stored untried and no previous key to put back: the endpoint fails until the Secret
    /// holds a working key.
    RejectedKey,
}

/// `CredentialsRejected`, naming the Secret (never the value), and what the endpoint uses now.
fn rejected(
    desired: &Desired,
    observed: &Observed,
    detail: &str,
    how: &str,
    serving: Serving,
) -> Failure {
    let secrets: Vec<String> = desired
        .secrets
        .iter()
        .map(|input| match &input.from {
            SecretFrom::Key(key) => format!("Secret {} (key {})", key.name, key.key),
            SecretFrom::Secret(name) => format!("Secret {name}"),
        })
        .collect();
    let id = &desired.config.inference_id;
    let now = match serving {
        Serving::PreviousKey => {
            format!("The previous key stays in use and inference endpoint {id} keeps serving")
        }
        Serving::RejectedKey => format!(
            "Inference endpoint {id} now uses the rejected key and fails until the Secret holds \
             a working one"
        ),
    };
    Failure {
        rejected_fingerprint: Some(observed.fingerprint.clone()),
        ..Failure::new(
            Reason::CredentialsRejected,
            format!(
                "the provider rejected the new credential in {}: {how}. {now}. Put a working key \
                 in the Secret: the operator tries again when it changes. {detail}",
                secrets.join(", "),
            ),
        )
    }
}

/// Whether the object's probe is due (it needs the service secrets, to keep them out of what
/// it reports).
fn probe_due(iep: &InferenceEndpoint, who: &Identity, ctx: &Context) -> bool {
    let Some(interval) = health::interval(
        iep.spec.health_check.as_ref(),
        ctx.config.health_check_interval,
    ) else {
        return false;
    };
    let has_condition = iep
        .status
        .as_ref()
        .is_some_and(|s| health::healthy(&s.conditions).is_some());
    ctx.probes
        .due(&who.uid, Instant::now(), interval, has_condition)
}

/// Probe the endpoint if its health checks are on and its probe is due, in a free probe slot
/// (none free: postponed, never waited for).
async fn probe_if_due(
    iep: &InferenceEndpoint,
    who: &Identity,
    ctx: &Context,
    observed: &Observed,
    config: &EndpointConfig,
) {
    let Some(interval) = health::interval(
        iep.spec.health_check.as_ref(),
        ctx.config.health_check_interval,
    ) else {
        return;
    };
    let has_condition = iep
        .status
        .as_ref()
        .is_some_and(|s| health::healthy(&s.conditions).is_some());
    let now = Instant::now();
    if !ctx.probes.due(&who.uid, now, interval, has_condition) {
        return;
    }
    let Some(_slot) = ctx.probes.try_slot() else {
        let object = kube::runtime::reflector::ObjectRef::new(&who.name).within(&who.namespace);
        ctx.probes.postpone(&who.uid, object, now, interval);
        return;
    };
    let verdict = probe(ctx, who, &observed.connection, config, &observed.secrets).await;
    ctx.probes
        .record(&who.uid, Instant::now(), interval, verdict);
}

/// One probe, time-boxed by `--health-check-timeout`, recorded in the metrics.
async fn probe(
    ctx: &Context,
    who: &Identity,
    connection: &Connection,
    config: &EndpointConfig,
    secrets: &ServiceSecrets,
) -> health::Verdict {
    let texts = health::secret_texts(secrets);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let started = Instant::now();
    let call = connection.client.probe(
        config.task_type,
        &config.inference_id,
        ctx.config.health_check_timeout,
        &texts,
    );
    let result = timed(ctx, EsOperation::Probe, call).await;
    let verdict = health::verdict(&config.inference_id, &result);
    debug!(inference_id = config.inference_id, health = verdict.health.as_str(), reason = %verdict.reason, "probed");
    ctx.metrics.probed(
        &who.namespace,
        &who.name,
        verdict.health.label(),
        started.elapsed(),
    );
    verdict
}

/// What the status records: the cluster, the id, what Elasticsearch reports of the endpoint,
/// and the fingerprint of the credential applied.
fn recorded(config: &EndpointConfig, observed: &Observed, endpoint: EndpointStatus) -> Recorded {
    let info = &observed.connection.info;
    Recorded {
        cluster: ClusterStatus {
            uuid: info.cluster_uuid.clone(),
            name: info.cluster_name.clone(),
            version: info.version.to_string(),
        },
        inference_id: config.inference_id.clone(),
        endpoint,
        credential_fingerprint: observed.fingerprint.clone(),
    }
}

/// What the status records of the endpoint a reconcile applied.
#[derive(Clone, Debug, PartialEq)]
struct Recorded {
    cluster: ClusterStatus,
    inference_id: String,
    endpoint: EndpointStatus,
    credential_fingerprint: String,
}

/// `previous` with what was applied.
fn recorded_status(
    previous: &InferenceEndpointStatus,
    recorded: &Recorded,
) -> InferenceEndpointStatus {
    InferenceEndpointStatus {
        cluster: Some(recorded.cluster.clone()),
        inference_id: Some(recorded.inference_id.clone()),
        endpoint: Some(recorded.endpoint.clone()),
        credential_fingerprint: Some(recorded.credential_fingerprint.clone()),
        ..previous.clone()
    }
}

/// Before a create the object has not recorded yet, record it
/// ([`in_flight::CREATE_INTENT_ANNOTATION`]): its status records no endpoint and the spec changed
/// since the finalizer patch recorded the first (a retry with a corrected spec after a refused
/// create, or a spec change while the endpoint was absent), or the object predates the record.
/// One Kubernetes write, only then. Not recorded, not sent: a failure is retried with backoff.
async fn intend(
    ctx: &Context,
    who: &Identity,
    observed: &Observed,
    config: &EndpointConfig,
) -> Result<(), Failure> {
    let unrecorded = observed.intents.as_ref().filter(|i| !i.covers(config));
    let Some(value) = unrecorded.and_then(|intents| intents.with(config)) else {
        return Ok(());
    };
    let patch =
        json!({"metadata": {"annotations": { in_flight::CREATE_INTENT_ANNOTATION: value }}});
    let api: Api<Decoded> = Api::namespaced(ctx.client.clone(), &who.namespace);
    let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
    let call = api.patch(&who.name, &params, &patch);
    let failed = |why: String| {
        Failure::new(
            Reason::KubernetesApiError,
            format!("could not record the create about to be sent on the object ({why}); nothing was sent, retried with backoff"),
        )
    };
    match tokio::time::timeout(ctx.config.kube_timeout, call).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(failed(error.to_string())),
        Err(_) => Err(failed("timed out".into())),
    }
}

/// What a PUT did.
enum Put {
    Created(Endpoint),
    /// The model deployment goes on after the PUT: the `ModelDeploying` message.
    Deploying(String),
}

/// How long a create Elasticsearch refused for good is not sent again unchanged: long enough
/// for the passes queued while it was sent, far shorter than any re-check.
const REFUSED_CREATE_MEMORY: Duration = Duration::from_secs(10);

/// [`create_once`], unless this very create was refused for good a moment ago (then the same
/// failure, without a request: see [`controller::in_flight::CreatesSent::refused_recently`]).
async fn create(
    ctx: &Context,
    who: &Identity,
    connection: &Connection,
    config: &EndpointConfig,
    observed: &Observed,
) -> Result<Put, Failure> {
    // The credential as observed: its fingerprint was computed when the Secrets were read.
    let secrets = &observed.secrets;
    let asked = format!(
        "{}|{}",
        serde_json::to_string(config).unwrap_or_default(),
        observed.fingerprint
    );
    let creates = &ctx.creates;
    if let Some(failure) = creates.refused_recently(&who.uid, &asked, REFUSED_CREATE_MEMORY) {
        return Err(failure);
    }
    let result = create_once(ctx, who, connection, config, secrets).await;
    if let Err(failure) = &result {
        // Not one that is re-checked on the periodic interval (its cause can go away unseen).
        if failure.reason.kind() == Kind::Permanent && !failure.recheck {
            creates.refused(&who.uid, asked, failure);
        }
    }
    result
}

/// `PUT` the endpoint. For a service that deploys a model, Elasticsearch is asked to wait only
/// [`Config::model_deploy_wait`](crate::controller::Config), and a 408 or a client timeout means
/// the deployment goes on: it is followed, never PUT again meanwhile.
async fn create_once(
    ctx: &Context,
    who: &Identity,
    connection: &Connection,
    config: &EndpointConfig,
    secrets: &ServiceSecrets,
) -> Result<Put, Failure> {
    // Noted before it is sent: a deletion waits out a create still in flight (in_flight.rs).
    ctx.creates.sending(&who.uid);
    let version = &connection.info.version;
    let deploys = deploys_model(config);
    let wait = deploys.then_some(ctx.config.model_deploy_wait);
    let call = connection
        .client
        .create_endpoint_within(config, secrets, version, wait);
    let id = config.inference_id.as_str();
    let result = timed(ctx, EsOperation::Create, call).await;
    if !may_land_later(&result) {
        ctx.creates.answered(&who.uid);
    }
    match result {
        Ok(created) => {
            info!(inference_id = id, "created inference endpoint");
            Ok(Put::Created(created))
        }
        Err(e) if deploys && e.leaves_deployment_under_way() => {
            info!(inference_id = id, "model deployment under way");
            let poll = ctx.config.model_deploy_poll;
            Ok(Put::Deploying(deploying_after_put(
                config,
                &e.message(),
                poll,
            )))
        }
        Err(e) => Err(es_failure(ctx, connection, &e)),
    }
}

/// A PUT that got no answer, a timeout (408) or a server error may still create the endpoint
/// (inferred for 5xx: Elasticsearch may have stored it before failing); any other answer says
/// this PUT did not, or did and is recorded.
fn may_land_later<T>(result: &Result<T, EsError>) -> bool {
    match result {
        Ok(_) => false,
        Err(e) => e.status().is_none_or(|s| s == 408 || s >= 500),
    }
}

/// Delete the endpoint to recreate it, unless Elasticsearch's dry run reports users.
async fn delete_unused(
    ctx: &Context,
    connection: &Connection,
    config: &EndpointConfig,
    differences: &[Difference],
    usage: &mut UsageRead,
) -> Result<(), Failure> {
    let id = config.inference_id.as_str();
    users_can_be_listed(id, differences, &connection.info.version)?;
    let es = &connection.client;
    let on_es_error = |e: EsError| es_failure(ctx, connection, &e);
    // The same read refreshes status.usedBy, so the blocked recreate shows who holds it.
    let in_use = dry_run_delete(ctx, connection, config.task_type, id)
        .await
        .map_err(|e| {
            *usage = UsageRead::Failed;
            on_es_error(e)
        })?;
    if let DeleteOutcome::Done(report) = &in_use {
        *usage = UsageRead::Read(report.clone(), connection.info.version);
        unused_before_recreate(id, differences, report)?;
    }
    let delete = es.delete_endpoint(config.task_type, id, DeleteOptions::default());
    timed(ctx, EsOperation::Delete, delete)
        .await
        .map_err(on_es_error)?;
    Ok(())
}

/// What a cleanup did: done (the finalizer may go), or waiting this long for a create that may
/// still land.
enum Removal {
    Done(Applied),
    Waiting(Duration),
}

/// Delete the endpoint this object owns, unless the policy retains it. Never forced unless the
/// force-delete annotation says so.
async fn remove(
    iep: &InferenceEndpoint,
    who: &Identity,
    ctx: &Context,
    usage: &mut UsageRead,
) -> Result<Removal, Failure> {
    if iep.spec.deletion_policy == DeletionPolicy::Retain {
        return Ok(Removal::Done(Applied::new(
            Reason::Retained,
            format!(
                "deletionPolicy Retain: inference endpoint {} left in Elasticsearch",
                iep.inference_id()
            ),
        )));
    }
    let status = iep.status.clone().unwrap_or_default();
    // Only ever delete what this object created or adopted.
    let Some(id) = status.inference_id.clone() else {
        return unrecorded(iep, who, ctx, usage).await;
    };
    // A spec that breaks a rule made after it was stored is never used to connect, not even
    // to delete; the endpoint is not silently orphaned either: the deletion waits for the fix.
    if let Err(violation) = crate::api::checks::check_spec(&iep.spec) {
        return Err(Failure::new(
            Reason::InvalidSpec,
            format!(
                "cannot delete inference endpoint {id}: {violation}. Correct that field, or set spec.deletionPolicy: Retain to let the object go without deleting the endpoint"
            ),
        ));
    }
    let (namespace, uid) = (&who.namespace, &who.uid);
    // When the namespace is being torn down its Secrets may already be gone: fall back to the
    // connection this object last used, so deletion does not hang on a missing Secret.
    let connection = match ctx.connections.connect(iep, namespace, &ctx.client).await {
        Ok(connection) => connection,
        Err(failure) => ctx.connections.remembered(uid).ok_or_else(|| Failure {
            message: format!(
                "cannot delete inference endpoint {id}: {}. Restore it, or set spec.deletionPolicy: Retain to let the object go without deleting the endpoint",
                failure.message
            ),
            ..failure
        })?,
    };
    if !Record::of(Some(&status)).owns(&id, &connection.info.cluster_uuid) {
        return Ok(Removal::Done(Applied::new(
            Reason::Deleted,
            format!("inference endpoint {id} lives in a cluster that no longer answers at this address; nothing deleted"),
        )));
    }
    delete_endpoint(iep, ctx, &connection, &id, usage)
        .await
        .map(Removal::Done)
}

/// No endpoint recorded, yet one may come: the finalizer is stored before any create, and
/// Elasticsearch finishes a PUT whose client has gone (in_flight.rs). An endpoint under the id
/// that this object would adopt (no other object claims it, it matches the spec:
/// docs/lifecycle.md#ownership-and-adoption) is its own create, landed late, and is deleted;
/// one that differs or is claimed is someone else's and left alone. None there: wait until any
/// create could still land, then let go. Never longer: a connection that cannot be made
/// (the namespace's Secrets gone) or a failing GET let go once the wait is over.
async fn unrecorded(
    iep: &InferenceEndpoint,
    who: &Identity,
    ctx: &Context,
    usage: &mut UsageRead,
) -> Result<Removal, Failure> {
    let nothing = |detail: &str| {
        Removal::Done(Applied::new(
            Reason::Deleted,
            format!("no inference endpoint was created for this object{detail}"),
        ))
    };
    // A spec that fails the checks is never used to connect; one without a config never had one.
    let desired = match crate::api::checks::check_spec(&iep.spec).map(|()| desired(iep)) {
        Ok(Ok(desired)) => desired,
        _ => return Ok(nothing("")),
    };
    let config = &desired.config;
    let connection = match ctx
        .connections
        .connect(iep, &who.namespace, &ctx.client)
        .await
    {
        Ok(connection) => connection,
        Err(_) => match ctx.connections.remembered(&who.uid) {
            Some(connection) => connection,
            None => return Ok(nothing(" (Elasticsearch not reachable to check)")),
        },
    };
    let window = in_flight_window(ctx, &connection, config.task_type);
    let settled = ctx.creates.settled_at(&who.uid, window);
    let wait = settled.saturating_duration_since(Instant::now());
    let found = get(ctx, &connection, config).await;
    let (id, cluster) = (&config.inference_id, &connection.info.cluster_uuid);
    match found {
        Ok(Some(endpoint)) if claimable(iep, who, ctx, config, &endpoint, &connection) => {
            info!(inference_id = %id, "an endpoint this object created landed after its status was written; deleting it");
            delete_endpoint(iep, ctx, &connection, id, usage)
                .await
                .map(Removal::Done)
        }
        Ok(Some(_)) => Ok(nothing(&format!(
            "; inference endpoint {id} in cluster {cluster} is not this object's and is left alone"
        ))),
        _ if wait.is_zero() => Ok(nothing("")),
        Ok(None) | Err(_) => {
            info!(inference_id = %id, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "a create may still be in flight; the finalizer stays until it has landed or failed");
            Ok(Removal::Waiting(wait))
        }
    }
}

/// How long a create may take to land: `--create-in-flight-wait`, else the PUT's client deadline.
fn in_flight_window(ctx: &Context, connection: &Connection, task: TaskType) -> Duration {
    ctx.config.create_in_flight_wait.unwrap_or_else(|| {
        let request_timeout = ctx.config.connection.request_timeout;
        put_deadline(request_timeout, &connection.info.version, task)
    })
}

/// The endpoint found is one this object would adopt (no other object claims the id in this
/// cluster, same service, and no setting differs from the spec), or its own create, landed
/// after the spec changed ([`ownership::own_create_landed`]).
fn claimable(
    iep: &InferenceEndpoint,
    who: &Identity,
    ctx: &Context,
    config: &EndpointConfig,
    endpoint: &Endpoint,
    connection: &Connection,
) -> bool {
    let cluster = &connection.info.cluster_uuid;
    let me = Claimant::of(who, iep);
    let claims = ctx.ownership.claimants(&config.inference_id);
    let version = &connection.info.version;
    let intents = Intents::of(iep.metadata.annotations.as_ref());
    let record = Record::of(iep.status.as_ref());
    let matches = same_service(&endpoint.service, &config.service)
        && compare(config, endpoint, version).is_empty();
    ownership::claimed_by(&me, &claims, cluster).is_none()
        && (matches || ownership::own_create_landed(&record, &intents, endpoint, version))
}

/// Delete the endpoint `id` this object owns (the dry run first shows who uses it, unless
/// forced).
async fn delete_endpoint(
    iep: &InferenceEndpoint,
    ctx: &Context,
    connection: &Connection,
    id: &str,
    usage: &mut UsageRead,
) -> Result<Applied, Failure> {
    let force = iep.annotated(FORCE_DELETE_ANNOTATION, "true");
    if !force {
        // Before a delete Elasticsearch may refuse, status shows who uses the endpoint;
        // Elasticsearch's own answer to the DELETE still decides.
        *usage = read_usage(ctx, connection, iep.spec.task_type, id).await;
    }
    let deletion = connection.client.delete_endpoint(
        iep.spec.task_type,
        id,
        DeleteOptions {
            dry_run: false,
            force,
        },
    );
    let outcome = timed(ctx, EsOperation::Delete, deletion).await.map_err(|e| {
        let failure = es_failure(ctx, connection, &e);
        if failure.reason == Reason::InUse {
            Failure::new(
                Reason::DeletionBlocked,
                format!(
                    "Elasticsearch refuses to delete inference endpoint {id}: {} Remove those references, \
                     or annotate the object with {FORCE_DELETE_ANNOTATION}=true to delete it anyway (breaking them)",
                    failure.message
                ),
            )
        } else {
            failure
        }
    })?;
    let message = match (&outcome, force) {
        (DeleteOutcome::Done(_), true) => format!("force-deleted inference endpoint {id}"),
        (DeleteOutcome::Done(_), false) => format!("deleted inference endpoint {id}"),
        (DeleteOutcome::NotFound, _) => format!("inference endpoint {id} was already gone"),
    };
    info!(inference_id = %id, "{message}");
    Ok(Applied::new(Reason::Deleted, message))
}

/// A usage read is due for this object (`--used-by-interval` passed since the last read or
/// attempt, or, never read, since Ready last changed): see [`usage::refresh_due`].
fn usage_due(ctx: &Context, who: &Identity, previous: &InferenceEndpointStatus) -> bool {
    let last = usage::last_read(previous.used_by.as_ref(), ctx.usage.last_attempt(&who.uid));
    let since = conditions::ready(&previous.conditions).map(|c| c.last_transition_time.0);
    let last = usage::clock_start(last, since);
    usage::refresh_due(
        last,
        Timestamp::now(),
        ctx.config.used_by_interval,
        &who.uid,
    )
}

/// Read who uses the endpoint (the dry-run DELETE, 8.15+). A failure is logged and reported as
/// [`UsageRead::Failed`], never as the reconcile's failure.
async fn read_usage(ctx: &Context, connection: &Connection, task: TaskType, id: &str) -> UsageRead {
    let version = connection.info.version;
    if !version.lists_endpoint_users() {
        return UsageRead::NotRead;
    }
    match dry_run_delete(ctx, connection, task, id).await {
        Ok(DeleteOutcome::Done(report)) => UsageRead::Read(report, version),
        // Gone: the reconcile finds out on its own; the last lists are kept.
        Ok(DeleteOutcome::NotFound) => UsageRead::Failed,
        Err(error) => {
            warn!(inference_id = id, %error, "could not read what uses the endpoint; status.usedBy is kept, marked stale");
            UsageRead::Failed
        }
    }
}

/// `DELETE _inference/{task}/{id}?dry_run=true`: deletes nothing, lists the endpoint's users.
async fn dry_run_delete(
    ctx: &Context,
    connection: &Connection,
    task: TaskType,
    id: &str,
) -> Result<DeleteOutcome, EsError> {
    let dry_run = DeleteOptions {
        dry_run: true,
        force: false,
    };
    let call = connection.client.delete_endpoint(task, id, dry_run);
    timed(ctx, EsOperation::UsedBy, call).await
}

/// `status.usedBy` after a reconcile, and this process's clock of attempts moved on.
fn record_usage(
    ctx: &Context,
    who: &Identity,
    previous: Option<&UsedBy>,
    read: &UsageRead,
) -> Option<UsedBy> {
    let now = Time(Timestamp::now());
    if read.was_attempted() {
        ctx.usage.attempted(&who.uid, now.0);
    }
    usage::recorded(previous, read, &now)
}

/// GET the endpoint; a transient failure drops the cached connection.
async fn get(
    ctx: &Context,
    connection: &Connection,
    config: &EndpointConfig,
) -> Result<Option<Endpoint>, Failure> {
    let call = connection
        .client
        .get_endpoint(config.task_type, &config.inference_id);
    timed(ctx, EsOperation::Get, call)
        .await
        .map_err(|e| es_failure(ctx, connection, &e))
}

/// `_update` carrying the credential and the desired task settings; the body's shape depends on
/// the cluster's version (docs/reference/elasticsearch-inference-api.md#update-by-version).
async fn update(
    ctx: &Context,
    connection: &Connection,
    config: &EndpointConfig,
    secrets: &ServiceSecrets,
    observed: Option<&Endpoint>,
) -> Result<Endpoint, Failure> {
    let version = &connection.info.version;
    let body = update_body(config, Some(secrets), observed, version)
        .map_err(|e| Failure::new(Reason::InvalidSettings, e.to_string()))?;
    let call =
        connection
            .client
            .update_endpoint(config.task_type, &config.inference_id, &body, version);
    timed(ctx, EsOperation::Update, call)
        .await
        .map_err(|e| es_failure(ctx, connection, &e))
}

/// Classify an Elasticsearch failure; a transient one also drops the cached connection, so the
/// next attempt reconnects and re-reads the cluster's version and identity.
fn es_failure(ctx: &Context, connection: &Connection, error: &EsError) -> Failure {
    if error.is_transient() {
        ctx.connections.forget(&connection.key);
    }
    outcomes::from_es(error)
}

/// Run one Elasticsearch call and record its latency and status class.
async fn timed<T>(
    ctx: &Context,
    operation: EsOperation,
    call: impl Future<Output = Result<T, EsError>>,
) -> Result<T, EsError> {
    if !crate::leader::fence_open() {
        // Paused past the leader Lease's grace: the watchdog ends the process within a tick;
        // nothing may be sent meanwhile (src/leader.rs, `Fence`).
        std::future::pending::<()>().await;
    }
    let started = Instant::now();
    let result = call.await;
    ctx.metrics
        .elasticsearch(operation, &result, started.elapsed());
    result
}

fn endpoint_status(endpoint: &Endpoint) -> EndpointStatus {
    let settings = &endpoint.service_settings;
    EndpointStatus {
        service: endpoint.service.clone(),
        dimensions: settings.get("dimensions").and_then(|v| v.as_i64()),
        similarity: settings
            .get("similarity")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        requests_per_minute: settings
            .get("rate_limit")
            .and_then(|r| r.get("requests_per_minute"))
            .and_then(|v| v.as_i64()),
        chunking_strategy: endpoint
            .chunking_settings
            .as_ref()
            .and_then(|c| c.get("strategy"))
            .and_then(|v| v.as_str())
            .map(str::to_owned),
    }
}

/// A periodic re-check that finds nothing to do keeps the reason and message of the last
/// transition (`Created`, `CredentialsRotated`, ...), so it writes no status and emits no Event.
fn keep_steady_state_wording<T>(
    previous: &InferenceEndpointStatus,
    applied: Applied<T>,
) -> Applied<T> {
    if applied.reason != Reason::InSync {
        return applied;
    }
    match conditions::ready(&previous.conditions) {
        Some(ready) if ready.status == "True" => Applied {
            // Any ready reason is kept; one this version does not know reads as InSync.
            reason: Reason::parse(&ready.reason)
                .filter(|r| r.is_ready())
                .unwrap_or(applied.reason),
            message: ready.message.clone(),
            applied: applied.applied,
        },
        _ => applied,
    }
}

/// Write status if it changed, and publish an Event if Ready changed. Works from metadata
/// alone, so an object whose spec does not decode can be reported too; `insecure` is the
/// transport warning of a decoded spec (`connection::insecure_transport`).
#[allow(clippy::too_many_arguments)]
async fn report(
    iep: &impl Resource<DynamicType = ()>,
    who: &Identity,
    ctx: &Context,
    previous: InferenceEndpointStatus,
    mut status: InferenceEndpointStatus,
    outcome: &Outcome,
    warnings: Vec<Warning>,
    health: Option<&health::Verdict>,
    action: &str,
) -> Result<(), Error> {
    let now = Time(Timestamp::now());
    let generation = iep.meta().generation;
    status.observed_generation = generation;
    status.conditions = conditions::conditions_for(&previous.conditions, outcome, generation, &now);
    let new_warnings: Vec<Warning> = warnings
        .into_iter()
        .filter(|w| {
            conditions::set_warning(
                &mut status.conditions,
                &previous.conditions,
                w,
                generation,
                &now,
            )
        })
        .collect();
    if let Some(verdict) = health {
        status.conditions.push(health::condition(
            &previous.conditions,
            verdict,
            generation,
            &now,
        ));
    }
    if ctx.crd_compat.worth_writing(&previous, &status) {
        let after = patch_status(who, ctx, &status).await?;
        let before = iep.meta().resource_version.as_deref();
        ctx.own_writes.wrote(&who.uid, before, after.as_deref());
    }
    if let Some(verdict) = health.filter(|v| health::is_transition(&previous.conditions, v)) {
        if verdict.reason != Reason::NotProbed {
            publish(
                ctx,
                iep,
                &Outcome::new(verdict.reason, verdict.message.clone()),
                action,
            );
        }
    }
    if conditions::is_transition(&previous.conditions, outcome) {
        publish(ctx, iep, outcome, action);
    }
    for warning in new_warnings {
        publish(
            ctx,
            iep,
            &Outcome::new(warning.reason, warning.message),
            action,
        );
    }
    Ok(())
}

/// The warning conditions of a decoded spec: how the operator connects, and a service missing
/// from the table.
fn warnings(iep: &InferenceEndpoint) -> Vec<Warning> {
    let insecure = insecure_transport(iep).map(|(reason, message)| Warning {
        condition: conditions::INSECURE_TRANSPORT,
        reason,
        message,
    });
    insecure.into_iter().chain(unknown_service(iep)).collect()
}

fn unknown_service(iep: &InferenceEndpoint) -> Option<Warning> {
    let name = &iep.spec.service.as_ref()?.name;
    if ServiceProfile::lookup(name).is_some() {
        return None;
    }
    Some(Warning {
        condition: conditions::UNKNOWN_SERVICE,
        reason: Reason::NotInServiceTable,
        message: format!(
            "service {name} is not in this operator's service table: it is passed to \
             Elasticsearch as written, its secrets are the keys under secretSettings, only the \
             settings you set are compared, and no version gates apply"
        ),
    })
}

/// Apply the status; on a cluster still serving a CRD older than the operator, again without
/// the fields it lacks ([`status_compat`]). The object's resourceVersion after the write.
async fn patch_status(
    who: &Identity,
    ctx: &Context,
    status: &InferenceEndpointStatus,
) -> Result<Option<String>, Error> {
    match apply_status(who, ctx, status).await {
        Err(Error::Kube(kube::Error::Api(refusal)))
            if status_compat::lacks_newer_field(&refusal.message) =>
        {
            let Some(without) = status_compat::without_newer_fields(status) else {
                return Err(Error::Kube(kube::Error::Api(refusal)));
            };
            ctx.crd_compat.refused();
            apply_status(who, ctx, &without).await
        }
        applied => {
            if applied.is_ok() {
                ctx.crd_compat.applied(status);
            }
            applied
        }
    }
}

async fn apply_status(
    who: &Identity,
    ctx: &Context,
    status: &InferenceEndpointStatus,
) -> Result<Option<String>, Error> {
    let name = &who.name;
    // The answer is the whole object; `Decoded` reads it back even when its spec does not.
    let api: Api<Decoded> = Api::namespaced(ctx.client.clone(), &who.namespace);
    let body = json!({
        "apiVersion": InferenceEndpoint::api_version(&()),
        "kind": InferenceEndpoint::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let stored = tokio::time::timeout(
        ctx.config.kube_timeout,
        api.patch_status(name, &params, &Patch::Apply(&body)),
    )
    .await
    .map_err(|_| Error::KubeTimeout("patch status"))?
    .map_err(Error::Kube)?;
    Ok(stored.meta().resource_version.clone())
}

/// Events are best effort and published off the reconcile path: a slow or failing Event write
/// neither holds a reconcile slot nor fails the reconcile, and a burst of them is bounded
/// (controller::events).
fn publish(ctx: &Context, iep: &impl Resource<DynamicType = ()>, outcome: &Outcome, action: &str) {
    let event = Event {
        // A chunking reset leaves the endpoint working but changed: worth a Warning.
        type_: if outcome.reason.warns() {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: outcome.reason.as_str().to_owned(),
        note: Some(conditions::truncate(&outcome.message)),
        action: action.to_owned(),
        secondary: None,
    };
    ctx.events.push(event, iep.object_ref(&()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::ServiceSecret;

    #[test]
    fn an_optional_key_added_after_a_keyless_create_needs_a_new_endpoint() {
        let key = ServiceSecrets::from(ServiceSecret::api_key("k"));
        let none = ServiceSecrets::default();
        assert_eq!(
            secret_rotation("llama", &key, true),
            SecretRotation::NotInPlace
        );
        assert_eq!(
            secret_rotation("llama", &key, false),
            SecretRotation::InPlace
        );
        assert_eq!(
            secret_rotation("llama", &none, true),
            SecretRotation::NoSecrets
        );
        // Only an optional secret is bound to how the endpoint was created.
        assert_eq!(
            secret_rotation("cohere", &key, true),
            SecretRotation::InPlace
        );
        assert_eq!(
            secret_rotation("some-future-service", &key, true),
            SecretRotation::InPlace
        );
        assert_eq!(
            secret_rotation("elasticsearch", &none, false),
            SecretRotation::NoSecrets
        );
    }
}
