//! Admission: the committed CRD, served by the Kubernetes API emulator (OpenAPI schema + CEL,
//! with the API server's message formats), accepts every object in `examples/` and rejects a
//! table of invalid objects with readable messages — before anything reaches Elasticsearch.
//! CEL failures are quoted as Kubernetes 1.30–1.34 print them (`Invalid value: "object": ...`,
//! the schema type of the rule's node; 1.35 shows the value instead), the emulator's default.

use inference_testenv::fixtures::Iep;
use inference_testenv::TestEnv;
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
    let mut accepted = std::collections::BTreeSet::new();
    for (file, doc) in examples() {
        if doc["kind"] != "InferenceEndpoint" {
            continue;
        }
        let kind = example_kind(&doc);
        let object: DynamicObject = serde_json::from_value(doc).unwrap();
        ieps.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("{file} rejected: {e}"));
        accepted.insert(kind);
    }
    // The examples docs/services.md and the README promise, one per service and credential kind.
    for kind in [
        "azureOpenAI/apiKeySecretRef text_embedding",
        "azureOpenAI/apiKeySecretRef completion",
        "azureOpenAI/oauth2 text_embedding",
        "openai text_embedding",
        "cohere rerank",
        "amazonbedrock text_embedding",
        "googlevertexai text_embedding",
        "elasticsearch sparse_embedding",
        "custom text_embedding",
    ] {
        assert!(
            accepted.contains(kind),
            "no example for {kind}: {accepted:?}"
        );
    }
}

/// `<service or azureOpenAI/credential> <taskType>` of an example InferenceEndpoint.
fn example_kind(doc: &Value) -> String {
    let spec = &doc["spec"];
    let service = match spec["service"]["name"].as_str() {
        Some(name) => name.to_owned(),
        None => {
            let azure = spec["azureOpenAI"].as_object().expect("a service block");
            let credential = ["apiKeySecretRef", "entraIdSecretRef", "oauth2"]
                .into_iter()
                .find(|k| azure.contains_key(*k))
                .expect("an Azure credential");
            format!("azureOpenAI/{credential}")
        }
    };
    format!("{service} {}", spec["taskType"].as_str().unwrap())
}

/// A valid spec; the table below breaks one field of it at a time.
fn valid() -> Value {
    Iep::embedding("valid")
        .resource("res")
        .deployment("dep")
        .secret("azure")
        .es_url("https://es:9200", "es")
        .spec()
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
        ("unknown task type", set(valid(), "/taskType", json!("reranking")),
         r#"spec.taskType: Unsupported value: "reranking""#),
        ("task type Azure lacks", set(valid(), "/taskType", json!("rerank")),
         r#"spec.taskType: Invalid value: "object": azureOpenAI offers taskType text_embedding, completion and chat_completion"#),
        ("missing resource name", set(valid(), "/azureOpenAI/resourceName", Value::Null),
         "spec.azureOpenAI.resourceName: Required value"),
        ("zero rate limit", set(valid(), "/azureOpenAI/rateLimit", json!({"requestsPerMinute": 0})),
         "spec.azureOpenAI.rateLimit.requestsPerMinute: Invalid value: 0: spec.azureOpenAI.rateLimit.requestsPerMinute in body should be greater than or equal to 1"),
        ("bad similarity", set(valid(), "/azureOpenAI/similarity", json!("manhattan")),
         r#"spec.azureOpenAI.similarity: Unsupported value: "manhattan""#),
        ("no url scheme", set(valid(), "/elasticsearch/url", json!("es:9200")),
         "spec.elasticsearch.url in body should match"),
        ("two credentials", set(valid(), "/azureOpenAI/entraIdSecretRef", json!({"name": "e", "key": "k"})),
         r#"spec.azureOpenAI: Invalid value: "object": exactly one of apiKeySecretRef, entraIdSecretRef or oauth2 must be set"#),
        ("two targets", set(valid(), "/elasticsearchRef", json!({"name": "quickstart"})),
         r#"spec: Invalid value: "object": exactly one of elasticsearchRef or elasticsearch must be set"#),
        ("dimensions on completion",
         set(set(valid(), "/taskType", json!("completion")), "/azureOpenAI/dimensions", json!(256)),
         r#"spec.azureOpenAI.dimensions: Invalid value: "object": dimensions apply only to taskType text_embedding"#),
        ("chunking on completion",
         set(set(valid(), "/taskType", json!("completion")), "/chunkingSettings", json!({"strategy": "none"})),
         r#"spec.chunkingSettings: Invalid value: "object": chunkingSettings apply only to taskType text_embedding"#),
        ("word chunking without overlap",
         set(valid(), "/chunkingSettings", json!({"strategy": "word", "maxChunkSize": 100})),
         r#"spec.chunkingSettings.overlap: Invalid value: "object": overlap is required for strategy word and applies only to it"#),
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
            r#"spec.inferenceId: Invalid value: "object": inferenceId is immutable: create a new InferenceEndpoint instead"#,
        ),
        (
            json!({"spec": {"taskType": "completion"}}),
            r#"spec.taskType: Invalid value: "string": taskType is immutable: create a new InferenceEndpoint instead"#,
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

/// A create through the raw API with `?fieldValidation=<directive>` (kube's `PostParams` has no
/// field validation); `kubectl create` / `kubectl apply` send `Strict`.
async fn create_validated(
    env: &TestEnv,
    directive: &str,
    body: &Value,
) -> Result<DynamicObject, kube::Error> {
    let path = format!(
        "/apis/esinference.io/v1alpha1/namespaces/{}/inferenceendpoints",
        env.namespace
    );
    let mut request = kube::core::Request::new(path)
        .create(&PostParams::default(), serde_json::to_vec(body).unwrap())
        .unwrap();
    let uri = format!("{}&fieldValidation={directive}", request.uri());
    *request.uri_mut() = uri.parse().unwrap();
    env.client.request::<DynamicObject>(request).await
}

/// A typo in a field name (`azureOpenAi` for `azureOpenAI`) is refused outright under strict
/// field validation, as kubectl asks for, instead of being pruned into a confusing CEL error.
#[tokio::test]
async fn misspelled_fields_are_refused_under_strict_field_validation() {
    let env = TestEnv::start().await;
    let mut spec = valid();
    let block = spec.as_object_mut().unwrap().remove("azureOpenAI").unwrap();
    spec["azureOpenAi"] = block;
    let body = json!({
        "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": "typo"}, "spec": spec
    });
    let Err(kube::Error::Api(status)) = create_validated(&env, "Strict", &body).await else {
        panic!("strict create accepted a misspelled field");
    };
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        status.message,
        r#"InferenceEndpoint in version "v1alpha1" cannot be handled as a InferenceEndpoint: strict decoding error: unknown field "spec.azureOpenAi""#
    );
    // Without strictness the field is pruned and the object fails on the missing block.
    let Err(kube::Error::Api(status)) = create_validated(&env, "Ignore", &body).await else {
        panic!("a spec without a service block was accepted");
    };
    assert!(
        status.message.contains(
            r#"spec: Invalid value: "object": exactly one of azureOpenAI or service must be set"#
        ),
        "{}",
        status.message
    );

    // Patches: a merge patch under Strict is refused on `patch`; server-side apply refuses
    // an undeclared field whatever the directive.
    create(&env, "patched", valid()).await.unwrap();
    let ieps: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &resource());
    let error = ieps
        .patch(
            "patched",
            &PatchParams::default().validation_strict(),
            &Patch::Merge(json!({"spec": {"azureOpenAi": {"dimensions": 8}}})),
        )
        .await
        .expect_err("strict merge patch with a misspelled field");
    let kube::Error::Api(status) = error else {
        panic!("{error}")
    };
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .ends_with(r#"strict decoding error: unknown field "spec.azureOpenAi""#),
        "{}",
        status.message
    );
    let mut applied = valid();
    applied["azureOpenAi"] = json!({"dimensions": 8});
    let error = ieps
        .patch(
            "patched",
            &PatchParams::apply("admission-test").validation_ignore(),
            &Patch::Apply(json!({
                "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
                "metadata": {"name": "patched", "namespace": env.namespace}, "spec": applied
            })),
        )
        .await
        .expect_err("apply with a misspelled field");
    let kube::Error::Api(status) = error else {
        panic!("{error}")
    };
    assert_eq!(status.code, 500);
    assert!(
        status
            .message
            .ends_with(".spec.azureOpenAi: field not declared in schema"),
        "{}",
        status.message
    );
}

/// The operator's CRD as JSON, with `edit` applied to the `spec` schema.
fn crd_with_spec(edit: impl FnOnce(&mut Value)) -> Value {
    let mut crd = serde_json::to_value(inference_operator::api::crd()).unwrap();
    edit(&mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]);
    crd
}

/// What the previous CRD said for `similarity` (and every `Option` enum): nullable, with null
/// in the enum. A real apiserver refuses null there anyway (kube-openapi skips nil enum
/// entries), so `similarity: null` could never be applied.
#[tokio::test]
async fn a_nullable_enum_refuses_null_like_a_real_apiserver() {
    let env = TestEnv::start().await;
    env.kube.register_crd(crd_with_spec(|spec| {
        let similarity = &mut spec["properties"]["azureOpenAI"]["properties"]["similarity"];
        similarity["nullable"] = json!(true);
        similarity["enum"].as_array_mut().unwrap().push(Value::Null);
    }));
    let error = create(
        &env,
        "old-shape",
        set(valid(), "/azureOpenAI/similarity", json!("cosine")),
    )
    .await;
    assert_eq!(error, Ok(()), "a value is still accepted");
    let mut spec = valid();
    spec["azureOpenAI"]["similarity"] = Value::Null;
    let message = create(&env, "old-shape-null", spec).await.unwrap_err();
    assert!(
        message.contains(r#"spec.azureOpenAI.similarity: Unsupported value: null: supported values: "cosine", "dot_product", "l2_norm", "null""#),
        "{message}"
    );
}

/// Optional spec fields are not nullable: a null is pruned before validation (Kubernetes docs,
/// "Defaulting and Nullable"), so `similarity: null` and `separatorGroup: null` mean "unset".
#[tokio::test]
async fn null_optional_fields_are_pruned() {
    let env = TestEnv::start().await;
    let spec_schema = crd_with_spec(|_| {})["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        ["properties"]["spec"]
        .to_string();
    assert!(
        !spec_schema.contains(r#""nullable":true"#) && !spec_schema.contains(",null]"),
        "no nullable field or null enum entry left under spec"
    );
    let mut spec = valid();
    spec["azureOpenAI"]["similarity"] = Value::Null;
    spec["azureOpenAI"]["dimensions"] = Value::Null;
    spec["chunkingSettings"] = json!({
        "strategy": "recursive", "maxChunkSize": 100,
        "separatorGroup": null, "separators": ["\n\n", "\n"]
    });
    create(&env, "nulls", spec).await.expect("nulls are pruned");
    let stored = env
        .kube
        .get_object("inferenceendpoints", &env.namespace, "nulls")
        .unwrap();
    let azure = stored["spec"]["azureOpenAI"].as_object().unwrap();
    assert!(
        !azure.contains_key("similarity") && !azure.contains_key("dimensions"),
        "{azure:?}"
    );
    assert_eq!(
        stored["spec"]["chunkingSettings"],
        json!({"strategy": "recursive", "maxChunkSize": 100, "separators": ["\n\n", "\n"]})
    );
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
    use inference_testenv::TestEnv;
    use kube::api::{Patch, PatchParams, PostParams};
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
             // A real 1.34 apiserver holds 2^63 as a float64: a type error first (then also the
             // maximum, which the emulator does not repeat).
             vec![r#"spec.azureOpenAI.rateLimit.requestsPerMinute: Invalid value: "number": spec.azureOpenAI.rateLimit.requestsPerMinute in body must be of type integer: "number""#.into()]),
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
        let spec = || {
            support::Iep::embedding("old")
                .secret("azure")
                .es(&env)
                .spec()
        };
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
            .register_crd_file(inference_testenv::crds_dir().join("inferenceendpoint.yaml"));
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
            // A read of one Secret: a GET by name, or a LIST narrowed to one name (how the
            // operator reads Secret content); the metadata watch's own LIST names none.
            .filter(|r| {
                r.resource.as_deref() == Some("secrets")
                    && !r.watch
                    && (r.name.is_some() || r.query.contains("fieldSelector"))
            })
            .map(|r| r.path)
            .collect();
        assert_eq!(
            secret_reads,
            Vec::<String>::new(),
            "no Secret read for an invalid spec"
        );
    }

    /// An object that owns an endpoint and whose spec breaks a rule made after it was stored
    /// (here a password in the URL) is deleted: the operator does not connect with that spec.
    /// The deletion waits, saying what to do; once the field is fixed, the endpoint is deleted.
    #[tokio::test]
    async fn deleting_an_object_stored_before_the_rules_waits_for_the_fix() {
        let env = TestEnv::start().await;
        env.kube.register_crd_yaml(include_str!(
            "fixtures/inferenceendpoint-crd-before-bounds.yaml"
        ));
        env.es.azure().accept_credential("azure-key-0123456789");
        env.put_secret("azure", &[("apiKey", "azure-key-0123456789")])
            .await;
        let _operator = support::start_operator(&env, support::test_config());
        support::create(
            &env,
            support::Iep::embedding("leaving").secret("azure").es(&env),
        )
        .await;
        support::wait_ready(&env, "leaving", "True", "Created").await;
        let with_password = env.es.url().replacen("://", "://elastic:hunter2@", 1);
        let api = support::api(&env);
        let to_url = |url: &str| json!({"spec": {"elasticsearch": {"url": url}}});
        api.patch(
            "leaving",
            &PatchParams::default(),
            &Patch::Merge(&to_url(&with_password)),
        )
        .await
        .expect("the previous CRD accepts a password in the URL");
        support::wait_ready(&env, "leaving", "False", "InvalidSpec").await;
        env.kube
            .register_crd_file(inference_testenv::crds_dir().join("inferenceendpoint.yaml"));
        let deletes_before = support::es_requests(&env, "DELETE");
        api.delete("leaving", &Default::default())
            .await
            .expect("delete");
        let message = inference_testenv::eventually(
            std::time::Duration::from_secs(10),
            "the deletion to be reported",
            || async {
                let iep = api.get("leaving").await.ok()?;
                let ready = support::condition(&iep, "Ready")?;
                (ready.reason == "InvalidSpec" && ready.message.starts_with("cannot delete"))
                    .then(|| ready.message.clone())
            },
        )
        .await;
        assert!(
            message.starts_with("cannot delete inference endpoint leaving")
                && message.contains("spec.elasticsearch.url")
                && message.contains("deletionPolicy: Retain"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(
            support::es_requests(&env, "DELETE"),
            deletes_before,
            "no DELETE sent with the invalid spec"
        );
        assert!(env.es.endpoint("leaving").is_some(), "endpoint kept");
        api.patch(
            "leaving",
            &PatchParams::default(),
            &Patch::Merge(&to_url(&env.es.url())),
        )
        .await
        .expect("fixing the field is allowed while the object is being deleted");
        support::wait_gone(&env, "leaving").await;
        assert!(
            env.es.endpoint("leaving").is_none(),
            "endpoint deleted after the fix"
        );
    }
}

/// A secret written inline in `spec.service.settings` is refused without being quoted back, on
/// every release: Kubernetes 1.35 shows a failed rule's scalar value (`Invalid value: "sk-..."`)
/// unless the rule's reason is `FieldValueForbidden` (`field.Forbidden` prints no value;
/// docs/reference/kubernetes-api.md#cel-message-format).
#[tokio::test]
async fn inline_secrets_are_refused_without_echoing_them() {
    use inference_testenv::kube::{EmulatorOptions, KubeEmulator, KubeVersion};
    const KEY: &str = "sk-CANARY-inline-0123456789";
    for version in [KubeVersion::DEFAULT, KubeVersion::new(1, 35, 0)] {
        let emu = KubeEmulator::start(EmulatorOptions {
            kubernetes_version: version,
            ..Default::default()
        })
        .await;
        emu.register_crd_file(inference_testenv::crds_dir().join("inferenceendpoint.yaml"));
        let client = inference_testenv::client_for(&emu.url(), "default");
        let ieps: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource());
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
            "metadata": {"name": "inline"},
            "spec": {
                "elasticsearch": {"url": "https://es:9200"},
                "taskType": "rerank",
                "service": {"name": "cohere", "settings": {"model_id": "m", "api_key": KEY},
                            "secretSettings": {"api_key": {"secretKeyRef": {"name": "c", "key": "k"}}}}
            }
        }))
        .unwrap();
        let Err(kube::Error::Api(status)) = ieps.create(&PostParams::default(), &object).await
        else {
            panic!("{version:?}: an inline secret was admitted");
        };
        assert!(
            status.message.contains(
                "spec.service.settings.api_key: Forbidden: api_key is a secret and must not be written in the spec"
            ),
            "{version:?}: {}",
            status.message
        );
        assert!(
            !status.message.contains(KEY),
            "{version:?}: {}",
            status.message
        );
    }
}

/// A rule under a map entry names the entry the way the API server does
/// (`secretSettings[api_key]`, seen on a real kube-apiserver 1.34.9), while schema errors inside
/// it keep the dot (`secretSettings.api_key.secretKeyRef.name`).
#[tokio::test]
async fn errors_under_a_map_entry_use_the_api_servers_path() {
    let env = TestEnv::start().await;
    let service = |source: Value| {
        json!({
            "elasticsearch": {"url": "https://es:9200"},
            "taskType": "rerank",
            "service": {"name": "some-future-service", "secretSettings": {"api_key": source}}
        })
    };
    let err = create(&env, "both-sources", service(json!({})))
        .await
        .unwrap_err();
    assert!(
        err.contains(r#"spec.service.secretSettings[api_key]: Invalid value: "object": exactly one of secretKeyRef or secretRef must be set"#),
        "{err}"
    );
    let err = create(
        &env,
        "bad-name",
        service(json!({"secretKeyRef": {"name": "C_bad", "key": "k"}})),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains(
            r#"spec.service.secretSettings.api_key.secretKeyRef.name: Invalid value: "C_bad""#
        ),
        "{err}"
    );
}

/// Every Secret reference (`*SecretRef`, `secretKeyRef`, `secretRef`) under `value`: the
/// Secret's name and, for one key, the key.
fn secret_refs(value: &Value, out: &mut Vec<(String, Option<String>)>) {
    match value {
        Value::Object(map) => {
            for (field, inner) in map {
                let is_ref =
                    field.ends_with("SecretRef") || field == "secretKeyRef" || field == "secretRef";
                if let (true, Some(name)) = (is_ref, inner["name"].as_str()) {
                    out.push((name.to_owned(), inner["key"].as_str().map(str::to_owned)));
                }
                secret_refs(inner, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| secret_refs(v, out)),
        _ => {}
    }
}

/// Each example file applies on its own: every Secret an InferenceEndpoint of the file names is
/// in the same file, carries the opt-in label (the operator reads no other Secret,
/// docs/security.md#secrets-opt-in) and holds the key the reference names.
#[test]
fn every_example_file_carries_the_labelled_secrets_it_references() {
    let docs = examples();
    let mut checked = 0;
    for (file, doc) in docs
        .iter()
        .filter(|(_, d)| d["kind"] == "InferenceEndpoint")
    {
        let mut refs = vec![];
        secret_refs(&doc["spec"], &mut refs);
        assert!(!refs.is_empty(), "{file}: no Secret referenced");
        for (name, key) in refs {
            let secret = docs
                .iter()
                .find(|(f, d)| f == file && d["kind"] == "Secret" && d["metadata"]["name"] == name)
                .map(|(_, d)| d)
                .unwrap_or_else(|| panic!("{file}: Secret {name} is not in the file"));
            assert_eq!(
                secret["metadata"]["labels"]["esinference.io/credentials"], "true",
                "{file}: Secret {name} lacks the label esinference.io/credentials: \"true\""
            );
            let data = secret["stringData"].as_object();
            assert!(
                data.is_some_and(|d| !d.is_empty()),
                "{file}: Secret {name} has no stringData"
            );
            if let Some(key) = key {
                assert!(
                    data.is_some_and(|d| d.contains_key(&key)),
                    "{file}: Secret {name} has no key {key}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 9, "{checked} references checked");
}

#[tokio::test]
async fn the_health_check_interval_is_bounded() {
    let env = TestEnv::start().await;
    for (index, ok) in ["1m", "10m", "1h30m", "24h"].iter().enumerate() {
        let spec = set(valid(), "/healthCheck", json!({"interval": ok}));
        assert_eq!(
            create(&env, &format!("health-ok-{index}"), spec).await,
            Ok(()),
            "{ok}"
        );
    }
    let off = set(valid(), "/healthCheck", json!({"enabled": false}));
    assert_eq!(create(&env, "health-off", off).await, Ok(()));
    for (index, bad) in ["30s", "25h", "10 minutes", "1.5h"].iter().enumerate() {
        let spec = set(valid(), "/healthCheck", json!({"interval": bad}));
        let refused = create(&env, &format!("health-bad-{index}"), spec).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|m| m.contains("spec.healthCheck.interval")),
            "{bad}: {refused:?}"
        );
    }
}
