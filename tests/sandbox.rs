//! The README's first command, as a test: the sandbox applies every example and each becomes
//! Ready well within 10 s with the real operator binary — among them an OpenAI, a Cohere rerank,
//! an Amazon Bedrock and an ELSER endpoint through the generic `service` block, each validated by
//! the double's fake provider with the example's placeholder key (or, for ELSER, deployed on the
//! emulated ML nodes). Then the sandbox as a place to learn: a second start compiles nothing,
//! a user's own object in another namespace is reported, and each switch shows its error path.

use std::time::Duration;

use inference_testenv::tools::sandbox::{
    run, Sandbox, SandboxOptions, SandboxReport, Switches, ROLLBACK_ES_VERSION,
};
use serde_json::Value;

/// Example object name → (inference id, Elasticsearch `service`) that must end Ready.
const GENERIC: [(&str, &str, &str); 4] = [
    ("openai-embeddings", "openai-embeddings", "openai"),
    ("cohere-rerank", "cohere-rerank", "cohere"),
    ("bedrock-embeddings", "bedrock-embeddings", "amazonbedrock"),
    ("elser", "elser", "elasticsearch"),
];

/// The tests that time something take it exclusively; the others share it. Several sandboxes and
/// a cargo build at once on a small machine would otherwise stretch the 10 s bound.
static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

async fn run_sandbox(tag: &str) -> (SandboxReport, std::path::PathBuf) {
    let work_dir = std::env::temp_dir().join(format!("iep-sandbox-{tag}-{}", std::process::id()));
    let report = run(SandboxOptions {
        operator_bin: env!("CARGO_BIN_EXE_inference-operator").into(),
        work_dir: work_dir.clone(),
        // 9.4: the Azure OAuth2 example needs it.
        es_version: "9.4.0".into(),
        exit_when_ready: true,
        ready_timeout: Duration::from_secs(10),
        switches: Switches::default(),
    })
    .await
    .expect("sandbox run");
    (report, work_dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_brings_every_example_to_ready() {
    let _alone = MACHINE.write().await;
    let (report, work_dir) = run_sandbox("all").await;
    let took = report.all_ready_after.expect("all Ready");
    println!("sandbox: every example Ready after {took:?}");
    assert!(took < Duration::from_secs(10));
    assert!(report.endpoints.len() >= 9, "{:#?}", report.endpoints);
    assert!(report
        .endpoints
        .values()
        .all(|line| line.starts_with("Ready=True")));
    // Health checks are on: every example answered its first probe.
    for object in report.endpoints.keys() {
        let health = report.health.get(object).map(String::as_str);
        assert!(
            health.is_some_and(|l| l.starts_with("Healthy=True") && l.contains("ProbeSucceeded")),
            "{object}: {health:?}"
        );
    }
    assert!(work_dir.join("kubeconfig").exists());

    // The four generic-block examples the issue names: Ready, stored in Elasticsearch under
    // their service, and (those with a provider) validated with the example's key.
    for (object, inference_id, service) in GENERIC {
        let line = report.endpoints.get(object).map(String::as_str);
        assert!(
            line.is_some_and(|l| l.starts_with("Ready=True")),
            "{object}: {line:?}"
        );
        assert_eq!(
            report.elasticsearch.get(inference_id).map(String::as_str),
            Some(service),
            "{inference_id} in Elasticsearch: {:#?}",
            report.elasticsearch
        );
    }
    for service in ["openai", "cohere", "amazonbedrock"] {
        assert!(
            report.accepted_provider_calls.get(service) >= Some(&1),
            "{service}: the fake provider accepted no call: {:#?}",
            report.accepted_provider_calls
        );
    }
    assert_eq!(
        report.deployments.get("elser").map(String::as_str),
        Some("started"),
        "{:#?}",
        report.deployments
    );
    let _ = std::fs::remove_dir_all(work_dir);
}

// ------------------------------------------------------------------------ the sandbox to learn

fn options(tag: &str, switches: Switches) -> SandboxOptions {
    SandboxOptions {
        operator_bin: env!("CARGO_BIN_EXE_inference-operator").into(),
        work_dir: std::env::temp_dir().join(format!("iep-sandbox-{tag}-{}", std::process::id())),
        es_version: "9.4.0".into(),
        exit_when_ready: false,
        ready_timeout: Duration::from_secs(10),
        switches,
    }
}

const WAIT: Duration = Duration::from_secs(20);

fn ready(line: &str) -> bool {
    line.starts_with("Ready=True")
}

fn reason(reason: &'static str) -> impl Fn(&str) -> bool {
    move |line: &str| line.split_whitespace().nth(1) == Some(reason)
}

async fn delete(sandbox: &Sandbox, namespace: &str, name: &str) {
    use kube::api::{Api, DeleteParams, DynamicObject};
    use kube::core::{ApiResource, GroupVersionKind};
    let gvk = GroupVersionKind::gvk("esinference.io", "v1alpha1", "InferenceEndpoint");
    let api = Api::<DynamicObject>::namespaced_with(
        sandbox.client().clone(),
        namespace,
        &ApiResource::from_gvk(&gvk),
    );
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete the InferenceEndpoint");
}

/// A user's own object in namespace `team-a`, made from what the sandbox prints (the double's
/// URL, the examples' placeholder Elasticsearch user and Azure key), is reported like the
/// examples: its Ready change, a blocked deletion while `use` marks it used, and its deletion
/// once `unuse` frees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_own_object_in_another_namespace_is_reported() {
    use inference_testenv::fixtures::{Iep, OpaqueSecret};
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, PostParams};
    let _shared = MACHINE.read().await;
    let sandbox = Sandbox::start(&options("own", Switches::default()))
        .await
        .expect("sandbox");
    let printed = sandbox.urls();
    assert!(printed.contains(&sandbox.es.url()), "{printed}");
    assert!(printed.contains(&sandbox.metrics_url), "{printed}");
    let metrics = reqwest::get(&sandbox.metrics_url)
        .await
        .expect("GET /metrics");
    assert!(metrics.status().is_success(), "{}", sandbox.metrics_url);

    let namespace = k8s_openapi::api::core::v1::Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some("team-a".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::all(sandbox.client().clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("kubectl create namespace team-a");
    let secrets = Api::<Secret>::namespaced(sandbox.client().clone(), "team-a");
    for secret in [
        OpaqueSecret::labelled("es")
            .data("username", "elastic")
            .data("password", "replace-with-your-elastic-password"),
        OpaqueSecret::labelled("azure").data("apiKey", "replace-with-your-azure-openai-key"),
    ] {
        let secret = secret.namespace("team-a").build();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("Secret");
    }
    let mine = Iep::embedding("mine")
        .namespace("team-a")
        .inference_id("team-a-embeddings")
        .es_url(&sandbox.es.url(), "es");
    let api = Api::<kube::api::DynamicObject>::namespaced_with(
        sandbox.client().clone(),
        "team-a",
        &kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "esinference.io",
            "v1alpha1",
            "InferenceEndpoint",
        )),
    );
    let object: kube::api::DynamicObject = serde_json::from_value(mine.object()).expect("object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("create");

    let change = sandbox
        .wait_for("team-a/mine", ready, WAIT)
        .await
        .expect("Ready reported");
    println!("reported: {change}");
    assert!(sandbox
        .control("use team-a-embeddings")
        .await
        .contains("DeletionBlocked"));
    delete(&sandbox, "team-a", "mine").await;
    sandbox
        .wait_for("team-a/mine", reason("DeletionBlocked"), WAIT)
        .await
        .expect("DeletionBlocked reported");
    sandbox.control("unuse team-a-embeddings").await;
    sandbox
        .wait_for("team-a/mine", |l| l == "deleted", WAIT)
        .await
        .expect("deletion reported");
    assert!(sandbox.es.endpoint("team-a-embeddings").is_none());
}

/// `--reject-key`: the examples' keys are rejected from the start, at the fake Azure and at the
/// fake providers alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_key_switch_rejects_the_examples_keys() {
    let switches = Switches {
        reject_key: true,
        ..Switches::default()
    };
    let _shared = MACHINE.read().await;
    let sandbox = Sandbox::start(&options("reject", switches))
        .await
        .expect("sandbox");
    sandbox
        .wait_for("azure-embeddings", reason("AzureRejectedCredentials"), WAIT)
        .await
        .expect("Azure rejects the key");
    sandbox
        .wait_for(
            "openai-embeddings",
            reason("ProviderRejectedCredentials"),
            WAIT,
        )
        .await
        .expect("OpenAI rejects the key");
    // ELSER runs on the cluster's ML nodes: no key, nothing to reject.
    sandbox
        .wait_for("elser", ready, WAIT)
        .await
        .expect("ELSER Ready");
}

/// `--rate-limit`: the examples' keys are rate-limited; the operator retries, and `rate-limit
/// off` typed while it runs lets the retries succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_switch_then_the_command_turns_it_off() {
    let switches = Switches {
        rate_limit: true,
        ..Switches::default()
    };
    let _shared = MACHINE.read().await;
    let sandbox = Sandbox::start(&options("ratelimit", switches))
        .await
        .expect("sandbox");
    sandbox
        .wait_for("azure-embeddings", reason("AzureRateLimited"), WAIT)
        .await
        .expect("Azure rate-limits");
    sandbox
        .wait_for("openai-embeddings", reason("ProviderRateLimited"), WAIT)
        .await
        .expect("OpenAI rate-limits");
    assert!(sandbox
        .control("rate-limit off")
        .await
        .contains("no longer rate-limited"));
    sandbox
        .wait_for("azure-embeddings", ready, WAIT)
        .await
        .expect("Ready once the rate limit is off");
}

/// `--in-use`: every example endpoint is used by a `semantic_text` field, so deleting an
/// example's object is blocked (DeletionBlocked) until `unuse`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_use_switch_blocks_deletion_until_unuse() {
    let switches = Switches {
        in_use: true,
        ..Switches::default()
    };
    let _shared = MACHINE.read().await;
    let sandbox = Sandbox::start(&options("inuse", switches))
        .await
        .expect("sandbox");
    sandbox
        .wait_for("cohere-rerank", ready, WAIT)
        .await
        .expect("created while in use");
    delete(&sandbox, "default", "cohere-rerank").await;
    let blocked = sandbox
        .wait_for("cohere-rerank", reason("DeletionBlocked"), WAIT)
        .await
        .expect("DeletionBlocked");
    assert!(blocked.line.contains("sandbox-semantic-index"), "{blocked}");
    sandbox.control("unuse cohere-rerank").await;
    sandbox
        .wait_for("cohere-rerank", |l| l == "deleted", WAIT)
        .await
        .expect("deleted once unused");
}

/// `--recheck 2s` repairs drift (`drift ID`) within seconds, and `reject-key` typed while it
/// runs shows on the next create: the repaired endpoint's key is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recheck_switch_repairs_drift_and_reject_key_command_shows_on_the_next_create() {
    let switches = Switches {
        recheck: Duration::from_secs(2),
        ..Switches::default()
    };
    let _shared = MACHINE.read().await;
    let sandbox = Sandbox::start(&options("drift", switches))
        .await
        .expect("sandbox");
    sandbox
        .wait_for("cohere-rerank", ready, WAIT)
        .await
        .expect("Ready");
    sandbox
        .wait_for("azure-embeddings", ready, WAIT)
        .await
        .expect("Ready");
    assert!(sandbox
        .control("drift cohere-rerank")
        .await
        .contains("re-checks every 2s"));
    sandbox
        .wait_for("cohere-rerank", reason("Recreated"), WAIT)
        .await
        .expect("drift repaired");
    assert!(sandbox
        .control("reject-key")
        .await
        .contains("rejected (401)"));
    sandbox.control("drift azure-embeddings").await;
    sandbox
        .wait_for("azure-embeddings", reason("AzureRejectedCredentials"), WAIT)
        .await
        .expect("the recreate's key is rejected");
    assert!(sandbox
        .control("explode")
        .await
        .contains("unrecognized subcommand"));
}

/// `kubectl get iep -A -o wide`, as the emulator serves it to kubectl (a `meta.k8s.io` Table):
/// column name → cell, by object key (`name` in default, `ns/name` elsewhere).
async fn wide_table(sandbox: &Sandbox) -> std::collections::BTreeMap<String, Vec<(String, Value)>> {
    let url = format!(
        "{}/apis/esinference.io/v1alpha1/inferenceendpoints?includeObject=Object",
        sandbox.kube.url()
    );
    let table: Value = reqwest::Client::new()
        .get(url)
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .send()
        .await
        .expect("GET Table")
        .json()
        .await
        .expect("Table JSON");
    let names: Vec<String> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    table["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            let meta = &row["object"]["metadata"];
            let namespace = meta["namespace"].as_str().unwrap_or("default");
            let name = meta["name"].as_str().unwrap_or_default();
            let key = if namespace == "default" {
                name.to_owned()
            } else {
                format!("{namespace}/{name}")
            };
            let cells = row["cells"].as_array().cloned().unwrap_or_default();
            (key, names.iter().cloned().zip(cells).collect())
        })
        .collect()
}

fn cell<'a>(row: &'a [(String, Value)], column: &str) -> &'a Value {
    &row.iter()
        .find(|(name, _)| name == column)
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"))
        .1
}

fn healthy(status: &'static str, reason: &'static str) -> impl Fn(&str) -> bool {
    move |line: &str| {
        let mut words = line.split_whitespace();
        words.next() == Some(&format!("Healthy={status}")[..]) && words.next() == Some(reason)
    }
}

/// Health checks on (`--health-check 2s`): `kubectl get iep -o wide` shows Ready, Healthy and
/// Used-By for every example; keys revoked while it runs (`reject-key`) show Healthy=False with
/// the provider's reason and message at the next probe, while Ready stays True.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_shows_healthy_and_a_revoked_key_shows_healthy_false() {
    let switches = Switches {
        health_check: Duration::from_secs(2),
        // Used-By is read at the first reconcile one --used-by-interval after the create.
        recheck: Duration::from_secs(2),
        ..Switches::default()
    };
    let _shared = MACHINE.read().await;
    let sandbox = Sandbox::start(&options("health", switches))
        .await
        .expect("sandbox");
    for example in sandbox.examples.clone() {
        sandbox
            .wait_for(&example, healthy("True", "ProbeSucceeded"), WAIT)
            .await
            .expect("probed healthy");
    }
    // Used-By fills in at the first re-check one --used-by-interval after each create (3 s in
    // the sandbox).
    let mut table = wide_table(&sandbox).await;
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline
        && !table.values().all(|row| cell(row, "Used-By").is_i64())
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        table = wide_table(&sandbox).await;
    }
    for example in &sandbox.examples {
        let row = table
            .get(example)
            .unwrap_or_else(|| panic!("{example}: {table:?}"));
        assert_eq!(cell(row, "Ready"), "True", "{example}: {row:?}");
        assert_eq!(cell(row, "Healthy"), "True", "{example}: {row:?}");
        assert!(cell(row, "Used-By").is_i64(), "{example}: {row:?}");
        assert_ne!(
            cell(row, "Inference ID"),
            &Value::Null,
            "{example}: {row:?}"
        );
    }

    assert!(sandbox
        .control("reject-key")
        .await
        .contains("Healthy=False"));
    // Objects without their own spec.healthCheck interval are probed every 2 s.
    for (object, message) in [
        (
            "openai-embeddings",
            "Received an authentication error status code",
        ),
        ("azure-completion", "401"),
    ] {
        let change = sandbox
            .wait_for(
                object,
                healthy("False", "ProviderRejectedCredentials"),
                WAIT,
            )
            .await
            .expect("the revoked key fails its probe");
        assert!(change.line.contains(message), "{change}");
        let ready = sandbox.lines();
        assert!(
            ready[object].starts_with("Ready=True"),
            "{object}: {ready:?}"
        );
    }
    let table = wide_table(&sandbox).await;
    assert_eq!(cell(&table["openai-embeddings"], "Healthy"), "False");
}

/// `--rollback` (Elasticsearch 9.3, whose `_update` stores a key without trying it): `bad-key`
/// puts a refused key into an example's Secret; the operator probes right after the `_update`,
/// puts the previous key back and reports CredentialsRejected, and the sandbox says how long
/// Elasticsearch held the rejected key. `good-key` ends it (Ready again). On 9.4 Elasticsearch
/// itself refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rotation_is_rolled_back_on_9_3_and_refused_on_9_4() {
    let _shared = MACHINE.read().await;
    let mut on_9_3 = options("rollback", Switches::default());
    on_9_3.es_version = ROLLBACK_ES_VERSION.into();
    let sandbox = Sandbox::start(&on_9_3).await.expect("sandbox");
    sandbox
        .wait_for("azure-completion", ready, WAIT)
        .await
        .expect("Ready");
    let example_key = sandbox.es.stored_secret("azure-completion");
    let said = sandbox.control("bad-key azure-completion").await;
    assert!(said.contains("puts the previous key back"), "{said}");
    let rejected = sandbox
        .wait_for("azure-completion", reason("CredentialsRejected"), WAIT)
        .await
        .expect("CredentialsRejected");
    assert!(
        rejected.line.contains("previous key stays in use"),
        "{rejected}"
    );
    let note = eventually_note(&sandbox, "azure-completion").await;
    println!("{note}");
    assert!(note.contains("held the rejected key for"), "{note}");
    assert_eq!(
        sandbox.es.stored_secret("azure-completion"),
        example_key,
        "rolled back to the example's key"
    );
    assert!(sandbox
        .control("good-key azure-completion")
        .await
        .contains("example's key again"));
    sandbox
        .wait_for(
            "azure-completion",
            // Elasticsearch holds the example's key already: nothing to push.
            |l| reason("InSync")(l) || reason("CredentialsRotated")(l),
            WAIT,
        )
        .await
        .expect("Ready with the example's key");
    drop(sandbox);

    let sandbox = Sandbox::start(&options("refused", Switches::default()))
        .await
        .expect("sandbox");
    sandbox
        .wait_for("openai-embeddings", ready, WAIT)
        .await
        .expect("Ready");
    let said = sandbox.control("bad-key openai-embeddings").await;
    assert!(said.contains("Elasticsearch refuses the _update"), "{said}");
    sandbox
        .wait_for("openai-embeddings", reason("CredentialsRejected"), WAIT)
        .await
        .expect("CredentialsRejected");
    let note = eventually_note(&sandbox, "openai-embeddings").await;
    assert!(note.contains("refused the _update"), "{note}");
    assert!(sandbox
        .control("bad-key nope")
        .await
        .contains("InferenceEndpoint nope"));
}

async fn eventually_note(sandbox: &Sandbox, key: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(note) = sandbox.rotation_note(key) {
            return note;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{key}: no rotation note"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The README's first command twice: the second start compiles nothing (the outer `cargo
/// run`), so it takes seconds. Before the sandbox's builds cleared the variables `cargo run` and
/// `cargo test` set, each start rebuilt `ring` and everything above it. The sandbox runs the
/// operator binary cargo built for this test (`--operator-bin`): its own `cargo build` would
/// compile the operator again, whose dependency features differ between a test build and a plain
/// one (resolver 2 unifies the dev-dependencies' into the test build only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_compiles_nothing() {
    let _alone = MACHINE.write().await;
    let start = || async {
        let mut command = inference_testenv::tools::cargo_command();
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        command
            .args([
                "run",
                "--manifest-path",
                manifest,
                "-p",
                "inference-testenv",
            ])
            .args([
                "--bin",
                "sandbox",
                "--",
                "--exit-when-ready",
                "--operator-bin",
            ])
            .arg(env!("CARGO_BIN_EXE_inference-operator"))
            .stdin(std::process::Stdio::null());
        let started = std::time::Instant::now();
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join")
            .expect("cargo run");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stdout}\n{stderr}");
        (started.elapsed(), stdout, stderr)
    };
    let (first, _, _) = start().await;
    println!("first start: {first:.1?}");
    let (second, stdout, stderr) = start().await;
    println!("second start: {second:.1?} (wall time)");
    assert!(
        !stderr.contains("Compiling"),
        "the outer cargo compiled:\n{stderr}"
    );
    assert!(stdout.contains("(--operator-bin, not built)"), "{stdout}");
    assert!(!stdout.contains("building the operator"), "{stdout}");
    assert!(stdout.contains("Ready after"), "{stdout}");
}
