//! Create and `_update` for every service but `azureopenai`: the table services
//! ([`super::services`]), services registered by tests, and the in-cluster `elasticsearch`
//! service ([`super::ml`]). The shape follows TransportPutInferenceModelAction (parse → checks →
//! validation call → store → start) and TransportUpdateInferenceModelAction
//! (docs/reference/elasticsearch-inference-api.md#create-api,
//! docs/reference/elasticsearch-inference-api.md#update-api).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::api::{refuse_referenced_id_on_create, Resp, Shared, State};
use super::errors::EsError;
use super::ml::{self, ELASTICSEARCH, ELSER};
use super::model::{Stored, TaskType};
use super::providers::{failed_validation, host_of, ProviderCall, ProviderOutcome};
use super::services::{self, ServiceSpec};
use super::version::EsVersion;

/// The spec of `service` on version `v`: a registered one first, then the table.
pub(crate) fn spec_of(st: &State, v: EsVersion, service: &str) -> Option<ServiceSpec> {
    st.registered
        .iter()
        .find(|s| s.name == service)
        .cloned()
        .or_else(|| services::builtin(v).into_iter().find(|s| s.name == service))
}

/// `Unknown service [x]` (TransportPutInferenceModelAction, `serviceRegistry.getService` empty).
fn unknown_service(service: &str) -> EsError {
    EsError::bad_request(format!("Unknown service [{service}]"))
}

fn already_exists(id: &str) -> EsError {
    EsError::new(
        400,
        "resource_already_exists_exception",
        format!("Inference endpoint [{id}] already exists"),
    )
}

pub(crate) async fn create(
    sh: &Arc<Shared>,
    v: EsVersion,
    tt: TaskType,
    id: &str,
    service: &str,
    mut config: Map<String, Value>,
    timeout: (Duration, String),
) -> Result<Resp, EsError> {
    let registered = sh.lock().registered.iter().any(|s| s.name == service);
    if (service == ELASTICSEARCH || service == ELSER) && !registered {
        let parsed = ml::parse_create(service, v, tt, &mut config)?;
        refuse_referenced_id_on_create(sh, v, id)?;
        return create_internal(sh, v, tt, id, parsed, timeout).await;
    }
    let spec = spec_of(&sh.lock(), v, service).ok_or_else(|| unknown_service(service))?;
    let mut parsed = services::parse_create(&spec, v, tt, &mut config)?;
    refuse_referenced_id_on_create(sh, v, id)?;
    let validate = spec.validates
        && !sh.lock().skip_validation
        && (tt == TaskType::TextEmbedding || v.validates_completion());
    if validate {
        let requested = parsed
            .dims_set_by_user
            .then(|| {
                parsed
                    .service_settings
                    .get("dimensions")
                    .and_then(Value::as_i64)
            })
            .flatten();
        let stored_like = (tt, &parsed.service_settings, &parsed.secrets);
        let dims = call_provider(sh, &spec, id, stored_like, requested, &timeout).await?;
        if let (Some(d), None) = (dims, requested) {
            parsed
                .service_settings
                .insert("dimensions".into(), json!(d));
            if let Some(sim) = &spec.default_similarity {
                parsed
                    .service_settings
                    .entry("similarity")
                    .or_insert(json!(sim));
            }
        }
    }
    let stored = Stored {
        id: id.to_string(),
        task_type: tt,
        service: spec.name.clone(),
        service_settings: parsed.service_settings,
        task_settings: parsed.task_settings,
        chunking: parsed.chunking,
        secret: None,
        secrets: parsed.secrets,
        dims_set_by_user: parsed.dims_set_by_user,
        oauth2: false,
    };
    store(sh, v, stored)
}

fn store(sh: &Shared, v: EsVersion, stored: Stored) -> Result<Resp, EsError> {
    let mut st = sh.lock();
    if st.lookup(&stored.id).is_some() {
        return Err(already_exists(&stored.id));
    }
    let body = stored.render(v);
    st.endpoints.insert(stored.id.clone(), stored);
    Ok(Resp::ok(body))
}

/// PUT of an `elasticsearch` endpoint once parsed: store, start the deployment, wait for it up
/// to `timeout` (see [`super::ml`]).
async fn create_internal(
    sh: &Arc<Shared>,
    v: EsVersion,
    tt: TaskType,
    id: &str,
    parsed: ml::ParsedInternal,
    timeout: (Duration, String),
) -> Result<Resp, EsError> {
    let uses_existing = parsed.service_settings.contains_key("deployment_id");
    let stored = Stored {
        id: id.to_string(),
        task_type: tt,
        service: ELASTICSEARCH.into(),
        service_settings: parsed.service_settings,
        task_settings: parsed.task_settings,
        chunking: parsed.chunking,
        secret: None,
        secrets: Map::new(),
        dims_set_by_user: false,
        oauth2: false,
    };
    let ss = stored.service_settings.clone();
    let resp = store(sh, v, stored)?;
    if uses_existing || sh.lock().skip_validation {
        // `usesExistingDeployment` / `skip_validate_and_start`: nothing is started.
        return Ok(resp);
    }
    let (wait, times_out) = {
        let mut st = sh.lock();
        let d = ml::deployment(&ss, st.model_deploy_time);
        let plan = ml::wait_plan(&d, timeout.0);
        st.deployments.insert(id.to_string(), d);
        plan
    };
    tokio::time::sleep(wait).await;
    if times_out {
        return Err(ml::deploy_timeout(v, id, &timeout.1));
    }
    Ok(resp)
}

/// `GET _ml/trained_models/<id>/_stats`: the deployments whose deployment id or model id is
/// `id` (the stats API takes either). An id with none answers `count: 0` (inferred: the real
/// API also lists undeployed models it knows).
pub(crate) fn model_stats(st: &State, id: &str) -> Value {
    let stats: Vec<Value> = st
        .deployments
        .iter()
        .filter(|(dep, d)| dep.as_str() == id || d.model_id == id)
        .map(|(dep, d)| {
            json!({
                "model_id": d.model_id,
                "deployment_stats": d.stats(dep),
            })
        })
        .collect();
    json!({"count": stats.len(), "trained_model_stats": stats})
}

/// `_update` of a non-Azure endpoint. `body` holds what is left after `task_type`.
pub(crate) async fn update(
    sh: &Arc<Shared>,
    v: EsVersion,
    existing: Stored,
    mut body: Map<String, Value>,
    timeout: (Duration, String),
) -> Result<Resp, EsError> {
    let obj =
        |k: &str, b: &mut Map<String, Value>| -> Result<Option<Map<String, Value>>, EsError> {
            match b.remove(k) {
                None | Some(Value::Null) => Ok(None),
                Some(o) => super::extract::as_object(Some(o), k).map(Some),
            }
        };
    let ss = obj("service_settings", &mut body)?;
    let ts = obj("task_settings", &mut body)?;
    let mut next = existing.clone();
    if existing.service == ELASTICSEARCH && spec_of(&sh.lock(), v, ELASTICSEARCH).is_none() {
        if let Some(ss) = ss {
            next.service_settings = ml::parse_update(v, &existing.service_settings, ss)?;
            if let Some(d) = sh.lock().deployments.get_mut(&existing.id) {
                // UpdateTrainedModelDeploymentAction changes the running deployment.
                d.num_allocations = next
                    .service_settings
                    .get("num_allocations")
                    .and_then(Value::as_i64);
                d.adaptive = next.service_settings.get("adaptive_allocations").cloned();
            }
        }
        return save_update(sh, v, next, body);
    }
    let spec = spec_of(&sh.lock(), v, &existing.service)
        .ok_or_else(|| unknown_service(&existing.service))?;
    if let Some(mut ss) = ss {
        // combineExistingModelWithNewSettings: `newSecretSettings(service_settings)` whenever
        // the request has `service_settings` (docs/reference/elasticsearch-services.md#update-rotation).
        next.secrets = services::rotate_secrets(&spec, v, &existing.secrets, &mut ss)?;
        if v.v95() {
            // 9.5 (#149628, release inferred): `rate_limit` is updatable; other non-secret keys
            // are ignored (inferred, as for Azure).
            let mut errs = Vec::new();
            if let Some(rpm) = super::extract::parse_rate_limit(v, &spec.name, &mut ss, &mut errs)?
            {
                next.service_settings
                    .insert("rate_limit".into(), json!({ "requests_per_minute": rpm }));
            }
            if !errs.is_empty() {
                return Err(EsError::validation(&errs));
            }
        }
    }
    if let Some(ts) = ts {
        // Provided task-settings keys replace the stored ones (inferred, as for Azure).
        for (k, val) in ts {
            if val.is_null() {
                next.task_settings.remove(&k);
            } else {
                next.task_settings.insert(k, val);
            }
        }
    }
    if v.update_skips_unchanged() && next == existing {
        return Ok(Resp::ok(existing.render(v)));
    }
    if v.v94() && spec.validates && !sh.lock().skip_validation {
        let stored_like = (next.task_type, &next.service_settings, &next.secrets);
        call_provider(sh, &spec, &next.id, stored_like, None, &timeout).await?;
    }
    save_update(sh, v, next, body)
}

fn save_update(
    sh: &Shared,
    v: EsVersion,
    next: Stored,
    mut body: Map<String, Value>,
) -> Result<Resp, EsError> {
    if v.v95() {
        if let Some(c) = body.remove("chunking_settings") {
            let mut next = next;
            if !services::takes_chunking(next.task_type, v) {
                let mut m = Map::new();
                m.insert("chunking_settings".into(), c);
                return Err(super::extract::unknown_settings_for(v, &next.service, &m));
            }
            next.chunking = Some(super::azure::parse_chunking(v, Some(c))?);
            return save(sh, v, next);
        }
    }
    save(sh, v, next)
}

fn save(sh: &Shared, v: EsVersion, next: Stored) -> Result<Resp, EsError> {
    let mut st = sh.lock();
    let Some(current) = st.endpoints.get_mut(&next.id) else {
        return Err(EsError::not_found(&next.id));
    };
    *current = next;
    Ok(Resp::ok(current.render(v)))
}

/// ES's validation call to the service's fake provider, bounded by `timeout`. Returns the
/// embedding length for `text_embedding`. `requested` = user-set `dimensions`, which the
/// provider honours.
async fn call_provider(
    sh: &Shared,
    spec: &ServiceSpec,
    id: &str,
    (tt, ss, secrets): (TaskType, &Map<String, Value>, &Map<String, Value>),
    requested: Option<i64>,
    timeout: &(Duration, String),
) -> Result<Option<i64>, EsError> {
    let model = services::model_of(ss);
    let configured = ss.get("url").and_then(Value::as_str);
    let call = ProviderCall {
        service: spec.name.clone(),
        inference_id: id.to_string(),
        task_type: tt.as_str().to_string(),
        url: configured.map_or_else(|| format!("{}/{model}", spec.name), str::to_string),
        target: configured.map(host_of).unwrap_or_default(),
        model,
        credential: services::credential_of(&spec.secrets, secrets),
        secrets: secrets.clone(),
        settings: ss.clone(),
        task_settings: Map::new(),
        dimensions: requested,
        outcome: ProviderOutcome::Accept,
    };
    let url = call.url.clone();
    let fail = |o| provider_failure(o, id, &url);
    let dims = sh.providers.validate(call, timeout, fail).await?;
    Ok((tt == TaskType::TextEmbedding).then_some(dims))
}

/// The wrapped 400 for a failed validation call, as for Azure
/// (docs/reference/elasticsearch-inference-api.md#provider-errors), with the prefixes of
/// `BaseResponseHandler` (x-pack/plugin/inference/.../external/http/retry/BaseResponseHandler.java);
/// (inferred) the provider's own error text is a fixed sentence naming the status, and the
/// `Resource not found at [..]` target is the configured `url` or `<service>/<model>`.
fn provider_failure(outcome: ProviderOutcome, id: &str, url: &str) -> EsError {
    let status = outcome.status().unwrap_or_default();
    let text = format!("fake provider answered {status}");
    failed_validation(outcome, id, url, "", &text)
}
