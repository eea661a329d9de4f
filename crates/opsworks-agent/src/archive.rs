//! Unpacking zip, tar.gz and tar archives (told apart by content, not name) into a directory,
//! with nothing of the archive reaching outside it: entry paths that are absolute or climb out
//! with `..`, and symbolic or hard links that point outside, refuse the archive; nothing is
//! written through a link; device files, fifos and sockets are left out; setuid, setgid and
//! sticky bits are cleared and ownership is not kept. Blocking code.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use crate::error::{AgentError, Result};

/// The longest symbolic link target a zip entry may carry (the entry's content is the target).
const MAX_LINK_TARGET: u64 = 4096;
/// How many links a check follows before calling it a loop (as the kernel's `ELOOP`).
const MAX_LINK_HOPS: usize = 40;

/// What went wrong with one entry, before the archive's path is put in front.
type EntryResult<T> = std::result::Result<T, String>;

/// Unpacks the archive at `archive` into `out` (created). On error `out` may hold part of the
/// archive, never anything outside it: unpack into a scratch directory and move it into place.
pub fn unpack(archive: &Path, out: &Path) -> Result<()> {
    let bad = |message: String| AgentError::Archive {
        path: archive.to_path_buf(),
        message,
    };
    let mut magic = [0u8; 4];
    let mut file = File::open(archive).map_err(|e| AgentError::io("cannot open", archive, e))?;
    let n =
        read_up_to(&mut file, &mut magic).map_err(|e| AgentError::io("cannot read", archive, e))?;
    std::fs::create_dir_all(out).map_err(|e| AgentError::io("cannot create directory", out, e))?;
    let file = File::open(archive).map_err(|e| AgentError::io("cannot open", archive, e))?;
    let mut sink = Sink { root: out };
    if n >= 4 && magic == *b"PK\x03\x04" {
        unpack_zip(BufReader::new(file), &mut sink).map_err(bad)?;
    } else if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        unpack_tar(
            flate2::read::GzDecoder::new(BufReader::new(file)),
            &mut sink,
        )
        .map_err(bad)?;
    } else {
        unpack_tar(BufReader::new(file), &mut sink)
            .map_err(|e| bad(format!("not a zip, tar.gz or tar archive ({e})")))?;
    }
    sink.check_links().map_err(bad)
}

/// Fills `buf` as far as the reader allows.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn unpack_tar(reader: impl Read, sink: &mut Sink<'_>) -> EntryResult<()> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let rel = || -> EntryResult<Option<PathBuf>> {
            inside(&bytes_path(&raw))
                .map_err(|why| format!("entry `{}` {why}", name.escape_debug()))
        };
        let mode = entry.header().mode().unwrap_or(0o644);
        let kind = entry.header().entry_type();
        let link = || -> EntryResult<PathBuf> {
            entry
                .link_name_bytes()
                .map(|b| bytes_path(&b))
                .ok_or_else(|| format!("link `{}` has no target", name.escape_debug()))
        };
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                if let Some(rel) = rel()? {
                    sink.dir(&rel, mode)?;
                }
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                let Some(rel) = rel()? else {
                    return Err(format!("file entry `{}` has no name", name.escape_debug()));
                };
                sink.file(&rel, mode, &mut entry)?;
            }
            T::Symlink => {
                let Some(rel) = rel()? else {
                    return Err(format!("link `{}` has no name", name.escape_debug()));
                };
                let target = link()?;
                sink.symlink(&rel, &target)?;
            }
            T::Link => {
                let Some(rel) = rel()? else {
                    return Err(format!("link `{}` has no name", name.escape_debug()));
                };
                let target = link()?;
                sink.hard_link(&rel, &target)?;
            }
            // Device files, fifos: never made. Headers (pax, GNU long names) are read by
            // `entries` itself; anything else carries nothing to unpack.
            _ => {}
        }
    }
    Ok(())
}

fn unpack_zip(reader: impl Read + std::io::Seek, sink: &mut Sink<'_>) -> EntryResult<()> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| e.to_string())?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let raw = entry.name_raw().to_vec();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let rel = inside(&bytes_path(&raw))
            .map_err(|why| format!("entry `{}` {why}", name.escape_debug()))?;
        let mode = entry.unix_mode().unwrap_or(0o644);
        // A link's mode says so; its content is the target.
        let kind = mode & 0o170000;
        let Some(rel) = rel else {
            continue;
        };
        if entry.is_dir() {
            sink.dir(&rel, mode)?;
        } else if entry.is_symlink() {
            let mut target = Vec::new();
            (&mut entry)
                .take(MAX_LINK_TARGET + 1)
                .read_to_end(&mut target)
                .map_err(|e| format!("entry `{}`: {e}", name.escape_debug()))?;
            if target.len() as u64 > MAX_LINK_TARGET {
                return Err(format!(
                    "link `{}` has an overlong target",
                    name.escape_debug()
                ));
            }
            sink.symlink(&rel, &bytes_path(&target))?;
        } else if kind == 0 || kind == 0o100000 {
            sink.file(&rel, mode, &mut entry)?;
        }
        // Other kinds (devices, fifos, sockets) are left out.
    }
    Ok(())
}

fn bytes_path(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt as _;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// `path` as plain components relative to the target (`.` dropped, `a/../b` folded), or why it
/// is refused: absolute, or climbing out with `..`. `None` for the target itself (`./`).
fn inside(path: &Path) -> EntryResult<Option<PathBuf>> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err("climbs out of the target with `..`".into());
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("is an absolute path".into());
            }
        }
    }
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err("has a NUL byte in its name".into());
    }
    Ok((!parts.is_empty()).then(|| parts.iter().collect()))
}

/// Where entries go: every path is relative to `root`, created only through real directories.
struct Sink<'a> {
    root: &'a Path,
}

impl Sink<'_> {
    /// `root/rel`'s parent made of real directories (created 0755 where missing), never
    /// through a link or a file.
    fn parent_of(&self, rel: &Path) -> EntryResult<PathBuf> {
        let mut dir = self.root.to_path_buf();
        if let Some(parent) = rel.parent() {
            for part in parent.components() {
                dir.push(part);
                self.real_dir(&dir, 0o755)?;
            }
        }
        Ok(dir)
    }

    /// Makes sure `path` is a real directory, creating it with `mode` when missing.
    fn real_dir(&self, path: &Path, mode: u32) -> EntryResult<()> {
        match path.symlink_metadata() {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(format!(
                "`{}` is not a directory, yet entries go inside it",
                self.show(path)
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(path).map_err(|e| format!("{}: {e}", self.show(path)))?;
                set_mode(path, dir_mode(mode)).map_err(|e| format!("{}: {e}", self.show(path)))
            }
            Err(e) => Err(format!("{}: {e}", self.show(path))),
        }
    }

    fn show(&self, path: &Path) -> String {
        path.strip_prefix(self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Removes what is at `path` unless it is a directory (an entry given twice replaces the
    /// first; a link there is removed, never written through).
    fn clear(&self, path: &Path) -> EntryResult<()> {
        match path.symlink_metadata() {
            Ok(m) if m.is_dir() => Err(format!("`{}` is a directory", self.show(path))),
            Ok(_) => std::fs::remove_file(path).map_err(|e| format!("{}: {e}", self.show(path))),
            Err(_) => Ok(()),
        }
    }

    fn dir(&mut self, rel: &Path, mode: u32) -> EntryResult<()> {
        let path = self
            .parent_of(rel)?
            .join(rel.file_name().unwrap_or_default());
        self.real_dir(&path, mode)?;
        set_mode(&path, dir_mode(mode)).map_err(|e| format!("{}: {e}", self.show(&path)))
    }

    fn file(&mut self, rel: &Path, mode: u32, content: &mut dyn Read) -> EntryResult<()> {
        let path = self
            .parent_of(rel)?
            .join(rel.file_name().unwrap_or_default());
        self.clear(&path)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("{}: {e}", self.show(&path)))?;
        std::io::copy(content, &mut file).map_err(|e| format!("{}: {e}", self.show(&path)))?;
        // Permission bits only: no setuid, setgid or sticky bit survives.
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(|e| format!("{}: {e}", self.show(&path)))
    }

    fn symlink(&mut self, rel: &Path, target: &Path) -> EntryResult<()> {
        if target.as_os_str().is_empty() || target.is_absolute() {
            return Err(format!(
                "link `{}` points outside the target (to `{}`)",
                rel.display(),
                target.display()
            ));
        }
        // Lexically inside from where the link is; links met on the way are checked once all
        // entries are in place (`check_links`).
        let from = rel.parent().unwrap_or(Path::new(""));
        if inside(&from.join(target)).is_err() {
            return Err(format!(
                "link `{}` points outside the target (to `{}`)",
                rel.display(),
                target.display()
            ));
        }
        let path = self
            .parent_of(rel)?
            .join(rel.file_name().unwrap_or_default());
        self.clear(&path)?;
        std::os::unix::fs::symlink(target, &path).map_err(|e| format!("{}: {e}", self.show(&path)))
    }

    fn hard_link(&mut self, rel: &Path, target: &Path) -> EntryResult<()> {
        let outside = || {
            format!(
                "hard link `{}` points outside the target (to `{}`)",
                rel.display(),
                target.display()
            )
        };
        let Some(target_rel) = inside(target).map_err(|_| outside())? else {
            return Err(outside());
        };
        // The target must be a file this archive already put here, reached through real
        // directories only.
        let source = self.root.join(&target_rel);
        let through_dirs = target_rel.ancestors().skip(1).all(|a| {
            self.root
                .join(a)
                .symlink_metadata()
                .is_ok_and(|m| m.is_dir())
        });
        match source.symlink_metadata() {
            Ok(m) if m.is_file() && through_dirs => {}
            _ => {
                return Err(format!(
                    "hard link `{}` names `{}`, which is not a file unpacked before it",
                    rel.display(),
                    target.display()
                ));
            }
        }
        let path = self
            .parent_of(rel)?
            .join(rel.file_name().unwrap_or_default());
        if path == source {
            return Ok(());
        }
        self.clear(&path)?;
        std::fs::hard_link(&source, &path).map_err(|e| format!("{}: {e}", self.show(&path)))
    }

    /// Every symbolic link under the root, followed as the kernel would but with the root as
    /// the top: one that leads out (through other links or `..` past them) refuses the archive.
    fn check_links(&self) -> EntryResult<()> {
        let mut pending = vec![PathBuf::new()];
        while let Some(rel) = pending.pop() {
            let dir = self.root.join(&rel);
            let listing = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for item in listing {
                let item = item.map_err(|e| format!("{}: {e}", dir.display()))?;
                let kind = item.file_type().map_err(|e| e.to_string())?;
                let child = rel.join(item.file_name());
                if kind.is_dir() {
                    pending.push(child);
                } else if kind.is_symlink() && self.escapes(&child) {
                    let _ = std::fs::remove_file(self.root.join(&child));
                    return Err(format!(
                        "link `{}` leads outside the target",
                        child.display()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether resolving the link at `rel` (relative to the root) ever leaves the root.
    fn escapes(&self, rel: &Path) -> bool {
        let mut at: Vec<OsString> = rel
            .parent()
            .map(|p| p.iter().map(OsString::from).collect())
            .unwrap_or_default();
        let Ok(first) = std::fs::read_link(self.root.join(rel)) else {
            return true;
        };
        let mut todo: VecDeque<OsString> = VecDeque::new();
        if first.is_absolute() {
            return true;
        }
        todo.extend(first.iter().map(OsString::from));
        let mut hops = 0;
        while let Some(part) = todo.pop_front() {
            match part.to_str() {
                Some(".") => continue,
                Some("..") => {
                    if at.pop().is_none() {
                        return true;
                    }
                    continue;
                }
                _ => {}
            }
            let here: PathBuf = self.root.join(at.iter().collect::<PathBuf>()).join(&part);
            match here.symlink_metadata() {
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    let Ok(next) = std::fs::read_link(&here) else {
                        return true;
                    };
                    if hops > MAX_LINK_HOPS || next.is_absolute() {
                        return true;
                    }
                    for p in next.iter().rev() {
                        todo.push_front(OsString::from(p));
                    }
                }
                _ => at.push(part),
            }
        }
        false
    }
}

/// A directory's mode from the archive: permission bits only, and always usable by its owner.
fn dir_mode(mode: u32) -> u32 {
    (mode & 0o777) | 0o700
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
