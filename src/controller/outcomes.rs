//! Turning typed errors into condition outcomes: one place decides reason, message and whether
//! a failure is retried with backoff (transient) or waits for a change (permanent).

use crate::controller::conditions::Outcome;
use crate::elasticsearch::EsError;
use crate::secrets::SecretError;

pub fn from_secret(error: &SecretError) -> Outcome {
    let message = error.to_string();
    if error.is_transient() {
        Outcome::transient(error.reason(), message)
    } else {
        Outcome::permanent(error.reason(), message)
    }
}

/// Elasticsearch failures carry Elasticsearch's own reason in the message (never a request
/// body: the error type does not hold one).
pub fn from_es(error: &EsError) -> Outcome {
    let message = error.message();
    if error.is_transient() {
        Outcome::transient(error.reason(), message)
    } else {
        Outcome::permanent(error.reason(), message)
    }
}
