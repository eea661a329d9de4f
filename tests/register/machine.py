"""Test machines made by the suite itself — not the server's local instances: a network namespace
with a veth on the suite's own bridge, a mount, UTS and PID namespace over an overlayfs root on the
host's root (copy-on-write: the host's files are never changed), and Debian's OpenSSH server inside
as PID 1's child with a test host key. `down()` kills the PID namespace (so every process in the
machine dies), deletes the network namespace and the machine's files."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

# Paths of the host a machine must not see: what the host's own opsworks runs left there.
HIDDEN = ["/var/lib/opsworks", "/var/lib/opsworks-agent", "/etc/opsworks", "/opt/opsworks", "/srv/www"]


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=check, capture_output=True, text=True, **kw)


class Bridge:
    """The suite's bridge (not opsw0): the host is .1, machines are .10 and up."""

    def __init__(self, net: int):
        self.net = net
        self.name = f"owrbr{net}"
        self.host_ip = f"10.220.{net}.1"

    def up(self):
        sh(["ip", "link", "add", self.name, "type", "bridge"])
        sh(["ip", "addr", "add", f"{self.host_ip}/24", "dev", self.name])
        sh(["ip", "link", "set", self.name, "up"])

    def down(self):
        sh(["ip", "link", "del", self.name], check=False)


class Machine:
    def __init__(self, bridge: Bridge, index: int, workdir: Path, hostname: str, client_key: Path):
        self.bridge = bridge
        self.index = index
        self.ip = f"10.220.{bridge.net}.{10 + index}"
        self.ns = f"owreg{bridge.net}m{index}"
        self.host_veth = f"owr{bridge.net}h{index}"
        self.dir = workdir / f"machine-{index}"
        self.hostname = hostname
        self.client_key = client_key
        self.proc = None
        self.ssh_config = self.dir / "ssh_config"

    # ---- lifecycle -----------------------------------------------------------------------------

    def up(self):
        d = self.dir
        for sub in ("upper", "work", "root"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        upper = d / "upper"
        (upper / "root/.ssh").mkdir(parents=True, exist_ok=True)
        shutil.copy(f"{self.client_key}.pub", upper / "root/.ssh/authorized_keys")
        (upper / "etc/ssh").mkdir(parents=True, exist_ok=True)
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(upper / "etc/ssh/regtest_host_key")])
        (upper / "etc/ssh/regtest_sshd_config").write_text(
            f"ListenAddress {self.ip}\n"
            "HostKey /etc/ssh/regtest_host_key\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "PidFile /run/sshd.pid\n"
        )
        # A machine knows its own name (sudo looks it up; without this, DNS time-outs) and has no
        # name server to wait for: the bridge leads nowhere else.
        (upper / "etc/hosts").write_text(
            f"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n{self.ip} {self.hostname}\n")
        (upper / "etc/resolv.conf").write_text("# no name server: the test network is the bridge only\n")
        self.ssh_config.write_text(
            "Host *\n"
            f"  UserKnownHostsFile {d / 'known_hosts'}\n"
            "  StrictHostKeyChecking accept-new\n"
            "  LogLevel ERROR\n"
        )
        sh(["ip", "netns", "add", self.ns])
        sh(["ip", "link", "add", self.host_veth, "type", "veth", "peer", "name", "eth0", "netns", self.ns])
        sh(["ip", "link", "set", self.host_veth, "master", self.bridge.name])
        sh(["ip", "link", "set", self.host_veth, "up"])
        inside = ["ip", "netns", "exec", self.ns]
        sh(inside + ["ip", "addr", "add", f"{self.ip}/24", "dev", "eth0"])
        sh(inside + ["ip", "link", "set", "eth0", "up"])
        sh(inside + ["ip", "link", "set", "lo", "up"])
        sh(inside + ["ip", "route", "add", "default", "via", self.bridge.host_ip])
        root = d / "root"
        hide = "".join(f"[ -d {root}{p} ] && mount -t tmpfs -o mode=755 tmpfs {root}{p}\n" for p in HIDDEN)
        boot = f"""set -e
mount -t overlay overlay -o lowerdir=/,upperdir={upper},workdir={d / 'work'} {root}
mount -t proc proc {root}/proc
mount -t sysfs sys {root}/sys
mount --rbind /dev {root}/dev
mount -t tmpfs -o mode=755 tmpfs {root}/run
mount -t tmpfs -o mode=1777 tmpfs {root}/tmp
{hide}mkdir -p {root}/run/sshd
hostname {self.hostname}
exec chroot {root} /usr/sbin/sshd -D -e -f /etc/ssh/regtest_sshd_config
"""
        log = open(d / "machine.log", "ab")
        self.proc = subprocess.Popen(
            inside + ["unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--propagation", "private",
                      "sh", "-c", boot],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"machine {self.ns} did not start: {(d / 'machine.log').read_text()}")
            if self.ssh(["true"], check=False, timeout=5).returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"sshd of machine {self.ns} does not answer: {(d / 'machine.log').read_text()}")

    def down(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        # Anything still in the network namespace (nothing should be: the PID namespace is gone).
        pids = sh(["ip", "netns", "pids", self.ns], check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh(["ip", "netns", "del", self.ns], check=False)
        sh(["ip", "link", "del", self.host_veth], check=False)
        # The mount namespace died with its processes; nothing is mounted on the host.
        mounted = [l for l in Path("/proc/mounts").read_text().splitlines() if str(self.dir) in l]
        assert not mounted, f"left mounted: {mounted}"
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- access ----------------------------------------------------------------------------------

    def ssh_args(self, user="root", key=None):
        return ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", "-i", str(key or self.client_key),
                "-o", "IdentitiesOnly=yes", f"{user}@{self.ip}"]

    def ssh(self, command, user="root", check=True, timeout=120, input=None):
        """Runs `command` (a list of words, or one shell line) on the machine."""
        line = command if isinstance(command, str) else " ".join(_quote(w) for w in command)
        r = subprocess.run(self.ssh_args(user) + ["--", line], capture_output=True, text=True, timeout=timeout,
                           input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"on {self.ip}: {line!r} exited {r.returncode}: {r.stderr}{r.stdout}")
        return r

    def root(self, line, check=True, timeout=120):
        return self.ssh(line, check=check, timeout=timeout)

    def exists(self, path) -> bool:
        return self.ssh(f"test -e {_quote(path)}", check=False).returncode == 0

    def read(self, path) -> str:
        return self.ssh(f"cat {_quote(path)}").stdout

    def processes(self) -> str:
        return self.ssh("ps -eo pid,args").stdout

    def put(self, local, remote, mode="0644"):
        """Copies a host file onto the machine."""
        with open(local, "rb") as f:
            subprocess.run(self.ssh_args() + ["--", f"cat > {_quote(remote)} && chmod {mode} {_quote(remote)}"],
                           stdin=f, check=True, capture_output=True, timeout=300)

    def add_user(self, name, sudo: bool):
        """A login user with the suite's key; with passwordless sudo when `sudo`."""
        self.root(f"useradd -m -s /bin/sh {name} && usermod -p '*' {name} && "
                  f"mkdir -p /home/{name}/.ssh && cp /root/.ssh/authorized_keys /home/{name}/.ssh/ && "
                  f"chown -R {name}: /home/{name}/.ssh")
        if sudo:
            self.root(f"echo '{name} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{name} && chmod 0440 /etc/sudoers.d/{name}")


def _quote(word: str) -> str:
    import shlex
    return shlex.quote(str(word))
