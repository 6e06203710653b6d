//! The `InferenceEndpoint` custom resource (`esinference.io/v1alpha1`).
//!
//! This module owns the wire shape of the API: the spec users write, the status the operator
//! reports, and every validation rule the API server can enforce before a request ever reaches
//! Elasticsearch (OpenAPI bounds, enums, patterns, and CEL `x-kubernetes-validations`).
//! The CRD in `crds/` is generated from these types (`inference-operator crd`).
//!
//! Services: Azure OpenAI has a typed block (`azureOpenAI`, camelCase fields checked one by one);
//! every Elasticsearch service, Azure included, can be declared through the generic `service`
//! block, whose settings are Elasticsearch's own snake_case keys passed through and whose secrets
//! come only from Secrets (`secretSettings`). A CEL rule requires exactly one of the two; the
//! rules that depend on the service (its secret keys, its task types) are generated from the
//! service table (`elasticsearch::service`) by [`services`]. Connection, identity, chunking and
//! policy are service independent and live at the top of the spec.

pub mod checks;
mod schema;
pub mod services;
mod validation;

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSON,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::endpoint::TaskType;

/// API group of every kind this operator serves.
pub const GROUP: &str = "esinference.io";
/// Finalizer that keeps the object until its Elasticsearch endpoint has been cleaned up.
pub const FINALIZER: &str = "esinference.io/cleanup";

/// Annotation `"true"`: on deletion, delete the endpoint even while pipelines or
/// `semantic_text` fields reference it (Elasticsearch's `force=true`). Breaks those users.
pub const FORCE_DELETE_ANNOTATION: &str = "esinference.io/force-delete";
/// Annotation `"true"`: take over an endpoint that already exists in Elasticsearch although its
/// settings differ from the spec, changing what can be changed in place.
pub const ADOPT_ANNOTATION: &str = "esinference.io/adopt";
/// Annotation `<cluster UUID>`: accept that the cluster behind the URL changed (rebuilt or
/// replaced) and create the endpoint in the cluster with this UUID.
pub const ACCEPT_CLUSTER_ANNOTATION: &str = "esinference.io/accept-cluster";

pub const SERVICE_BLOCK_MESSAGE: &str = "exactly one of azureOpenAI or service must be set";
pub const AZURE_TASK_TYPES_MESSAGE: &str =
    "azureOpenAI offers taskType text_embedding, completion and chat_completion";
pub const CHUNKING_TASK_TYPES_MESSAGE: &str =
    "chunkingSettings apply only to taskType text_embedding, sparse_embedding and embedding";
pub const AZURE_ONE_CREDENTIAL_MESSAGE: &str =
    "exactly one of apiKeySecretRef, entraIdSecretRef or oauth2 must be set";

/// A Kubernetes object name that is a DNS subdomain (RFC 1123), at most 253 characters: what the
/// API server requires of Secret and most other object names (apimachinery
/// `validation.IsDNS1123Subdomain`). Checked so that no reference can carry `?`, `#` or `/` into
/// an API path.
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A DNS label (RFC 1123), at most 63 characters: what namespaces are named
/// (apimachinery `validation.IsDNS1123Label`).
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A key of a Secret's data (apimachinery `validation.IsConfigMapKey`).
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

/// Largest `int32`: the bound of every integer Elasticsearch parses as a Java `Integer`, where it
/// has no tighter one. Kubernetes does not enforce `format: int32` (the API server stores
/// 2147483648 and every typed client then fails to decode the list), so each integer carries an
/// explicit `maximum`.
pub const INT32_MAX: i64 = i32::MAX as i64;
/// Bound of the `int64` fields: 2^53 - 1, the largest integer a JSON number (and the `float64`
/// in which the API server holds a schema's `maximum`) represents exactly, far above any real
/// value of these fields and safely inside `i64`.
pub const INT64_SAFE_MAX: i64 = (1 << 53) - 1;
/// Elasticsearch's largest `dense_vector` (and so `semantic_text`) dimension count:
/// `DenseVectorFieldMapper.MAX_DIMS_COUNT` (server/src/main/java/org/elasticsearch/index/mapper/
/// vectors/DenseVectorFieldMapper.java). An endpoint with more dimensions cannot back a field.
pub const MAX_DIMENSIONS: i64 = 4096;
/// Upper `maxChunkSize` of strategies `word` and `recursive` (`MAX_CHUNK_SIZE_UPPER_LIMIT` in
/// `WordBoundaryChunkingSettings` and `RecursiveChunkingSettings`, x-pack/plugin/core/.../
/// inference/chunking). `sentence` has only a lower limit (20) in current Elasticsearch (the 8.16
/// copy in x-pack/plugin/inference also capped it at 300), so the field itself is bounded by
/// [`INT32_MAX`] and the per-strategy bounds are CEL rules.
pub const MAX_WORD_CHUNK_SIZE: i64 = 300;
/// Most headers, longest header name and longest value in `taskSettings.headers`. Header names
/// are short tokens and per-request metadata for Azure needs no long values; with these bounds no
/// spec the schema admits serializes past [`checks::MAX_SPEC_BYTES`].
pub const MAX_HEADERS: usize = 32;
pub const MAX_HEADER_NAME_LENGTH: usize = 128;
pub const MAX_HEADER_VALUE_LENGTH: usize = 512;
/// Longest custom separator of the `recursive` strategy (Elasticsearch's own groups use
/// separators of a few characters, such as `"\n## "`).
pub const MAX_SEPARATOR_LENGTH: usize = 128;

/// Desired state: where the Elasticsearch cluster is, which endpoint to hold there, and what
/// happens to it on deletion. The operator creates `PUT _inference/{taskType}/{inferenceId}` and
/// reads the service credential from a Secret in the object's namespace.
// Each printer column repeats `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "esinference.io",
    version = "v1alpha1",
    kind = "InferenceEndpoint",
    plural = "inferenceendpoints",
    singular = "inferenceendpoint",
    shortname = "iep",
    category = "elastic",
    namespaced,
    status = "InferenceEndpointStatus",
    derive = "PartialEq",
    doc = "An Elasticsearch inference endpoint managed from Kubernetes: the operator creates it, keeps it in sync with this object, and reports its state in status.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Service",
        type_ = "string",
        json_path = ".status.endpoint.service"
    ),
    printcolumn(name = "Task", type_ = "string", json_path = ".spec.taskType"),
    printcolumn(
        name = "Inference ID",
        type_ = "string",
        json_path = ".status.targetInferenceId"
    ),
    printcolumn(
        name = "Healthy",
        type_ = "string",
        priority = 1,
        json_path = ".status.conditions[?(@.type==\"Healthy\")].status"
    ),
    printcolumn(
        name = "Used-By",
        type_ = "integer",
        priority = 1,
        json_path = ".status.usedBy.total"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = 1,
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.elasticsearchRef) != has(self.elasticsearch)")
        .message("exactly one of elasticsearchRef or elasticsearch must be set"),
    validation = kube::core::Rule::new("has(self.azureOpenAI) != has(self.service)")
        .message(SERVICE_BLOCK_MESSAGE),
    validation = kube::core::Rule::new(validation::AZURE_TASK_TYPES)
        .message(AZURE_TASK_TYPES_MESSAGE)
        .field_path(".taskType"),
    validation = services::task_type_rule(),
    validation = kube::core::Rule::new(validation::INFERENCE_ID_IMMUTABLE)
        .message("inferenceId is immutable: create a new InferenceEndpoint instead")
        .field_path(".inferenceId"),
    validation = kube::core::Rule::new(validation::CHUNKING_ONLY_FOR_EMBEDDINGS)
        .message(CHUNKING_TASK_TYPES_MESSAGE)
        .field_path(".chunkingSettings"),
    validation = kube::core::Rule::new(validation::DIMENSIONS_ONLY_FOR_EMBEDDINGS)
        .message("dimensions apply only to taskType text_embedding")
        .field_path(".azureOpenAI.dimensions"),
    validation = kube::core::Rule::new(validation::SIMILARITY_ONLY_FOR_EMBEDDINGS)
        .message("similarity applies only to taskType text_embedding")
        .field_path(".azureOpenAI.similarity"),
    validation = kube::core::Rule::new(validation::MAX_INPUT_TOKENS_ONLY_FOR_EMBEDDINGS)
        .message("maxInputTokens applies only to taskType text_embedding")
        .field_path(".azureOpenAI.maxInputTokens"),
)]
pub struct InferenceEndpointSpec {
    /// An Elasticsearch cluster managed by ECK, by name. The operator connects to
    /// `https://<name>-es-http.<namespace>.svc:9200` as user `elastic` with the password from
    /// Secret `<name>-es-elastic-user` and trusts the CA in `<name>-es-http-certs-public`.
    /// Exactly one of `elasticsearchRef` and `elasticsearch` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticsearch_ref: Option<ElasticsearchRef>,

    /// A directly addressed Elasticsearch cluster. Exactly one of `elasticsearchRef` and
    /// `elasticsearch` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticsearch: Option<ElasticsearchConnection>,

    /// Id of the endpoint in Elasticsearch. Defaults to `metadata.name`. Lowercase alphanumerics,
    /// `-`, `_` and `.`, starting and ending with an alphanumeric. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$")
    )]
    pub inference_id: Option<String>,

    /// The kind of inference the endpoint performs: one the service offers (Azure OpenAI:
    /// `text_embedding`, `completion`, `chat_completion` — the last needs Elasticsearch 9.3 or
    /// later). Immutable.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("taskType is immutable: create a new InferenceEndpoint instead"))]
    pub task_type: TaskType,

    /// Azure OpenAI service settings (`"service": "azureopenai"`). Exactly one of `azureOpenAI`
    /// and `service` must be set.
    #[serde(
        default,
        rename = "azureOpenAI",
        skip_serializing_if = "Option::is_none"
    )]
    pub azure_open_ai: Option<AzureOpenAi>,

    /// Any Elasticsearch inference service by its name (`openai`, `cohere`, `amazonbedrock`,
    /// `elasticsearch`, ...), with its settings as Elasticsearch documents them and each secret
    /// from a Secret. Exactly one of `azureOpenAI` and `service` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<InferenceService>,

    /// How Elasticsearch splits long inputs before embedding (embedding task types only:
    /// `text_embedding`, `sparse_embedding`, `embedding`; Elasticsearch 8.16 or later). Elasticsearch's default when unset: `sentence`, 250 words, overlap 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunking_settings: Option<ChunkingSettings>,

    /// What happens to the Elasticsearch endpoint when this object is deleted: `Delete` removes it
    /// (refused, and reported, while pipelines or semantic_text fields still use it), `Retain`
    /// leaves it in place.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// A live probe of the endpoint: the smallest real inference call for its task type, every
    /// `interval`, reported as the condition `Healthy` (Ready keeps its meaning). Unset: the
    /// operator's default (`--health-check-interval`, off unless set). Each probe is one call to
    /// the provider, billed like any other (docs/lifecycle.md, "Health and verified rotation").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,

    /// What happens when a setting Elasticsearch cannot change in place (resourceName,
    /// deploymentId, apiVersion, dimensions, similarity, and on older versions chunking or the
    /// rate limit) differs from the endpoint: `InPlace` reports `ImmutableFieldChanged` and
    /// changes nothing; `Recreate` deletes and recreates the endpoint, but only when
    /// Elasticsearch reports that no pipeline or index uses it (`RecreateBlocked` otherwise).
    #[serde(default)]
    pub update_policy: UpdatePolicy,
}

/// Shortest and longest probe interval: a probe costs a provider call (tokens), so not more
/// often than every minute; not rarer than daily, or a revoked key goes unseen for too long.
pub const MIN_HEALTH_CHECK_INTERVAL: &str = "1m";
pub const MAX_HEALTH_CHECK_INTERVAL: &str = "24h";
pub const HEALTH_CHECK_INTERVAL_MESSAGE: &str =
    "healthCheck.interval must be a duration between 1m and 24h (for example 10m or 1h30m)";
/// A Go duration of whole hours, minutes and seconds (`10m`, `1h30m`): what CEL's `duration()`
/// parses (and humantime too), without fractions or sub-second units.
pub const HEALTH_CHECK_INTERVAL_PATTERN: &str = r"^([0-9]{1,5}h)?([0-9]{1,5}m)?([0-9]{1,5}s)?$";

/// The live probe of an endpoint (`spec.healthCheck`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new(validation::HEALTH_CHECK_INTERVAL_BOUNDS)
        .message(HEALTH_CHECK_INTERVAL_MESSAGE)
        .field_path(".interval"),
)]
pub struct HealthCheck {
    /// `false` turns the probe off for this object even when the operator probes by default.
    /// Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How often the endpoint is probed, between `1m` and `24h` (e.g. `10m`). Unset: the
    /// operator's `--health-check-interval`, or 10m when that is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 2, max = 24),
        regex(pattern = r"^([0-9]{1,5}h)?([0-9]{1,5}m)?([0-9]{1,5}s)?$")
    )]
    pub interval: Option<String>,
}

/// Reference to an ECK-managed `Elasticsearch` object.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElasticsearchRef {
    /// Name of the `Elasticsearch` object (a DNS subdomain).
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Namespace of the `Elasticsearch` object (a DNS label). Defaults to this object's
    /// namespace; another namespace must be allowed by the operator's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
}

/// How to reach an Elasticsearch cluster directly.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new(validation::URL_WITHOUT_USERINFO)
        .message(checks::URL_USERINFO_MESSAGE)
        .field_path(".url"),
    validation = kube::core::Rule::new(validation::SKIP_TLS_VERIFY_WITHOUT_CA)
        .message(checks::SKIP_TLS_VERIFY_WITH_CA_MESSAGE)
        .field_path(".insecureSkipTlsVerify"),
)]
pub struct ElasticsearchConnection {
    /// Base URL, for example `https://es.example.svc:9200`. No user information
    /// (`user:password@`): credentials belong in `credentialsSecretRef`.
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    )]
    pub url: String,

    /// Secret in this namespace holding the credentials: either keys `username` and `password`
    /// (basic authentication), or key `apiKey` (an Elasticsearch API key, the base64 `encoded`
    /// form). Omit only for clusters without security.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,

    /// Secret in this namespace holding the PEM CA bundle that signed the cluster's certificate.
    /// Without it the system roots are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<CaSecretRef>,

    /// Skip TLS certificate verification. Never use this in production: it lets anyone on the
    /// network path read the credentials the operator sends. Cannot be combined with
    /// `caSecretRef` (with a CA the certificate can be verified).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_tls_verify: bool,
}

/// A Secret in the object's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretRef {
    /// Name of the Secret (a DNS subdomain).
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// One key of a Secret in the object's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret (a DNS subdomain).
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY_PATTERN))]
    pub key: String,
}

/// A PEM CA bundle in a Secret of the object's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct CaSecretRef {
    /// Name of the Secret (a DNS subdomain).
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Key within the Secret's data.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY_PATTERN))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".to_owned()
}

/// Azure OpenAI (`azureopenai`) service settings. Elasticsearch calls
/// `https://{resourceName}.openai.azure.com/openai/deployments/{deploymentId}/...?api-version={apiVersion}`.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new(validation::AZURE_ONE_CREDENTIAL)
        .message(AZURE_ONE_CREDENTIAL_MESSAGE),
)]
pub struct AzureOpenAi {
    /// Name of the Azure OpenAI resource (the `{resourceName}.openai.azure.com` host).
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9-]*$")
    )]
    pub resource_name: String,

    /// Name of the model deployment within the resource.
    #[schemars(length(min = 1, max = 64))]
    pub deployment_id: String,

    /// Azure OpenAI REST API version, for example `2024-10-21`.
    #[schemars(length(min = 1, max = 64))]
    pub api_version: String,

    /// Secret key holding an Azure OpenAI API key (sent as the `api-key` header).
    /// Exactly one of `apiKeySecretRef`, `entraIdSecretRef` and `oauth2` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,

    /// Secret key holding a Microsoft Entra ID access token (sent as a bearer token).
    /// Elasticsearch never refreshes it: the token is static and stops working when it expires,
    /// so it must be rotated in the Secret before then; on Elasticsearch 9.4 or later prefer
    /// `oauth2`, with which Elasticsearch fetches and refreshes tokens itself.
    /// Exactly one of `apiKeySecretRef`, `entraIdSecretRef` and `oauth2` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra_id_secret_ref: Option<SecretKeyRef>,

    /// Microsoft Entra ID OAuth2 client credentials (Elasticsearch 9.4 or later): Elasticsearch
    /// obtains and refreshes the access token itself. Exactly one of `apiKeySecretRef`,
    /// `entraIdSecretRef` and `oauth2` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<AzureOAuth2>,

    /// Number of dimensions of the produced embeddings (`text_embedding` only). When unset,
    /// Elasticsearch learns it from the model. At most 4096, Elasticsearch's `dense_vector` limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_DIMENSIONS))]
    pub dimensions: Option<i32>,

    /// Similarity measure for the embeddings (`text_embedding` only). Elasticsearch's default is
    /// `dot_product`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<Similarity>,

    /// Maximum number of tokens per input before chunking (`text_embedding` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = INT32_MAX))]
    pub max_input_tokens: Option<i32>,

    /// Requests per minute Elasticsearch may send to Azure for this endpoint. Elasticsearch's
    /// default: 1440 for `text_embedding`, 120 otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,

    /// Settings sent with every inference request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_settings: Option<AzureOpenAiTaskSettings>,
}

/// OAuth2 client credentials for Azure OpenAI (`client_id`, `tenant_id`, `scopes` and the secret
/// `client_secret`; docs/reference/elasticsearch-inference-api.md#azure-service-settings).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureOAuth2 {
    /// Application (client) id of the app registration.
    #[schemars(length(min = 1, max = 128))]
    pub client_id: String,
    /// Directory (tenant) id or domain of the app registration.
    #[schemars(length(min = 1, max = 253))]
    pub tenant_id: String,
    /// Scopes to request, for example `https://cognitiveservices.azure.com/.default`; at most 16,
    /// each up to 512 characters.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 512)))]
    pub scopes: Vec<String>,
    /// Secret key holding the client secret.
    pub client_secret_secret_ref: SecretKeyRef,
}

/// Request rate limit towards the service.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Maximum requests per minute; a positive number (at most 2^53 - 1).
    #[schemars(range(min = 1, max = INT64_SAFE_MAX))]
    pub requests_per_minute: i64,
}

/// Per-request task settings of the Azure OpenAI service.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AzureOpenAiTaskSettings {
    /// End-user identifier forwarded to Azure for abuse monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub user: Option<String>,

    /// Extra HTTP headers sent to Azure with every request (Elasticsearch 9.4 or later).
    /// Elasticsearch stores and returns them in clear text: never put credentials here.
    /// At most 32 headers; names up to 128 characters, values up to 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "maxProperties" = MAX_HEADERS,
        "additionalProperties" = {"type": "string", "maxLength": MAX_HEADER_VALUE_LENGTH}
    ))]
    #[x_kube(validation = kube::core::Rule::new(validation::HEADER_NAME_LENGTH)
        .message(checks::HEADER_NAME_MESSAGE))]
    pub headers: Option<BTreeMap<String, String>>,
}

/// Most keys in a free-form settings map of the generic block (Elasticsearch's services take a
/// dozen at most).
pub const MAX_FREE_FORM_KEYS: usize = 64;
/// Most secret keys of one service (`custom`'s map counts as one).
pub const MAX_SECRET_SETTINGS: usize = 8;
/// Longest service name and settings key name.
pub const MAX_SERVICE_NAME_LENGTH: usize = 64;

/// An Elasticsearch inference service declared by name: the PUT body's `service`,
/// `service_settings` (= `settings` plus each `secretSettings` key read from its Secret) and
/// `task_settings`. Keys are Elasticsearch's own (snake_case), passed through unchanged, so a
/// setting Elasticsearch documents can be used before this operator knows it.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = services::secret_keys_rule(),
    validation = services::secret_value_kind_rule(),
)]
pub struct InferenceService {
    /// The Elasticsearch `service` string, for example `openai`, `cohere`, `amazonbedrock`,
    /// `googlevertexai`, `elasticsearch`, `elastic` or `custom`. A service the operator does not
    /// know yet is passed through (condition `UnknownService`).
    #[schemars(
        length(min = 1, max = MAX_SERVICE_NAME_LENGTH),
        regex(pattern = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")
    )]
    pub name: String,

    /// `service_settings` without secrets, as Elasticsearch documents them for the service (for
    /// example `{model_id: rerank-v3.5}`). Keys that hold secrets (`api_key`, `access_key`,
    /// `secret_key`, `service_account_json`, `secret_parameters`, ...) are refused here: put them
    /// under `secretSettings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "services::settings_schema")]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,

    /// Each secret key of `service_settings`, read from a Secret in this namespace when the
    /// operator writes the endpoint and never stored anywhere else. For example
    /// `{api_key: {secretKeyRef: {name: cohere, key: apiKey}}}`; Amazon services take
    /// `access_key` and `secret_key`; `custom` takes `secret_parameters` from a whole Secret
    /// (`secretRef`). Keys the service does not treat as secret are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = MAX_SECRET_SETTINGS))]
    #[x_kube(validation = kube::core::Rule::new(validation::SETTING_NAME_LENGTH)
        .message(checks::SETTING_NAME_MESSAGE))]
    pub secret_settings: BTreeMap<String, SecretSource>,

    /// `task_settings`, as Elasticsearch documents them for the service and task type (for
    /// example `{top_n: 5}`). Elasticsearch stores and returns them in clear text: never put
    /// credentials here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "services::task_settings_schema")]
    pub task_settings: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Where a secret setting's value comes from: one key of a Secret (a string), or a whole Secret
/// (a map of every key to its value, for `custom`'s `secret_parameters`).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.secretKeyRef) != has(self.secretRef)")
        .message("exactly one of secretKeyRef or secretRef must be set"),
)]
pub struct SecretSource {
    /// One key of a Secret in this namespace; the setting is its text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A whole Secret in this namespace; the setting is a map of each of its keys to its text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// Embedding similarity measures Elasticsearch supports.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    Cosine,
    DotProduct,
    L2Norm,
}

impl Similarity {
    pub fn as_str(self) -> &'static str {
        match self {
            Similarity::Cosine => "cosine",
            Similarity::DotProduct => "dot_product",
            Similarity::L2Norm => "l2_norm",
        }
    }
}

/// How Elasticsearch chunks input text. Each strategy takes its own fields:
/// `sentence` — `maxChunkSize` (≥ 20) and `sentenceOverlap` (0 or 1);
/// `word` — `maxChunkSize` (10–300) and `overlap` (1 to half of `maxChunkSize`);
/// `recursive` (Elasticsearch 9.1+) — `maxChunkSize` (10–300) and either `separatorGroup` or `separators`;
/// `none` (Elasticsearch 8.19 and 9.1+) — no other field.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new(validation::CHUNK_SIZE_REQUIRED)
        .message("maxChunkSize is required for strategies sentence, word and recursive")
        .field_path(".maxChunkSize"),
    validation = kube::core::Rule::new(validation::CHUNK_SIZE_NOT_FOR_NONE)
        .message("strategy none takes no other field"),
    validation = kube::core::Rule::new(validation::SENTENCE_MIN_SIZE)
        .message("maxChunkSize must be at least 20 for strategy sentence")
        .field_path(".maxChunkSize"),
    validation = kube::core::Rule::new(validation::WORD_RECURSIVE_SIZE)
        .message("maxChunkSize must be between 10 and 300 for strategies word and recursive")
        .field_path(".maxChunkSize"),
    validation = kube::core::Rule::new(validation::SENTENCE_OVERLAP_ONLY_SENTENCE)
        .message("sentenceOverlap applies only to strategy sentence")
        .field_path(".sentenceOverlap"),
    validation = kube::core::Rule::new(validation::WORD_OVERLAP_REQUIRED)
        .message("overlap is required for strategy word and applies only to it")
        .field_path(".overlap"),
    validation = kube::core::Rule::new(validation::WORD_OVERLAP_BOUND)
        .message("overlap must not exceed half of maxChunkSize")
        .field_path(".overlap"),
    validation = kube::core::Rule::new(validation::SEPARATORS_ONLY_RECURSIVE)
        .message("separatorGroup and separators apply only to strategy recursive"),
    validation = kube::core::Rule::new(validation::RECURSIVE_ONE_SEPARATOR_SOURCE)
        .message("strategy recursive needs exactly one of separatorGroup or separators"),
)]
pub struct ChunkingSettings {
    /// Chunking strategy.
    pub strategy: ChunkingStrategy,

    /// Maximum number of words in a chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = INT32_MAX))]
    pub max_chunk_size: Option<i32>,

    /// Sentences shared by consecutive chunks, 0 or 1 (strategy `sentence`; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub sentence_overlap: Option<i32>,

    /// Words shared by consecutive chunks (strategy `word`; required there). At most half of
    /// `maxChunkSize`, so at most 150 (`WordBoundaryChunkingSettings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_WORD_CHUNK_SIZE / 2))]
    pub overlap: Option<i32>,

    /// Predefined separators (strategy `recursive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator_group: Option<SeparatorGroup>,

    /// Custom separators, tried in order (strategy `recursive`); at most 64, each up to 128
    /// characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), inner(length(max = MAX_SEPARATOR_LENGTH)))]
    pub separators: Option<Vec<String>>,
}

/// Chunking strategies.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChunkingStrategy {
    Sentence,
    Word,
    Recursive,
    None,
}

impl ChunkingStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkingStrategy::Sentence => "sentence",
            ChunkingStrategy::Word => "word",
            ChunkingStrategy::Recursive => "recursive",
            ChunkingStrategy::None => "none",
        }
    }
}

/// Predefined separator groups of the `recursive` strategy.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeparatorGroup {
    Plaintext,
    Markdown,
}

impl SeparatorGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            SeparatorGroup::Plaintext => "plaintext",
            SeparatorGroup::Markdown => "markdown",
        }
    }
}

/// What to do with the Elasticsearch endpoint when the object is deleted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the endpoint; refused (and reported) while something in Elasticsearch uses it.
    #[default]
    Delete,
    /// Leave the endpoint in Elasticsearch.
    Retain,
}

/// How changes Elasticsearch cannot apply in place are handled.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UpdatePolicy {
    /// Report the change (`ImmutableFieldChanged`); never delete.
    #[default]
    InPlace,
    /// Delete and recreate, only while nothing in Elasticsearch references the endpoint.
    Recreate,
}

/// Observed state, written by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InferenceEndpointStatus {
    /// The `metadata.generation` this status describes (-1 before the first reconcile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = INT64_SAFE_MAX))]
    pub observed_generation: Option<i64>,

    /// `Ready` is always present. `Reconciling` (a transient failure is being retried) and
    /// `Stalled` (a permanent failure waits for a change of the object or its Secrets) appear
    /// only while true, in the kstatus sense.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    #[schemars(transform = bound_condition_generation)]
    pub conditions: Vec<Condition>,

    /// Id of the endpoint this object created or adopted in Elasticsearch. Set once the endpoint
    /// exists; deletion only ever removes this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_id: Option<String>,

    /// The id the spec resolves to (`spec.inferenceId`, else `metadata.name`), written from the
    /// first reconcile on: the `Inference ID` column, which so shows the intended id before the
    /// endpoint exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_inference_id: Option<String>,

    /// The cluster the endpoint lives in, as it reported itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,

    /// Non-secret settings as Elasticsearch reports them, including values it filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointStatus>,

    /// Fingerprint of the service credential last applied: a keyed, non-reversible hash used to
    /// notice a rotated Secret. Never the credential itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_fingerprint: Option<String>,

    /// What in Elasticsearch uses the endpoint, from its dry-run DELETE (8.15+): read before a
    /// delete or recreate and every `--used-by-interval` (docs/lifecycle.md#who-uses-an-endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<UsedBy>,
    /// Fingerprint of a rotated credential the provider rejected (reason `CredentialsRejected`):
    /// it is not tried again until the Secret changes. Never the credential itself.
    /// (`hmac-sha256:` and 32 hex digits today; the bound leaves room.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub rejected_credential_fingerprint: Option<String>,
}

/// The ingest pipelines and indexes (`semantic_text` fields) that reference the endpoint, as
/// Elasticsearch's dry-run DELETE lists them. The lists are capped; the counts are not.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsedBy {
    /// Ingest pipelines that reference the endpoint, sorted, at most 20 (see `pipelineCount`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(max = 512)))]
    pub pipelines: Vec<String>,
    /// Indexes whose `semantic_text` fields use the endpoint, sorted, at most 20 (see
    /// `indexCount`). Elasticsearch reports them from 8.16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(max = 512)))]
    pub indexes: Vec<String>,
    /// How many ingest pipelines reference the endpoint.
    #[schemars(range(min = 0, max = INT64_SAFE_MAX))]
    pub pipeline_count: i64,
    /// How many indexes use the endpoint; absent when the cluster does not report indexes
    /// (before 8.16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = INT64_SAFE_MAX))]
    pub index_count: Option<i64>,
    /// Pipelines plus indexes: the `Used-By` column of `kubectl get iep -o wide`.
    #[schemars(range(min = 0, max = INT64_SAFE_MAX))]
    pub total: i64,
    /// When Elasticsearch last answered the read these lists come from.
    pub observed_at: Time,
    /// The last read failed: the lists are those of `observedAt`, kept until a read succeeds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

/// `metav1.Condition.observedGeneration` gets the bounds of our own `observedGeneration`
/// (upstream marks it `+kubebuilder:validation:Minimum=0` only; k8s-openapi carries neither).
fn bound_condition_generation(schema: &mut schemars::Schema) {
    if let Some(generation) = schema
        .pointer_mut("/items/properties/observedGeneration")
        .and_then(serde_json::Value::as_object_mut)
    {
        generation.insert("minimum".into(), 0.into());
        generation.insert("maximum".into(), INT64_SAFE_MAX.into());
    }
}

/// Identity of the Elasticsearch cluster.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// `cluster_uuid` from `GET /`.
    pub uuid: String,
    /// `cluster_name` from `GET /`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Elasticsearch version, for example `9.1.3`.
    pub version: String,
}

/// What Elasticsearch reports about the endpoint (secrets are never reported).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    /// Elasticsearch service name, e.g. `azureopenai`.
    pub service: String,
    /// Embedding dimensions (text_embedding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = INT32_MAX))]
    pub dimensions: Option<i64>,
    /// Embedding similarity (text_embedding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<String>,
    /// Effective requests-per-minute limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = INT64_SAFE_MAX))]
    pub requests_per_minute: Option<i64>,
    /// Effective chunking strategy (text_embedding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunking_strategy: Option<String>,
}

impl HealthCheck {
    /// The interval as written, within [`MIN_HEALTH_CHECK_INTERVAL`, `MAX_HEALTH_CHECK_INTERVAL`]
    /// (`None` when unset; an error when admission would have refused it).
    pub fn interval(&self) -> Result<Option<std::time::Duration>, String> {
        let Some(text) = self.interval.as_deref() else {
            return Ok(None);
        };
        let bound = |t: &str| humantime::parse_duration(t).expect("the bounds parse");
        match humantime::parse_duration(text) {
            Ok(d)
                if d >= bound(MIN_HEALTH_CHECK_INTERVAL)
                    && d <= bound(MAX_HEALTH_CHECK_INTERVAL) =>
            {
                Ok(Some(d))
            }
            _ => Err(HEALTH_CHECK_INTERVAL_MESSAGE.to_owned()),
        }
    }
}

impl InferenceEndpoint {
    /// Whether annotation `key` is set to `value`.
    pub fn annotated(&self, key: &str, value: &str) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .is_some_and(|v| v == value)
    }

    /// The id used in Elasticsearch: `spec.inferenceId`, else `metadata.name`.
    pub fn inference_id(&self) -> &str {
        self.spec
            .inference_id
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }
}

/// The CRD as served: the derived one, plus a schema default `status: {observedGeneration: -1}`.
///
/// The API server applies defaults when reading from storage, so an object the operator has not
/// reconciled yet reads back with `observedGeneration: -1`, which kstatus (Flux) compares with
/// `metadata.generation` and reports as InProgress instead of Current (the same fix Flux's own
/// helm-controller uses; cli-utils issue 632).
pub fn crd() -> CustomResourceDefinition {
    let mut crd = InferenceEndpoint::crd();
    for version in &mut crd.spec.versions {
        let status = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("status"));
        if let Some(status) = status {
            status.default = Some(JSON(serde_json::json!({"observedGeneration": -1})));
        }
    }
    schema::spec_fields_not_nullable(&mut crd);
    schema::descriptions_as_paragraphs(&mut crd);
    crd
}

/// The CRDs this operator serves, as multi-document YAML (what `inference-operator crd` prints
/// and what `crds/` holds).
pub fn crd_yaml() -> String {
    let crd = crd();
    let body = serde_saphyr::to_string(&crd).expect("CRD serializes to YAML");
    format!(
        "# Generated by `inference-operator crd` from src/api. Do not edit by hand.\n---\n{body}"
    )
}

#[cfg(test)]
mod tests;
