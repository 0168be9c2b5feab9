//! The command line as a user meets it: clear errors for bad setups, and the printing subcommands.

mod support;

use std::process::{Command, Output};

use support::Folder;

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

#[test]
fn check_warns_about_a_misspelled_field_and_still_passes() {
    let folder = Folder::new("cli-unknown-field");
    folder.write(
        "route.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: chat}\nspec: {ports: [{name: ws, port: 80}]}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {name: chat-1, labels: {kubernetes.io/service-name: chat}}\naddressType: IPv4\n\
         ports: [{name: ws, port: 9001}]\nendpoints: [{addresses: [127.0.0.1]}]\n---\n\
         apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {name: chat}\n\
         spec:\n  hostname: [chat.example.com]\n  backends: [{service: {name: chat, port: ws}}]\n",
    );
    let dir = folder.0.to_str().expect("utf-8 path");
    let out = wsgate(&["check", dir], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "warnings do not fail the check: {stdout}");
    let route = folder.0.join("route.yaml");
    let expected = format!(
        "warning: {}: document 3: WebSocketRoute default/chat: unknown field \"spec.hostname\" (ignored)",
        route.display()
    );
    assert!(stdout.lines().any(|line| line == expected), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    // The route is served (for every host, as `hostnames` is unset), and the one warning is counted.
    assert_eq!(last, format!("{dir}: 1 route(s), 0 error(s), 1 warning(s)"), "{stdout}");
}

#[test]
fn max_tracked_clients_defaults_to_the_dataplane_default_and_refuses_zero() {
    let out = wsgate(&["run", "--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let (_, after) = help.split_once("--max-tracked-clients <N>").expect("the flag is listed");
    let entry = after.split("\n      --").next().unwrap_or_default();
    assert!(entry.contains("[env: WSGATE_MAX_TRACKED_CLIENTS="), "{entry}");
    let default = format!("[default: {}]", wsgate::dataplane::DEFAULT_MAX_TRACKED_CLIENTS);
    assert!(entry.contains(&default), "{entry}");

    let out = wsgate(&[&["run"], LOCAL, &["--max-tracked-clients", "0"]].concat(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("invalid value '0' for '--max-tracked-clients <N>'"), "{stderr}");
}
