//! What `opsworks register` finds out about a machine before it changes anything: kernel,
//! architecture, user and sudo, hostname and addresses, OS (`/etc/os-release`), service manager,
//! package manager, and whether it is registered already. One shell script, read-only.

use std::collections::BTreeMap;

use super::RegisterError;
use super::target::Target;
use crate::install::{CONFIG_DIR, INSTALL_DIR, REGISTRATION_FILE, Registration};

/// The probe: prints `key=value` lines.
const SCRIPT: &str = r#"
echo "kernel=$(uname -s)"
echo "arch=$(uname -m)"
echo "uid=$(id -u)"
if [ "$(id -u)" != 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "sudo=missing"
  elif err=$(sudo -n true 2>&1 </dev/null); then
    echo "sudo=ok"
  else
    echo "sudo=no"
    printf 'sudo_error=%s\n' "$(printf '%s' "$err" | head -n 1)"
  fi
fi
printf 'hostname=%s\n' "$(cat /proc/sys/kernel/hostname 2>/dev/null || hostname)"
if command -v ip >/dev/null 2>&1; then
  printf 'addresses=%s\n' "$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | tr '\n' ' ')"
else
  printf 'addresses=%s\n' "$(hostname -I 2>/dev/null)"
fi
if [ -r /etc/os-release ]; then
  ( . /etc/os-release
    printf 'os_id=%s\nos_like=%s\nos_version=%s\nos_pretty=%s\n' "$ID" "$ID_LIKE" "$VERSION_ID" "$PRETTY_NAME" )
fi
if [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi
for p in apt-get dnf yum; do
  if command -v "$p" >/dev/null 2>&1; then echo "pkg=$p"; break; fi
done
if [ -f CONFIG/REGISTRATION ]; then printf 'registration=%s\n' "$(tr -d '\n' < CONFIG/REGISTRATION)"; fi
if [ -e INSTALL ]; then echo "leftover=INSTALL"; fi
exit 0
"#;

/// The OS families registered machines may run (`ID` or `ID_LIKE` of `/etc/os-release`).
const FAMILIES: &[&str] = &["debian", "ubuntu", "rhel", "centos", "fedora", "amzn"];

/// What the probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `uname -s`.
    pub kernel: String,
    /// `uname -m`.
    pub arch: String,
    /// Whether the login user is root.
    pub root: bool,
    /// `ok`, `no` or `missing` for a user who is not root.
    pub sudo: Option<String>,
    /// What sudo said when it refused.
    pub sudo_error: String,
    /// The kernel's hostname.
    pub hostname: String,
    /// IPv4 addresses of global scope.
    pub addresses: Vec<String>,
    /// `ID` of `/etc/os-release`.
    pub os_id: String,
    /// `ID_LIKE`.
    pub os_like: String,
    /// `VERSION_ID`.
    pub os_version: String,
    /// `PRETTY_NAME`.
    pub os_pretty: String,
    /// Whether systemd is PID 1.
    pub systemd: bool,
    /// The package manager found.
    pub pkg: Option<String>,
    /// The machine's registration, when it has one.
    pub registration: Option<String>,
    /// An earlier installation in the way.
    pub leftover: Option<String>,
}

/// Runs the probe on the machine.
pub fn probe(target: &Target) -> Result<Facts, RegisterError> {
    let script = SCRIPT
        .replace("CONFIG", CONFIG_DIR)
        .replace("REGISTRATION", REGISTRATION_FILE)
        .replace("INSTALL", INSTALL_DIR);
    let ran = target.sh(&script, b"", None)?;
    if let Some(e) = target.connection_failure(&ran) {
        return Err(e);
    }
    if !ran.ok {
        return Err(RegisterError::Machine(format!(
            "looking at {} failed: {}",
            target.name(),
            ran.stderr.trim()
        )));
    }
    Ok(parse(&ran.stdout))
}

/// Reads the probe's lines.
pub fn parse(text: &str) -> Facts {
    let map: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let get = |k: &str| map.get(k).map(|v| v.to_string()).unwrap_or_default();
    Facts {
        kernel: get("kernel"),
        arch: get("arch"),
        root: get("uid") == "0",
        sudo: map.get("sudo").map(|v| v.to_string()),
        sudo_error: get("sudo_error"),
        hostname: get("hostname"),
        addresses: get("addresses")
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        os_id: get("os_id"),
        os_like: get("os_like"),
        os_version: get("os_version"),
        os_pretty: get("os_pretty"),
        systemd: get("systemd") == "yes",
        pkg: map.get("pkg").map(|v| v.to_string()),
        registration: map.get("registration").map(|v| v.to_string()),
        leftover: map.get("leftover").map(|v| v.to_string()),
    }
}

impl Facts {
    /// Refuses a machine the agent cannot be installed on, or one registered already; the
    /// architecture must be `arch` (this executable's).
    pub fn check(&self, name: &str, arch: &str) -> Result<(), RegisterError> {
        if self.kernel != "Linux" {
            return Err(RegisterError::UnsupportedOs {
                machine: name.to_string(),
                detail: format!("it runs {}; the agent runs on Linux only", self.kernel),
            });
        }
        if self.arch != arch {
            return Err(RegisterError::Architecture {
                machine: name.to_string(),
                theirs: self.arch.clone(),
                ours: arch.to_string(),
            });
        }
        let ids: Vec<&str> = std::iter::once(self.os_id.as_str())
            .chain(self.os_like.split_whitespace())
            .collect();
        let pretty = if self.os_pretty.is_empty() {
            "an OS without /etc/os-release".to_string()
        } else {
            format!("{} (ID={})", self.os_pretty, self.os_id)
        };
        if !ids.iter().any(|i| FAMILIES.contains(i)) {
            return Err(RegisterError::UnsupportedOs {
                machine: name.to_string(),
                detail: format!(
                    "it runs {pretty}; registered machines run Debian, Ubuntu or a Red Hat family Linux (RHEL, CentOS, Fedora, Amazon Linux)"
                ),
            });
        }
        if self.pkg.is_none() {
            return Err(RegisterError::UnsupportedOs {
                machine: name.to_string(),
                detail: format!(
                    "it runs {pretty} without apt-get, dnf or yum, which recipes install packages with"
                ),
            });
        }
        if let Some(text) = &self.registration {
            return Err(match serde_json::from_str::<Registration>(text) {
                Ok(r) => RegisterError::AlreadyRegistered {
                    machine: name.to_string(),
                    instance_id: r.instance_id,
                    stack_id: r.stack_id,
                    server: r.server,
                },
                Err(_) => RegisterError::Machine(format!(
                    "{name} has {CONFIG_DIR}/{REGISTRATION_FILE}, but it is damaged: the machine seems registered; remove the agent with `sudo opsworks agent-uninstall` first"
                )),
            });
        }
        if let Some(path) = &self.leftover {
            return Err(RegisterError::Machine(format!(
                "{name} has {path} but is not registered: an earlier installation is in the way; remove it first"
            )));
        }
        if !self.root {
            match self.sudo.as_deref() {
                Some("ok") => {}
                Some("missing") => {
                    return Err(RegisterError::NoSudo {
                        machine: name.to_string(),
                        detail: "sudo is not installed".into(),
                    });
                }
                _ => {
                    return Err(RegisterError::NoSudo {
                        machine: name.to_string(),
                        detail: if self.sudo_error.is_empty() {
                            "sudo -n refused".into()
                        } else {
                            self.sudo_error.clone()
                        },
                    });
                }
            }
        }
        Ok(())
    }

    /// The OS in words.
    pub fn os(&self) -> String {
        if self.os_pretty.is_empty() {
            format!("{} {}", self.os_id, self.os_version)
        } else {
            self.os_pretty.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian() -> Facts {
        parse(
            "kernel=Linux\narch=x86_64\nuid=1000\nsudo=ok\nhostname=web-1\naddresses=10.0.0.2 192.168.1.5 \nos_id=debian\nos_like=\nos_version=12\nos_pretty=Debian GNU/Linux 12 (bookworm)\nsystemd=no\npkg=apt-get\n",
        )
    }

    #[test]
    fn the_probe_reads_back() {
        let f = debian();
        assert_eq!(f.addresses, vec!["10.0.0.2", "192.168.1.5"]);
        assert!(!f.root && f.sudo.as_deref() == Some("ok") && !f.systemd);
        assert!(f.check("m", "x86_64").is_ok());
    }

    #[test]
    fn machines_the_agent_cannot_run_on_are_refused_clearly() {
        let arm = debian().check("m", "aarch64").unwrap_err().to_string();
        assert!(arm.contains("x86_64") && arm.contains("aarch64"), "{arm}");
        let bsd = Facts {
            kernel: "FreeBSD".into(),
            ..debian()
        };
        assert!(
            bsd.check("m", "x86_64")
                .unwrap_err()
                .to_string()
                .contains("Linux only")
        );
        let plan9 = Facts {
            os_id: "plan9".into(),
            os_pretty: "Plan 9".into(),
            ..debian()
        };
        let err = plan9.check("m", "x86_64").unwrap_err().to_string();
        assert!(err.contains("Plan 9 (ID=plan9)"), "{err}");
        let rocky = Facts {
            os_id: "rocky".into(),
            os_like: "rhel centos fedora".into(),
            pkg: Some("dnf".into()),
            ..debian()
        };
        assert!(rocky.check("m", "x86_64").is_ok());
        let no_sudo = Facts {
            sudo: Some("no".into()),
            sudo_error: "sudo: a password is required".into(),
            ..debian()
        };
        let err = no_sudo.check("m", "x86_64").unwrap_err().to_string();
        assert!(err.contains("a password is required"), "{err}");
        let registered = Facts {
            registration: Some(r#"{"instance_id":"i-1","stack_id":"s-1","server":"http://x","hostname":"h","installed_at":"t","backend":"supervisor"}"#.into()),
            ..debian()
        };
        let err = registered.check("m", "x86_64").unwrap_err().to_string();
        assert!(
            err.contains("already registered as instance i-1 of stack s-1"),
            "{err}"
        );
    }
}
