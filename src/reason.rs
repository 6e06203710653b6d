//! Every condition reason the operator writes, in one table.
//!
//! A reason is API: it is the `reason` of the `Ready`, `Reconciling`, `Stalled` and
//! `InsecureTransport` conditions, the reason of the Events, and what users' alerts and scripts
//! match on. Its text never changes once released. Each reason has one [`Kind`], so whether an
//! outcome is ready, retried or waits is read off the reason, never decided by comparing text.
//! `docs/lifecycle.md` documents every one (a test checks it).
//!
//! The table lives outside `controller` and `elasticsearch` so that both (and `secrets`) name
//! their reasons without depending on each other.

/// What a reason says about the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `Ready=True`: the endpoint exists as desired (or, at deletion, was dealt with).
    Ready,
    /// `Ready=False`, `Reconciling=True`: retried with backoff.
    Transient,
    /// `Ready=False`, `Stalled=True`: waits for a change of the object or of a Secret.
    Permanent,
    /// `InsecureTransport=True`: the connection works but is unsafe; Ready is unaffected.
    Warning,
    /// A reason of the `Healthy` condition only (the live probe); Ready is unaffected.
    Health,
}

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident => $text:literal, $kind:ident;)*) => {
        /// A condition reason (see the module documentation).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, in table order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The stable CamelCase text written to conditions, Events and logs.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $text,)*
                }
            }

            pub const fn kind(self) -> Kind {
                match self {
                    $(Reason::$variant => Kind::$kind,)*
                }
            }
        }
    };
}

reasons! {
    // Ready.
    /// The endpoint was created.
    Created => "Created", Ready;
    /// The endpoint this object owned was missing and has been created again.
    Recreated => "Recreated", Ready;
    /// Nothing to do: the endpoint matches the spec.
    InSync => "InSync", Ready;
    /// An equal endpoint this object did not create now uses the referenced credential.
    Adopted => "Adopted", Ready;
    /// Settings were changed in place.
    Updated => "Updated", Ready;
    /// The rotated credential was pushed through `_update`.
    CredentialsRotated => "CredentialsRotated", Ready;
    /// An `_update` made Elasticsearch rewrite the chunking (elastic/elasticsearch#139574).
    ChunkingReset => "ChunkingReset", Ready;
    /// At deletion: the endpoint was deleted (or there was none to delete).
    Deleted => "Deleted", Ready;
    /// At deletion: `deletionPolicy: Retain` left the endpoint in Elasticsearch.
    Retained => "Retained", Ready;

    // Transient: retried with backoff.
    ElasticsearchUnreachable => "ElasticsearchUnreachable", Transient;
    ElasticsearchTimeout => "ElasticsearchTimeout", Transient;
    ElasticsearchTlsFailed => "ElasticsearchTLSFailed", Transient;
    ElasticsearchUnavailable => "ElasticsearchUnavailable", Transient;
    RateLimited => "RateLimited", Transient;
    AzureRateLimited => "AzureRateLimited", Transient;
    AzureUnavailable => "AzureUnavailable", Transient;
    AzureTimeout => "AzureTimeout", Transient;
    AzureUnreachable => "AzureUnreachable", Transient;
    /// The provider of a service other than Azure OpenAI rate-limited, failed, timed out or
    /// could not be reached during Elasticsearch's validation call.
    ProviderRateLimited => "ProviderRateLimited", Transient;
    ProviderUnavailable => "ProviderUnavailable", Transient;
    ProviderTimeout => "ProviderTimeout", Transient;
    ProviderUnreachable => "ProviderUnreachable", Transient;
    /// PUT found the id taken: GET again and compare.
    AlreadyExists => "AlreadyExists", Transient;
    /// An in-cluster model (`elasticsearch`, `elser`) is still being deployed on the ML nodes:
    /// the endpoint is created or being created; polled at a fixed interval, not with backoff.
    ModelDeploying => "ModelDeploying", Transient;
    /// DELETE refused while pipelines or indexes use the endpoint.
    InUse => "InUse", Transient;
    UnexpectedResponse => "UnexpectedResponse", Transient;
    KubernetesApiError => "KubernetesApiError", Transient;
    /// The deletion waits for the endpoint's users to go (or the force-delete annotation).
    DeletionBlocked => "DeletionBlocked", Transient;

    // Permanent: waits for a change.
    ElasticsearchAuthFailed => "ElasticsearchAuthFailed", Permanent;
    ElasticsearchForbidden => "ElasticsearchForbidden", Permanent;
    LicenseRequired => "LicenseRequired", Permanent;
    AzureRejectedCredentials => "AzureRejectedCredentials", Permanent;
    AzureDeploymentNotFound => "AzureDeploymentNotFound", Permanent;
    AzureValidationFailed => "AzureValidationFailed", Permanent;
    /// The provider of a service other than Azure OpenAI refused the credentials, did not know
    /// the model, or refused the settings.
    ProviderRejectedCredentials => "ProviderRejectedCredentials", Permanent;
    ProviderNotFound => "ProviderNotFound", Permanent;
    ProviderValidationFailed => "ProviderValidationFailed", Permanent;
    /// The ids' users (pipelines, indices) block a create; re-checked periodically.
    InferenceIdReferenced => "InferenceIdReferenced", Permanent;
    InvalidSettings => "InvalidSettings", Permanent;
    UnsupportedByElasticsearch => "UnsupportedByElasticsearch", Permanent;
    TaskTypeMismatch => "TaskTypeMismatch", Permanent;
    NotFound => "NotFound", Permanent;
    InvalidConnectionConfig => "InvalidConnectionConfig", Permanent;
    ElasticsearchError => "ElasticsearchError", Permanent;
    NotElasticsearch => "NotElasticsearch", Permanent;
    ElasticsearchRedirected => "ElasticsearchRedirected", Permanent;
    SecretNotFound => "SecretNotFound", Permanent;
    SecretNotAllowed => "SecretNotAllowed", Permanent;
    SecretKeyMissing => "SecretKeyMissing", Permanent;
    SecretKeyInvalid => "SecretKeyInvalid", Permanent;
    SecretForbidden => "SecretForbidden", Permanent;
    InvalidCredentialsSecret => "InvalidCredentialsSecret", Permanent;
    InvalidSpec => "InvalidSpec", Permanent;
    ElasticsearchUrlNotAllowed => "ElasticsearchUrlNotAllowed", Permanent;
    CrossNamespaceRefDenied => "CrossNamespaceRefDenied", Permanent;
    /// The ECK `Elasticsearch` gives no consent; re-checked periodically.
    CrossNamespaceRefNotAllowed => "CrossNamespaceRefNotAllowed", Permanent;
    UnsupportedByCluster => "UnsupportedByCluster", Permanent;
    RotationUnsupported => "RotationUnsupported", Permanent;
    ImmutableFieldChanged => "ImmutableFieldChanged", Permanent;
    RecreateBlocked => "RecreateBlocked", Permanent;
    /// Another object manages the endpoint; re-checked periodically.
    Conflict => "Conflict", Permanent;
    /// Another cluster answers at the address; re-checked periodically.
    ClusterChanged => "ClusterChanged", Permanent;
    /// A rotated credential was refused by the provider (by Elasticsearch's own validation on
    /// 9.4+, or by the operator's probe after `_update`, then rolled back): the previous key stays
    /// in use; waits for the Secret to change.
    CredentialsRejected => "CredentialsRejected", Permanent;

    // Warnings (condition InsecureTransport).
    PlaintextCredentials => "PlaintextCredentials", Warning;
    TlsVerificationDisabled => "TlsVerificationDisabled", Warning;
    // Warning (condition UnknownService).
    NotInServiceTable => "NotInServiceTable", Warning;

    // Health (condition Healthy; the failures reuse the provider reasons above).
    /// The probe's inference call succeeded.
    ProbeSucceeded => "ProbeSucceeded", Health;
    /// The provider answered the probe with an error no other reason names.
    ProviderError => "ProviderError", Health;
    /// Health checks are on but the endpoint was not probed yet (or is not Ready).
    NotProbed => "NotProbed", Health;
}

impl Reason {
    /// The reason whose text is `text` (a condition read back from status), if it is one.
    pub fn parse(text: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == text)
    }

    pub const fn is_ready(self) -> bool {
        matches!(self.kind(), Kind::Ready)
    }

    /// Permanent failures that something other than this object or its Secrets can resolve
    /// (another object letting go of the endpoint, the original cluster coming back, consent on
    /// an ECK `Elasticsearch`, which is not watched either, an id whose last user goes): these
    /// are re-checked at the periodic interval instead of waiting for a change that never comes.
    pub const fn resolves_elsewhere(self) -> bool {
        matches!(
            self,
            Reason::Conflict
                | Reason::ClusterChanged
                | Reason::CrossNamespaceRefNotAllowed
                | Reason::InferenceIdReferenced
        )
    }

    /// The reason as `service` names it: Azure OpenAI keeps its own provider reasons.
    pub fn for_service(self, service: &str) -> Reason {
        if service != "azureopenai" {
            return self;
        }
        match self {
            Reason::ProviderRejectedCredentials => Reason::AzureRejectedCredentials,
            Reason::ProviderNotFound => Reason::AzureDeploymentNotFound,
            Reason::ProviderValidationFailed => Reason::AzureValidationFailed,
            Reason::ProviderRateLimited => Reason::AzureRateLimited,
            Reason::ProviderUnavailable => Reason::AzureUnavailable,
            Reason::ProviderTimeout => Reason::AzureTimeout,
            Reason::ProviderUnreachable => Reason::AzureUnreachable,
            other => other,
        }
    }

    /// Whether an Event with this reason is a Warning: every failure, and the one Ready reason
    /// that leaves the endpoint working but changed. A model being deployed is progress, not a
    /// failure: a Normal Event.
    pub const fn warns(self) -> bool {
        (!self.is_ready()
            && !matches!(
                self,
                Reason::ModelDeploying | Reason::ProbeSucceeded | Reason::NotProbed
            ))
            || matches!(self, Reason::ChunkingReset)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_unique_and_read_back() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(*reason));
        }
        let mut texts: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), Reason::ALL.len(), "two reasons share a text");
        assert_eq!(Reason::parse("NoSuchReason"), None);
    }

    #[test]
    fn a_deploying_model_is_progress_not_a_failure() {
        let r = Reason::ModelDeploying;
        assert_eq!(r.kind(), Kind::Transient);
        assert!(!r.is_ready());
        assert!(!r.warns(), "a Normal Event");
        assert!(Reason::AlreadyExists.warns());
    }

    #[test]
    fn lifecycle_doc_documents_every_reason() {
        let doc = include_str!("../docs/lifecycle.md");
        let missing: Vec<_> = Reason::ALL
            .iter()
            .map(|r| r.as_str())
            .filter(|text| !doc.contains(&format!("`{text}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/lifecycle.md does not name {missing:?}"
        );
    }
}
