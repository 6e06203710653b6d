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
pub mod shutdown;

#[cfg(test)]
mod layering {
    /// The lower layers (metrics, the Elasticsearch client, the domain model, reasons, Secrets)
    /// never reach up into the controller or the CRD.
    #[test]
    fn lower_layers_do_not_import_the_controller() {
        let sources = [
            ("metrics.rs", include_str!("metrics.rs")),
            ("reason.rs", include_str!("reason.rs")),
            ("endpoint.rs", include_str!("endpoint.rs")),
            ("secrets.rs", include_str!("secrets.rs")),
            ("elasticsearch/mod.rs", include_str!("elasticsearch/mod.rs")),
            (
                "elasticsearch/body.rs",
                include_str!("elasticsearch/body.rs"),
            ),
            (
                "elasticsearch/client.rs",
                include_str!("elasticsearch/client.rs"),
            ),
            (
                "elasticsearch/error.rs",
                include_str!("elasticsearch/error.rs"),
            ),
            (
                "elasticsearch/normalize.rs",
                include_str!("elasticsearch/normalize.rs"),
            ),
            (
                "elasticsearch/service/mod.rs",
                include_str!("elasticsearch/service/mod.rs"),
            ),
            (
                "elasticsearch/service/table.rs",
                include_str!("elasticsearch/service/table.rs"),
            ),
            (
                "elasticsearch/version.rs",
                include_str!("elasticsearch/version.rs"),
            ),
        ];
        for (file, text) in sources {
            for layer in ["controller", "api"] {
                let import = format!("use crate::{layer}");
                assert!(!text.contains(&import), "{file} imports crate::{layer}");
            }
        }
    }
}
