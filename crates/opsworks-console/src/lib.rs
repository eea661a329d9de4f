//! The web console: server-rendered pages over the same operations the API serves.
//!
//! A page flows: the router ([`routes`], under `/console`) → [`Signed`] ([`session`]), the
//! extractor that finds the session cookie (or redirects to the sign-in page) and settles whom
//! it acts for — the root, or an IAM user with their policies and permissions as they are now →
//! a handler in the module of its resource family ([`stacks`], [`layers`], [`instances`],
//! [`apps`], [`deployments`], [`monitoring`], [`events`], the IAM pages [`users`], [`groups`],
//! [`settings`], [`audit`]) that calls the operations through [`Signed::call`] and
//! [`Signed::iam`] exactly as the API would (validated against the service model, then
//! dispatched for that principal: authorized, and audited under their ARN with the browser's
//! address) → a minijinja template. The console holds no rules of its own: what a page offers is
//! what the authorizer allows ([`Signed::may`]), and every change is an operation call. Forms
//! are plain HTML forms that work without script; each carries the session's CSRF token, checked
//! by [`form::SignedForm`] before anything changes. A little hand-written script follows
//! server-sent events ([`live`], [`events`]) to update pages in place. Every response carries
//! the headers of [`security`].
//!
//! Modules import only downward: `routes` → the page modules → `form`, `render`, `live` →
//! `session` → the crate root (the [`Console`]); `signin` → `session`, `auth`, `limits`.

pub mod apps;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod deployments;
pub mod events;
pub mod form;
pub mod groups;
pub mod iam;
pub mod instances;
pub mod layers;
pub mod limits;
pub mod live;
pub mod monitoring;
pub mod password;
pub mod rds;
pub mod render;
pub mod routes;
pub mod security;
pub mod session;
pub mod settings;
pub mod signin;
pub mod stacks;
pub mod user_actions;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde_json::Value;

use opsworks_api::query::{self, AwsError};
use opsworks_api::service::Service;
use opsworks_api::{ApiError, model};
use opsworks_server::Core as App;
use opsworks_server::ops::{self, Ctx, Principal};

pub use auth::{AuthError, Password, PasswordSource};
pub use session::Signed;

/// The session cookie's name.
pub const COOKIE: &str = "opsworks_session";

/// The console's state: the server's [`App`], the password, the sessions, the templates.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    app: App,
    password: Password,
    sessions: auth::Sessions,
    limits: limits::SignInLimits,
    templates: Environment<'static>,
    /// Turns true at shutdown: live streams end so the server's graceful stop is not held up.
    closed: tokio::sync::watch::Sender<bool>,
}

macro_rules! templates {
    ($env:ident, $($name:literal),* $(,)?) => {
        $(
            $env.add_template($name, include_str!(concat!("../templates/", $name)))
                .expect(concat!("template ", $name, " parses"));
        )*
    };
}

impl Console {
    /// The console over `app`, signing in with `password`.
    pub fn new(app: App, password: Password) -> Console {
        let mut env = Environment::new();
        templates!(
            env,
            "base.html",
            "sign_in.html",
            "stacks.html",
            "stack_form.html",
            "stack.html",
            "layer_form.html",
            "instance_form.html",
            "instance.html",
            "app_form.html",
            "deploy_form.html",
            "deployments.html",
            "deployment.html",
            "error.html",
            "monitoring.html",
            "events.html",
            "users.html",
            "user.html",
            "group.html",
            "new_key.html",
            "settings.html",
            "password.html",
            "audit.html",
        );
        env.add_filter("status_class", status_class);
        Console {
            inner: Arc::new(Inner {
                app,
                password,
                sessions: auth::Sessions::default(),
                limits: limits::SignInLimits::default(),
                templates: env,
                closed: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// Ends every live stream (at shutdown) and refuses new ones.
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }

    /// A receiver that sees [`Console::close`].
    pub fn closed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.closed.subscribe()
    }

    /// The server's state.
    pub fn app(&self) -> &App {
        &self.inner.app
    }

    /// The root user's console password.
    pub fn password(&self) -> &Password {
        &self.inner.password
    }

    /// The signed-in sessions.
    pub fn sessions(&self) -> &auth::Sessions {
        &self.inner.sessions
    }

    /// The limits on failed sign-ins.
    pub fn limits(&self) -> &limits::SignInLimits {
        &self.inner.limits
    }

    /// Runs an OpsWorks operation for `principal`, as the API would: the input is validated against
    /// the service model first (so the console gets the API's own error messages), then the
    /// operation is authorized for the principal and, when it may change something, audited.
    pub async fn call_as(
        &self,
        principal: &Principal,
        operation: &str,
        input: Value,
    ) -> Result<Value, ApiError> {
        model().validate_input(operation, &input)?;
        let cx = Ctx {
            core: &self.inner.app,
            principal,
        };
        ops::dispatch(cx, operation, input).await?.into_value()
    }

    /// Runs an IAM operation for `principal`, as the Query endpoint would: `params` (member names
    /// as the Query protocol spells them) are parsed and validated against IAM's model by the
    /// same code, then the operation is authorized, run and audited.
    pub async fn iam_as(
        &self,
        principal: &Principal,
        operation: &str,
        params: &[(&str, &str)],
    ) -> Result<Value, AwsError> {
        // (The serializer is not `Send`: it must be gone before the first await.)
        let body = {
            let mut body = form_urlencoded::Serializer::new(String::new());
            body.append_pair("Action", operation)
                .append_pair("Version", &Service::Iam.model().metadata.api_version);
            for (k, v) in params {
                body.append_pair(k, v);
            }
            body.finish()
        };
        let request = query::parse_request(Service::Iam, "", body.as_bytes())?;
        let cx = Ctx {
            core: &self.inner.app,
            principal,
        };
        ops::iam::dispatch(cx, &request.operation, request.input).await
    }

    /// Renders a template; a template error becomes a 500 page (and a log line).
    pub fn render(&self, name: &str, ctx: Value) -> Response {
        match self
            .inner
            .templates
            .get_template(name)
            .and_then(|t| t.render(template_value(&ctx)))
        {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!("console template {name}: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered",
                )
                    .into_response()
            }
        }
    }
}

/// A JSON value as a template value. Numbers are converted by hand: serde_json's
/// `arbitrary_precision` (enabled in the workspace by the recipe engine) would otherwise reach the
/// templates as maps.
fn template_value(v: &Value) -> minijinja::Value {
    match v {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => minijinja::Value::from(i),
            (None, Some(f)) => minijinja::Value::from(f),
            _ => minijinja::Value::from(n.to_string()),
        },
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(a) => a.iter().map(template_value).collect(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| (k.as_str(), template_value(v)))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into(),
    }
}

fn status_class(status: String) -> String {
    match status.as_str() {
        "online" | "successful" => "ok",
        "setup_failed" | "start_failed" | "failed" | "connection_lost" | "stop_failed" => "bad",
        "stopped" | "terminated" | "shutting_down" | "stopping" => "off",
        _ => "busy",
    }
    .to_string()
}

/// The router of every console page, under `/console` (and the site's icon), each response
/// with the console's security headers.
pub fn router(console: Console) -> Router {
    routes::routes()
        .layer(axum::middleware::map_response(security::protect))
        .with_state(console)
}

/// The console as a mount of the server: its pages on the server's port, signing in with
/// `password`; its live streams end first when the server stops.
pub fn mount(password: Password) -> opsworks_server::Mount {
    std::sync::Arc::new(move |core: &App| {
        let console = Console::new(core.clone(), password.clone());
        let closing = console.clone();
        Ok(opsworks_server::Mounted {
            router: router(console),
            on_shutdown: Some(Box::new(move || closing.close())),
        })
    })
}

/// The value of cookie `name` in a request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Percent-encodes a query value.
pub fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
