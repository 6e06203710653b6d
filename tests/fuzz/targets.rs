//! The fuzz targets' bodies, shared by the `cargo fuzz` binaries (`fuzz_targets/`, nightly) and
//! the stable replay test (`tests/fuzz_replay.rs`), so the committed corpus exercises exactly
//! what the fuzzer ran. Each body panics only when an invariant of the operator breaks.

use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, LOCATION};
use inference_operator::controller::decode::Decoded;
use inference_operator::controller::desired::desired;
use inference_operator::controller::plan::describe;
use inference_operator::elasticsearch::client::offline;
use inference_operator::elasticsearch::error::MAX_MESSAGE_BYTES;
use inference_operator::elasticsearch::{
    compare, update_body, ApiError, Endpoint, EndpointConfig, EsError, EsVersion,
};
use serde_json::Value;
use url::Url;

/// Releases the comparison is fuzzed against (one input byte picks one).
const VERSIONS: &[&str] = &[
    "8.15.0", "8.16.0", "8.17.0", "8.19.0", "9.0.0", "9.1.0", "9.4.0", "9.5.0",
];

/// One answer from whatever listens at the URL: a status (2 bytes), a head chosen by one byte
/// (product header, content type, a `Location`), and the body. Every route's reading of it must
/// end in a value or an error whose message is bounded and free of control characters.
pub fn es_answer(data: &[u8]) {
    let [s0, s1, flags, body @ ..] = data else {
        return;
    };
    let status = 100 + u16::from_le_bytes([*s0, *s1]) % 500;
    let headers = head(*flags);
    let url = Url::parse("http://es.example:9200/").expect("static URL");
    let body = body.to_vec();
    let results = [
        offline::cluster_info(&url, status, &headers, body.clone()).map(drop),
        offline::get_endpoint(&url, status, &headers, body.clone(), "e1").map(drop),
        offline::put_endpoint(&url, status, &headers, body.clone()).map(drop),
        offline::delete_endpoint(&url, status, &headers, body.clone()).map(drop),
        offline::deployment_stats(&url, status, &headers, body.clone(), "e1").map(drop),
    ];
    for error in results.iter().filter_map(|r| r.as_ref().err()) {
        check_message(&error.message());
        let _ = (
            error.class(),
            error.is_transient(),
            error.stored_task_type(),
        );
    }
    let envelope = EsError::Api(ApiError::from_response(status, &body));
    check_message(&envelope.message());
}

fn head(flags: u8) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let product = match flags & 3 {
        1 => Some("Elasticsearch"),
        2 => Some("elasticsearch"),
        3 => Some("OpenSearch"),
        _ => None,
    };
    if let Some(p) = product {
        headers.insert("x-elastic-product", HeaderValue::from_static(p));
    }
    let media = match (flags >> 2) & 3 {
        1 => Some("application/json"),
        2 => Some("text/html; charset=utf-8"),
        3 => Some("application/vnd.elasticsearch+json; compatible-with=8"),
        _ => None,
    };
    if let Some(m) = media {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(m));
    }
    match (flags >> 4) & 3 {
        1 => {
            _ = headers.insert(
                LOCATION,
                HeaderValue::from_static("http://other.example:9200/x"),
            )
        }
        2 => _ = headers.insert(LOCATION, HeaderValue::from_static("/_inference/elsewhere")),
        3 => _ = headers.insert(LOCATION, HeaderValue::from_static("//evil.example:1/")),
        _ => {}
    }
    headers
}

/// A message that reaches a condition or an Event: at most the operator's one bound, and no
/// control character (terminal escapes, newlines) from the far side.
fn check_message(message: &str) {
    assert!(
        message.len() <= MAX_MESSAGE_BYTES,
        "{} bytes: {message:?}",
        message.len()
    );
    assert!(
        !message.chars().any(char::is_control),
        "control character in {message:?}"
    );
}

/// The comparison of a desired endpoint with the one Elasticsearch holds (one byte picks the
/// release, the rest is `{"desired": EndpointConfig, "observed": Endpoint}`). It must not panic,
/// must describe every difference, and an endpoint holding exactly the desired settings has no
/// difference.
pub fn compare_endpoints(data: &[u8]) {
    let [v, json @ ..] = data else {
        return;
    };
    let version = EsVersion::parse(VERSIONS[usize::from(*v) % VERSIONS.len()]).expect("static");
    let Ok(value) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let Ok(wanted) = serde_json::from_value::<EndpointConfig>(value["desired"].clone()) else {
        return;
    };
    if let Ok(observed) = serde_json::from_value::<Endpoint>(value["observed"].clone()) {
        let differences = compare(&wanted, &observed, &version);
        let _ = describe(&differences);
        let _ = update_body(&wanted, None, Some(&observed), &version);
    }
    let same = Endpoint {
        inference_id: wanted.inference_id.clone(),
        task_type: wanted.task_type.as_str().to_owned(),
        service: wanted.service.clone(),
        service_settings: wanted.service_settings.clone(),
        task_settings: wanted.task_settings.clone(),
        chunking_settings: wanted.chunking_settings.clone(),
    };
    let differences = compare(&wanted, &same, &version);
    assert!(
        differences.is_empty(),
        "{wanted:?} differs from itself: {differences:?}"
    );
}

/// An arbitrary stored InferenceEndpoint through the operator's own path: decoded one object
/// at a time (`Decoded`), then checked and turned into the desired endpoint. Never a panic; an
/// undecodable object's error is bounded and clean (it goes into status).
pub fn spec(data: &[u8]) {
    let Ok(decoded) = serde_json::from_slice::<Decoded>(data) else {
        return;
    };
    match &decoded.0 {
        Ok(iep) => {
            if let Ok(wanted) = desired(iep) {
                let _ = wanted.secret_fields();
            }
        }
        Err(undecodable) => {
            assert!(
                undecodable.error.chars().count() <= 301,
                "{:?}",
                undecodable.error
            );
            assert!(
                !undecodable.error.chars().any(char::is_control),
                "{:?}",
                undecodable.error
            );
        }
    }
}
