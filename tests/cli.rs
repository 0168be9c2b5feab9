//! The command line as a user meets it: clear errors for bad setups, and the printing subcommands.

use std::process::{Command, Output};

fn wsgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsgate"));
    command.args(args).env_remove("KUBERNETES_SERVICE_HOST");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run wsgate")
}

const LOCAL: &[&str] = &["--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"];

#[test]
fn kubernetes_mode_without_a_cluster_config_says_so() {
    let out = wsgate(&[&["run"], LOCAL].concat(), &[("KUBECONFIG", "/nonexistent/kubeconfig")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("wsgate: cannot configure a Kubernetes client (in-cluster or KUBECONFIG)"), "{stderr}");
    assert!(stderr.contains("/nonexistent/kubeconfig"), "the message names the file: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.matches("/nonexistent/kubeconfig").count() <= 2, "no repeated error chain: {last}");
}

#[test]
fn a_malformed_publish_service_is_refused_before_anything_starts() {
    let out = wsgate(&[&["run"], LOCAL, &["--publish-service", "just-a-name"]].concat(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--publish-service must be NAMESPACE/NAME, got \"just-a-name\""), "{stderr}");
}

#[test]
fn rbac_prints_the_rules_the_controller_uses() {
    let out = wsgate(&["rbac"], &[]);
    assert!(out.status.success());
    let printed: serde_json::Value = serde_yaml::from_slice(&out.stdout).expect("YAML");
    let expected = serde_json::to_value(wsgate::controller::rbac::RULES).expect("rules serialize");
    assert_eq!(printed, expected);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("websocketroutes/status"), "{text}");
}

#[test]
fn crd_prints_the_committed_crd() {
    let out = wsgate(&["crd"], &[]);
    assert!(out.status.success());
    let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/websocketroutes.wsgate.dev.yaml"))
        .expect("committed CRD");
    assert_eq!(out.stdout, committed);
}
