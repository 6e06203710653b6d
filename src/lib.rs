//! inference-operator: reconciles `InferenceEndpoint` objects into Elasticsearch inference
//! endpoints. The binary in `main.rs` is a thin CLI over this library.

pub mod api;
pub mod controller;
pub mod elasticsearch;
pub mod endpoint;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reason;
pub mod secrets;
