"""`opsworks up`, the quickstart: the ready-to-paste `aws opsworks describe-stacks` line it prints works."""

import json
import os
import subprocess
import time
from pathlib import Path

from harness import ACCESS_KEY, SECRET_KEY, Server, which_aws


def _paste_line(server: Server, deadline_s: float = 30.0) -> str:
    """The line `opsworks up` prints for the user to paste (it follows the `listening on` line)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for line in server.output().splitlines():
            if "aws opsworks describe-stacks" in line:
                return line.strip()
        time.sleep(0.1)
    raise AssertionError(f"`opsworks up` printed no `aws opsworks describe-stacks` line:\n{server.output()}")


def _run_as_user(line: str, extra_env: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(extra_env)
    env["PATH"] = f"{Path(which_aws()).parent}:{env.get('PATH', '')}"
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_MAX_ATTEMPTS"] = "1"
    return subprocess.run(
        ["bash", "-c", line],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_up_with_generated_credentials(tmp_path):
    srv = Server(tmp_path / "data", tmp_path / "up.log", root_from_env=False, subcommand="up")
    srv.start()
    try:
        line = _paste_line(srv)
        assert srv.endpoint in line, line
        proc = _run_as_user(line, {})
        assert proc.returncode == 0, f"{line}\n{proc.stderr}"
        assert json.loads(proc.stdout)["Stacks"] == []
    finally:
        srv.stop()


def test_up_with_credentials_from_the_environment(tmp_path):
    srv = Server(tmp_path / "data", tmp_path / "up.log", subcommand="up")
    srv.start()
    try:
        line = _paste_line(srv)
        assert SECRET_KEY not in srv.output(), "a secret given through the environment was printed"
        proc = _run_as_user(
            line, {"OPSWORKS_ROOT_ACCESS_KEY_ID": ACCESS_KEY, "OPSWORKS_ROOT_SECRET_ACCESS_KEY": SECRET_KEY}
        )
        assert proc.returncode == 0, f"{line}\n{proc.stderr}"
        assert json.loads(proc.stdout)["Stacks"] == []
    finally:
        srv.stop()
