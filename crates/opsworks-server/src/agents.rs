//! The agent protocol's server side (`/agent/v1/*`, types in `opsworks-protocol`): agents say
//! hello, long-poll for commands, acknowledge them, stream their logs, report how they ended and
//! send metric samples (stored by `metrics::ingest`).
//!
//! Each call is signed with the instance's own key (principal `instance:<id>`) and may only speak
//! for that instance. Every call is idempotent, so an agent may retry any of them.

use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use opsworks_api::ApiError;
use opsworks_protocol::{
    Ack, Completion, Heartbeat, Hello, HelloReply, LogChunk, MAX_POLL_SECONDS, MetricsBatch,
    PREFIX, PollReply, PollRequest, ProtocolError,
};
use opsworks_store::Kind;

use crate::App;
use crate::lifecycle;
use crate::ops::{self, load, put};

/// The prefix of the principal of an instance's key: `instance:<instance id>`.
pub const INSTANCE_PRINCIPAL: &str = "instance:";

/// The longest interval between heartbeats an agent is asked for.
pub const HEARTBEAT_SECONDS: u64 = 10;

/// Heartbeats often enough that a live agent never looks silent for the healing timeout.
fn heartbeat_seconds(app: &App) -> u64 {
    (app.healing_timeout().as_secs() / 3).clamp(1, HEARTBEAT_SECONDS)
}

/// The agent protocol's routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route(&format!("{PREFIX}/hello"), post(hello))
        .route(&format!("{PREFIX}/poll"), post(poll))
        .route(&format!("{PREFIX}/ack"), post(ack))
        .route(&format!("{PREFIX}/log"), post(log))
        .route(&format!("{PREFIX}/complete"), post(complete))
        .route(&format!("{PREFIX}/heartbeat"), post(heartbeat))
        .route(&format!("{PREFIX}/metrics"), post(metrics))
        .route("/agent/installer", axum::routing::get(installer))
}

/// The script `AgentInstallerUrl` names. Registering existing machines is not supported yet, so
/// it says so plainly and fails, rather than half-installing something.
async fn installer() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/x-shellscript; charset=utf-8",
        )],
        "#!/bin/sh\necho 'opsworks: registering existing machines (RegisterInstance) is not supported by this server yet; start instances with StartInstance instead.' >&2\nexit 1\n",
    )
}

/// An error answer: HTTP status plus [`ProtocolError`].
struct Failure(StatusCode, &'static str, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.0,
            axum::Json(ProtocolError {
                code: self.1.into(),
                message: self.2,
            }),
        )
            .into_response()
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::ResourceNotFound(m) => Failure(StatusCode::NOT_FOUND, "not_found", m),
            ApiError::Validation(m) | ApiError::Serialization(m) => {
                Failure(StatusCode::BAD_REQUEST, "invalid", m)
            }
            ApiError::Internal(m) => Failure(StatusCode::INTERNAL_SERVER_ERROR, "internal", m),
            other => Failure(
                StatusCode::FORBIDDEN,
                "forbidden",
                other.message().to_string(),
            ),
        }
    }
}

type Reply = Result<axum::Json<Value>, Failure>;

/// A protocol message whose instance must be the one whose key signed the request.
trait ForInstance {
    fn instance_id(&self) -> &str;
}

macro_rules! for_instance {
    ($($t:ty),*) => {$(impl ForInstance for $t { fn instance_id(&self) -> &str { &self.instance_id } })*};
}
for_instance!(
    Hello,
    PollRequest,
    Ack,
    LogChunk,
    Completion,
    Heartbeat,
    MetricsBatch
);

/// The largest message an agent may send (log pieces are the big ones).
const MAX_MESSAGE_BYTES: usize = 8 << 20;

/// An authenticated agent message: the request is SigV4-verified, signed by an instance's key,
/// and its body names that same instance.
struct Agent<T>(T);

impl<T: DeserializeOwned + ForInstance> FromRequest<App> for Agent<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, app: &App) -> Result<Self, Failure> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
            .await
            .map_err(|e| {
                Failure(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("reading the request: {e}"),
                )
            })?;
        let caller =
            crate::http::authenticate(app, &parts.method, &parts.uri, &parts.headers, &body)?;
        let Some(instance) = caller.principal.strip_prefix(INSTANCE_PRINCIPAL) else {
            return Err(Failure(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only an instance's credential speaks the agent protocol".into(),
            ));
        };
        let msg: T = serde_json::from_slice(&body).map_err(|e| {
            Failure(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("malformed request: {e}"),
            )
        })?;
        if msg.instance_id() != instance {
            return Err(Failure(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "the credential of instance {instance} cannot speak for instance {}",
                    msg.instance_id()
                ),
            ));
        }
        app.saw_agent(instance);
        Ok(Agent(msg))
    }
}

fn reply<T: Serialize>(v: &T) -> Reply {
    Ok(axum::Json(serde_json::to_value(v).map_err(|e| {
        Failure(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })?))
}

async fn hello(State(app): State<App>, Agent(msg): Agent<Hello>) -> Reply {
    let stack_id = {
        let _guard = app.write_lock().await;
        let mut doc = load(&app, Kind::Instance, "instance", &msg.instance_id).await?;
        doc["ReportedAgentVersion"] = json!(msg.agent_version);
        doc["ReportedOs"] = json!({
            "Family": msg.reported_os.family,
            "Name": msg.reported_os.name,
            "Version": msg.reported_os.version,
        });
        let stack_id = doc["StackId"].as_str().unwrap_or_default().to_string();
        ops::apply(
            &app,
            vec![put(Kind::Instance, &msg.instance_id, &stack_id, None, doc)],
        )
        .await?;
        stack_id
    };
    tracing::info!(
        instance_id = msg.instance_id,
        agent_version = msg.agent_version,
        "agent said hello"
    );
    lifecycle::agent_restarted(&app, &msg.instance_id).await?;
    reply(&HelloReply {
        stack_id,
        heartbeat_seconds: heartbeat_seconds(&app),
        poll_seconds: MAX_POLL_SECONDS,
        metrics_seconds: Some(app.metrics_config().interval_seconds),
    })
}

async fn poll(State(app): State<App>, Agent(msg): Agent<PollRequest>) -> Reply {
    let wait = Duration::from_secs(msg.wait_seconds.min(MAX_POLL_SECONDS));
    let deadline = tokio::time::Instant::now() + wait;
    let wakeup = app.wakeup(&msg.instance_id);
    let _alive = app.polling(&msg.instance_id);
    loop {
        let commands = lifecycle::deliverable_commands(&app, &msg.instance_id).await?;
        if !commands.is_empty() {
            return reply(&PollReply { commands });
        }
        // Wait for a new command, or the deadline. A notification that came before we started
        // waiting is kept as a permit, so nothing slips between the check and the wait.
        if tokio::time::timeout_at(deadline, wakeup.notified())
            .await
            .is_err()
        {
            return reply(&PollReply::default());
        }
    }
}

async fn ack(State(app): State<App>, Agent(msg): Agent<Ack>) -> Reply {
    lifecycle::acknowledge(&app, &msg.instance_id, &msg.command_id).await?;
    Ok(axum::Json(json!({})))
}

async fn log(State(app): State<App>, Agent(msg): Agent<LogChunk>) -> Reply {
    lifecycle::command_of(&app, &msg.instance_id, &msg.command_id).await?;
    append_log(&app, &msg.command_id, msg.offset, &msg.text).map_err(|e| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("writing the log: {e}"),
        )
    })?;
    Ok(axum::Json(json!({})))
}

async fn complete(State(app): State<App>, Agent(msg): Agent<Completion>) -> Reply {
    lifecycle::complete(&app, &msg).await?;
    Ok(axum::Json(json!({})))
}

async fn heartbeat(State(app): State<App>, Agent(msg): Agent<Heartbeat>) -> Reply {
    lifecycle::agent_alive(&app, &msg.instance_id).await?;
    Ok(axum::Json(json!({})))
}

async fn metrics(State(app): State<App>, Agent(msg): Agent<MetricsBatch>) -> Reply {
    crate::metrics::ingest(&app, &msg).await?;
    Ok(axum::Json(json!({})))
}

/// The file holding a command's log.
pub fn log_path(app: &App, command_id: &str) -> std::path::PathBuf {
    app.data_dir()
        .join("logs")
        .join(format!("{command_id}.log"))
}

/// Appends `text` at byte `offset` of a command's log; a piece the server already has (a retry)
/// is skipped, and a gap is refused so a log never has holes.
fn append_log(app: &App, command_id: &str, offset: u64, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if !opsworks_model::ids::looks_like_id(command_id) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a command ID",
        ));
    }
    let path = log_path(app, command_id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let have = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let end = offset + text.len() as u64;
    if end <= have {
        return Ok(());
    }
    if offset > have {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("log piece at {offset} leaves a gap after {have}"),
        ));
    }
    let skip = (have - offset) as usize;
    let tail = text.get(skip..).unwrap_or("");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    f.write_all(tail.as_bytes())
}
