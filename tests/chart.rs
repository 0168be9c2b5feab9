//! The Helm chart (`charts/wsgate`) and what is generated from it, checked with the real `helm` binary.
//!
//! ```text
//!   charts/wsgate/ci/*.yaml ──helm lint --strict──────► no warning
//!                          └─helm template──────────► every object strict-read into its Kubernetes type;
//!                                                      RBAC == controller::rbac::RULES; admin port private;
//!                                                      securityContext; flags known to `wsgate run --help`
//!   charts/wsgate/tests/invalid-values.yaml ──────────► rejected by values.schema.json
//!   charts/wsgate/crds/ == crds/         deploy/ == deploy/generate.sh run afresh
//!   values.yaml `# --` comments ──────────────────────► charts/wsgate/README.md values table
//! ```
//!
//! How objects are read strictly: k8s-openapi's types skip unknown fields when deserializing, so each rendered
//! object is deserialized into its type, serialized back and compared with what helm rendered. A misspelled or
//! misplaced field (or a `null`) is dropped by that round trip and shows up as a difference; a mistyped value
//! fails to deserialize. prometheus-operator objects have no k8s-openapi type: they are read into the small
//! `deny_unknown_fields` structs below, which cover the fields the chart renders.
//!
//! `helm` comes from `$HELM` or PATH (`.ci/tools.sh` installs it). `WSGATE_UPDATE_CHART_README=1` rewrites the
//! README's values table instead of failing when it is stale.

#[path = "support/tools.rs"]
mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{IngressClass, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use wsgate::controller::rbac::RULES;

const RELEASE: &str = "wsgate";
const NAMESPACE: &str = "wsgate";
const MONITORING_API: &str = "monitoring.coreos.com/v1";
/// Longest any helm invocation may take.
const HELM_TIMEOUT: Duration = Duration::from_secs(120);
/// Metrics the chart already uses but wsgate does not export yet; remove a name here (and the "not exported
/// yet" notes in the chart) once src/metrics.rs has it.
const FUTURE_METRICS: &[&str] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("charts/wsgate")
}

/// The helm binary (see `support/tools.rs`).
fn helm() -> PathBuf {
    static HELM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HELM.get_or_init(|| tools::tool("HELM", "helm")).clone()
}

/// Runs a command to completion within HELM_TIMEOUT, killing it if it takes longer.
fn run(command: Command) -> Output {
    tools::run(command, HELM_TIMEOUT)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The scenario values files in charts/wsgate/ci/, sorted.
fn scenarios() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("ci"))
        .expect("charts/wsgate/ci exists")
        .map(|entry| entry.expect("readable ci/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "expected at least 4 scenarios in charts/wsgate/ci, found {files:?}");
    files
}

fn name_of(path: &Path) -> String {
    path.file_name().expect("a file name").to_string_lossy().into_owned()
}

/// `helm template` of one values file, CRDs included, as JSON documents.
fn render(values: &Path, api_versions: &[&str]) -> Result<Vec<Value>, String> {
    let mut command = Command::new(helm());
    command.args(["template", RELEASE]).arg(chart()).args(["--namespace", NAMESPACE, "--include-crds", "-f"]);
    command.arg(values);
    for api in api_versions {
        command.args(["--api-versions", api]);
    }
    let output = run(command);
    if !output.status.success() {
        return Err(text(&output.stderr));
    }
    Ok(documents(&text(&output.stdout)))
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|document| Value::deserialize(document).expect("helm renders YAML that maps to JSON"))
        .filter(|document| !document.is_null())
        .collect()
}

fn yaml_file(path: &Path) -> Value {
    let content = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let value: Value = serde_yaml::from_str(&content).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    if value.is_null() { json!({}) } else { value }
}

/// values.yaml with a scenario file merged over it, as helm merges them (maps deeply, everything else replaced).
fn effective_values(scenario: &Path) -> Value {
    fn merge(base: &mut Value, over: Value) {
        match (base, over) {
            (Value::Object(base), Value::Object(over)) => {
                for (key, value) in over {
                    match base.get_mut(&key) {
                        Some(slot) => merge(slot, value),
                        None => {
                            base.insert(key, value);
                        }
                    }
                }
            }
            (slot, value) => *slot = value,
        }
    }
    let mut values = yaml_file(&chart().join("values.yaml"));
    merge(&mut values, yaml_file(scenario));
    values
}

fn kind(document: &Value) -> &str {
    document["kind"].as_str().unwrap_or("")
}

fn name(document: &Value) -> &str {
    document["metadata"]["name"].as_str().unwrap_or("")
}

fn of_kind<'a>(documents: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    documents.iter().filter(|document| kind(document) == wanted).collect()
}

fn only<'a>(documents: &'a [Value], wanted: &str) -> &'a Value {
    let found = of_kind(documents, wanted);
    assert_eq!(found.len(), 1, "expected exactly one {wanted}, found {}", found.len());
    found[0]
}

/// Paths where `back` (after a round trip through a type) differs from `rendered`.
fn differences(path: &str, rendered: &Value, back: &Value, out: &mut Vec<String>) {
    match (rendered, back) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let here = format!("{path}.{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => differences(&here, x, y, out),
                    (Some(x), None) => out.push(format!("{here}: {x} is dropped (unknown field, or null)")),
                    (None, Some(y)) => out.push(format!("{here}: {y} appears after the round trip")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                differences(&format!("{path}[{index}]"), x, y, out);
            }
        }
        _ if rendered == back => {}
        _ => out.push(format!("{path}: rendered {rendered}, reads back as {back}")),
    }
}

/// Deserializes into `T`, serializes back, and requires nothing to be lost or changed.
fn round_trip<T: DeserializeOwned + Serialize>(document: &Value) -> Result<(), String> {
    let typed: T =
        serde_json::from_value(document.clone()).map_err(|error| format!("does not deserialize: {error}"))?;
    let back = serde_json::to_value(&typed).map_err(|error| format!("does not serialize: {error}"))?;
    let mut out = Vec::new();
    differences("", document, &back, &mut out);
    if out.is_empty() { Ok(()) } else { Err(out.join("; ")) }
}

/// prometheus-operator's ServiceMonitor, as far as the chart renders it. Deserialized only to reject unknown
/// fields, so some fields are never read.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: Value,
    spec: ServiceMonitorSpec,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorSpec {
    selector: LabelSelector,
    namespace_selector: Option<NamespaceSelector>,
    endpoints: Vec<ScrapeEndpoint>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NamespaceSelector {
    match_names: Vec<String>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScrapeEndpoint {
    port: String,
    path: Option<String>,
    interval: Option<String>,
    scrape_timeout: Option<String>,
    relabelings: Option<Vec<Value>>,
    metric_relabelings: Option<Vec<Value>>,
}

/// prometheus-operator's PrometheusRule, as far as the chart renders it.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PrometheusRule {
    api_version: String,
    kind: String,
    metadata: Value,
    spec: PrometheusRuleSpec,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrometheusRuleSpec {
    groups: Vec<RuleGroup>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<AlertingRule>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertingRule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// A prometheus-operator object: its own fields strictly, its metadata by round trip.
fn structural<T: DeserializeOwned>(document: &Value) -> Result<(), String> {
    serde_json::from_value::<T>(document.clone()).map_err(|error| format!("unexpected shape: {error}"))?;
    round_trip::<ObjectMeta>(&document["metadata"]).map_err(|error| format!("metadata: {error}"))
}

fn check_strictly(document: &Value) -> Result<(), String> {
    let api_version = document["apiVersion"].as_str().unwrap_or("");
    match (api_version, kind(document)) {
        ("v1", "Namespace") => round_trip::<Namespace>(document),
        ("v1", "Service") => round_trip::<Service>(document),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(document),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(document),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(document),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(document),
        ("autoscaling/v2", "HorizontalPodAutoscaler") => round_trip::<HorizontalPodAutoscaler>(document),
        ("networking.k8s.io/v1", "IngressClass") => round_trip::<IngressClass>(document),
        ("networking.k8s.io/v1", "NetworkPolicy") => round_trip::<NetworkPolicy>(document),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(document),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => round_trip::<ClusterRoleBinding>(document),
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(document),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(document),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => round_trip::<CustomResourceDefinition>(document),
        (MONITORING_API, "ServiceMonitor") => structural::<ServiceMonitor>(document),
        (MONITORING_API, "PrometheusRule") => structural::<PrometheusRule>(document),
        (api_version, kind) => Err(format!("the chart is not expected to render {api_version} {kind}")),
    }
}

/// One RBAC rule, order-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

fn sorted(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut values: Vec<String> = values.into_iter().collect();
    values.sort();
    values
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Where a (Cluster)Role applies: `None` for a ClusterRole, else the Role's namespace.
type Scope = Option<String>;

fn check_rbac(documents: &[Value], values: &Value, scenario: &str) {
    let watch = values["controller"]["watchNamespace"].as_str().unwrap_or("");
    let mut granted: Vec<(Scope, Grant)> = Vec::new();
    for role in documents.iter().filter(|d| kind(d) == "ClusterRole" || kind(d) == "Role") {
        let scope = (kind(role) == "Role").then(|| role["metadata"]["namespace"].as_str().unwrap_or("").to_string());
        let mut seen = BTreeSet::new();
        for rule in role["rules"].as_array().expect("a role has rules") {
            assert!(
                rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(),
                "{scenario}: {} {}: rbac.rs has no resourceNames nor nonResourceURLs: {rule}",
                kind(role),
                name(role)
            );
            let grant = Grant {
                api_groups: sorted(strings(&rule["apiGroups"])),
                resources: sorted(strings(&rule["resources"])),
                verbs: sorted(strings(&rule["verbs"])),
            };
            assert!(seen.insert(grant.clone()), "{scenario}: {} {} repeats {grant:?}", kind(role), name(role));
            granted.push((scope.clone(), grant));
        }
    }

    let expected: Vec<Grant> = RULES
        .iter()
        .map(|rule| Grant {
            api_groups: sorted(rule.api_groups.iter().map(|s| s.to_string())),
            resources: sorted(rule.resources.iter().map(|s| s.to_string())),
            verbs: sorted(rule.verbs.iter().map(|s| s.to_string())),
        })
        .collect();

    // No more than rbac.rs lists.
    for (scope, grant) in &granted {
        assert!(
            expected.contains(grant),
            "{scenario}: {scope:?} grants {grant:?}, which src/controller/rbac.rs does not list"
        );
    }
    // No less, and each where it belongs.
    for (rule, grant) in RULES.iter().zip(&expected) {
        let scopes: Vec<&Scope> = granted.iter().filter(|(_, g)| g == grant).map(|(scope, _)| scope).collect();
        assert!(!scopes.is_empty(), "{scenario}: {grant:?} from src/controller/rbac.rs is not granted");
        let cluster_wide = scopes.iter().any(|scope| scope.is_none());
        let in_namespace = |ns: &str| scopes.iter().any(|scope| scope.as_deref() == Some(ns));
        if rule.cluster_scoped {
            assert!(
                scopes.iter().all(|scope| scope.is_none()),
                "{scenario}: {grant:?} is cluster-scoped: it belongs in a ClusterRole"
            );
        } else if rule.resources == ["leases"] {
            assert!(
                scopes.iter().all(|scope| scope.as_deref() == Some(NAMESPACE)),
                "{scenario}: {grant:?} (leader election) belongs in a Role in the release namespace only, got {scopes:?}"
            );
        } else if watch.is_empty() {
            assert!(cluster_wide, "{scenario}: {grant:?} must be in the ClusterRole (every namespace is watched)");
        } else {
            assert!(!cluster_wide, "{scenario}: {grant:?} must not be cluster-wide when only {watch} is watched");
            assert!(in_namespace(watch), "{scenario}: {grant:?} must be granted in the watched namespace {watch}");
        }
    }

    // Every (Cluster)Role is bound to the pods' ServiceAccount.
    let deployment = only(documents, "Deployment");
    let account = deployment["spec"]["template"]["spec"]["serviceAccountName"].as_str().expect("serviceAccountName");
    for role in documents.iter().filter(|d| kind(d) == "ClusterRole" || kind(d) == "Role") {
        let binding_kind = format!("{}Binding", kind(role));
        let bound = documents.iter().any(|binding| {
            kind(binding) == binding_kind
                && binding["metadata"]["namespace"] == role["metadata"]["namespace"]
                && binding["roleRef"]["kind"] == role["kind"]
                && binding["roleRef"]["name"] == role["metadata"]["name"]
                && binding["subjects"].as_array().is_some_and(|subjects| {
                    subjects.contains(&json!({"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}))
                })
        });
        assert!(bound, "{scenario}: {} {} is not bound to ServiceAccount {account}", kind(role), name(role));
    }
}

fn args(deployment: &Value) -> Vec<String> {
    strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"])
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    args.iter().find_map(|arg| arg.strip_prefix(&prefix))
}

fn check_deployment(documents: &[Value], values: &Value, scenario: &str) {
    let deployment = only(documents, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = args(deployment);
    assert_eq!(args.first().map(String::as_str), Some("run"), "{scenario}: the container runs `wsgate run`");

    // Replicas: fixed, or left to the HPA.
    let hpa = of_kind(documents, "HorizontalPodAutoscaler");
    if values["autoscaling"]["enabled"] == json!(true) {
        assert!(
            deployment["spec"].get("replicas").is_none(),
            "{scenario}: with an HPA the Deployment sets no replicas"
        );
        assert_eq!(hpa.len(), 1, "{scenario}: autoscaling.enabled renders one HPA");
        assert_eq!(hpa[0]["spec"]["scaleTargetRef"]["name"], deployment["metadata"]["name"], "{scenario}: HPA target");
        assert_eq!(hpa[0]["spec"]["scaleTargetRef"]["kind"], json!("Deployment"), "{scenario}: HPA target kind");
    } else {
        assert_eq!(deployment["spec"]["replicas"], values["replicaCount"], "{scenario}: replicas");
        assert!(hpa.is_empty(), "{scenario}: no HPA unless autoscaling.enabled");
    }

    // Drain: the kubelet waits longer than the preStop sleep and the drain together.
    let drain: u64 = flag(&args, "--drain-timeout").expect("--drain-timeout is passed").parse().expect("seconds");
    assert_eq!(json!(drain), values["controller"]["drainTimeoutSeconds"], "{scenario}: --drain-timeout");
    let delay: u64 = flag(&args, "--shutdown-delay").expect("--shutdown-delay is passed").parse().expect("seconds");
    assert_eq!(json!(delay), values["controller"]["shutdownDelaySeconds"], "{scenario}: --shutdown-delay");
    let sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0);
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    assert!(
        grace > sleep + delay + drain,
        "{scenario}: grace {grace}s must exceed preStop {sleep}s + shutdown delay {delay}s + drain {drain}s"
    );

    // The access log: on exactly when controller.accessLog.
    let access_log = values["controller"]["accessLog"] == json!(true);
    assert_eq!(flag(&args, "--access-log"), access_log.then_some("on"), "{scenario}: --access-log");
    // Connection limits and client identity: passed exactly when set.
    let max_connections = values["controller"]["maxConnections"].as_u64().unwrap_or(0);
    let expected = (max_connections > 0).then(|| max_connections.to_string());
    assert_eq!(flag(&args, "--max-connections"), expected.as_deref(), "{scenario}: --max-connections");
    // null (the default): wsgate's own default, so no flag.
    let max_tracked = values["controller"]["maxTrackedClients"].as_u64().map(|n| n.to_string());
    assert_eq!(flag(&args, "--max-tracked-clients"), max_tracked.as_deref(), "{scenario}: --max-tracked-clients");
    let trusted: Vec<&str> =
        values["controller"]["trustedProxies"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let expected = (!trusted.is_empty()).then(|| trusted.join(","));
    assert_eq!(flag(&args, "--trusted-proxies"), expected.as_deref(), "{scenario}: --trusted-proxies");
    let proxy_protocol = values["controller"]["proxyProtocol"] == json!(true);
    assert_eq!(args.iter().any(|a| a == "--proxy-protocol"), proxy_protocol, "{scenario}: --proxy-protocol");
    // The ingress-nginx migration switches.
    let nginx_compat = values["controller"]["nginxCompat"] == json!(true);
    assert_eq!(args.iter().any(|a| a == "--nginx-compat"), nginx_compat, "{scenario}: --nginx-compat");
    let watched: Vec<&str> = values["controller"]["watchIngressClasses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let expected = (!watched.is_empty()).then(|| watched.join(","));
    assert_eq!(flag(&args, "--watch-ingress-class"), expected.as_deref(), "{scenario}: --watch-ingress-class");

    // Identity and Lease namespace from the downward API.
    for (variable, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let env = container["env"].as_array().expect("env");
        assert!(
            env.contains(&json!({"name": variable, "valueFrom": {"fieldRef": {"fieldPath": field}}})),
            "{scenario}: {variable} must come from {field}"
        );
    }

    // Probes on the admin port.
    let admin = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|port| port["name"] == json!("admin"))
        .expect("a container port named admin");
    assert_eq!(flag(&args, "--admin-addr"), Some(format!("0.0.0.0:{}", admin["containerPort"]).as_str()));
    // The HTTPS listener runs exactly when tls.enabled, on the container port named https.
    let https = container["ports"].as_array().expect("ports").iter().find(|port| port["name"] == json!("https"));
    let https_flag = https.map(|port| format!("0.0.0.0:{}", port["containerPort"]));
    assert_eq!(values["tls"]["enabled"] == json!(true), https.is_some(), "{scenario}: https port iff tls.enabled");
    assert_eq!(flag(&args, "--https-addr"), https_flag.as_deref(), "{scenario}: --https-addr");
    // Redirects to https:// name the Service's https port (what clients reach), not the container's.
    let redirect_port = https.map(|_| values["service"]["ports"]["https"].to_string());
    assert_eq!(flag(&args, "--https-redirect-port"), redirect_port.as_deref(), "{scenario}: --https-redirect-port");
    assert_eq!(container["livenessProbe"]["httpGet"], json!({"path": "/healthz", "port": "admin"}), "{scenario}");
    assert_eq!(container["readinessProbe"]["httpGet"], json!({"path": "/readyz", "port": "admin"}), "{scenario}");

    // Hardened securityContext.
    let pod_security = &pod["securityContext"];
    let security = &container["securityContext"];
    for (what, context) in [("pod", pod_security), ("container", security)] {
        assert_eq!(context["runAsNonRoot"], json!(true), "{scenario}: {what} runAsNonRoot");
        assert_eq!(context["runAsUser"], json!(65532), "{scenario}: {what} runAsUser");
        assert_eq!(context["seccompProfile"]["type"], json!("RuntimeDefault"), "{scenario}: {what} seccomp");
    }
    assert_eq!(security["readOnlyRootFilesystem"], json!(true), "{scenario}: readOnlyRootFilesystem");
    assert_eq!(security["allowPrivilegeEscalation"], json!(false), "{scenario}: allowPrivilegeEscalation");
    assert_eq!(security["capabilities"], json!({"drop": ["ALL"]}), "{scenario}: capabilities");

    // Flags that follow the values.
    let class = values["ingressClass"]["name"].as_str().expect("ingressClass.name");
    assert_eq!(flag(&args, "--ingress-class"), Some(class), "{scenario}: --ingress-class");
    let watch = values["controller"]["watchNamespace"].as_str().unwrap_or("");
    assert_eq!(flag(&args, "--namespace"), (!watch.is_empty()).then_some(watch), "{scenario}: --namespace");
    let traffic = name(deployment); // the traffic Service has the Deployment's name
    if values["controller"]["publishService"]["enabled"] == json!(true) {
        let expected = format!("{NAMESPACE}/{traffic}");
        assert_eq!(flag(&args, "--publish-service"), Some(expected.as_str()), "{scenario}: --publish-service");
    } else {
        assert_eq!(flag(&args, "--publish-service"), None, "{scenario}: no --publish-service");
    }

    // The IngressClass wsgate serves.
    if values["ingressClass"]["create"] == json!(true) {
        let ingress_class = only(documents, "IngressClass");
        assert_eq!(name(ingress_class), class, "{scenario}: IngressClass name");
        assert_eq!(ingress_class["spec"]["controller"], json!("wsgate.dev/ingress-controller"), "{scenario}");
        let default = ingress_class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"].clone();
        let want_default = values["ingressClass"]["default"] == json!(true);
        assert_eq!(default, if want_default { json!("true") } else { Value::Null }, "{scenario}: default class");
    }

    // Spread over nodes and zones, and a budget for voluntary disruptions.
    let anti = &pod["affinity"]["podAntiAffinity"];
    match values["podAntiAffinity"].as_str() {
        Some("soft") => assert!(anti.get("preferredDuringSchedulingIgnoredDuringExecution").is_some(), "{scenario}"),
        Some("hard") => assert!(anti.get("requiredDuringSchedulingIgnoredDuringExecution").is_some(), "{scenario}"),
        _ => {}
    }
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    if values["topologySpread"]["enabled"] == json!(true) {
        assert_eq!(pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"], *selector, "{scenario}");
    }
    let budgets = of_kind(documents, "PodDisruptionBudget");
    if values["podDisruptionBudget"]["enabled"] == json!(true) {
        assert_eq!(budgets.len(), 1, "{scenario}: one PodDisruptionBudget");
        assert_eq!(budgets[0]["spec"]["selector"]["matchLabels"], *selector, "{scenario}: PDB selects the pods");
    } else {
        assert!(budgets.is_empty(), "{scenario}: no PodDisruptionBudget");
    }
}

fn check_services(documents: &[Value], values: &Value, scenario: &str) {
    let deployment = only(documents, "Deployment");
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    let ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"].as_array().expect("ports");
    let admin = ports.iter().find(|port| port["name"] == json!("admin")).expect("admin port");
    let targets_admin =
        |port: &Value| port["targetPort"] == admin["name"] || port["targetPort"] == admin["containerPort"];
    let tls = values["tls"]["enabled"] == json!(true);

    let services = of_kind(documents, "Service");
    let traffic = services.iter().find(|svc| name(svc) == name(deployment)).expect("the traffic Service");
    let mut names: Vec<&str> = Vec::new();
    for port in traffic["spec"]["ports"].as_array().expect("ports") {
        assert!(!targets_admin(port), "{scenario}: the traffic Service must never expose the admin port: {port}");
        names.push(port["name"].as_str().unwrap_or(""));
    }
    let expected: &[&str] = if tls { &["http", "https"] } else { &["http"] };
    assert_eq!(names, expected, "{scenario}: traffic Service ports");
    assert_eq!(traffic["spec"]["type"], values["service"]["type"], "{scenario}: traffic Service type");
    assert_eq!(traffic["spec"]["selector"], *selector, "{scenario}: traffic Service selects the pods");

    let metrics: Vec<&&Value> =
        services.iter().filter(|svc| svc["metadata"]["labels"]["wsgate.dev/service"] == json!("metrics")).collect();
    assert_eq!(services.len(), 1 + metrics.len(), "{scenario}: only the traffic and metrics Services");
    for service in &metrics {
        assert_eq!(service["spec"]["type"], json!("ClusterIP"), "{scenario}: the metrics Service stays in the cluster");
        let ports = service["spec"]["ports"].as_array().expect("ports");
        assert!(ports.iter().all(targets_admin), "{scenario}: the metrics Service serves the admin port only");
    }
    assert_eq!(metrics.len(), usize::from(values["metrics"]["service"]["enabled"] == json!(true)), "{scenario}");
}

fn check_monitoring(documents: &[Value], values: &Value, scenario: &str) {
    let monitors = of_kind(documents, "ServiceMonitor");
    if values["metrics"]["serviceMonitor"]["enabled"] == json!(true) {
        assert_eq!(monitors.len(), 1, "{scenario}: one ServiceMonitor");
        let metrics = of_kind(documents, "Service")
            .into_iter()
            .find(|svc| svc["metadata"]["labels"]["wsgate.dev/service"] == json!("metrics"))
            .expect("the ServiceMonitor needs the metrics Service");
        let wanted = monitors[0]["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels");
        for (key, value) in wanted {
            assert_eq!(&metrics["metadata"]["labels"][key], value, "{scenario}: ServiceMonitor selects label {key}");
        }
        let services = of_kind(documents, "Service");
        let selected = services.iter().filter(|svc| wanted.iter().all(|(k, v)| &svc["metadata"]["labels"][k] == v));
        assert_eq!(selected.count(), 1, "{scenario}: the ServiceMonitor selects the metrics Service only");
        let port = &monitors[0]["spec"]["endpoints"][0]["port"];
        assert_eq!(*port, metrics["spec"]["ports"][0]["name"], "{scenario}: ServiceMonitor port");
    } else {
        assert!(monitors.is_empty(), "{scenario}: no ServiceMonitor");
    }

    let rules = of_kind(documents, "PrometheusRule");
    if values["metrics"]["prometheusRule"]["enabled"] == json!(true) {
        assert_eq!(rules.len(), 1, "{scenario}: one PrometheusRule");
        let alerts: Vec<&Value> = rules[0]["spec"]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().expect("rules"))
            .collect();
        let names: BTreeSet<&str> = alerts.iter().filter_map(|a| a["alert"].as_str()).collect();
        assert_eq!(names.len(), alerts.len(), "{scenario}: alert names are unique");
        for disabled in strings(&values["metrics"]["prometheusRule"]["disabledAlerts"]) {
            assert!(!names.contains(disabled.as_str()), "{scenario}: {disabled} is disabled");
        }
        for alert in alerts {
            assert!(alert["labels"]["severity"].is_string(), "{scenario}: {} has a severity", alert["alert"]);
            assert!(alert["annotations"]["summary"].is_string(), "{scenario}: {} has a summary", alert["alert"]);
        }
    } else {
        assert!(rules.is_empty(), "{scenario}: no PrometheusRule");
    }

    let dashboards: Vec<&Value> = of_kind(documents, "ConfigMap");
    if values["metrics"]["dashboard"]["enabled"] == json!(true) {
        assert_eq!(dashboards.len(), 1, "{scenario}: one dashboard ConfigMap");
        assert_eq!(dashboards[0]["metadata"]["labels"]["grafana_dashboard"], json!("1"), "{scenario}: sidecar label");
        let shipped: Value = serde_json::from_str(dashboards[0]["data"]["wsgate.json"].as_str().expect("wsgate.json"))
            .expect("the dashboard ConfigMap holds JSON");
        let file = std::fs::read_to_string(chart().join("dashboards/wsgate.json")).expect("dashboards/wsgate.json");
        assert_eq!(shipped, serde_json::from_str::<Value>(&file).expect("valid JSON"), "{scenario}: dashboard content");
    } else {
        assert!(dashboards.is_empty(), "{scenario}: no dashboard ConfigMap");
    }
}

#[test]
fn every_scenario_lints_and_renders_strictly_valid_objects() {
    for scenario in scenarios() {
        let label = name_of(&scenario);
        let mut lint = Command::new(helm());
        lint.args(["lint", "--strict"]).arg(chart()).arg("-f").arg(&scenario);
        let output = run(lint);
        assert!(
            output.status.success(),
            "helm lint --strict -f {label}:\n{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );

        let documents = render(&scenario, &[MONITORING_API]).unwrap_or_else(|error| panic!("{label}: {error}"));
        let values = effective_values(&scenario);
        for document in &documents {
            if let Err(error) = check_strictly(document) {
                panic!("{label}: {} {}: {error}", kind(document), name(document));
            }
            let namespaced = !matches!(
                kind(document),
                "ClusterRole" | "ClusterRoleBinding" | "IngressClass" | "CustomResourceDefinition"
            );
            if namespaced {
                assert!(
                    document["metadata"]["namespace"].is_string(),
                    "{label}: {} {} names its namespace",
                    kind(document),
                    name(document)
                );
            }
        }
        let crd = only(&documents, "CustomResourceDefinition");
        assert_eq!(name(crd), "websocketroutes.wsgate.dev", "{label}: the chart ships the WebSocketRoute CRD");
        check_rbac(&documents, &values, &label);
        check_deployment(&documents, &values, &label);
        check_services(&documents, &values, &label);
        check_monitoring(&documents, &values, &label);
    }
}

#[test]
fn monitoring_objects_need_the_prometheus_operator_api() {
    let scenario = chart().join("ci/monitoring-on-values.yaml");
    let values = effective_values(&scenario);
    assert_eq!(values["metrics"]["serviceMonitor"]["enabled"], json!(true), "the scenario turns monitoring on");
    let with = render(&scenario, &[MONITORING_API]).expect("renders");
    let without = render(&scenario, &[]).expect("renders");
    for kind_name in ["ServiceMonitor", "PrometheusRule"] {
        assert_eq!(of_kind(&with, kind_name).len(), 1, "{kind_name} rendered when {MONITORING_API} is served");
        assert!(of_kind(&without, kind_name).is_empty(), "{kind_name} not rendered when {MONITORING_API} is absent");
    }
}

#[test]
fn schema_rejects_misspelled_values() {
    let invalid = chart().join("tests/invalid-values.yaml");
    let error = match render(&invalid, &[]) {
        Ok(_) => panic!("helm template accepted {}: values.schema.json must reject it", invalid.display()),
        Err(error) => error,
    };
    for key in ["replicaCont", "drainTimeout", "maxTrackedClients"] {
        assert!(error.contains(key), "the schema error names `{key}`:\n{error}");
    }
    assert!(error.contains("additional properties"), "the schema error says why:\n{error}");
}

fn files_in(dir: &Path, extension: &str) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .map(|path| (name_of(&path), std::fs::read(&path).expect("readable file")))
        .collect()
}

#[test]
fn chart_crds_are_byte_identical_to_crds() {
    let generated = files_in(&root().join("crds"), "yaml");
    let shipped = files_in(&chart().join("crds"), "yaml");
    assert!(!generated.is_empty(), "crds/ holds the CRDs generated by `wsgate crd`");
    assert_eq!(
        shipped.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "charts/wsgate/crds/ and crds/ hold the same files"
    );
    for (file, content) in &generated {
        assert!(shipped[file] == *content, "charts/wsgate/crds/{file} differs from crds/{file}: copy crds/ over it");
    }
}

#[test]
fn deploy_folder_is_a_fresh_render_of_the_chart() {
    let fresh = std::env::temp_dir().join(format!("wsgate-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    let mut generate = Command::new("bash");
    generate.arg(root().join("deploy/generate.sh")).arg(&fresh).env("HELM", helm());
    let output = run(generate);
    assert!(output.status.success(), "deploy/generate.sh failed:\n{}", text(&output.stderr));
    let rendered = files_in(&fresh, "yaml");
    let committed = files_in(&root().join("deploy"), "yaml");
    let _ = std::fs::remove_dir_all(&fresh);
    assert!(!rendered.is_empty(), "deploy/generate.sh wrote manifests");
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        rendered.keys().collect::<Vec<_>>(),
        "deploy/ holds exactly the generated files: run deploy/generate.sh"
    );
    for (file, content) in &rendered {
        assert!(committed[file] == *content, "deploy/{file} is stale or hand-edited: run deploy/generate.sh");
    }
    // Every object in deploy/ is as strict as the chart's.
    for content in rendered.values() {
        for document in documents(&text(content)) {
            if let Err(error) = check_strictly(&document) {
                panic!("deploy/: {} {}: {error}", kind(&document), name(&document));
            }
        }
    }
}

#[test]
fn chart_flags_are_flags_of_the_binary() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsgate"));
    command.args(["run", "--help"]);
    let output = run(command);
    assert!(output.status.success(), "wsgate run --help: {}", text(&output.stderr));
    let help = text(&output.stdout);
    let known = |flag: &str| {
        help.match_indices(flag).any(|(at, _)| {
            help[at + flag.len()..].chars().next().is_none_or(|next| !(next.is_ascii_alphanumeric() || next == '-'))
        })
    };
    let mut checked = 0;
    for scenario in scenarios() {
        let documents = render(&scenario, &[]).unwrap_or_else(|error| panic!("{}: {error}", name_of(&scenario)));
        for arg in args(only(&documents, "Deployment")).iter().skip(1) {
            let flag = arg.split('=').next().unwrap_or(arg);
            assert!(flag.starts_with("--"), "{}: `{arg}` is not a --flag=value", name_of(&scenario));
            assert!(known(flag), "{}: `wsgate run --help` has no {flag}", name_of(&scenario));
            checked += 1;
        }
    }
    assert!(checked > 0, "no flag checked");
}

/// Metric names in a text: `wsgate_` followed by lowercase letters, digits and underscores.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.match_indices("wsgate_")
        .filter(|(at, _)| !text[..*at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
        .map(|(at, _)| {
            text[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect()
        })
        .collect()
}

#[test]
fn dashboard_and_alerts_use_metrics_wsgate_exports() {
    let source = std::fs::read_to_string(root().join("src/metrics.rs")).expect("src/metrics.rs");
    let exported: BTreeSet<String> =
        metric_names(&source).into_iter().filter(|name| source.contains(&format!("\"{name}\""))).collect();
    assert!(exported.contains("wsgate_websocket_upgrades_total"), "metric names found in src/metrics.rs");
    for future in FUTURE_METRICS {
        assert!(
            !exported.contains(*future),
            "{future} is exported now: drop it from FUTURE_METRICS and the chart's notes"
        );
    }
    let known = |name: &str| {
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name);
        exported.contains(name) || exported.contains(base) || FUTURE_METRICS.contains(&name)
    };

    let dashboard = std::fs::read_to_string(chart().join("dashboards/wsgate.json")).expect("dashboard");
    let documents = render(&chart().join("ci/monitoring-on-values.yaml"), &[MONITORING_API]).expect("renders");
    let alerts = serde_json::to_string(only(&documents, "PrometheusRule")).expect("serializes");
    let used: BTreeSet<String> = metric_names(&dashboard).into_iter().chain(metric_names(&alerts)).collect();
    for wanted in [
        "wsgate_websocket_connections_active",
        "wsgate_websocket_upgrades_total",
        "wsgate_websocket_handshake_duration_seconds_bucket",
        "wsgate_proxied_bytes_total",
        "wsgate_config_errors_total",
        "wsgate_route_table_generation",
        "wsgate_kube_watch_errors_total",
        "wsgate_last_sync_timestamp_seconds",
    ] {
        assert!(used.contains(wanted), "the dashboard or the alerts use {wanted}");
    }
    let unknown: Vec<&String> = used.iter().filter(|name| !known(name)).collect();
    assert!(unknown.is_empty(), "the dashboard or the alerts use metrics src/metrics.rs does not export: {unknown:?}");
}

/// One documented value of values.yaml.
struct Documented {
    path: String,
    description: String,
}

/// Reads the `# --` comments of values.yaml. Fails on a key with no description unless it is a pure grouping
/// (a documented key below it) or lies inside a documented value (e.g. the content of `resources`).
fn documented_values(values_yaml: &str) -> Vec<Documented> {
    let mut keys: Vec<(String, Option<String>)> = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<String> = None;
    for line in values_yaml.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(rest) = trimmed.strip_prefix("# --") {
            pending = Some(rest.trim().to_string());
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('#') {
            if let Some(description) = pending.as_mut() {
                description.push(' ');
                description.push_str(rest.trim());
            }
            continue;
        }
        if trimmed.is_empty() {
            pending = None;
            continue;
        }
        if trimmed.starts_with('-') {
            continue; // a list item: part of a value
        }
        let Some((key, _)) = trimmed.split_once(':') else { continue };
        while stack.last().is_some_and(|(depth, _)| *depth >= indent) {
            stack.pop();
        }
        stack.push((indent, key.trim().to_string()));
        let path = stack.iter().map(|(_, key)| key.as_str()).collect::<Vec<_>>().join(".");
        keys.push((path, pending.take()));
    }
    let documented: Vec<&String> = keys.iter().filter(|(_, d)| d.is_some()).map(|(path, _)| path).collect();
    for (path, description) in &keys {
        if description.is_some() {
            continue;
        }
        let inside_documented = documented.iter().any(|doc| path.starts_with(&format!("{doc}.")));
        let groups_documented = documented.iter().any(|doc| doc.starts_with(&format!("{path}.")));
        assert!(inside_documented || groups_documented, "values.yaml: `{path}` has no `# --` description");
    }
    keys.into_iter()
        .filter_map(|(path, description)| description.map(|description| Documented { path, description }))
        .collect()
}

fn values_table(values_yaml: &str) -> String {
    let values: Value = serde_yaml::from_str(values_yaml).expect("values.yaml parses");
    let mut table = String::from("| Key | Default | Description |\n|---|---|---|\n");
    for Documented { path, description } in documented_values(values_yaml) {
        let default = path.split('.').fold(&values, |value, key| &value[key]);
        let default = serde_json::to_string(default).expect("serializes").replace('|', "\\|");
        let description = description.replace('|', "\\|");
        table.push_str(&format!("| `{path}` | `{default}` | {description} |\n"));
    }
    table
}

#[test]
fn readme_values_table_matches_values_yaml() {
    const BEGIN: &str = "<!-- values-table:begin (generated by tests/chart.rs from values.yaml) -->\n";
    const END: &str = "<!-- values-table:end -->";
    let values_yaml = std::fs::read_to_string(chart().join("values.yaml")).expect("values.yaml");
    let table = values_table(&values_yaml);
    let readme_path = chart().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("charts/wsgate/README.md");
    let (head, rest) = readme.split_once(BEGIN).expect("README has the values-table begin marker");
    let (current, tail) = rest.split_once(END).expect("README has the values-table end marker");
    if current == table {
        return;
    }
    if std::env::var_os("WSGATE_UPDATE_CHART_README").is_some() {
        std::fs::write(&readme_path, format!("{head}{BEGIN}{table}{END}{tail}")).expect("README written");
        return;
    }
    panic!("charts/wsgate/README.md's values table is stale: rerun with WSGATE_UPDATE_CHART_README=1");
}
