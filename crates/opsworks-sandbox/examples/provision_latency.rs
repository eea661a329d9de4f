//! Measures the local provider's provision (call to main process started), the time until the
//! main process has connected back to the host over the machine network, and stop and destroy
//! times. Needs root.
//!
//! `cargo run --release -p opsworks-sandbox --example provision_latency -- [N]`
//! (build the helper first: `cargo build --release -p opsworks-sandbox --bins`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use opsworks_sandbox::{LocalConfig, LocalProvider, MachineSpec, MainProcess, RootDevice};

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20);
    let exe = std::env::current_exe()?;
    // examples/ sits next to the binaries of the same profile.
    let helper: PathBuf = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("opsworks-sandbox-helper"))
        .unwrap_or_default();
    let state = tempfile::Builder::new()
        .prefix("sandbox-bench-")
        .tempdir_in("/var/tmp")?;
    let provider = LocalProvider::new(
        LocalConfig::new(state.path()).with_helper(helper, Vec::<String>::new()),
    )?;
    provider.prepare()?;
    // The main process connects back to a listener on the gateway, as the agent will reach the
    // control plane: that is the moment a machine is useful.
    let listener = std::net::TcpListener::bind((provider.gateway(), 0))?;
    let port = listener.local_addr()?.port();
    let (mut provision, mut connected, mut stop, mut destroy) = (vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        let id = format!("bench-{i}");
        let script = format!(
            "echo {id} > /dev/tcp/{}/{port}; exec sleep 1000",
            provider.gateway()
        );
        let main = MainProcess::new("/bin/bash", ["-c", script.as_str()]);
        let t = Instant::now();
        provider.provision_blocking(MachineSpec::new(&id, &id, RootDevice::InstanceStore, main))?;
        provision.push(t.elapsed());
        let (mut stream, _) = listener.accept()?;
        connected.push(t.elapsed());
        let mut hello = String::new();
        std::io::Read::read_to_string(&mut stream, &mut hello)?;
        anyhow::ensure!(hello.trim() == id, "unexpected hello {hello:?}");
        let t = Instant::now();
        provider.stop_blocking(&id, Duration::from_secs(5))?;
        stop.push(t.elapsed());
        let t = Instant::now();
        provider.destroy_blocking(&id)?;
        destroy.push(t.elapsed());
    }
    for (name, mut samples) in [
        ("provision", provision),
        ("connected", connected),
        ("stop", stop),
        ("destroy", destroy),
    ] {
        samples.sort();
        let p = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        println!(
            "{name:>10}: p50 {:>8.1?}  p95 {:>8.1?}  max {:>8.1?}",
            p(0.5),
            p(0.95),
            p(1.0)
        );
    }
    provider.remove_bridge_if_unused()?;
    Ok(())
}
