"""Fixtures of the conformance suite: one real server per session, real boto3 and awscli clients."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

import harness
from harness import ACCESS_KEY, REGION, SECRET_KEY

# Keep the clients away from any ~/.aws of the machine running the suite.
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
for _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def workdir():
    with tempfile.TemporaryDirectory(prefix="opsworks-conformance-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def server(workdir):
    """The shared server: started on 127.0.0.1:0 with a fresh data dir, killed at the end."""
    srv = harness.Server(workdir / "data", workdir / "server.log")
    srv.start()
    yield srv
    alive = srv.alive()
    srv.stop()
    out = srv.output()
    # Whatever the suite sent, the server must have survived it without a panic.
    assert alive, f"the server died during the suite:\n{out[-4000:]}"
    assert "panicked at" not in out, f"the server panicked:\n{out[-4000:]}"


@pytest.fixture(scope="session")
def endpoint(server):
    return server.endpoint


@pytest.fixture(scope="session")
def ow(endpoint):
    """boto3 OpsWorks client with client-side validation on (what users run)."""
    return harness.boto3_client(endpoint)


@pytest.fixture(scope="session")
def ow_raw(endpoint):
    """boto3 client with parameter validation off, to send what botocore would refuse."""
    return harness.boto3_client(endpoint, validate=False)


class Cli:
    """Runs the real `aws opsworks ...` (awscli v1 from the suite's venv) against the server."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.aws = harness.which_aws()

    def run(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION=REGION,
            AWS_MAX_ATTEMPTS="1",
            AWS_RETRY_MODE="standard",
            AWS_PAGER="",
        )
        cmd = [self.aws, "opsworks", *args, "--endpoint-url", self.endpoint, "--output", "json"]
        return subprocess.run(
            cmd, check=False, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
        )

    def __call__(self, *args: str):
        """Run and return the parsed JSON output (None for an empty one); fail on a non-zero exit."""
        proc = self.run(*args)
        assert proc.returncode == 0, f"aws opsworks {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
        out = proc.stdout.strip()
        return json.loads(out) if out else None


@pytest.fixture(scope="session")
def cli(endpoint):
    return Cli(endpoint)


# ---- resource factories ---------------------------------------------------------------------------


@pytest.fixture
def make_stack(ow):
    def make(**overrides):
        sid = ow.create_stack(**harness.stack_params(**overrides))["StackId"]
        return sid

    return make


@pytest.fixture
def make_layer(ow):
    def make(stack_id, type_="custom", **overrides):
        name = overrides.pop("Name", None) or harness.unique("layer")
        shortname = overrides.pop("Shortname", None) or name.lower()[:32]
        return ow.create_layer(StackId=stack_id, Type=type_, Name=name, Shortname=shortname, **overrides)["LayerId"]

    return make


@pytest.fixture
def make_instance(ow):
    def make(stack_id, layer_ids, **overrides):
        params = {"StackId": stack_id, "LayerIds": list(layer_ids), "InstanceType": "t2.micro"}
        params.update(overrides)
        return ow.create_instance(**params)["InstanceId"]

    return make


@pytest.fixture
def make_app(ow):
    def make(stack_id, **overrides):
        params = {"StackId": stack_id, "Name": harness.unique("app"), "Type": "other"}
        params.update(overrides)
        return ow.create_app(**params)["AppId"]

    return make


@pytest.fixture
def stack(make_stack):
    """A fresh stack with the defaults."""
    return make_stack()


@pytest.fixture
def layer(stack, make_layer):
    """A custom layer in a fresh stack: (stack_id, layer_id)."""
    return stack, make_layer(stack)
