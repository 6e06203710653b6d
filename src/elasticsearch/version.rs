//! Elasticsearch version and the feature gates the operator needs.
//!
//! Facts: docs/reference/elasticsearch-inference-api.md#version-history. Where that history is
//! inferred, the gate takes the conservative (later) version, except `CHUNKING_KEPT_ON_UPDATE`,
//! which takes the earliest release that can hold the fix (see there). Fixes and features that
//! Elasticsearch backported into patch releases are gated on the full `major.minor.patch` through
//! the [`Since`] rows below, each citing its release notes
//! (docs/reference/elasticsearch-inference-api.md#patch-releases).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::TaskType;

/// A released Elasticsearch version (`major.minor.patch`). Pre-release suffixes such as
/// `-SNAPSHOT` or `-beta1` are accepted and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EsVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// The version string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse Elasticsearch version [{0}]")]
pub struct VersionParseError(pub String);

/// Server-side default timeout of PUT (and of the 9.4+ update validation call).
const DEFAULT_SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// 9.5+ default PUT timeout for `completion` / `chat_completion`.
const COMPLETION_SERVER_TIMEOUT_9_5: Duration = Duration::from_secs(120);

/// Since when Elasticsearch has a feature: every release from `from` (major, minor) on, and
/// the release lines it was backported to from the given patch. Every version gate of the
/// operator is one `Since`: the generic ones in the table below, the per-service ones in
/// [`super::service::ServiceProfile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Since {
    pub from: (u32, u32),
    pub backports: &'static [(u32, u32, u32)],
}

impl Since {
    /// From `major.minor.0` on, no backports.
    pub const fn release(major: u32, minor: u32) -> Since {
        Since {
            from: (major, minor),
            backports: &[],
        }
    }

    pub const fn contains(&self, v: &EsVersion) -> bool {
        if v.at_least(self.from.0, self.from.1) {
            return true;
        }
        let mut i = 0;
        while i < self.backports.len() {
            let (major, minor, patch) = self.backports[i];
            if v.major == major && v.minor == minor && v.patch >= patch {
                return true;
            }
            i += 1;
        }
        false
    }
}

// The generic gates of the inference API, one row each
// (docs/reference/elasticsearch-inference-api.md#version-history).

/// `PUT _inference/{task}/{id}/_update` exists.
const UPDATE_API: Since = Since::release(8, 17);
/// PUT accepts `?timeout=` (8.19 on the 8.x line, 9.1 on 9.x; 9.0 does not).
const PUT_TIMEOUT_PARAM: Since = Since {
    from: (9, 1),
    backports: &[(8, 19, 0)],
};
/// `_update` accepts `?timeout=`.
const UPDATE_TIMEOUT_PARAM: Since = Since::release(9, 5);
/// `chunking_settings` on create, with strategies `sentence` and `word`.
const CHUNKING_SETTINGS: Since = Since::release(8, 16);
/// Chunking strategy `recursive` (PR #126866; no 8.19 backport).
const RECURSIVE_CHUNKING: Since = Since::release(9, 1);
/// Chunking strategy `none` (PR #129150; on 8.19 through the backport PR #129324, "[8.19] Add
/// `none` chunking strategy"). 9.0 has neither.
const NONE_CHUNKING: Since = Since {
    from: (9, 1),
    backports: &[(8, 19, 0)],
};
/// `_update` calls the provider before persisting, and `"key": null` in `task_settings` clears
/// that task setting.
const UPDATE_VALIDATES_AND_CLEARS: Since = Since::release(9, 4);
/// `_update` accepts mutable service settings and `chunking_settings` (replace semantics), the
/// secret optional (inferred: docs/reference/elasticsearch-inference-api.md#update-by-version).
const UPDATE_SERVICE_AND_CHUNKING_SETTINGS: Since = Since::release(9, 5);
/// DELETE understands `dry_run` and `force`; the dry run lists referencing pipelines (and, from
/// 8.16, indices whose `semantic_text` fields use the endpoint).
const DELETE_OPTIONS: Since = Since::release(8, 15);
/// The dry-run DELETE also lists the indexes whose `semantic_text` fields use the endpoint (the
/// `indexes` field; elastic/elasticsearch PR #110487, which PR #111626 says is 8.16, not 8.15:
/// docs/reference/elasticsearch-inference-api.md#used-by).
const DELETE_LISTS_INDEXES: Since = Since::release(8, 16);
/// GET shows `rate_limit` (8.14 did not).
const GET_SHOWS_RATE_LIMIT: Since = Since::release(8, 15);
/// `completion`/`chat_completion` PUTs wait 120 s instead of 30 s.
const LONG_COMPLETION_PUT_TIMEOUT: Since = Since::release(9, 5);

/// CREATE refuses an id still referenced by ingest pipelines or `semantic_text` fields of
/// non-empty indices (elastic/elasticsearch PR #137055, "Do not create inference endpoint if ID is
/// used in existing mappings"): `docs/reference/release-notes/8.19.7.asciidoc`,
/// `docs/release-notes/changelog-bundles/9.1.7.yml` and `9.2.1.yml`; 9.3.0 was cut after the
/// merge. The 9.0 line got no backport.
const REFERENCED_ID_REFUSAL: Since = Since {
    backports: &[(8, 19, 7), (9, 1, 7), (9, 2, 1)],
    from: (9, 3),
};

/// `_update` keeps `chunking_settings` (fix of issue #139574): PR #140003 in 9.4.0
/// (`changelog-bundles/9.4.0.yml`), backports PR #141687 (9.2) and PR #141682 (9.3), opened
/// 2026-02-02, after the 9.2.5 (2026-01-31) and 9.3.0 (2026-01-26) bundles were generated:
/// first in 9.2.6 and 9.3.1 at the earliest, which is what this gate takes (inferred: the
/// backports carry no changelog entry of their own;
/// docs/reference/elasticsearch-inference-api.md#update-chunking-reset).
const CHUNKING_KEPT_ON_UPDATE: Since = Since {
    backports: &[(9, 2, 6), (9, 3, 1)],
    from: (9, 4),
};

impl EsVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parse `version.number` from `GET /` (e.g. `9.1.3`, `8.19.0-SNAPSHOT`, `9.0.0-beta1`).
    /// A missing patch (`9.1`) is read as `.0`.
    pub fn parse(s: &str) -> Result<Self, VersionParseError> {
        let err = || VersionParseError(s.to_owned());
        let core = s.trim().split(['-', '+']).next().ok_or_else(err)?;
        let mut parts = core.split('.');
        let mut num = |required: bool| -> Result<u32, VersionParseError> {
            match parts.next() {
                Some(p) => p.parse::<u32>().map_err(|_| err()),
                None if required => Err(err()),
                None => Ok(0),
            }
        };
        let major = num(true)?;
        let minor = num(true)?;
        let patch = num(false)?;
        Ok(Self::new(major, minor, patch))
    }

    /// `self >= major.minor.0`.
    pub const fn at_least(&self, major: u32, minor: u32) -> bool {
        self.major > major || (self.major == major && self.minor >= minor)
    }

    /// `PUT _inference/{task}/{id}/_update` exists (8.17).
    pub const fn supports_update_api(&self) -> bool {
        UPDATE_API.contains(self)
    }

    /// PUT accepts `?timeout=` (8.19 on the 8.x line, 9.1 on 9.x; 9.0 does not).
    pub const fn supports_put_timeout_param(&self) -> bool {
        PUT_TIMEOUT_PARAM.contains(self)
    }

    /// `_update` accepts `?timeout=` (9.5).
    pub const fn supports_update_timeout_param(&self) -> bool {
        UPDATE_TIMEOUT_PARAM.contains(self)
    }

    /// `chunking_settings` is accepted on create (8.16).
    pub const fn supports_chunking_settings(&self) -> bool {
        CHUNKING_SETTINGS.contains(self)
    }

    /// Whether a chunking strategy is known to this version.
    pub fn supports_chunking_strategy(&self, strategy: &str) -> bool {
        match strategy {
            "sentence" | "word" => CHUNKING_SETTINGS.contains(self),
            "recursive" => RECURSIVE_CHUNKING.contains(self),
            "none" => NONE_CHUNKING.contains(self),
            _ => false,
        }
    }

    /// CREATE refuses an id that pipelines or non-empty `semantic_text` indices still use.
    pub const fn refuses_referenced_id_on_create(&self) -> bool {
        REFERENCED_ID_REFUSAL.contains(self)
    }

    /// `_update` rewrites `chunking_settings` to word/250/100 (issue #139574): every version with
    /// the update API before the fix.
    pub const fn update_resets_chunking(&self) -> bool {
        self.supports_update_api() && !CHUNKING_KEPT_ON_UPDATE.contains(self)
    }

    /// `_update` calls the provider before persisting (9.4): bad keys are rejected, and each
    /// update costs a provider call.
    pub const fn update_validates_with_provider(&self) -> bool {
        UPDATE_VALIDATES_AND_CLEARS.contains(self)
    }

    /// `_update` with `"key": null` in `task_settings` clears that task setting (9.4). Before
    /// that, task settings are merged and a key cannot be removed in place.
    pub const fn update_can_clear_task_settings(&self) -> bool {
        UPDATE_VALIDATES_AND_CLEARS.contains(self)
    }

    /// `_update` accepts mutable service settings (`rate_limit`, OAuth2 non-secret fields) and
    /// makes the secret optional (9.5, inferred:
    /// docs/reference/elasticsearch-inference-api.md#update-by-version).
    pub const fn update_accepts_service_settings(&self) -> bool {
        UPDATE_SERVICE_AND_CHUNKING_SETTINGS.contains(self)
    }

    /// `_update` accepts `chunking_settings` with replace semantics (9.5, inferred:
    /// docs/reference/elasticsearch-inference-api.md#update-by-version).
    pub const fn update_accepts_chunking_settings(&self) -> bool {
        UPDATE_SERVICE_AND_CHUNKING_SETTINGS.contains(self)
    }

    /// DELETE understands `dry_run` and `force` (8.15).
    pub const fn supports_delete_options(&self) -> bool {
        DELETE_OPTIONS.contains(self)
    }

    /// The dry-run DELETE lists the endpoint's users: ingest pipelines (8.15).
    pub const fn lists_endpoint_users(&self) -> bool {
        DELETE_OPTIONS.contains(self)
    }

    /// The dry-run DELETE also lists the indexes whose `semantic_text` fields use the endpoint
    /// (8.16).
    pub const fn lists_index_users(&self) -> bool {
        DELETE_LISTS_INDEXES.contains(self)
    }

    /// GET shows `rate_limit` (8.15; 8.14 did not).
    pub const fn shows_rate_limit(&self) -> bool {
        GET_SHOWS_RATE_LIMIT.contains(self)
    }

    /// The server-side timeout of a PUT (validation call + storage): 30 s, or 120 s for
    /// completion/chat_completion on 9.5+.
    pub const fn put_server_timeout(&self, task: TaskType) -> Duration {
        match task {
            TaskType::Completion | TaskType::ChatCompletion
                if LONG_COMPLETION_PUT_TIMEOUT.contains(self) =>
            {
                COMPLETION_SERVER_TIMEOUT_9_5
            }
            _ => DEFAULT_SERVER_TIMEOUT,
        }
    }

    /// The server-side timeout of an `_update` that calls the provider (9.4+; hard-coded 30 s in
    /// 9.4, `?timeout=` default 30 s in 9.5). `None` when the update does not call the provider.
    pub const fn update_server_timeout(&self) -> Option<Duration> {
        if self.update_validates_with_provider() {
            Some(DEFAULT_SERVER_TIMEOUT)
        } else {
            None
        }
    }
}

impl FromStr for EsVersion {
    type Err = VersionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for EsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> EsVersion {
        EsVersion::parse(s).unwrap()
    }

    #[test]
    fn parses_release_and_suffixes() {
        assert_eq!(v("8.15.3"), EsVersion::new(8, 15, 3));
        assert_eq!(v("8.19.0-SNAPSHOT"), EsVersion::new(8, 19, 0));
        assert_eq!(v("9.0.0-beta1"), EsVersion::new(9, 0, 0));
        assert_eq!(v(" 9.1 "), EsVersion::new(9, 1, 0));
        assert_eq!(v("9.2.1+build.7"), EsVersion::new(9, 2, 1));
        assert_eq!(v("10.0.0").to_string(), "10.0.0");
        for bad in ["", "9", "x.y.z", "9.a.1", "-SNAPSHOT", "9..1"] {
            assert!(EsVersion::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn ordering_is_numeric() {
        assert!(v("8.9.0") < v("8.10.0"));
        assert!(v("8.19.9") < v("9.0.0"));
        assert!(v("9.1.0") > v("9.0.10"));
        assert_eq!(v("8.17.0-SNAPSHOT"), v("8.17.0"));
    }

    #[test]
    fn endpoint_users_gates() {
        assert!(!v("8.14.3").lists_endpoint_users());
        assert!(v("8.15.0").lists_endpoint_users() && !v("8.15.5").lists_index_users());
        assert!(v("8.16.0").lists_index_users() && v("9.0.0").lists_index_users());
    }

    #[test]
    fn update_api_gate() {
        assert!(!v("8.16.6").supports_update_api());
        assert!(v("8.17.0").supports_update_api());
        assert!(v("9.0.0").supports_update_api());
    }

    #[test]
    fn put_timeout_gate() {
        assert!(!v("8.18.2").supports_put_timeout_param());
        assert!(v("8.19.0").supports_put_timeout_param());
        assert!(!v("9.0.4").supports_put_timeout_param());
        assert!(v("9.1.0").supports_put_timeout_param());
        assert!(v("10.0.0").supports_put_timeout_param());
        assert!(!v("9.4.0").supports_update_timeout_param());
        assert!(v("9.5.0").supports_update_timeout_param());
    }

    #[test]
    fn chunking_gates() {
        assert!(!v("8.15.0").supports_chunking_settings());
        assert!(v("8.16.0").supports_chunking_settings());
        assert!(v("8.16.0").supports_chunking_strategy("sentence"));
        assert!(v("8.16.0").supports_chunking_strategy("word"));
        assert!(!v("8.16.0").supports_chunking_strategy("recursive"));
        assert!(!v("8.19.5").supports_chunking_strategy("recursive"));
        assert!(v("8.19.0").supports_chunking_strategy("none"));
        assert!(!v("8.18.9").supports_chunking_strategy("none"));
        assert!(!v("9.0.0").supports_chunking_strategy("none"));
        assert!(v("9.1.0").supports_chunking_strategy("recursive"));
        assert!(v("9.1.0").supports_chunking_strategy("none"));
        assert!(!v("9.5.0").supports_chunking_strategy("paragraph"));
        assert!(!v("9.4.0").update_accepts_chunking_settings());
        assert!(v("9.5.0").update_accepts_chunking_settings());
    }

    #[test]
    fn nine_four_gates() {
        for (s, on) in [("9.3.5", false), ("9.4.0", true), ("8.19.9", false)] {
            let ver = v(s);
            assert_eq!(ver.update_validates_with_provider(), on, "{s}");
            assert_eq!(ver.update_can_clear_task_settings(), on, "{s}");
        }
        assert!(!v("9.4.0").update_accepts_service_settings());
        assert!(v("9.5.0").update_accepts_service_settings());
        assert!(!v("8.14.0").supports_delete_options());
        assert!(v("8.15.0").supports_delete_options());
    }

    #[test]
    fn patch_release_gates() {
        for (s, on) in [
            ("8.19.6", false),
            ("8.19.7", true),
            ("9.0.8", false),
            ("9.1.6", false),
            ("9.1.7", true),
            ("9.2.0", false),
            ("9.2.1", true),
            ("9.3.0", true),
            ("10.0.0", true),
        ] {
            assert_eq!(v(s).refuses_referenced_id_on_create(), on, "{s}");
        }
        for (s, on) in [
            ("8.16.9", false),
            ("8.17.0", true),
            ("8.19.12", true),
            ("9.1.9", true),
            ("9.2.5", true),
            ("9.2.6", false),
            ("9.3.0", true),
            ("9.3.1", false),
            ("9.4.0", false),
        ] {
            assert_eq!(v(s).update_resets_chunking(), on, "{s}");
        }
    }

    #[test]
    fn server_timeouts() {
        let s30 = Duration::from_secs(30);
        let s120 = Duration::from_secs(120);
        assert_eq!(v("9.4.0").put_server_timeout(TaskType::Completion), s30);
        assert_eq!(v("9.5.0").put_server_timeout(TaskType::Completion), s120);
        assert_eq!(
            v("9.5.0").put_server_timeout(TaskType::ChatCompletion),
            s120
        );
        assert_eq!(v("9.5.0").put_server_timeout(TaskType::TextEmbedding), s30);
        assert_eq!(v("8.15.0").put_server_timeout(TaskType::TextEmbedding), s30);
        assert_eq!(v("9.3.0").update_server_timeout(), None);
        assert_eq!(v("9.4.0").update_server_timeout(), Some(s30));
    }
}
