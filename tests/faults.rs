//! The fault suite (docs/reliability.md, "Fault suite"): the real operator binary against the
//! Kubernetes API emulator and the Elasticsearch double while things break — Elasticsearch
//! unreachable, the operator SIGKILLed (also in the middle of a PUT or a DELETE), watches
//! dropped and expired, writes refused, a slow API server, a frozen leader. Every scenario ends
//! with one final-state check against the desired state and prints its figures, one line each,
//! starting with `FIGURE`.
//!
//! ```sh
//! cargo test --test faults -- --nocapture                      # CI sizes
//! FAULTS_FULL=1 cargo test --test faults -- --nocapture        # the issue's full counts
//! FAULTS_SEED=1234 cargo test --test faults -- --nocapture     # replay a run (its SEED line)
//! ```
//!
//! Run the full counts one scenario at a time (`-- --test-threads 1`): the four scenarios share
//! the test process's CPU with their emulators and doubles, and the recovery times measure the
//! operator, not the contention. `FAULTS_LOG_LEVEL` sets the operators' log filter (their last
//! lines are printed when a final state is not reached); `FAULTS_LOG_DIR` keeps every operator's
//! whole log in that directory.
//!
//! Scenarios are independent: each has its own emulator, double and operator processes.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inference_operator::api::InferenceEndpoint;
use inference_testenv::es::{RecordedRequest, Route};
use inference_testenv::fixtures::Iep;
use inference_testenv::kube::{FaultCounts, Writes};
use inference_testenv::{EnvOptions, TestEnv};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::TempFile;
use tokio::process::{Child, Command};

// ---------------------------------------------------------------------------------------------
// Sizes, seed, operator settings

/// Retry delays the operator runs with here; the outage bound is derived from them.
const BACKOFF_INITIAL: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The operator's jitter: every delay is at least 90 % of the nominal one
/// (`controller::backoff`).
const JITTER_FLOOR: f64 = 0.9;
/// Re-check interval of Ready objects.
const RECHECK: Duration = Duration::from_secs(30);
/// For scenarios that kill the operator mid-PUT: how long a deletion waits for a create that may
/// still land (default: the PUT's client deadline, 45 s). The double holds a PUT only until the
/// test releases it, within about 1.5 s of a restart.
const IN_FLIGHT_WAIT: &[&str] = &["--create-in-flight-wait", "3s"];
/// Lease validity for the leader scenario (the operator renews a third of it before expiry).
const LEASE: Duration = Duration::from_secs(3);

struct Sizes {
    outage: Duration,
    objects: usize,
    kills: usize,
    changes: usize,
    kube_fault: Duration,
}

fn sizes() -> Sizes {
    if std::env::var("FAULTS_FULL").is_ok_and(|v| !v.is_empty() && v != "0") {
        Sizes {
            outage: Duration::from_secs(60),
            objects: 100,
            kills: 20,
            changes: 100,
            kube_fault: Duration::from_secs(20),
        }
    } else {
        Sizes {
            outage: Duration::from_secs(20),
            objects: 30,
            kills: 5,
            changes: 30,
            kube_fault: Duration::from_secs(4),
        }
    }
}

/// The scenario's random source: `FAULTS_SEED` if set, else a fresh seed, printed for replay.
fn rng(scenario: &str) -> fastrand::Rng {
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("SEED {scenario} seed={seed} (replay: FAULTS_SEED={seed})");
    fastrand::Rng::with_seed(seed)
}

/// The operator's log filter: `FAULTS_LOG_LEVEL` (e.g. `inference_operator=debug`) or `info`.
fn log_level() -> String {
    std::env::var("FAULTS_LOG_LEVEL").unwrap_or_else(|_| "info".into())
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// The operator as a child process

struct Operator {
    name: String,
    child: Child,
    log: Arc<Mutex<String>>,
    /// The process id at start (the child's is gone once reaped).
    started_as: u32,
}

/// With `FAULTS_LOG_DIR` set, every operator's whole log is kept there when it is dropped
/// (`<name>-<pid>.log`), for a run to be read afterwards (with `FAULTS_LOG_LEVEL` for detail).
impl Drop for Operator {
    fn drop(&mut self) {
        let Some(dir) = std::env::var_os("FAULTS_LOG_DIR") else {
            return;
        };
        let file = format!("{}-{}.log", self.name, self.started_as);
        let path = std::path::Path::new(&dir).join(file);
        if let Err(error) = std::fs::write(&path, self.log()) {
            eprintln!("cannot keep the log in {}: {error}", path.display());
        }
    }
}

impl Operator {
    fn start(world: &World, name: &str, extra: &[&str]) -> Operator {
        let (initial, max) = (
            format!("{}ms", BACKOFF_INITIAL.as_millis()),
            format!("{}ms", BACKOFF_MAX.as_millis()),
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_inference-operator"))
            .args(["run", "--namespace", &world.env.namespace])
            .args(["--metrics-address", "127.0.0.1:0"])
            .args(["--backoff-initial", &initial, "--backoff-max", &max])
            .args(["--recheck-interval", &format!("{}s", RECHECK.as_secs())])
            .args(["--log-format", "text", "--log-level", &log_level()])
            .args(extra)
            .env("KUBECONFIG", &world.kubeconfig.0)
            .env("POD_NAME", name)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start inference-operator");
        let log = support::collect_stderr(&mut child);
        Operator {
            name: name.to_owned(),
            started_as: child.id().unwrap_or_default(),
            child,
            log,
        }
    }

    /// A replica with leader election on.
    fn replica(world: &World, name: &str) -> Operator {
        let lease = format!("{}s", LEASE.as_secs());
        Operator::start(
            world,
            name,
            &[
                "--leader-elect",
                "--lease-duration",
                &lease,
                "--lease-namespace",
                &world.env.namespace,
            ],
        )
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.pid().expect("running") as libc::pid_t;
        // SAFETY: kill(2) on a child this test spawned and has not reaped.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "send signal {signal}"
        );
    }

    /// SIGKILL, and reap it.
    async fn kill(&mut self) {
        self.child.kill().await.expect("SIGKILL the operator");
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn wait_log(&self, what: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(what) {
            if Instant::now() > deadline {
                panic!(
                    "{}: no {what:?} within {within:?}; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

// ---------------------------------------------------------------------------------------------
// The desired state, and the changes the scenarios make to it

#[derive(Clone, Debug)]
struct Desired {
    name: String,
    id: String,
    secret: String,
    retain: bool,
    key: String,
    user: String,
    deleted: bool,
}

struct World {
    env: TestEnv,
    kubeconfig: TempFile,
    objects: Vec<Desired>,
    rng: fastrand::Rng,
    /// Version counter for keys and task settings, so every change is a new value.
    version: u32,
}

const TASK: &str = "text_embedding";
/// The bearer token in the operators' kubeconfig.
const OPERATOR_TOKEN: &str = "operator-under-test";

/// What a scenario can do to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Create,
    Change,
    Rotate,
    Delete,
}

impl World {
    async fn new(scenario: &str) -> World {
        // 9.4: `_update` keeps the chunking (no ChunkingReset noise) and checks a rotated key.
        let env = TestEnv::start_with(EnvOptions {
            es_version: "9.4.0".into(),
            ..EnvOptions::default()
        })
        .await;
        let kubeconfig = TempFile::new("faults", "kubeconfig");
        // The operator's requests carry their own token: the API faults strike only them, not
        // the test's changes to the desired state.
        env.kube
            .write_kubeconfig_with_token(&kubeconfig.0, OPERATOR_TOKEN)
            .expect("write kubeconfig");
        env.kube.aim_write_faults_at(Some(OPERATOR_TOKEN));
        World {
            env,
            kubeconfig,
            objects: Vec::new(),
            rng: rng(scenario),
            version: 0,
        }
    }

    fn api(&self) -> Api<InferenceEndpoint> {
        Api::namespaced(self.env.client.clone(), &self.env.namespace)
    }

    fn next_version(&mut self) -> u32 {
        self.version += 1;
        self.version
    }

    fn live(&self) -> Vec<usize> {
        (0..self.objects.len())
            .filter(|&i| !self.objects[i].deleted)
            .collect()
    }

    /// Create one more object (its own Secret and key; a quarter of them `Retain`).
    async fn create(&mut self) -> usize {
        let retain = self.rng.u8(..4) == 0;
        self.create_as(retain).await
    }

    /// Create one more object with its own Secret and key, `Retain` or `Delete`.
    async fn create_as(&mut self, retain: bool) -> usize {
        let i = self.objects.len();
        let version = self.next_version();
        let o = Desired {
            name: format!("f{i:03}"),
            id: format!("fault-{i:03}"),
            secret: format!("f{i:03}-azure"),
            retain,
            key: format!("key-{i}-{version}"),
            user: format!("user-{version}"),
            deleted: false,
        };
        self.env.es.azure().accept_credential(&o.key);
        self.env
            .put_secret(&o.secret, &[("apiKey", o.key.as_str())])
            .await;
        let policy = if o.retain { "Retain" } else { "Delete" };
        let object: InferenceEndpoint = Iep::embedding(&o.name)
            .namespace(&self.env.namespace)
            .secret(&o.secret)
            .es(&self.env)
            .inference_id(&o.id)
            .set("/azureOpenAI/taskSettings", json!({"user": o.user}))
            .set("/deletionPolicy", json!(policy))
            .build();
        let (api, params) = (self.api(), PostParams::default());
        // A create the emulator applied but answered late (latency) may come back as 409.
        retry("create", || async {
            match api.create(&params, &object).await {
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                other => other.map(|_| ()),
            }
        })
        .await;
        self.objects.push(o);
        i
    }

    /// Change the task settings (applied in place through `_update`).
    async fn change(&mut self, i: usize) {
        let user = format!("user-{}", self.next_version());
        let patch = json!({"spec": {"azureOpenAI": {"taskSettings": {"user": user}}}});
        let (api, name) = (self.api(), self.objects[i].name.clone());
        let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
        retry("change", || api.patch(&name, &params, &patch)).await;
        self.objects[i].user = user;
    }

    /// Rotate the key in the object's Secret.
    async fn rotate(&mut self, i: usize) {
        let key = format!("key-{i}-{}", self.next_version());
        self.env.es.azure().accept_credential(&key);
        let secret = self.objects[i].secret.clone();
        self.env
            .put_secret(&secret, &[("apiKey", key.as_str())])
            .await;
        self.objects[i].key = key;
    }

    async fn delete(&mut self, i: usize) {
        let (api, name) = (self.api(), self.objects[i].name.clone());
        let params = DeleteParams::default();
        retry("delete", || async {
            match api.delete(&name, &params).await {
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                other => other.map(|_| ()),
            }
        })
        .await;
        self.objects[i].deleted = true;
    }

    /// One random change among `allowed` (a create when nothing is live). Returns what it did
    /// and to which object.
    async fn random_op(&mut self, allowed: &[Op], max_objects: usize) -> (Op, usize) {
        let live = self.live();
        let mut op = allowed[self.rng.usize(..allowed.len())];
        if live.is_empty() || (op == Op::Create && self.objects.len() >= max_objects) {
            op = if self.objects.len() < max_objects && allowed.contains(&Op::Create) {
                Op::Create
            } else if live.is_empty() {
                return (Op::Create, usize::MAX);
            } else {
                Op::Change
            };
        }
        let i = if live.is_empty() {
            usize::MAX
        } else {
            live[self.rng.usize(..live.len())]
        };
        let i = match op {
            Op::Create => self.create().await,
            Op::Change => {
                self.change(i).await;
                i
            }
            Op::Rotate => {
                self.rotate(i).await;
                i
            }
            Op::Delete => {
                self.delete(i).await;
                i
            }
        };
        (op, i)
    }

    /// Objects that are Ready=True now (from the API server).
    async fn ready_names(&self) -> BTreeSet<String> {
        let list = self.api().list(&ListParams::default()).await;
        list.map(|l| l.items)
            .unwrap_or_default()
            .iter()
            .filter(|o| ready_true(o))
            .map(|o| o.metadata.name.clone().unwrap_or_default())
            .collect()
    }
}

/// Retry a test-side API call the emulator may refuse or time out (faults are on) for up to a
/// minute.
async fn retry<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("{what}: {error}"),
        }
    }
}

fn ready_true(o: &InferenceEndpoint) -> bool {
    support::condition(o, "Ready").is_some_and(|c| c.status == "True")
}

// ---------------------------------------------------------------------------------------------
// The final-state check, shared by every scenario

/// Successful creates (PUT without `_update`, answered 200) per inference id.
fn creates(requests: &[RecordedRequest]) -> BTreeMap<String, usize> {
    let mut by_id = BTreeMap::new();
    for r in requests {
        if r.route == Route::Put && r.status == Some(200) {
            if let Some(id) = r.path.strip_prefix(&format!("/_inference/{TASK}/")) {
                *by_id.entry(id.to_owned()).or_insert(0) += 1;
            }
        }
    }
    by_id
}

/// Every difference between the desired state and what the API server and Elasticsearch hold.
async fn mismatches(world: &World) -> Vec<String> {
    let es = &world.env.es;
    let listed = match world.api().list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(error) => return vec![format!("cannot list objects: {error}")],
    };
    let by_name: BTreeMap<String, &InferenceEndpoint> = listed
        .iter()
        .map(|o| (o.metadata.name.clone().unwrap_or_default(), o))
        .collect();
    let mut wrong = Vec::new();
    let mut owned = BTreeSet::new();
    let created = creates(&es.requests());
    for o in &world.objects {
        match (o.deleted, by_name.get(&o.name)) {
            (false, None) => wrong.push(format!("{}: the object is gone", o.name)),
            (false, Some(live)) => {
                owned.insert(o.id.clone());
                wrong.extend(live_mismatch(world, o, live));
            }
            (true, Some(live)) => wrong.push(format!(
                "{}: deleted but still there, finalizers {:?}",
                o.name, live.metadata.finalizers
            )),
            (true, None) => {
                let present = es.endpoint(&o.id).is_some();
                // An object deleted before its endpoint was ever created (its finalizer
                // refused, say) leaves nothing to keep.
                if o.retain && created.contains_key(&o.id) {
                    owned.insert(o.id.clone());
                    if !present {
                        wrong.push(format!("{}: Retain, but the endpoint is gone", o.name));
                    }
                } else if present && !o.retain {
                    wrong.push(format!(
                        "{}: Delete, but the endpoint is still there",
                        o.name
                    ));
                }
            }
        }
    }
    for id in es.endpoint_ids() {
        if !owned.contains(&id) {
            wrong.push(format!(
                "endpoint {id} in Elasticsearch belongs to no object"
            ));
        }
    }
    for (id, n) in created {
        if n > 1 {
            wrong.push(format!("endpoint {id} was created {n} times"));
        }
    }
    wrong
}

/// A live object: Ready for its current generation, and Elasticsearch holds its settings and key.
fn live_mismatch(world: &World, o: &Desired, live: &InferenceEndpoint) -> Vec<String> {
    let mut wrong = Vec::new();
    let ready = support::condition(live, "Ready");
    let generation = live.metadata.generation;
    let observed = live.status.as_ref().and_then(|s| s.observed_generation);
    match ready {
        Some(c) if c.status == "True" && observed == generation => {}
        Some(c) => wrong.push(format!(
            "{}: Ready={} {} (generation {generation:?}, observed {observed:?}): {}",
            o.name, c.status, c.reason, c.message
        )),
        None => wrong.push(format!("{}: no Ready condition", o.name)),
    }
    if live
        .metadata
        .finalizers
        .as_ref()
        .is_none_or(|f| f.is_empty())
    {
        wrong.push(format!("{}: live without the finalizer", o.name));
    }
    let es = &world.env.es;
    match es.endpoint(&o.id) {
        None => wrong.push(format!("{}: no endpoint {} in Elasticsearch", o.name, o.id)),
        Some(endpoint) => {
            let user = endpoint["task_settings"]["user"].as_str().unwrap_or("");
            if user != o.user {
                wrong.push(format!(
                    "{}: task_settings.user {user:?}, want {:?}",
                    o.name, o.user
                ));
            }
            let key = es.stored_secret(&o.id).map(|(_, key)| key);
            if key.as_deref() != Some(o.key.as_str()) {
                wrong.push(format!("{}: Elasticsearch holds another key", o.name));
            }
        }
    }
    wrong
}

/// Wait until the final state matches (checked every 200 ms); return how long it took. Fails
/// with every mismatch left after `within`.
async fn converge(world: &World, within: Duration, operators: &[&Operator]) -> Duration {
    let started = Instant::now();
    let mut reported = false;
    loop {
        let wrong = mismatches(world).await;
        if wrong.is_empty() {
            return started.elapsed();
        }
        // What is still wrong after 5 s, for a slow convergence to be explained.
        if !reported && started.elapsed() > Duration::from_secs(5) {
            reported = true;
            println!("SLOW still wrong after 5 s: {}", wrong.join("; "));
        }
        if started.elapsed() > within {
            let logs: Vec<String> = operators
                .iter()
                .map(|o| format!("--- {} (last lines)\n{}", o.name, o.tail()))
                .collect();
            panic!(
                "final state not reached within {within:?}: {} mismatches:\n{}\n{}",
                wrong.len(),
                wrong.join("\n"),
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn es_writes(requests: &[RecordedRequest]) -> Vec<&RecordedRequest> {
    requests
        .iter()
        .filter(|r| matches!(r.route, Route::Put | Route::Update | Route::Delete))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Elasticsearch unreachable

/// Reasons of the objects not Ready now, with how many say each.
async fn not_ready_reasons(world: &World) -> BTreeMap<String, usize> {
    let list = world.api().list(&ListParams::default()).await;
    let mut reasons = BTreeMap::new();
    for o in list.map(|l| l.items).unwrap_or_default() {
        if let Some(ready) = support::condition(&o, "Ready").filter(|c| c.status != "True") {
            *reasons.entry(ready.reason.clone()).or_insert(0) += 1;
        }
    }
    reasons
}

/// Attempts one object can make in `period` while every attempt fails: the first at once, then
/// one per backoff delay (at least 90 % of initial·2ⁿ, capped at the maximum).
fn attempts_within(period: Duration) -> u64 {
    let (mut elapsed, mut attempts, mut delay) = (Duration::ZERO, 1u64, BACKOFF_INITIAL);
    loop {
        elapsed += delay.mul_f64(JITTER_FLOOR);
        if elapsed > period {
            return attempts;
        }
        attempts += 1;
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

/// Requests one reconcile attempt may send before the first failure stops it: the cluster
/// check (`GET /`), the endpoint read, the write (inferred from the reconcile's phases;
/// connection resets end an attempt at its first request).
const REQUESTS_PER_ATTEMPT: u64 = 3;
/// Reconciles a change can trigger on its own, ahead of the backoff: the change's watch event,
/// and for a create the finalizer's.
const RECONCILES_PER_CHANGE: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_outage() {
    let sizes = sizes();
    let mut world = World::new("es_outage").await;
    let operator = Operator::start(&world, "operator", &[]);
    let first_create = Instant::now();
    for _ in 0..sizes.objects / 2 {
        world.create().await;
    }
    converge(&world, Duration::from_secs(90), &[&operator]).await;

    // Every change kind while Elasticsearch cannot be reached, spread over the outage.
    let ops = sizes.objects;
    let started = Instant::now();
    world.env.es.start_outage();
    let mut changes = 0u64;
    let mut touched = BTreeSet::new();
    let pace = sizes.outage / ops as u32;
    let all = [Op::Create, Op::Change, Op::Rotate, Op::Delete];
    for _ in 0..ops {
        touched.insert(world.random_op(&all, sizes.objects).await.1);
        changes += 1;
        let next = pace.mul_f64(0.5 + world.rng.f64());
        if started.elapsed() + next >= sizes.outage {
            break;
        }
        tokio::time::sleep(next).await;
    }
    if let Some(rest) = sizes.outage.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    // What the objects that tried say, just before Elasticsearch is back.
    let said = not_ready_reasons(&world).await;
    world.env.es.clear_faults();
    let ended = Instant::now();
    let outage = ended - started;

    let converged = converge(&world, Duration::from_secs(60), &[&operator]).await;
    // An object no change touched reconciles only at its re-check, at least 90 % of the
    // interval after it was last Ready (so after the first create); the others retry from
    // their change on.
    let retrying = if ended - first_create >= RECHECK.mul_f64(JITTER_FLOOR) {
        world.objects.len()
    } else {
        touched.len()
    } as u64;
    let sent = world
        .env
        .es
        .requests()
        .iter()
        .filter(|r| r.at >= started && r.at < ended)
        .count() as u64;
    let objects = world.objects.len();
    let bound = REQUESTS_PER_ATTEMPT
        * (retrying * attempts_within(outage) + RECONCILES_PER_CHANGE * changes);
    println!(
        "FIGURE es_outage objects={objects} changes_during_outage={changes} retrying_objects={retrying} outage_s={} requests_during_outage={sent} bound={bound} converge_after_s={} not_ready_at_outage_end={said:?}",
        secs(outage),
        secs(converged)
    );
    assert!(
        said.contains_key("ElasticsearchUnreachable"),
        "an object that tried during the outage says Elasticsearch cannot be reached: {said:?}"
    );
    assert!(
        sent <= bound,
        "{sent} requests during the outage, more than the backoff allows ({bound})"
    );
    assert!(sent > 0, "the operator kept trying during the outage");
    // Once Elasticsearch answers, every object's next attempt is at most one maximum delay
    // away; the rest is the reconciles themselves.
    assert!(
        converged < BACKOFF_MAX + Duration::from_secs(15),
        "converged {converged:?} after the outage"
    );
}

// ---------------------------------------------------------------------------------------------
// SIGKILL at random points

/// Where a kill lands.
#[derive(Clone, Copy, Debug)]
enum KillPoint {
    /// While Elasticsearch holds a create.
    MidPut,
    /// While Elasticsearch holds a delete.
    MidDelete,
    /// Anywhere, a random time after the last change.
    Random,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points() {
    let sizes = sizes();
    let mut world = World::new("kills").await;
    let mut operator = Operator::start(&world, "operator-0", IN_FLIGHT_WAIT);
    for _ in 0..sizes.objects / 3 {
        world.create().await;
    }
    converge(&world, Duration::from_secs(90), &[&operator]).await;

    let per_round = (sizes.changes / sizes.kills).max(1);
    let all = [Op::Create, Op::Change, Op::Rotate, Op::Delete];
    let mut landed = BTreeMap::<&str, usize>::new();
    let mut restarts = Vec::new();
    for round in 0..sizes.kills {
        for _ in 0..per_round {
            world.random_op(&all, sizes.objects).await;
            tokio::time::sleep(Duration::from_millis(world.rng.u64(0..150))).await;
        }
        let point = match round % 3 {
            0 => KillPoint::MidPut,
            1 => KillPoint::MidDelete,
            _ => KillPoint::Random,
        };
        let inside = arrange_kill(&mut world, point).await;
        operator.kill().await;
        *landed
            .entry(match (point, inside) {
                (KillPoint::MidPut, true) => "mid_put",
                (KillPoint::MidDelete, true) => "mid_delete",
                _ => "random",
            })
            .or_default() += 1;
        // Elasticsearch finishes the held request before or after the new process starts.
        let release_first = world.rng.bool();
        if release_first {
            world.env.es.clear_faults();
        }
        let restarted = Instant::now();
        let name = format!("operator-{}", round + 1);
        operator = Operator::start(&world, &name, IN_FLIGHT_WAIT);
        if !release_first {
            tokio::time::sleep(Duration::from_millis(world.rng.u64(0..1500))).await;
            world.env.es.clear_faults();
        }
        restarts.push(restarted);
    }
    let last = *restarts.last().expect("at least one kill");
    converge(&world, Duration::from_secs(90), &[&operator]).await;
    let converged = last.elapsed();
    let requests = world.env.es.requests();
    let put_attempts = requests.iter().filter(|r| r.route == Route::Put).count();
    let refused_puts = requests
        .iter()
        .filter(|r| r.route == Route::Put && r.status == Some(400))
        .count();
    println!(
        "FIGURE kills kills={} changes={} objects={} mid_put={} mid_delete={} random={} put_attempts={put_attempts} put_already_exists={refused_puts} converge_after_last_restart_s={} mismatches=0",
        sizes.kills,
        per_round * sizes.kills,
        world.objects.len(),
        landed.get("mid_put").unwrap_or(&0),
        landed.get("mid_delete").unwrap_or(&0),
        landed.get("random").unwrap_or(&0),
        secs(converged),
    );
    assert!(
        landed.get("mid_put").is_some_and(|&n| n > 0) || sizes.kills < 1,
        "at least one kill landed inside a PUT: {landed:?}"
    );
}

/// The case behind seed 14390302899909630903, made deterministic: the operator dies while
/// Elasticsearch holds its create, the object is deleted, a new process cleans up, and only then
/// does Elasticsearch finish the PUT (it does not cancel a PUT whose client has gone:
/// `RestPutInferenceModelAction` runs it on the plain node client, not the channel-bound
/// `RestCancellableNodeClient`; elastic/elasticsearch,
/// x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/rest/RestPutInferenceModelAction.java).
/// The endpoint that lands must not outlive its object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_landing_after_its_object_was_deleted_is_removed() {
    let mut world = World::new("late_create").await;
    world.env.es.hold_next(Route::Put, 1);
    let mut operator = Operator::start(&world, "operator-0", IN_FLIGHT_WAIT);
    let i = world.create_as(false).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while world.env.es.held() == 0 {
        assert!(Instant::now() < deadline, "the create was never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    operator.kill().await;
    world.delete(i).await;
    let operator = Operator::start(&world, "operator-1", IN_FLIGHT_WAIT);
    // The new process looks at the deleted object first (and may let it go), then the PUT lands.
    let (api, name) = (world.api(), world.objects[i].name.clone());
    let looked = Instant::now();
    while looked.elapsed() < Duration::from_secs(2) {
        if api.get_opt(&name).await.ok().flatten().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    world.env.es.release_hung();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let converged = converge(&world, Duration::from_secs(20), &[&operator]).await;
    let deletes = world
        .env
        .es
        .requests()
        .iter()
        .filter(|r| {
            r.route == Route::Delete && r.query.as_deref().is_none_or(|q| !q.contains("dry_run"))
        })
        .count();
    println!(
        "FIGURE late_create converge_s={} deletes={deletes} mismatches=0",
        secs(converged)
    );
}

/// Wait until Elasticsearch holds `n` requests ([`inference_testenv::es::EsDouble::hold_next`]).
async fn wait_held(world: &World, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while world.env.es.held() < n {
        assert!(Instant::now() < deadline, "the request was never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Release the held requests and wait until the endpoint `id` is in Elasticsearch; its
/// `task_settings.user`.
async fn land(world: &World, id: &str) -> String {
    world.env.es.release_hung();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(endpoint) = world.env.es.endpoint(id) {
            return endpoint["task_settings"]["user"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the held create of {id} never landed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Create an object whose create Elasticsearch holds, kill the operator while it waits, then
/// change the spec: the held create (with the settings asked, returned) has not landed yet.
async fn create_held_across_a_kill_then_changed(world: &mut World) -> (usize, String) {
    world.env.es.hold_next(Route::Put, 1);
    let mut operator = Operator::start(world, "operator-0", IN_FLIGHT_WAIT);
    let i = world.create_as(false).await;
    let asked = world.objects[i].user.clone();
    wait_held(world, 1).await;
    operator.kill().await;
    world.change(i).await;
    (i, asked)
}

/// The case behind seed 6282026349100311834, made deterministic: the operator dies while
/// Elasticsearch holds its create, the spec changes, and the create lands before the next
/// process looks. That endpoint holds the old settings and status does not record it; it is
/// still this object's (Elasticsearch refuses a PUT for an id that exists: `ModelRegistry.storeModel`
/// indexes with `OpType.CREATE` and turns the version conflict into
/// `resource_already_exists_exception`; elastic/elasticsearch
/// x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/registry/ModelRegistry.java),
/// so the next process updates it to the spec instead of reporting `Conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_landing_after_a_spec_change_is_updated_to_the_spec() {
    let mut world = World::new("late_create_changed").await;
    let (i, asked) = create_held_across_a_kill_then_changed(&mut world).await;
    let id = world.objects[i].id.clone();
    assert_eq!(land(&world, &id).await, asked, "the create landed as asked");
    let operator = Operator::start(&world, "operator-1", IN_FLIGHT_WAIT);
    let converged = converge(&world, Duration::from_secs(20), &[&operator]).await;
    let requests = world.env.es.requests();
    let updates = requests.iter().filter(|r| r.route == Route::Update).count();
    println!(
        "FIGURE late_create_changed converge_s={} updates={updates} mismatches=0",
        secs(converged)
    );
}

/// A second create sent without a new finalizer patch: the first was refused for good (the
/// provider rejected the key), the spec was corrected, and the corrected create is held across
/// a kill and lands after a further spec change. It is the object's own, too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_create_landing_after_a_kill_and_a_spec_change_is_updated() {
    let mut world = World::new("late_second_create").await;
    let i = world.create_as(false).await;
    let key = world.objects[i].key.clone();
    world.env.es.azure().revoke_credential(&key);
    let mut operator = Operator::start(&world, "operator-0", IN_FLIGHT_WAIT);
    let name = world.objects[i].name.clone();
    support::wait_ready(&world.env, &name, "False", "AzureRejectedCredentials").await;
    world.env.es.azure().accept_credential(&key);
    world.env.es.hold_next(Route::Put, 1);
    world.change(i).await;
    let asked = world.objects[i].user.clone();
    wait_held(&world, 1).await;
    operator.kill().await;
    world.change(i).await;
    let id = world.objects[i].id.clone();
    assert_eq!(
        land(&world, &id).await,
        asked,
        "the second create landed as asked"
    );
    let operator = Operator::start(&world, "operator-1", IN_FLIGHT_WAIT);
    converge(&world, Duration::from_secs(20), &[&operator]).await;
}

/// The deletion of an object whose create lands unseen after a spec change: the endpoint holds
/// the old settings and is still the object's, so its deletion deletes it (before, it was left
/// in Elasticsearch as someone else's, owned by no object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_landing_after_a_spec_change_and_a_deletion_is_removed() {
    let mut world = World::new("late_create_changed_deleted").await;
    let (i, asked) = create_held_across_a_kill_then_changed(&mut world).await;
    world.delete(i).await;
    let id = world.objects[i].id.clone();
    assert_eq!(land(&world, &id).await, asked, "the create landed as asked");
    let operator = Operator::start(&world, "operator-1", IN_FLIGHT_WAIT);
    converge(&world, Duration::from_secs(20), &[&operator]).await;
}

/// The record of a create costs no Kubernetes write of its own in the normal path: it rides on
/// the finalizer patch, so a created object still costs two writes (that patch and one status
/// write). It holds the settings asked for, never the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_of_a_create_rides_on_the_finalizer_patch() {
    let mut world = World::new("intent_budget").await;
    let operator = Operator::start(&world, "operator-0", &[]);
    let i = world.create_as(false).await;
    converge(&world, Duration::from_secs(20), &[&operator]).await;
    let o = &world.objects[i];
    let object = world.api().get(&o.name).await.expect("the object");
    let recorded = object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("esinference.io/create-intent"))
        .expect("the create is recorded on the object");
    let asked: serde_json::Value = serde_json::from_str(recorded).expect("a JSON list");
    assert_eq!(
        asked[0]["task_settings"]["user"],
        o.user.as_str(),
        "{recorded}"
    );
    assert_eq!(asked.as_array().map(Vec::len), Some(1), "{recorded}");
    assert!(
        !recorded.contains(&o.key),
        "the key is not recorded: {recorded}"
    );
    let writes = |method: &str, subresource: Option<&str>| {
        let requests = world.env.kube.requests();
        let by = |r: &&inference_testenv::kube::RequestRecord| {
            r.method == method
                && r.resource.as_deref() == Some("inferenceendpoints")
                && r.subresource.as_deref() == subresource
        };
        requests.iter().filter(by).count()
    };
    assert_eq!(writes("PATCH", None), 1, "one object write: the finalizer");
    assert_eq!(writes("PATCH", Some("status")), 1, "one status write");
}

/// The protection the two tests above must not weaken: an endpoint someone else put at the id
/// before the object existed stays someone else's across a kill, a restart and a spec change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_endpoint_at_the_id_stays_a_conflict_across_a_kill() {
    let mut world = World::new("foreign_endpoint").await;
    let id = "fault-000";
    world.env.es.put_out_of_band(json!({
        "inference_id": id, "task_type": TASK, "service": "azureopenai",
        "service_settings": {"resource_name": "test-resource", "deployment_id": "embeddings",
                             "api_version": "2024-10-21", "api_key": "someone-elses-key"},
        "task_settings": {"user": "someone-else"}
    }));
    let mut operator = Operator::start(&world, "operator-0", IN_FLIGHT_WAIT);
    let i = world.create_as(false).await;
    assert_eq!(world.objects[i].id, id);
    let name = world.objects[i].name.clone();
    support::wait_ready(&world.env, &name, "False", "Conflict").await;
    operator.kill().await;
    world.change(i).await;
    let operator = Operator::start(&world, "operator-1", IN_FLIGHT_WAIT);
    let api = world.api();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let object = api.get(&name).await.expect("the object");
        let seen = object.status.as_ref().and_then(|s| s.observed_generation);
        if seen == object.metadata.generation {
            let ready = support::condition(&object, "Ready").expect("a Ready condition");
            assert_eq!(
                (ready.status.as_str(), ready.reason.as_str()),
                ("False", "Conflict"),
                "{}; log:\n{}",
                ready.message,
                operator.tail()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change was never reconciled; log:\n{}",
            operator.tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let endpoint = world.env.es.endpoint(id).expect("the foreign endpoint");
    assert_eq!(endpoint["task_settings"]["user"], "someone-else");
    assert_eq!(
        world
            .env
            .es
            .stored_secret(id)
            .map(|(_, key)| key)
            .as_deref(),
        Some("someone-elses-key")
    );
    let writes = es_writes(&world.env.es.requests()).len();
    assert_eq!(writes, 0, "nothing written to someone else's endpoint");
}

/// Set up the kill point; true when a request of the kind is held inside Elasticsearch.
async fn arrange_kill(world: &mut World, point: KillPoint) -> bool {
    let es = world.env.es.clone();
    match point {
        KillPoint::MidPut => {
            es.hold_next(Route::Put, 1);
            world.create().await;
        }
        KillPoint::MidDelete => {
            let ready = world.ready_names().await;
            let candidates: Vec<usize> = world
                .live()
                .into_iter()
                .filter(|&i| !world.objects[i].retain && ready.contains(&world.objects[i].name))
                .collect();
            let Some(&i) = candidates.get(world.rng.usize(..candidates.len().max(1))) else {
                return false;
            };
            es.hold_next(Route::Delete, 1);
            world.delete(i).await;
        }
        KillPoint::Random => {
            tokio::time::sleep(Duration::from_millis(world.rng.u64(0..1500))).await;
            return false;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while es.held() == 0 {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Kubernetes API faults

#[derive(Clone, Copy, Debug)]
enum KubeFault {
    WatchesClosed,
    ExpiredOnResume,
    WritesRefused(u16),
    Latency,
}

impl KubeFault {
    fn name(self) -> String {
        match self {
            KubeFault::WatchesClosed => "watches_closed_every_2s".into(),
            KubeFault::ExpiredOnResume => "410_on_resume".into(),
            KubeFault::WritesRefused(status) => format!("{status}_on_status_and_finalizers"),
            KubeFault::Latency => "latency_5s".into(),
        }
    }

    fn switch_on(self, world: &World) {
        let kube = &world.env.kube;
        match self {
            KubeFault::WatchesClosed => kube.close_watches_every(Some(Duration::from_secs(2))),
            KubeFault::ExpiredOnResume => {
                kube.expire_watch_resumes(true);
                kube.close_watches_every(Some(Duration::from_secs(2)));
            }
            KubeFault::WritesRefused(status) => {
                kube.fail_writes("inferenceendpoints", Writes::Status, status);
                kube.fail_writes("inferenceendpoints", Writes::Object, status);
            }
            KubeFault::Latency => kube.set_latency(Duration::from_secs(5)),
        }
    }

    /// How often the fault struck, from the emulator's counters (`None`: latency, which
    /// strikes every request).
    fn struck(self, before: FaultCounts, after: FaultCounts) -> Option<usize> {
        match self {
            KubeFault::WatchesClosed => Some(after.watch_closes - before.watch_closes),
            KubeFault::ExpiredOnResume => Some(after.expired_resumes - before.expired_resumes),
            KubeFault::WritesRefused(_) => Some(after.refused_writes - before.refused_writes),
            KubeFault::Latency => None,
        }
    }

    fn switch_off(self, world: &World) {
        world.env.kube.clear_switched_faults();
        world.env.kube.set_latency(Duration::ZERO);
    }

    /// Changes the test makes while the fault is on: every kind (the faults strike only the
    /// operator's requests, `World::new`).
    fn ops(self) -> &'static [Op] {
        &[Op::Create, Op::Change, Op::Rotate, Op::Delete]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_api_faults() {
    let sizes = sizes();
    let mut world = World::new("kube_faults").await;
    let operator = Operator::start(&world, "operator", &[]);
    for _ in 0..sizes.objects / 3 {
        world.create().await;
    }
    converge(&world, Duration::from_secs(90), &[&operator]).await;

    let faults = [
        KubeFault::WatchesClosed,
        KubeFault::ExpiredOnResume,
        KubeFault::WritesRefused(500),
        KubeFault::WritesRefused(429),
        KubeFault::Latency,
    ];
    for fault in faults {
        // Changes made just before the fault are reconciled while it is on.
        if matches!(fault, KubeFault::WritesRefused(_)) {
            for _ in 0..3 {
                world.random_op(&[Op::Change], sizes.objects).await;
            }
        }
        let before = world.env.kube.switched_fault_counts();
        fault.switch_on(&world);
        let started = Instant::now();
        let mut ops = 0;
        while started.elapsed() < sizes.kube_fault {
            world.random_op(fault.ops(), sizes.objects).await;
            ops += 1;
            tokio::time::sleep(Duration::from_millis(world.rng.u64(100..600))).await;
        }
        fault.switch_off(&world);
        let struck = fault.struck(before, world.env.kube.switched_fault_counts());
        let recovered = converge(&world, Duration::from_secs(60), &[&operator]).await;
        println!(
            "FIGURE kube_faults fault={} fault_s={} changes_during_fault={ops} struck={} recovery_s={} mismatches=0",
            fault.name(),
            secs(sizes.kube_fault),
            struck.map_or("every_request".into(), |n| n.to_string()),
            secs(recovered)
        );
        assert_ne!(struck, Some(0), "{}: the fault never struck", fault.name());
        // Watches re-established and writes retried within a few maximum backoffs (kube-rs's own
        // watcher backoff tops out at 30 s; a relist usually takes under one).
        assert!(
            recovered < Duration::from_secs(35),
            "{}: recovered after {recovered:?}",
            fault.name()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Leader election under load: a frozen leader, then a killed one

/// The operator process holding the client end of a connection to the double at `server_port`,
/// found through /proc (Linux): the socket's inode in /proc/net/tcp, then the process whose
/// file descriptors include it. The tags come from outside the operator: no product change.
fn socket_owner(peer: SocketAddr, server_port: u16, pids: &[(u32, String)]) -> Option<String> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port_of = |field: &str| {
        field
            .split_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    let inode = tcp.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote) = (fields.get(1)?, fields.get(2)?);
        (port_of(local)? == peer.port() && port_of(remote)? == server_port)
            .then(|| fields.get(9).map(|s| s.to_string()))
            .flatten()
    })?;
    let socket = format!("socket:[{inode}]");
    pids.iter().find_map(|(pid, name)| {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == socket))
            .then(|| name.clone())
    })
}

/// Periods in which each instance wrote to Elasticsearch, in order: `(tag, first, last, count)`.
/// Two instances writing in the same period show as the same tag twice.
fn write_periods(requests: &[RecordedRequest]) -> Vec<(String, Instant, Instant, usize)> {
    let mut periods: Vec<(String, Instant, Instant, usize)> = Vec::new();
    for r in es_writes(requests) {
        let tag = r.tag.clone().unwrap_or_else(|| "untagged".into());
        match periods.last_mut() {
            Some((last, _, end, n)) if *last == tag => {
                *end = r.at;
                *n += 1;
            }
            _ => periods.push((tag, r.at, r.at, 1)),
        }
    }
    periods
}

/// When `operator`'s log first shows `what`, noted by a task that looks every 10 ms.
fn watch_for(operator: &Operator, what: &'static str) -> Arc<Mutex<Option<Instant>>> {
    let seen: Arc<Mutex<Option<Instant>>> = Arc::default();
    let (log, note) = (operator.log.clone(), seen.clone());
    tokio::spawn(async move {
        while !log.lock().unwrap().contains(what) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        *note.lock().unwrap() = Some(Instant::now());
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_frozen_then_killed() {
    let sizes = sizes();
    let mut world = World::new("leader").await;
    let pids: Arc<Mutex<Vec<(u32, String)>>> = Arc::default();
    let server_port = world.env.es.addr().port();
    let known = pids.clone();
    world.env.es.set_connection_tagger(Arc::new(move |peer| {
        socket_owner(peer, server_port, &known.lock().unwrap())
    }));
    let register = |operator: &Operator| {
        let pid = operator.pid().expect("running");
        pids.lock().unwrap().push((pid, operator.name.clone()));
    };

    let mut a = Operator::replica(&world, "replica-a");
    register(&a);
    a.wait_log("acquired the leader Lease", Duration::from_secs(20))
        .await;
    let mut b = Operator::replica(&world, "replica-b");
    register(&b);
    b.wait_log("waiting for the leader Lease", Duration::from_secs(20))
        .await;
    for _ in 0..sizes.objects / 2 {
        world.create().await;
    }
    converge(&world, Duration::from_secs(90), &[&a, &b]).await;

    // Freeze the leader past the lease while changes keep coming.
    a.signal(libc::SIGSTOP);
    let frozen = Instant::now();
    let takeover = watch_for(&b, "acquired the leader Lease");
    let all = [Op::Create, Op::Change, Op::Rotate, Op::Delete];
    let mut changes = 0;
    while frozen.elapsed() < LEASE * 2 || !b.log().contains("acquired the leader Lease") {
        assert!(
            frozen.elapsed() < Duration::from_secs(30),
            "the standby did not take over; log:\n{}",
            b.tail()
        );
        world.random_op(&all, sizes.objects).await;
        changes += 1;
        tokio::time::sleep(Duration::from_millis(world.rng.u64(50..300))).await;
    }
    let took_over = takeover.lock().unwrap().map(|at| at - frozen);
    assert!(
        took_over.is_some_and(|t| t < LEASE * 2 + Duration::from_secs(6)),
        "the standby took {took_over:?} to take over a frozen leader"
    );
    converge(&world, Duration::from_secs(90), &[&b]).await;
    // More changes just before the old leader wakes: its watches deliver them on wake-up, the
    // moment a leader that does not notice it was deposed would act on them.
    for _ in 0..5 {
        world
            .random_op(&[Op::Change, Op::Rotate], sizes.objects)
            .await;
    }
    let woken = Instant::now();
    let log_at_wake = a.log().len();
    a.signal(libc::SIGCONT);
    let exit = tokio::time::timeout(Duration::from_secs(20), a.child.wait())
        .await
        .unwrap_or_else(|_| panic!("the deposed leader kept running; log:\n{}", a.tail()))
        .expect("wait");
    let a_stopped = woken.elapsed();
    let after_wake: Vec<String> = a.log()[log_at_wake..].lines().map(str::to_owned).collect();
    let reconciles_after_wake = after_wake
        .iter()
        .filter(|l| l.contains("reconcile{"))
        .count();
    converge(&world, Duration::from_secs(60), &[&b]).await;

    // The deposed leader wrote nothing after it was frozen.
    let requests = world.env.es.requests();
    let late: Vec<String> = es_writes(&requests)
        .into_iter()
        .filter(|r| r.tag.as_deref() == Some("replica-a") && r.at > frozen)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();

    // Then kill the new leader in the middle of work; a fresh standby finishes it.
    let c = Operator::replica(&world, "replica-c");
    register(&c);
    c.wait_log("waiting for the leader Lease", Duration::from_secs(20))
        .await;
    for _ in 0..5 {
        world.random_op(&all, sizes.objects).await;
    }
    b.kill().await;
    let killed = Instant::now();
    for _ in 0..5 {
        world.random_op(&all, sizes.objects).await;
    }
    c.wait_log("acquired the leader Lease", Duration::from_secs(30))
        .await;
    let c_took_over = killed.elapsed();
    // The Lease runs out (3 s) and a renewal period passes; slack for a loaded machine.
    let takeover_limit = LEASE * 2 + Duration::from_secs(6);
    assert!(
        c_took_over < takeover_limit,
        "the standby took {c_took_over:?} to take over a killed leader"
    );
    converge(&world, Duration::from_secs(90), &[&c]).await;

    let periods = write_periods(&world.env.es.requests());
    let order: Vec<&str> = periods.iter().map(|p| p.0.as_str()).collect();
    println!(
        "FIGURE leader objects={} changes_while_frozen={changes} takeover_after_freeze_s={} deposed_exit_after_sigcont_s={} deposed_exit_code={:?} deposed_reconcile_log_lines_after_wake={reconciles_after_wake} writes_by_deposed_after_freeze={} takeover_after_kill_s={} write_periods={order:?} mismatches=0",
        world.objects.len(),
        took_over.map(secs).unwrap_or_default(),
        secs(a_stopped),
        exit.code(),
        late.len(),
        secs(c_took_over),
    );
    assert!(
        late.is_empty(),
        "the deposed leader wrote after waking: {late:?}"
    );
    let mut seen = BTreeSet::new();
    for tag in &order {
        assert!(
            seen.insert(*tag),
            "two instances wrote in the same period: {order:?}"
        );
    }
    assert!(
        !order.contains(&"untagged"),
        "every write is traced to one instance: {order:?}"
    );
    assert!(
        order.contains(&"replica-c"),
        "the last standby wrote: {order:?}"
    );
}
