//! The command line as a user meets it: the built binary, run as a subprocess so that the
//! environment each case sets is its own (the environment is process-global).
//!
//! `run` without any Kubernetes configuration logs one error ("cannot build a Kubernetes
//! client") and exits: enough to see how flags, environment twins and the log behave, with no
//! cluster.

use std::process::{Command, Output};

fn operator(args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = std::env::temp_dir().join("inference-operator-flags-test-home");
    let mut command = Command::new(env!("CARGO_BIN_EXE_inference-operator"));
    command
        .arg("run")
        .args(["--metrics-address", "127.0.0.1:0"])
        .args(args)
        .env_clear()
        .env("HOME", &home)
        .env("KUBECONFIG", home.join("no-such-kubeconfig"))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (name, value) in env {
        command.env(name, value);
    }
    // Command::output pipes stdout and stderr: neither is a terminal, as in a pod.
    command.output().expect("the operator binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_log_is_json_without_colour_when_not_on_a_terminal() {
    let output = operator(&[], &[]);
    let log = stderr(&output);
    assert!(!output.status.success(), "{log}");
    assert!(
        !log.contains("\x1b["),
        "ANSI escape in a piped log: {log:?}"
    );
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log line");
    for line in lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event.get("level").is_some(), "{line}");
    }
}

#[test]
fn explicit_text_format_wins_and_carries_no_colour_when_piped() {
    let output = operator(&["--log-format", "text"], &[]);
    let log = stderr(&output);
    assert!(log.contains("cannot build a Kubernetes client"), "{log}");
    assert!(
        !log.contains("\x1b["),
        "ANSI escape in a piped log: {log:?}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(log.lines().next().unwrap()).is_err());
}

#[test]
fn an_invalid_log_level_stops_the_start_with_a_clear_message() {
    let output = operator(&["--log-level", "inference_operator=loud"], &[]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{log}");
    assert!(log.contains("invalid --log-level filter"), "{log}");
    assert!(log.contains("inference_operator=loud"), "{log}");
    assert!(!log.contains("Kubernetes client"), "started anyway: {log}");
}

#[test]
fn an_explicit_log_level_wins_over_rust_log() {
    // RUST_LOG=off would silence the error line; the explicit flag must win.
    let output = operator(&["--log-level", "error"], &[("RUST_LOG", "off")]);
    assert!(stderr(&output).contains("cannot build a Kubernetes client"));
    // Without the flag RUST_LOG still applies.
    let output = operator(&[], &[("RUST_LOG", "off")]);
    assert_eq!(stderr(&output), "");
}

#[test]
fn environment_twins_are_read_under_the_prefixed_names_only() {
    // The prefixed twin is read: its invalid value stops the start.
    let output = operator(&[], &[("INFERENCE_OPERATOR_LOG_LEVEL", "x=loud")]);
    assert!(stderr(&output).contains("invalid --log-level filter"));
    let output = operator(&[], &[("INFERENCE_OPERATOR_CONCURRENCY", "many")]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("many"), "{}", stderr(&output));
    // A user's shell variable with the plain name is not.
    for (name, value) in [
        ("LOG_LEVEL", "x=loud"),
        ("CONCURRENCY", "many"),
        ("LOG_FORMAT", "nonsense"),
    ] {
        let output = operator(&[], &[(name, value)]);
        let log = stderr(&output);
        assert!(
            log.contains("cannot build a Kubernetes client"),
            "{name}={value} was read: {log}"
        );
    }
}

#[test]
fn the_log_is_coloured_text_on_a_terminal() {
    // util-linux `script` runs the operator on a pseudo-terminal and copies what it printed.
    let home = std::env::temp_dir().join("inference-operator-flags-test-home");
    let binary = env!("CARGO_BIN_EXE_inference-operator");
    let line = format!("'{binary}' run --metrics-address 127.0.0.1:0");
    let Ok(output) = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_clear()
        .env("HOME", &home)
        .env("KUBECONFIG", home.join("no-such-kubeconfig"))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
    else {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    };
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("cannot build a Kubernetes client"), "{log}");
    assert!(log.contains("\x1b["), "no colour on a terminal: {log:?}");
    assert!(
        !log.trim_start().starts_with('{'),
        "JSON on a terminal: {log}"
    );
}
