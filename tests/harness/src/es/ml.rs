//! The in-cluster `elasticsearch` service (and its deprecated alias `elser`): ELSER, E5 and the
//! Elastic reranker deployed on ML nodes, with a controllable deploy time.
//!
//! Sources (SVC = x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/services):
//! * settings: SVC/elasticsearch/ElasticsearchInternalServiceSettings.java — `num_threads`
//!   required positive, `num_allocations` optional positive, `adaptive_allocations` optional,
//!   one of the two required (`[service_settings] does not contain one of the required settings
//!   [num_allocations, adaptive_allocations]`), `deployment_id` optional; no secrets;
//! * the model: SVC/elasticsearch/ElasticsearchInternalService.java `parseRequestConfig` —
//!   without `model_id` (service `elasticsearch`) `Error parsing service settings, model_id must
//!   be provided`; E5 ids, ELSER ids and `.rerank-v1` are built in; another id must be a model
//!   loaded with eland (`Error parsing request config, model id does not match any models
//!   available on this platform. Was [..]. You may need to load it into the cluster using
//!   eland.`); the deprecated `elser` service defaults `model_id` and is stored as `elasticsearch`;
//! * PUT: TransportPutInferenceModelAction stores the endpoint first (`modelRegistry.storeModel`)
//!   and then calls `service.start(model, timeout, ..)`, which sends a start-deployment request
//!   waiting for state `started` up to the PUT `timeout`
//!   (SVC/elasticsearch/BaseElasticsearchInternalService.java `start`,
//!   SVC/elasticsearch/ElasticsearchInternalModel.java `getStartTrainedModelDeploymentActionRequest`);
//!   the deployment id is the inference id (`mlNodeDeploymentId`). When the wait times out the
//!   PUT answers 408 ([`deploy_timeout`]) and the endpoint stays stored, so GET finds it
//!   (elastic/kibana's index_management inference-endpoint API test expects that 408 and then
//!   finds the endpoint) (inferred: the error `type` `status_exception`). Not emulated: releases
//!   that deploy inside validation, before the store (some 8.x; text_embedding on 9.5,
//!   elastic/elasticsearch#153886), where a 408 leaves nothing stored;
//! * the deployment state: `GET _ml/trained_models/<id>/_stats`, `deployment_stats.state` and
//!   `allocation_status` (`fully_allocated` once `allocation_count` reaches
//!   `target_allocation_count`) as the `put_elasticsearch` documentation tells users to check
//!   (elastic/elasticsearch-specification `specification/inference/put_elasticsearch/PutElasticsearchRequest.ts`,
//!   `specification/ml/_types/TrainedModel.ts` `TrainedModelDeploymentStats`).

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::errors::EsError;
use super::extract::{opt_positive, opt_string, unknown_settings_for};
use super::model::TaskType;
use super::services::{take_chunking, unsupported_task};
use super::version::EsVersion;

pub(crate) const ELASTICSEARCH: &str = "elasticsearch";
pub(crate) const ELSER: &str = "elser";

/// Built-in models by task type (SVC/elasticsearch/ElserModels.java,
/// ElasticsearchInternalService.java `MULTILINGUAL_E5_SMALL_VALID_IDS`, `RERANKER_ID`).
const ELSER_MODELS: [&str; 4] = [
    ".elser_model_1",
    ".elser_model_2",
    ".elser_model_2_linux-x86_64",
    ".elser_model_2_linux-x86_64_eis",
];
const E5_MODELS: [&str; 2] = [
    ".multilingual-e5-small",
    ".multilingual-e5-small_linux-x86_64",
];
const RERANKER: &str = ".rerank-v1";

fn model_task(model: &str) -> Option<TaskType> {
    if ELSER_MODELS.contains(&model) {
        Some(TaskType::SparseEmbedding)
    } else if E5_MODELS.contains(&model) {
        Some(TaskType::TextEmbedding)
    } else if model == RERANKER {
        Some(TaskType::Rerank)
    } else {
        None
    }
}

/// One model deployment on the emulated ML nodes.
#[derive(Clone, Debug)]
pub(crate) struct Deployment {
    pub(crate) model_id: String,
    pub(crate) started: Instant,
    pub(crate) deploy_time: Duration,
    pub(crate) threads: i64,
    pub(crate) num_allocations: Option<i64>,
    pub(crate) adaptive: Option<Value>,
}

impl Deployment {
    pub(crate) fn ready(&self) -> bool {
        self.started.elapsed() >= self.deploy_time
    }

    fn remaining(&self) -> Duration {
        self.deploy_time.saturating_sub(self.started.elapsed())
    }

    fn target(&self) -> i64 {
        // (inferred) adaptive allocations start at their minimum, at least one.
        self.num_allocations.unwrap_or_else(|| {
            self.adaptive
                .as_ref()
                .and_then(|a| a.get("min_number_of_allocations"))
                .and_then(Value::as_i64)
                .unwrap_or(1)
                .max(1)
        })
    }

    /// One entry of `trained_model_stats[].deployment_stats`.
    pub(crate) fn stats(&self, deployment_id: &str) -> Value {
        let ready = self.ready();
        let target = self.target();
        let mut d = json!({
            "deployment_id": deployment_id,
            "model_id": self.model_id,
            "threads_per_allocation": self.threads,
            "number_of_allocations": target,
            "state": if ready { "started" } else { "starting" },
            "allocation_status": {
                "allocation_count": if ready { target } else { 0 },
                "target_allocation_count": target,
                "state": if ready { "fully_allocated" } else { "starting" },
            },
            "nodes": [],
        });
        if let Some(a) = &self.adaptive {
            d["adaptive_allocations"] = a.clone();
        }
        d
    }
}

/// A parsed `elasticsearch` create.
pub(crate) struct ParsedInternal {
    pub(crate) service_settings: Map<String, Value>,
    pub(crate) task_settings: Map<String, Value>,
    pub(crate) chunking: Option<Value>,
}

fn parse_adaptive(v: Value, errs: &mut Vec<String>) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => Some(Value::Object(m)),
        other => {
            errs.push(super::extract::type_err(
                "adaptive_allocations",
                &other,
                "Map",
            ));
            None
        }
    }
}

/// `num_allocations` / `adaptive_allocations` / `num_threads` / `model_id` / `deployment_id`.
fn parse_threading(
    ss: &mut Map<String, Value>,
    errs: &mut Vec<String>,
    out: &mut Map<String, Value>,
) {
    let scope = "service_settings";
    let n = opt_positive(ss, "num_allocations", scope, errs, false);
    if matches!(ss.get("num_threads"), None | Some(Value::Null)) {
        ss.remove("num_threads");
        errs.push(super::extract::missing(scope, "num_threads"));
    } else if let Some(t) = opt_positive(ss, "num_threads", scope, errs, false) {
        out.insert("num_threads".into(), json!(t));
    }
    let adaptive = ss
        .remove("adaptive_allocations")
        .and_then(|a| parse_adaptive(a, errs));
    if n.is_none() && adaptive.is_none() {
        errs.push(format!("[{scope}] does not contain one of the required settings [num_allocations, adaptive_allocations]"));
    }
    if let Some(n) = n {
        out.insert("num_allocations".into(), json!(n));
    }
    if let Some(a) = adaptive {
        out.insert("adaptive_allocations".into(), a);
    }
}

/// `ElasticsearchInternalService.parseRequestConfig` for the built-in models.
pub(crate) fn parse_create(
    service: &str,
    v: EsVersion,
    tt: TaskType,
    config: &mut Map<String, Value>,
) -> Result<ParsedInternal, EsError> {
    let (mut ss, ts) = super::extract::take_settings_maps(config)?;
    let supported = match tt {
        TaskType::TextEmbedding | TaskType::SparseEmbedding => true,
        TaskType::Rerank => v >= EsVersion::new(8, 15, 0),
        _ => false,
    };
    if !supported || (service == ELSER && tt != TaskType::SparseEmbedding) {
        return Err(unsupported_task(service, tt));
    }
    let chunking = take_chunking(tt, v, config)?;
    if !config.is_empty() {
        return Err(unknown_settings_for(v, ELASTICSEARCH, config));
    }
    let mut errs = Vec::new();
    let model = opt_string(&mut ss, "model_id", "service_settings", &mut errs);
    let model = match (model, service) {
        (Some(m), _) => m,
        (None, ELSER) => ".elser_model_2".to_string(),
        (None, _) if errs.is_empty() => {
            return Err(EsError::illegal_argument(
                "Error parsing service settings, model_id must be provided",
            ))
        }
        (None, _) => return Err(EsError::validation(&errs)),
    };
    let Some(model_tt) = model_task(&model) else {
        return Err(EsError::illegal_argument(format!("Error parsing request config, model id does not match any models available on this platform. Was [{model}]. You may need to load it into the cluster using eland.")));
    };
    if model_tt != tt {
        // (inferred) the built-in model classes refuse other task types as unsupported.
        return Err(unsupported_task(ELASTICSEARCH, tt));
    }
    let mut out = Map::new();
    parse_threading(&mut ss, &mut errs, &mut out);
    out.insert("model_id".into(), json!(model));
    if let Some(d) = opt_string(&mut ss, "deployment_id", "service_settings", &mut errs) {
        out.insert("deployment_id".into(), json!(d));
    }
    if !errs.is_empty() {
        return Err(EsError::validation(&errs));
    }
    if !ss.is_empty() {
        return Err(unknown_settings_for(v, ELASTICSEARCH, &ss));
    }
    if tt == TaskType::TextEmbedding {
        // MultilingualE5SmallInternalServiceSettings: 384 dimensions, cosine (inferred: element
        // type float is not emulated).
        out.insert("dimensions".into(), json!(384));
        out.insert("similarity".into(), json!("cosine"));
    }
    let mut task_settings = ts;
    if tt == TaskType::Rerank {
        // RerankTaskSettings: `return_documents` (inferred: defaulted to true when absent).
        task_settings
            .entry("return_documents")
            .or_insert(json!(true));
    } else if !task_settings.is_empty() {
        return Err(unknown_settings_for(v, ELASTICSEARCH, &task_settings));
    }
    Ok(ParsedInternal {
        service_settings: out,
        task_settings,
        chunking,
    })
}

/// `_update` of an `elasticsearch` endpoint: `num_allocations` or `adaptive_allocations`
/// (ElasticsearchInternalServiceSettings `updateServiceSettings`: neither →
/// `[service_settings] does not contain one of the required settings [num_allocations,
/// adaptive_allocations]`; its tests, ElasticsearchInternalServiceSettingsTests). Other keys are
/// refused as unknown (inferred).
pub(crate) fn parse_update(
    v: EsVersion,
    stored: &Map<String, Value>,
    mut ss: Map<String, Value>,
) -> Result<Map<String, Value>, EsError> {
    let mut errs = Vec::new();
    let n = opt_positive(
        &mut ss,
        "num_allocations",
        "service_settings",
        &mut errs,
        false,
    );
    let adaptive = ss
        .remove("adaptive_allocations")
        .and_then(|a| parse_adaptive(a, &mut errs));
    if errs.is_empty() && n.is_none() && adaptive.is_none() {
        errs.push("[service_settings] does not contain one of the required settings [num_allocations, adaptive_allocations]".into());
    }
    if !errs.is_empty() {
        return Err(EsError::validation(&errs));
    }
    if !ss.is_empty() {
        return Err(unknown_settings_for(v, ELASTICSEARCH, &ss));
    }
    let mut out = stored.clone();
    // (inferred) one replaces the other: a fixed count ends adaptive scaling and vice versa.
    if let Some(n) = n {
        out.insert("num_allocations".into(), json!(n));
        out.remove("adaptive_allocations");
    }
    if let Some(a) = adaptive {
        out.insert("adaptive_allocations".into(), a);
        out.remove("num_allocations");
    }
    Ok(out)
}

/// A new deployment for these settings.
pub(crate) fn deployment(ss: &Map<String, Value>, deploy_time: Duration) -> Deployment {
    Deployment {
        model_id: ss
            .get("model_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        started: Instant::now(),
        deploy_time,
        threads: ss.get("num_threads").and_then(Value::as_i64).unwrap_or(1),
        num_allocations: ss.get("num_allocations").and_then(Value::as_i64),
        adaptive: ss.get("adaptive_allocations").cloned(),
    }
}

/// How long the PUT waits and whether it then times out.
pub(crate) fn wait_plan(d: &Deployment, timeout: Duration) -> (Duration, bool) {
    let rem = d.remaining();
    if rem > timeout {
        (timeout, true)
    } else {
        (rem, false)
    }
}

/// The 408 of a PUT whose deployment did not start within `timeout`. The wording of
/// `ModelDeploymentTimeoutException` in TransportStartTrainedModelDeploymentAction names the
/// deployment; the elastic/kibana test quotes the older sentence without it (inferred: the newer
/// wording from 9.0).
pub(crate) fn deploy_timeout(v: EsVersion, id: &str, timeout: &str) -> EsError {
    let reason = if v.major >= 9 {
        format!("Timed out after [{timeout}] waiting for trained model deployment [{id}] to start. Use the trained model stats API to track the state of the deployment and try again once it has started.")
    } else {
        format!("Timed out after [{timeout}] waiting for model deployment to start. Use the trained model stats API to track the state of the deployment.")
    };
    EsError::status(408, reason)
}
