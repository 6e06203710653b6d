//! The service table: one entry per Elasticsearch inference service, each fact from
//! docs/reference/elasticsearch-services.md#catalogue (Azure OpenAI:
//! docs/reference/elasticsearch-inference-api.md#azure-task-types and
//! docs/reference/elasticsearch-inference-api.md#azure-service-settings).
//!
//! `rate_limit` appears in `filled_in` where Elasticsearch fills a default the table does not
//! carry; where it carries the default, both sides are compared with it filled in.
//!
//! `updatable` lists only what is verified for a release: Elasticsearch's default
//! `updateServiceSettings` ignores non-secret settings silently, and the per-service overrides of
//! 2026 (rate limits of ai21, groq, watsonx, ...) are in no release notes yet
//! (docs/reference/elasticsearch-services.md#update-settings). A change of any other setting
//! follows `updatePolicy`.

use super::{Gate, OAuth2, SecretKeys, ServiceProfile};
use crate::elasticsearch::version::Since;
use crate::elasticsearch::TaskType::{self, *};

const fn since(major: u32, minor: u32) -> Since {
    Since::release(major, minor)
}

/// `DefaultSecretSettings`: one required `api_key`.
const API_KEY: SecretKeys = SecretKeys::OneOf(&["api_key"]);
/// `AwsSecretSettings`: both keys, always together.
const AWS: SecretKeys = SecretKeys::AllOf(&["access_key", "secret_key"]);

fn none(_: TaskType) -> Option<u64> {
    None
}

fn no_task_defaults(_: TaskType) -> &'static [&'static str] {
    &[]
}

/// Embeddings learn `dimensions` and `similarity` from the provider; the rate limit default
/// is filled in for every task type.
fn embedding_learned(task: TaskType) -> &'static [&'static str] {
    if task == TextEmbedding {
        &["rate_limit", "dimensions", "similarity"]
    } else {
        &["rate_limit"]
    }
}

pub const AZURE_OPENAI: ServiceProfile = ServiceProfile {
    service: "azureopenai",
    tasks: &[
        (TextEmbedding, since(8, 14)),
        (Completion, since(8, 15)),
        (ChatCompletion, since(9, 3)),
    ],
    secrets: SecretKeys::OneOf(&["api_key", "entra_id", "client_secret"]),
    rotates_in_place: true,
    default_requests_per_minute: |task| match task {
        TextEmbedding => Some(1440),
        Completion | ChatCompletion => Some(120),
        _ => None,
    },
    filled_in: |task| match task {
        TextEmbedding => &["dimensions", "similarity"],
        _ => &[],
    },
    // 9.5: `rate_limit` and the OAuth2 fields (PR #145233), `max_input_tokens` of embeddings
    // (PR #149628) [I: release 9.5.0].
    updatable: &[
        ("rate_limit", since(9, 5)),
        ("max_input_tokens", since(9, 5)),
        ("client_id", since(9, 5)),
        ("scopes", since(9, 5)),
        ("tenant_id", since(9, 5)),
    ],
    filled_in_task_settings: no_task_defaults,
    gates: &[Gate {
        path: "task_settings.headers",
        since: since(9, 4),
    }],
    oauth2: Some(OAuth2 {
        secret: "client_secret",
        fields: &["client_id", "scopes", "tenant_id"],
        since: since(9, 4),
    }),
    deploys_model: false,
};

/// 8.19 on the 8.x line, 9.1 on 9.x (9.0 does not have it): where most 2025 services and task
/// types arrived (first `elasticsearch-specification` branches listing them).
const LATE_2025: Since = Since {
    from: (9, 1),
    backports: &[(8, 19, 0)],
};

pub const OPENAI: ServiceProfile = ServiceProfile {
    secrets: SecretKeys::OneOf(&["api_key", "client_secret"]),
    default_requests_per_minute: |task| match task {
        TextEmbedding => Some(3000),
        Completion | ChatCompletion => Some(500),
        _ => None,
    },
    filled_in: |task| match task {
        TextEmbedding | Embedding => &["dimensions", "similarity"],
        _ => &[],
    },
    // OAuth2 client credentials: elastic/elasticsearch#150132, 9.5.0.
    oauth2: Some(OAuth2 {
        secret: "client_secret",
        fields: &["client_id", "scopes", "token_url"],
        since: since(9, 5),
    }),
    ..api_key_service(
        "openai",
        &[
            (TextEmbedding, since(8, 12)),
            (Completion, since(8, 12)),
            (ChatCompletion, since(8, 18)),
            (Embedding, since(9, 5)),
        ],
    )
};

pub const COHERE: ServiceProfile = ServiceProfile {
    default_requests_per_minute: |_| Some(10_000),
    filled_in: |task| match task {
        TextEmbedding => &["dimensions", "similarity", "embedding_type"],
        _ => &[],
    },
    // rerank and completion are on every specification branch from 8.18; their first release
    // is taken from the per-service API's `since` (inferred).
    ..api_key_service(
        "cohere",
        &[
            (TextEmbedding, since(8, 13)),
            (Rerank, since(8, 14)),
            (Completion, since(8, 15)),
        ],
    )
};

pub const AMAZON_BEDROCK: ServiceProfile = ServiceProfile {
    secrets: AWS,
    default_requests_per_minute: |_| Some(240),
    filled_in: |task| match task {
        TextEmbedding => &["dimensions", "similarity"],
        _ => &[],
    },
    ..api_key_service(
        "amazonbedrock",
        &[
            (TextEmbedding, since(8, 15)),
            (Completion, since(8, 15)),
            (ChatCompletion, since(9, 4)),
        ],
    )
};

const ALLOCATIONS: &[(&str, Since)] = &[
    ("num_allocations", since(8, 17)),
    ("adaptive_allocations", since(8, 17)),
];

/// `elasticsearch` and its deprecated alias `elser`: in-cluster models, no secret; GET shows the
/// default `model_id` when the user left it out; `_update` changes the allocations from 8.17.
const fn in_cluster(service: &'static str, tasks: &'static [(TaskType, Since)]) -> ServiceProfile {
    ServiceProfile {
        secrets: SecretKeys::None,
        rotates_in_place: false,
        filled_in: |task| match task {
            TextEmbedding => &["model_id", "dimensions", "similarity", "element_type"],
            _ => &["model_id"],
        },
        updatable: ALLOCATIONS,
        // A rerank endpoint returns the documents unless told otherwise (inferred: the
        // double's reading of the rerank task settings, tests/harness/src/es/ml.rs).
        filled_in_task_settings: |task| match task {
            Rerank => &["return_documents"],
            _ => &[],
        },
        deploys_model: true,
        ..api_key_service(service, tasks)
    }
}

pub const ELASTICSEARCH: ServiceProfile = in_cluster(
    "elasticsearch",
    &[
        (SparseEmbedding, since(8, 13)),
        (TextEmbedding, since(8, 13)),
        (Rerank, since(8, 14)),
    ],
);

pub const ELSER: ServiceProfile = in_cluster("elser", &[(SparseEmbedding, since(8, 11))]);

/// EIS: which task types a cluster offers is decided by its EIS authorization, not by its
/// version, so no release gate within the supported range.
pub const ELASTIC: ServiceProfile = ServiceProfile {
    secrets: SecretKeys::None,
    rotates_in_place: false,
    ..api_key_service(
        "elastic",
        &[
            (SparseEmbedding, since(8, 15)),
            (ChatCompletion, since(8, 15)),
            (Completion, since(8, 15)),
            (TextEmbedding, since(8, 15)),
            (Rerank, since(8, 15)),
            (Embedding, since(8, 15)),
        ],
    )
};

pub const GOOGLE_VERTEX_AI: ServiceProfile = ServiceProfile {
    secrets: SecretKeys::OneOf(&["service_account_json"]),
    filled_in: |task| match task {
        TextEmbedding => &["rate_limit", "max_batch_size", "dimensions", "similarity"],
        _ => &["rate_limit"],
    },
    ..api_key_service(
        "googlevertexai",
        &[
            (TextEmbedding, since(8, 15)),
            (Rerank, since(8, 15)),
            (Completion, LATE_2025),
            (ChatCompletion, LATE_2025),
        ],
    )
};

pub const CUSTOM: ServiceProfile = ServiceProfile {
    secrets: SecretKeys::Map("secret_parameters"),
    default_requests_per_minute: |_| Some(10_000),
    filled_in: |task| match task {
        TextEmbedding => &["batch_size", "dimensions", "similarity"],
        _ => &["batch_size"],
    },
    ..api_key_service(
        "custom",
        &[
            (TextEmbedding, LATE_2025),
            (SparseEmbedding, LATE_2025),
            (Rerank, LATE_2025),
            (Completion, LATE_2025),
        ],
    )
};

pub const HUGGING_FACE: ServiceProfile = ServiceProfile {
    default_requests_per_minute: |_| Some(3000),
    filled_in: |task| match task {
        TextEmbedding => &["dimensions", "similarity", "max_input_tokens"],
        _ => &[],
    },
    ..api_key_service(
        "hugging_face",
        &[
            (TextEmbedding, since(8, 12)),
            (Rerank, LATE_2025),
            (Completion, LATE_2025),
            (ChatCompletion, LATE_2025),
        ],
    )
};

/// The common entry, which the others start from and override: an external service with one
/// `api_key` rotated through `_update`, tasks from the given releases, whose rate limit default
/// and learned embedding settings are filled in, and nothing else updatable or gated.
const fn api_key_service(
    service: &'static str,
    tasks: &'static [(TaskType, Since)],
) -> ServiceProfile {
    ServiceProfile {
        service,
        tasks,
        secrets: API_KEY,
        rotates_in_place: true,
        default_requests_per_minute: none,
        filled_in: embedding_learned,
        updatable: &[],
        filled_in_task_settings: no_task_defaults,
        gates: &[],
        oauth2: None,
        deploys_model: false,
    }
}

/// Every service the operator knows. Services that are in Elasticsearch's code but on no
/// specification branch (`tencentcloud`, `mixedbread`, an OCI one) are left out as unreleased:
/// they take the unknown-service path.
pub const KNOWN: &[ServiceProfile] = &[
    AZURE_OPENAI,
    OPENAI,
    COHERE,
    AMAZON_BEDROCK,
    ELASTICSEARCH,
    ELSER,
    ELASTIC,
    GOOGLE_VERTEX_AI,
    CUSTOM,
    HUGGING_FACE,
    api_key_service("hugging_face_elser", &[(SparseEmbedding, since(8, 11))]),
    api_key_service(
        "mistral",
        &[
            (TextEmbedding, since(8, 15)),
            (Completion, LATE_2025),
            (ChatCompletion, LATE_2025),
        ],
    ),
    api_key_service(
        "anthropic",
        &[(Completion, since(8, 16)), (ChatCompletion, since(9, 5))],
    ),
    api_key_service(
        "googleaistudio",
        &[(TextEmbedding, since(8, 15)), (Completion, since(8, 15))],
    ),
    api_key_service(
        "azureaistudio",
        &[
            (TextEmbedding, since(8, 14)),
            (Completion, since(8, 14)),
            (Rerank, since(9, 2)),
        ],
    ),
    api_key_service(
        "alibabacloud-ai-search",
        &[
            (TextEmbedding, since(8, 16)),
            (SparseEmbedding, since(8, 16)),
            (Rerank, since(8, 16)),
            (Completion, since(8, 16)),
        ],
    ),
    api_key_service(
        "watsonxai",
        &[
            (TextEmbedding, since(8, 16)),
            (Rerank, LATE_2025),
            (Completion, since(9, 1)),
            (ChatCompletion, since(9, 1)),
        ],
    ),
    ServiceProfile {
        filled_in: |task| match task {
            TextEmbedding | Embedding => {
                &["rate_limit", "dimensions", "similarity", "embedding_type"]
            }
            _ => &["rate_limit"],
        },
        ..api_key_service(
            "jinaai",
            &[
                (TextEmbedding, since(8, 18)),
                (Rerank, since(8, 18)),
                (Embedding, since(9, 4)),
            ],
        )
    },
    api_key_service(
        "voyageai",
        &[(TextEmbedding, LATE_2025), (Rerank, LATE_2025)],
    ),
    api_key_service(
        "deepseek",
        &[(Completion, LATE_2025), (ChatCompletion, LATE_2025)],
    ),
    api_key_service(
        "ai21",
        &[(Completion, since(9, 2)), (ChatCompletion, since(9, 2))],
    ),
    api_key_service("contextualai", &[(Rerank, since(9, 2))]),
    api_key_service("groq", &[(ChatCompletion, since(9, 3))]),
    api_key_service(
        "nvidia",
        &[
            (TextEmbedding, since(9, 3)),
            (Rerank, since(9, 3)),
            (Completion, since(9, 3)),
            (ChatCompletion, since(9, 3)),
        ],
    ),
    api_key_service(
        "openshift_ai",
        &[
            (TextEmbedding, since(9, 3)),
            (Rerank, since(9, 3)),
            (Completion, since(9, 3)),
            (ChatCompletion, since(9, 3)),
        ],
    ),
    api_key_service(
        "fireworksai",
        &[
            (TextEmbedding, since(9, 4)),
            (Completion, since(9, 4)),
            (ChatCompletion, since(9, 4)),
        ],
    ),
    ServiceProfile {
        // Without a key the endpoint holds `EmptySecretSettings`, and a key cannot be added
        // later (elastic/elasticsearch#140888): adding one needs a new endpoint.
        secrets: SecretKeys::Optional(&["api_key"]),
        ..api_key_service(
            "llama",
            &[
                (TextEmbedding, since(9, 2)),
                (Completion, since(9, 2)),
                (ChatCompletion, since(9, 2)),
            ],
        )
    },
    ServiceProfile {
        secrets: AWS,
        filled_in: |task| match task {
            TextEmbedding => &["rate_limit", "batch_size", "dimensions", "similarity"],
            _ => &["rate_limit", "batch_size"],
        },
        ..api_key_service(
            "amazon_sagemaker",
            &[
                (TextEmbedding, LATE_2025),
                (SparseEmbedding, LATE_2025),
                (Rerank, LATE_2025),
                (Completion, LATE_2025),
                (ChatCompletion, LATE_2025),
            ],
        )
    },
];
