//! `opsworks db migrate --from DIR --to URL`: a stopped server's data dir (its SQLite database
//! and command logs) copied into an empty PostgreSQL database, which servers then share.

use std::path::Path;

use anyhow::{Context, bail};

use opsworks_server::core::logs::MAX_LOG_BYTES;
use opsworks_store::{Engine, StoreError};

/// Copies `from`'s contents into the PostgreSQL database at `to`; prints what it copied and
/// what to do next.
pub async fn migrate(from: &Path, to: &str) -> anyhow::Result<()> {
    let db = from.join("opsworks.db");
    if !db.is_file() {
        bail!(
            "{} holds no opsworks.db: --from names the data dir of a server on the embedded database",
            from.display()
        );
    }
    let target = Engine::from_url(to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    if !matches!(target, Engine::Postgres { .. }) {
        bail!("--to must name a PostgreSQL database (postgres://user:password@host:port/db)");
    }
    // Opening the source takes its lock: a server still running on it is refused here.
    let source = opsworks_store::open_backend(&Engine::Sqlite { path: db.clone() })
        .await
        .map_err(|e| match e {
            StoreError::Locked(m) => anyhow::anyhow!("{m}; stop it before migrating"),
            other => anyhow::anyhow!("opening {}: {other}", db.display()),
        })?;
    let dest = opsworks_store::open_backend(&target)
        .await
        .with_context(|| format!("opening {target}"))?;
    let report = opsworks_store::copy_all(&*source, &*dest)
        .await
        .map_err(|e| match e {
            StoreError::TargetNotEmpty(m) => anyhow::anyhow!(
                "{target} is not empty ({m}); migrate into a new, empty database (createdb), nothing was copied"
            ),
            other => anyhow::anyhow!("copying into {target}: {other}"),
        })?;
    println!("{report}");
    let logs = copy_logs(&from.join("logs"), &*dest).await?;
    println!("copied {logs} command logs");
    println!();
    println!(
        "Next: start each server with --database-url (or OPSWORKS_DATABASE_URL) naming {target}."
    );
    println!(
        "One of them keeps {} as its data dir (it holds the machines of its local instances);",
        from.display()
    );
    println!(
        "every other one gets a data dir of its own with a copy of {} (mode 0600):",
        from.join("master.key").display()
    );
    println!(
        "the access keys' secrets are sealed under it, and every server of the database needs it."
    );
    Ok(())
}

/// Copies every `<command id>.log` of `dir` into the database's command logs.
async fn copy_logs(dir: &Path, dest: &dyn opsworks_store::Backend) -> anyhow::Result<u64> {
    let Some(cluster) = dest.cluster() else {
        bail!("the target keeps no command logs");
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut copied = 0;
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
        else {
            continue;
        };
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        cluster
            .append_log(id, 0, &text, false, MAX_LOG_BYTES.max(text.len() as u64))
            .await
            .with_context(|| format!("copying the log {}", path.display()))?;
        copied += 1;
    }
    Ok(copied)
}
