//! A forward HTTP proxy on the machines' gateway, so that package managers inside local instances
//! reach the package mirrors the host reaches: machines have no NAT (and no DNS of their own), so
//! their package manager is pointed here and the host makes the connections.
//!
//! It speaks just what package managers need: `CONNECT host:443` (HTTPS, tunnelled) and
//! absolute-form requests (`GET http://host/path`, plain HTTP, forwarded with the request line in
//! origin form). Only ports 80 and 443 are reachable through it, it listens only on the machines'
//! bridge and serves only clients on it, and it connects only to public addresses (the name is
//! resolved here, every address it resolves to is checked, and the connection goes to a checked
//! address): never the host's loopback, link-local, private or bridge ranges, unless the operator
//! allows a range ([`Policy::allow`]).

use std::time::Duration;

use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::{TcpListener, TcpStream};

/// The largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// How long connecting to an upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Who may use the proxy and where it may connect.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The networks clients must come from (the machines' bridge); empty lets anyone in (tests).
    pub clients: Vec<ipnet::IpNet>,
    /// Non-public ranges the operator allows as destinations (a package mirror on the LAN).
    pub allow: Vec<ipnet::IpNet>,
}

impl Policy {
    fn client_allowed(&self, ip: IpAddr) -> bool {
        self.clients.is_empty() || self.clients.iter().any(|n| n.contains(&ip))
    }

    /// Whether the proxy may connect to `ip`: a public address, or one the operator allowed.
    pub fn destination_allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|n| n.contains(&ip)) || is_public(ip)
    }
}

/// Whether an address is on the public internet: not loopback, unspecified, link-local,
/// private (RFC 1918, unique local), shared (CGNAT), documentation, benchmarking, multicast or
/// broadcast.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_private()
                || a.is_link_local()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            let seg = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] == 0x2001 && seg[1] == 0x0db8))
        }
    }
}

/// Serves the proxy on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, stop: tokio_util::sync::CancellationToken) {
    serve_with(listener, Policy::default(), stop).await
}

/// [`serve`] under a policy.
pub async fn serve_with(
    listener: TcpListener,
    policy: Policy,
    stop: tokio_util::sync::CancellationToken,
) {
    let policy = std::sync::Arc::new(policy);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let Ok((client, peer)) = accepted else {
            continue;
        };
        if !policy.client_allowed(peer.ip()) {
            tracing::warn!(%peer, "package proxy: refused a client from outside the machines' bridge");
            continue;
        }
        let policy = policy.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(client, &policy).await {
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

async fn handle(mut client: TcpStream, policy: &Policy) -> std::io::Result<()> {
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
    // Resolve here and check every address, then connect to a checked one, so neither a name
    // nor a numeric form (`127.1`, `2130706433`) reaches what it must not.
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(a)) => a.collect(),
        _ => return reply(&mut client, "502 Bad Gateway").await,
    };
    if addrs.is_empty() || addrs.iter().any(|a| !policy.destination_allowed(a.ip())) {
        tracing::warn!(
            host,
            port,
            "package proxy: refused a destination that is not public"
        );
        return reply(&mut client, "403 Forbidden").await;
    }
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addrs[..])).await
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

/// Splits `host:port` (a bracketed IPv6 host allowed). The port is plain digits with no sign and
/// no leading zero (`:+80` and `:080` are refused); the host is a name or an address, nothing
/// else (no user info, no spaces).
fn host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (h, parse_port(p)?),
            None if after.is_empty() => (h, default_port),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, parse_port(p)?),
            None => (authority, default_port),
        }
    };
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_');
    (!host.is_empty() && host.chars().all(ok_char)).then(|| (host.to_string(), port))
}

fn parse_port(p: &str) -> Option<u16> {
    let digits = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !p.starts_with('0');
    digits.then(|| p.parse().ok()).flatten()
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

    #[test]
    fn only_public_destinations_and_plain_ports() {
        let p = Policy::default();
        for blocked in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.217.0.5",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(
                !p.destination_allowed(blocked.parse().unwrap()),
                "{blocked}"
            );
        }
        for public in ["151.101.2.132", "2a04:4e42::644"] {
            assert!(p.destination_allowed(public.parse().unwrap()), "{public}");
        }
        let lan = Policy {
            allow: vec!["192.168.0.0/16".parse().unwrap()],
            ..Policy::default()
        };
        assert!(lan.destination_allowed("192.168.1.1".parse().unwrap()));
        for bad in ["h:+80", "h:080", "h:", "user@h:80", "h :80", "[::1"] {
            assert_eq!(host_port(bad, 80), None, "{bad}");
        }
        assert_eq!(host_port("[::1]:443", 80), Some(("::1".into(), 443)));
    }

    async fn ask(addr: std::net::SocketAddr, request: &str) -> String {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        // A dropped client sees its connection closed or reset: either way, no answer.
        let _ = c.read_to_string(&mut answer).await;
        answer
    }

    #[tokio::test]
    async fn the_host_and_private_ranges_are_never_reached() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, tokio_util::sync::CancellationToken::new()));
        // Every spelling of the host's loopback: refused before any connection is tried.
        for target in [
            "CONNECT 127.0.0.1:443",
            "CONNECT localhost:443",
            "CONNECT 127.1:443",
            "CONNECT 2130706433:443",
            "CONNECT [::1]:443",
            "GET http://127.0.0.1/",
            "GET http://localhost:80/",
        ] {
            let answer = ask(addr, &format!("{target} HTTP/1.1\r\n\r\n")).await;
            assert!(answer.starts_with("HTTP/1.1 403"), "{target}: {answer}");
        }
        for target in ["CONNECT 127.0.0.1:+80", "CONNECT 127.0.0.1:080"] {
            let answer = ask(addr, &format!("{target} HTTP/1.1\r\n\r\n")).await;
            assert!(answer.starts_with("HTTP/1.1 400"), "{target}: {answer}");
        }
    }

    #[tokio::test]
    async fn clients_off_the_bridge_and_allowed_ranges() {
        // Clients must come from the bridge: a loopback client is dropped without an answer.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bridge_only = Policy {
            clients: vec!["10.217.0.0/16".parse().unwrap()],
            allow: Vec::new(),
        };
        tokio::spawn(serve_with(
            listener,
            bridge_only,
            tokio_util::sync::CancellationToken::new(),
        ));
        assert_eq!(
            ask(addr, "CONNECT example.org:443 HTTP/1.1\r\n\r\n").await,
            ""
        );
        // An allowed range is reached (a closed port there: 502, not 403).
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let lan = Policy {
            clients: Vec::new(),
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        };
        tokio::spawn(serve_with(
            listener,
            lan,
            tokio_util::sync::CancellationToken::new(),
        ));
        let answer = ask(addr, "CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    }
}
