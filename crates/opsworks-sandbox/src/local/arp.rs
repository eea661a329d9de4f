//! Gratuitous ARP: when an address moves to another machine, the machine announces it from its
//! own `eth0`, so every neighbour on the bridge (the host, the other machines) points its ARP
//! cache at the new holder at once instead of waiting for the old entry to go stale.
//!
//! The frames are sent from a thread of our own that enters the machine's network namespace
//! (allowed per thread) and ends right after, so no thread of a pool is left in it.

use std::fs::File;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

use crate::error::{Error, Result};

/// The interface a machine's address lives on.
const DEVICE: &str = "eth0";

/// Announces `ip` from the machine whose network namespace is mounted at `netns`: an ARP
/// request and an ARP reply, both "this address is at my MAC", broadcast.
pub(crate) fn announce(netns: &Path, ip: Ipv4Addr) -> Result<()> {
    let netns: PathBuf = netns.to_path_buf();
    std::thread::Builder::new()
        .name("opsworks-garp".into())
        .spawn(move || announce_from_inside(&netns, ip))
        .map_err(Error::io("starting the gratuitous ARP thread"))?
        .join()
        .map_err(|_| Error::Task {
            reason: "the gratuitous ARP thread panicked".into(),
        })?
}

fn announce_from_inside(netns: &Path, ip: Ipv4Addr) -> Result<()> {
    let ns = File::open(netns).map_err(Error::io(format!("opening {}", netns.display())))?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(Error::sys(format!(
        "entering network namespace {}",
        netns.display()
    )))?;
    let protocol = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: a plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            i32::from(protocol),
        )
    };
    if raw < 0 {
        return Err(Error::sys("opening a packet socket")(
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: `raw` is a fresh descriptor owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let (index, mac) = device_of(&sock)?;
    let mut to: libc::sockaddr_ll = unsafe { mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = protocol;
    to.sll_ifindex = index;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    for (operation, target_mac) in [(1u16, [0u8; 6]), (2u16, mac)] {
        let frame = arp_payload(operation, mac, ip, target_mac);
        // SAFETY: the buffer and the address are live and of the lengths given.
        let sent = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const to).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(Error::sys(format!("announcing {ip} on {DEVICE}"))(
                nix::errno::Errno::last(),
            ));
        }
    }
    Ok(())
}

/// The interface index and MAC address of [`DEVICE`] in the current network namespace.
fn device_of(sock: &OwnedFd) -> Result<(i32, [u8; 6])> {
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(DEVICE.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `req` is a zeroed ifreq naming the device; the kernel fills the union member.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) } < 0 {
        return Err(Error::sys(format!("finding {DEVICE}"))(
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: SIOCGIFINDEX filled the index member.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    // SAFETY: as above, for the hardware address.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(Error::sys(format!("reading the MAC address of {DEVICE}"))(
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: SIOCGIFHWADDR filled the hardware address member.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(data.iter()) {
        *dst = *src as u8;
    }
    Ok((index, mac))
}

/// An Ethernet/IPv4 ARP packet (the part after the Ethernet header) announcing that `ip` is at
/// `mac`: sender and target address both `ip`.
fn arp_payload(operation: u16, mac: [u8; 6], ip: Ipv4Addr, target_mac: [u8; 6]) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&operation.to_be_bytes());
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&ip.octets());
    p[18..24].copy_from_slice(&target_mac);
    p[24..28].copy_from_slice(&ip.octets());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_names_the_address_twice() {
        let mac = [2, 0, 0, 0, 0, 7];
        let p = arp_payload(1, mac, Ipv4Addr::new(10, 217, 255, 1), [0; 6]);
        assert_eq!(&p[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&p[8..14], &mac);
        assert_eq!(&p[14..18], &[10, 217, 255, 1]);
        assert_eq!(&p[24..28], &[10, 217, 255, 1]);
    }
}
