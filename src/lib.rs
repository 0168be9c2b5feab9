//! wsgate: a Kubernetes ingress controller built for WebSockets.
//!
//! ```text
//!   sources (Kubernetes API | manifest folder)
//!        │  Snapshot
//!        ▼
//!   controller::compile  (pure)  ──► Report (conditions per object) ──► status / `wsgate check`
//!        │  RouteTable
//!        ▼
//!   ArcSwap<RouteTable>  ──►  dataplane (HTTP proxy + WebSocket tunnels)
//! ```
//!
//! `routes` is plain data shared by both halves; the dataplane never imports kube.

pub mod admin;
pub mod controller;
pub mod crd;
pub mod dataplane;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod telemetry;
