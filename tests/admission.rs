//! Admission: the committed CRD, served by the Kubernetes API emulator (OpenAPI schema + CEL,
//! with the API server's message formats), accepts every object in `examples/` and rejects a
//! table of invalid objects with readable messages — before anything reaches Elasticsearch.

use inference_testenv::env::TestEnv;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

fn resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "esinference.io",
        "v1alpha1",
        "InferenceEndpoint",
    ))
}

fn examples() -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut docs = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let values: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for value in values.into_iter().filter(|v| !v.is_null()) {
            docs.push((path.display().to_string(), value));
        }
    }
    docs
}

#[tokio::test]
async fn every_example_is_accepted() {
    let env = TestEnv::start().await;
    let ieps: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &resource());
    let mut accepted = 0;
    for (file, doc) in examples() {
        if doc["kind"] != "InferenceEndpoint" {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(doc).unwrap();
        ieps.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("{file} rejected: {e}"));
        accepted += 1;
    }
    assert!(
        accepted >= 2,
        "text_embedding and completion examples exist"
    );
}

fn valid() -> Value {
    json!({
        "elasticsearch": {"url": "https://es:9200", "credentialsSecretRef": {"name": "es"}},
        "taskType": "text_embedding",
        "azureOpenAI": {
            "resourceName": "res", "deploymentId": "dep", "apiVersion": "2024-10-21",
            "apiKeySecretRef": {"name": "azure", "key": "apiKey"}
        }
    })
}

fn set(mut spec: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = spec.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    if value.is_null() {
        parent.remove(key);
    } else {
        parent.insert(key.to_owned(), value);
    }
    spec
}

async fn create(env: &TestEnv, name: &str, spec: Value) -> Result<(), String> {
    let ieps: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &resource());
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap();
    match ieps.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.reason, "Invalid", "{status:?}");
            assert_eq!(status.code, 422);
            Err(status.message)
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[tokio::test]
async fn invalid_objects_are_rejected_with_readable_messages() {
    let env = TestEnv::start().await;
    assert_eq!(create(&env, "valid", valid()).await, Ok(()));
    let table: Vec<(&str, Value, &str)> = vec![
        ("bad inference id", set(valid(), "/inferenceId", json!("My_Id")),
         "spec.inferenceId in body should match"),
        ("unknown task type", set(valid(), "/taskType", json!("rerank")),
         r#"spec.taskType: Unsupported value: "rerank""#),
        ("missing resource name", set(valid(), "/azureOpenAI/resourceName", Value::Null),
         "spec.azureOpenAI.resourceName: Required value"),
        ("zero rate limit", set(valid(), "/azureOpenAI/rateLimit", json!({"requestsPerMinute": 0})),
         "spec.azureOpenAI.rateLimit.requestsPerMinute: Invalid value: 0: spec.azureOpenAI.rateLimit.requestsPerMinute in body should be greater than or equal to 1"),
        ("bad similarity", set(valid(), "/azureOpenAI/similarity", json!("manhattan")),
         r#"spec.azureOpenAI.similarity: Unsupported value: "manhattan""#),
        ("no url scheme", set(valid(), "/elasticsearch/url", json!("es:9200")),
         "spec.elasticsearch.url in body should match"),
        ("two credentials", set(valid(), "/azureOpenAI/entraIdSecretRef", json!({"name": "e", "key": "k"})),
         "exactly one of apiKeySecretRef or entraIdSecretRef must be set"),
        ("two targets", set(valid(), "/elasticsearchRef", json!({"name": "quickstart"})),
         "exactly one of elasticsearchRef or elasticsearch must be set"),
        ("dimensions on completion",
         set(set(valid(), "/taskType", json!("completion")), "/azureOpenAI/dimensions", json!(256)),
         "spec.azureOpenAI.dimensions: Invalid value"),
        ("chunking on completion",
         set(set(valid(), "/taskType", json!("completion")), "/chunkingSettings", json!({"strategy": "none"})),
         "chunkingSettings apply only to taskType text_embedding"),
        ("word chunking without overlap",
         set(valid(), "/chunkingSettings", json!({"strategy": "word", "maxChunkSize": 100})),
         "overlap is required for strategy word and applies only to it"),
        ("sentence overlap 2",
         set(valid(), "/chunkingSettings", json!({"strategy": "sentence", "maxChunkSize": 100, "sentenceOverlap": 2})),
         "should be less than or equal to 1"),
    ];
    for (index, (case, spec, expected)) in table.into_iter().enumerate() {
        let result = create(&env, &format!("invalid-{index}"), spec).await;
        match result {
            Ok(()) => panic!("{case}: accepted"),
            Err(message) => assert!(
                message.contains(expected),
                "{case}: expected {expected:?} in {message:?}"
            ),
        }
    }
}

#[tokio::test]
async fn identity_fields_cannot_change_after_creation() {
    let env = TestEnv::start().await;
    create(
        &env,
        "fixed",
        set(valid(), "/inferenceId", json!("fixed-id")),
    )
    .await
    .unwrap();
    let ieps: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &resource());
    for (patch, expected) in [
        (
            json!({"spec": {"inferenceId": "other-id"}}),
            "inferenceId is immutable",
        ),
        (
            json!({"spec": {"taskType": "completion"}}),
            "taskType is immutable",
        ),
    ] {
        let error = ieps
            .patch("fixed", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err("immutable field changed");
        assert!(error.to_string().contains(expected), "{error}");
    }
    // A mutable field still changes.
    let patch = json!({"spec": {"azureOpenAI": {"rateLimit": {"requestsPerMinute": 60}}}});
    ieps.patch("fixed", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("mutable field");
}

/// Bounds and name patterns (issues 9.1 and 10.3/10.8): every integer has a maximum, every
/// string, list and map a bound, Secret and ECK names are names, and a connection can carry
/// neither a password in its URL nor both `insecureSkipTlsVerify` and a CA. Messages are the
/// API server's (1.30–1.34); only their distinctive part is asserted, so the CEL value style
/// (`Invalid value: "object"` or the 1.35 form) does not matter.
// `path = "."`: the nested `support` module is the shared tests/support/mod.rs.
#[path = "."]
mod bounds_and_names {
    #[path = "support/mod.rs"]
    mod support;

    use super::{create, set, valid};
    use inference_operator::api::{InferenceEndpoint, FINALIZER};
    use inference_testenv::env::TestEnv;
    use kube::api::PostParams;
    use serde_json::{json, Value};

    #[tokio::test]
    async fn bounds_and_name_patterns_are_enforced_at_admission() {
        let env = TestEnv::start().await;
        let azure_key = |name: &str| {
            set(
                valid(),
                "/azureOpenAI/apiKeySecretRef",
                json!({"name": name, "key": "apiKey"}),
            )
        };
        let eck = |reference: Value| {
            set(
                set(valid(), "/elasticsearch", Value::Null),
                "/elasticsearchRef",
                reference,
            )
        };
        let headers = |headers: Value| {
            set(
                valid(),
                "/azureOpenAI/taskSettings",
                json!({"headers": headers}),
            )
        };
        let many: serde_json::Map<String, Value> =
            (0..33).map(|i| (format!("x-{i}"), json!("v"))).collect();
        let subdomain = "in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'";
        let table: Vec<(&str, Value, Vec<String>)> = vec![
            ("query in a Secret name", azure_key("azure?limit=1"),
             vec![format!("spec.azureOpenAI.apiKeySecretRef.name: Invalid value: \"azure?limit=1\": spec.azureOpenAI.apiKeySecretRef.name {subdomain}")]),
            ("fragment in a Secret name", azure_key("azure#frag"),
             vec![format!("spec.azureOpenAI.apiKeySecretRef.name {subdomain}")]),
            ("credentials Secret name", set(valid(), "/elasticsearch/credentialsSecretRef", json!({"name": "ES_Creds"})),
             vec![format!("spec.elasticsearch.credentialsSecretRef.name {subdomain}")]),
            ("CA Secret name", set(valid(), "/elasticsearch/caSecretRef", json!({"name": "ca/../x"})),
             vec![format!("spec.elasticsearch.caSecretRef.name {subdomain}")]),
            ("ECK name", eck(json!({"name": "quick start"})),
             vec![format!("spec.elasticsearchRef.name {subdomain}")]),
            ("ECK namespace", eck(json!({"name": "quickstart", "namespace": "elastic.system"})),
             vec!["spec.elasticsearchRef.namespace in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'".into()]),
            ("password in the URL", set(valid(), "/elasticsearch/url", json!("https://elastic:changeme@es:9200")),
             vec!["spec.elasticsearch.url: Invalid value".into(),
                  "must not contain user information (user:password@): put the credentials in the Secret named by credentialsSecretRef".into()]),
            ("skip TLS verification with a CA",
             set(set(valid(), "/elasticsearch/insecureSkipTlsVerify", json!(true)), "/elasticsearch/caSecretRef", json!({"name": "es-ca"})),
             vec!["spec.elasticsearch.insecureSkipTlsVerify: Invalid value".into(),
                  "insecureSkipTlsVerify cannot be combined with caSecretRef".into()]),
            ("dimensions past int32", set(valid(), "/azureOpenAI/dimensions", json!(2147483648u64)),
             vec!["spec.azureOpenAI.dimensions: Invalid value: 2147483648: spec.azureOpenAI.dimensions in body should be less than or equal to 4096".into()]),
            ("dimensions past dense_vector's limit", set(valid(), "/azureOpenAI/dimensions", json!(4097)),
             vec!["spec.azureOpenAI.dimensions in body should be less than or equal to 4096".into()]),
            ("maxInputTokens past int32", set(valid(), "/azureOpenAI/maxInputTokens", json!(2147483648u64)),
             vec!["spec.azureOpenAI.maxInputTokens in body should be less than or equal to 2147483647".into()]),
            ("maxChunkSize past int32",
             set(valid(), "/chunkingSettings", json!({"strategy": "sentence", "maxChunkSize": 2147483648u64})),
             vec!["spec.chunkingSettings.maxChunkSize in body should be less than or equal to 2147483647".into()]),
            ("requestsPerMinute past int64",
             set(valid(), "/azureOpenAI/rateLimit", json!({"requestsPerMinute": 9223372036854775808u64})),
             vec!["spec.azureOpenAI.rateLimit.requestsPerMinute in body should be less than or equal to".into()]),
            ("word overlap past 150",
             set(valid(), "/chunkingSettings", json!({"strategy": "word", "maxChunkSize": 300, "overlap": 151})),
             vec!["spec.chunkingSettings.overlap in body should be less than or equal to 150".into()]),
            ("33 headers", headers(Value::Object(many)),
             vec!["spec.azureOpenAI.taskSettings.headers: Too many: 33: must have at most 32 items".into()]),
            ("long header value", headers(json!({"x-team": "v".repeat(513)})),
             vec!["spec.azureOpenAI.taskSettings.headers.x-team: Too long".into(), "512".into()]),
            ("long header name", headers(json!({"x".repeat(129): "v"})),
             vec!["spec.azureOpenAI.taskSettings.headers: Invalid value".into(),
                  "header names must be at most 128 characters".into()]),
            ("long separator",
             set(valid(), "/chunkingSettings", json!({"strategy": "recursive", "maxChunkSize": 100, "separators": ["s".repeat(129)]})),
             vec!["spec.chunkingSettings.separators[0]: Too long".into(), "128".into()]),
        ];
        for (index, (case, spec, expected)) in table.into_iter().enumerate() {
            let message = create(&env, &format!("bounded-{index}"), spec)
                .await
                .expect_err(case);
            for part in expected {
                assert!(
                    message.contains(&part),
                    "{case}: expected {part:?} in {message:?}"
                );
            }
        }
        // The bounds themselves are allowed.
        let at_limits = set(
            set(valid(), "/azureOpenAI/dimensions", json!(4096)),
            "/azureOpenAI/taskSettings",
            json!({"headers": {"x".repeat(128): "v".repeat(512)}}),
        );
        assert_eq!(create(&env, "at-limits", at_limits).await, Ok(()));
    }

    /// Objects stored under the previous CRD (or with admission bypassed) that break a rule added
    /// since: each ends `InvalidSpec` naming the field, and nothing is read or sent for it.
    #[tokio::test]
    async fn objects_stored_before_the_rules_end_invalid_spec_naming_the_field() {
        let env = TestEnv::start().await;
        env.kube.register_crd_yaml(include_str!(
            "fixtures/inferenceendpoint-crd-before-bounds.yaml"
        ));
        let spec = || support::embedding_spec(&env, "azure");
        let with_password = env.es.url().replacen("://", "://elastic:hunter2@", 1);
        let cases = [
            ("userinfo", set(spec(), "/elasticsearch/url", json!(with_password)),
             "spec.elasticsearch.url: must not contain user information"),
            ("skip-tls-with-ca",
             set(set(spec(), "/elasticsearch/insecureSkipTlsVerify", json!(true)), "/elasticsearch/caSecretRef", json!({"name": "es-ca"})),
             "spec.elasticsearch.insecureSkipTlsVerify: insecureSkipTlsVerify cannot be combined with caSecretRef"),
            ("secret-query", set(spec(), "/azureOpenAI/apiKeySecretRef", json!({"name": "azure?limit=1", "key": "apiKey"})),
             "spec.azureOpenAI.apiKeySecretRef.name: must be a DNS subdomain name"),
            ("dimensions", set(spec(), "/azureOpenAI/dimensions", json!(5000)),
             "spec.azureOpenAI.dimensions: 5000 is out of range: must be between 1 and 4096"),
            ("huge-headers", set(spec(), "/azureOpenAI/taskSettings", json!({"headers": {"x-big": "v".repeat(300 * 1024)}})),
             "spec: is 30"),
        ];
        // As the previous operator left them: with its finalizer. (A real 1.30+ API server would
        // also let the operator add it, ratcheting the unchanged invalid spec; the emulator
        // does not ratchet, so the test stores what an upgraded cluster holds.)
        for (name, spec, _) in &cases {
            let object: InferenceEndpoint = serde_json::from_value(json!({
                "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
                "metadata": {"name": name, "finalizers": [FINALIZER]}, "spec": spec,
            }))
            .expect("typed object");
            support::api(&env)
                .create(&PostParams::default(), &object)
                .await
                .expect("stored under the previous CRD");
        }
        env.kube
            .register_crd_file(inference_testenv::env::crds_dir().join("inferenceendpoint.yaml"));
        env.kube.clear_requests();
        let _operator = support::start_operator(&env, support::test_config());
        for (name, _, expected) in &cases {
            let iep = support::wait_ready(&env, name, "False", "InvalidSpec").await;
            let message = &support::condition(&iep, "Ready").expect("Ready").message;
            assert!(message.starts_with(expected), "{name}: {message:?}");
            assert!(!message.contains("hunter2"), "{name}: {message:?}");
        }
        assert_eq!(
            support::es_requests(&env, "PUT"),
            0,
            "nothing sent to Elasticsearch"
        );
        let secret_reads: Vec<_> = env
            .kube
            .requests()
            .into_iter()
            .filter(|r| r.resource.as_deref() == Some("secrets") && r.name.is_some())
            .map(|r| r.path)
            .collect();
        assert_eq!(
            secret_reads,
            Vec::<String>::new(),
            "no Secret read for an invalid spec"
        );
    }
}
