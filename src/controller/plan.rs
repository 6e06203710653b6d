//! The pure decision at the heart of a reconcile: given what the object wants and what
//! Elasticsearch holds, which single action to take.
//!
//! Rules (docs/reference/design.md#lifecycle-rules,
//! docs/reference/elasticsearch-inference-api.md#idempotency):
//! * absent → create (PUT is create-only and costs an Azure call, so it happens only after a GET
//!   said 404);
//! * present and equal after normalisation, same credential → nothing;
//! * present and equal, credential changed or never recorded → push the credential through
//!   `_update` (8.17+), never delete;
//! * present with differences Elasticsearch can change in place → `_update`;
//! * anything else is reported, never forced: an endpoint this object did not create is a
//!   conflict (unless the adopt annotation says otherwise), an immutable change to one it did
//!   create needs `updatePolicy: Recreate` (which the driver still refuses while the endpoint is
//!   in use);
//! * a different cluster behind the same URL, or another object already managing the same
//!   (cluster, id), is reported before anything is written.

use serde_json::{Map, Value};

use crate::controller::conditions::{Applied, Failure, Reason};
use crate::elasticsearch::normalize::{compare, default_chunking, legacy_chunking, Difference};
use crate::elasticsearch::service::same_service;
use crate::elasticsearch::{DeleteResponse, DeploymentStats, Endpoint, EsVersion};
use crate::endpoint::EndpointConfig;

/// What the planner needs to know (`'e`: the observed endpoint, which the plan refers to).
pub struct PlanInput<'a, 'e> {
    pub desired: &'a EndpointConfig,
    /// `None` when GET answered 404.
    pub observed: Option<&'e Endpoint>,
    /// This object created or adopted the endpoint before ([`Record::owns`]).
    ///
    /// [`Record::owns`]: crate::controller::ownership::Record::owns
    pub owned: bool,
    /// Fingerprint of the credential in the referenced Secret now.
    pub fingerprint: &'a str,
    /// Fingerprint recorded in status when the credential was last applied.
    pub applied_fingerprint: Option<&'a str>,
    pub version: &'a EsVersion,
    /// The adopt annotation is set: take over a differing endpoint.
    pub adopt: bool,
    /// `updatePolicy: Recreate`.
    pub recreate: bool,
    /// Another InferenceEndpoint (`namespace/name`) manages this id in this cluster.
    pub claimed_by: Option<&'a str>,
    /// The UUID of the cluster answering now, and the one status recorded for the endpoint
    /// this object owns (if any).
    pub cluster_uuid: &'a str,
    pub recorded_cluster_uuid: Option<&'a str>,
    /// The accept-cluster annotation's value.
    pub accepted_cluster_uuid: Option<&'a str>,
    /// The object last reported `ChunkingReset`: Elasticsearch rewrote the chunking during
    /// an `_update` (issue #139574), and that rewrite is kept until the user recreates.
    pub chunking_reset_seen: bool,
    /// The name of the cluster answering now, for messages.
    pub cluster_name: &'a str,
    /// Status records a credential fingerprint: a pushed credential is a rotation, not an
    /// adoption.
    pub credential_recorded: bool,
    /// How the endpoint's secrets can change (from the service table).
    pub secrets: SecretRotation,
    /// Fingerprint of a rotated credential the provider rejected (status records it).
    pub rejected_fingerprint: Option<&'a str>,
}

/// What a changed secret means for the endpoint's service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretRotation {
    /// The endpoint has no secret (in-cluster models, EIS): nothing to push, ever.
    NoSecrets,
    /// `_update` carries the new secrets.
    InPlace,
    /// The service cannot rotate through `_update`: a new endpoint is needed.
    NotInPlace,
}

/// The single action to take, and how its success is worded. The plan for an absent endpoint
/// is a different variant than for a present one, so an action on the endpoint always has one.
#[derive(Debug, PartialEq)]
pub enum Plan<'a> {
    /// GET answered 404: `PUT _inference/{task}/{id}`.
    Create(Applied),
    /// Elasticsearch holds `endpoint`; `change` says what to do with it.
    Change {
        endpoint: &'a Endpoint,
        change: Change,
        done: Applied,
    },
    /// Report and wait for a change of the object or its Secrets.
    Blocked(Failure),
}

impl Plan<'_> {
    /// The same action, its success worded by `f`.
    pub fn reworded(self, f: impl FnOnce(Applied) -> Applied) -> Self {
        match self {
            Plan::Create(done) => Plan::Create(f(done)),
            Plan::Change {
                endpoint,
                change,
                done,
            } => Plan::Change {
                endpoint,
                change,
                done: f(done),
            },
            blocked => blocked,
        }
    }
}

/// What to do with an endpoint Elasticsearch holds.
#[derive(Debug, PartialEq)]
pub enum Change {
    /// Already as desired. The driver records the current credential fingerprint: it equals
    /// the applied one, or (before 8.17, where the key cannot be pushed) an equal endpoint is
    /// being adopted and a later rotation must be noticed.
    Nothing,
    /// `_update` carrying only the credential.
    PushCredential,
    /// `_update` for differences Elasticsearch changes in place.
    Update { differences: Vec<Difference> },
    /// Delete and create again (`updatePolicy: Recreate`), if nothing uses the endpoint
    /// ([`unused_before_recreate`]).
    Recreate { differences: Vec<Difference> },
}

pub fn plan<'e>(input: &PlanInput<'_, 'e>) -> Plan<'e> {
    if let Err(failure) = check_identity(input) {
        return Plan::Blocked(failure);
    }
    let id = &input.desired.inference_id;
    let cluster = format!("cluster {} ({})", input.cluster_name, input.version);
    let Some(observed) = input.observed else {
        return Plan::Create(if input.owned {
            Applied::new(
                Reason::Recreated,
                format!(
                    "inference endpoint {id} was missing from {cluster} and has been recreated"
                ),
            )
        } else {
            Applied::new(
                Reason::Created,
                format!("created inference endpoint {id} in {cluster}"),
            )
        });
    };
    let change = match change(input, observed) {
        Ok(change) => change,
        Err(failure) => return Plan::Blocked(failure),
    };
    let done = match &change {
        Change::Nothing if !input.owned => Applied::new(
            Reason::Adopted,
            format!("inference endpoint {id} in {cluster} matches the spec; this object now manages it"),
        ),
        Change::Nothing => Applied::new(
            Reason::InSync,
            format!("inference endpoint {id} in {cluster} matches the spec"),
        ),
        Change::PushCredential if input.credential_recorded => Applied::new(
            Reason::CredentialsRotated,
            format!("applied the rotated credential to inference endpoint {id}"),
        ),
        Change::PushCredential => Applied::new(
            Reason::Adopted,
            format!("inference endpoint {id} in {cluster} matches the spec and now uses the referenced credential"),
        ),
        Change::Update { differences } => Applied::new(
            Reason::Updated,
            format!("updated inference endpoint {id}: {}", describe_applied(differences)),
        ),
        Change::Recreate { differences } => Applied::new(
            Reason::Recreated,
            format!(
                "recreated inference endpoint {id} to apply {}",
                describe_applied(differences)
            ),
        ),
    };
    Plan::Change {
        endpoint: observed,
        change,
        done,
    }
}

/// A different cluster behind the same URL, or another object managing the same (cluster,
/// id): reported before anything is written.
fn check_identity(input: &PlanInput<'_, '_>) -> Result<(), Failure> {
    let id = &input.desired.inference_id;
    if let Some(recorded) = input.recorded_cluster_uuid {
        if recorded != input.cluster_uuid && input.accepted_cluster_uuid != Some(input.cluster_uuid)
        {
            return Err(Failure::new(
                Reason::ClusterChanged,
                format!(
                    "the Elasticsearch answering now is cluster {}, but inference endpoint {id} was created in cluster {recorded}; \
                     nothing is written. If the cluster was replaced on purpose, annotate the object with {}={} to create the endpoint there",
                    input.cluster_uuid, crate::api::ACCEPT_CLUSTER_ANNOTATION, input.cluster_uuid
                ),
            ));
        }
    }
    if let Some(owner) = input.claimed_by {
        return Err(Failure::new(
            Reason::Conflict,
            format!(
                "inference endpoint {id} in this cluster is managed by InferenceEndpoint {owner}; this object writes nothing"
            ),
        ));
    }
    Ok(())
}

/// What to do with the endpoint Elasticsearch holds.
fn change(input: &PlanInput<'_, '_>, observed: &Endpoint) -> Result<Change, Failure> {
    let desired = input.desired;
    if !same_service(&observed.service, &desired.service) {
        return Err(Failure::new(
            Reason::Conflict,
            format!(
                "inference endpoint {} already exists in Elasticsearch with service {:?}, not {:?}; it is left alone",
                desired.inference_id, observed.service, desired.service
            ),
        ));
    }
    let mut differences = compare(desired, observed, input.version);
    if input.chunking_reset_seen {
        // The reset chunking is a real change Elasticsearch made, reported already; recreating
        // is the user's call, so it neither blocks nor triggers anything here.
        differences.retain(|d| !is_chunking_reset(d, input.version, observed));
    }
    if !differences.is_empty() {
        return change_settings(input, observed, differences);
    }
    if input.applied_fingerprint == Some(input.fingerprint)
        || input.secrets == SecretRotation::NoSecrets
    {
        return Ok(Change::Nothing);
    }
    if input.secrets == SecretRotation::NotInPlace && input.applied_fingerprint.is_some() {
        return Err(Failure::new(
            Reason::RotationUnsupported,
            format!(
                "the secret Secret changed, but service {} cannot rotate it through _update; \
                 the endpoint keeps the previous secret: create a new InferenceEndpoint (or \
                 set a new spec.inferenceId) to use the new one",
                desired.service
            ),
        ));
    }
    if input.version.supports_update_api() && input.secrets == SecretRotation::InPlace {
        if input.rejected_fingerprint == Some(input.fingerprint) {
            return Err(still_rejected(&desired.inference_id));
        }
        return Ok(Change::PushCredential);
    }
    match input.applied_fingerprint {
        // Equal settings, nothing recorded yet: a restart after our own PUT or an adoption.
        // The key cannot be pushed before 8.17; record it so a later rotation is noticed.
        None => Ok(Change::Nothing),
        Some(_) => Err(Failure::new(
            Reason::RotationUnsupported,
            format!(
                "the credential Secret changed, but Elasticsearch {} has no update API (8.17 or later); \
                 the endpoint keeps the previous credential",
                input.version
            ),
        )),
    }
}

/// The credential in the Secret is the one the provider rejected: not sent again (no
/// `_update`, no provider call) until the Secret changes.
pub fn still_rejected(id: &str) -> Failure {
    Failure::new(
        Reason::CredentialsRejected,
        format!(
            "the provider rejected the credential in the referenced Secret; inference endpoint {id} \
             keeps the previous key and keeps serving. Put a working key in the Secret: the \
             operator tries again when it changes"
        ),
    )
}

/// Settings differ: in place, by recreating, or not at all.
fn change_settings(
    input: &PlanInput<'_, '_>,
    observed: &Endpoint,
    differences: Vec<Difference>,
) -> Result<Change, Failure> {
    let desired = input.desired;
    let in_place = differences
        .iter()
        .all(|d| d.updatable_on(input.version, observed));
    let ours = input.owned || input.adopt;
    if in_place && ours {
        return Ok(Change::Update { differences });
    }
    if ours && input.recreate {
        return Ok(Change::Recreate { differences });
    }
    let listed = describe(&differences);
    Err(if ours {
        Failure::new(
            Reason::ImmutableFieldChanged,
            format!(
                "Elasticsearch {} cannot change these settings of inference endpoint {} in place: {listed}. \
                 Set spec.updatePolicy: Recreate to delete and recreate it while nothing uses it, \
                 or create a new InferenceEndpoint with a new inferenceId",
                input.version, desired.inference_id
            ),
        )
    } else {
        Failure::new(
            Reason::Conflict,
            format!(
                "inference endpoint {} already exists in Elasticsearch with different settings ({listed}); \
                 it was not created by this object and is left alone (annotate {}=true to take it over)",
                desired.inference_id,
                crate::api::ADOPT_ANNOTATION
            ),
        )
    })
}

/// Before a recreate: the endpoint's users can be listed at all (the dry-run DELETE, 8.15+).
/// Before 8.15 Elasticsearch neither lists nor protects them, so nothing is deleted.
pub fn users_can_be_listed(
    id: &str,
    differences: &[Difference],
    version: &EsVersion,
) -> Result<(), Failure> {
    if version.supports_delete_options() {
        return Ok(());
    }
    Err(Failure::new(
        Reason::RecreateBlocked,
        format!(
            "inference endpoint {id} must be recreated to apply {}, but Elasticsearch {version} cannot report what uses it (8.15 or later); \
             nothing was changed. Recreate it yourself once nothing uses it, or set a new spec.inferenceId",
            describe(differences)
        ),
    ))
}

/// Before a recreate: Elasticsearch's dry-run DELETE `report` lists the endpoint's users; while
/// there are any, nothing is deleted.
pub fn unused_before_recreate(
    id: &str,
    differences: &[Difference],
    report: &DeleteResponse,
) -> Result<(), Failure> {
    if report.pipelines.is_empty() && report.indexes.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        Reason::RecreateBlocked,
        format!(
            "inference endpoint {id} must be recreated to apply {}, but Elasticsearch reports it is used by pipelines {:?} and indexes {:?}; \
             nothing was changed. Move those users to a new endpoint, or remove them",
            describe(differences), report.pipelines, report.indexes
        ),
    ))
}

fn is_legacy(chunking: Option<&Map<String, Value>>) -> bool {
    chunking.is_some_and(|c| {
        serde_json::to_value(c).ok() == serde_json::to_value(legacy_chunking()).ok()
    })
}

/// The chunking difference left by issue #139574 (observed word/250/100), when `_update`
/// cannot put the desired chunking back in place.
fn is_chunking_reset(d: &Difference, version: &EsVersion, observed: &Endpoint) -> bool {
    d.path == "chunking_settings"
        && is_legacy(observed.chunking_settings.as_ref())
        && !d.updatable_on(version, observed)
}

/// After an `_update`: the Ready outcome to report when Elasticsearch rewrote the chunking
/// settings to word/250/100 (issue #139574) — just now (`before` had other chunking, on a version
/// with the bug), or earlier and still in place (`seen`). `None` when the chunking is untouched.
pub fn chunking_reset_outcome(
    desired: &EndpointConfig,
    before: Option<&Endpoint>,
    after: &Endpoint,
    version: &EsVersion,
    seen: bool,
) -> Option<Applied> {
    if !is_legacy(after.chunking_settings.as_ref()) {
        return None;
    }
    let now = version.update_resets_chunking()
        && before.is_some_and(|b| !is_legacy(b.chunking_settings.as_ref()));
    if !(now || seen) {
        return None;
    }
    let wanted = desired
        .chunking_settings
        .clone()
        .unwrap_or_else(default_chunking);
    Some(Applied::new(
        Reason::ChunkingReset,
        format!(
            "Elasticsearch {version} rewrote the chunking settings of inference endpoint {} to \
             {{\"strategy\":\"word\",\"max_chunk_size\":250,\"overlap\":100}} while applying an _update \
             (elastic/elasticsearch#139574: every version from 8.17 to 9.1, 9.2.0-9.2.5 and 9.3.0; fixed in \
             9.2.6, 9.3.1 and 9.4.0). Documents ingested from now on are chunked that way instead of {}; \
             documents already indexed keep their chunks. The endpoint works and is not recreated \
             automatically: to restore the chunking, recreate it yourself once nothing uses it (delete it \
             in Elasticsearch and the operator creates it again from the spec, or set a new \
             spec.inferenceId), preferably after upgrading to a fixed version",
            desired.inference_id,
            Value::Object(wanted)
        ),
    ))
}

// In-cluster models (`elasticsearch`, `elser`; docs/reference/elasticsearch-services.md#in-cluster-deployments,
// docs/lifecycle.md#slow-model-deployments). A PUT that answers 408 has stored the endpoint (most
// releases) or not yet (those that deploy before storing), and the deployment goes on. Until it
// has started nothing is written: not a second PUT (it would race the deployment under way, or
// fail as "already exists"), not an `_update`. Once it has started — or no deployment exists
// under the id — the plan goes on as always: GET found the endpoint → compare; 404 → PUT once.

/// The deployment an in-cluster endpoint runs on: its own, whose id is the inference id, unless
/// `service_settings.deployment_id` attaches it to an existing one.
pub fn deployment_id(desired: &EndpointConfig) -> &str {
    desired
        .service_settings
        .get("deployment_id")
        .and_then(Value::as_str)
        .unwrap_or(&desired.inference_id)
}

/// The model an in-cluster endpoint deploys, for messages.
fn model_of(desired: &EndpointConfig) -> String {
    match desired
        .service_settings
        .get("model_id")
        .and_then(Value::as_str)
    {
        Some(model) => format!("model {model}"),
        None => "the service's default model".to_owned(),
    }
}

/// While the deployment is starting: the `ModelDeploying` message (`stored`: GET found the
/// endpoint). `None` once it has started or when there is none: the plan goes on.
pub fn still_deploying(
    desired: &EndpointConfig,
    stored: bool,
    deployment: Option<&DeploymentStats>,
    poll: std::time::Duration,
) -> Option<String> {
    let deployment = deployment.filter(|d| !d.is_started())?;
    let id = &desired.inference_id;
    let model = model_of(desired);
    let again = humantime::format_duration(poll);
    Some(if stored {
        format!(
            "{model} of inference endpoint {id} is being deployed on the ML nodes: {}; checked again every {again}",
            deployment.describe()
        )
    } else {
        format!(
            "{model} for inference endpoint {id} is being deployed on the ML nodes: {}; Elasticsearch has not stored the endpoint yet              (this release deploys before it stores), so it is created once the deployment has started; checked again every {again}",
            deployment.describe()
        )
    })
}

/// The `ModelDeploying` message after a PUT that Elasticsearch answered with 408 (or that the
/// client gave up on): `es` is what was reported.
pub fn deploying_after_put(
    desired: &EndpointConfig,
    es: &str,
    poll: std::time::Duration,
) -> String {
    format!(
        "{} of inference endpoint {} is being deployed on the ML nodes; Elasticsearch reported: {es}          The operator follows the deployment every {} and sends no second PUT",
        model_of(desired),
        desired.inference_id,
        humantime::format_duration(poll)
    )
}

/// The first Ready after `ModelDeploying` is the creation: an equal endpoint (`InSync`) or one
/// created by a PUT after a deploy-before-store release stored nothing (`Recreated`, since the
/// status already records the id) is worded `Created`. `cluster`: `cluster <name> (<version>)`.
pub fn deployed(desired: &EndpointConfig, done: Applied, cluster: &str) -> Applied {
    if !matches!(done.reason, Reason::InSync | Reason::Recreated) {
        return done;
    }
    Applied::new(
        Reason::Created,
        format!(
            "created inference endpoint {} in {cluster}; {} is deployed",
            desired.inference_id,
            model_of(desired)
        ),
    )
}

/// What an applied change did: `service_settings.deployment_id changed from "b" to "a", ...`
/// (the form of [`describe`], for a change not applied, names both sides instead).
pub fn describe_applied(differences: &[Difference]) -> String {
    differences
        .iter()
        .map(|d| match (&d.observed, &d.desired) {
            (Some(old), Some(new)) => format!("{} changed from {old} to {new}", d.path),
            (None, Some(new)) => format!("{} set to {new}", d.path),
            (Some(old), None) => format!("{} removed (was {old})", d.path),
            (None, None) => d.path.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `service_settings.deployment_id (Elasticsearch holds "b", the spec asks for "a"), ...` for
/// the messages of a change that was not applied: which value is in force and which is asked
/// for, so neither reads as already applied. Only non-secret values ever reach this point (GET
/// never returns secrets).
pub fn describe(differences: &[Difference]) -> String {
    differences
        .iter()
        .map(|d| {
            let held = d.observed.as_ref().map_or_else(
                || "Elasticsearch has it unset".to_owned(),
                |v| format!("Elasticsearch holds {v}"),
            );
            let asked = d.desired.as_ref().map_or_else(
                || "the spec leaves it unset".to_owned(),
                |v| format!("the spec asks for {v}"),
            );
            format!("{} ({held}, {asked})", d.path)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::TaskType;
    use serde_json::{json, Map, Value};

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn desired() -> EndpointConfig {
        EndpointConfig {
            inference_id: "emb".into(),
            task_type: TaskType::TextEmbedding,
            service: "azureopenai".into(),
            service_settings: map(
                json!({"resource_name": "res", "deployment_id": "dep", "api_version": "2024-10-21"}),
            ),
            task_settings: map(json!({"user": "a"})),
            chunking_settings: None,
        }
    }

    /// What Elasticsearch returns for `desired()` (defaults and inferred fields filled in).
    fn observed() -> Endpoint {
        serde_json::from_value(json!({
            "inference_id": "emb", "task_type": "text_embedding", "service": "azureopenai",
            "service_settings": {"resource_name": "res", "deployment_id": "dep", "api_version": "2024-10-21",
                                 "rate_limit": {"requests_per_minute": 1440}, "dimensions": 1536, "similarity": "dot_product"},
            "task_settings": {"user": "a"},
            "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
        }))
        .unwrap()
    }

    /// The action a plan names, its wording left out (tested on its own).
    #[derive(Debug, PartialEq)]
    enum Step {
        Create,
        Nothing,
        PushCredential,
        Update { differences: Vec<Difference> },
        Recreate { differences: Vec<Difference> },
        Blocked(Failure),
    }

    fn step(plan: Plan<'_>) -> Step {
        match plan {
            Plan::Create(_) => Step::Create,
            Plan::Change { change, .. } => match change {
                Change::Nothing => Step::Nothing,
                Change::PushCredential => Step::PushCredential,
                Change::Update { differences } => Step::Update { differences },
                Change::Recreate { differences } => Step::Recreate { differences },
            },
            Plan::Blocked(failure) => Step::Blocked(failure),
        }
    }

    fn run(observed: Option<&Endpoint>, owned: bool, applied: Option<&str>, version: &str) -> Step {
        run_with(observed, owned, applied, version, |_| {})
    }

    fn run_with(
        observed: Option<&Endpoint>,
        owned: bool,
        applied: Option<&str>,
        version: &str,
        tweak: impl FnOnce(&mut PlanInput<'_, '_>),
    ) -> Step {
        planned(observed, owned, applied, version, tweak, step)
    }

    /// The test defaults: an owned endpoint in cluster uuid-a, credential unchanged.
    fn input<'a, 'e>(
        desired: &'a EndpointConfig,
        observed: Option<&'e Endpoint>,
        version: &'a EsVersion,
    ) -> PlanInput<'a, 'e> {
        PlanInput {
            desired,
            observed,
            owned: true,
            fingerprint: "fp-now",
            applied_fingerprint: Some("fp-now"),
            version,
            adopt: false,
            recreate: false,
            claimed_by: None,
            cluster_uuid: "uuid-a",
            recorded_cluster_uuid: Some("uuid-a"),
            accepted_cluster_uuid: None,
            chunking_reset_seen: false,
            cluster_name: "es",
            credential_recorded: false,
            rejected_fingerprint: None,
            secrets: SecretRotation::InPlace,
        }
    }

    /// Plan with the test defaults, `tweak`ed, and read the plan with `read`.
    fn planned<T>(
        observed: Option<&Endpoint>,
        owned: bool,
        applied: Option<&str>,
        version: &str,
        tweak: impl FnOnce(&mut PlanInput<'_, '_>),
        read: impl FnOnce(Plan<'_>) -> T,
    ) -> T {
        let desired = desired();
        let version = EsVersion::parse(version).unwrap();
        let mut input = input(&desired, observed, &version);
        input.owned = owned;
        input.applied_fingerprint = applied;
        input.recorded_cluster_uuid = owned.then_some("uuid-a");
        tweak(&mut input);
        read(plan(&input))
    }

    fn reason(plan: Step) -> Reason {
        match plan {
            Step::Blocked(outcome) => outcome.reason,
            other => panic!("expected Blocked, got {other:?}"),
        }
    }

    fn elser() -> EndpointConfig {
        EndpointConfig {
            inference_id: "my-elser".into(),
            task_type: TaskType::SparseEmbedding,
            service: "elasticsearch".into(),
            service_settings: map(
                json!({"model_id": ".elser_model_2", "num_threads": 1, "num_allocations": 1}),
            ),
            task_settings: Map::new(),
            chunking_settings: None,
        }
    }

    fn deployment(state: &str, allocation: &str) -> DeploymentStats {
        DeploymentStats {
            state: state.into(),
            reason: None,
            allocation_state: Some(allocation.into()),
            allocation_count: Some(u64::from(allocation != "starting")),
            target_allocation_count: Some(1),
        }
    }

    const POLL: std::time::Duration = std::time::Duration::from_secs(15);

    #[test]
    fn a_starting_deployment_holds_every_write() {
        let d = elser();
        let starting = deployment("starting", "starting");
        let stored = still_deploying(&d, true, Some(&starting), POLL).expect("waits");
        for needle in [
            ".elser_model_2",
            "my-elser",
            "deployment state starting",
            "0 of 1",
            "15s",
        ] {
            assert!(stored.contains(needle), "{needle}: {stored}");
        }
        // A release that deploys before storing: nothing stored yet, and no PUT while it starts.
        let unstored = still_deploying(&d, false, Some(&starting), POLL).expect("waits");
        assert!(
            unstored.contains("not stored the endpoint yet"),
            "{unstored}"
        );
        // Started, or no deployment at all: the plan goes on (compare, or PUT once).
        let started = deployment("started", "fully_allocated");
        for stored in [true, false] {
            assert_eq!(still_deploying(&d, stored, Some(&started), POLL), None);
            assert_eq!(still_deploying(&d, stored, None, POLL), None);
        }
    }

    #[test]
    fn a_timed_out_put_is_worded_as_a_deployment_going_on() {
        let es = "Timed out after [5s] waiting for trained model deployment [my-elser] to start.";
        let m = deploying_after_put(&elser(), es, POLL);
        for needle in [".elser_model_2", "my-elser", es, "no second PUT", "15s"] {
            assert!(m.contains(needle), "{needle}: {m}");
        }
        let mut defaulted = elser();
        defaulted.service = "elser".into();
        defaulted.service_settings.remove("model_id");
        assert!(deploying_after_put(&defaulted, es, POLL).contains("the service's default model"));
    }

    #[test]
    fn the_first_ready_after_a_deployment_is_the_creation() {
        let d = elser();
        for reason in [Reason::InSync, Reason::Recreated] {
            let done = deployed(&d, Applied::new(reason, "x"), "cluster es (9.1.0)");
            assert_eq!(done.reason, Reason::Created);
            assert_eq!(
                done.message,
                "created inference endpoint my-elser in cluster es (9.1.0); model .elser_model_2 is deployed"
            );
        }
        let updated = deployed(&d, Applied::new(Reason::Updated, "u"), "c");
        assert_eq!(updated, Applied::new(Reason::Updated, "u"));
    }

    #[test]
    fn the_deployment_followed_is_the_endpoints_own_unless_it_attaches() {
        let mut d = elser();
        assert_eq!(deployment_id(&d), "my-elser");
        d.service_settings
            .insert("deployment_id".into(), json!("shared"));
        assert_eq!(deployment_id(&d), "shared");
    }

    #[test]
    fn immutable_drift_recreates_only_under_the_recreate_policy() {
        let mut o = observed();
        o.service_settings
            .insert("deployment_id".into(), json!("other"));
        match run_with(Some(&o), true, Some("fp-now"), "9.1.0", |i| {
            i.recreate = true
        }) {
            Step::Recreate { differences } => {
                assert_eq!(differences[0].path, "service_settings.deployment_id")
            }
            other => panic!("unexpected {other:?}"),
        }
        // Not ours and not adopted: never recreated, whatever the policy.
        assert_eq!(
            reason(run_with(Some(&o), false, None, "9.1.0", |i| i.recreate = true)),
            Reason::Conflict
        );
    }

    #[test]
    fn adopt_annotation_takes_over_a_differing_endpoint() {
        let mut o = observed();
        o.task_settings = map(json!({"user": "someone-else"}));
        assert_eq!(
            reason(run(Some(&o), false, None, "8.18.0")),
            Reason::Conflict
        );
        match run_with(Some(&o), false, None, "8.18.0", |i| i.adopt = true) {
            Step::Update { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn another_owner_blocks_before_anything_is_written() {
        let plan = run_with(None, false, None, "9.1.0", |i| {
            i.claimed_by = Some("ns/first")
        });
        match plan {
            Step::Blocked(outcome) => {
                assert_eq!(outcome.reason, Reason::Conflict);
                assert!(
                    outcome.message.contains("InferenceEndpoint ns/first"),
                    "{}",
                    outcome.message
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_different_cluster_behind_the_url_is_reported_until_accepted() {
        let o = observed();
        let changed = run_with(Some(&o), true, Some("fp-now"), "9.1.0", |i| {
            i.cluster_uuid = "uuid-b"
        });
        assert_eq!(reason(changed), Reason::ClusterChanged);
        let accepted = run_with(None, true, Some("fp-now"), "9.1.0", |i| {
            i.cluster_uuid = "uuid-b";
            i.accepted_cluster_uuid = Some("uuid-b");
        });
        assert_eq!(accepted, Step::Create);
    }

    #[test]
    fn absent_endpoint_is_created() {
        assert_eq!(run(None, false, None, "8.18.0"), Step::Create);
        assert_eq!(
            run(None, true, Some("fp-now"), "8.18.0"),
            Step::Create,
            "deleted out of band"
        );
    }

    #[test]
    fn equal_endpoint_with_same_credential_needs_nothing() {
        let o = observed();
        assert_eq!(run(Some(&o), true, Some("fp-now"), "8.18.0"), Step::Nothing);
    }

    #[test]
    fn services_without_secrets_never_push_one() {
        let o = observed();
        let no_secrets = |i: &mut PlanInput<'_, '_>| i.secrets = SecretRotation::NoSecrets;
        // Adopting or re-recording an in-cluster endpoint writes nothing.
        assert_eq!(
            run_with(Some(&o), false, None, "9.1.0", no_secrets),
            Step::Nothing
        );
        assert_eq!(
            run_with(Some(&o), true, Some("fp-old"), "9.1.0", no_secrets),
            Step::Nothing
        );
    }

    #[test]
    fn a_secret_the_service_cannot_rotate_in_place_is_reported() {
        let o = observed();
        let fixed = |i: &mut PlanInput<'_, '_>| i.secrets = SecretRotation::NotInPlace;
        assert_eq!(
            reason(run_with(Some(&o), true, Some("fp-old"), "9.1.0", fixed)),
            Reason::RotationUnsupported
        );
        assert_eq!(
            run_with(Some(&o), true, None, "9.1.0", fixed),
            Step::Nothing,
            "nothing recorded yet: record it"
        );
    }

    #[test]
    fn rotated_or_unrecorded_credential_is_pushed_through_update() {
        let o = observed();
        assert_eq!(
            run(Some(&o), true, Some("fp-old"), "8.17.0"),
            Step::PushCredential
        );
        assert_eq!(run(Some(&o), false, None, "9.1.0"), Step::PushCredential);
    }

    #[test]
    fn clusters_without_update_api_record_or_report() {
        let o = observed();
        assert_eq!(run(Some(&o), false, None, "8.16.0"), Step::Nothing);
        match run(Some(&o), true, Some("fp-old"), "8.16.0") {
            Step::Blocked(outcome) => assert_eq!(outcome.reason, Reason::RotationUnsupported),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn task_settings_drift_is_updated_in_place_when_owned() {
        let mut o = observed();
        o.task_settings = map(json!({"user": "b"}));
        match run(Some(&o), true, Some("fp-now"), "8.18.0") {
            Step::Update { differences } => assert_eq!(differences[0].path, "task_settings.user"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_difference_not_applied_names_what_elasticsearch_holds_and_what_the_spec_asks() {
        let differences = [
            Difference {
                path: "service_settings.dimensions".into(),
                desired: Some(json!(256)),
                observed: None,
            },
            Difference {
                path: "task_settings.user".into(),
                desired: None,
                observed: Some(json!("old")),
            },
        ];
        assert_eq!(
            describe(&differences),
            "service_settings.dimensions (Elasticsearch has it unset, the spec asks for 256), \
             task_settings.user (Elasticsearch holds \"old\", the spec leaves it unset)"
        );
    }

    #[test]
    fn immutable_drift_is_reported_never_forced() {
        let mut o = observed();
        o.service_settings
            .insert("deployment_id".into(), json!("other"));
        match run(Some(&o), true, Some("fp-now"), "9.1.0") {
            Step::Blocked(outcome) => {
                assert_eq!(outcome.reason, Reason::ImmutableFieldChanged);
                assert!(
                    outcome
                        .message
                        .contains(r#"service_settings.deployment_id (Elasticsearch holds "other", the spec asks for "dep")"#),
                    "{}",
                    outcome.message
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        match run(Some(&o), false, None, "9.1.0") {
            Step::Blocked(outcome) => assert_eq!(outcome.reason, Reason::Conflict),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn with_chunking(mut e: Endpoint, chunking: Value) -> Endpoint {
        e.chunking_settings = Some(map(chunking));
        e
    }

    #[test]
    fn a_chunking_reset_is_reported_after_the_update_that_caused_it() {
        let d = desired();
        let before = observed();
        let legacy = json!({"strategy": "word", "max_chunk_size": 250, "overlap": 100});
        let after = with_chunking(observed(), legacy.clone());
        let v = |s: &str| EsVersion::parse(s).unwrap();
        let out = chunking_reset_outcome(&d, Some(&before), &after, &v("9.1.0"), false).unwrap();
        assert!(out.reason.is_ready());
        assert_eq!(out.reason, Reason::ChunkingReset);
        for needle in ["#139574", "9.2.6", "chunked", "recreate"] {
            assert!(out.message.contains(needle), "{needle}: {}", out.message);
        }
        // Unchanged chunking, or a version with the fix: nothing to report.
        assert!(chunking_reset_outcome(&d, Some(&before), &before, &v("9.1.0"), false).is_none());
        assert!(chunking_reset_outcome(&d, Some(&before), &after, &v("9.2.6"), false).is_none());
        // Already legacy before (pre-8.16 endpoint): not a reset, unless one was seen.
        assert!(chunking_reset_outcome(&d, Some(&after), &after, &v("9.1.0"), false).is_none());
        assert!(chunking_reset_outcome(&d, Some(&after), &after, &v("9.1.0"), true).is_some());
    }

    #[test]
    fn a_seen_chunking_reset_neither_blocks_nor_recreates() {
        let legacy = json!({"strategy": "word", "max_chunk_size": 250, "overlap": 100});
        let o = with_chunking(observed(), legacy);
        let explicit = |i: &mut PlanInput<'_, '_>| i.recreate = true;
        let mut d = desired();
        d.chunking_settings = Some(map(
            json!({"strategy": "sentence", "max_chunk_size": 300, "sentence_overlap": 1}),
        ));
        let v = EsVersion::parse("9.1.0").unwrap();
        let mut input = input(&d, Some(&o), &v);
        explicit(&mut input);
        assert!(
            matches!(step(plan(&input)), Step::Recreate { .. }),
            "unexplained drift"
        );
        input.chunking_reset_seen = true;
        assert_eq!(step(plan(&input)), Step::Nothing);
        input.applied_fingerprint = Some("fp-old");
        assert_eq!(
            step(plan(&input)),
            Step::PushCredential,
            "rotations still go through"
        );
    }

    #[test]
    fn max_input_tokens_changes_in_place_from_9_5() {
        let mut o = observed();
        o.service_settings
            .insert("max_input_tokens".into(), json!(512));
        let run_tokens = |version: &str| run_with(Some(&o), true, Some("fp-now"), version, |_| {});
        // desired() has no max_input_tokens: removing it is never in place.
        assert_eq!(reason(run_tokens("9.5.0")), Reason::ImmutableFieldChanged);
        let mut desired = desired();
        desired
            .service_settings
            .insert("max_input_tokens".into(), json!(1024));
        for (version, in_place) in [("9.4.0", false), ("9.5.0", true)] {
            let v = EsVersion::parse(version).unwrap();
            let input = input(&desired, Some(&o), &v);
            match step(plan(&input)) {
                Step::Update { differences } if in_place => {
                    assert_eq!(differences[0].path, "service_settings.max_input_tokens")
                }
                Step::Blocked(o) if !in_place => {
                    assert_eq!(o.reason, Reason::ImmutableFieldChanged)
                }
                other => panic!("{version}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn a_different_service_under_the_same_id_is_a_conflict() {
        let mut o = observed();
        o.service = "openai".into();
        match run(Some(&o), false, None, "9.1.0") {
            Step::Blocked(outcome) => assert_eq!(outcome.reason, Reason::Conflict),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn done(plan: Plan<'_>) -> Applied {
        match plan {
            Plan::Create(done) | Plan::Change { done, .. } => done,
            Plan::Blocked(failure) => panic!("unexpected {failure:?}"),
        }
    }

    fn worded(
        observed: Option<&Endpoint>,
        owned: bool,
        tweak: impl FnOnce(&mut PlanInput<'_, '_>),
    ) -> Applied {
        let applied = owned.then_some("fp-now");
        let prod = |i: &mut PlanInput<'_, '_>| {
            i.cluster_name = "prod";
            i.credential_recorded = owned;
            tweak(i)
        };
        planned(observed, owned, applied, "9.1.0", prod, done)
    }

    #[test]
    fn a_missing_endpoint_is_created_or_recreated_as_ownership_says() {
        let created = worded(None, false, |_| {});
        assert_eq!(created.reason, Reason::Created);
        assert_eq!(
            created.message,
            "created inference endpoint emb in cluster prod (9.1.0)"
        );
        let recreated = worded(None, true, |_| {});
        assert_eq!(recreated.reason, Reason::Recreated);
        assert!(recreated
            .message
            .contains("was missing from cluster prod (9.1.0)"));
    }

    #[test]
    fn a_pushed_credential_is_a_rotation_once_one_was_recorded() {
        let o = observed();
        let rotated = worded(Some(&o), true, |i| i.applied_fingerprint = Some("fp-old"));
        assert_eq!(rotated.reason, Reason::CredentialsRotated);
        let adopted = worded(Some(&o), false, |_| {});
        assert_eq!(adopted.reason, Reason::Adopted);
        assert!(adopted
            .message
            .contains("now uses the referenced credential"));
        assert_eq!(worded(Some(&o), true, |_| {}).reason, Reason::InSync);
    }

    #[test]
    fn changes_are_worded_with_their_differences() {
        let mut o = observed();
        o.task_settings = map(json!({"user": "b"}));
        let updated = worded(Some(&o), true, |_| {});
        assert_eq!(updated.reason, Reason::Updated);
        assert!(
            updated
                .message
                .contains(r#"task_settings.user changed from "b" to "a""#),
            "{}",
            updated.message
        );
        o.service_settings
            .insert("deployment_id".into(), json!("other"));
        let recreated = worded(Some(&o), true, |i| i.recreate = true);
        assert_eq!(recreated.reason, Reason::Recreated);
        assert!(recreated
            .message
            .starts_with("recreated inference endpoint emb to apply"));
    }

    #[test]
    fn a_recreate_waits_while_elasticsearch_reports_users() {
        let differences = [Difference {
            path: "service_settings.deployment_id".into(),
            desired: Some(json!("dep")),
            observed: Some(json!("other")),
        }];
        let unused = DeleteResponse::default();
        assert_eq!(unused_before_recreate("emb", &differences, &unused), Ok(()));
        for (pipelines, indexes) in [
            (vec!["p".to_owned()], vec![]),
            (vec![], vec!["i".to_owned()]),
        ] {
            let used = DeleteResponse {
                pipelines,
                indexes,
                ..DeleteResponse::default()
            };
            let failure = unused_before_recreate("emb", &differences, &used).unwrap_err();
            assert_eq!(failure.reason, Reason::RecreateBlocked);
            assert!(
                failure.message.contains("nothing was changed"),
                "{}",
                failure.message
            );
        }
    }

    #[test]
    fn a_recreate_needs_a_version_that_lists_the_users() {
        let differences = [Difference {
            path: "service_settings.deployment_id".into(),
            desired: Some(json!("dep")),
            observed: Some(json!("other")),
        }];
        let v = |s: &str| EsVersion::parse(s).unwrap();
        let failure = users_can_be_listed("emb", &differences, &v("8.14.3")).unwrap_err();
        assert_eq!(failure.reason, Reason::RecreateBlocked);
        assert!(
            failure.message.contains("8.15 or later"),
            "{}",
            failure.message
        );
        assert_eq!(
            users_can_be_listed("emb", &differences, &v("8.15.0")),
            Ok(())
        );
    }
}
