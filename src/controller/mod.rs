//! The control side: sources of Kubernetes objects, the pure compiler, and publishing.
//!
//! ```text
//!   manifests (file mode) ─┐
//!                          ├─► Snapshot ─► compile ─► (RouteTable, Report) ─► publish (ArcSwap)
//!   kube reflectors ───────┘
//! ```

pub mod compile;
pub mod file_mode;
pub mod kube_mode;
pub mod lease;
pub mod manifests;
pub mod publish;
pub mod rbac;
pub mod snapshot;
pub mod sources;
pub mod status;

pub use snapshot::Snapshot;
