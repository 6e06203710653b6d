//! The human-readable report and the issue's targets.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{BenchReport, Rss, TargetCheck};

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1} ms"))
        .unwrap_or_else(|| "n/a".into())
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// VmRSS (what the targets check), its peak, and what it is made of.
fn rss(r: &Rss) -> String {
    format!(
        "{} (peak {}; anon {}, file {}, shmem {})",
        mib(r.current_kib),
        mib(r.peak_kib),
        mib(r.anon_kib),
        mib(r.file_kib),
        mib(r.shmem_kib)
    )
}

fn counts(map: &BTreeMap<String, usize>, per: usize) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| {
            if per > 0 {
                format!("{k} {v} ({:.2}/object)", *v as f64 / per as f64)
            } else {
                format!("{k} {v}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Issue 16's memory targets: idle, and per object on top of it.
const IDLE_MIB: f64 = 10.0;
const PER_OBJECT_KIB: f64 = 6.0;

/// RSS allowed at `objects`: idle plus 6 KiB each (15.9 MiB at 1,000, 68.6 MiB at 10,000; the
/// issue rounds them to 16 and 70).
fn rss_target_mib(objects: usize) -> f64 {
    IDLE_MIB + PER_OBJECT_KIB * objects as f64 / 1024.0
}

/// The issue's targets, checked against a report.
pub fn targets(r: &BenchReport) -> Vec<TargetCheck> {
    let c = &r.convergence;
    let s = &r.steady_state;
    let f = &r.footprint;
    let l = &r.latency;
    let latency_ms = r.settings.es_latency_ms;
    let mut checks = vec![
        TargetCheck {
            item: "convergence vs sequential client".into(),
            target: ">= 20x faster (N = 1,000, L = 200 ms)".into(),
            measured: format!(
                "{:.1}x ({:.2} s vs {:.2} s{})",
                c.speedup_vs_sequential,
                c.all_ready_ms / 1000.0,
                c.baseline.total_ms / 1000.0,
                if c.baseline.extrapolated {
                    ", extrapolated"
                } else {
                    ""
                }
            ),
            met: c.speedup_vs_sequential >= 20.0,
        },
        TargetCheck {
            item: "convergence vs N*L/C".into(),
            target: "<= 1.2x".into(),
            measured: format!(
                "{:.2}x ({:.2} s vs {:.2} s)",
                c.ratio_to_bound,
                c.all_ready_ms / 1000.0,
                c.bound_ms / 1000.0
            ),
            met: c.ratio_to_bound <= 1.2,
        },
        TargetCheck {
            item: "steady state: Elasticsearch writes".into(),
            target: "0".into(),
            measured: format!(
                "{} on restart + {} over {:.1} re-checks/object",
                s.restart_es_writes, s.es_writes, s.rechecks_per_object
            ),
            met: s.restart_es_writes + s.es_writes == 0,
        },
        TargetCheck {
            item: "steady state: status writes".into(),
            target: "0".into(),
            measured: format!(
                "{} on restart + {} over the re-checks",
                s.restart_status_writes, s.status_writes
            ),
            met: s.restart_status_writes + s.status_writes == 0,
        },
        TargetCheck {
            item: "RSS idle (1 object)".into(),
            target: format!("<= {IDLE_MIB} MiB (issue 16)"),
            measured: format!("{:.1} MiB", f.idle.current_mib()),
            met: f.idle.current_mib() <= IDLE_MIB,
        },
        TargetCheck {
            item: "RSS per object (idle -> N)".into(),
            target: format!("<= {PER_OBJECT_KIB} KiB (issue 16)"),
            measured: format!("{:.1} KiB", f.mib_per_1000 * 1024.0 / 1000.0),
            met: f.mib_per_1000 * 1024.0 / 1000.0 <= PER_OBJECT_KIB,
        },
        TargetCheck {
            item: format!("RSS at {} objects", f.objects_at_n),
            target: format!(
                "<= {:.1} MiB ({IDLE_MIB} MiB + {PER_OBJECT_KIB} KiB each)",
                rss_target_mib(f.objects_at_n)
            ),
            measured: format!(
                "{:.1} MiB current, {:.1} MiB peak",
                f.at_n.current_mib(),
                f.at_n.peak_mib()
            ),
            met: f.at_n.current_mib() <= rss_target_mib(f.objects_at_n),
        },
        TargetCheck {
            item: format!("RSS with {} unrelated Secrets", f.unrelated_secrets),
            target: "<= +5 MB with 10,000".into(),
            measured: format!("{:+.1} MiB", f.unrelated_delta_kib as f64 / 1024.0),
            met: (f.unrelated_delta_kib as f64) <= 5.0 * 1000.0 * 1000.0 / 1024.0,
        },
        TargetCheck {
            item: "Secret rotation -> _update, p99".into(),
            target: "<= 300 ms".into(),
            measured: format!(
                "p99 {} (p50 {}, {} of {} seen)",
                opt(l.rotation_p99_ms),
                opt(l.rotation_p50_ms),
                l.rotations_seen,
                l.rotations
            ),
            met: l.rotations_seen == l.rotations && l.rotation_p99_ms.is_some_and(|v| v <= 300.0),
        },
        TargetCheck {
            item: "create -> Ready at low load, p99".into(),
            target: format!("<= L + 50 ms = {:.0} ms", latency_ms + 50.0),
            measured: format!(
                "p99 {} (p50 {})",
                opt(l.create_ready_p99_ms),
                opt(l.create_ready_p50_ms)
            ),
            met: l
                .create_ready_p99_ms
                .is_some_and(|v| v <= latency_ms + 50.0),
        },
        TargetCheck {
            item: "release binary".into(),
            target: "<= 15 MB stripped".into(),
            measured: format!(
                "{:.2} MB ({})",
                r.startup.binary_bytes as f64 / 1e6,
                if r.startup.binary_stripped {
                    "stripped"
                } else {
                    "NOT stripped"
                }
            ),
            met: r.startup.binary_bytes <= 15_000_000,
        },
    ];
    if r.settings.quick {
        for check in &mut checks {
            check.target.push_str(" [quick run: indicative only]");
        }
    }
    checks
}

/// Cores the harness may use: one when pinned (`--pin-cpus`), else the machine's.
fn harness_cores(r: &BenchReport) -> f64 {
    if r.settings.pin_cpus {
        1.0
    } else {
        r.machine.nproc as f64
    }
}

fn harness_cores_label(r: &BenchReport) -> String {
    if r.settings.pin_cpus {
        "its 1 pinned core".into()
    } else {
        format!("{} cores", r.machine.nproc)
    }
}

pub fn render(r: &BenchReport) -> String {
    let mut o = String::new();
    let st = &r.settings;
    let m = &r.machine;
    let c = &r.convergence;
    let s = &r.steady_state;
    let f = &r.footprint;
    let l = &r.latency;
    let u = &r.startup;
    let _ = writeln!(
        o,
        "inference-operator benchmark{}",
        if st.quick { " (quick)" } else { "" }
    );
    let _ = writeln!(
        o,
        "  N = {} endpoints, L = {:.0} ms (Azure validation on create and _update), C = {} (--concurrency), Elasticsearch {}",
        st.endpoints, st.es_latency_ms, st.concurrency, st.es_version
    );
    if !st.operator_env.is_empty() {
        let _ = writeln!(o, "  operator environment: {}", st.operator_env.join(" "));
    }
    let _ = writeln!(
        o,
        "  operator: {}{}",
        st.operator_bin,
        if st.revision.is_empty() {
            String::new()
        } else {
            format!(" ({})", st.revision)
        }
    );
    let _ = writeln!(
        o,
        "  machine: {} x {}, {} MiB RAM; load average {} at start, {} at end; run took {:.0} s",
        m.nproc,
        m.cpu_model,
        m.memory_mib,
        m.load_average_start,
        m.load_average_end,
        r.total_ms / 1000.0
    );

    let _ = writeln!(
        o,
        "\n1. Convergence ({} objects applied at once)",
        c.endpoints
    );
    let _ = writeln!(
        o,
        "  all Ready after        {:.2} s (the benchmark's client took {:.2} s to create them, {} in flight)",
        c.all_ready_ms / 1000.0,
        c.apply_ms / 1000.0,
        super::APPLY_PARALLELISM
    );
    let _ = writeln!(
        o,
        "  sequential client      {:.2} s for {} PUTs one after another{}",
        c.baseline.total_ms / 1000.0,
        c.endpoints,
        if c.baseline.extrapolated {
            format!(
                " (EXTRAPOLATED from {} PUTs timed in {:.2} s)",
                c.baseline.measured_puts,
                c.baseline.measured_ms / 1000.0
            )
        } else {
            " (measured)".into()
        }
    );
    let t = &c.terraform;
    let _ = writeln!(
        o,
        "  Terraform-like client  {:.2} s for {} endpoints, {} in flight, GET then PUT each{}",
        t.total_ms / 1000.0,
        c.endpoints,
        t.in_flight,
        if t.extrapolated {
            format!(
                " (EXTRAPOLATED from {} timed in {:.2} s)",
                t.measured_puts,
                t.measured_ms / 1000.0
            )
        } else {
            " (measured)".into()
        }
    );
    let _ = writeln!(o, "  bound N*L/C            {:.2} s", c.bound_ms / 1000.0);
    let _ = writeln!(
        o,
        "  ratios                 {:.1}x faster than sequential; {:.1}x faster than Terraform-like; {:.2}x the bound",
        c.speedup_vs_sequential, c.speedup_vs_terraform, c.ratio_to_bound
    );
    let _ = writeln!(
        o,
        "  reconciles             {:.0} ({:.2}/object)",
        c.reconciles,
        c.reconciles / c.endpoints.max(1) as f64
    );
    let _ = writeln!(
        o,
        "  reconcile slots        mean reconcile {:.1} ms (create request {:.1} ms); the {} slots were busy {:.0}% of the time",
        c.mean_reconcile_ms,
        c.mean_es_create_ms,
        st.concurrency,
        100.0 * c.slot_utilization
    );
    let cores = m.nproc as f64 * c.all_ready_ms;
    let harness_cores_ms = harness_cores(r) * c.all_ready_ms;
    let _ = writeln!(
        o,
        "  CPU while converging   operator {:.2} s ({:.0}% of {} cores), harness (emulator + double + client) {:.2} s ({:.0}% of {})",
        c.operator_cpu_ms / 1000.0,
        100.0 * c.operator_cpu_ms / cores.max(1e-9),
        m.nproc,
        c.harness_cpu_ms / 1000.0,
        100.0 * c.harness_cpu_ms / harness_cores_ms.max(1e-9),
        harness_cores_label(r)
    );
    let _ = writeln!(
        o,
        "  Elasticsearch          {:.2} requests/object: {}",
        c.es_requests_per_endpoint,
        counts(&c.es_requests, c.endpoints)
    );
    let _ = writeln!(
        o,
        "  Kubernetes writes      {:.2}/object: {}",
        c.kube_writes_per_endpoint,
        counts(&c.kube_writes, c.endpoints)
    );
    let _ = writeln!(
        o,
        "  Kubernetes reads       {:.2}/object: {}",
        c.kube_reads_per_endpoint,
        counts(&c.kube_reads, c.endpoints)
    );
    let _ = writeln!(
        o,
        "  Events by reason       {} ({})",
        counts(&c.events_by_reason, c.endpoints),
        if st.es_tls {
            "double over TLS, CA in caSecretRef"
        } else {
            "double over plain HTTP"
        }
    );

    let _ = writeln!(
        o,
        "\n2. Steady state (restart with --recheck-interval {:.1} s, {} objects)",
        s.recheck_interval_ms / 1000.0,
        s.objects
    );
    let _ = writeln!(
        o,
        "  restart pass           {:.0} reconciles ({:.2}/object); Elasticsearch writes {}, status writes {}; Elasticsearch {}; Kubernetes writes {}",
        s.restart_reconciles,
        s.restart_reconciles / s.objects.max(1) as f64,
        s.restart_es_writes,
        s.restart_status_writes,
        counts(&s.restart_es_requests, 0),
        counts(&s.restart_kube_writes, 0)
    );
    let _ = writeln!(
        o,
        "  restart pass reads     Kubernetes {}",
        counts(&s.restart_kube_reads, 0)
    );
    let _ = writeln!(
        o,
        "  re-checks              {:.0} reconciles in {:.1} s ({:.2} per object)",
        s.reconciles,
        s.window_ms / 1000.0,
        s.rechecks_per_object
    );
    let _ = writeln!(
        o,
        "  writes                 Elasticsearch {} (target 0), status {} (target 0), all Kubernetes writes: {}",
        s.es_writes,
        s.status_writes,
        counts(&s.kube_writes, 0)
    );
    let _ = writeln!(
        o,
        "  operator CPU           {:.2} s over the window, {:.0} us per re-check",
        s.operator_cpu_ms / 1000.0,
        s.operator_cpu_us_per_recheck
    );
    let _ = writeln!(
        o,
        "  reads per re-check     Elasticsearch {:.2} ({}), Kubernetes {:.2} ({})",
        s.es_reads_per_recheck,
        counts(&s.es_requests, 0),
        s.kube_reads_per_recheck,
        counts(&s.kube_reads, 0)
    );
    let _ = writeln!(
        o,
        "  per re-check round     Elasticsearch {:.1} requests, Kubernetes {:.1} requests, operator CPU {:.1} ms ({:.1} rounds of {} objects observed)",
        s.es_requests_per_round,
        s.kube_requests_per_round,
        s.operator_cpu_ms_per_round,
        s.rounds,
        s.objects
    );

    let _ = writeln!(
        o,
        "\n3. Footprint (operator RSS from /proc/PID/status: VmRSS, peak VmHWM; VmRSS = RssAnon + RssFile + RssShmem)"
    );
    let _ = writeln!(o, "  idle (1 object)        {}", rss(&f.idle));
    let _ = writeln!(
        o,
        "  at {:<5} objects       {}; {:.2} MiB per 1,000 objects over idle",
        f.objects_at_n,
        rss(&f.at_n),
        f.mib_per_1000
    );
    let _ = writeln!(
        o,
        "  one stored object      {} bytes of JSON, of which metadata.managedFields {} bytes",
        f.object_json_bytes, f.managed_fields_json_bytes
    );
    let _ = writeln!(
        o,
        "  + {} unrelated Secrets of {} KiB (created in {:.1} s): {} -> {} = {:+.1} MiB; they caused {:.0} reconciles, {} Elasticsearch requests, {:.2} s operator CPU",
        f.unrelated_secrets,
        f.unrelated_secret_bytes / 1024,
        f.unrelated_create_ms / 1000.0,
        rss(&f.before_unrelated),
        rss(&f.with_unrelated),
        f.unrelated_delta_kib as f64 / 1024.0,
        f.unrelated_reconciles,
        f.unrelated_es_requests,
        f.unrelated_operator_cpu_ms / 1000.0
    );
    let _ = writeln!(
        o,
        "  restarted (steady-state process, {} objects + Secrets) {}",
        s.objects,
        rss(&f.steady_process)
    );
    match &f.at_scale {
        Some(a) => {
            let _ = writeln!(
                o,
                "  at {:<5} objects       {} (restarted at {} objects: {}, all re-verified {:.2} s after start); {:.2} MiB per 1,000 added objects; the {} added converged in {:.2} s (bound {:.2} s, operator CPU {:.2} s, harness CPU {:.2} s = {:.0}% of {})",
                a.objects,
                rss(&a.after),
                a.objects - a.added,
                rss(&a.before),
                a.restart_verified_ms / 1000.0,
                a.mib_per_1000,
                a.added,
                a.converge_ms / 1000.0,
                a.bound_ms / 1000.0,
                a.operator_cpu_ms / 1000.0,
                a.harness_cpu_ms / 1000.0,
                100.0 * a.harness_cpu_ms / (harness_cores(r) * a.converge_ms).max(1e-9),
                harness_cores_label(r)
            );
        }
        None => {
            let _ = writeln!(o, "  at 5 x N               not measured (--footprint-max)");
        }
    }

    let _ = writeln!(o, "\n4. Latency (polled every {:.0} ms)", l.poll_ms);
    let _ = writeln!(
        o,
        "  Secret rotation -> _update received: p50 {}, p99 {}, max {} ({} of {} seen)",
        opt(l.rotation_p50_ms),
        opt(l.rotation_p99_ms),
        opt(l.rotation_max_ms),
        l.rotations_seen,
        l.rotations
    );
    let _ = writeln!(
        o,
        "  Secret rotation -> new key stored (incl. L): p50 {}, p99 {}",
        opt(l.rotation_applied_p50_ms),
        opt(l.rotation_applied_p99_ms)
    );
    let _ = writeln!(
        o,
        "  create -> Ready at low load ({} samples): p50 {}, p99 {}, max {} (floor: L = {:.0} ms)",
        l.creates,
        opt(l.create_ready_p50_ms),
        opt(l.create_ready_p99_ms),
        opt(l.create_ready_max_ms),
        st.es_latency_ms
    );

    let _ = writeln!(o, "\n5. Start-up and size");
    let _ = writeln!(
        o,
        "  process start -> first Kubernetes request {}, first reconcile (first Elasticsearch request) {}, pre-existing object Ready {}",
        opt(u.first_kube_request_ms),
        opt(u.first_reconcile_ms),
        opt(u.probe_ready_ms)
    );
    let _ = writeln!(
        o,
        "  restart -> all {} objects re-verified: {}",
        u.restart_objects,
        opt(u.restart_all_verified_ms)
    );
    let _ = writeln!(
        o,
        "  binary                 {} bytes ({:.2} MB, {})",
        u.binary_bytes,
        u.binary_bytes as f64 / 1e6,
        if u.binary_stripped {
            "stripped"
        } else {
            "not stripped"
        }
    );

    o.push_str(&render_harness(&r.harness));

    let _ = writeln!(
        o,
        "\n7. Requests per phase (the operator's; the benchmark's own left out; watches not counted)"
    );
    for p in &r.phases {
        let _ = writeln!(
            o,
            "  {:<44} {:>7.1} s  Elasticsearch {:>6}: {}",
            p.phase,
            p.wall_ms / 1000.0,
            p.es_total(),
            counts(&p.es, 0)
        );
        let _ = writeln!(
            o,
            "  {:<44} {:>9}  Kubernetes {:>9}: reads {}; writes {}",
            "",
            "",
            p.kube_total(),
            counts(&p.kube_reads, 0),
            counts(&p.kube_writes, 0)
        );
    }

    let _ = writeln!(o, "\nTargets (issues 6 and 16)");
    for t in &r.targets {
        let _ = writeln!(
            o,
            "  [{}] {:<40} target {:<45} measured {}",
            if t.met { "met " } else { "MISS" },
            t.item,
            t.target,
            t.measured
        );
    }
    o
}

/// Section 6, the harness's own throughput with no operator running (also `bench --harness-only`).
pub fn render_harness(h: &super::HarnessLimits) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n6. Harness alone (no operator; {} requests, {} in flight)",
        h.operations, h.parallelism
    );
    let _ = writeln!(
        o,
        "  emulator               {:.0} Secret creates/s, {:.0} InferenceEndpoint creates/s, {:.0} status patches/s, {:.0} Secret GETs/s",
        h.kube_secret_creates_per_s,
        h.kube_iep_creates_per_s,
        h.kube_status_patches_per_s,
        h.kube_secret_gets_per_s
    );
    let _ = writeln!(
        o,
        "  double                 {:.0} PUTs/s, {:.0} GETs/s without latency; with L = {:.0} ms: {} PUTs all at once took {:.0} ms, {} with {} in flight took {:.2} s (bound {:.2} s)",
        h.es_puts_per_s,
        h.es_gets_per_s,
        h.latency_ms,
        h.wide_puts,
        h.latency_puts_wall_ms,
        h.latency_puts,
        h.bounded_puts_parallelism,
        h.bounded_puts_wall_ms / 1000.0,
        h.latency_ms * h.latency_puts as f64 / h.bounded_puts_parallelism.max(1) as f64 / 1000.0
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_targets_are_the_issues() {
        // "≤ 6 KiB per object (so ≤ 16 MiB at 1,000 and ≤ 70 MiB at 10,000)" over 10 MiB idle.
        assert!(rss_target_mib(1000) <= 16.0 && rss_target_mib(1000) > 15.5);
        assert!(rss_target_mib(10_000) <= 70.0 && rss_target_mib(10_000) > 68.0);
        assert_eq!(rss_target_mib(0), IDLE_MIB);
    }
}
