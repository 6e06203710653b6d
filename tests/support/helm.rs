//! Where tests find `helm`: `$HELM`, the cache `.ci/manifests.sh` fills, or `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// `helm`, or `None` when it is nowhere (the test then says so and skips).
pub fn helm() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HELM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let cached = cache.join("inference-operator-tools/kubectl-layer-2.0.0/helm");
    if cached.is_file() {
        return Some(cached);
    }
    Command::new("helm")
        .arg("version")
        .output()
        .ok()?
        .status
        .success()
        .then(|| "helm".into())
}

/// The chart as `helm template` renders it into `namespace` with `args`, one value per
/// document (empty documents left out).
pub fn render(helm: &Path, namespace: &str, args: &[&str]) -> Vec<Value> {
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/inference-operator");
    let out = Command::new(helm)
        .args(["template", "io", chart, "--namespace", namespace])
        .args(args)
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&String::from_utf8(out.stdout).unwrap())
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}
