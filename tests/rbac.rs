//! Least privilege, measured: the RBAC the chart grants equals the API calls the operator makes.
//!
//! The operator runs end to end against the Kubernetes API emulator, with leader election, through
//! create, Secret rotation and deletion; every request it sent is taken from the emulator's
//! request log as (API group, resource[/subresource], verb). Each must be granted by the chart
//! (`deploy/`, its default rendering, and the leader-election Role of templates/rbac.yaml), and
//! each granted verb must have been used, or be listed in [`NOT_EXERCISED`] with its reason.

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use inference_operator::http::Health;
use inference_operator::leader::{self, Election};
use inference_operator::metrics::Metrics;
use inference_testenv::kube::RequestRecord;
use inference_testenv::{client_for, eventually, TestEnv};
use kube::api::DeleteParams;
use serde_json::Value;

/// (API group, resource or resource/subresource, verb), as RBAC names them.
type Permission = (String, String, String);

/// Granted verbs the end-to-end run does not exercise, each with why the operator needs it.
/// Another permission (for example reading Namespaces for cross-namespace consent) goes here only
/// when the run cannot reach it; better, extend the run.
const NOT_EXERCISED: &[(&str, &str, &str, &str)] = &[];

/// Marks the test driver's own requests (Secrets, objects, waits) so that only the operator's
/// remain in the log. The emulator records the `Accept` header.
const DRIVER_ACCEPT: &str = "application/json;driver=rbac-test";

fn deploy_rules() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/inference-operator.yaml"
    );
    let text = std::fs::read_to_string(path).expect("deploy/inference-operator.yaml");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("rendered chart parses");
    let roles: Vec<_> = docs
        .into_iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("ClusterRole" | "Role")))
        .collect();
    assert!(
        !roles.is_empty(),
        "deploy/ renders the operator's ClusterRole"
    );
    roles
        .iter()
        .flat_map(|r| r["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The leader-election Role, which the default rendering in deploy/ leaves out: the template's
/// text with its directives dropped and `{{ ... }}` expressions replaced by a placeholder.
fn leader_election_rules() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/inference-operator/templates/rbac.yaml"
    );
    let text = std::fs::read_to_string(path).expect("templates/rbac.yaml");
    let section = text
        .split("---")
        .find(|doc| doc.contains("kind: Role") && doc.contains("-leader-election"))
        .expect("templates/rbac.yaml has a leader-election Role");
    let flattened: String = section
        .lines()
        .filter(|line| !line.trim_start().starts_with("{{"))
        .map(|line| {
            let mut out = String::new();
            let mut rest = line;
            while let Some((before, after)) = rest.split_once("{{") {
                out.push_str(before);
                out.push_str("templated");
                rest = after.split_once("}}").map_or("", |(_, tail)| tail);
            }
            out.push_str(rest);
            out + "\n"
        })
        .collect();
    let role: Value = serde_saphyr::from_str(&flattened).expect("flattened Role parses");
    role["rules"].as_array().cloned().expect("rules")
}

fn permissions(rules: &[Value]) -> BTreeSet<Permission> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let mut out = BTreeSet::new();
    for rule in rules {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

/// The RBAC permission a request needs (the API server's request-info rules), or `None` for
/// discovery and other non-resource requests.
fn permission(request: &RequestRecord) -> Option<Permission> {
    let resource = request.resource.as_deref()?;
    let mut segments = request.path.trim_start_matches('/').split('/');
    let group = match segments.next()? {
        "api" => String::new(),
        "apis" => segments.next()?.to_owned(),
        _ => return None,
    };
    let resource = match &request.subresource {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_owned(),
    };
    let verb = match (request.method.as_str(), request.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if request.watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((group, resource, verb.to_owned()))
}

fn driver_client(env: &TestEnv) -> kube::Client {
    let mut config = kube::Config::new(env.kube.url().parse().expect("emulator URL"));
    config.default_namespace = env.namespace.clone();
    config.headers = vec![(
        http::header::ACCEPT,
        http::HeaderValue::from_static(DRIVER_ACCEPT),
    )];
    kube::Client::try_from(config).expect("driver client")
}

/// Run the operator (as leader) through create, rotation and deletion; return the permissions
/// its requests needed, with how often each was used.
async fn operator_calls() -> BTreeMap<Permission, usize> {
    operator_calls_with(support::test_config(), None).await
}

/// [`operator_calls`] with `config`, against a double of `es_version` when given.
async fn operator_calls_with(
    config: inference_operator::controller::Config,
    es_version: Option<&str>,
) -> BTreeMap<Permission, usize> {
    let mut env = TestEnv::start().await;
    if let Some(version) = es_version {
        env.es.set_version(version);
    }
    env.client = driver_client(&env);
    env.es.azure().accept_credential("azure-key-1");
    env.es.azure().accept_credential("azure-key-2");
    env.put_secret("azure", &[("apiKey", "azure-key-1")]).await;
    env.kube.clear_requests();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // run_as_leader is not Send (it is the process's main future): run it beside the driver.
    let operator = leader::run_as_leader(
        client_for(&env.kube.url(), &env.namespace),
        config,
        Arc::new(Metrics::default()),
        Arc::new(Health::default()),
        Election {
            lease_name: "inference-operator".into(),
            namespace: env.namespace.clone(),
            identity: "rbac-test".into(),
            duration: Duration::from_secs(15),
        },
        async move {
            let _ = stopped.await;
        },
    );
    let (result, ()) = tokio::join!(operator, drive(&env, stop));
    result.expect("clean leader shutdown");

    let mut calls = BTreeMap::new();
    for request in env.kube.requests() {
        if request.accept.as_deref() == Some(DRIVER_ACCEPT) {
            continue;
        }
        if let Some(permission) = permission(&request) {
            *calls.entry(permission).or_insert(0) += 1;
        }
    }
    calls
}

/// Create, rotate the key, delete; then stop the operator.
async fn drive(env: &TestEnv, stop: tokio::sync::oneshot::Sender<()>) {
    support::create(env, support::Iep::embedding("emb").secret("azure").es(env)).await;
    let ready = support::wait_ready(env, "emb", "True", "Created").await;
    let first = ready.status.and_then(|s| s.credential_fingerprint);
    env.put_secret("azure", &[("apiKey", "azure-key-2")]).await;
    eventually(support::WAIT, "the rotated key to be applied", || {
        let api = support::api(env);
        let first = first.clone();
        async move {
            let iep = api.get("emb").await.ok()?;
            let now = iep.status.and_then(|s| s.credential_fingerprint);
            (now.is_some() && now != first).then_some(())
        }
    })
    .await;
    support::api(env)
        .delete("emb", &DeleteParams::default())
        .await
        .expect("delete");
    support::wait_gone(env, "emb").await;
    let _ = stop.send(());
}

#[tokio::test]
async fn the_chart_grants_exactly_what_the_operator_uses() {
    let mut granted = permissions(&deploy_rules());
    granted.extend(permissions(&leader_election_rules()));
    let calls = operator_calls().await;

    let missing: Vec<_> = calls.keys().filter(|p| !granted.contains(*p)).collect();
    assert!(
        missing.is_empty(),
        "the operator made calls the chart does not grant: {missing:?}\nall calls: {calls:?}"
    );
    let justified: BTreeSet<Permission> = NOT_EXERCISED
        .iter()
        .map(|(g, r, v, _)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
        .collect();
    let unused: Vec<_> = granted
        .iter()
        .filter(|p| !calls.contains_key(*p) && !justified.contains(*p))
        .collect();
    assert!(
        unused.is_empty(),
        "the chart grants verbs the operator never used: {unused:?}\nall calls: {calls:?}"
    );
    let stale: Vec<_> = justified.iter().filter(|p| !granted.contains(*p)).collect();
    assert!(
        stale.is_empty(),
        "NOT_EXERCISED lists ungranted verbs: {stale:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// --persist-previous-credential (chart value config.persistPreviousCredential)

/// The rules of every ClusterRole and Role but the leader-election one, as the chart renders
/// them with `args`.
fn rendered_rules(helm: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let docs = support::helm::render(helm, "rbac-test", args);
    docs.into_iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("ClusterRole" | "Role")))
        .filter(|d| {
            !d["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .ends_with("-leader-election")
        })
        .flat_map(|r| r["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn secrets(verb: &str) -> Permission {
    (String::new(), "secrets".to_owned(), verb.to_owned())
}

#[tokio::test]
async fn persisting_the_previous_key_adds_create_and_patch_on_secrets_and_nothing_else() {
    let Some(helm) = support::helm::helm() else {
        let bar = "!".repeat(78);
        eprintln!("\n{bar}\n!! SKIPPING: no helm (set $HELM, or run .ci/manifests.sh)\n{bar}\n");
        return;
    };
    let on = "config.persistPreviousCredential=true";
    let added: BTreeSet<Permission> = [secrets("create"), secrets("patch")].into();
    for mode in [&[][..], &["--set", "watchNamespaces={ml}"][..]] {
        let off = permissions(&rendered_rules(&helm, mode));
        let with: Vec<&str> = mode.iter().copied().chain(["--set", on]).collect();
        let with = permissions(&rendered_rules(&helm, &with));
        let extra: BTreeSet<Permission> = with.difference(&off).cloned().collect();
        assert_eq!(
            extra, added,
            "{mode:?}: exactly these, only when the value is on"
        );
        assert!(off.is_subset(&with));
    }

    // The operator with the flag, through a verified rotation on 9.3 (where the previous key
    // is kept): every call granted, and the added verbs used.
    let config = inference_operator::controller::Config {
        persist_previous_credential: true,
        ..support::test_config()
    };
    let calls = operator_calls_with(config, Some("9.3.1")).await;
    let mut granted = permissions(&rendered_rules(&helm, &["--set", on]));
    granted.extend(permissions(&leader_election_rules()));
    let missing: Vec<_> = calls.keys().filter(|p| !granted.contains(*p)).collect();
    assert!(
        missing.is_empty(),
        "not granted: {missing:?}\nall calls: {calls:?}"
    );
    assert!(
        calls.get(&secrets("patch")).is_some_and(|&n| n >= 2),
        "the kept Secret is applied at create and at the rotation: {calls:?}"
    );
    // `create` is not in the emulator's request log: a server-side apply that creates the
    // object is a PATCH, which the API server also authorizes as `create` (liggitt in
    // kubernetes/kubernetes#138560: a patch whose object does not exist "will authorize as a
    // create"; kcp-dev/kcp#3439 follows upstream there).
    assert!(!calls.contains_key(&secrets("create")));
    assert!(!calls.contains_key(&secrets("update")) && !calls.contains_key(&secrets("get")));
}
