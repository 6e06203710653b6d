//! The benchmark (issue 6): convergence, steady state, footprint, latency, start-up and the
//! harness's own limits, each figure beside a baseline measured in the same run.
//!
//! The Kubernetes API emulator and the Elasticsearch double run in this process; the operator
//! runs as a child process (the binary given in [`BenchOptions::operator_bin`]), so its memory
//! is its own. The double answers every Azure validation call (create and `_update`) after
//! [`BenchOptions::es_latency`], as Elasticsearch does when it calls Azure OpenAI.
//!
//! Phases, in order (one emulator and one double unless said otherwise):
//!
//! 1. harness limits — a fresh emulator and double, no operator;
//! 2. start-up — one InferenceEndpoint (finalizer already set, as after an earlier run) exists
//!    before operator process #1 starts: time to its first Kubernetes request, first
//!    Elasticsearch request (its first reconcile) and Ready; idle RSS;
//! 3. convergence — N InferenceEndpoints applied at once; time to all Ready, requests per
//!    endpoint; RSS at N. Then the sequential baseline (N PUTs one after another, on a separate
//!    double with the same latency) and the bound N·L/C;
//! 4. latency — Secret rotations and low-load creates, one at a time, on process #1;
//! 5. unrelated Secrets — RSS before and after creating them (process #1);
//! 6. steady state — process #2 with a short `--recheck-interval`: the restart pass, then
//!    several re-check rounds; writes must be 0;
//! 7. footprint at `footprint_max` objects — process #3 (default re-check interval).

mod limits;
mod process;
mod render;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde::Serialize;

pub use limits::HarnessLimits;
pub use process::{binary_size, cpu_time, metric_sum, metric_sum_where, OperatorProcess, Rss};

use crate::env::{client_for, crds_dir};
use crate::es::{EsDouble, Route};
use crate::kube::{EmulatorOptions, KubeEmulator};
use workload::{
    es_counts, es_ids_read, is_es_write, k8s_counts, percentile_ms, status_writes, Snapshot,
    APPLY_PARALLELISM, NAMESPACE, PROBE_NAMESPACE, UNRELATED_NAMESPACE,
};

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The `inference-operator` executable.
    pub operator_bin: PathBuf,
    /// Kubeconfig and operator logs go here.
    pub work_dir: PathBuf,
    /// N: InferenceEndpoints applied at once.
    pub endpoints: usize,
    /// L: latency of every Azure validation call (create and `_update`) in the double.
    pub es_latency: Duration,
    /// C: the operator's `--concurrency` (its default is 32).
    pub concurrency: u16,
    /// Time only this many sequential PUTs and extrapolate to N (`None`: all N, for real).
    pub baseline_sample: Option<usize>,
    /// Also measure the footprint at this many objects (e.g. 5 × N).
    pub footprint_max: Option<usize>,
    /// Unrelated Secrets created in the cluster, and the size of each one's data.
    pub unrelated_secrets: usize,
    pub unrelated_secret_bytes: usize,
    /// Secret rotations timed one after another.
    pub rotations: usize,
    /// Low-load creates timed one after another.
    pub create_samples: usize,
    /// `--recheck-interval` of the steady-state process, and how many intervals to observe.
    pub recheck_interval: Duration,
    pub recheck_rounds: u32,
    /// Requests per harness-limit measurement.
    pub harness_operations: usize,
    /// Elasticsearch version the double emulates.
    pub es_version: String,
    pub quick: bool,
    /// Print progress on stderr.
    pub progress: bool,
    /// What was built (e.g. a git revision), shown in the report.
    pub revision: String,
    /// Extra environment for the operator processes (e.g. `MALLOC_ARENA_MAX=2`).
    pub operator_env: Vec<(String, String)>,
    /// The shortest wait for objects to become Ready or re-verified (it grows with N·L/C);
    /// longer for an operator run under valgrind.
    pub ready_timeout_min: Duration,
    /// Pin this process (emulator, double, client) to CPU 0 and the operator to CPU 1
    /// (`taskset`), so neither can take the other's core.
    pub pin_cpus: bool,
    /// Serve the operator's double over TLS, its CA given in `caSecretRef` (the production
    /// path); `false` (`--es-plain-http`) adds the `PlaintextCredentials` warning and its Event
    /// to every object. The baselines' doubles stay plain HTTP.
    pub es_tls: bool,
}

impl BenchOptions {
    /// The full benchmark of issue 6 (N = 1,000, L = 200 ms).
    pub fn full(operator_bin: PathBuf, work_dir: PathBuf) -> BenchOptions {
        BenchOptions {
            operator_bin,
            work_dir,
            endpoints: 1000,
            es_latency: Duration::from_millis(200),
            concurrency: 32,
            baseline_sample: None,
            footprint_max: None,
            unrelated_secrets: 10_000,
            unrelated_secret_bytes: 10 * 1024,
            rotations: 100,
            create_samples: 20,
            recheck_interval: Duration::from_secs(10),
            recheck_rounds: 3,
            harness_operations: 2000,
            // 9.4: `_update` validates with Azure too
            // (docs/reference/elasticsearch-inference-api.md#update-by-version), so both writes
            // cost L.
            es_version: "9.4.0".into(),
            quick: false,
            progress: true,
            revision: String::new(),
            operator_env: vec![],
            ready_timeout_min: Duration::from_secs(60),
            pin_cpus: false,
            es_tls: true,
        }
    }

    /// Small and fast, for CI: N = 50, L = 20 ms, no 5 × N footprint.
    pub fn quick(operator_bin: PathBuf, work_dir: PathBuf) -> BenchOptions {
        BenchOptions {
            endpoints: 50,
            es_latency: Duration::from_millis(20),
            unrelated_secrets: 500,
            rotations: 10,
            create_samples: 5,
            recheck_interval: Duration::from_secs(2),
            recheck_rounds: 2,
            harness_operations: 200,
            quick: true,
            ..BenchOptions::full(operator_bin, work_dir)
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub endpoints: usize,
    pub es_latency_ms: f64,
    pub concurrency: u16,
    pub recheck_interval_s: f64,
    pub recheck_rounds: u32,
    pub es_version: String,
    pub operator_bin: String,
    pub revision: String,
    pub operator_env: Vec<String>,
    pub quick: bool,
    pub pin_cpus: bool,
    pub es_tls: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub load_average_start: String,
    pub load_average_end: String,
}

impl Machine {
    fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            memory_mib: memory_kib / 1024,
            load_average_start: load_average(),
            load_average_end: String::new(),
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Startup {
    /// Process start → its first request to the Kubernetes API.
    pub first_kube_request_ms: Option<f64>,
    /// Process start → its first Elasticsearch request: the first reconcile of the pre-existing
    /// object reaching Elasticsearch.
    pub first_reconcile_ms: Option<f64>,
    /// Process start → the pre-existing object Ready (includes one create, L).
    pub probe_ready_ms: Option<f64>,
    /// Restart with every object already Ready: process start → each one re-read from
    /// Elasticsearch (the steady-state process).
    pub restart_all_verified_ms: Option<f64>,
    pub restart_objects: usize,
    pub binary_bytes: u64,
    pub binary_stripped: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Baseline {
    /// Endpoints in flight at once (1: sequential).
    pub in_flight: usize,
    /// Sequential PUTs (or, Terraform-like, GET + PUT pairs) actually sent and timed.
    pub measured_puts: usize,
    pub measured_ms: f64,
    /// Time for N PUTs: measured, or `measured_ms / measured_puts × N` when extrapolated.
    pub total_ms: f64,
    pub extrapolated: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Convergence {
    pub endpoints: usize,
    /// Creating the N objects (the benchmark's client, 32 requests in flight).
    pub apply_ms: f64,
    /// First create sent → every object Ready.
    pub all_ready_ms: f64,
    pub reconciles: f64,
    /// CPU time used while converging: the operator, and this process (emulator, double and
    /// the benchmark's client), against the wall time × cores available.
    pub operator_cpu_ms: f64,
    pub harness_cpu_ms: f64,
    /// From the operator's own histograms: mean reconcile (apply) duration, mean create
    /// request, and how busy the C reconcile slots were (sum of reconcile time / (C × wall)).
    pub mean_reconcile_ms: f64,
    pub mean_es_create_ms: f64,
    pub slot_utilization: f64,
    pub es_requests: BTreeMap<String, usize>,
    pub es_requests_per_endpoint: f64,
    /// The operator's Kubernetes writes (the benchmark's own creates left out).
    pub kube_writes: BTreeMap<String, usize>,
    pub kube_writes_per_endpoint: f64,
    pub kube_reads: BTreeMap<String, usize>,
    pub kube_reads_per_endpoint: f64,
    /// The Events stored for the converged objects' namespace, by reason (which Events a
    /// create costs; issue 16's budget is one).
    pub events_by_reason: BTreeMap<String, usize>,
    /// N·L/C.
    pub bound_ms: f64,
    pub ratio_to_bound: f64,
    pub baseline: Baseline,
    pub speedup_vs_sequential: f64,
    /// A Terraform-like client: 10 endpoints in flight (Terraform's default parallelism), each
    /// a GET then a PUT.
    pub terraform: Baseline,
    pub speedup_vs_terraform: f64,
}

impl Convergence {
    /// More than one Event per created object over TLS (issue 16: "2 Kubernetes writes plus one
    /// Event per created object"); over plain HTTP the `PlaintextCredentials` warning adds one.
    /// A count, not a timing.
    pub fn event_regression(&self, es_tls: bool) -> Option<String> {
        let events = self.kube_writes.get("POST events").copied().unwrap_or(0);
        let budget = if es_tls { 1 } else { 2 } * self.endpoints;
        (events > budget).then(|| {
            format!(
                "{events} Events for {} created objects (budget {budget}): {:?}",
                self.endpoints, self.events_by_reason
            )
        })
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SteadyState {
    pub objects: usize,
    pub recheck_interval_ms: f64,
    /// The restart pass (every object reconciled at least once after process start).
    pub restart_reconciles: f64,
    pub restart_es_writes: usize,
    pub restart_status_writes: usize,
    pub restart_es_requests: BTreeMap<String, usize>,
    pub restart_kube_writes: BTreeMap<String, usize>,
    pub restart_kube_reads: BTreeMap<String, usize>,
    /// The observation window after the restart pass.
    pub window_ms: f64,
    pub reconciles: f64,
    pub rechecks_per_object: f64,
    pub es_requests: BTreeMap<String, usize>,
    pub es_writes: usize,
    pub status_writes: usize,
    pub kube_writes: BTreeMap<String, usize>,
    pub kube_reads: BTreeMap<String, usize>,
    pub es_reads_per_recheck: f64,
    pub kube_reads_per_recheck: f64,
    /// Operator CPU time over the window, per re-check.
    pub operator_cpu_ms: f64,
    pub operator_cpu_us_per_recheck: f64,
    /// Re-check rounds the window spans (window / interval), and the cost of one round:
    /// requests of each kind (reads and writes) and operator CPU.
    pub rounds: f64,
    pub es_requests_per_round: f64,
    pub kube_requests_per_round: f64,
    pub operator_cpu_ms_per_round: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct AtScale {
    pub objects: usize,
    pub added: usize,
    /// Restarted process, every existing object re-verified: RSS before adding.
    pub before: Rss,
    pub after: Rss,
    pub converge_ms: f64,
    pub bound_ms: f64,
    pub operator_cpu_ms: f64,
    /// This process (emulator, double, client) while the added objects converged.
    pub harness_cpu_ms: f64,
    pub mib_per_1000: f64,
    /// Restart of process #3 over the existing objects: process start → each one re-verified.
    pub restart_verified_ms: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Footprint {
    /// One object, settled.
    pub idle: Rss,
    /// N objects converged (process #1; its peak includes convergence).
    pub at_n: Rss,
    pub objects_at_n: usize,
    /// Growth from idle to N, per 1,000 objects.
    pub mib_per_1000: f64,
    /// Average size of one converged InferenceEndpoint as JSON (what the operator's cache
    /// holds, deserialized), and of its `metadata.managedFields` alone.
    pub object_json_bytes: usize,
    pub managed_fields_json_bytes: usize,
    pub unrelated_secrets: usize,
    pub unrelated_secret_bytes: usize,
    pub unrelated_create_ms: f64,
    pub before_unrelated: Rss,
    pub with_unrelated: Rss,
    pub unrelated_delta_kib: i64,
    /// Reconciles and Elasticsearch requests the unrelated Secrets caused (should be 0).
    pub unrelated_reconciles: f64,
    pub unrelated_es_requests: usize,
    /// Operator CPU time spent while the Secrets were created and settled.
    pub unrelated_operator_cpu_ms: f64,
    /// The steady-state process (#2) at the end of its window.
    pub steady_process: Rss,
    pub at_scale: Option<AtScale>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// How often the benchmark polls (the resolution of these figures).
    pub poll_ms: f64,
    pub rotations: usize,
    pub rotations_seen: usize,
    /// Secret replaced → `_update` received by the double.
    pub rotation_p50_ms: Option<f64>,
    pub rotation_p99_ms: Option<f64>,
    pub rotation_max_ms: Option<f64>,
    /// Secret replaced → the double stores the new key (`_update` done, includes L).
    pub rotation_applied_p50_ms: Option<f64>,
    pub rotation_applied_p99_ms: Option<f64>,
    pub creates: usize,
    /// Create sent → Ready=True stored.
    pub create_ready_p50_ms: Option<f64>,
    pub create_ready_p99_ms: Option<f64>,
    pub create_ready_max_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TargetCheck {
    pub item: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub settings: Settings,
    pub machine: Machine,
    pub harness: HarnessLimits,
    pub startup: Startup,
    pub convergence: Convergence,
    pub steady_state: SteadyState,
    pub footprint: Footprint,
    pub latency: Latency,
    pub targets: Vec<TargetCheck>,
    /// The operator's requests to Kubernetes and Elasticsearch, phase by phase.
    pub phases: Vec<PhaseRequests>,
    pub total_ms: f64,
}

/// What the operator sent to Kubernetes and Elasticsearch during one phase of the run (the
/// benchmark's own requests are left out; watches are streams, not counted).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseRequests {
    pub phase: String,
    /// InferenceEndpoints in the cluster at the end of the phase.
    pub objects: usize,
    pub wall_ms: f64,
    pub es: BTreeMap<String, usize>,
    pub kube_reads: BTreeMap<String, usize>,
    pub kube_writes: BTreeMap<String, usize>,
}

impl PhaseRequests {
    pub fn es_total(&self) -> usize {
        self.es.values().sum()
    }

    pub fn kube_total(&self) -> usize {
        self.kube_reads.values().sum::<usize>() + self.kube_writes.values().sum::<usize>()
    }
}

impl BenchReport {
    /// The human-readable report.
    pub fn render(&self) -> String {
        render::render(self)
    }

    /// Whether any gross regression shows (what CI fails on): an endpoint that never became
    /// Ready is an error from [`run`] already; here: steady-state writes and lost rotations.
    pub fn gross_regressions(&self) -> Vec<String> {
        let mut found = vec![];
        let s = &self.steady_state;
        if s.es_writes + s.restart_es_writes > 0 {
            found.push(format!(
                "Elasticsearch writes in steady state: {} on restart, {} over the re-checks",
                s.restart_es_writes, s.es_writes
            ));
        }
        if s.status_writes + s.restart_status_writes > 0 {
            found.push(format!(
                "status writes in steady state: {} on restart, {} over the re-checks",
                s.restart_status_writes, s.status_writes
            ));
        }
        if s.reconciles == 0.0 {
            // Zero writes would prove nothing.
            found.push(format!(
                "no re-check ran in {:.1} s with --recheck-interval {:.1} s",
                s.window_ms / 1000.0,
                s.recheck_interval_ms / 1000.0
            ));
        }
        found.extend(s.recheck_regressions());
        found.extend(self.convergence.event_regression(self.settings.es_tls));
        if self.latency.rotations_seen < self.latency.rotations {
            found.push(format!(
                "{} of {} Secret rotations never reached Elasticsearch",
                self.latency.rotations - self.latency.rotations_seen,
                self.latency.rotations
            ));
        }
        found
    }
}

type Counts = BTreeMap<String, usize>;

fn merge(into: &mut Counts, from: Counts) {
    for (kind, count) in from {
        *into.entry(kind).or_insert(0) += count;
    }
}

impl SteadyState {
    /// A re-check round with nothing changed costs no Kubernetes request and at most one
    /// Elasticsearch request per connection (the benchmark's objects share one): a listing
    /// serves 1.1 intervals, so the window holds at most ⌈window / interval⌉ of them.
    pub fn recheck_regressions(&self) -> Vec<String> {
        let mut found = vec![];
        let reads: usize = self.kube_reads.values().sum();
        if reads > 0 {
            found.push(format!(
                "Kubernetes reads in re-check rounds: {:?} (target 0)",
                self.kube_reads
            ));
        }
        let rounds = (self.window_ms / self.recheck_interval_ms.max(1.0)).ceil() as usize;
        let es: usize = self.es_requests.values().sum();
        if es > rounds.max(1) {
            found.push(format!(
                "{es} Elasticsearch requests in {rounds} re-check rounds on one connection (target <= 1 per round): {:?}",
                self.es_requests
            ));
        }
        found
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn per(count: f64, of: usize) -> f64 {
    count / of.max(1) as f64
}

/// Above this N the sequential baseline is sampled unless `--baseline-sample` says otherwise.
pub const SEQUENTIAL_MAX: usize = 1000;

/// The CPUs of `--pin-cpus`: this process on the first, the operator on the second.
const HARNESS_CPU: &str = "0";
const OPERATOR_CPU: &str = "1";

/// Everything one run shares.
struct Bench {
    options: BenchOptions,
    kube: KubeEmulator,
    es: EsDouble,
    client: kube::Client,
    http: reqwest::Client,
    kubeconfig: PathBuf,
    processes: usize,
    /// Where the current phase starts in the request logs, when, and the phases closed so far.
    marks: Snapshot,
    phase_started: Instant,
    phases: Vec<PhaseRequests>,
    /// Requests of the current phase counted before the logs were cleared mid-phase.
    pending: PhaseRequests,
}

impl Bench {
    fn say(&self, message: &str) {
        if self.options.progress {
            eprintln!("[bench] {message}");
        }
    }

    fn spawn(&mut self, extra: &[String]) -> Result<OperatorProcess, String> {
        self.processes += 1;
        let mut args = vec![
            "--concurrency".to_owned(),
            self.options.concurrency.to_string(),
            "--backoff-initial".to_owned(),
            "200ms".to_owned(),
            "--backoff-max".to_owned(),
            "5s".to_owned(),
        ];
        args.extend_from_slice(extra);
        let log = self
            .options
            .work_dir
            .join(format!("operator-{}.log", self.processes));
        OperatorProcess::spawn_on(
            &self.options.operator_bin,
            &self.kubeconfig,
            &log,
            &args,
            &self.options.operator_env,
            self.options.pin_cpus.then_some(OPERATOR_CPU),
        )
    }

    /// Start a phase with empty request logs.
    fn clear_logs(&mut self) {
        self.kube.clear_requests();
        self.es.clear_requests();
        self.marks = Snapshot { es: 0, kube: 0 };
        self.phase_started = Instant::now();
        self.pending = PhaseRequests::default();
    }

    /// Count the current phase's requests so far, then clear the logs (the phase goes on).
    fn flush_logs(&mut self) {
        let (es, reads, writes) = self.counts_since_marks();
        merge(&mut self.pending.es, es);
        merge(&mut self.pending.kube_reads, reads);
        merge(&mut self.pending.kube_writes, writes);
        self.kube.clear_requests();
        self.es.clear_requests();
        self.marks = Snapshot { es: 0, kube: 0 };
    }

    /// Requests since the marks: Elasticsearch, Kubernetes reads, Kubernetes writes.
    fn counts_since_marks(&mut self) -> (Counts, Counts, Counts) {
        let es_log = self.es.requests();
        let kube_log = self.kube.requests();
        let es = &es_log[self.marks.es.min(es_log.len())..];
        let kube = &kube_log[self.marks.kube.min(kube_log.len())..];
        self.marks = Snapshot {
            es: es_log.len(),
            kube: kube_log.len(),
        };
        (
            es_counts(es),
            k8s_counts(kube, false),
            k8s_counts(kube, true),
        )
    }

    /// End the current phase: count what reached the emulator and the double since it began,
    /// less the benchmark's own requests (`own`: kind as [`k8s_counts`] names it, count).
    fn close_phase(&mut self, phase: &str, own: &[(&str, usize)]) -> PhaseRequests {
        let mut pending = std::mem::take(&mut self.pending);
        let (es, reads, writes) = self.counts_since_marks();
        merge(&mut pending.es, es);
        merge(&mut pending.kube_reads, reads);
        merge(&mut pending.kube_writes, writes);
        let subtract = |mut counts: Counts| {
            for (kind, count) in own {
                if let Some(seen) = counts.get_mut(*kind) {
                    *seen = seen.saturating_sub(*count);
                }
            }
            counts.retain(|_, v| *v > 0);
            counts
        };
        let closed = PhaseRequests {
            phase: phase.to_owned(),
            objects: self.object_count(),
            wall_ms: ms(self.phase_started.elapsed()),
            es: pending.es,
            kube_reads: subtract(pending.kube_reads),
            kube_writes: subtract(pending.kube_writes),
        };
        self.phase_started = Instant::now();
        self.phases.push(closed.clone());
        closed
    }

    /// Every InferenceEndpoint in the cluster.
    fn object_count(&self) -> usize {
        self.kube.list_objects("inferenceendpoints").len()
    }

    fn ready_timeout(&self, objects: usize) -> Duration {
        let bound = self
            .options
            .es_latency
            .mul_f64(objects as f64 / f64::from(self.options.concurrency.max(1)));
        self.options.ready_timeout_min.max(bound * 20)
    }

    /// Secrets and objects for `names` in the benchmark namespace.
    async fn apply(&self, names: &[String]) -> Result<(Duration, Instant), String> {
        let es_url = self.es.url();
        let objects = names
            .iter()
            .map(|n| workload::endpoint(NAMESPACE, n, &es_url, false))
            .collect();
        let started = Instant::now();
        let took = workload::create_endpoints(&self.client, objects, APPLY_PARALLELISM).await?;
        Ok((took, started))
    }

    async fn create_key_secrets(&self, names: &[String]) -> Result<(), String> {
        let secrets = names
            .iter()
            .map(|n| workload::key_secret(NAMESPACE, n, &format!("key-{n}")))
            .collect();
        workload::create_secrets(&self.client, secrets, APPLY_PARALLELISM).await?;
        Ok(())
    }
}

/// Run the whole benchmark. Errors when the environment fails or an object never becomes
/// Ready; regressions in the figures are in [`BenchReport::gross_regressions`].
/// Only section 6: the emulator's and the double's throughput with no operator running
/// (`bench --harness-only`), to profile or compare the harness without a whole run.
pub async fn harness_only(options: &BenchOptions) -> Result<HarnessLimits, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if options.pin_cpus {
        process::pin_self(HARNESS_CPU)?;
    }
    limits::measure(
        options.harness_operations,
        APPLY_PARALLELISM,
        options.es_latency,
        options.endpoints,
        usize::from(options.concurrency.max(1)),
        &options.es_version,
    )
    .await
}

pub use render::render_harness;

pub async fn run(options: BenchOptions) -> Result<BenchReport, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let run_started = Instant::now();
    if options.pin_cpus {
        process::pin_self(HARNESS_CPU)?;
    }
    std::fs::create_dir_all(&options.work_dir)
        .map_err(|e| format!("{}: {e}", options.work_dir.display()))?;
    let mut machine = Machine::read();
    let settings = Settings {
        endpoints: options.endpoints,
        es_latency_ms: ms(options.es_latency),
        concurrency: options.concurrency,
        recheck_interval_s: options.recheck_interval.as_secs_f64(),
        recheck_rounds: options.recheck_rounds,
        es_version: options.es_version.clone(),
        operator_bin: options.operator_bin.display().to_string(),
        revision: options.revision.clone(),
        operator_env: options
            .operator_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        quick: options.quick,
        pin_cpus: options.pin_cpus,
        es_tls: options.es_tls,
    };
    let n = options.endpoints;
    let latency = options.es_latency;

    // 1. The harness alone.
    if options.progress {
        eprintln!("[bench] harness limits (no operator)");
    }
    let harness = limits::measure(
        options.harness_operations,
        APPLY_PARALLELISM,
        latency,
        n,
        usize::from(options.concurrency.max(1)),
        &options.es_version,
    )
    .await?;

    // The environment the operator runs against.
    let kube = KubeEmulator::start(EmulatorOptions::default()).await;
    for entry in std::fs::read_dir(crds_dir()).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            kube.register_crd_file(&path);
        }
    }
    for namespace in [NAMESPACE, PROBE_NAMESPACE, UNRELATED_NAMESPACE] {
        kube.create_namespace(namespace);
    }
    let es = limits::start_double_with(&options.es_version, latency, options.es_tls).await;
    let kubeconfig = options.work_dir.join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig)
        .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    let client = client_for(&kube.url(), NAMESPACE);
    let mut bench = Bench {
        options,
        kube,
        es,
        client,
        http: limits::http_client(),
        kubeconfig,
        processes: 0,
        marks: Snapshot { es: 0, kube: 0 },
        phase_started: Instant::now(),
        phases: vec![],
        pending: PhaseRequests::default(),
    };

    let (binary_bytes, binary_stripped) = binary_size(&bench.options.operator_bin)?;
    let mut startup = Startup {
        binary_bytes,
        binary_stripped,
        ..Startup::default()
    };
    let mut footprint = Footprint::default();

    // 2. Start-up with one pre-existing object.
    bench.say("start-up: one pre-existing object, operator process #1");
    let mut secrets = vec![
        workload::es_credentials(NAMESPACE),
        workload::es_credentials(PROBE_NAMESPACE),
        workload::key_secret(PROBE_NAMESPACE, "probe", "key-probe"),
    ];
    if let Some(ca) = bench.es.ca_pem() {
        secrets.push(workload::es_ca(NAMESPACE, &ca));
        secrets.push(workload::es_ca(PROBE_NAMESPACE, &ca));
    }
    for secret in secrets {
        let namespace = secret.metadata.namespace.clone().unwrap_or_default();
        Api::<Secret>::namespaced(bench.client.clone(), &namespace)
            .create(&PostParams::default(), &secret)
            .await
            .map_err(|e| format!("create Secret: {e}"))?;
    }
    workload::ieps(&bench.client, PROBE_NAMESPACE)
        .create(
            &PostParams::default(),
            &workload::endpoint(PROBE_NAMESPACE, "probe", &bench.es.url(), true),
        )
        .await
        .map_err(|e| format!("create probe: {e}"))?;
    bench.clear_logs();
    let mut first = bench.spawn(&[])?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let probe = BTreeSet::from(["probe".to_owned()]);
    while startup.probe_ready_ms.is_none() {
        if startup.first_kube_request_ms.is_none() && !bench.kube.requests().is_empty() {
            startup.first_kube_request_ms = Some(ms(first.started.elapsed()));
        }
        if startup.first_reconcile_ms.is_none() && !bench.es.requests().is_empty() {
            startup.first_reconcile_ms = Some(ms(first.started.elapsed()));
        }
        if workload::ready_count(&bench.kube, PROBE_NAMESPACE, &probe) == 1 {
            startup.probe_ready_ms = Some(ms(first.started.elapsed()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the probe never became Ready; operator log:\n{}",
                first.log_tail(20)
            ));
        }
        first.check_alive()?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    footprint.idle = first.rss();
    bench.close_phase("start-up (process #1, 1 object)", &[]);

    // 3. Convergence.
    bench.say(&format!("convergence: {n} InferenceEndpoints at once"));
    let names: Vec<String> = (0..n).map(workload::endpoint_name).collect();
    bench.create_key_secrets(&names).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics_before = first.metrics(&bench.http).await?;
    let before = metric_sum(&metrics_before, "inference_operator_reconciliations");
    bench.clear_logs();
    let (operator_cpu, harness_cpu) = (first.cpu(), own_cpu());
    let (apply_took, applied_at) = bench.apply(&names).await?;
    let set: BTreeSet<String> = names.iter().cloned().collect();
    let all_ready = workload::wait_all_ready(&bench.kube, NAMESPACE, &set, bench.ready_timeout(n))
        .await
        .map_err(|e| format!("{e}; operator log:\n{}", first.log_tail(20)))?;
    let all_ready_ms = ms(all_ready.duration_since(applied_at));
    let operator_cpu_ms = ms(first.cpu().saturating_sub(operator_cpu));
    let harness_cpu_ms = ms(own_cpu().saturating_sub(harness_cpu));
    tokio::time::sleep(Duration::from_secs(1)).await; // trailing Events
    bench.close_phase(
        &format!("convergence ({n} created)"),
        &[("POST inferenceendpoints", n)],
    );
    let es_log = bench.es.requests();
    let kube_log = bench.kube.requests();
    let mut kube_writes = k8s_counts(&kube_log, true);
    // The benchmark's own creates are not the operator's writes.
    if let Some(own) = kube_writes.get_mut("POST inferenceendpoints") {
        *own = own.saturating_sub(n);
    }
    kube_writes.retain(|_, v| *v > 0);
    let kube_reads = k8s_counts(&kube_log, false);
    let bound_ms = ms(latency) * n as f64 / f64::from(bench.options.concurrency.max(1));
    let metrics_after = first.metrics(&bench.http).await?;
    let delta = |name: &str, label: &str| {
        metric_sum_where(&metrics_after, name, label)
            - metric_sum_where(&metrics_before, name, label)
    };
    let reconcile_s = delta("inference_operator_reconcile_duration_seconds_sum", "");
    let reconcile_count = delta("inference_operator_reconcile_duration_seconds_count", "");
    let create_s = delta(
        "inference_operator_elasticsearch_request_duration_seconds_sum",
        "operation=\"create\"",
    );
    let create_count = delta(
        "inference_operator_elasticsearch_request_duration_seconds_count",
        "operation=\"create\"",
    );
    let mut convergence = Convergence {
        endpoints: n,
        apply_ms: ms(apply_took),
        all_ready_ms,
        reconciles: first.reconciles(&bench.http).await? - before,
        operator_cpu_ms,
        harness_cpu_ms,
        mean_reconcile_ms: 1000.0 * reconcile_s / reconcile_count.max(1.0),
        mean_es_create_ms: 1000.0 * create_s / create_count.max(1.0),
        slot_utilization: 1000.0 * reconcile_s
            / (f64::from(bench.options.concurrency.max(1)) * all_ready_ms.max(1e-9)),
        es_requests_per_endpoint: per(es_log.len() as f64, n),
        es_requests: es_counts(&es_log),
        kube_writes_per_endpoint: per(kube_writes.values().sum::<usize>() as f64, n),
        kube_writes,
        kube_reads_per_endpoint: per(kube_reads.values().sum::<usize>() as f64, n),
        kube_reads,
        bound_ms,
        ratio_to_bound: all_ready_ms / bound_ms.max(1e-9),
        events_by_reason: events_by_reason(&bench.kube, NAMESPACE),
        ..Convergence::default()
    };
    footprint.at_n = first.rss();
    footprint.objects_at_n = bench.object_count();
    let stored = bench.kube.list_objects("inferenceendpoints");
    let size = |v: &serde_json::Value| serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0);
    footprint.object_json_bytes = stored.iter().map(size).sum::<usize>() / stored.len().max(1);
    footprint.managed_fields_json_bytes = stored
        .iter()
        .map(|o| size(&o["metadata"]["managedFields"]))
        .sum::<usize>()
        / stored.len().max(1);
    footprint.mib_per_1000 =
        (footprint.at_n.current_mib() - footprint.idle.current_mib()) / (n.max(1) as f64 / 1000.0);

    // The baselines, each on its own double with the same latency.
    let (sequential, terraform) = measure_baselines(&bench, n).await?;
    convergence.speedup_vs_sequential = sequential.total_ms / all_ready_ms.max(1e-9);
    convergence.speedup_vs_terraform = terraform.total_ms / all_ready_ms.max(1e-9);
    convergence.baseline = sequential;
    convergence.terraform = terraform;

    // 4. Latency, one at a time, N objects present and otherwise idle.
    let latency_report = measure_latency(&mut bench, &mut first, &names).await?;
    let (rotations, samples) = (bench.options.rotations, bench.options.create_samples);
    bench.close_phase(
        &format!("latency ({rotations} rotations, {samples} creates)"),
        &[
            ("GET secrets", rotations),
            ("PUT secrets", rotations),
            ("POST secrets", samples),
            ("POST inferenceendpoints", samples),
        ],
    );

    // 5. Unrelated Secrets.
    let unrelated = bench.options.unrelated_secrets;
    bench.say(&format!(
        "footprint: {unrelated} unrelated Secrets of {} bytes",
        bench.options.unrelated_secret_bytes
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    footprint.before_unrelated = first.rss();
    let before = first.reconciles(&bench.http).await?;
    let cpu_before = first.cpu();
    let es_mark = bench.es.requests().len();
    let size = bench.options.unrelated_secret_bytes;
    let secrets = (0..unrelated)
        .map(|i| {
            let blob = workload::filler(size, i as u64);
            workload::secret(
                UNRELATED_NAMESPACE,
                &format!("unrelated-{i:05}"),
                &[("blob", &blob)],
            )
        })
        .collect();
    let took = workload::create_secrets(&bench.client, secrets, 16).await?;
    tokio::time::sleep(Duration::from_secs(if bench.options.quick { 1 } else { 3 })).await;
    footprint.unrelated_secrets = unrelated;
    footprint.unrelated_secret_bytes = size;
    footprint.unrelated_create_ms = ms(took);
    footprint.with_unrelated = first.rss();
    footprint.unrelated_delta_kib =
        footprint.with_unrelated.current_kib as i64 - footprint.before_unrelated.current_kib as i64;
    footprint.unrelated_reconciles = first.reconciles(&bench.http).await? - before;
    footprint.unrelated_operator_cpu_ms = ms(first.cpu().saturating_sub(cpu_before));
    footprint.unrelated_es_requests = bench.es.requests().len().saturating_sub(es_mark);
    bench.close_phase(
        &format!("{unrelated} unrelated Secrets"),
        &[("POST secrets", unrelated)],
    );
    first.check_alive()?;
    first.stop().await;

    // 6. Steady state: a restart with a short re-check interval.
    let steady = measure_steady_state(&mut bench, &mut startup, &mut footprint).await?;

    // 7. Footprint at scale.
    if let Some(max) = bench.options.footprint_max.filter(|m| *m > n) {
        footprint.at_scale = Some(measure_at_scale(&mut bench, max).await?);
    }

    machine.load_average_end = load_average();
    let mut report = BenchReport {
        settings,
        machine,
        harness,
        startup,
        convergence,
        steady_state: steady,
        footprint,
        latency: latency_report,
        targets: vec![],
        phases: std::mem::take(&mut bench.phases),
        total_ms: ms(run_started.elapsed()),
    };
    report.targets = render::targets(&report);
    Ok(report)
}

async fn measure_latency(
    bench: &mut Bench,
    operator: &mut OperatorProcess,
    names: &[String],
) -> Result<Latency, String> {
    const POLL: Duration = Duration::from_millis(1);
    let rotations = bench.options.rotations;
    bench.say(&format!("latency: {rotations} Secret rotations"));
    let secrets: Api<Secret> = Api::namespaced(bench.client.clone(), NAMESPACE);
    let mut seen = vec![];
    let mut applied = vec![];
    for r in 0..rotations {
        let name = &names[r % names.len()];
        let secret_name = workload::key_secret_name(name);
        let mut secret = secrets
            .get(&secret_name)
            .await
            .map_err(|e| format!("get {secret_name}: {e}"))?;
        let key = format!("rotated-{r}-{name}");
        let mut data = std::collections::BTreeMap::new();
        data.insert(
            "apiKey".to_owned(),
            k8s_openapi::ByteString(key.as_bytes().to_vec()),
        );
        secret.data = Some(data);
        // Counted for the phase, then cleared: the poll below copies the log every 1 ms.
        bench.flush_logs();
        let started = Instant::now();
        secrets
            .replace(&secret_name, &PostParams::default(), &secret)
            .await
            .map_err(|e| format!("replace {secret_name}: {e}"))?;
        let deadline = started + Duration::from_secs(10);
        let update_path = format!("/{name}/_update");
        let mut got_update = false;
        while Instant::now() < deadline {
            if !got_update
                && bench
                    .es
                    .requests()
                    .iter()
                    .any(|q| q.route == Route::Update && q.path.ends_with(&update_path))
            {
                got_update = true;
                seen.push(started.elapsed());
            }
            if got_update
                && bench
                    .es
                    .stored_secret(name)
                    .is_some_and(|(_, value)| value == key)
            {
                applied.push(started.elapsed());
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        // Let the status write after the update land before the next rotation.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    operator.check_alive()?;

    let samples = bench.options.create_samples;
    bench.say(&format!("latency: {samples} creates at low load"));
    let lat_names: Vec<String> = (0..samples).map(|i| format!("lat-{i:03}")).collect();
    bench.create_key_secrets(&lat_names).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let api = workload::ieps(&bench.client, NAMESPACE);
    let mut creates = vec![];
    for name in &lat_names {
        let object = workload::endpoint(NAMESPACE, name, &bench.es.url(), false);
        let started = Instant::now();
        api.create(&PostParams::default(), &object)
            .await
            .map_err(|e| format!("create {name}: {e}"))?;
        let deadline = started + Duration::from_secs(10);
        loop {
            let ready = bench
                .kube
                .get_object("inferenceendpoints", NAMESPACE, name)
                .is_some_and(|o| workload::is_ready(&o));
            if ready {
                creates.push(started.elapsed());
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{name} not Ready within 10 s"));
            }
            tokio::time::sleep(POLL).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let max = |s: &[Duration]| s.iter().max().map(|d| ms(*d));
    Ok(Latency {
        poll_ms: ms(POLL),
        rotations,
        rotations_seen: seen.len(),
        rotation_p50_ms: percentile_ms(&seen, 0.5),
        rotation_p99_ms: percentile_ms(&seen, 0.99),
        rotation_max_ms: max(&seen),
        rotation_applied_p50_ms: percentile_ms(&applied, 0.5),
        rotation_applied_p99_ms: percentile_ms(&applied, 0.99),
        creates: creates.len(),
        create_ready_p50_ms: percentile_ms(&creates, 0.5),
        create_ready_p99_ms: percentile_ms(&creates, 0.99),
        create_ready_max_ms: max(&creates),
    })
}

/// Wait until a restarted operator has verified every object: each one read from
/// Elasticsearch by id since the log was cleared, or (an operator that reads a cluster's
/// endpoints in one batched `GET _inference/_all`) as many reconciles as objects, by its own
/// counter. Polls adaptively (≤ ~10 % of the time: copying a 10,000-entry log is not free).
async fn wait_all_verified(
    bench: &Bench,
    operator: &mut OperatorProcess,
    objects: usize,
) -> Result<Instant, String> {
    let deadline = Instant::now() + bench.ready_timeout(objects);
    loop {
        let polled = Instant::now();
        // Read, and reconciled: a listing reads every id before the reconciles that use it.
        let read = es_ids_read(&bench.es.requests());
        // Before its /metrics address is logged, the process has reconciled nothing.
        let reconciled = operator.reconciles(&bench.http).await.unwrap_or(0.0);
        if read >= objects && reconciled >= objects as f64 {
            return Ok(polled);
        }
        operator.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!(
                "after a restart only {read} of {objects} objects were re-read ({reconciled} reconciles)"
            ));
        }
        let spent = polled.elapsed();
        tokio::time::sleep((spent * 10).max(Duration::from_millis(20))).await;
    }
}

/// The sequential client (N PUTs one after another) and the Terraform-like client (10 in
/// flight, GET then PUT each), each on its own double with latency L. `--baseline-sample K`
/// times K sequential PUTs and 10 × K Terraform-like endpoints and extrapolates; without it,
/// N above [`SEQUENTIAL_MAX`] is sampled too (N = 10,000 sequentially would take N·L = 33 min).
async fn measure_baselines(bench: &Bench, n: usize) -> Result<(Baseline, Baseline), String> {
    let latency = bench.options.es_latency;
    let sample = bench
        .options
        .baseline_sample
        .unwrap_or(SEQUENTIAL_MAX)
        .clamp(1, n.max(1));
    let extrapolated = |in_flight: usize, measured: usize, took: Duration| Baseline {
        in_flight,
        measured_puts: measured,
        measured_ms: ms(took),
        total_ms: ms(took) / measured as f64 * n as f64,
        extrapolated: measured < n,
    };
    bench.say(&format!(
        "sequential baseline: {sample} PUTs one after another{}",
        if sample < n {
            format!(" (extrapolated to {n})")
        } else {
            String::new()
        }
    ));
    let double = limits::start_double(&bench.options.es_version, latency).await;
    let started = Instant::now();
    for i in 0..sample {
        limits::put_endpoint(&bench.http, &double.url(), &format!("seq-{i}")).await?;
    }
    let sequential = extrapolated(1, sample, started.elapsed());
    drop(double);
    let parallelism = limits::TERRAFORM_PARALLELISM;
    let count = (sample * parallelism).min(n.max(1));
    bench.say(&format!(
        "Terraform-like baseline: {count} endpoints, {parallelism} in flight, GET then PUT each"
    ));
    let double = limits::start_double(&bench.options.es_version, latency).await;
    let took = limits::terraform_like(&bench.http, &double.url(), count, parallelism).await?;
    drop(double);
    Ok((sequential, extrapolated(parallelism, count, took)))
}

async fn measure_steady_state(
    bench: &mut Bench,
    startup: &mut Startup,
    footprint: &mut Footprint,
) -> Result<SteadyState, String> {
    let interval = bench.options.recheck_interval;
    let rounds = bench.options.recheck_rounds;
    let objects = bench.object_count();
    bench.say(&format!(
        "steady state: restart with --recheck-interval {interval:?}, {objects} objects, {rounds} rounds"
    ));
    bench.clear_logs();
    let recheck = humantime_ms(interval);
    let mut operator = bench.spawn(&["--recheck-interval".to_owned(), recheck])?;
    let verified = wait_all_verified(bench, &mut operator, objects).await?;
    startup.restart_all_verified_ms = Some(ms(verified.duration_since(operator.started)));
    startup.restart_objects = objects;
    // Let the pass's last reconciles finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let es_log = bench.es.requests();
    let restart = bench.close_phase(
        &format!("restart pass (process #2, {objects} objects)"),
        &[],
    );
    let mark = Snapshot::take(&bench.es, &bench.kube);
    let before = operator.reconciles(&bench.http).await?;
    let cpu_before = operator.cpu();
    let window_started = Instant::now();
    tokio::time::sleep(interval * rounds).await;
    let reconciles = operator.reconciles(&bench.http).await? - before;
    let operator_cpu_ms = ms(operator.cpu().saturating_sub(cpu_before));
    let window = window_started.elapsed();
    let end = Snapshot::take(&bench.es, &bench.kube);
    let es_window = &bench.es.requests()[mark.es..end.es];
    let kube_window = &bench.kube.requests()[mark.kube..end.kube];
    let kube_writes = k8s_counts(kube_window, true);
    let kube_reads = k8s_counts(kube_window, false);
    let es_reads = es_window.iter().filter(|r| !is_es_write(r)).count();
    let es_total = es_window.len();
    let kube_total = kube_window.iter().filter(|r| !r.watch).count();
    let round_count = (ms(window) / ms(interval).max(1e-9)).max(1e-9);
    bench.close_phase(
        &format!("re-check rounds ({:.1} x {interval:?})", round_count),
        &[],
    );
    footprint.steady_process = operator.rss();
    operator.check_alive()?;
    operator.stop().await;
    Ok(SteadyState {
        objects,
        recheck_interval_ms: ms(interval),
        restart_reconciles: before,
        restart_es_writes: es_log.iter().filter(|r| is_es_write(r)).count(),
        restart_status_writes: status_writes(&restart.kube_writes),
        restart_es_requests: restart.es,
        restart_kube_writes: restart.kube_writes,
        restart_kube_reads: restart.kube_reads,
        window_ms: ms(window),
        reconciles,
        rechecks_per_object: per(reconciles, objects),
        es_requests: es_counts(es_window),
        es_writes: es_window.iter().filter(|r| is_es_write(r)).count(),
        status_writes: status_writes(&kube_writes),
        kube_writes,
        es_reads_per_recheck: es_reads as f64 / reconciles.max(1.0),
        kube_reads_per_recheck: kube_reads.values().sum::<usize>() as f64 / reconciles.max(1.0),
        kube_reads,
        operator_cpu_ms,
        operator_cpu_us_per_recheck: operator_cpu_ms * 1000.0 / reconciles.max(1.0),
        rounds: round_count,
        es_requests_per_round: es_total as f64 / round_count,
        kube_requests_per_round: kube_total as f64 / round_count,
        operator_cpu_ms_per_round: operator_cpu_ms / round_count,
    })
}

async fn measure_at_scale(bench: &mut Bench, max: usize) -> Result<AtScale, String> {
    let objects = bench.object_count();
    bench.say(&format!(
        "footprint at scale: restart (process #3), then grow from {objects} to {max} objects"
    ));
    bench.clear_logs();
    let mut operator = bench.spawn(&[])?;
    let verified = wait_all_verified(bench, &mut operator, objects).await?;
    let restart_verified_ms = ms(verified.duration_since(operator.started));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = operator.rss();
    bench.close_phase(&format!("restart (process #3, {objects} objects)"), &[]);
    let added = max.saturating_sub(objects);
    let names: Vec<String> = (0..added)
        .map(|i| workload::endpoint_name(bench.options.endpoints + i))
        .collect();
    bench.create_key_secrets(&names).await?;
    let (cpu_before, harness_before) = (operator.cpu(), own_cpu());
    let (_, applied_at) = bench.apply(&names).await?;
    let set: BTreeSet<String> = names.iter().cloned().collect();
    let all_ready =
        workload::wait_all_ready(&bench.kube, NAMESPACE, &set, bench.ready_timeout(added))
            .await
            .map_err(|e| format!("{e}; operator log:\n{}", operator.log_tail(20)))?;
    let operator_cpu_ms = ms(operator.cpu().saturating_sub(cpu_before));
    let harness_cpu_ms = ms(own_cpu().saturating_sub(harness_before));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = operator.rss();
    bench.close_phase(
        &format!("grow to {max} ({added} created)"),
        &[("POST secrets", added), ("POST inferenceendpoints", added)],
    );
    operator.check_alive()?;
    operator.stop().await;
    let total = bench.object_count();
    Ok(AtScale {
        objects: total,
        added,
        before,
        after,
        converge_ms: ms(all_ready.duration_since(applied_at)),
        bound_ms: ms(bench.options.es_latency) * added as f64
            / f64::from(bench.options.concurrency.max(1)),
        operator_cpu_ms,
        harness_cpu_ms,
        restart_verified_ms,
        mib_per_1000: (after.current_mib() - before.current_mib()) / (added.max(1) as f64 / 1000.0),
    })
}

/// CPU time of this process (the emulator, the double and the benchmark's client).
/// Stored Events in `namespace` by reason (`events.k8s.io/v1`; core/v1 is a view of it).
fn events_by_reason(kube: &KubeEmulator, namespace: &str) -> BTreeMap<String, usize> {
    let mut by_reason = BTreeMap::new();
    for event in kube.list_objects("events") {
        if event["metadata"]["namespace"] == namespace {
            let reason = event["reason"].as_str().unwrap_or("(none)").to_owned();
            *by_reason.entry(reason).or_default() += 1;
        }
    }
    by_reason
}

fn own_cpu() -> Duration {
    cpu_time(std::process::id()).unwrap_or_default()
}

/// A duration as the operator's `humantime` flags accept it.
fn humantime_ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converged(endpoints: usize, events: usize) -> Convergence {
        Convergence {
            endpoints,
            kube_writes: BTreeMap::from([("POST events".to_owned(), events)]),
            ..Convergence::default()
        }
    }

    #[test]
    fn one_event_per_create_over_tls_two_over_plain_http() {
        assert_eq!(converged(50, 50).event_regression(true), None);
        assert!(converged(50, 100).event_regression(true).is_some());
        assert_eq!(converged(50, 100).event_regression(false), None);
        assert!(converged(50, 101).event_regression(false).is_some());
    }
}
