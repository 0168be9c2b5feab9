//! Tests of the test API server over real HTTP: with kube-rs (the client wsgate uses), with raw
//! requests where exact bodies matter, and with the kubectl binary.

mod cel;
mod crd;
mod crud;
mod discovery;
mod harness;
mod kubectl;
mod lifecycle;
mod rbac;
mod watch;
