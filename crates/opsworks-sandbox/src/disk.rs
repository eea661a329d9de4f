//! Disk images for machines (volumes): an XFS file system in a sparse file on the host, attached
//! to a loop device when a machine boots with it ([`crate::Disk`]) and detached by the kernel when
//! its last mount goes (the loop device is made with autoclear), so a machine that stops, crashes
//! or is killed leaves no loop device behind.
//!
//! While attached, the image is locked (`flock`, held by the loop device's own reference to the
//! file): a second machine cannot mount it, and [`wait_released`] tells when the loop device is
//! really gone. Loop devices do not survive a host reboot; nothing needs them to, since every boot
//! attaches the image afresh.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` of `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>` (LOOP_CONFIGURE, Linux 5.8 and later).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

impl LoopInfo64 {
    fn autoclear(name: &Path) -> Self {
        let mut lo_file_name = [0u8; 64];
        let bytes = name.as_os_str().as_encoded_bytes();
        let n = bytes.len().min(63);
        lo_file_name[..n].copy_from_slice(&bytes[..n]);
        LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: LO_FLAGS_AUTOCLEAR,
            lo_file_name,
            lo_crypt_name: [0; 64],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        }
    }
}

/// The size of the smallest image: XFS refuses file systems under 300 MB.
pub const MIN_IMAGE_BYTES: u64 = 300 * 1000 * 1000;

/// Creates an XFS file system of `size_bytes` in a new sparse file at `path` (with
/// `mkfs.xfs`, from Debian's `xfsprogs`). It is made under `<path>.part` and renamed into
/// place, so `path` exists only once it is whole; on failure nothing is left.
pub fn create_image(path: &Path, size_bytes: u64) -> Result<()> {
    if size_bytes < MIN_IMAGE_BYTES {
        return Err(Error::InvalidSpec {
            reason: format!("a disk of {size_bytes} bytes is below XFS's least, 300 MB"),
        });
    }
    let mkfs = crate::host::find_program("mkfs.xfs").ok_or_else(|| Error::Unavailable {
        missing: "`mkfs.xfs` to format volumes (install Debian's xfsprogs)".to_string(),
    })?;
    if path.exists() {
        return Err(Error::Io {
            context: format!("creating {}", path.display()),
            source: std::io::Error::from(ErrorKind::AlreadyExists),
        });
    }
    let part = part_path(path);
    let made = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&part)
            .map_err(Error::io(format!("creating {}", part.display())))?;
        // Sparse: only what the file system writes takes space.
        file.set_len(size_bytes)
            .map_err(Error::io(format!("sizing {}", part.display())))?;
        drop(file);
        let out = Command::new(&mkfs)
            .args(["-q", "-f"])
            .arg(&part)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Command {
                command: format!("{} {}", mkfs.display(), part.display()),
                stderr: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(Error::Command {
                command: format!("{} -q -f {}", mkfs.display(), part.display()),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        fs::rename(&part, path).map_err(Error::io(format!(
            "renaming {} to {}",
            part.display(),
            path.display()
        )))
    })();
    if made.is_err() {
        let _ = fs::remove_file(&part);
    }
    made
}

/// Where [`create_image`] builds `path` before it is whole.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".part");
    PathBuf::from(name)
}

fn open_image(path: &Path) -> Result<File> {
    open_rw(path).map_err(Error::io(format!("opening disk image {}", path.display())))
}

/// Whether a machine has the image attached (its lock is held).
pub fn image_in_use(path: &Path) -> Result<bool> {
    let file = open_image(path)?;
    match file.try_lock() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Io {
            context: format!("locking {}", path.display()),
            source: e,
        }),
    }
}

/// Waits until no loop device holds the image (a stopped machine's goes as the kernel tears its
/// mounts down); returns whether it was released within `timeout`. A missing image is released.
pub fn wait_released(path: &Path, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        match image_in_use(path) {
            Ok(false) => return Ok(true),
            Ok(true) if Instant::now() >= deadline => return Ok(false),
            Ok(true) => std::thread::sleep(Duration::from_millis(20)),
            Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Opens and locks an image for a machine, waiting up to `timeout` for a previous holder's loop
/// device to go.
pub(crate) fn lock_image(path: &Path, timeout: Duration) -> Result<File> {
    let file = open_image(path)?;
    let deadline = Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Io {
                    context: format!("disk image {}", path.display()),
                    source: std::io::Error::other("it is attached to another machine"),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::Io {
                    context: format!("locking {}", path.display()),
                    source: e,
                });
            }
        }
    }
}

fn ioctl_ptr<T>(fd: &File, request: libc::c_ulong, arg: *const T) -> nix::Result<libc::c_int> {
    // SAFETY: `arg` points at a live value of the layout the request expects.
    nix::errno::Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) })
}

fn ioctl_int(fd: &File, request: libc::c_ulong, arg: libc::c_ulong) -> nix::Result<libc::c_int> {
    // SAFETY: the request takes an integer argument (or none).
    nix::errno::Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) })
}

fn open_rw(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Attaches `image` (open, locked) to a free loop device with autoclear; returns the device's
/// path and an open handle on it (the device is detached once that handle and every mount of it
/// are gone).
pub(crate) fn attach(image: &File, name: &Path) -> Result<(PathBuf, File)> {
    let control = open_rw(Path::new("/dev/loop-control"))
        .map_err(Error::io("opening /dev/loop-control (loop devices)"))?;
    let mut last = None;
    // Another process may take the free device between asking and configuring it.
    for _ in 0..32 {
        let n = ioctl_int(&control, LOOP_CTL_GET_FREE, 0).map_err(Error::sys(
            "asking /dev/loop-control for a free loop device",
        ))?;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let device = open_rw(&path).map_err(Error::io(format!("opening {}", path.display())))?;
        let config = LoopConfig {
            fd: image.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64::autoclear(name),
            reserved: [0; 8],
        };
        match ioctl_ptr(&device, LOOP_CONFIGURE, &config) {
            Ok(_) => return Ok((path, device)),
            Err(nix::errno::Errno::EBUSY) => last = Some(nix::errno::Errno::EBUSY),
            // Kernels before 5.8: set the file, then the flags.
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOTTY) => {
                match ioctl_int(&device, LOOP_SET_FD, image.as_raw_fd() as libc::c_ulong) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EBUSY) => {
                        last = Some(nix::errno::Errno::EBUSY);
                        continue;
                    }
                    Err(e) => {
                        return Err(Error::sys(format!("attaching {}", path.display()))(e));
                    }
                }
                let info = LoopInfo64::autoclear(name);
                if let Err(e) = ioctl_ptr(&device, LOOP_SET_STATUS64, &info) {
                    let _ = ioctl_int(&device, LOOP_CLR_FD, 0);
                    return Err(Error::sys(format!("configuring {}", path.display()))(e));
                }
                return Ok((path, device));
            }
            Err(e) => return Err(Error::sys(format!("attaching {}", path.display()))(e)),
        }
    }
    Err(Error::sys("finding a free loop device")(
        last.unwrap_or(nix::errno::Errno::EBUSY),
    ))
}

/// Whether this host can build software RAID arrays (Linux's md and `mdadm`); the error says
/// what is missing.
pub fn raid_support() -> std::result::Result<(), String> {
    let md = Path::new("/proc/mdstat").exists() || Path::new("/sys/module/md_mod").exists();
    let mdadm = crate::host::find_program("mdadm").is_some();
    match (md, mdadm) {
        (true, true) => Ok(()),
        (false, _) => Err(
            "this host's kernel has no md (software RAID) support: /proc/mdstat is absent".into(),
        ),
        (true, false) => Err("`mdadm` is not installed on this host".into()),
    }
}

/// A loop device attached to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopDevice {
    /// `/dev/loopN`.
    pub device: PathBuf,
    /// The file behind it, as the process that attached it named it.
    pub backing_file: PathBuf,
}

/// Every attached loop device of the host, from `/sys/block`.
pub fn loop_devices() -> Vec<LoopDevice> {
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut found: Vec<LoopDevice> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            name.strip_prefix("loop")?.parse::<u32>().ok()?;
            let backing = fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            Some(LoopDevice {
                device: PathBuf::from("/dev").join(&name),
                backing_file: PathBuf::from(backing.trim_end_matches('\n')),
            })
        })
        .collect();
    found.sort_by(|a, b| a.device.cmp(&b.device));
    found
}

/// Detaches a loop device (left by a crash); one still mounted somewhere is detached by the
/// kernel when that mount goes.
pub fn detach_loop(device: &Path) -> Result<()> {
    let file = open_rw(device).map_err(Error::io(format!("opening {}", device.display())))?;
    match ioctl_int(&file, LOOP_CLR_FD, 0) {
        Ok(_) | Err(nix::errno::Errno::ENXIO) => Ok(()),
        Err(e) => Err(Error::sys(format!("detaching {}", device.display()))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_structures_have_their_sizes() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }

    #[test]
    fn a_too_small_image_is_refused_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.img");
        let err = create_image(&path, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("300 MB"), "{err}");
        assert!(!path.exists() && !part_path(&path).exists());
    }

    #[test]
    fn an_image_is_made_sparse_and_whole_and_unlocked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.img");
        create_image(&path, 1 << 30).expect("mkfs.xfs (Debian's xfsprogs) must be installed");
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 1 << 30);
        use std::os::unix::fs::MetadataExt;
        assert!(
            meta.blocks() * 512 < 200 << 20,
            "sparse: {} blocks",
            meta.blocks()
        );
        assert!(!part_path(&path).exists());
        assert!(!image_in_use(&path).unwrap());
        let held = lock_image(&path, Duration::ZERO).unwrap();
        assert!(image_in_use(&path).unwrap());
        let err = lock_image(&path, Duration::from_millis(50))
            .unwrap_err()
            .to_string();
        assert!(err.contains("attached to another machine"), "{err}");
        drop(held);
        assert!(wait_released(&path, Duration::from_secs(1)).unwrap());
        // Creating over an existing image is refused.
        assert!(create_image(&path, 1 << 30).is_err());
        assert_eq!(fs::metadata(&path).unwrap().len(), 1 << 30);
    }
}
