//! The command line as a user meets it: clear errors for bad setups, the printing subcommands, and what the
//! README shows (its recipes pass `wsgate check`; its annotation table is the list wsgate reads).

mod support;

use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::{Value, json};
use support::Folder;
use wsgate::controller::compile::policy::{ANNOTATIONS, OTHER_ANNOTATIONS};

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

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

/// The ```yaml blocks of README.md's `## Recipes` section (up to the next `## ` heading), in order.
fn readme_recipes() -> Vec<String> {
    let readme = readme();
    let (_, section) = readme.split_once("\n## Recipes\n").expect("README.md has a `## Recipes` section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut blocks = Vec::new();
    let mut open: Option<String> = None;
    for line in section.lines() {
        match open.as_mut() {
            None if line.trim_end() == "```yaml" => open = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(open.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(open.is_none(), "a ```yaml block of ## Recipes is not closed");
    blocks
}

/// The documents of a YAML stream.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|document| Value::deserialize(document).expect("recipe YAML parses"))
        .filter(|document| !document.is_null())
        .collect()
}

/// What the cluster's EndpointSlice controller writes for `services` once each has one ready pod: a slice
/// labelled with the Service's name, a port per Service port (its `targetPort` when that is a number), one
/// ready address.
fn endpoint_slices(services: &[&Value]) -> String {
    let slices: Vec<String> = services
        .iter()
        .enumerate()
        .map(|(i, service)| {
            let name = service["metadata"]["name"].as_str().expect("a Service has a name");
            let ports: Vec<Value> = service["spec"]["ports"]
                .as_array()
                .expect("a Service has ports")
                .iter()
                .map(|port| {
                    let number = port["targetPort"].as_u64().or_else(|| port["port"].as_u64()).expect("a port");
                    json!({"name": port["name"], "port": number})
                })
                .collect();
            let slice = json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": format!("{name}-recipe"), "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "ports": ports,
                "endpoints": [{"addresses": [format!("192.0.2.{}", i + 1)], "conditions": {"ready": true}}],
            });
            serde_json::to_string(&slice).expect("serializes")
        })
        .collect();
    slices.join("\n---\n")
}

/// `wsgate check DIR`'s stdout, and whether it exited 0.
fn check(dir: &std::path::Path) -> (bool, String) {
    let out = wsgate(&["check", dir.to_str().expect("utf-8 path")], &[]);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_readme_recipe_passes_check_without_a_warning() {
    let recipes = readme_recipes();
    assert!(recipes.len() >= 4, "README.md's ## Recipes has {} yaml blocks, expected at least 4", recipes.len());
    for (i, recipe) in recipes.iter().enumerate() {
        let context = format!("recipe {} (the yaml block starting {:?})", i + 1, recipe.lines().next());
        let objects = documents(recipe);
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap_or_default()).collect();
        assert!(kinds.contains(&"Service"), "{context}: a recipe is complete, with its Services: {kinds:?}");
        assert!(
            kinds.iter().any(|k| *k == "WebSocketRoute" || *k == "Ingress"),
            "{context}: a recipe has a WebSocketRoute or an Ingress: {kinds:?}"
        );
        // why none: a recipe is applied to a cluster, where Kubernetes writes the EndpointSlices; a
        // hand-written one would add endpoints of its own.
        assert!(!kinds.contains(&"EndpointSlice"), "{context}: a recipe leaves EndpointSlices to Kubernetes");

        let folder = Folder::new(&format!("readme-recipe-{i}"));
        folder.write("recipe.yaml", recipe);
        // As written: served, but every backend warns that it has no ready endpoint (what the README says).
        let (ok, stdout) = check(&folder.0);
        assert!(ok, "{context}: wsgate check failed:\n{stdout}");
        let warnings: Vec<&str> = stdout.lines().filter(|l| l.starts_with("warning: ")).collect();
        assert!(!stdout.lines().any(|l| l.starts_with("error: ")), "{context}:\n{stdout}");
        assert!(
            !warnings.is_empty() && warnings.iter().all(|w| w.ends_with("has no ready endpoints")),
            "{context}: without EndpointSlices, only \"no ready endpoints\" warnings:\n{stdout}"
        );

        // With the EndpointSlices the cluster would write: no error, no warning.
        let services: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Service").collect();
        folder.write("endpointslices.yaml", &endpoint_slices(&services));
        let (ok, stdout) = check(&folder.0);
        assert!(ok, "{context}: wsgate check failed:\n{stdout}");
        let last = stdout.lines().last().unwrap_or_default();
        assert!(last.ends_with(" route(s), 0 error(s), 0 warning(s)"), "{context}:\n{recipe}\n{stdout}");
        assert!(!last.ends_with(": 0 route(s), 0 error(s), 0 warning(s)"), "{context}: no route served:\n{stdout}");
        assert_eq!(stdout.lines().count(), 1, "{context}: nothing but the summary:\n{stdout}");
    }
}

#[test]
fn readme_annotation_table_lists_exactly_the_annotations_wsgate_reads() {
    let readme = readme();
    // Rows of the table: | `wsgate.dev/NAME` | `field` | value |
    let rows: Vec<Vec<String>> = readme
        .lines()
        .filter(|line| line.starts_with("| `wsgate.dev/"))
        .map(|line| line.trim().trim_matches('|').split('|').map(|cell| cell.trim().replace('`', "")).collect())
        .collect();
    let mut listed: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
    listed.sort_unstable();
    let before = listed.len();
    listed.dedup();
    assert_eq!(listed.len(), before, "an annotation is listed twice: {listed:?}");

    let mut known: Vec<&str> =
        ANNOTATIONS.iter().map(|(name, _, _)| *name).chain(OTHER_ANNOTATIONS.iter().copied()).collect();
    known.sort_unstable();
    assert_eq!(listed, known, "README.md's annotation table and ANNOTATIONS + OTHER_ANNOTATIONS (policy.rs) differ");
    assert!(known.contains(&"wsgate.dev/ssl-redirect"), "{known:?}");

    // Each policy annotation's row names the field it stands for and the form of its value, as wsgate says them.
    for (name, field, form) in ANNOTATIONS {
        let row = rows.iter().find(|row| row[0] == *name).expect("listed");
        assert_eq!(row.get(1).map(String::as_str), Some(*field), "README.md: the field of {name}");
        assert_eq!(row.get(2).map(String::as_str), Some(*form), "README.md: the value of {name}");
    }
}

#[test]
fn check_refuses_a_route_that_breaks_a_crd_rule_as_the_api_server_would() {
    let folder = Folder::new("cli-cel-rule");
    folder.write(
        "routes.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: chat}\nspec: {ports: [{name: ws, port: 80}]}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {name: chat-1, labels: {kubernetes.io/service-name: chat}}\naddressType: IPv4\n\
         ports: [{name: ws, port: 9001}]\nendpoints: [{addresses: [127.0.0.1]}]\n---\n\
         apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {name: chat}\n\
         spec:\n  path: {value: /chat}\n  backends: [{service: {name: chat, port: ws}}]\n---\n\
         apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {name: limited}\n\
         spec:\n  path: {value: /limited}\n  backends: [{service: {name: chat, port: ws}}]\n  \
         limits: {handshakesPerSecondPerClient: 10, handshakeBurstPerClient: 5}\n",
    );
    let dir = folder.0.to_str().expect("utf-8 path");
    let out = wsgate(&["check", dir], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a refused route fails the check: {stdout}");
    let expected = format!(
        "error: {}: document 4: WebSocketRoute.wsgate.dev \"limited\" is invalid: spec.limits: Invalid value: \
         \"object\": handshakeBurstPerClient must be at least handshakesPerSecondPerClient",
        folder.0.join("routes.yaml").display()
    );
    assert!(stdout.lines().any(|line| line == expected), "{stdout}");
    // The refused route is not loaded; the valid one is still compiled.
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(last, format!("{dir}: 1 route(s), 1 error(s), 0 warning(s)"), "{stdout}");
}
