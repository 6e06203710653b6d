//! `cargo run --release -p inference-testenv --bin bench -- --endpoints 1000 --es-latency 200ms`
//!
//! Builds the operator in release (or takes `--operator-bin PATH`), then runs the benchmark of
//! issue 6 against the Kubernetes API emulator and the Elasticsearch double and prints the
//! report (`--json` for JSON). See `inference_testenv::tools::bench`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use inference_testenv::tools::bench::{harness_only, render_harness, run, BenchOptions};

const USAGE: &str = "usage: bench [--quick] [--endpoints N] [--es-latency 200ms] [--concurrency C]
             [--baseline-sample K] [--footprint-max M] [--unrelated-secrets S]
             [--rotations R] [--create-samples K] [--recheck-interval 10s] [--recheck-rounds 3]
             [--es-version 9.4.0] [--ready-timeout 60s] [--pin-cpus] [--harness-only] [--es-plain-http] [--operator-env KEY=VALUE]... [--operator-bin PATH] [--work-dir DIR] [--json] [--json-out FILE]

  --quick              N = 50, L = 20 ms, 10 rotations, 500 unrelated Secrets, no 5 x N (for CI)
  --baseline-sample K  time K sequential PUTs (and 10 x K Terraform-like endpoints, 10 in flight)
                       and extrapolate to N (default: N up to 1,000 for real, sampled above)
  --footprint-max M    also measure the footprint with M objects (e.g. 5000)
  --operator-bin PATH  skip `cargo build --release` and run this binary
  --pin-cpus           this process on CPU 0, the operator on CPU 1 (taskset)
  --es-plain-http      the operator's double over http:// (default: TLS with a CA in caSecretRef)
  --harness-only       only section 6 (emulator and double alone, no operator), then exit
  --ready-timeout 60s  shortest wait for all Ready / all re-verified (e.g. 20m under valgrind)";

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| text.split_at(i))
        .unwrap_or((text, "ms"));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "us" => value / 1e6,
        _ => return Err(format!("unknown unit in {text:?} (use ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

struct Cli {
    options: BenchOptions,
    json: bool,
    json_out: Option<PathBuf>,
    operator_bin: Option<PathBuf>,
    harness_only: bool,
}

fn parse(args: Vec<String>) -> Result<Option<Cli>, String> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workspace = workspace.canonicalize().unwrap_or(workspace);
    let work_dir = workspace.join("target/bench");
    let quick = args.iter().any(|a| a == "--quick");
    let mut options = if quick {
        BenchOptions::quick(PathBuf::new(), work_dir)
    } else {
        BenchOptions::full(PathBuf::new(), work_dir)
    };
    let mut cli_json = false;
    let mut json_out = None;
    let mut operator_bin = None;
    let mut harness_only = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value; see --help"))
        };
        let number = |text: String| {
            text.parse::<usize>()
                .map_err(|_| format!("not a number: {text:?}"))
        };
        match arg.as_str() {
            "--quick" => {}
            "--json" => cli_json = true,
            "--json-out" => json_out = Some(PathBuf::from(value(&arg)?)),
            "--endpoints" => options.endpoints = number(value(&arg)?)?.max(1),
            "--es-latency" => options.es_latency = parse_duration(&value(&arg)?)?,
            "--concurrency" => {
                options.concurrency = value(&arg)?
                    .parse()
                    .map_err(|_| "--concurrency needs a number 1..65535".to_owned())?
            }
            "--baseline-sample" => options.baseline_sample = Some(number(value(&arg)?)?),
            "--footprint-max" => options.footprint_max = Some(number(value(&arg)?)?),
            "--unrelated-secrets" => options.unrelated_secrets = number(value(&arg)?)?,
            "--rotations" => options.rotations = number(value(&arg)?)?,
            "--create-samples" => options.create_samples = number(value(&arg)?)?,
            "--recheck-interval" => options.recheck_interval = parse_duration(&value(&arg)?)?,
            "--recheck-rounds" => {
                options.recheck_rounds = number(value(&arg)?)?.clamp(1, 1000) as u32
            }
            "--es-version" => options.es_version = value(&arg)?,
            "--pin-cpus" => options.pin_cpus = true,
            "--harness-only" => harness_only = true,
            "--es-plain-http" => options.es_tls = false,
            "--ready-timeout" => options.ready_timeout_min = parse_duration(&value(&arg)?)?,
            "--operator-env" => {
                let pair = value(&arg)?;
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--operator-env needs KEY=VALUE, got {pair:?}"))?;
                options.operator_env.push((k.to_owned(), v.to_owned()));
            }
            "--operator-bin" => operator_bin = Some(PathBuf::from(value(&arg)?)),
            "--work-dir" => options.work_dir = PathBuf::from(value(&arg)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    options.progress = true;
    Ok(Some(Cli {
        options,
        json: cli_json,
        json_out,
        operator_bin,
        harness_only,
    }))
}

fn main() -> ExitCode {
    let cli = match parse(std::env::args().skip(1).collect()) {
        Ok(Some(cli)) => cli,
        Ok(None) => return ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let mut options = cli.options;
    if cli.harness_only {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        return match runtime.block_on(harness_only(&options)) {
            Ok(limits) => {
                print!("{}", render_harness(&limits));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("harness measurement failed: {error}");
                ExitCode::FAILURE
            }
        };
    }
    options.operator_bin = match cli.operator_bin {
        Some(path) => path,
        None => match build_operator() {
            Ok(path) => path,
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::FAILURE;
            }
        },
    };
    eprintln!("[bench] operator binary {}", options.operator_bin.display());
    options.revision = revision();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let report = match runtime.block_on(run(options)) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("benchmark failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let json = serde_json::to_string_pretty(&report).expect("report as JSON");
    if let Some(path) = &cli.json_out {
        if let Err(error) = std::fs::write(path, &json) {
            eprintln!("{}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if cli.json {
        println!("{json}");
    } else {
        print!("{}", report.render());
    }
    ExitCode::SUCCESS
}

/// `cargo build --release --bin inference-operator`, returning the executable.
fn build_operator() -> Result<PathBuf, String> {
    eprintln!("[bench] cargo build --release --bin inference-operator");
    inference_testenv::tools::build_operator(true)
}

/// `git rev-parse --short HEAD`, marked when the operator's sources have uncommitted changes.
fn revision() -> String {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&workspace)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return String::new();
    };
    let dirty = git(&[
        "status",
        "--porcelain",
        "--",
        "src",
        "Cargo.toml",
        "Cargo.lock",
    ])
    .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("git {head} + uncommitted changes in src/")
    } else {
        format!("git {head}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("50"), Ok(Duration::from_millis(50)));
        assert!(parse_duration("5h").is_err());
    }
}
