//! Request conditions beyond host and path: header and query-parameter matches, and the compiled
//! regular expressions they (and `RegularExpression` paths) use.
//!
//! ```text
//!   Route.path        Exact | Prefix | RegularExpression (whole path, RE2 syntax, linear time)
//!   Route.conditions  headers  [{name, Exact value | RegularExpression}]   every one must match
//!                     query    [{name, Exact value | RegularExpression}]   every one must match
//! ```
//!
//! Regular expressions are matched against the whole value (anchored), with the `regex` crate's
//! linear-time engine: a hostile request cannot make a lookup slow, whatever the pattern.

use std::sync::Arc;

use http::HeaderMap;
use serde::Serialize;

/// Most compiled size of one pattern; a larger one is a compile error (in the route's status).
pub const PATTERN_SIZE_LIMIT: usize = 256 * 1024;

/// A compiled regular expression, compared, ordered and hashed by its source text.
#[derive(Clone)]
pub struct Pattern {
    source: Arc<str>,
    regex: Arc<regex::Regex>,
}

impl Pattern {
    /// Compiles `source`, anchored to match a whole value. The error says what is wrong with it.
    pub fn new(source: &str) -> Result<Pattern, String> {
        Pattern::build(source, &format!("^(?:{source})$"))
    }

    /// Compiles `source` anchored at the start only: it matches a value that begins with a match (a
    /// prefix pattern, as ingress-nginx's `location ~* "^path"`).
    pub fn prefix(source: &str) -> Result<Pattern, String> {
        Pattern::build(source, &format!("^(?:{source})"))
    }

    /// Compiles `anchored` (`source` with its anchors); the error says what is wrong with `source`.
    fn build(source: &str, anchored: &str) -> Result<Pattern, String> {
        let regex =
            regex::RegexBuilder::new(anchored).size_limit(PATTERN_SIZE_LIMIT).build().map_err(|error| match error {
                regex::Error::CompiledTooBig(limit) => format!("the pattern compiles to more than {limit} bytes"),
                // why the last line only: the crate's message repeats the anchored pattern first.
                other => {
                    let text = other.to_string();
                    let last = text.lines().last().unwrap_or("invalid pattern").trim();
                    last.strip_prefix("error: ").unwrap_or(last).to_string()
                }
            })?;
        Ok(Pattern { source: source.into(), regex: Arc::new(regex) })
    }

    /// When the pattern matches `text`: `replacement` with `$1`, `${name}`, … replaced by the captures.
    pub fn expand(&self, text: &str, replacement: &str) -> Option<String> {
        let captures = self.regex.captures(text)?;
        let mut out = String::new();
        captures.expand(replacement, &mut out);
        Some(out)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl std::hash::Hash for Pattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.source.hash(state);
    }
}

impl PartialOrd for Pattern {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pattern {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.source.cmp(&other.source)
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// How a header or query value is compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum ValueMatch {
    Exact(String),
    RegularExpression(Pattern),
}

impl ValueMatch {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::Exact(expected) => value == expected,
            ValueMatch::RegularExpression(pattern) => pattern.is_match(value),
        }
    }
}

impl std::fmt::Display for ValueMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueMatch::Exact(value) => write!(f, "= {value:?}"),
            ValueMatch::RegularExpression(pattern) => write!(f, "~ {:?}", pattern.as_str()),
        }
    }
}

/// A header that must be present with a matching value (any one of its values, when repeated).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct HeaderCondition {
    /// Lower case.
    pub name: String,
    pub value: ValueMatch,
}

/// A query parameter that must be present with a matching value (the first occurrence; name and value
/// compared as sent, without percent-decoding).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct QueryCondition {
    pub name: String,
    pub value: ValueMatch,
}

/// Everything besides host and path a request must match. Empty: nothing more.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Conditions {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderCondition>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<QueryCondition>,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.query.is_empty()
    }

    /// Whether the request's headers and query string satisfy every condition.
    pub fn matches(&self, request: &RequestView<'_>) -> bool {
        self.headers.iter().all(|condition| {
            let Some(headers) = request.headers else { return false };
            headers
                .get_all(condition.name.as_str())
                .iter()
                .any(|value| value.to_str().is_ok_and(|value| condition.value.matches(value)))
        }) && self.query.iter().all(|condition| {
            request.query.and_then(|q| query_value(q, &condition.name)).is_some_and(|v| condition.value.matches(v))
        })
    }
}

impl std::fmt::Display for Conditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut std::fmt::Formatter<'_>| {
            let s = if first { "" } else { ", " };
            first = false;
            f.write_str(s)
        };
        for h in &self.headers {
            sep(f)?;
            write!(f, "header {} {}", h.name, h.value)?;
        }
        for q in &self.query {
            sep(f)?;
            write!(f, "query {} {}", q.name, q.value)?;
        }
        Ok(())
    }
}

/// The first value of query parameter `name` in `query` (the part after `?`), as sent.
pub fn query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// What a lookup reads of a request: host, path, query and headers.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub host: &'a str,
    /// Without the query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// `None`: no headers (tools that explain a host and path only).
    pub headers: Option<&'a HeaderMap>,
}

impl<'a> RequestView<'a> {
    /// A request with only a host and a path (no query, no headers).
    pub fn new(host: &'a str, path: &'a str) -> RequestView<'a> {
        RequestView { host, path, query: None, headers: None }
    }

    /// `path_and_query` split at its first `?`.
    pub fn with_query(host: &'a str, path_and_query: &'a str) -> RequestView<'a> {
        match path_and_query.split_once('?') {
            Some((path, query)) => RequestView { host, path, query: Some(query), headers: None },
            None => RequestView::new(host, path_and_query),
        }
    }

    pub fn headers(mut self, headers: &'a HeaderMap) -> RequestView<'a> {
        self.headers = Some(headers);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_values_and_report_their_errors() {
        let pattern = Pattern::new("/room/[0-9]+").expect("valid");
        assert!(pattern.is_match("/room/42"));
        assert!(!pattern.is_match("/room/42/x"), "anchored at the end");
        assert!(!pattern.is_match("/x/room/42"), "anchored at the start");
        let error = Pattern::new("/room/(").expect_err("unclosed group");
        assert!(error.contains("unclosed group"), "{error}");
        let error = Pattern::new("(?:a{1000}){1000}").expect_err("too big");
        assert!(error.contains("compiles to more than"), "{error}");
    }

    #[test]
    fn every_condition_must_match() {
        let conditions = Conditions {
            headers: vec![HeaderCondition { name: "x-canary".into(), value: ValueMatch::Exact("yes".into()) }],
            query: vec![QueryCondition {
                name: "v".into(),
                value: ValueMatch::RegularExpression(Pattern::new("2|3").expect("valid")),
            }],
        };
        let mut headers = HeaderMap::new();
        headers.append("x-canary", "no".parse().expect("value"));
        headers.append("x-canary", "yes".parse().expect("value"));
        let request = RequestView::with_query("h", "/p?a=1&v=3").headers(&headers);
        assert!(conditions.matches(&request), "any value of a repeated header may match");
        assert!(!conditions.matches(&RequestView::with_query("h", "/p?v=4").headers(&headers)));
        assert!(!conditions.matches(&RequestView::with_query("h", "/p?v=3")), "no headers");
        assert!(Conditions::default().matches(&RequestView::new("h", "/")));
        assert_eq!(conditions.to_string(), "header x-canary = \"yes\", query v ~ \"2|3\"");
    }
}
