//! The real package manager (apt here; CI is Debian), with a tiny package.

use opsworks_host::HostError;
use opsworks_host::package::{
    Manager, candidate_version, detect, install, installed_version, remove,
};

use super::common::{is_root, on_path};

/// A small package with no dependencies worth speaking of.
const PACKAGE: &str = "sl";

#[test]
fn install_and_remove_a_small_package() {
    // CI is Debian, as root, with Debian's mirrors reachable: there this test must run.
    assert!(
        on_path("apt-get"),
        "this test needs apt-get (Debian or Ubuntu, as CI); it installs and removes {PACKAGE}"
    );
    assert!(
        is_root(),
        "this test installs a package: run it as root (CI does)"
    );
    let m = detect().unwrap();
    assert_eq!(m, Manager::Apt);
    let was_installed = installed_version(m, PACKAGE).unwrap();
    if was_installed.is_some() {
        println!("note: {PACKAGE} was installed before the test; it is left installed");
    }
    if let Err(e) = install(m, PACKAGE, None) {
        panic!(
            "installing {PACKAGE} failed: {e}\n(the test needs the Debian package mirrors this \
             host's apt uses to be reachable, as they are in CI)"
        );
    }
    let version = installed_version(m, PACKAGE).unwrap().expect("installed");
    assert_eq!(
        candidate_version(m, PACKAGE).unwrap(),
        Some(version.clone())
    );
    // Pinning the installed version is accepted (and changes nothing).
    install(m, PACKAGE, Some(&version)).unwrap();
    assert_eq!(
        installed_version(m, PACKAGE).unwrap(),
        Some(version.clone())
    );
    // A version that does not exist is named in the error.
    match install(m, PACKAGE, Some("0.0.0-nonexistent")) {
        Err(HostError::PackageNotFound { name }) => {
            assert!(name.contains("0.0.0-nonexistent"), "{name}")
        }
        other => panic!("{other:?}"),
    }
    if was_installed.is_none() {
        remove(m, PACKAGE).unwrap();
        assert_eq!(installed_version(m, PACKAGE).unwrap(), None);
    }
    match install(m, "opsworks-no-such-package-xyz", None) {
        Err(HostError::PackageNotFound { name }) => {
            assert_eq!(name, "opsworks-no-such-package-xyz")
        }
        other => panic!("{other:?}"),
    }
}
