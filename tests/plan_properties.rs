//! Properties of the planner (`controller::plan`), checked against the Elasticsearch double
//! rather than against a model of our own: whatever Elasticsearch stores and returns is what the
//! next plan sees.
//!
//! * **Convergence:** take the planned action on the endpoint the double holds, read it back,
//!   and plan again with the credential recorded as applied: there is nothing left to do.
//! * **No deletion unless asked:** the only plan that deletes is `Recreate`, and the planner
//!   never picks it unless `updatePolicy: Recreate` was set. Deleting an object goes through
//!   the finalizer, never through the planner.
//!
//! Cases are generated over Azure OpenAI settings (resource, deployment, API version, rate
//! limit, dimensions, task settings, chunking), an optional endpoint created earlier with other
//! settings, a rotated or unchanged key, and Elasticsearch releases from 8.15 to 9.4.
//! `PROPTEST_CASES` sets the number of cases (default 48 here, to keep CI short).

use inference_operator::controller::plan::{
    chunking_reset_outcome, plan, Change, Plan, PlanInput, SecretRotation,
};
use inference_operator::elasticsearch::{
    unsupported_features, update_body, ConnectionConfig, DeleteOptions, EsClient, EsVersion,
};
use inference_operator::endpoint::{EndpointConfig, ServiceSecret, ServiceSecrets, TaskType};
use inference_testenv::es::{EsDouble, EsOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

const VERSIONS: &[&str] = &["8.15.0", "8.17.0", "8.19.0", "9.1.0", "9.4.0"];

#[derive(Clone, Debug)]
enum Chunking {
    Sentence { max: u32, overlap: u32 },
    Word { max: u32, overlap: u32 },
}

/// The user-set part of an Azure OpenAI endpoint.
#[derive(Clone, Debug)]
struct Azure {
    resource: &'static str,
    deployment: &'static str,
    api_version: &'static str,
    requests_per_minute: Option<u32>,
    dimensions: Option<u32>,
    user: Option<&'static str>,
    chunking: Option<Chunking>,
}

fn chunking() -> impl Strategy<Value = Option<Chunking>> {
    prop_oneof![
        Just(None),
        (20u32..300, 0u32..=1).prop_map(|(max, overlap)| Some(Chunking::Sentence { max, overlap })),
        (100u32..300, 1u32..=50).prop_map(|(max, overlap)| Some(Chunking::Word { max, overlap })),
    ]
}

fn azure() -> impl Strategy<Value = Azure> {
    (
        prop::sample::select(vec!["res-a", "res-b"]),
        prop::sample::select(vec!["dep-a", "dep-b"]),
        prop::sample::select(vec!["2024-02-01", "2024-06-01"]),
        prop::option::of(prop::sample::select(vec![120u32, 240, 1440])),
        prop::option::of(prop::sample::select(vec![256u32, 512])),
        prop::option::of(prop::sample::select(vec!["alice", "bob"])),
        chunking(),
    )
        .prop_map(
            |(resource, deployment, api_version, rpm, dimensions, user, chunking)| Azure {
                resource,
                deployment,
                api_version,
                requests_per_minute: rpm,
                dimensions,
                user,
                chunking,
            },
        )
}

/// One generated situation: what the object wants, what was created before (if anything), the
/// key then and now, the update policy, the release.
#[derive(Clone, Debug)]
struct Case {
    task: TaskType,
    desired: Azure,
    prior: Option<Azure>,
    key_rotated: bool,
    recreate: bool,
    version: &'static str,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec![TaskType::TextEmbedding, TaskType::Completion]),
        azure(),
        prop::option::of(azure()),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(VERSIONS.to_vec()),
    )
        .prop_map(
            |(task, desired, prior, key_rotated, recreate, version)| Case {
                task,
                desired,
                prior,
                key_rotated,
                recreate,
                version,
            },
        )
}

fn config(id: &str, task: TaskType, a: &Azure) -> EndpointConfig {
    let mut settings = json!({
        "resource_name": a.resource,
        "deployment_id": a.deployment,
        "api_version": a.api_version,
    });
    if let Some(rpm) = a.requests_per_minute {
        settings["rate_limit"] = json!({ "requests_per_minute": rpm });
    }
    let embedding = task == TaskType::TextEmbedding;
    if let (Some(dims), true) = (a.dimensions, embedding) {
        settings["dimensions"] = json!(dims);
    }
    let task_settings = a
        .user
        .map_or_else(Map::new, |u| object(json!({ "user": u })));
    let chunking = a.chunking.as_ref().filter(|_| embedding).map(|c| match c {
        Chunking::Sentence { max, overlap } => object(
            json!({"strategy": "sentence", "max_chunk_size": max, "sentence_overlap": overlap}),
        ),
        Chunking::Word { max, overlap } => {
            object(json!({"strategy": "word", "max_chunk_size": max, "overlap": overlap}))
        }
    });
    EndpointConfig {
        inference_id: id.to_owned(),
        task_type: task,
        service: "azureopenai".into(),
        service_settings: object(settings),
        task_settings,
        chunking_settings: chunking,
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        _ => unreachable!("built from json! objects"),
    }
}

fn key(name: &str) -> ServiceSecrets {
    ServiceSecrets::from(ServiceSecret::api_key(name.to_owned()))
}

/// The planner's view with everything but the case's variables fixed: an endpoint this object
/// created in the one cluster, no other claimant.
fn input<'a, 'e>(
    desired: &'a EndpointConfig,
    observed: Option<&'e inference_operator::elasticsearch::Endpoint>,
    version: &'a EsVersion,
    fingerprint: &'a str,
    applied: Option<&'a str>,
    recreate: bool,
    chunking_reset_seen: bool,
) -> PlanInput<'a, 'e> {
    PlanInput {
        desired,
        observed,
        owned: applied.is_some(),
        fingerprint,
        applied_fingerprint: applied,
        version,
        adopt: false,
        recreate,
        claimed_by: None,
        cluster_uuid: "uuid",
        recorded_cluster_uuid: applied.map(|_| "uuid"),
        accepted_cluster_uuid: None,
        chunking_reset_seen,
        cluster_name: "es",
        credential_recorded: applied.is_some(),
        secrets: SecretRotation::InPlace,
        rejected_fingerprint: None,
    }
}

/// What one case showed, for the property checks.
enum Outcome {
    /// The planner refused (a reason the user must act on); nothing was written.
    Blocked,
    /// The action was taken; `then` is what the second plan said.
    Acted { first: String, then: String },
}

async fn run(es: &EsDouble, n: usize, case: &Case) -> Result<Outcome, TestCaseError> {
    let version = EsVersion::parse(case.version).expect("version");
    es.set_version(case.version);
    let client =
        EsClient::new(ConnectionConfig::new(es.url().parse().expect("url"))).expect("client");
    let id = format!("case-{n}");
    let desired = config(&id, case.task, &case.desired);
    // What the release cannot take is reported before any plan (`unsupported_features`).
    for wanted in std::iter::once(&case.desired).chain(&case.prior) {
        let cfg = config(&id, case.task, wanted);
        prop_assume!(unsupported_features(&cfg, &["api_key"], &version).is_empty());
    }
    let (old_key, new_key) = ("key-1", if case.key_rotated { "key-2" } else { "key-1" });

    if let Some(prior) = &case.prior {
        let prior = config(&id, case.task, prior);
        client
            .create_endpoint(&prior, &key(old_key), &version)
            .await
            .map_err(|e| TestCaseError::fail(format!("prior create: {}", e.message())))?;
    }
    let observed = client
        .get_endpoint(case.task, &id)
        .await
        .map_err(|e| TestCaseError::fail(format!("GET: {}", e.message())))?;
    let applied = case.prior.as_ref().map(|_| old_key);
    let first = plan(&input(
        &desired,
        observed.as_ref(),
        &version,
        new_key,
        applied,
        case.recreate,
        false,
    ));
    if !case.recreate {
        prop_assert!(
            !matches!(
                first,
                Plan::Change {
                    change: Change::Recreate { .. },
                    ..
                }
            ),
            "deletes without updatePolicy: Recreate: {first:?}"
        );
    }
    let first_text = format!("{first:?}");
    let secrets = key(new_key);
    // Only the chunking rewrite is carried over; what the double stores is read back below.
    let reset_seen = match first {
        Plan::Blocked(_) => return Ok(Outcome::Blocked),
        Plan::Create(_) => {
            create(&client, &desired, &secrets, &version).await?;
            false
        }
        Plan::Change {
            change: Change::Nothing,
            ..
        } => false,
        Plan::Change {
            change: Change::Recreate { .. },
            ..
        } => {
            client
                .delete_endpoint(case.task, &id, DeleteOptions::default())
                .await
                .map_err(|e| TestCaseError::fail(format!("DELETE: {}", e.message())))?;
            create(&client, &desired, &secrets, &version).await?;
            false
        }
        Plan::Change { endpoint, .. } => {
            let body = update_body(&desired, Some(&secrets), Some(endpoint), &version)
                .map_err(|e| TestCaseError::fail(format!("update body: {e}")))?;
            let updated = client
                .update_endpoint(case.task, &id, &body, &version)
                .await
                .map_err(|e| TestCaseError::fail(format!("_update: {}", e.message())))?;
            chunking_reset_outcome(&desired, Some(endpoint), &updated, &version, false).is_some()
        }
    };
    let reread = client
        .get_endpoint(case.task, &id)
        .await
        .map_err(|e| TestCaseError::fail(format!("GET after: {}", e.message())))?;
    prop_assert!(reread.is_some(), "the endpoint is gone after {first_text}");
    let then = plan(&input(
        &desired,
        reread.as_ref(),
        &version,
        new_key,
        Some(new_key),
        case.recreate,
        reset_seen,
    ));
    Ok(Outcome::Acted {
        first: first_text,
        then: format!("{then:?}"),
    })
}

async fn create(
    client: &EsClient,
    desired: &EndpointConfig,
    secrets: &ServiceSecrets,
    version: &EsVersion,
) -> Result<(), TestCaseError> {
    client
        .create_endpoint(desired, secrets, version)
        .await
        .map(drop)
        .map_err(|e| TestCaseError::fail(format!("create: {}", e.message())))
}

#[test]
fn a_planned_action_leaves_nothing_to_do_and_nothing_is_deleted_unasked() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let es = rt.block_on(EsDouble::start(EsOptions::default()));
    for accepted in ["key-1", "key-2"] {
        es.azure().accept_credential(accepted);
    }
    let mut runner = TestRunner::new(Config {
        cases,
        // Shrinking replays cases against the double; a few steps name the culprit well enough.
        max_shrink_iters: 64,
        ..Config::default()
    });
    let counter = AtomicUsize::new(0);
    let (acted, blocked) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let result = runner.run(&case(), |case| {
        let n = counter.fetch_add(1, Relaxed);
        match rt.block_on(run(&es, n, &case))? {
            Outcome::Blocked => _ = blocked.fetch_add(1, Relaxed),
            Outcome::Acted { first, then } => {
                acted.fetch_add(1, Relaxed);
                prop_assert!(
                    then.starts_with("Change {") && then.contains("change: Nothing"),
                    "after {first}\nthe planner still wants: {then}"
                );
            }
        }
        Ok(())
    });
    let (acted, blocked) = (acted.into_inner(), blocked.into_inner());
    println!(
        "plan properties: {acted} cases acted and converged, {blocked} blocked by the planner"
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        acted > 0,
        "no case reached an action: the generator is broken"
    );
}
