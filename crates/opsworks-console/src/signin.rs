//! Signing in and out: the password form (a double-submit token until a session exists), the
//! limits on failed attempts, the session cookie.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use crate::form::{Form, SignedForm};
use crate::limits;
use crate::render::{safe_path, see_other};
use crate::{COOKIE, Console, auth, cookie};

/// The cookie that carries the sign-in form's token (double submit: no server state before a
/// session exists).
pub const PRE_COOKIE: &str = "opsworks_pre";

/// The one account the console signs in.
const ACCOUNT: &str = "root";

/// The flags of every cookie the console sets: not readable by script, never sent by another
/// site's request, only to the console.
const FLAGS: &str = "Path=/console; HttpOnly; SameSite=Strict";

/// The address a request came from (the peer of its connection); unspecified when the server
/// was started without connection info, so all such clients share one limit.
pub struct ClientAddr(pub IpAddr);

impl<S: Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

/// The query of the sign-in page.
#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after signing in: the asked-for console page, else the console's start.
fn safe_next(next: Option<&str>) -> String {
    safe_path(next.unwrap_or("")).to_string()
}

/// `GET /console/sign-in?next=..`: the form.
pub async fn sign_in_page(State(console): State<Console>, Query(q): Query<Next>) -> Response {
    sign_in_form(&console, q.next.as_deref(), None, StatusCode::OK)
}

fn sign_in_form(
    console: &Console,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    // Before a session exists, the form's token is a double-submit cookie.
    let token = auth::random_token(16);
    let mut r = console.render(
        "sign_in.html",
        json!({ "pre": token, "next": safe_next(next), "error": error }),
    );
    *r.status_mut() = status;
    set_cookie(&mut r, &format!("{PRE_COOKIE}={token}; {FLAGS}"));
    r
}

fn set_cookie(r: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `POST /console/sign-in`: checks the form's token against its cookie (403 without), the limits
/// (429 with `Retry-After`), then the password (401 when wrong); a right one starts a session.
pub async fn sign_in(
    State(console): State<Console>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let next = form.get("next");
    let pre = cookie(&headers, PRE_COOKIE).unwrap_or_default();
    if pre.is_empty() || !auth::same(&pre, &form.get("_pre")) {
        return sign_in_form(
            &console,
            Some(&next),
            Some("The sign-in form expired; please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let attempt = match console.limits().begin(addr, ACCOUNT, Instant::now()) {
        Ok(attempt) => attempt,
        Err(wait) => {
            let secs = limits::seconds(wait);
            tracing::warn!(target: "opsworks::console", client = %addr, retry_after = secs,
                "console sign-in refused: too many failed attempts");
            let message = format!("Too many failed sign-ins. Try again in {secs} s.");
            let mut r = sign_in_form(
                &console,
                Some(&next),
                Some(&message),
                StatusCode::TOO_MANY_REQUESTS,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return r;
        }
    };
    if !console.password().verify(form.get("password")).await {
        tracing::warn!(target: "opsworks::console", client = %addr, "failed console sign-in");
        return sign_in_form(
            &console,
            Some(&next),
            Some("That password is not right."),
            StatusCode::UNAUTHORIZED,
        );
    }
    console.limits().succeeded(attempt);
    let token = console.sessions().create();
    let mut r = see_other(&safe_next(Some(&next)));
    set_cookie(&mut r, &format!("{COOKIE}={token}; {FLAGS}; Max-Age=43200"));
    set_cookie(&mut r, &format!("{PRE_COOKIE}=; {FLAGS}; Max-Age=0"));
    r
}

/// `POST /console/sign-out`: ends the session and clears its cookie.
pub async fn sign_out(
    State(console): State<Console>,
    headers: HeaderMap,
    _form: SignedForm,
) -> Response {
    if let Some(token) = cookie(&headers, COOKIE) {
        console.sessions().remove(&token);
    }
    let mut r = see_other("/console/sign-in");
    set_cookie(&mut r, &format!("{COOKIE}=; {FLAGS}; Max-Age=0"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_inside_the_console() {
        assert_eq!(safe_next(Some("/console/stacks/x")), "/console/stacks/x");
        assert_eq!(safe_next(Some("https://evil.example/")), "/console/");
        assert_eq!(safe_next(Some("//evil.example/console/")), "/console/");
        assert_eq!(safe_next(Some("/console/\r\nLocation: x")), "/console/");
        assert_eq!(safe_next(None), "/console/");
    }
}
