//! Batched re-checks (docs/lifecycle.md#batched-re-checks): a round of periodic re-checks costs
//! one `GET _inference/_all` per connection (URL and credential), no Kubernetes request and no
//! write; each tenant's objects are answered from a read made with that tenant's credential; a
//! restart re-verifies every object from one listing per connection, reading each Secret once.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use inference_operator::controller::Config;
use inference_testenv::es::{AuthKind, EsAuth, RecordedRequest, Route};
use inference_testenv::kube::RequestRecord;
use inference_testenv::{
    poll, TestEnv, ES_CREDENTIALS_SECRET, ES_PASSWORD, ES_USER, POLL_INTERVAL,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use support::*;

const TENANT_B: &str = "team-b";
const USER_B: &str = "tenant-b";
const PASSWORD_B: &str = "tenant-b-password";
const PER_NAMESPACE: usize = 12;
const INTERVAL: Duration = Duration::from_secs(2);

fn key(namespace: &str, i: usize) -> String {
    format!("azure-key-{namespace}-{i:04}-0123456789")
}

async fn put(env: &TestEnv, namespace: &str, name: &str, pairs: &[(&str, &str)]) {
    let secret = OpaqueSecret::labelled(name)
        .namespace(namespace)
        .pairs(pairs)
        .build();
    Api::<Secret>::namespaced(env.client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret");
}

/// Two namespaces on one Elasticsearch, each with its own credential; `PER_NAMESPACE` objects
/// in each, each with its own key Secret.
async fn two_tenants() -> TestEnv {
    let env = TestEnv::start().await;
    env.es.set_auth(EsAuth {
        basic: vec![
            (ES_USER.into(), ES_PASSWORD.into()),
            (USER_B.into(), PASSWORD_B.into()),
        ],
        ..EsAuth::default()
    });
    env.kube.create_namespace(TENANT_B);
    let credentials = [("username", USER_B), ("password", PASSWORD_B)];
    put(&env, TENANT_B, ES_CREDENTIALS_SECRET, &credentials).await;
    for namespace in [env.namespace.clone(), TENANT_B.to_owned()] {
        for i in 0..PER_NAMESPACE {
            let key = key(&namespace, i);
            env.es.azure().accept_credential(&key);
            put(&env, &namespace, &format!("key-{i}"), &[("apiKey", &key)]).await;
        }
    }
    env
}

fn name(namespace: &str, i: usize) -> String {
    format!("{namespace}-{i}")
}

async fn create_all(env: &TestEnv) {
    for namespace in [env.namespace.clone(), TENANT_B.to_owned()] {
        for i in 0..PER_NAMESPACE {
            let iep = Iep::embedding(&name(&namespace, i))
                .namespace(&namespace)
                .secret(&format!("key-{i}"))
                .es(env);
            create(env, iep).await;
        }
    }
}

async fn wait_all_ready(env: &TestEnv) {
    for namespace in [env.namespace.clone(), TENANT_B.to_owned()] {
        let api: Api<inference_operator::api::InferenceEndpoint> =
            Api::namespaced(env.client.clone(), &namespace);
        wait_for(WAIT * 3, "every object Ready", || async {
            let list = api
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let ready = list
                .items
                .iter()
                .filter(|o| condition(o, "Ready").is_some_and(|c| c.status == "True"))
                .count();
            (ready == PER_NAMESPACE)
                .then_some(())
                .ok_or(format!("{ready} of {PER_NAMESPACE} Ready in {namespace}"))
        })
        .await;
    }
}

/// Wait until `check` says `Ok`; on timeout, fail with what it last said.
async fn wait_for<F, Fut>(timeout: Duration, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    if let Err(last) = poll(timeout, POLL_INTERVAL, check).await {
        panic!("{what}: waited {timeout:?}; last: {last}");
    }
}

fn user(request: &RecordedRequest) -> String {
    match &request.auth {
        AuthKind::Basic { user } => user.clone(),
        other => format!("{other:?}"),
    }
}

fn is_listing(r: &RecordedRequest) -> bool {
    r.method == "GET" && r.path == "/_inference/_all"
}

/// `_all` listings by user.
fn listings(requests: &[RecordedRequest]) -> BTreeMap<String, usize> {
    let mut by_user = BTreeMap::new();
    for r in requests.iter().filter(|r| is_listing(r)) {
        *by_user.entry(user(r)).or_insert(0) += 1;
    }
    by_user
}

fn single_gets(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.route == Route::Get && !is_listing(r))
        .map(|r| format!("{} by {}", r.path, user(r)))
        .collect()
}

fn kube_requests(requests: &[RequestRecord]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| !r.watch)
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect()
}

fn secret_reads(requests: &[RequestRecord]) -> BTreeMap<String, usize> {
    let mut reads = BTreeMap::new();
    for r in requests
        .iter()
        .filter(|r| !r.watch && r.method == "GET" && r.resource.as_deref() == Some("secrets"))
    {
        // The reader LISTs with fieldSelector=metadata.name=<name> (src/secrets.rs).
        let query = urlencoding_decode(&r.query);
        // The Secret watch's own LIST (metadata only, no name) is not a read of a Secret.
        let Some(name) = query
            .split('&')
            .find_map(|p| p.strip_prefix("fieldSelector=metadata.name="))
            .map(str::to_owned)
        else {
            continue;
        };
        *reads.entry(format!("{} {name}", r.path)).or_insert(0) += 1;
    }
    reads
}

/// Reconciles so far, from the operator's `reconciliations` counter (every result).
fn reconciles(operator: &Operator) -> u64 {
    operator
        .metrics
        .encode()
        .lines()
        .filter(|l| l.contains("reconciliations_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Elasticsearch requests of `operation` so far, from the operator's own counter.
fn es_requests(operator: &Operator, operation: &str) -> u64 {
    let label = format!("operation=\"{operation}\"");
    operator
        .metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("inference_operator_elasticsearch_requests_total{"))
        .filter(|l| l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn urlencoding_decode(query: &str) -> String {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recheck_round_costs_one_listing_per_connection_and_nothing_else() {
    let env = two_tenants().await;
    let operator = start_operator(&env, recheck_every(INTERVAL));
    create_all(&env).await;
    wait_all_ready(&env).await;
    // Past the creation's own rounds: every listing now in use was requested after the writes.
    tokio::time::sleep(INTERVAL.mul_f64(1.2)).await;
    env.es.clear_requests();
    env.kube.clear_requests();
    let before = reconciles(&operator);
    let (gets_before, lists_before) = (
        es_requests(&operator, "get"),
        es_requests(&operator, "list"),
    );
    let rounds = 3;
    tokio::time::sleep(INTERVAL * rounds).await;
    let rechecks = reconciles(&operator) - before;
    let es = env.es.requests();
    let (gets, lists) = (
        es_requests(&operator, "get"),
        es_requests(&operator, "list"),
    );
    let kube = env.kube.requests();

    let objects = 2 * PER_NAMESPACE as u64;
    assert!(
        rechecks >= objects * u64::from(rounds - 1),
        "{rechecks} re-checks of {objects} objects in {rounds} intervals"
    );
    assert_eq!(
        single_gets(&es),
        Vec::<String>::new(),
        "no GET of a single id"
    );
    let by_user = listings(&es);
    // Listings serve 1.1 intervals: a window of `rounds` intervals holds at most `rounds`.
    for user in [ES_USER, USER_B] {
        let n = by_user.get(user).copied().unwrap_or(0);
        assert!(
            (1..=rounds as usize).contains(&n),
            "{user} listed {n} times in {rounds} rounds: {by_user:?}"
        );
    }
    assert_eq!(
        by_user.len(),
        2,
        "listings only with the two credentials: {by_user:?}"
    );
    let other: Vec<_> = es
        .iter()
        .filter(|r| !is_listing(r))
        .map(|r| &r.path)
        .collect();
    assert!(other.is_empty(), "nothing but listings: {other:?}");
    assert!(
        gets == gets_before && lists > lists_before,
        "the metrics count the listings as operation=\"list\", not \"get\": \
         get {gets_before} -> {gets}, list {lists_before} -> {lists}"
    );
    assert_eq!(
        kube_requests(&kube),
        Vec::<String>::new(),
        "no Kubernetes request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_is_answered_from_its_own_credential_read() {
    let env = two_tenants().await;
    let operator = start_operator(&env, recheck_every(INTERVAL));
    create_all(&env).await;
    wait_all_ready(&env).await;
    tokio::time::sleep(INTERVAL.mul_f64(1.2)).await;
    // Tenant B's credential stops working. Were B's objects answered from A's listing, they
    // would stay Ready; read with B's credential, they report it.
    env.es.set_auth(EsAuth::basic(ES_USER, ES_PASSWORD));
    env.es.clear_requests();
    let b: Api<inference_operator::api::InferenceEndpoint> =
        Api::namespaced(env.client.clone(), TENANT_B);
    wait_for(
        INTERVAL * 4,
        "team-b's objects see their credential refused",
        || async {
            let list = b
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let ready: Vec<_> = list
                .items
                .iter()
                .filter(|o| condition(o, "Ready").is_some_and(|c| c.status == "True"))
                .map(|o| o.metadata.name.clone().unwrap_or_default())
                .collect();
            ready
                .is_empty()
                .then_some(())
                .ok_or(format!("still Ready: {ready:?}"))
        },
    )
    .await;
    // Tenant A's objects are untouched.
    let a = api(&env).list(&Default::default()).await.unwrap();
    assert!(a
        .items
        .iter()
        .all(|o| condition(o, "Ready").is_some_and(|c| c.status == "True")));
    drop(operator);
}

/// Every object Ready under a first operator, then a second one started with `config` over
/// them, with the request logs cleared between; returns once it reconciled every object once.
async fn restarted(config: Config) -> (TestEnv, Operator, u64) {
    let env = two_tenants().await;
    let first = start_operator(&env, test_config());
    create_all(&env).await;
    wait_all_ready(&env).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.es.clear_requests();
    env.kube.clear_requests();
    let second = start_operator(&env, config);
    let objects = 2 * PER_NAMESPACE as u64;
    wait_for(WAIT * 2, "every object re-verified", || async {
        let n = reconciles(&second);
        (n >= objects)
            .then_some(())
            .ok_or(format!("{n} reconciles"))
    })
    .await;
    (env, second, objects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reverifies_from_one_listing_per_connection_reading_each_secret_once() {
    let (env, second, objects) = restarted(test_config()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One pass per object: the Secret watch's first listing is not a change of any Secret.
    assert_eq!(reconciles(&second), objects, "one reconcile per object");
    let es = env.es.requests();
    let by_user = listings(&es);
    assert_eq!(
        by_user,
        BTreeMap::from([(ES_USER.to_owned(), 1), (USER_B.to_owned(), 1)]),
        "one listing per connection"
    );
    assert_eq!(single_gets(&es), Vec::<String>::new());
    let writes: Vec<_> = es
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| &r.path)
        .collect();
    assert!(writes.is_empty(), "no Elasticsearch write: {writes:?}");
    let reads = secret_reads(&env.kube.requests());
    let twice: Vec<_> = reads.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "each Secret read at most once: {twice:?}");
    // The credential Secret of each namespace and every object's key: 2 + 2 × PER_NAMESPACE.
    assert_eq!(reads.len(), 2 + 2 * PER_NAMESPACE, "{reads:?}");
}

/// A watch that lost its place lists again; a listing that finds every Secret as it was is not a
/// change of any of them, so it brings no reconcile (nor a read of the Secrets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_of_unchanged_secrets_reconciles_nothing() {
    let env = two_tenants().await;
    let operator = start_operator(&env, test_config());
    create_all(&env).await;
    wait_all_ready(&env).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = reconciles(&operator);
    env.kube.clear_requests();
    // History gone and every watch closed: each watcher's resume gets 410 and lists again.
    env.kube.compact();
    env.kube.close_all_watches();
    wait_for(WAIT, "both watches listed again", || async {
        let lists = env.kube.requests();
        let listed = |plural: &str| {
            lists
                .iter()
                .any(|r| !r.watch && r.method == "GET" && r.path.ends_with(plural))
        };
        (listed("/secrets") && listed("/inferenceendpoints"))
            .then_some(())
            .ok_or("not yet".to_owned())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        reconciles(&operator) - before,
        0,
        "no reconcile after the re-list"
    );
    let reads = secret_reads(&env.kube.requests());
    assert!(reads.is_empty(), "no Secret read: {reads:?}");
}

/// With fewer slots than objects the restart pass runs in waves: once one object has used the
/// connection, the next ones are still served from the listing it read, not by GETs of their ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_waves_serves_every_object_from_the_one_listing() {
    let config = Config {
        concurrency: 2,
        ..test_config()
    };
    let (env, _second, _) = restarted(config).await;
    let es = env.es.requests();
    assert_eq!(single_gets(&es), Vec::<String>::new());
    let by_user = listings(&es);
    assert_eq!(
        by_user,
        BTreeMap::from([(ES_USER.to_owned(), 1), (USER_B.to_owned(), 1)]),
        "one listing per connection"
    );
}
