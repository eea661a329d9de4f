//! End-to-end tests of what moves between local machines: addresses (Elastic IPs) that answer
//! from whichever machine holds them, and disk images (volumes) whose data follows them. Real
//! namespaces, real ARP, real loop devices and XFS; root needed, like the other tests here.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::*;
use opsworks_sandbox::disk::{self, loop_devices};
use opsworks_sandbox::{
    DEFAULT_RESERVED, Disk, Error, FileSpec, MachineSpec, MainProcess, Provider, RootDevice,
};

/// A machine serving `/srv/www` (which says who it is) on port 8080.
fn web(id: &str) -> MachineSpec {
    let main = MainProcess::new(
        python(),
        [
            "-m",
            "http.server",
            "8080",
            "--bind",
            "0.0.0.0",
            "--directory",
            "/srv/www",
        ],
    );
    let mut spec = MachineSpec::new(id, id, RootDevice::Ebs, main);
    spec.files.push(FileSpec {
        path: "/srv/www/index.html".into(),
        contents: format!("{id}\n").into_bytes(),
        mode: 0o644,
    });
    spec
}

/// The body of GET / (None when nothing answers within `timeout`).
fn get(ip: Ipv4Addr, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let addr = SocketAddr::from((ip, 8080));
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match attempt {
            Ok(r) if r.starts_with("HTTP/1.0 200") => {
                return r.rsplit("\r\n\r\n").next().map(|b| b.trim().to_string());
            }
            _ if Instant::now() >= deadline => return None,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The first address of the default reserved range this provider can reserve (another server on
/// this host may hold some).
fn reserve_one(env: &Env) -> Ipv4Addr {
    DEFAULT_RESERVED
        .iter()
        .find(|ip| env.rt.block_on(env.provider.reserve_address(*ip)).is_ok())
        .expect("a free reserved address")
}

fn loops_of(image: &Path) -> Vec<PathBuf> {
    loop_devices()
        .into_iter()
        .filter(|l| l.backing_file == image)
        .map(|l| l.device)
        .collect()
}

#[test]
fn an_address_answers_from_the_machine_that_holds_it_and_moves() {
    let env = Env::new();
    let p = &env.provider;
    let rt = &env.rt;
    let (a, b) =
        rt.block_on(async { tokio::join!(p.provision(web("eip-a")), p.provision(web("eip-b"))) });
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        get(a.private_ip, Duration::from_secs(15)).as_deref(),
        Some("eip-a")
    );
    assert_eq!(
        get(b.private_ip, Duration::from_secs(15)).as_deref(),
        Some("eip-b")
    );

    // Only reserved addresses may be added, and only ones of the reserved range reserved.
    let outside = Ipv4Addr::new(10, 217, 0, 250);
    let err = rt
        .block_on(p.reserve_address(outside))
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the addresses kept"), "{err}");
    let eip = reserve_one(&env);
    assert!(rt.block_on(p.reserved_addresses()).unwrap().contains(&eip));
    let other = DEFAULT_RESERVED.iter().find(|ip| *ip != eip).unwrap();
    let err = rt
        .block_on(p.add_address("eip-a", other))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not reserved by this provider"), "{err}");

    rt.block_on(p.add_address("eip-a", eip)).unwrap();
    assert_eq!(rt.block_on(p.extra_addresses("eip-a")).unwrap(), vec![eip]);
    assert_eq!(get(eip, Duration::from_secs(5)).as_deref(), Some("eip-a"));
    // From inside the other machine too.
    assert_eq!(
        env.sh("eip-b", &format!("curl -s --max-time 5 http://{eip}:8080/")),
        "eip-a"
    );

    // The move: off A, onto B; the host's and B's neighbours follow at once.
    let moved = Instant::now();
    rt.block_on(p.remove_address("eip-a", eip)).unwrap();
    rt.block_on(p.add_address("eip-b", eip)).unwrap();
    let answer = get(eip, Duration::from_secs(5));
    eprintln!(
        "address moved and answering from the new machine in {:?}",
        moved.elapsed()
    );
    assert_eq!(answer.as_deref(), Some("eip-b"));
    assert!(rt.block_on(p.extra_addresses("eip-a")).unwrap().is_empty());
    assert_eq!(
        env.sh("eip-a", &format!("curl -s --max-time 5 http://{eip}:8080/")),
        "eip-b"
    );
    // Removing what a machine lacks is a no-op.
    rt.block_on(p.remove_address("eip-a", eip)).unwrap();

    // A machine stopped loses it; one booted with it in its spec answers on it at once.
    rt.block_on(p.stop("eip-b", Duration::from_secs(5)))
        .unwrap();
    assert!(rt.block_on(p.extra_addresses("eip-b")).unwrap().is_empty());
    assert!(matches!(
        rt.block_on(p.add_address("eip-b", eip)),
        Err(Error::NotRunning { .. })
    ));
    let mut spec = web("eip-b");
    spec.addresses.push(eip);
    rt.block_on(p.provision(spec)).unwrap();
    assert_eq!(get(eip, Duration::from_secs(15)).as_deref(), Some("eip-b"));

    // Another provider on this host cannot take it.
    let second =
        opsworks_sandbox::LocalProvider::new(config(&env.dir.path().join("second"))).unwrap();
    assert!(matches!(
        second.reserve_address_blocking(eip),
        Err(Error::AddressInUse { .. })
    ));
    rt.block_on(p.remove_address("eip-b", eip)).unwrap();
    rt.block_on(p.release_address(eip)).unwrap();
    assert!(!rt.block_on(p.reserved_addresses()).unwrap().contains(&eip));
    second.reserve_address_blocking(eip).unwrap();
    second.release_address_blocking(eip).unwrap();
    for id in ["eip-a", "eip-b"] {
        p.destroy_blocking(id).unwrap();
        assert_no_trace(&env, id);
    }
}

#[test]
fn a_disk_keeps_its_data_across_stops_moves_to_another_machine_and_is_never_mounted_twice() {
    let env = Env::new();
    let p = &env.provider;
    let rt = &env.rt;
    let image = env.dir.path().join("volumes").join("vol-1.img");
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    disk::create_image(&image, 1 << 30).expect("mkfs.xfs (Debian's xfsprogs) must be installed");
    let with_disk = |id: &str| {
        let mut spec = sleeper_spec(id, RootDevice::InstanceStore);
        spec.disks.push(Disk {
            image: image.clone(),
            mount_point: "/srv/data".into(),
            fstype: "xfs".into(),
        });
        spec
    };

    rt.block_on(p.provision(with_disk("disk-a"))).unwrap();
    assert_eq!(env.sh("disk-a", "stat -f -c %T /srv/data"), "xfs");
    assert_eq!(loops_of(&image).len(), 1, "one loop device while mounted");
    assert!(disk::image_in_use(&image).unwrap());
    env.sh("disk-a", "echo written-by-a > /srv/data/note && sync");
    // The mount is the machine's own: the host does not see it.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/srv/data"));

    // A second machine cannot mount it while the first has it.
    let started = Instant::now();
    let err = rt
        .block_on(p.provision(with_disk("disk-b")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("attached to another machine"), "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "it waited for a release first"
    );
    assert_eq!(
        loops_of(&image).len(),
        1,
        "the refused boot left no loop device"
    );

    // Stopped, the machine holds no loop device; started again (a fresh root), the data is there.
    rt.block_on(p.stop("disk-a", Duration::from_secs(5)))
        .unwrap();
    assert!(
        loops_of(&image).is_empty(),
        "a stopped machine holds no loop device"
    );
    assert!(!disk::image_in_use(&image).unwrap());
    rt.block_on(p.provision(with_disk("disk-a"))).unwrap();
    assert_eq!(env.sh("disk-a", "cat /srv/data/note"), "written-by-a");
    rt.block_on(p.stop("disk-a", Duration::from_secs(5)))
        .unwrap();

    // Moved: the other machine reads and writes it.
    rt.block_on(p.provision(with_disk("disk-b"))).unwrap();
    assert_eq!(env.sh("disk-b", "cat /srv/data/note"), "written-by-a");
    env.sh("disk-b", "echo written-by-b >> /srv/data/note");
    // A crash (the init killed) frees it as well.
    let pid = running_pid(rt.block_on(p.status("disk-b")).unwrap());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    assert!(disk::wait_released(&image, Duration::from_secs(10)).unwrap());
    assert!(loops_of(&image).is_empty());
    rt.block_on(p.provision(with_disk("disk-a"))).unwrap();
    assert_eq!(
        env.sh("disk-a", "cat /srv/data/note"),
        "written-by-a\nwritten-by-b"
    );

    // A mount point reached through a symbolic link is refused, leaving nothing attached.
    rt.block_on(p.stop("disk-a", Duration::from_secs(5)))
        .unwrap();
    let mut spec = with_disk("disk-c");
    spec.disks[0].mount_point = "/var/run/data".into();
    if Path::new("/var/run").is_symlink() {
        let err = rt.block_on(p.provision(spec)).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(loops_of(&image).is_empty());
    }
    for id in ["disk-a", "disk-b", "disk-c"] {
        p.destroy_blocking(id).unwrap();
        assert_no_trace(&env, id);
    }
    assert!(loops_of(&image).is_empty());
}
