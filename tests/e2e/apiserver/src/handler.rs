//! HTTP front: authenticates and authorizes each request (authn, rbac), parses the path into a
//! discovery document or a resource target, decodes query parameters and bodies, calls the registry
//! or a watch, and encodes answers (errors as `Status`). Every request is logged at debug level with
//! method, path, user and status.
//!
//! ```text
//!   Authorization header ──► user ──► RBAC decision ──► 401 / 403, or on to the routes below
//!   /version /api /apis /apis/g /api/v1 /apis/g/v /openapi/v3[/…]      → discovery documents
//!   /api/v1[/namespaces/{ns}]/{resource}[/{name}[/status]]             → resource verbs
//!   /apis/{g}/{v}[/namespaces/{ns}]/{resource}[/{name}[/status]]
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::authn::UserInfo;
use crate::catalog::ResourceType;
use crate::meta;
use crate::openapi;
use crate::patch::PatchKind;
use crate::rbac;
use crate::registry::{self, FieldValidation, WriteOptions, Written, present};
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::App;
use crate::status::ApiError;
use crate::table;
use crate::watch::{self as watching, WatchSpec};

/// The response body type every answer uses.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest request body accepted (the real server's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// A request aimed at objects of one resource.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    group: String,
    version: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Route {
    Root,
    Health,
    Version,
    Api,
    Apis,
    Group(String),
    Resources { group: String, version: String },
    OpenApiV2,
    OpenApiV3,
    OpenApiV3Doc { group: String, version: String },
    Object(Target),
    Unknown,
}

fn target(group: &str, version: &str, rest: &[&str]) -> Route {
    let t = |resource: &str, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Route::Object(Target {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    match rest {
        [] => Route::Resources { group: group.into(), version: version.into() },
        [r] => t(r, None, None, None),
        [r, n] => t(r, None, Some(n), None),
        ["namespaces", n, sub @ ("status" | "finalize")] => t("namespaces", None, Some(n), Some(sub)),
        ["namespaces", ns, r] => t(r, Some(ns), None, None),
        [r, n, sub] => t(r, None, Some(n), Some(sub)),
        ["namespaces", ns, r, n] => t(r, Some(ns), Some(n), None),
        ["namespaces", ns, r, n, sub] => t(r, Some(ns), Some(n), Some(sub)),
        _ => Route::Unknown,
    }
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [] => Route::Root,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["version"] => Route::Version,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["apis", g] => Route::Group(g.to_string()),
        ["api", v, rest @ ..] => target("", v, rest),
        ["apis", g, v, rest @ ..] => target(g, v, rest),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3,
        ["openapi", "v3", "api", v] => Route::OpenApiV3Doc { group: String::new(), version: v.to_string() },
        ["openapi", "v3", "apis", g, v] => Route::OpenApiV3Doc { group: g.to_string(), version: v.to_string() },
        _ => Route::Unknown,
    }
}

/// Decodes `%XX` escapes and `+` (as space) in a query component.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache, private"));
    resp
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

fn text_response(code: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed_unsync());
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

fn written_response(w: Written) -> Response<Body> {
    let mut resp = json_response(w.code, &w.body);
    for warning in &w.warnings {
        let text = format!("299 - {}", serde_json::to_string(warning).unwrap_or_default());
        if let Ok(v) = header::HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

/// The answer when a handler panicked: a 500 `Status`, as the real server's panic recovery gives.
pub fn internal_error() -> Response<Body> {
    tracing::error!("request handler panicked");
    error_response(&ApiError {
        code: 500,
        reason: "InternalError",
        message: "Internal error occurred: the request handler panicked".into(),
        details: Value::Null,
    })
}

/// Answers one request; never fails (errors become `Status` bodies). Authentication and
/// authorization come first, as in the real server: a refused request never reaches routing.
pub async fn handle(app: Arc<App>, shutdown: watch::Receiver<bool>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (user, resp) = match admit(&app, &req) {
        Ok(user) => match dispatch(&app, shutdown, req).await {
            Ok(r) => (user.name, r),
            Err(e) => (user.name, error_response(&e)),
        },
        Err((user, e)) => (user, error_response(&e)),
    };
    tracing::debug!(%method, path, user, status = resp.status().as_u16(), "request");
    resp
}

/// Authenticates the request and authorizes it with RBAC; on refusal, the user name (empty when
/// unauthenticated) and the 401/403 to answer.
fn admit(app: &App, req: &Request<Incoming>) -> Result<UserInfo, (String, ApiError)> {
    let st = app.store.read();
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let user = app.tokens.authenticate(&st, header).map_err(|e| (String::new(), e))?;
    let query = parse_query(req.uri().query());
    let attributes = rbac::attributes(user.clone(), req.method(), req.uri().path(), &query);
    match rbac::authorize(&st, &attributes) {
        Ok(()) => Ok(user),
        Err(e) => {
            drop(st);
            tracing::info!(user = %user.name, groups = ?user.groups, verb = %attributes.verb, message = %e.message, "RBAC: forbidden");
            app.record_denial(&user.name, &e.message);
            Err((user.name, e))
        }
    }
}

async fn dispatch(
    app: &Arc<App>,
    shutdown: watch::Receiver<bool>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let r = route(req.uri().path());
    let is_get = req.method() == Method::GET;
    match r {
        Route::Object(t) => object(app, shutdown, req, t).await,
        _ if !is_get => Err(ApiError::method_not_allowed()),
        Route::Root => {
            let mut paths =
                vec!["/api".to_string(), "/api/v1".into(), "/apis".into(), "/healthz".into(), "/livez".into()];
            paths.extend(["/openapi/v3".to_string(), "/readyz".into(), "/version".into()]);
            Ok(json_response(200, &json!({"paths": paths})))
        }
        Route::Health => Ok(text_response(StatusCode::OK, "ok")),
        Route::Version => Ok(json_response(200, &app.version_info())),
        Route::Api | Route::Apis if wants_aggregated(&req) => {
            let doc = app.store.read().catalog.aggregated_discovery(r == Route::Api);
            let mut resp = json_response(200, &doc);
            resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(AGGREGATED_V2));
            Ok(resp)
        }
        Route::Api => Ok(json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": app.addr().to_string()}]}),
        )),
        Route::Apis => Ok(json_response(200, &app.store.read().catalog.api_group_list())),
        Route::Group(g) => {
            app.store.read().catalog.api_group(&g).map(|v| json_response(200, &v)).ok_or_else(ApiError::no_route)
        }
        Route::Resources { group, version } => app
            .store
            .read()
            .catalog
            .api_resource_list(&group, &version)
            .map(|v| json_response(200, &v))
            .ok_or_else(ApiError::no_route),
        Route::Unknown => Err(ApiError::no_route()),
        Route::OpenApiV2 => {
            let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let version = &app.config.server_version;
            let (content_type, body) = if accept.contains("protobuf") {
                ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf", openapi::v2_protobuf(version))
            } else {
                ("application/json", openapi::v2_json(version).to_string().into_bytes())
            };
            let mut resp = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
            resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
            Ok(resp)
        }
        Route::OpenApiV3 => {
            Ok(json_response(200, &openapi::root(&app.store.read().catalog, &app.config.server_version)))
        }
        Route::OpenApiV3Doc { group, version } => {
            openapi::group_version_doc(&app.store.read().catalog, &group, &version, &app.config.server_version)
                .map(|v| json_response(200, &v))
                .ok_or_else(ApiError::no_route)
        }
    }
}

/// The media type of aggregated discovery documents.
const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the first media type in `Accept` the server can produce is aggregated discovery v2
/// (clients list it before plain JSON and fall back when the answer is plain JSON).
fn wants_aggregated(req: &Request<Incoming>) -> bool {
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        if params.first() != Some(&"application/json") {
            continue;
        }
        let has = |p: &str| params.contains(&p);
        if has("g=apidiscovery.k8s.io") && has("v=v2") && has("as=APIGroupDiscoveryList") {
            return true;
        }
        if params.iter().any(|p| p.starts_with("as=")) {
            continue;
        }
        return false;
    }
    false
}

/// Reads the body and decodes it as JSON, or YAML when the content type says so.
async fn read_body(req: Request<Incoming>) -> Result<(String, Value), ApiError> {
    let ct =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_string();
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError {
            code: 413,
            reason: "RequestEntityTooLarge",
            message: format!("request body rejected: {e}"),
            details: Value::Null,
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((ct, Value::Null));
    }
    let media = ct.split(';').next().unwrap_or_default().trim().to_string();
    let value = if media == "application/vnd.kubernetes.protobuf" {
        crate::protobuf::decode(&bytes)?
    } else if media.ends_with("yaml") {
        serde_yaml::from_slice::<Value>(&bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))?
    };
    Ok((ct, value))
}

fn write_options(q: &HashMap<String, String>) -> Result<WriteOptions, ApiError> {
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "CreateOptions",
                "",
                vec![crate::status::FieldCause::not_supported("dryRun", &json!(other), &[json!("All")])],
            ));
        }
    };
    let validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            )));
        }
    };
    Ok(WriteOptions { dry_run, validation, field_manager: q.get("fieldManager").cloned() })
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1" | "True"))
}

async fn object(
    app: &Arc<App>,
    shutdown: watch::Receiver<bool>,
    req: Request<Incoming>,
    t: Target,
) -> Result<Response<Body>, ApiError> {
    let rt =
        app.store.read().catalog.lookup(&t.group, &t.version, &t.resource).cloned().ok_or_else(ApiError::no_route)?;
    if t.namespace.is_some() && !rt.namespaced {
        return Err(ApiError::no_route());
    }
    if let Some(sub) = &t.subresource
        && !(sub == "status" && rt.has_status)
    {
        return Err(ApiError::no_route());
    }
    if let Some(ns) = &t.namespace
        && ns.is_empty()
    {
        return Err(ApiError::no_route());
    }
    let q = parse_query(req.uri().query());
    let method = req.method().clone();
    let ns = t.namespace.as_deref();
    let sub = t.subresource.as_deref();
    match (method, t.name.as_deref()) {
        (Method::GET, None) if flag(&q, "watch") => {
            watch_request(app, shutdown, &rt, ns, &q, output(&req) == Output::Metadata)
        }
        (Method::GET, None) => list(app, &rt, ns, &q, &req),
        (Method::GET, Some(name)) => {
            if rt.namespaced && ns.is_none() {
                return Err(ApiError::no_route());
            }
            let st = app.store.read();
            let obj = st
                .get(&rt.storage_key(), ns.unwrap_or_default(), name)
                .ok_or_else(|| ApiError::not_found(&rt.group, &rt.resource, name))?;
            let obj = present(&obj, &rt);
            match output(&req) {
                Output::Table => {
                    let rv = meta::meta_str(&obj, "resourceVersion").to_string();
                    Ok(json_response(200, &table::render(&st, &rt, &[obj], json!({"resourceVersion": rv}))))
                }
                Output::Metadata => Ok(json_response(200, &registry::partial_metadata(&obj))),
                Output::Full => Ok(json_response(200, &obj)),
            }
        }
        (Method::POST, None) => {
            if rt.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let opts = write_options(&q)?;
            let (_, body) = read_body(req).await?;
            let w = app.store.write(|st| registry::create(st, &rt, ns, body, &opts))?;
            Ok(written_response(w))
        }
        (Method::PUT, Some(name)) => {
            if rt.namespaced && ns.is_none() {
                return Err(ApiError::no_route());
            }
            let opts = write_options(&q)?;
            let (_, body) = read_body(req).await?;
            let w = app.store.write(|st| registry::update(st, &rt, ns, name, sub, body, &opts))?;
            Ok(written_response(w))
        }
        (Method::PATCH, Some(name)) => {
            if rt.namespaced && ns.is_none() {
                return Err(ApiError::no_route());
            }
            let wanted = output(&req);
            let opts = write_options(&q)?;
            let (ct, body) = read_body(req).await?;
            let kind = PatchKind::from_content_type(&ct).ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
            let mut w = app.store.write(|st| registry::patch(st, &rt, ns, name, sub, kind, body, &opts))?;
            if wanted == Output::Metadata {
                w.body = registry::partial_metadata(&w.body);
            }
            Ok(written_response(w))
        }
        (Method::DELETE, Some(name)) => {
            if rt.namespaced && ns.is_none() {
                return Err(ApiError::no_route());
            }
            let opts = write_options(&q)?;
            let (_, body) = read_body(req).await?;
            let w = app.store.write(|st| registry::delete(st, &rt, ns, name, &body, &opts))?;
            if rt.group.is_empty() && rt.resource == "namespaces" && !opts.dry_run {
                schedule_namespace_cleanup(app, name.to_string());
            }
            Ok(written_response(w))
        }
        (Method::DELETE, None) => {
            if rt.group.is_empty() && rt.resource == "namespaces" {
                return Err(ApiError::method_not_allowed());
            }
            let opts = write_options(&q)?;
            let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())?;
            let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default(), &rt)?;
            let matches = |o: &Value| labels.matches(o) && fields.matches(o);
            let w = app.store.write(|st| registry::delete_collection(st, &rt, ns, &matches, &opts))?;
            Ok(written_response(w))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Plays the namespace controller: after a short delay, removes the terminating namespace's
/// contents and then the namespace.
fn schedule_namespace_cleanup(app: &Arc<App>, name: String) {
    let store = app.store.clone();
    let delay = app.config.namespace_cleanup_delay;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        store.write(|st| registry::finalize_namespace(st, &name));
    });
}

/// An rv query value: `None` for "" / "0" (any / most recent), else the number.
fn parse_rv(q: &HashMap<String, String>, key: &str) -> Result<Option<u64>, ApiError> {
    match q.get(key).map(String::as_str) {
        None | Some("") | Some("0") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            ApiError::invalid(
                "meta.k8s.io",
                "ListOptions",
                "",
                vec![crate::status::FieldCause::invalid(
                    "resourceVersion",
                    &json!(s),
                    "must be a valid resource version",
                )],
            )
        }),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    start: String,
}

fn list(
    app: &Arc<App>,
    rt: &ResourceType,
    ns: Option<&str>,
    q: &HashMap<String, String>,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default(), rt)?;
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let token = match q.get("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
            Some(
                serde_json::from_slice::<ContinueToken>(&raw)
                    .map_err(|e| ApiError::bad_request(format!("continue key is not valid: {e}")))?,
            )
        }
    };
    let asked_rv = parse_rv(q, "resourceVersion")?;
    let st = app.store.read();
    if let Some(n) = asked_rv
        && n > st.rv
        && token.is_none()
    {
        return Err(ApiError::too_large_resource_version(n, st.rv));
    }
    let key = rt.storage_key();
    let list_rv = match &token {
        Some(t) => {
            if st.expired(&key, t.rv).is_some() {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ));
            }
            t.rv
        }
        None => st.rv,
    };
    let start = token.as_ref().map(|t| t.start.clone()).unwrap_or_default();
    let matching: Vec<_> = st
        .list(&key, ns)
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .filter(|o| start.is_empty() || object_key(o) > start)
        .collect();
    drop(st);
    let total = matching.len();
    let page: Vec<Value> = matching.iter().take(limit).map(|o| present(o, rt)).collect();
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if total > page.len() {
        let last = matching.get(page.len().saturating_sub(1)).map(|o| object_key(o)).unwrap_or_default();
        let token = serde_json::to_vec(&ContinueToken { rv: list_rv, start: last }).unwrap_or_default();
        metadata["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token));
        metadata["remainingItemCount"] = json!(total - page.len());
    }
    match output(req) {
        Output::Table => Ok(json_response(200, &table::render(&app.store.read(), rt, &page, metadata))),
        Output::Metadata => {
            let items: Vec<Value> = page.iter().map(registry::partial_metadata).collect();
            let list = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items});
            Ok(json_response(200, &list))
        }
        Output::Full => Ok(json_response(
            200,
            &json!({"kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": metadata, "items": page}),
        )),
    }
}

fn object_key(o: &Value) -> String {
    format!("{}/{}", meta::meta_str(o, "namespace"), meta::meta_str(o, "name"))
}

/// The representation a client asked for with `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Full,
    Table,
    Metadata,
}

/// Picks the first media type of `Accept` the server can produce (server-side printing and
/// metadata-only answers are JSON variants named by an `as=` parameter).
fn output(req: &Request<Incoming>) -> Output {
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let base = params.first().copied().unwrap_or_default();
        if base != "application/json" && base != "*/*" && base != "application/*" {
            continue;
        }
        return match params.iter().find_map(|p| p.strip_prefix("as=")) {
            Some("Table") => Output::Table,
            Some("PartialObjectMetadata" | "PartialObjectMetadataList") => Output::Metadata,
            Some(_) => continue,
            None => Output::Full,
        };
    }
    Output::Full
}

fn watch_request(
    app: &Arc<App>,
    shutdown: watch::Receiver<bool>,
    rt: &ResourceType,
    ns: Option<&str>,
    q: &HashMap<String, String>,
    metadata_only: bool,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default(), rt)?;
    let send_initial = flag(q, "sendInitialEvents");
    let bookmarks = flag(q, "allowWatchBookmarks");
    if send_initial {
        let rvm = q.get("resourceVersionMatch").map(String::as_str).unwrap_or_default();
        if rvm != "NotOlderThan" || !bookmarks {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "ListOptions",
                "",
                vec![crate::status::FieldCause::forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled and resourceVersionMatch is NotOlderThan and allowWatchBookmarks is true",
                )],
            ));
        }
    }
    let mut start = parse_rv(q, "resourceVersion")?;
    if send_initial {
        start = None;
    }
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(app.config.default_watch_timeout);
    let spec = WatchSpec {
        rt: rt.clone(),
        namespace: ns.map(str::to_string),
        labels,
        fields,
        start,
        initial_end_bookmark: send_initial,
        bookmarks,
        timeout,
        bookmark_interval: app.config.bookmark_interval,
        metadata_only,
    };
    tracing::debug!(resource = %rt.resource, namespace = ?ns, start = ?spec.start, "watch started");
    let body = watching::serve(app.store.clone(), spec, shutdown);
    let mut resp = Response::new(body);
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_like_the_real_server() {
        assert_eq!(
            route("/api/v1/namespaces/default/services/web/status"),
            Route::Object(Target {
                group: String::new(),
                version: "v1".into(),
                resource: "services".into(),
                namespace: Some("default".into()),
                name: Some("web".into()),
                subresource: Some("status".into()),
            })
        );
        match route("/api/v1/namespaces/default") {
            Route::Object(t) => assert_eq!((t.resource.as_str(), t.name.as_deref()), ("namespaces", Some("default"))),
            other => panic!("unexpected {other:?}"),
        }
        match route("/api/v1/namespaces/default/status") {
            Route::Object(t) => assert_eq!(t.subresource.as_deref(), Some("status")),
            other => panic!("unexpected {other:?}"),
        }
        match route("/apis/networking.k8s.io/v1/ingresses") {
            Route::Object(t) => assert_eq!((t.group.as_str(), t.namespace), ("networking.k8s.io", None)),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(route("/apis/apps/v1"), Route::Resources { group: "apps".into(), version: "v1".into() });
        assert_eq!(route("/nope/x"), Route::Unknown);
    }

    #[test]
    fn query_values_are_decoded() {
        let q = parse_query(Some("labelSelector=a%3Db%2Cc+in+(x)&watch=1&x"));
        assert_eq!(q["labelSelector"], "a=b,c in (x)");
        assert_eq!(q["watch"], "1");
        assert_eq!(q["x"], "");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
