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
        ["Ready", "Reason", "Task", "Inference ID", "Message", "Age"]
    );
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
        ("no service", no_service, "exactly one service block must be set (supported: azureOpenAI)"),
        ("two credentials", two_credentials, "exactly one of apiKeySecretRef or entraIdSecretRef must be set"),
        ("no credential", no_credential, "exactly one of apiKeySecretRef or entraIdSecretRef must be set"),
        ("dimensions on completion", completion_dims, "spec.azureOpenAI.dimensions: dimensions apply only to taskType text_embedding"),
        ("similarity on completion", completion_similarity, "spec.azureOpenAI.similarity: similarity applies only to taskType text_embedding"),
        ("tokens on completion", completion_tokens, "spec.azureOpenAI.maxInputTokens: maxInputTokens applies only to taskType text_embedding"),
        ("chunking on completion", completion_chunking, "spec.chunkingSettings: chunkingSettings apply only to taskType text_embedding"),
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
