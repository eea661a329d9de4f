//! What every page does the same way: redirects that can only stay inside the console, the
//! not-found and error pages (a refusal keeps the authorizer's AccessDenied words), and reading
//! one resource or a list through [`Signed::call`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use opsworks_api::ApiError;

use crate::Signed;

/// Where a redirect goes when the asked-for place is not a console page.
pub const HOME: &str = "/console/";

/// `to` when it is a same-site path inside the console, else [`HOME`]: no scheme, no host
/// (`//host`), no backslash, no control character or space (no header injection), no `.` or `..`
/// segment (plain or percent-encoded) that would climb out of `/console/`.
pub fn safe_path(to: &str) -> &str {
    let inside = to.starts_with(HOME)
        && to.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
        && to
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .split('/')
            .all(|segment| {
                let lower = segment.to_ascii_lowercase().replace("%2e", ".");
                lower != "." && lower != ".."
            });
    if inside { to } else { HOME }
}

/// A 303 to `to`, or to [`HOME`] when `to` is not a console path (an ID from a URL or a form can
/// hold anything; a bad one must not become a header, or a panic).
pub fn see_other(to: &str) -> Response {
    let location =
        HeaderValue::from_str(safe_path(to)).unwrap_or_else(|_| HeaderValue::from_static(HOME));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// The 404 page for a resource that is gone.
pub fn not_found(signed: &Signed, what: &str) -> Response {
    let mut r = signed.render(
        "error.html",
        json!({ "title": "Not found", "message": format!("{what} does not exist (any more).") }),
    );
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

/// The error page for a failed action: 403 with the authorizer's words when it was refused.
pub fn failure(signed: &Signed, error: ApiError) -> Response {
    let denied = matches!(error, ApiError::AccessDenied(_));
    let title = if denied {
        "Not allowed"
    } else {
        "That did not work"
    };
    let mut r = signed.render(
        "error.html",
        json!({ "title": title, "message": error.to_string(), "denied": denied }),
    );
    if denied {
        *r.status_mut() = StatusCode::FORBIDDEN;
    }
    r
}

/// The one resource `op` describes for `{key: [id]}`; else the page to answer with instead: not
/// found (`what` does not exist), or the refusal when the principal may not see it.
pub async fn found(
    signed: &Signed,
    op: &str,
    key: &str,
    id: &str,
    list: &str,
    what: &str,
) -> Result<Value, Response> {
    match signed.call(op, json!({ key: [id] })).await {
        Ok(reply) => reply
            .get(list)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .cloned()
            .ok_or_else(|| not_found(signed, what)),
        Err(e @ ApiError::AccessDenied(_)) => Err(failure(signed, e)),
        Err(_) => Err(not_found(signed, what)),
    }
}

/// The list `op` answers with under `key`; empty when the call fails (a page shows what it can).
pub async fn list(signed: &Signed, op: &str, input: Value, key: &str) -> Vec<Value> {
    match signed.call(op, input).await {
        Ok(v) => v
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed() {
        for good in [
            "/console/stacks/x",
            "/console/",
            "/console/instances/i-1?Period=8h",
            "/console/stacks/a.b/edit",
        ] {
            assert_eq!(safe_path(good), good);
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/\\evil.example",
            "/console/\r\nSet-Cookie: x=1",
            "/console/\nx",
            "/console/a b",
            "/console/../admin",
            "/console/%2e%2E/admin",
            "/console/./x",
            "javascript:alert(1)",
            "/consolex",
            "/api/events",
            "",
            "/console/é",
        ] {
            assert_eq!(safe_path(bad), HOME, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_redirect_goes_home_instead_of_failing() {
        let r = see_other("/console/stacks/\r\nX-Evil: 1");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[header::LOCATION], HOME);
        let r = see_other("/console/stacks/abc");
        assert_eq!(r.headers()[header::LOCATION], "/console/stacks/abc");
    }
}
