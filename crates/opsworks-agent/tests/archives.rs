//! Crafted archives against the agent's unpacking: nothing escapes the target (absolute paths,
//! `..`, symbolic and hard links pointing out, writes through links), no device file is made,
//! no setuid or setgid bit survives.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use opsworks_agent::archive::unpack;

/// One tar entry as a crafter writes it: the name goes into the header as raw bytes, so `..`
/// and absolute names get through (the tar crate's own setters refuse them).
struct E<'a> {
    name: &'a str,
    kind: tar::EntryType,
    mode: u32,
    data: &'a [u8],
    link: &'a str,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> E<'a> {
    E {
        name,
        kind: tar::EntryType::Regular,
        mode: 0o644,
        data,
        link: "",
    }
}

fn link<'a>(kind: tar::EntryType, name: &'a str, target: &'a str) -> E<'a> {
    E {
        name,
        kind,
        mode: 0o777,
        data: b"",
        link: target,
    }
}

fn tar_gz(dir: &Path, entries: &[E<'_>]) -> PathBuf {
    let path = dir.join("crafted.tgz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_old();
        let name = &mut h.as_old_mut().name;
        name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        let link = &mut h.as_old_mut().linkname;
        link[..e.link.len()].copy_from_slice(e.link.as_bytes());
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_size(e.data.len() as u64);
        h.set_cksum();
        tar.append(&h, e.data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    path
}

/// A scratch place: `out` is the target, `outside` a sibling the archive must never reach.
struct Place {
    tmp: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("out/deep")).unwrap();
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        Place { tmp }
    }
    fn out(&self) -> PathBuf {
        self.tmp.path().join("out/deep")
    }
    fn unpack_tar(&self, entries: &[E<'_>]) -> Result<(), String> {
        let archive = tar_gz(self.tmp.path(), entries);
        unpack(&archive, &self.out()).map_err(|e| e.to_string())
    }
    /// Everything in the scratch place outside the target (the archive itself aside).
    fn outside_target(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut todo = vec![self.tmp.path().to_path_buf()];
        while let Some(dir) = todo.pop() {
            for item in std::fs::read_dir(&dir).unwrap() {
                let path = item.unwrap().path();
                if path == self.out() {
                    continue;
                }
                let meta = path.symlink_metadata().unwrap();
                if meta.is_dir() {
                    todo.push(path.clone());
                }
                let name = path.file_name().unwrap().to_string_lossy();
                if !name.starts_with("crafted.") && !meta.is_dir() {
                    found.push(path);
                }
            }
        }
        found
    }
}

fn refused(result: Result<(), String>, says: &str) {
    match result {
        Err(e) => assert!(e.contains(says), "{e}"),
        Ok(()) => panic!("unpacked, but should have been refused ({says})"),
    }
}

#[test]
fn entries_climbing_out_or_absolute_are_refused() {
    let place = Place::new();
    refused(
        place.unpack_tar(&[file("../escaped.txt", b"x")]),
        "climbs out of the target",
    );
    refused(
        place.unpack_tar(&[file("a/../../escaped.txt", b"x")]),
        "climbs out of the target",
    );
    let abs = place.tmp.path().join("outside/abs.txt");
    refused(
        place.unpack_tar(&[file(abs.to_str().unwrap(), b"x")]),
        "is an absolute path",
    );
    assert_eq!(place.outside_target(), Vec::<PathBuf>::new());
    // Folding inside is fine.
    place.unpack_tar(&[file("a/../kept.txt", b"k")]).unwrap();
    assert_eq!(std::fs::read(place.out().join("kept.txt")).unwrap(), b"k");
}

#[test]
fn links_pointing_outside_are_refused_and_nothing_is_written_through_a_link() {
    use tar::EntryType::{Link, Symlink};
    let place = Place::new();
    let outside = place.tmp.path().join("outside");
    let cases: Vec<(Vec<E<'_>>, &str)> = vec![
        (
            vec![link(Symlink, "etc", "/etc")],
            "points outside the target",
        ),
        (
            vec![link(Symlink, "up", "../../outside")],
            "points outside the target",
        ),
        // Each link alone stays inside; followed together they lead out.
        (
            vec![
                link(Symlink, "a/up", ".."),
                link(Symlink, "esc", "a/up/../outside"),
            ],
            "leads outside the target",
        ),
        // A link to a directory inside, then a file "inside" it: written through, never.
        (
            vec![
                E {
                    kind: tar::EntryType::Directory,
                    mode: 0o755,
                    ..file("real", b"")
                },
                link(Symlink, "via", "real"),
                file("via/f.txt", b"x"),
            ],
            "is not a directory, yet entries go inside it",
        ),
        (
            vec![link(Link, "passwd", "/etc/passwd")],
            "points outside the target",
        ),
        (
            vec![link(Link, "hl", "../../outside/x")],
            "points outside the target",
        ),
        (
            vec![link(Link, "hl", "missing.txt")],
            "not a file unpacked before it",
        ),
    ];
    for (entries, says) in cases {
        refused(place.unpack_tar(&entries), says);
    }
    assert_eq!(place.outside_target(), Vec::<PathBuf>::new());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!place.out().join("real/f.txt").exists());

    // Links that stay inside are kept as they are.
    let place = Place::new();
    place
        .unpack_tar(&[
            file("lib/code.js", b"code"),
            link(Symlink, "current.js", "lib/code.js"),
            link(Symlink, "lib/self", "../lib"),
            link(Link, "copy.js", "lib/code.js"),
        ])
        .unwrap();
    let out = place.out();
    assert_eq!(
        std::fs::read_link(out.join("current.js")).unwrap(),
        Path::new("lib/code.js")
    );
    assert_eq!(
        std::fs::read(out.join("lib/self/code.js")).unwrap(),
        b"code"
    );
    assert_eq!(
        std::fs::metadata(out.join("copy.js")).unwrap().ino(),
        std::fs::metadata(out.join("lib/code.js")).unwrap().ino()
    );
}

#[test]
fn device_files_and_fifos_are_left_out_and_setuid_bits_cleared() {
    let place = Place::new();
    let special = |name: &'static str, kind| E {
        kind,
        mode: 0o666,
        ..file(name, b"")
    };
    place
        .unpack_tar(&[
            special("sda", tar::EntryType::Block),
            special("null", tar::EntryType::Char),
            special("pipe", tar::EntryType::Fifo),
            E {
                mode: 0o4755,
                ..file("bin/su", b"#!/bin/sh\n")
            },
            E {
                mode: 0o2755,
                ..file("bin/sg", b"#!/bin/sh\n")
            },
            E {
                kind: tar::EntryType::Directory,
                mode: 0o3777,
                ..file("shared", b"")
            },
        ])
        .unwrap();
    let out = place.out();
    for name in ["sda", "null", "pipe"] {
        assert!(
            out.join(name).symlink_metadata().is_err(),
            "{name} was made"
        );
    }
    let mode = |p: &str| std::fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("bin/su"), 0o755);
    assert_eq!(mode("bin/sg"), 0o755);
    assert_eq!(mode("shared"), 0o777);
}

fn zip_with(dir: &Path, build: impl FnOnce(&mut zip::ZipWriter<std::fs::File>)) -> PathBuf {
    let path = dir.join("crafted.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    build(&mut zip);
    zip.finish().unwrap();
    path
}

fn stored(mode: u32) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(mode)
}

#[test]
fn zip_archives_get_the_same_checks() {
    let place = Place::new();
    let try_zip = |build: &dyn Fn(&mut zip::ZipWriter<std::fs::File>)| {
        let archive = zip_with(place.tmp.path(), build);
        unpack(&archive, &place.out()).map_err(|e| e.to_string())
    };
    refused(
        try_zip(&|z| {
            z.start_file("../escaped.txt", stored(0o644)).unwrap();
            z.write_all(b"x").unwrap();
        }),
        "climbs out of the target",
    );
    refused(
        try_zip(&|z| {
            z.add_symlink("etc", "/etc", stored(0o777)).unwrap();
        }),
        "points outside the target",
    );
    refused(
        try_zip(&|z| {
            z.add_symlink("up", "../../outside", stored(0o777)).unwrap();
        }),
        "points outside the target",
    );
    assert_eq!(place.outside_target(), Vec::<PathBuf>::new());

    try_zip(&|z| {
        z.start_file("bin/su", stored(0o4755)).unwrap();
        z.write_all(b"#!/bin/sh\n").unwrap();
        z.add_symlink("su-link", "bin/su", stored(0o777)).unwrap();
    })
    .unwrap();
    let out = place.out();
    assert_eq!(
        std::fs::metadata(out.join("bin/su"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    assert_eq!(
        std::fs::read_link(out.join("su-link")).unwrap(),
        Path::new("bin/su")
    );
}
