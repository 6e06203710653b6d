//! The reconcile driver: observe (Secrets, Elasticsearch GET) → plan (pure) → act (one
//! Elasticsearch call) → status (one patch, only if it changed) → Event (only on a transition).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

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
    UpdatePolicy, ACCEPT_CLUSTER_ANNOTATION, ADOPT_ANNOTATION, FINALIZER, FORCE_DELETE_ANNOTATION,
};
use crate::controller::conditions::{self, Applied, Failure, Outcome, Reason};
use crate::controller::connection::{insecure_transport, Connection};
use crate::controller::decode::{Decoded, Undecodable};
use crate::controller::desired::{check_supported, desired};
use crate::controller::ownership::{self, Claimant, Record};
use crate::controller::plan::{chunking_reset_outcome, describe, plan, Plan, PlanInput};
use crate::controller::{outcomes, Context, Error, FIELD_MANAGER};
use crate::elasticsearch::{
    update_body, DeleteOptions, DeleteOutcome, Endpoint, EndpointConfig, EsError, ServiceSecret,
};
use crate::metrics::EsOperation;
use crate::secrets::fingerprint;

/// Bring Elasticsearch in line with the object, then report.
pub async fn apply(iep: Arc<InferenceEndpoint>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let previous = iep.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    let outcome = match converge(&iep, &ctx, &mut status).await {
        Ok(applied) => Outcome::from(&keep_steady_state_wording(&previous, applied)),
        Err(failure) => Outcome::from(failure),
    };
    let insecure = insecure_transport(&iep);
    report(
        iep.as_ref(),
        &ctx,
        previous,
        status,
        &outcome,
        insecure,
        "Reconcile",
    )
    .await?;
    ctx.metrics
        .reconciled(outcome.state().into(), started.elapsed());
    Ok(ctx.next_action(iep.as_ref(), &outcome))
}

/// The object is being deleted: remove the endpoint under policy `Delete`.
pub async fn cleanup(iep: Arc<InferenceEndpoint>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let previous = iep.status.clone().unwrap_or_default();
    let outcome = match remove(&iep, &ctx).await {
        Ok(applied) => Outcome::from(&applied),
        Err(failure) => Outcome::from(failure),
    };
    ctx.metrics
        .reconciled(outcome.state().into(), started.elapsed());
    if outcome.is_ready() {
        ctx.forget(iep.as_ref());
        ctx.connections
            .forget_remembered(&iep.uid().unwrap_or_default());
        publish(&ctx, iep.as_ref(), &outcome, "Delete");
        return Ok(Action::await_change());
    }
    // Keep the finalizer, say why on the object, and retry with backoff: deletion is not
    // something a change of the object can unblock, so even "permanent" refusals are re-checked.
    report(
        iep.as_ref(),
        &ctx,
        previous.clone(),
        previous,
        &outcome,
        insecure_transport(&iep),
        "Delete",
    )
    .await?;
    Err(Error::CleanupBlocked {
        reason: outcome.reason,
        retry_after: ctx.backoff_delay(iep.as_ref()),
    })
}

/// An object whose spec does not match the types (stored under a looser schema): say which
/// field, send nothing to Elasticsearch, and wait for a change of the object. Being deleted, it
/// is let go without a cleanup: its spec cannot say where the endpoint lives, so whatever it
/// created is left in Elasticsearch, and the Event says so.
pub async fn undecodable(
    object: &Decoded,
    invalid: &Undecodable,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let previous = invalid.status.clone().unwrap_or_default();
    let deleting = object.meta().deletion_timestamp.is_some();
    let outcome = Outcome::from(undecodable_outcome(invalid, deleting));
    warn!(error = %invalid.error, deleting, "object does not decode");
    ctx.metrics
        .reconciled(outcome.state().into(), started.elapsed());
    if deleting {
        release(object, &ctx).await?;
        ctx.forget(object);
        ctx.connections
            .forget_remembered(&object.uid().unwrap_or_default());
        publish(&ctx, object, &outcome, "Delete");
        return Ok(Action::await_change());
    }
    report(
        object,
        &ctx,
        previous.clone(),
        previous,
        &outcome,
        None,
        "Reconcile",
    )
    .await?;
    Ok(ctx.next_action(object, &outcome))
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

/// Remove this operator's finalizer (if present), guarded by the resourceVersion read.
async fn release(object: &Decoded, ctx: &Context) -> Result<(), Error> {
    let finalizers = object.finalizers();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let rest: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
    let patch =
        json!({"metadata": {"finalizers": rest, "resourceVersion": object.resource_version()}});
    let api: Api<Decoded> =
        Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    tokio::time::timeout(
        ctx.config.kube_timeout,
        api.patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        ),
    )
    .await
    .map_err(|_| Error::KubeTimeout("remove finalizer"))?
    .map_err(Error::Kube)?;
    Ok(())
}

/// The whole apply path; `Err` is a failure outcome, already classified.
async fn converge(
    iep: &InferenceEndpoint,
    ctx: &Context,
    status: &mut InferenceEndpointStatus,
) -> Result<Applied, Failure> {
    let desired = desired(iep)?;
    let namespace = iep.namespace().unwrap_or_default();
    let secrets = ctx.secrets(&namespace);
    let source = &desired.credential;
    // The service credential and the connection's Secrets are independent reads.
    let (credential, connection) = tokio::join!(
        secrets.key(&source.secret.name, &source.secret.key),
        ctx.connections.connect(iep, &namespace, &ctx.client),
    );
    let credential = credential.map_err(|e| outcomes::from_secret(&e))?;
    let mut connection = connection?;
    let uid = iep.uid().unwrap_or_default();
    let current_fingerprint = fingerprint(&uid, source.field, &credential);
    let secret = ServiceSecret::new(source.field, credential);

    let config = &desired.config;
    let id = config.inference_id.as_str();
    // What the cluster's version cannot hold is refused before any endpoint request.
    check_supported(&desired, &connection.info.version)?;
    let mut observed = get(ctx, &connection, config).await?;
    if observed.is_none() && status.inference_id.as_deref() == Some(id) {
        // Our endpoint is gone. Before recreating it, make sure the same cluster still answers
        // at this address (a rebuilt cluster is reported, not silently written to): the
        // cached connection read the cluster's identity when it was built.
        ctx.connections.forget(&connection.key);
        connection = ctx
            .connections
            .connect(iep, &namespace, &ctx.client)
            .await?;
        check_supported(&desired, &connection.info.version)?;
        observed = get(ctx, &connection, config).await?;
    }
    ctx.connections.remember(&uid, &connection);
    let es = &connection.client;
    let version = connection.info.version;
    let cluster_uuid = connection.info.cluster_uuid.as_str();
    let recorded_cluster = status.cluster.as_ref().map(|c| c.uuid.clone());

    let on_es_error = |e: EsError| es_failure(ctx, &connection, &e);
    // Ownership is per cluster: an endpoint recorded in another cluster is not ours here. Other
    // claims come from every watched scope, not only this object's namespace.
    let me = Claimant::of(iep);
    let owned = Record::of(Some(status)).owns(id, cluster_uuid);
    let claimed_by = ownership::claimed_by(&me, &ctx.ownership.claimants(id), cluster_uuid);
    let accepted_cluster = iep
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ACCEPT_CLUSTER_ANNOTATION))
        .map(String::as_str);
    let chunking_reset_seen = conditions::ready(&status.conditions)
        .and_then(|c| Reason::parse(&c.reason))
        == Some(Reason::ChunkingReset);
    let planned = plan(&PlanInput {
        desired: config,
        observed: observed.as_ref(),
        owned,
        fingerprint: &current_fingerprint,
        applied_fingerprint: if owned {
            status.credential_fingerprint.as_deref()
        } else {
            None
        },
        version: &version,
        adopt: iep.annotated(ADOPT_ANNOTATION, "true"),
        recreate: iep.spec.update_policy == UpdatePolicy::Recreate,
        claimed_by: claimed_by.as_deref(),
        cluster_uuid,
        recorded_cluster_uuid: status
            .inference_id
            .as_ref()
            .and(recorded_cluster.as_deref()),
        accepted_cluster_uuid: accepted_cluster,
        chunking_reset_seen,
    });
    debug!(inference_id = id, plan = ?planned, "planned");

    let cluster = format!("cluster {} ({version})", connection.info.cluster_name);
    let (endpoint, outcome) = match planned {
        Plan::Create => {
            let created = timed(
                ctx,
                EsOperation::Create,
                es.create_endpoint(config, &secret, &version),
            )
            .await
            .map_err(on_es_error)?;
            info!(inference_id = id, "created inference endpoint");
            let reason = if owned {
                Reason::Recreated
            } else {
                Reason::Created
            };
            let message = if owned {
                format!("inference endpoint {id} was missing from {cluster} and has been recreated")
            } else {
                format!("created inference endpoint {id} in {cluster}")
            };
            (created, Applied::new(reason, message))
        }
        // Whether or not the planner asked to record the credential, recording the current
        // fingerprint below is right: it equals the applied one, or is being adopted.
        Plan::Nothing => {
            let Some(observed) = observed else {
                return Err(Failure::new(
                    Reason::InternalError,
                    "planner found nothing to do for an absent endpoint",
                ));
            };
            (
                observed,
                Applied::new(
                    Reason::InSync,
                    format!("inference endpoint {id} in {cluster} matches the spec"),
                ),
            )
        }
        Plan::PushCredential => {
            let updated = update(ctx, &connection, config, &secret, observed.as_ref()).await?;
            let (reason, message) = if status.credential_fingerprint.is_some() {
                (
                    Reason::CredentialsRotated,
                    format!("applied the rotated credential to inference endpoint {id}"),
                )
            } else {
                (Reason::Adopted, format!("inference endpoint {id} in {cluster} matches the spec and now uses the referenced credential"))
            };
            info!(
                inference_id = id,
                %reason, "updated inference endpoint credential"
            );
            let outcome = Applied::new(reason, message);
            let reset = chunking_reset_outcome(
                config,
                observed.as_ref(),
                &updated,
                &version,
                chunking_reset_seen,
            );
            (updated, reset.unwrap_or(outcome))
        }
        Plan::Update { differences } => {
            let updated = update(ctx, &connection, config, &secret, observed.as_ref()).await?;
            info!(inference_id = id, "updated inference endpoint settings");
            let outcome = Applied::new(
                Reason::Updated,
                format!(
                    "updated inference endpoint {id}: {}",
                    describe(&differences)
                ),
            );
            let reset = chunking_reset_outcome(
                config,
                observed.as_ref(),
                &updated,
                &version,
                chunking_reset_seen,
            );
            (updated, reset.unwrap_or(outcome))
        }
        Plan::Recreate { differences } => {
            let in_use = timed(
                ctx,
                EsOperation::Delete,
                es.delete_endpoint(
                    config.task_type,
                    id,
                    DeleteOptions {
                        dry_run: true,
                        force: false,
                    },
                ),
            )
            .await
            .map_err(on_es_error)?;
            if let DeleteOutcome::Done(report) = &in_use {
                if !report.pipelines.is_empty() || !report.indexes.is_empty() {
                    return Err(Failure::new(
                        Reason::RecreateBlocked,
                        format!(
                            "inference endpoint {id} must be recreated to apply {}, but Elasticsearch reports it is used by pipelines {:?} and indexes {:?}; \
                             nothing was changed. Move those users to a new endpoint, or remove them",
                            describe(&differences), report.pipelines, report.indexes
                        ),
                    ));
                }
            }
            timed(
                ctx,
                EsOperation::Delete,
                es.delete_endpoint(config.task_type, id, DeleteOptions::default()),
            )
            .await
            .map_err(on_es_error)?;
            let created = timed(
                ctx,
                EsOperation::Create,
                es.create_endpoint(config, &secret, &version),
            )
            .await
            .map_err(on_es_error)?;
            info!(inference_id = id, "recreated inference endpoint");
            (
                created,
                Applied::new(
                    Reason::Recreated,
                    format!(
                        "recreated inference endpoint {id} to apply {}",
                        describe(&differences)
                    ),
                ),
            )
        }
        Plan::Blocked(outcome) => return Err(outcome),
    };
    status.cluster = Some(ClusterStatus {
        uuid: connection.info.cluster_uuid.clone(),
        name: connection.info.cluster_name.clone(),
        version: version.to_string(),
    });
    status.inference_id = Some(id.to_owned());
    status.endpoint = Some(endpoint_status(&endpoint));
    status.credential_fingerprint = Some(current_fingerprint);
    Ok(outcome)
}

/// Delete the endpoint this object owns, unless the policy retains it. Never forced unless the
/// force-delete annotation says so.
async fn remove(iep: &InferenceEndpoint, ctx: &Context) -> Result<Applied, Failure> {
    if iep.spec.deletion_policy == DeletionPolicy::Retain {
        return Ok(Applied::new(
            Reason::Retained,
            format!(
                "deletionPolicy Retain: inference endpoint {} left in Elasticsearch",
                iep.inference_id()
            ),
        ));
    }
    let status = iep.status.clone().unwrap_or_default();
    // Only ever delete what this object created or adopted.
    let Some(id) = status.inference_id.clone() else {
        return Ok(Applied::new(
            Reason::Deleted,
            "no inference endpoint was created for this object",
        ));
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
    let namespace = iep.namespace().unwrap_or_default();
    let uid = iep.uid().unwrap_or_default();
    // When the namespace is being torn down its Secrets may already be gone: fall back to the
    // connection this object last used, so deletion does not hang on a missing Secret.
    let connection = match ctx.connections.connect(iep, &namespace, &ctx.client).await {
        Ok(connection) => connection,
        Err(failure) => ctx.connections.remembered(&uid).ok_or_else(|| Failure {
            message: format!(
                "cannot delete inference endpoint {id}: {}. Restore it, or set spec.deletionPolicy: Retain to let the object go without deleting the endpoint",
                failure.message
            ),
            ..failure
        })?,
    };
    if !Record::of(Some(&status)).owns(&id, &connection.info.cluster_uuid) {
        return Ok(Applied::new(
            Reason::Deleted,
            format!("inference endpoint {id} lives in a cluster that no longer answers at this address; nothing deleted"),
        ));
    }
    let force = iep.annotated(FORCE_DELETE_ANNOTATION, "true");
    let deletion = connection.client.delete_endpoint(
        iep.spec.task_type,
        &id,
        DeleteOptions {
            dry_run: false,
            force,
        },
    );
    let outcome = timed(ctx, EsOperation::Delete, deletion).await.map_err(|e| {
        let failure = es_failure(ctx, &connection, &e);
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
    secret: &ServiceSecret,
    observed: Option<&Endpoint>,
) -> Result<Endpoint, Failure> {
    let version = &connection.info.version;
    let body = update_body(config, Some(secret), observed, version)
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
fn keep_steady_state_wording(previous: &InferenceEndpointStatus, applied: Applied) -> Applied {
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
            applied: (),
        },
        _ => applied,
    }
}

/// Write status if it changed, and publish an Event if Ready changed. Works from metadata
/// alone, so an object whose spec does not decode can be reported too; `insecure` is the
/// transport warning of a decoded spec (`connection::insecure_transport`).
async fn report(
    iep: &impl Resource<DynamicType = ()>,
    ctx: &Context,
    previous: InferenceEndpointStatus,
    mut status: InferenceEndpointStatus,
    outcome: &Outcome,
    insecure: Option<(Reason, String)>,
    action: &str,
) -> Result<(), Error> {
    let now = Time(Timestamp::now());
    status.observed_generation = iep.meta().generation;
    status.conditions =
        conditions::conditions_for(&previous.conditions, outcome, iep.meta().generation, &now);
    let warn_now = conditions::set_insecure_transport(
        &mut status.conditions,
        &previous.conditions,
        insecure
            .as_ref()
            .map(|(reason, message)| (*reason, message.as_str())),
        iep.meta().generation,
        &now,
    );
    if status != previous {
        patch_status(iep, ctx, &status).await?;
    }
    if conditions::is_transition(&previous.conditions, outcome) {
        publish(ctx, iep, outcome, action);
    }
    if let (true, Some((reason, message))) = (warn_now, insecure) {
        publish(ctx, iep, &Outcome::new(reason, message), action);
    }
    Ok(())
}

async fn patch_status(
    iep: &impl Resource,
    ctx: &Context,
    status: &InferenceEndpointStatus,
) -> Result<(), Error> {
    let name = iep.name_any();
    // The answer is the whole object; `Decoded` reads it back even when its spec does not.
    let api: Api<Decoded> =
        Api::namespaced(ctx.client.clone(), &iep.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": InferenceEndpoint::api_version(&()),
        "kind": InferenceEndpoint::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    tokio::time::timeout(
        ctx.config.kube_timeout,
        api.patch_status(&name, &params, &Patch::Apply(&body)),
    )
    .await
    .map_err(|_| Error::KubeTimeout("patch status"))?
    .map_err(Error::Kube)?;
    Ok(())
}

/// Events are best effort and published off the reconcile path: a slow or failing Event write
/// neither holds a reconcile slot nor fails the reconcile.
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
    let reference = iep.object_ref(&());
    let recorder = ctx.recorder.clone();
    let timeout = ctx.config.kube_timeout;
    let reason = outcome.reason.as_str();
    tokio::spawn(async move {
        match tokio::time::timeout(timeout, recorder.publish(&event, &reference)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(%error, reason, "could not publish event"),
            Err(_) => warn!(reason, "publishing event timed out"),
        }
    });
}
