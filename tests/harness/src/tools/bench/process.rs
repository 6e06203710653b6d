//! The operator as a child process: spawn, memory (from `/proc`), `/metrics`, stop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::process::{Child, Command};

/// Resident set size of a process, from `/proc/PID/status`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Rss {
    /// `VmRSS`: resident now, KiB.
    pub current_kib: u64,
    /// `VmHWM`: the peak resident size since the process started, KiB.
    pub peak_kib: u64,
    /// `VmRSS` split by kind (Linux ≥ 4.5, `man 5 proc`): `RssAnon` (heap, stacks, malloc
    /// arenas), `RssFile` (pages of the binary and the shared libraries) and `RssShmem`.
    /// They add up to `VmRSS`; 0 on a kernel that does not report them.
    pub anon_kib: u64,
    pub file_kib: u64,
    pub shmem_kib: u64,
}

impl Rss {
    pub fn of(pid: u32) -> Option<Rss> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        Some(Rss {
            current_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
            anon_kib: field("RssAnon:").unwrap_or(0),
            file_kib: field("RssFile:").unwrap_or(0),
            shmem_kib: field("RssShmem:").unwrap_or(0),
        })
    }

    pub fn current_mib(&self) -> f64 {
        self.current_kib as f64 / 1024.0
    }

    pub fn peak_mib(&self) -> f64 {
        self.peak_kib as f64 / 1024.0
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat` (clock ticks
/// of 10 ms, the Linux default `CLK_TCK` of 100).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// A running `inference-operator run`; killed on drop.
pub struct OperatorProcess {
    child: Child,
    pid: u32,
    pub started: Instant,
    log_path: PathBuf,
    metrics_address: Option<String>,
}

impl OperatorProcess {
    /// Start the binary against the emulator's kubeconfig; stderr goes to `log_path`.
    /// Proxy variables are removed so every request stays on 127.0.0.1.
    pub fn spawn(
        binary: &Path,
        kubeconfig: &Path,
        log_path: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<OperatorProcess, String> {
        Self::spawn_on(binary, kubeconfig, log_path, args, env, None)
    }

    /// [`OperatorProcess::spawn`]; with `cpu`, the process runs on that CPU alone
    /// (`taskset -c`, which execs it: the pid is the operator's).
    pub fn spawn_on(
        binary: &Path,
        kubeconfig: &Path,
        log_path: &Path,
        args: &[String],
        env: &[(String, String)],
        cpu: Option<&str>,
    ) -> Result<OperatorProcess, String> {
        let log =
            std::fs::File::create(log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut command = match cpu {
            Some(cpu) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", cpu]).arg(binary);
                taskset
            }
            None => Command::new(binary),
        };
        command
            .arg("run")
            .args(["--metrics-address", "127.0.0.1:0", "--log-format", "text"])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("NO_COLOR", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        for var in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            command.env_remove(var);
        }
        let started = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let pid = child.id().ok_or("the operator exited at once")?;
        Ok(OperatorProcess {
            child,
            pid,
            started,
            log_path: log_path.to_owned(),
            metrics_address: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn rss(&self) -> Rss {
        Rss::of(self.pid).unwrap_or_default()
    }

    pub fn cpu(&self) -> Duration {
        cpu_time(self.pid).unwrap_or_default()
    }

    /// Fail if the process has exited (with the end of its log).
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "the operator exited ({status}); log {}:\n{}",
                self.log_path.display(),
                self.log_tail(20)
            )),
            Err(e) => Err(format!("waiting for the operator: {e}")),
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The `/metrics` address the operator logged at start-up (it binds port 0).
    pub async fn metrics_address(&mut self) -> Result<String, String> {
        if let Some(address) = &self.metrics_address {
            return Ok(address.clone());
        }
        let pattern = regex::Regex::new(r"serving /metrics.*?address=(\S+)").expect("regex");
        let ansi = regex::Regex::new(r"\x1b\[[0-9;]*m").expect("regex");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let text = ansi.replace_all(&text, "");
            if let Some(found) = pattern.captures(&text) {
                let address = found[1].to_owned();
                self.metrics_address = Some(address.clone());
                return Ok(address);
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err("the operator did not log its /metrics address".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `/metrics` text.
    pub async fn metrics(&mut self, http: &reqwest::Client) -> Result<String, String> {
        let address = self.metrics_address().await?;
        let response = http
            .get(format!("http://{address}/metrics"))
            .send()
            .await
            .map_err(|e| format!("GET /metrics: {e}"))?;
        response
            .text()
            .await
            .map_err(|e| format!("GET /metrics: {e}"))
    }

    /// Total reconciles so far (every result), from `/metrics`.
    pub async fn reconciles(&mut self, http: &reqwest::Client) -> Result<f64, String> {
        Ok(metric_sum(
            &self.metrics(http).await?,
            "inference_operator_reconciliations",
        ))
    }

    /// SIGKILL and reap.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Sum of every sample of a counter family (`name_total{...} value` or `name{...} value`).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    metric_sum_where(text, name, "")
}

/// Like [`metric_sum`], only over samples whose line contains `label` (e.g.
/// `operation="create"`).
pub fn metric_sum_where(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#') && line.contains(label))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = rest.strip_prefix("_total").unwrap_or(rest);
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                return None;
            }
            let value = match rest.rfind('}') {
                Some(end) => &rest[end + 1..],
                None => rest,
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// Pin every thread of this process (and the threads it starts later) to `cpu`.
pub fn pin_self(cpu: &str) -> Result<(), String> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpu, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if !status.success() {
        return Err(format!("taskset -a -p -c {cpu}: {status}"));
    }
    Ok(())
}

/// Size of a file and whether it still carries a symbol table (`.symtab`): stripped or not.
pub fn binary_size(path: &Path) -> Result<(u64, bool), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let has_symtab = bytes.windows(8).any(|w| w == b".symtab\0");
    Ok((bytes.len() as u64, !has_symtab))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_across_labels() {
        let text = "# HELP inference_operator_reconciliations Reconciliations\n\
                    inference_operator_reconciliations_total{result=\"ready\"} 12\n\
                    inference_operator_reconciliations_total{result=\"error\"} 3\n\
                    inference_operator_reconcile_duration_seconds_count 15\n";
        assert_eq!(metric_sum(text, "inference_operator_reconciliations"), 15.0);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(cpu_time(std::process::id()).expect("/proc/self/stat") > Duration::ZERO);
    }

    #[test]
    fn own_rss_is_readable() {
        let rss = Rss::of(std::process::id()).expect("/proc/self/status");
        assert!(rss.current_kib > 0 && rss.peak_kib >= rss.current_kib);
    }

    #[test]
    fn own_rss_splits_into_anonymous_file_and_shared() {
        let rss = Rss::of(std::process::id()).expect("/proc/self/status");
        // This test binary's own code is file-backed, its heap anonymous.
        assert!(rss.anon_kib > 0 && rss.file_kib > 0, "{rss:?}");
        // The kernel sums the three counters into VmRSS; both are read at once from one
        // /proc read, so they agree exactly.
        assert_eq!(rss.anon_kib + rss.file_kib + rss.shmem_kib, rss.current_kib);
    }
}
