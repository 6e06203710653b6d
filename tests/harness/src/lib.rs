//! The test environment of inference-operator (`inference-testenv`, test-only): the Kubernetes
//! API emulator ([`kube`]), the Elasticsearch double ([`es`]), a hostile server ([`hostile`]),
//! [`TestEnv`] — all of them ready to use, with a kube client — and test-object builders
//! ([`fixtures`]); and, apart from them, the sandbox and the benchmark ([`tools`]). See `tests/harness/README.md`.

mod env;
pub mod es;
pub mod fixtures;
pub mod hostile;
pub mod kube;
pub mod tools;

pub use env::*;
