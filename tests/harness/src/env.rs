//! A ready test environment: the Kubernetes API emulator with the operator's CRD installed, an
//! Elasticsearch double with security on, a kube `Client` for the emulator, and small helpers
//! (Secrets, waiting). Used by the operator's integration tests, the end-to-end suite and the
//! sandbox.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{json, Value};

use crate::es::{EsAuth, EsDouble, EsOptions};
use crate::fixtures::OpaqueSecret;
use crate::kube::{EmulatorOptions, KubeEmulator};

/// Name of the Secret holding the Elasticsearch double's credentials.
pub const ES_CREDENTIALS_SECRET: &str = "es-credentials";
pub const ES_USER: &str = "elastic";
pub const ES_PASSWORD: &str = "es-test-password";
/// The label by which a Secret opts in to use by InferenceEndpoints (the operator's
/// `inference_operator::secrets::CREDENTIALS_LABEL`; the harness does not depend on the
/// operator crate).
pub const CREDENTIALS_LABEL: &str = "esinference.io/credentials";

/// Options of [`TestEnv::start_with`].
#[derive(Clone, Debug)]
pub struct EnvOptions {
    /// Elasticsearch version the double emulates.
    pub es_version: String,
    /// Serve the double over HTTPS with a generated CA.
    pub es_tls: bool,
    /// Namespace the helpers write to (created if missing).
    pub namespace: String,
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions {
            es_version: "9.1.0".into(),
            es_tls: false,
            namespace: "default".into(),
        }
    }
}

pub struct TestEnv {
    pub kube: KubeEmulator,
    pub es: EsDouble,
    pub client: kube::Client,
    pub namespace: String,
}

/// The workspace's `crds/` directory.
pub fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds")
}

/// A kube client for a URL served by the emulator (plain HTTP, namespace `namespace`).
pub fn client_for(url: &str, namespace: &str) -> kube::Client {
    // kube and the Elasticsearch double both use rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = kube::Config::new(url.parse().expect("emulator URL"));
    config.default_namespace = namespace.to_owned();
    kube::Client::try_from(config).expect("kube client for the emulator")
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        TestEnv::start_with(EnvOptions::default()).await
    }

    pub async fn start_with(options: EnvOptions) -> TestEnv {
        let kube = KubeEmulator::start(EmulatorOptions::default()).await;
        for entry in std::fs::read_dir(crds_dir()).expect("crds/ exists") {
            let path = entry.expect("crds/ entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                kube.register_crd_file(&path);
            }
        }
        kube.create_namespace(&options.namespace);
        let es = EsDouble::start(EsOptions {
            version: options.es_version.clone(),
            tls: options.es_tls,
            auth: EsAuth::basic(ES_USER, ES_PASSWORD),
            ..EsOptions::default()
        })
        .await;
        let client = client_for(&kube.url(), &options.namespace);
        let env = TestEnv {
            kube,
            es,
            client,
            namespace: options.namespace,
        };
        env.put_secret(
            ES_CREDENTIALS_SECRET,
            &[("username", ES_USER), ("password", ES_PASSWORD)],
        )
        .await;
        if let Some(ca) = env.es.ca_pem() {
            env.put_secret("es-ca", &[("ca.crt", &ca)]).await;
        }
        env
    }

    /// `spec.elasticsearch` pointing at the double with its credentials (and CA under TLS).
    pub fn es_connection(&self) -> Value {
        let mut connection = json!({
            "url": self.es.url(),
            "credentialsSecretRef": {"name": ES_CREDENTIALS_SECRET},
        });
        if self.es.ca_pem().is_some() {
            connection["caSecretRef"] = json!({"name": "es-ca"});
        }
        connection
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Create or replace an Opaque Secret from string pairs, labelled for use by
    /// InferenceEndpoints ([`CREDENTIALS_LABEL`]).
    pub async fn put_secret(&self, name: &str, pairs: &[(&str, &str)]) {
        self.put_secret_labelled(name, pairs, true).await
    }

    /// Create or replace an Opaque Secret without the opt-in label (as a Secret made before
    /// the label existed, or one that is not meant for InferenceEndpoints).
    pub async fn put_unlabelled_secret(&self, name: &str, pairs: &[(&str, &str)]) {
        self.put_secret_labelled(name, pairs, false).await
    }

    /// Add or remove the opt-in label of an existing Secret (a merge patch of its labels only).
    pub async fn label_secret(&self, name: &str, opted_in: bool) {
        let value = if opted_in { json!("true") } else { Value::Null };
        let patch = json!({"metadata": {"labels": {CREDENTIALS_LABEL: value}}});
        self.secrets()
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .expect("label Secret");
    }

    async fn put_secret_labelled(&self, name: &str, pairs: &[(&str, &str)], opted_in: bool) {
        let built = if opted_in {
            OpaqueSecret::labelled(name)
        } else {
            OpaqueSecret::new(name)
        };
        let built = built.namespace(&self.namespace).pairs(pairs).build();
        let secrets = self.secrets();
        match secrets.get_opt(name).await.expect("get Secret") {
            Some(mut existing) => {
                existing.data = built.data;
                let mut all = existing.metadata.labels.take().unwrap_or_default();
                all.remove(CREDENTIALS_LABEL);
                all.extend(built.metadata.labels.unwrap_or_default());
                existing.metadata.labels = Some(all);
                secrets
                    .replace(name, &PostParams::default(), &existing)
                    .await
                    .expect("replace Secret");
            }
            None => {
                secrets
                    .create(&PostParams::default(), &built)
                    .await
                    .expect("create Secret");
            }
        }
    }

    pub async fn delete_secret(&self, name: &str) {
        let _ = self.secrets().delete(name, &DeleteParams::default()).await;
    }
}

/// How often [`eventually`] (and the tests' wait helpers built on [`poll`]) look again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The one polling loop of the test suites: call `check` every `every` until it returns `Ok`;
/// once `timeout` has passed, return the last `Err` — what `check` saw, for the caller's
/// timeout message. `check` runs at least once, and once more at the deadline.
pub async fn poll<T, F, Fut>(timeout: Duration, every: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match check().await {
            Ok(value) => return Ok(value),
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            return Err(seen);
        }
        tokio::time::sleep(every).await;
    }
}

/// Poll `check` every 25 ms until it returns `Some`, or panic with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let found = poll(timeout, POLL_INTERVAL, || {
        let probe = check();
        async move { probe.await.ok_or_else(String::new) }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out after {timeout:?} waiting for {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn poll_returns_the_first_ok() {
        let mut calls = 0;
        let found = poll(Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            let n = calls;
            async move {
                if n == 3 {
                    Ok(n)
                } else {
                    Err(format!("call {n}"))
                }
            }
        })
        .await;
        assert_eq!(found, Ok(3));
    }

    #[tokio::test]
    async fn poll_gives_up_after_the_timeout_with_what_it_last_saw() {
        let mut calls = 0;
        let started = Instant::now();
        let found: Result<(), String> =
            poll(Duration::from_millis(60), Duration::from_millis(5), || {
                calls += 1;
                let n = calls;
                async move { Err(format!("call {n}")) }
            })
            .await;
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert_eq!(found, Err(format!("call {calls}")));
        assert!(calls > 1, "polled more than once");
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the thing")]
    async fn eventually_panics_with_what_it_waited_for() {
        eventually(Duration::from_millis(30), "the thing", || async {
            None::<()>
        })
        .await;
    }
}
