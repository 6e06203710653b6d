//! The real `kubectl` against the emulator, with the operator's CRD registered.
//!
//! kubectl is found through `$KUBECTL` or `PATH`. Without it these tests print a loud SKIP
//! notice and pass (CI installs kubectl, so they run there).

use inference_testenv::kube::{EmulatorOptions, KubeEmulator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const CRD: &str = include_str!("../../../crds/inferenceendpoint.yaml");

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn http(emu: &KubeEmulator, method: &str, path: &str, body: Value) -> Value {
    let c = client();
    let url = format!("{}{path}", emu.url());
    let req = match method {
        "POST" => c.post(url),
        "PUT" => c.put(url),
        "PATCH" => c
            .patch(url)
            .header("Content-Type", "application/merge-patch+json"),
        _ => c.get(url),
    };
    let resp = req.json(&body).send().await.expect("request");
    let code = resp.status();
    let v: Value = resp.json().await.expect("json body");
    assert!(code.is_success(), "{method} {path}: {code} {v}");
    v
}

const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// GET with an Accept header; returns (status, Content-Type, body).
async fn get_accept(emu: &KubeEmulator, path: &str, accept: &str) -> (u16, String, Value) {
    let resp = client()
        .get(format!("{}{path}", emu.url()))
        .header("Accept", accept)
        .send()
        .await
        .expect("request");
    let code = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, ct, v)
}

const IEP: &str = "/apis/esinference.io/v1alpha1/namespaces/default/inferenceendpoints";

fn endpoint(name: &str, task: &str) -> Value {
    json!({
        "apiVersion": "esinference.io/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": {"name": name},
        "spec": {
            "elasticsearchRef": {"name": "quickstart"},
            "taskType": task,
            "azureOpenAI": {
                "resourceName": "res",
                "deploymentId": "dep",
                "apiVersion": "2024-10-21",
                "apiKeySecretRef": {"name": "azure", "key": "apiKey"}
            }
        }
    })
}

/// An emulator with the CRD, two endpoints (one Ready, one failing) and an event.
async fn sandbox() -> KubeEmulator {
    let emu = KubeEmulator::start(EmulatorOptions::default()).await;
    emu.register_crd_yaml(CRD);
    http(&emu, "POST", IEP, endpoint("embed", "text_embedding")).await;
    http(&emu, "POST", IEP, endpoint("chat", "completion")).await;
    let now = "2026-01-01T00:00:00Z";
    http(
        &emu,
        "PATCH",
        &format!("{IEP}/embed/status"),
        json!({"status": {
            "inferenceId": "embed",
            "targetInferenceId": "embed",
            "endpoint": {"service": "azureopenai"},
            "observedGeneration": 1,
            "conditions": [
                {"type": "Reconciling", "status": "False", "reason": "Idle", "message": "-", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "reason": "Synced", "message": "endpoint is in sync", "lastTransitionTime": now}
            ]
        }}),
    )
    .await;
    http(
        &emu,
        "PATCH",
        &format!("{IEP}/chat/status"),
        json!({"status": {
            "targetInferenceId": "chat",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "SecretNotFound", "message": "Secret default/azure not found", "lastTransitionTime": now}
            ]
        }}),
    )
    .await;
    let chat = emu
        .get_object("inferenceendpoints", "default", "chat")
        .expect("chat");
    http(
        &emu,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/default/events",
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "chat.1"},
            "eventTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "type": "Warning",
            "reason": "SecretNotFound",
            "action": "Reconcile",
            "note": "Secret default/azure not found",
            "regarding": {
                "apiVersion": "esinference.io/v1alpha1",
                "kind": "InferenceEndpoint",
                "name": "chat",
                "namespace": "default",
                "uid": chat["metadata"]["uid"]
            },
            "reportingController": "esinference.io/inference-operator",
            "reportingInstance": "inference-operator-0"
        }),
    )
    .await;
    emu
}

fn find_kubectl() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBECTL").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}

/// Written straight to stderr (not through `eprintln!`, which the test harness captures), so
/// the skip shows in a plain `cargo test` run.
fn skip(test: &str) {
    use std::io::Write;
    let bar = "!".repeat(78);
    let msg = format!(
        "\n{bar}\n!! SKIPPING kubectl test `{test}`: no kubectl binary (set $KUBECTL or put kubectl on PATH)\n{bar}\n"
    );
    let _ = std::io::stderr().lock().write_all(msg.as_bytes());
}

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Kubectl {
    fn new(emu: &KubeEmulator, bin: PathBuf) -> Kubectl {
        let dir = std::env::temp_dir().join(format!(
            "inference-testenv-kubectl-{}-{}",
            std::process::id(),
            emu.addr().port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let kubeconfig = dir.join("kubeconfig");
        emu.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        Kubectl {
            bin,
            kubeconfig,
            _dir: TempDir(dir),
        }
    }

    /// Run kubectl; returns (success, stdout, stderr). Blocking, so call from spawn_blocking.
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(&self.bin)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env(
                "HOME",
                self.kubeconfig.parent().unwrap_or(Path::new("/tmp")),
            )
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .output()
            .expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn col_names(table: &Value) -> Vec<(String, String, i64)> {
    table["columnDefinitions"]
        .as_array()
        .expect("columnDefinitions")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_string(),
                c["type"].as_str().unwrap_or("").to_string(),
                c["priority"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn row<'a>(table: &'a Value, name: &str) -> &'a Value {
    table["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["cells"][0] == name || r["object"]["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {table}"))
}

// ------------------------------------------------------------------ Table (no kubectl)

#[tokio::test]
async fn table_for_custom_resources_uses_printer_columns() {
    let emu = sandbox().await;
    let (code, ct, t) = get_accept(&emu, IEP, TABLE_ACCEPT).await;
    assert_eq!(code, 200, "{t}");
    assert_eq!(ct, "application/json;as=Table;v=v1;g=meta.k8s.io");
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert!(t["metadata"]["resourceVersion"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let s = |x: &str| x.to_string();
    assert_eq!(
        col_names(&t),
        vec![
            (s("Name"), s("string"), 0),
            (s("Ready"), s("string"), 0),
            (s("Reason"), s("string"), 0),
            (s("Service"), s("string"), 0),
            (s("Task"), s("string"), 0),
            (s("Inference ID"), s("string"), 0),
            (s("Healthy"), s("string"), 1),
            (s("Used-By"), s("integer"), 1),
            (s("Message"), s("string"), 1),
            (s("Age"), s("date"), 0),
        ]
    );
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(
        t["columnDefinitions"][1]["description"],
        r#"Custom resource definition column (in JSONPath format): .status.conditions[?(@.type=="Ready")].status"#
    );
    let embed = row(&t, "embed");
    let cells = embed["cells"].as_array().unwrap();
    assert_eq!(
        &cells[..9],
        &[
            json!("embed"),
            json!("True"),
            json!("Synced"),
            json!("azureopenai"),
            json!("text_embedding"),
            json!("embed"),
            Value::Null,
            Value::Null,
            json!("endpoint is in sync")
        ]
    );
    let age = cells[9].as_str().expect("age is a string");
    assert!(
        age.ends_with('s') && age.trim_end_matches('s').parse::<u64>().is_ok(),
        "{age}"
    );
    // missing values are null cells
    let chat = row(&t, "chat");
    assert_eq!(chat["cells"][1], "False");
    assert_eq!(chat["cells"][3], Value::Null, "no endpoint yet: no service");
    assert_eq!(chat["cells"][5], "chat", "no endpoint yet: the intended id");
    // rows carry PartialObjectMetadata by default
    assert_eq!(chat["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(chat["object"]["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(chat["object"]["metadata"]["namespace"], "default");
    assert!(chat["object"].get("spec").is_none());
    assert_eq!(t["rows"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn table_include_object_single_get_and_v1beta1() {
    let emu = sandbox().await;
    let (_, _, t) = get_accept(&emu, &format!("{IEP}?includeObject=Object"), TABLE_ACCEPT).await;
    let chat = row(&t, "chat");
    assert_eq!(chat["object"]["kind"], "InferenceEndpoint");
    assert_eq!(chat["object"]["spec"]["taskType"], "completion");

    let (_, _, t) = get_accept(&emu, &format!("{IEP}?includeObject=None"), TABLE_ACCEPT).await;
    assert!(t["rows"][0].get("object").is_none(), "{t}");

    let (code, _, e) = get_accept(&emu, &format!("{IEP}?includeObject=All"), TABLE_ACCEPT).await;
    assert_eq!(code, 400, "{e}");

    let (code, _, t) = get_accept(&emu, &format!("{IEP}/embed"), TABLE_ACCEPT).await;
    assert_eq!(code, 200);
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    assert_eq!(t["rows"][0]["cells"][4], "text_embedding");
    let rv = emu
        .get_object("inferenceendpoints", "default", "embed")
        .unwrap()["metadata"]["resourceVersion"]
        .clone();
    assert_eq!(t["metadata"]["resourceVersion"], rv);

    let (code, _, e) = get_accept(&emu, &format!("{IEP}/nope"), TABLE_ACCEPT).await;
    assert_eq!((code, e["kind"].as_str()), (404, Some("Status")));

    let (_, ct, t) = get_accept(
        &emu,
        IEP,
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    )
    .await;
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(ct, "application/json;as=Table;v=v1beta1;g=meta.k8s.io");
    assert_eq!(
        row(&t, "chat")["object"]["apiVersion"],
        "meta.k8s.io/v1beta1"
    );

    // plain JSON is untouched
    let (_, _, l) = get_accept(&emu, IEP, "application/json").await;
    assert_eq!(l["kind"], "InferenceEndpointList");
}

#[tokio::test]
async fn table_default_age_column_for_crd_without_printer_columns() {
    let emu = KubeEmulator::start(EmulatorOptions::default()).await;
    emu.register_crd_yaml(include_str!("fixtures/widget-crd.yaml"));
    let crd = emu
        .list_objects("customresourcedefinitions")
        .into_iter()
        .find(|c| c["spec"]["group"] == "example.test")
        .expect("widget crd");
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap().to_string();
    let version = crd["spec"]["versions"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _, t) = get_accept(
        &emu,
        &format!("/apis/example.test/{version}/namespaces/default/{plural}"),
        TABLE_ACCEPT,
    )
    .await;
    assert_eq!(code, 200, "{t}");
    let names: Vec<String> = col_names(&t).into_iter().map(|c| c.0).collect();
    if crd["spec"]["versions"][0]
        .get("additionalPrinterColumns")
        .is_none()
    {
        assert_eq!(names, vec!["Name", "Age"]);
    }
    assert_eq!(t["rows"], json!([]));
}

#[tokio::test]
async fn table_for_builtins() {
    let emu = sandbox().await;
    http(
        &emu,
        "POST",
        "/api/v1/namespaces/default/secrets",
        json!({"metadata": {"name": "azure"}, "type": "Opaque", "stringData": {"apiKey": "k", "other": "x"}}),
    )
    .await;
    let (_, _, t) = get_accept(&emu, "/api/v1/namespaces/default/secrets", TABLE_ACCEPT).await;
    let names: Vec<String> = col_names(&t).into_iter().map(|c| c.0).collect();
    assert_eq!(names, vec!["Name", "Type", "Data", "Age"]);
    let cells = &row(&t, "azure")["cells"];
    assert_eq!((&cells[1], &cells[2]), (&json!("Opaque"), &json!(2)));

    let (_, _, t) = get_accept(&emu, "/api/v1/namespaces", TABLE_ACCEPT).await;
    assert_eq!(row(&t, "default")["cells"][1], "Active");

    let (_, _, t) = get_accept(
        &emu,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        TABLE_ACCEPT,
    )
    .await;
    let names: Vec<String> = col_names(&t).into_iter().map(|c| c.0).collect();
    assert_eq!(names, vec!["Name", "Created At"]);
    assert!(row(&t, "inferenceendpoints.esinference.io")["cells"][1]
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));

    for path in [
        "/api/v1/namespaces/default/events",
        "/apis/events.k8s.io/v1/namespaces/default/events",
    ] {
        let (_, _, t) = get_accept(&emu, path, TABLE_ACCEPT).await;
        let cols = col_names(&t);
        let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ],
            "{path}"
        );
        let wide: Vec<i64> = cols.iter().map(|c| c.2).collect();
        assert_eq!(wide, vec![0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);
        let cells = &row(&t, "chat.1")["cells"];
        assert_eq!(cells[1], "Warning", "{path}");
        assert_eq!(cells[2], "SecretNotFound");
        assert_eq!(cells[3], "inferenceendpoint/chat");
        assert_eq!(
            cells[5],
            "esinference.io/inference-operator, inference-operator-0"
        );
        assert_eq!(cells[6], "Secret default/azure not found");
        assert_eq!(cells[8], 1);
        assert_eq!(cells[9], "chat.1");
    }
}

#[tokio::test]
async fn table_watch_events() {
    let emu = sandbox().await;
    let (code, _, body) = {
        let resp = client()
            .get(format!("{}{IEP}?watch=true&timeoutSeconds=1", emu.url()))
            .header("Accept", TABLE_ACCEPT)
            .send()
            .await
            .expect("watch");
        (resp.status().as_u16(), (), resp.text().await.expect("body"))
    };
    assert_eq!(code, 200);
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("event line"))
        .collect();
    let added: Vec<&Value> = events.iter().filter(|e| e["type"] == "ADDED").collect();
    assert_eq!(added.len(), 2, "{body}");
    assert_eq!(added[0]["object"]["kind"], "Table");
    assert_eq!(added[0]["object"]["rows"][0]["cells"][0], "chat");
}

#[tokio::test]
async fn core_v1_events_are_a_read_only_view() {
    let emu = sandbox().await;
    let uid = emu
        .get_object("inferenceendpoints", "default", "chat")
        .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let sel = format!("involvedObject.name=chat,involvedObject.namespace=default,involvedObject.kind=InferenceEndpoint,involvedObject.uid={uid}");
    let (code, _, l) = get_accept(
        &emu,
        &format!(
            "/api/v1/namespaces/default/events?fieldSelector={}&limit=500",
            sel.replace('=', "%3D").replace(',', "%2C")
        ),
        "application/json",
    )
    .await;
    assert_eq!(code, 200, "{l}");
    assert_eq!(l["kind"], "EventList");
    assert_eq!(l["apiVersion"], "v1");
    let items = l["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{l}");
    let e = &items[0];
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["message"], "Secret default/azure not found");
    assert_eq!(e["involvedObject"]["uid"], uid.as_str());
    assert_eq!(e["reportingComponent"], "esinference.io/inference-operator");

    let (_, _, l) = get_accept(
        &emu,
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dembed",
        "application/json",
    )
    .await;
    assert_eq!(l["items"], json!([]));
    let (code, _, _) = get_accept(
        &emu,
        "/api/v1/namespaces/default/events?fieldSelector=regarding.name%3Dembed",
        "application/json",
    )
    .await;
    assert_eq!(code, 400);
    let (code, _, e) = get_accept(
        &emu,
        "/api/v1/namespaces/default/events/chat.1",
        "application/json",
    )
    .await;
    assert_eq!((code, e["kind"].as_str()), (200, Some("Event")));
    assert_eq!(e["involvedObject"]["name"], "chat");

    let resp = client()
        .post(format!("{}/api/v1/namespaces/default/events", emu.url()))
        .json(&json!({"metadata": {"name": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    // the store is untouched: still one event
    assert_eq!(emu.list_objects("events").len(), 1);
}

#[tokio::test]
async fn discovery_short_names_and_openapi_v3() {
    let emu = sandbox().await;
    let (_, _, core) = get_accept(&emu, "/api/v1", "application/json").await;
    let res = |n: &str| {
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} in {core}"))
    };
    assert_eq!(res("namespaces")["shortNames"], json!(["ns"]));
    assert_eq!(res("events")["shortNames"], json!(["ev"]));
    assert_eq!(res("events")["verbs"], json!(["get", "list", "watch"]));

    let (code, _, idx) = get_accept(&emu, "/openapi/v3", "application/json").await;
    assert_eq!(code, 200);
    let url = idx["paths"]["apis/esinference.io/v1alpha1"]["serverRelativeURL"]
        .as_str()
        .expect("CRD group version in /openapi/v3")
        .to_string();
    assert!(idx["paths"]["api/v1"].is_object());
    let (code, _, doc) = get_accept(&emu, &url, "application/json").await;
    assert_eq!(code, 200);
    let schema = &doc["components"]["schemas"]["io.esinference.v1alpha1.InferenceEndpoint"];
    assert_eq!(
        schema["x-kubernetes-group-version-kind"],
        json!([{"group": "esinference.io", "version": "v1alpha1", "kind": "InferenceEndpoint"}])
    );
    assert!(schema["properties"]["spec"]["properties"]["taskType"].is_object());
    assert!(schema["properties"]["metadata"].is_object());
    let patch = &doc["paths"]
        ["/apis/esinference.io/v1alpha1/namespaces/{namespace}/inferenceendpoints/{name}"]["patch"];
    assert!(patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
    let (code, _, _) = get_accept(&emu, "/openapi/v3/apis/nope.io/v1", "application/json").await;
    assert_eq!(code, 404);
}

// ------------------------------------------------------------------ real kubectl

/// Split kubectl's tabular output into rows of cells, using the header's column starts
/// (cells may be empty, so splitting on whitespace would not do).
fn parse_table(out: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no header in {out:?}"));
    let mut starts = vec![];
    let mut names = vec![];
    let bytes = header.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b' ' {
            let start = i;
            // a column name ends at two or more spaces
            while i < bytes.len()
                && !(bytes[i] == b' ' && bytes.get(i + 1).is_none_or(|c| *c == b' '))
            {
                i += 1;
            }
            starts.push(start);
            names.push(header[start..i].to_string());
        } else {
            i += 1;
        }
    }
    let rows = lines
        .map(|l| {
            (0..starts.len())
                .map(|k| {
                    let s = starts[k].min(l.len());
                    let e = starts.get(k + 1).copied().unwrap_or(l.len()).min(l.len());
                    l[s..e].trim().to_string()
                })
                .collect()
        })
        .collect();
    (names, rows)
}

async fn with_kubectl(test: &str) -> Option<(KubeEmulator, Kubectl)> {
    let Some(bin) = find_kubectl() else {
        skip(test);
        return None;
    };
    let emu = sandbox().await;
    let k = Kubectl::new(&emu, bin);
    Some((emu, k))
}

async fn kubectl(k: &Kubectl, args: &[&str]) -> String {
    let (ok, out, err) = tokio::task::block_in_place(|| k.run(args));
    assert!(ok, "kubectl {args:?} failed:\nstdout: {out}\nstderr: {err}");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_get_wide_shows_printer_columns() {
    let Some((_emu, k)) = with_kubectl("kubectl_get_wide_shows_printer_columns").await else {
        return;
    };
    let out = kubectl(&k, &["get", "iep", "-o", "wide"]).await;
    eprintln!("{out}");
    let (cols, rows) = parse_table(&out);
    assert_eq!(
        cols,
        vec![
            "NAME",
            "READY",
            "REASON",
            "SERVICE",
            "TASK",
            "INFERENCE ID",
            "HEALTHY",
            "USED-BY",
            "MESSAGE",
            "AGE"
        ],
        "{out}"
    );
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(
        &rows[0][..9],
        &[
            "chat",
            "False",
            "SecretNotFound",
            "",
            "completion",
            "chat",
            "",
            "",
            "Secret default/azure not found"
        ],
        "{out}"
    );
    assert_eq!(
        &rows[1][..9],
        &[
            "embed",
            "True",
            "Synced",
            "azureopenai",
            "text_embedding",
            "embed",
            "",
            "",
            "endpoint is in sync"
        ],
        "{out}"
    );
    for r in &rows {
        assert!(
            r[9].ends_with('s') && r[9].trim_end_matches('s').parse::<u64>().is_ok(),
            "age {:?} in {out}",
            r[9]
        );
    }

    // without -o wide the priority-1 Message column is hidden; names, plural and category agree
    for args in [
        &["get", "iep"][..],
        &["get", "inferenceendpoints"],
        &["get", "elastic"],
        &["get", "inferenceendpoints.esinference.io"],
    ] {
        let out = kubectl(&k, args).await;
        let (cols, rows) = parse_table(&out);
        assert_eq!(
            cols,
            vec![
                "NAME",
                "READY",
                "REASON",
                "SERVICE",
                "TASK",
                "INFERENCE ID",
                "AGE"
            ],
            "{args:?}: {out}"
        );
        let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(names, vec!["chat", "embed"], "{args:?}: {out}");
    }
    let out = kubectl(&k, &["get", "iep", "embed"]).await;
    let (_, rows) = parse_table(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], "True");
    let out = kubectl(
        &k,
        &["get", "iep", "--sort-by=.spec.taskType", "-o", "wide"],
    )
    .await;
    assert!(out.contains("endpoint is in sync"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_describe_yaml_events_explain() {
    let Some((_emu, k)) = with_kubectl("kubectl_describe_yaml_events_explain").await else {
        return;
    };
    let out = kubectl(&k, &["describe", "iep", "chat"]).await;
    assert!(out.contains("Kind:         InferenceEndpoint"), "{out}");
    let events = out
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        events.contains("Warning")
            && events.contains("SecretNotFound")
            && events.contains("Secret default/azure not found"),
        "{out}"
    );
    assert!(
        events.contains("esinference.io/inference-operator"),
        "{out}"
    );
    let out = kubectl(&k, &["describe", "iep", "embed"]).await;
    assert!(out.contains("Events:") && out.contains("<none>"), "{out}");

    let out = kubectl(&k, &["get", "iep", "chat", "-o", "yaml"]).await;
    assert!(
        out.contains("kind: InferenceEndpoint") && out.contains("taskType: completion"),
        "{out}"
    );

    let out = kubectl(&k, &["get", "events"]).await;
    let (cols, rows) = parse_table(&out);
    assert_eq!(
        cols,
        vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{out}"
    );
    assert_eq!(
        &rows[0][1..],
        &[
            "Warning",
            "SecretNotFound",
            "inferenceendpoint/chat",
            "Secret default/azure not found"
        ]
    );

    let out = kubectl(&k, &["explain", "iep.spec"]).await;
    assert!(
        out.contains("KIND:       InferenceEndpoint") && out.contains("taskType"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_apply_example() {
    let Some((_emu, k)) = with_kubectl("kubectl_apply_example").await else {
        return;
    };
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/completion.yaml"
    );
    if !Path::new(example).is_file() {
        eprintln!("no {example}; skipping the apply check");
        return;
    }
    let out = kubectl(&k, &["apply", "-f", example]).await;
    assert!(
        out.contains("inferenceendpoint.esinference.io/azure-completion created"),
        "{out}"
    );
    let out = kubectl(&k, &["apply", "-f", example]).await;
    assert!(
        out.contains("inferenceendpoint.esinference.io/azure-completion unchanged"),
        "{out}"
    );
    let out = kubectl(&k, &["get", "iep", "azure-completion", "-o", "wide"]).await;
    let (_, rows) = parse_table(&out);
    assert_eq!(rows[0][4], "completion", "{out}");
}

/// Manual use: `KUBECTL_SANDBOX_SECS=600 cargo test -p inference-testenv --test kubectl
/// -- --ignored --nocapture hold_sandbox` prints a kubeconfig path to point kubectl at.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn hold_sandbox() {
    let emu = sandbox().await;
    let path = std::env::temp_dir().join("inference-testenv-sandbox.kubeconfig");
    emu.write_kubeconfig(&path).expect("kubeconfig");
    eprintln!("export KUBECONFIG={}", path.display());
    let secs: u64 = std::env::var("KUBECTL_SANDBOX_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
}

/// kubectl asks for strict field validation: a misspelled field (`azureOpenAi`) fails the apply
/// with the apiserver's strict decoding error; `--validate=warn` prints the warning and the
/// object then fails on the missing service block instead.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_apply_refuses_a_misspelled_field() {
    let Some((_emu, k)) = with_kubectl("kubectl_apply_refuses_a_misspelled_field").await else {
        return;
    };
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/completion.yaml"
    );
    let Ok(text) = std::fs::read_to_string(example) else {
        eprintln!("no {example}; skipping the typo check");
        return;
    };
    let manifest = k.kubeconfig.with_file_name("typo.yaml");
    std::fs::write(&manifest, text.replace("azureOpenAI:", "azureOpenAi:")).unwrap();
    let path = manifest.to_str().unwrap();

    let (ok, _, err) = tokio::task::block_in_place(|| k.run(&["apply", "-f", path]));
    assert!(!ok, "{err}");
    assert!(
        err.contains(r#"Error from server (BadRequest): error when creating"#)
            && err.contains(r#"InferenceEndpoint in version "v1alpha1" cannot be handled as a InferenceEndpoint: strict decoding error: unknown field "spec.azureOpenAi""#),
        "{err}"
    );

    let (ok, _, err) =
        tokio::task::block_in_place(|| k.run(&["apply", "--validate=warn", "-f", path]));
    assert!(!ok, "{err}");
    assert!(
        err.contains(r#"Warning: unknown field "spec.azureOpenAi""#)
            && err.contains("exactly one of azureOpenAI or service must be set"),
        "{err}"
    );
}

/// kubectl's typed client sends built-in types as protobuf and does not retry as JSON after a
/// 415 (client-go `rest/client.go` falls back only for CBOR), so the emulator decodes protobuf
/// Secrets and ConfigMaps: `kubectl create secret` and `kubectl create configmap` work. A kind it
/// does not decode (a Service) gets the server's 415, which kubectl prints.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_create_secret_and_configmap() {
    let Some((emu, k)) = with_kubectl("kubectl_create_secret_and_configmap").await else {
        return;
    };
    let out = kubectl(
        &k,
        &["create", "secret", "generic", "x", "--from-literal=k=v"],
    )
    .await;
    assert!(out.contains("secret/x created"), "{out}");
    let secret = emu.get_object("secrets", "default", "x").expect("secret x");
    assert_eq!(secret["data"], json!({"k": "dg=="}), "{secret}");
    assert_eq!(secret["type"], "Opaque", "{secret}");

    let out = kubectl(&k, &["create", "configmap", "c", "--from-literal=a=b"]).await;
    assert!(out.contains("configmap/c created"), "{out}");
    let cm = emu
        .get_object("configmaps", "default", "c")
        .expect("configmap c");
    assert_eq!(cm["data"], json!({"a": "b"}), "{cm}");

    let posts: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            (
                r.resource.unwrap_or_default(),
                r.content_type.unwrap_or_default(),
                r.status,
            )
        })
        .filter(|(res, _, _)| res == "secrets" || res == "configmaps")
        .collect();
    assert!(
        posts
            .iter()
            .all(|(_, ct, s)| ct == "application/vnd.kubernetes.protobuf" && *s == 201),
        "{posts:?}"
    );

    let create_svc = ["create", "service", "clusterip", "s", "--tcp=80:80"];
    let (ok, _, err) = tokio::task::block_in_place(|| k.run(&create_svc));
    assert!(!ok, "{err}");
    assert!(
        err.contains("the body of the request was in an unknown format - accepted media types include: application/json"),
        "{err}"
    );
}
