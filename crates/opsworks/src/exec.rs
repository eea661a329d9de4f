//! `opsworks exec INSTANCE_ID [-- COMMAND ...]`: a way into a running local instance. It joins
//! the instance machine's namespaces, root and control group and runs the command (root's login
//! shell by default) on the caller's terminal, passing its exit status through. Root on the
//! host only; the machine is found under the server's data dir.

use std::process::ExitCode;

use anyhow::{Context, bail};
use opsworks_sandbox::{Error, LocalConfig, LocalProvider, ensure_root};

/// Runs `opsworks exec`: the command's exit status, or an error saying why the instance could
/// not be entered.
pub fn run(args: crate::cli::ExecArgs) -> anyhow::Result<ExitCode> {
    ensure_root("opsworks exec (it enters the instance's namespaces)")?;
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => crate::cli::default_data_dir()?,
    };
    // The server keeps its machines in DIR/machines (see `attach_local_machines`).
    let machines = data_dir.join("machines");
    if !machines.is_dir() {
        bail!(
            "{} holds no local instances (no {}); pass the server's --data-dir",
            data_dir.display(),
            machines.display()
        );
    }
    let provider = LocalProvider::new(LocalConfig::new(&machines))
        .with_context(|| format!("opening the local instances in {}", machines.display()))?;
    let id = &args.instance_id;
    let code = match provider.exec_attached(id, &args.command) {
        Ok(code) => code,
        Err(Error::NotFound { .. }) => bail!(
            "instance {id} is not a local instance of the server whose data dir is {}",
            data_dir.display()
        ),
        Err(Error::NotRunning { .. }) => {
            bail!("instance {id} is not running; start it first (StartInstance)")
        }
        Err(e @ Error::NotRoot { .. }) => return Err(e.into()),
        Err(e) => return Err(e).with_context(|| format!("cannot enter instance {id}")),
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)))
}
