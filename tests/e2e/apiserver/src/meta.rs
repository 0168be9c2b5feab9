//! Object metadata helpers: timestamps, uids, generated names, and the name and label checks of
//! k8s.io/apimachinery's validation package (same regexes, same messages).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::status::FieldCause;

/// The ObjectMeta fields the real server decodes; any other key under `metadata` is dropped.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Now as RFC 3339 with whole seconds, UTC (`2026-11-25T03:40:10Z`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format_rfc3339(secs)
}

/// Formats seconds since the epoch as RFC 3339 UTC.
pub fn format_rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A random 64-bit number from the standard library's per-process hash keys.
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0));
    h.finish()
}

/// A version-4-shaped UUID string.
pub fn new_uid() -> String {
    let a = random_u64();
    let b = random_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// `generateName` plus five characters from the alphabet the real name generator uses.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    let mut out = String::from(prefix);
    for _ in 0..5 {
        out.push(ALPHABET[(n % ALPHABET.len() as u64) as usize] as char);
        n /= ALPHABET.len() as u64;
    }
    out
}

/// Keeps only the ObjectMeta fields under `metadata` (what decoding into ObjectMeta does).
pub fn prune_object_meta(obj: &mut Value) {
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.retain(|k, _| OBJECT_META_FIELDS.contains(&k.as_str()));
        meta.remove("selfLink");
        meta.remove("managedFields");
    }
}

/// `metadata` as a map, created if absent.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"].as_object_mut().expect("metadata was just made an object")
}

/// A string field of `metadata`, or "" when absent.
pub fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get("metadata").and_then(|m| m.get(key)).and_then(Value::as_str).unwrap_or("")
}

const DNS1123_LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";

fn dns1123_label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The DNS-1123 label check: messages as `IsDNS1123Label` gives them.
pub fn check_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !dns1123_label_ok(s) {
        errs.push(format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start \
             and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is \
             '{DNS1123_LABEL}')"
        ));
    }
    errs
}

/// The DNS-1035 label check (Service names).
pub fn check_dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !(dns1123_label_ok(s) && s.as_bytes()[0].is_ascii_lowercase()) {
        errs.push(format!(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic \
             character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for \
             validation is '{DNS1035_LABEL}')"
        ));
    }
    errs
}

/// The DNS-1123 subdomain check (most object names).
pub fn check_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if s.is_empty() || !s.split('.').all(dns1123_label_ok) {
        errs.push(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must \
             start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
             '{DNS1123_LABEL}(\\.{DNS1123_LABEL})*')"
        ));
    }
    errs
}

/// The path-segment check (RBAC names): anything but `.`, `..`, `/` and `%`.
pub fn check_path_segment(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    let mut errs = Vec::new();
    for bad in ["/", "%"] {
        if s.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

fn qualified_name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Label and annotation key check (`IsQualifiedName`); returns the error detail if invalid.
pub fn qualified_name_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || !check_dns1123_subdomain(p).is_empty())
    {
        return Some("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
    }
    if !qualified_name_part_ok(name) {
        return Some("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string());
    }
    None
}

/// Label value check (`IsValidLabelValue`): empty, or a qualified-name part.
pub fn label_value_error(value: &str) -> Option<String> {
    if value.is_empty() || qualified_name_part_ok(value) {
        None
    } else {
        Some("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string())
    }
}

/// Checks `metadata.labels` and `metadata.annotations` keys and label values.
pub fn check_labels_and_annotations(obj: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let meta = obj.get("metadata");
    if let Some(labels) = meta.and_then(|m| m.get("labels")) {
        match labels.as_object() {
            Some(map) => {
                for (k, v) in map {
                    if let Some(e) = qualified_name_error(k) {
                        causes.push(FieldCause::invalid("metadata.labels", &Value::String(k.clone()), &e));
                    }
                    match v.as_str() {
                        Some(s) => {
                            if let Some(e) = label_value_error(s) {
                                causes.push(FieldCause::invalid("metadata.labels", v, &e));
                            }
                        }
                        None => {
                            causes.push(FieldCause::type_invalid(format!("metadata.labels.{k}"), v, "must be a string"))
                        }
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push(FieldCause::type_invalid("metadata.labels", labels, "must be an object")),
        }
    }
    if let Some(annotations) = meta.and_then(|m| m.get("annotations")) {
        match annotations.as_object() {
            Some(map) => {
                for (k, v) in map {
                    if let Some(e) = qualified_name_error(&k.to_ascii_lowercase()) {
                        causes.push(FieldCause::invalid("metadata.annotations", &Value::String(k.clone()), &e));
                    }
                    if !v.is_string() {
                        causes.push(FieldCause::type_invalid(
                            format!("metadata.annotations.{k}"),
                            v,
                            "must be a string",
                        ));
                    }
                }
            }
            None if annotations.is_null() => {}
            None => causes.push(FieldCause::type_invalid("metadata.annotations", annotations, "must be an object")),
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_578_010), "2026-11-25T03:40:10Z");
    }

    #[test]
    fn uids_are_uuid_shaped_and_distinct() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn name_checks_follow_the_dns_rules() {
        assert!(check_dns1123_subdomain("web.example-1").is_empty());
        assert!(!check_dns1123_subdomain("Web").is_empty());
        assert!(!check_dns1123_subdomain("-a").is_empty());
        assert!(check_dns1123_label("ns-1").is_empty());
        assert!(!check_dns1123_label("a.b").is_empty());
        assert!(!check_dns1035_label("1abc").is_empty());
        assert!(check_dns1035_label("abc-1").is_empty());
        assert!(!check_path_segment("a/b").is_empty());
        assert!(qualified_name_error("app.kubernetes.io/name").is_none());
        assert!(qualified_name_error("bad key").is_some());
        assert!(label_value_error("").is_none());
        assert!(label_value_error("-x").is_some());
    }

    #[test]
    fn generated_names_keep_the_prefix() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-"));
        assert_eq!(n.len(), 9);
    }
}
