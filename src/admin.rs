//! The admin listener, separate from traffic: health, readiness, metrics and route inspection.
//!
//! ```text
//!   GET /healthz       200 while the process runs
//!   GET /readyz        200 once a route table has been published, 503 before and after SIGTERM
//!   GET /metrics       Prometheus text format
//!   GET /debug/routes  the served route table as JSON (and which Secret's certificate each SNI name
//!                      gets: Secret names and dates only, never key material)
//!   GET /debug/explain?host=H&path=P[&header=Name:value]...[&client=IP]
//!                      why would my socket go there? The route the dataplane would pick for host H,
//!                      path P (with its query) and the headers in the served table (`RouteTable::explain`,
//!                      the lookup itself, step by step): the host group that matched, the routes
//!                      skipped before it, the backends with weights and ready endpoints, the outcome
//!                      (routed, 503, 404), and what the route's policies decide (`dataplane::explain`:
//!                      Origin rule, subprotocols, limits, hash key and owner endpoint), as JSON
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::dataplane::Proxy;
use crate::metrics::Metrics;
use crate::routes::tls::TlsHostView;
use crate::routes::{Explanation, Route, SharedTable};

/// Whether wsgate has a route table to serve (set by the publisher) and is not shutting down (set on
/// SIGTERM); read by `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<(AtomicBool, AtomicBool)>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.0.store(true, Ordering::Release);
    }

    /// From now on `/readyz` fails, so load balancers stop sending new connections.
    pub fn set_shutting_down(&self) {
        self.0.1.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.0.load(Ordering::Acquire) && !self.is_shutting_down()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.0.1.load(Ordering::Acquire)
    }
}

/// What the admin endpoints read.
#[derive(Clone)]
pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub table: SharedTable,
    pub readiness: Readiness,
    /// The dataplane, for its connection count and cap in `/debug/routes`.
    pub proxy: Option<Proxy>,
}

/// Client connections open now and the `--max-connections` cap (`null`: none).
#[derive(Serialize)]
struct ConnectionsView {
    open: usize,
    max: Option<usize>,
}

#[derive(Serialize)]
struct TableView<'a> {
    generation: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    connections: Option<ConnectionsView>,
    routes: Vec<&'a Route>,
    tls: Vec<TlsHostView>,
}

impl Admin {
    /// Serves until `shutdown` resolves.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(error) => {
                        // Running out of file descriptors must not end the admin listener.
                        tracing::warn!(%error, "admin accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => return Ok(()),
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.respond(&req)) }
                });
                if let Err(error) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                    tracing::debug!(%error, "admin connection ended with an error");
                }
            });
        }
    }

    /// Answers one admin request.
    pub fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here\n");
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if self.readiness.is_ready() => text(StatusCode::OK, "ready\n"),
            "/readyz" if self.readiness.is_shutting_down() => {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down\n")
            }
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: no route table published yet\n"),
            "/metrics" => Response::builder()
                .header(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
                .body(Full::new(Bytes::from(self.metrics.render())))
                .expect("static response parts are valid"),
            "/debug/routes" => {
                let table = self.table.load();
                let connections = self.proxy.as_ref().map(|proxy| {
                    let (open, max) = proxy.connections();
                    ConnectionsView { open, max }
                });
                let view = TableView {
                    generation: table.generation,
                    connections,
                    routes: table.routes().map(|r| &**r).collect(),
                    tls: table.tls().view(),
                };
                let body = serde_json::to_vec_pretty(&view).expect("the route table serializes to JSON");
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("static response parts are valid")
            }
            "/debug/explain" => self.explain(req.uri().query().unwrap_or("")),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /healthz, /readyz, /metrics, /debug/routes or /debug/explain?host=H&path=P\n",
            ),
        }
    }

    /// `/debug/explain?host=H&path=P[&header=Name:value]...[&client=IP]` (`path` defaults to `/` and
    /// may carry its own query; `client` defaults to 127.0.0.1).
    fn explain(&self, query: &str) -> Response<Full<Bytes>> {
        const USAGE: &str = "usage: /debug/explain?host=H&path=P[&header=Name:value]...[&client=IP] (URL-encoded)\n";
        let (mut host, mut path) = (None, None);
        let mut headers = http::HeaderMap::new();
        let mut client = std::net::IpAddr::from([127, 0, 0, 1]);
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "host" => host = percent_decode(value),
                "path" => path = percent_decode(value),
                "header" => {
                    let parsed = percent_decode(value).and_then(|header| {
                        let (name, value) = header.split_once(':')?;
                        let name = http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
                        Some((name, http::HeaderValue::from_str(value.trim()).ok()?))
                    });
                    let Some((name, value)) = parsed else { return text(StatusCode::BAD_REQUEST, USAGE) };
                    headers.append(name, value);
                }
                "client" => match percent_decode(value).and_then(|v| v.parse().ok()) {
                    Some(ip) => client = ip,
                    None => return text(StatusCode::BAD_REQUEST, USAGE),
                },
                _ => {}
            }
        }
        let Some(host) = host else {
            return text(StatusCode::BAD_REQUEST, USAGE);
        };
        let path = path.unwrap_or_else(|| "/".to_string());
        let table = self.table.load();
        let request = crate::routes::RequestView::with_query(&host, &path).headers(&headers);
        let explanation = table.explain_request(&request);
        let decision = explanation.route.as_ref().map(|route| {
            let uri: http::Uri = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
            crate::dataplane::explain::decide(route, &headers, &uri, client)
        });
        let view = ExplainView { generation: table.generation, explanation, decision };
        let body = serde_json::to_vec_pretty(&view).expect("an explanation serializes to JSON");
        Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid")
    }
}

#[derive(Serialize)]
struct ExplainView {
    generation: u64,
    #[serde(flatten)]
    explanation: Explanation,
    /// What the route's policies decide for this request (`null` without a route).
    decision: Option<crate::dataplane::explain::Decision>,
}

/// Decodes a query value (`%XX` and `+`); `None` when it is not valid UTF-8 or a `%` escape is broken.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(percent_decode("/chat%2Froom+1").as_deref(), Some("/chat/room 1"));
        assert_eq!(percent_decode("%E2%9C%93").as_deref(), Some("\u{2713}"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%+1"), None);
    }
}
