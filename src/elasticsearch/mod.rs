//! Elasticsearch inference-endpoint client.
//!
//! Everything the operator needs to talk to the `_inference` API lives here:
//!
//! * [`version`]: the cluster version and the feature gates derived from it;
//! * [`error`]: one typed error built from the Elasticsearch error envelope or from a transport
//!   failure, with a stable condition reason and a transient/permanent split;
//! * [`body`]: the request bodies for create and `_update` (redacted in `Debug`), built from the
//!   desired endpoint ([`EndpointConfig`]) and the credential ([`ServiceSecret`]), which, like
//!   [`TaskType`], belong to the domain model in [`crate::endpoint`];
//! * [`normalize`]: a pure comparison of desired vs observed (GET) configuration;
//! * [`service`]: the small table of per-service defaults (only `azureopenai` today);
//! * [`client`]: the HTTP client ([`EsClient`]).
//!
//! The module never depends on `crate::api` or `crate::controller`.
//! Facts come from docs/reference/elasticsearch-inference-api.md (cited by section anchor)
//! and docs/reference/elasticsearch-services.md.

pub mod body;
pub mod client;
pub mod error;
pub mod normalize;
pub mod probe;
pub mod service;
pub mod version;

pub use crate::endpoint::{TaskType, UnknownTaskType};
pub use body::{
    create_body, unsupported_features, update_body, BodyError, Endpoint, EndpointConfig,
    RequestBody, ServiceSecret,
};
pub use client::{
    Auth, ClusterInfo, ConnectionConfig, DeleteOptions, DeleteOutcome, DeleteResponse,
    DeploymentStats, EsClient,
};
pub use error::{ApiError, ErrorCause, ErrorClass, EsError};
pub use normalize::{compare, identity_matches, Difference};
pub use service::ServiceProfile;
pub use version::EsVersion;
