//! The `service::*` functions the recipe engine calls, against a real supervisor the first call
//! starts. A binary of its own with one test: it points the process environment
//! (`OPSWORKS_SUPERVISOR_DIR`, `OPSWORKS_SUPERVISOR_EXE`) at a temporary supervisor, which is only
//! sound while no other test thread runs.

use std::path::Path;
use std::time::{Duration, Instant};

use opsworks_host::HostError;
use opsworks_host::service::{self, Backend, ServiceDef};
use opsworks_host::supervisor::client::Client;
use opsworks_host::supervisor::protocol::{Request, Response};

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Shuts the supervisor down when the test ends, pass or fail.
struct Shutdown<'a>(&'a Path);

impl Drop for Shutdown<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(self.0) {
            let _ = c.call(&Request::Shutdown);
        }
    }
}

#[test]
fn service_functions_drive_the_supervisor() {
    let state = tempfile::tempdir().unwrap();
    // SAFETY: this binary's only test sets these before it starts any thread of its own.
    unsafe {
        std::env::set_var("OPSWORKS_SUPERVISOR_DIR", state.path());
        std::env::set_var(
            "OPSWORKS_SUPERVISOR_EXE",
            env!("CARGO_BIN_EXE_opsworks-host-supervisor"),
        );
        std::env::set_var(service::BACKEND_ENV, "supervisor");
    }
    let _shutdown = Shutdown(state.path());
    assert_eq!(service::backend(), Backend::Supervisor);

    // Nothing defined yet: not running, and the first call started the supervisor.
    let st = service::status("web").unwrap();
    assert!(!st.running && !st.enabled && st.pid.is_none());
    assert!(state.path().join("supervisor.sock").exists());

    // Acting on an unknown service without a definition is a clear error, except for the
    // actions whose end state already holds.
    assert!(matches!(
        service::start("web", None),
        Err(HostError::UnknownService { .. })
    ));
    service::stop("web", None).unwrap();
    service::disable("web", None).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("reloaded");
    let ready = tmp.path().join("ready");
    let def = ServiceDef {
        name: "web".into(),
        command: format!(
            "trap 'echo reloaded >> {m}' HUP; echo ok > {r}; while :; do sleep 0.1; done",
            m = marker.display(),
            r = ready.display()
        ),
        ..ServiceDef::default()
    };
    assert!(service::define(&def).unwrap(), "a new definition");
    assert!(!service::define(&def).unwrap(), "the same definition again");
    service::start("web", Some(&def)).unwrap();
    let st = service::status("web").unwrap();
    assert!(st.running);
    let pid = st.pid.unwrap();
    // Starting a running service leaves it alone.
    service::start("web", None).unwrap();
    assert_eq!(service::status("web").unwrap().pid, Some(pid));

    wait_for("the trap", || {
        std::fs::read_to_string(&ready)
            .ok()
            .filter(|s| !s.is_empty())
    });
    service::reload("web", None).unwrap();
    wait_for("the reload", || {
        std::fs::read_to_string(&marker)
            .ok()
            .filter(|s| !s.is_empty())
    });

    service::restart("web", None).unwrap();
    let restarted = service::status("web").unwrap().pid.unwrap();
    assert_ne!(restarted, pid);

    service::enable("web", None).unwrap();
    assert!(service::status("web").unwrap().enabled);
    service::disable("web", None).unwrap();
    assert!(!service::status("web").unwrap().enabled);

    service::stop("web", None).unwrap();
    let st = service::status("web").unwrap();
    assert!(!st.running && st.pid.is_none());

    // Reloading a stopped service fails and says why.
    match service::reload("web", None) {
        Err(HostError::Supervisor { message }) => {
            assert!(message.contains("not running"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A definition whose name does not match is refused before anything happens.
    let wrong = ServiceDef {
        name: "other".into(),
        ..def.clone()
    };
    assert!(matches!(
        service::start("web", Some(&wrong)),
        Err(HostError::InvalidInput { .. })
    ));

    let mut c = Client::connect(state.path()).unwrap();
    assert!(
        matches!(c.call(&Request::List).unwrap(), Response::List { services } if services.len() == 1)
    );
}
