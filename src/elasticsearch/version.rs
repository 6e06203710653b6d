//! Elasticsearch version and the feature gates the operator needs.
//!
//! Gates follow `shared/reference/elasticsearch-inference-api.md` §5 (version history). Where the
//! reference marks a version as inferred, the gate takes the conservative (later) version.

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
        self.at_least(8, 17)
    }

    /// PUT accepts `?timeout=` (8.19 on the 8.x line, 9.1 on 9.x; 9.0 does not).
    pub const fn supports_put_timeout_param(&self) -> bool {
        if self.major == 8 {
            self.minor >= 19
        } else {
            self.at_least(9, 1)
        }
    }

    /// `_update` accepts `?timeout=` (9.5).
    pub const fn supports_update_timeout_param(&self) -> bool {
        self.at_least(9, 5)
    }

    /// `chunking_settings` is accepted on create (8.16).
    pub const fn supports_chunking_settings(&self) -> bool {
        self.at_least(8, 16)
    }

    /// Whether a chunking strategy is known to this version. `sentence`/`word` came with
    /// chunking settings (8.16); `recursive`/`none` with 9.1. The reference is unsure whether
    /// 8.19 got `recursive`/`none` as a backport, so 8.19 is treated as not supporting them.
    pub fn supports_chunking_strategy(&self, strategy: &str) -> bool {
        match strategy {
            "sentence" | "word" => self.supports_chunking_settings(),
            "recursive" | "none" => self.at_least(9, 1),
            _ => false,
        }
    }

    /// `azureopenai` task-type availability: text_embedding 8.14, completion 8.15,
    /// chat_completion 9.3. (Other services: see [`super::service::ServiceProfile`].)
    pub const fn supports_task_type(&self, task: TaskType) -> bool {
        match task {
            TaskType::TextEmbedding => self.at_least(8, 14),
            TaskType::Completion => self.at_least(8, 15),
            TaskType::ChatCompletion => self.at_least(9, 3),
        }
    }

    /// `task_settings.headers` for azureopenai (9.4).
    pub const fn supports_task_setting_headers(&self) -> bool {
        self.at_least(9, 4)
    }

    /// OAuth2 client credentials for azureopenai (9.4).
    pub const fn supports_oauth2(&self) -> bool {
        self.at_least(9, 4)
    }

    /// `_update` calls the provider before persisting (9.4): bad keys are rejected, and each
    /// update costs a provider call.
    pub const fn update_validates_with_provider(&self) -> bool {
        self.at_least(9, 4)
    }

    /// `_update` with `"key": null` in `task_settings` clears that task setting (9.4). Before
    /// that, task settings are merged and a key cannot be removed in place.
    pub const fn update_can_clear_task_settings(&self) -> bool {
        self.at_least(9, 4)
    }

    /// `_update` accepts mutable service settings (`rate_limit`, OAuth2 non-secret fields) and
    /// makes the secret optional (9.5; the reference marks the release as inferred).
    pub const fn update_accepts_service_settings(&self) -> bool {
        self.at_least(9, 5)
    }

    /// `_update` accepts `chunking_settings` with replace semantics (9.5, inferred).
    pub const fn update_accepts_chunking_settings(&self) -> bool {
        self.at_least(9, 5)
    }

    /// DELETE understands `dry_run` and `force` (8.15).
    pub const fn supports_delete_options(&self) -> bool {
        self.at_least(8, 15)
    }

    /// The server-side timeout of a PUT (validation call + storage): 30 s, or 120 s for
    /// completion/chat_completion on 9.5+.
    pub const fn put_server_timeout(&self, task: TaskType) -> Duration {
        match task {
            TaskType::Completion | TaskType::ChatCompletion if self.at_least(9, 5) => {
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
        assert!(!v("8.19.5").supports_chunking_strategy("none"));
        assert!(!v("9.0.0").supports_chunking_strategy("none"));
        assert!(v("9.1.0").supports_chunking_strategy("recursive"));
        assert!(v("9.1.0").supports_chunking_strategy("none"));
        assert!(!v("9.5.0").supports_chunking_strategy("paragraph"));
        assert!(!v("9.4.0").update_accepts_chunking_settings());
        assert!(v("9.5.0").update_accepts_chunking_settings());
    }

    #[test]
    fn task_type_gates() {
        assert!(!v("8.13.4").supports_task_type(TaskType::TextEmbedding));
        assert!(v("8.14.0").supports_task_type(TaskType::TextEmbedding));
        assert!(!v("8.14.3").supports_task_type(TaskType::Completion));
        assert!(v("8.15.0").supports_task_type(TaskType::Completion));
        assert!(!v("8.19.0").supports_task_type(TaskType::ChatCompletion));
        assert!(!v("9.2.9").supports_task_type(TaskType::ChatCompletion));
        assert!(v("9.3.0").supports_task_type(TaskType::ChatCompletion));
    }

    #[test]
    fn nine_four_gates() {
        for (s, on) in [("9.3.5", false), ("9.4.0", true), ("8.19.9", false)] {
            let ver = v(s);
            assert_eq!(ver.supports_task_setting_headers(), on, "{s}");
            assert_eq!(ver.supports_oauth2(), on, "{s}");
            assert_eq!(ver.update_validates_with_provider(), on, "{s}");
            assert_eq!(ver.update_can_clear_task_settings(), on, "{s}");
        }
        assert!(!v("9.4.0").update_accepts_service_settings());
        assert!(v("9.5.0").update_accepts_service_settings());
        assert!(!v("8.14.0").supports_delete_options());
        assert!(v("8.15.0").supports_delete_options());
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
