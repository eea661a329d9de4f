//! Automatic attributes (Chef's Ohai, reduced to what recipes use): hostname, addresses, OS,
//! CPU count and memory, read straight from /proc and /etc so collecting them costs microseconds.

use serde_json::{Map, Value, json};

/// Collects the host facts as the `automatic` attribute level.
pub fn collect() -> Map<String, Value> {
    let hostname =
        read_trim("/proc/sys/kernel/hostname").unwrap_or_else(|| "localhost".to_string());
    let domain =
        read_trim("/proc/sys/kernel/domainname").filter(|d| !d.is_empty() && d != "(none)");
    let fqdn = match &domain {
        Some(d) => format!("{hostname}.{d}"),
        None => hostname.clone(),
    };
    let ipv4 = ipv4_addresses();
    let ipv6 = ipv6_addresses();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let os = parse_os_release(&os_release);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| meminfo_total_kb(&m))
        .unwrap_or(0);
    let mut out = Map::new();
    out.insert("hostname".into(), json!(hostname));
    out.insert("fqdn".into(), json!(fqdn));
    out.insert("domain".into(), json!(domain));
    out.insert(
        "ipaddress".into(),
        json!(
            ipv4.iter()
                .find(|a| !a.starts_with("127."))
                .or(ipv4.first())
        ),
    );
    out.insert(
        "ip6address".into(),
        json!(ipv6.iter().find(|a| *a != "::1")),
    );
    out.insert("network".into(), json!({"ipv4": ipv4, "ipv6": ipv6}));
    out.insert("os".into(), json!("linux"));
    out.insert("platform".into(), json!(os.id));
    out.insert("platform_family".into(), json!(os.family));
    out.insert("platform_version".into(), json!(os.version));
    out.insert("cpu".into(), json!({"total": cpus}));
    out.insert(
        "memory".into(),
        json!({"total": format!("{mem_kb}kB"), "total_bytes": mem_kb * 1024}),
    );
    out
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// What /etc/os-release says, mapped to Chef's platform names.
#[derive(Debug, PartialEq)]
pub struct OsInfo {
    /// `ID`, e.g. `debian`.
    pub id: String,
    /// Chef's platform_family: debian, rhel, fedora, alpine, suse, arch, or the ID itself.
    pub family: String,
    /// `VERSION_ID`, e.g. `12`.
    pub version: String,
}

/// Parses /etc/os-release content.
pub fn parse_os_release(text: &str) -> OsInfo {
    let mut id = String::from("linux");
    let mut like = String::new();
    let mut version = String::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim() {
            "ID" => id = v,
            "ID_LIKE" => like = v,
            "VERSION_ID" => version = v,
            _ => {}
        }
    }
    let words: Vec<&str> = std::iter::once(id.as_str())
        .chain(like.split_whitespace())
        .collect();
    let family = if words.iter().any(|w| *w == "debian" || *w == "ubuntu") {
        "debian"
    } else if id == "fedora" {
        "fedora"
    } else if words
        .iter()
        .any(|w| matches!(*w, "rhel" | "centos" | "fedora"))
    {
        "rhel"
    } else if words.contains(&"alpine") {
        "alpine"
    } else if words.iter().any(|w| w.contains("suse")) {
        "suse"
    } else if words.contains(&"arch") {
        "arch"
    } else {
        id.as_str()
    }
    .to_string();
    OsInfo {
        id,
        family,
        version,
    }
}

fn meminfo_total_kb(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Local IPv4 addresses from /proc/net/fib_trie (the `/32 host LOCAL` entries).
fn ipv4_addresses() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    let mut last_addr: Option<&str> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ") {
            last_addr = Some(addr);
        } else if t.contains("/32 host LOCAL")
            && let Some(a) = last_addr
            && !out.iter().any(|o| o == a)
        {
            out.push(a.to_string());
        }
    }
    out
}

/// IPv6 addresses from /proc/net/if_inet6 (32 hex digits per line).
fn ipv6_addresses() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|h| h.len() == 32)
        .filter_map(|h| {
            let mut bytes = [0u8; 16];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = u8::from_str_radix(h.get(i * 2..i * 2 + 2)?, 16).ok()?;
            }
            Some(std::net::Ipv6Addr::from(bytes).to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_maps_to_chef_platform_family() {
        let deb = parse_os_release("ID=debian\nVERSION_ID=\"12\"\n");
        assert_eq!(
            deb,
            OsInfo {
                id: "debian".into(),
                family: "debian".into(),
                version: "12".into()
            }
        );
        let rocky =
            parse_os_release("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"");
        assert_eq!(rocky.family, "rhel");
        assert_eq!(
            parse_os_release("ID=alpine\nVERSION_ID=3.20.0").family,
            "alpine"
        );
    }

    #[test]
    fn facts_of_this_host_are_plausible() {
        let f = collect();
        assert!(!f["hostname"].as_str().unwrap_or("").is_empty());
        assert!(f["cpu"]["total"].as_u64().unwrap_or(0) >= 1);
        assert!(f["memory"]["total_bytes"].as_u64().unwrap_or(0) > 0);
        assert!(
            f["network"]["ipv4"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "127.0.0.1"))
        );
    }
}
