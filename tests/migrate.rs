//! `wsgate migrate` as a user runs it: `kubectl get ingress -A -o yaml | wsgate migrate -` on
//! ingress-nginx Ingresses prints a review (golden file) and WebSocketRoutes that `wsgate check`
//! accepts beside the Services they name, with exit codes 0 / 1 / 2 for the same / differs /
//! unsupported.

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::Folder;
use support::ca::Ca;

fn migrate(input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["migrate", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wsgate migrate");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wsgate migrate ends")
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/migrate").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_kubectl_list_of_ingress_nginx_ingresses_gets_its_review_and_routes() {
    let out = migrate(&fixture("ingresses.yaml"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "every annotation is translated, some with differences:\n{stdout}");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/migrate/ingresses.expected");
    if std::env::var_os("WSGATE_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&golden, &stdout).expect("write golden");
    }
    let expected = std::fs::read_to_string(&golden).expect("tests/migrate/ingresses.expected");
    assert_eq!(stdout, expected, "differs from the golden (WSGATE_UPDATE_GOLDEN=1 rewrites it)");

    // The routes, beside the Services and the certificate they name, pass `wsgate check`.
    let folder = Folder::new("migrate-check");
    folder.write("services.yaml", &fixture("services.yaml"));
    folder.write("routes.yaml", &stdout);
    let issued = Ca::new().issue(&["chat.example.com"]);
    let indent = |pem: &str| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
    folder.write(
        "secret.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: chat-tls, namespace: chat}}\ntype: kubernetes.io/tls\n\
             stringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
            indent(&issued.cert_pem),
            indent(&issued.key_pem)
        ),
    );
    let check = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["check", folder.0.to_str().expect("utf-8 path")])
        .output()
        .expect("run wsgate check");
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "wsgate check refuses the migrated routes:\n{report}");
    assert!(report.contains("5 route(s), 0 error(s)"), "{report}");
}

#[test]
fn exit_codes_say_same_differs_or_unsupported() {
    let ingress = |annotations: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: app\n  annotations: {{{annotations}}}\n\
             spec:\n  ingressClassName: nginx\n  rules:\n  - host: app.example.com\n    http:\n      paths:\n      \
             - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}\n"
        )
    };
    let same = migrate(&ingress("nginx.ingress.kubernetes.io/affinity: cookie"));
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stdout));
    let differs = migrate(&ingress("nginx.ingress.kubernetes.io/proxy-read-timeout: \"3600\""));
    assert_eq!(differs.status.code(), Some(1), "{}", String::from_utf8_lossy(&differs.stdout));
    let snippet = migrate(&ingress("nginx.ingress.kubernetes.io/server-snippet: \"return 403;\""));
    let text = String::from_utf8_lossy(&snippet.stdout);
    assert_eq!(snippet.status.code(), Some(2), "{text}");
    assert!(text.contains("never executed"), "{text}");
    let broken = migrate("kind: [unclosed");
    assert_eq!(broken.status.code(), Some(2), "unreadable input is an error");
    assert!(!broken.stderr.is_empty(), "and says why");
}
