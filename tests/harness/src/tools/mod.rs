//! The tools built on the test environment, apart from the doubles: the sandbox (watch the
//! operator work without a cluster) and the benchmark. Their binaries are `src/bin/sandbox.rs`
//! and `src/bin/bench.rs`.

use std::path::PathBuf;

use serde_json::Value;

pub mod bench;
pub mod sandbox;

/// Build the operator binary with cargo (`release` or the debug profile the tests use) and
/// return the executable cargo reports. For the sandbox and the benchmark, which run it as a
/// child process; tests get it from `CARGO_BIN_EXE_inference-operator` instead.
pub fn build_operator(release: bool) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "--quiet", "--bin", "inference-operator"]);
    if release {
        command.arg("--release");
    }
    let output = command
        .args(["--message-format", "json", "--manifest-path"])
        .arg(&manifest)
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building inference-operator failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["target"]["name"] == "inference-operator")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo did not report the inference-operator executable".to_owned())
}
