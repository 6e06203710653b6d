//! Emulated Elasticsearch version and the feature gates derived from it (reference §5).

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

    /// `completion` task for azureopenai: 8.15 (§2.1, [I]).
    pub fn azure_completion(self) -> bool {
        self.at_least(8, 15)
    }
    /// `chat_completion` as a *known task type string*: 8.18 [I: unified chat API arrived in 8.18].
    pub fn knows_chat_completion(self) -> bool {
        self.at_least(8, 18)
    }
    /// `chat_completion` supported by azureopenai: 9.3.0 (§2.1).
    pub fn azure_chat_completion(self) -> bool {
        self.at_least(9, 3)
    }
    /// `embedding` task type string: 9.3 (§1.1).
    pub fn knows_embedding(self) -> bool {
        self.at_least(9, 3)
    }
    /// DELETE `dry_run` / `force` and the pipelines check: 8.15 (§1.4).
    pub fn delete_flags(self) -> bool {
        self.at_least(8, 15)
    }
    /// semantic_text reference check and the `indexes` response field: 8.16 (§1.4).
    pub fn index_refs(self) -> bool {
        self.at_least(8, 16)
    }
    /// `chunking_settings`: 8.16 (§2.5).
    pub fn chunking(self) -> bool {
        self.at_least(8, 16)
    }
    /// `recursive` / `none` chunking: 9.1, and 8.19 [I: the reference says "9.1 (8.19?)"].
    pub fn recursive_chunking(self) -> bool {
        self.at_least(9, 1) || (self.major == 8 && self.minor >= 19)
    }
    /// Preconfigured (dotted) default endpoints listed by GET: 8.16 [I].
    pub fn preconfigured(self) -> bool {
        self.at_least(8, 16)
    }
    /// `_update` API: 8.17 (§1.5).
    pub fn update_api(self) -> bool {
        self.at_least(8, 17)
    }
    /// PUT `?timeout=`: 8.19 and 9.1+ (not 9.0) (§1.2, §4.3).
    pub fn put_timeout(self) -> bool {
        (self.major == 8 && self.minor >= 19) || self.at_least(9, 1)
    }
    /// 9.4: new secret messages, OAuth2, task_settings `headers`, update validation call (§2.3, §2.4, §1.5).
    pub fn v94(self) -> bool {
        self.at_least(9, 4)
    }
    /// 9.5: update timeout param, mutable rate_limit / OAuth2 fields, optional secrets, updatable chunking (§1.5, §2.7).
    pub fn v95(self) -> bool {
        self.at_least(9, 5)
    }
    /// The unknown-settings message dropped its `Model ` prefix "≈9.2/9.3" (§3.2); we switch at 9.2 [I].
    pub fn new_unknown_settings_wording(self) -> bool {
        self.at_least(9, 2)
    }
    /// Completion endpoints are only validated against the provider from ~9.0 (§4.1) [I: cut at 9.0].
    pub fn validates_completion(self) -> bool {
        self.at_least(9, 0)
    }

    pub(crate) fn lucene_version(self) -> &'static str {
        // [I] approximate mapping; only informational in `GET /`.
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
}
