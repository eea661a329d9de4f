//! End-to-end tests of the local provider: real namespaces, overlayfs, veths and processes.
//! They need root (as on the project's CI); without it they fail with the provider's error
//! naming what is missing.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::*;
use opsworks_sandbox::{
    Error, FileSpec, LocalProvider, MachineSpec, MachineState, MainProcess, Provider, RootDevice,
};

fn web_spec(id: &str, hidden: &Path) -> MachineSpec {
    let main = MainProcess::new(
        python(),
        [
            "-m",
            "http.server",
            "8080",
            "--bind",
            "0.0.0.0",
            "--directory",
            "/srv/www",
        ],
    );
    let mut spec = MachineSpec::new(id, id, RootDevice::Ebs, main);
    spec.files.push(FileSpec {
        path: "/srv/www/index.html".into(),
        contents: format!("hello from {id}\n").into_bytes(),
        mode: 0o644,
    });
    spec.files.push(FileSpec {
        path: "/etc/opsworks/agent.credential".into(),
        contents: format!("credential-of-{id}").into_bytes(),
        mode: 0o600,
    });
    spec.hidden_paths.push(hidden.to_path_buf());
    spec
}

/// GET / over plain TCP, retrying while the server starts.
fn http_get(ip: Ipv4Addr, port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let addr = SocketAddr::from((ip, port));
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        })();
        match attempt {
            Ok(response) if response.starts_with("HTTP/1.0 200") => return response,
            other if Instant::now() > deadline => {
                panic!("GET http://{addr}/ never succeeded: {other:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Host pids of every process in the PID namespace of `init_pid`.
fn pids_in_namespace(init_pid: u32) -> Vec<u32> {
    let ns = std::fs::read_link(format!("/proc/{init_pid}/ns/pid")).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|l| l == ns))
        .collect()
}

#[test]
fn two_machines_are_isolated_and_reach_each_other() {
    let env = Env::new();
    let hidden = env.dir.path().join("server-data");
    std::fs::create_dir_all(&hidden).unwrap();
    std::fs::write(hidden.join("secret"), "host secret").unwrap();

    let started = Instant::now();
    let (a, b) = env.rt.block_on(async {
        tokio::join!(
            env.provider.provision(web_spec("web-a", &hidden)),
            env.provider.provision(web_spec("web-b", &hidden))
        )
    });
    let (a, b) = (a.unwrap(), b.unwrap());
    eprintln!(
        "two machines provisioned concurrently in {:?}",
        started.elapsed()
    );
    assert_ne!(a.private_ip, b.private_ip);
    for m in [&a, &b] {
        assert_eq!(m.private_ip.octets()[..2], [10, 217]);
    }

    // The host reaches each machine by its address; each serves its own file.
    assert!(http_get(a.private_ip, 8080).ends_with("hello from web-a\n"));
    assert!(http_get(b.private_ip, 8080).ends_with("hello from web-b\n"));
    // Machine A reaches machine B.
    let url = format!("http://{}:8080/", b.private_ip);
    assert_eq!(
        env.sh("web-a", &format!("curl -s --max-time 5 {url}")),
        "hello from web-b"
    );
    // Each sees its own host name, which resolves to its own address.
    assert_eq!(env.sh("web-a", "hostname"), "web-a");
    assert_eq!(env.sh("web-b", "hostname"), "web-b");
    assert_eq!(
        env.sh("web-a", "getent hosts web-a")
            .split_whitespace()
            .next(),
        Some(a.private_ip.to_string().as_str())
    );
    assert_eq!(
        env.sh("web-a", "ip -4 -o addr show eth0 | awk '{print $4}'"),
        format!("{}/16", a.private_ip)
    );

    // Placed files carry their mode.
    assert_eq!(
        env.sh("web-a", "stat -c %a /etc/opsworks/agent.credential"),
        "600"
    );
    assert_eq!(
        env.sh("web-a", "cat /etc/opsworks/agent.credential"),
        "credential-of-web-a"
    );

    // Writes stay inside the machine's own upper layer.
    let marker = format!("/root/written-inside-{}", std::process::id());
    env.sh("web-a", &format!("echo inside > {marker}"));
    assert!(
        !Path::new(&marker).exists(),
        "a write inside leaked to the host"
    );
    assert!(
        env.upper("web-a")
            .join(marker.trim_start_matches('/'))
            .exists()
    );
    assert_eq!(
        env.exec("web-b", &["test", "-e", &marker]).exit_code,
        1,
        "machine B sees A's file"
    );
    // The host's files are visible (copy-on-write over the host root).
    assert_eq!(
        env.sh("web-a", "cat /etc/os-release | head -c 5"),
        std::fs::read_to_string("/etc/os-release").unwrap()[..5]
    );

    // Only harmless devices exist: no host disks.
    let devices: BTreeSet<String> = env
        .sh("web-a", "ls /dev")
        .lines()
        .map(str::to_string)
        .collect();
    let allowed: BTreeSet<String> = [
        "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
        "urandom", "zero",
    ]
    .map(str::to_string)
    .into();
    assert_eq!(devices, allowed);
    assert_eq!(
        env.sh("web-a", "head -c 4 /dev/zero | od -An -tx1"),
        "00 00 00 00"
    );

    // Hidden paths and the provider's own state dir are empty inside.
    assert_eq!(env.sh("web-a", &format!("ls -A {}", hidden.display())), "");
    assert_eq!(
        env.sh(
            "web-a",
            &format!(
                "ls -A {}",
                env.state_dir().canonicalize().unwrap().display()
            )
        ),
        ""
    );
    assert!(hidden.join("secret").exists());

    // ps inside sees only the machine: init (PID 1), the main process, and ps itself.
    let out = env.exec("web-a", &["ps", "-eo", "pid=,comm="]);
    assert_eq!(out.exit_code, 0);
    let ps = String::from_utf8_lossy(&out.stdout).to_string();
    let procs: Vec<(u32, String)> = ps
        .lines()
        .map(|l| {
            let (pid, comm) = l.trim().split_once(' ').unwrap();
            (pid.parse().unwrap(), comm.trim().to_string())
        })
        .collect();
    assert_eq!(procs.len(), 3, "{ps}");
    assert!(procs.contains(&(1, "opsworks-sandbo".to_string())), "{ps}");
    assert!(procs.iter().any(|(_, c)| c.starts_with("python3")), "{ps}");
    assert!(procs.iter().any(|(_, c)| c == "ps"), "{ps}");

    // Stop ends every process of the machine; the other machine keeps serving.
    let init_a = running_pid(env.rt.block_on(env.provider.status("web-a")).unwrap());
    let pids = pids_in_namespace(init_a);
    assert!(pids.len() >= 2 && pids.contains(&init_a), "{pids:?}");
    env.rt
        .block_on(env.provider.stop("web-a", Duration::from_secs(5)))
        .unwrap();
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} of web-a survived stop");
    }
    assert_eq!(
        env.rt.block_on(env.provider.status("web-a")).unwrap(),
        MachineState::Stopped
    );
    assert!(http_get(b.private_ip, 8080).ends_with("hello from web-b\n"));

    // Destroy leaves nothing behind.
    for id in ["web-a", "web-b"] {
        env.rt.block_on(env.provider.destroy(id)).unwrap();
        assert_no_trace(&env, id);
    }
}

#[test]
fn stop_sends_sigterm_first_and_ebs_keeps_its_disk_and_address() {
    let env = Env::new();
    // The main process records that it got SIGTERM (not SIGKILL) on the machine's disk; a
    // second process shows that stop ends more than the main process.
    let script = "trap 'echo graceful > /var/tmp/term-marker; exit 0' TERM; sleep 1000 & touch /run/ready; \
                  while :; do sleep 0.05; done";
    let spec = MachineSpec::new(
        "db-1",
        "db1",
        RootDevice::Ebs,
        MainProcess::new("/bin/sh", ["-c", script]),
    );
    let first = env
        .rt
        .block_on(env.provider.provision(spec.clone()))
        .unwrap();
    env.sh("db-1", "echo kept > /root/persist.txt");
    let init = running_pid(first.state);
    // Wait until the trap is set and the background sleep runs, so the pid list covers it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.exec("db-1", &["test", "-e", "/run/ready"]).exit_code != 0 {
        assert!(
            Instant::now() < deadline,
            "the main process never got ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pids = pids_in_namespace(init);
    assert!(
        pids.len() >= 3,
        "init, shell and background sleep: {pids:?}"
    );

    env.rt
        .block_on(env.provider.stop("db-1", Duration::from_secs(10)))
        .unwrap();
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} survived stop");
    }
    let marker = std::fs::read_to_string(env.upper("db-1").join("var/tmp/term-marker")).unwrap();
    assert_eq!(marker, "graceful\n");
    // Stopping again is fine; exec needs a running machine.
    env.rt
        .block_on(env.provider.stop("db-1", Duration::from_secs(1)))
        .unwrap();
    let err = env
        .rt
        .block_on(env.provider.exec("db-1", &["true".to_string()]))
        .unwrap_err();
    assert!(matches!(err, Error::NotRunning { .. }), "{err}");

    let second = env
        .rt
        .block_on(env.provider.provision(spec.clone()))
        .unwrap();
    assert_eq!(
        second.private_ip, first.private_ip,
        "an ebs machine keeps its address"
    );
    assert_eq!(env.sh("db-1", "cat /root/persist.txt"), "kept");
    // Provisioning a running machine is refused.
    let err = env.rt.block_on(env.provider.provision(spec)).unwrap_err();
    assert!(matches!(err, Error::AlreadyRunning { .. }), "{err}");
}

#[test]
fn stop_terminates_a_main_process_that_does_not_handle_sigterm() {
    let env = Env::new();
    env.rt
        .block_on(
            env.provider
                .provision(sleeper_spec("plain-1", RootDevice::Ebs)),
        )
        .unwrap();
    // A long grace: the machine must end from SIGTERM, well before SIGKILL would come.
    env.rt
        .block_on(env.provider.stop("plain-1", Duration::from_secs(60)))
        .unwrap();
    let console = std::fs::read_to_string(
        env.provider
            .machine_dir_of("plain-1")
            .unwrap()
            .join("console.log"),
    )
    .unwrap();
    assert!(
        console.contains("main process was killed by SIGTERM"),
        "{console}"
    );
}

#[test]
fn init_reaps_orphaned_processes() {
    let env = Env::new();
    // The subshell exits at once, orphaning a sleep: it is re-parented to PID 1, and only PID 1
    // can reap it when it ends.
    let script = "(sleep 0.7 &); while :; do sleep 0.05; done";
    let spec = MachineSpec::new(
        "reaper-1",
        "reaper1",
        RootDevice::InstanceStore,
        MainProcess::new("/bin/sh", ["-c", script]),
    );
    env.rt.block_on(env.provider.provision(spec)).unwrap();
    // (state, parent pid, command line) of every process inside.
    let processes = || -> Vec<(String, u32, String)> {
        let out = env.exec("reaper-1", &["ps", "-eo", "stat=,ppid=,args="]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut fields = l.split_whitespace();
                let stat = fields.next()?.to_string();
                let ppid = fields.next()?.parse().ok()?;
                Some((stat, ppid, fields.collect::<Vec<_>>().join(" ")))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen_orphan = false;
    loop {
        let ps = processes();
        let orphan = ps.iter().find(|(_, _, args)| args == "sleep 0.7");
        if let Some((_, ppid, _)) = orphan {
            assert_eq!(
                *ppid, 1,
                "the orphan should be re-parented to the machine's init"
            );
            seen_orphan = true;
        }
        let zombie = ps.iter().any(|(stat, _, _)| stat.starts_with('Z'));
        if seen_orphan && orphan.is_none() && !zombie {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the orphan was never seen or never reaped: {ps:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Unmounts a host bind mount made by a test, even when the test fails.
struct BindMount(PathBuf);

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn other_host_file_systems_are_copy_on_write_too() {
    let env = Env::new();
    // A separate mount on the host (as a separate /var or /srv partition would be).
    let source = env.dir.path().join("volume-source");
    let point = env.dir.path().join("volume");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::create_dir_all(&point).unwrap();
    std::fs::write(source.join("data.txt"), "on the volume").unwrap();
    let status = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&source)
        .arg(&point)
        .status()
        .unwrap();
    assert!(status.success());
    let _guard = BindMount(point.clone());

    env.rt
        .block_on(
            env.provider
                .provision(sleeper_spec("vol-1", RootDevice::Ebs)),
        )
        .unwrap();
    let file = point.join("data.txt");
    assert_eq!(
        env.sh("vol-1", &format!("cat {}", file.display())),
        "on the volume"
    );
    env.sh(
        "vol-1",
        &format!("echo changed > {0}; echo new > {0}.new", file.display()),
    );
    assert_eq!(
        env.sh("vol-1", &format!("cat {}", file.display())),
        "changed"
    );
    assert_eq!(
        std::fs::read_to_string(source.join("data.txt")).unwrap(),
        "on the volume"
    );
    assert!(!source.join("data.txt.new").exists());
}

#[test]
fn the_host_view_is_live_read_only_and_hides_what_is_hidden() {
    let env = Env::new();
    let repo = env.dir.path().join("repo");
    let hidden = env.dir.path().join("server-data");
    let (source, point) = (env.dir.path().join("vol-src"), env.dir.path().join("vol"));
    for dir in [&repo, &hidden, &source, &point] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(repo.join("ref"), "one").unwrap();
    std::fs::write(hidden.join("secret"), "host secret").unwrap();
    std::fs::write(source.join("data.txt"), "one").unwrap();
    let status = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&source)
        .arg(&point)
        .status()
        .unwrap();
    assert!(status.success());
    let _guard = BindMount(point.clone());
    let mut spec = sleeper_spec("view-1", RootDevice::Ebs);
    spec.hidden_paths.push(hidden.clone());
    env.rt.block_on(env.provider.provision(spec)).unwrap();
    let view = |p: &Path| format!("/run/opsworks/host{}", p.display());
    // Read once inside, so the machine's overlay has it cached.
    let cat = format!(
        "cat {} {}",
        repo.join("ref").display(),
        view(&repo.join("ref"))
    );
    assert_eq!(env.sh("view-1", &cat), "oneone");

    // The host replaces both files by a rename, as git does with a ref.
    for dir in [&repo, &source] {
        let name = if dir == &repo { "ref" } else { "data.txt" };
        std::fs::write(dir.join("new"), "two").unwrap();
        std::fs::rename(dir.join("new"), dir.join(name)).unwrap();
    }
    assert_eq!(
        env.sh("view-1", &format!("cat {}", view(&repo.join("ref")))),
        "two"
    );
    assert_eq!(
        env.sh("view-1", &format!("cat {}", view(&point.join("data.txt")))),
        "two"
    );
    // Read-only, and what the provider hides is hidden there as well.
    let write = env.exec(
        "view-1",
        &[
            "/bin/sh",
            "-c",
            &format!("echo x > {}", view(&repo.join("x"))),
        ],
    );
    assert_ne!(write.exit_code, 0);
    assert!(
        String::from_utf8_lossy(&write.stderr).contains("Read-only"),
        "{}",
        String::from_utf8_lossy(&write.stderr)
    );
    assert!(!repo.join("x").exists());
    for secret in [hidden.clone(), env.state_dir()] {
        assert_eq!(env.sh("view-1", &format!("ls -A {}", view(&secret))), "");
    }
}

#[test]
fn instance_store_starts_fresh() {
    let env = Env::new();
    let spec = sleeper_spec("cache-1", RootDevice::InstanceStore);
    env.rt
        .block_on(env.provider.provision(spec.clone()))
        .unwrap();
    env.sh("cache-1", "echo gone > /root/ephemeral.txt");
    assert!(env.upper("cache-1").join("root/ephemeral.txt").exists());
    env.rt
        .block_on(env.provider.stop("cache-1", Duration::from_secs(5)))
        .unwrap();
    env.rt.block_on(env.provider.provision(spec)).unwrap();
    assert_eq!(
        env.exec("cache-1", &["test", "-e", "/root/ephemeral.txt"])
            .exit_code,
        1
    );
    assert!(!env.upper("cache-1").join("root/ephemeral.txt").exists());
}

#[test]
fn a_new_provider_finds_running_machines() {
    let env = Env::new();
    let made = env
        .rt
        .block_on(
            env.provider
                .provision(sleeper_spec("app-1", RootDevice::Ebs)),
        )
        .unwrap();
    let stopped = env
        .rt
        .block_on(
            env.provider
                .provision(sleeper_spec("app-2", RootDevice::Ebs)),
        )
        .unwrap();
    env.rt
        .block_on(env.provider.stop("app-2", Duration::from_secs(5)))
        .unwrap();

    // A control-plane restart: a fresh provider on the same state dir, used as the control
    // plane holds it (a trait object).
    let restarted: std::sync::Arc<dyn Provider> =
        std::sync::Arc::new(LocalProvider::new(config(env.dir.path())).unwrap());
    let listed = env.rt.block_on(restarted.list()).unwrap();
    let ids: Vec<&str> = listed.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["app-1", "app-2"]);
    assert_eq!(listed[0].state, made.state);
    assert_eq!(listed[0].private_ip, made.private_ip);
    assert_eq!(listed[0].hostname, "app-1");
    assert_eq!(listed[1].state, MachineState::Stopped);
    assert_eq!(listed[1].private_ip, stopped.private_ip);
    let described = env
        .rt
        .block_on(restarted.describe("app-1"))
        .unwrap()
        .unwrap();
    assert_eq!(described, listed[0]);
    let out = env
        .rt
        .block_on(restarted.exec("app-1", &["hostname".to_string()]))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "app-1");
    env.rt.block_on(restarted.destroy("app-1")).unwrap();
    assert_no_trace(&env, "app-1");
    assert_eq!(env.rt.block_on(env.provider.list()).unwrap().len(), 1);
}

#[test]
fn main_process_exit_stops_the_machine_and_boot_errors_are_clear() {
    let env = Env::new();
    let spec = MachineSpec::new(
        "short-1",
        "short1",
        RootDevice::Ebs,
        MainProcess::new("/bin/sh", ["-c", "sleep 0.2; exit 3"]),
    );
    env.rt.block_on(env.provider.provision(spec)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.rt.block_on(env.provider.status("short-1")).unwrap() != MachineState::Stopped {
        assert!(
            Instant::now() < deadline,
            "the machine kept running after its main process exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let spec = MachineSpec::new(
        "broken-1",
        "broken1",
        RootDevice::Ebs,
        MainProcess::new("/nonexistent/agent", ["--server", "x"]),
    );
    let err = env.rt.block_on(env.provider.provision(spec)).unwrap_err();
    assert!(matches!(err, Error::Boot { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/agent"), "{err}");
    assert_eq!(
        env.rt.block_on(env.provider.status("broken-1")).unwrap(),
        MachineState::Stopped
    );
    let (netns, veth) = env.provider.net_names("broken-1").unwrap();
    assert!(!Path::new("/run/netns").join(netns).exists());
    assert!(!Path::new("/sys/class/net").join(veth).exists());

    // A command that cannot be found inside gives 127, like a shell.
    env.rt
        .block_on(
            env.provider
                .provision(sleeper_spec("exec-1", RootDevice::Ebs)),
        )
        .unwrap();
    let out = env.exec("exec-1", &["/no/such/program"]);
    assert_eq!(out.exit_code, 127);
    assert_eq!(env.exec("exec-1", &["sh", "-c", "exit 7"]).exit_code, 7);
    let err = env
        .rt
        .block_on(env.provider.exec("nobody", &["true".to_string()]))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[test]
fn missing_host_tools_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.ip_command = Some(PathBuf::from("/nonexistent/ip"));
    let provider = LocalProvider::new(cfg).unwrap();
    let err = provider
        .provision_blocking(sleeper_spec("x-1", RootDevice::Ebs))
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/ip"), "{err}");

    let cfg = config(tmp.path()).with_helper("/nonexistent/helper", Vec::<OsString>::new());
    let err = LocalProvider::new(cfg).unwrap().check_host().unwrap_err();
    assert!(err.to_string().contains("/nonexistent/helper"), "{err}");
    assert!(provider.list_blocking().unwrap().is_empty());
}

#[test]
fn many_machines_get_distinct_addresses() {
    let env = Env::new();
    let machines = env.rt.block_on(async {
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let provider = env.provider.clone();
                let main =
                    MainProcess::new(python(), ["-m", "http.server", "8080", "--bind", "0.0.0.0"]);
                let spec = MachineSpec::new(
                    format!("n-{i}"),
                    format!("n{i}"),
                    RootDevice::InstanceStore,
                    main,
                );
                tokio::spawn(async move { provider.provision(spec).await })
            })
            .collect();
        let mut machines = Vec::new();
        for task in tasks {
            machines.push(task.await.unwrap().unwrap());
        }
        machines
    });
    let ips: BTreeSet<Ipv4Addr> = machines.iter().map(|m| m.private_ip).collect();
    assert_eq!(ips.len(), machines.len());
    // Every machine reaches every other one.
    for m in &machines {
        for other in &machines {
            let url = format!("http://{}:8080/", other.private_ip);
            let get = env.exec(
                &m.id,
                &[
                    "curl",
                    "-sf",
                    "-o",
                    "/dev/null",
                    "--retry",
                    "20",
                    "--retry-connrefused",
                    "--retry-delay",
                    "0",
                    "--max-time",
                    "5",
                    &url,
                ],
            );
            assert_eq!(get.exit_code, 0, "{} cannot reach {}", m.id, url);
        }
    }
}

/// The bridge keeps one MAC address as machines join. Left to itself a bridge takes the lowest MAC
/// of its ports, so a machine joining with a lower one moved it, and the machines already running
/// (whose ARP entry for the gateway named the old MAC) lost the host for about ten seconds.
#[test]
fn the_gateway_keeps_its_mac_address_as_machines_join() {
    let env = Env::new();
    let bridge = Path::new("/sys/class/net/opsw0");
    let provision = |i: usize| {
        env.rt
            .block_on(
                env.provider
                    .provision(sleeper_spec(&format!("mac-{i}"), RootDevice::InstanceStore)),
            )
            .unwrap()
    };
    let first = provision(0);
    let mac = std::fs::read_to_string(bridge.join("address")).unwrap();
    assert_eq!(
        std::fs::read_to_string(bridge.join("addr_assign_type"))
            .unwrap()
            .trim(),
        "3",
        "the bridge's MAC address is not fixed"
    );
    // The first machine knows the gateway by that address.
    env.sh(
        &first.id,
        "timeout 5 bash -c 'exec 3<>/dev/tcp/10.217.0.1/9' 2>/dev/null; true",
    );
    let seen = env.sh(&first.id, "cat /proc/net/arp");
    assert!(seen.contains(mac.trim()), "{seen}");
    // Each new port has a random MAC: with a bridge left to itself, one of eight would very
    // likely be lower than every port before it.
    for i in 1..9 {
        provision(i);
    }
    assert_eq!(
        std::fs::read_to_string(bridge.join("address")).unwrap(),
        mac
    );
}
