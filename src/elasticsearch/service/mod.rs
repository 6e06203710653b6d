//! What the operator knows about each Elasticsearch inference service, as one table
//! ([`table::KNOWN`]): its secret keys and their shape, the task types it offers and since which
//! release, how `_update` rotates its secrets and which of its settings `_update` can change, the
//! settings Elasticsearch fills in itself (not drift when the user left them out), and the
//! version gates of its optional features. Facts and sources:
//! docs/reference/elasticsearch-services.md#catalogue (and, for `azureopenai`,
//! docs/reference/elasticsearch-inference-api.md#azure-service-settings).
//!
//! A service missing from the table still works ([`ServiceProfile::lookup`] answers `None`): the
//! keys the user put under `secretSettings` are its secrets, it is compared only on the keys the
//! user set, and nothing is version-gated.

mod table;

use super::version::Since;
use super::TaskType;

pub use table::KNOWN;

/// Which `service_settings` keys a service treats as secret (the keys its `SecretSettings`
/// class claims), and which of them an endpoint must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKeys {
    /// None: in-cluster models (`elasticsearch`, `elser`) and EIS (`elastic`).
    None,
    /// Exactly one of these strings (`api_key` alone is `OneOf(&["api_key"])`).
    OneOf(&'static [&'static str]),
    /// Every one of these strings, together (the AWS pair).
    AllOf(&'static [&'static str]),
    /// At most one of these strings, or none (an endpoint without a key sends no credential).
    Optional(&'static [&'static str]),
    /// One key whose value is a map of strings (`custom`'s `secret_parameters`), or none.
    Map(&'static str),
}

impl SecretKeys {
    /// Every key the service treats as secret.
    pub fn names(&self) -> &[&'static str] {
        match self {
            SecretKeys::None => &[],
            SecretKeys::OneOf(keys) | SecretKeys::AllOf(keys) | SecretKeys::Optional(keys) => keys,
            SecretKeys::Map(key) => std::slice::from_ref(key),
        }
    }

    /// Whether `key`'s value is a map of strings rather than a string.
    pub fn is_map(&self, key: &str) -> bool {
        matches!(self, SecretKeys::Map(k) if *k == key)
    }

    /// Whether this set of secret keys is one the service accepts; otherwise what it needs, in
    /// words ("exactly one of api_key or client_secret").
    pub fn check(&self, given: &[&str]) -> Result<(), String> {
        let names = self.names();
        let unknown: Vec<&str> = given
            .iter()
            .copied()
            .filter(|k| !names.contains(k))
            .collect();
        let ok = unknown.is_empty()
            && match self {
                SecretKeys::None => given.is_empty(),
                SecretKeys::OneOf(_) => given.len() == 1,
                SecretKeys::AllOf(keys) => given.len() == keys.len(),
                SecretKeys::Optional(_) | SecretKeys::Map(_) => given.len() <= 1,
            };
        if ok {
            Ok(())
        } else {
            Err(self.describe())
        }
    }

    /// What the service takes, in words, for messages.
    pub fn describe(&self) -> String {
        let list = |keys: &[&str], last: &str| match keys {
            [] => String::new(),
            [one] => (*one).to_owned(),
            [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
        };
        match self {
            SecretKeys::None => "no secretSettings".to_owned(),
            SecretKeys::OneOf([one]) => format!("secretSettings {one}"),
            SecretKeys::OneOf(keys) => {
                format!("exactly one of secretSettings {}", list(keys, "or"))
            }
            SecretKeys::AllOf(keys) => format!("secretSettings {}", list(keys, "and")),
            SecretKeys::Optional(keys) => {
                format!("secretSettings {} or none", list(keys, "or"))
            }
            SecretKeys::Map(key) => format!("secretSettings {key} (a whole Secret) or none"),
        }
    }
}

/// A setting that only some releases accept.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    /// `service_settings.<key>` or `task_settings.<key>`.
    pub path: &'static str,
    pub since: Since,
}

/// OAuth2 client credentials of a service (Azure OpenAI from 9.4, PR #143896).
#[derive(Debug, Clone, Copy)]
pub struct OAuth2 {
    /// The secret key of the client secret.
    pub secret: &'static str,
    /// The non-secret `service_settings` keys that come with it.
    pub fields: &'static [&'static str],
    pub since: Since,
}

/// What the operator knows about one Elasticsearch inference `service`.
#[derive(Debug, Clone, Copy)]
pub struct ServiceProfile {
    /// The `service` string in the PUT body.
    pub service: &'static str,
    /// Each task type the service offers and the first release that offers it.
    pub tasks: &'static [(TaskType, Since)],
    /// Its secret `service_settings` keys.
    pub secrets: SecretKeys,
    /// Whether `_update` can rotate the secrets (every secret key is sent together; a map
    /// replaces the stored map). `false`: changing them needs a new endpoint.
    pub rotates_in_place: bool,
    /// Default `rate_limit.requests_per_minute` per task type, filled in by Elasticsearch
    /// (`None`: the service has none, or its default is not in the table — then `rate_limit` is
    /// among [`ServiceProfile::filled_in`]).
    pub default_requests_per_minute: fn(TaskType) -> Option<u64>,
    /// `service_settings` keys Elasticsearch fills in when the user did not set them (defaults,
    /// values learned from the provider), per task type: not drift when absent from the spec.
    pub filled_in: fn(TaskType) -> &'static [&'static str],
    /// `task_settings` keys Elasticsearch fills in when the user did not set them, per task type:
    /// neither drift nor cleared by an `_update`.
    pub filled_in_task_settings: fn(TaskType) -> &'static [&'static str],
    /// Non-secret top-level `service_settings` keys `_update` can change, each from a release
    /// (only to a value: none of them can be removed in place).
    pub updatable: &'static [(&'static str, Since)],
    /// Optional settings only some releases accept.
    pub gates: &'static [Gate],
    /// OAuth2 client credentials, when the service has them.
    pub oauth2: Option<OAuth2>,
    /// Creating the endpoint deploys a model on the cluster's ML nodes, which can take minutes.
    pub deploys_model: bool,
}

impl ServiceProfile {
    /// The profile of a known service.
    pub fn lookup(service: &str) -> Option<&'static ServiceProfile> {
        KNOWN.iter().find(|p| p.service == service)
    }

    /// Default `rate_limit.requests_per_minute`.
    pub fn default_rpm(&self, task: TaskType) -> Option<u64> {
        (self.default_requests_per_minute)(task)
    }

    /// Since when the service offers `task` (`None`: it does not).
    pub fn min_version_for(&self, task: TaskType) -> Option<Since> {
        self.tasks
            .iter()
            .find(|(t, _)| *t == task)
            .map(|(_, since)| *since)
    }

    /// The task types the service offers.
    pub fn task_types(&self) -> impl Iterator<Item = TaskType> + '_ {
        self.tasks.iter().map(|(t, _)| *t)
    }

    /// Since when `_update` can change the non-secret `service_settings.<key>`.
    pub fn updatable_since(&self, key: &str) -> Option<Since> {
        self.updatable
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, since)| *since)
    }

    /// The gate of an optional setting (`task_settings.headers`), if it has one.
    pub fn gate(&self, path: &str) -> Option<Since> {
        self.gates.iter().find(|g| g.path == path).map(|g| g.since)
    }

    /// Whether `key` is one of the OAuth2 non-secret fields.
    pub fn is_oauth2_field(&self, key: &str) -> bool {
        self.oauth2.is_some_and(|o| o.fields.contains(&key))
    }
}

/// Whether two service names are the same service: `elser` is the deprecated alias of
/// `elasticsearch`, and releases differ in which name GET reports
/// (docs/reference/elasticsearch-services.md#in-cluster-deployments).
pub fn same_service(a: &str, b: &str) -> bool {
    fn canonical(s: &str) -> &str {
        if s == "elser" {
            "elasticsearch"
        } else {
            s
        }
    }
    canonical(a) == canonical(b)
}

/// Every secret key name in the table (computed once): with their camelCase spellings, what
/// admission refuses inline in `spec.service.settings`. It knows only the table's names.
pub fn known_secret_names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<&'static str> = KNOWN
            .iter()
            .flat_map(|p| p.secrets.names().iter().copied())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    })
}

/// Whether `key` is a secret `service_settings` key for `service` (for an unknown service:
/// whether any known service treats it as secret). Used to keep such keys out of comparisons.
pub fn is_secret_field(service: &str, key: &str) -> bool {
    match ServiceProfile::lookup(service) {
        Some(p) => p.secrets.names().contains(&key),
        None => known_secret_names().contains(&key),
    }
}

#[cfg(test)]
mod tests;
