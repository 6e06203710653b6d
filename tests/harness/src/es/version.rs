//! Emulated Elasticsearch version and the feature gates derived from it
//! (docs/reference/elasticsearch-inference-api.md#version-history).

use std::fmt;

/// An Elasticsearch version `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EsVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for EsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl EsVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        EsVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses `8.15.0`, `9.1` or `9.3.0-SNAPSHOT`. Panics on garbage (it is a test helper).
    pub fn parse(s: &str) -> EsVersion {
        let core = s.split(['-', '+']).next().unwrap_or(s);
        let mut it = core.split('.').map(|p| {
            p.parse::<u32>()
                .unwrap_or_else(|_| panic!("bad ES version {s:?}"))
        });
        let major = it.next().unwrap_or_else(|| panic!("bad ES version {s:?}"));
        EsVersion::new(major, it.next().unwrap_or(0), it.next().unwrap_or(0))
    }

    fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// `completion` task for azureopenai: 8.15 (inferred:
    /// docs/reference/elasticsearch-inference-api.md#azure-task-types).
    pub fn azure_completion(self) -> bool {
        self.at_least(8, 15)
    }
    /// `chat_completion` as a *known task type string*: 8.18 (inferred: unified chat API arrived in 8.18).
    pub fn knows_chat_completion(self) -> bool {
        self.at_least(8, 18)
    }
    /// `chat_completion` supported by azureopenai: 9.3.0
    /// (docs/reference/elasticsearch-inference-api.md#azure-task-types).
    pub fn azure_chat_completion(self) -> bool {
        self.at_least(9, 3)
    }
    /// `embedding` task type string: 9.3 (docs/reference/elasticsearch-inference-api.md#routing).
    pub fn knows_embedding(self) -> bool {
        self.at_least(9, 3)
    }
    /// DELETE `dry_run` / `force` and the pipelines check: 8.15
    /// (docs/reference/elasticsearch-inference-api.md#delete-api).
    pub fn delete_flags(self) -> bool {
        self.at_least(8, 15)
    }
    /// semantic_text reference check and the `indexes` response field: 8.16
    /// (docs/reference/elasticsearch-inference-api.md#delete-api).
    pub fn index_refs(self) -> bool {
        self.at_least(8, 16)
    }
    /// `chunking_settings`: 8.16 (docs/reference/elasticsearch-inference-api.md#chunking-settings).
    pub fn chunking(self) -> bool {
        self.at_least(8, 16)
    }
    /// `recursive` chunking: 9.1 (elastic/elasticsearch PR #126866, documented from 9.1.0 in
    /// docs-content PR #2119) (inferred: no 8.19 backport found, unlike `none`).
    pub fn recursive_chunking(self) -> bool {
        self.at_least(9, 1)
    }
    /// `none` chunking: 9.1 (PR #129150) and 8.19 (backport PR #129324, "[8.19] Add `none`
    /// chunking strategy"); 9.0 never got it.
    pub fn none_chunking(self) -> bool {
        self.at_least(9, 1) || (self.major == 8 && self.minor >= 19)
    }
    /// Preconfigured (dotted) default endpoints listed by GET: 8.16 (inferred).
    pub fn preconfigured(self) -> bool {
        self.at_least(8, 16)
    }
    /// `_update` API: 8.17 (docs/reference/elasticsearch-inference-api.md#update-api).
    pub fn update_api(self) -> bool {
        self.at_least(8, 17)
    }
    /// PUT `?timeout=`: 8.19 and 9.1+ (not 9.0)
    /// (docs/reference/elasticsearch-inference-api.md#timeout).
    pub fn put_timeout(self) -> bool {
        (self.major == 8 && self.minor >= 19) || self.at_least(9, 1)
    }
    /// 9.4: new secret messages, OAuth2, task_settings `headers`, update validation call
    /// (docs/reference/elasticsearch-inference-api.md#version-history,
    /// docs/reference/elasticsearch-inference-api.md#azure-secrets).
    pub fn v94(self) -> bool {
        self.at_least(9, 4)
    }
    /// 9.5: update timeout param, mutable rate_limit / OAuth2 fields, optional secrets, updatable
    /// chunking (docs/reference/elasticsearch-inference-api.md#update-by-version).
    pub fn v95(self) -> bool {
        self.at_least(9, 5)
    }
    /// The unknown-settings message dropped its `Model ` prefix "≈9.2/9.3"
    /// (docs/reference/elasticsearch-inference-api.md#error-table); we switch at 9.2 (inferred).
    pub fn new_unknown_settings_wording(self) -> bool {
        self.at_least(9, 2)
    }
    /// Completion endpoints are validated against the provider on create from 8.18.0 / 9.0.0:
    /// elastic/elasticsearch PR #115020 is listed in the 8.18.0 release notes
    /// (`docs/reference/release-notes/8.18.0.asciidoc`) and in 9.0.0
    /// (`docs/release-notes/index.md`), not in 8.17.0; before it
    /// `AzureOpenAiService.checkModelConfig` validated embeddings only
    /// (docs/reference/elasticsearch-inference-api.md#completion-validated-from-818).
    pub fn validates_completion(self) -> bool {
        self.at_least(8, 18)
    }
    /// CREATE refuses an id still referenced by ingest pipelines or by `semantic_text` fields of
    /// non-empty indices: PR #137055, released in 8.19.7, 9.1.7, 9.2.1 and 9.3.0 (release notes
    /// `docs/reference/release-notes/8.19.7.asciidoc`,
    /// `docs/release-notes/changelog-bundles/9.1.7.yml`, `9.2.1.yml`; 9.3.0 branched after the
    /// merge). The 9.0 line got no backport.
    pub fn refuses_referenced_id_on_create(self) -> bool {
        self.at_least_patch(8, 19, 7) && self.major == 8
            || self.at_least_patch(9, 1, 7) && self.minor == 1 && self.major == 9
            || self.at_least_patch(9, 2, 1) && self.minor == 2 && self.major == 9
            || self.at_least(9, 3)
    }
    /// `_update` rewrites `chunking_settings` to word/250/100 (issue #139574): every version with
    /// the update API up to 9.1.x, 9.2.0–9.2.5 and 9.3.0. Fixed by the backports PR #141687 (9.2)
    /// and PR #141682 (9.3), opened 2026-02-02 — after the 9.2.5 (2026-01-31) and 9.3.0
    /// (2026-01-26) changelog bundles were generated, so first released in 9.2.6 / 9.3.1
    /// (inferred: the backports carry no changelog entry) — and in 9.4.0 by PR #140003.
    pub fn update_resets_chunking(self) -> bool {
        self.update_api()
            && match (self.major, self.minor) {
                (8, _) => true,
                (9, 0) | (9, 1) => true,
                (9, 2) => self.patch < 6,
                (9, 3) => self.patch < 1,
                _ => false,
            }
    }
    /// 9.4+ `_update` returns the stored endpoint without calling the provider when the request
    /// changes nothing (inferred: stated in issue 9; the early return itself was not found in
    /// PR #140003's code: docs/reference/elasticsearch-inference-api.md#update-by-version).
    pub fn update_skips_unchanged(self) -> bool {
        self.v94()
    }
    /// 9.5 `_update` accepts `max_input_tokens` for azureopenai embeddings (inferred: from PR #145233 and
    /// its siblings for other services, release 9.5:
    /// docs/reference/elasticsearch-inference-api.md#update-by-version).
    pub fn update_accepts_max_input_tokens(self) -> bool {
        self.v95()
    }

    /// `self >= major.minor.patch`.
    fn at_least_patch(self, major: u32, minor: u32, patch: u32) -> bool {
        (self.major, self.minor, self.patch) >= (major, minor, patch)
    }

    pub(crate) fn lucene_version(self) -> &'static str {
        // (inferred) approximate mapping; only informational in `GET /`.
        match (self.major, self.minor) {
            (8, m) if m <= 15 => "9.11.1",
            (8, 16) | (8, 17) => "9.12.0",
            (8, _) => "9.12.2",
            (9, 0) => "10.1.0",
            (9, 1) | (9, 2) => "10.2.2",
            _ => "10.3.1",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates() {
        let v = EsVersion::parse;
        assert!(v("8.19.3").put_timeout());
        assert!(!v("9.0.0").put_timeout());
        assert!(v("9.1.0").put_timeout());
        assert!(!v("8.18.0").put_timeout());
        assert!(v("9.3.0").azure_chat_completion());
        assert!(!v("9.2.4").azure_chat_completion());
        assert!(v("8.17.0").update_api() && !v("8.16.9").update_api());
        assert_eq!(v("9.5.0-SNAPSHOT"), EsVersion::new(9, 5, 0));
    }

    #[test]
    fn patch_level_gates() {
        let v = EsVersion::parse;
        for (s, on) in [
            ("8.19.6", false),
            ("8.19.7", true),
            ("9.0.8", false),
            ("9.1.6", false),
            ("9.1.7", true),
            ("9.2.0", false),
            ("9.2.1", true),
            ("9.3.0", true),
        ] {
            assert_eq!(v(s).refuses_referenced_id_on_create(), on, "{s}");
        }
        for (s, on) in [
            ("8.16.0", false),
            ("8.17.0", true),
            ("9.1.9", true),
            ("9.2.5", true),
            ("9.2.6", false),
            ("9.3.0", true),
            ("9.3.1", false),
            ("9.4.0", false),
        ] {
            assert_eq!(v(s).update_resets_chunking(), on, "{s}");
        }
        assert!(v("8.19.0").none_chunking() && !v("8.19.0").recursive_chunking());
        assert!(!v("9.0.5").none_chunking());
        assert!(v("8.18.0").validates_completion() && !v("8.17.9").validates_completion());
    }
}
