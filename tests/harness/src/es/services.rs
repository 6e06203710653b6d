//! The double's table of inference services other than `azureopenai` (which has its own parser,
//! [`super::azure`]), and the generic request parsing they share.
//!
//! Sources (SVC = x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/services
//! in elastic/elasticsearch; facts also in docs/reference/elasticsearch-services.md#catalogue):
//! * every service's `parseRequestConfig` hands one `service_settings` map to its service-settings
//!   parser and to its `SecretSettings.fromMap`; whichever claims a key removes it, and what is
//!   left is refused by `throwIfNotEmptyMap` (e.g. SVC/openai/OpenAiService.java,
//!   docs/reference/elasticsearch-services.md#secret-keys);
//! * the secret classes: SVC/settings/DefaultSecretSettings.java (`api_key` required, scope
//!   `service_settings`), x-pack/.../inference/common/amazon/AwsSecretSettings.java (`access_key`
//!   and `secret_key` required), SVC/googlevertexai/GoogleVertexAiSecretSettings.java
//!   (`service_account_json` required, scope `secret_settings`), SVC/custom/CustomSecretSettings.java
//!   (optional `secret_parameters` map of strings), SVC/openai/secrets/OpenAiSecretSettings.java
//!   (exactly one of `api_key` / `client_secret`), EmptySecretSettings (none);
//! * their `newSecretSettings` for `_update` (docs/reference/elasticsearch-services.md#update-rotation).
//!
//! Task types and the versions they arrived are from the `@availability` of the per-service PUT
//! requests in elastic/elasticsearch-specification (`specification/inference/put_<service>`)
//! (inferred where the first release differs from the documented one).

use serde_json::{json, Map, Value};

use super::errors::EsError;
use super::extract::{
    missing, opt_positive, opt_string, parse_rate_limit, type_err, unknown_settings_for,
};
use super::json::java_list;
use super::model::TaskType;
use super::version::EsVersion;

/// How a service's `SecretSettings` class claims its keys from `service_settings`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretKeys {
    /// No per-endpoint secret (`EmptySecretSettings`, or the in-cluster `elasticsearch`).
    None,
    /// Every key required, missing ones reported as `[<scope>] does not contain the required
    /// setting [<key>]` (`DefaultSecretSettings`: `api_key` in `service_settings`;
    /// `AwsSecretSettings`; `GoogleVertexAiSecretSettings`: scope `secret_settings`).
    AllOf { keys: Vec<String>, scope: String },
    /// Exactly one of these keys (`OpenAiSecretSettings`).
    OneOf(Vec<String>),
    /// One optional map of string values under this key (`CustomSecretSettings`:
    /// `secret_parameters`).
    Map(String),
}

impl SecretKeys {
    /// `DefaultSecretSettings`: `api_key`, required.
    pub fn api_key() -> Self {
        SecretKeys::AllOf {
            keys: vec!["api_key".into()],
            scope: "service_settings".into(),
        }
    }

    /// All of `keys`, scope `service_settings`.
    pub fn all_of(keys: &[&str]) -> Self {
        SecretKeys::AllOf {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            scope: "service_settings".into(),
        }
    }

    /// The top-level key names the class claims (for `custom`, the map's key).
    pub fn names(&self) -> Vec<String> {
        match self {
            SecretKeys::None => vec![],
            SecretKeys::AllOf { keys, .. } | SecretKeys::OneOf(keys) => keys.clone(),
            SecretKeys::Map(k) => vec![k.clone()],
        }
    }
}

/// What `_update` does with secret keys in `service_settings` (each class's `newSecretSettings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// `DefaultSecretSettings`: the map is parsed afresh, so `api_key` is required up to 9.4 and
    /// optional from 9.5 (elastic/elasticsearch#149628, release inferred; issue #139651).
    DefaultApiKey,
    /// Parsed afresh with `fromMap`: every key required (`GoogleVertexAiSecretSettings`).
    Replace,
    /// `AwsSecretSettings.newSecretSettings`: both keys together; both absent = no change.
    Pair,
    /// `OpenAiSecretSettings.newSecretSettings`: none given = no change; one given replaces the
    /// secret of the same kind.
    OneOfKeep,
    /// `CustomSecretSettings.newSecretSettings` = `fromMap`: the new map replaces the old one
    /// entirely; no `secret_parameters` leaves none.
    WholeMap,
    /// `EmptySecretSettings` ignores new keys (issue elastic/elasticsearch#140888).
    Ignore,
}

/// One task type of a service.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    /// `text_embedding`, `sparse_embedding`, `rerank`, `completion`, `chat_completion`, `embedding`.
    pub task_type: String,
    /// First version with this task type for the service.
    pub since: EsVersion,
    /// `service_settings` keys that must be present.
    pub required: Vec<String>,
    /// Other known keys, passed through as given (`dimensions`, `max_input_tokens` and
    /// `similarity` are checked as ES checks them).
    pub optional: Vec<String>,
    /// Default `rate_limit.requests_per_minute` filled in (None = the service has no rate limit).
    pub rate_limit: Option<i64>,
    /// Other defaults ES fills in when the key is absent (`embedding_type: float`, ...).
    pub defaults: Vec<(String, Value)>,
}

/// One service of the double.
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    pub name: String,
    /// First version that knows the service (before it: `Unknown service`).
    pub since: EsVersion,
    pub secrets: SecretKeys,
    pub rotation: Rotation,
    pub tasks: Vec<TaskSpec>,
    /// Known `task_settings` keys (None = any key passes through).
    pub task_settings: Option<Vec<String>>,
    /// Every other `service_settings` key passes through (services registered by tests).
    pub open: bool,
    /// Similarity stored when the user set none and the provider told the dimensions.
    pub default_similarity: Option<String>,
    /// ES validates the endpoint with a provider call (false for the in-cluster services).
    pub validates: bool,
}

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

impl TaskSpec {
    pub fn new(task_type: &str, since: &str, required: &[&str], optional: &[&str]) -> TaskSpec {
        TaskSpec {
            task_type: task_type.into(),
            since: EsVersion::parse(since),
            required: strings(required),
            optional: strings(optional),
            rate_limit: None,
            defaults: Vec::new(),
        }
    }

    pub fn default(mut self, key: &str, value: Value) -> TaskSpec {
        self.defaults.push((key.into(), value));
        self
    }

    pub fn rate_limit(mut self, rpm: i64) -> TaskSpec {
        self.rate_limit = Some(rpm);
        self
    }
}

impl ServiceSpec {
    /// A service a test registers: these task types (from any version), these secret keys, any
    /// other `service_settings` key passed through, no default filled in, validated by a call
    /// to the fake providers. `rotation` follows the secret class (`AllOf` = re-parsed like
    /// `DefaultSecretSettings`, `OneOf` keeps, `Map` replaces).
    pub fn open(name: &str, secrets: SecretKeys, task_types: &[&str]) -> ServiceSpec {
        let rotation = match &secrets {
            SecretKeys::None => Rotation::Ignore,
            SecretKeys::AllOf { keys, .. } if keys.len() > 1 => Rotation::Pair,
            SecretKeys::AllOf { .. } => Rotation::DefaultApiKey,
            SecretKeys::OneOf(_) => Rotation::OneOfKeep,
            SecretKeys::Map(_) => Rotation::WholeMap,
        };
        ServiceSpec {
            name: name.into(),
            since: EsVersion::new(8, 0, 0),
            secrets,
            rotation,
            tasks: task_types
                .iter()
                .map(|t| TaskSpec::new(t, "8.0.0", &[], &[]))
                .collect(),
            task_settings: None,
            open: true,
            default_similarity: None,
            validates: true,
        }
    }

    fn task(&self, tt: TaskType, v: EsVersion) -> Option<&TaskSpec> {
        self.tasks
            .iter()
            .find(|t| t.task_type == tt.as_str() && v >= t.since)
    }
}

const EMBED: &[&str] = &["dimensions", "max_input_tokens", "similarity"];

fn with(base: &[&str], more: &[&str]) -> Vec<String> {
    base.iter().chain(more).map(|k| k.to_string()).collect()
}

/// The built-in table for version `v`.
pub(crate) fn builtin(v: EsVersion) -> Vec<ServiceSpec> {
    let svc =
        |name: &str, since: &str, secrets: SecretKeys, rotation: Rotation, tasks: Vec<TaskSpec>| {
            ServiceSpec {
                name: name.into(),
                since: EsVersion::parse(since),
                secrets,
                rotation,
                tasks,
                task_settings: None,
                open: false,
                default_similarity: None,
                validates: true,
            }
        };
    // SVC/openai/embeddings/OpenAiEmbeddingsServiceSettings.java: `model_id` required; `url`,
    // `organization_id`, `similarity`, `dimensions`, `max_input_tokens` optional; rate limit 3000.
    // Completion: SVC/openai/completion/OpenAiChatCompletionServiceSettings.java, 500 (inferred).
    // OAuth2 `client_secret` beside `api_key` from elastic/elasticsearch#150132 (9.5, inferred).
    let openai_secrets = if v.v95() {
        SecretKeys::OneOf(strings(&["api_key", "client_secret"]))
    } else {
        SecretKeys::api_key()
    };
    let openai_rotation = if v.v95() {
        Rotation::OneOfKeep
    } else {
        Rotation::DefaultApiKey
    };
    let mut openai = svc(
        "openai",
        "8.12.0",
        openai_secrets,
        openai_rotation,
        vec![
            TaskSpec {
                optional: with(EMBED, &["url", "organization_id"]),
                ..TaskSpec::new("text_embedding", "8.12.0", &["model_id"], &[])
            }
            .rate_limit(3000),
            TaskSpec::new(
                "completion",
                "8.14.0",
                &["model_id"],
                &["url", "organization_id", "max_input_tokens"],
            )
            .rate_limit(500),
            TaskSpec::new(
                "chat_completion",
                "8.18.0",
                &["model_id"],
                &["url", "organization_id", "max_input_tokens"],
            )
            .rate_limit(500),
        ],
    );
    openai.task_settings = Some(strings(&["user", "headers"]));
    // (inferred) `OpenAiService.updateModelWithEmbeddingDetails` keeps the user's similarity or
    // takes dot_product, as Azure does (docs/reference/elasticsearch-inference-api.md#azure-responses).
    openai.default_similarity = Some("dot_product".into());

    // SVC/cohere/CohereServiceSettings.java: `url`, `similarity`, `dimensions`,
    // `max_input_tokens`, `model_id` (and deprecated `model`) optional in the parser, but V2
    // endpoints require `model_id` ([`cohere_v2_model_required`]); embeddings add
    // `embedding_type` (default `float`); rate limit 10000
    // (docs/reference/elasticsearch-services.md#catalogue and the services table there).
    let cohere_common = ["url", "model_id", "model"];
    let mut cohere = svc(
        "cohere",
        "8.13.0",
        SecretKeys::api_key(),
        Rotation::DefaultApiKey,
        vec![
            TaskSpec {
                optional: with(EMBED, &["url", "model_id", "model", "embedding_type"]),
                ..TaskSpec::new("text_embedding", "8.13.0", &[], &[])
            }
            .rate_limit(10_000)
            .default("embedding_type", json!("float")),
            TaskSpec::new("rerank", "8.14.0", &[], &cohere_common).rate_limit(10_000),
            TaskSpec::new("completion", "8.15.0", &[], &cohere_common).rate_limit(10_000),
        ],
    );
    cohere.task_settings = Some(strings(&[
        "input_type",
        "truncate",
        "top_n",
        "return_documents",
        "max_chunks_per_doc",
    ]));
    cohere.default_similarity = Some("dot_product".into()); // (inferred) CohereService float default

    // SVC/amazonbedrock/AmazonBedrockServiceSettings.java: `model`, `region`, `provider`
    // required, `embedding_type` optional, rate limit 240; AwsSecretSettings for the keys.
    let bedrock_req = ["model", "region", "provider"];
    let mut bedrock = svc(
        "amazonbedrock",
        "8.15.0",
        SecretKeys::all_of(&["access_key", "secret_key"]),
        Rotation::Pair,
        vec![
            TaskSpec {
                optional: with(EMBED, &["embedding_type"]),
                ..TaskSpec::new("text_embedding", "8.15.0", &bedrock_req, &[])
            }
            .rate_limit(240),
            TaskSpec::new("completion", "8.15.0", &bedrock_req, &[]).rate_limit(240),
            // First specification branch listing it: 9.4
            // (docs/reference/elasticsearch-services.md#services-table).
            TaskSpec::new("chat_completion", "9.4.0", &bedrock_req, &[]).rate_limit(240),
        ],
    );
    bedrock.default_similarity = Some("cosine".into()); // (inferred) provider-dependent in ES

    // SVC/googlevertexai/embeddings/GoogleVertexAiEmbeddingsServiceSettings.java: `location`,
    // `project_id`, `model_id` required (inferred: rate limit 30000); rerank
    // (SVC/googlevertexai/rerank/GoogleVertexAiRerankServiceSettings.java): `project_id` required,
    // `model_id` optional, rate limit 300 (inferred).
    let mut vertex = svc(
        "googlevertexai",
        "8.15.0",
        SecretKeys::AllOf {
            keys: strings(&["service_account_json"]),
            scope: "secret_settings".into(),
        },
        Rotation::Replace,
        vec![
            TaskSpec {
                optional: with(EMBED, &[]),
                ..TaskSpec::new(
                    "text_embedding",
                    "8.15.0",
                    &["location", "project_id", "model_id"],
                    &[],
                )
            }
            .rate_limit(30_000),
            TaskSpec::new("rerank", "8.15.0", &["project_id"], &["model_id"]).rate_limit(300),
            TaskSpec::new(
                "chat_completion",
                "9.1.0",
                &["location", "project_id", "model_id"],
                &[],
            )
            .rate_limit(1000),
            TaskSpec::new(
                "completion",
                "9.1.0",
                &["location", "project_id", "model_id"],
                &[],
            )
            .rate_limit(1000),
        ],
    );
    vertex.default_similarity = Some("dot_product".into()); // (inferred)

    // SVC/custom/CustomServiceSettings.java: `url`, `request`, `response` required; `headers`,
    // `query_parameters`, `input_type`, `batch_size` optional; rate limit 10000; `batch_size` 10
    // for embeddings (the specification's `@server_default`).
    let custom_req = ["url", "request", "response"];
    let custom_opt = ["headers", "query_parameters", "input_type", "batch_size"];
    let custom = ServiceSpec {
        task_settings: Some(strings(&["parameters"])),
        ..svc(
            "custom",
            "8.19.0",
            SecretKeys::Map("secret_parameters".into()),
            Rotation::WholeMap,
            vec![
                TaskSpec {
                    optional: with(EMBED, &custom_opt),
                    ..TaskSpec::new("text_embedding", "8.19.0", &custom_req, &[])
                }
                .rate_limit(10_000)
                .default("batch_size", json!(10)),
                TaskSpec::new("sparse_embedding", "8.19.0", &custom_req, &custom_opt)
                    .rate_limit(10_000),
                TaskSpec::new("rerank", "8.19.0", &custom_req, &custom_opt).rate_limit(10_000),
                TaskSpec::new("completion", "8.19.0", &custom_req, &custom_opt).rate_limit(10_000),
            ],
        )
    };

    // SVC/huggingface/HuggingFaceServiceSettings.java: `url` required, rate limit 3000
    // (HuggingFaceElserServiceSettings.java states 3000; inferred the same for embeddings).
    let mut hf = svc(
        "hugging_face",
        "8.12.0",
        SecretKeys::api_key(),
        Rotation::DefaultApiKey,
        vec![
            TaskSpec {
                optional: with(EMBED, &[]),
                ..TaskSpec::new("text_embedding", "8.12.0", &["url"], &[])
            }
            .rate_limit(3000),
            TaskSpec::new(
                "sparse_embedding",
                "8.12.0",
                &["url"],
                &["max_input_tokens"],
            )
            .rate_limit(3000),
            TaskSpec::new("rerank", "9.1.0", &["url"], &[]).rate_limit(3000),
            TaskSpec::new("completion", "9.1.0", &["url", "model_id"], &[]).rate_limit(3000),
            TaskSpec::new("chat_completion", "9.1.0", &["url", "model_id"], &[]).rate_limit(3000),
        ],
    );
    hf.default_similarity = Some("cosine".into()); // (inferred)

    // SVC/elastic/... (EIS): `model_id` required; no per-endpoint secret
    // (docs/reference/elasticsearch-services.md#catalogue). Sparse embedding service settings
    // default their rate limit to 1000
    // (SVC/elastic/sparseembeddings/ElasticInferenceServiceSparseEmbeddingsServiceSettings.java),
    // completion 720 (.../completion/ElasticInferenceServiceCompletionServiceSettings.java);
    // (inferred) the same 1000 for the others.
    let elastic = svc(
        "elastic",
        "8.16.0",
        SecretKeys::None,
        Rotation::Ignore,
        vec![
            TaskSpec::new(
                "sparse_embedding",
                "8.16.0",
                &["model_id"],
                &["max_input_tokens"],
            )
            .rate_limit(1000),
            TaskSpec::new("chat_completion", "8.18.0", &["model_id"], &[]).rate_limit(720),
            TaskSpec::new("completion", "9.0.0", &["model_id"], &[]).rate_limit(720),
            TaskSpec {
                optional: with(EMBED, &[]),
                ..TaskSpec::new("text_embedding", "9.1.0", &["model_id"], &[])
            }
            .rate_limit(1000),
            TaskSpec::new("rerank", "9.1.0", &["model_id"], &[]).rate_limit(1000),
        ],
    );

    // A few more DefaultSecretSettings services, cheap to list: `model_id` required, no default
    // filled in (inferred: their rate limits are not emulated).
    let simple = |name: &str, since: &str, tasks: &[&str]| ServiceSpec {
        tasks: tasks
            .iter()
            .map(|t| {
                TaskSpec::new(
                    t,
                    since,
                    &["model_id"],
                    &with(EMBED, &["url"])
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                )
            })
            .collect(),
        open: false,
        ..svc(
            name,
            since,
            SecretKeys::api_key(),
            Rotation::DefaultApiKey,
            vec![],
        )
    };
    let mistral = simple(
        "mistral",
        "8.15.0",
        &["text_embedding", "completion", "chat_completion"],
    );
    let anthropic = simple("anthropic", "8.15.0", &["completion"]);
    let voyageai = simple("voyageai", "8.19.0", &["text_embedding", "rerank"]);
    let jinaai = simple("jinaai", "8.18.0", &["text_embedding", "rerank"]);

    let mut table = vec![
        openai, cohere, bedrock, vertex, custom, hf, elastic, mistral, anthropic, voyageai, jinaai,
    ];
    table.retain(|s| v >= s.since);
    table
}

/// A create request parsed by a table service.
#[derive(Debug)]
pub(crate) struct ParsedGeneric {
    pub(crate) service_settings: Map<String, Value>,
    pub(crate) task_settings: Map<String, Value>,
    pub(crate) chunking: Option<Value>,
    pub(crate) secrets: Map<String, Value>,
    pub(crate) dims_set_by_user: bool,
}

/// Whether ES reads `chunking_settings` for this task type (embeddings, 8.16+:
/// docs/reference/elasticsearch-inference-api.md#chunking-settings).
pub(crate) fn takes_chunking(tt: TaskType, v: EsVersion) -> bool {
    v.chunking()
        && matches!(
            tt,
            TaskType::TextEmbedding | TaskType::SparseEmbedding | TaskType::Embedding
        )
}

/// `chunking_settings` parsed where ES reads them ([`takes_chunking`]); left in `config` (to be
/// refused as unknown) where it does not.
pub(crate) fn take_chunking(
    tt: TaskType,
    v: EsVersion,
    config: &mut Map<String, Value>,
) -> Result<Option<Value>, EsError> {
    if !takes_chunking(tt, v) {
        return Ok(None);
    }
    super::azure::parse_chunking(v, config.remove("chunking_settings")).map(Some)
}

/// `parseRequestConfig` for a table service, in the order the Azure parser documents
/// (docs/reference/elasticsearch-inference-api.md#validation-order): `service_settings`
/// required → task settings → chunking → task type supported → service settings → task settings
/// → secrets → leftovers (top level, `service_settings`, `task_settings`).
pub(crate) fn parse_create(
    spec: &ServiceSpec,
    v: EsVersion,
    tt: TaskType,
    config: &mut Map<String, Value>,
) -> Result<ParsedGeneric, EsError> {
    let (mut ss, mut ts) = super::extract::take_settings_maps(config)?;
    let chunking = take_chunking(tt, v, config)?;
    let task = spec
        .task(tt, v)
        .ok_or_else(|| unsupported_task(&spec.name, tt))?;
    let (service_settings, dims_set_by_user) = parse_service_settings(spec, task, v, &mut ss)?;
    let task_settings = take_task_settings(spec, &mut ts);
    let secrets = parse_secrets(&spec.secrets, &mut ss)?;
    for left in [&*config, &ss, &ts] {
        if !left.is_empty() {
            return Err(unknown_settings_for(v, &spec.name, left));
        }
    }
    Ok(ParsedGeneric {
        service_settings,
        task_settings,
        chunking,
        secrets,
        dims_set_by_user,
    })
}

/// `TaskType.unsupportedTaskTypeErrorMsg` (docs/reference/elasticsearch-inference-api.md#azure-task-types).
pub(crate) fn unsupported_task(service: &str, tt: TaskType) -> EsError {
    EsError::bad_request(format!(
        "The [{service}] service does not support task type [{}]",
        tt.as_str()
    ))
}

fn parse_service_settings(
    spec: &ServiceSpec,
    task: &TaskSpec,
    v: EsVersion,
    ss: &mut Map<String, Value>,
) -> Result<(Map<String, Value>, bool), EsError> {
    let scope = "service_settings";
    let mut errs = Vec::new();
    let mut out = Map::new();
    for key in &task.required {
        match ss.remove(key) {
            None | Some(Value::Null) => errs.push(missing(scope, key)),
            Some(Value::String(s)) if s.is_empty() => {
                errs.push(super::extract::empty_string(scope, key))
            }
            Some(val) => {
                out.insert(key.clone(), val);
            }
        }
    }
    let mut dims_set_by_user = false;
    for key in &task.optional {
        match key.as_str() {
            "dimensions" | "max_input_tokens" => {
                if let Some(n) = opt_positive(ss, key, scope, &mut errs, false) {
                    out.insert(key.clone(), json!(n));
                    dims_set_by_user |= key == "dimensions";
                }
            }
            "similarity" => {
                if let Some(s) = opt_string(ss, key, scope, &mut errs) {
                    let l = s.to_ascii_lowercase();
                    if ["cosine", "dot_product", "l2_norm"].contains(&l.as_str()) {
                        out.insert(key.clone(), json!(l));
                    } else {
                        errs.push(format!("[{scope}] Invalid value [{s}] received. [similarity] must be one of [cosine, dot_product, l2_norm]"));
                    }
                }
            }
            _ => {
                if let Some(val) = ss.remove(key).filter(|v| !v.is_null()) {
                    out.insert(key.clone(), val);
                }
            }
        }
    }
    for (k, val) in &task.defaults {
        out.entry(k.clone()).or_insert_with(|| val.clone());
    }
    if let Some(e) = cohere_v2_model_required(spec, v, &out) {
        errs.push(e);
    }
    if let Some(default) = task.rate_limit {
        let rpm = parse_rate_limit(v, &spec.name, ss, &mut errs)?.unwrap_or(default);
        out.insert("rate_limit".into(), json!({ "requests_per_minute": rpm }));
    }
    if spec.open {
        let secret_names = spec.secrets.names();
        let rest: Vec<String> = ss
            .keys()
            .filter(|k| !secret_names.contains(k))
            .cloned()
            .collect();
        for k in rest {
            if let Some(val) = ss.remove(&k) {
                out.insert(k, val);
            }
        }
    }
    if !errs.is_empty() {
        return Err(EsError::validation(&errs));
    }
    Ok((out, dims_set_by_user))
}

/// New Cohere endpoints use the V2 API, which needs a model: `MODEL_REQUIRED_FOR_V2_API` in
/// SVC/cohere/CohereServiceSettings.java (inferred: from 9.1 / 8.19, when the V2 client arrived;
/// `model` is the deprecated spelling and counts).
fn cohere_v2_model_required(
    spec: &ServiceSpec,
    v: EsVersion,
    out: &Map<String, Value>,
) -> Option<String> {
    let v2 = v >= EsVersion::new(9, 1, 0) || (v.major == 8 && v.minor >= 19);
    (spec.name == "cohere" && v2 && !out.contains_key("model_id") && !out.contains_key("model"))
        .then(|| {
            "The [service_settings.model_id] field is required for the Cohere V2 API.".to_string()
        })
}

/// Known task-settings keys are taken; the rest stay for the leftover check.
fn take_task_settings(spec: &ServiceSpec, ts: &mut Map<String, Value>) -> Map<String, Value> {
    match &spec.task_settings {
        None => std::mem::take(ts),
        Some(keys) => keys
            .iter()
            .filter_map(|k| {
                ts.remove(k)
                    .filter(|v| !v.is_null())
                    .map(|v| (k.clone(), v))
            })
            .collect(),
    }
}

/// `Map field [<key>] has an entry that is not valid, [<k> => <v>]. Value type of [<v>] is not
/// one of [String].` (inferred: the wording of `ServiceUtils.validateMapStringValues`, which
/// `convertMapStringsToSecureString` uses, was not read).
fn map_value_error(key: &str, k: &str, v: &Value) -> String {
    let shown = super::json::java(v);
    format!("Map field [{key}] has an entry that is not valid, [{k} => {shown}]. Value type of [{shown}] is not one of [String].")
}

/// Claims the secret keys from `ss` with each class's messages (see [`SecretKeys`]).
pub(crate) fn parse_secrets(
    keys: &SecretKeys,
    ss: &mut Map<String, Value>,
) -> Result<Map<String, Value>, EsError> {
    let mut errs = Vec::new();
    let mut out = Map::new();
    match keys {
        SecretKeys::None => {}
        SecretKeys::AllOf { keys, scope } => {
            for k in keys {
                if matches!(ss.get(k), None | Some(Value::Null)) {
                    ss.remove(k);
                    errs.push(missing(scope, k));
                } else if let Some(s) = opt_string(ss, k, scope, &mut errs) {
                    out.insert(k.clone(), json!(s));
                }
            }
        }
        SecretKeys::OneOf(names) => {
            for k in names {
                if let Some(s) = opt_string(ss, k, "secret_settings", &mut errs) {
                    out.insert(k.clone(), json!(s));
                }
            }
            if errs.is_empty() && out.len() != 1 {
                // `SecretSettings.validateExactlyOneField` with OpenAiSecretSettings'
                // EXACTLY_ONE_SECRETS_FIELD_ERROR; the `received` suffix as in the Azure class
                // (inferred for OpenAI).
                let quoted: Vec<String> = names.iter().map(|n| format!("[{n}]")).collect();
                let mut msg = format!(
                    "[service_settings] must have exactly one of {} field set",
                    quoted.join(" or ")
                );
                if out.len() > 1 {
                    let got: Vec<&str> = out.keys().map(String::as_str).collect();
                    msg.push_str(&format!(", received: {}", java_list(&got)));
                }
                errs.push(msg);
            }
        }
        SecretKeys::Map(key) => match ss.remove(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                let mut params = Map::new();
                for (k, val) in m {
                    match val {
                        Value::Null => {} // `removeNullValues`
                        Value::String(s) => {
                            params.insert(k, json!(s));
                        }
                        other => errs.push(map_value_error(key, &k, &other)),
                    }
                }
                if !params.is_empty() {
                    out.insert(key.clone(), Value::Object(params));
                }
            }
            Some(other) => errs.push(type_err(key, &other, "Map")),
        },
    }
    if !errs.is_empty() {
        return Err(EsError::validation(&errs));
    }
    Ok(out)
}

/// The new secrets after an `_update` whose body has `service_settings` (`newSecretSettings`
/// per class, see [`Rotation`]); `ss` loses the secret keys it had.
pub(crate) fn rotate_secrets(
    spec: &ServiceSpec,
    v: EsVersion,
    stored: &Map<String, Value>,
    ss: &mut Map<String, Value>,
) -> Result<Map<String, Value>, EsError> {
    let names = spec.secrets.names();
    let given: Map<String, Value> = names
        .iter()
        .filter_map(|k| ss.remove(k).map(|val| (k.clone(), val)))
        .collect();
    match spec.rotation {
        Rotation::Ignore => Ok(stored.clone()),
        Rotation::Replace | Rotation::WholeMap => parse_secrets(&spec.secrets, &mut given.clone()),
        Rotation::DefaultApiKey if !v.v95() => parse_secrets(&spec.secrets, &mut given.clone()),
        Rotation::DefaultApiKey | Rotation::OneOfKeep if given.is_empty() => Ok(stored.clone()),
        Rotation::DefaultApiKey => parse_secrets(&spec.secrets, &mut given.clone()),
        Rotation::OneOfKeep => {
            let mut g = given.clone();
            let new = parse_secrets(&spec.secrets, &mut g)?;
            let (old_kind, new_kind) = (stored.keys().next(), new.keys().next());
            if let (Some(o), Some(n)) = (old_kind, new_kind) {
                if o != n {
                    // (inferred) wording: the subclasses' `updated` refuse another kind.
                    return Err(EsError::validation(&[format!(
                        "only [{o}] can be updated for this secret, received: [{n}]"
                    )]));
                }
            }
            Ok(new)
        }
        Rotation::Pair => {
            // AwsSecretSettings.newSecretSettings: optional halves, both or neither.
            let mut errs = Vec::new();
            let mut g = given.clone();
            let got: Vec<(String, Option<String>)> = names
                .iter()
                .map(|k| {
                    (
                        k.clone(),
                        opt_string(&mut g, k, "service_settings", &mut errs),
                    )
                })
                .collect();
            if !errs.is_empty() {
                return Err(EsError::validation(&errs));
            }
            if got.iter().all(|(_, v)| v.is_none()) {
                return Ok(stored.clone());
            }
            if let Some((absent, _)) = got.iter().find(|(_, v)| v.is_none()) {
                return Err(EsError::validation(&[format!(
                    "[service_settings] [{}] must be updated together; missing: [{absent}]",
                    names.join("] and [")
                )]));
            }
            Ok(got.into_iter().map(|(k, v)| (k, json!(v))).collect())
        }
    }
}

/// The model name a provider call names: the first of `model_id`, `model`, `deployment_id`,
/// `url` that is set.
pub(crate) fn model_of(ss: &Map<String, Value>) -> String {
    ["model_id", "model", "deployment_id", "url"]
        .iter()
        .find_map(|k| ss.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}

/// The credential identity of stored secrets (see [`super::FakeProviders`]): AWS pair joined by
/// `:`, `custom` parameters as sorted `k=v` joined by `,`, one key its value, none empty.
pub(crate) fn credential_of(keys: &SecretKeys, secrets: &Map<String, Value>) -> String {
    let s = |k: &str| {
        secrets
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match keys {
        SecretKeys::None => String::new(),
        SecretKeys::Map(k) => {
            let pairs: Vec<(String, String)> = secrets
                .get(k)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            super::providers::custom_credential(&pairs)
        }
        SecretKeys::AllOf { keys, .. } => keys.iter().map(|k| s(k)).collect::<Vec<_>>().join(":"),
        SecretKeys::OneOf(keys) => keys.iter().map(|k| s(k)).collect::<String>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn aws_pair_rotation_needs_both_halves() {
        let spec = builtin(EsVersion::parse("9.1.0"))
            .into_iter()
            .find(|s| s.name == "amazonbedrock")
            .unwrap();
        let stored = obj(json!({"access_key": "a", "secret_key": "s"}));
        let v = EsVersion::parse("9.1.0");
        let e =
            rotate_secrets(&spec, v, &stored, &mut obj(json!({"access_key": "a2"}))).unwrap_err();
        assert_eq!(e.reason(), "Validation Failed: 1: [service_settings] [access_key] and [secret_key] must be updated together; missing: [secret_key];");
        assert_eq!(
            rotate_secrets(&spec, v, &stored, &mut Map::new()).unwrap(),
            stored
        );
    }
}
