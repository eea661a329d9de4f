//! What the agent tells about its host: hostname, IPv4 addresses, OS, memory and CPUs.

use opsworks_protocol::ReportedOs;

/// The host's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The host's IPv4 addresses, loopback excluded, in interface order.
pub fn addresses() -> Vec<String> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we walk read-only and free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null() && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() && !out.contains(&ip.to_string()) {
                    out.push(ip.to_string());
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

/// The OS, from `/etc/os-release`.
pub fn reported_os() -> ReportedOs {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let (id, like, version) = (field("ID"), field("ID_LIKE"), field("VERSION_ID"));
    ReportedOs {
        family: os_family(&id, &like),
        name: id,
        version,
    }
}

/// The OS family of `/etc/os-release`'s `ID` and `ID_LIKE`: `debian`, `rhel`, or the ID itself
/// for another. What the agent reports in its hello and what registration declares agree.
pub fn os_family(id: &str, like: &str) -> String {
    let is = |names: &[&str]| {
        names
            .iter()
            .any(|n| id == *n || like.split_whitespace().any(|l| l == *n))
    };
    if is(&["debian", "ubuntu"]) {
        "debian".to_string()
    } else if is(&["rhel", "fedora", "centos", "amzn"]) {
        "rhel".to_string()
    } else {
        id.to_string()
    }
}

/// Total memory in kB, from `/proc/meminfo`.
pub fn memory_kb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The CPUs this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_come_from_this_host() {
        assert!(!hostname().is_empty());
        assert!(addresses().iter().all(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        }));
        assert!(cpus() >= 1);
        assert!(memory_kb().is_some_and(|m| m > 0));
    }
}
