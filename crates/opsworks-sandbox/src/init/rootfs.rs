//! The machine's file system view, built by its init before the main process starts: the
//! overlay root over the host's root (and over each other disk file system of the host), fresh
//! pseudo file systems, the machine's own control group at `/sys/fs/cgroup`, a minimal `/dev`,
//! hidden paths, and the machine's identity files.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::unistd::{chdir, pivot_root, sethostname};

use super::LaunchSpec;
use crate::cgroup::InnerMount;
use crate::error::{Error, Result};
use crate::procfs::unescape_mountinfo;
use crate::spec::{Disk, FileSpec};

/// Marks the `/etc/hosts` line the provider manages.
const HOSTS_MARK: &str = "# opsworks-sandbox";

/// Where a machine sees the host's files live and read-only (the agent reads local sources
/// there). The overlay root cannot serve for that: the kernel leaves changes to a lower layer
/// made after mounting undefined, and in practice a file the host replaces by a rename (a git
/// ref after a commit) keeps its old content inside the machine for as long as it is cached.
pub const HOST_VIEW: &str = "/run/opsworks/host";

/// Builds the machine's root and moves the calling process (the machine's init) into it.
pub(super) fn build(spec: &LaunchSpec) -> Result<()> {
    let none = None::<&str>;
    // Nothing mounted from here on may propagate back to the host.
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(Error::sys("making mounts private"))?;
    let options = format!(
        "lowerdir=/,upperdir={},workdir={}",
        spec.upper.display(),
        spec.work.display()
    );
    mount(
        Some("overlay"),
        &spec.merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(Error::sys(format!(
        "mounting the overlay root at {}",
        spec.merged.display()
    )))?;
    let root = spec.merged.as_path();
    // The root overlay shows only the root file system; give every other real file system of the
    // host (a separate /var, /home, /srv...) its own copy-on-write overlay at the same place.
    let points = host_submounts(&spec.hidden)?;
    for point in &points {
        overlay_submount(root, &spec.mounts, point)?;
    }
    let quiet = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    // The overlay covers only the host's root file system; the pseudo file systems are fresh.
    mount_in(root, "proc", "proc", quiet, None)?;
    mount_in(root, "sys", "sysfs", quiet | MsFlags::MS_RDONLY, None)?;
    if let Some(cgroup) = &spec.cgroup {
        mount_cgroups(root, &cgroup.mounts)?;
    }
    populate_dev(root)?;
    mount_in(
        root,
        "tmp",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    mount_in(
        root,
        "run",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )?;
    host_view(root, &points)?;
    // Last before the pivot, while the host's /dev and the images are in view: on top of
    // everything else, so a volume at /srv/www is not covered by an overlay.
    for disk in &spec.disks {
        mount_disk(root, disk)?;
    }
    // Hidden paths as the host resolves them, to hide them in the host view too (a symlink
    // met inside the view would resolve in the machine, not on the host).
    let hidden_on_host: Vec<PathBuf> = spec
        .hidden
        .iter()
        .filter_map(|h| fs::canonicalize(h).ok())
        .collect();
    let null = File::open(root.join("dev/null")).map_err(Error::io("opening /dev/null"))?;
    nix::unistd::dup2_stdin(null.as_fd()).map_err(Error::sys("redirecting stdin"))?;

    chdir(root).map_err(Error::sys(format!("entering {}", root.display())))?;
    // Stack the old root on the new one and detach it: no put_old directory is needed.
    pivot_root(".", ".").map_err(Error::sys("pivot_root into the overlay root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(Error::sys("detaching the host root"))?;
    chdir("/").map_err(Error::sys("entering /"))?;

    // From here on paths resolve inside the machine, symlinks included.
    for path in &spec.hidden {
        hide(path)?;
    }
    for path in &hidden_on_host {
        if let Ok(rel) = path.strip_prefix("/") {
            hide(&Path::new(HOST_VIEW).join(rel))?;
        }
    }
    sethostname(&spec.hostname).map_err(Error::sys("setting the host name"))?;
    write_identity(&spec.hostname, spec.private_ip)?;
    if let Some(resolv_conf) = &spec.resolv_conf {
        write_resolv_conf(resolv_conf)?;
    }
    for file in &spec.files {
        place_file(file)?;
    }
    for (path, target) in &spec.links {
        place_link(path, target)?;
    }
    Ok(())
}

/// Mounts the machine's control group hierarchies read-only at `/sys/fs/cgroup`: mounted from
/// inside the machine's cgroup namespace, each shows the machine's own group as its root, so
/// the machine sees its own limits and usage (and cannot raise its limits).
fn mount_cgroups(root: &Path, mounts: &[InnerMount]) -> Result<()> {
    let base = root.join("sys/fs/cgroup");
    if !base.is_dir() {
        return Err(Error::Io {
            context: "mounting the machine's control group".to_string(),
            source: std::io::Error::other("/sys/fs/cgroup is missing from sysfs"),
        });
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if let [only] = mounts
        && only.dir.is_empty()
    {
        return mount(
            Some(only.fstype.as_str()),
            &base,
            Some(only.fstype.as_str()),
            flags | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(Error::sys(
            "mounting the machine's cgroup2 at /sys/fs/cgroup",
        ));
    }
    let tmpfs_options = "mode=755,size=64k";
    mount(
        Some("tmpfs"),
        &base,
        Some("tmpfs"),
        flags,
        Some(tmpfs_options),
    )
    .map_err(Error::sys("mounting a tmpfs at /sys/fs/cgroup"))?;
    for inner in mounts {
        let dir = base.join(&inner.dir);
        fs::create_dir(&dir)
            .map_err(Error::io(format!("creating /sys/fs/cgroup/{}", inner.dir)))?;
        mount(
            Some(inner.fstype.as_str()),
            &dir,
            Some(inner.fstype.as_str()),
            flags | MsFlags::MS_RDONLY,
            Some(inner.options.as_str()),
        )
        .map_err(Error::sys(format!(
            "mounting the machine's {} hierarchy at /sys/fs/cgroup/{}",
            inner.options, inner.dir
        )))?;
        for link in &inner.links {
            std::os::unix::fs::symlink(&inner.dir, base.join(link))
                .map_err(Error::io(format!("linking /sys/fs/cgroup/{link}")))?;
        }
    }
    mount(
        None::<&str>,
        &base,
        None::<&str>,
        flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        Some(tmpfs_options),
    )
    .map_err(Error::sys("making /sys/fs/cgroup read-only"))
}

/// Places a symbolic link, replacing a file or link already there (on the machine's disk only).
fn place_link(path: &Path, target: &Path) -> Result<()> {
    let context = || format!("linking {} to {}", path.display(), target.display());
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(Error::io(context()))?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(Error::Io {
                context: context(),
                source: std::io::Error::other("a directory is in the way"),
            });
        }
        Ok(_) => fs::remove_file(path).map_err(Error::io(context()))?,
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, path).map_err(Error::io(context()))
}

/// How long a boot waits for an image a stopped machine held to be released by the kernel.
const DISK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Attaches a disk image to a loop device (autoclear: it goes with the mount) and mounts it at
/// its mount point inside. On failure the loop device goes with the dropped handle.
fn mount_disk(root: &Path, disk: &Disk) -> Result<()> {
    let rel = disk
        .mount_point
        .strip_prefix("/")
        .unwrap_or(&disk.mount_point);
    // Before the pivot an absolute link inside the machine's root resolves on the host's: every
    // existing component must be a plain directory.
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Io {
                context: format!("mount point {}", disk.mount_point.display()),
                source: std::io::Error::other(format!(
                    "/{} is a symbolic link; mount the volume at the real directory",
                    at.strip_prefix(root).unwrap_or(&at).display()
                )),
            });
        }
    }
    let target = mount_point(root, &rel.to_string_lossy())?;
    let image = crate::disk::lock_image(&disk.image, DISK_RELEASE_WAIT)?;
    let (device, handle) = crate::disk::attach(&image, &disk.image)?;
    mount(
        Some(&device),
        &target,
        Some(disk.fstype.as_str()),
        MsFlags::MS_NOATIME,
        None::<&str>,
    )
    .map_err(Error::sys(format!(
        "mounting disk {} ({}, {}) at {}",
        disk.image.display(),
        device.display(),
        disk.fstype,
        disk.mount_point.display()
    )))?;
    // The mount holds the device and the device the image (and its lock) from here on.
    drop(handle);
    drop(image);
    Ok(())
}

/// Returns `root/rel` as a directory to mount on, refusing symlinks (they would resolve on the host).
fn mount_point(root: &Path, rel: &str) -> Result<PathBuf> {
    let path = root.join(rel);
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(path),
        Ok(_) => Err(Error::Io {
            context: format!("mount point /{rel}"),
            source: std::io::Error::other("exists and is not a directory"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(&path).map_err(Error::io(format!("creating /{rel}")))?;
            Ok(path)
        }
        Err(e) => Err(Error::Io {
            context: format!("mount point /{rel}"),
            source: e,
        }),
    }
}

fn mount_in(
    root: &Path,
    rel: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    let target = mount_point(root, rel)?;
    mount(Some(fstype), &target, Some(fstype), flags, data)
        .map_err(Error::sys(format!("mounting {fstype} on /{rel}")))
}

/// File systems that are not disks: fresh instances are mounted, or they are left out.
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "ramfs",
    "cgroup",
    "cgroup2",
    "mqueue",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "hugetlbfs",
    "fusectl",
    "configfs",
    "binfmt_misc",
    "autofs",
    "nsfs",
    "efivarfs",
    "rpc_pipefs",
    "nfsd",
    "overlay",
    "selinuxfs",
];

/// Mount points of the host's other disk file systems, parents before children.
fn host_submounts(hidden: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(Error::io("reading /proc/self/mountinfo"))?;
    let mut points = std::collections::BTreeSet::new();
    for line in mountinfo.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let (Some(point), Some(fstype)) = (before.split(' ').nth(4), after.split(' ').next())
        else {
            continue;
        };
        let point = PathBuf::from(unescape_mountinfo(point));
        let skipped_place = ["/proc", "/sys", "/dev", "/run", "/tmp"]
            .iter()
            .any(|p| point.starts_with(p))
            || hidden.iter().any(|h| point.starts_with(h));
        if point == Path::new("/")
            || skipped_place
            || PSEUDO_FS.contains(&fstype)
            || fstype.starts_with("fuse")
        {
            continue;
        }
        if point.to_string_lossy().contains([',', ':', '\\']) {
            eprintln!(
                "opsworks-sandbox init: {} is left out: its path cannot be an overlay layer",
                point.display()
            );
            continue;
        }
        points.insert(point);
    }
    Ok(points.into_iter().collect())
}

fn overlay_submount(root: &Path, mounts: &Path, point: &Path) -> Result<()> {
    let Ok(rel) = point.strip_prefix("/") else {
        return Ok(());
    };
    // Named after the mount point so that an ebs machine finds its changes again.
    let base = mounts.join(crate::local::short_hash(point.as_os_str()));
    let (upper, work) = (base.join("upper"), base.join("work"));
    for dir in [&upper, &work] {
        fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    }
    let target = mount_point(root, &rel.to_string_lossy())?;
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        point.display(),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(Error::sys(format!(
        "mounting an overlay of the host's {}",
        point.display()
    )))
}

/// A minimal `/dev`: the harmless character devices bound from the host, a private devpts and
/// shm, and the usual symlinks; the host's disks and other devices stay out of reach.
fn populate_dev(root: &Path) -> Result<()> {
    let none = None::<&str>;
    mount_in(
        root,
        "dev",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=64k"),
    )?;
    let dev = root.join("dev");
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(name);
        File::create(&target).map_err(Error::io(format!("creating /dev/{name}")))?;
        let source = Path::new("/dev").join(name);
        mount(Some(&source), &target, none, MsFlags::MS_BIND, none)
            .map_err(Error::sys(format!("binding /dev/{name}")))?;
    }
    mount_in(
        root,
        "dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )?;
    mount_in(
        root,
        "dev/shm",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))
            .map_err(Error::io(format!("linking /dev/{link}")))?;
    }
    Ok(())
}

/// Binds the host's root file system and its other disk file systems (`points`) read-only,
/// without device files or setuid, at [`HOST_VIEW`] under `root`.
fn host_view(root: &Path, points: &[PathBuf]) -> Result<()> {
    let view = root.join(HOST_VIEW.trim_start_matches('/'));
    fs::create_dir_all(&view).map_err(Error::io(format!("creating {HOST_VIEW}")))?;
    bind_read_only(Path::new("/"), &view)?;
    for point in points {
        let Ok(rel) = point.strip_prefix("/") else {
            continue;
        };
        // Its mount point is a directory of the file system bound above.
        let target = view.join(rel);
        if target.is_dir() {
            bind_read_only(point, &target)?;
        }
    }
    Ok(())
}

fn bind_read_only(source: &Path, target: &Path) -> Result<()> {
    let none = None::<&str>;
    let what = || format!("binding the host's {} read-only", source.display());
    mount(Some(source), target, none, MsFlags::MS_BIND, none).map_err(Error::sys(what()))?;
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV;
    mount(none, target, none, flags, none).map_err(Error::sys(what()))
}

/// Covers a path with something empty: a tmpfs for a directory, /dev/null for a file.
fn hide(path: &Path) -> Result<()> {
    let none = None::<&str>;
    match fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            context: format!("hiding {}", path.display()),
            source: e,
        }),
        Ok(meta) if meta.is_dir() => mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=755,size=1m"),
        )
        .map_err(Error::sys(format!("hiding {}", path.display()))),
        Ok(_) => mount(Some("/dev/null"), path, none, MsFlags::MS_BIND, none)
            .map_err(Error::sys(format!("hiding {}", path.display()))),
    }
}

/// Makes the machine know its own name, so resolving the host name does not hang or fail.
fn write_identity(hostname: &str, ip: Ipv4Addr) -> Result<()> {
    fs::write("/etc/hostname", format!("{hostname}\n"))
        .map_err(Error::io("writing /etc/hostname"))?;
    // A missing /etc/hosts gets a fresh one with just this machine.
    let hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
    let mut out: String = hosts
        .lines()
        .filter(|l| !l.ends_with(HOSTS_MARK))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("{ip}\t{hostname}\t{HOSTS_MARK}\n"));
    fs::write("/etc/hosts", out).map_err(Error::io("writing /etc/hosts"))
}

/// Replaces `/etc/resolv.conf`, which may be a symlink into the host's (now hidden) `/run`.
fn write_resolv_conf(contents: &str) -> Result<()> {
    let path = Path::new("/etc/resolv.conf");
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(path).map_err(Error::io("replacing the /etc/resolv.conf symlink"))?;
    }
    fs::write(path, contents).map_err(Error::io("writing /etc/resolv.conf"))
}

fn place_file(file: &FileSpec) -> Result<()> {
    let context = || format!("placing {}", file.path.display());
    if let Some(parent) = file.path.parent() {
        fs::create_dir_all(parent).map_err(Error::io(context()))?;
    }
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(file.mode)
        .open(&file.path)
        .map_err(Error::io(context()))?;
    // The mode given to open applies only to new files.
    out.set_permissions(fs::Permissions::from_mode(file.mode))
        .map_err(Error::io(context()))?;
    out.write_all(&file.contents).map_err(Error::io(context()))
}
