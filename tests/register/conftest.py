"""Fixtures of the registration suite (issue 15): the suite's own bridge and test machines (real
OpenSSH servers in network namespaces over copy-on-write roots, see machine.py), a real server
listening on the bridge, git repositories served over HTTP on it, and the figures for
BENCHMARKS.md (register → registered, assign → online)."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from machine import Bridge, Machine, sh

# The engine the server runs on (tests/engine.py): SQLite, or PostgreSQL with
# OPSWORKS_TEST_ENGINE=postgres.
import sys
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import engine  # noqa: E402

AKID = "AKIDREGISTER"
SECRET = "register-secret"
FIGURES = Path(os.environ.get("OPSWORKS_REGISTER_FIGURES", "/var/tmp/opsworks-register-figures.json"))
_figures = {}


def record_figure(name: str, seconds: float):
    """Keeps a measured duration for BENCHMARKS.md (printed at the end, written to FIGURES)."""
    _figures.setdefault(name, []).append(round(seconds, 2))


def pytest_terminal_summary(terminalreporter):
    if _figures:
        FIGURES.write_text(json.dumps(_figures, indent=2) + "\n")
        terminalreporter.write_line(f"registration figures (seconds, also in {FIGURES}): {json.dumps(_figures)}")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def binary():
    path = os.environ.get("OPSWORKS_BIN")
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError("set OPSWORKS_BIN to the opsworks binary (tests/register/run.sh does)")
    return path


@pytest.fixture(scope="session")
def workdir():
    if os.geteuid() != 0:
        raise RuntimeError("the registration suite needs root: it makes network namespaces and overlay mounts")
    d = Path(tempfile.mkdtemp(prefix="opsworks-register-", dir="/var/tmp"))
    yield d
    if os.environ.get("KEEP_WORKDIR") is None:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def bridge():
    # A /24 of 10.220.0.0/16 no other run of this suite on the host uses.
    for net in [os.getpid() % 200 + 20, *range(20, 220)]:
        b = Bridge(net)
        if sh(["ip", "link", "show", b.name], check=False).returncode != 0:
            b.up()
            break
    else:
        raise RuntimeError("no free 10.220.x.0/24 for the suite's bridge")
    yield b
    b.down()


@pytest.fixture(scope="session")
def client_key(workdir):
    key = workdir / "client_key"
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    return key


class Server:
    """`opsworks server` listening on the suite's bridge, so the host and the machines reach it at
    the same URL (DescribeStackProvisioningParameters names it)."""

    def __init__(self, binary, bridge, data_dir: Path, log: Path, extra=(), host=None):
        self.binary, self.data_dir, self.log = binary, data_dir, log
        host = host or bridge.host_ip
        self.port = free_port(host)
        self.endpoint = f"http://{host}:{self.port}"
        self.listen = f"{host}:{self.port}"
        self.extra = list(extra)
        self.proc = None

    def start(self):
        env = dict(os.environ, OPSWORKS_ROOT_ACCESS_KEY_ID=AKID, OPSWORKS_ROOT_SECRET_ACCESS_KEY=SECRET)
        env.pop("OPSWORKS_DATABASE_URL", None)
        env.update(engine.server_env(self.data_dir))
        self.proc = subprocess.Popen(
            [self.binary, "server", "--listen", self.listen, "--data-dir", str(self.data_dir), *self.extra],
            stdout=subprocess.PIPE, stderr=open(self.log, "ab"), env=env,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"the server exited: see {self.log}")
            if line.startswith("listening on "):
                return self
        raise RuntimeError("the server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def server(binary, bridge, workdir):
    # Updated agents have 15 s to report in (60 s by default) so the roll-back test is short.
    srv = Server(binary, bridge, workdir / "data", workdir / "server.log",
                 ["--agent-update-deadline", "15s"]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def ow(server):
    return boto3.client("opsworks", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                        config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="session")
def machines(bridge, workdir, client_key):
    """Makes machines on demand; every one is torn down at the end, even after a failure."""
    made = []

    def make(hostname: str) -> Machine:
        m = Machine(bridge, len(made) + 1, workdir, hostname, client_key)
        made.append(m)
        return m.up()

    yield make
    for m in made:
        m.down()


def register_env(server, machine=None, **extra):
    """The environment `opsworks register` runs in: the caller's root key, the machine's SSH
    client configuration (its own known_hosts)."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_PROFILE", None)
    if machine is not None:
        env["OPSWORKS_SSH_CONFIG"] = str(machine.ssh_config)
    env.update(extra)
    return env


def register(binary, server, stack_id, machine, *args, user="root", key=None, host=None, timeout=180, env=None):
    """Runs `opsworks register` against `machine` (or `host`) over SSH; returns the CompletedProcess."""
    cmd = [binary, "register", "--endpoint-url", server.endpoint, "--stack-id", stack_id,
           "--ssh-username", user, "--ssh-private-key", str(key or machine.client_key), *args, host or machine.ip]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=env or register_env(server, machine))


def eventually(fn, seconds=60, every=0.25, what="a condition"):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def instance(ow, instance_id):
    found = ow.describe_instances(InstanceIds=[instance_id])["Instances"]
    return found[0]


def gone(ow, stack_id, instance_id):
    return all(i["InstanceId"] != instance_id for i in ow.describe_instances(StackId=stack_id)["Instances"])


def new_stack(ow, name, **extra):
    return ow.create_stack(
        Name=name, Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
        **extra,
    )["StackId"]


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                            GIT_COMMITTER_EMAIL="t@t"))


def make_repo(path: Path, files: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for name, content in files.items():
        f = path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(content)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    git(path, "update-server-info")
    return path


@pytest.fixture(scope="session")
def git_http(bridge, workdir):
    """Serves the workdir's repositories over HTTP on the bridge: machines fetch cookbooks and
    apps over the network, as from a git server."""
    port = free_port(bridge.host_ip)
    proc = subprocess.Popen(
        ["python3", "-m", "http.server", str(port), "--bind", bridge.host_ip, "--directory", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    def listening():
        try:
            socket.create_connection((bridge.host_ip, port), timeout=0.5).close()
            return True
        except OSError:
            return False

    eventually(listening, seconds=10, what="the git HTTP server")
    yield f"http://{bridge.host_ip}:{port}"
    proc.terminate()
    proc.wait(timeout=10)
