//! Addresses that move between machines (Elastic IPs): reserved host-wide in the same lease
//! registry as machines' own addresses (a reservation's owner is `<state_dir>/addresses/<ip>`,
//! so it is freed when the state dir goes, like a machine's), added to a running machine's `eth0`
//! as a /32 beside its own address, announced by gratuitous ARP, and removed again.
//!
//! A machine that boots with addresses in its spec gets them before its main process starts;
//! one that stops loses them with its network namespace.

use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::net::NetNames;
use super::{LocalProvider, arp, read_record, running_pid};
use crate::error::{Error, Result};
use crate::spec::validate_id;

impl LocalProvider {
    fn address_dir(&self, ip: Ipv4Addr) -> PathBuf {
        self.state_dir().join("addresses").join(ip.to_string())
    }

    /// Reserves `ip` (one of [`crate::NetworkConfig::reserved`]) for this provider, host-wide:
    /// no machine is leased it and no other provider may reserve it. Reserving it again
    /// succeeds; [`Error::AddressInUse`] names who holds it otherwise.
    pub fn reserve_address_blocking(&self, ip: Ipv4Addr) -> Result<()> {
        self.check_movable(ip)?;
        let dir = self.address_dir(ip);
        let existed = dir.exists();
        fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let reserved = self.network()?.reserve(&dir, ip);
        if reserved.is_err() && !existed {
            let _ = fs::remove_dir(&dir);
        }
        reserved
    }

    /// Gives a reserved address back (the caller has removed it from every machine).
    pub fn release_address_blocking(&self, ip: Ipv4Addr) -> Result<()> {
        let dir = self.address_dir(ip);
        self.network()?.release(&dir)?;
        match fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                context: format!("removing {}", dir.display()),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// The addresses this provider has reserved.
    pub fn reserved_addresses_blocking(&self) -> Result<Vec<Ipv4Addr>> {
        let dir = self.state_dir().join("addresses");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut found: Vec<Ipv4Addr> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        found.sort();
        Ok(found)
    }

    /// Adds the reserved address `ip` to the running machine `id` and announces it, so traffic
    /// to it reaches this machine from now on (take it off its previous holder first).
    pub fn add_address_blocking(&self, id: &str, ip: Ipv4Addr) -> Result<()> {
        let names = self.running_names(id)?;
        self.check_reserved(ip)?;
        let cidr = format!("{ip}/32");
        self.network()?.run(
            &[
                "-netns",
                &names.netns,
                "addr",
                "replace",
                &cidr,
                "dev",
                "eth0",
            ],
            None,
        )?;
        self.announce(&names, ip)
    }

    /// Takes `ip` off machine `id`; nothing to do when it does not run or lacks it.
    pub fn remove_address_blocking(&self, id: &str, ip: Ipv4Addr) -> Result<()> {
        if !self.extra_addresses_blocking(id)?.contains(&ip) {
            return Ok(());
        }
        let names = NetNames::for_machine(&self.machine_dir(id));
        let cidr = format!("{ip}/32");
        self.network()?.run(
            &["-netns", &names.netns, "addr", "del", &cidr, "dev", "eth0"],
            None,
        )
    }

    /// The addresses the running machine `id` answers on besides its own (none when it does not
    /// run).
    pub fn extra_addresses_blocking(&self, id: &str) -> Result<Vec<Ipv4Addr>> {
        validate_id(id)?;
        let dir = self.machine_dir(id);
        let Some(record) = read_record(&dir)? else {
            return Err(Error::NotFound { id: id.to_string() });
        };
        if running_pid(&dir).is_none() {
            return Ok(Vec::new());
        }
        let names = NetNames::for_machine(&dir);
        let listing = self.network()?.output(&[
            "-netns",
            &names.netns,
            "-o",
            "-4",
            "addr",
            "show",
            "dev",
            "eth0",
        ])?;
        Ok(parse_inet(&listing)
            .into_iter()
            .filter(|ip| *ip != record.private_ip)
            .collect())
    }

    /// Refuses an address a spec or a call names that this provider has not reserved.
    pub(super) fn check_reserved(&self, ip: Ipv4Addr) -> Result<()> {
        let mine = self.address_dir(ip);
        match self.network()?.holder_of(ip)? {
            Some(holder) if holder == mine => Ok(()),
            _ => Err(Error::InvalidSpec {
                reason: format!("address {ip} is not reserved by this provider"),
            }),
        }
    }

    /// Tells the host and the other machines that `ip` is now at machine `names`.
    pub(super) fn announce(&self, names: &NetNames, ip: Ipv4Addr) -> Result<()> {
        // The host forgets its entry for the address (it may point at the previous holder, and an
        // entry refreshed within the last second ignores announcements); the neighbours on the
        // bridge hear the announcement.
        let bridge = self.inner.network.bridge.clone();
        let _ = self.network()?.run(
            &["neigh", "flush", "to", &ip.to_string(), "dev", &bridge],
            None,
        );
        arp::announce(&names.netns_path(), ip)
    }

    fn running_names(&self, id: &str) -> Result<NetNames> {
        validate_id(id)?;
        let dir = self.machine_dir(id);
        if !dir.join("machine.json").exists() {
            return Err(Error::NotFound { id: id.to_string() });
        }
        if running_pid(&dir).is_none() {
            return Err(Error::NotRunning { id: id.to_string() });
        }
        Ok(NetNames::for_machine(&dir))
    }

    fn check_movable(&self, ip: Ipv4Addr) -> Result<()> {
        match self.inner.network.reserved {
            Some(range) if range.contains(ip) => Ok(()),
            Some(range) => Err(Error::Config {
                reason: format!("{ip} is outside the addresses kept for moving ({range})"),
            }),
            None => Err(Error::Config {
                reason: "this provider keeps no addresses for moving (no reserved range)".into(),
            }),
        }
    }
}

/// The IPv4 addresses of `ip -o -4 addr show` output.
fn parse_inet(listing: &str) -> Vec<Ipv4Addr> {
    listing
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_from_ip_output() {
        let out = "2: eth0    inet 10.217.0.2/16 brd 10.217.255.255 scope global eth0\\       valid_lft forever preferred_lft forever\n\
                   2: eth0    inet 10.217.255.1/32 scope global eth0\\       valid_lft forever preferred_lft forever\n";
        assert_eq!(
            parse_inet(out),
            vec![Ipv4Addr::new(10, 217, 0, 2), Ipv4Addr::new(10, 217, 255, 1)]
        );
    }
}
