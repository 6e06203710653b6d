//! Replays the committed fuzz corpus (`tests/fuzz/corpus/<target>/`) and every crash found so
//! far (`tests/fuzz/regressions/<target>/`) through the fuzz targets' own bodies, on the stable
//! toolchain: what the fuzzer once covered stays covered, and a fixed crash stays fixed.
//! Fuzzing itself needs nightly and runs only in the long mode (docs/reliability.md#fuzzing-and-planner-properties).

#[path = "fuzz/targets.rs"]
mod targets;

use std::fs;
use std::path::PathBuf;

/// Every input of one target, with its file name.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let mut found = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let bytes = fs::read(&path).expect("corpus file");
            found.push((path.display().to_string(), bytes));
        }
    }
    found.sort();
    found
}

fn replay(target: &str, body: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(
        !inputs.is_empty(),
        "no committed corpus for fuzz target {target}"
    );
    for (name, bytes) in &inputs {
        if let Err(panic) = std::panic::catch_unwind(|| body(bytes)) {
            let text = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("fuzz target {target} fails on {name}: {text}");
        }
    }
    println!("fuzz target {target}: {} inputs replayed", inputs.len());
}

#[test]
fn es_answer_corpus() {
    replay("es_answer", targets::es_answer);
}

#[test]
fn compare_corpus() {
    replay("compare", targets::compare_endpoints);
}

#[test]
fn spec_corpus() {
    replay("spec", targets::spec);
}
