//! Unit tests of the API shape: the committed CRD matches the types, and the CEL rules accept
//! and reject what Elasticsearch would. OpenAPI-level checks (patterns, enums, bounds) are
//! exercised through the Kubernetes API emulator in `tests/admission.rs`.

use super::*;
use kube::core::cel::Validator;
use serde_json::{json, Value};

fn schema() -> Value {
    let crd = crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("schema to json")
}

fn object(spec: Value) -> Value {
    json!({
        "apiVersion": "esinference.io/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": {"name": "emb", "namespace": "default"},
        "spec": spec,
    })
}

fn embedding_spec() -> Value {
    json!({
        "elasticsearch": {"url": "https://es:9200", "credentialsSecretRef": {"name": "es"}},
        "taskType": "text_embedding",
        "azureOpenAI": {
            "resourceName": "res", "deploymentId": "emb", "apiVersion": "2024-10-21",
            "apiKeySecretRef": {"name": "azure", "key": "apiKey"}
        }
    })
}

/// CEL messages produced for `spec` (empty when it is accepted).
fn cel_errors(spec: Value, old: Option<Value>) -> Vec<String> {
    let old = old.map(object);
    match Validator::new().validate(&schema(), &object(spec), old.as_ref()) {
        Ok(()) => vec![],
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| e.to_string())
            .collect(),
    }
}

fn with(mut spec: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    spec.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("parent exists")
        .insert(key.to_owned(), value);
    spec
}

fn without(mut spec: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    spec.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("parent exists")
        .remove(key);
    spec
}

#[test]
fn committed_crd_matches_the_types() {
    let committed = include_str!("../../crds/inferenceendpoint.yaml");
    assert!(
        committed == crd_yaml(),
        "crds/inferenceendpoint.yaml is out of date: run `cargo run -- crd > crds/inferenceendpoint.yaml`"
    );
}

#[test]
fn crd_identity_matches_the_design() {
    let crd = crd();
    assert_eq!(crd.spec.group, "esinference.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "InferenceEndpoint");
    assert_eq!(crd.spec.names.plural, "inferenceendpoints");
    assert_eq!(crd.spec.names.short_names, Some(vec!["iep".to_owned()]));
    assert_eq!(crd.spec.names.categories, Some(vec!["elastic".to_owned()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version
        .subresources
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .is_some());
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Ready",
            "Reason",
            "Service",
            "Task",
            "Inference ID",
            "Healthy",
            "Used-By",
            "Message",
            "Age"
        ]
    );
    // The id the spec resolves to, shown before the endpoint exists (status.inferenceId is set
    // only once it does).
    let inference_id = version
        .additional_printer_columns
        .iter()
        .flatten()
        .find(|c| c.name == "Inference ID")
        .expect("Inference ID column");
    assert_eq!(inference_id.json_path, ".status.targetInferenceId");
}

#[test]
fn unreconciled_objects_read_back_with_observed_generation_minus_one() {
    let schema = schema();
    assert_eq!(
        schema["properties"]["status"]["default"],
        json!({"observedGeneration": -1})
    );
}

#[test]
fn schema_carries_field_docs() {
    let schema = schema();
    let spec = &schema["properties"]["spec"]["properties"];
    for field in [
        "elasticsearch",
        "inferenceId",
        "taskType",
        "azureOpenAI",
        "deletionPolicy",
    ] {
        let description = spec[field]["description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "spec.{field} has no description");
    }
    let azure = &spec["azureOpenAI"]["properties"];
    for field in [
        "resourceName",
        "deploymentId",
        "apiVersion",
        "apiKeySecretRef",
        "rateLimit",
    ] {
        let description = azure[field]["description"].as_str().unwrap_or_default();
        assert!(
            !description.is_empty(),
            "spec.azureOpenAI.{field} has no description"
        );
    }
}

#[test]
fn valid_specs_pass_every_cel_rule() {
    assert_eq!(cel_errors(embedding_spec(), None), Vec::<String>::new());
    let completion = with(embedding_spec(), "/taskType", json!("completion"));
    assert_eq!(cel_errors(completion, None), Vec::<String>::new());
    let chunked = with(
        embedding_spec(),
        "/chunkingSettings",
        json!({"strategy": "word", "maxChunkSize": 100, "overlap": 50}),
    );
    assert_eq!(cel_errors(chunked, None), Vec::<String>::new());
    let recursive = with(
        embedding_spec(),
        "/chunkingSettings",
        json!({"strategy": "recursive", "maxChunkSize": 200, "separatorGroup": "markdown"}),
    );
    assert_eq!(cel_errors(recursive, None), Vec::<String>::new());
    let none = with(
        embedding_spec(),
        "/chunkingSettings",
        json!({"strategy": "none"}),
    );
    assert_eq!(cel_errors(none, None), Vec::<String>::new());
}

#[test]
fn invalid_specs_fail_with_readable_messages() {
    let ref_too = with(
        embedding_spec(),
        "/elasticsearchRef",
        json!({"name": "quickstart"}),
    );
    let no_target = without(embedding_spec(), "/elasticsearch");
    let no_service = without(embedding_spec(), "/azureOpenAI");
    let two_credentials = with(
        embedding_spec(),
        "/azureOpenAI/entraIdSecretRef",
        json!({"name": "azure", "key": "token"}),
    );
    let no_credential = without(embedding_spec(), "/azureOpenAI/apiKeySecretRef");
    let completion = with(embedding_spec(), "/taskType", json!("completion"));
    let completion_dims = with(completion.clone(), "/azureOpenAI/dimensions", json!(256));
    let completion_similarity = with(
        completion.clone(),
        "/azureOpenAI/similarity",
        json!("cosine"),
    );
    let completion_tokens = with(
        completion.clone(),
        "/azureOpenAI/maxInputTokens",
        json!(512),
    );
    let completion_chunking = with(
        completion,
        "/chunkingSettings",
        json!({"strategy": "sentence", "maxChunkSize": 250}),
    );
    let chunking = |settings: Value| with(embedding_spec(), "/chunkingSettings", settings);

    let table: Vec<(&str, Value, &str)> = vec![
        ("both targets", ref_too, "exactly one of elasticsearchRef or elasticsearch must be set"),
        ("no target", no_target, "exactly one of elasticsearchRef or elasticsearch must be set"),
        ("no service", no_service, "exactly one of azureOpenAI or service must be set"),
        ("two credentials", two_credentials, "exactly one of apiKeySecretRef, entraIdSecretRef or oauth2 must be set"),
        ("no credential", no_credential, "exactly one of apiKeySecretRef, entraIdSecretRef or oauth2 must be set"),
        ("dimensions on completion", completion_dims, "spec.azureOpenAI.dimensions: dimensions apply only to taskType text_embedding"),
        ("similarity on completion", completion_similarity, "spec.azureOpenAI.similarity: similarity applies only to taskType text_embedding"),
        ("tokens on completion", completion_tokens, "spec.azureOpenAI.maxInputTokens: maxInputTokens applies only to taskType text_embedding"),
        ("chunking on completion", completion_chunking, "spec.chunkingSettings: chunkingSettings apply only to taskType text_embedding, sparse_embedding and embedding"),
        ("azure rerank", with(embedding_spec(), "/taskType", json!("rerank")), "spec.taskType: azureOpenAI offers taskType text_embedding, completion and chat_completion"),
        ("sentence without size", chunking(json!({"strategy": "sentence"})), "maxChunkSize is required for strategies sentence, word and recursive"),
        ("sentence too small", chunking(json!({"strategy": "sentence", "maxChunkSize": 19})), "maxChunkSize must be at least 20 for strategy sentence"),
        ("word too large", chunking(json!({"strategy": "word", "maxChunkSize": 301, "overlap": 1})), "maxChunkSize must be between 10 and 300 for strategies word and recursive"),
        ("word without overlap", chunking(json!({"strategy": "word", "maxChunkSize": 100})), "overlap is required for strategy word and applies only to it"),
        ("word overlap too large", chunking(json!({"strategy": "word", "maxChunkSize": 100, "overlap": 51})), "overlap must not exceed half of maxChunkSize"),
        ("overlap on sentence", chunking(json!({"strategy": "sentence", "maxChunkSize": 100, "overlap": 5})), "overlap is required for strategy word and applies only to it"),
        ("sentenceOverlap on word", chunking(json!({"strategy": "word", "maxChunkSize": 100, "overlap": 5, "sentenceOverlap": 1})), "sentenceOverlap applies only to strategy sentence"),
        ("recursive without separators", chunking(json!({"strategy": "recursive", "maxChunkSize": 100})), "strategy recursive needs exactly one of separatorGroup or separators"),
        ("recursive with both", chunking(json!({"strategy": "recursive", "maxChunkSize": 100, "separatorGroup": "plaintext", "separators": ["\n"]})), "strategy recursive needs exactly one of separatorGroup or separators"),
        ("separators on word", chunking(json!({"strategy": "word", "maxChunkSize": 100, "overlap": 5, "separators": ["\n"]})), "separatorGroup and separators apply only to strategy recursive"),
        ("none with size", chunking(json!({"strategy": "none", "maxChunkSize": 100})), "strategy none takes no other field"),
    ];
    for (case, spec, expected) in table {
        let errors = cel_errors(spec, None);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{case}: expected an error containing {expected:?}, got {errors:?}"
        );
    }
}

fn generic(task: &str, service: Value) -> Value {
    json!({
        "elasticsearch": {"url": "https://es:9200"},
        "taskType": task,
        "service": service,
    })
}

#[test]
fn generic_service_blocks_pass_their_rules() {
    let key = |name: &str| json!({"secretKeyRef": {"name": name, "key": "k"}});
    let ok = [
        generic(
            "rerank",
            json!({"name": "cohere", "settings": {"model_id": "rerank-v3.5"},
            "secretSettings": {"api_key": key("cohere")}, "taskSettings": {"top_n": 5}}),
        ),
        generic(
            "text_embedding",
            json!({"name": "amazonbedrock",
            "settings": {"region": "us-east-1", "model": "m", "provider": "amazontitan"},
            "secretSettings": {"access_key": key("aws"), "secret_key": key("aws")}}),
        ),
        generic(
            "sparse_embedding",
            json!({"name": "elasticsearch",
            "settings": {"model_id": ".elser_model_2", "num_threads": 1,
                         "adaptive_allocations": {"enabled": true}}}),
        ),
        generic(
            "completion",
            json!({"name": "custom",
            "settings": {"url": "https://x", "request": "{}"},
            "secretSettings": {"secret_parameters": {"secretRef": {"name": "custom"}}}}),
        ),
        generic(
            "rerank",
            json!({"name": "some-future-service",
            "secretSettings": {"token": key("f")}}),
        ),
        generic(
            "text_embedding",
            json!({"name": "azureopenai",
            "settings": {"resource_name": "r", "deployment_id": "d", "api_version": "v"},
            "secretSettings": {"entra_id": key("e")}}),
        ),
    ];
    for spec in ok {
        assert_eq!(
            cel_errors(spec.clone(), None),
            Vec::<String>::new(),
            "{spec}"
        );
    }
}

#[test]
fn generic_service_blocks_refuse_with_readable_messages() {
    let key = |name: &str| json!({"secretKeyRef": {"name": name, "key": "k"}});
    let table: Vec<(&str, Value, &str)> = vec![
        ("both blocks", with(embedding_spec(), "/service", json!({"name": "openai"})),
         "exactly one of azureOpenAI or service must be set"),
        ("inline api_key", generic("rerank", json!({"name": "cohere",
            "settings": {"model_id": "m", "api_key": "sk-123"}, "secretSettings": {"api_key": key("c")}})),
         "spec.service.settings.api_key: api_key is a secret and must not be written in the spec: move it to secretSettings"),
        ("inline camelCase", generic("rerank", json!({"name": "some-future-service",
            "settings": {"secretKey": "x"}})),
         "secretKey is a secret and must not be written in the spec"),
        ("inline map", generic("completion", json!({"name": "custom",
            "settings": {"secret_parameters": {"t": "x"}}})),
         "secret_parameters is a secret and must not be written in the spec"),
        ("not a secret", generic("rerank", json!({"name": "cohere",
            "secretSettings": {"api_key": key("c"), "model_id": key("c")}})),
         "spec.service.secretSettings: service cohere takes secretSettings api_key"),
        ("half the pair", generic("text_embedding", json!({"name": "amazonbedrock",
            "secretSettings": {"access_key": key("aws")}})),
         "service amazonbedrock takes secretSettings access_key and secret_key"),
        ("secret for in-cluster", generic("sparse_embedding", json!({"name": "elasticsearch",
            "secretSettings": {"api_key": key("x")}})),
         "service elasticsearch takes no secretSettings"),
        ("missing key", generic("rerank", json!({"name": "cohere"})),
         "service cohere takes secretSettings api_key"),
        ("two of one-of", generic("completion", json!({"name": "openai",
            "secretSettings": {"api_key": key("o"), "client_secret": key("o")}})),
         "service openai takes exactly one of secretSettings api_key or client_secret"),
        ("map from one key", generic("completion", json!({"name": "custom",
            "secretSettings": {"secret_parameters": key("c")}})),
         "takes a whole Secret (secretRef)"),
        ("both sources", generic("rerank", json!({"name": "cohere",
            "secretSettings": {"api_key": {"secretKeyRef": {"name": "c", "key": "k"}, "secretRef": {"name": "c"}}}})),
         "exactly one of secretKeyRef or secretRef must be set"),
        ("task the service lacks", generic("rerank", json!({"name": "openai",
            "secretSettings": {"api_key": key("o")}})),
         "spec.taskType: service openai does not offer taskType rerank"),
        ("chunking on rerank", with(generic("rerank", json!({"name": "cohere",
            "secretSettings": {"api_key": key("c")}})), "/chunkingSettings",
            json!({"strategy": "sentence", "maxChunkSize": 250})),
         "chunkingSettings apply only to taskType text_embedding, sparse_embedding and embedding"),
    ];
    for (case, spec, expected) in table {
        let errors = cel_errors(spec.clone(), None);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{case}: expected an error containing {expected:?}, got {errors:?}"
        );
        let typed: InferenceEndpointSpec = serde_json::from_value(spec).expect("decodes");
        let refused = crate::api::checks::check_spec(&typed).expect_err(case);
        let tail = expected
            .rsplit_once(": ")
            .map_or(expected, |(_, tail)| tail);
        assert!(
            refused.to_string().contains(tail),
            "{case}: the operator refuses with {refused}, admission with {expected:?}"
        );
    }
}

#[test]
fn identity_fields_are_immutable() {
    let old = with(embedding_spec(), "/inferenceId", json!("emb-v1"));
    let renamed = with(embedding_spec(), "/inferenceId", json!("emb-v2"));
    assert!(cel_errors(renamed, Some(old.clone()))
        .iter()
        .any(|e| e.contains("inferenceId is immutable")));
    let removed = embedding_spec();
    assert!(cel_errors(removed, Some(old.clone()))
        .iter()
        .any(|e| e.contains("inferenceId is immutable")));
    let retyped = with(old.clone(), "/taskType", json!("completion"));
    assert!(cel_errors(retyped, Some(old.clone()))
        .iter()
        .any(|e| e.contains("taskType is immutable")));
    // A change of a mutable field passes the transition rules.
    let rate_limited = with(
        old.clone(),
        "/azureOpenAI/rateLimit",
        json!({"requestsPerMinute": 10}),
    );
    assert_eq!(cel_errors(rate_limited, Some(old)), Vec::<String>::new());
}

#[test]
fn inference_id_defaults_to_the_object_name() {
    let mut iep: InferenceEndpoint =
        serde_json::from_value(object(embedding_spec())).expect("deserializes");
    assert_eq!(iep.inference_id(), "emb");
    iep.spec.inference_id = Some("shared-emb".into());
    assert_eq!(iep.inference_id(), "shared-emb");
    assert_eq!(iep.spec.deletion_policy, DeletionPolicy::Delete);
}

/// Every node of `schema` with its dotted path, depth first.
fn walk<'a>(schema: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    out.push((path.clone(), schema));
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            walk(child, format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = schema.get("items") {
        walk(items, format!("{path}[]"), out);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        walk(values, format!("{path}{{}}"), out);
    }
}

fn nodes(schema: &Value) -> Vec<(String, &Value)> {
    let mut out = vec![];
    walk(schema, String::new(), &mut out);
    out
}

#[test]
fn every_integer_in_the_crd_has_a_minimum_and_a_maximum() {
    // The API server does not enforce `format: int32`/`int64`: without a `maximum`, a value
    // such as 2147483648 is stored and every typed client then fails to decode the whole list.
    let schema = schema();
    let unbounded: Vec<_> = nodes(&schema)
        .into_iter()
        .filter(|(_, node)| node["type"] == "integer")
        .filter(|(_, node)| node.get("maximum").is_none() || node.get("minimum").is_none())
        .map(|(path, _)| path)
        .collect();
    assert_eq!(unbounded, Vec::<String>::new(), "integers without bounds");
    // And each bound fits the Rust type the operator decodes into.
    for (path, node) in nodes(&schema) {
        let (Some(max), Some(format)) = (node["maximum"].as_f64(), node["format"].as_str()) else {
            continue;
        };
        let limit = if format == "int32" {
            f64::from(i32::MAX)
        } else {
            INT64_SAFE_MAX as f64
        };
        assert!(max <= limit, "{path}: maximum {max} does not fit {format}");
    }
}

#[test]
fn every_string_list_and_map_in_the_spec_has_a_bound() {
    let schema = schema();
    let mut unbounded = vec![];
    for (path, node) in nodes(&schema["properties"]["spec"]) {
        // Declared only so the CEL rule can refuse them, whatever their length.
        if path.starts_with(".service.settings.") {
            continue;
        }
        let bounded = match node["type"].as_str() {
            Some("string") => node.get("maxLength").is_some() || node.get("enum").is_some(),
            Some("array") => node.get("maxItems").is_some(),
            // Typed objects are bounded by their properties; maps and free-form objects need
            // a count (what a free-form object holds is bounded by the operator's size limit).
            Some("object") => {
                let map = node.get("additionalProperties").is_some()
                    || node.get("x-kubernetes-preserve-unknown-fields").is_some();
                !map || node.get("maxProperties").is_some()
            }
            _ => true,
        };
        if !bounded {
            unbounded.push(path);
        }
    }
    assert_eq!(unbounded, Vec::<String>::new(), "unbounded spec fields");
}

#[test]
fn every_pattern_compiles_for_the_operator_too() {
    for (path, node) in nodes(&schema()) {
        if let Some(pattern) = node["pattern"].as_str() {
            assert!(regex::Regex::new(pattern).is_ok(), "{path}: {pattern}");
        }
    }
}

mod checks {
    use super::*;
    use crate::api::checks::{check_spec, SpecViolation, MAX_SPEC_BYTES};

    fn spec(value: Value) -> InferenceEndpointSpec {
        serde_json::from_value(value).expect("decodes into the typed spec")
    }

    /// The field `check_spec` names for `value`, or `None` when it passes.
    fn refused(value: Value) -> Option<String> {
        check_spec(&spec(value)).err().map(|v| v.field)
    }

    #[test]
    fn a_valid_spec_passes() {
        assert_eq!(check_spec(&spec(embedding_spec())), Ok(()));
        let eck = with(
            without(embedding_spec(), "/elasticsearch"),
            "/elasticsearchRef",
            json!({"name": "quickstart", "namespace": "elastic-system"}),
        );
        assert_eq!(check_spec(&spec(eck)), Ok(()));
    }

    /// Above 2^53 an f64 rounds: the value must be compared and quoted as stored (found on a
    /// real API server, which stores 9007199254740993 under a CRD without the bound).
    #[test]
    fn integers_past_2_pow_53_are_compared_and_quoted_exactly() {
        let rpm = |n: i64| {
            with(
                embedding_spec(),
                "/azureOpenAI/rateLimit",
                json!({"requestsPerMinute": n}),
            )
        };
        let max = 9_007_199_254_740_991_i64;
        assert_eq!(check_spec(&spec(rpm(max))), Ok(()));
        let violation = check_spec(&spec(rpm(max + 2))).unwrap_err();
        assert!(
            violation
                .to_string()
                .contains("9007199254740993 is out of range"),
            "{violation}"
        );
        assert!(
            check_spec(&spec(rpm(max + 1))).is_err(),
            "2^53 is past the maximum"
        );
    }

    #[test]
    fn what_admission_refuses_the_operator_refuses_naming_the_field() {
        let url = |u: &str| with(embedding_spec(), "/elasticsearch/url", json!(u));
        let azure_key = |name: &str| {
            with(
                embedding_spec(),
                "/azureOpenAI/apiKeySecretRef",
                json!({"name": name, "key": "apiKey"}),
            )
        };
        let headers = |h: Value| {
            with(
                embedding_spec(),
                "/azureOpenAI/taskSettings",
                json!({"headers": h}),
            )
        };
        let many_headers: serde_json::Map<String, Value> =
            (0..33).map(|i| (format!("x-{i}"), json!("v"))).collect();
        let eck = |r: Value| {
            with(
                without(embedding_spec(), "/elasticsearch"),
                "/elasticsearchRef",
                r,
            )
        };
        let table: Vec<(&str, Value, &str)> = vec![
            (
                "userinfo",
                url("https://elastic:secret@es:9200"),
                "spec.elasticsearch.url",
            ),
            (
                "user only",
                url("http://elastic@es:9200/"),
                "spec.elasticsearch.url",
            ),
            (
                "skip tls with ca",
                with(
                    with(
                        embedding_spec(),
                        "/elasticsearch/insecureSkipTlsVerify",
                        json!(true),
                    ),
                    "/elasticsearch/caSecretRef",
                    json!({"name": "ca"}),
                ),
                "spec.elasticsearch.insecureSkipTlsVerify",
            ),
            (
                "query in a secret name",
                azure_key("azure?limit=1"),
                "spec.azureOpenAI.apiKeySecretRef.name",
            ),
            (
                "fragment in a secret name",
                azure_key("azure#frag"),
                "spec.azureOpenAI.apiKeySecretRef.name",
            ),
            (
                "path in a secret name",
                azure_key("../configmaps/x"),
                "spec.azureOpenAI.apiKeySecretRef.name",
            ),
            (
                "upper case secret name",
                azure_key("Azure"),
                "spec.azureOpenAI.apiKeySecretRef.name",
            ),
            (
                "long secret name",
                azure_key(&"a".repeat(254)),
                "spec.azureOpenAI.apiKeySecretRef.name",
            ),
            (
                "credentials secret name",
                with(
                    embedding_spec(),
                    "/elasticsearch/credentialsSecretRef",
                    json!({"name": "es?watch=1"}),
                ),
                "spec.elasticsearch.credentialsSecretRef.name",
            ),
            (
                "eck name",
                eck(json!({"name": "es/x"})),
                "spec.elasticsearchRef.name",
            ),
            (
                "eck namespace with a dot",
                eck(json!({"name": "es", "namespace": "a.b"})),
                "spec.elasticsearchRef.namespace",
            ),
            (
                "dimensions above dense_vector's limit",
                with(embedding_spec(), "/azureOpenAI/dimensions", json!(4097)),
                "spec.azureOpenAI.dimensions",
            ),
            (
                "word overlap above 150",
                with(
                    embedding_spec(),
                    "/chunkingSettings",
                    json!({"strategy": "word", "maxChunkSize": 300, "overlap": 151}),
                ),
                "spec.chunkingSettings.overlap",
            ),
            (
                "long separator",
                with(
                    embedding_spec(),
                    "/chunkingSettings",
                    json!({"strategy": "recursive", "maxChunkSize": 100, "separators": ["a".repeat(129)]}),
                ),
                "spec.chunkingSettings.separators[0]",
            ),
            (
                "too many headers",
                headers(Value::Object(many_headers)),
                "spec.azureOpenAI.taskSettings.headers",
            ),
            (
                "long header value",
                headers(json!({"x-team": "v".repeat(513)})),
                "spec.azureOpenAI.taskSettings.headers.x-team",
            ),
            (
                "long header name",
                headers(json!({"x".repeat(129): "v"})),
                "spec.azureOpenAI.taskSettings.headers",
            ),
            (
                "huge spec",
                headers(json!({"x-big": "v".repeat(MAX_SPEC_BYTES)})),
                "spec",
            ),
        ];
        for (case, value, field) in table {
            assert_eq!(refused(value).as_deref(), Some(field), "{case}");
        }
    }

    #[test]
    fn messages_never_quote_the_url() {
        let value = with(
            embedding_spec(),
            "/elasticsearch/url",
            json!("https://elastic:hunter2@es:9200"),
        );
        let SpecViolation { message, .. } = check_spec(&spec(value)).unwrap_err();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("credentialsSecretRef"), "{message}");
    }

    #[test]
    fn the_userinfo_rule_and_the_operator_agree() {
        for (url, has_userinfo) in [
            ("https://es:9200", false),
            ("https://es:9200/prefix/a@b", false),
            ("https://es-a.example:9200/a@b/c", false),
            ("https://user@es:9200", true),
            ("https://user:pass@es:9200/", true),
            ("http://:pass@es", true),
        ] {
            let value = with(embedding_spec(), "/elasticsearch/url", json!(url));
            let cel = cel_errors(value.clone(), None)
                .iter()
                .any(|e| e.contains("must not contain user information"));
            let operator = check_spec(&spec(value))
                .is_err_and(|v| v.message.contains("must not contain user information"));
            assert_eq!((cel, operator), (has_userinfo, has_userinfo), "{url}");
        }
        let skip_and_ca = with(
            with(
                embedding_spec(),
                "/elasticsearch/insecureSkipTlsVerify",
                json!(true),
            ),
            "/elasticsearch/caSecretRef",
            json!({"name": "ca"}),
        );
        assert!(cel_errors(skip_and_ca, None)
            .iter()
            .any(|e| e.contains("insecureSkipTlsVerify cannot be combined with caSecretRef")));
        let skip_only = with(
            embedding_spec(),
            "/elasticsearch/insecureSkipTlsVerify",
            json!(true),
        );
        assert_eq!(cel_errors(skip_only.clone(), None), Vec::<String>::new());
        assert_eq!(refused(skip_only), None);
        let long_header = with(
            embedding_spec(),
            "/azureOpenAI/taskSettings",
            json!({"headers": {"x".repeat(129): "v"}}),
        );
        assert!(cel_errors(long_header, None)
            .iter()
            .any(|e| e.contains("header names must be at most 128 characters")));
    }

    /// The largest spec the schema admits, every string at its maximum length and made of a
    /// character JSON escapes to six bytes, still fits the operator's size limit: the limit
    /// refuses only objects that bypassed the schema.
    #[test]
    fn the_size_limit_never_refuses_a_spec_the_schema_admits() {
        let fill = |n: usize| "\u{1}".repeat(n);
        let name = |n: usize| "a".repeat(n);
        let headers: serde_json::Map<String, Value> = (0..MAX_HEADERS)
            .map(|i| {
                let key = format!("{i:0>width$}", width = MAX_HEADER_NAME_LENGTH);
                (key, json!(fill(MAX_HEADER_VALUE_LENGTH)))
            })
            .collect();
        let largest = json!({
            "elasticsearchRef": {"name": name(253), "namespace": name(63)},
            "elasticsearch": {
                "url": format!("https://{}", "e".repeat(2040)),
                "credentialsSecretRef": {"name": name(253)},
                "caSecretRef": {"name": name(253), "key": name(253)},
            },
            "inferenceId": name(253),
            "taskType": "text_embedding",
            "azureOpenAI": {
                "resourceName": name(64), "deploymentId": fill(64), "apiVersion": fill(64),
                "oauth2": {
                    "clientId": fill(128), "tenantId": fill(253), "scopes": vec![fill(512); 16],
                    "clientSecretSecretRef": {"name": name(253), "key": name(253)},
                },
                "dimensions": MAX_DIMENSIONS, "similarity": "dot_product",
                "maxInputTokens": INT32_MAX, "rateLimit": {"requestsPerMinute": INT64_SAFE_MAX},
                "taskSettings": {"user": fill(256), "headers": headers},
            },
            "chunkingSettings": {
                "strategy": "recursive", "maxChunkSize": INT32_MAX, "sentenceOverlap": 1,
                "overlap": 150, "separatorGroup": "markdown",
                "separators": vec![fill(MAX_SEPARATOR_LENGTH); 64],
            },
            "deletionPolicy": "Retain", "updatePolicy": "Recreate",
        });
        let size = largest.to_string().len();
        assert!(
            size > MAX_SPEC_BYTES / 2,
            "the spec is near its worst case ({size})"
        );
        assert_eq!(check_spec(&spec(largest)), Ok(()), "{size} bytes");
    }
}
