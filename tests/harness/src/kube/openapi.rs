//! A small OpenAPI v3 (`/openapi/v3`, `/openapi/v3/apis/{g}/{v}`) for kubectl.
//!
//! kubectl reads it for `kubectl explain` (schemas found by their
//! `x-kubernetes-group-version-kind`) and, before `kubectl apply`/`create`, to learn whether the
//! server supports `?fieldValidation=` (a PATCH operation for the kind listing that query
//! parameter); without a document kubectl refuses to validate (`failed to download openapi`).
//!
//! Custom resources get their CRD version's `openAPIV3Schema` plus `apiVersion`, `kind` and
//! `metadata`. Built-in kinds get only a described object schema (no fields), enough for
//! kubectl's checks; `kubectl explain secret.data` does not work. `/openapi/v2` is not served.

use super::store::{Class, ResDef, State};
use serde_json::{json, Map, Value};
use std::hash::{Hash, Hasher};

/// `api/v1` or `apis/{group}/{version}`.
fn gv_path(d: &ResDef) -> String {
    if d.group.is_empty() {
        format!("api/{}", d.version)
    } else {
        format!("apis/{}/{}", d.group, d.version)
    }
}

/// Component name, e.g. `io.esinference.v1alpha1.InferenceEndpoint`.
fn schema_name(d: &ResDef) -> String {
    let prefix = if d.group.is_empty() {
        "io.k8s.api.core".to_string()
    } else {
        d.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{prefix}.{}.{}", d.version, d.kind)
}

fn gvk(d: &ResDef) -> Value {
    json!([{"group": d.group, "version": d.version, "kind": d.kind}])
}

fn kind_schema(d: &ResDef) -> Value {
    let mut s = match (&d.schema, d.class) {
        (Some(s), Class::Custom) => Value::clone(s),
        _ => json!({
            "type": "object",
            "description": format!("{} ({}). The emulator publishes no field schema for built-in kinds.", d.kind, d.gv()),
        }),
    };
    let Some(m) = s.as_object_mut() else {
        return s;
    };
    m.entry("type").or_insert(json!("object"));
    if d.class == Class::Custom {
        let props = m
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let mut all = Map::new();
        all.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
        all.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
        all.insert("metadata".into(), json!({"type": "object", "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}));
        all.extend(props);
        m.insert("properties".into(), Value::Object(all));
    }
    m.insert("x-kubernetes-group-version-kind".into(), gvk(d));
    s
}

fn param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn item_path(d: &ResDef) -> String {
    if d.namespaced {
        format!(
            "/{}/namespaces/{{namespace}}/{}/{{name}}",
            gv_path(d),
            d.plural
        )
    } else {
        format!("/{}/{}/{{name}}", gv_path(d), d.plural)
    }
}

fn operations(d: &ResDef) -> Value {
    let ref_ = json!({"$ref": format!("#/components/schemas/{}", schema_name(d))});
    let ok =
        json!({"200": {"description": "OK", "content": {"application/json": {"schema": ref_}}}});
    let mut params = vec![
        param("dryRun", "When present, indicates that modifications should not be persisted."),
        param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
        param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict."),
    ];
    let get = json!({"operationId": format!("read{}", d.kind), "responses": ok,
        "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk(d)[0]});
    let mut path = json!({"get": get});
    if d.class != Class::CoreEvent {
        path["put"] = json!({"operationId": format!("replace{}", d.kind), "parameters": params, "responses": ok,
            "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk(d)[0]});
        params.push(param(
            "force",
            "Force is going to \"force\" Apply requests.",
        ));
        path["patch"] = json!({"operationId": format!("patch{}", d.kind), "parameters": params, "responses": ok,
            "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk(d)[0]});
    }
    path
}

/// The document for one group version (`api/v1`, `apis/{g}/{v}`), if served.
pub fn group_version_doc(st: &State, gv: &str) -> Option<Value> {
    let defs: Vec<&ResDef> = st.defs.iter().filter(|d| gv_path(d) == gv).collect();
    if defs.is_empty() {
        return None;
    }
    let mut schemas = Map::new();
    let mut paths = Map::new();
    for d in defs {
        // core/v1 events are a view of events.k8s.io/v1 with their own shape
        schemas.insert(schema_name(d), kind_schema(d));
        paths.insert(item_path(d), operations(d));
    }
    let v = super::discovery::version(st.version);
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": v["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn hash_of(v: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: one entry per served group version, with a content hash.
pub fn index(st: &State) -> Value {
    let mut gvs: Vec<String> = st.defs.iter().map(gv_path).collect();
    gvs.sort();
    gvs.dedup();
    let mut paths = Map::new();
    for gv in gvs {
        if let Some(doc) = group_version_doc(st, &gv) {
            paths.insert(
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", hash_of(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}
