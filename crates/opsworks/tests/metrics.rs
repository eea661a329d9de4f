//! End-to-end tests of monitoring: the real `opsworks server` binary on port 0 takes metrics
//! batches signed with an instance's own credential, as its agent sends them, and serves them
//! back as JSON, SVG charts and the Prometheus exposition, behind SigV4 or a bearer token.
//!
//! Instance credentials are issued when a machine boots, which needs root; here the test issues
//! one the same way (`KeyRing::issue`) with the server stopped, then starts it again.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use opsworks_api::sigv4::{self, RequestParts};
use serde_json::{Value, json};

const AKID: &str = "AKIDMETRICS";
const SECRET: &str = "metrics-secret";
const TOKEN: &str = "scrape-token-123";

struct Server {
    child: Child,
    endpoint: String,
    /// One client per server, so requests reuse keep-alive connections.
    http: reqwest::Client,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_opsworks"))
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(extra)
            .env("OPSWORKS_ROOT_ACCESS_KEY_ID", AKID)
            .env("OPSWORKS_ROOT_SECRET_ACCESS_KEY", SECRET)
            .env_remove("OPSWORKS_METRICS_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn opsworks");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let endpoint = loop {
            let line = lines.next().expect("server exited").unwrap();
            if let Some(e) = line.strip_prefix("listening on ") {
                break e.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            endpoint,
            http: reqwest::Client::new(),
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    fn host(&self) -> String {
        self.endpoint.trim_start_matches("http://").to_string()
    }

    /// A signed request (`target` set: an API call).
    async fn signed(
        &self,
        method: &str,
        path: &str,
        query: &str,
        target: Option<&str>,
        body: &str,
        (akid, secret): (&str, &str),
    ) -> (u16, String) {
        let host = self.host();
        let target = target.map(|t| format!("OpsWorks_20130218.{t}"));
        let mut base = vec![("host", host.as_str())];
        if let Some(t) = &target {
            base.push(("content-type", "application/x-amz-json-1.1"));
            base.push(("x-amz-target", t.as_str()));
        } else if method == "POST" {
            base.push(("content-type", "application/json"));
        }
        let parts = RequestParts {
            method,
            path,
            query,
            headers: &base,
            body: body.as_bytes(),
        };
        let (date, auth) = sigv4::sign(
            &parts,
            akid,
            secret,
            "us-east-1",
            jiff::Timestamp::now().as_second(),
        );
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let client = &self.http;
        let mut req = match method {
            "POST" => client.post(url).body(body.to_string()),
            _ => client.get(url),
        };
        for (k, v) in base.iter().filter(|(k, _)| *k != "host") {
            req = req.header(*k, *v);
        }
        let resp = req
            .header("x-amz-date", date)
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn call(&self, op: &str, body: Value) -> Value {
        let (status, text) = self
            .signed("POST", "/", "", Some(op), &body.to_string(), (AKID, SECRET))
            .await;
        assert_eq!(status, 200, "{op}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn get(&self, path: &str, auth: Option<&str>) -> (u16, String, String) {
        let mut req = self.http.get(format!("{}{path}", self.endpoint));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, ctype, resp.text().await.unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issues an instance credential into the data dir's key ring (the server must be stopped).
async fn issue_instance_key(dir: &Path, instance_id: &str) -> (String, String) {
    let (core, _) = opsworks_server::Core::open(&opsworks_server::ServerConfig::new(dir.into()))
        .await
        .unwrap();
    let mut w = core.write().await.unwrap();
    let issued = core
        .keys()
        .issue(&mut w, &format!("instance:{instance_id}"))
        .await
        .unwrap();
    w.commit().await.unwrap();
    issued
}

fn values(cpu_idle: f64, used: f64, load: f64) -> Vec<f64> {
    let mut v = vec![0.0; 16];
    v[0] = cpu_idle;
    v[4] = 100.0 - cpu_idle;
    v[10] = 1000.0;
    v[11] = used;
    v[12] = load;
    v[15] = 42.0;
    v
}

/// Checks the text exposition strictly (the format Prometheus parses): every sample line is
/// `name{label="value",...} number`, every family is announced by HELP and TYPE before its
/// samples, and no series appears twice. Returns the samples.
fn parse_exposition(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
            assert!(
                typed.insert(name.into(), kind.into()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        assert!(name_ok(name), "bad name {name}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "sample before its TYPE: {line}");
        let mut map = HashMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, r) = rest.split_once("=\"").expect("label=\"");
            assert!(name_ok(k), "bad label name {k}");
            let mut v = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                let (i, c) = chars.next().expect("unterminated label value");
                match c {
                    '\\' => match chars.next().unwrap().1 {
                        'n' => v.push('\n'),
                        e @ ('\\' | '"') => v.push(e),
                        other => panic!("bad escape \\{other}"),
                    },
                    '"' => break i,
                    c => v.push(c),
                }
            };
            map.insert(k.to_string(), v);
            rest = r[end + 1..].strip_prefix(',').unwrap_or(&r[end + 1..]);
        }
        assert!(seen.insert(series.to_string()), "series twice: {series}");
        out.push((name.to_string(), map, value));
    }
    out
}

#[tokio::test]
async fn agents_metrics_come_back_as_json_svg_and_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let flags = ["--metrics-interval", "1", "--metrics-token", TOKEN];
    let server = Server::start(dir, &flags);
    let stack = server
        .call(
            "CreateStack",
            json!({"Name": "mon", "Region": "us-east-1",
              "ServiceRoleArn": "arn:aws:iam::123456789012:role/r",
              "DefaultInstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/p"}),
        )
        .await["StackId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut layers = Vec::new();
    for name in ["web", "jobs"] {
        let l = server
            .call(
                "CreateLayer",
                json!({"StackId": stack, "Type": "custom", "Name": name, "Shortname": name}),
            )
            .await;
        layers.push(l["LayerId"].as_str().unwrap().to_string());
    }
    let mut instances = Vec::new();
    for layer_ids in [
        vec![layers[0].clone(), layers[1].clone()],
        vec![layers[0].clone()],
    ] {
        let i = server
            .call(
                "CreateInstance",
                json!({"StackId": stack, "LayerIds": layer_ids, "InstanceType": "t3.micro"}),
            )
            .await;
        instances.push(i["InstanceId"].as_str().unwrap().to_string());
    }
    let described = server
        .call("DescribeInstances", json!({"StackId": stack}))
        .await;
    let hostname = |id: &str| {
        described["Instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["InstanceId"] == id)
            .unwrap()["Hostname"]
            .as_str()
            .unwrap()
            .to_string()
    };
    server.stop();
    let mut keys = Vec::new();
    for id in &instances {
        keys.push(issue_instance_key(dir, id).await);
    }
    let server = Server::start(dir, &flags);

    // The agents' batches: 30 samples a second apart ending now, each with its own load.
    let now = jiff::Timestamp::now().as_second();
    for (n, (id, (akid, secret))) in instances.iter().zip(&keys).enumerate() {
        let samples: Vec<Value> = (0..30)
            .map(|k| json!({"at": now - 29 + k, "values": values(80.0 - 20.0 * n as f64, 250.0 * (n + 1) as f64, n as f64 + 0.5)}))
            .collect();
        let batch = json!({"instance_id": id, "samples": samples}).to_string();
        let (status, text) = server
            .signed(
                "POST",
                "/agent/v1/metrics",
                "",
                None,
                &batch,
                (akid, secret),
            )
            .await;
        assert_eq!(status, 200, "{text}");
        // A retry of the same batch stores nothing twice.
        let (status, _) = server
            .signed(
                "POST",
                "/agent/v1/metrics",
                "",
                None,
                &batch,
                (akid, secret),
            )
            .await;
        assert_eq!(status, 200);
    }
    // An instance cannot speak for another, nor send nonsense.
    let other = json!({"instance_id": instances[1], "samples": []}).to_string();
    let (status, _) = server
        .signed(
            "POST",
            "/agent/v1/metrics",
            "",
            None,
            &other,
            (&keys[0].0, &keys[0].1),
        )
        .await;
    assert_eq!(status, 403);
    let future = json!({"instance_id": instances[0], "samples": [{"at": now + 3600, "values": values(1.0, 1.0, 1.0)}]}).to_string();
    let (status, text) = server
        .signed(
            "POST",
            "/agent/v1/metrics",
            "",
            None,
            &future,
            (&keys[0].0, &keys[0].1),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("ahead of the server's clock"), "{text}");

    // JSON for one instance, signed as awscurl signs a GET.
    let query = format!("InstanceId={}&Period=1h", instances[0]);
    let (status, text) = server
        .signed("GET", "/api/metrics", &query, None, "", (AKID, SECRET))
        .await;
    assert_eq!(status, 200, "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["Resolution"], "raw");
    assert_eq!(doc["Timestamps"].as_array().unwrap().len(), 30);
    let metric = |doc: &Value, name: &str| -> Value {
        doc["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(doc["Metrics"].as_array().unwrap().len(), 16);
    let cpu_user = metric(&doc, "cpu_user");
    assert_eq!(cpu_user["Label"], "CPU user");
    assert_eq!(cpu_user["Unit"], "Percent");
    assert!(
        cpu_user["Average"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v == 20.0)
    );
    assert!(cpu_user.get("Sum").is_none());

    // The layer "web" averages both instances, and sums memory; the bearer token works too.
    let (status, _, text) = server
        .get(
            &format!("/api/metrics?LayerId={}&Period=8h", layers[0]),
            Some(&format!("Bearer {TOKEN}")),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["InstanceIds"].as_array().unwrap().len(), 2);
    assert_eq!(metric(&doc, "cpu_idle")["Average"][0], 70.0);
    assert_eq!(metric(&doc, "memory_used")["Sum"][0], 750.0);
    // Two weeks read the 5-minute averages (none yet: the rollup runs every minute).
    let (status, _, text) = server
        .get(
            &format!("/api/metrics?StackId={stack}&Period=2w"),
            Some(&format!("Bearer {TOKEN}")),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["Resolution"],
        "5m"
    );

    // Refusals are clear JSON: no credentials 401, a wrong token 403, bad parameters 400/404.
    let (status, _, text) = server
        .get(&format!("/api/metrics?InstanceId={}", instances[0]), None)
        .await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["__type"],
        "MissingAuthenticationTokenException"
    );
    let (status, _, text) = server
        .get("/api/metrics?InstanceId=x", Some("Bearer wrong"))
        .await;
    assert_eq!(status, 403, "{text}");
    assert!(!text.contains(TOKEN));
    let bearer = format!("Bearer {TOKEN}");
    for (query, want) in [
        (format!("InstanceId={}&Period=3d", instances[0]), 400),
        (
            format!("InstanceId={}&LayerId={}", instances[0], layers[0]),
            400,
        ),
        (
            "InstanceId=5d1b2c4e-0000-0000-0000-000000000000".to_string(),
            404,
        ),
    ] {
        let (status, _, text) = server
            .get(&format!("/api/metrics?{query}"), Some(&bearer))
            .await;
        assert_eq!(status, want, "{query}: {text}");
        assert!(serde_json::from_str::<Value>(&text).unwrap()["message"].is_string());
    }
    // An instance's own credential reads nothing.
    let (status, _) = server
        .signed(
            "GET",
            "/api/metrics",
            &query,
            None,
            "",
            (&keys[0].0, &keys[0].1),
        )
        .await;
    assert_eq!(status, 403);

    // The SVG chart parses as XML, has axes, a line and the title.
    let (status, ctype, svg) = server
        .get(
            &format!(
                "/api/metrics/chart.svg?InstanceId={}&Metric=cpu_user&Period=1h",
                instances[0]
            ),
            Some(&bearer),
        )
        .await;
    assert_eq!(status, 200, "{svg}");
    assert_eq!(ctype, "image/svg+xml");
    let xml = roxmltree::Document::parse(&svg).expect("the chart is XML");
    let root = xml.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let title = root
        .descendants()
        .find(|n| n.has_tag_name("title"))
        .and_then(|n| n.text())
        .unwrap();
    assert!(title.starts_with("CPU user — instance "), "{title}");
    assert!(title.contains(&hostname(&instances[0])));
    let paths: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("path"))
        .collect();
    assert_eq!(paths.len(), 2, "axes and one line");
    assert!(paths[1].attribute("d").unwrap().matches('L').count() >= 25);
    assert!(root.descendants().any(|n| n.text() == Some("Percent")));
    let (status, _, svg) = server
        .get(
            &format!("/api/metrics/chart.svg?StackId={stack}&Metric=memory_used&Period=1w"),
            Some(&bearer),
        )
        .await;
    assert_eq!(status, 200);
    roxmltree::Document::parse(&svg).unwrap();
    let (status, _, text) = server
        .get(
            &format!("/api/metrics/chart.svg?StackId={stack}&Metric=cpu"),
            Some(&bearer),
        )
        .await;
    assert_eq!(status, 400, "{text}");

    // Prometheus: closed without credentials, open to the token; labels per layer.
    let (status, _, _) = server.get("/metrics", None).await;
    assert_eq!(status, 401);
    let (status, ctype, text) = server.get("/metrics", Some(&bearer)).await;
    assert_eq!(status, 200, "{text}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"));
    let samples = parse_exposition(&text);
    let idle: Vec<_> = samples
        .iter()
        .filter(|(n, _, _)| n == "opsworks_instance_cpu_idle")
        .collect();
    // Instance 0 is in both layers, instance 1 in one: three series.
    assert_eq!(idle.len(), 3, "{text}");
    for (_, labels, value) in &idle {
        let id = &labels["instance_id"];
        let n = instances.iter().position(|i| i == id).unwrap();
        assert_eq!(labels["stack_id"], stack);
        assert_eq!(labels["hostname"], hostname(id));
        assert!(layers.contains(&labels["layer_id"]));
        assert_eq!(*value, 80.0 - 20.0 * n as f64);
    }
    let find = |name: &str| {
        samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .collect::<Vec<_>>()
    };
    assert_eq!(find("opsworks_metrics_samples_total")[0].2, 120.0);
    let requests = find("opsworks_api_requests_total");
    assert!(
        requests
            .iter()
            .all(|(_, l, _)| l.contains_key("operation") && l.contains_key("status"))
    );
    assert!(!find("opsworks_api_request_duration_seconds_count").is_empty());
    assert_eq!(find("opsworks_agents_connected")[0].2, 2.0);
    assert!(!text.contains(SECRET) && !text.contains(TOKEN));
    server.stop();

    // --metrics-public opens /metrics (only /metrics) to anyone.
    let server = Server::start(dir, &["--metrics-public"]);
    let (status, _, text) = server.get("/metrics", None).await;
    assert_eq!(status, 200);
    parse_exposition(&text);
    let (status, _, _) = server
        .get(&format!("/api/metrics?InstanceId={}", instances[0]), None)
        .await;
    assert_eq!(status, 401);
    server.stop();

    // The load-based scheduler's view: averages over the layer's online instances only.
    let mut config = opsworks_server::ServerConfig::new(dir.into());
    config.metrics.interval_seconds = 1;
    let (core, _) = opsworks_server::Core::open(&config).await.unwrap();
    let since = jiff::Timestamp::from_second(now - 3600).unwrap();
    let none = opsworks_server::core::metrics::layer_averages(&core, &layers[0], since)
        .await
        .unwrap();
    assert!(none.is_empty(), "no instance is online yet");
    let mut w = core.write().await.unwrap();
    let mut inst: opsworks_model::resource::Instance = w.get(&instances[1]).await.unwrap();
    // As if its lifecycle had brought it online.
    inst.status = opsworks_model::InstanceStatus::Online;
    w.put(&inst).await.unwrap();
    w.commit().await.unwrap();
    let _ = &stack;
    let avg = opsworks_server::core::metrics::layer_averages(&core, &layers[0], since)
        .await
        .unwrap();
    assert_eq!(avg.len(), 30);
    assert_eq!(avg[0].at.as_second(), now - 29);
    assert_eq!((avg[0].cpu, avg[0].memory, avg[0].load), (40.0, 50.0, 1.5));
}

/// Server CPU time (user + system) of a process, in seconds, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // Linux's USER_HZ is 100 on every architecture we build for.
    ticks / 100.0
}

/// The ingest benchmark of `BENCHMARKS.md` (bounded: a fixed number of requests). Run with
/// `cargo test --release -p opsworks --test metrics -- --ignored --nocapture bench`.
/// `BENCH_INSTANCES` (default 50) agents; each round every agent sends one batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn bench_metrics_ingest() {
    let n: usize = std::env::var("BENCH_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = Server::start(dir, &[]);
    let stack = server
        .call(
            "CreateStack",
            json!({"Name": "bench", "Region": "us-east-1",
              "ServiceRoleArn": "arn:aws:iam::123456789012:role/r",
              "DefaultInstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/p"}),
        )
        .await["StackId"]
        .as_str()
        .unwrap()
        .to_string();
    let layer = server
        .call(
            "CreateLayer",
            json!({"StackId": stack, "Type": "custom", "Name": "w", "Shortname": "w"}),
        )
        .await["LayerId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut instances = Vec::new();
    for _ in 0..n {
        let i = server
            .call(
                "CreateInstance",
                json!({"StackId": stack, "LayerIds": [layer], "InstanceType": "t3.micro"}),
            )
            .await;
        instances.push(i["InstanceId"].as_str().unwrap().to_string());
    }
    server.stop();
    let mut keys = Vec::new();
    for id in &instances {
        keys.push(issue_instance_key(dir, id).await);
    }
    let server = std::sync::Arc::new(Server::start(dir, &[]));
    let pid = server.child.id();
    let now = jiff::Timestamp::now().as_second();
    // (batch size, rounds): steady state (one sample per request, as agents send every 10 s),
    // and catch-up after an outage (360 samples, an hour at 10 s, per request).
    for (batch, rounds) in [(1usize, 40usize), (360, 4)] {
        let cpu0 = cpu_seconds(pid);
        let t0 = std::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (k, (id, key)) in instances.iter().zip(&keys).enumerate() {
            let (server, id, key) = (server.clone(), id.clone(), key.clone());
            tasks.spawn(async move {
                for r in 0..rounds {
                    let start = now - 80_000 + (r * batch) as i64 * 10 + (batch > 1) as i64 * 40_000;
                    let samples: Vec<Value> = (0..batch)
                        .map(|j| json!({"at": start + j as i64 * 10, "values": values(50.0 + (k % 7) as f64, 500.0, 0.5)}))
                        .collect();
                    let body = json!({"instance_id": id, "samples": samples}).to_string();
                    let (status, text) = server
                        .signed("POST", "/agent/v1/metrics", "", None, &body, (&key.0, &key.1))
                        .await;
                    assert_eq!(status, 200, "{text}");
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid) - cpu0;
        let samples = n * rounds * batch;
        println!(
            "BENCH ingest batch={batch} agents={n} requests={} samples={samples} wall={secs:.2}s samples/s={:.0} requests/s={:.0} server_cpu={:.0}%",
            n * rounds,
            samples as f64 / secs,
            (n * rounds) as f64 / secs,
            cpu / secs * 100.0
        );
    }
    drop(server);

    // Bytes per instance per day: a day of 10-second samples for 20 instances, then rolled up.
    let store = opsworks_store::open(&opsworks_store::Engine::Sqlite {
        path: dir.join("bytes.db"),
    })
    .await
    .unwrap();
    let m = store.metrics();
    let day0 = (now / 86_400 - 2) * 86_400;
    let per = 20;
    for i in 0..per {
        let samples: Vec<(i64, [f64; 16])> = (0..8640)
            .map(|k| {
                let mut v = [0.0; 16];
                for (j, x) in v.iter_mut().enumerate() {
                    *x = ((k * 7 + j * 13 + i) % 1000) as f64 / 10.0;
                }
                v[10] = 16_310_716.0;
                (day0 + k as i64 * 10, v)
            })
            .collect();
        m.insert_samples(&format!("bench-instance-{i:04}"), &samples)
            .await
            .unwrap();
    }
    let (raw, _) = m.table_bytes().await.unwrap().expect("dbstat");
    m.maintain(day0 + 86_400, Default::default()).await.unwrap();
    let (_, rolled) = m.table_bytes().await.unwrap().unwrap();
    println!(
        "BENCH bytes per instance per day: raw {} ({} per sample), 5-minute averages {}",
        raw / per as u64,
        raw / (per as u64 * 8640),
        rolled / per as u64
    );
}
