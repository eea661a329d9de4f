//! Users and groups created, changed and removed for real (the tests run as root).

use opsworks_host::HostError;
use opsworks_host::users::{
    GroupSpec, UserSpec, create_group, create_user, get_group, get_user, modify_group, modify_user,
    remove_group, remove_user,
};

use super::common::unique;

/// Removes the test's users and groups even when an assertion fails.
struct Cleanup {
    users: Vec<String>,
    groups: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = std::process::Command::new("userdel")
                .args(["-r", u])
                .output();
        }
        for g in &self.groups {
            let _ = std::process::Command::new("groupdel").arg(g).output();
        }
    }
}

#[test]
fn users_and_groups_round_trip() {
    let user = unique("owu");
    let group = unique("owg");
    let extra = unique("owx");
    let _cleanup = Cleanup {
        users: vec![user.clone()],
        groups: vec![group.clone(), extra.clone()],
    };
    assert_eq!(get_user(&user).unwrap(), None);
    assert_eq!(get_group(&group).unwrap(), None);

    create_group(&GroupSpec {
        name: group.clone(),
        ..GroupSpec::default()
    })
    .unwrap();
    let g = get_group(&group).unwrap().unwrap();
    assert!(g.members.is_empty());

    let home = std::path::PathBuf::from(format!("/tmp/{user}-home"));
    create_user(&UserSpec {
        name: user.clone(),
        gid: Some(group.clone()),
        home: Some(home.clone()),
        shell: Some("/bin/sh".into()),
        comment: Some("Opsworks Test".into()),
        manage_home: true,
        ..UserSpec::default()
    })
    .unwrap();
    let u = get_user(&user).unwrap().unwrap();
    assert_eq!(u.gid, g.gid);
    assert_eq!(u.home, home);
    assert_eq!(u.shell, "/bin/sh");
    assert_eq!(u.comment, "Opsworks Test");
    assert!(home.is_dir(), "manage_home creates the home directory");

    // Creating it again is the tool's error, with its message.
    match create_user(&UserSpec {
        name: user.clone(),
        ..UserSpec::default()
    }) {
        Err(HostError::CommandFailed {
            command, stderr, ..
        }) => {
            assert!(command.starts_with("useradd"), "{command}");
            assert!(stderr.contains("already exists"), "{stderr}");
        }
        other => panic!("{other:?}"),
    }

    // Modify changes only what differs; a spec equal to the state changes nothing.
    let spec = UserSpec {
        name: user.clone(),
        shell: Some("/bin/bash".into()),
        comment: Some("Changed".into()),
        uid: Some(u.uid),
        ..UserSpec::default()
    };
    modify_user(&spec).unwrap();
    let u2 = get_user(&user).unwrap().unwrap();
    assert_eq!(u2.shell, "/bin/bash");
    assert_eq!(u2.comment, "Changed");
    assert_eq!(u2.uid, u.uid);
    modify_user(&spec).unwrap();
    assert_eq!(get_user(&user).unwrap().unwrap(), u2);

    // Members: set, appended to, replaced.
    create_group(&GroupSpec {
        name: extra.clone(),
        members: vec![user.clone()],
        ..GroupSpec::default()
    })
    .unwrap();
    assert_eq!(
        get_group(&extra).unwrap().unwrap().members,
        vec![user.clone()]
    );
    modify_group(&GroupSpec {
        name: extra.clone(),
        members: vec!["root".into()],
        append: true,
        ..GroupSpec::default()
    })
    .unwrap();
    assert_eq!(
        get_group(&extra).unwrap().unwrap().members,
        vec![user.clone(), "root".to_string()]
    );
    modify_group(&GroupSpec {
        name: extra.clone(),
        members: vec!["root".into()],
        ..GroupSpec::default()
    })
    .unwrap();
    assert_eq!(get_group(&extra).unwrap().unwrap().members, vec!["root"]);
    let new_gid = get_group(&extra).unwrap().unwrap().gid + 1000;
    modify_group(&GroupSpec {
        name: extra.clone(),
        gid: Some(new_gid),
        members: vec!["root".into()],
        ..GroupSpec::default()
    })
    .unwrap();
    assert_eq!(get_group(&extra).unwrap().unwrap().gid, new_gid);

    // Removal, twice (the second is a no-op).
    remove_user(&user, true).unwrap();
    assert_eq!(get_user(&user).unwrap(), None);
    assert!(!home.exists(), "remove_home removes the home directory");
    remove_user(&user, true).unwrap();
    remove_group(&extra).unwrap();
    remove_group(&group).unwrap();
    assert_eq!(get_group(&group).unwrap(), None);
    assert_eq!(get_group(&extra).unwrap(), None);
    remove_group(&group).unwrap();
}

#[test]
fn unknown_group_in_modify_is_named() {
    match modify_group(&GroupSpec {
        name: "owt-no-such-group".into(),
        ..GroupSpec::default()
    }) {
        Err(HostError::UnknownGroup { name }) => assert_eq!(name, "owt-no-such-group"),
        other => panic!("{other:?}"),
    }
}
