//! System resources against the real host (root in CI): user, group, cron, git, remote_file
//! over loopback HTTP and package (from the Debian mirrors). Each converges twice and checks the
//! second run is a no-op. The service resource with the supervisor is tested through the
//! `opsworks` binary, which is the supervisor (`crates/opsworks/tests/converge_cli.rs`).

#[path = "support/kit.rs"]
mod kit;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kit::Kit;
use opsworks_recipe::converge;

/// Fails the test, saying why, unless it runs as root (these tests change users, crontabs and
/// packages; CI runs as root).
fn require_root() {
    assert!(
        is_root(),
        "this test changes the system (users, cron, packages): run it as root, as CI does"
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes test users/groups/crontab entries even when an assertion fails.
struct Cleanup(Vec<String>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.0 {
            let _ = Command::new("sh").arg("-c").arg(c).output();
        }
    }
}

#[test]
fn users_and_groups_converge_and_are_idempotent() {
    require_root();
    let suffix = std::process::id() % 100000;
    let (user, grp) = (format!("owu{suffix}"), format!("owg{suffix}"));
    let _c = Cleanup(vec![
        format!("userdel -r {user}"),
        format!("groupdel {grp}"),
    ]);
    let k = Kit::new();
    let home = k.root().join("home");
    k.cookbook(
        "t",
        &[(
            "recipes/default.star",
            &format!(
                r#"group("{grp}")
user("{user}", shell = "/bin/sh", home = "{home}", comment = "test user", manage_home = True)
group("{grp}", members = ["{user}"], action = "modify")
"#,
                home = home.display()
            ),
        )],
    );
    let r = k.run(&["t"]);
    assert!(r.success, "{}", r.to_text());
    assert_eq!(r.updated, 3, "{}", r.to_text());
    assert!(
        sh(&format!("getent passwd {user}"))
            .ends_with(&format!("test user:{}:/bin/sh", home.display()))
    );
    assert!(sh(&format!("getent group {grp}")).ends_with(&user));
    let again = k.run(&["t"]);
    assert_eq!(again.updated, 0, "{}", again.to_text());

    // Drift: change the shell behind the engine's back, then converge it back.
    sh(&format!("usermod -s /bin/bash {user}"));
    let fixed = k.run(&["t"]);
    assert_eq!(fixed.updated, 1, "{}", fixed.to_text());
    assert!(fixed.resources.iter().any(|e| {
        e.changes
            .iter()
            .any(|c| c == "change shell from /bin/bash to /bin/sh")
    }));
}

#[test]
fn cron_entries_are_managed_by_name() {
    require_root();
    assert!(
        !sh("command -v crontab").is_empty(),
        "this test needs the `crontab` binary: install the `cron` package (CI does)"
    );
    let name = format!("opsworks-test-{}", std::process::id());
    let _c = Cleanup(vec![format!(
        "crontab -l 2>/dev/null | grep -v -- '{name}' | grep -v 'echo opsworks-cron-test' | crontab -"
    )]);
    let k = Kit::new();
    k.cookbook(
        "t",
        &[
            ("recipes/default.star", &format!("cron(\"{name}\", minute = \"*/5\", command = \"echo opsworks-cron-test\", mailto = \"ops@example.test\")\n")),
            ("recipes/delete.star", &format!("cron(\"{name}\", action = \"delete\")\n")),
        ],
    );
    let r = k.run(&["t"]);
    assert!(r.success && r.updated == 1, "{}", r.to_text());
    let tab = sh("crontab -l");
    assert!(
        tab.contains(&format!("# Chef Name: {name}"))
            && tab.contains("*/5 * * * * echo opsworks-cron-test"),
        "{tab}"
    );
    assert_eq!(k.run(&["t"]).updated, 0);
    let d = k.run(&["t::delete"]);
    assert_eq!(d.updated, 1, "{}", d.to_text());
    assert!(!sh("crontab -l").contains(&name));
    assert_eq!(k.run(&["t::delete"]).updated, 0);
}

#[test]
fn git_syncs_a_local_repository_to_a_revision() {
    let k = Kit::new();
    let repo = k.dir.path().join("repo");
    let git = |args: &str| {
        sh(&format!(
            "cd {} && git -c user.email=t@t -c user.name=t {args}",
            repo.display()
        ))
    };
    std::fs::create_dir_all(&repo).unwrap();
    git(
        "init -q -b main . && echo one > f && git add f && git -c user.email=t@t -c user.name=t commit -q -m one",
    );
    let dest = k.root().join("checkout");
    k.cookbook(
        "t",
        &[(
            "recipes/default.star",
            &format!(
                "git(\"{}\", repository = \"file://{}\", revision = \"main\")\n",
                dest.display(),
                repo.display()
            ),
        )],
    );
    let r = k.run(&["t"]);
    assert!(r.success, "{}", r.to_text());
    assert_eq!(std::fs::read_to_string(dest.join("f")).unwrap(), "one\n");
    assert_eq!(k.run(&["t"]).updated, 0);
    std::fs::write(repo.join("f"), "two\n").unwrap();
    git("commit -q -am two");
    let r = k.run(&["t"]);
    assert_eq!(r.updated, 1, "{}", r.to_text());
    assert_eq!(std::fs::read_to_string(dest.join("f")).unwrap(), "two\n");
}

/// A one-file HTTP server on loopback that counts requests.
fn serve(body: &'static [u8]) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            h.fetch_add(1, Ordering::SeqCst);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body);
        }
    });
    (format!("http://{addr}/file.txt"), hits)
}

#[test]
fn remote_file_downloads_verifies_and_skips_when_the_checksum_matches() {
    let (url, hits) = serve(b"remote content\n");
    let sum = "a8f4a4b7e2f3ec0bd8c4a1ef5d34d4a6e9aa1c37d7c1fd6c3ac0a4c43b0b5c79";
    let k = Kit::new();
    let real_sum = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"remote content\n"))
    };
    assert_ne!(sum, real_sum);
    k.cookbook(
        "t",
        &[
            ("recipes/default.star", &format!("remote_file(node[\"t\"][\"root\"] + \"/f\", source = \"{url}\", checksum = \"{real_sum}\", mode = \"0640\")\nremote_file(node[\"t\"][\"root\"] + \"/g\", source = \"{url}\")\n")),
            ("recipes/bad.star", &format!("remote_file(node[\"t\"][\"root\"] + \"/bad\", source = \"{url}\", checksum = \"{sum}\")\n")),
        ],
    );
    let r = k.run(&["t"]);
    assert!(r.success, "{}", r.to_text());
    assert_eq!(k.read("f"), "remote content\n");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let again = k.run(&["t"]);
    assert_eq!(again.updated, 0, "{}", again.to_text());
    // With a checksum the file is not fetched again; without one it is fetched and compared.
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let bad = converge(&k.cfg(&["t::bad"])).unwrap();
    assert!(!bad.success);
    assert!(
        !k.root().join("bad").exists(),
        "a file with the wrong checksum must not be installed"
    );
    assert!(bad.error.unwrap().contains("remote_file["));
}

/// Installs and removes `sl` from the Debian mirrors this host's apt uses (reachable in CI).
#[test]
fn package_install_and_remove() {
    require_root();
    assert!(
        !sh("command -v apt-get").is_empty(),
        "this test needs apt-get (Debian or Ubuntu, as CI)"
    );
    let k = Kit::new();
    k.cookbook(
        "t",
        &[
            ("recipes/default.star", "package(\"sl\")\n"),
            (
                "recipes/remove.star",
                "package(\"sl\", action = \"remove\")\n",
            ),
        ],
    );
    let r = k.run(&["t"]);
    assert!(
        r.success,
        "installing sl failed (the Debian mirrors must be reachable, as in CI):\n{}",
        r.to_text()
    );
    assert!(!sh("dpkg-query -W -f='${Status}' sl").is_empty());
    assert_eq!(k.run(&["t"]).updated, 0);
    let rm = k.run(&["t::remove"]);
    assert!(rm.success && rm.updated == 1, "{}", rm.to_text());
    assert_eq!(k.run(&["t::remove"]).updated, 0);
}
