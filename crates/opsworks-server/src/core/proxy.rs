//! A forward HTTP proxy on the machines' gateway, so that package managers inside local instances
//! reach the package mirrors the host reaches: machines have no NAT (and no DNS of their own), so
//! their package manager is pointed here and the host makes the connections.
//!
//! It speaks just what package managers need: `CONNECT host:443` (HTTPS, tunnelled) and
//! absolute-form requests (`GET http://host/path`, plain HTTP, forwarded with the request line in
//! origin form). Only ports 80 and 443 are reachable through it, and it listens only on the
//! machines' bridge.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// How long connecting to an upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the proxy on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, stop: tokio_util::sync::CancellationToken) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let Ok((client, peer)) = accepted else {
            continue;
        };
        tokio::spawn(async move {
            if let Err(e) = handle(client).await {
                tracing::debug!(%peer, "package proxy: {e}");
            }
        });
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// A tunnel to `host:port`.
    Connect { host: String, port: u16 },
    /// A plain HTTP request to `host:port`, with its head rewritten to origin form.
    Forward {
        host: String,
        port: u16,
        head: Vec<u8>,
    },
}

async fn handle(mut client: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client, &mut buf)).await
    {
        Ok(Ok(Some(end))) => end,
        Ok(Ok(None)) => return reply(&mut client, "431 Request Header Fields Too Large").await,
        Ok(Err(e)) => return Err(e),
        Err(_) => return reply(&mut client, "408 Request Timeout").await,
    };
    let target = match parse(&buf[..head_end]) {
        Ok(t) => t,
        Err(status) => return reply(&mut client, status).await,
    };
    let (host, port) = match &target {
        Target::Connect { host, port } | Target::Forward { host, port, .. } => {
            (host.clone(), *port)
        }
    };
    let upstream = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        _ => return reply(&mut client, "502 Bad Gateway").await,
    };
    let mut upstream = upstream;
    match target {
        Target::Connect { .. } => {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await?;
        }
        Target::Forward { head, .. } => upstream.write_all(&head).await?,
    }
    // Whatever the client sent after its head (a TLS hello, a request body) goes on unchanged.
    upstream.write_all(&buf[head_end..]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// Reads until the end of the request head; returns its length (with the blank line), or `None`
/// when it grows past [`MAX_HEAD`].
async fn read_head(client: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(i + 4));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn reply(client: &mut TcpStream, status: &str) -> std::io::Result<()> {
    let text = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    client.write_all(text.as_bytes()).await
}

/// Splits `host:port` (a bracketed IPv6 host allowed).
fn host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, p.parse().ok()?),
        _ => (authority, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// Reads a request head; the error is the status to answer with.
fn parse(head: &[u8]) -> Result<Target, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "400 Bad Request")?;
    let (line, rest) = text.split_once("\r\n").ok_or("400 Bad Request")?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("400 Bad Request");
    };
    let allowed = |port: u16| port == 80 || port == 443;
    if method == "CONNECT" {
        let (host, port) = host_port(target, 443).ok_or("400 Bad Request")?;
        if !allowed(port) {
            return Err("403 Forbidden");
        }
        return Ok(Target::Connect { host, port });
    }
    let Some(after) = target.strip_prefix("http://") else {
        // An origin-form request is for a web server, not a proxy; https:// must come as CONNECT.
        return Err("400 Bad Request");
    };
    let (authority, path) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, "/"),
    };
    let (host, port) = host_port(authority, 80).ok_or("400 Bad Request")?;
    if !allowed(port) {
        return Err("403 Forbidden");
    }
    let mut out = format!("{method} {path} {version}\r\n");
    for header in rest.split("\r\n").filter(|h| !h.is_empty()) {
        let name = header
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        // Hop-by-hop for the proxy; the upstream gets one request per connection.
        if matches!(
            name.as_str(),
            "proxy-connection" | "proxy-authorization" | "connection" | "keep-alive"
        ) {
            continue;
        }
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    Ok(Target::Forward {
        host,
        port,
        head: out.into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_absolute_requests_are_understood() {
        assert_eq!(
            parse(b"CONNECT deb.debian.org:443 HTTP/1.1\r\nHost: deb.debian.org:443\r\n\r\n"),
            Ok(Target::Connect {
                host: "deb.debian.org".into(),
                port: 443
            })
        );
        let Ok(Target::Forward { host, port, head }) = parse(
            b"GET http://deb.debian.org/debian/dists/x HTTP/1.1\r\nHost: deb.debian.org\r\nProxy-Connection: keep-alive\r\nUser-Agent: apt\r\n\r\n",
        ) else {
            panic!("not a forward");
        };
        assert_eq!((host.as_str(), port), ("deb.debian.org", 80));
        let head = String::from_utf8(head).unwrap();
        assert!(
            head.starts_with("GET /debian/dists/x HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains("User-Agent: apt\r\n") && head.ends_with("Connection: close\r\n\r\n")
        );
        assert!(!head.contains("Proxy-Connection"));
    }

    #[test]
    fn other_ports_and_forms_are_refused() {
        assert_eq!(
            parse(b"CONNECT 10.0.0.1:22 HTTP/1.1\r\n\r\n"),
            Err("403 Forbidden")
        );
        assert_eq!(
            parse(b"GET http://h:8080/ HTTP/1.1\r\n\r\n"),
            Err("403 Forbidden")
        );
        assert_eq!(
            parse(b"GET /local HTTP/1.1\r\n\r\n"),
            Err("400 Bad Request")
        );
        assert_eq!(parse(b"nonsense\r\n\r\n"), Err("400 Bad Request"));
    }

    #[tokio::test]
    async fn a_request_is_forwarded_to_its_host() {
        // An upstream web server on loopback port 80 is not available to tests; check the tunnel
        // end to end with CONNECT refused by port and a forward to a closed port answered 502.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, tokio_util::sync::CancellationToken::new()));
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    }
}
