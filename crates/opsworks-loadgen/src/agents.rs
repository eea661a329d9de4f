//! Simulated agents for the fleet benchmark (`bench/agents/run.sh`).
//!
//! `keys`: with the servers stopped, what only a booting machine does — each instance of the
//! database gets its own key and comes `online` — written as credentials for the simulation.
//! `agents`: each simulated agent is the real agent's client (`opsworks_agent::client::Client`,
//! its own keep-alive connections, signed calls, moving between servers) running the real
//! agent's cadence: hello, a long poll always waiting, heartbeats (only while no poll waits) and
//! one-sample metric batches at the intervals the hello answer gives; each command it gets is acknowledged, logged and
//! completed. A driver creates deployments (one instance each, through the servers in turn) at a
//! fixed rate, and the delivery of each is timed from the moment its CreateDeployment was sent to
//! the moment the agent's poll returned it (an upper bound of creation to delivery).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use opsworks_agent::client::{Client, Credentials};
use opsworks_model::InstanceStatus;
use opsworks_model::resource::Instance;
use opsworks_protocol::{
    CommandOutcome, Completion, HeartbeatReply, HelloReply, MetricSample, MetricsBatch, PollReply,
    PollRequest,
};
use opsworks_store::Filter;

use crate::Signer;

/// One simulated agent's identity, as `keys` writes it (one JSON object per line).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AgentIdentity {
    /// The instance.
    pub instance_id: String,
    /// Its stack.
    pub stack_id: String,
    /// Its key.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

/// Issues every instance of the database a key and brings it online (the servers must be
/// stopped on the embedded database); writes the identities to `out`.
pub async fn keys(data_dir: &Path, database_url: Option<&str>, out: &Path) -> anyhow::Result<()> {
    let mut config = opsworks_server::ServerConfig::new(data_dir.to_path_buf());
    config.database = database_url
        .map(opsworks_store::Engine::from_url)
        .transpose()?;
    let (core, _) = opsworks_server::Core::open(&config).await.context(
        "opening the servers' database (stop the server on the embedded database first)",
    )?;
    let instances = core.list::<Instance>(Filter::All).await?;
    let mut lines = String::new();
    for chunk in instances.chunks(500) {
        let mut w = core.write().await?;
        for inst in chunk {
            let (akid, secret) = core
                .keys()
                .issue(&mut w, &format!("instance:{}", inst.instance_id))
                .await?;
            let mut online = inst.to_owned_value();
            online.status = InstanceStatus::Online;
            w.put(&online).await?;
            let id = AgentIdentity {
                instance_id: inst.instance_id.clone(),
                stack_id: inst.stack_id.clone(),
                access_key_id: akid,
                secret_access_key: secret,
            };
            lines.push_str(&serde_json::to_string(&id)?);
            lines.push('\n');
        }
        w.commit().await?;
    }
    std::fs::write(out, lines).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "{} instances online with keys of their own",
        instances.len()
    );
    Ok(())
}

/// Latencies in microseconds, and errors, of one kind of call.
#[derive(Default)]
struct Tally {
    micros: Vec<u64>,
    errors: u64,
    /// How many errors of each kind (the error's text, shortened), so a run says what failed.
    kinds: std::collections::BTreeMap<String, u64>,
}

/// What the simulation counts, inside the measured window only.
#[derive(Default)]
struct Stats {
    calls: Mutex<HashMap<&'static str, Tally>>,
    delivery: Mutex<Vec<u64>>,
    measuring: AtomicBool,
    /// Deployments in flight, by their one instance: when their CreateDeployment was sent (the
    /// agent may have the command before the answer reaches the driver), and to which server.
    sent: Mutex<HashMap<String, (Instant, String)>>,
    /// The deliveries whose deployment was created through another server than the one the
    /// agent polls: the cross-server wake-up (two servers or more).
    delivery_cross: Mutex<Vec<u64>>,
    delivered: AtomicU64,
    created: AtomicU64,
}

impl Stats {
    fn record<T, E: std::fmt::Display>(
        &self,
        kind: &'static str,
        started: Instant,
        outcome: &Result<T, E>,
    ) {
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let t = calls.entry(kind).or_default();
        match outcome {
            Ok(_) => t.micros.push(started.elapsed().as_micros() as u64),
            Err(e) => {
                t.errors += 1;
                let text: String = e.to_string().chars().take(120).collect();
                *t.kinds.entry(text).or_default() += 1;
            }
        }
    }
}

/// The simulation's settings.
pub struct Simulation {
    /// The servers' URLs (agents are spread over them; each learns the others).
    pub servers: Vec<String>,
    /// How many agents (of the identities file, after the first `skip`).
    pub agents: usize,
    /// Identities skipped (another process simulates them).
    pub skip: usize,
    /// Where to write every latency measured (JSON), for merging several processes' figures.
    pub raw: Option<std::path::PathBuf>,
    /// Seconds over which agents start.
    pub ramp: u64,
    /// Seconds measured, after the ramp and a settling period.
    pub seconds: u64,
    /// Deployments created per second.
    pub rate: f64,
}

/// Runs the simulation and prints its figures as JSON.
pub async fn simulate(
    sim: Simulation,
    identities: &Path,
    signers: Vec<Arc<Signer>>,
) -> anyhow::Result<()> {
    if sim.agents == 0 || sim.agents > 50_000 || sim.seconds == 0 || sim.seconds > 900 {
        bail!("keep the load bounded: 1..=50000 agents, 1..=900 seconds");
    }
    let text = std::fs::read_to_string(identities)
        .with_context(|| format!("reading {}", identities.display()))?;
    let ids: Vec<AgentIdentity> = text
        .lines()
        .skip(sim.skip)
        .take(sim.agents)
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    if ids.len() < sim.agents {
        bail!(
            "{} holds {} identities, not {}",
            identities.display(),
            ids.len(),
            sim.agents
        );
    }
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        // Agents are spread over the servers, each told of its own first.
        let mut servers = sim.servers.clone();
        servers.rotate_left(i % sim.servers.len());
        let delay = Duration::from_secs_f64(sim.ramp as f64 * i as f64 / sim.agents as f64);
        tasks.push(tokio::spawn(agent(
            id.clone(),
            servers,
            delay,
            stats.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(sim.ramp + 10)).await;
    stats.measuring.store(true, Ordering::SeqCst);
    let window = Instant::now();
    let driver = tokio::spawn(drive(
        ids.clone(),
        signers,
        sim.rate,
        Duration::from_secs(sim.seconds),
        stats.clone(),
    ));
    driver.await??;
    // Deliveries still under way get a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stats.measuring.store(false, Ordering::SeqCst);
    let elapsed = window.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    report(&sim, &stats, elapsed);
    if let Some(path) = &sim.raw {
        let calls: serde_json::Map<String, Value> = stats
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, t)| {
                (
                    k.to_string(),
                    json!({"micros": t.micros, "errors": t.errors}),
                )
            })
            .collect();
        let raw = json!({"seconds": elapsed, "delivery": *stats.delivery.lock().unwrap_or_else(PoisonError::into_inner), "delivery_cross": *stats.delivery_cross.lock().unwrap_or_else(PoisonError::into_inner), "created": stats.created.load(Ordering::SeqCst), "calls": calls});
        std::fs::write(path, raw.to_string())?;
    }
    for t in tasks {
        t.abort();
    }
    Ok(())
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    (sorted[i] as f64 / 1000.0 * 10.0).round() / 10.0
}

fn report(sim: &Simulation, stats: &Stats, elapsed: f64) {
    let mut calls = serde_json::Map::new();
    let mut total = 0usize;
    let mut errors = 0u64;
    for (kind, t) in stats
        .calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter_mut()
    {
        t.micros.sort_unstable();
        total += t.micros.len();
        errors += t.errors;
        calls.insert(
            kind.to_string(),
            json!({"ok": t.micros.len(), "errors": t.errors, "error_kinds": t.kinds, "per_second": (t.micros.len() as f64 / elapsed).round(), "p50_ms": pct(&t.micros, 0.5), "p99_ms": pct(&t.micros, 0.99)}),
        );
    }
    let mut delivery = stats
        .delivery
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    delivery.sort_unstable();
    let mut cross = stats
        .delivery_cross
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    cross.sort_unstable();
    let created = stats.created.load(Ordering::SeqCst);
    println!(
        "{}",
        json!({
            "agents": sim.agents,
            "servers": sim.servers.len(),
            "seconds": (elapsed * 10.0).round() / 10.0,
            "requests_per_second": (total as f64 / elapsed).round(),
            "errors": errors,
            "deployments_created": created,
            "deployments_delivered": delivery.len(),
            "delivery_p50_ms": pct(&delivery, 0.5),
            "delivery_p99_ms": pct(&delivery, 0.99),
            "delivery_max_ms": delivery.last().map_or(0.0, |m| *m as f64 / 1000.0),
            "delivered_across_servers": cross.len(),
            "delivery_across_servers_p50_ms": pct(&cross, 0.5),
            "delivery_across_servers_p99_ms": pct(&cross, 0.99),
            "calls": calls,
        })
    );
}

/// One agent: hello, then heartbeats and metrics beside an ever-waiting poll.
async fn agent(
    id: AgentIdentity,
    servers: Vec<String>,
    delay: Duration,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    tokio::time::sleep(delay).await;
    let creds = Credentials {
        access_key_id: id.access_key_id.clone(),
        secret_access_key: id.secret_access_key.clone(),
    };
    let Ok(client) = Client::with_servers(&servers, creds) else {
        return;
    };
    let hello = json!({"instance_id": id.instance_id, "agent_version": opsworks_agent::VERSION, "hostname": "sim", "reported_os": {"family": "debian", "name": "debian", "version": "12"}, "addresses": []});
    let reply: HelloReply = loop {
        let t = Instant::now();
        let r = client
            .call::<_, HelloReply>("hello", &hello, Duration::from_secs(30))
            .await;
        stats.record("hello", t, &r);
        match r {
            Ok(r) => break r,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    client.learn(&reply.servers);
    let every_beat = Duration::from_secs(reply.heartbeat_seconds.max(1));
    let every_sample = Duration::from_secs(reply.metrics_seconds.unwrap_or(10).max(1));
    // As the real agent: no heartbeat while the poll waits (the server counts a waiting poll as
    // a sign of life), so the agent holds one connection, not two.
    let polling = Arc::new(AtomicBool::new(false));
    let (c, s, iid, p) = (
        client.clone(),
        stats.clone(),
        id.instance_id.clone(),
        polling.clone(),
    );
    let beats = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every_beat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if p.load(Ordering::SeqCst) {
                continue;
            }
            let t = Instant::now();
            let beat = json!({"instance_id": iid, "running": null});
            let r = c
                .call::<_, Option<HeartbeatReply>>("heartbeat", &beat, Duration::from_secs(10))
                .await;
            if let Ok(reply) = &r {
                c.learn(&reply.clone().unwrap_or_default().servers);
            }
            s.record("heartbeat", t, &r);
        }
    });
    let (c, s, iid) = (client.clone(), stats.clone(), id.instance_id.clone());
    let samples = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every_sample);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let mut values = [0.0; opsworks_model::metrics::COUNT];
            values[0] = 90.0;
            let batch = MetricsBatch {
                instance_id: iid.clone(),
                samples: vec![MetricSample {
                    at: jiff::Timestamp::now().as_second(),
                    values,
                }],
            };
            let t = Instant::now();
            let r = c
                .call::<_, Value>("metrics", &batch, Duration::from_secs(15))
                .await;
            s.record("metrics", t, &r);
        }
    });
    let wait = reply.poll_seconds.min(opsworks_protocol::MAX_POLL_SECONDS);
    while !stop.load(Ordering::Relaxed) {
        let req = PollRequest {
            instance_id: id.instance_id.clone(),
            wait_seconds: wait,
        };
        let t = Instant::now();
        polling.store(true, Ordering::SeqCst);
        let r = client
            .call::<_, PollReply>("poll", &req, Duration::from_secs(wait + 10))
            .await;
        polling.store(false, Ordering::SeqCst);
        stats.record("poll", t, &r);
        match r {
            Ok(reply) => {
                client.learn(&reply.servers);
                for cmd in reply.commands {
                    run_command(&client, &id.instance_id, &cmd, &stats).await;
                }
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    beats.abort();
    samples.abort();
}

/// What the real agent does with a command, minus the converge: ack, a log piece, completion.
async fn run_command(
    client: &Client,
    instance_id: &str,
    cmd: &opsworks_protocol::AgentCommand,
    stats: &Stats,
) {
    let timed = cmd.kind == opsworks_model::CommandName::ExecuteRecipes;
    let sent = if timed {
        stats
            .sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(instance_id)
    } else {
        None
    };
    if let Some((sent, via)) = sent {
        stats.delivered.fetch_add(1, Ordering::Relaxed);
        if stats.measuring.load(Ordering::Relaxed) {
            let took = sent.elapsed().as_micros() as u64;
            stats
                .delivery
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(took);
            if via.trim_end_matches('/') != client.server().trim_end_matches('/') {
                stats
                    .delivery_cross
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(took);
            }
        }
    }
    let t = Duration::from_secs(30);
    let ack = json!({"instance_id": instance_id, "command_id": cmd.command_id});
    let s = Instant::now();
    let r = client.call_retrying::<_, Value>("ack", &ack, Some(3)).await;
    stats.record("ack", s, &r);
    let log = json!({"instance_id": instance_id, "command_id": cmd.command_id, "offset": 0, "text": "simulated converge\n"});
    let s = Instant::now();
    let r = client.call::<_, Value>("log", &log, t).await;
    stats.record("log", s, &r);
    let done = Completion {
        instance_id: instance_id.to_string(),
        command_id: cmd.command_id.clone(),
        outcome: CommandOutcome::Successful,
        exit_code: 0,
        report: None,
        app_revisions: None,
    };
    let s = Instant::now();
    let r = client
        .call_retrying::<_, Value>("complete", &done, Some(3))
        .await;
    stats.record("complete", s, &r);
}

/// Creates deployments at `rate` per second for `length`, each for one random agent's instance,
/// through the servers in turn.
async fn drive(
    ids: Vec<AgentIdentity>,
    signers: Vec<Arc<Signer>>,
    rate: f64,
    length: Duration,
    stats: Arc<Stats>,
) -> anyhow::Result<()> {
    if rate <= 0.0 {
        tokio::time::sleep(length).await;
        return Ok(());
    }
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let end = Instant::now() + length;
    let mut n = 0usize;
    let mut inflight = tokio::task::JoinSet::new();
    while Instant::now() < end {
        tick.tick().await;
        n += 1;
        let target = &ids[(n * 7919) % ids.len()];
        // Through the servers in turn, independently of the target: the agents are spread over
        // the servers by their index, and half the deployments cross to another server.
        let signer = signers[(n / 2) % signers.len()].clone();
        let (http, stats) = (http.clone(), stats.clone());
        let body = json!({"StackId": target.stack_id, "InstanceIds": [target.instance_id], "Command": {"Name": "execute_recipes", "Args": {"recipes": ["bench::noop"]}}});
        let instance = target.instance_id.clone();
        inflight.spawn(async move {
            let sent = Instant::now();
            stats
                .sent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(instance.clone(), (sent, signer.endpoint.clone()));
            let r = signer.call(&http, "CreateDeployment", body).await;
            stats.record("CreateDeployment", sent, &r);
            match r {
                Ok(_) => {
                    stats.created.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    stats
                        .sent
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&instance);
                }
            }
        });
    }
    while inflight.join_next().await.is_some() {}
    Ok(())
}
