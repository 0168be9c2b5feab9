//! The kubeconfig clients use to reach the server: one cluster (`server: https://…` with the CA
//! that signed the server's certificate), one user with a bearer token (the admin token, or one
//! issued for a ServiceAccount), one current context.

use base64::Engine;

/// Renders a kubeconfig for `server` (trusting `ca_pem`) authenticating with `token`, with
/// `namespace` as the context's default namespace.
pub fn render(server: &str, ca_pem: &str, namespace: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: wsgate-test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: wsgate-test
  user:
    token: {token}
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
        let k = render("https://127.0.0.1:1234", "-----BEGIN CERTIFICATE-----", "default", "t0k3n");
        let v: serde_json::Value = serde_yaml::from_str(&k).expect("valid YAML");
        assert_eq!(v["users"][0]["user"]["token"], "t0k3n");
        assert_eq!(v["clusters"][0]["cluster"]["server"], "https://127.0.0.1:1234");
        let ca = v["clusters"][0]["cluster"]["certificate-authority-data"].as_str().expect("CA data");
        let ca = base64::engine::general_purpose::STANDARD.decode(ca).expect("base64");
        assert_eq!(ca, b"-----BEGIN CERTIFICATE-----");
        assert_eq!(v["current-context"], "wsgate-test");
    }
}
