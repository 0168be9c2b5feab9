//! The kubeconfig clients use to reach the server: one cluster (`server: http://…`, no TLS), one
//! user with a static token (ignored by the server, harmless for clients), one current context.

/// Renders a kubeconfig for `server` with `namespace` as the context's default namespace.
pub fn render(server: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: wsgate-test
  cluster:
    server: {server}
users:
- name: wsgate-test
  user:
    token: wsgate-test-token
contexts:
- name: wsgate-test
  context:
    cluster: wsgate-test
    user: wsgate-test
    namespace: {namespace}
current-context: wsgate-test
preferences: {{}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_server_and_context() {
        let k = render("http://127.0.0.1:1234", "default");
        let v: serde_json::Value = serde_yaml::from_str(&k).expect("valid YAML");
        assert_eq!(v["clusters"][0]["cluster"]["server"], "http://127.0.0.1:1234");
        assert_eq!(v["current-context"], "wsgate-test");
    }
}
