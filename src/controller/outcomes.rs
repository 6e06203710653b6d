//! Turning typed errors into condition outcomes: one place decides reason, message and whether
//! a failure is retried with backoff (transient) or waits for a change (permanent).

use crate::controller::conditions::Failure;
use crate::elasticsearch::{ErrorClass, EsError};
use crate::secrets::SecretError;

pub fn from_secret(error: &SecretError) -> Failure {
    Failure::new(error.reason(), error.to_string())
}

/// Elasticsearch failures carry Elasticsearch's own reason in the message (never a request
/// body: the error type does not hold one).
pub fn from_es(error: &EsError) -> Failure {
    let class = error.class();
    let message = explain(error, class);
    if class.rechecks_periodically() {
        Failure::rechecked(error.reason(), message)
    } else {
        Failure::new(error.reason(), message)
    }
}

/// Elasticsearch's own text, preceded by what it means for this object where the text alone
/// does not say what to do.
fn explain(error: &EsError, class: ErrorClass) -> String {
    let es = error.message();
    match class {
        ErrorClass::ProviderUnknownHost => {
            let host = error
                .api()
                .and_then(|a| a.unknown_host())
                .unwrap_or_else(|| "of the provider".to_owned());
            format!(
                "Elasticsearch cannot resolve the host {host}: check spec.azureOpenAI.resourceName, \
                 or the url in spec.service.settings. Tried again at every periodic re-check. {es}"
            )
        }
        ErrorClass::InferenceIdReferenced => format!(
            "Elasticsearch refuses to create the endpoint while the id is still in use: {es} \
             Remove or repoint those pipelines and index mappings (or empty the indices), or set \
             a new spec.inferenceId. The operator tries again at every periodic re-check."
        ),
        _ => es,
    }
}
