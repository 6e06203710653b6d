//! Conformance tests: the real kube-rs 5.0 client, watcher, finalizer helper and Recorder
//! against the in-memory emulator.

use futures::StreamExt;
use inference_testenv::kube::{EmulatorOptions, KubeEmulator};
use inference_testenv::poll;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Config, CustomResource, Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "example.test",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSpec {
    pub task_type: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i64>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    pub phase: Option<String>,
    pub observed_generation: Option<i64>,
}

const CRD: &str = include_str!("fixtures/widget-crd.yaml");
const T: Duration = Duration::from_secs(20);

async fn setup() -> (KubeEmulator, Client) {
    let emu = KubeEmulator::start(EmulatorOptions::default()).await;
    emu.register_crd_yaml(CRD);
    let config = Config::new(emu.url().parse().expect("url"));
    let client = Client::try_from(config).expect("client");
    (emu, client)
}

fn widget(name: &str) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            task_type: "completion".into(),
            name: "abc".into(),
            ..Default::default()
        },
    )
}

fn api_err(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Poll (50 ms) until the controller has reconciled widget `a` at `generation`.
async fn reconciled(api: &Api<Widget>, generation: i64) -> Widget {
    let what = format!("the controller to reconcile generation {generation}");
    let found = poll(T, Duration::from_millis(50), || async {
        let w = api.get("a").await.unwrap();
        let observed = w.status.as_ref().and_then(|s| s.observed_generation);
        if observed == Some(generation) {
            return Ok(w);
        }
        Err(format!("observedGeneration {observed:?}"))
    })
    .await;
    found.unwrap_or_else(|seen| panic!("timed out after {T:?} waiting for {what}; {seen}"))
}

async fn next<S, T, E>(s: &mut S) -> Result<T, E>
where
    S: futures::Stream<Item = Result<T, E>> + Unpin,
{
    tokio::time::timeout(T, s.next())
        .await
        .expect("timed out waiting for stream")
        .expect("stream ended")
}

/// Skip watcher events until InitDone.
async fn until_init_done<K, S>(s: &mut S)
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin,
{
    loop {
        if let watcher::Event::InitDone = next(s).await.expect("watcher error") {
            return;
        }
    }
}

#[tokio::test]
async fn watcher_sees_create_update_delete_in_order() {
    let (_emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    until_init_done(&mut stream).await;

    api.create(&PostParams::default(), &widget("a"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match next(&mut stream).await.unwrap() {
            watcher::Event::Apply(w) => {
                seen.push(format!("apply:{}:{:?}", w.name_any(), w.spec.replicas))
            }
            watcher::Event::Delete(w) => seen.push(format!("delete:{}", w.name_any())),
            other => panic!("unexpected {other:?}"),
        }
    }
    // replicas defaulted to 1 by the schema on create
    assert_eq!(seen, vec!["apply:a:Some(1)", "apply:a:Some(3)", "delete:a"]);
}

#[tokio::test]
async fn stale_replace_is_a_conflict_and_missing_rv_is_invalid() {
    let (_emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &widget("a"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await
    .unwrap();
    let err = api_err(
        api.replace("a", &PostParams::default(), &created)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on widgets.example.test \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let mut no_rv = created.clone();
    no_rv.metadata.resource_version = None;
    let err = api_err(
        api.replace("a", &PostParams::default(), &no_rv)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "widgets.example.test \"a\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update"
    );

    // a fresh replace works
    let mut cur = api.get("a").await.unwrap();
    cur.spec.replicas = Some(2);
    let replaced = api
        .replace("a", &PostParams::default(), &cur)
        .await
        .unwrap();
    assert_eq!(replaced.spec.replicas, Some(2));
    assert_eq!(replaced.metadata.generation, Some(2));

    let err = api_err(
        api.create(&PostParams::default(), &widget("a"))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.message, "widgets.example.test \"a\" already exists");
    let err = api_err(api.get("nope").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "widgets.example.test \"nope\" not found");
    assert!(api.get_opt("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn too_old_resource_version_gives_410_event_and_watcher_relists() {
    let (emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &widget("a"))
        .await
        .unwrap();
    let old_rv = api.get("a").await.unwrap().resource_version().unwrap();
    api.create(&PostParams::default(), &widget("b"))
        .await
        .unwrap();
    emu.compact();

    // Raw watch from a compacted RV: HTTP 200 with one ERROR event (code 410, reason Expired).
    let mut raw = api
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    match next(&mut raw).await.unwrap() {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message
                    .starts_with(&format!("too old resource version: {old_rv} (")),
                "{}",
                e.message
            );
        }
        other => panic!("expected ERROR, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(T, raw.next()).await.unwrap().is_none(),
        "stream closes after the error"
    );

    // A running watcher whose RV gets compacted re-lists and keeps going.
    let mut stream = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    until_init_done(&mut stream).await;
    // Keep the watcher from reconnecting until after the write + compaction.
    emu.fail_next_matching(1, 500, Some("GET"), Some("watch=true"));
    emu.close_all_watches();
    api.create(&PostParams::default(), &widget("c"))
        .await
        .unwrap();
    emu.compact();

    let mut saw_410 = false;
    let mut relisted = Vec::new();
    loop {
        match next(&mut stream).await {
            Err(watcher::Error::WatchError(s)) if s.code == 410 => saw_410 = true,
            Err(_) => {}
            Ok(watcher::Event::Init) => relisted.clear(),
            Ok(watcher::Event::InitApply(w)) => relisted.push(w.name_any()),
            Ok(watcher::Event::InitDone) => break,
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_410, "watcher must see the 410 ERROR event");
    assert_eq!(relisted, vec!["a", "b", "c"]);
    api.create(&PostParams::default(), &widget("d"))
        .await
        .unwrap();
    match next(&mut stream).await.unwrap() {
        watcher::Event::Apply(w) => assert_eq!(w.name_any(), "d"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn status_subresource_splits_both_ways() {
    let (_emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    let mut w = widget("a");
    w.status = Some(WidgetStatus {
        phase: Some("Ready".into()),
        observed_generation: None,
    });
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.status, None, "status is dropped on create");

    // spec in a /status patch is ignored; status is applied; generation unchanged
    let s = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}, "status": {"phase": "Ready", "observedGeneration": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(s.spec.replicas, Some(1));
    assert_eq!(s.status.as_ref().unwrap().phase.as_deref(), Some("Ready"));
    assert_eq!(s.metadata.generation, Some(1));

    // status in a main-resource patch is ignored
    let m = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}, "status": {"phase": "Failed"}})),
        )
        .await
        .unwrap();
    assert_eq!(m.spec.replicas, Some(2));
    assert_eq!(m.status.as_ref().unwrap().phase.as_deref(), Some("Ready"));

    // a no-op status write does not bump resourceVersion
    let again = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(again.resource_version(), m.resource_version());

    // status is validated against the status schema
    let err = api_err(
        api.patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bogus"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Widget.example.test \"a\" is invalid: [status.phase: Unsupported value: \"Bogus\": supported values: \"Pending\", \"Ready\", \"Failed\", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"
    );

    // server-side apply to /status: status.phase is owned by the merge-patch manager
    // ("unknown": kube-rs sends no User-Agent and no fieldManager), so a changed value conflicts...
    let apply = Patch::Apply(
        json!({"apiVersion": "example.test/v1", "kind": "Widget", "status": {"phase": "Pending"}}),
    );
    let err = api_err(
        api.patch_status("a", &PatchParams::apply("ctrl"), &apply)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"unknown\" using example.test/v1: .status.phase"
    );
    // ...unless forced
    let applied = api
        .patch_status("a", &PatchParams::apply("ctrl").force(), &apply)
        .await
        .unwrap();
    assert_eq!(applied.status.unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(applied.spec.replicas, Some(2));
}

#[tokio::test]
async fn generation_semantics() {
    let (_emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    let c = api
        .create(&PostParams::default(), &widget("a"))
        .await
        .unwrap();
    assert_eq!(c.metadata.generation, Some(1));
    assert!(c.uid().is_some());
    assert!(c.metadata.creation_timestamp.is_some());

    let l = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"k": "v"}, "finalizers": ["example.test/f"]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        l.metadata.generation,
        Some(1),
        "metadata changes do not bump generation"
    );
    assert_ne!(l.resource_version(), c.resource_version());

    let s = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(2));

    let st = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        st.metadata.generation,
        Some(2),
        "status changes do not bump generation"
    );

    let d = api.delete("a", &DeleteParams::default()).await.unwrap();
    let d = d
        .left()
        .expect("object with finalizers is returned, not a Status");
    assert!(d.metadata.deletion_timestamp.is_some());
    assert_eq!(
        d.metadata.generation,
        Some(3),
        "setting deletionTimestamp bumps generation"
    );
}

#[tokio::test]
async fn finalizer_helper_add_cleanup_and_deletion() {
    let (_emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    const FIN: &str = "example.test/cleanup";
    let created = api
        .create(&PostParams::default(), &widget("a"))
        .await
        .unwrap();
    let start_rv = created.resource_version().unwrap();

    // 1st call: no finalizer yet -> JSON patch with `test /metadata/finalizers null` + add
    finalizer(&api, FIN, Arc::new(created), |_ev| async {
        Ok::<_, kube::Error>(Action::await_change())
    })
    .await
    .unwrap();
    let obj = api.get("a").await.unwrap();
    assert_eq!(obj.finalizers(), &[FIN.to_string()]);

    // 2nd call: Apply reconcile runs
    let applied = Arc::new(AtomicBool::new(false));
    let a2 = applied.clone();
    finalizer(&api, FIN, Arc::new(obj), |ev| async move {
        if let FinalizerEvent::Apply(_) = ev {
            a2.store(true, Ordering::SeqCst);
        }
        Ok::<_, kube::Error>(Action::await_change())
    })
    .await
    .unwrap();
    assert!(applied.load(Ordering::SeqCst));

    // delete: marked, not removed
    let marked = api
        .delete("a", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(api.get_opt("a").await.unwrap().is_some());

    // adding a finalizer while deleting is rejected
    let err = api_err(
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": [FIN, "example.test/other"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "Widget.example.test \"a\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.test/other\"}"
    );

    // cleanup removes the finalizer, and the object goes away
    let cleaned = Arc::new(AtomicBool::new(false));
    let c2 = cleaned.clone();
    let obj = api.get("a").await.unwrap();
    finalizer(&api, FIN, Arc::new(obj), |ev| async move {
        if let FinalizerEvent::Cleanup(_) = ev {
            c2.store(true, Ordering::SeqCst);
        }
        Ok::<_, kube::Error>(Action::await_change())
    })
    .await
    .unwrap();
    assert!(cleaned.load(Ordering::SeqCst));
    assert!(api.get_opt("a").await.unwrap().is_none());

    // the watch history: ADDED (created), MODIFIED (finalizer), MODIFIED (deleting), DELETED
    let mut raw = api
        .watch(&WatchParams::default(), &start_rv)
        .await
        .unwrap()
        .boxed();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        match next(&mut raw).await.unwrap() {
            WatchEvent::Modified(_) => kinds.push("MODIFIED".to_string()),
            WatchEvent::Deleted(w) => {
                // DELETED carries the last stored state: old finalizers + deletionTimestamp
                assert_eq!(w.finalizers(), &[FIN.to_string()]);
                assert!(w.metadata.deletion_timestamp.is_some());
                kinds.push("DELETED".to_string());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, vec!["MODIFIED", "MODIFIED", "DELETED"]);

    // deleting an object without finalizers returns a Status
    api.create(&PostParams::default(), &widget("b"))
        .await
        .unwrap();
    let st = api
        .delete("b", &DeleteParams::default())
        .await
        .unwrap()
        .right()
        .expect("Status");
    assert_eq!(st.details.unwrap().name, "b");
    let err = api_err(api.delete("b", &DeleteParams::default()).await.unwrap_err());
    assert_eq!(err.reason, "NotFound");
}

#[tokio::test]
async fn schema_and_cel_rejections_have_apiserver_messages() {
    let (_emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    let dynamic: Api<DynamicObject> = Api::namespaced_with(
        api.clone().into_client(),
        "default",
        &ApiResource::erase::<Widget>(&()),
    );
    let create = |name: &str, spec: serde_json::Value| {
        let dynamic = dynamic.clone();
        let name = name.to_string();
        async move {
            let w: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "example.test/v1", "kind": "Widget",
                "metadata": {"name": name}, "spec": spec
            }))
            .unwrap();
            dynamic.create(&PostParams::default(), &w).await
        }
    };

    let err = api_err(
        create("e1", json!({"taskType": "foo", "name": "abc"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert_eq!(
        err.message,
        "Widget.example.test \"e1\" is invalid: [spec.taskType: Unsupported value: \"foo\": supported values: \"text_embedding\", \"completion\", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"
    );
    let d = err.details.as_ref().unwrap();
    assert_eq!(
        (d.name.as_str(), d.group.as_str(), d.kind.as_str()),
        ("e1", "example.test", "Widget")
    );
    assert_eq!(d.causes[0].reason, "FieldValueNotSupported");
    assert_eq!(d.causes[0].field, "spec.taskType");

    let err = api_err(
        create("e2", json!({"taskType": "completion", "name": "Foo"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Widget.example.test \"e2\" is invalid: spec.name: Invalid value: \"Foo\": spec.name in body should match '^[a-z]+$'"
    );

    let err = api_err(
        create(
            "e3",
            json!({"taskType": "completion", "name": "abc", "replicas": 9}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Widget.example.test \"e3\" is invalid: spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 5"
    );

    // CEL rule with fieldPath: 1.30–1.34 show the schema type of the rule's node (`spec`, an
    // object) as the value (apiextensions-apiserver `schema/cel/validation.go`).
    let err = api_err(
        create(
            "e4",
            json!({"taskType": "completion", "name": "abc", "replicas": 2, "minReplicas": 4}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Widget.example.test \"e4\" is invalid: spec.minReplicas: Invalid value: \"object\": minReplicas must not exceed replicas"
    );

    // schema errors of blocking types suppress CEL and add the "not checked" error
    let err = api_err(
        create(
            "e5",
            json!({"taskType": "foo", "name": "abc", "replicas": 2, "minReplicas": 4}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Widget.example.test \"e5\" is invalid: [spec.taskType: Unsupported value: \"foo\": supported values: \"text_embedding\", \"completion\", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"
    );

    // required
    let err = api_err(
        create("e6", json!({"taskType": "completion"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.message, "Widget.example.test \"e6\" is invalid: [spec.name: Required value, <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]");

    // oldSelf transition rule: skipped on create, enforced on update
    create(
        "ok",
        json!({"taskType": "completion", "name": "abc", "unknownField": 1}),
    )
    .await
    .unwrap();
    let stored = api.get("ok").await.unwrap();
    assert_eq!(stored.spec.replicas, Some(1), "defaults applied");
    let err = api_err(
        api.patch(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"name": "other"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Widget.example.test \"ok\" is invalid: spec.name: Invalid value: \"string\": name is immutable"
    );
}

#[tokio::test]
async fn metadata_watch_of_secrets() {
    let (emu, client) = setup().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let metas: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), "default");
    let mut stream = watcher(metas, watcher::Config::default()).boxed();
    until_init_done(&mut stream).await;

    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds", "labels": {"app": "x"}},
        "stringData": {"key": "value"}
    }))
    .unwrap();
    let created = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(
        created.data.unwrap()["key"].0,
        b"value".to_vec(),
        "stringData is folded into data"
    );
    match next(&mut stream).await.unwrap() {
        watcher::Event::Apply(m) => {
            assert_eq!(m.name_any(), "creds");
            assert_eq!(m.types.as_ref().unwrap().kind, "PartialObjectMetadata");
            assert_eq!(m.labels()["app"], "x");
        }
        other => panic!("unexpected {other:?}"),
    }
    secrets
        .delete("creds", &DeleteParams::default())
        .await
        .unwrap();
    match next(&mut stream).await.unwrap() {
        watcher::Event::Delete(m) => assert_eq!(m.name_any(), "creds"),
        other => panic!("unexpected {other:?}"),
    }
    let reqs = emu.requests();
    assert!(reqs.iter().any(|r| r.resource.as_deref() == Some("secrets")
        && !r.watch
        && r.accept
            .as_deref()
            .is_some_and(|a| a.contains("as=PartialObjectMetadataList"))));
    assert!(reqs
        .iter()
        .any(|r| r.resource.as_deref() == Some("secrets") && r.watch));
}

#[tokio::test]
async fn recorder_publishes_then_patches_a_series() {
    let (emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client.clone(), "default");
    let w = api
        .create(&PostParams::default(), &widget("a"))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "widget-controller".into(),
            instance: Some("pod-1".into()),
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some("all good".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let oref = w.object_ref(&());
    recorder.publish(&ev, &oref).await.unwrap();
    recorder.publish(&ev, &oref).await.unwrap();

    let events: Api<K8sEvent> = Api::namespaced(client, "default");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Reconciled"));
    assert_eq!(e.note.as_deref(), Some("all good"));
    assert_eq!(e.series.as_ref().unwrap().count, 2);
    assert_eq!(e.regarding.as_ref().unwrap().name.as_deref(), Some("a"));

    let writes: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.resource.as_deref() == Some("events") && r.method != "GET")
        .collect();
    assert_eq!(writes.len(), 2);
    assert_eq!(writes[0].method, "POST");
    assert_eq!(writes[0].status, 201);
    assert_eq!(writes[1].method, "PATCH");
    assert_eq!(
        writes[1].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(writes[1].status, 200);
    assert_eq!(emu.write_count("events", None), 2);
}

#[tokio::test]
async fn discovery_finds_builtins_and_crd() {
    let (_emu, client) = setup().await;
    let d = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    let (ar, caps) = d
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "example.test",
            "v1",
            "Widget",
        ))
        .unwrap();
    assert_eq!(ar.plural, "widgets");
    assert!(caps
        .subresources
        .iter()
        .any(|(s, _)| s.plural == "widgets/status" || s.plural == "status"));
    assert!(d.has_group("coordination.k8s.io"));
    assert!(d.has_group("events.k8s.io"));
    let agg = kube::discovery::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    assert!(agg.has_group("example.test"));
    assert!(agg
        .resolve_gvk(&kube::api::GroupVersionKind::gvk("", "v1", "Secret"))
        .is_some());
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
}

#[tokio::test]
async fn selectors_pagination_and_all_namespaces() {
    let (emu, client) = setup().await;
    emu.create_namespace("other");
    let dflt: Api<Widget> = Api::namespaced(client.clone(), "default");
    let other: Api<Widget> = Api::namespaced(client.clone(), "other");
    for (i, api) in [&dflt, &dflt, &dflt, &other].iter().enumerate() {
        let mut w = widget(&format!("w{i}"));
        w.metadata.labels = Some(
            [(
                "tier".to_string(),
                if i % 2 == 0 { "web" } else { "db" }.to_string(),
            )]
            .into(),
        );
        api.create(&PostParams::default(), &w).await.unwrap();
    }
    let all: Api<Widget> = Api::all(client.clone());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        4
    );
    let web = all
        .list(&ListParams::default().labels("tier in (web)"))
        .await
        .unwrap();
    assert_eq!(
        web.items.iter().map(|w| w.name_any()).collect::<Vec<_>>(),
        vec!["w0", "w2"]
    );
    let not_web = dflt
        .list(&ListParams::default().labels("tier!=web"))
        .await
        .unwrap();
    assert_eq!(not_web.items.len(), 1);
    let by_name = all
        .list(&ListParams::default().fields("metadata.name=w3"))
        .await
        .unwrap();
    assert_eq!(by_name.items[0].namespace().as_deref(), Some("other"));
    let err = api_err(
        all.list(&ListParams::default().fields("spec.name=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "field label not supported: spec.name")
    );

    let p1 = all.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(p1.items.len(), 3);
    let token = p1.metadata.continue_.clone().unwrap();
    let p2 = all
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(p2.items.len(), 1);
    assert_eq!(p1.metadata.resource_version, p2.metadata.resource_version);
    assert!(p2.metadata.continue_.as_deref().unwrap_or("").is_empty());

    // namespace must exist on create
    let missing: Api<Widget> = Api::namespaced(client, "missing");
    let err = api_err(
        missing
            .create(&PostParams::default(), &widget("x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"missing\" not found")
    );
}

#[tokio::test]
async fn server_side_apply_and_patch_types() {
    let (_emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    let body = json!({"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "a"},
                      "spec": {"taskType": "completion", "name": "abc", "replicas": 2}});
    let created = api
        .patch("a", &PatchParams::apply("mgr-a"), &Patch::Apply(&body))
        .await
        .unwrap();
    assert_eq!(created.spec.replicas, Some(2));
    let mf = created.metadata.managed_fields.as_ref().unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("mgr-a"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    // another manager changing an owned field conflicts
    let body_b = json!({"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "a"},
                        "spec": {"taskType": "completion", "name": "abc", "replicas": 3}});
    let err = api_err(
        api.patch("a", &PatchParams::apply("mgr-b"), &Patch::Apply(&body_b))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"mgr-a\": .spec.replicas"
    );
    assert_eq!(
        err.details.unwrap().causes[0].reason,
        "FieldManagerConflict"
    );
    // force takes ownership
    let forced = api
        .patch(
            "a",
            &PatchParams::apply("mgr-b").force(),
            &Patch::Apply(&body_b),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.replicas, Some(3));

    // fieldManager is required for apply
    let err = api_err(
        api.patch("a", &PatchParams::default(), &Patch::Apply(&body))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );

    // JSON patch: failing test op is 422 with the generic message
    let err = api_err(
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(
                    json!([{"op": "test", "path": "/spec/replicas", "value": 99}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "the server rejected our request due to an error in our request"
    );

    // strategic merge on a CR is 415
    let err = api_err(
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.reason.as_str()),
        (415, "UnsupportedMediaType")
    );

    // patch with a stale resourceVersion is a conflict
    let err = api_err(
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.reason, "Conflict");

    // a patch of a missing object is 404
    let err = api_err(
        api.patch("zz", &PatchParams::default(), &Patch::Merge(json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.reason, "NotFound");
}

#[tokio::test]
async fn faults_and_streaming_list() {
    let (emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    emu.fail_next(1, 500);
    let err = api_err(api.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(err.code, 500);
    // kube's default client retries 429/503/504 (up to 15 times), so a short burst is invisible
    emu.clear_requests();
    emu.fail_next(2, 429);
    assert!(api.list(&ListParams::default()).await.is_ok());
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 200]);

    api.create(&PostParams::default(), &widget("a"))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut got = Vec::new();
    loop {
        match next(&mut stream).await.unwrap() {
            watcher::Event::Init => {}
            watcher::Event::InitApply(w) => got.push(w.name_any()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, vec!["a"]);
    api.create(&PostParams::default(), &widget("b"))
        .await
        .unwrap();
    match next(&mut stream).await.unwrap() {
        watcher::Event::Apply(w) => assert_eq!(w.name_any(), "b"),
        other => panic!("unexpected {other:?}"),
    }
    // closing watches: the watcher re-watches from its RV without a re-list
    emu.close_all_watches();
    api.create(&PostParams::default(), &widget("c"))
        .await
        .unwrap();
    match next(&mut stream).await.unwrap() {
        watcher::Event::Apply(w) => assert_eq!(w.name_any(), "c"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn controller_status_writes_settle_without_a_hot_loop() {
    use kube::runtime::Controller;
    let (emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client.clone(), "default");
    async fn reconcile(w: Arc<Widget>, api: Arc<Api<Widget>>) -> Result<Action, kube::Error> {
        let status =
            json!({"status": {"phase": "Ready", "observedGeneration": w.metadata.generation}});
        api.patch_status(
            &w.name_any(),
            &PatchParams::default(),
            &Patch::Merge(status),
        )
        .await?;
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<Widget>, _: &kube::Error, _: Arc<Api<Widget>>) -> Action {
        Action::requeue(Duration::from_millis(200))
    }
    let ctl = Controller::new(api.clone(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(api.clone()))
        .for_each(|_| async {});
    let handle = tokio::spawn(ctl);

    api.create(&PostParams::default(), &widget("a"))
        .await
        .unwrap();
    let w = reconciled(&api, 1).await;
    assert_eq!(w.status.unwrap().phase.as_deref(), Some("Ready"));
    // A spec change is reconciled too.
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    reconciled(&api, 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let writes = emu.write_count("widgets", Some("status"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        emu.write_count("widgets", Some("status")),
        writes,
        "status writes settled"
    );
    assert!(
        writes <= 5,
        "a no-op status write must not trigger another reconcile ({writes} writes)"
    );
    handle.abort();
}

#[tokio::test]
async fn label_selector_watch_sees_added_and_deleted_transitions() {
    let (_emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    let mut w = widget("a");
    w.metadata.labels = Some([("tier".to_string(), "db".to_string())].into());
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    let rv = created.resource_version().unwrap();
    let mut raw = api
        .watch(&WatchParams::default().labels("tier=web"), &rv)
        .await
        .unwrap()
        .boxed();
    let label = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"tier": v}}}));
    api.patch("a", &PatchParams::default(), &label("web"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    let moved = api
        .patch("a", &PatchParams::default(), &label("db"))
        .await
        .unwrap();
    match next(&mut raw).await.unwrap() {
        WatchEvent::Added(o) => assert_eq!(o.labels()["tier"], "web"),
        other => panic!("expected ADDED, got {other:?}"),
    }
    match next(&mut raw).await.unwrap() {
        WatchEvent::Modified(o) => assert_eq!(o.spec.replicas, Some(2)),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    match next(&mut raw).await.unwrap() {
        WatchEvent::Deleted(o) => {
            // the old (matching) object, with the new resourceVersion
            assert_eq!(o.labels()["tier"], "web");
            assert_eq!(o.resource_version(), moved.resource_version());
        }
        other => panic!("expected DELETED, got {other:?}"),
    }
}

#[tokio::test]
async fn leases_and_ssa_conflicts_between_identities() {
    use k8s_openapi::api::coordination::v1::Lease;
    let (_emu, client) = setup().await;
    let leases: Api<Lease> = Api::namespaced(client, "default");
    // PUT creates a missing Lease
    let l: Lease =
        serde_json::from_value(json!({"metadata": {"name": "leader"}, "spec": {}})).unwrap();
    let created = leases
        .replace("leader", &PostParams::default(), &l)
        .await
        .unwrap();
    assert!(created.resource_version().is_some());

    let take = |who: &str| {
        Patch::Apply(
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "spec": {"holderIdentity": who, "leaseDurationSeconds": 15}}),
        )
    };
    leases
        .patch("leader", &PatchParams::apply("lm-a"), &take("a"))
        .await
        .unwrap();
    let err = api_err(
        leases
            .patch("leader", &PatchParams::apply("lm-b"), &take("b"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert!(
        err.message.starts_with(
            "Apply failed with 1 conflict: conflict with \"lm-a\": .spec.holderIdentity"
        ),
        "{}",
        err.message
    );
    // strategic merge patch is accepted on built-ins; it releases the lease
    let released = leases
        .patch(
            "leader",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"holderIdentity": null}})),
        )
        .await
        .unwrap();
    assert_eq!(released.spec.unwrap().holder_identity, None);

    let err = api_err(
        leases
            .patch(
                "leader",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"leaseDurationSeconds": 0}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Lease.coordination.k8s.io \"leader\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    );
}

#[tokio::test]
async fn metadata_only_get_and_secret_rules() {
    let (_emu, client) = setup().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "s", "annotations": {"a": "b"}}, "data": {"k": "dg=="}}),
    )
    .unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
    let metas: Api<PartialObjectMeta<Secret>> = Api::namespaced(client, "default");
    let m = metas.get("s").await.unwrap();
    assert_eq!(m.annotations()["a"], "b");
    assert_eq!(m.types.unwrap().api_version, "meta.k8s.io/v1");
    // Secrets accept unconditional updates (no resourceVersion)
    let mut s2 = secrets.get("s").await.unwrap();
    s2.metadata.resource_version = None;
    s2.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    let r = secrets
        .replace("s", &PostParams::default(), &s2)
        .await
        .unwrap();
    assert_eq!(r.labels()["x"], "y");
    assert_eq!(r.type_.as_deref(), Some("Opaque"));
}

/// The operator's generated CRD (if present) registers, its CEL rules compile, and it is served.
#[tokio::test]
async fn operator_crd_registers_and_validates() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds/inferenceendpoint.yaml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipping: {} not found", path.display());
        return;
    };
    let (emu, client) = setup().await;
    emu.register_crd_yaml(&text);
    let d = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    let (ar, _) = d
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "esinference.io",
            "v1alpha1",
            "InferenceEndpoint",
        ))
        .expect("InferenceEndpoint served");
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": "x"}, "spec": {}
    }))
    .unwrap();
    let err = api_err(api.create(&PostParams::default(), &obj).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message
            .starts_with("InferenceEndpoint.esinference.io \"x\" is invalid: "),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("spec.taskType: Required value"),
        "{}",
        err.message
    );

    // The README's example object is accepted (its CEL rules evaluate), and taskType is immutable.
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/text-embedding.yaml");
    let Ok(text) = std::fs::read_to_string(&example) else {
        return;
    };
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let Some(iep) = docs.into_iter().find(|d| d["kind"] == "InferenceEndpoint") else {
        return;
    };
    let obj: DynamicObject = serde_json::from_value(iep).unwrap();
    let name = obj.name_any();
    api.create(&PostParams::default(), &obj).await.unwrap();
    let err = api_err(
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taskType": "completion"}})),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        err.message.contains("taskType is immutable"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn kubeconfig_and_bookmarks() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let emu = KubeEmulator::start(EmulatorOptions {
        bookmark_interval: Some(Duration::from_millis(100)),
        namespaces: vec!["team-a".into()],
        ..Default::default()
    })
    .await;
    let kc = Kubeconfig::from_yaml(&emu.kubeconfig_yaml()).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = Client::try_from(config).unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert!(
        names.contains(&"default".to_string()) && names.contains(&"team-a".to_string()),
        "{names:?}"
    );

    let secrets: Api<Secret> = Api::default_namespaced(client);
    let rv = secrets
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut raw = secrets
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match next(&mut raw).await.unwrap() {
        WatchEvent::Bookmark(b) => {
            assert_eq!(b.types.kind, "Secret");
            assert_eq!(b.metadata.resource_version, rv);
        }
        other => panic!("expected BOOKMARK, got {other:?}"),
    }
}

/// The operator's CRD, registered on a fresh emulator, with a dynamic client for it.
async fn operator_crd_setup() -> Option<(KubeEmulator, Api<DynamicObject>)> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds/inferenceendpoint.yaml");
    let text = std::fs::read_to_string(&path).ok()?;
    let (emu, client) = setup().await;
    emu.register_crd_yaml(&text);
    let ar = ApiResource {
        group: "esinference.io".into(),
        version: "v1alpha1".into(),
        api_version: "esinference.io/v1alpha1".into(),
        kind: "InferenceEndpoint".into(),
        plural: "inferenceendpoints".into(),
    };
    Some((emu, Api::namespaced_with(client, "default", &ar)))
}

/// `insert_unvalidated` keeps what a real apiserver serves after a looser CRD version stored it:
/// an int32 field out of range is returned verbatim by GET, LIST and a watch, with server-set
/// metadata as on create.
#[tokio::test]
async fn insert_unvalidated_stores_the_raw_form_and_notifies_watchers() {
    let Some((emu, api)) = operator_crd_setup().await else {
        eprintln!("skipping: crds/inferenceendpoint.yaml not found");
        return;
    };
    let mut raw = api
        .watch(&WatchParams::default(), &emu.resource_version().to_string())
        .await
        .unwrap()
        .boxed();
    let spec = json!({
        "taskType": "text_embedding",
        "elasticsearch": {"url": "https://es:9200", "credentialsSecretRef": {"name": "es"}},
        "azureOpenAI": {"resourceName": "r", "deploymentId": "d", "apiVersion": "2024-10-21",
                        "apiKeySecretRef": {"name": "a", "key": "k"}, "dimensions": 2147483648u64}
    });
    let stored = emu.insert_unvalidated(
        "inferenceendpoints",
        "default",
        json!({"metadata": {"name": "big"}, "spec": spec}),
    );
    assert_eq!(stored["spec"], spec, "stored as given, not validated");
    assert_eq!(stored["apiVersion"], "esinference.io/v1alpha1");
    assert_eq!(stored["kind"], "InferenceEndpoint");
    let md = &stored["metadata"];
    assert_eq!(md["namespace"], "default");
    assert_eq!(md["generation"], 1);
    assert!(md["uid"].as_str().is_some_and(|u| !u.is_empty()), "{md}");
    assert!(md["creationTimestamp"].is_string(), "{md}");
    assert_eq!(
        md["resourceVersion"].as_str(),
        Some(emu.resource_version().to_string().as_str())
    );

    let got = api.get("big").await.unwrap();
    assert_eq!(got.data["spec"]["azureOpenAI"]["dimensions"], 2147483648u64);
    assert_eq!(got.data["spec"], spec);
    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].data["spec"], spec);
    match next(&mut raw).await.unwrap() {
        WatchEvent::Added(o) => {
            assert_eq!(o.name_any(), "big");
            assert_eq!(o.data["spec"], spec);
        }
        other => panic!("expected ADDED, got {other:?}"),
    }
    // The same object through the normal create path is refused: the bypass is the point.
    let mut again: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
        "metadata": {"name": "big2"}, "spec": spec
    }))
    .unwrap();
    again.data["spec"]["azureOpenAI"]["dimensions"] = json!(-1);
    let err = api_err(
        api.create(&PostParams::default(), &again)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422, "{}", err.message);
}

/// The emulated release decides how a failed CEL rule shows its value: the schema type up to
/// 1.34, the value itself (scalars) or nothing (objects) from 1.35 (kubernetes/kubernetes#132798,
/// #133832). `/version` reports the release.
#[tokio::test]
async fn cel_failure_value_follows_the_emulated_release() {
    use inference_testenv::kube::KubeVersion;
    for (version, on_object, on_string) in [
        (
            KubeVersion::new(1, 30, 0),
            "spec.minReplicas: Invalid value: \"object\": minReplicas must not exceed replicas",
            "spec.name: Invalid value: \"string\": name is immutable",
        ),
        (
            KubeVersion::DEFAULT,
            "spec.minReplicas: Invalid value: \"object\": minReplicas must not exceed replicas",
            "spec.name: Invalid value: \"string\": name is immutable",
        ),
        (
            KubeVersion::new(1, 35, 0),
            "spec.minReplicas: Invalid value: minReplicas must not exceed replicas",
            "spec.name: Invalid value: \"other\": name is immutable",
        ),
    ] {
        let emu = KubeEmulator::start(EmulatorOptions {
            kubernetes_version: version,
            ..Default::default()
        })
        .await;
        emu.register_crd_yaml(CRD);
        let client = Client::try_from(Config::new(emu.url().parse().unwrap())).unwrap();
        let info = client.apiserver_version().await.unwrap();
        assert_eq!(
            (info.major.as_str(), info.minor.clone()),
            ("1", version.minor.to_string())
        );
        assert!(info.git_version.starts_with(&version.git_version()));
        let api: Api<Widget> = Api::namespaced(client, "default");
        let mut w = widget("w");
        w.spec.replicas = Some(2);
        w.spec.min_replicas = Some(4);
        let err = api_err(api.create(&PostParams::default(), &w).await.unwrap_err());
        assert_eq!(
            err.message,
            format!("Widget.example.test \"w\" is invalid: {on_object}"),
            "{version:?}"
        );
        api.create(&PostParams::default(), &widget("w"))
            .await
            .unwrap();
        let err = api_err(
            api.patch(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"name": "other"}})),
            )
            .await
            .unwrap_err(),
        );
        assert_eq!(
            err.message,
            format!("Widget.example.test \"w\" is invalid: {on_string}"),
            "{version:?}"
        );
    }
}

/// One raw request to the emulator: status, `Warning` header values, JSON body.
async fn raw(
    emu: &KubeEmulator,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, Vec<String>, serde_json::Value) {
    let resp = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", emu.url()),
        )
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, warnings, body)
}

const WIDGETS: &str = "/apis/example.test/v1/namespaces/default/widgets";

/// fieldValidation on create and update: Strict refuses unknown and duplicate fields with the
/// apiserver's 400, Warn (also the default) accepts, prunes and warns, Ignore prunes silently.
#[tokio::test]
async fn field_validation_on_create_and_update() {
    let (emu, _client) = setup().await;
    let typo = |name: &str| {
        format!(
            r#"{{"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {{"name": "{name}", "bogus": 1}},
                "spec": {{"taskType": "completion", "name": "abc", "name": "abd", "replica": 2, "tags": ["a"], "extra": {{"x": 1}}}}}}"#
        )
    };
    let errors = r#"duplicate field "spec.name", unknown field "metadata.bogus", unknown field "spec.extra", unknown field "spec.replica""#;

    let (code, warnings, body) = raw(
        &emu,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Strict"),
        "application/json",
        &typo("s"),
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    assert_eq!(
        body["message"],
        format!("Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: {errors}")
    );
    assert!(warnings.is_empty());
    assert!(emu.get_object("widgets", "default", "s").is_none());

    for query in ["?fieldValidation=Warn", ""] {
        let name = format!("w{}", query.len());
        let (code, warnings, body) = raw(
            &emu,
            "POST",
            &format!("{WIDGETS}{query}"),
            "application/json",
            &typo(&name),
        )
        .await;
        assert_eq!(code, 201, "{body}");
        assert_eq!(
            warnings,
            vec![
                r#"299 - "duplicate field \"spec.name\"""#,
                r#"299 - "unknown field \"metadata.bogus\"""#,
                r#"299 - "unknown field \"spec.extra\"""#,
                r#"299 - "unknown field \"spec.replica\"""#,
            ],
            "{query:?}"
        );
        // pruned, the last duplicate wins, defaults applied
        assert_eq!(
            body["spec"],
            json!({"taskType": "completion", "name": "abd", "replicas": 1, "tags": ["a"]})
        );
    }

    let (code, warnings, _) = raw(
        &emu,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Ignore"),
        "application/json",
        &typo("i"),
    )
    .await;
    assert_eq!((code, warnings.len()), (201, 0));

    let (code, _, body) = raw(
        &emu,
        "POST",
        &format!("{WIDGETS}?fieldValidation=strict"),
        "application/json",
        &typo("x"),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"strict\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
    );

    // update: the same rules on PUT
    let rv = emu.get_object("widgets", "default", "i").unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let put = format!(
        r#"{{"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {{"name": "i", "resourceVersion": "{rv}"}},
            "spec": {{"taskType": "completion", "name": "abd", "replica": 3}}}}"#
    );
    let (code, _, body) = raw(
        &emu,
        "PUT",
        &format!("{WIDGETS}/i?fieldValidation=Strict"),
        "application/json",
        &put,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        body["message"],
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.replica\""
    );
    let (code, warnings, _) = raw(
        &emu,
        "PUT",
        &format!("{WIDGETS}/i"),
        "application/json",
        &put,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(warnings, vec![r#"299 - "unknown field \"spec.replica\"""#]);
}

/// fieldValidation on JSON merge and JSON patches (422 on field `patch` when strict), and
/// server-side apply, which refuses undeclared fields whatever the directive (500, no reason).
#[tokio::test]
async fn field_validation_on_patch_and_apply() {
    let (emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &widget("p"))
        .await
        .unwrap();

    let merge = r#"{"spec": {"replica": 2, "tags": ["a"], "tags": ["b"]}}"#;
    let (code, _, body) = raw(
        &emu,
        "PATCH",
        &format!("{WIDGETS}/p?fieldValidation=Strict"),
        "application/merge-patch+json",
        merge,
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (422, Some("Invalid")));
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(r#" "" is invalid: patch: Invalid value: "{"#),
        "{message}"
    );
    assert!(
        message.ends_with(
            r#": strict decoding error: duplicate field "spec.tags", unknown field "spec.replica""#
        ),
        "{message}"
    );
    assert_eq!(body["details"]["causes"][0]["field"], "patch");

    let (code, warnings, body) = raw(
        &emu,
        "PATCH",
        &format!("{WIDGETS}/p"),
        "application/merge-patch+json",
        merge,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        warnings,
        vec![
            r#"299 - "duplicate field \"spec.tags\"""#,
            r#"299 - "unknown field \"spec.replica\"""#
        ]
    );
    assert_eq!(body["spec"]["tags"], json!(["b"]));
    assert!(body["spec"].get("replica").is_none());

    let json_patch = r#"[{"op": "add", "path": "/spec/replica", "value": 2, "foo": "bar"}]"#;
    let (code, _, body) = raw(
        &emu,
        "PATCH",
        &format!("{WIDGETS}/p?fieldValidation=Strict"),
        "application/json-patch+json",
        json_patch,
    )
    .await;
    assert_eq!(code, 422);
    assert!(
        body["message"].as_str().unwrap().ends_with(
            r#"strict decoding error: json patch unknown field "[0].foo", unknown field "spec.replica""#
        ),
        "{body}"
    );
    let (code, warnings, _) = raw(
        &emu,
        "PATCH",
        &format!("{WIDGETS}/p?fieldValidation=Ignore"),
        "application/json-patch+json",
        json_patch,
    )
    .await;
    assert_eq!((code, warnings.len()), (200, 0));

    let apply = r#"{"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "p", "namespace": "default"},
                    "spec": {"taskType": "completion", "name": "abc", "replica": 2}}"#;
    for query in ["&fieldValidation=Strict", "&fieldValidation=Ignore", ""] {
        let (code, _, body) = raw(
            &emu,
            "PATCH",
            &format!("{WIDGETS}/p?fieldManager=t{query}"),
            "application/apply-patch+yaml",
            apply,
        )
        .await;
        assert_eq!(code, 500, "{query:?}");
        assert!(body.get("reason").is_none(), "{body}");
        assert_eq!(
            body["message"],
            "failed to create typed patch object (default/p; example.test/v1, Kind=Widget): .spec.replica: field not declared in schema"
        );
    }
}

/// A CRD for the null rules: plain, defaulted and nullable fields, a nullable enum listing
/// null, and CEL rules that read a nullable object.
fn gadget_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.test"},
        "spec": {
            "group": "example.test", "scope": "Namespaced",
            "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget", "listKind": "GadgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {
                    "type": "object",
                    "properties": {
                        "plain": {"type": "string"},
                        "withDefault": {"type": "string", "default": "d"},
                        "nullableStr": {"type": "string", "nullable": true},
                        "mode": {"type": "string", "nullable": true, "enum": ["a", "b", null]},
                        "opt": {
                            "type": "object", "nullable": true,
                            "properties": {"x": {"type": "integer"}},
                            "x-kubernetes-validations": [{"rule": "has(self.x)", "message": "opt needs x"}]
                        }
                    },
                    "x-kubernetes-validations": [
                        {"rule": "!has(self.opt) || self.opt.x > 0", "message": "opt.x must be positive"},
                        {"rule": "!has(self.nullableStr) || self.nullableStr.size() > 0", "message": "nullableStr must not be empty"}
                    ]
                }}
            }}}]
        }
    })
}

/// Nulls as a real apiserver treats them: pruned for non-nullable fields before defaulting
/// (docs "Defaulting and Nullable"), refused by an enum even when the enum lists null
/// (kube-openapi skips nil enum entries), and absent for CEL's `has()` (apiserver
/// `pkg/cel/common/values.go`).
#[tokio::test]
async fn nulls_are_pruned_refused_by_enums_and_absent_for_cel() {
    let (emu, client) = setup().await;
    emu.register_crd(gadget_crd());
    let ar = ApiResource {
        group: "example.test".into(),
        version: "v1".into(),
        api_version: "example.test/v1".into(),
        kind: "Gadget".into(),
        plural: "gadgets".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let gadget = |name: &str, spec: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "example.test/v1", "kind": "Gadget",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap()
    };

    let made = api
        .create(
            &PostParams::default(),
            &gadget(
                "nulls",
                json!({"plain": null, "withDefault": null, "nullableStr": null, "opt": null}),
            ),
        )
        .await
        .expect("nulls of nullable fields are not seen by CEL's has()");
    assert_eq!(
        made.data["spec"],
        json!({"withDefault": "d", "nullableStr": null, "opt": null}),
        "non-nullable null pruned, then defaulted; nullable nulls kept"
    );

    let err = api_err(
        api.create(
            &PostParams::default(),
            &gadget("mode", json!({"mode": null})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Gadget.example.test \"mode\" is invalid: [spec.mode: Unsupported value: null: supported values: \"a\", \"b\", \"null\", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"
    );
    api.create(
        &PostParams::default(),
        &gadget("mode", json!({"mode": "a"})),
    )
    .await
    .unwrap();

    // The rules still run on present values.
    let err = api_err(
        api.create(
            &PostParams::default(),
            &gadget("opt", json!({"opt": {"x": 0}, "nullableStr": ""})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Gadget.example.test \"opt\" is invalid: [spec: Invalid value: \"object\": opt.x must be positive, spec: Invalid value: \"object\": nullableStr must not be empty]"
    );
}

/// A CRD whose second revision tightens `size` (maximum 10 → 5) and adds an object-level CEL
/// rule on `conn`, for the ratcheting test.
fn gauge_crd(tightened: bool) -> serde_json::Value {
    let size = if tightened {
        json!({"type": "integer", "maximum": 5})
    } else {
        json!({"type": "integer", "maximum": 10})
    };
    let mut conn = json!({
        "type": "object",
        "properties": {"url": {"type": "string"}, "insecure": {"type": "boolean"}}
    });
    if tightened {
        conn["x-kubernetes-validations"] = json!([{"rule": "!self.url.contains('@')", "message": "no userinfo", "fieldPath": ".url"}]);
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gauges.example.test"},
        "spec": {
            "group": "example.test", "scope": "Namespaced",
            "names": {"kind": "Gauge", "plural": "gauges", "singular": "gauge", "listKind": "GaugeList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {
                    "type": "object",
                    "properties": {"size": size, "other": {"type": "integer"}, "conn": conn}
                }}
            }}}]
        }
    })
}

/// Validation ratcheting (KEP-4008; on by default from 1.30, GA in 1.33): after a CRD is
/// tightened, an update may keep a field the new schema refuses as long as that field is
/// unchanged — schema errors on unchanged nodes are dropped (`schema/validation/ratcheting.go`),
/// CEL errors on unchanged nodes become warnings (`schema/cel/validation.go`) — while changing
/// the offending node to another invalid value is refused. Each step below was seen the same
/// way on a real 1.34.9 apiserver.
#[tokio::test]
async fn updates_ratchet_unchanged_invalid_fields() {
    let (emu, _client) = setup().await;
    emu.register_crd(gauge_crd(false));
    const GAUGES: &str = "/apis/example.test/v1/namespaces/default/gauges";
    let (code, _, body) = raw(
        &emu,
        "POST",
        GAUGES,
        "application/json",
        r#"{"apiVersion": "example.test/v1", "kind": "Gauge", "metadata": {"name": "g"},
            "spec": {"size": 9, "other": 1, "conn": {"url": "https://u:p@es", "insecure": false}}}"#,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    emu.register_crd(gauge_crd(true));
    let merge = |patch: &'static str| {
        let emu = &emu;
        async move {
            raw(
                emu,
                "PATCH",
                &format!("{GAUGES}/g"),
                "application/merge-patch+json",
                patch,
            )
            .await
        }
    };
    let cel_warning =
        r#"299 - "spec.conn.url: Invalid value: \"object\": no userinfo""#.to_string();

    // Metadata only, and another spec field: both unchanged invalid nodes ratchet.
    let (code, warnings, body) = merge(r#"{"metadata": {"finalizers": ["example.test/f"]}}"#).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        warnings,
        vec![cel_warning.clone()],
        "CEL: a warning, not an error"
    );
    let (code, warnings, body) = merge(r#"{"spec": {"other": 2}}"#).await;
    assert_eq!((code, warnings), (200, vec![cel_warning.clone()]), "{body}");

    // Changing the refused field to another refused value: the maximum applies.
    let (code, _, body) = merge(r#"{"spec": {"size": 8}}"#).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["message"],
        "Gauge.example.test \"g\" is invalid: spec.size: Invalid value: 8: spec.size in body should be less than or equal to 5"
    );
    // Any change inside the node the CEL rule sits on: the rule applies again.
    let (code, _, body) = merge(r#"{"spec": {"conn": {"insecure": true}}}"#).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["message"],
        "Gauge.example.test \"g\" is invalid: spec.conn.url: Invalid value: \"object\": no userinfo"
    );
    // Fixing both fields is accepted without a warning.
    let (code, warnings, body) =
        merge(r#"{"spec": {"size": 5, "conn": {"url": "https://es"}}}"#).await;
    assert_eq!((code, warnings.len()), (200, 0), "{body}");
}

/// Metadata and schema errors are reported together, as the customresource strategy aggregates
/// them (seen on a real 1.34.9 apiserver).
#[tokio::test]
async fn name_and_schema_errors_are_reported_together() {
    let (emu, _client) = setup().await;
    emu.register_crd(gauge_crd(true));
    let (code, _, body) = raw(
        &emu,
        "POST",
        "/apis/example.test/v1/namespaces/default/gauges",
        "application/json",
        r#"{"apiVersion": "example.test/v1", "kind": "Gauge", "metadata": {"name": "Bad_Name"},
            "spec": {"size": 9}}"#,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("metadata.name: Invalid value: \"Bad_Name\"")
            && message.contains("spec.size: Invalid value: 9"),
        "{message}"
    );
}

/// A create, update or delete body the emulator cannot decode is refused before it is read,
/// with the API server's 415 Status (apiserver `negotiation/errors.go`
/// `NewUnsupportedMediaTypeError`) listing what it accepts: protobuf for a custom resource (CRDs
/// never speak it), YAML, a protobuf DeleteOptions. Content-Type parameters are ignored, an absent
/// Content-Type means JSON, and a bodiless delete is not negotiated. A malformed protobuf Secret
/// is the server's 400.
#[tokio::test]
async fn undecodable_request_body_is_415_unsupported_media_type() {
    let (emu, _client) = setup().await;
    let secrets = "/api/v1/namespaces/default/secrets";
    let secret = r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}}"#;
    let accepted =
        "the body of the request was in an unknown format - accepted media types include: ";
    let json_only = format!("{accepted}application/json");
    let with_pb = format!("{accepted}application/json, application/vnd.kubernetes.protobuf");
    let pb = "application/vnd.kubernetes.protobuf";
    for (method, path, ct, message) in [
        ("POST", WIDGETS.to_string(), pb, &json_only),
        ("PUT", format!("{WIDGETS}/w"), pb, &json_only),
        ("POST", secrets.to_string(), "application/yaml", &with_pb),
        ("DELETE", format!("{secrets}/s"), pb, &with_pb),
    ] {
        let (status, _, body) = raw(&emu, method, &path, ct, "k8s\0garbage").await;
        assert_eq!(status, 415, "{method} {path} {ct}: {body}");
        assert_eq!(
            body,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": message, "reason": "UnsupportedMediaType", "code": 415}),
            "{method} {path} {ct}"
        );
    }
    let (status, _, body) = raw(&emu, "POST", secrets, pb, "k8s\0\u{ff}garbage").await;
    assert_eq!(
        (status, &body["reason"]),
        (400, &json!("BadRequest")),
        "{body}"
    );
    assert!(emu.get_object("secrets", "default", "s").is_none());

    let (status, _, body) = raw(
        &emu,
        "POST",
        secrets,
        "application/json; charset=utf-8",
        secret,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let resp = reqwest::Client::new()
        .put(format!("{}{secrets}/s", emu.url()))
        .body(secret.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "no Content-Type is JSON");
    let (status, _, body) = raw(&emu, "DELETE", &format!("{secrets}/s"), pb, "").await;
    assert_eq!(
        status, 200,
        "a delete without a body is not negotiated: {body}"
    );
}

/// The switched faults of `faults.rs` (used by tests/faults.rs): they strike every matching
/// request until cleared, and count how often they did.
#[tokio::test]
async fn switched_faults_strike_until_cleared() {
    use inference_testenv::kube::Writes;
    let (emu, client) = setup().await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &widget("a"))
        .await
        .unwrap();
    let status = Patch::Merge(json!({"status": {"phase": "Ready"}}));
    let labels = Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}));
    let params = PatchParams::default();

    emu.fail_writes("widgets", Writes::Status, 500);
    for _ in 0..2 {
        let err = api_err(api.patch_status("a", &params, &status).await.unwrap_err());
        assert_eq!(err.code, 500);
    }
    api.patch("a", &params, &labels)
        .await
        .expect("object writes pass");
    emu.fail_writes("widgets", Writes::Object, 500);
    assert_eq!(
        api_err(api.patch("a", &params, &labels).await.unwrap_err()).code,
        500
    );
    assert!(api.get("a").await.is_ok(), "reads pass");
    assert_eq!(emu.switched_fault_counts().refused_writes, 3);

    // A resumed watch gets the 410 ERROR event; one from a fresh list's RV is served.
    let old = api.get("a").await.unwrap().resource_version().unwrap();
    emu.expire_watch_resumes(true);
    let mut stream = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    match next(&mut stream).await.unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
    let listed = api.list(&ListParams::default()).await.unwrap();
    let fresh = listed.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &fresh)
        .await
        .unwrap()
        .boxed();
    emu.clear_switched_faults();
    api.patch_status("a", &params, &status)
        .await
        .expect("cleared");
    match next(&mut stream).await.unwrap() {
        WatchEvent::Modified(w) => assert_eq!(w.name_any(), "a"),
        other => panic!("expected the status change, got {other:?}"),
    }
    assert_eq!(emu.switched_fault_counts().expired_resumes, 1);

    // Watches closed every 100 ms: the stream ends by itself.
    emu.close_watches_every(Some(Duration::from_millis(100)));
    let mut stream = api
        .watch(&WatchParams::default(), &fresh)
        .await
        .unwrap()
        .boxed();
    let ended = tokio::time::timeout(T, async { while stream.next().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the watch was closed");
    assert!(emu.switched_fault_counts().watch_closes >= 1);
    emu.clear_switched_faults();
}
