//! Where tests find `helm`: `$HELM`, the cache `.ci/manifests.sh` fills, or `PATH`.

use std::path::PathBuf;
use std::process::Command;

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
