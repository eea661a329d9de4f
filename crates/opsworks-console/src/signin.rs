//! Signing in and out: the sign-in form (a double-submit token until a session exists) for the
//! account's root (no user name, or `root`: the console password) or an IAM user with a login
//! profile (their password, checked by the server's identity code), the limits on failed
//! attempts, the session cookie. Every sign-in, and every failed one of a known user, is written
//! to the audit log as `signin:ConsoleLogin`, as CloudTrail records it.

use std::net::IpAddr;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use opsworks_server::core::{CoreError, audit, identity};

use crate::auth::{SessionUser, profile_mark};
use crate::form::{Form, SignedForm};
use crate::limits;
use crate::render::{safe_path, see_other};
use crate::session::PASSWORD_PAGE;
use crate::{COOKIE, Console, auth, cookie, encode};

pub use crate::session::ClientAddr;

/// The cookie that carries the sign-in form's token (double submit: no server state before a
/// session exists).
pub const PRE_COOKIE: &str = "opsworks_pre";

/// The account root's name on the form (and its key in the limits).
const ROOT: &str = "root";

/// The flags of every cookie the console sets: not readable by script, never sent by another
/// site's request, only to the console.
pub const FLAGS: &str = "Path=/console; HttpOnly; SameSite=Strict";

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
    sign_in_form(&console, q.next.as_deref(), "", None, StatusCode::OK)
}

fn sign_in_form(
    console: &Console,
    next: Option<&str>,
    user: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    // Before a session exists, the form's token is a double-submit cookie.
    let token = auth::random_token(16);
    let mut r = console.render(
        "sign_in.html",
        json!({ "pre": token, "next": safe_next(next), "user": user, "error": error }),
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

/// Who a sign-in form names: the root (no name, or `root`) or an IAM user.
fn is_root(name: &str) -> bool {
    name.is_empty() || name.eq_ignore_ascii_case(ROOT)
}

/// Whether `name` could be an IAM user's (IAM's own rule: 1 to 64 of `A-Za-z0-9+=,.@_-`).
fn may_be_user(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// The key of a sign-in's account in the limits (IAM names are unique whatever their case).
/// Names no user can have share one key, so a client cannot make the limits hold keys of any
/// length it likes, nor lock out a real user with them.
pub fn account_key(name: &str) -> String {
    if is_root(name) {
        ROOT.to_string()
    } else if may_be_user(name) {
        format!("iam:{}", name.to_ascii_lowercase())
    } else {
        "iam:(not a user name)".to_string()
    }
}

/// What a password check found.
enum Checked {
    /// The root's console password.
    Root,
    /// An IAM user's login profile password: the session's user, their ARN, and whether their
    /// profile asks for a new password.
    User(SessionUser, String, bool),
    /// Wrong: `Some(arn)` when the name is a user's with a login profile (their failure is
    /// audited), `None` otherwise.
    Wrong(Option<String>),
}

/// Checks `password` for the account `name` names, in one of the pool's hashing turns.
async fn check(console: &Console, name: &str, password: String) -> Result<Checked, CoreError> {
    if is_root(name) {
        return Ok(match console.password().verify(password).await {
            true => Checked::Root,
            false => Checked::Wrong(None),
        });
    }
    let core = console.app();
    let user = match may_be_user(name) {
        true => identity::user_by_name(core, name).await?,
        false => None,
    };
    let Some((user, profile)) = user.and_then(|u| u.login_profile.clone().map(|p| (u, p))) else {
        // The same work as a real check, so the time taken does not tell which names exist.
        let _ = console.password().verify(password).await;
        return Ok(Checked::Wrong(None));
    };
    if !console
        .password()
        .verify_hash(&profile.password_hash, password)
        .await
    {
        return Ok(Checked::Wrong(Some(user.arn)));
    }
    Ok(Checked::User(
        SessionUser {
            user_id: user.user_id.clone(),
            mark: profile_mark(&profile.create_date, &profile.password_hash),
        },
        user.arn,
        profile.password_reset_required,
    ))
}

/// Writes a sign-in to the audit log.
async fn audit_sign_in(console: &Console, principal: &str, addr: IpAddr, ok: bool) {
    audit::record(
        console.app(),
        audit::Call {
            principal,
            source_ip: (!addr.is_unspecified()).then(|| addr.to_string()),
            service: "signin",
            operation: "ConsoleLogin",
            stack_id: None,
            target: None,
            outcome: if ok { "Success" } else { "Failure" },
            detail: json!({}),
        },
    )
    .await;
}

/// `POST /console/sign-in`: checks the form's token against its cookie (403 without), the limits
/// (429 with `Retry-After`), then the user name and password (401 when wrong); a right one starts
/// a session — first at the password page when the user's login profile asks for a new one.
pub async fn sign_in(
    State(console): State<Console>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let next = form.get("next");
    let name = form.get("user");
    let pre = cookie(&headers, PRE_COOKIE).unwrap_or_default();
    if pre.is_empty() || !auth::same(&pre, &form.get("_pre")) {
        return sign_in_form(
            &console,
            Some(&next),
            &name,
            Some("The sign-in form expired; please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let attempt = match console
        .limits()
        .begin(addr, &account_key(&name), Instant::now())
    {
        Ok(attempt) => attempt,
        Err(wait) => {
            let secs = limits::seconds(wait);
            tracing::warn!(target: "opsworks::console", client = %addr, retry_after = secs,
                "console sign-in refused: too many failed attempts");
            let message = format!("Too many failed sign-ins. Try again in {secs} s.");
            let mut r = sign_in_form(
                &console,
                Some(&next),
                &name,
                Some(&message),
                StatusCode::TOO_MANY_REQUESTS,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return r;
        }
    };
    // On a task of its own, so a client that hangs up mid-check cannot free the hashing turn
    // while the hash still runs (the pool's bound holds however clients behave).
    let task = {
        let (console, name, password) = (console.clone(), name.clone(), form.get("password"));
        tokio::spawn(async move { check(&console, &name, password).await })
    };
    let checked = task
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let checked = match checked {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("console sign-in could not check the password: {e}");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the console could not check the password now; try again shortly",
            )
                .into_response();
        }
    };
    let root_arn = format!("arn:aws:iam::{}:root", console.app().account_id());
    let (user, arn, reset) = match checked {
        Checked::Root => (None, root_arn, false),
        Checked::User(u, arn, reset) => (Some(u), arn, reset),
        Checked::Wrong(arn) => {
            tracing::warn!(target: "opsworks::console", client = %addr, "failed console sign-in");
            if let Some(arn) = arn.or_else(|| is_root(&name).then(|| root_arn.clone())) {
                audit_sign_in(&console, &arn, addr, false).await;
            }
            return sign_in_form(
                &console,
                Some(&next),
                &name,
                Some("That user name or password is not right."),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    console.limits().succeeded(attempt);
    audit_sign_in(&console, &arn, addr, true).await;
    let token = console.sessions().create(user);
    let next = safe_next(Some(&next));
    let mut r = if reset {
        see_other(&format!("{PASSWORD_PAGE}?next={}", encode(&next)))
    } else {
        see_other(&next)
    };
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

    #[test]
    fn account_keys_are_short_whatever_the_name() {
        assert_eq!(account_key(""), "root");
        assert_eq!(account_key("ROOT"), "root");
        assert_eq!(account_key("Alice.B@x"), "iam:alice.b@x");
        let long = "a".repeat(65);
        assert_eq!(account_key(&long), account_key("no/such name"));
        assert_eq!(
            account_key(&"x".repeat(1 << 20)).len(),
            "iam:(not a user name)".len()
        );
        assert!(account_key(&"a".repeat(64)).starts_with("iam:aaaa"));
    }
}
