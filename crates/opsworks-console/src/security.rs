//! The headers every console response carries: no framing (clickjacking), no content sniffing,
//! and a content security policy that lets a page load only the console's own script, styles,
//! images and streams (no inline script, no other origin, forms post only to the console).

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;

/// The console's content security policy.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The headers [`protect`] sets.
pub const HEADERS: [(HeaderName, &str); 4] = [
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::CONTENT_SECURITY_POLICY, CSP),
    (header::REFERRER_POLICY, "same-origin"),
];

/// Adds the console's security headers to a response (a middleware of the console's router).
pub async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
