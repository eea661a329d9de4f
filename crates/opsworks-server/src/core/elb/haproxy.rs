//! HAProxy as a load balancer's machine runs it: the configuration rendered from the load
//! balancer (one frontend and backend per listener, the health check on every server), the run
//! script (HAProxy in master-worker mode as the machine's main process), and the control script
//! the server runs inside the machine to apply a new configuration and to ask the running
//! HAProxy through its admin socket (bound to the machine's own loopback: nothing on the bridge
//! reaches it).
//!
//! A new configuration is checked (`haproxy -c`) before it replaces the one in service, the
//! servers' health states are saved (`show servers state`) so the new workers start from them,
//! and the master is told to reload (SIGUSR2): new workers take new connections on the same
//! listening sockets while the old ones finish theirs, so a reload drops nothing.

use std::fmt::Write as _;

use opsworks_model::resource::{ElbHealthCheck, LoadBalancer};
use opsworks_sandbox::{FileSpec, MainProcess};

/// The files of the load balancer inside its machine.
pub const CONFIG_DIR: &str = "/etc/opsworks-elb";
const CONFIG: &str = "/etc/opsworks-elb/haproxy.cfg";
const RUN_SCRIPT: &str = "/etc/opsworks-elb/run";
const CTL_SCRIPT: &str = "/etc/opsworks-elb/ctl";
const STATE_DIR: &str = "/var/lib/opsworks-elb";
const PID_FILE: &str = "/run/opsworks-elb.pid";
/// The admin socket's port, on the machine's loopback only.
pub const ADMIN_PORT: u16 = 9901;

/// One server of the backends: a registered instance with an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Its `Ec2InstanceId`, the server's name.
    pub name: String,
    /// Its address.
    pub ip: String,
}

/// The health check's protocol, port and path (`HTTP:80/index.html`, `TCP:8080`); `None` when
/// the target is not one of those forms.
pub fn parse_target(target: &str) -> Option<(String, u16, Option<String>)> {
    let (proto, rest) = target.split_once(':')?;
    let proto = proto.to_ascii_uppercase();
    let (port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    match (proto.as_str(), &path) {
        ("TCP" | "SSL", None) => Some((proto, port, None)),
        ("HTTP" | "HTTPS", Some(p)) if !p.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Some((proto, port, path))
        }
        _ => None,
    }
}

/// The backend name of a listener.
pub fn backend_name(load_balancer_port: u16) -> String {
    format!("port{load_balancer_port}")
}

/// The configuration of `lb` with `servers` behind every listener.
pub fn render(lb: &LoadBalancer, servers: &[Backend]) -> String {
    let hc: &ElbHealthCheck = &lb.health_check;
    let (check_proto, check_port, check_path) =
        parse_target(&hc.target).unwrap_or(("TCP".into(), 80, None));
    let mut out = String::new();
    let _ = write!(
        out,
        "# Written by OpsWorks ELB for load balancer {name}; rendered again on every change.\n\
         global\n    # Two descriptors a connection: within the machine's limit of 20 000.\n    maxconn 8000\n    stats socket ipv4@127.0.0.1:{ADMIN_PORT} level admin\n\
         \x20   server-state-file {STATE_DIR}/servers.state\n\
         \x20   # Old workers of a reload get this long to finish their connections.\n\
         \x20   hard-stop-after 5m\n\n\
         defaults\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\
         \x20   timeout check {check}s\n    load-server-state-from-file global\n\
         \x20   # A connection an instance refused is tried again, the last time on another one.\n\
         \x20   retries 3\n    option redispatch\n\n",
        name = lb.load_balancer_name,
        check = hc.timeout,
    );
    for l in &lb.listeners {
        let mode = if l.protocol == "HTTP" { "http" } else { "tcp" };
        let backend = backend_name(l.load_balancer_port);
        let _ = write!(
            out,
            "frontend listener{port}\n    bind *:{port}\n    mode {mode}\n",
            port = l.load_balancer_port
        );
        if mode == "http" {
            out.push_str("    option forwardfor\n");
        }
        let _ = write!(
            out,
            "    default_backend {backend}\n\nbackend {backend}\n    mode {mode}\n    balance roundrobin\n"
        );
        if mode == "http" {
            // One request per server connection: an instance that closes an idle connection
            // never costs a request; a request whose server closed without answering is retried.
            out.push_str("    option http-server-close\n");
            out.push_str("    retry-on conn-failure empty-response response-timeout\n");
        }
        if let ("HTTP" | "HTTPS", Some(path)) = (check_proto.as_str(), &check_path) {
            let _ = writeln!(out, "    option httpchk GET {path}");
            out.push_str("    http-check expect status 200\n");
        }
        let _ = writeln!(
            out,
            "    default-server check port {check_port} inter {i}s fall {f} rise {r}",
            i = hc.interval,
            f = hc.unhealthy_threshold,
            r = hc.healthy_threshold
        );
        for s in servers {
            let _ = writeln!(
                out,
                "    server {name} {ip}:{port}",
                name = s.name,
                ip = s.ip,
                port = l.instance_port
            );
        }
        out.push('\n');
    }
    out
}

/// The machine's main process: the run script, which becomes HAProxy's master.
pub fn main_process() -> MainProcess {
    MainProcess::new("/bin/sh", [RUN_SCRIPT])
}

/// The files of every boot: the run script, the control script and the configuration.
pub fn files(config: &str) -> Vec<FileSpec> {
    vec![
        FileSpec {
            path: RUN_SCRIPT.into(),
            contents: format!(
                "#!/bin/sh\n# Written by OpsWorks ELB: HAProxy's master process serves this load balancer.\n\
                 set -eu\nmkdir -p {STATE_DIR}\ntouch {STATE_DIR}/servers.state\n\
                 exec /usr/sbin/haproxy -W -db -p {PID_FILE} -f {CONFIG}\n"
            )
            .into_bytes(),
            mode: 0o700,
        },
        FileSpec {
            path: CTL_SCRIPT.into(),
            contents: ctl_script().into_bytes(),
            mode: 0o700,
        },
        FileSpec {
            path: CONFIG.into(),
            contents: config.as_bytes().to_vec(),
            mode: 0o600,
        },
    ]
}

/// The control script: `ctl admin COMMAND` asks the running HAProxy; `ctl apply CONFIG` checks
/// a configuration, puts it in service and reloads gracefully, printing `unchanged` or
/// `reloaded` once the new workers answer.
fn ctl_script() -> String {
    format!(
        r#"#!/bin/bash
# Written by OpsWorks ELB: how the control plane drives this load balancer's HAProxy.
set -euo pipefail
admin() {{
    exec 3<>/dev/tcp/127.0.0.1/{ADMIN_PORT}
    printf '%s\n' "$1" >&3
    cat <&3
    exec 3<&-
}}
worker() {{ admin "show info" 2>/dev/null | sed -n 's/^Pid: //p'; }}
case "$1" in
admin) admin "$2" ;;
apply)
    new={CONFIG}.new
    printf '%s' "$2" > "$new"
    chmod 600 "$new"
    if cmp -s "$new" {CONFIG}; then rm -f "$new"; echo unchanged; exit 0; fi
    haproxy -c -q -f "$new"
    old=$(worker || true)
    admin "show servers state" > {STATE_DIR}/servers.state 2>/dev/null || true
    mv "$new" {CONFIG}
    kill -USR2 "$(cat {PID_FILE})"
    for _ in $(seq 1 100); do
        now=$(worker || true)
        if [ -n "$now" ] && [ "$now" != "$old" ]; then echo reloaded; exit 0; fi
        sleep 0.1
    done
    echo "HAProxy did not answer after the reload" >&2
    exit 1
    ;;
*) echo "usage: ctl admin COMMAND | ctl apply CONFIG" >&2; exit 2 ;;
esac
"#
    )
}

/// The argv that runs the control script inside the machine.
pub fn ctl(args: &[&str]) -> Vec<String> {
    let mut argv = vec!["/bin/bash".to_string(), CTL_SCRIPT.to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

/// One server's line of `show stat`: its backend, its status (`UP`, `DOWN 1/2`, `DRAIN`,
/// `MAINT`, `no check`) and its current sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStat {
    /// The backend.
    pub backend: String,
    /// The server's name (the instance).
    pub server: String,
    /// Its status.
    pub status: String,
    /// Sessions in progress.
    pub sessions: u64,
}

/// The servers of `show stat`'s CSV (frontends and backends' totals left out).
pub fn parse_stat(csv: &str) -> Vec<ServerStat> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |n: &str| names.iter().position(|c| *c == n);
    let (Some(px), Some(sv), Some(scur), Some(status)) =
        (col("pxname"), col("svname"), col("scur"), col("status"))
    else {
        return Vec::new();
    };
    lines
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let server = *f.get(sv)?;
            if server == "FRONTEND" || server == "BACKEND" || server.is_empty() {
                return None;
            }
            Some(ServerStat {
                backend: f.get(px)?.to_string(),
                server: server.to_string(),
                status: f.get(status)?.to_string(),
                sessions: f.get(scur)?.parse().unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsworks_model::resource::ElbListener;

    fn lb(target: &str) -> LoadBalancer {
        LoadBalancer {
            load_balancer_name: "web".into(),
            dns_name: "10.217.0.9".into(),
            listeners: vec![
                ElbListener {
                    protocol: "HTTP".into(),
                    load_balancer_port: 80,
                    instance_protocol: "HTTP".into(),
                    instance_port: 8080,
                },
                ElbListener {
                    protocol: "TCP".into(),
                    load_balancer_port: 5000,
                    instance_protocol: "TCP".into(),
                    instance_port: 5001,
                },
            ],
            health_check: ElbHealthCheck {
                target: target.into(),
                interval: 5,
                timeout: 2,
                unhealthy_threshold: 2,
                healthy_threshold: 3,
            },
            instances: vec![],
            availability_zones: vec![],
            scheme: "internet-facing".into(),
            created_time: "2026-12-07T00:00:00.000Z".into(),
            machine_id: "elb-web-1".into(),
            owner: None,
            layer_id: None,
            stack_id: None,
        }
    }

    #[test]
    fn targets_parse_as_elb_takes_them() {
        assert_eq!(
            parse_target("HTTP:80/ping"),
            Some(("HTTP".into(), 80, Some("/ping".into())))
        );
        assert_eq!(parse_target("tcp:5000"), Some(("TCP".into(), 5000, None)));
        assert_eq!(parse_target("HTTP:80"), None);
        assert_eq!(parse_target("TCP:80/x"), None);
        assert_eq!(parse_target("TCP:0"), None);
        assert_eq!(parse_target("UDP:53"), None);
        assert_eq!(parse_target("HTTP:80/a b"), None);
    }

    #[test]
    fn every_listener_gets_a_backend_with_every_server_and_the_check() {
        let servers = vec![
            Backend {
                name: "local-aaaa".into(),
                ip: "10.217.0.2".into(),
            },
            Backend {
                name: "local-bbbb".into(),
                ip: "10.217.0.3".into(),
            },
        ];
        let cfg = render(&lb("HTTP:8080/health"), &servers);
        assert!(cfg.contains("bind *:80\n    mode http"), "{cfg}");
        assert!(cfg.contains("bind *:5000\n    mode tcp"), "{cfg}");
        assert!(cfg.contains("server local-aaaa 10.217.0.2:8080\n"), "{cfg}");
        assert!(cfg.contains("server local-bbbb 10.217.0.3:5001\n"), "{cfg}");
        assert!(cfg.contains("option httpchk GET /health"), "{cfg}");
        assert!(
            cfg.contains("default-server check port 8080 inter 5s fall 2 rise 3"),
            "{cfg}"
        );
        assert!(cfg.contains("127.0.0.1:9901"), "{cfg}");
        let tcp = render(&lb("TCP:5001"), &[]);
        assert!(!tcp.contains("httpchk"), "{tcp}");
        assert!(!tcp.contains("server local"), "{tcp}");
    }

    #[test]
    fn show_stat_gives_the_servers_only() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status\n\
listener80,FRONTEND,,,0,0,20000,0,0,0,0,0,0,,,,,OPEN\n\
port80,local-aaaa,0,0,3,3,,9,0,0,,0,,0,0,0,0,UP\n\
port80,local-bbbb,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN 1/2\n\
port80,BACKEND,0,0,3,3,,9,0,0,0,0,,0,0,0,0,UP\n";
        let stats = parse_stat(csv);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].server, "local-aaaa");
        assert_eq!(stats[0].sessions, 3);
        assert_eq!(stats[1].status, "DOWN 1/2");
        assert_eq!(stats[1].backend, "port80");
    }
}
