"""Fixtures of the lifecycle suite: a real server running local instances, real git repositories."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

# The engine the servers run on (tests/engine.py): SQLite, or PostgreSQL with
# OPSWORKS_TEST_ENGINE=postgres.
import sys
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import engine  # noqa: E402

AKID = "AKIDLIFECYCLE"
SECRET = "lifecycle-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`opsworks server --local-instances` on a fixed port (agents must find it again after a restart)."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args=(), env=None):
        self.binary = os.environ["OPSWORKS_BIN"]
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.proc = None
        self.started_at = None
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self):
        env = dict(os.environ, OPSWORKS_ROOT_ACCESS_KEY_ID=AKID, OPSWORKS_ROOT_SECRET_ACCESS_KEY=SECRET,
                   **self.env)
        env.pop("OPSWORKS_DATABASE_URL", None)
        env.update(engine.server_env(self.data_dir))
        log = open(self.log_path, "ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "server", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir), "--local-instances", *self.extra_args],
            stdout=subprocess.PIPE, stderr=log, env=env,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"server exited: see {self.log_path}")
            if line.startswith("listening on "):
                return
        raise RuntimeError("server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def workdir():
    # Not under /tmp: every machine gets a fresh /tmp, and the repositories must be visible inside
    # (a local path is a valid git URL for custom cookbooks and app sources).
    d = Path(tempfile.mkdtemp(prefix="opsworks-lifecycle-", dir="/var/tmp"))
    yield d
    if os.environ.get("KEEP_WORKDIR") is None:
        shutil.rmtree(d, ignore_errors=True)


def stop_all_instances(c, delete=False, seconds=60):
    """Stops (forced) every instance of every stack and waits for them, so no namespace outlives
    the test that started them; `delete` removes them afterwards."""
    for stack in c.describe_stacks()["Stacks"]:
        for inst in c.describe_instances(StackId=stack["StackId"])["Instances"]:
            if inst["Status"] != "stopped":
                c.stop_instance(InstanceId=inst["InstanceId"], Force=True)
        deadline = time.time() + seconds
        while time.time() < deadline and any(
            i["Status"] != "stopped" for i in c.describe_instances(StackId=stack["StackId"])["Instances"]
        ):
            time.sleep(0.5)
        if delete:
            for inst in c.describe_instances(StackId=stack["StackId"])["Instances"]:
                c.delete_instance(InstanceId=inst["InstanceId"])


def running_server(workdir: Path, name: str, extra_args=(), env=None):
    """A server of the module's own (its data dir and log named after `name`) for a fixture to
    `yield from`; its instances are stopped before it is."""
    srv = Server(workdir / f"{name}-data", workdir / f"{name}-server.log", extra_args, env)
    srv.start()
    try:
        yield srv
        stop_all_instances(client_for(srv))
    finally:
        srv.stop()


def eventually(fn, seconds=60, every=0.2, what="a condition"):
    """The first truthy value of `fn()` within `seconds`; fails the test otherwise."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def retry(fn, seconds=30, every=0.3):
    """`fn()`'s value once it stops raising, within `seconds`; its last error otherwise."""
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - retried until the deadline, then re-raised
            last = e
            time.sleep(every)
    raise last


def http_get(url, timeout=5):
    """The body of a GET, as text."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


@pytest.fixture(scope="session")
def server(workdir):
    srv = Server(workdir / "data", workdir / "server.log")
    srv.start()
    yield srv
    try:
        stop_all_instances(client_for(srv), delete=True)
    finally:
        srv.stop()


def client_for(srv):
    return boto3.client(
        "opsworks",
        endpoint_url=srv.endpoint,
        region_name="us-east-1",
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture()
def client(server):
    return client_for(server)


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                            GIT_COMMITTER_EMAIL="t@t"))


def make_repo(path: Path, files: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    commit(path, files, "initial")
    return path


def commit(path: Path, files: dict, message: str):
    for name, content in files.items():
        f = path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(content)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", message)
    # The repositories are served over git's "dumb" HTTP protocol, which reads these files.
    git(path, "update-server-info")


@pytest.fixture(scope="session")
def git_http(server, workdir):
    """Serves the workdir's repositories over HTTP on the machines' gateway, as a git server would:
    instances fetch cookbooks and apps over the network, never through the host's filesystem."""
    port = free_port()
    proc = subprocess.Popen(
        ["python3", "-m", "http.server", str(port), "--bind", "10.217.0.1", "--directory", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("10.217.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://10.217.0.1:{port}"
    proc.terminate()
    proc.wait()
