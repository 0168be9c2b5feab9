//! Watches: kube-rs watchers (list+watch and streaming lists), selectors, bookmarks, timeouts,
//! 410 Expired and many concurrent watchers.

use std::time::Duration;

use futures_util::StreamExt;
use hyper::{Method, StatusCode};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use wsgate_test_apiserver::Config;

use crate::harness::{Cluster, within};

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})).expect("cm")
}

fn name_of(e: &Value) -> &str {
    e["object"]["metadata"]["name"].as_str().unwrap_or_default()
}

fn types(events: &[Value]) -> Vec<(String, String)> {
    events.iter().map(|e| (e["type"].as_str().unwrap_or_default().to_string(), name_of(e).to_string())).collect()
}

#[tokio::test]
async fn kube_watcher_sees_added_modified_deleted() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    api.create(&PostParams::default(), &cm("before", json!({}))).await.expect("create");
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let mut initial = Vec::new();
    within(10, "initial list", async {
        while let Some(ev) = stream.next().await {
            match ev.expect("watch event") {
                Event::InitApply(o) => initial.push(o.metadata.name.unwrap_or_default()),
                Event::InitDone => break,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(initial, vec!["before"]);

    api.create(&PostParams::default(), &cm("live", json!({}))).await.expect("create");
    let patch = json!({"data": {"k": "changed"}});
    api.patch("live", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    api.delete("live", &DeleteParams::default()).await.expect("delete");
    let mut seen = Vec::new();
    within(10, "live events", async {
        while let Some(ev) = stream.next().await {
            match ev.expect("watch event") {
                Event::Apply(o) => {
                    let data = o.data.unwrap_or_default().get("k").cloned().unwrap_or_default();
                    seen.push(format!("apply {} {data}", o.metadata.name.unwrap_or_default()));
                }
                Event::Delete(o) => {
                    seen.push(format!("delete {}", o.metadata.name.unwrap_or_default()));
                    break;
                }
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(seen, vec!["apply live v", "apply live changed", "delete live"]);
}

#[tokio::test]
async fn raw_watch_from_a_version_replays_later_events_only() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    api.create(&PostParams::default(), &cm("one", json!({}))).await.expect("create");
    let rv = c.server.resource_version();
    api.create(&PostParams::default(), &cm("two", json!({}))).await.expect("create");
    let path = format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=5");
    let events = c.watch_lines(&path, 10, |e| !e.is_empty()).await;
    assert_eq!(types(&events), vec![("ADDED".to_string(), "two".to_string())]);
    assert_eq!(events[0]["object"]["kind"], "ConfigMap");

    let path = "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=5";
    let events = c.watch_lines(path, 10, |e| e.len() >= 2).await;
    assert_eq!(types(&events).len(), 2, "no resourceVersion: the current state as ADDED events");
}

#[tokio::test]
async fn objects_leaving_a_selector_are_deleted_for_the_watcher() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    api.create(&PostParams::default(), &cm("sel", json!({"team": "a"}))).await.expect("create");
    let rv = c.server.resource_version();
    let relabel = json!({"metadata": {"labels": {"team": "b"}}});
    api.patch("sel", &PatchParams::default(), &Patch::Merge(&relabel)).await.expect("relabel");
    let back = json!({"metadata": {"labels": {"team": "a"}}});
    api.patch("sel", &PatchParams::default(), &Patch::Merge(&back)).await.expect("relabel back");
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&labelSelector=team%3Da&resourceVersion={rv}&timeoutSeconds=5"
    );
    let events = c.watch_lines(&path, 10, |e| e.len() >= 2).await;
    assert_eq!(types(&events), vec![("DELETED".into(), "sel".into()), ("ADDED".into(), "sel".into())]);
    assert_eq!(events[0]["object"]["metadata"]["labels"]["team"], "a", "DELETED carries the previous content");
    assert_eq!(events[0]["object"]["metadata"]["resourceVersion"], (rv + 1).to_string());
}

#[tokio::test]
async fn bookmarks_and_timeouts() {
    let config = Config { bookmark_interval: Duration::from_millis(200), ..Config::default() };
    let c = Cluster::with_config(config).await;
    let start = std::time::Instant::now();
    let path = "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&timeoutSeconds=1";
    let events = c.watch_lines(path, 10, |_| false).await;
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "stream ended after {took:?}");
    assert!(events.len() >= 2, "periodic bookmarks: {events:?}");
    for e in &events {
        assert_eq!(e["type"], "BOOKMARK");
        assert_eq!(e["object"]["metadata"]["resourceVersion"], c.server.resource_version().to_string());
    }
    let path = "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1";
    assert!(c.watch_lines(path, 10, |_| false).await.is_empty(), "no bookmarks unless asked");
}

#[tokio::test]
async fn too_old_versions_get_410_and_kube_relists() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    api.create(&PostParams::default(), &cm("old", json!({}))).await.expect("create");
    let old_rv = c.server.resource_version() - 1;
    c.server.compact_history();
    let path = format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={old_rv}");
    let events = c.watch_lines(&path, 10, |e| !e.is_empty()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ERROR");
    let status = &events[0]["object"];
    assert_eq!((status["code"].as_u64(), status["reason"].as_str()), (Some(410), Some("Expired")));
    assert!(status["message"].as_str().expect("message").starts_with("too old resource version"));

    let (s, _) =
        c.raw(Method::GET, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=999999", None).await;
    assert_eq!(s, StatusCode::OK, "too-new versions are reported in the stream too");
}

type EventStream = futures_util::stream::BoxStream<'static, Result<Event<ConfigMap>, watcher::Error>>;

/// Names of the next complete initial list (Init .. InitDone).
async fn next_init(stream: &mut EventStream) -> Vec<String> {
    let mut names = Vec::new();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Init) => names.clear(),
            Ok(Event::InitApply(o)) => names.push(o.metadata.name.unwrap_or_default()),
            Ok(Event::InitDone) => return names,
            _ => {}
        }
    }
    names
}

#[tokio::test]
async fn kube_watcher_resumes_across_restarts_and_relists_after_410() {
    let mut c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    api.create(&PostParams::default(), &cm("a", json!({"team": "x"}))).await.expect("create");
    let config = watcher::Config::default().labels("team=x");
    let mut stream: EventStream = watcher::watcher(api.clone(), config).default_backoff().boxed();
    assert_eq!(within(10, "first list", next_init(&mut stream)).await, vec!["a"]);

    c.server.stop().await;
    c.server.start().await.expect("restart");
    api.create(&PostParams::default(), &cm("b", json!({"team": "x"}))).await.expect("create after restart");
    let resumed = within(20, "resumed watch", async {
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Apply(o)) => return o.metadata.name.unwrap_or_default(),
                Ok(Event::Init) => panic!("a plain restart must not force a relist"),
                _ => {}
            }
        }
        String::new()
    })
    .await;
    assert_eq!(resumed, "b");

    // A change the watcher does not see (outside its selector), then compaction: its resume
    // version is now too old, so the next reconnect gets 410 and relists.
    api.create(&PostParams::default(), &cm("hidden", json!({"team": "y"}))).await.expect("create");
    c.server.compact_history();
    c.server.stop().await;
    c.server.start().await.expect("restart");
    let relisted = within(20, "relist after 410", next_init(&mut stream)).await;
    assert_eq!(relisted, vec!["a", "b"]);
}

#[tokio::test]
async fn streaming_lists_end_with_the_initial_events_bookmark() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    api.create(&PostParams::default(), &cm("s1", json!({}))).await.expect("create");
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut names = Vec::new();
    within(10, "streaming list", async {
        while let Some(ev) = stream.next().await {
            match ev.expect("event") {
                Event::InitApply(o) => names.push(o.metadata.name.unwrap_or_default()),
                Event::InitDone => break,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(names, vec!["s1"]);
}

#[tokio::test]
async fn many_watchers_see_the_same_write() {
    let c = std::sync::Arc::new(Cluster::start().await);
    let rv = c.server.resource_version();
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/api/v1/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=10");
            c.watch_lines(&path, 15, |e| !e.is_empty()).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    api.create(&PostParams::default(), &cm("fanout", json!({}))).await.expect("create");
    for t in tasks {
        let events = within(20, "watcher", t).await.expect("task");
        assert_eq!(types(&events), vec![("ADDED".to_string(), "fanout".to_string())]);
    }
}

#[tokio::test]
async fn metadata_only_clients_get_partial_object_metadata() {
    use k8s_openapi::api::core::v1::Secret;
    let c = Cluster::start().await;
    let api: Api<Secret> = Api::namespaced(c.client().await, "default");
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s", "labels": {"a": "b"}}, "stringData": {"k": "hidden"}}))
            .expect("secret");
    api.create(&PostParams::default(), &secret).await.expect("create");
    let meta = api.get_metadata("s").await.expect("get_metadata");
    assert_eq!(meta.metadata.labels.expect("labels")["a"], "b");
    let list = api.list_metadata(&kube::api::ListParams::default()).await.expect("list_metadata");
    assert_eq!(list.items.len(), 1);
    let (_, raw) = c.raw(Method::GET, "/api/v1/namespaces/default/secrets", None).await;
    assert_eq!(raw["kind"], "SecretList", "plain JSON clients still get full objects");

    let meta_api: Api<kube::core::PartialObjectMeta<Secret>> = Api::namespaced(c.client().await, "default");
    let mut stream = watcher::watcher(meta_api, watcher::Config::default()).boxed();
    let names = within(10, "metadata watcher", async {
        let mut names = Vec::new();
        while let Some(ev) = stream.next().await {
            match ev.expect("event") {
                Event::InitApply(o) => names.push(o.metadata.name.unwrap_or_default()),
                Event::InitDone => break,
                _ => {}
            }
        }
        names
    })
    .await;
    assert_eq!(names, vec!["s"]);
    let path = "/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=2";
    let req = hyper::Request::get(format!("{}{path}", c.server.url()))
        .header("accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json")
        .header("authorization", format!("Bearer {}", wsgate_test_apiserver::authn::ADMIN_TOKEN))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let resp = within(10, "watch", client.request(req)).await.expect("response");
    let body =
        within(10, "watch body", http_body_util::BodyExt::collect(resp.into_body())).await.expect("body").to_bytes();
    let first: Value = serde_json::from_slice(body.split(|b| *b == b'\n').next().expect("a line")).expect("json");
    assert_eq!(first["object"]["kind"], "PartialObjectMetadata");
    assert!(first["object"].get("data").is_none(), "no secret data in metadata-only events");
}

#[tokio::test]
async fn kube_watcher_pages_through_the_initial_list() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    for i in 0..7 {
        api.create(&PostParams::default(), &cm(&format!("p{i}"), json!({}))).await.expect("create");
    }
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default().page_size(2)).boxed();
    let names = within(10, "paged list", async {
        let mut names = Vec::new();
        while let Some(ev) = stream.next().await {
            match ev.expect("event") {
                Event::InitApply(o) => names.push(o.metadata.name.unwrap_or_default()),
                Event::InitDone => break,
                _ => {}
            }
        }
        names
    })
    .await;
    assert_eq!(names, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());
    api.create(&PostParams::default(), &cm("after", json!({}))).await.expect("create");
    let next = within(10, "watch after paged list", async {
        while let Some(ev) = stream.next().await {
            if let Ok(Event::Apply(o)) = ev {
                return o.metadata.name.unwrap_or_default();
            }
        }
        String::new()
    })
    .await;
    assert_eq!(next, "after", "the watch resumes from the list's resourceVersion");
}
