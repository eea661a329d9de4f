//! The supervisor daemon, run for real from its binary, driven over its socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use opsworks_host::service::ServiceDef;
use opsworks_host::supervisor::client::{Client, socket_path};
use opsworks_host::supervisor::protocol::{ErrorCode, Request, Response, RunState, ServiceInfo};

use super::common::{group_alive, pid_alive, stat_field, unique, wait_for};

const EXE: &str = env!("CARGO_BIN_EXE_opsworks-host-supervisor");
const LIMIT: Duration = Duration::from_secs(30);

/// A supervisor with its own state directory, shut down when the test ends.
struct Daemon {
    dir: tempfile::TempDir,
    pid: u32,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let pid = ping(dir.path());
        Daemon { dir, pid }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn client(&self) -> Client {
        Client::connect_or_start_with(self.path(), Path::new(EXE)).unwrap()
    }

    fn call(&self, request: Request) -> Response {
        self.client().call(&request).unwrap()
    }

    fn ok(&self, request: Request) -> ServiceInfo {
        match self.call(request.clone()) {
            Response::Ok {
                service: Some(info),
                ..
            } => info,
            other => panic!("{request:?} answered {other:?}"),
        }
    }

    fn status(&self, name: &str) -> ServiceInfo {
        self.ok(Request::Status { name: name.into() })
    }

    fn define(&self, name: &str, command: &str) -> ServiceInfo {
        self.ok(Request::Define {
            def: ServiceDef {
                name: name.into(),
                command: command.into(),
                ..ServiceDef::default()
            },
        })
    }

    fn running_pid(&self, name: &str) -> u32 {
        wait_for(&format!("{name} to run"), LIMIT, || {
            let s = self.status(name);
            (s.state == RunState::Running).then_some(s.pid).flatten()
        })
    }

    /// Graceful shutdown, waiting until the process is gone.
    fn shutdown(&self) {
        if let Ok(mut c) = Client::connect(self.path()) {
            let _ = c.call(&Request::Shutdown);
        }
        wait_for("the supervisor to exit", LIMIT, || {
            (!pid_alive(self.pid)).then_some(())
        });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(self.path()) {
            let _ = c.call(&Request::Shutdown);
        }
        for _ in 0..1500 {
            if !pid_alive(self.pid) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts (or reaches) the supervisor of `dir` and returns its pid.
fn ping(dir: &Path) -> u32 {
    let mut c = Client::connect_or_start_with(dir, Path::new(EXE)).unwrap();
    match c.call(&Request::Ping).unwrap() {
        Response::Pong { pid, .. } => pid,
        other => panic!("ping answered {other:?}"),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn daemon_is_detached_from_its_starter() {
    let d = Daemon::start();
    assert!(socket_path(d.path()).exists());
    // Another session than ours, and not our child (double fork): it outlives whoever
    // started it and is nobody's zombie.
    let me = std::process::id();
    assert_ne!(stat_field(d.pid, 6), stat_field(me, 6), "session id");
    assert_ne!(stat_field(d.pid, 4), Some(me.to_string()), "parent");
    // A second supervisor for the same directory refuses to run.
    let out = std::process::Command::new(EXE)
        .args(["supervisor", "--state-dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already running"), "{stderr}");
}

#[test]
fn a_killed_service_is_restarted_with_a_new_pid() {
    let d = Daemon::start();
    let name = unique("sleeper");
    d.define(&name, "sleep 1000");
    let first = d.ok(Request::Start { name: name.clone() }).pid.unwrap();
    assert!(pid_alive(first));
    // Its own session and process group.
    assert_eq!(stat_field(first, 5), Some(first.to_string()));
    assert_eq!(stat_field(first, 6), Some(first.to_string()));

    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    let second = wait_for("a new pid", LIMIT, || {
        let s = d.status(&name);
        s.pid
            .filter(|p| *p != first && s.state == RunState::Running)
    });
    assert!(pid_alive(second));
    let s = d.status(&name);
    assert_eq!(s.restarts, 1);
    let exit = s.last_exit.unwrap();
    assert_eq!(exit.signal, Some(libc::SIGKILL));
    assert_eq!(exit.code, None);
    let log = read(&d.path().join(format!("logs/{name}.log")));
    assert!(log.contains(&format!("started pid {first}")), "{log}");
    assert!(log.contains(&format!("started pid {second}")), "{log}");
}

#[test]
fn a_crash_loop_backs_off_instead_of_spinning() {
    let d = Daemon::start();
    let name = unique("crasher");
    d.define(&name, "/bin/false");
    d.ok(Request::Start { name: name.clone() });
    let s = wait_for("three restarts", LIMIT, || {
        let s = d.status(&name);
        (s.restarts >= 3).then_some(s)
    });
    assert_eq!(s.last_exit.as_ref().and_then(|e| e.code), Some(1));
    // Each quick death doubles the delay before the next start (0.1 s, 0.2 s, 0.4 s, ...), as
    // the supervisor notes in the service's log.
    let log = read(&d.path().join(format!("logs/{name}.log")));
    let delays: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split("restarting in ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    assert!(delays.len() >= 3, "{log}");
    assert_eq!(&delays[..3], &[100, 200, 400], "{log}");
    // Stop cancels the pending restart: stopped, not waiting to restart.
    let s = d.ok(Request::Stop {
        name: name.clone(),
        timeout_ms: None,
    });
    assert_eq!(s.state, RunState::Stopped);
    assert_eq!(s.pid, None);
    // An explicit start forgets the crash history: the next delay is the shortest again.
    d.ok(Request::Start { name: name.clone() });
    let restarts = s.restarts;
    wait_for("one more restart", LIMIT, || {
        (d.status(&name).restarts > restarts).then_some(())
    });
    let log = read(&d.path().join(format!("logs/{name}.log")));
    let after_start = log
        .rsplit_once("stopped while waiting to restart")
        .or_else(|| log.rsplit_once("stopping pid"))
        .map(|(_, after)| after)
        .unwrap_or_else(|| panic!("no stop in the log: {log}"));
    assert!(after_start.contains("restarting in 100 ms"), "{log}");
}

#[test]
fn stop_ends_the_whole_process_group() {
    let d = Daemon::start();
    let name = unique("group");
    let tmp = tempfile::tempdir().unwrap();
    let kids = tmp.path().join("kids");
    // Two background children plus the shell itself.
    d.define(
        &name,
        &format!(
            "sleep 1000 & sleep 1001 & echo $! > {}; wait",
            kids.display()
        ),
    );
    let pid = d.ok(Request::Start { name: name.clone() }).pid.unwrap();
    let kid: u32 = wait_for("the children", LIMIT, || read(&kids).trim().parse().ok());
    assert!(pid_alive(kid));
    assert_eq!(
        stat_field(kid, 5),
        Some(pid.to_string()),
        "child in the service's group"
    );

    let s = d.ok(Request::Stop {
        name: name.clone(),
        timeout_ms: None,
    });
    assert_eq!(s.state, RunState::Stopped);
    assert_eq!(s.pid, None);
    assert!(!pid_alive(pid));
    wait_for("the group to be gone", LIMIT, || {
        (!group_alive(pid)).then_some(())
    });
    assert!(!pid_alive(kid));
    // Stopping a stopped service is fine.
    d.ok(Request::Stop {
        name,
        timeout_ms: None,
    });
}

#[test]
fn stop_escalates_to_sigkill_when_term_is_ignored() {
    let d = Daemon::start();
    let name = unique("stubborn");
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    d.define(
        &name,
        &format!(
            "trap '' TERM; echo ok > {}; while :; do sleep 0.1; done",
            ready.display()
        ),
    );
    let pid = d.ok(Request::Start { name: name.clone() }).pid.unwrap();
    wait_for("the TERM trap", LIMIT, || {
        (!read(&ready).is_empty()).then_some(())
    });
    let s = d.ok(Request::Stop {
        name: name.clone(),
        timeout_ms: Some(300),
    });
    assert_eq!(s.state, RunState::Stopped);
    assert_eq!(s.last_exit.and_then(|e| e.signal), Some(libc::SIGKILL));
    assert!(!pid_alive(pid));
    wait_for("the group to be gone", LIMIT, || {
        (!group_alive(pid)).then_some(())
    });
    let log = read(&d.path().join(format!("logs/{name}.log")));
    assert!(log.contains("SIGKILL"), "{log}");
}

#[test]
fn reload_delivers_the_configured_signal() {
    let d = Daemon::start();
    let tmp = tempfile::tempdir().unwrap();
    for (signal, trap) in [(None, "HUP"), (Some("USR1"), "USR1")] {
        let name = unique("reloader");
        let ready = tmp.path().join(format!("{name}.ready"));
        let got = tmp.path().join(format!("{name}.got"));
        d.ok(Request::Define {
            def: ServiceDef {
                name: name.clone(),
                command: format!(
                    "trap 'echo {trap} >> {got}' {trap}; echo ok > {ready}; while :; do sleep 0.1; done",
                    got = got.display(),
                    ready = ready.display()
                ),
                reload_signal: signal.map(str::to_string),
                ..ServiceDef::default()
            },
        });
        // Reloading a stopped service is an error.
        match d.call(Request::Reload { name: name.clone() }) {
            Response::Error {
                code: ErrorCode::Failed,
                message,
            } => {
                assert!(message.contains("not running"), "{message}")
            }
            other => panic!("reload of a stopped service answered {other:?}"),
        }
        let pid = d.ok(Request::Start { name: name.clone() }).pid.unwrap();
        wait_for("the trap", LIMIT, || {
            (!read(&ready).is_empty()).then_some(())
        });
        d.ok(Request::Reload { name: name.clone() });
        wait_for("the trap to fire", LIMIT, || {
            (read(&got).trim() == trap).then_some(())
        });
        // The service survived its reload.
        assert_eq!(d.status(&name).pid, Some(pid));
        assert_eq!(d.status(&name).restarts, 0);
        d.ok(Request::Stop {
            name,
            timeout_ms: None,
        });
    }
}

#[test]
fn enabled_services_come_back_with_the_next_supervisor() {
    let d = Daemon::start();
    let on = unique("enabled");
    let off = unique("manual");
    d.define(&on, "sleep 1000");
    d.define(&off, "sleep 1001");
    assert!(d.ok(Request::Enable { name: on.clone() }).enabled);
    let first = d.ok(Request::Start { name: on.clone() }).pid.unwrap();
    let manual = d.ok(Request::Start { name: off.clone() }).pid.unwrap();

    // A graceful shutdown stops everything.
    d.shutdown();
    assert!(!pid_alive(first));
    assert!(!pid_alive(manual));
    assert!(!socket_path(d.path()).exists());

    // The next supervisor (started by the client) starts the enabled service only, and still
    // knows the other definition.
    let pid2 = ping(d.path());
    let d = Daemon {
        dir: d.dir_take(),
        pid: pid2,
    };
    let s = d.status(&on);
    assert_eq!(s.state, RunState::Running);
    assert!(s.enabled);
    let second = s.pid.unwrap();
    assert_ne!(second, first);
    let s = d.status(&off);
    assert_eq!(s.state, RunState::Stopped);
    assert!(!s.enabled);

    // A supervisor killed outright leaves its services running; the next one ends those and
    // starts the enabled service afresh instead of running it twice.
    unsafe { libc::kill(pid2 as i32, libc::SIGKILL) };
    wait_for("the supervisor to die", LIMIT, || {
        (!pid_alive(pid2)).then_some(())
    });
    assert!(pid_alive(second), "services outlive a crashed supervisor");
    let pid3 = ping(d.path());
    let d = Daemon {
        dir: d.dir_take(),
        pid: pid3,
    };
    let third = d.running_pid(&on);
    assert_ne!(third, second);
    wait_for("the leftover to end", LIMIT, || {
        (!pid_alive(second)).then_some(())
    });

    // Disabled: it does not come back.
    assert!(!d.ok(Request::Disable { name: on.clone() }).enabled);
    d.shutdown();
    let pid4 = ping(d.path());
    let d = Daemon {
        dir: d.dir_take(),
        pid: pid4,
    };
    assert_eq!(d.status(&on).state, RunState::Stopped);
}

impl Daemon {
    /// Moves the state directory out (the old daemon is already gone).
    fn dir_take(mut self) -> tempfile::TempDir {
        let placeholder = tempfile::tempdir().unwrap();
        let dir = std::mem::replace(&mut self.dir, placeholder);
        self.pid = 0;
        dir
    }
}

#[test]
fn services_get_their_user_cwd_environment_and_log() {
    let d = Daemon::start();
    let name = unique("env");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_path_buf();
    // The service runs as nobody: let it write here.
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut def = ServiceDef {
        name: name.clone(),
        command: "id -u > out.uid; pwd > out.cwd; echo \"$GREETING/$HOME\" > out.env; echo to-stdout; echo to-stderr >&2; sleep 1000".into(),
        cwd: Some(out.clone()),
        user: Some("nobody".into()),
        ..ServiceDef::default()
    };
    def.env.insert("GREETING".into(), "hello-s3cr3t".into());
    d.ok(Request::Define { def });
    d.ok(Request::Start { name: name.clone() });
    let file = |n: &str| -> PathBuf { out.join(n) };
    let env = wait_for("the service's files", LIMIT, || {
        let e = read(&file("out.env"));
        (!e.is_empty()).then_some(e)
    });
    let nobody = opsworks_host::users::get_user("nobody").unwrap().unwrap();
    assert_eq!(read(&file("out.uid")).trim(), nobody.uid.to_string());
    assert_eq!(read(&file("out.cwd")).trim(), out.to_string_lossy());
    assert_eq!(
        env.trim(),
        format!("hello-s3cr3t/{}", nobody.home.display())
    );
    let log_path = d.path().join(format!("logs/{name}.log"));
    let log = wait_for("the log", LIMIT, || {
        let l = read(&log_path);
        l.contains("to-stderr").then_some(l)
    });
    assert!(log.contains("to-stdout"), "{log}");
    // The status answer does not carry the environment (it may hold secrets).
    let line = serde_json::to_string(&d.status(&name)).unwrap();
    assert!(!line.contains("s3cr3t"), "{line}");
}

#[test]
fn bad_requests_get_clear_errors() {
    let d = Daemon::start();
    match d.call(Request::Start {
        name: "nope".into(),
    }) {
        Response::Error {
            code: ErrorCode::UnknownService,
            message,
        } => {
            assert!(message.contains("nope"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        d.call(Request::Status {
            name: "nope".into()
        }),
        Response::Ok {
            service: None,
            changed: false
        }
    );
    match d.call(Request::Define {
        def: ServiceDef {
            name: "../../etc/x".into(),
            command: "true".into(),
            ..ServiceDef::default()
        },
    }) {
        Response::Error {
            code: ErrorCode::BadRequest,
            message,
        } => {
            assert!(message.contains("service name"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A command that cannot be executed fails the start, with the reason.
    d.define("missing-binary", "/nonexistent/bin --flag");
    match d.call(Request::Start {
        name: "missing-binary".into(),
    }) {
        Response::Error {
            code: ErrorCode::Failed,
            message,
        } => {
            assert!(message.contains("/nonexistent/bin"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.status("missing-binary").state, RunState::Stopped);

    // Raw lines: garbage gets an error and the connection stays usable.
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket_path(d.path())).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    s.write_all(b"{not json\n{\"op\":\"ping\"}\n").unwrap();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("\"code\":\"bad_request\""), "{line}");
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("\"result\":\"pong\""), "{line}");
    // An endless line is cut off with an error rather than buffered forever.
    let big = vec![b'x'; 2 * 1024 * 1024];
    let _ = s.write_all(&big);
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("longer than"), "{line}");

    // List shows what is defined, removal forgets it.
    match d.call(Request::List) {
        Response::List { services } => {
            assert_eq!(services.len(), 1);
            assert_eq!(services[0].name, "missing-binary");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        d.call(Request::Remove {
            name: "missing-binary".into()
        }),
        Response::Ok {
            service: None,
            changed: true
        }
    );
    assert!(!d.path().join("services/missing-binary.json").exists());
    assert_eq!(d.call(Request::List), Response::List { services: vec![] });
}

#[test]
fn orphans_of_services_are_adopted_and_reaped() {
    let d = Daemon::start();
    let name = unique("forker");
    let tmp = tempfile::tempdir().unwrap();
    let orphan_file = tmp.path().join("orphan");
    // The subshell exits at once, orphaning its background `sleep 1`.
    d.define(
        &name,
        &format!(
            "(sleep 1 & echo $! > {}); sleep 1000",
            orphan_file.display()
        ),
    );
    d.ok(Request::Start { name: name.clone() });
    let orphan: u32 = wait_for("the orphan's pid", LIMIT, || {
        read(&orphan_file).trim().parse().ok()
    });
    // Adopted by the supervisor (a child subreaper), not by PID 1 ...
    if let Some(ppid) = stat_field(orphan, 4) {
        assert_eq!(ppid, d.pid.to_string());
    }
    // ... which collects it when it dies: no zombie is left behind.
    wait_for("the orphan to be reaped", LIMIT, || {
        (!Path::new(&format!("/proc/{orphan}")).exists()).then_some(())
    });
    assert_eq!(d.status(&name).state, RunState::Running);
}

#[test]
fn a_changed_definition_applies_at_the_next_start() {
    let d = Daemon::start();
    let name = unique("changer");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("version");
    let def = |v: u32| Request::Define {
        def: ServiceDef {
            name: name.clone(),
            command: format!("echo {v} > {}; sleep 1000", out.display()),
            ..ServiceDef::default()
        },
    };
    assert!(matches!(d.call(def(1)), Response::Ok { changed: true, .. }));
    assert!(matches!(
        d.call(def(1)),
        Response::Ok { changed: false, .. }
    ));
    d.ok(Request::Start { name: name.clone() });
    wait_for("version 1", LIMIT, || {
        (read(&out).trim() == "1").then_some(())
    });
    let info = d.ok(def(2));
    assert!(info.def_changed, "running with the old definition");
    assert_eq!(read(&out).trim(), "1");
    let info = d.ok(Request::Restart {
        name: name.clone(),
        timeout_ms: None,
    });
    assert!(!info.def_changed);
    wait_for("version 2", LIMIT, || {
        (read(&out).trim() == "2").then_some(())
    });
}
