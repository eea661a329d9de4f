//! The supervisor's state directory: service definitions with their enabled flag
//! (`services/<name>.json`), pid records of running services (`run/<name>.json`) and service logs
//! (`logs/<name>.log`).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::definition::ServiceDef;

/// A persisted service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Saved {
    /// The definition.
    pub def: ServiceDef,
    /// Started when the supervisor starts.
    pub enabled: bool,
}

/// A running service's main process, recorded so that a supervisor started after a crash can
/// find and end the processes its predecessor left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PidRecord {
    /// Main pid, also the process group id.
    pub pid: u32,
    /// Its start time in clock ticks since boot (guards against pid reuse).
    pub start_time: u64,
}

/// Paths and file operations of one state directory.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating) the state directory and its subdirectories, all mode 0700.
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        for sub in ["", "services", "run", "logs"] {
            create_private_dir(&dir.join(sub))?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    /// `logs/<name>.log`.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// Writes a service's definition and flag (mode 0600: the environment may hold secrets).
    pub fn save(&self, saved: &Saved) -> std::io::Result<()> {
        let data = serde_json::to_vec_pretty(saved).map_err(std::io::Error::other)?;
        write_atomic(&self.service_path(&saved.def.name), &data)
    }

    /// Forgets a service's definition.
    pub fn forget(&self, name: &str) {
        let _ = std::fs::remove_file(self.service_path(name));
        self.clear_pid(name);
    }

    /// Every saved service; unreadable files are reported and skipped.
    pub fn load_all(&self) -> Vec<Saved> {
        let mut out = Vec::new();
        for path in json_files(&self.dir.join("services")) {
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|d| serde_json::from_slice::<Saved>(&d).map_err(|e| e.to_string()))
            {
                Ok(saved) => out.push(saved),
                Err(e) => eprintln!("opsworks-supervisor: skipping {}: {e}", path.display()),
            }
        }
        out.sort_by(|a, b| a.def.name.cmp(&b.def.name));
        out
    }

    /// Records a running service's main process.
    pub fn record_pid(&self, name: &str, rec: PidRecord) {
        if let Ok(data) = serde_json::to_vec(&rec) {
            let _ = write_atomic(&self.pid_path(name), &data);
        }
    }

    /// Removes a pid record.
    pub fn clear_pid(&self, name: &str) {
        let _ = std::fs::remove_file(self.pid_path(name));
    }

    /// Every pid record left in `run/`, with the service name.
    pub fn pid_records(&self) -> Vec<(String, PidRecord)> {
        json_files(&self.dir.join("run"))
            .into_iter()
            .filter_map(|path| {
                let name = path.file_stem()?.to_string_lossy().into_owned();
                let rec = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
                Some((name, rec))
            })
            .collect()
    }

    fn service_path(&self, name: &str) -> PathBuf {
        self.dir.join("services").join(format!("{name}.json"))
    }

    fn pid_path(&self, name: &str) -> PathBuf {
        self.dir.join("run").join(format!("{name}.json"))
    }
}

/// Creates a directory (and parents) and makes it private.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// The `*.json` files of a directory.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect()
}

/// Writes a file with mode 0600 through a temporary file and a rename.
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_services_and_pids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let saved = Saved {
            def: ServiceDef {
                name: "a".into(),
                command: "sleep 1".into(),
                ..ServiceDef::default()
            },
            enabled: true,
        };
        store.save(&saved).unwrap();
        std::fs::write(dir.path().join("services/broken.json"), b"{").unwrap();
        assert_eq!(store.load_all(), vec![saved]);
        store.record_pid(
            "a",
            PidRecord {
                pid: 7,
                start_time: 9,
            },
        );
        assert_eq!(
            store.pid_records(),
            vec![(
                "a".to_string(),
                PidRecord {
                    pid: 7,
                    start_time: 9
                }
            )]
        );
        store.forget("a");
        assert!(store.pid_records().is_empty());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
