//! Validation of hostnames and paths, shared by Ingress rules and WebSocketRoutes.
//!
//! Hostnames follow the Ingress API: an RFC 1123 DNS name (lower-case labels of letters, digits and
//! `-`, at most 63 characters each, 253 in all), optionally preceded by `*.` as its whole first label.
//! IP addresses are refused. Paths must be absolute; `Exact` and `Prefix` paths must also avoid the
//! sequences the Ingress API rejects (`//`, `/./`, `/../`, `%2f`, and a trailing `/.` or `/..`).

use std::net::IpAddr;

use crate::routes::{Conditions, HostMatch};

/// Parses a non-empty hostname into a matcher, or says what is wrong with it (a complete sentence
/// naming the value). Upper case is refused: callers that accept it lower-case first.
pub(super) fn parse_hostname(host: &str) -> Result<HostMatch, String> {
    let problem = |why: &str| format!("hostname {host:?} is invalid: {why}");
    if host.parse::<IpAddr>().is_ok() {
        return Err(problem("it must be a DNS name, not an IP address"));
    }
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    if name.contains('*') || host == "*" {
        return Err(problem("a wildcard is only allowed as the whole first label, as in *.example.com"));
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(problem("it must be lower case"));
    }
    if host.len() > 253 {
        return Err(problem("it is longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(problem("it has an empty label (two dots in a row, or a leading or trailing dot)"));
        }
        if label.len() > 63 {
            return Err(problem("a label is longer than 63 characters"));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
            return Err(problem(&format!("character {c:?} is not allowed (use a-z, 0-9, '-' and '.')")));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(problem("a label must start and end with a letter or digit"));
        }
    }
    Ok(if wildcard { HostMatch::Wildcard(name.to_string()) } else { HostMatch::Exact(name.to_string()) })
}

/// Checks an `Exact` or `Prefix` path; the error is a complete sentence naming the value.
pub(super) fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("path {path:?} is invalid: it must start with \"/\""));
    }
    for sequence in ["//", "/./", "/../", "%2f", "%2F"] {
        if path.contains(sequence) {
            return Err(format!("path {path:?} is invalid: it must not contain {sequence:?}"));
        }
    }
    for suffix in ["/..", "/."] {
        if path.ends_with(suffix) {
            return Err(format!("path {path:?} is invalid: it must not end with {suffix:?}"));
        }
    }
    Ok(())
}

/// A host and path matcher in words, for messages: `Prefix /chat on host chat.example.com`.
pub(super) fn describe(host: &HostMatch, path: &crate::routes::PathMatch, conditions: &Conditions) -> String {
    let path = if conditions.is_empty() { path.to_string() } else { format!("{path} with {conditions}") };
    match host {
        HostMatch::Any => format!("{path} on every host"),
        host => format!("{path} on host {host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_and_one_leading_wildcard() {
        assert_eq!(parse_hostname("foo.bar.com"), Ok(HostMatch::Exact("foo.bar.com".into())));
        assert_eq!(parse_hostname("*.foo.com"), Ok(HostMatch::Wildcard("foo.com".into())));
        assert_eq!(parse_hostname("a-1.b"), Ok(HostMatch::Exact("a-1.b".into())));
        assert_eq!(parse_hostname("localhost"), Ok(HostMatch::Exact("localhost".into())));
    }

    #[test]
    fn refuses_what_the_ingress_api_refuses() {
        let cases = [
            ("10.0.0.1", "not an IP address"),
            ("::1", "not an IP address"),
            ("*", "wildcard"),
            ("foo.*.com", "wildcard"),
            ("*foo.com", "wildcard"),
            ("Foo.com", "lower case"),
            ("foo..com", "empty label"),
            ("foo.com.", "empty label"),
            ("-foo.com", "start and end"),
            ("foo_bar.com", "'_'"),
            ("foo.com:8080", "':'"),
        ];
        for (host, why) in cases {
            let error = parse_hostname(host).expect_err(host);
            assert!(error.contains(why), "{host}: {error}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(parse_hostname(&long_label).expect_err("long label").contains("63"));
        let long_name = ["abcdefghij"; 24].join(".");
        assert!(parse_hostname(&long_name).expect_err("long name").contains("253"));
    }

    #[test]
    fn paths_must_be_absolute_and_clean() {
        for path in ["/", "/foo", "/foo/", "/a.b/c..d"] {
            assert_eq!(check_path(path), Ok(()), "{path}");
        }
        for path in ["foo", "", "//foo", "/a/./b", "/a/../b", "/a%2fb", "/a/..", "/a/."] {
            assert!(check_path(path).is_err(), "{path}");
        }
    }
}
