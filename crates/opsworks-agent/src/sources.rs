//! Fetching code: custom cookbooks and app sources from git, archives (tar, tar.gz, zip) or a
//! local path (read through the live host view in local instances), and the tree copying they
//! need; unpacking is `archive`'s. Blocking code.

use std::path::{Path, PathBuf};

use opsworks_protocol::SourceSpec;

pub use crate::archive::unpack;
use crate::error::{AgentError, Result};

/// Where a local instance sees the host's files live and read-only (`opsworks-sandbox`'s
/// `HOST_VIEW`). Local sources are read there: the instance's own root is a copy-on-write
/// overlay of the host's, which does not reliably show what the host changed after boot (a git
/// ref the host rewrote after a commit still read the old commit inside).
pub const HOST_VIEW: &str = "/run/opsworks/host";

/// Where a fetch put the code, and which revision (git) it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The directory holding the code.
    pub dir: PathBuf,
    /// The git commit, for git sources.
    pub revision: Option<String>,
}

/// The path to read for a source's local `path`: the host's file through [`HOST_VIEW`] when the
/// agent runs in a local instance and the host has that path, otherwise `path` itself.
pub fn local_path(path: &str) -> PathBuf {
    live_path_in(Path::new(HOST_VIEW), Path::new(path))
}

fn live_path_in(view: &Path, path: &Path) -> PathBuf {
    match path.strip_prefix("/") {
        Ok(rel) if view.is_dir() && view.join(rel).symlink_metadata().is_ok() => view.join(rel),
        _ => path.to_path_buf(),
    }
}

/// Where git fetches `src` from: a local path (or `file://` URL) through [`local_path`], an
/// http(s) URL with the source's credentials put in ([`git_url`]).
fn git_location(src: &SourceSpec) -> String {
    if src.url.starts_with('/') {
        return local_path(&src.url).display().to_string();
    }
    if let Some(path) = src.url.strip_prefix("file://")
        && path.starts_with('/')
    {
        return format!("file://{}", local_path(path).display());
    }
    git_url(src)
}

/// The repository URL with the source's user name and password put in, for http(s) URLs
/// (the host crate redacts credentials in URLs from its errors).
fn git_url(src: &SourceSpec) -> String {
    let (Some(user), true) = (
        &src.username,
        src.url.starts_with("http://") || src.url.starts_with("https://"),
    ) else {
        return src.url.clone();
    };
    let Some((scheme, rest)) = src.url.split_once("://") else {
        return src.url.clone();
    };
    if rest
        .split('/')
        .next()
        .is_some_and(|authority| authority.contains('@'))
    {
        return src.url.clone();
    }
    let pass = src
        .password
        .as_deref()
        .map(|p| format!(":{}", percent(p)))
        .unwrap_or_default();
    format!("{scheme}://{}{pass}@{rest}", percent(user))
}

/// `url` without the credentials an http(s) URL may carry in its authority (or any
/// `user:password@`): what a release's `.git/config` may keep. An ssh user name stays.
fn public_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) if matches!(scheme, "http" | "https") || rest[..at].contains(':') => {
            format!("{scheme}://{}", &rest[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Percent-encodes what may not appear raw in a URL's userinfo.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Brings the custom cookbooks of `src` into `dest` (git and archive sources) and returns the
/// directory that holds them (`dest`, or the path itself for a `local` source).
pub fn fetch_cookbooks(src: &SourceSpec, dest: &Path, scratch: &Path) -> Result<Fetched> {
    match src.kind.as_str() {
        "git" => {
            let sync = opsworks_host::git::sync(
                &git_location(src),
                src.revision.as_deref().unwrap_or(""),
                dest,
                None,
            )?;
            Ok(Fetched {
                dir: dest.to_path_buf(),
                revision: Some(sync.after),
            })
        }
        "archive" => {
            let unpacked = unpack_source(src, scratch)?;
            replace_dir(&unpacked, dest)?;
            Ok(Fetched {
                dir: dest.to_path_buf(),
                revision: None,
            })
        }
        "local" => {
            let dir = local_path(&src.url);
            if !dir.is_dir() {
                return Err(AgentError::invalid(
                    "local source",
                    format!("{} is not a directory", dir.display()),
                ));
            }
            Ok(Fetched {
                dir,
                revision: None,
            })
        }
        other => Err(unsupported(other)),
    }
}

/// Puts the code of an app's `src` into `release` (which must not exist yet). Git sources go
/// through `cache` (a checkout kept between deploys, like Chef's `shared/cached-copy`).
pub fn fetch_app(
    src: &SourceSpec,
    release: &Path,
    cache: &Path,
    scratch: &Path,
) -> Result<Fetched> {
    match src.kind.as_str() {
        "git" => {
            // The revision is resolved in the repository now, at every deploy; the cache only
            // saves fetching objects again. The release is a repository of its own checked out
            // at exactly that commit (never a copy of the cache's working tree, which may hold
            // leftovers), and the commit is checked after the checkout.
            let sync = opsworks_host::git::sync(
                &git_location(src),
                src.revision.as_deref().unwrap_or(""),
                cache,
                None,
            )?;
            let commit =
                opsworks_host::git::clone_at(cache, &sync.after, release, &public_url(&src.url))?;
            Ok(Fetched {
                dir: release.to_path_buf(),
                revision: Some(commit),
            })
        }
        "archive" => {
            let unpacked = unpack_source(src, scratch)?;
            std::fs::rename(&unpacked, release)
                .map_err(|e| AgentError::io("cannot move into place", release, e))?;
            Ok(Fetched {
                dir: release.to_path_buf(),
                revision: None,
            })
        }
        "local" => {
            let from = local_path(&src.url);
            if !from.is_dir() {
                return Err(AgentError::invalid(
                    "local source",
                    format!("{} is not a directory", from.display()),
                ));
            }
            copy_tree(&from, release, true)?;
            Ok(Fetched {
                dir: release.to_path_buf(),
                revision: None,
            })
        }
        other => Err(unsupported(other)),
    }
}

fn unsupported(kind: &str) -> AgentError {
    AgentError::invalid(
        "source type",
        format!(
            "`{}` is not supported (use git, archive or local)",
            kind.escape_debug()
        ),
    )
}

/// Gets the archive of `src` (an http(s) URL, a `file://` URL or a path) and unpacks it into a
/// new directory under `scratch`, returned. A lone top-level directory is stepped into, as
/// archives made with `tar czf x.tgz project/` or downloaded from a forge carry one.
fn unpack_source(src: &SourceSpec, scratch: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(scratch)
        .map_err(|e| AgentError::io("cannot create directory", scratch, e))?;
    let work = tempfile::Builder::new()
        .prefix("fetch")
        .tempdir_in(scratch)
        .map_err(|e| AgentError::io("cannot create a directory in", scratch, e))?;
    let archive = if src.url.starts_with("http://") || src.url.starts_with("https://") {
        let file = work.path().join("archive");
        opsworks_host::fetch::download(&src.url, &file, None)?;
        file
    } else {
        local_path(src.url.strip_prefix("file://").unwrap_or(&src.url))
    };
    let out = work.path().join("out");
    unpack(&archive, &out)?;
    let top = single_top_dir(&out)?;
    // Keep the result once the scratch directory goes away.
    let keep = scratch.join(format!("unpacked-{}", std::process::id()));
    if keep.exists() {
        std::fs::remove_dir_all(&keep).map_err(|e| AgentError::io("cannot remove", &keep, e))?;
    }
    std::fs::rename(&top, &keep).map_err(|e| AgentError::io("cannot move", &top, e))?;
    Ok(keep)
}

/// `dir` itself, or its only entry when that is a directory that does not look like a cookbook
/// (a cookbook has `recipes/` or `metadata.*`) or an app's own top level.
fn single_top_dir(dir: &Path) -> Result<PathBuf> {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| AgentError::io("cannot read", dir, e))?
        .filter_map(|e| e.ok())
        .collect();
    if let [only] = entries.as_slice()
        && only.file_type().is_ok_and(|t| t.is_dir())
    {
        let inner = only.path();
        let looks_like_cookbook = inner.join("recipes").is_dir()
            || std::fs::read_dir(&inner)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .any(|e| e.file_name().to_string_lossy().starts_with("metadata."))
                })
                .unwrap_or(false);
        if !looks_like_cookbook {
            return Ok(inner);
        }
    }
    Ok(dir.to_path_buf())
}

/// Replaces `dest` with `new` (renamed in; the old tree is removed afterwards).
fn replace_dir(new: &Path, dest: &Path) -> Result<()> {
    let old = dest.with_extension("old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| AgentError::io("cannot remove", &old, e))?;
    }
    if dest.exists() {
        std::fs::rename(dest, &old).map_err(|e| AgentError::io("cannot move", dest, e))?;
    }
    std::fs::rename(new, dest).map_err(|e| AgentError::io("cannot move into place", dest, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| AgentError::io("cannot remove", &old, e))?;
    }
    Ok(())
}

/// Copies the tree at `from` to `to` (created), keeping file modes and symbolic links;
/// `skip_git` leaves out `.git`.
pub fn copy_tree(from: &Path, to: &Path, skip_git: bool) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| AgentError::io("cannot create directory", to, e))?;
    for item in std::fs::read_dir(from).map_err(|e| AgentError::io("cannot read", from, e))? {
        let item = item.map_err(|e| AgentError::io("cannot read", from, e))?;
        if skip_git && item.file_name() == ".git" {
            continue;
        }
        let src = item.path();
        let dst = to.join(item.file_name());
        let kind = item
            .file_type()
            .map_err(|e| AgentError::io("cannot read", &src, e))?;
        if kind.is_symlink() {
            let target =
                std::fs::read_link(&src).map_err(|e| AgentError::io("cannot read", &src, e))?;
            std::os::unix::fs::symlink(&target, &dst)
                .map_err(|e| AgentError::io("cannot create", &dst, e))?;
        } else if kind.is_dir() {
            copy_tree(&src, &dst, false)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| AgentError::io("cannot copy to", &dst, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_into_http_git_urls_only() {
        let mut src = SourceSpec {
            kind: "git".into(),
            url: "https://example.test/r.git".into(),
            username: Some("me".into()),
            password: Some("p@ss word".into()),
            ..Default::default()
        };
        assert_eq!(git_url(&src), "https://me:p%40ss%20word@example.test/r.git");
        src.url = "/srv/repo".into();
        assert_eq!(git_url(&src), "/srv/repo");
    }

    #[test]
    fn local_paths_are_read_through_the_host_view_when_the_host_has_them() {
        let tmp = tempfile::tempdir().unwrap();
        let view = tmp.path().join("host");
        std::fs::create_dir_all(view.join("srv/repo")).unwrap();
        assert_eq!(
            live_path_in(&view, Path::new("/srv/repo")),
            view.join("srv/repo")
        );
        // Only on the instance, relative, or no view at all: the path as it is.
        assert_eq!(
            live_path_in(&view, Path::new("/srv/other")),
            Path::new("/srv/other")
        );
        assert_eq!(
            live_path_in(&view, Path::new("srv/repo")),
            Path::new("srv/repo")
        );
        assert_eq!(
            live_path_in(&tmp.path().join("none"), Path::new("/srv/repo")),
            Path::new("/srv/repo")
        );
    }

    #[test]
    fn release_origins_keep_no_credentials() {
        assert_eq!(
            public_url("https://me:secret@example.test/r.git"),
            "https://example.test/r.git"
        );
        assert_eq!(
            public_url("https://example.test/a@b"),
            "https://example.test/a@b"
        );
        assert_eq!(
            public_url("git@example.test:r.git"),
            "git@example.test:r.git"
        );
        assert_eq!(public_url("/srv/repo"), "/srv/repo");
        assert_eq!(
            public_url("ssh://git@example.test/r.git"),
            "ssh://git@example.test/r.git"
        );
        assert_eq!(
            public_url("ssh://u:pw@example.test/r.git"),
            "ssh://example.test/r.git"
        );
    }

    #[test]
    fn tar_gz_archives_unpack_and_a_lone_top_directory_is_stepped_into() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("a.tgz");
        {
            let gz = flate2::write::GzEncoder::new(
                std::fs::File::create(&archive).unwrap(),
                flate2::Compression::fast(),
            );
            let mut tar = tar::Builder::new(gz);
            let data = b"hello\n";
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, "project/mycb/recipes/default.star", &data[..])
                .unwrap();
            tar.into_inner().unwrap().finish().unwrap();
        }
        let src = SourceSpec {
            kind: "archive".into(),
            url: archive.display().to_string(),
            ..Default::default()
        };
        let dest = tmp.path().join("cookbooks");
        let fetched = fetch_cookbooks(&src, &dest, &tmp.path().join("scratch")).unwrap();
        assert_eq!(fetched.dir, dest);
        let text = std::fs::read_to_string(dest.join("mycb/recipes/default.star")).unwrap();
        assert_eq!(text, "hello\n");
    }

    #[test]
    fn garbage_is_not_an_archive() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("x");
        std::fs::write(&archive, vec![7u8; 2000]).unwrap();
        let err = unpack(&archive, &tmp.path().join("o")).unwrap_err();
        assert!(err.to_string().contains("cannot unpack archive"), "{err}");
    }
}
