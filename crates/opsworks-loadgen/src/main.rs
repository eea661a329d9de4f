//! `opsworks-loadgen`: drives the API with SigV4-signed requests from concurrent clients on
//! loopback and reports throughput and latency percentiles; simulates fleets of agents
//! ([`agents`]). Bounded in count and time.

mod agents;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use opsworks_api::sigv4::{self, RequestParts};

/// Load generator for the OpsWorks API.
#[derive(Debug, Parser)]
struct Cli {
    /// The server's endpoint, e.g. http://127.0.0.1:9730.
    #[arg(long)]
    endpoint: String,
    /// Access key ID to sign with.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key_id: String,
    /// Secret key to sign with.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Creates stacks with one custom layer and N instances each; prints the stacks' IDs.
    Populate {
        /// How many instances per stack.
        #[arg(long, default_value_t = 1000)]
        instances: usize,
        /// How many stacks.
        #[arg(long, default_value_t = 1)]
        stacks: usize,
    },
    /// With the servers stopped: every instance of the database gets a key and comes online;
    /// the identities go to `--out` (one JSON object per line) for `agents`.
    Keys {
        /// A data dir of the servers' (its master.key seals the keys).
        #[arg(long)]
        data_dir: std::path::PathBuf,
        /// The servers' database when it is not the data dir's SQLite file.
        #[arg(long)]
        database_url: Option<String>,
        /// Where the identities go.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Simulated agents on the servers: hello, long polls, heartbeats and metrics at the real
    /// intervals, commands acknowledged and completed; deployments created at `--rate` per
    /// second, their delivery timed. Prints the figures as JSON.
    Agents {
        /// The servers' URLs, comma-separated (agents are spread over them).
        #[arg(long, value_delimiter = ',')]
        servers: Vec<String>,
        /// The identities `keys` wrote.
        #[arg(long)]
        identities: std::path::PathBuf,
        /// How many agents.
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        /// Identities to skip (simulated by another process).
        #[arg(long, default_value_t = 0)]
        skip: usize,
        /// Where to write every latency measured, as JSON.
        #[arg(long)]
        raw: Option<std::path::PathBuf>,
        /// Seconds over which the agents start.
        #[arg(long, default_value_t = 30)]
        ramp: u64,
        /// Seconds measured (after the ramp and 10 s of settling).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Deployments created per second.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
    },
    /// Creates an IAM user (through the server's IAM) whose inline policy has N statements, the
    /// last of which allows `opsworks:Describe*`; prints its access key ID and secret.
    IamUser {
        /// The user's name.
        #[arg(long, default_value = "loadgen")]
        name: String,
        /// How many statements its policy has (1..=10: IAM's 2,048-character quota).
        #[arg(long, default_value_t = 10)]
        statements: usize,
    },
    /// Sends one operation repeatedly from concurrent clients and reports the figures as JSON.
    Run {
        /// The operation (`DescribeStacks`).
        #[arg(long)]
        operation: String,
        /// The request body.
        #[arg(long, default_value = "{}")]
        body: String,
        /// Concurrent clients (each with its own connection).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// How long to run, in seconds (at most 120).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Stop after this many requests in all (at most 10 million).
        #[arg(long, default_value_t = 2_000_000)]
        max_requests: u64,
    },
}

struct Signer {
    endpoint: String,
    host: String,
    akid: String,
    secret: String,
}

impl Signer {
    fn request(
        &self,
        client: &reqwest::Client,
        operation: &str,
        body: &str,
    ) -> reqwest::RequestBuilder {
        let target = format!("OpsWorks_20130218.{operation}");
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("host", self.host.as_str()),
            ("x-amz-target", target.as_str()),
        ];
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let (date, auth) = sigv4::sign(
            &parts,
            &self.akid,
            &self.secret,
            "us-east-1",
            jiff::Timestamp::now().as_second(),
        );
        client
            .post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", target)
            .header("x-amz-date", date)
            .header("authorization", auth)
            .body(body.to_string())
    }

    async fn call(
        &self,
        client: &reqwest::Client,
        operation: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let resp = self
            .request(client, operation, &body.to_string())
            .send()
            .await?;
        let status = resp.status();
        let v: Value = serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{operation} failed with {status}: {v}");
        }
        Ok(v)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let host = cli
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let signer = Arc::new(Signer {
        endpoint: cli.endpoint.trim_end_matches('/').to_string(),
        host,
        akid: cli.access_key_id,
        secret: cli.secret_access_key,
    });
    match cli.command {
        Cmd::Populate { instances, stacks } => {
            let mut made = tokio::task::JoinSet::new();
            let turns = Arc::new(tokio::sync::Semaphore::new(8));
            for _ in 0..stacks.max(1) {
                let (signer, turns) = (signer.clone(), turns.clone());
                made.spawn(async move {
                    let _turn = turns.acquire().await?;
                    populate(&signer, instances).await
                });
            }
            while let Some(done) = made.join_next().await {
                println!("{}", done??);
            }
            Ok(())
        }
        Cmd::Keys {
            data_dir,
            database_url,
            out,
        } => agents::keys(&data_dir, database_url.as_deref(), &out).await,
        Cmd::Agents {
            servers,
            identities,
            agents,
            skip,
            raw,
            ramp,
            seconds,
            rate,
        } => {
            let servers = if servers.is_empty() {
                vec![signer.endpoint.clone()]
            } else {
                servers
            };
            let signers = servers
                .iter()
                .map(|s| {
                    Arc::new(Signer {
                        endpoint: s.trim_end_matches('/').to_string(),
                        host: s
                            .trim_start_matches("http://")
                            .trim_end_matches('/')
                            .to_string(),
                        akid: signer.akid.clone(),
                        secret: signer.secret.clone(),
                    })
                })
                .collect();
            let sim = agents::Simulation {
                servers,
                agents,
                skip,
                raw,
                ramp,
                seconds,
                rate,
            };
            agents::simulate(sim, &identities, signers).await
        }
        Cmd::IamUser { name, statements } => iam_user(&signer, &name, statements).await,
        Cmd::Run {
            operation,
            body,
            concurrency,
            seconds,
            max_requests,
        } => {
            if seconds == 0
                || seconds > 120
                || max_requests > 10_000_000
                || concurrency == 0
                || concurrency > 1024
            {
                bail!(
                    "keep the load bounded: 1..=120 seconds, at most 10 million requests, 1..=1024 clients"
                );
            }
            run(
                signer,
                &operation,
                body,
                concurrency,
                Duration::from_secs(seconds),
                max_requests,
            )
            .await
        }
    }
}

impl Signer {
    /// One IAM Query call (`Action=...&Version=2010-05-08&...`, scope `iam`); the XML answer.
    async fn iam(
        &self,
        client: &reqwest::Client,
        params: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Version", "2010-05-08");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish();
        let ctype = "application/x-www-form-urlencoded; charset=utf-8";
        let headers = [("content-type", ctype), ("host", self.host.as_str())];
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let (date, auth) = sigv4::sign_for(
            &parts,
            &self.akid,
            &self.secret,
            "us-east-1",
            "iam",
            jiff::Timestamp::now().as_second(),
        );
        let resp = client
            .post(format!("{}/", self.endpoint))
            .header("content-type", ctype)
            .header("x-amz-date", date)
            .header("authorization", auth)
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("IAM {params:?} failed with {status}: {text}");
        }
        Ok(text)
    }
}

/// The text of the first `<name>` element of an XML answer.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..end])
}

/// The policy of the benchmark's IAM user: `n` statements of the kinds real policies have
/// (other services, NotAction, resource patterns, conditions), none of which decides a
/// DescribeStacks but the last.
fn bench_policy(n: usize) -> serde_json::Value {
    let fillers = [
        json!({"Effect": "Allow", "Action": ["ec2:Describe*", "elasticloadbalancing:Describe*"], "Resource": "*"}),
        json!({"Effect": "Deny", "Action": "opsworks:DeleteStack", "Resource": "arn:aws:opsworks:*:*:stack/00000000-0000-0000-0000-000000000000/"}),
        json!({"Effect": "Allow", "Action": "iam:GetUser", "Resource": "arn:aws:iam::*:user/${aws:username}"}),
        json!({"Effect": "Allow", "Action": "opsworks:CreateDeployment", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}),
        json!({"Effect": "Deny", "NotAction": "opsworks:*", "NotResource": "*"}),
        json!({"Effect": "Allow", "Action": "cloudwatch:GetMetricStatistics", "Resource": "*"}),
        json!({"Effect": "Deny", "Action": "opsworks:*", "Resource": "*", "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}}}),
        json!({"Effect": "Allow", "Action": "opsworks:UpdateApp", "Resource": "arn:aws:opsworks:us-east-1:*:stack/*/"}),
        json!({"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}),
    ];
    let mut statements: Vec<serde_json::Value> = fillers
        .iter()
        .cycle()
        .take(n.saturating_sub(1))
        .cloned()
        .collect();
    statements.push(json!({"Effect": "Allow", "Action": "opsworks:Describe*", "Resource": "*"}));
    json!({"Version": "2012-10-17", "Statement": statements})
}

async fn iam_user(signer: &Signer, name: &str, statements: usize) -> anyhow::Result<()> {
    if !(1..=10).contains(&statements) {
        bail!(
            "--statements must be 1..=10 (IAM's 2,048-character quota of a user's inline policies)"
        );
    }
    let client = reqwest::Client::new();
    signer
        .iam(&client, &[("Action", "CreateUser"), ("UserName", name)])
        .await?;
    let doc = bench_policy(statements).to_string();
    signer
        .iam(
            &client,
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", name),
                ("PolicyName", "bench"),
                ("PolicyDocument", &doc),
            ],
        )
        .await?;
    let key = signer
        .iam(
            &client,
            &[("Action", "CreateAccessKey"), ("UserName", name)],
        )
        .await?;
    let id = element(&key, "AccessKeyId").context("no AccessKeyId")?;
    let secret = element(&key, "SecretAccessKey").context("no SecretAccessKey")?;
    println!("{id} {secret}");
    Ok(())
}

async fn populate(signer: &Signer, instances: usize) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    let stack = signer
        .call(
            &client,
            "CreateStack",
            json!({
                "Name": "loadgen",
                "Region": "us-east-1",
                "ServiceRoleArn": "arn:aws:iam::123456789012:role/aws-opsworks-service-role",
                "DefaultInstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
            }),
        )
        .await?;
    let stack_id = stack["StackId"].as_str().context("no StackId")?.to_string();
    let layer = signer
        .call(&client, "CreateLayer", json!({"StackId": stack_id, "Type": "custom", "Name": "Workers", "Shortname": "workers"}))
        .await?;
    let layer_id = layer["LayerId"].as_str().context("no LayerId")?.to_string();
    for _ in 0..instances {
        signer
            .call(
                &client,
                "CreateInstance",
                json!({"StackId": stack_id, "LayerIds": [layer_id], "InstanceType": "t3.micro"}),
            )
            .await?;
    }
    Ok(stack_id)
}

async fn run(
    signer: Arc<Signer>,
    operation: &str,
    body: String,
    concurrency: usize,
    duration: Duration,
    max_requests: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + duration;
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (signer, body, op, sent) = (
            signer.clone(),
            body.clone(),
            operation.to_string(),
            sent.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // One client (one keep-alive connection) per worker, as separate SDK clients would.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline
                && sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < max_requests
            {
                let t = Instant::now();
                let resp = signer.request(&client, &op, &body).send().await;
                let ok = match resp {
                    Ok(r) => {
                        let status = r.status();
                        let _ = r.bytes().await;
                        status.is_success()
                    }
                    Err(_) => false,
                };
                latencies.push(t.elapsed().as_micros() as u64);
                if !ok {
                    errors += 1;
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        all[i] as f64 / 1000.0
    };
    let report = json!({
        "operation": operation,
        "concurrency": concurrency,
        "requests": all.len(),
        "errors": errors,
        "seconds": (elapsed * 100.0).round() / 100.0,
        "requests_per_second": (all.len() as f64 / elapsed).round(),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": all.last().map(|m| *m as f64 / 1000.0).unwrap_or(0.0),
    });
    println!("{report}");
    Ok(())
}
