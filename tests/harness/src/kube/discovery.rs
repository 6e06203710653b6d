//! Discovery documents (docs/reference/kubernetes-api.md#urls-and-discovery), including aggregated
//! discovery v2.

use super::store::{Class, ResDef, State};
use super::KubeVersion;
use serde_json::{json, Value};

pub const AGGREGATED_CT: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `/version` for the emulated release. The emulation / min-compatibility fields come from
/// KEP-4330 compatibility versions (apimachinery `pkg/version/types.go` `Info`); min
/// compatibility is one minor below (inferred from the default `--emulated-version`).
pub fn version(v: KubeVersion) -> Value {
    json!({
        "major": v.major.to_string(),
        "minor": v.minor.to_string(),
        "emulationMajor": v.major.to_string(),
        "emulationMinor": v.minor.to_string(),
        "minCompatibilityMajor": v.major.to_string(),
        "minCompatibilityMinor": v.minor.saturating_sub(1).to_string(),
        "gitVersion": format!("{}-inference-testenv", v.git_version()),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// Whether the Accept header asks for aggregated discovery.
pub fn wants_aggregated(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=APIGroupDiscoveryList"))
}

fn verbs(d: &ResDef) -> Vec<&'static str> {
    if d.class == Class::CoreEvent {
        // a read-only view of events.k8s.io/v1 (see events.rs)
        return vec!["get", "list", "watch"];
    }
    vec![
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "create",
        "update",
        "watch",
    ]
}

fn has_status(d: &ResDef) -> bool {
    d.status_sub
}

pub fn resource_list(st: &State, group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResDef> = st
        .defs
        .iter()
        .filter(|d| d.group == group && d.version == version)
        .collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in defs {
        let mut r = json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": verbs(d),
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        if has_status(d) {
            resources.push(json!({
                "name": format!("{}/status", d.plural),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": d.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn groups(st: &State) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for d in st.defs.iter().filter(|d| !d.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == d.group) {
            Some((_, vs)) => {
                if !vs.contains(&d.version) {
                    vs.push(d.version.clone())
                }
            }
            None => out.push((d.group.clone(), vec![d.version.clone()])),
        }
    }
    out
}

fn group_doc(g: &str, vs: &[String]) -> Value {
    let versions: Vec<Value> = vs
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
}

pub fn api_group_list(st: &State) -> Value {
    let gs: Vec<Value> = groups(st).iter().map(|(g, vs)| group_doc(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

pub fn api_group(st: &State, group: &str) -> Option<Value> {
    groups(st).iter().find(|(g, _)| g == group).map(|(g, vs)| {
        let mut d = group_doc(g, vs);
        d["kind"] = json!("APIGroup");
        d["apiVersion"] = json!("v1");
        d
    })
}

pub fn api_versions(host: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
}

fn aggregated_group(st: &State, group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = st
                .defs
                .iter()
                .filter(|d| d.group == group && d.version == *v)
                .map(|d| {
                    let gvk = json!({"group": d.group, "version": d.version, "kind": d.kind});
                    let mut r = json!({
                        "resource": d.plural,
                        "responseKind": gvk,
                        "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": d.singular,
                        "verbs": verbs(d),
                    });
                    if !d.short_names.is_empty() {
                        r["shortNames"] = json!(d.short_names);
                    }
                    if !d.categories.is_empty() {
                        r["categories"] = json!(d.categories);
                    }
                    if has_status(d) {
                        r["subresources"] = json!([{"subresource": "status", "responseKind": gvk, "verbs": ["get", "patch", "update"]}]);
                    }
                    r
                })
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let md = if group.is_empty() {
        json!({})
    } else {
        json!({"name": group})
    };
    json!({"metadata": md, "versions": vs})
}

pub fn aggregated_apis(st: &State) -> Value {
    let items: Vec<Value> = groups(st)
        .iter()
        .map(|(g, vs)| aggregated_group(st, g, vs))
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

pub fn aggregated_core(st: &State) -> Value {
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
           "items": [aggregated_group(st, "", &["v1".to_string()])]})
}
