//! Golden tests: every directory under `testdata/` is one case.
//!
//! ```text
//!   testdata/<case>/input.yaml     objects, read with the manifests loader
//!   testdata/<case>/expected.yaml  the table, diagnostics and conditions, as YAML (the golden)
//!   testdata/<case>/requests.yaml  optional: [{host, path, expect}] checked with RouteTable::lookup;
//!                                  expect is a route id or backend name, or null for no route (404);
//!                                  RouteTable::explain must name the same route
//! ```
//!
//! Each input is also compiled with its objects in reversed and rotated order: the output must not
//! change. `WSGATE_UPDATE_GOLDEN=1 cargo test` rewrites the goldens; review their diff like code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CompileOptions, Compiled, RouteConditions, compile, format_duration};
use crate::controller::Snapshot;
use crate::controller::manifests::load_files;
use crate::routes::{Route, RouteTable};

/// The YAML view of a compile: everything a reviewer needs, in a stable order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Golden {
    load_errors: Vec<String>,
    ingresses: Vec<String>,
    routes: Vec<GoldenRoute>,
    default_backend: Option<GoldenRoute>,
    /// `host -> namespace/secret (notAfter <unix seconds>)`, sorted by host; left out when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tls: Vec<String>,
    diagnostics: Vec<String>,
    conditions: BTreeMap<String, GoldenConditions>,
}

/// One WebSocketRoute's conditions, one line each: `Accepted=False Conflicted: <message>`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GoldenConditions {
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_generation: Option<i64>,
    conditions: Vec<String>,
}

impl GoldenConditions {
    fn new(conditions: &RouteConditions) -> GoldenConditions {
        GoldenConditions {
            observed_generation: conditions.observed_generation,
            conditions: conditions
                .iter()
                .map(|c| format!("{}={} {}: {}", c.kind.as_str(), c.status.as_str(), c.reason, c.message))
                .collect(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GoldenRoute {
    id: String,
    source: String,
    host: String,
    path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    conditions: String,
    backends: Vec<GoldenBackend>,
    policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    admission: Option<crate::routes::Admission>,
}

#[derive(Serialize)]
struct GoldenBackend {
    name: String,
    weight: u32,
    endpoints: Vec<String>,
}

impl GoldenRoute {
    fn new(route: &Route) -> GoldenRoute {
        let policy = &route.policy;
        GoldenRoute {
            id: route.id.to_string(),
            source: format!("{:?} {}/{}", route.source.kind, route.source.namespace, route.source.name),
            host: route.host.to_string(),
            path: route.path.to_string(),
            conditions: route.conditions.to_string(),
            backends: route
                .backends
                .iter()
                .map(|b| GoldenBackend {
                    name: b.name.clone(),
                    weight: b.weight,
                    endpoints: b.endpoints.iter().map(|e| e.addr.to_string()).collect(),
                })
                .collect(),
            policy: format!(
                "handshake {}, idle {}{}, {:?}{}{}",
                format_duration(policy.handshake_timeout),
                format_duration(policy.idle_timeout),
                policy.max_lifetime.map(|d| format!(", max lifetime {}", format_duration(d))).unwrap_or_default(),
                policy.load_balancing,
                if policy.https_redirect { ", https redirect" } else { "" },
                policy.source_ranges.as_ref().map_or_else(String::new, |r| {
                    let list =
                        |l: &[crate::routes::cidr::Cidr]| l.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" ");
                    format!(", source allow [{}] deny [{}]", list(&r.allow), list(&r.deny))
                }),
            ),
            admission: (!policy.admission.is_open()).then(|| policy.admission.clone()),
        }
    }
}

fn golden(load_errors: &[String], compiled: &Compiled) -> String {
    let table = &compiled.table;
    let report = &compiled.report;
    let mut routes: Vec<_> = table.routes().collect();
    if table.default_backend().is_some() {
        routes.pop();
    }
    let view = Golden {
        load_errors: load_errors.to_vec(),
        ingresses: report.ingresses.iter().map(|o| format!("{}/{}", o.namespace, o.name)).collect(),
        routes: routes.into_iter().map(|r| GoldenRoute::new(r)).collect(),
        default_backend: table.default_backend().map(|r| GoldenRoute::new(r)),
        tls: table
            .tls()
            .hosts()
            .into_iter()
            .map(|(host, c)| format!("{host} -> {} (notAfter {})", c.secret, c.not_after))
            .collect(),
        diagnostics: report.diagnostics.iter().map(|d| format!("{} {}: {d}", d.severity, d.reason)).collect(),
        conditions: report
            .websocket_routes
            .iter()
            .map(|(o, c)| (format!("{}/{}", o.namespace, o.name), GoldenConditions::new(c)))
            .collect(),
    };
    serde_yaml::to_string(&view).expect("the golden view serializes")
}

/// A request checked against the compiled table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    host: String,
    path: String,
    expect: Option<String>,
    /// Request headers, for routes with header conditions.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// When set: the found route's backends, by name, in order.
    #[serde(default)]
    backends: Option<Vec<String>>,
}

fn check_requests(case: &Path, table: &RouteTable) -> Result<usize, String> {
    let file = case.join("requests.yaml");
    if !file.exists() {
        return Ok(0);
    }
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let requests: Vec<Request> = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut failures = Vec::new();
    for request in &requests {
        let mut headers = http::HeaderMap::new();
        for (name, value) in &request.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name}: {e}"))?;
            headers.insert(name, http::HeaderValue::from_str(value).map_err(|e| format!("header value: {e}"))?);
        }
        let view = crate::routes::RequestView::with_query(&request.host, &request.path).headers(&headers);
        let found = table.lookup_request(&view);
        // `explain` walks the same steps as `lookup`: it must name the same route.
        let explained = table.explain_request(&view);
        if explained.route.as_ref().map(|r| &r.id) != found.map(|r| &r.id) {
            failures.push(format!("  {} {}: explain disagrees with lookup: {explained}", request.host, request.path));
        }
        let ok = match (&request.expect, found) {
            (None, None) => true,
            (Some(expect), Some(route)) => {
                // The route id is kind-qualified; `namespace/name` of its object is accepted too.
                let object = format!("{}/{}", route.source.namespace, route.source.name);
                route.id.as_ref() == expect || &object == expect || route.backends.iter().any(|b| &b.name == expect)
            }
            _ => false,
        };
        let names = |r: &Route| r.backends.iter().map(|b| format!("{} x{}", b.name, b.weight)).collect::<Vec<_>>();
        let ok = ok && request.backends.as_ref().is_none_or(|want| found.is_some_and(|r| names(r) == *want));
        if !ok {
            let got = found.map(|r| format!("route {} ({} {}) to {:?}", r.id, r.host, r.path, names(r)));
            failures.push(format!(
                "  {} {}: expected {:?}, got {}",
                request.host,
                request.path,
                request.expect,
                got.as_deref().unwrap_or("no route")
            ));
        }
    }
    if failures.is_empty() { Ok(requests.len()) } else { Err(failures.join("\n")) }
}

/// A permutation of object indexes.
type Order = fn(&mut Vec<usize>);

/// The same objects in another order.
fn reorder(snapshot: &Snapshot, order: Order) -> Snapshot {
    fn apply<T: Clone>(items: &[T], order: Order) -> Vec<T> {
        let mut indexes: Vec<usize> = (0..items.len()).collect();
        order(&mut indexes);
        indexes.into_iter().map(|i| items[i].clone()).collect()
    }
    Snapshot {
        ingresses: apply(&snapshot.ingresses, order),
        ingress_classes: apply(&snapshot.ingress_classes, order),
        websocket_routes: apply(&snapshot.websocket_routes, order),
        services: apply(&snapshot.services, order),
        endpoint_slices: apply(&snapshot.endpoint_slices, order),
        secrets: apply(&snapshot.secrets, order),
    }
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/controller/compile/testdata")
}

/// `testdata/<case>/options.yaml`, when present: `{nginxCompat: bool, watchIngressClasses: [..]}`.
fn case_options(case: &Path) -> Result<CompileOptions, String> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Options {
        #[serde(default)]
        nginx_compat: bool,
        #[serde(default)]
        watch_ingress_classes: Vec<String>,
    }
    let file = case.join("options.yaml");
    let options: Options = match std::fs::read_to_string(&file) {
        Ok(text) => serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?,
        Err(_) => Options::default(),
    };
    Ok(CompileOptions {
        nginx_compat: options.nginx_compat,
        watch_ingress_classes: options.watch_ingress_classes,
        ..CompileOptions::default()
    })
}

/// Runs one case; returns an error text on mismatch.
fn run_case(case: &Path, update: bool) -> Result<(), String> {
    let loaded = load_files(&[case.join("input.yaml")]);
    let load_errors: Vec<String> =
        loaded.errors.iter().map(|e| format!("document {}: {}", e.document.unwrap_or(0), e.message)).collect();
    let options = case_options(case)?;
    let compiled = compile(&loaded.snapshot, &options);
    let actual = golden(&load_errors, &compiled);

    let orders: [(&str, Order); 2] = [
        ("reversed", |v| v.reverse()),
        ("rotated", |v| {
            let by = v.len().min(1);
            v.rotate_left(by)
        }),
    ];
    for (label, order) in orders {
        let other = golden(&load_errors, &compile(&reorder(&loaded.snapshot, order), &options));
        if other != actual {
            return Err(format!("output changes when the input is {label}:\n{other}\n--- versus ---\n{actual}"));
        }
    }

    let expected_file = case.join("expected.yaml");
    if update {
        std::fs::write(&expected_file, &actual).map_err(|e| format!("cannot write golden: {e}"))?;
    } else {
        let expected = std::fs::read_to_string(&expected_file)
            .map_err(|e| format!("{}: {e} (run with WSGATE_UPDATE_GOLDEN=1 to create it)", expected_file.display()))?;
        if expected != actual {
            return Err(format!("differs from expected.yaml; actual output:\n{actual}"));
        }
    }
    check_requests(case, &compiled.table).map(|_| ())
}

#[test]
fn golden_cases() {
    let update = std::env::var_os("WSGATE_UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(testdata())
        .expect("testdata exists")
        .map(|entry| entry.expect("readable testdata entry").path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no golden cases under {}", testdata().display());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let name = case.file_name().expect("case directory has a name").to_string_lossy().into_owned();
            run_case(case, update).err().map(|error| format!("case {name}:\n{error}"))
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn quickstart_example_compiles_without_diagnostics() {
    let loaded = crate::controller::manifests::load_dir(&examples().join("quickstart")).expect("folder readable");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let compiled = compile(&loaded.snapshot, &CompileOptions::default());
    let diagnostics: Vec<String> = compiled.report.diagnostics.iter().map(ToString::to_string).collect();
    assert!(diagnostics.is_empty(), "{diagnostics:?}");

    let table = &compiled.table;
    let websocket = table.lookup("localhost:8080", "/chat").expect("the WebSocketRoute serves every host");
    assert_eq!(websocket.id.as_ref(), "websocketroute/default/echo");
    let endpoints: Vec<String> = websocket.backends[0].endpoints.iter().map(|e| e.addr.to_string()).collect();
    assert_eq!(endpoints, ["127.0.0.1:9001", "127.0.0.1:9002"]);
    assert_eq!(table.lookup("echo.localhost", "/http/x").map(|r| r.id.as_ref()), Some("ingress/default/echo-http"));
    assert_eq!(table.lookup("echo.localhost", "/ws").map(|r| r.id.as_ref()), Some("websocketroute/default/echo"));
    let conditions = compiled.report.route_conditions("default", "echo").expect("conditions for the route");
    assert!(conditions.iter().all(|c| c.status == super::ConditionStatus::True), "{conditions:?}");
}

#[test]
fn broken_example_is_the_seed_case_and_fails_the_check() {
    let example = std::fs::read_to_string(examples().join("broken/websocket.yaml")).expect("example exists");
    let seed = std::fs::read_to_string(testdata().join("seed/input.yaml")).expect("seed case exists");
    assert_eq!(example, seed, "examples/broken/websocket.yaml must stay a copy of testdata/seed/input.yaml");

    let loaded = crate::controller::manifests::load_dir(&examples().join("broken")).expect("folder readable");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let report = compile(&loaded.snapshot, &CompileOptions::default()).report;
    assert!(report.has_errors());
    let errors: Vec<String> = report.errors().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "Ingress default/example-websocket: spec.rules[0].http.paths[0].backend.service.port.number: \
             Service default/backend has no port 300; its port is 3000",
            "WebSocketRoute default/websocket: spec.backends[0].service.name: Service default/upstream not found",
        ]
    );
}

#[test]
fn objects_with_missing_fields_compile_without_panicking() {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::networking::v1::{
        HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressRule, IngressSpec,
    };

    use crate::crd::WebSocketRoute;

    let ingress = Ingress {
        spec: Some(IngressSpec {
            ingress_class_name: Some("wsgate".to_string()),
            default_backend: Some(IngressBackend::default()),
            rules: Some(vec![
                IngressRule::default(),
                IngressRule {
                    host: Some(String::new()),
                    http: Some(HTTPIngressRuleValue { paths: vec![HTTPIngressPath::default()] }),
                },
            ]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    };
    let snapshot = Snapshot {
        ingresses: vec![ingress, Ingress::default()],
        ingress_classes: vec![IngressClass::default()],
        websocket_routes: vec![WebSocketRoute::new("", Default::default())],
        services: vec![Service::default()],
        endpoint_slices: vec![EndpointSlice::default()],
        secrets: vec![k8s_openapi::api::core::v1::Secret::default()],
    };
    let compiled = compile(&snapshot, &CompileOptions::default());
    assert!(compiled.table.is_empty());
    let diagnostics: Vec<String> = compiled.report.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        diagnostics,
        [
            "Ingress /: spec.defaultBackend: a backend needs a service",
            "Ingress /: spec.rules[1].http.paths[0].backend: a backend needs a service",
            "Ingress /: spec.rules[1].http.paths[0].pathType: pathType is required: Exact, Prefix or ImplementationSpecific",
            "WebSocketRoute /: spec.backends: at least one backend is required",
        ]
    );
}
