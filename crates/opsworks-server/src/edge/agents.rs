//! The agent protocol's server side (`/agent/v1/*`, types in `opsworks-protocol`): agents say
//! hello, long-poll for commands, acknowledge them, stream their logs, report how they ended and
//! send metric samples.
//!
//! Each call is signed with the instance's own key and may only speak for that instance. Every
//! call is idempotent, so an agent may retry any of them.

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
use opsworks_model::deployment::CommandStatus;
use opsworks_model::resource::{Command, Instance, ReportedOs};
use opsworks_protocol::{
    Ack, Completion, Goodbye, Heartbeat, HeartbeatReply, Hello, HelloReply, LogChunk,
    MAX_POLL_SECONDS, MetricsBatch, PREFIX, PollReply, PollRequest, ProtocolError,
};

use opsworks_model::InstanceStatus;
use opsworks_model::resource::Stack;

use crate::core::{
    Core, CoreError, CoreResult, agent_releases, lifecycle, logs, metrics, registration,
    service_errors,
};
use crate::edge::auth::{self, Caller};

/// The longest interval between heartbeats an agent is asked for.
pub const HEARTBEAT_SECONDS: u64 = 10;

/// Heartbeats often enough that a live agent never looks silent for the healing timeout.
fn heartbeat_seconds(core: &Core) -> u64 {
    (core.healing_timeout().as_secs() / 3).clamp(1, HEARTBEAT_SECONDS)
}

/// The agent protocol's routes.
pub fn routes() -> Router<Core> {
    Router::new()
        .route(&format!("{PREFIX}/hello"), post(hello))
        .route(&format!("{PREFIX}/poll"), post(poll))
        .route(&format!("{PREFIX}/ack"), post(ack))
        .route(&format!("{PREFIX}/log"), post(log))
        .route(&format!("{PREFIX}/complete"), post(complete))
        .route(&format!("{PREFIX}/heartbeat"), post(heartbeat))
        .route(&format!("{PREFIX}/metrics"), post(metrics))
        .route(&format!("{PREFIX}/goodbye"), post(goodbye))
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
            ApiError::ServiceUnavailable(m) => {
                Failure(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
            }
            other => Failure(
                StatusCode::FORBIDDEN,
                "forbidden",
                other.message().to_string(),
            ),
        }
    }
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        ApiError::from(e).into()
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
    MetricsBatch,
    Goodbye
);

/// The largest message an agent may send (a metrics batch of 2,000 samples is the big one; log
/// pieces are bounded by `logs::MAX_PIECE_BYTES`).
const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// An authenticated agent message: the request is SigV4-verified, signed by an instance's key,
/// and its body names that same instance.
struct Agent<T>(T);

impl<T: DeserializeOwned + ForInstance> FromRequest<Core> for Agent<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, core: &Core) -> Result<Self, Failure> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
            .await
            .map_err(|e| {
                Failure(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid",
                    format!("reading the request: {e}"),
                )
            })?;
        let caller =
            auth::authenticate(core, &parts.method, &parts.uri, &parts.headers, &body).await?;
        let Caller::Instance(instance) = caller else {
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
        core.presence().saw(&instance);
        Ok(Agent(msg))
    }
}

fn reply<T: Serialize>(v: &T) -> Reply {
    Ok(axum::Json(serde_json::to_value(v).map_err(|e| {
        Failure(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })?))
}

async fn hello(State(core): State<Core>, Agent(msg): Agent<Hello>) -> Reply {
    let reported = ReportedOs {
        family: Some(msg.reported_os.family.clone()),
        name: Some(msg.reported_os.name.clone()),
        version: Some(msg.reported_os.version.clone()),
    };
    let known = core.get::<Instance>(&msg.instance_id).await?;
    // An agent says hello again whenever it moves to another server: only news is written.
    let inst = if known.reported_agent_version.as_deref() == Some(msg.agent_version.as_str())
        && known.reported_os.as_ref() == Some(&reported)
        && msg.rolled_back.is_none()
    {
        known.to_owned_value()
    } else {
        let mut w = core.write().await?;
        let mut inst: Instance = w.get(&msg.instance_id).await?;
        inst.reported_agent_version = Some(msg.agent_version.clone());
        inst.reported_os = Some(reported);
        w.put(&inst).await?;
        if let Some(undone) = &msg.rolled_back {
            let message = format!(
                "Agent version {} (SHA-256 {}) was rolled back on instance {}: {}",
                undone.version, undone.sha256, inst.hostname, undone.reason
            );
            service_errors::record(
                &mut w,
                &inst.stack_id,
                Some(&inst.instance_id),
                "agent_update_failed",
                &message,
            )
            .await?;
        }
        w.commit().await?;
        inst
    };
    tracing::info!(
        instance_id = msg.instance_id,
        agent_version = msg.agent_version,
        "agent said hello"
    );
    lifecycle::agent_restarted(&core, &msg.instance_id).await?;
    lifecycle::agent_alive(&core, &msg.instance_id).await?;
    registration::agent_registered(&core, &msg.instance_id).await?;
    reply(&HelloReply {
        agent_release: release_for(&core, &inst).await?,
        stack_id: inst.stack_id,
        heartbeat_seconds: heartbeat_seconds(&core),
        poll_seconds: MAX_POLL_SECONDS,
        metrics_seconds: Some(core.metrics_config().interval_seconds),
        servers: core.node().peers_for(inst.registered),
    })
}

/// The release an installed agent should run: only registered machines' agents update
/// themselves (local instances run the server's own executable).
async fn release_for(
    core: &Core,
    inst: &Instance,
) -> CoreResult<Option<opsworks_protocol::AgentRelease>> {
    if !inst.registered {
        return Ok(None);
    }
    let stack = core.get::<Stack>(&inst.stack_id).await?;
    agent_releases::desired(core, inst, &stack).await
}

async fn poll(State(core): State<Core>, Agent(msg): Agent<PollRequest>) -> Reply {
    let wait = Duration::from_secs(msg.wait_seconds.min(MAX_POLL_SECONDS));
    let deadline = tokio::time::Instant::now() + wait;
    let wakeup = core.presence().wakeup(&msg.instance_id);
    let _alive = core.presence().polling(&msg.instance_id);
    // A poll is the agent's sign of life (it sends no heartbeat while one waits): a lost
    // instance whose agent polls again is back.
    lifecycle::agent_alive(&core, &msg.instance_id).await?;
    let mut waited = false;
    loop {
        let commands = lifecycle::deliverable_commands(&core, &msg.instance_id).await?;
        let inst = core.get::<Instance>(&msg.instance_id).await?;
        let deregistered = inst.status == InstanceStatus::Deregistering;
        if !commands.is_empty() || deregistered || waited {
            return reply(&PollReply {
                commands,
                agent_release: release_for(&core, &inst).await?,
                deregistered,
                servers: core.node().peers_for(inst.registered),
            });
        }
        // Wait for a wake-up (a new command, a deregistration, a new release), or the deadline;
        // then answer with what there is. A notification that came before we started waiting is
        // kept as a permit, so nothing slips between the check and the wait.
        let _ = tokio::time::timeout_at(deadline, wakeup.notified()).await;
        waited = true;
    }
}

async fn ack(State(core): State<Core>, Agent(msg): Agent<Ack>) -> Reply {
    lifecycle::acknowledge(&core, &msg.instance_id, &msg.command_id).await?;
    Ok(axum::Json(json!({})))
}

async fn log(State(core): State<Core>, Agent(msg): Agent<LogChunk>) -> Reply {
    let cmd = core.get::<Command>(&msg.command_id).await?;
    if cmd.instance_id != msg.instance_id {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "command {} is not for instance {}",
                msg.command_id, msg.instance_id
            ),
        ));
    }
    // A log piece may trail its completion by a little (the agent's retries); a command that
    // ended more than a minute ago takes no more text.
    let ended = cmd.status != CommandStatus::Pending
        && cmd
            .completed_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_none_or(|t| jiff::Timestamp::now().as_second() - t.as_second() > 60);
    logs::append(&core, &msg.command_id, msg.offset, &msg.text, ended).await?;
    Ok(axum::Json(json!({})))
}

async fn complete(State(core): State<Core>, Agent(msg): Agent<Completion>) -> Reply {
    lifecycle::complete(&core, &msg).await?;
    Ok(axum::Json(json!({})))
}

async fn heartbeat(State(core): State<Core>, Agent(msg): Agent<Heartbeat>) -> Reply {
    lifecycle::agent_alive(&core, &msg.instance_id).await?;
    let registered = core.get::<Instance>(&msg.instance_id).await?.registered;
    reply(&HeartbeatReply {
        servers: core.node().peers_for(registered),
    })
}

async fn goodbye(State(core): State<Core>, Agent(msg): Agent<Goodbye>) -> Reply {
    registration::goodbye(&core, &msg.instance_id).await?;
    Ok(axum::Json(json!({})))
}

async fn metrics(State(core): State<Core>, Agent(msg): Agent<MetricsBatch>) -> Reply {
    metrics::ingest(&core, &msg).await?;
    Ok(axum::Json(json!({})))
}
