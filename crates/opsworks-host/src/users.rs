//! Users and groups: state read from /etc/passwd and /etc/group, changes made with the shadow tools
//! (useradd, usermod, userdel, groupadd, groupmod, groupdel).

use std::path::PathBuf;
use std::process::Command;

use crate::cmd;
use crate::error::{HostError, Result};

/// The password database; a constant so the parsing functions can be tested on other text.
const PASSWD: &str = "/etc/passwd";
/// The group database.
const GROUP: &str = "/etc/group";

/// A user as it exists on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Numeric primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
    /// Login shell.
    pub shell: String,
    /// The GECOS field (full name or comment).
    pub comment: String,
}

/// The desired state of a user; `None` fields are left to the system's defaults (on create) or
/// unchanged (on modify).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSpec {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: Option<u32>,
    /// Primary group, by name or number.
    pub gid: Option<String>,
    /// Home directory.
    pub home: Option<PathBuf>,
    /// Login shell.
    pub shell: Option<String>,
    /// The GECOS field.
    pub comment: Option<String>,
    /// Create a system account (low uid, no aging).
    pub system: bool,
    /// Create the home directory on create, move it when `home` changes on modify.
    pub manage_home: bool,
}

/// A group as it exists on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group name.
    pub name: String,
    /// Numeric group id.
    pub gid: u32,
    /// Supplementary members listed in /etc/group.
    pub members: Vec<String>,
}

/// The desired state of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSpec {
    /// Group name.
    pub name: String,
    /// Numeric group id.
    pub gid: Option<u32>,
    /// Members to have; with `append` they are added to the existing ones, otherwise they
    /// replace them.
    pub members: Vec<String>,
    /// Add `members` rather than replacing the member list.
    pub append: bool,
    /// Create a system group.
    pub system: bool,
}

/// Loads a user from /etc/passwd; `None` when there is no such user.
pub fn get_user(name: &str) -> Result<Option<UserInfo>> {
    check_name("user name", name)?;
    let text = read_db(PASSWD)?;
    Ok(parse_passwd(&text).into_iter().find(|u| u.name == name))
}

/// Loads a group from /etc/group; `None` when there is no such group.
pub fn get_group(name: &str) -> Result<Option<GroupInfo>> {
    check_name("group name", name)?;
    let text = read_db(GROUP)?;
    Ok(parse_group(&text).into_iter().find(|g| g.name == name))
}

/// The ids of the groups that list `user` as a member (for dropping privileges to that user).
pub(crate) fn supplementary_gids(user: &str) -> Result<Vec<u32>> {
    let text = read_db(GROUP)?;
    Ok(parse_group(&text)
        .into_iter()
        .filter(|g| g.members.iter().any(|m| m == user))
        .map(|g| g.gid)
        .collect())
}

/// Loads a user or fails with [`HostError::UnknownUser`].
pub(crate) fn require_user(name: &str) -> Result<UserInfo> {
    get_user(name)?.ok_or_else(|| HostError::UnknownUser {
        name: name.to_string(),
    })
}

/// Creates a user with `useradd`.
pub fn create_user(spec: &UserSpec) -> Result<()> {
    check_user_spec(spec)?;
    let mut cmd = Command::new("useradd");
    if let Some(uid) = spec.uid {
        cmd.arg("-u").arg(uid.to_string());
    }
    if let Some(gid) = &spec.gid {
        cmd.arg("-g").arg(gid);
    }
    if let Some(home) = &spec.home {
        cmd.arg("-d").arg(home);
    }
    if let Some(shell) = &spec.shell {
        cmd.arg("-s").arg(shell);
    }
    if let Some(comment) = &spec.comment {
        cmd.arg("-c").arg(comment);
    }
    if spec.system {
        cmd.arg("-r");
    }
    cmd.arg(if spec.manage_home { "-m" } else { "-M" });
    cmd.arg("--").arg(&spec.name);
    cmd::run(&mut cmd)?;
    Ok(())
}

/// Brings an existing user to `spec` with `usermod`, passing only the fields that differ
/// (usermod refuses to run with nothing to do).
pub fn modify_user(spec: &UserSpec) -> Result<()> {
    check_user_spec(spec)?;
    let current = require_user(&spec.name)?;
    let mut cmd = Command::new("usermod");
    let mut changes = 0;
    if let Some(uid) = spec.uid.filter(|uid| *uid != current.uid) {
        cmd.arg("-u").arg(uid.to_string());
        changes += 1;
    }
    if let Some(gid) = &spec.gid
        && resolve_gid(gid)? != current.gid
    {
        cmd.arg("-g").arg(gid);
        changes += 1;
    }
    if let Some(home) = spec.home.as_ref().filter(|h| **h != current.home) {
        cmd.arg("-d").arg(home);
        if spec.manage_home {
            cmd.arg("-m");
        }
        changes += 1;
    }
    if let Some(shell) = spec.shell.as_ref().filter(|s| **s != current.shell) {
        cmd.arg("-s").arg(shell);
        changes += 1;
    }
    if let Some(comment) = spec.comment.as_ref().filter(|c| **c != current.comment) {
        cmd.arg("-c").arg(comment);
        changes += 1;
    }
    if changes == 0 {
        return Ok(());
    }
    cmd.arg("--").arg(&spec.name);
    cmd::run(&mut cmd)?;
    Ok(())
}

/// Removes a user with `userdel`, and its home directory when `remove_home` is set. Removing a
/// user that does not exist succeeds.
pub fn remove_user(name: &str, remove_home: bool) -> Result<()> {
    let Some(user) = get_user(name)? else {
        return Ok(());
    };
    let mut cmd = Command::new("userdel");
    // userdel -r fails when the home directory is already gone; only ask when it exists.
    if remove_home && user.home.is_dir() {
        cmd.arg("-r");
    }
    cmd.arg("--").arg(name);
    cmd::run(&mut cmd)?;
    Ok(())
}

/// Creates a group with `groupadd` and sets its members.
pub fn create_group(spec: &GroupSpec) -> Result<()> {
    check_group_spec(spec)?;
    let mut cmd = Command::new("groupadd");
    if let Some(gid) = spec.gid {
        cmd.arg("-g").arg(gid.to_string());
    }
    if spec.system {
        cmd.arg("-r");
    }
    cmd.arg("--").arg(&spec.name);
    cmd::run(&mut cmd)?;
    if !spec.members.is_empty() {
        set_members(&spec.name, &spec.members)?;
    }
    Ok(())
}

/// Brings an existing group to `spec`: gid with `groupmod -g`, members with `groupmod -U`
/// (or `gpasswd -M` where groupmod is too old to know `-U`).
pub fn modify_group(spec: &GroupSpec) -> Result<()> {
    check_group_spec(spec)?;
    let current = get_group(&spec.name)?.ok_or_else(|| HostError::UnknownGroup {
        name: spec.name.clone(),
    })?;
    if let Some(gid) = spec.gid.filter(|gid| *gid != current.gid) {
        let mut cmd = Command::new("groupmod");
        cmd.arg("-g").arg(gid.to_string()).arg("--").arg(&spec.name);
        cmd::run(&mut cmd)?;
    }
    let wanted = wanted_members(&current.members, &spec.members, spec.append);
    if wanted != current.members {
        set_members(&spec.name, &wanted)?;
    }
    Ok(())
}

/// Removes a group with `groupdel`; removing a group that does not exist succeeds.
pub fn remove_group(name: &str) -> Result<()> {
    if get_group(name)?.is_none() {
        return Ok(());
    }
    let mut cmd = Command::new("groupdel");
    cmd.arg("--").arg(name);
    cmd::run(&mut cmd)?;
    Ok(())
}

/// The member list a group should end with: `members` alone, or appended to `current`.
fn wanted_members(current: &[String], members: &[String], append: bool) -> Vec<String> {
    let mut wanted: Vec<String> = if append { current.to_vec() } else { Vec::new() };
    for m in members {
        if !wanted.contains(m) {
            wanted.push(m.clone());
        }
    }
    wanted
}

/// Replaces the member list of `group`.
fn set_members(group: &str, members: &[String]) -> Result<()> {
    for m in members {
        check_name("group member", m)?;
    }
    let list = members.join(",");
    let mut cmd = Command::new("groupmod");
    cmd.arg("-U").arg(&list).arg("--").arg(group);
    let out = cmd::output(&mut cmd, None)?;
    if out.status.success() {
        return Ok(());
    }
    // Exit status 2 is "invalid command syntax": a groupmod from before shadow 4.10 without -U.
    if out.status.code() == Some(2) && cmd::on_path("gpasswd") {
        let mut cmd = Command::new("gpasswd");
        cmd.arg("-M").arg(&list).arg(group);
        cmd::run(&mut cmd)?;
        return Ok(());
    }
    Err(cmd::failure(&cmd, &out))
}

/// A group given by name or number, as a gid.
fn resolve_gid(group: &str) -> Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    get_group(group)?
        .map(|g| g.gid)
        .ok_or_else(|| HostError::UnknownGroup {
            name: group.to_string(),
        })
}

/// Reads a database file.
fn read_db(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| HostError::io("cannot read", path, e))
}

/// Parses /etc/passwd text, skipping malformed lines (NIS `+` entries, comments).
pub(crate) fn parse_passwd(text: &str) -> Vec<UserInfo> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() != 7 {
                return None;
            }
            Some(UserInfo {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                comment: f[4].to_string(),
                home: PathBuf::from(f[5]),
                shell: f[6].to_string(),
            })
        })
        .collect()
}

/// Parses /etc/group text, skipping malformed lines.
pub(crate) fn parse_group(text: &str) -> Vec<GroupInfo> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() != 4 {
                return None;
            }
            Some(GroupInfo {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Rejects names the databases cannot hold or the tools would read as options.
fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(HostError::invalid(what, "it is empty"));
    }
    if name.starts_with('-') {
        return Err(HostError::invalid(
            what,
            format!("`{name}` starts with '-'"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, ':' | ',' | '\n' | '/') || c.is_whitespace() || c.is_control())
    {
        return Err(HostError::invalid(
            what,
            format!("`{}` contains {c:?}", name.escape_debug()),
        ));
    }
    Ok(())
}

/// Validates a user spec before any tool runs.
fn check_user_spec(spec: &UserSpec) -> Result<()> {
    check_name("user name", &spec.name)?;
    for (what, value) in [
        ("comment", spec.comment.as_deref()),
        ("shell", spec.shell.as_deref()),
    ] {
        if value.is_some_and(|v| v.contains([':', '\n'])) {
            return Err(HostError::invalid(what, "it contains ':' or a newline"));
        }
    }
    if let Some(home) = &spec.home
        && (!home.is_absolute() || home.to_string_lossy().contains([':', '\n']))
    {
        return Err(HostError::invalid(
            "home",
            format!("{} must be an absolute path without ':'", home.display()),
        ));
    }
    Ok(())
}

/// Validates a group spec before any tool runs.
fn check_group_spec(spec: &GroupSpec) -> Result<()> {
    check_name("group name", &spec.name)?;
    for m in &spec.members {
        check_name("group member", m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_and_skips_junk() {
        let users = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\n+::::::\nbad line\nweb:x:1001:1002:Web App,,,:/srv/web:/usr/sbin/nologin\n",
        );
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].name, "web");
        assert_eq!(users[1].uid, 1001);
        assert_eq!(users[1].gid, 1002);
        assert_eq!(users[1].comment, "Web App,,,");
        assert_eq!(users[1].home, PathBuf::from("/srv/web"));
        assert_eq!(users[1].shell, "/usr/sbin/nologin");
    }

    #[test]
    fn parses_group_members() {
        let groups = parse_group("sudo:x:27:alice,bob\nempty:x:100:\n");
        assert_eq!(groups[0].members, vec!["alice", "bob"]);
        assert!(groups[1].members.is_empty());
    }

    #[test]
    fn member_lists_replace_or_append() {
        let cur = vec!["a".to_string(), "b".to_string()];
        let new = vec!["b".to_string(), "c".to_string()];
        assert_eq!(wanted_members(&cur, &new, true), vec!["a", "b", "c"]);
        assert_eq!(wanted_members(&cur, &new, false), vec!["b", "c"]);
    }

    #[test]
    fn rejects_bad_names() {
        assert!(get_user("").is_err());
        assert!(get_user("-r").is_err());
        assert!(get_user("a:b").is_err());
        assert!(get_group("x\ny").is_err());
    }
}
