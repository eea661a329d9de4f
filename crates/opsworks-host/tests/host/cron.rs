//! Cron entries written to, read from and removed from a real crontab.

use std::collections::BTreeMap;
use std::process::Command;

use opsworks_host::cron::{CronSpec, get_cron, remove_cron, set_cron};
use opsworks_host::users::{UserSpec, create_user};

use super::common::{on_path, unique};

/// Deletes the test user (and with it its crontab).
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("crontab").args(["-u", &self.0, "-r"]).output();
        let _ = Command::new("userdel").arg(&self.0).output();
    }
}

fn crontab_text(user: &str) -> String {
    let out = Command::new("crontab")
        .args(["-u", user, "-l"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cron_entries_round_trip_and_keep_foreign_lines() {
    assert!(
        on_path("crontab"),
        "this test needs the `crontab` binary: install the `cron` package (CI does)"
    );
    let user = unique("owc");
    create_user(&UserSpec {
        name: user.clone(),
        ..UserSpec::default()
    })
    .unwrap();
    let _cleanup = Cleanup(user.clone());

    // A line nobody manages must survive every change.
    let mut seed = Command::new("crontab");
    seed.args(["-u", &user, "-"])
        .stdin(std::process::Stdio::piped());
    let mut child = seed.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"0 0 * * * /bin/unmanaged\n")
        .unwrap();
    assert!(child.wait().unwrap().success());

    assert_eq!(get_cron("backup", &user).unwrap(), None);
    let mut env = BTreeMap::new();
    env.insert("HOME".to_string(), "/srv/backup".to_string());
    let spec = CronSpec {
        name: "backup".into(),
        minute: "30".into(),
        hour: "2".into(),
        weekday: "1-5".into(),
        command: "/usr/local/bin/backup --all > /dev/null 2>&1".into(),
        user: user.clone(),
        environment: env,
        ..CronSpec::default()
    };
    set_cron(&spec).unwrap();
    assert_eq!(get_cron("backup", &user).unwrap(), Some(spec.clone()));
    let text = crontab_text(&user);
    assert!(
        text.contains("# Chef Name: backup\nHOME=/srv/backup\n30 2 * * 1-5 /usr/local/bin/backup"),
        "{text}"
    );
    assert!(text.contains("/bin/unmanaged"), "{text}");

    // A second entry, then a change to the first: replaced in place, not duplicated.
    let other = CronSpec {
        name: "rotate logs".into(),
        minute: "@daily".into(),
        command: "/usr/sbin/logrotate /etc/logrotate.conf".into(),
        user: user.clone(),
        ..CronSpec::default()
    };
    set_cron(&other).unwrap();
    let changed = CronSpec {
        hour: "3".into(),
        ..spec.clone()
    };
    set_cron(&changed).unwrap();
    let text = crontab_text(&user);
    assert_eq!(text.matches("# Chef Name: backup").count(), 1, "{text}");
    assert!(
        text.find("backup").unwrap() < text.find("rotate logs").unwrap(),
        "{text}"
    );
    assert_eq!(get_cron("backup", &user).unwrap(), Some(changed));
    assert_eq!(get_cron("rotate logs", &user).unwrap(), Some(other.clone()));

    assert!(remove_cron("backup", &user).unwrap());
    assert!(!remove_cron("backup", &user).unwrap());
    assert_eq!(get_cron("backup", &user).unwrap(), None);
    let text = crontab_text(&user);
    assert!(!text.contains("HOME=/srv/backup"), "{text}");
    assert!(text.contains("/bin/unmanaged"), "{text}");
    assert_eq!(get_cron("rotate logs", &user).unwrap(), Some(other));

    // An unknown user is crontab's error, reported.
    assert!(get_cron("x", "owt-no-such-user").is_err());
}
