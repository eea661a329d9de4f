"""Shared machinery of the conformance suite: the real server process, signed raw requests, assertions.

Everything here talks to the real `opsworks` binary over loopback HTTP; nothing is mocked. Both the
pytest fixtures (conftest.py) and the coverage report (coverage.py) use it.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import sys

import urllib3
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

# The root credentials every test server is started with (through the environment, never a flag).
ACCESS_KEY = "AKIAOPSWORKSCONFTEST"
SECRET_KEY = "conformance+Secret/Key0123456789abcdefGHIJ"
REGION = "us-east-1"
SERVICE = "opsworks"
TARGET_PREFIX = "OpsWorks_20130218."
CONTENT_TYPE = "application/x-amz-json-1.1"
FILTERED = "*****FILTERED*****"

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# AWS renders OpsWorks timestamps as e.g. 2013-07-25T18:55:29+00:00.
CREATED_AT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00$")
LISTENING_RE = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")

REPO_ROOT = Path(__file__).resolve().parents[2]

# The engine the servers run on (tests/engine.py): SQLite, or PostgreSQL with
# OPSWORKS_TEST_ENGINE=postgres.
sys.path.insert(0, str(REPO_ROOT / "tests"))
import engine  # noqa: E402


def server_binary() -> Path:
    """The server under test: $OPSWORKS_BIN, else the cargo debug build of this checkout."""
    explicit = os.environ.get("OPSWORKS_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    return target / "debug" / "opsworks"


class Server:
    """One real `opsworks server` process on 127.0.0.1:0 with its own data dir.

    Its combined stdout/stderr is kept in `log_path` (and in memory) so tests can check that no
    secret ever reaches the logs.
    """

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        binary: Path | None = None,
        root_from_env: bool = True,
        subcommand: str = "server",
    ):
        self.binary = binary or server_binary()
        self.root_from_env = root_from_env
        self.subcommand = subcommand
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None
        self.endpoint: str | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, startup_timeout: float = 60.0) -> str:
        if not self.binary.exists():
            raise RuntimeError(f"server binary {self.binary} does not exist (set OPSWORKS_BIN)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.root_from_env:
            env["OPSWORKS_ROOT_ACCESS_KEY_ID"] = ACCESS_KEY
            env["OPSWORKS_ROOT_SECRET_ACCESS_KEY"] = SECRET_KEY
        else:
            env.pop("OPSWORKS_ROOT_ACCESS_KEY_ID", None)
            env.pop("OPSWORKS_ROOT_SECRET_ACCESS_KEY", None)
        env.setdefault("RUST_BACKTRACE", "1")
        env.pop("OPSWORKS_DATABASE_URL", None)
        env.update(engine.server_env(self.data_dir))
        self._ready.clear()
        self.endpoint = None
        self.proc = subprocess.Popen(
            [str(self.binary), self.subcommand, "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._pump, args=(self.proc,), daemon=True)
        self._reader.start()
        # A bounded wait so a server that never comes up fails the run instead of hanging it.
        if not self._ready.wait(startup_timeout) or self.endpoint is None:
            out = self.output()
            self.stop()
            raise RuntimeError(f"server did not print 'listening on' within {startup_timeout}s:\n{out[-4000:]}")
        return self.endpoint

    def _pump(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        with open(self.log_path, "a", encoding="utf-8") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                with self._lock:
                    self._lines.append(line)
                if self.endpoint is None:
                    m = LISTENING_RE.search(line)
                    if m:
                        self.endpoint = m.group(1)
                        self._ready.set()
        # The process closed its output (exited): wake a waiting start() so it can report why.
        self._ready.set()

    def output(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_for_output(self, text: str, deadline_s: float = 10.0) -> bool:
        """Whether `text` shows up in the output within the deadline (the pipe is read by a thread)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if text in self.output():
                return True
            time.sleep(0.05)
        return text in self.output()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        if self._reader is not None:
            self._reader.join(timeout=5)
        code = self.proc.returncode
        self.proc = None
        return code


def boto3_client(endpoint: str, *, validate: bool = True, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
    """A real boto3 OpsWorks client pointed at the server, retries off."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=REGION)
    return session.client(
        "opsworks",
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 1}, parameter_validation=validate, read_timeout=60),
    )


class _SigV4At(SigV4Auth):
    """botocore's SigV4 signer with a chosen clock, to produce stale signatures."""

    def __init__(self, credentials, service, region, when: datetime.datetime):
        super().__init__(credentials, service, region)
        self._when = when

    def add_auth(self, request):
        request.context["timestamp"] = self._when.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical)
        self._inject_signature_to_request(request, self.signature(string_to_sign, request))


_HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=10, read=60))


class RawResponse:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8")) if self.body else None

    @property
    def code(self) -> str | None:
        try:
            data = self.json()
        except ValueError:
            return None
        if isinstance(data, dict):
            t = data.get("__type")
            # AWS sometimes qualifies the type (`com.amazon...#Code`); clients keep the part after '#'.
            return t.split("#")[-1] if isinstance(t, str) else None
        return None

    @property
    def message(self) -> str:
        data = self.json()
        if not isinstance(data, dict):
            return ""
        return data.get("message") or data.get("Message") or ""

    def __repr__(self) -> str:
        return f"<HTTP {self.status} {self.body[:500]!r}>"


def raw_call(
    endpoint: str,
    operation: str | None,
    body: bytes | str | dict = b"{}",
    *,
    sign: bool = True,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    region: str = REGION,
    service: str = SERVICE,
    when: datetime.datetime | None = None,
    send_body: bytes | None = None,
    headers: dict | None = None,
    target: str | None = None,
) -> RawResponse:
    """Send one AWS JSON 1.1 request, SigV4-signed with botocore's signer unless `sign` is False.

    `send_body` replaces the body after signing (a tampered body); `target` overrides X-Amz-Target.
    """
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    hdrs = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": target or f"{TARGET_PREFIX}{operation}"}
    if headers:
        hdrs.update(headers)
    req = AWSRequest(method="POST", url=endpoint.rstrip("/") + "/", data=body, headers=hdrs)
    if sign:
        creds = Credentials(access_key, secret_key)
        signer = _SigV4At(creds, service, region, when) if when else SigV4Auth(creds, service, region)
        signer.add_auth(req)
    prepared = req.prepare()
    out_headers = dict(prepared.headers.items())
    out_body = prepared.body
    if send_body is not None:
        # Keep the framing honest: only the content changes, so the server sees a signed-body mismatch.
        out_body = send_body
        out_headers["Content-Length"] = str(len(send_body))
    resp = _HTTP.request("POST", prepared.url, body=out_body, headers=out_headers)
    return RawResponse(resp.status, resp.headers, resp.data)


@contextmanager
def aws_error(code: str | tuple[str, ...], *fragments: str, message: str | None = None, names: tuple[str, ...] = ()):
    """Expect the boto3 call inside to fail with HTTP 400 and AWS error `code`.

    `code` is a tuple only where AWS's own choice between codes is not documented.

    Each of `fragments` must appear in the message; `message`, when given, must match exactly; each of
    `names` (a member name, or a value) must appear ignoring case (AWS's validator writes `stackId`).
    """
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as exc:
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        got = err.get("Code")
        msg = err.get("Message", "")
        codes = code if isinstance(code, tuple) else (code,)
        assert got in codes, f"expected {code}, server answered HTTP {status} {got}: {msg!r}"
        assert status == 400, f"expected HTTP 400 for {code}, got {status}"
        assert msg, f"{code} came without a message"
        for frag in fragments:
            assert frag in msg, f"{code} message {msg!r} does not mention {frag!r}"
        for name in names:
            assert name.lower() in msg.lower(), f"{code} message {msg!r} does not name {name!r}"
        if message is not None:
            assert msg == message, f"expected message {message!r}, got {msg!r}"
    else:
        raise AssertionError(f"expected {code}, but the call succeeded")


def assert_raw_error(resp: RawResponse, code: str, *fragments: str) -> None:
    assert resp.status == 400, f"expected HTTP 400 {code}, got {resp!r}"
    assert resp.code == code, f"expected {code}, got {resp!r}"
    assert resp.message, f"{code} came without a message: {resp!r}"
    for frag in fragments:
        assert frag in resp.message, f"{code} message {resp.message!r} does not mention {frag!r}"


def unique(prefix: str = "conf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def missing_id() -> str:
    """A well-formed ID that names nothing."""
    return str(uuid.uuid4())


SERVICE_ROLE = "arn:aws:iam::123456789012:role/aws-opsworks-service-role"
INSTANCE_PROFILE = "arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role"


def stack_params(**overrides) -> dict:
    params = {
        "Name": unique("stack"),
        "Region": REGION,
        "ServiceRoleArn": SERVICE_ROLE,
        "DefaultInstanceProfileArn": INSTANCE_PROFILE,
    }
    params.update(overrides)
    return params


def status_counter_key(status: str) -> str:
    """`running_setup` -> `RunningSetup`: the InstancesCount member for an instance status."""
    return "".join(part.capitalize() for part in status.split("_"))


def load_model() -> dict:
    """The OpsWorks model of the installed botocore (what boto3 and awscli speak)."""
    import botocore.loaders

    return botocore.loaders.Loader().load_service_model("opsworks", "service-2", api_version="2013-02-18")


def minimal(shapes: dict, name: str):
    """The smallest value of shape `name` that satisfies the model's types, enums and ranges."""
    shape = shapes[name]
    kind = shape["type"]
    if kind == "structure":
        return {m: minimal(shapes, shape["members"][m]["shape"]) for m in shape.get("required", [])}
    if kind == "list":
        return [minimal(shapes, shape["member"]["shape"])]
    if kind == "map":
        return {minimal(shapes, shape["key"]["shape"]): minimal(shapes, shape["value"]["shape"])}
    if kind == "string":
        return shape["enum"][0] if "enum" in shape else str(uuid.uuid4())
    if kind in ("integer", "long"):
        return shape.get("min", 1)
    if kind in ("double", "float"):
        return float(shape.get("min", 1))
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return 0
    if kind == "blob":
        return ""
    raise ValueError(f"shape {name} of unknown type {kind}")


def minimal_input(model: dict, op: str) -> dict:
    ref = model["operations"][op].get("input")
    return minimal(model["shapes"], ref["shape"]) if ref else {}


def which_aws() -> str:
    """The awscli entry point of the venv running this suite."""
    import sys

    candidate = Path(sys.executable).parent / "aws"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("aws")
    if not found:
        raise RuntimeError("awscli not found next to the interpreter nor on PATH")
    return found
