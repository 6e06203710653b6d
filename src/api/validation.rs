//! CEL rules (`x-kubernetes-validations`) that the derive attaches to the schema.
//!
//! Each rule mirrors a check Elasticsearch would otherwise make after the request left the
//! cluster (docs/reference/elasticsearch-inference-api.md#azure-service-settings and
//! docs/reference/elasticsearch-inference-api.md#chunking-settings), so `kubectl apply` fails
//! fast with a field-level message instead. They are constants so tests can name them.

/// `inferenceId` can neither change nor be added/removed (that would move the endpoint).
pub const INFERENCE_ID_IMMUTABLE: &str = "has(self.inferenceId) == has(oldSelf.inferenceId) \
     && (!has(self.inferenceId) || self.inferenceId == oldSelf.inferenceId)";

/// Chunking is parsed only for the embedding task types; elsewhere ES rejects it as an unknown
/// setting (docs/reference/elasticsearch-inference-api.md#chunking-settings).
pub const CHUNKING_ONLY_FOR_EMBEDDINGS: &str =
    "self.taskType in ['text_embedding', 'sparse_embedding', 'embedding'] \
     || !has(self.chunkingSettings)";

/// The task types of `azureopenai` (docs/reference/elasticsearch-inference-api.md#azure-task-types).
pub const AZURE_TASK_TYPES: &str = "!has(self.azureOpenAI) \
     || self.taskType in ['text_embedding', 'completion', 'chat_completion']";

/// One Azure credential: an API key, a static Entra ID token, or OAuth2 client credentials.
pub const AZURE_ONE_CREDENTIAL: &str = "[has(self.apiKeySecretRef), has(self.entraIdSecretRef), \
     has(self.oauth2)].filter(set, set).size() == 1";

/// Completion settings accept only resource, deployment, version, rate limit and auth
/// (docs/reference/elasticsearch-inference-api.md#azure-service-settings).
pub const DIMENSIONS_ONLY_FOR_EMBEDDINGS: &str = "self.taskType == 'text_embedding' \
     || !has(self.azureOpenAI) || !has(self.azureOpenAI.dimensions)";
pub const SIMILARITY_ONLY_FOR_EMBEDDINGS: &str = "self.taskType == 'text_embedding' \
     || !has(self.azureOpenAI) || !has(self.azureOpenAI.similarity)";
pub const MAX_INPUT_TOKENS_ONLY_FOR_EMBEDDINGS: &str = "self.taskType == 'text_embedding' \
     || !has(self.azureOpenAI) || !has(self.azureOpenAI.maxInputTokens)";

// Chunking strategies and their bounds (`ChunkingSettingsBuilder` and friends,
// docs/reference/elasticsearch-inference-api.md#chunking-settings).
pub const CHUNK_SIZE_REQUIRED: &str = "self.strategy == 'none' || has(self.maxChunkSize)";
pub const CHUNK_SIZE_NOT_FOR_NONE: &str = "self.strategy != 'none' || (!has(self.maxChunkSize) \
     && !has(self.sentenceOverlap) && !has(self.overlap) && !has(self.separatorGroup) \
     && !has(self.separators))";
pub const SENTENCE_MIN_SIZE: &str =
    "self.strategy != 'sentence' || !has(self.maxChunkSize) || self.maxChunkSize >= 20";
pub const WORD_RECURSIVE_SIZE: &str = "!(self.strategy in ['word', 'recursive']) \
     || !has(self.maxChunkSize) || (self.maxChunkSize >= 10 && self.maxChunkSize <= 300)";
pub const SENTENCE_OVERLAP_ONLY_SENTENCE: &str =
    "!has(self.sentenceOverlap) || self.strategy == 'sentence'";
pub const WORD_OVERLAP_REQUIRED: &str = "has(self.overlap) == (self.strategy == 'word')";
pub const WORD_OVERLAP_BOUND: &str =
    "!has(self.overlap) || !has(self.maxChunkSize) || self.overlap <= self.maxChunkSize / 2";
pub const SEPARATORS_ONLY_RECURSIVE: &str =
    "self.strategy == 'recursive' || (!has(self.separatorGroup) && !has(self.separators))";
pub const RECURSIVE_ONE_SEPARATOR_SOURCE: &str =
    "self.strategy != 'recursive' || has(self.separatorGroup) != has(self.separators)";

// Connection safety (each mirrored by `checks::check_spec` for objects that bypassed admission).
/// No `user:password@` before the host: a password in the spec is shown by `kubectl describe`
/// and logged by clients that fail to decode a list.
pub const URL_WITHOUT_USERINFO: &str = "!self.url.matches('^[^:/?#]+://[^/?#]*@')";
/// Skipping verification while naming a CA is a contradiction; refuse it rather than guess.
pub const SKIP_TLS_VERIFY_WITHOUT_CA: &str =
    "!has(self.insecureSkipTlsVerify) || !self.insecureSkipTlsVerify || !has(self.caSecretRef)";
/// Map keys cannot carry `maxLength` in a structural schema, so header names are bounded here
/// (`size` is constant-cost, which keeps the rule inside the API server's CEL cost budget).
pub const HEADER_NAME_LENGTH: &str = "self.all(name, size(name) <= 128)";
/// The same bound for the keys of `secretSettings`.
pub const SETTING_NAME_LENGTH: &str = "self.all(name, size(name) <= 64)";

/// `spec.healthCheck.interval` within [1m, 24h] (the pattern has made it a Go duration already).
pub const HEALTH_CHECK_INTERVAL_BOUNDS: &str = "!has(self.interval) || self.interval == '' || \
    (duration(self.interval) >= duration('1m') && duration(self.interval) <= duration('24h'))";
