//! Test objects, built with builders (as kube-rs's controller-rs builds its test fixtures) so a
//! test names only what it is about: `Iep::embedding("emb").secret("azure").es(&env)`.
//!
//! The builders produce JSON (the harness does not depend on the operator crate);
//! [`Iep::build`] turns it into any type that deserializes from it — the operator's
//! `InferenceEndpoint`, or a `DynamicObject`. A test that deliberately stores something invalid
//! can still start from a builder and edit the JSON of [`Iep::object`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::env::{TestEnv, CREDENTIALS_LABEL};

/// An `InferenceEndpoint` (esinference.io/v1alpha1) under construction.
#[derive(Clone, Debug)]
pub struct Iep {
    name: String,
    namespace: Option<String>,
    spec: Value,
}

impl Iep {
    /// A `text_embedding` endpoint on Azure OpenAI (resource `test-resource`, deployment
    /// `embeddings`, API version `2024-10-21`), its key in Secret `azure`, key `apiKey`; no
    /// Elasticsearch yet ([`Iep::es`], [`Iep::es_url`], [`Iep::eck`]).
    pub fn embedding(name: &str) -> Iep {
        Iep {
            name: name.to_owned(),
            namespace: None,
            spec: json!({
                "taskType": "text_embedding",
                "azureOpenAI": {
                    "resourceName": "test-resource",
                    "deploymentId": "embeddings",
                    "apiVersion": "2024-10-21",
                    "apiKeySecretRef": {"name": "azure", "key": "apiKey"}
                }
            }),
        }
    }

    /// A `completion` endpoint: as [`Iep::embedding`], with deployment `gpt-4o`.
    pub fn completion(name: &str) -> Iep {
        Iep::embedding(name).task("completion").deployment("gpt-4o")
    }

    /// An endpoint of any Elasticsearch service through the generic `spec.service` block:
    /// `service` is the block as written (`name`, `settings`, `secretSettings`,
    /// `taskSettings`); no Elasticsearch yet.
    pub fn service(name: &str, task_type: &str, service: Value) -> Iep {
        Iep {
            name: name.to_owned(),
            namespace: None,
            spec: json!({"taskType": task_type, "service": service}),
        }
    }

    pub fn namespace(mut self, namespace: &str) -> Iep {
        self.namespace = Some(namespace.to_owned());
        self
    }

    /// The namespace, unless one was set already.
    pub fn namespace_or(self, namespace: &str) -> Iep {
        match self.namespace {
            Some(_) => self,
            None => self.namespace(namespace),
        }
    }

    /// `spec.elasticsearch`: the environment's Elasticsearch double, with its credentials (and
    /// its CA under TLS).
    pub fn es(self, env: &TestEnv) -> Iep {
        self.elasticsearch(env.es_connection())
    }

    /// `spec.elasticsearch`: `url`, with the credentials in Secret `credentials`.
    pub fn es_url(self, url: &str, credentials: &str) -> Iep {
        self.elasticsearch(json!({"url": url, "credentialsSecretRef": {"name": credentials}}))
    }

    /// `spec.elasticsearch` as given.
    pub fn elasticsearch(self, connection: Value) -> Iep {
        self.set("/elasticsearch", connection)
    }

    /// `spec.elasticsearchRef` (an ECK `Elasticsearch`), e.g. `json!({"name": "quickstart"})`.
    pub fn eck(self, reference: Value) -> Iep {
        self.set("/elasticsearchRef", reference)
    }

    /// The Secret holding the Azure API key (`spec.azureOpenAI.apiKeySecretRef.name`).
    pub fn secret(self, name: &str) -> Iep {
        self.set("/azureOpenAI/apiKeySecretRef/name", json!(name))
    }

    /// Authenticate to Azure with the Entra ID token in Secret `name`, key `key`
    /// (`spec.azureOpenAI.entraIdSecretRef`), instead of an API key.
    pub fn entra_id(mut self, name: &str, key: &str) -> Iep {
        if let Some(azure) = self.spec["azureOpenAI"].as_object_mut() {
            azure.remove("apiKeySecretRef");
        }
        self.set(
            "/azureOpenAI/entraIdSecretRef",
            json!({"name": name, "key": key}),
        )
    }

    pub fn task(self, task_type: &str) -> Iep {
        self.set("/taskType", json!(task_type))
    }

    pub fn inference_id(self, id: &str) -> Iep {
        self.set("/inferenceId", json!(id))
    }

    pub fn resource(self, resource_name: &str) -> Iep {
        self.set("/azureOpenAI/resourceName", json!(resource_name))
    }

    pub fn deployment(self, deployment_id: &str) -> Iep {
        self.set("/azureOpenAI/deploymentId", json!(deployment_id))
    }

    pub fn api_version(self, api_version: &str) -> Iep {
        self.set("/azureOpenAI/apiVersion", json!(api_version))
    }

    /// Set the spec field at JSON pointer `pointer` (e.g. `/chunkingSettings`,
    /// `/azureOpenAI/taskSettings`), creating the objects on its way.
    pub fn set(mut self, pointer: &str, value: Value) -> Iep {
        set_pointer(&mut self.spec, pointer, value);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn namespace_name(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn spec(&self) -> Value {
        self.spec.clone()
    }

    /// The whole object as JSON (`metadata.namespace` only when set).
    pub fn object(&self) -> Value {
        let mut metadata = json!({"name": self.name});
        if let Some(namespace) = &self.namespace {
            metadata["namespace"] = json!(namespace);
        }
        json!({
            "apiVersion": "esinference.io/v1alpha1",
            "kind": "InferenceEndpoint",
            "metadata": metadata,
            "spec": self.spec,
        })
    }

    /// The object as `T` (the operator's `InferenceEndpoint`, a `DynamicObject`, ...).
    pub fn build<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.object()).expect("a valid InferenceEndpoint")
    }
}

/// Set `value` at `pointer` (`/a/b`) in `target`, creating objects on the way.
fn set_pointer(target: &mut Value, pointer: &str, value: Value) {
    let mut node = target;
    let mut keys = pointer.trim_start_matches('/').split('/').peekable();
    while let Some(key) = keys.next() {
        if !node.is_object() {
            *node = json!({});
        }
        let map = node.as_object_mut().expect("an object");
        if keys.peek().is_none() {
            map.insert(key.to_owned(), value);
            return;
        }
        node = map.entry(key).or_insert_with(|| json!({}));
    }
}

/// An Opaque `Secret` under construction, with string data.
#[derive(Clone, Debug)]
pub struct OpaqueSecret {
    name: String,
    namespace: Option<String>,
    labelled: bool,
    labels: BTreeMap<String, String>,
    data: BTreeMap<String, String>,
}

impl OpaqueSecret {
    /// A Secret without the opt-in label (as ECK makes them, or as one made before the label).
    pub fn new(name: &str) -> OpaqueSecret {
        OpaqueSecret {
            name: name.to_owned(),
            namespace: None,
            labelled: false,
            labels: BTreeMap::new(),
            data: BTreeMap::new(),
        }
    }

    /// A Secret as ECK makes it for Elasticsearch `cluster`: no opt-in label, ECK's own labels
    /// (`label.NewLabels`, ECK pkg/controller/elasticsearch/label/label.go).
    pub fn eck(name: &str, cluster: &str) -> OpaqueSecret {
        let mut secret = OpaqueSecret::new(name);
        secret
            .labels
            .insert("common.k8s.elastic.co/type".into(), "elasticsearch".into());
        secret.labels.insert(
            "elasticsearch.k8s.elastic.co/cluster-name".into(),
            cluster.into(),
        );
        secret
    }

    /// A Secret opted in to use by InferenceEndpoints ([`CREDENTIALS_LABEL`]).
    pub fn labelled(name: &str) -> OpaqueSecret {
        OpaqueSecret {
            labelled: true,
            ..OpaqueSecret::new(name)
        }
    }

    pub fn namespace(mut self, namespace: &str) -> OpaqueSecret {
        self.namespace = Some(namespace.to_owned());
        self
    }

    pub fn data(mut self, key: &str, value: &str) -> OpaqueSecret {
        self.data.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Every `(key, value)` pair as data.
    pub fn pairs(self, pairs: &[(&str, &str)]) -> OpaqueSecret {
        pairs.iter().fold(self, |secret, (k, v)| secret.data(k, v))
    }

    pub fn build(&self) -> Secret {
        let mut labels = self.labels.clone();
        if self.labelled {
            labels.insert(CREDENTIALS_LABEL.to_owned(), "true".to_owned());
        }
        let labels = (!labels.is_empty()).then_some(labels);
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: self.namespace.clone(),
                labels,
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(
                self.data
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedding_names_its_secret_elasticsearch_and_id() {
        let object = Iep::embedding("emb")
            .namespace("team-a")
            .secret("azure-a")
            .es_url("https://es:9200", "es")
            .inference_id("emb-a")
            .object();
        assert_eq!(
            object["metadata"],
            json!({"name": "emb", "namespace": "team-a"})
        );
        assert_eq!(object["spec"]["taskType"], "text_embedding");
        assert_eq!(object["spec"]["inferenceId"], "emb-a");
        assert_eq!(
            object["spec"]["azureOpenAI"]["apiKeySecretRef"],
            json!({"name": "azure-a", "key": "apiKey"})
        );
        assert_eq!(
            object["spec"]["elasticsearch"],
            json!({"url": "https://es:9200", "credentialsSecretRef": {"name": "es"}})
        );
    }

    #[test]
    fn set_creates_the_objects_on_its_way_and_namespace_or_keeps_a_set_one() {
        let iep = Iep::completion("c")
            .set("/chunkingSettings/strategy", json!("word"))
            .namespace("a")
            .namespace_or("b");
        let object = iep.object();
        assert_eq!(
            object["spec"]["chunkingSettings"],
            json!({"strategy": "word"})
        );
        assert_eq!(object["spec"]["azureOpenAI"]["deploymentId"], "gpt-4o");
        assert_eq!(object["metadata"]["namespace"], "a");
    }

    #[test]
    fn a_service_endpoint_holds_the_generic_block_as_given() {
        let block = json!({"name": "cohere", "settings": {"model_id": "rerank-v3.5"},
            "secretSettings": {"api_key": {"secretKeyRef": {"name": "cohere", "key": "apiKey"}}}});
        let object = Iep::service("rr", "rerank", block.clone()).object();
        assert_eq!(object["spec"]["taskType"], "rerank");
        assert_eq!(object["spec"]["service"], block);
        assert!(object["spec"].get("azureOpenAI").is_none());
    }

    #[test]
    fn a_labelled_secret_carries_the_opt_in_label_and_its_data() {
        let secret = OpaqueSecret::labelled("azure").data("apiKey", "k").build();
        let labels = secret.metadata.labels.expect("labels");
        assert_eq!(
            labels.get(CREDENTIALS_LABEL).map(String::as_str),
            Some("true")
        );
        let data = secret.data.expect("data");
        assert_eq!(data["apiKey"].0, b"k");
        assert!(OpaqueSecret::new("eck").build().metadata.labels.is_none());
    }
}
