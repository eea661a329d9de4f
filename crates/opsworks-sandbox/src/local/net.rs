//! Host networking of local machines: the shared bridge, one network namespace and veth pair per
//! machine, and host-wide address leases so that providers with different state dirs never hand
//! out the same address on the same bridge.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// Where local machines are attached and which addresses they get.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Host bridge every machine's veth is attached to.
    pub bridge: String,
    /// The bridge's address on the host: the machines' default gateway, and the address the
    /// control plane listens on for agents.
    pub gateway: Ipv4Addr,
    /// Prefix length of the machine subnet.
    pub prefix_len: u8,
    /// Host-wide directory for the lock and address leases shared by every provider on this bridge.
    pub run_dir: PathBuf,
    /// Masquerade machine traffic to the outside world (needs `iptables`); off by default, so
    /// machines reach only the host and each other.
    pub nat: bool,
    /// Addresses never leased to a machine as its own: kept for addresses that move between
    /// machines (Elastic IPs, [`crate::LocalProvider::reserve_address`]).
    pub reserved: Option<AddressRange>,
}

/// An inclusive range of IPv4 addresses, written `10.217.255.0/24` (its host addresses: the
/// network and broadcast addresses left out) or `10.217.255.10-10.217.255.20`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    /// The first address.
    pub first: Ipv4Addr,
    /// The last address.
    pub last: Ipv4Addr,
}

impl AddressRange {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(self.first)..=u32::from(self.last)).contains(&u32::from(ip))
    }

    /// Every address of the range, in order.
    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        (u32::from(self.first)..=u32::from(self.last)).map(Ipv4Addr::from)
    }

    /// How many addresses it holds.
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }

    /// Never: a range holds at least its first address.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl std::fmt::Display for AddressRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl std::str::FromStr for AddressRange {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?} is not an address range (10.217.255.0/24 or A-B)");
        if let Some((net, len)) = s.split_once('/') {
            let net: Ipv4Addr = net.trim().parse().map_err(|_| bad())?;
            let len: u32 = len.trim().parse().map_err(|_| bad())?;
            if !(8..=30).contains(&len) {
                return Err(format!("{s}: the prefix length must be between 8 and 30"));
            }
            let mask = u32::MAX << (32 - len);
            let base = u32::from(net) & mask;
            return Ok(AddressRange {
                first: Ipv4Addr::from(base + 1),
                last: Ipv4Addr::from((base | !mask) - 1),
            });
        }
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let first: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
        let last: Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
        if u32::from(first) > u32::from(last) {
            return Err(format!("{s}: the first address is after the last"));
        }
        Ok(AddressRange { first, last })
    }
}

/// The addresses kept for Elastic IPs by default: the last /24 of the default subnet.
pub const DEFAULT_RESERVED: AddressRange = AddressRange {
    first: Ipv4Addr::new(10, 217, 255, 1),
    last: Ipv4Addr::new(10, 217, 255, 254),
};

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            bridge: "opsw0".to_string(),
            gateway: Ipv4Addr::new(10, 217, 0, 1),
            prefix_len: 16,
            run_dir: PathBuf::from("/run/opsworks-sandbox"),
            nat: false,
            reserved: Some(DEFAULT_RESERVED),
        }
    }
}

impl NetworkConfig {
    fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len.min(32)))
        }
    }

    /// The machine subnet in CIDR notation.
    pub fn subnet(&self) -> String {
        format!(
            "{}/{}",
            Ipv4Addr::from(u32::from(self.gateway) & self.mask()),
            self.prefix_len
        )
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::Config { reason });
        if self.bridge.is_empty()
            || self.bridge.len() > 15
            || !self
                .bridge
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(format!(
                "bridge name {:?} must be 1 to 15 of A-Z a-z 0-9 - _",
                self.bridge
            ));
        }
        if !(8..=30).contains(&self.prefix_len) {
            return bad(format!(
                "prefix length {} must be between 8 and 30",
                self.prefix_len
            ));
        }
        let host = u32::from(self.gateway) & !self.mask();
        if host == 0 || host == !self.mask() {
            return bad(format!(
                "gateway {} is the network or broadcast address",
                self.gateway
            ));
        }
        if let Some(r) = self.reserved {
            if !self.assignable(r.first) || !self.assignable(r.last) {
                return bad(format!(
                    "reserved addresses {r} must be host addresses of the subnet {}",
                    self.subnet()
                ));
            }
            if r.contains(self.gateway) {
                return bad(format!(
                    "reserved addresses {r} include the gateway {}",
                    self.gateway
                ));
            }
        }
        Ok(())
    }

    /// Whether `ip` is a host address of the subnet (neither its network nor its broadcast
    /// address).
    pub(crate) fn assignable(&self, ip: Ipv4Addr) -> bool {
        let mask = self.mask();
        let network = u32::from(self.gateway) & mask;
        let ip = u32::from(ip);
        ip & mask == network && ip != network && ip != network | !mask
    }
}

/// Kernel names of one machine's network objects, derived from its state directory so that
/// machines with the same id under different state dirs do not collide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetNames {
    /// Network namespace, as `ip netns` names it (`/run/netns/<name>`).
    pub netns: String,
    /// Host end of the veth pair, attached to the bridge.
    pub veth_host: String,
    /// Temporary name of the machine end before it becomes `eth0` inside.
    pub veth_peer: String,
}

impl NetNames {
    pub(crate) fn for_machine(machine_dir: &Path) -> Self {
        // Interface names are limited to 15 bytes: use a short hash of the path.
        let short = short_hash(machine_dir.as_os_str());
        NetNames {
            netns: format!("opsw-{short}"),
            veth_host: format!("opswv{short}"),
            veth_peer: format!("opswp{short}"),
        }
    }

    pub(crate) fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }
}

/// 40 bits of FNV-1a as 10 hex digits: a short, stable name for a path.
pub(crate) fn short_hash(text: &OsStr) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:010x}", hash & 0xff_ffff_ffff)
}

/// The bridge's own MAC address: fixed and derived from its name (locally administered,
/// unicast). A bridge left to choose takes the lowest MAC among its ports, so it changed whenever
/// a machine with a lower one joined; the machines already running still sent to the gateway's
/// old MAC, and their connections to the host went dark until their ARP entries expired (about
/// ten seconds: agents fell silent and were taken for lost).
pub(crate) fn bridge_mac(bridge: &str) -> String {
    let h = short_hash(OsStr::new(bridge));
    format!(
        "02:{}:{}:{}:{}:{}",
        &h[0..2],
        &h[2..4],
        &h[4..6],
        &h[6..8],
        &h[8..10]
    )
}

/// Whether a link's MAC address was set explicitly (`addr_assign_type` 3, `NET_ADDR_SET`), so
/// ports joining a bridge no longer move it.
fn mac_was_set(link: &str) -> bool {
    fs::read_to_string(
        Path::new("/sys/class/net")
            .join(link)
            .join("addr_assign_type"),
    )
    .is_ok_and(|t| t.trim() == "3")
}

/// Network operations, shelling out to iproute2 for links and namespaces.
pub(crate) struct Network<'a> {
    pub cfg: &'a NetworkConfig,
    pub ip: &'a Path,
}

/// File name suffix of a lease's sidecar, which names the mount namespace the lease was made
/// from (`mnt:[4026531841]`): an owner directory is looked for only from that namespace.
const MOUNT_NS_SUFFIX: &str = "mntns";

/// The calling process's mount namespace, as `/proc/self/ns/mnt` names it.
pub(crate) fn mount_ns() -> Option<String> {
    fs::read_link("/proc/self/ns/mnt")
        .ok()
        .map(|l| l.to_string_lossy().into_owned())
}

/// One address lease of the host-wide registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    pub ip: Ipv4Addr,
    /// The machine's directory under its provider's state dir.
    pub owner: PathBuf,
    /// The mount namespace the lease was made from (`None`: made by an older provider).
    pub mount_ns: Option<String>,
}

impl Lease {
    /// Whether the owner directory can be judged from a process in mount namespace `mine`.
    pub(crate) fn judged_from(&self, mine: Option<&str>) -> bool {
        match (&self.mount_ns, mine) {
            (Some(theirs), Some(mine)) => theirs == mine,
            _ => true,
        }
    }

    /// Whether the owner directory is gone, as seen from mount namespace `mine`.
    pub(crate) fn owner_gone(&self, mine: Option<&str>) -> bool {
        self.judged_from(mine) && fs::symlink_metadata(&self.owner).is_err()
    }

    /// Whether the address may be handed out again: the owner is gone and so is its machine.
    fn is_free(&self, mine: Option<&str>, layout: Option<&crate::cgroup::Layout>) -> bool {
        self.owner_gone(mine) && !machine_remains(&NetNames::for_machine(&self.owner), layout)
    }
}

/// Whether anything of a machine is on the host: its network namespace or veth, or a process
/// in its control group.
pub(crate) fn machine_remains(names: &NetNames, layout: Option<&crate::cgroup::Layout>) -> bool {
    names.netns_path().exists()
        || link_exists(&names.veth_host)
        || layout.is_some_and(|l| !l.group(&names.netns).procs().is_empty())
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

impl Network<'_> {
    /// The host-wide lock serialising bridge changes, attachments, leases and reaping.
    pub(crate) fn lock(&self) -> Result<Flock<File>> {
        fs::create_dir_all(&self.cfg.run_dir).map_err(Error::io(format!(
            "creating {}",
            self.cfg.run_dir.display()
        )))?;
        let path = self.cfg.run_dir.join(format!("{}.lock", self.cfg.bridge));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io(format!("opening {}", path.display())))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| Error::sys(format!("locking {}", path.display()))(errno))
    }

    fn leases_dir(&self) -> PathBuf {
        self.cfg.run_dir.join(format!("{}.leases", self.cfg.bridge))
    }

    /// Every lease of the registry as recorded, stale or not; the caller holds [`Network::lock`].
    pub(crate) fn lease_records(&self) -> Result<Vec<Lease>> {
        let dir = self.leases_dir();
        fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let mut leases = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io(format!("listing {}", dir.display())))? {
            let entry = entry.map_err(Error::io(format!("listing {}", dir.display())))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            match name.parse::<Ipv4Addr>() {
                Ok(ip) => {
                    let Ok(bytes) = fs::read(entry.path()) else {
                        continue;
                    };
                    let mount_ns = fs::read_to_string(dir.join(format!("{ip}.{MOUNT_NS_SUFFIX}")))
                        .ok()
                        .map(|t| t.trim().to_string());
                    leases.push(Lease {
                        ip,
                        owner: PathBuf::from(OsStr::from_bytes(&bytes)),
                        mount_ns,
                    });
                }
                // A sidecar whose lease an older provider released.
                Err(_) => {
                    if let Some(ip) = name.strip_suffix(&format!(".{MOUNT_NS_SUFFIX}"))
                        && !dir.join(ip).exists()
                    {
                        let _ = fs::remove_file(entry.path());
                    }
                }
            }
        }
        Ok(leases)
    }

    /// Removes one lease; the caller holds [`Network::lock`].
    pub(crate) fn drop_lease(&self, ip: Ipv4Addr) -> Result<()> {
        let dir = self.leases_dir();
        let _ = fs::remove_file(dir.join(format!("{ip}.{MOUNT_NS_SUFFIX}")));
        let path = dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                context: format!("removing {}", path.display()),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// The machine names (`opsw-<hash>`) of every lease in every registry under the run
    /// directory, whatever its bridge: what a lease-less namespace or group is checked against.
    pub(crate) fn all_leased_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let Ok(registries) = fs::read_dir(&self.cfg.run_dir) else {
            return names;
        };
        for registry in registries.flatten() {
            if !registry.file_name().to_string_lossy().ends_with(".leases") {
                continue;
            }
            for entry in fs::read_dir(registry.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<Ipv4Addr>().is_ok())
                    && let Ok(bytes) = fs::read(entry.path())
                {
                    names.insert(NetNames::for_machine(Path::new(OsStr::from_bytes(&bytes))).netns);
                }
            }
        }
        names
    }

    /// Leases (ip, owner) that hold their address. A lease is free again only when its owner
    /// directory is gone and nothing of its machine is left on the host (no network namespace,
    /// no veth, no process in its control group): a machine still running after its directory
    /// was deleted keeps its address until it is reaped. Free leases are removed here, which
    /// recovers from a crash in the middle of a destroy.
    fn leases(&self) -> Result<Vec<(Ipv4Addr, PathBuf)>> {
        let layout = crate::cgroup::Layout::detect().ok().flatten();
        let mine = mount_ns();
        let mut held = Vec::new();
        for lease in self.lease_records()? {
            if lease.is_free(mine.as_deref(), layout.as_ref()) {
                self.drop_lease(lease.ip)?;
            } else {
                held.push((lease.ip, lease.owner));
            }
        }
        Ok(held)
    }

    /// The address of the machine whose state directory is `owner`: the one it already holds
    /// (preferring `preferred`), else the lowest free one.
    pub(crate) fn lease(&self, owner: &Path, preferred: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
        let _lock = self.lock()?;
        let leases = self.leases()?;
        let mine: Vec<Ipv4Addr> = leases
            .iter()
            .filter(|(_, o)| o == owner)
            .map(|(ip, _)| *ip)
            .collect();
        if let Some(ip) = preferred
            .filter(|p| mine.contains(p))
            .or_else(|| mine.first().copied())
        {
            return Ok(ip);
        }
        let taken: BTreeSet<u32> = leases.iter().map(|(ip, _)| u32::from(*ip)).collect();
        let mask = self.cfg.mask();
        let network = u32::from(self.cfg.gateway) & mask;
        let broadcast = network | !mask;
        let gateway = u32::from(self.cfg.gateway);
        let reserved = |ip: u32| {
            self.cfg
                .reserved
                .is_some_and(|r| r.contains(Ipv4Addr::from(ip)))
        };
        let usable = |ip: u32| ip != gateway && !reserved(ip) && !taken.contains(&ip);
        let candidate = preferred
            .map(u32::from)
            .filter(|ip| *ip > network && *ip < broadcast && usable(*ip))
            .or_else(|| (network + 1..broadcast).find(|ip| usable(*ip)));
        let Some(ip) = candidate.map(Ipv4Addr::from) else {
            return Err(Error::AddressesExhausted {
                subnet: self.cfg.subnet(),
            });
        };
        self.write_lease(ip, owner)?;
        Ok(ip)
    }

    /// Leases `ip` to `owner` (which must exist: a lease whose owner is gone is free) unless
    /// someone else holds it; leasing it again to its owner succeeds.
    pub(crate) fn reserve(&self, owner: &Path, ip: Ipv4Addr) -> Result<()> {
        let _lock = self.lock()?;
        if ip == self.cfg.gateway || !self.cfg.assignable(ip) {
            return Err(Error::Config {
                reason: format!(
                    "{ip} is not a host address of the machines' subnet {} (or is its gateway)",
                    self.cfg.subnet()
                ),
            });
        }
        match self.leases()?.into_iter().find(|(held, _)| *held == ip) {
            Some((_, holder)) if holder == owner => Ok(()),
            Some((_, holder)) => Err(Error::AddressInUse {
                ip,
                holder: holder.display().to_string(),
            }),
            None => self.write_lease(ip, owner),
        }
    }

    /// The owner of `ip`'s lease as recorded, if any.
    pub(crate) fn holder_of(&self, ip: Ipv4Addr) -> Result<Option<PathBuf>> {
        let _lock = self.lock()?;
        Ok(self
            .lease_records()?
            .into_iter()
            .find(|l| l.ip == ip)
            .map(|l| l.owner))
    }

    fn write_lease(&self, ip: Ipv4Addr, owner: &Path) -> Result<()> {
        let dir = self.leases_dir();
        // The sidecar first: a lease without one reads as made in the reader's own namespace.
        if let Some(ns) = mount_ns() {
            let sidecar = dir.join(format!("{ip}.{MOUNT_NS_SUFFIX}"));
            fs::write(&sidecar, ns).map_err(Error::io(format!("writing {}", sidecar.display())))?;
        }
        let path = dir.join(ip.to_string());
        let mut file =
            File::create(&path).map_err(Error::io(format!("creating {}", path.display())))?;
        file.write_all(owner.as_os_str().as_bytes())
            .map_err(Error::io(format!("writing {}", path.display())))
    }

    /// Gives back every address held by `owner`.
    pub(crate) fn release(&self, owner: &Path) -> Result<()> {
        let _lock = self.lock()?;
        for lease in self.lease_records()? {
            if lease.owner == owner {
                self.drop_lease(lease.ip)?;
            }
        }
        Ok(())
    }

    /// Creates the bridge if needed and gives it the gateway address.
    pub(crate) fn ensure_bridge(&self) -> Result<()> {
        let _lock = self.lock()?;
        self.ensure_bridge_locked()
    }

    fn ensure_bridge_locked(&self) -> Result<()> {
        let bridge = self.cfg.bridge.as_str();
        let mac = bridge_mac(bridge);
        if !link_exists(bridge) {
            self.run(
                &[
                    "link", "add", "name", bridge, "address", &mac, "type", "bridge",
                ],
                None,
            )?;
        } else if !mac_was_set(bridge) {
            // A bridge made before its address was fixed (or by hand): fixed now, once.
            self.run(&["link", "set", bridge, "address", &mac], None)?;
        }
        let gateway = format!("{}/{}", self.cfg.gateway, self.cfg.prefix_len);
        self.run(&["addr", "replace", &gateway, "dev", bridge], None)?;
        self.run(&["link", "set", bridge, "up"], None)?;
        if self.cfg.nat {
            self.enable_nat()?;
        }
        Ok(())
    }

    /// Turns on forwarding and masquerading for the machine subnet (idempotent).
    fn enable_nat(&self) -> Result<()> {
        let iptables = crate::host::find_program("iptables").ok_or_else(|| Error::Unavailable {
            missing: "`iptables`, needed because NAT to the outside was requested".to_string(),
        })?;
        fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(Error::io("enabling /proc/sys/net/ipv4/ip_forward"))?;
        let subnet = self.cfg.subnet();
        let bridge = self.cfg.bridge.as_str();
        let rules: [&[&str]; 3] = [
            &[
                "-t",
                "nat",
                "POSTROUTING",
                "-s",
                &subnet,
                "!",
                "-o",
                bridge,
                "-j",
                "MASQUERADE",
            ],
            &["-t", "filter", "FORWARD", "-i", bridge, "-j", "ACCEPT"],
            &["-t", "filter", "FORWARD", "-o", bridge, "-j", "ACCEPT"],
        ];
        for rule in rules {
            let (table, spec) = rule.split_at(2);
            let check = Command::new(&iptables)
                .args(table)
                .arg("-C")
                .args(spec)
                .output();
            if !matches!(check, Ok(ref out) if out.status.success()) {
                run_tool(&iptables, &[table, &["-A"], spec].concat(), None)?;
            }
        }
        Ok(())
    }

    /// Creates the machine's namespace and veth pair and configures its address and route,
    /// replacing leftovers of a previous run.
    /// `extra` are addresses it answers on besides its own (Elastic IPs).
    pub(crate) fn attach(&self, names: &NetNames, ip: Ipv4Addr, extra: &[Ipv4Addr]) -> Result<()> {
        let _lock = self.lock()?;
        self.ensure_bridge_locked()?;
        self.detach_locked(names)?;
        let result = self.attach_locked(names, ip, extra);
        if result.is_err() {
            let _ = self.detach_locked(names);
        }
        result
    }

    fn attach_locked(&self, names: &NetNames, ip: Ipv4Addr, extra: &[Ipv4Addr]) -> Result<()> {
        self.run(&["netns", "add", &names.netns], None)?;
        self.run(
            &[
                "link",
                "add",
                &names.veth_host,
                "type",
                "veth",
                "peer",
                "name",
                &names.veth_peer,
                "netns",
                &names.netns,
            ],
            None,
        )?;
        self.run(
            &[
                "link",
                "set",
                &names.veth_host,
                "master",
                &self.cfg.bridge,
                "up",
            ],
            None,
        )?;
        // One iproute2 process for everything inside the namespace.
        let mut batch = format!(
            "link set lo up\nlink set {peer} name eth0\naddr add {ip}/{prefix} dev eth0\nlink set eth0 up\nroute add default via {gw}\n",
            peer = names.veth_peer,
            prefix = self.cfg.prefix_len,
            gw = self.cfg.gateway,
        );
        for extra in extra {
            batch.push_str(&format!("addr add {extra}/32 dev eth0\n"));
        }
        self.run(&["-netns", &names.netns, "-batch", "-"], Some(&batch))
    }

    /// Removes the machine's veth pair and namespace (idempotent).
    pub(crate) fn detach(&self, names: &NetNames) -> Result<()> {
        let _lock = self.lock()?;
        self.detach_locked(names)
    }

    /// [`Network::detach`] for a caller holding [`Network::lock`].
    pub(crate) fn detach_locked(&self, names: &NetNames) -> Result<()> {
        // Deleting the host end removes the pair at once; namespace teardown alone is asynchronous.
        if link_exists(&names.veth_host) {
            self.run(&["link", "del", &names.veth_host], None)?;
        }
        if names.netns_path().exists() {
            self.run(&["netns", "del", &names.netns], None)?;
        }
        Ok(())
    }

    /// Deletes the bridge if no machine is attached to it; returns whether it was deleted.
    pub(crate) fn remove_bridge_if_unused(&self) -> Result<bool> {
        let _lock = self.lock()?;
        let bridge = self.cfg.bridge.as_str();
        let ports = Path::new("/sys/class/net").join(bridge).join("brif");
        let Ok(mut entries) = fs::read_dir(&ports) else {
            return Ok(false);
        };
        if entries.next().is_some() {
            return Ok(false);
        }
        self.run(&["link", "del", bridge], None)?;
        Ok(true)
    }

    pub(crate) fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<()> {
        run_tool(self.ip, args, stdin)
    }

    /// Runs `ip` and returns what it printed.
    pub(crate) fn output(&self, args: &[&str]) -> Result<String> {
        let command = format!("{} {}", self.ip.display(), args.join(" "));
        let out = Command::new(self.ip)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Command {
                command: command.clone(),
                stderr: e.to_string(),
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Command {
                command,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

/// Runs an external tool, turning a failure into an error carrying its stderr.
fn run_tool(program: &Path, args: &[&str], stdin: Option<&str>) -> Result<()> {
    let command = format!("{} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Command {
            command: command.clone(),
            stderr: e.to_string(),
        })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error means the tool exited early; its status and stderr say why.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| Error::Command {
        command: command.clone(),
        stderr: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(Error::Command {
            command,
            stderr: if stderr.is_empty() {
                out.status.to_string()
            } else {
                stderr
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(run_dir: &Path) -> NetworkConfig {
        NetworkConfig {
            run_dir: run_dir.to_path_buf(),
            prefix_len: 29,
            reserved: None,
            ..NetworkConfig::default()
        }
    }

    #[test]
    fn leases_are_unique_kept_and_released() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = network(&tmp.path().join("run"));
        let net = Network {
            cfg: &cfg,
            ip: Path::new("/nonexistent/ip"),
        };
        let owners: Vec<PathBuf> = (0..5).map(|i| tmp.path().join(format!("m{i}"))).collect();
        for owner in &owners {
            fs::create_dir_all(owner).unwrap();
        }
        // A /29 has 6 host addresses; the gateway takes one.
        let ips: Vec<Ipv4Addr> = owners.iter().map(|o| net.lease(o, None).unwrap()).collect();
        let unique: BTreeSet<_> = ips.iter().collect();
        assert_eq!(unique.len(), 5);
        assert!(!ips.contains(&cfg.gateway));
        assert_eq!(ips[0], Ipv4Addr::new(10, 217, 0, 2));
        // Asking again returns the same address.
        assert_eq!(net.lease(&owners[2], None).unwrap(), ips[2]);
        let extra = tmp.path().join("extra");
        fs::create_dir_all(&extra).unwrap();
        let err = net.lease(&extra, None).unwrap_err();
        assert!(matches!(err, Error::AddressesExhausted { .. }), "{err}");
        net.release(&owners[1]).unwrap();
        assert_eq!(net.lease(&extra, None).unwrap(), ips[1]);
        // A lease whose owner directory disappeared is reclaimed.
        fs::remove_dir_all(&owners[3]).unwrap();
        let late = tmp.path().join("late");
        fs::create_dir_all(&late).unwrap();
        assert_eq!(net.lease(&late, None).unwrap(), ips[3]);
    }

    #[test]
    fn reserved_addresses_are_never_leased_and_reservations_are_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = NetworkConfig {
            run_dir: tmp.path().join("run"),
            prefix_len: 29,
            reserved: Some("10.217.0.3-10.217.0.5".parse().unwrap()),
            ..NetworkConfig::default()
        };
        cfg.validate().unwrap();
        let net = Network {
            cfg: &cfg,
            ip: Path::new("/nonexistent/ip"),
        };
        let owner = |n: &str| {
            let p = tmp.path().join(n);
            fs::create_dir_all(&p).unwrap();
            p
        };
        let (m1, m2, m3) = (owner("m1"), owner("m2"), owner("m3"));
        assert_eq!(net.lease(&m1, None).unwrap(), Ipv4Addr::new(10, 217, 0, 2));
        // .3 to .5 are kept: the next machine gets .6, then nothing is left.
        assert_eq!(
            net.lease(&m2, Some(Ipv4Addr::new(10, 217, 0, 4))).unwrap(),
            Ipv4Addr::new(10, 217, 0, 6)
        );
        assert!(matches!(
            net.lease(&m3, None),
            Err(Error::AddressesExhausted { .. })
        ));
        let (e1, e2) = (owner("eip1"), owner("eip2"));
        let ip = Ipv4Addr::new(10, 217, 0, 4);
        net.reserve(&e1, ip).unwrap();
        net.reserve(&e1, ip).unwrap();
        assert_eq!(net.holder_of(ip).unwrap(), Some(e1.clone()));
        let err = net.reserve(&e2, ip).unwrap_err();
        assert!(matches!(err, Error::AddressInUse { .. }), "{err}");
        // A machine's address cannot be reserved either, nor one outside the subnet.
        assert!(matches!(
            net.reserve(&e2, Ipv4Addr::new(10, 217, 0, 2)),
            Err(Error::AddressInUse { .. })
        ));
        assert!(net.reserve(&e2, Ipv4Addr::new(10, 217, 0, 7)).is_err());
        assert!(net.reserve(&e2, cfg.gateway).is_err());
        net.release(&e1).unwrap();
        net.reserve(&e2, ip).unwrap();
    }

    #[test]
    fn address_ranges_parse() {
        let r: AddressRange = "10.217.255.0/24".parse().unwrap();
        assert_eq!(r, DEFAULT_RESERVED);
        assert_eq!(r.len(), 254);
        assert!(r.contains(Ipv4Addr::new(10, 217, 255, 9)));
        assert!(!r.contains(Ipv4Addr::new(10, 217, 255, 255)));
        let r: AddressRange = "10.0.0.5-10.0.0.7".parse().unwrap();
        assert_eq!(r.iter().count(), 3);
        assert_eq!(r.to_string(), "10.0.0.5-10.0.0.7");
        for bad in ["10.0.0.7-10.0.0.5", "10.0.0.0/33", "nope", "10.0.0.1"] {
            assert!(bad.parse::<AddressRange>().is_err(), "{bad}");
        }
        let outside = NetworkConfig {
            reserved: Some("10.218.0.0/24".parse().unwrap()),
            ..NetworkConfig::default()
        };
        assert!(
            outside
                .validate()
                .unwrap_err()
                .to_string()
                .contains("reserved")
        );
    }

    #[test]
    fn concurrent_leases_never_collide() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = NetworkConfig {
            run_dir: tmp.path().join("run"),
            ..NetworkConfig::default()
        };
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let cfg = cfg.clone();
                let owner = tmp.path().join(format!("m{i}"));
                fs::create_dir_all(&owner).unwrap();
                std::thread::spawn(move || {
                    let net = Network {
                        cfg: &cfg,
                        ip: Path::new("/nonexistent/ip"),
                    };
                    (0..4)
                        .map(|_| net.lease(&owner, None).unwrap())
                        .collect::<BTreeSet<_>>()
                })
            })
            .collect();
        let mut all = BTreeSet::new();
        for handle in handles {
            let ips = handle.join().unwrap();
            assert_eq!(ips.len(), 1, "an owner keeps one address");
            assert!(
                all.insert(*ips.iter().next().unwrap()),
                "two owners got the same address"
            );
        }
    }

    #[test]
    fn names_fit_interface_limits_and_differ_per_state_dir() {
        let a = NetNames::for_machine(Path::new("/var/lib/a/machines/i-1"));
        let b = NetNames::for_machine(Path::new("/var/lib/b/machines/i-1"));
        assert_ne!(a, b);
        assert!(a.veth_host.len() <= 15 && a.veth_peer.len() <= 15);
    }

    #[test]
    fn config_validation_names_the_problem() {
        let bad = NetworkConfig {
            bridge: "a-very-long-bridge-name".into(),
            ..NetworkConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("bridge name")
        );
        let bad = NetworkConfig {
            gateway: Ipv4Addr::new(10, 217, 0, 0),
            ..NetworkConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("network or broadcast")
        );
        assert_eq!(NetworkConfig::default().subnet(), "10.217.0.0/16");
    }
}
