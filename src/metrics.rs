//! Every Prometheus metric family wsgate exports, in one registry.
//!
//! Labels come only from configured objects (`route` is the source object's `kind/namespace/name`) or closed
//! sets (`outcome`, `direction`, `code`, `reason`) or served Secrets (`secret`, `namespace/name`): never client addresses, paths or error text. Requests that
//! match no route are counted under `route=""`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Outcome of a WebSocket upgrade attempt: the `outcome` label of `wsgate_websocket_upgrades_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeOutcome {
    /// The backend answered 101 and the tunnel is open.
    Success,
    /// The client's handshake was malformed (400/426).
    BadRequest,
    /// No route matched (404).
    NoRoute,
    /// The route had no ready endpoint (503).
    NoEndpoint,
    /// Connecting failed, the backend reset, or answered 101 wrongly (502).
    BackendError,
    /// The backend did not answer within the handshake timeout (504).
    Timeout,
    /// The backend answered without upgrading (e.g. 403); the answer was relayed.
    Rejected,
    /// The route's admission policy refused it (Origin, subprotocol, a limit): see
    /// `wsgate_refused_total` for which.
    Refused,
}

impl UpgradeOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeOutcome::Success => "success",
            UpgradeOutcome::BadRequest => "bad_request",
            UpgradeOutcome::NoRoute => "no_route",
            UpgradeOutcome::NoEndpoint => "no_endpoint",
            UpgradeOutcome::BackendError => "backend_error",
            UpgradeOutcome::Timeout => "timeout",
            UpgradeOutcome::Rejected => "rejected",
            UpgradeOutcome::Refused => "refused",
        }
    }
}

/// Why a TLS handshake on the HTTPS listener failed: the `reason` label of
/// `wsgate_tls_handshake_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The client sent no SNI name, or one no served certificate covers: the handshake is refused.
    NoCertificate,
    /// Anything else: not TLS, no common version or cipher suite, no `http/1.1` in ALPN, a client that
    /// rejected the certificate, a timeout.
    HandshakeError,
}

impl TlsFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::NoCertificate => "no_certificate",
            TlsFailure::HandshakeError => "handshake_error",
        }
    }
}

/// Direction of proxied bytes: the `direction` label of `wsgate_proxied_bytes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the backend.
    Upstream,
    /// From the backend to the client.
    Downstream,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
        }
    }
}

/// The registry and every metric family. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub websocket_connections_active: IntGaugeVec,
    pub websocket_upgrades_total: IntCounterVec,
    pub websocket_connection_duration_seconds: HistogramVec,
    pub websocket_handshake_duration_seconds: HistogramVec,
    pub proxied_bytes_total: IntCounterVec,
    pub http_requests_total: IntCounterVec,
    pub refused_total: IntCounterVec,
    pub limit_tracked_clients: IntGauge,
    pub route_table_generation: IntGauge,
    pub route_table_routes: IntGauge,
    pub route_ready_endpoints: IntGaugeVec,
    pub config_errors_total: IntCounter,
    pub config_errors: IntGauge,
    pub config_reloads_total: IntCounterVec,
    pub config_last_reload_timestamp_seconds: prometheus::Gauge,
    pub config_compile_duration_seconds: Histogram,
    pub kube_watch_errors_total: IntCounterVec,
    pub last_sync_timestamp_seconds: prometheus::Gauge,
    pub reconcile_duration_seconds: Histogram,
    pub status_writes_total: IntCounterVec,
    pub tls_certificate_expiry_timestamp_seconds: IntGaugeVec,
    pub tls_handshake_failures_total: IntCounterVec,
    pub websocket_closed_total: IntCounterVec,
    pub websocket_pings_sent_total: IntCounterVec,
    pub websocket_pongs_missed_total: IntCounterVec,
    pub websocket_frame_layer_active: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let m = Metrics {
            websocket_connections_active: IntGaugeVec::new(
                Opts::new("wsgate_websocket_connections_active", "WebSocket tunnels open right now."),
                &["route"],
            )
            .expect("valid metric"),
            websocket_upgrades_total: IntCounterVec::new(
                Opts::new(
                    "wsgate_websocket_upgrades_total",
                    "WebSocket upgrade attempts by outcome (success, bad_request, no_route, no_endpoint, \
                     backend_error, timeout, rejected, refused).",
                ),
                &["route", "outcome"],
            )
            .expect("valid metric"),
            websocket_connection_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "wsgate_websocket_connection_duration_seconds",
                    "Lifetime of closed WebSocket tunnels.",
                )
                .buckets(vec![1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4.0 * 3600.0, 24.0 * 3600.0]),
                &["route"],
            )
            .expect("valid metric"),
            websocket_handshake_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "wsgate_websocket_handshake_duration_seconds",
                    "Time from receiving a client's upgrade request to relaying the backend's answer.",
                )
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]),
                &["route"],
            )
            .expect("valid metric"),
            proxied_bytes_total: IntCounterVec::new(
                Opts::new(
                    "wsgate_proxied_bytes_total",
                    "Bytes relayed through WebSocket tunnels (upstream: client to backend).",
                ),
                &["route", "direction"],
            )
            .expect("valid metric"),
            http_requests_total: IntCounterVec::new(
                Opts::new("wsgate_http_requests_total", "Plain HTTP requests by route and status code (HTTPS redirects: code 308, WebSocket handshakes included)."),
                &["route", "code"],
            )
            .expect("valid metric"),
            refused_total: IntCounterVec::new(
                Opts::new(
                    "wsgate_refused_total",
                    "Requests, connections and WebSocket handshakes refused by a policy or limit, by reason \
                     (source_range, origin, subprotocol, route_max_connections, client_max_connections, client_rate; max_connections \
                     with route=\"\" for --max-connections at accept).",
                ),
                &["route", "reason"],
            )
            .expect("valid metric"),
            limit_tracked_clients: IntGauge::new(
                "wsgate_limit_tracked_clients",
                "Per-(route, client IP) entries the per-client limits hold now (at most --max-tracked-clients).",
            )
            .expect("valid metric"),
            route_table_generation: IntGauge::new(
                "wsgate_route_table_generation",
                "Generation of the route table being served; increases on every publish.",
            )
            .expect("valid metric"),
            route_table_routes: IntGauge::new("wsgate_route_table_routes", "Routes in the served table.")
                .expect("valid metric"),
            route_ready_endpoints: IntGaugeVec::new(
                Opts::new(
                    "wsgate_route_ready_endpoints",
                    "Ready endpoints behind each served route (the fewest among the object's host/path rules).",
                ),
                &["route"],
            )
            .expect("valid metric"),
            config_errors_total: IntCounter::new(
                "wsgate_config_errors_total",
                "Configuration errors found while compiling (each broken document or object, each build).",
            )
            .expect("valid metric"),
            config_errors: IntGauge::new(
                "wsgate_config_errors",
                "Configuration errors in the latest build (broken documents, invalid or conflicting objects); 0 when clean.",
            )
            .expect("valid metric"),
            config_reloads_total: IntCounterVec::new(
                Opts::new(
                    "wsgate_config_reloads_total",
                    "Route table builds by outcome (published, unchanged, failed).",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            config_last_reload_timestamp_seconds: prometheus::Gauge::new(
                "wsgate_config_last_reload_timestamp_seconds",
                "Unix time of the last route table publish.",
            )
            .expect("valid metric"),
            config_compile_duration_seconds: Histogram::with_opts(
                HistogramOpts::new("wsgate_config_compile_duration_seconds", "Time to compile a route table.")
                    .buckets(vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0]),
            )
            .expect("valid metric"),
            kube_watch_errors_total: IntCounterVec::new(
                Opts::new(
                    "wsgate_kube_watch_errors_total",
                    "Kubernetes watch failures by kind; watchers retry with backoff.",
                ),
                &["kind"],
            )
            .expect("valid metric"),
            last_sync_timestamp_seconds: prometheus::Gauge::new(
                "wsgate_last_sync_timestamp_seconds",
                "Unix time of the last event received from the Kubernetes API.",
            )
            .expect("valid metric"),
            reconcile_duration_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "wsgate_reconcile_duration_seconds",
                    "Time from a Kubernetes change being noticed to the new table being published.",
                )
                .buckets(vec![0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5]),
            )
            .expect("valid metric"),
            status_writes_total: IntCounterVec::new(
                Opts::new(
                    "wsgate_status_writes_total",
                    "Status patches sent to the Kubernetes API by outcome (written, failed).",
                ),
                &["kind", "outcome"],
            )
            .expect("valid metric"),
            tls_certificate_expiry_timestamp_seconds: IntGaugeVec::new(
                Opts::new(
                    "wsgate_tls_certificate_expiry_timestamp_seconds",
                    "notAfter (Unix time) of the leaf certificate of each served TLS Secret.",
                ),
                &["secret"],
            )
            .expect("valid metric"),
            tls_handshake_failures_total: IntCounterVec::new(
                Opts::new(
                    "wsgate_tls_handshake_failures_total",
                    "TLS handshakes on the HTTPS listener that failed, by reason (no_certificate, handshake_error).",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            websocket_closed_total: IntCounterVec::new(
                Opts::new(
                    "wsgate_websocket_closed_total",
                    "Ended WebSockets by reason (client_closed, backend_closed, idle_timeout, max_lifetime, \
                     pong_timeout, message_too_big, protocol_error, endpoint_drain, shutdown, rebalance, \
                     error), by whose doing (side: client, backend, wsgate) and by the close code of the \
                     client's closing handshake (code; none: no Close frame, as on the byte tunnel).",
                ),
                &["route", "reason", "side", "code"],
            )
            .expect("valid metric"),
            websocket_pings_sent_total: IntCounterVec::new(
                Opts::new("wsgate_websocket_pings_sent_total", "Keepalive pings wsgate sent, by peer (toward)."),
                &["route", "toward"],
            )
            .expect("valid metric"),
            websocket_pongs_missed_total: IntCounterVec::new(
                Opts::new(
                    "wsgate_websocket_pongs_missed_total",
                    "Keepalive pings not answered within the pong timeout (each closed its WebSocket), by peer.",
                ),
                &["route", "toward"],
            )
            .expect("valid metric"),
            websocket_frame_layer_active: IntGaugeVec::new(
                Opts::new(
                    "wsgate_websocket_frame_layer_active",
                    "WebSockets open right now on the frame layer (the rest are byte tunnels).",
                ),
                &["route"],
            )
            .expect("valid metric"),
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.websocket_connections_active.clone()),
            Box::new(m.websocket_upgrades_total.clone()),
            Box::new(m.websocket_connection_duration_seconds.clone()),
            Box::new(m.websocket_handshake_duration_seconds.clone()),
            Box::new(m.proxied_bytes_total.clone()),
            Box::new(m.http_requests_total.clone()),
            Box::new(m.refused_total.clone()),
            Box::new(m.route_table_generation.clone()),
            Box::new(m.route_table_routes.clone()),
            Box::new(m.limit_tracked_clients.clone()),
            Box::new(m.route_ready_endpoints.clone()),
            Box::new(m.config_errors_total.clone()),
            Box::new(m.config_errors.clone()),
            Box::new(m.config_reloads_total.clone()),
            Box::new(m.config_last_reload_timestamp_seconds.clone()),
            Box::new(m.config_compile_duration_seconds.clone()),
            Box::new(m.kube_watch_errors_total.clone()),
            Box::new(m.last_sync_timestamp_seconds.clone()),
            Box::new(m.reconcile_duration_seconds.clone()),
            Box::new(m.status_writes_total.clone()),
            Box::new(m.tls_certificate_expiry_timestamp_seconds.clone()),
            Box::new(m.tls_handshake_failures_total.clone()),
            Box::new(m.websocket_closed_total.clone()),
            Box::new(m.websocket_pings_sent_total.clone()),
            Box::new(m.websocket_pongs_missed_total.clone()),
            Box::new(m.websocket_frame_layer_active.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// The registry, for collectors registered elsewhere (e.g. the Kubernetes source's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Everything in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("encoding metrics into a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
