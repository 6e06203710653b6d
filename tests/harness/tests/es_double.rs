//! Pins the Elasticsearch double to docs/reference/elasticsearch-inference-api.md.

use std::time::{Duration, Instant};

use inference_testenv::es::{AzureCredential, AzureOutcome, EsAuth, EsDouble, EsOptions, Route};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

fn provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn start(version: &str) -> EsDouble {
    let es = EsDouble::start(EsOptions {
        version: version.into(),
        ..Default::default()
    })
    .await;
    es.azure().accept_credential("good-key");
    es
}

struct Res {
    status: u16,
    body: Value,
    raw: String,
    headers: HeaderMap,
}

async fn call_with(
    client: &reqwest::Client,
    es: &EsDouble,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Res {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = client.request(m, format!("{}{}", es.url(), path));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let raw = r.text().await.unwrap();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Res {
        status,
        body,
        raw,
        headers,
    }
}

async fn call(es: &EsDouble, method: &str, path: &str, body: Option<Value>) -> Res {
    provider();
    call_with(&reqwest::Client::new(), es, method, path, body).await
}

fn emb_body(key: &str) -> Value {
    json!({
        "service": "azureopenai",
        "service_settings": {
            "resource_name": "my-res", "deployment_id": "my-embed", "api_version": "2024-02-01", "api_key": key
        }
    })
}

fn completion_body(key: &str) -> Value {
    json!({
        "service": "azureopenai",
        "service_settings": {
            "resource_name": "my-res", "deployment_id": "gpt", "api_version": "2024-02-01", "api_key": key
        }
    })
}

/// Asserts the envelope of docs/reference/elasticsearch-inference-api.md#error-envelope: status,
/// top-level type/reason and root_cause = same (unwrapped).
fn assert_err(r: &Res, status: u16, kind: &str, reason: &str) {
    assert_eq!(r.status, status, "{}", r.raw);
    assert_eq!(r.body["status"], json!(status), "{}", r.raw);
    assert_eq!(r.body["error"]["type"], json!(kind), "{}", r.raw);
    assert_eq!(r.body["error"]["reason"], json!(reason), "{}", r.raw);
    assert_eq!(
        r.body["error"]["root_cause"][0]["type"],
        json!(kind),
        "{}",
        r.raw
    );
    assert_eq!(
        r.body["error"]["root_cause"][0]["reason"],
        json!(reason),
        "{}",
        r.raw
    );
}

#[tokio::test]
async fn root_info_and_product_headers() {
    let es = start("9.1.0").await;
    let r = call(&es, "GET", "/", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["version"]["number"], "9.1.0");
    assert_eq!(r.body["tagline"], "You Know, for Search");
    for k in ["name", "cluster_name", "cluster_uuid"] {
        assert!(r.body[k].is_string(), "{k}");
    }
    assert_eq!(r.headers["x-elastic-product"], "Elasticsearch");
    assert_eq!(r.headers["content-type"], "application/json");
    // also on errors
    let r = call(&es, "GET", "/_inference/nope", None).await;
    assert_eq!(r.headers["x-elastic-product"], "Elasticsearch");
    es.set_version("8.15.0");
    assert_eq!(
        call(&es, "GET", "/", None).await.body["version"]["number"],
        "8.15.0"
    );
}

#[tokio::test]
async fn put_text_embedding_fills_defaults_and_strips_secrets() {
    let es = start("9.1.0").await;
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/azure-emb",
        Some(emb_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let expected = json!({
        "inference_id": "azure-emb", "task_type": "text_embedding", "service": "azureopenai",
        "service_settings": {
            "resource_name": "my-res", "deployment_id": "my-embed", "api_version": "2024-02-01",
            "rate_limit": {"requests_per_minute": 1440}, "dimensions": 1536, "similarity": "dot_product"
        },
        "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
    });
    assert_eq!(r.body, expected);
    // key order of docs/reference/elasticsearch-inference-api.md#response-shape
    assert!(r.raw.starts_with(r#"{"inference_id":"azure-emb","task_type":"text_embedding","service":"azureopenai","service_settings":{"resource_name":"my-res","deployment_id":"my-embed","api_version":"2024-02-01","rate_limit""#), "{}", r.raw);
    assert!(
        !r.raw.contains("good-key")
            && !r.raw.contains("api_key")
            && !r.raw.contains("dimensions_set_by_user")
    );
    assert!(
        !r.raw.contains("task_settings"),
        "empty task_settings omitted"
    );
    assert_eq!(
        es.stored_secret("azure-emb"),
        Some(("api_key".into(), "good-key".into()))
    );
    assert_eq!(es.endpoint("azure-emb").unwrap(), expected);
    let calls = es.azure().calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].url, "https://my-res.openai.azure.com/openai/deployments/my-embed/embeddings?api-version=2024-02-01");
    assert_eq!(
        calls[0].credential,
        AzureCredential::ApiKey("good-key".into())
    );
    assert_eq!(calls[0].input, "how big");
    // GET returns the same, wrapped, never the secret
    let g = call(&es, "GET", "/_inference/text_embedding/azure-emb", None).await;
    assert_eq!(g.body, json!({"endpoints": [expected]}));
    assert!(!g.raw.contains("good-key"));
    // recorded request
    let req = es
        .requests()
        .into_iter()
        .find(|r| r.route == Route::Put)
        .unwrap();
    assert_eq!(req.method, "PUT");
    assert_eq!(req.path, "/_inference/text_embedding/azure-emb");
    assert_eq!(req.body.unwrap()["service_settings"]["api_key"], "good-key");
}

#[tokio::test]
async fn put_completion_and_user_settings() {
    let es = start("9.1.0").await;
    let mut b = completion_body("good-key");
    b["task_settings"] = json!({"user": "bob"});
    let r = call(&es, "PUT", "/_inference/completion/azure-chat", Some(b)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        r.body,
        json!({
            "inference_id": "azure-chat", "task_type": "completion", "service": "azureopenai",
            "service_settings": {"resource_name": "my-res", "deployment_id": "gpt", "api_version": "2024-02-01",
                "rate_limit": {"requests_per_minute": 120}},
            "task_settings": {"user": "bob"}
        })
    );
    assert!(es.azure().calls()[0]
        .url
        .ends_with("/openai/deployments/gpt/chat/completions?api-version=2024-02-01"));
    // user-set values kept; entra_id accepted as a secret
    es.azure().accept_credential("tok");
    let mut b = emb_body("x");
    b["service_settings"] = json!({"resource_name": "r", "deployment_id": "d", "api_version": "v", "entra_id": "tok",
        "dimensions": 256, "similarity": "COSINE", "rate_limit": {"requests_per_minute": 10}});
    let r = call(&es, "PUT", "/_inference/text_embedding/e2", Some(b)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["service_settings"]["dimensions"], 256);
    assert_eq!(r.body["service_settings"]["similarity"], "cosine");
    assert_eq!(
        r.body["service_settings"]["rate_limit"]["requests_per_minute"],
        10
    );
    assert_eq!(es.azure().calls()[1].dimensions, Some(256));
    assert_eq!(
        es.stored_secret("e2"),
        Some(("entra_id".into(), "tok".into()))
    );
}

#[tokio::test]
async fn get_routes_and_errors() {
    let es = start("9.1.0").await;
    assert_eq!(
        call(
            &es,
            "PUT",
            "/_inference/text_embedding/b-emb",
            Some(emb_body("good-key"))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(
            &es,
            "PUT",
            "/_inference/completion/a-chat",
            Some(completion_body("good-key"))
        )
        .await
        .status,
        200
    );
    for p in [
        "/_inference",
        "/_inference/_all",
        "/_inference/*",
        "/_inference/%2A",
    ] {
        let r = call(&es, "GET", p, None).await;
        let ids: Vec<&str> = r.body["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["inference_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            vec![
                ".elser-2-elasticsearch",
                ".multilingual-e5-small-elasticsearch",
                "a-chat",
                "b-emb"
            ],
            "{p}"
        );
    }
    let r = call(&es, "GET", "/_inference/completion/_all", None).await;
    assert_eq!(r.body["endpoints"].as_array().unwrap().len(), 1);
    let r = call(&es, "GET", "/_inference/rerank/_all", None).await;
    assert_eq!(r.raw, r#"{"endpoints":[]}"#);
    // one segment = id
    let r = call(&es, "GET", "/_inference/text_embedding", None).await;
    assert_err(
        &r,
        404,
        "resource_not_found_exception",
        "Inference endpoint not found [text_embedding]",
    );
    let r = call(&es, "GET", "/_inference/b-emb", None).await;
    assert_eq!(r.body["endpoints"][0]["inference_id"], "b-emb");
    let r = call(&es, "GET", "/_inference/completion/b-emb", None).await;
    assert_err(&r, 400, "status_exception", "Requested task type [completion] does not match the inference endpoint's task type [text_embedding]");
    let r = call(&es, "GET", "/_inference/bad/x", None).await;
    assert_err(&r, 400, "status_exception", "Unknown task_type [bad]");
    es.set_preconfigured_endpoints(false);
    let r = call(&es, "GET", "/_inference/_all", None).await;
    assert_eq!(r.body["endpoints"].as_array().unwrap().len(), 2);
    // 8.15: no preconfigured endpoints
    let old = start("8.15.0").await;
    assert_eq!(
        call(&old, "GET", "/_inference", None).await.raw,
        r#"{"endpoints":[]}"#
    );
}

#[tokio::test]
async fn put_validation_order_and_messages() {
    let es = start("9.1.0").await;
    // id first, even with a junk body and a bad license
    es.set_license("basic");
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/My_Id",
        Some(json!({})),
    )
    .await;
    assert_err(&r, 400, "action_request_validation_exception", "Validation Failed: 1: Invalid inference_id; 'My_Id' can contain lowercase alphanumeric (a-z and 0-9), hyphens or underscores; must start and end with alphanumeric;");
    // then license
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/ok-id",
        Some(json!({})),
    )
    .await;
    assert_err(
        &r,
        403,
        "security_exception",
        "current license is non-compliant for [inference]",
    );
    es.set_license("enterprise");
    let put = |path: &'static str, body: Value| {
        let es = es.clone();
        async move { call(&es, "PUT", path, Some(body)).await }
    };
    let r = put("/_inference/x1", json!({"service": "azureopenai"})).await;
    assert_err(
        &r,
        400,
        "status_exception",
        "model is missing required setting [task_type]",
    );
    let r = put(
        "/_inference/text_embedding/x1",
        json!({"task_type": "completion"}),
    )
    .await;
    assert_err(&r, 400, "status_exception", "Cannot resolve conflicting task_type parameter in the request URL [text_embedding] and the request body [completion]");
    let r = put("/_inference/x1", json!({"task_type": "any"})).await;
    assert_err(
        &r,
        400,
        "status_exception",
        "task_type [any] is not valid type for inference",
    );
    let r = put("/_inference/x1", json!({"task_type": "nope"})).await;
    assert_err(&r, 400, "status_exception", "Unknown task_type [nope]");
    let r = put(
        "/_inference/text_embedding/x1",
        json!({"service_settings": {}}),
    )
    .await;
    assert_err(
        &r,
        400,
        "status_exception",
        "Inference endpoint configuration is missing the [service] setting",
    );
    let r = put("/_inference/text_embedding/x1", json!({"service": "foo"})).await;
    assert_err(&r, 400, "status_exception", "Unknown service [foo]");
    let r = put(
        "/_inference/text_embedding/x1",
        json!({"service": "azureopenai"}),
    )
    .await;
    assert_err(
        &r,
        400,
        "status_exception",
        "Missing required field [service_settings]",
    );
    let r = put(
        "/_inference/rerank/x1",
        json!({"service": "azureopenai", "service_settings": {}}),
    )
    .await;
    assert_err(
        &r,
        400,
        "status_exception",
        "The [azureopenai] service does not support task type [rerank]",
    );
    // all missing fields numbered together, before secrets
    let r = put(
        "/_inference/text_embedding/x1",
        json!({"service": "azureopenai", "service_settings": {"resource_name": ""}}),
    )
    .await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: [service_settings] Invalid value empty string. [resource_name] must be a non-empty string;2: [service_settings] does not contain the required setting [deployment_id];3: [service_settings] does not contain the required setting [api_version];");
    let mut b = emb_body("k");
    b["service_settings"]["similarity"] = json!("foo");
    b["service_settings"]["dimensions"] = json!("abc");
    let r = put("/_inference/text_embedding/x1", b).await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: field [dimensions] is not of the expected type. The value [abc] cannot be converted to a [Integer];2: [service_settings] Invalid value [foo] received. [similarity] must be one of [cosine, dot_product, l2_norm];");
    // a bad rate_limit key throws immediately, even with other errors pending
    let r = put(
        "/_inference/text_embedding/x1",
        json!({"service": "azureopenai", "service_settings": {"rate_limit": {"foo": 1}}}),
    )
    .await;
    assert_err(
        &r,
        400,
        "status_exception",
        "Model configuration contains settings [{foo=1}] unknown to the [azureopenai] service",
    );
    let mut b = emb_body("k");
    b["service_settings"]["rate_limit"] = json!({"requests_per_minute": 0});
    let r = put("/_inference/text_embedding/x1", b).await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: [rate_limit] Invalid value [0]. [requests_per_minute] must be a positive long;");
    let mut b = emb_body("k");
    b["service_settings"]["dimensions_set_by_user"] = json!(true);
    let r = put("/_inference/text_embedding/x1", b).await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: [service_settings] does not allow the setting [dimensions_set_by_user];");
    // secrets (pre-9.4 wording)
    let mut b = emb_body("k");
    b["service_settings"]
        .as_object_mut()
        .unwrap()
        .remove("api_key");
    let r = put("/_inference/text_embedding/x1", b.clone()).await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: [secret_settings] must have either the [api_key] or the [entra_id] key set;");
    b["service_settings"]["api_key"] = json!("a");
    b["service_settings"]["entra_id"] = json!("b");
    let r = put("/_inference/text_embedding/x1", b).await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: [secret_settings] must have only one of the [api_key] or the [entra_id] key set;");
    // unknown keys: top level, then service_settings, then task_settings
    let mut b = emb_body("good-key");
    b["foo"] = json!("bar");
    b["service_settings"]["baz"] = json!(1);
    let r = put("/_inference/text_embedding/x1", b).await;
    assert_err(
        &r,
        400,
        "status_exception",
        "Model configuration contains settings [{foo=bar}] unknown to the [azureopenai] service",
    );
    let mut b = completion_body("good-key");
    b["service_settings"]["dimensions"] = json!(5);
    let r = put("/_inference/completion/x1", b).await;
    assert_err(&r, 400, "status_exception", "Model configuration contains settings [{dimensions=5}] unknown to the [azureopenai] service");
    let mut b = emb_body("good-key");
    b["task_settings"] = json!({"headers": {"a": "b"}});
    let r = put("/_inference/text_embedding/x1", b).await;
    assert_err(&r, 400, "status_exception", "Model configuration contains settings [{headers={a=b}}] unknown to the [azureopenai] service");
    // none of these called Azure
    assert!(es.azure().calls().is_empty());
    // missing body
    let r = call(&es, "PUT", "/_inference/text_embedding/x1", None).await;
    assert_err(&r, 400, "parse_exception", "request body is required");
}

#[tokio::test]
async fn messages_by_version() {
    let es = start("9.3.0").await;
    let mut b = emb_body("good-key");
    b["foo"] = json!("bar");
    let r = call(&es, "PUT", "/_inference/text_embedding/x1", Some(b)).await;
    assert_err(
        &r,
        400,
        "status_exception",
        "Configuration contains settings [{foo=bar}] unknown to the [azureopenai] service",
    );
    es.set_version("9.4.0");
    let mut b = emb_body("k");
    b["service_settings"]
        .as_object_mut()
        .unwrap()
        .remove("api_key");
    let r = call(&es, "PUT", "/_inference/text_embedding/x1", Some(b.clone())).await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: [service_settings] must have exactly one of [api_key], [entra_id], or [client_secret] field set;");
    b["service_settings"]["api_key"] = json!("a");
    b["service_settings"]["entra_id"] = json!("b");
    let r = call(&es, "PUT", "/_inference/text_embedding/x1", Some(b.clone())).await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: [service_settings] must have exactly one of [api_key], [entra_id], or [client_secret] field set, received: [api_key, entra_id];");
    // OAuth2 (9.4+)
    let mut b = emb_body("k");
    b["service_settings"]
        .as_object_mut()
        .unwrap()
        .remove("api_key");
    b["service_settings"]["client_id"] = json!("cid");
    b["service_settings"]["scopes"] = json!(["https://cognitiveservices.azure.com/.default"]);
    b["service_settings"]["client_secret"] = json!("cs");
    let r = call(&es, "PUT", "/_inference/text_embedding/x1", Some(b.clone())).await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: [service_settings] all Azure OpenAI OAuth2 fields must be provided together; missing: [tenant_id];");
    let mut only_secret = emb_body("k");
    only_secret["service_settings"]
        .as_object_mut()
        .unwrap()
        .remove("api_key");
    only_secret["service_settings"]["client_secret"] = json!("cs");
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/x1",
        Some(only_secret),
    )
    .await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: OAuth2 requires the fields [client_id, scopes, tenant_id], to be set.;");
    es.azure().accept_credential("cs");
    b["service_settings"]["tenant_id"] = json!("tid");
    b["task_settings"] = json!({"headers": {"x-a": "1", "x-null": null}});
    let r = call(&es, "PUT", "/_inference/text_embedding/oauth", Some(b)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["service_settings"]["client_id"], "cid");
    assert_eq!(r.body["service_settings"]["tenant_id"], "tid");
    assert_eq!(r.body["task_settings"], json!({"headers": {"x-a": "1"}}));
    assert!(!r.raw.contains("\"cs\""));
    assert_eq!(
        es.stored_secret("oauth"),
        Some(("client_secret".into(), "cs".into()))
    );
    assert!(matches!(
        es.azure().calls()[0].credential,
        AzureCredential::ClientSecret { .. }
    ));
}

#[tokio::test]
async fn azure_validation_failures_are_wrapped() {
    let es = start("9.1.0").await;
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/my-id",
        Some(emb_body("bad-key")),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert_eq!(r.body["error"]["type"], "status_exception");
    assert_eq!(r.body["error"]["reason"], "Could not complete inference endpoint creation as validation call to service threw an exception.");
    let inner = r.body["error"]["caused_by"]["reason"].as_str().unwrap();
    assert!(inner.starts_with("Received an authentication error status code for request from inference entity id [my-id] status [401]. Error message: ["), "{inner}");
    assert_eq!(r.body["error"]["root_cause"][0]["reason"], inner);
    assert_eq!(r.body["error"]["caused_by"]["type"], "status_exception");
    assert!(es.endpoint("my-id").is_none());

    es.azure()
        .set_deployment_outcome("my-embed", AzureOutcome::NotFound404);
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/my-id",
        Some(emb_body("good-key")),
    )
    .await;
    let inner = r.body["error"]["caused_by"]["reason"].as_str().unwrap();
    assert!(inner.starts_with("Resource not found at [https://my-res.openai.azure.com/openai/deployments/my-embed/embeddings?api-version=2024-02-01] for request from inference entity id [my-id] status [404]"), "{inner}");

    es.azure().set_outcome(Some(AzureOutcome::RateLimited429));
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/my-id",
        Some(emb_body("good-key")),
    )
    .await;
    let inner = r.body["error"]["caused_by"]["reason"].as_str().unwrap();
    assert!(inner.starts_with("Received a rate limit status code. Remaining tokens [0]. Remaining requests [0]. for request from inference entity id [my-id] status [429]"), "{inner}");
    es.azure().set_outcome(Some(AzureOutcome::ServerError500));
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/my-id",
        Some(emb_body("good-key")),
    )
    .await;
    assert!(r.body["error"]["caused_by"]["reason"].as_str().unwrap().starts_with("Received a server error status code for request from inference entity id [my-id] status [500]"));
    assert_eq!(r.status, 400);
    es.azure().set_outcome(None);
    es.azure()
        .set_credential_outcome("good-key", AzureOutcome::ServerBusy503);
    let r = call(
        &es,
        "PUT",
        "/_inference/completion/my-id",
        Some(completion_body("good-key")),
    )
    .await;
    assert!(r.body["error"]["caused_by"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("Received a server busy error status code"));
    // Completion endpoints are validated from 8.18.0 / 9.0.0 (PR #115020, listed in the 8.18.0
    // and 9.0.0 release notes, not in 8.17.0); 8.17 stored them unchecked.
    es.set_version("8.18.0");
    let r = call(
        &es,
        "PUT",
        "/_inference/completion/checked",
        Some(completion_body("whatever")),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.raw);
    es.set_version("8.17.0");
    let r = call(
        &es,
        "PUT",
        "/_inference/completion/unchecked",
        Some(completion_body("whatever")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

#[tokio::test]
async fn duplicate_id_is_checked_after_validation() {
    let es = start("9.1.0").await;
    assert_eq!(
        call(
            &es,
            "PUT",
            "/_inference/text_embedding/dup",
            Some(emb_body("good-key"))
        )
        .await
        .status,
        200
    );
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/dup",
        Some(emb_body("bad-key")),
    )
    .await;
    assert_eq!(r.body["error"]["reason"], "Could not complete inference endpoint creation as validation call to service threw an exception.");
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/dup",
        Some(emb_body("good-key")),
    )
    .await;
    assert_err(
        &r,
        400,
        "resource_already_exists_exception",
        "Inference endpoint [dup] already exists",
    );
    assert_eq!(es.azure().calls().len(), 3, "Azure is called on every PUT");
    assert_eq!(
        es.stored_secret("dup"),
        Some(("api_key".into(), "good-key".into()))
    );
}

#[tokio::test]
async fn dimensions_and_mismatch() {
    let es = start("9.1.0").await;
    es.azure().set_native_dimensions(3072);
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/a",
        Some(emb_body("good-key")),
    )
    .await;
    assert_eq!(r.body["service_settings"]["dimensions"], 3072);
    es.azure().force_returned_dimensions(Some(1536));
    let mut b = emb_body("good-key");
    b["service_settings"]["dimensions"] = json!(256);
    let r = call(&es, "PUT", "/_inference/text_embedding/my-id", Some(b)).await;
    assert_err(&r, 400, "status_exception", "The retrieved embeddings size [1536] does not match the size specified in the settings [256]. Please recreate the [my-id] configuration with the correct dimensions");
    // skip validation: nothing learned, no Azure call
    es.azure().clear_calls();
    es.set_skip_validation(true);
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/b",
        Some(emb_body("bad")),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body["service_settings"].get("dimensions").is_none());
    assert!(es.azure().calls().is_empty());
}

#[tokio::test]
async fn version_gates_on_put() {
    // completion 8.15; chunking absent before 8.16
    let es = start("8.15.0").await;
    let r = call(
        &es,
        "PUT",
        "/_inference/completion/c",
        Some(completion_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/e",
        Some(emb_body("good-key")),
    )
    .await;
    assert!(r.body.get("chunking_settings").is_none(), "{}", r.raw);
    let mut b = emb_body("good-key");
    b["chunking_settings"] = json!({"strategy": "word"});
    let r = call(&es, "PUT", "/_inference/text_embedding/e2", Some(b)).await;
    assert_err(&r, 400, "status_exception", "Model configuration contains settings [{chunking_settings={strategy=word}}] unknown to the [azureopenai] service");
    let r = call(
        &es,
        "PUT",
        "/_inference/chat_completion/c2",
        Some(completion_body("good-key")),
    )
    .await;
    assert_err(
        &r,
        400,
        "status_exception",
        "Unknown task_type [chat_completion]",
    );
    // an endpoint created before 8.16 reads back with the old chunking default
    es.set_version("8.16.0");
    let g = call(&es, "GET", "/_inference/e", None).await;
    assert_eq!(
        g.body["endpoints"][0]["chunking_settings"],
        json!({"strategy": "word", "max_chunk_size": 250, "overlap": 100})
    );
    // chat_completion: known task type but unsupported by azure before 9.3
    es.set_version("9.2.0");
    let r = call(
        &es,
        "PUT",
        "/_inference/chat_completion/c2",
        Some(completion_body("good-key")),
    )
    .await;
    assert_err(
        &r,
        400,
        "status_exception",
        "The [azureopenai] service does not support task type [chat_completion]",
    );
    es.set_version("9.3.0");
    let r = call(
        &es,
        "PUT",
        "/_inference/chat_completion/c2",
        Some(completion_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        r.body["service_settings"]["rate_limit"]["requests_per_minute"],
        120
    );
    // recursive/none chunking 9.1+
    es.set_version("9.0.0");
    let mut b = emb_body("good-key");
    b["chunking_settings"] =
        json!({"strategy": "recursive", "max_chunk_size": 100, "separator_group": "plaintext"});
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/rec",
        Some(b.clone()),
    )
    .await;
    assert_err(
        &r,
        400,
        "illegal_argument_exception",
        "Invalid chunkingStrategy recursive",
    );
    es.set_version("9.1.0");
    let r = call(&es, "PUT", "/_inference/text_embedding/rec", Some(b)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["chunking_settings"]["strategy"], "recursive");
    assert!(r.body["chunking_settings"]["separators"].is_array());
    let mut b = emb_body("good-key");
    b["chunking_settings"] =
        json!({"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 2, "foo": 1});
    let r = call(&es, "PUT", "/_inference/text_embedding/s", Some(b)).await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: Sentence based chunking settings can not have the following settings: [foo];2: sentence_overlap[2] must be either 0 or 1;");
    let mut b = emb_body("good-key");
    b["chunking_settings"] = json!({"max_chunk_size": 250});
    let r = call(&es, "PUT", "/_inference/text_embedding/s", Some(b)).await;
    assert_err(
        &r,
        400,
        "illegal_argument_exception",
        "Can't generate Chunker without ChunkingStrategy provided",
    );
}

#[tokio::test]
async fn timeout_param_by_version() {
    let es = start("8.18.0").await;
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/t?timeout=30s",
        Some(emb_body("good-key")),
    )
    .await;
    assert_err(
        &r,
        400,
        "illegal_argument_exception",
        "request [/_inference/text_embedding/t] contains unrecognized parameter: [timeout]",
    );
    es.set_version("8.19.0");
    assert_eq!(
        call(
            &es,
            "PUT",
            "/_inference/text_embedding/t?timeout=30s",
            Some(emb_body("good-key"))
        )
        .await
        .status,
        200
    );
    es.set_version("9.0.0");
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/t2?timeout=30s",
        Some(emb_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 400);
    es.set_version("9.1.0");
    // Azure slower than the timeout
    es.azure().set_latency(Duration::from_millis(400));
    let start = Instant::now();
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/t2?timeout=50ms",
        Some(emb_body("good-key")),
    )
    .await;
    assert!(start.elapsed() < Duration::from_millis(390));
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["caused_by"]["type"], "timeout_exception");
    assert_eq!(
        r.body["error"]["caused_by"]["reason"],
        "Request timed out after [50ms] for inference id [t2]"
    );
    // within the timeout: PUT blocks for the Azure latency
    let start = Instant::now();
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/t2?timeout=5s",
        Some(emb_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(400));
    // update timeout only 9.5
    es.azure().set_latency(Duration::ZERO);
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/t2/_update?timeout=30s",
        Some(json!({"task_settings": {"user": "u"}})),
    )
    .await;
    assert_err(&r, 400, "illegal_argument_exception", "request [/_inference/text_embedding/t2/_update] contains unrecognized parameter: [timeout]");
    es.set_version("9.5.0");
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/t2/_update?timeout=30s",
        Some(json!({"task_settings": {"user": "u"}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

#[tokio::test]
async fn delete_semantics() {
    let es = start("9.1.0").await;
    assert_eq!(
        call(
            &es,
            "PUT",
            "/_inference/text_embedding/my-id",
            Some(emb_body("good-key"))
        )
        .await
        .status,
        200
    );
    let r = call(&es, "DELETE", "/_inference/nope", None).await;
    assert_err(
        &r,
        404,
        "resource_not_found_exception",
        "Inference endpoint not found [nope]",
    );
    let r = call(&es, "DELETE", "/_inference/completion/my-id", None).await;
    assert_err(&r, 400, "status_exception", "Requested task type [completion] does not match the inference endpoint's task type [text_embedding]");
    es.add_pipeline_reference("my-id", "p1");
    es.add_index_reference("my-id", "idx");
    let expected = "Inference endpoint my-id is referenced by pipelines: [p1]. Ensure that no pipelines are using this inference endpoint, or use force to ignore this warning and delete the inference endpoint. Inference endpoint my-id is being used in the mapping for indexes: [idx]. Ensure that no index mappings are using this inference endpoint, or use force to ignore this warning and delete the inference endpoint.";
    let r = call(&es, "DELETE", "/_inference/text_embedding/my-id", None).await;
    assert_err(&r, 409, "status_exception", expected);
    let r = call(&es, "DELETE", "/_inference/my-id?dry_run=true", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.raw,
        format!(
            r#"{{"acknowledged":false,"pipelines":["p1"],"indexes":["idx"],"error_message":"{expected}"}}"#
        )
    );
    assert!(es.endpoint("my-id").is_some());
    let r = call(&es, "DELETE", "/_inference/my-id?force=true", None).await;
    assert_eq!(
        r.raw,
        r#"{"acknowledged":true,"pipelines":[],"indexes":[]}"#
    );
    assert!(es.endpoint("my-id").is_none());
    // unreferenced: dry run has an empty error_message; normal delete acknowledged
    assert_eq!(
        call(
            &es,
            "PUT",
            "/_inference/text_embedding/free",
            Some(emb_body("good-key"))
        )
        .await
        .status,
        200
    );
    let r = call(&es, "DELETE", "/_inference/free?dry_run", None).await;
    assert_eq!(
        r.raw,
        r#"{"acknowledged":false,"pipelines":[],"indexes":[],"error_message":""}"#
    );
    let r = call(&es, "DELETE", "/_inference/free?force=maybe", None).await;
    assert_err(
        &r,
        400,
        "illegal_argument_exception",
        "Failed to parse value [maybe] as only [true] or [false] are allowed.",
    );
    let r = call(&es, "DELETE", "/_inference/free", None).await;
    assert_eq!(
        r.raw,
        r#"{"acknowledged":true,"pipelines":[],"indexes":[]}"#
    );
    // 8.15: pipelines only, no `indexes` field
    let old = start("8.15.0").await;
    assert_eq!(
        call(
            &old,
            "PUT",
            "/_inference/text_embedding/x",
            Some(emb_body("good-key"))
        )
        .await
        .status,
        200
    );
    old.add_index_reference("x", "idx");
    let r = call(&old, "DELETE", "/_inference/x", None).await;
    assert_eq!(r.raw, r#"{"acknowledged":true,"pipelines":[]}"#);
}

#[tokio::test]
async fn update_routes_and_common_rules() {
    let es = start("8.16.0").await;
    assert_eq!(
        call(
            &es,
            "PUT",
            "/_inference/text_embedding/u",
            Some(emb_body("good-key"))
        )
        .await
        .status,
        200
    );
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"service_settings": {"api_key": "n"}})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.raw,
        r#"{"error":"no handler found for uri [/_inference/text_embedding/u/_update] and method [PUT]","status":400}"#
    );
    es.set_version("8.17.0");
    let r = call(
        &es,
        "POST",
        "/_inference/text_embedding/u/_update",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.body["error"], "Incorrect HTTP method for uri [/_inference/text_embedding/u/_update] and method [POST], allowed: [PUT]");
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({})),
    )
    .await;
    assert_err(&r, 400, "status_exception", "Request body is empty");
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"service": "azureopenai", "service_settings": {"api_key": "n"}})),
    )
    .await;
    assert_err(&r, 400, "status_exception", "Request contained fields which cannot be updated, remove these fields and try again [{service=azureopenai}]");
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"chunking_settings": {"strategy": "word"}})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        &es,
        "PUT",
        "/_inference/completion/u/_update",
        Some(json!({"task_settings": {"user": "x"}})),
    )
    .await;
    assert_err(
        &r,
        400,
        "status_exception",
        "Task type must match the task type of the existing endpoint",
    );
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"task_type": "completion", "task_settings": {"user": "x"}})),
    )
    .await;
    assert_err(
        &r,
        400,
        "status_exception",
        "Task type must match the task type of the existing endpoint",
    );
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/nope/_update",
        Some(json!({"task_settings": {"user": "x"}})),
    )
    .await;
    assert_err(
        &r,
        404,
        "resource_not_found_exception",
        "Inference endpoint not found [nope]",
    );
    let r = call(
        &es,
        "PUT",
        "/_inference/u/_update",
        Some(json!({"task_settings": {"user": "x"}})),
    )
    .await;
    assert_err(
        &r,
        400,
        "status_exception",
        "Inference ID must be provided in the path",
    );
}

#[tokio::test]
async fn update_up_to_9_3_rotates_secret_without_azure_call() {
    let es = start("9.3.0").await;
    assert_eq!(
        call(
            &es,
            "PUT",
            "/_inference/text_embedding/u",
            Some(emb_body("good-key"))
        )
        .await
        .status,
        200
    );
    es.azure().clear_calls();
    // non-secret service settings alone → the secret rule fires
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"service_settings": {"rate_limit": {"requests_per_minute": 5}}})),
    )
    .await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: [secret_settings] must have either the [api_key] or the [entra_id] key set;");
    // secret + ignored rate_limit; task settings merged; no Azure call (key not even valid)
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({
        "service_settings": {"api_key": "rotated", "rate_limit": {"requests_per_minute": 5}},
        "task_settings": {"user": "me"}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["inference_id"], "u");
    assert!(
        r.body.get("endpoints").is_none(),
        "update returns one object"
    );
    assert_eq!(
        r.body["service_settings"]["rate_limit"]["requests_per_minute"],
        1440
    );
    assert_eq!(r.body["task_settings"], json!({"user": "me"}));
    assert!(!r.raw.contains("rotated"));
    assert_eq!(
        es.stored_secret("u"),
        Some(("api_key".into(), "rotated".into()))
    );
    assert!(es.azure().calls().is_empty());
    // switching kinds is allowed before 9.5
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"service_settings": {"entra_id": "tok"}})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        es.stored_secret("u"),
        Some(("entra_id".into(), "tok".into()))
    );
    // bug #139574 emulation
    es.set_update_chunking_bug(true);
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"task_settings": {"user": "me"}})),
    )
    .await;
    assert_eq!(
        r.body["chunking_settings"],
        json!({"strategy": "word", "max_chunk_size": 250, "overlap": 100})
    );
}

#[tokio::test]
async fn update_9_4_validates_against_azure() {
    let es = start("9.4.0").await;
    assert_eq!(
        call(
            &es,
            "PUT",
            "/_inference/text_embedding/u",
            Some(emb_body("good-key"))
        )
        .await
        .status,
        200
    );
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"service_settings": {"api_key": "bad"}})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["caused_by"]["reason"]
        .as_str()
        .unwrap()
        .contains("status [401]"));
    assert_eq!(
        es.stored_secret("u"),
        Some(("api_key".into(), "good-key".into())),
        "not persisted"
    );
    es.azure().accept_credential("new-key");
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"service_settings": {"api_key": "new-key"}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        es.stored_secret("u"),
        Some(("api_key".into(), "new-key".into()))
    );
    assert_eq!(
        es.azure().calls().last().unwrap().credential,
        AzureCredential::ApiKey("new-key".into())
    );
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"service_settings": {"api_key": "a", "entra_id": "b"}})),
    )
    .await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: [service_settings] must have exactly one of [api_key], [entra_id], or [client_secret] field set, received: [api_key, entra_id];");
}

#[tokio::test]
async fn update_9_5_semantics() {
    let es = start("9.5.0").await;
    assert_eq!(
        call(
            &es,
            "PUT",
            "/_inference/text_embedding/u",
            Some(emb_body("good-key"))
        )
        .await
        .status,
        200
    );
    // rate_limit mutable, secret optional, immutable fields ignored
    let r = call(&es, "PUT", "/_inference/text_embedding/u/_update", Some(json!({
        "service_settings": {"rate_limit": {"requests_per_minute": 77}, "deployment_id": "other"}}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        r.body["service_settings"]["rate_limit"]["requests_per_minute"],
        77
    );
    assert_eq!(r.body["service_settings"]["deployment_id"], "my-embed");
    assert_eq!(
        es.stored_secret("u"),
        Some(("api_key".into(), "good-key".into()))
    );
    // only the same secret kind
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"service_settings": {"entra_id": "tok"}})),
    )
    .await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: only [api_key] can be updated for this secret, received: [entra_id];");
    // OAuth2 fields on a non-OAuth2 endpoint
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"service_settings": {"client_id": "c"}})),
    )
    .await;
    assert_err(&r, 400, "validation_exception", "Validation Failed: 1: Cannot update OAuth2 fields as the service was not configured with OAuth2 settings. Please create a new Inference Endpoint with the OAuth2 settings instead.;");
    // unknown keys rejected
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"service_settings": {"foo": 1}})),
    )
    .await;
    assert_err(
        &r,
        400,
        "status_exception",
        "Configuration contains settings [{foo=1}] unknown to the [azureopenai] service",
    );
    // chunking replace
    let r = call(&es, "PUT", "/_inference/text_embedding/u/_update", Some(json!({"chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 10}}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        r.body["chunking_settings"],
        json!({"strategy": "word", "max_chunk_size": 100, "overlap": 10})
    );
    // task settings: null clears
    call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"task_settings": {"user": "x"}})),
    )
    .await;
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"task_settings": {"user": null}})),
    )
    .await;
    assert!(r.body.get("task_settings").is_none(), "{}", r.raw);
    // one-segment form works on 9.5
    let r = call(
        &es,
        "PUT",
        "/_inference/u/_update",
        Some(json!({"task_settings": {"user": "y"}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

#[tokio::test]
async fn security_realm() {
    let es = EsDouble::start(EsOptions {
        auth: EsAuth::basic("elastic", "changeme"),
        ..Default::default()
    })
    .await;
    provider();
    let c = reqwest::Client::new();
    let r = call_with(&c, &es, "GET", "/_inference", None).await;
    assert_err(
        &r,
        401,
        "security_exception",
        "missing authentication credentials for REST request [/_inference]",
    );
    let www: Vec<_> = r
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        www.contains(&"Basic realm=\"security\", charset=\"UTF-8\"".to_string()),
        "{www:?}"
    );
    assert!(www.contains(&"ApiKey".to_string()));
    assert_eq!(r.body["error"]["header"]["WWW-Authenticate"][2], "ApiKey");
    let r = c
        .get(format!("{}/_inference", es.url()))
        .basic_auth("elastic", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        b["error"]["reason"],
        "unable to authenticate user [elastic] for REST request [/_inference]"
    );
    let r = c
        .get(format!("{}/_inference", es.url()))
        .basic_auth("elastic", Some("changeme"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let key = EsAuth::encode_api_key("id", "secret");
    es.set_auth(EsAuth::api_key(&key));
    let r = c
        .get(format!("{}/", es.url()))
        .header("Authorization", format!("ApiKey {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .get(format!("{}/", es.url()))
        .header("Authorization", "ApiKey nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let reqs = es.requests();
    assert_eq!(
        reqs[2].auth,
        inference_testenv::es::AuthKind::Basic {
            user: "elastic".into()
        }
    );
    assert_eq!(reqs[3].auth, inference_testenv::es::AuthKind::ApiKey);
}

#[tokio::test]
async fn license_basic_refuses_put_only() {
    let es = start("9.1.0").await;
    es.set_license("basic");
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/x",
        Some(emb_body("good-key")),
    )
    .await;
    assert_err(
        &r,
        403,
        "security_exception",
        "current license is non-compliant for [inference]",
    );
    assert_eq!(r.body["error"]["license.expired.feature"], "inference");
    assert_eq!(call(&es, "GET", "/_inference", None).await.status, 200);
}

#[tokio::test]
async fn faults() {
    let es = start("9.1.0").await;
    provider();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    es.fail_next(2, 503);
    for _ in 0..2 {
        let r = call_with(&c, &es, "GET", "/", None).await;
        assert_err(
            &r,
            503,
            "cluster_block_exception",
            "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
        );
    }
    assert_eq!(call_with(&c, &es, "GET", "/", None).await.status, 200);
    es.inject_fault(
        Route::Put,
        inference_testenv::es::Fault::Status(429),
        Some(1),
    );
    assert_eq!(
        call_with(&c, &es, "GET", "/", None).await.status,
        200,
        "route filter"
    );
    let r = call_with(
        &c,
        &es,
        "PUT",
        "/_inference/text_embedding/x",
        Some(emb_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["error"]["type"], "es_rejected_execution_exception");
    // reset
    es.reset_next(1);
    let e = c.get(format!("{}/", es.url())).send().await.unwrap_err();
    assert!(!e.is_timeout(), "{e:?}");
    assert_eq!(call_with(&c, &es, "GET", "/", None).await.status, 200);
    // hang
    es.hang_next(1);
    let e = c.get(format!("{}/", es.url())).send().await.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    es.release_hung();
    assert_eq!(call_with(&c, &es, "GET", "/", None).await.status, 200);
    // latency per route
    // Long enough that an unaffected route stays well below it on a loaded CI machine.
    let latency = Duration::from_millis(800);
    es.set_route_latency(Route::Get, latency);
    let start = Instant::now();
    call(&es, "GET", "/_inference", None).await;
    assert!(start.elapsed() >= latency);
    let start = Instant::now();
    call(&es, "GET", "/", None).await;
    assert!(start.elapsed() < latency, "{:?}", start.elapsed());
    es.clear_faults();
}

#[tokio::test]
async fn out_of_band_changes() {
    let es = start("9.1.0").await;
    assert_eq!(
        call(
            &es,
            "PUT",
            "/_inference/text_embedding/d",
            Some(emb_body("good-key"))
        )
        .await
        .status,
        200
    );
    assert!(es.modify_out_of_band("d", |v| {
        v["service_settings"]["rate_limit"]["requests_per_minute"] = json!(1);
        v["task_settings"] = json!({"user": "drift"});
    }));
    let g = call(&es, "GET", "/_inference/d", None).await;
    assert_eq!(
        g.body["endpoints"][0]["service_settings"]["rate_limit"]["requests_per_minute"],
        1
    );
    assert_eq!(g.body["endpoints"][0]["task_settings"]["user"], "drift");
    assert!(es.delete_out_of_band("d"));
    assert_eq!(call(&es, "GET", "/_inference/d", None).await.status, 404);
    es.put_out_of_band(json!({"inference_id": "oob", "task_type": "completion", "service": "azureopenai",
        "service_settings": {"resource_name": "r", "deployment_id": "d", "api_version": "v", "api_key": "s",
            "rate_limit": {"requests_per_minute": 120}}}));
    let g = call(&es, "GET", "/_inference/completion/oob", None).await;
    assert_eq!(g.status, 200);
    assert!(!g.raw.contains("api_key"));
    assert_eq!(
        es.stored_secret("oob"),
        Some(("api_key".into(), "s".into()))
    );
    assert_eq!(es.endpoint_ids(), vec!["oob".to_string()]);
}

#[tokio::test]
async fn tls_serves_https_with_generated_ca() {
    provider();
    let es = EsDouble::start(EsOptions {
        tls: true,
        ..Default::default()
    })
    .await;
    assert!(es.url().starts_with("https://127.0.0.1:"));
    let ca = reqwest::Certificate::from_pem(es.ca_pem().unwrap().as_bytes()).unwrap();
    let c = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    for url in [es.url(), es.url_localhost()] {
        let r = c.get(format!("{url}/")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["x-elastic-product"], "Elasticsearch");
    }
    // an untrusting client fails
    let plain = reqwest::Client::new();
    assert!(plain.get(format!("{}/", es.url())).send().await.is_err());
}

// ---- issue 9, point 4: error classes and exact versions ------------------------------------

/// A mistyped `resource_name`: `RetryingHttpSender` answers `Invalid host [...]` (400, not
/// retried) inside the usual validation wrapper.
#[tokio::test]
async fn unknown_resource_name_is_an_invalid_host_400_tried_once() {
    let es = start("9.1.0").await;
    es.azure()
        .set_resource_outcome("my-res", Some(AzureOutcome::UnknownHost));
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/typo",
        Some(emb_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert_eq!(r.body["error"]["reason"], "Could not complete inference endpoint creation as validation call to service threw an exception.");
    let inner = &r.body["error"]["caused_by"];
    assert_eq!(inner["reason"], "Invalid host [https://my-res.openai.azure.com/openai/deployments/my-embed/embeddings?api-version=2024-02-01], please check that the URL is correct.");
    assert_eq!(inner["caused_by"]["type"], "unknown_host_exception");
    assert_eq!(es.azure().calls().len(), 1, "a DNS failure is not retried");
    assert!(es.endpoint_ids().is_empty());
    // The name resolves again (DNS fixed): the same request succeeds.
    es.azure().set_resource_outcome("my-res", None);
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/typo",
        Some(emb_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

/// Azure 403 is relayed with its status inside the wrapper (`status [403]`), not retried.
#[tokio::test]
async fn azure_403_is_relayed_with_its_status() {
    let es = start("9.1.0").await;
    es.azure()
        .set_credential_outcome("good-key", AzureOutcome::Forbidden403);
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/f",
        Some(emb_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 400);
    let inner = r.body["error"]["caused_by"]["reason"].as_str().unwrap();
    assert!(
        inner.contains("for request from inference entity id [f] status [403]"),
        "{inner}"
    );
    assert_eq!(es.azure().calls().len(), 1);
}

/// Elasticsearch retries 429/500/503 towards the provider before it answers
/// (`OpenAiResponseHandler` marks them retryable; `RetrySettings` 1 s / 5 s / 30 s).
#[tokio::test]
async fn retryable_provider_answers_are_tried_three_times_before_the_answer() {
    let es = start("9.1.0").await;
    es.azure().set_retry_delay(Duration::from_millis(30));
    es.azure().set_outcome(Some(AzureOutcome::RateLimited429));
    let started = Instant::now();
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/r",
        Some(emb_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        es.azure().calls().len(),
        inference_testenv::es::ES_PROVIDER_ATTEMPTS
    );
    assert!(
        started.elapsed() >= Duration::from_millis(60),
        "two pauses between three tries"
    );
    es.azure().clear_calls();
    es.azure().set_outcome(Some(AzureOutcome::Reject401));
    call(
        &es,
        "PUT",
        "/_inference/text_embedding/r",
        Some(emb_body("good-key")),
    )
    .await;
    assert_eq!(es.azure().calls().len(), 1, "401 is not retried");
}

/// PR #137055 and its backports: CREATE refuses an id that pipelines or `semantic_text` fields
/// of non-empty indices still reference — from 8.19.7, 9.1.7, 9.2.1 and 9.3.0 exactly.
#[tokio::test]
async fn create_refuses_a_referenced_id_from_the_exact_patch_releases() {
    for (version, refuses) in [
        ("8.19.6", false),
        ("8.19.7", true),
        ("9.0.8", false),
        ("9.1.6", false),
        ("9.1.7", true),
        ("9.2.0", false),
        ("9.2.1", true),
        ("9.3.0", true),
    ] {
        let es = start(version).await;
        es.add_pipeline_reference("held", "ingest-p");
        es.add_index_reference("held", "docs");
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/held",
            Some(emb_body("good-key")),
        )
        .await;
        if refuses {
            assert_eq!(r.status, 400, "{version}: {}", r.raw);
            let reason = r.body["error"]["reason"].as_str().unwrap();
            assert!(reason.contains("could not be created"), "{reason}");
            assert!(
                reason.contains("[ingest-p]") && reason.contains("[docs]"),
                "{reason}"
            );
            assert!(
                es.azure().calls().is_empty(),
                "{version}: refused before the provider call"
            );
        } else {
            assert_eq!(r.status, 200, "{version}: {}", r.raw);
        }
    }
    // An empty index does not hold the id; freeing the pipeline lets the create through.
    let es = start("9.3.0").await;
    es.add_pipeline_reference("held", "ingest-p");
    es.add_index_reference("held", "docs");
    es.set_index_empty("docs", true);
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/held",
        Some(emb_body("good-key")),
    )
    .await;
    let reason = r.body["error"]["reason"].as_str().unwrap();
    assert!(!reason.contains("[docs]"), "{reason}");
    es.remove_pipeline_reference("held", "ingest-p");
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/held",
        Some(emb_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

/// Issue #139574 by default exactly where it is real: up to 9.1.x, 9.2.0–9.2.5, 9.3.0.
#[tokio::test]
async fn update_chunking_reset_follows_the_version_by_default() {
    for (version, resets) in [
        ("8.17.0", true),
        ("9.1.9", true),
        ("9.2.5", true),
        ("9.2.6", false),
        ("9.3.0", true),
        ("9.3.1", false),
        ("9.4.0", false),
    ] {
        let es = start(version).await;
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/c",
            Some(emb_body("good-key")),
        )
        .await;
        assert_eq!(r.status, 200, "{version}");
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/c/_update",
            Some(json!({"task_settings": {"user": "me"}})),
        )
        .await;
        assert_eq!(r.status, 200, "{version}: {}", r.raw);
        let expected = if resets {
            json!({"strategy": "word", "max_chunk_size": 250, "overlap": 100})
        } else {
            json!({"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1})
        };
        assert_eq!(r.body["chunking_settings"], expected, "{version}");
        assert_eq!(
            es.endpoint("c").unwrap()["chunking_settings"],
            expected,
            "{version}"
        );
    }
}

/// 9.4+: an `_update` that changes nothing answers the stored endpoint without calling Azure.
#[tokio::test]
async fn update_9_4_that_changes_nothing_makes_no_azure_call() {
    let es = start("9.4.0").await;
    call(
        &es,
        "PUT",
        "/_inference/text_embedding/u",
        Some(emb_body("good-key")),
    )
    .await;
    es.azure().clear_calls();
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"service_settings": {"api_key": "good-key"}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(es.azure().calls().is_empty());
    es.azure().accept_credential("other");
    call(
        &es,
        "PUT",
        "/_inference/text_embedding/u/_update",
        Some(json!({"service_settings": {"api_key": "other"}})),
    )
    .await;
    assert_eq!(es.azure().calls().len(), 1, "a real change is validated");
}

/// 9.5 `_update` takes `max_input_tokens` for embeddings; 9.4 ignores it (secret-only map).
#[tokio::test]
async fn update_9_5_changes_max_input_tokens_in_place() {
    for (version, applied) in [("9.4.0", false), ("9.5.0", true)] {
        let es = start(version).await;
        call(
            &es,
            "PUT",
            "/_inference/text_embedding/t",
            Some(emb_body("good-key")),
        )
        .await;
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/t/_update",
            Some(json!({"service_settings": {"api_key": "good-key", "max_input_tokens": 512}})),
        )
        .await;
        assert_eq!(r.status, 200, "{version}: {}", r.raw);
        let stored = es.endpoint("t").unwrap()["service_settings"]["max_input_tokens"].clone();
        assert_eq!(stored == json!(512), applied, "{version}: {stored}");
    }
}

/// `none` chunking exists on 8.19 (backport PR #129324); `recursive` only from 9.1.
#[tokio::test]
async fn none_chunking_on_8_19_recursive_from_9_1() {
    let es = start("8.19.0").await;
    let mut b = emb_body("good-key");
    b["chunking_settings"] = json!({"strategy": "none"});
    let r = call(&es, "PUT", "/_inference/text_embedding/n", Some(b)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let mut b = emb_body("good-key");
    b["chunking_settings"] = json!({"strategy": "recursive", "max_chunk_size": 200});
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/rec",
        Some(b.clone()),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.raw);
    es.set_version("9.1.0");
    let r = call(&es, "PUT", "/_inference/text_embedding/rec", Some(b)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

/// 8.15's DELETE refusal (`endpointIsReferencedInPipelines`, @038918c5) is one sentence about
/// pipelines, and its dry run has no `error_message`.
#[tokio::test]
async fn delete_refusal_wording_on_8_15() {
    let es = start("8.15.0").await;
    call(
        &es,
        "PUT",
        "/_inference/text_embedding/d",
        Some(emb_body("good-key")),
    )
    .await;
    es.add_pipeline_reference("d", "p1");
    let r = call(&es, "DELETE", "/_inference/text_embedding/d", None).await;
    assert_err(&r, 409, "status_exception", "Inference endpoint d is referenced by pipelines and cannot be deleted. Use `force` to delete it anyway, or use `dry_run` to list the pipelines that reference it.");
    let r = call(
        &es,
        "DELETE",
        "/_inference/text_embedding/d?dry_run=true",
        None,
    )
    .await;
    assert_eq!(r.body, json!({"acknowledged": false, "pipelines": ["p1"]}));
}

// ---------------------------------------------------------------------------------------------
// Services other than azureopenai (src/es/services.rs, generic.rs, ml.rs, providers.rs)
// ---------------------------------------------------------------------------------------------

mod services {
    use super::*;
    use inference_testenv::es::{
        aws_credential, custom_credential, ProviderOutcome, SecretKeys, ServiceSpec,
    };

    fn openai(key: Option<&str>) -> Value {
        let mut b = json!({"service": "openai", "service_settings": {"model_id": "text-embedding-3-small"}});
        if let Some(k) = key {
            b["service_settings"]["api_key"] = json!(k);
        }
        b
    }

    fn bedrock(access: &str, secret: &str) -> Value {
        json!({"service": "amazonbedrock", "service_settings": {
            "region": "us-east-1", "model": "amazon.titan-embed-text-v2:0", "provider": "amazontitan",
            "access_key": access, "secret_key": secret}})
    }

    fn vertex(json_key: &str) -> Value {
        json!({"service": "googlevertexai", "service_settings": {
            "location": "us-central1", "project_id": "p", "model_id": "text-embedding-004",
            "service_account_json": json_key}})
    }

    fn custom(params: Value) -> Value {
        json!({"service": "custom", "service_settings": {
            "url": "https://api.example.com/embed", "headers": {"Authorization": "Bearer ${api_key}"},
            "request": "{\"input\": ${input}}", "response": {"json_parser": {"text_embeddings": "$.data[*].embedding[*]"}},
            "secret_parameters": params}})
    }

    fn validation(r: &Res, msg: &str) {
        assert_err(
            r,
            400,
            "validation_exception",
            &format!("Validation Failed: 1: {msg};"),
        );
    }

    async fn es_with(version: &str, creds: &[&str]) -> EsDouble {
        let es = start(version).await;
        for c in creds {
            es.providers().accept_credential(c);
        }
        es
    }

    #[tokio::test]
    async fn secrets_are_claimed_per_class_stored_and_never_returned() {
        let aws = aws_credential("AKIA", "s3cr3t");
        let cust = custom_credential(&[("api_key", "ck")]);
        let es = es_with(
            "9.1.0",
            &["sk-1", &aws, "{\"type\":\"service_account\"}", &cust],
        )
        .await;
        let cases = [
            ("oa", openai(Some("sk-1")), json!({"api_key": "sk-1"})),
            (
                "br",
                bedrock("AKIA", "s3cr3t"),
                json!({"access_key": "AKIA", "secret_key": "s3cr3t"}),
            ),
            (
                "vx",
                vertex("{\"type\":\"service_account\"}"),
                json!({"service_account_json": "{\"type\":\"service_account\"}"}),
            ),
            (
                "cu",
                custom(json!({"api_key": "ck", "dropped": null})),
                json!({"secret_parameters": {"api_key": "ck"}}),
            ),
        ];
        for (id, body, secrets) in cases {
            let r = call(
                &es,
                "PUT",
                &format!("/_inference/text_embedding/{id}"),
                Some(body),
            )
            .await;
            assert_eq!(r.status, 200, "{id}: {}", r.raw);
            assert_eq!(
                Value::Object(es.stored_secrets(id).unwrap()),
                secrets,
                "{id}"
            );
            let get = call(&es, "GET", &format!("/_inference/{id}"), None).await;
            for raw in [&r.raw, &get.raw] {
                for v in secrets.as_object().unwrap().keys() {
                    assert!(!raw.contains(&format!("\"{v}\"")), "{id} leaks {v}: {raw}");
                }
            }
        }
        // no secret at all for EIS and the in-cluster service
        let r = call(
            &es,
            "PUT",
            "/_inference/sparse_embedding/eis",
            Some(json!({"service": "elastic", "service_settings": {"model_id": "elser-v2"}})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(es.stored_secrets("eis"), Some(Default::default()));
    }

    #[tokio::test]
    async fn missing_secrets_have_each_class_message() {
        let es = start("9.1.0").await;
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/a",
            Some(openai(None)),
        )
        .await;
        validation(
            &r,
            "[service_settings] does not contain the required setting [api_key]",
        );
        let mut b = bedrock("AKIA", "x");
        b["service_settings"]
            .as_object_mut()
            .unwrap()
            .remove("secret_key");
        let r = call(&es, "PUT", "/_inference/text_embedding/a", Some(b)).await;
        validation(
            &r,
            "[service_settings] does not contain the required setting [secret_key]",
        );
        let mut b = vertex("x");
        b["service_settings"]
            .as_object_mut()
            .unwrap()
            .remove("service_account_json");
        let r = call(&es, "PUT", "/_inference/text_embedding/a", Some(b)).await;
        validation(
            &r,
            "[secret_settings] does not contain the required setting [service_account_json]",
        );
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/a",
            Some(custom(json!({"k": 1}))),
        )
        .await;
        validation(&r, "Map field [secret_parameters] has an entry that is not valid, [k => 1]. Value type of [1] is not one of [String].");
        // 9.5: OpenAI takes exactly one of api_key / client_secret
        es.set_version("9.5.0");
        let mut b = openai(Some("k"));
        b["service_settings"]["client_secret"] = json!("c");
        let r = call(&es, "PUT", "/_inference/text_embedding/a", Some(b)).await;
        validation(&r, "[service_settings] must have exactly one of [api_key] or [client_secret] field set, received: [api_key, client_secret]");
    }

    #[tokio::test]
    async fn required_settings_unknown_keys_and_unsupported_tasks() {
        let es = start("9.1.0").await;
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/a",
            Some(json!({"service": "openai", "service_settings": {"api_key": "k"}})),
        )
        .await;
        validation(
            &r,
            "[service_settings] does not contain the required setting [model_id]",
        );
        let r = call(&es, "PUT", "/_inference/completion/a", Some(json!({"service": "amazonbedrock", "service_settings": {"access_key": "a", "secret_key": "s"}}))).await;
        assert_err(&r, 400, "validation_exception", "Validation Failed: 1: [service_settings] does not contain the required setting [model];2: [service_settings] does not contain the required setting [region];3: [service_settings] does not contain the required setting [provider];");
        let mut b = openai(Some("k"));
        b["service_settings"]["colour"] = json!("blue");
        let r = call(&es, "PUT", "/_inference/text_embedding/a", Some(b)).await;
        assert_err(
            &r,
            400,
            "status_exception",
            "Model configuration contains settings [{colour=blue}] unknown to the [openai] service",
        );
        let r = call(
            &es,
            "PUT",
            "/_inference/sparse_embedding/a",
            Some(json!({"service": "cohere", "service_settings": {"api_key": "k"}})),
        )
        .await;
        assert_err(
            &r,
            400,
            "status_exception",
            "The [cohere] service does not support task type [sparse_embedding]",
        );
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/a",
            Some(json!({"service": "nope", "service_settings": {}})),
        )
        .await;
        assert_err(&r, 400, "status_exception", "Unknown service [nope]");
        // a service the version does not know yet is unknown too
        es.set_version("8.18.0");
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/a",
            Some(custom(json!({}))),
        )
        .await;
        assert_err(&r, 400, "status_exception", "Unknown service [custom]");
        assert!(es.endpoint_ids().is_empty());
    }

    #[tokio::test]
    async fn defaults_are_filled_in_and_dimensions_learnt() {
        let es = es_with("9.1.0", &["sk", "ck"]).await;
        es.providers().set_native_dimensions("openai", 512);
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/oa",
            Some(openai(Some("sk"))),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        let ss = &r.body["service_settings"];
        assert_eq!(ss["rate_limit"], json!({"requests_per_minute": 3000}));
        assert_eq!(ss["dimensions"], 512);
        assert_eq!(ss["similarity"], "dot_product");
        assert_eq!(r.body["chunking_settings"]["strategy"], "sentence");
        let r = call(&es, "PUT", "/_inference/rerank/co", Some(json!({"service": "cohere", "service_settings": {"api_key": "ck", "model_id": "rerank-v3.5"}, "task_settings": {"top_n": 5}}))).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(
            r.body["service_settings"],
            json!({"model_id": "rerank-v3.5", "rate_limit": {"requests_per_minute": 10000}})
        );
        assert_eq!(r.body["task_settings"], json!({"top_n": 5}));
        let r = call(&es, "PUT", "/_inference/text_embedding/ce", Some(json!({"service": "cohere", "service_settings": {"api_key": "ck", "model_id": "embed-v4.0"}}))).await;
        assert_eq!(
            r.body["service_settings"]["embedding_type"], "float",
            "{}",
            r.raw
        );
        let r = call(
            &es,
            "PUT",
            "/_inference/rerank/c2",
            Some(json!({"service": "cohere", "service_settings": {"api_key": "ck"}})),
        )
        .await;
        validation(
            &r,
            "The [service_settings.model_id] field is required for the Cohere V2 API.",
        );
        assert!(r.body.get("chunking_settings").is_none(), "{}", r.raw);
        // user-set rate limit and dimensions win; GET shows the same as PUT
        let mut b = openai(Some("sk"));
        b["service_settings"]["dimensions"] = json!(256);
        b["service_settings"]["rate_limit"] = json!({"requests_per_minute": 10});
        let r = call(&es, "PUT", "/_inference/text_embedding/oa2", Some(b)).await;
        assert_eq!(r.body["service_settings"]["dimensions"], 256, "{}", r.raw);
        assert_eq!(
            r.body["service_settings"]["rate_limit"]["requests_per_minute"],
            10
        );
        let g = call(&es, "GET", "/_inference/oa2", None).await;
        assert_eq!(g.body["endpoints"][0], r.body);
    }

    #[tokio::test]
    async fn update_rotates_per_secret_class() {
        let es = es_with(
            "9.1.0",
            &[
                "k1",
                &aws_credential("a1", "s1"),
                "j1",
                &custom_credential(&[("x", "1"), ("y", "2")]),
            ],
        )
        .await;
        for (id, tt, body) in [
            ("oa", "text_embedding", openai(Some("k1"))),
            ("br", "text_embedding", bedrock("a1", "s1")),
            ("vx", "text_embedding", vertex("j1")),
            ("cu", "text_embedding", custom(json!({"x": "1", "y": "2"}))),
        ] {
            let r = call(&es, "PUT", &format!("/_inference/{tt}/{id}"), Some(body)).await;
            assert_eq!(r.status, 200, "{id}: {}", r.raw);
        }
        let upd2 = |id: &str| format!("/_inference/text_embedding/{id}/_update");
        // DefaultSecretSettings up to 9.4: api_key required whenever service_settings is sent
        let r = call(
            &es,
            "PUT",
            &upd2("oa"),
            Some(json!({"service_settings": {}})),
        )
        .await;
        validation(
            &r,
            "[service_settings] does not contain the required setting [api_key]",
        );
        let r = call(
            &es,
            "PUT",
            &upd2("oa"),
            Some(json!({"service_settings": {"api_key": "k2"}})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(es.stored_secrets("oa").unwrap()["api_key"], "k2");
        // AWS: both halves together
        let r = call(
            &es,
            "PUT",
            &upd2("br"),
            Some(json!({"service_settings": {"access_key": "a2"}})),
        )
        .await;
        validation(&r, "[service_settings] [access_key] and [secret_key] must be updated together; missing: [secret_key]");
        let r = call(
            &es,
            "PUT",
            &upd2("br"),
            Some(json!({"service_settings": {"access_key": "a2", "secret_key": "s2"}})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(
            Value::Object(es.stored_secrets("br").unwrap()),
            json!({"access_key": "a2", "secret_key": "s2"})
        );
        // Vertex: fromMap again, the JSON is required
        let r = call(
            &es,
            "PUT",
            &upd2("vx"),
            Some(json!({"service_settings": {"rate_limit": {"requests_per_minute": 5}}})),
        )
        .await;
        validation(
            &r,
            "[secret_settings] does not contain the required setting [service_account_json]",
        );
        // custom: the new map replaces the old one entirely
        let r = call(
            &es,
            "PUT",
            &upd2("cu"),
            Some(json!({"service_settings": {"secret_parameters": {"z": "3"}}})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(
            Value::Object(es.stored_secrets("cu").unwrap()),
            json!({"secret_parameters": {"z": "3"}})
        );
        // 9.5: an update without api_key keeps it; rate_limit is updatable
        es.set_version("9.5.0");
        es.providers().accept_credential("k2");
        let r = call(
            &es,
            "PUT",
            &upd2("oa"),
            Some(json!({"service_settings": {"rate_limit": {"requests_per_minute": 7}}})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(
            r.body["service_settings"]["rate_limit"]["requests_per_minute"],
            7
        );
        assert_eq!(es.stored_secrets("oa").unwrap()["api_key"], "k2");
    }

    #[tokio::test]
    async fn update_from_9_4_validates_the_new_credential() {
        let es = es_with("9.4.0", &["old"]).await;
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/oa",
            Some(openai(Some("old"))),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        es.providers().clear_calls();
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/oa/_update",
            Some(json!({"service_settings": {"api_key": "bad"}})),
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.raw);
        assert!(
            r.body["error"]["caused_by"]["reason"]
                .as_str()
                .unwrap()
                .contains("status [401]"),
            "{}",
            r.raw
        );
        assert_eq!(
            es.stored_secrets("oa").unwrap()["api_key"],
            "old",
            "a refused rotation keeps the old key"
        );
        let calls = es.providers().calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].credential, "bad");
        assert_eq!(calls[0].service, "openai");
    }

    #[tokio::test]
    async fn provider_outcomes_by_credential_model_service_and_globally() {
        let es = es_with("9.1.0", &["good"]).await;
        let p = es.providers();
        let put = |id: &str, key: &str| {
            let es = es.clone();
            let (id, body) = (id.to_string(), openai(Some(key)));
            async move {
                call(
                    &es,
                    "PUT",
                    &format!("/_inference/text_embedding/{id}"),
                    Some(body),
                )
                .await
            }
        };
        let r = put("a", "unknown").await;
        assert_eq!(r.status, 400, "{}", r.raw);
        assert_eq!(r.body["error"]["reason"], "Could not complete inference endpoint creation as validation call to service threw an exception.");
        assert_eq!(r.body["error"]["caused_by"]["reason"], "Received an authentication error status code for request from inference entity id [a] status [401]. Error message: [fake provider answered 401]");
        p.set_credential_outcome("good", Some(ProviderOutcome::Forbidden403));
        assert!(put("a", "good")
            .await
            .raw
            .contains("permission denied error status code"));
        p.set_credential_outcome("good", None);
        p.set_model_outcome("text-embedding-3-small", Some(ProviderOutcome::NotFound404));
        assert!(put("a", "good")
            .await
            .raw
            .contains("Resource not found at [openai/text-embedding-3-small]"));
        p.set_model_outcome("text-embedding-3-small", None);
        p.clear_calls();
        p.set_service_outcome("openai", Some(ProviderOutcome::RateLimited429));
        assert!(put("a", "good").await.raw.contains("status [429]"));
        assert_eq!(
            p.calls().len(),
            inference_testenv::es::ES_PROVIDER_ATTEMPTS,
            "429 is retried"
        );
        p.set_service_outcome("openai", None);
        p.set_outcome(Some(ProviderOutcome::ServerError500));
        assert!(put("a", "good").await.raw.contains("status [500]"));
        p.set_outcome(Some(ProviderOutcome::Timeout));
        let t0 = Instant::now();
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/a?timeout=200ms",
            Some(openai(Some("good"))),
        )
        .await;
        assert_eq!(
            r.body["error"]["caused_by"]["type"], "timeout_exception",
            "{}",
            r.raw
        );
        assert!(t0.elapsed() >= Duration::from_millis(200));
        p.set_outcome(None);
        assert!(es.endpoint_ids().is_empty(), "no failed create is stored");
        assert_eq!(put("a", "good").await.status, 200);
        p.revoke_credential("good");
        assert_eq!(put("b", "good").await.status, 400);
        // EIS has no credential: accepted unless a rule says otherwise
        let eis = json!({"service": "elastic", "service_settings": {"model_id": "elser-v2"}});
        p.set_service_outcome("elastic", Some(ProviderOutcome::ServerBusy503));
        let r = call(
            &es,
            "PUT",
            "/_inference/sparse_embedding/e",
            Some(eis.clone()),
        )
        .await;
        assert!(r.raw.contains("status [503]"), "{}", r.raw);
        p.set_service_outcome("elastic", None);
        assert_eq!(
            call(&es, "PUT", "/_inference/sparse_embedding/e", Some(eis))
                .await
                .status,
            200
        );
        let last = p.calls_for("elastic").pop().unwrap();
        assert_eq!(
            (last.credential.as_str(), last.outcome),
            ("", ProviderOutcome::Accept)
        );
    }

    #[tokio::test]
    async fn a_registered_service_works_end_to_end() {
        let es = es_with("9.1.0", &["acme-key"]).await;
        let body = json!({"service": "acme", "service_settings": {"model_id": "m1", "region": "eu", "token": "acme-key"}});
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/x",
            Some(body.clone()),
        )
        .await;
        assert_err(&r, 400, "status_exception", "Unknown service [acme]");
        es.register_service(ServiceSpec::open(
            "acme",
            SecretKeys::all_of(&["token"]),
            &["text_embedding"],
        ));
        let r = call(&es, "PUT", "/_inference/text_embedding/x", Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(r.body["service_settings"]["model_id"], "m1");
        assert_eq!(r.body["service_settings"]["region"], "eu");
        assert!(!r.raw.contains("acme-key"), "{}", r.raw);
        assert_eq!(es.stored_secrets("x").unwrap()["token"], "acme-key");
        assert_eq!(es.providers().calls_for("acme")[0].credential, "acme-key");
        let r = call(
            &es,
            "PUT",
            "/_inference/rerank/y",
            Some(json!({"service": "acme", "service_settings": {"token": "acme-key"}})),
        )
        .await;
        assert_err(
            &r,
            400,
            "status_exception",
            "The [acme] service does not support task type [rerank]",
        );
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/x/_update",
            Some(json!({"service_settings": {"token": "acme-2"}})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(es.stored_secrets("x").unwrap()["token"], "acme-2");
    }

    fn elser(extra: Value) -> Value {
        let mut b = json!({"service": "elasticsearch", "service_settings": {"model_id": ".elser_model_2", "num_threads": 1, "num_allocations": 1}});
        for (k, v) in extra.as_object().unwrap() {
            b["service_settings"][k] = v.clone();
        }
        b
    }

    #[tokio::test]
    async fn elasticsearch_put_waits_for_the_deployment_then_times_out_but_stays_stored() {
        let es = start("9.1.0").await;
        es.set_model_deploy_time(Duration::from_millis(700));
        let t0 = Instant::now();
        let r = call(
            &es,
            "PUT",
            "/_inference/sparse_embedding/slow?timeout=200ms",
            Some(elser(json!({}))),
        )
        .await;
        assert_err(&r, 408, "status_exception", "Timed out after [200ms] waiting for trained model deployment [slow] to start. Use the trained model stats API to track the state of the deployment and try again once it has started.");
        assert!(t0.elapsed() >= Duration::from_millis(200));
        assert_eq!(
            call(&es, "GET", "/_inference/slow", None).await.status,
            200,
            "stored before the start"
        );
        let s = call(&es, "GET", "/_ml/trained_models/slow/_stats", None).await;
        assert_eq!(s.body["count"], 1, "{}", s.raw);
        assert_eq!(
            s.body["trained_model_stats"][0]["deployment_stats"]["state"],
            "starting"
        );
        let again = call(
            &es,
            "PUT",
            "/_inference/sparse_embedding/slow",
            Some(elser(json!({}))),
        )
        .await;
        assert_err(
            &again,
            400,
            "resource_already_exists_exception",
            "Inference endpoint [slow] already exists",
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        let st = es.deployment_stats("slow").unwrap();
        assert_eq!(st["state"], "started");
        assert_eq!(st["allocation_status"]["state"], "fully_allocated");
        // 8.x words it without the deployment id
        es.set_version("8.19.0");
        let r = call(
            &es,
            "PUT",
            "/_inference/sparse_embedding/slow8?timeout=100ms",
            Some(elser(json!({}))),
        )
        .await;
        assert_err(&r, 408, "status_exception", "Timed out after [100ms] waiting for model deployment to start. Use the trained model stats API to track the state of the deployment.");
        es.set_version("9.1.0");
        tokio::time::sleep(Duration::from_millis(600)).await;
        // a deployment within the timeout: the PUT waits for it and answers 200
        let t0 = Instant::now();
        let r = call(
            &es,
            "PUT",
            "/_inference/sparse_embedding/ok",
            Some(elser(json!({}))),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert!(t0.elapsed() >= Duration::from_millis(650));
        assert!(
            es.providers().calls().is_empty(),
            "no provider behind an in-cluster model"
        );
        // deleting the endpoint stops its deployment
        call(&es, "DELETE", "/_inference/ok", None).await;
        assert!(es.deployment_stats("ok").is_none());
        assert!(es.delete_out_of_band("slow"));
        assert!(es.deployment_stats("slow").is_none());
        es.replace_cluster();
        assert!(
            es.deployment_stats("slow8").is_none(),
            "a rebuilt cluster has no deployments"
        );
    }

    #[tokio::test]
    async fn elasticsearch_settings_defaults_and_allocation_updates() {
        let es = start("9.1.0").await;
        let r = call(&es, "PUT", "/_inference/sparse_embedding/a", Some(json!({"service": "elasticsearch", "service_settings": {"model_id": ".elser_model_2"}}))).await;
        assert_err(&r, 400, "validation_exception", "Validation Failed: 1: [service_settings] does not contain the required setting [num_threads];2: [service_settings] does not contain one of the required settings [num_allocations, adaptive_allocations];");
        let r = call(&es, "PUT", "/_inference/sparse_embedding/a", Some(json!({"service": "elasticsearch", "service_settings": {"num_threads": 1, "num_allocations": 1}}))).await;
        assert_err(
            &r,
            400,
            "illegal_argument_exception",
            "Error parsing service settings, model_id must be provided",
        );
        let r = call(
            &es,
            "PUT",
            "/_inference/sparse_embedding/a",
            Some(elser(json!({"model_id": "my-model"}))),
        )
        .await;
        assert_err(&r, 400, "illegal_argument_exception", "Error parsing request config, model id does not match any models available on this platform. Was [my-model]. You may need to load it into the cluster using eland.");
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/e5",
            Some(elser(json!({"model_id": ".multilingual-e5-small"}))),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(r.body["service_settings"]["dimensions"], 384);
        assert_eq!(r.body["service_settings"]["similarity"], "cosine");
        let r = call(
            &es,
            "PUT",
            "/_inference/rerank/rr",
            Some(elser(json!({"model_id": ".rerank-v1"}))),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        // the deprecated elser service defaults the model and is stored as elasticsearch
        let r = call(&es, "PUT", "/_inference/sparse_embedding/old", Some(json!({"service": "elser", "service_settings": {"num_threads": 1, "num_allocations": 1}}))).await;
        assert_eq!(r.body["service"], "elasticsearch", "{}", r.raw);
        assert_eq!(r.body["service_settings"]["model_id"], ".elser_model_2");
        // _update: num_allocations / adaptive_allocations
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/e5/_update",
            Some(json!({"service_settings": {}})),
        )
        .await;
        validation(&r, "[service_settings] does not contain one of the required settings [num_allocations, adaptive_allocations]");
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/e5/_update",
            Some(json!({"service_settings": {"num_allocations": 3}})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(r.body["service_settings"]["num_allocations"], 3);
        assert_eq!(
            es.deployment_stats("e5").unwrap()["number_of_allocations"],
            3
        );
        let adaptive = json!({"enabled": true, "min_number_of_allocations": 2, "max_number_of_allocations": 4});
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/e5/_update",
            Some(json!({"service_settings": {"adaptive_allocations": adaptive}})),
        )
        .await;
        assert_eq!(
            r.body["service_settings"]["adaptive_allocations"], adaptive,
            "{}",
            r.raw
        );
        assert!(r.body["service_settings"].get("num_allocations").is_none());
        assert_eq!(
            es.deployment_stats("e5").unwrap()["number_of_allocations"],
            2
        );
    }

    #[tokio::test]
    async fn out_of_band_endpoints_keep_their_secrets_apart() {
        let es = start("9.1.0").await;
        es.put_out_of_band(json!({"inference_id": "ob", "task_type": "completion", "service": "amazonbedrock",
            "service_settings": {"region": "r", "model": "m", "provider": "anthropic", "access_key": "a", "secret_key": "s"}}));
        assert_eq!(
            Value::Object(es.stored_secrets("ob").unwrap()),
            json!({"access_key": "a", "secret_key": "s"})
        );
        let g = call(&es, "GET", "/_inference/ob", None).await;
        assert!(!g.raw.contains("access_key"), "{}", g.raw);
        // the Azure accessor still answers for Azure endpoints
        es.put_out_of_band(json!({"inference_id": "az", "task_type": "text_embedding", "service": "azureopenai",
            "service_settings": {"resource_name": "r", "deployment_id": "d", "api_version": "v", "api_key": "k"}}));
        assert_eq!(es.stored_secret("az"), Some(("api_key".into(), "k".into())));
        assert_eq!(es.stored_secrets("az").unwrap()["api_key"], "k");
    }

    // ---- one fake-provider surface for every service, Azure included ----------------------

    /// Azure's validation calls land on the same surface as every other service's: a rule of
    /// the whole surface reaches them, while the Azure view's own override stays Azure's.
    #[tokio::test]
    async fn azure_is_one_service_of_the_provider_surface() {
        let es = es_with("9.1.0", &["sk-1"]).await;
        let (p, azure) = (es.providers(), es.azure());
        let put = |id: &str, body: Value| {
            let es = es.clone();
            let path = format!("/_inference/text_embedding/{id}");
            async move { call(&es, "PUT", &path, Some(body)).await }
        };
        assert_eq!(put("az", emb_body("good-key")).await.status, 200);
        let calls = p.calls_for("azureopenai");
        assert_eq!(calls.len(), 1, "the Azure call is on the one surface");
        assert_eq!(
            (
                calls[0].target.as_str(),
                calls[0].model.as_str(),
                calls[0].credential.as_str()
            ),
            ("my-res", "my-embed", "good-key")
        );
        // The Azure view's override is Azure's only.
        azure.set_outcome(Some(AzureOutcome::RateLimited429));
        assert!(put("az2", emb_body("good-key"))
            .await
            .raw
            .contains("status [429]"));
        assert_eq!(put("oa", openai(Some("sk-1"))).await.status, 200);
        azure.set_outcome(None);
        // A rule of the whole surface reaches Azure too.
        p.set_outcome(Some(ProviderOutcome::ServerError500));
        let r = put("az3", emb_body("good-key")).await;
        assert!(r.raw.contains("status [500]"), "{}", r.raw);
        p.set_outcome(None);
        // Clearing the Azure view's calls keeps the other services'.
        azure.clear_calls();
        assert!(azure.calls().is_empty());
        assert_eq!(p.calls_for("openai").len(), 1);
    }

    /// A per-target rule works for any service with a configured `url`: a host that does not
    /// resolve is `Invalid host [..]`, tried once, as for a mistyped Azure resource name.
    #[tokio::test]
    async fn an_unresolvable_url_host_fails_any_service_once() {
        let cust = custom_credential(&[("api_key", "ck")]);
        let es = es_with("9.1.0", &[&cust]).await;
        es.providers()
            .set_target_outcome("api.example.com", Some(ProviderOutcome::UnknownHost));
        let body = custom(json!({"api_key": "ck"}));
        let r = call(
            &es,
            "PUT",
            "/_inference/text_embedding/c",
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.raw);
        let inner = &r.body["error"]["caused_by"];
        assert_eq!(
            inner["reason"],
            "Invalid host [https://api.example.com/embed], please check that the URL is correct."
        );
        assert_eq!(inner["caused_by"]["reason"], "api.example.com");
        assert_eq!(es.providers().calls().len(), 1, "not retried");
        es.providers().set_target_outcome("api.example.com", None);
        let r = call(&es, "PUT", "/_inference/text_embedding/c", Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.raw);
    }

    /// Forced and native vector lengths are per service: forcing OpenAI's leaves Azure's.
    #[tokio::test]
    async fn returned_dimensions_are_per_service() {
        let es = es_with("9.1.0", &["sk-1"]).await;
        es.providers().force_returned_dimensions("openai", Some(64));
        let put = |id: &str, body: Value| {
            let es = es.clone();
            let path = format!("/_inference/text_embedding/{id}");
            async move { call(&es, "PUT", &path, Some(body)).await }
        };
        let r = put("oa", openai(Some("sk-1"))).await;
        assert_eq!(r.body["service_settings"]["dimensions"], 64, "{}", r.raw);
        let r = put("az", emb_body("good-key")).await;
        assert_eq!(r.body["service_settings"]["dimensions"], 1536, "{}", r.raw);
        es.azure().force_returned_dimensions(Some(32));
        let r = put("az2", emb_body("good-key")).await;
        assert_eq!(r.body["service_settings"]["dimensions"], 32, "{}", r.raw);
    }
}

/// docs/reference/elasticsearch-inference-api.md#perform-inference and
/// docs/reference/elasticsearch-inference-api.md#provider-failure-at-inference.
#[tokio::test]
async fn perform_inference_answers_by_task_type_and_relays_provider_failures() {
    let es = start("9.3.1").await;
    let r = call(
        &es,
        "PUT",
        "/_inference/text_embedding/emb",
        Some(emb_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = call(
        &es,
        "POST",
        "/_inference/text_embedding/emb",
        Some(json!({"input": "ping"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let vector = r.body["text_embedding"][0]["embedding"].as_array().unwrap();
    assert_eq!(vector.len(), 1536, "the length learnt at create");
    let r = call(
        &es,
        "POST",
        "/_inference/text_embedding/emb",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 400, "input is required: {}", r.raw);
    let r = call(
        &es,
        "POST",
        "/_inference/completion/emb",
        Some(json!({"input": "x"})),
    )
    .await;
    assert_err(
        &r,
        400,
        "status_exception",
        "Requested task type [completion] does not match the inference endpoint's task type [text_embedding]",
    );

    // A key revoked at the provider: 401, unwrapped, the provider's status in the text.
    es.azure().revoke_credential("good-key");
    let r = call(
        &es,
        "POST",
        "/_inference/text_embedding/emb",
        Some(json!({"input": "ping"})),
    )
    .await;
    let reason = r.body["error"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_err(&r, 401, "status_exception", &reason);
    assert!(
        reason.starts_with("Received an authentication error status code for request from inference entity id [emb] status [401]"),
        "{reason}"
    );
    assert!(r.body["error"]["caused_by"].is_null(), "not wrapped");
    // A provider 5xx is relayed as 400 (toRestStatus), after Elasticsearch's retries.
    es.azure().set_outcome(Some(AzureOutcome::ServerError500));
    let r = call(
        &es,
        "POST",
        "/_inference/text_embedding/emb",
        Some(json!({"input": "ping"})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert!(r.raw.contains("status [500]"), "{}", r.raw);
    es.azure().set_outcome(None);

    // chat_completion: the stream only, as Server-Sent Events.
    es.azure().accept_credential("good-key");
    let r = call(
        &es,
        "PUT",
        "/_inference/chat_completion/chat",
        Some(completion_body("good-key")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let chat = json!({"messages": [{"role": "user", "content": "ping"}]});
    let r = call(
        &es,
        "POST",
        "/_inference/chat_completion/chat/_stream",
        Some(chat.clone()),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    assert!(
        r.raw
            .starts_with("\u{feff}event: message\ndata: {\"chat_completion\""),
        "{}",
        r.raw
    );
    assert!(r.raw.ends_with("data: [DONE]\n\n"), "{}", r.raw);
    es.azure().revoke_credential("good-key");
    let r = call(
        &es,
        "POST",
        "/_inference/chat_completion/chat/_stream",
        Some(chat),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(
        r.raw.starts_with("\u{feff}event: error\ndata: {\"error\""),
        "{}",
        r.raw
    );
    assert!(r.raw.contains("\"status\":401"), "{}", r.raw);
}

/// The fault suite's switches (tests/faults.rs): a held PUT is carried out once released even
/// though its client gave up; every request is recorded with its arrival, status and the
/// connection's tag; an outage resets every connection until cleared.
#[tokio::test]
async fn holds_tags_statuses_and_outages() {
    let es = start("9.1.0").await;
    provider();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    es.set_connection_tagger(std::sync::Arc::new(|peer| {
        Some(format!("port-{}", peer.port()))
    }));
    es.hold_next(Route::Put, 1);
    let put = impatient
        .put(format!("{}/_inference/text_embedding/held", es.url()))
        .json(&emb_body("good-key"))
        .send()
        .await;
    assert!(put.unwrap_err().is_timeout(), "the PUT is held");
    assert_eq!(es.held(), 1);
    assert!(es.endpoint("held").is_none(), "not carried out while held");
    es.release_hung();
    let done = inference_testenv::poll(Duration::from_secs(5), Duration::from_millis(10), || {
        let es = es.clone();
        async move { es.endpoint("held").map(|_| ()).ok_or_else(String::new) }
    })
    .await;
    assert!(
        done.is_ok(),
        "the released PUT is carried out without its client"
    );
    assert_eq!(es.held(), 0);
    let put = es
        .requests()
        .into_iter()
        .find(|r| r.route == Route::Put)
        .unwrap();
    assert_eq!(put.status, Some(200), "the status it answered, to nobody");
    assert!(
        put.tag.as_deref().is_some_and(|t| t.starts_with("port-")),
        "{:?}",
        put.tag
    );

    let before = Instant::now();
    es.start_outage();
    assert!(impatient
        .get(format!("{}/", es.url()))
        .send()
        .await
        .is_err());
    let refused = es.requests().into_iter().last().unwrap();
    assert!(
        refused.at >= before && refused.status.is_none(),
        "{refused:?}"
    );
    es.clear_faults();
    assert_eq!(
        call_with(&impatient, &es, "GET", "/", None).await.status,
        200
    );
    assert_eq!(es.requests().last().unwrap().status, Some(200));
}

/// `GET _inference/_all` reads at most 10,000 stored endpoints (`ModelRegistry.getAllModels`,
/// `setSize(10_000)`), then adds the preconfigured ones.
#[tokio::test]
async fn listing_all_reads_at_most_ten_thousand_stored_endpoints() {
    let es = start("9.1.0").await;
    for i in 0..10_001 {
        es.put_out_of_band(json!({
            "inference_id": format!("e-{i:05}"), "task_type": "completion", "service": "azureopenai",
            "service_settings": {"resource_name": "r", "deployment_id": "d", "api_version": "v", "api_key": "k"}
        }));
    }
    let r = call(&es, "GET", "/_inference/_all", None).await;
    let ids: Vec<&str> = r.body["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["inference_id"].as_str().unwrap())
        .collect();
    let stored: Vec<&&str> = ids.iter().filter(|id| id.starts_with("e-")).collect();
    assert_eq!(stored.len(), 10_000);
    assert_eq!(*stored[9_999], "e-09999", "the first 10,000 by id");
    assert!(
        ids.contains(&".elser-2-elasticsearch"),
        "preconfigured ones added"
    );
    // The id left out is still there for a GET of its own.
    let r = call(&es, "GET", "/_inference/completion/e-10000", None).await;
    assert_eq!(r.status, 200);
}
