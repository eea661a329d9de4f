//! Property tests of archive unpacking: arbitrary bytes, and tar and zip archives made of
//! arbitrary entries (names with `..` and `/`, links to anywhere, any mode, devices), unpack or
//! are refused without a panic, and afterwards nothing exists outside the target, no link inside
//! leads out, no file is setuid or setgid, and no device file was made.

use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use opsworks_agent::archive::unpack;
use proptest::prelude::*;

/// A scratch place: the target `t/out`, with a sibling the archive must never reach.
struct Place {
    tmp: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("t/out")).unwrap();
        std::fs::create_dir_all(tmp.path().join("t/sibling")).unwrap();
        Place { tmp }
    }
    fn out(&self) -> PathBuf {
        self.tmp.path().join("t/out")
    }
    fn archive(&self) -> PathBuf {
        self.tmp.path().join("archive")
    }
}

/// What must hold after any unpack, successful or not.
fn check_contained(place: &Place) -> Result<(), TestCaseError> {
    let t = place.tmp.path().join("t");
    let mut outside: Vec<String> = std::fs::read_dir(&t)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    outside.sort();
    prop_assert_eq!(outside, ["out", "sibling"]);
    prop_assert_eq!(std::fs::read_dir(t.join("sibling")).unwrap().count(), 0);
    let root = std::fs::canonicalize(place.out()).unwrap();
    let mut todo = vec![place.out()];
    while let Some(dir) = todo.pop() {
        for item in std::fs::read_dir(&dir).unwrap() {
            let path = item.unwrap().path();
            let meta = path.symlink_metadata().unwrap();
            let kind = meta.file_type();
            prop_assert!(
                !(kind.is_block_device()
                    || kind.is_char_device()
                    || kind.is_fifo()
                    || kind.is_socket()),
                "a special file was made: {}",
                path.display()
            );
            prop_assert_eq!(meta.permissions().mode() & 0o6000, 0, "{}", path.display());
            if kind.is_symlink() {
                if let Ok(real) = std::fs::canonicalize(&path) {
                    prop_assert!(
                        real.starts_with(&root),
                        "{} leads to {}",
                        path.display(),
                        real.display()
                    );
                }
            } else if kind.is_dir() {
                todo.push(path);
            }
        }
    }
    Ok(())
}

fn name() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("a".to_string()),
        Just("b".to_string()),
        Just("sibling".to_string()),
        "[a-z]{1,4}",
    ];
    (any::<bool>(), prop::collection::vec(part, 1..5))
        .prop_map(|(abs, parts)| format!("{}{}", if abs { "/" } else { "" }, parts.join("/")))
}

#[derive(Debug, Clone)]
enum Kind {
    File,
    Dir,
    Symlink,
    HardLink,
    Char,
    Fifo,
}

fn entries() -> impl Strategy<Value = Vec<(Kind, String, String, u32)>> {
    let kind = prop_oneof![
        Just(Kind::File),
        Just(Kind::Dir),
        Just(Kind::Symlink),
        Just(Kind::HardLink),
        Just(Kind::Char),
        Just(Kind::Fifo),
    ];
    prop::collection::vec((kind, name(), name(), 0u32..0o10000), 0..12)
}

fn write_tar(path: &Path, entries: &[(Kind, String, String, u32)], gzip: bool) {
    let file = std::fs::File::create(path).unwrap();
    let sink: Box<dyn std::io::Write> = if gzip {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(file)
    };
    let mut tar = tar::Builder::new(sink);
    for (kind, name, target, mode) in entries {
        let mut h = tar::Header::new_old();
        let n = name.len().min(99);
        h.as_old_mut().name[..n].copy_from_slice(&name.as_bytes()[..n]);
        let t = target.len().min(99);
        h.as_old_mut().linkname[..t].copy_from_slice(&target.as_bytes()[..t]);
        h.set_entry_type(match kind {
            Kind::File => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::HardLink => tar::EntryType::Link,
            Kind::Char => tar::EntryType::Char,
            Kind::Fifo => tar::EntryType::Fifo,
        });
        h.set_mode(*mode);
        let data: &[u8] = if matches!(kind, Kind::File) {
            b"data"
        } else {
            b""
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        tar.append(&h, data).unwrap();
    }
    tar.into_inner().unwrap().flush().unwrap();
}

fn write_zip(path: &Path, entries: &[(Kind, String, String, u32)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (kind, name, target, mode) in entries {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(*mode);
        // The writer refuses some names itself; what it takes is what an attacker could send.
        let _ = match kind {
            Kind::Dir => zip.add_directory(name.as_str(), opts),
            Kind::Symlink | Kind::HardLink => zip.add_symlink(name.as_str(), target.as_str(), opts),
            _ => zip
                .start_file(name.as_str(), opts)
                .and_then(|_| zip.write_all(b"data").map_err(Into::into)),
        };
    }
    zip.finish().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_refused_or_unpacked_inside(
        prefix in prop_oneof![
            Just(Vec::new()),
            Just(b"PK\x03\x04".to_vec()),
            Just(vec![0x1f, 0x8b]),
        ],
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let place = Place::new();
        std::fs::write(place.archive(), [prefix, bytes].concat()).unwrap();
        let _ = unpack(&place.archive(), &place.out());
        check_contained(&place)?;
    }

    #[test]
    fn arbitrary_tar_entries_stay_inside(list in entries(), gzip in any::<bool>()) {
        let place = Place::new();
        write_tar(&place.archive(), &list, gzip);
        let _ = unpack(&place.archive(), &place.out());
        check_contained(&place)?;
    }

    #[test]
    fn arbitrary_zip_entries_stay_inside(list in entries()) {
        let place = Place::new();
        write_zip(&place.archive(), &list);
        let _ = unpack(&place.archive(), &place.out());
        check_contained(&place)?;
    }

    #[test]
    fn damaged_archives_stay_inside(list in entries(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
        let place = Place::new();
        write_tar(&place.archive(), &list, true);
        let mut bytes = std::fs::read(place.archive()).unwrap();
        let i = flip.index(bytes.len());
        bytes[i] ^= 0x5a;
        bytes.truncate(cut.index(bytes.len() + 1).max(1));
        std::fs::write(place.archive(), bytes).unwrap();
        let _ = unpack(&place.archive(), &place.out());
        check_contained(&place)?;
    }
}
