//! inference-operator: reconciles `InferenceEndpoint` objects into Elasticsearch inference endpoints.
pub mod api;
pub mod elasticsearch;
