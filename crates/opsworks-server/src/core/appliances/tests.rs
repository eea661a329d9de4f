//! Appliances over a provider whose machines' "process" is a real TCP listener on loopback: the
//! machine answers when its listener is bound, and a machine whose process dies is a stopped
//! one. What is tested is the module's own logic — waiting for the port, destroying what never
//! came up, leaving a failed reboot stopped with its disk, starting a dead process again,
//! adopting a running machine, reaping orphans — over the provider contract the local provider
//! keeps (its own tests boot real machines; tests/lifecycle/test_rds.py drives both together).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opsworks_sandbox::{
    Error, ExecOutput, Machine, MachineSpec, MachineState, MainProcess, Provider, Result,
    RootDevice,
};

use super::*;

/// How a provisioned machine's process behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Binds its port: it answers.
    Answers,
    /// Exits at once: the machine stops.
    Exits,
    /// Runs but never binds its port.
    Hangs,
}

struct Booted {
    machine: Machine,
    listener: Option<std::net::TcpListener>,
}

/// Machines in memory; a running, answering machine holds a bound listener.
struct TestProvider {
    ports: Mutex<HashMap<String, u16>>,
    behaviour: Mutex<Behaviour>,
    machines: Mutex<HashMap<String, Booted>>,
    provisions: Mutex<Vec<String>>,
}

impl TestProvider {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            ports: Mutex::default(),
            behaviour: Mutex::new(Behaviour::Answers),
            machines: Mutex::default(),
            provisions: Mutex::default(),
        })
    }

    fn set(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap() = b;
    }

    /// The machine's process dies (as a crash would): its port closes, the machine stops.
    fn crash(&self, id: &str) {
        let mut machines = self.machines.lock().unwrap();
        let m = machines.get_mut(id).expect("a machine");
        m.listener = None;
        m.machine.state = MachineState::Stopped;
    }

    fn state(&self, id: &str) -> MachineState {
        self.machines
            .lock()
            .unwrap()
            .get(id)
            .map_or(MachineState::Absent, |m| m.machine.state)
    }
}

#[async_trait::async_trait]
impl Provider for TestProvider {
    async fn provision(&self, spec: MachineSpec) -> Result<Machine> {
        self.provisions.lock().unwrap().push(spec.id.clone());
        let port = self.ports.lock().unwrap()[&spec.id];
        let behaviour = *self.behaviour.lock().unwrap();
        let listener = (behaviour == Behaviour::Answers)
            .then(|| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind"));
        let machine = Machine {
            id: spec.id.clone(),
            hostname: spec.hostname.clone(),
            private_ip: Ipv4Addr::LOCALHOST,
            root_device: spec.root_device,
            state: match behaviour {
                Behaviour::Exits => MachineState::Stopped,
                _ => MachineState::Running { pid: 4242 },
            },
        };
        self.machines.lock().unwrap().insert(
            spec.id,
            Booted {
                machine: machine.clone(),
                listener,
            },
        );
        Ok(machine)
    }

    async fn status(&self, id: &str) -> Result<MachineState> {
        Ok(self.state(id))
    }

    async fn describe(&self, id: &str) -> Result<Option<Machine>> {
        Ok(self
            .machines
            .lock()
            .unwrap()
            .get(id)
            .map(|m| m.machine.clone()))
    }

    async fn list(&self) -> Result<Vec<Machine>> {
        Ok(self
            .machines
            .lock()
            .unwrap()
            .values()
            .map(|m| m.machine.clone())
            .collect())
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<()> {
        let mut machines = self.machines.lock().unwrap();
        let m = machines
            .get_mut(id)
            .ok_or_else(|| Error::NotFound { id: id.into() })?;
        m.listener = None;
        m.machine.state = MachineState::Stopped;
        Ok(())
    }

    async fn destroy(&self, id: &str) -> Result<()> {
        self.machines.lock().unwrap().remove(id);
        Ok(())
    }

    async fn exec(&self, id: &str, _argv: &[String]) -> Result<ExecOutput> {
        Err(Error::NotFound { id: id.into() })
    }
}

/// A spec on a free loopback port, known to the provider.
fn spec(provider: &TestProvider, id: &str) -> ApplianceSpec {
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    provider.ports.lock().unwrap().insert(id.into(), port);
    ApplianceSpec {
        id: id.into(),
        hostname: id.into(),
        main: MainProcess::new("/bin/true", Vec::<String>::new()),
        files: Vec::new(),
        limits: None,
        port,
    }
}

fn appliances(provider: &Arc<TestProvider>) -> Appliances {
    Appliances::new(provider.clone(), Vec::new()).with_ready_timeout(Duration::from_secs(1))
}

#[tokio::test]
async fn a_machine_is_ready_once_its_port_answers() {
    let p = TestProvider::new();
    let a = appliances(&p);
    let s = spec(&p, "svc-up");
    assert_eq!(a.create(&s).await.unwrap(), Ipv4Addr::LOCALHOST);
    assert!(matches!(p.state("svc-up"), MachineState::Running { .. }));
    assert_eq!(
        a.describe("svc-up").await.unwrap(),
        Some((Ipv4Addr::LOCALHOST, true))
    );
    // Its spec went to the provider with an ebs root (a disk that survives stops).
    assert_eq!(
        p.machines.lock().unwrap()["svc-up"].machine.root_device,
        RootDevice::Ebs
    );
}

#[tokio::test]
async fn a_machine_that_never_comes_up_is_destroyed() {
    for (behaviour, what) in [(Behaviour::Exits, "exited"), (Behaviour::Hangs, "answered")] {
        let p = TestProvider::new();
        p.set(behaviour);
        let a = appliances(&p);
        let s = spec(&p, "svc-down");
        let e = a.create(&s).await.unwrap_err();
        assert!(e.to_string().contains(what), "{e}");
        assert_eq!(
            p.state("svc-down"),
            MachineState::Absent,
            "nothing half-made"
        );
    }
}

#[tokio::test]
async fn a_failed_reboot_leaves_the_machine_stopped_with_its_disk() {
    let p = TestProvider::new();
    let a = appliances(&p);
    let s = spec(&p, "svc-reboot");
    a.create(&s).await.unwrap();
    a.reboot(&s).await.unwrap();
    p.set(Behaviour::Hangs);
    assert!(a.reboot(&s).await.is_err());
    assert_eq!(p.state("svc-reboot"), MachineState::Stopped);
}

#[tokio::test]
async fn upkeep_adopts_what_runs_restarts_what_died_and_knows_what_is_gone() {
    let p = TestProvider::new();
    let a = appliances(&p);
    let s = spec(&p, "svc-keep");
    a.create(&s).await.unwrap();
    let booted = p.provisions.lock().unwrap().len();
    // A running machine (after a control-plane restart: a new Appliances) is adopted untouched.
    let after_restart = appliances(&p);
    assert_eq!(
        after_restart.keep_running(&s).await.unwrap(),
        Upkeep::Running(Ipv4Addr::LOCALHOST)
    );
    assert_eq!(p.provisions.lock().unwrap().len(), booted);
    // A dead process is started again on its disk and answers.
    p.crash("svc-keep");
    assert_eq!(
        after_restart.keep_running(&s).await.unwrap(),
        Upkeep::Restarted(Ipv4Addr::LOCALHOST)
    );
    tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, s.port))
        .await
        .expect("it answers again");
    a.destroy("svc-keep").await.unwrap();
    assert_eq!(a.keep_running(&s).await.unwrap(), Upkeep::Gone);
    // Stopping or destroying what is not there is done.
    a.stop("svc-keep").await.unwrap();
    a.destroy("svc-keep").await.unwrap();
}

#[tokio::test]
async fn reaping_removes_only_the_familys_machines_nothing_owns() {
    let p = TestProvider::new();
    let a = appliances(&p);
    for id in ["rds-kept", "rds-orphan", "elb-other"] {
        a.create(&spec(&p, id)).await.unwrap();
    }
    let keep: HashSet<String> = ["rds-kept".to_string()].into();
    assert_eq!(
        a.reap("rds-", &keep).await.unwrap(),
        vec!["rds-orphan".to_string()]
    );
    let mut left: Vec<String> = p.machines.lock().unwrap().keys().cloned().collect();
    left.sort();
    assert_eq!(left, ["elb-other", "rds-kept"]);
}

#[tokio::test]
async fn a_claimed_machine_is_held_until_the_claim_drops() {
    let p = TestProvider::new();
    let a = appliances(&p);
    let claim = a.claim("svc-claimed").expect("free");
    assert!(a.claim("svc-claimed").is_none() && a.is_claimed("svc-claimed"));
    drop(claim);
    assert!(!a.is_claimed("svc-claimed") && a.claim("svc-claimed").is_some());
}
