//! What a machine is asked to be (`MachineSpec`) and what a provider reports back (`Machine`,
//! `MachineState`, `ExecOutput`), with the validation every provider applies before creating anything.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The root device type of an instance, as OpsWorks names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootDevice {
    /// The root file system survives stop and start.
    Ebs,
    /// The root file system starts fresh at every provision.
    InstanceStore,
}

/// The machine's main process (the agent): when it exits, the machine stops.
#[derive(Clone, Serialize, Deserialize)]
pub struct MainProcess {
    /// Executable; a bare name is looked up in the machine's `PATH`.
    pub program: PathBuf,
    /// Arguments, without the program name.
    pub args: Vec<String>,
    /// Environment on top of a minimal default (`PATH`, `HOME`, `HOSTNAME`); may hold secrets.
    pub env: Vec<(String, String)>,
}

impl MainProcess {
    /// A main process with no extra environment.
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        MainProcess {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
        }
    }
}

// Environment values may be credentials: show only the names.
impl fmt::Debug for MainProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("MainProcess")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env_names", &names)
            .finish()
    }
}

/// A file placed inside the machine before the main process starts (e.g. the agent's credential).
#[derive(Clone, Serialize, Deserialize)]
pub struct FileSpec {
    /// Absolute path inside the machine; parent directories are created.
    pub path: PathBuf,
    /// The file's contents.
    pub contents: Vec<u8>,
    /// Permission bits, e.g. `0o600`.
    pub mode: u32,
}

// File contents may be credentials: show only the size.
impl fmt::Debug for FileSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSpec")
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// Everything a provider needs to create and boot a machine.
#[derive(Debug, Clone)]
pub struct MachineSpec {
    /// Machine id (the OpsWorks instance id): 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
    pub id: String,
    /// Host name set inside the machine.
    pub hostname: String,
    /// Whether the root file system survives stop/start.
    pub root_device: RootDevice,
    /// The main process (the agent).
    pub main: MainProcess,
    /// Files written inside before the main process starts.
    pub files: Vec<FileSpec>,
    /// Host paths that must not be visible inside (each gets an empty file system mounted over it).
    pub hidden_paths: Vec<PathBuf>,
    /// CPU and memory limits of the machine's control group (`None`: a group without limits,
    /// whose processes are still counted and removed with it).
    pub limits: Option<Limits>,
    /// Addresses the machine answers on besides its own (Elastic IPs), each reserved by this
    /// provider ([`crate::LocalProvider::reserve_address`]) and announced when the machine boots.
    pub addresses: Vec<Ipv4Addr>,
    /// Disk images mounted inside before the main process starts (volumes).
    pub disks: Vec<Disk>,
}

/// A disk image mounted inside a machine at boot: a file system in a file on the host (see
/// [`crate::disk::create_image`]), attached to a loop device that lives exactly as long as the
/// mount. The image is locked while attached, so two machines never mount it at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// The image on the host (an absolute path).
    pub image: PathBuf,
    /// Where it is mounted inside the machine (an absolute path, not `/`).
    pub mount_point: PathBuf,
    /// Its file system type (`xfs`).
    pub fstype: String,
}

/// Where a disk may not be mounted: the root, and the pseudo file systems the machine's init
/// mounts fresh.
const FORBIDDEN_MOUNTS: &[&str] = &["/proc", "/sys", "/dev"];

/// The CPU and memory a machine may use, enforced by its control group (the server fills them
/// from the instance type, `opsworks_model::instance_types::size_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU time in thousandths of a CPU: 2000 is two CPUs' worth (a CFS quota per 100 ms
    /// period). More than the host has only means no CPU limit.
    pub cpu_millis: u32,
    /// Memory in bytes (page cache included, as the kernel counts it); no swap beyond it.
    pub memory_bytes: u64,
}

impl Limits {
    /// The limits of `vcpus` CPUs and `memory_mib` MiB.
    pub fn new(vcpus: u32, memory_mib: u64) -> Self {
        Limits {
            cpu_millis: vcpus.saturating_mul(1000),
            memory_bytes: memory_mib.saturating_mul(1024 * 1024),
        }
    }
}

/// The least a machine may be given: 1 % of a CPU (the kernel's smallest quota is 1 ms per
/// 100 ms) and 32 MiB (below that the init and an agent do not fit).
const MIN_CPU_MILLIS: u32 = 10;
const MIN_MEMORY_BYTES: u64 = 32 << 20;

impl MachineSpec {
    /// A spec with no extra files and no hidden paths.
    pub fn new(
        id: impl Into<String>,
        hostname: impl Into<String>,
        root_device: RootDevice,
        main: MainProcess,
    ) -> Self {
        MachineSpec {
            id: id.into(),
            hostname: hostname.into(),
            root_device,
            main,
            files: Vec::new(),
            hidden_paths: Vec::new(),
            limits: None,
            addresses: Vec::new(),
            disks: Vec::new(),
        }
    }

    /// Rejects anything that would make provisioning fail halfway or escape the machine.
    pub fn validate(&self) -> Result<()> {
        validate_id(&self.id)?;
        validate_hostname(&self.hostname)?;
        if self.main.program.as_os_str().is_empty() {
            return invalid("the main process program is empty");
        }
        no_nul(
            "the main process program",
            self.main.program.to_string_lossy().as_ref(),
        )?;
        for arg in &self.main.args {
            no_nul("a main process argument", arg)?;
        }
        for (key, value) in &self.main.env {
            if key.is_empty() || key.contains('=') {
                return invalid(format!(
                    "environment variable name {key:?} is empty or contains '='"
                ));
            }
            no_nul("an environment variable name", key)?;
            // Never echo the value: it may be a secret.
            no_nul(&format!("the value of environment variable {key}"), value)?;
        }
        for file in &self.files {
            validate_inside_path("file", &file.path)?;
            if file.mode > 0o7777 {
                return invalid(format!(
                    "file {} has mode {:o}, above 7777",
                    file.path.display(),
                    file.mode
                ));
            }
        }
        for path in &self.hidden_paths {
            validate_inside_path("hidden path", path)?;
            if path == Path::new("/") {
                return invalid("the root directory cannot be hidden");
            }
        }
        for (i, ip) in self.addresses.iter().enumerate() {
            if self.addresses[..i].contains(ip) {
                return invalid(format!("address {ip} is given twice"));
            }
        }
        for (i, disk) in self.disks.iter().enumerate() {
            validate_disk(disk)?;
            if self.disks[..i]
                .iter()
                .any(|d| d.mount_point == disk.mount_point || d.image == disk.image)
            {
                return invalid(format!(
                    "disk {} or mount point {} is given twice",
                    disk.image.display(),
                    disk.mount_point.display()
                ));
            }
        }
        if let Some(limits) = &self.limits {
            if limits.cpu_millis < MIN_CPU_MILLIS {
                return invalid(format!(
                    "a CPU limit of {} thousandths of a CPU is below the least, {MIN_CPU_MILLIS}",
                    limits.cpu_millis
                ));
            }
            if limits.memory_bytes < MIN_MEMORY_BYTES {
                return invalid(format!(
                    "a memory limit of {} bytes is below the least, 32 MiB",
                    limits.memory_bytes
                ));
            }
        }
        Ok(())
    }
}

/// Checks a machine id; ids name directories and network namespaces, so they are kept plain.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        invalid(format!(
            "machine id {id:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ - and not start with '.'"
        ))
    }
}

fn validate_hostname(hostname: &str) -> Result<()> {
    // sethostname(2) allows 64 bytes; labels follow RFC 1123.
    let labels_ok = hostname.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if !hostname.is_empty() && hostname.len() <= 64 && labels_ok {
        Ok(())
    } else {
        invalid(format!(
            "host name {hostname:?} is not a valid host name of at most 64 characters"
        ))
    }
}

fn validate_disk(disk: &Disk) -> Result<()> {
    if !disk.image.is_absolute() {
        return invalid(format!(
            "disk image {} is not absolute",
            disk.image.display()
        ));
    }
    no_nul("a disk image path", disk.image.to_string_lossy().as_ref())?;
    validate_inside_path("mount point", &disk.mount_point)?;
    if disk.mount_point == Path::new("/")
        || FORBIDDEN_MOUNTS
            .iter()
            .any(|p| disk.mount_point.starts_with(p))
    {
        return invalid(format!(
            "a disk cannot be mounted at {}",
            disk.mount_point.display()
        ));
    }
    if disk.fstype.is_empty() || !disk.fstype.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return invalid(format!(
            "file system type {:?} is not a plain name",
            disk.fstype
        ));
    }
    Ok(())
}

fn validate_inside_path(what: &str, path: &Path) -> Result<()> {
    if !path.is_absolute() {
        return invalid(format!("{what} {} is not absolute", path.display()));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return invalid(format!("{what} {} contains '..'", path.display()));
    }
    no_nul(what, path.to_string_lossy().as_ref())
}

fn no_nul(what: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        invalid(format!("{what} contains a NUL byte"))
    } else {
        Ok(())
    }
}

fn invalid<T>(reason: impl Into<String>) -> Result<T> {
    Err(Error::InvalidSpec {
        reason: reason.into(),
    })
}

/// A machine as the provider knows it, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Machine id.
    pub id: String,
    /// Host name set inside.
    pub hostname: String,
    /// Private IPv4 address, reachable from the host and from other machines.
    pub private_ip: Ipv4Addr,
    /// Root device type of the last provision.
    pub root_device: RootDevice,
    /// Whether it runs.
    pub state: MachineState,
}

/// Whether a machine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    /// The machine's init runs; `pid` is its pid on the host.
    Running {
        /// Host pid of the machine's init (PID 1 inside).
        pid: u32,
    },
    /// The machine exists (its disk and address are kept) but nothing runs.
    Stopped,
    /// No such machine.
    Absent,
}

/// What a command run inside a machine printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code; 128 + signal number when the command was killed by a signal.
    pub exit_code: i32,
    /// Captured standard output.
    pub stdout: Vec<u8>,
    /// Captured standard error.
    pub stderr: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MachineSpec {
        MachineSpec::new(
            "i-1",
            "web1",
            RootDevice::Ebs,
            MainProcess::new("/bin/true", Vec::<String>::new()),
        )
    }

    #[test]
    fn accepts_a_plain_spec() {
        spec().validate().unwrap();
    }

    #[test]
    fn rejects_bad_ids_hostnames_and_paths() {
        for id in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            let mut s = spec();
            s.id = id.to_string();
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains("machine id"), "{id:?}: {err}");
        }
        for host in ["", "-web", "web_1", "a..b", &"h".repeat(65)] {
            let mut s = spec();
            s.hostname = host.to_string();
            assert!(
                s.validate().unwrap_err().to_string().contains("host name"),
                "{host:?}"
            );
        }
        let mut s = spec();
        s.files.push(FileSpec {
            path: "etc/x".into(),
            contents: vec![],
            mode: 0o600,
        });
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("not absolute")
        );
        let mut s = spec();
        s.hidden_paths.push("/srv/../etc".into());
        assert!(s.validate().unwrap_err().to_string().contains("'..'"));
        let mut s = spec();
        s.main.env.push(("A=B".into(), "v".into()));
        assert!(s.validate().unwrap_err().to_string().contains("'='"));
        let mut s = spec();
        s.limits = Some(Limits::new(0, 1024));
        assert!(s.validate().unwrap_err().to_string().contains("CPU limit"));
        s.limits = Some(Limits::new(1, 16));
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("memory limit")
        );
        s.limits = Some(Limits::new(2, 1024));
        s.validate().unwrap();
    }

    #[test]
    fn rejects_bad_disks_and_repeated_addresses() {
        let disk = |image: &str, at: &str| Disk {
            image: image.into(),
            mount_point: at.into(),
            fstype: "xfs".into(),
        };
        let mut s = spec();
        s.disks.push(disk("/var/lib/v/vol-1.img", "/data"));
        s.validate().unwrap();
        for (bad, why) in [
            (disk("vol.img", "/data2"), "not absolute"),
            (disk("/v/2.img", "data"), "not absolute"),
            (disk("/v/2.img", "/"), "cannot be mounted at /"),
            (disk("/v/2.img", "/proc/x"), "cannot be mounted"),
            (disk("/v/2.img", "/srv/../etc"), "'..'"),
            (disk("/var/lib/v/vol-1.img", "/other"), "given twice"),
            (disk("/v/3.img", "/data"), "given twice"),
        ] {
            let mut t = s.clone();
            t.disks.push(bad);
            let err = t.validate().unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
        let mut t = s.clone();
        t.disks[0].fstype = "xfs,rw".into();
        assert!(t.validate().unwrap_err().to_string().contains("plain name"));
        let ip = Ipv4Addr::new(10, 217, 255, 1);
        s.addresses = vec![ip, ip];
        assert!(s.validate().unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut s = spec();
        s.main.env.push(("TOKEN".into(), "s3cr3t-value".into()));
        s.files.push(FileSpec {
            path: "/etc/cred".into(),
            contents: b"s3cr3t-file".to_vec(),
            mode: 0o600,
        });
        let shown = format!("{s:?}");
        assert!(shown.contains("TOKEN") && shown.contains("/etc/cred"));
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
