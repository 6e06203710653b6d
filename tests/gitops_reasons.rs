//! The GitOps page and its test cases name only statuses the operator really writes.
//!
//! `docs/gitops/test/cases/*.json` feed the Argo CD health check and the kstatus port
//! (`bash .ci/gitops.sh`); `docs/gitops.md` tells users which reason they will see. Both once
//! said `InUse` for a blocked deletion while the operator writes `DeletionBlocked`, so the checks
//! tested a status that never happens. This test ties them to `inference_operator::reason`.
//! Cases that model a status written by someone else say so in their description ("not written
//! by this operator" / "never writes") and are exempt.

use inference_operator::reason::{Kind, Reason};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Words in backticks on the page that are condition types or statuses, not reasons.
const CONDITION_WORDS: &[&str] = &[
    "Ready",
    "Reconciling",
    "Stalled",
    "InsecureTransport",
    "UnknownService",
    "Healthy",
    "True",
    "False",
    "Unknown",
    "InferenceEndpoint",
];

/// At deletion the operator reports Elasticsearch's `InUse` refusal as `DeletionBlocked`
/// (`src/controller/reconcile.rs`, delete; docs/lifecycle.md, "Deleting").
const NOT_AT_DELETION: &[Reason] = &[Reason::InUse];

fn cases() -> Vec<(PathBuf, Value)> {
    let dir = root().join("docs/gitops/test/cases");
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("cases dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no cases in {}", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let v = serde_json::from_str(&fs::read_to_string(&p).expect("read case"))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect()
}

fn written_by_someone_else(case: &Value) -> bool {
    let d = case["description"].as_str().unwrap_or("");
    d.contains("not written by this operator") || d.contains("never writes")
}

/// What is wrong with one condition of a case the operator could have written, if anything.
fn condition_problem(condition: &Value, deleting: bool) -> Option<String> {
    let (ty, status) = (condition["type"].as_str()?, condition["status"].as_str()?);
    let text = condition["reason"].as_str().unwrap_or("");
    let Some(reason) = Reason::parse(text) else {
        return Some(format!(
            "{ty}: reason {text:?} is not one the operator writes"
        ));
    };
    let expected = match (ty, status) {
        ("Ready", "True") => Some(Kind::Ready),
        ("Reconciling", "True") => Some(Kind::Transient),
        ("Stalled", "True") => Some(Kind::Permanent),
        ("InsecureTransport" | "UnknownService", "True") => Some(Kind::Warning),
        _ => None,
    };
    if expected.is_some_and(|k| k != reason.kind()) {
        return Some(format!(
            "{ty}={status} with {text}, which is {:?}",
            reason.kind()
        ));
    }
    if deleting && NOT_AT_DELETION.contains(&reason) {
        return Some(format!(
            "{ty}: {text} is not written while deleting (DeletionBlocked is)"
        ));
    }
    None
}

#[test]
fn gitops_cases_carry_reasons_the_operator_writes() {
    let mut problems = Vec::new();
    for (path, case) in cases() {
        if written_by_someone_else(&case) {
            continue;
        }
        let object = &case["object"];
        let deleting = object["metadata"]["deletionTimestamp"].is_string();
        let conditions = object["status"]["conditions"].as_array();
        for c in conditions.into_iter().flatten() {
            if let Some(p) = condition_problem(c, deleting) {
                problems.push(format!("{}: {p}", path.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Backticked CamelCase words: `Ready`, `InSync`, ...
fn backticked_words(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (i, piece) in line.split('`').enumerate() {
            let camel = piece.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && piece.chars().all(|c| c.is_ascii_alphanumeric());
            if i % 2 == 1 && camel {
                out.push((n + 1, piece));
            }
        }
    }
    out
}

/// Whether the paragraph (or table) holding line `i` talks about deletion.
fn about_deletion(lines: &[&str], i: usize) -> bool {
    let blank = |l: &&str| l.trim().is_empty();
    let start = lines[..i].iter().rposition(blank).map_or(0, |b| b + 1);
    let end = lines[i..]
        .iter()
        .position(blank)
        .map_or(lines.len(), |b| i + b);
    lines[start..end]
        .iter()
        .any(|l| l.to_lowercase().contains("delet"))
}

#[test]
fn gitops_page_names_reasons_the_operator_writes() {
    let text = fs::read_to_string(root().join("docs/gitops.md")).expect("docs/gitops.md");
    let lines: Vec<&str> = text.lines().collect();
    let mut problems = Vec::new();
    for (n, word) in backticked_words(&text) {
        if CONDITION_WORDS.contains(&word) {
            continue;
        }
        match Reason::parse(word) {
            None => problems.push(format!("line {n}: `{word}` is not a reason")),
            Some(r) if NOT_AT_DELETION.contains(&r) && about_deletion(&lines, n - 1) => problems
                .push(format!(
                    "line {n}: `{word}` for a deletion; the operator writes DeletionBlocked"
                )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_checks_see_a_blocked_deletion_named_in_use() {
    let condition = serde_json::json!({"type": "Reconciling", "status": "True", "reason": "InUse"});
    assert!(condition_problem(&condition, true).is_some());
    assert!(condition_problem(&condition, false).is_none());
    let page = "Deletion is refused:\nthe object shows reason `InUse`\n\n`InUse` elsewhere";
    assert_eq!(backticked_words(page), vec![(2, "InUse"), (4, "InUse")]);
    let lines: Vec<&str> = page.lines().collect();
    assert!(about_deletion(&lines, 1));
    assert!(!about_deletion(&lines, 3));
}
