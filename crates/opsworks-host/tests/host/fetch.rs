//! Downloads from a tiny HTTP server on 127.0.0.1:0 started by the test.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use opsworks_host::HostError;
use opsworks_host::fetch::{download, sha256_file};

const BODY: &[u8] = b"hello from the test server\n";

/// Serves `BODY` at `/file` and 404 elsewhere, for as long as the test runs; returns the base URL.
fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Skip the headers.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
                line.clear();
            }
            let (status, body): (&str, &[u8]) = if request_line.starts_with("GET /file ") {
                ("200 OK", BODY)
            } else {
                ("404 Not Found", b"no")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    format!("http://{addr}")
}

fn sha(data: &[u8]) -> String {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), data).unwrap();
    sha256_file(tmp.path()).unwrap()
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn download_verifies_and_writes_atomically() {
    let base = server();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.txt");
    let good = sha(BODY);

    let outcome = download(&format!("{base}/file"), &dest, Some(&good.to_uppercase())).unwrap();
    assert_eq!(outcome.sha256, good);
    assert_eq!(outcome.bytes, BODY.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), BODY);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o644
    );

    // A mismatch names both sums and leaves nothing behind: no new file, no temporary file,
    // and an existing file untouched.
    let wrong = "0".repeat(64);
    let fresh = dir.path().join("fresh.txt");
    match download(&format!("{base}/file"), &fresh, Some(&wrong)) {
        Err(HostError::ChecksumMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, good);
        }
        other => panic!("{other:?}"),
    }
    assert!(!fresh.exists());
    std::fs::write(&dest, b"old content").unwrap();
    assert!(download(&format!("{base}/file"), &dest, Some(&wrong)).is_err());
    assert_eq!(std::fs::read(&dest).unwrap(), b"old content");
    assert_eq!(entries(dir.path()), vec!["file.txt"]);

    // Without a checksum it just downloads, replacing the file.
    let outcome = download(&format!("{base}/file"), &dest, None).unwrap();
    assert_eq!(outcome.sha256, good);
    assert_eq!(std::fs::read(&dest).unwrap(), BODY);

    match download(&format!("{base}/missing"), &fresh, None) {
        Err(HostError::HttpStatus { status, .. }) => assert_eq!(status, 404),
        other => panic!("{other:?}"),
    }
    assert!(!fresh.exists());
    assert_eq!(entries(dir.path()), vec!["file.txt"]);
}

#[test]
fn unreachable_servers_are_reported_without_credentials() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let err = download(
        &format!("http://user:hunter2@127.0.0.1:{port}/x"),
        &dir.path().join("x"),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, HostError::Http { .. }), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(entries(dir.path()).is_empty());
}
