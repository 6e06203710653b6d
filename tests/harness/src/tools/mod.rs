//! The tools built on the test environment, apart from the doubles: the sandbox (watch the
//! operator work without a cluster) and the benchmark. Their binaries are `src/bin/sandbox.rs`
//! and `src/bin/bench.rs`.

use std::path::PathBuf;

use serde_json::Value;

pub mod bench;
pub mod sandbox;

/// Variables `cargo run` and `cargo test` set for the program they start, by name or prefix:
/// "Environment variables Cargo sets for crates"
/// (<https://doc.rust-lang.org/cargo/reference/environment-variables.html#environment-variables-cargo-sets-for-crates>:
/// "this applies for running binaries with `cargo run` and `cargo test` as well"), plus
/// `CARGO_MANIFEST_PATH`, which cargo 1.95 sets too. The `RUSTC*` variables on that page are set
/// for build scripts only, never for `cargo run`; a user's own `RUSTC`/`RUSTFLAGS` must reach the
/// inner build unchanged, so they stay.
const CARGO_RUN_VARS: &[&str] = &[
    "CARGO",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_WORKSPACE_DIR",
    "OUT_DIR",
];
const CARGO_RUN_PREFIXES: &[&str] = &["CARGO_PKG_", "CARGO_BIN_EXE_"];

/// Whether `cargo run`/`cargo test` set this variable for the program it started.
pub fn set_by_cargo_run(name: &str) -> bool {
    CARGO_RUN_VARS.contains(&name) || CARGO_RUN_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A `cargo` command with the environment the outer `cargo` itself saw. Run from `cargo run`
/// (the sandbox) or a test, the program inherits `CARGO_MANIFEST_DIR` and friends; a build
/// script that watches one (ring's does: `rerun-if-env-changed`, seen as cargo's
/// `EnvVarChanged { name: "CARGO_MANIFEST_DIR" }`) would then be dirty for the inner build and
/// dirty again for the next outer one, rebuilding everything above `ring` on every start.
pub fn cargo_command() -> std::process::Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_run) {
            command.env_remove(name);
        }
    }
    command
}

/// What [`build_operator`] built.
#[derive(Debug)]
pub struct OperatorBuild {
    pub executable: PathBuf,
    /// Crates cargo compiled (not fresh); 0 when everything was up to date.
    pub compiled: usize,
}

/// Build the operator binary with cargo (`release` or the debug profile the tests use) and
/// return the executable cargo reports. For the sandbox and the benchmark, which run it as a
/// child process; tests get it from `CARGO_BIN_EXE_inference-operator` instead.
pub fn build_operator(release: bool) -> Result<PathBuf, String> {
    build_operator_counted(release).map(|build| build.executable)
}

/// [`build_operator`], also counting the crates cargo had to compile (from the `fresh` flag of
/// its `compiler-artifact` messages, <https://doc.rust-lang.org/cargo/reference/external-tools.html#artifact-messages>).
pub fn build_operator_counted(release: bool) -> Result<OperatorBuild, String> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let mut command = cargo_command();
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
    let messages: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .collect();
    let compiled = messages.iter().filter(|m| m["fresh"] == false).count();
    let executable = messages
        .iter()
        .filter(|message| message["target"]["name"] == "inference-operator")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo did not report the inference-operator executable".to_owned())?;
    Ok(OperatorBuild {
        executable,
        compiled,
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    /// The sandbox's and the benchmark's `cargo build` starts without what `cargo test` set for
    /// this process (the end-to-end check, tests/sandbox.rs, runs the sandbox with the operator
    /// the test build made, so it no longer exercises the inner build).
    #[test]
    fn the_inner_cargo_gets_none_of_what_cargo_set_for_this_process() {
        assert!(
            std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
            "cargo test sets it"
        );
        let command = super::cargo_command();
        let removed: Vec<&OsStr> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name)
            .collect();
        assert!(removed.contains(&OsStr::new("CARGO_MANIFEST_DIR")));
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(super::set_by_cargo_run) {
                assert!(removed.contains(&name.as_os_str()), "{name:?} kept");
            }
        }
        assert!(!super::set_by_cargo_run("RUSTFLAGS"));
        assert!(!super::set_by_cargo_run("CARGO_HOME"));
    }
}
