//! The admin listener, separate from traffic: health, readiness, metrics and route inspection.
//!
//! ```text
//!   GET /healthz       200 while the process runs
//!   GET /readyz        200 once a route table has been published, 503 before
//!   GET /metrics       Prometheus text format
//!   GET /debug/routes  the served route table as JSON: why does my socket go there? (and which Secret's
//!                      certificate each SNI name gets: Secret names and dates only, never key material)
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

use crate::metrics::Metrics;
use crate::routes::tls::TlsHostView;
use crate::routes::{Route, SharedTable};

/// Whether wsgate has a route table to serve. Set by the publisher, read by `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What the admin endpoints read.
#[derive(Clone)]
pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub table: SharedTable,
    pub readiness: Readiness,
}

#[derive(Serialize)]
struct TableView<'a> {
    generation: u64,
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
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: no route table published yet\n"),
            "/metrics" => Response::builder()
                .header(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
                .body(Full::new(Bytes::from(self.metrics.render())))
                .expect("static response parts are valid"),
            "/debug/routes" => {
                let table = self.table.load();
                let view = TableView {
                    generation: table.generation,
                    routes: table.routes().map(|r| &**r).collect(),
                    tls: table.tls().view(),
                };
                let body = serde_json::to_vec_pretty(&view).expect("the route table serializes to JSON");
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("static response parts are valid")
            }
            _ => text(StatusCode::NOT_FOUND, "not found: try /healthz, /readyz, /metrics or /debug/routes\n"),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("static response parts are valid")
}
