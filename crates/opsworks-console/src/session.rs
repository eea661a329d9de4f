//! Who a signed-in browser is, settled again on every request: its session (the root's or an IAM
//! user's) becomes the [`Principal`] every operation of the page runs for, rebuilt from the
//! user's policies and permissions as they are now, so a policy change applies at the next
//! request and a deleted user (or a removed or replaced login profile) is signed out at once.
//! What the pages offer is asked of the same authorizer the operations use ([`Signed::may`]),
//! so an action the user may not take is absent, and refused by the server anyway.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use opsworks_api::ApiError;
use opsworks_api::query::AwsError;
use opsworks_model::resource::{IamUser, Stack};
use opsworks_policy::Grants;
use opsworks_server::core::identity;
use opsworks_server::ops::authz::{self, Targets};
use opsworks_server::ops::{Ctx, Principal};

use crate::auth::{SessionUser, profile_mark};
use crate::{COOKIE, Console, cookie, encode};

/// The page where a user whose login profile asks for a new password sets it; the only one (with
/// signing out) such a session may open.
pub const PASSWORD_PAGE: &str = "/console/password";

/// The action an IAM user's policy must allow for the audit view (as for `GET /api/audit`).
pub const AUDIT_ACTION: &str = opsworks_server::edge::audit::ACTION;

/// The address a request came from (the peer of its connection); unspecified when the server
/// was started without connection info, so all such clients share one limit.
pub struct ClientAddr(pub IpAddr);

impl<S: Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(parts)))
    }
}

fn client_addr(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Who is signed in, as pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct Me {
    /// `root`, or the IAM user's name.
    pub name: String,
    /// The account root's ARN or the user's.
    pub arn: String,
    /// Whether this is the account's root.
    pub root: bool,
}

/// A signed-in request: the session's CSRF token (for forms), and the principal its operations
/// run for.
pub struct Signed {
    /// The token forms must carry.
    pub csrf: String,
    /// Whom the page's operations run for, coming from the request's address.
    pub principal: Principal,
    /// Who is signed in.
    pub me: Me,
    /// The user's login profile asks for a new password before anything else.
    pub must_reset: bool,
    /// The IAM user's ID (`None` for the root).
    pub user_id: Option<String>,
    token: String,
    addr: IpAddr,
    console: Console,
}

/// Why a request has no signed-in principal.
#[derive(Debug)]
pub enum Unsigned {
    /// No session (none, expired, signed out).
    NoSession,
    /// The session's user was deleted, or their login profile removed or replaced: it ended.
    Ended,
    /// The session could not be checked (the store failed).
    Failed(String),
}

/// The signed-in principal of session `token` from `addr`, as of now.
pub async fn resolve(console: &Console, token: &str, addr: IpAddr) -> Result<Signed, Unsigned> {
    let session = console.sessions().get(token).ok_or(Unsigned::NoSession)?;
    let core = console.app();
    let from = (!addr.is_unspecified()).then_some(addr);
    let Some(SessionUser { user_id, mark }) = session.user else {
        return Ok(Signed {
            csrf: session.csrf,
            principal: Principal::root(core.region()).from_ip(from),
            me: Me {
                name: "root".into(),
                arn: format!("arn:aws:iam::{}:root", core.account_id()),
                root: true,
            },
            must_reset: false,
            user_id: None,
            token: token.to_string(),
            addr,
            console: console.clone(),
        });
    };
    let failed = |e: opsworks_server::core::CoreError| Unsigned::Failed(e.to_string());
    let user = core.find::<IamUser>(&user_id).await.map_err(failed)?;
    let Some(profile) = user.as_ref().and_then(|u| u.login_profile.clone()) else {
        // Deleted, or no longer allowed a console password: every session of theirs ends.
        console.sessions().end_user(&user_id);
        return Err(Unsigned::Ended);
    };
    if profile_mark(&profile.create_date, &profile.password_hash) != mark {
        // A new profile or password set by someone else: this sign-in no longer holds.
        console.sessions().remove(token);
        return Err(Unsigned::Ended);
    }
    let stamps = identity::stamps(core).await.map_err(failed)?;
    let Some(access) = identity::user_access(core, &user_id, &stamps)
        .await
        .map_err(failed)?
    else {
        console.sessions().end_user(&user_id);
        return Err(Unsigned::Ended);
    };
    let me = Me {
        name: access.user_name.clone(),
        arn: access.arn.clone(),
        root: false,
    };
    Ok(Signed {
        csrf: session.csrf,
        principal: Principal::iam_user(access, "", core.region()).from_ip(from),
        me,
        must_reset: profile.password_reset_required,
        user_id: Some(user_id),
        token: token.to_string(),
        addr,
        console: console.clone(),
    })
}

impl FromRequestParts<Console> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let token = cookie(&parts.headers, COOKIE).unwrap_or_default();
        let path = parts.uri.path();
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/console/");
        let get = parts.method == Method::GET;
        match resolve(console, &token, client_addr(parts)).await {
            Ok(s) if s.must_reset && path != PASSWORD_PAGE && path != "/console/sign-out" => {
                Err(Redirect::to(&if get {
                    format!("{PASSWORD_PAGE}?next={}", encode(next))
                } else {
                    PASSWORD_PAGE.to_string()
                })
                .into_response())
            }
            Ok(s) => Ok(s),
            Err(Unsigned::Failed(e)) => {
                tracing::error!("console session check failed: {e}");
                Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the console could not check your session; try again shortly",
                )
                    .into_response())
            }
            Err(_) => Err(Redirect::to(&if get {
                format!("/console/sign-in?next={}", encode(next))
            } else {
                "/console/sign-in".to_string()
            })
            .into_response()),
        }
    }
}

impl Signed {
    /// The console.
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// The session's cookie value.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The same session settled again now (for a live stream between two messages): `None` once
    /// it ended.
    pub async fn refreshed(&self) -> Option<Signed> {
        resolve(&self.console, &self.token, self.addr).await.ok()
    }

    /// The operation context of this principal.
    pub fn cx(&self) -> Ctx<'_> {
        Ctx {
            core: self.console.app(),
            principal: &self.principal,
        }
    }

    /// Runs an OpsWorks operation as this principal (see [`Console::call_as`]).
    pub async fn call(&self, operation: &str, input: Value) -> Result<Value, ApiError> {
        self.console
            .call_as(&self.principal, operation, input)
            .await
    }

    /// Runs an IAM operation as this principal (see [`Console::iam_as`]).
    pub async fn iam(&self, operation: &str, params: &[(&str, &str)]) -> Result<Value, AwsError> {
        self.console
            .iam_as(&self.principal, operation, params)
            .await
    }

    /// Whether this principal may run `operation` on `stack` (what a stack's pages offer).
    pub fn may(&self, operation: &str, stack: &Stack) -> bool {
        authz::may(&self.cx(), operation, stack)
    }

    /// Whether this principal may run `operation` naming no stack (CreateStack,
    /// UpdateMyUserProfile): the check the operation itself makes first.
    pub fn may_account(&self, operation: &str) -> bool {
        authz::check(&self.cx(), operation, &Targets::default()).is_ok()
    }

    /// Whether this principal's policies allow `action` (`service:Name`) on `resource` (for
    /// what no permission level grants: IAM, the audit log).
    pub fn allowed(&self, action: &str, resource: &str) -> bool {
        let Some(user) = &self.principal.user else {
            return true;
        };
        authz::decide(
            &self.principal,
            user,
            self.console.app().account_id(),
            action,
            resource,
            Grants::default(),
        )
        .is_ok()
    }

    /// Which of `operations` this principal may run on stack `stack_id`, as `{Operation: bool}`
    /// for a template (all false when the stack is gone).
    pub async fn can(&self, stack_id: &str, operations: &[&str]) -> Value {
        let stack = self
            .console
            .app()
            .find::<Stack>(stack_id)
            .await
            .ok()
            .flatten();
        let mut m = Map::new();
        for op in operations {
            let ok = stack.as_ref().is_some_and(|s| self.may(op, s));
            m.insert((*op).to_string(), ok.into());
        }
        if let Some(s) = &stack {
            m.insert("Audit".into(), self.allowed(AUDIT_ACTION, &s.arn).into());
        }
        Value::Object(m)
    }

    /// What the header shows: who is signed in and the pages they may open.
    fn nav(&self) -> Value {
        json!({
            "users": self.allowed("iam:ListUsers", "*"),
            "audit": self.allowed(AUDIT_ACTION, "*"),
            "settings": !self.me.root && self.may_account("UpdateMyUserProfile"),
        })
    }

    /// Renders a page for this session: `ctx` with the CSRF token, who is signed in and the
    /// header's links added.
    pub fn render(&self, name: &str, ctx: Value) -> Response {
        let mut ctx = match ctx {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        ctx.insert("csrf".into(), self.csrf.clone().into());
        ctx.insert("me".into(), json!(self.me));
        ctx.insert("nav".into(), self.nav());
        self.console.render(name, Value::Object(ctx))
    }
}
