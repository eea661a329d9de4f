//! Package management through the system's package manager: apt, dnf, yum or apk, detected from
//! PATH. State comes from dpkg-query, rpm or apk; changes go through apt-get, dnf, yum or apk.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cmd;
use crate::error::{HostError, Result};

/// A package manager this crate can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// Debian and Ubuntu: apt-get, apt-cache, dpkg-query.
    Apt,
    /// Fedora, RHEL 8+: dnf and rpm.
    Dnf,
    /// Older RHEL/CentOS: yum and rpm.
    Yum,
    /// Alpine: apk.
    Apk,
}

/// Whether this process already refreshed the package index (it does so at most once).
static INDEX_REFRESHED: AtomicBool = AtomicBool::new(false);

/// Finds the package manager of this host, preferring apt, then dnf, yum and apk.
pub fn detect() -> Result<Manager> {
    [
        ("apt-get", Manager::Apt),
        ("dnf", Manager::Dnf),
        ("yum", Manager::Yum),
        ("apk", Manager::Apk),
    ]
    .into_iter()
    .find(|(tool, _)| cmd::on_path(tool))
    .map(|(_, m)| m)
    .ok_or(HostError::NoPackageManager)
}

/// The installed version of `name`, or `None` when it is not installed.
pub fn installed_version(m: Manager, name: &str) -> Result<Option<String>> {
    check_name(name)?;
    match m {
        Manager::Apt => {
            let mut cmd = Command::new("dpkg-query");
            cmd.args(["-W", "-f=${Status}\t${Version}\n", "--", name]);
            let out = cmd::output(&mut cmd, None)?;
            // dpkg-query exits 1 for a package it has never heard of.
            if !out.status.success() {
                return Ok(None);
            }
            Ok(parse_dpkg_query(&String::from_utf8_lossy(&out.stdout)))
        }
        Manager::Dnf | Manager::Yum => {
            let mut cmd = Command::new("rpm");
            cmd.args([
                "-q",
                "--qf",
                "%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n",
                "--",
                name,
            ]);
            let out = cmd::output(&mut cmd, None)?;
            if !out.status.success() {
                return Ok(None);
            }
            // Several versions can be installed side by side (kernels); report the newest listed.
            Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string()))
        }
        Manager::Apk => {
            let mut cmd = Command::new("apk");
            cmd.args(["list", "--installed", "--", name]);
            let out = cmd::run(&mut cmd)?;
            Ok(parse_apk_list(&String::from_utf8_lossy(&out.stdout), name))
        }
    }
}

/// The version an install of `name` would get, or `None` when no repository offers it.
pub fn candidate_version(m: Manager, name: &str) -> Result<Option<String>> {
    check_name(name)?;
    match m {
        Manager::Apt => {
            let mut cmd = Command::new("apt-cache");
            cmd.args(["policy", "--", name]);
            let out = cmd::run(&mut cmd)?;
            Ok(parse_apt_policy(&String::from_utf8_lossy(&out.stdout)))
        }
        Manager::Dnf => {
            let mut cmd = Command::new("dnf");
            cmd.args([
                "-q",
                "repoquery",
                "--latest-limit=1",
                "--qf",
                "%{epoch}:%{version}-%{release}\n",
                "--",
                name,
            ]);
            let out = cmd::run(&mut cmd)?;
            Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .map(|l| l.strip_prefix("0:").unwrap_or(l).to_string()))
        }
        Manager::Yum => {
            let mut cmd = Command::new("yum");
            cmd.args(["-q", "list", "--", name]);
            let out = cmd::output(&mut cmd, None)?;
            // yum exits 1 with "No matching Packages to list".
            if !out.status.success() {
                return Ok(None);
            }
            Ok(parse_yum_list(&String::from_utf8_lossy(&out.stdout), name))
        }
        Manager::Apk => {
            let mut cmd = Command::new("apk");
            cmd.args(["list", "--", name]);
            let out = cmd::run(&mut cmd)?;
            Ok(parse_apk_list(&String::from_utf8_lossy(&out.stdout), name))
        }
    }
}

/// Installs `name`, at `version` when given. When no repository offers the package (or the
/// pinned version), the package index is refreshed once per process and the lookup retried.
pub fn install(m: Manager, name: &str, version: Option<&str>) -> Result<()> {
    check_name(name)?;
    if let Some(v) = version {
        check_version(v)?;
    }
    if !offered(m, name, version)? {
        refresh_index_once(m)?;
        if !offered(m, name, version)? {
            return Err(HostError::PackageNotFound {
                name: match version {
                    Some(v) => format!("{name} version {v}"),
                    None => name.to_string(),
                },
            });
        }
    }
    let mut cmd = base_command(m);
    match m {
        Manager::Apt => {
            cmd.arg("install");
            if version.is_some() {
                cmd.arg("--allow-downgrades");
            }
            cmd.arg("--");
            cmd.arg(match version {
                Some(v) => format!("{name}={v}"),
                None => name.to_string(),
            });
        }
        Manager::Dnf | Manager::Yum => {
            cmd.arg("install").arg("--");
            cmd.arg(match version {
                Some(v) => format!("{name}-{v}"),
                None => name.to_string(),
            });
        }
        Manager::Apk => {
            cmd.arg("add").arg("--");
            cmd.arg(match version {
                Some(v) => format!("{name}={v}"),
                None => name.to_string(),
            });
        }
    }
    cmd::run(&mut cmd)?;
    Ok(())
}

/// Upgrades an installed `name` to the candidate version.
pub fn upgrade(m: Manager, name: &str) -> Result<()> {
    check_name(name)?;
    let mut cmd = base_command(m);
    match m {
        Manager::Apt => cmd.args(["install", "--only-upgrade", "--", name]),
        Manager::Dnf | Manager::Yum => cmd.args(["upgrade", "--", name]),
        Manager::Apk => cmd.args(["add", "--upgrade", "--", name]),
    };
    cmd::run(&mut cmd)?;
    Ok(())
}

/// Removes `name` (configuration files are kept, as `apt-get remove` does).
pub fn remove(m: Manager, name: &str) -> Result<()> {
    check_name(name)?;
    let mut cmd = base_command(m);
    match m {
        Manager::Apt => cmd.args(["remove", "--", name]),
        Manager::Dnf | Manager::Yum => cmd.args(["remove", "--", name]),
        Manager::Apk => cmd.args(["del", "--", name]),
    };
    cmd::run(&mut cmd)?;
    Ok(())
}

/// The non-interactive invocation of the manager's changing tool.
fn base_command(m: Manager) -> Command {
    match m {
        Manager::Apt => {
            let mut cmd = Command::new("apt-get");
            cmd.env("DEBIAN_FRONTEND", "noninteractive").args([
                "-q",
                "-y",
                // Wait for another apt/dpkg run to finish instead of failing at once.
                "-o",
                "DPkg::Lock::Timeout=300",
                // Keep locally changed configuration files without asking.
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
            ]);
            cmd
        }
        Manager::Dnf => {
            let mut cmd = Command::new("dnf");
            cmd.arg("-y");
            cmd
        }
        Manager::Yum => {
            let mut cmd = Command::new("yum");
            cmd.arg("-y");
            cmd
        }
        Manager::Apk => {
            let mut cmd = Command::new("apk");
            cmd.arg("--no-progress");
            cmd
        }
    }
}

/// Whether a repository offers `name` (at `version`, when given).
fn offered(m: Manager, name: &str, version: Option<&str>) -> Result<bool> {
    if let (Manager::Apt, Some(v)) = (m, version) {
        let mut cmd = Command::new("apt-cache");
        cmd.args(["madison", "--", name]);
        let out = cmd::output(&mut cmd, None)?;
        return Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.split('|').nth(1).map(str::trim) == Some(v)));
    }
    // For dnf, yum and apk a pinned version is left to the tool, which names what it lacks.
    Ok(candidate_version(m, name)?.is_some())
}

/// Refreshes the package index, at most once per process.
fn refresh_index_once(m: Manager) -> Result<()> {
    if INDEX_REFRESHED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let mut cmd = base_command(m);
    match m {
        Manager::Apt => cmd.arg("update"),
        Manager::Dnf | Manager::Yum => cmd.arg("makecache"),
        Manager::Apk => cmd.arg("update"),
    };
    cmd::run(&mut cmd)?;
    Ok(())
}

/// Parses `dpkg-query -W -f='${Status}\t${Version}\n'` output; only "installed" counts (a removed
/// package whose configuration files remain reports `deinstall ok config-files`).
fn parse_dpkg_query(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (status, version) = line.split_once('\t')?;
        (status.split_whitespace().last() == Some("installed") && !version.is_empty())
            .then(|| version.to_string())
    })
}

/// Parses the `Candidate:` line of `apt-cache policy`.
fn parse_apt_policy(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let v = line.trim().strip_prefix("Candidate:")?.trim();
        (v != "(none)" && !v.is_empty()).then(|| v.to_string())
    })
}

/// Parses `yum list NAME`: the last `NAME.arch version repo` line (available after installed).
fn parse_yum_list(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let pkg = f.next()?;
            let version = f.next()?;
            let (pkg_name, _arch) = pkg.rsplit_once('.')?;
            (pkg_name == name).then(|| version.to_string())
        })
        .next_back()
}

/// Parses `apk list`: lines such as `curl-8.5.0-r0 x86_64 {curl} (MIT) [installed]`.
fn parse_apk_list(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let token = line.split_whitespace().next()?;
        let version = token.strip_prefix(name)?.strip_prefix('-')?;
        // `curl-dev-1.0` also starts with `curl-`; a version starts with a digit.
        version
            .starts_with(|c: char| c.is_ascii_digit())
            .then(|| version.to_string())
    })
}

/// Rejects package names the tools would read as options or that hold whitespace.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.starts_with('-')
        || name.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        return Err(HostError::invalid(
            "package name",
            format!(
                "`{}` is empty, starts with '-' or contains whitespace",
                name.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// Rejects version pins with whitespace.
fn check_version(version: &str) -> Result<()> {
    if version.is_empty() || version.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(HostError::invalid(
            "package version",
            format!(
                "`{}` is empty or contains whitespace",
                version.escape_debug()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_must_be_installed() {
        assert_eq!(
            parse_dpkg_query("install ok installed\t5.2.15-2+b8\n"),
            Some("5.2.15-2+b8".into())
        );
        assert_eq!(parse_dpkg_query("deinstall ok config-files\t1.0\n"), None);
        assert_eq!(parse_dpkg_query("unknown ok not-installed\t\n"), None);
    }

    #[test]
    fn apt_policy_candidate() {
        let text = "sl:\n  Installed: (none)\n  Candidate: 5.02-1+b1\n  Version table:\n";
        assert_eq!(parse_apt_policy(text), Some("5.02-1+b1".into()));
        assert_eq!(
            parse_apt_policy("x:\n  Installed: (none)\n  Candidate: (none)\n"),
            None
        );
        assert_eq!(parse_apt_policy(""), None);
    }

    #[test]
    fn apk_and_yum_lists() {
        let apk = "curl-dev-8.5.0-r0 x86_64 {curl} (MIT)\ncurl-8.5.0-r0 x86_64 {curl} (MIT) [installed]\n";
        assert_eq!(parse_apk_list(apk, "curl"), Some("8.5.0-r0".into()));
        let yum = "Installed Packages\ngit.x86_64   1.8.3-1.el7   @base\nAvailable Packages\ngit.x86_64   1.8.3-2.el7   updates\n";
        assert_eq!(parse_yum_list(yum, "git"), Some("1.8.3-2.el7".into()));
    }

    #[test]
    fn option_like_names_are_rejected() {
        assert!(matches!(
            installed_version(Manager::Apt, "--purge"),
            Err(HostError::InvalidInput { .. })
        ));
        assert!(install(Manager::Apt, "sl", Some("1 2")).is_err());
    }
}
