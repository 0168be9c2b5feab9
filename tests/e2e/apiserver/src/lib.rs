//! wsgate-test-apiserver: a Kubernetes API server for wsgate's end-to-end tests.
//!
//! It speaks the real Kubernetes HTTP API (discovery, CRUD, patch, watch, status subresources,
//! CRDs with schema validation and pruning) over HTTPS and plain HTTP on loopback, keeping objects as
//! JSON in memory, with bearer-token authentication and RBAC authorization. Start it in-process and point a
//! kube client or kubectl at it:
//!
//! ```text
//!   let mut api = TestApiServer::launch().await?;        // 127.0.0.1:<free port>
//!   api.write_kubeconfig(&path)?;                        // admin (system:masters); or api.url()
//!   let token = api.service_account_token("ns", "sa")?;  // a ServiceAccount, authorized by RBAC
//!   ... kube::Client / kubectl --kubeconfig path ...
//!   api.stop().await; api.start().await?;                // "API server restart", same port, same store
//!
//!   server (accept; tls: HTTPS or plain HTTP on one port)
//!   handler (HTTP, routing, content types: protobuf, table)
//!      ├─► authn (bearer token → user) ──► rbac (request attributes, RBAC decision, default policy)
//!      │
//!      ├─► registry (verb semantics) ──► store (objects, rv, history, apply ownership)
//!      │     ├─ builtin_schema + schema (decode / prune / default / validate), validation
//!      │     ├─ patch (merge, JSON, strategic), apply (server-side apply), events (two groups)
//!      │     └─ catalog (served types, discovery), openapi (v2/v3 documents)
//!      └─► watch (streams from the store's history)
//! ```

pub mod apply;
pub mod authn;
pub mod builtin_schema;
pub mod catalog;
pub mod events;
pub mod handler;
pub mod kubeconfig;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod rbac;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod tls;
pub mod validation;
pub mod watch;

pub use server::{Config, Denial, Error, TestApiServer};
