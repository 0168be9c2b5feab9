//! CORS for plain requests (`Policy::cors`), answered the way ingress-nginx's `enable-cors` answers.
//!
//! ```text
//!   Origin allowed (or the route allows any) ─┬─ OPTIONS ─► 204 from wsgate, Access-Control-* headers
//!                                              └─ other   ─► proxied; Access-Control-* set on the answer
//!   Origin not allowed                        ─► proxied as if there were no CORS policy
//! ```

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, CONTENT_LENGTH, CONTENT_TYPE,
    ORIGIN,
};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::routes::CorsPolicy;

/// The `Access-Control-*` headers for a request with `request` headers, or `None` when its origin is not
/// one the policy allows (then nothing is added and a preflight goes to the backend).
pub fn headers(cors: &CorsPolicy, request: &HeaderMap) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let origin = match &cors.origins {
        None => HeaderValue::from_static("*"),
        Some(policy) => {
            let verdict = super::pipeline::origin_verdict(policy, request);
            let origin = request.get(ORIGIN)?;
            if !verdict.allowed() {
                return None;
            }
            origin.clone()
        }
    };
    let mut out = vec![(ACCESS_CONTROL_ALLOW_ORIGIN, origin)];
    if cors.allow_credentials {
        out.push((ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true")));
    }
    let mut text = |name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value)
            && !value.is_empty()
        {
            out.push((name, value));
        }
    };
    text(ACCESS_CONTROL_ALLOW_METHODS, &cors.allow_methods);
    text(ACCESS_CONTROL_ALLOW_HEADERS, &cors.allow_headers);
    text(ACCESS_CONTROL_EXPOSE_HEADERS, &cors.expose_headers);
    text(ACCESS_CONTROL_MAX_AGE, &cors.max_age_secs.to_string());
    Some(out)
}

/// Sets `cors` on an answer, replacing what the backend sent for the same names.
pub fn apply(headers: &mut HeaderMap, cors: Vec<(HeaderName, HeaderValue)>) {
    for (name, value) in cors {
        headers.insert(name, value);
    }
}

/// The preflight answer: 204, empty, with the CORS headers.
pub fn preflight(cors: Vec<(HeaderName, HeaderValue)>) -> http::Response<super::body::ProxyBody> {
    let mut response = http::Response::new(super::body::ProxyBody::empty());
    *response.status_mut() = http::StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    apply(headers, cors);
    response
}
