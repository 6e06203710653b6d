//! The health probe: the smallest real inference call for an endpoint's task type
//! (docs/reference/elasticsearch-inference-api.md#perform-inference), and how its answer is read.
//!
//! Pure: the request (path and body) and the reading of a Server-Sent-Events answer. The call
//! itself is [`super::EsClient::probe`].

use serde_json::{json, Value};

use super::TaskType;

/// The one short input every probe sends: a single word, so a probe costs a handful of tokens
/// (an embedding of one token, a one-document rerank, at most [`CHAT_MAX_TOKENS`] generated).
pub const PROBE_INPUT: &str = "ping";
/// `max_completion_tokens` of the chat probe: the answer is not read, only that one comes.
pub const CHAT_MAX_TOKENS: u32 = 1;

/// Where the probe goes and what it sends, by task type
/// (docs/reference/elasticsearch-inference-api.md#perform-inference):
/// `POST _inference/{task}/{id}` with `input` (a string; rerank adds a `query`), and for
/// `chat_completion` the streaming route `POST _inference/chat_completion/{id}/_stream` with one
/// user message.
pub fn probe_request(task: TaskType, inference_id: &str) -> (Vec<String>, Value) {
    let mut path = vec![
        "_inference".to_owned(),
        task.as_str().to_owned(),
        inference_id.to_owned(),
    ];
    let body = match task {
        TaskType::Rerank => json!({"query": PROBE_INPUT, "input": [PROBE_INPUT]}),
        TaskType::ChatCompletion => {
            path.push("_stream".to_owned());
            json!({
                "messages": [{"role": "user", "content": PROBE_INPUT}],
                "max_completion_tokens": CHAT_MAX_TOKENS,
            })
        }
        TaskType::TextEmbedding
        | TaskType::SparseEmbedding
        | TaskType::Completion
        | TaskType::Embedding => json!({"input": PROBE_INPUT}),
    };
    (path, body)
}

/// The error carried by a Server-Sent-Events answer: the `data:` of its `event: error`, which is
/// Elasticsearch's usual error object with `status`
/// (`ServerSentEventsRestActionListener`: a failure before the stream opens answers the
/// failure's status with one `event: error`; a failure mid-stream is an `event: error` inside a
/// 200; docs/reference/elasticsearch-inference-api.md#perform-inference). `None` when no error
/// event is in the body.
pub fn stream_error(body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let text = String::from_utf8_lossy(body);
    let mut in_error = false;
    for line in text.lines() {
        // The first event is preceded by a byte-order mark.
        let line = line.trim_start_matches('\u{feff}');
        if let Some(event) = line.strip_prefix("event:") {
            in_error = event.trim() == "error";
        } else if let Some(data) = line.strip_prefix("data:") {
            if in_error {
                let data = data.trim();
                let status = serde_json::from_str::<Value>(data)
                    .ok()
                    .and_then(|v| v.get("status").and_then(Value::as_u64))
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(500);
                return Some((status, data.as_bytes().to_vec()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_type_has_its_smallest_call() {
        let (path, body) = probe_request(TaskType::TextEmbedding, "e");
        assert_eq!(path, ["_inference", "text_embedding", "e"]);
        assert_eq!(body, json!({"input": "ping"}));
        let (_, body) = probe_request(TaskType::Rerank, "r");
        assert_eq!(body, json!({"query": "ping", "input": ["ping"]}));
        let (path, body) = probe_request(TaskType::ChatCompletion, "c");
        assert_eq!(path, ["_inference", "chat_completion", "c", "_stream"]);
        assert_eq!(body["max_completion_tokens"], 1);
        assert_eq!(body["messages"][0]["role"], "user");
        for task in [
            TaskType::SparseEmbedding,
            TaskType::Completion,
            TaskType::Embedding,
        ] {
            assert_eq!(probe_request(task, "x").1, json!({"input": "ping"}));
        }
    }

    #[test]
    fn an_error_event_is_found_in_a_stream() {
        let ok =
            b"event: message\ndata: {\"chat_completion\":{}}\n\nevent: message\ndata: [DONE]\n\n";
        assert_eq!(stream_error(ok), None);
        let failed = "\u{feff}event: error\ndata: {\"error\":{\"type\":\"status_exception\",\"reason\":\"x\"},\"status\":401}\n\n";
        let (status, data) = stream_error(failed.as_bytes()).unwrap();
        assert_eq!(status, 401);
        assert!(String::from_utf8(data).unwrap().starts_with("{\"error\""));
    }
}
