//! The access log: why a socket went where it did, one line per exchange, at `info` on the target
//! `wsgate::access` (so it follows `--log-format text|json` like every other line).
//!
//! ```text
//!   off (the default): one boolean check per request or handshake; nothing is built or formatted
//!   on:
//!     plain request ──► Request (client, method, host, path without query) ──► answered ──► one line
//!     handshake ──► refused (4xx/5xx, from wsgate or the backend) ──────────────────────► one line
//!               └─► 101 ──► Session (boxed, owned by the tunnel task; no per-message work)
//!                             └─ tunnel ends ──► one line: end = client_closed | backend_closed |
//!                                                idle_timeout | max_lifetime | error; dropped at the
//!                                                drain deadline: drain
//! ```
//!
//! Fields: `kind` (http | websocket), `client` (IP), `listener` (http | https), `method`, `host` (as
//! routed: lower-case, no port), `path` (never the query string), `status` (for WebSockets the handshake
//! answer), `route` (kind/namespace/name, "" without one), `backend` and `endpoint` (what the balancer picked;
//! absent when no endpoint was picked), why that endpoint: `pick` (the policy), `candidates` (how many
//! endpoints it chose among), `ejected` (how many it skipped as ejected) and `attempt` (2 after a failed
//! connect, ...), and on consistent-hash routes `affinity` (where the key came from: header, cookie,
//! new_cookie when wsgate set it, query, source_ip), `hash_key` (the key's 64-bit hash, never the key)
//! and `hash_owner` (false when the key's endpoint was over the load bound and the next one on the
//! ring took it), on routes with an Origin allow-list `origin` (the entry that admitted the handshake:
//! `https://*.example.com`, `null`, `missing`; or `refused`), for refused handshakes `refused` (the
//! reason, as in `wsgate_refused_total`),
//! `upstream_ms` (until the backend's answer head: connect + handshake for a WebSocket), `duration_ms`
//! (a WebSocket's session from its 101 to its end; otherwise until the answer head), `bytes_up` /
//! `bytes_down` (a session's totals; for plain requests the Content-Length values when present) and,
//! for sessions, `end`. No header is ever logged.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Method};

use crate::routes::Route;
use crate::telemetry::ACCESS_TARGET;

use super::balancer::Pick;
use super::conn::Drain;
use super::headers::ClientAddr;
use super::tunnel::End;

/// Whether the access log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AccessLog {
    /// No access lines (the default: it costs CPU per connection).
    #[default]
    Off,
    /// One line per request, per WebSocket session and per refused handshake.
    On,
}

/// What the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    WebSocket,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::WebSocket => "websocket",
        }
    }
}

/// The request as its access line names it, copied out of the request (only when the log is on).
#[derive(Debug)]
pub struct Request {
    kind: Kind,
    client: IpAddr,
    https: bool,
    method: Method,
    host: Box<str>,
    path: Box<str>,
    started: Instant,
    /// Where a consistent-hash route found the key (`cookie`, `new_cookie`, `header`, …).
    affinity: Option<&'static str>,
    /// The allow-list entry that admitted the handshake's Origin (or `refused`).
    origin: Option<Box<str>>,
    /// The policy or limit that refused the handshake.
    refused: Option<&'static str>,
}

impl Request {
    /// `client` is the client's address as the policies see it (the peer, or what a trusted proxy
    /// says); `host` as routed (lower-case, no port; "" when the request had no usable Host); `path`
    /// without the query string.
    pub fn new(kind: Kind, conn: &ClientAddr, client: IpAddr, method: &Method, host: &str, path: &str) -> Box<Request> {
        Box::new(Request {
            kind,
            client,
            https: conn.is_https(),
            method: method.clone(),
            host: host.into(),
            path: path.into(),
            started: Instant::now(),
            affinity: None,
            origin: None,
            refused: None,
        })
    }

    /// Records which Origin rule decided.
    pub fn set_origin(&mut self, rule: String) {
        self.origin = Some(rule.into());
    }

    /// Records which policy or limit refused the handshake.
    pub fn set_refused(&mut self, reason: &'static str) {
        self.refused = Some(reason);
    }

    /// Records where the affinity key came from.
    pub fn set_affinity(&mut self, source: &'static str) {
        self.affinity = Some(source);
    }

    /// Milliseconds since the request was read.
    fn elapsed_ms(&self) -> u64 {
        millis(self.started)
    }
}

/// The access line of an exchange answered at once: a plain request, a refused request or handshake.
/// `picked` is the last endpoint tried, if any.
pub fn answered(request: &Request, status: u16, route: Option<&Route>, picked: Option<&Pick>, bytes: Bytes) {
    let elapsed = request.elapsed_ms();
    emit(&Line {
        request,
        status,
        route,
        picked,
        upstream_ms: picked.map(|_| elapsed),
        duration_ms: elapsed,
        bytes,
        end: None,
    });
}

/// Bytes (client → backend, backend → client), when known.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bytes {
    pub up: Option<u64>,
    pub down: Option<u64>,
}

/// The body size a head announces with Content-Length, if it does.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// One WebSocket session, from its 101 to its end. Owned (boxed) by the tunnel task; its line is written
/// when it is dropped: with the end the tunnel reported, or `drain` when the task was dropped at the drain
/// deadline (`error` if dropped any other way).
#[derive(Debug)]
pub struct Session {
    request: Box<Request>,
    route: Arc<Route>,
    picked: Pick,
    upstream_ms: u64,
    opened: Instant,
    /// why a drain token of its own: `serve` waits for every token, so the line is written before the
    /// process exits even when the session is cut at the drain deadline.
    drain: Drain,
    end: Option<(&'static str, Bytes)>,
}

impl Session {
    /// Opens the session when the 101 is relayed; `request` started when the handshake was read.
    pub fn open(request: Box<Request>, route: &Arc<Route>, picked: Pick, drain: &Drain) -> Box<Session> {
        let upstream_ms = request.elapsed_ms();
        Box::new(Session {
            request,
            route: Arc::clone(route),
            picked,
            upstream_ms,
            opened: Instant::now(),
            drain: drain.clone(),
            end: None,
        })
    }

    /// Records the tunnel's result and byte totals; the line is written when the session is dropped.
    pub fn close(&mut self, end: &std::io::Result<End>, up: u64, down: u64) {
        let end = match end {
            Ok(end) => end.reason(),
            Err(_) => "error",
        };
        self.end = Some((end, Bytes { up: Some(up), down: Some(down) }));
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let (end, bytes) = self.end.unwrap_or_else(|| {
            let dropped = if self.drain.is_closing() { "drain" } else { "error" };
            (dropped, Bytes::default())
        });
        emit(&Line {
            request: &self.request,
            status: 101,
            route: Some(&self.route),
            picked: Some(&self.picked),
            upstream_ms: Some(self.upstream_ms),
            duration_ms: millis(self.opened),
            bytes,
            end: Some(end),
        });
    }
}

/// Everything one access line says.
struct Line<'a> {
    request: &'a Request,
    status: u16,
    route: Option<&'a Route>,
    picked: Option<&'a Pick>,
    upstream_ms: Option<u64>,
    duration_ms: u64,
    bytes: Bytes,
    end: Option<&'static str>,
}

fn emit(line: &Line<'_>) {
    let request = line.request;
    let hash_key = line.picked.and_then(|p| p.key).map(|k| format!("{k:016x}"));
    let backend = match (line.route, line.picked) {
        (Some(route), Some(picked)) => route.backends.get(picked.backend).map(|b| b.name.as_str()),
        _ => None,
    };
    tracing::info!(
        target: ACCESS_TARGET,
        kind = request.kind.as_str(),
        client = %request.client,
        listener = if request.https { "https" } else { "http" },
        method = request.method.as_str(),
        host = &*request.host,
        path = &*request.path,
        status = line.status,
        route = line.route.map_or("", |r| &*r.id),
        backend,
        endpoint = line.picked.map(|p| display(p.addr)),
        pick = line.picked.map(Pick::policy_name),
        candidates = line.picked.map(|p| p.candidates),
        ejected = line.picked.map(|p| p.ejected),
        attempt = line.picked.map(|p| p.attempt),
        affinity = request.affinity,
        hash_key = hash_key.as_deref(),
        hash_owner = line.picked.and_then(|p| p.owner),
        origin = request.origin.as_deref(),
        refused = request.refused,
        upstream_ms = line.upstream_ms,
        duration_ms = line.duration_ms,
        bytes_up = line.bytes.up,
        bytes_down = line.bytes.down,
        end = line.end,
        "access"
    );
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
