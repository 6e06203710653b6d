//! Every citation in the repository points inside it.
//!
//! Code and docs cite the facts they follow as `docs/reference/<page>.md#<anchor>` (or a public
//! source). A user who clones the repository has nothing else, so this test walks the source and
//! doc files and fails on a citation of notes outside the repository (the old `shared` notes, a
//! design file at the top level, bare section numbers) and on a link to a markdown page or anchor
//! that does not exist. Anchors are GitHub's: the heading text, lowercase, spaces to `-`,
//! punctuation dropped, `-1`, `-2`, … for repeats.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// File kinds that hold code, docs or manifests.
const EXTENSIONS: &[&str] = &["rs", "md", "sh", "yaml", "yml", "toml", "tpl", "txt"];

/// Texts that cite something a clone does not have. Split so this file does not match itself.
fn forbidden() -> Vec<(String, &'static str)> {
    vec![
        (
            ["shared", "/reference"].concat(),
            "notes outside the repository",
        ),
        (["..", "/shared"].concat(), "notes outside the repository"),
        (
            ["DESIGN", ".md"].concat(),
            "a design file outside the repository",
        ),
        (
            ["TOOLS", ".md"].concat(),
            "a tools file outside the repository",
        ),
        (
            "\u{a7}".to_string(),
            "a section-number citation (use a page and anchor)",
        ),
    ]
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Source and doc files under `dir`, skipping build output and VCS data.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && name != ".git" {
                walk(&path, out);
            }
        } else if EXTENSIONS
            .iter()
            .any(|ext| name.ends_with(&format!(".{ext}")))
        {
            out.push(path);
        }
    }
}

/// GitHub's anchor for a heading's text.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown document: its ATX headings outside code fences.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        let rest = &line[hashes..];
        if fenced || !(1..=6).contains(&hashes) || !(rest.is_empty() || rest.starts_with(' ')) {
            continue;
        }
        let base = slug(rest.trim().trim_end_matches('#'));
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// A markdown page named in a citation: `target` is the path as written (`<dir>/x.md`,
/// `x.md`, `../lifecycle.md`) and `anchor` the part after `#`, if any.
#[derive(Debug, PartialEq)]
struct Link {
    target: String,
    anchor: Option<String>,
}

/// `docs/reference/<page>.md`: one of our reference pages (they are flat; a deeper path under a
/// `docs/reference/` is another repository's, e.g. Elasticsearch's release notes).
fn is_reference_page(target: &str) -> bool {
    let dir = ["docs", "/reference/"].concat();
    target
        .strip_prefix(dir.as_str())
        .is_some_and(|page| !page.contains('/'))
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

fn is_anchor_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-')
}

/// Every `<path>.md#<anchor>`, every `<path>.md` inside a markdown link or naming one of our
/// reference pages, and in
/// markdown files every `](#anchor)`.
fn links(text: &str, markdown: bool) -> Vec<Link> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices(".md") {
        let start = text[..at]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_path_char(c))
            .last()
            .map_or(at, |(i, _)| i);
        let target = &text[start..at + 3];
        let after = &text[at + 3..];
        let url = text[..start].ends_with(':');
        if url || after.starts_with(|c: char| c.is_ascii_alphanumeric()) || target == ".md" {
            continue; // a URL (not ours to check), `.mdx`, or no name
        }
        let anchor = after.strip_prefix('#').map(|a| {
            a.chars()
                .take_while(|&c| is_anchor_char(c))
                .collect::<String>()
        });
        let in_link = text[..start].ends_with("](");
        if anchor.is_some() || in_link || is_reference_page(target) {
            out.push(Link {
                target: target.to_string(),
                anchor,
            });
        }
    }
    if markdown {
        for (at, _) in text.match_indices("](#") {
            let anchor: String = text[at + 3..]
                .chars()
                .take_while(|&c| is_anchor_char(c))
                .collect();
            out.push(Link {
                target: String::new(),
                anchor: Some(anchor),
            });
        }
    }
    out
}

/// Where a link's page is: relative to the citing file (markdown links), else to the root.
fn resolve(root: &Path, file: &Path, target: &str) -> Option<PathBuf> {
    if target.is_empty() {
        return Some(file.to_path_buf());
    }
    let here = file.parent().map(|dir| dir.join(target));
    let candidates = [here, Some(root.join(target))];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// Problems in one file, as `path:line: what`.
fn check(
    root: &Path,
    file: &Path,
    anchor_cache: &mut HashMap<PathBuf, BTreeSet<String>>,
) -> Vec<String> {
    let Ok(text) = fs::read_to_string(file) else {
        return Vec::new();
    };
    let rel = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let markdown = rel.ends_with(".md");
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (needle, why) in forbidden() {
            if line.contains(&needle) {
                problems.push(format!("{rel}:{}: `{needle}`: {why}", n + 1));
            }
        }
        for link in links(line, markdown) {
            let Some(page) = resolve(root, file, &link.target) else {
                if is_reference_page(&link.target) || markdown {
                    problems.push(format!("{rel}:{}: no page `{}`", n + 1, link.target));
                }
                continue;
            };
            let Some(anchor) = link.anchor else { continue };
            let known = anchor_cache
                .entry(page.clone())
                .or_insert_with(|| anchors(&fs::read_to_string(&page).unwrap_or_default()));
            if !known.contains(&anchor) {
                problems.push(format!(
                    "{rel}:{}: no anchor `#{anchor}` in `{}`",
                    n + 1,
                    page.strip_prefix(root).unwrap_or(&page).display()
                ));
            }
        }
    }
    problems
}

#[test]
fn every_citation_points_inside_the_repository() {
    let root = root();
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("docs/reference/elasticsearch-inference-api.md")),
        "the walk must find the reference pages (root {})",
        root.display()
    );
    let mut cache = HashMap::new();
    let problems: Vec<String> = files
        .iter()
        .flat_map(|f| check(&root, f, &mut cache))
        .collect();
    assert!(
        problems.is_empty(),
        "{} citation problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The code cites well over a hundred anchors; far fewer means the link scan broke, not that
    // the citations went away.
    let anchored = files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .flat_map(|text| links(&text, false))
        .filter(|l| l.anchor.is_some() && is_reference_page(&l.target))
        .count();
    assert!(
        anchored >= 100,
        "only {anchored} anchored reference citations found"
    );
}

#[test]
fn anchors_follow_github() {
    let page = "# Title\n## Update API\n### Completion validated from 8.18\n```\n# not a heading\n```\n\
                ## `_update` chunking reset\n## kube-rs pitfalls\n## Update API\n#110487) no heading\n";
    let found: Vec<String> = anchors(page).into_iter().collect();
    assert_eq!(
        found,
        [
            "_update-chunking-reset",
            "completion-validated-from-818",
            "kube-rs-pitfalls",
            "title",
            "update-api",
            "update-api-1",
        ]
    );
}

#[test]
fn links_are_found_in_code_and_markdown() {
    let rust = "// see (docs/reference/kubernetes-api.md#cel-null-fields), and README.md plainly";
    assert_eq!(
        links(rust, false),
        [Link {
            target: "docs/reference/kubernetes-api.md".into(),
            anchor: Some("cel-null-fields".into())
        }]
    );
    let md = "[a](design.md) and [b](#update-api) and [c](../lifecycle.md#reasons-at-a-glance)";
    let found = links(md, true);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(
        found[1],
        Link {
            target: "../lifecycle.md".into(),
            anchor: Some("reasons-at-a-glance".into())
        }
    );
    assert_eq!(
        found[2],
        Link {
            target: String::new(),
            anchor: Some("update-api".into())
        }
    );
}

#[test]
fn a_broken_anchor_and_an_outside_citation_are_reported() {
    let dir = std::env::temp_dir().join(format!("citations-{}", std::process::id()));
    let reference = dir.join("docs/reference");
    fs::create_dir_all(&reference).unwrap();
    fs::write(reference.join("page.md"), "# Page\n## Real anchor\n").unwrap();
    let code = dir.join("lib.rs");
    let outside = ["shared", "/reference/x.md"].concat();
    let r = ["docs", "/reference/"].concat(); // split so the walk over this file passes
    fs::write(
        &code,
        format!(
            "// ok ({r}page.md#real-anchor)\n// bad ({r}page.md#gone)\n\
             // bad ({r}missing.md)\n// bad ({outside})\n// bad (\u{a7}3.2)\n"
        ),
    )
    .unwrap();
    let problems = check(&dir, &code, &mut HashMap::new());
    fs::remove_dir_all(&dir).ok();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(
        problems[0].contains(":2: no anchor `#gone`"),
        "{problems:#?}"
    );
    assert!(problems[1].contains(":3: no page"), "{problems:#?}");
    assert!(problems[2].contains(":4:"), "{problems:#?}");
    assert!(problems[3].contains(":5:"), "{problems:#?}");
}
