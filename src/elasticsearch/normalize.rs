//! Pure comparison of the desired endpoint with what Elasticsearch reports
//! (docs/reference/elasticsearch-inference-api.md#azure-responses,
//! docs/reference/elasticsearch-inference-api.md#idempotency rule 6).
//!
//! Desired and observed differ by design: Elasticsearch fills in defaults (`rate_limit`,
//! chunking), infers `dimensions`/`similarity` from the provider, omits empty task settings and
//! never returns secrets. [`compare`] normalises both sides and reports only real differences,
//! at the granularity of top-level keys (`service_settings.deployment_id`,
//! `task_settings.headers`, `chunking_settings`). [`Difference::updatable_on`] says whether the
//! update API can apply a difference on a given cluster version.

use std::collections::BTreeSet;

use serde_json::{Map, Number, Value};

use super::body::{strip_empty, updatable_since, Endpoint, EndpointConfig};
use super::service::{is_secret_field, same_service, ServiceProfile};
use super::version::EsVersion;

/// One setting that differs. `None` = absent on that side.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// `inference_id`, `service`, `task_type`, `service_settings.<key>`, `task_settings.<key>`
    /// or `chunking_settings`.
    pub path: String,
    pub desired: Option<Value>,
    pub observed: Option<Value>,
}

/// Elasticsearch's chunking default for embeddings since 8.16.
pub fn default_chunking() -> Map<String, Value> {
    obj([
        ("strategy", Value::from("sentence")),
        ("max_chunk_size", Value::from(250)),
        ("sentence_overlap", Value::from(1)),
    ])
}

/// What endpoints created before 8.16 read back as (and what the update bug #139574 writes).
pub fn legacy_chunking() -> Map<String, Value> {
    obj([
        ("strategy", Value::from("word")),
        ("max_chunk_size", Value::from(250)),
        ("overlap", Value::from(100)),
    ])
}

fn obj<const N: usize>(entries: [(&str, Value); N]) -> Map<String, Value> {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// When the user did not set chunking: accept the default and the legacy value (no flapping).
pub fn chunking_acceptable_when_unset(observed: &Map<String, Value>) -> bool {
    observed.is_empty()
        || map_eq(observed, &default_chunking())
        || map_eq(observed, &legacy_chunking())
}

/// Whether `observed` is the endpoint `desired` names: same id, service and task type. If not,
/// the settings are not comparable (task type and service are immutable: delete + recreate).
pub fn identity_matches(desired: &EndpointConfig, observed: &Endpoint) -> bool {
    desired.inference_id == observed.inference_id
        && same_service(&desired.service, &observed.service)
        && desired.task_type.as_str() == observed.task_type
}

/// Differences between desired and observed; empty = in sync.
///
/// * `service_settings`: secrets ignored; the service's default `rate_limit` filled into both
///   sides; keys the service table says Elasticsearch fills in (`dimensions`, `similarity` of
///   embeddings, ...) ignored unless the user set them; for services without a table entry,
///   every key only Elasticsearch reports is ignored (their defaults are unknown).
/// * `task_settings`: empty ≡ absent; null values and empty maps dropped; for services without
///   a table entry, keys only Elasticsearch reports are ignored.
/// * `chunking_settings` (text_embedding): when unset, the default `sentence/250/1` and the
///   legacy `word/250/100` are both accepted.
/// * numbers compare numerically (`1440` = `1440.0`).
pub fn compare(
    desired: &EndpointConfig,
    observed: &Endpoint,
    version: &EsVersion,
) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut push = |path: String, d: Option<&Value>, o: Option<&Value>| {
        out.push(Difference {
            path,
            desired: d.cloned(),
            observed: o.cloned(),
        })
    };
    if desired.inference_id != observed.inference_id {
        push(
            "inference_id".into(),
            Some(&Value::from(desired.inference_id.as_str())),
            Some(&Value::from(observed.inference_id.as_str())),
        );
    }
    if !same_service(&desired.service, &observed.service) {
        push(
            "service".into(),
            Some(&Value::from(desired.service.as_str())),
            Some(&Value::from(observed.service.as_str())),
        );
    }
    if desired.task_type.as_str() != observed.task_type {
        push(
            "task_type".into(),
            Some(&Value::from(desired.task_type.as_str())),
            Some(&Value::from(observed.task_type.as_str())),
        );
    }
    if !identity_matches(desired, observed) {
        return out;
    }

    let profile = ServiceProfile::lookup(&desired.service);
    let task = desired.task_type;

    // service_settings
    let mut d_ss = without_secrets(&desired.service, &desired.service_settings);
    let mut o_ss = without_secrets(&desired.service, &observed.service_settings);
    if let Some(rpm) = profile.and_then(|p| p.default_rpm(task)) {
        // 8.14 did not show rate_limit in GET: nothing to compare against.
        if !o_ss.contains_key("rate_limit") && !version.shows_rate_limit() {
            d_ss.remove("rate_limit");
        } else {
            fill_rate_limit(&mut d_ss, rpm);
            fill_rate_limit(&mut o_ss, rpm);
        }
    }
    let filled_in: &[&str] = profile.map_or(&[], |p| (p.filled_in)(task));
    for key in union_keys(&d_ss, &o_ss) {
        match (d_ss.get(&key), o_ss.get(&key)) {
            (Some(d), Some(o)) if json_eq(d, o) => {}
            (None, Some(_)) if profile.is_none() || filled_in.contains(&key.as_str()) => {}
            (d, o) => push(format!("service_settings.{key}"), d, o),
        }
    }

    // task_settings
    let task_defaults: &[&str] = profile.map_or(&[], |p| (p.filled_in_task_settings)(task));
    let d_ts = strip_empty(&desired.task_settings);
    let o_ts = strip_empty(&observed.task_settings);
    for key in union_keys(&d_ts, &o_ts) {
        match (d_ts.get(&key), o_ts.get(&key)) {
            (Some(d), Some(o)) if json_eq(d, o) => {}
            // A service without a table entry is compared on what the user set only.
            (None, Some(_)) if profile.is_none() => {}
            (None, Some(_)) if task_defaults.contains(&key.as_str()) => {}
            (d, o) => push(format!("task_settings.{key}"), d, o),
        }
    }

    // chunking_settings
    let d_cs = desired.chunking_settings.as_ref().filter(|c| !c.is_empty());
    let o_cs = observed
        .chunking_settings
        .as_ref()
        .filter(|c| !c.is_empty());
    match (d_cs, o_cs) {
        (None, None) => {}
        (None, Some(o)) => {
            if !(task.supports_chunking() && chunking_acceptable_when_unset(o)) {
                let d = (task.supports_chunking() && version.supports_chunking_settings())
                    .then(|| Value::Object(default_chunking()));
                push(
                    "chunking_settings".into(),
                    d.as_ref(),
                    Some(&Value::Object(o.clone())),
                );
            }
        }
        (Some(d), o) => {
            if !o.is_some_and(|o| chunking_eq(d, o)) {
                push(
                    "chunking_settings".into(),
                    Some(&Value::Object(d.clone())),
                    o.map(|o| Value::Object(o.clone())).as_ref(),
                );
            }
        }
    }
    out
}

impl Difference {
    /// Whether `_update` can apply this difference on `version` to `observed`:
    /// `task_settings` on 8.17+ (removing a key needs 9.4+); the `service_settings` keys the
    /// service table names, from their release (OAuth2 `client_id`/`scopes`/`tenant_id` only when
    /// the endpoint uses OAuth2); `chunking_settings` on 9.5+; everything else (id, service, task
    /// type, resource, deployment, model, dimensions, similarity, ...) needs delete + recreate.
    pub fn updatable_on(&self, version: &EsVersion, observed: &Endpoint) -> bool {
        if !version.supports_update_api() {
            return false;
        }
        if self.path.starts_with("task_settings.") {
            return self.desired.is_some() || version.update_can_clear_task_settings();
        }
        if self.path == "chunking_settings" {
            return version.update_accepts_chunking_settings() && self.desired.is_some();
        }
        if let Some(key) = self.path.strip_prefix("service_settings.") {
            let service = observed.service.as_str();
            // A key can be set or changed in place, never removed (`rate_limit` always has a
            // value: the default is filled into both sides).
            let updatable = updatable_since(service, key).is_some_and(|s| s.contains(version));
            if !updatable || self.desired.is_none() {
                return false;
            }
            let oauth2 = ServiceProfile::lookup(service).is_some_and(|p| p.is_oauth2_field(key));
            return !oauth2 || observed.service_settings.contains_key("client_id");
        }
        false
    }
}

fn without_secrets(service: &str, m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !is_secret_field(service, k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn fill_rate_limit(ss: &mut Map<String, Value>, rpm: u64) {
    match ss.get_mut("rate_limit") {
        Some(Value::Object(rl)) => {
            rl.entry("requests_per_minute").or_insert(Value::from(rpm));
        }
        Some(_) => {}
        None => {
            ss.insert(
                "rate_limit".into(),
                Value::Object(obj([("requests_per_minute", Value::from(rpm))])),
            );
        }
    }
}

fn union_keys(a: &Map<String, Value>, b: &Map<String, Value>) -> BTreeSet<String> {
    a.keys().chain(b.keys()).cloned().collect()
}

/// Chunking equality with per-strategy defaults: `sentence_overlap` defaults to 1; a user-given
/// `separator_group` is shown expanded as `separators` by Elasticsearch, so it matches any
/// `separators` (the expansion table is not on
/// docs/reference/elasticsearch-inference-api.md#chunking-settings).
fn chunking_eq(desired: &Map<String, Value>, observed: &Map<String, Value>) -> bool {
    let mut d = desired.clone();
    let mut o = observed.clone();
    if d.get("strategy").and_then(Value::as_str) == Some("sentence") {
        d.entry("sentence_overlap").or_insert(Value::from(1));
        o.entry("sentence_overlap").or_insert(Value::from(1));
    }
    if d.contains_key("separator_group")
        && !o.contains_key("separator_group")
        && o.contains_key("separators")
    {
        d.remove("separator_group");
        o.remove("separators");
    }
    map_eq(&d, &o)
}

fn map_eq(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| json_eq(v, w)))
}

/// Deep JSON equality with numbers compared numerically.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => map_eq(x, y),
        _ => a == b,
    }
}

fn num_eq(a: &Number, b: &Number) -> bool {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x == y,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elasticsearch::TaskType;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn v(s: &str) -> EsVersion {
        EsVersion::parse(s).unwrap()
    }

    fn desired(task: TaskType) -> EndpointConfig {
        EndpointConfig {
            inference_id: "azure-emb".into(),
            task_type: task,
            service: "azureopenai".into(),
            service_settings: m(json!({
                "resource_name": "my-res", "deployment_id": "my-embed", "api_version": "2024-02-01"
            })),
            task_settings: Map::new(),
            chunking_settings: None,
        }
    }

    /// The PUT/GET example of docs/reference/elasticsearch-inference-api.md#response-shape.
    fn observed_embedding() -> Endpoint {
        serde_json::from_value(json!({
            "inference_id": "azure-emb",
            "task_type": "text_embedding",
            "service": "azureopenai",
            "service_settings": {
                "resource_name": "my-res", "deployment_id": "my-embed", "api_version": "2024-02-01",
                "rate_limit": {"requests_per_minute": 1440}, "dimensions": 1536, "similarity": "dot_product"
            },
            "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
        }))
        .unwrap()
    }

    fn observed_completion(task: &str) -> Endpoint {
        serde_json::from_value(json!({
            "inference_id": "azure-emb", "task_type": task, "service": "azureopenai",
            "service_settings": {"resource_name": "my-res", "deployment_id": "my-embed",
                "api_version": "2024-02-01", "rate_limit": {"requests_per_minute": 120}}
        }))
        .unwrap()
    }

    fn paths(d: &[Difference]) -> Vec<&str> {
        d.iter().map(|x| x.path.as_str()).collect()
    }

    #[test]
    fn defaults_and_inferred_fields_are_not_differences() {
        let d = compare(
            &desired(TaskType::TextEmbedding),
            &observed_embedding(),
            &v("9.1.0"),
        );
        assert!(d.is_empty(), "{d:?}");
        for t in [TaskType::Completion, TaskType::ChatCompletion] {
            let d = compare(&desired(t), &observed_completion(t.as_str()), &v("9.3.0"));
            assert!(d.is_empty(), "{d:?}");
        }
    }

    #[test]
    fn user_set_dimensions_and_similarity_are_compared() {
        let mut want = desired(TaskType::TextEmbedding);
        want.service_settings
            .insert("dimensions".into(), json!(1536));
        want.service_settings
            .insert("similarity".into(), json!("dot_product"));
        assert!(compare(&want, &observed_embedding(), &v("9.1.0")).is_empty());
        want.service_settings
            .insert("dimensions".into(), json!(256));
        want.service_settings
            .insert("similarity".into(), json!("cosine"));
        let d = compare(&want, &observed_embedding(), &v("9.1.0"));
        assert_eq!(
            paths(&d),
            ["service_settings.dimensions", "service_settings.similarity"]
        );
        assert_eq!(d[0].desired, Some(json!(256)));
        assert_eq!(d[0].observed, Some(json!(1536)));
        assert!(!d[0].updatable_on(&v("9.5.0"), &observed_embedding()));
    }

    #[test]
    fn changed_deployment_is_an_immutable_difference() {
        let mut want = desired(TaskType::TextEmbedding);
        want.service_settings
            .insert("deployment_id".into(), json!("other"));
        let obs = observed_embedding();
        let d = compare(&want, &obs, &v("9.5.0"));
        assert_eq!(
            d,
            vec![Difference {
                path: "service_settings.deployment_id".into(),
                desired: Some(json!("other")),
                observed: Some(json!("my-embed")),
            }]
        );
        assert!(!d[0].updatable_on(&v("9.5.0"), &obs));
        assert!(!d.iter().all(|d| d.updatable_on(&v("9.5.0"), &obs)));
    }

    #[test]
    fn out_of_band_extra_setting_is_a_difference() {
        let mut obs = observed_embedding();
        obs.service_settings
            .insert("max_input_tokens".into(), json!(512));
        let d = compare(&desired(TaskType::TextEmbedding), &obs, &v("9.1.0"));
        assert_eq!(paths(&d), ["service_settings.max_input_tokens"]);
        assert_eq!(d[0].desired, None);
    }

    #[test]
    fn rate_limit_numeric_and_default_handling() {
        let mut want = desired(TaskType::TextEmbedding);
        want.service_settings
            .insert("rate_limit".into(), json!({"requests_per_minute": 1440.0}));
        assert!(compare(&want, &observed_embedding(), &v("9.1.0")).is_empty());
        want.service_settings.insert("rate_limit".into(), json!({}));
        assert!(compare(&want, &observed_embedding(), &v("9.1.0")).is_empty());
        want.service_settings
            .insert("rate_limit".into(), json!({"requests_per_minute": 600}));
        let obs = observed_embedding();
        let d = compare(&want, &obs, &v("9.4.0"));
        assert_eq!(paths(&d), ["service_settings.rate_limit"]);
        assert!(!d[0].updatable_on(&v("9.4.0"), &obs));
        assert!(d[0].updatable_on(&v("9.5.0"), &obs));
        // 8.14 hides rate_limit in GET.
        let mut old = obs.clone();
        old.service_settings.remove("rate_limit");
        old.chunking_settings = None;
        assert!(compare(&want, &old, &v("8.14.3")).is_empty());
        // From 8.15 a missing rate_limit means the default.
        let d = compare(&desired(TaskType::TextEmbedding), &old, &v("8.15.0"));
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn numeric_equality() {
        assert!(json_eq(&json!(1440), &json!(1440.0)));
        assert!(json_eq(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!json_eq(&json!(1440), &json!(1441)));
        assert!(!json_eq(&json!(-1), &json!(u64::MAX)));
        assert!(json_eq(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!json_eq(&json!("1"), &json!(1)));
    }

    #[test]
    fn task_settings_empty_equals_absent() {
        let mut want = desired(TaskType::Completion);
        let mut obs = observed_completion("completion");
        want.task_settings.insert("headers".into(), json!({}));
        want.task_settings.insert("user".into(), Value::Null);
        assert!(compare(&want, &obs, &v("9.4.0")).is_empty());
        obs.task_settings.insert("user".into(), json!("alice"));
        let d = compare(&want, &obs, &v("9.4.0"));
        assert_eq!(paths(&d), ["task_settings.user"]);
        assert_eq!(d[0].desired, None);
        assert!(d[0].updatable_on(&v("9.4.0"), &obs));
        assert!(
            !d[0].updatable_on(&v("9.3.0"), &obs),
            "merge cannot remove a key"
        );
        want.task_settings.insert("user".into(), json!("bob"));
        let d = compare(&want, &obs, &v("9.0.0"));
        assert_eq!(d[0].desired, Some(json!("bob")));
        assert!(d[0].updatable_on(&v("8.17.0"), &obs));
        assert!(!d[0].updatable_on(&v("8.16.0"), &obs));
    }

    #[test]
    fn chunking_unset_tolerates_default_and_legacy() {
        let want = desired(TaskType::TextEmbedding);
        let mut obs = observed_embedding();
        obs.chunking_settings = Some(legacy_chunking());
        assert!(
            compare(&want, &obs, &v("9.3.0")).is_empty(),
            "bug #139574 / pre-8.16"
        );
        obs.chunking_settings = Some(m(
            json!({"strategy": "word", "max_chunk_size": 250.0, "overlap": 100}),
        ));
        assert!(compare(&want, &obs, &v("9.3.0")).is_empty());
        obs.chunking_settings = None;
        assert!(
            compare(&want, &obs, &v("8.15.0")).is_empty(),
            "pre-8.16 GET has none"
        );
        obs.chunking_settings = Some(m(
            json!({"strategy": "word", "max_chunk_size": 100, "overlap": 10}),
        ));
        let d = compare(&want, &obs, &v("9.5.0"));
        assert_eq!(paths(&d), ["chunking_settings"]);
        assert_eq!(d[0].desired, Some(Value::Object(default_chunking())));
        assert!(d[0].updatable_on(&v("9.5.0"), &obs));
        assert!(!d[0].updatable_on(&v("9.4.0"), &obs));
    }

    #[test]
    fn chunking_explicit() {
        let mut want = desired(TaskType::TextEmbedding);
        let obs = observed_embedding();
        want.chunking_settings = Some(m(json!({"strategy": "sentence", "max_chunk_size": 250})));
        assert!(
            compare(&want, &obs, &v("9.1.0")).is_empty(),
            "sentence_overlap defaults to 1"
        );
        want.chunking_settings = Some(m(json!({})));
        assert!(compare(&want, &obs, &v("9.1.0")).is_empty(), "{{}} = unset");
        want.chunking_settings = Some(m(
            json!({"strategy": "word", "max_chunk_size": 250, "overlap": 100}),
        ));
        let d = compare(&want, &obs, &v("9.1.0"));
        assert_eq!(paths(&d), ["chunking_settings"]);
        want.chunking_settings = Some(m(
            json!({"strategy": "recursive", "max_chunk_size": 200, "separator_group": "markdown"}),
        ));
        let mut obs2 = obs.clone();
        obs2.chunking_settings = Some(m(
            json!({"strategy": "recursive", "max_chunk_size": 200, "separators": ["\n# ", "\n## "]}),
        ));
        assert!(compare(&want, &obs2, &v("9.1.0")).is_empty());
    }

    #[test]
    fn identity_mismatch_short_circuits() {
        let want = desired(TaskType::TextEmbedding);
        let mut obs = observed_completion("completion");
        assert!(!identity_matches(&want, &obs));
        let d = compare(&want, &obs, &v("9.3.0"));
        assert_eq!(paths(&d), ["task_type"]);
        assert!(!d[0].updatable_on(&v("9.5.0"), &obs));
        obs.task_type = "text_embedding".into();
        obs.service = "openai".into();
        let d = compare(&want, &obs, &v("9.3.0"));
        assert_eq!(paths(&d), ["service"]);
        assert!(identity_matches(&want, &observed_embedding()));
    }

    #[test]
    fn secrets_never_compared() {
        let mut want = desired(TaskType::TextEmbedding);
        want.service_settings.insert("api_key".into(), json!("x"));
        assert!(compare(&want, &observed_embedding(), &v("9.1.0")).is_empty());
    }

    #[test]
    fn unknown_service_is_compared_on_user_set_keys_only() {
        let mut want = desired(TaskType::Rerank);
        want.service = "some-future-service".into();
        want.service_settings = m(json!({"model_id": "r1"}));
        want.task_settings = m(json!({"top_n": 3}));
        let mut obs = observed_embedding();
        obs.task_type = "rerank".into();
        obs.service = "some-future-service".into();
        obs.chunking_settings = None;
        obs.service_settings =
            m(json!({"model_id": "r1", "rate_limit": {"requests_per_minute": 7}}));
        obs.task_settings = m(json!({"top_n": 3, "return_documents": false}));
        assert!(compare(&want, &obs, &v("9.4.0")).is_empty());
        obs.task_settings = m(json!({"top_n": 4}));
        assert_eq!(
            paths(&compare(&want, &obs, &v("9.4.0"))),
            ["task_settings.top_n"]
        );
    }

    #[test]
    fn task_settings_the_table_says_elasticsearch_fills_in_are_not_drift() {
        let mut want = desired(TaskType::Rerank);
        want.service = "elasticsearch".into();
        want.service_settings = m(json!({"model_id": ".rerank-v1", "num_threads": 1}));
        let mut obs = observed_embedding();
        obs.task_type = "rerank".into();
        obs.service = "elasticsearch".into();
        obs.chunking_settings = None;
        obs.service_settings = want.service_settings.clone();
        obs.task_settings = m(json!({"return_documents": true}));
        assert!(compare(&want, &obs, &v("9.4.0")).is_empty());
        // What the user sets is compared, default or not.
        want.task_settings = m(json!({"return_documents": false}));
        assert_eq!(
            paths(&compare(&want, &obs, &v("9.4.0"))),
            ["task_settings.return_documents"]
        );
    }

    #[test]
    fn openai_defaults_are_not_drift() {
        let mut want = desired(TaskType::TextEmbedding);
        want.service = "openai".into();
        want.service_settings = m(json!({"model_id": "text-embedding-3-small"}));
        let mut obs = observed_embedding();
        obs.service = "openai".into();
        obs.service_settings = m(json!({"model_id": "text-embedding-3-small",
            "rate_limit": {"requests_per_minute": 3000}, "dimensions": 1536, "similarity": "dot_product"}));
        assert!(compare(&want, &obs, &v("9.1.0")).is_empty());
        want.service_settings
            .insert("model_id".into(), json!("other"));
        assert_eq!(
            paths(&compare(&want, &obs, &v("9.1.0"))),
            ["service_settings.model_id"]
        );
    }

    #[test]
    fn oauth2_fields_updatable_only_with_oauth2_endpoint() {
        let mut want = desired(TaskType::Completion);
        want.service_settings
            .insert("client_id".into(), json!("new"));
        let mut obs = observed_completion("completion");
        let d = compare(&want, &obs, &v("9.5.0"));
        assert_eq!(paths(&d), ["service_settings.client_id"]);
        assert!(!d[0].updatable_on(&v("9.5.0"), &obs));
        obs.service_settings
            .insert("client_id".into(), json!("old"));
        let d = compare(&want, &obs, &v("9.5.0"));
        assert!(d[0].updatable_on(&v("9.5.0"), &obs));
    }
}
