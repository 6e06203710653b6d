//! The README's first command, as a test: the sandbox applies every example and each becomes
//! Ready well within 10 s with the real operator binary — among them an OpenAI, a Cohere rerank,
//! an Amazon Bedrock and an ELSER endpoint through the generic `service` block, each validated by
//! the double's fake provider with the example's placeholder key (or, for ELSER, deployed on the
//! emulated ML nodes). Then the sandbox as a place to learn: a second start compiles nothing,
//! a user's own object in another namespace is reported, and each switch shows its error path.

use std::time::Duration;

use inference_testenv::tools::sandbox::{run, Sandbox, SandboxOptions, SandboxReport, Switches};

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
        .contains("DeletionBlocked"));
    delete(&sandbox, "team-a", "mine").await;
    sandbox
        .wait_for("team-a/mine", reason("DeletionBlocked"), WAIT)
        .await
        .expect("DeletionBlocked reported");
    sandbox.control("unuse team-a-embeddings");
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
    sandbox.control("unuse cohere-rerank");
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
        .contains("re-checks every 2s"));
    sandbox
        .wait_for("cohere-rerank", reason("Recreated"), WAIT)
        .await
        .expect("drift repaired");
    assert!(sandbox.control("reject-key").contains("rejected (401)"));
    sandbox.control("drift azure-embeddings");
    sandbox
        .wait_for("azure-embeddings", reason("AzureRejectedCredentials"), WAIT)
        .await
        .expect("the recreate's key is rejected");
    assert!(sandbox
        .control("explode")
        .contains("unrecognized subcommand"));
}

/// The README's first command twice: the second start compiles nothing (neither the outer
/// `cargo run` nor the sandbox's inner `cargo build` of the operator), so it takes seconds.
/// Before the inner build cleared the variables `cargo run` sets, each start rebuilt `ring` and
/// everything above it, once for each cargo.
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
            .args(["--bin", "sandbox", "--", "--exit-when-ready"])
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
    assert!(stdout.contains("building the operator…"), "{stdout}");
    assert!(
        stdout.contains("up to date, nothing compiled"),
        "the sandbox's build compiled:\n{stdout}"
    );
    assert!(stdout.contains("Ready after"), "{stdout}");
}
