"""The README's quickstart as a user runs it (issue 11 item 12): `opsworks up` with a data dir of
its own, then examples/quickstart.sh from the repository's top directory with awscli on PATH and
nothing else: the root credentials from the file `up` wrote, the sample app and cookbook served by
scripts/serve-examples.sh at a local path. The app answers at the instance's address with its
greeting and the message the custom recipe rendered from its template; `opsworks exec` reads that
file inside the instance. (crates/opsworks/tests/quickstart.rs checks that the README holds the
script line for line.)"""

import configparser
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from conftest import free_port, http_get, stop_all_instances

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def up(workdir):
    """`opsworks up` as the README starts it, on a free port: what it printed, its endpoint, its
    data dir, and a boto3 client with the root credentials it wrote."""
    data = workdir / "quickstart-data"
    port = free_port()
    # A user's environment: no root key chosen in advance, so `up` makes one and writes it down.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSWORKS_ROOT_")}
    log = open(workdir / "quickstart-server.log", "ab")
    proc = subprocess.Popen([os.environ["OPSWORKS_BIN"], "up", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(data)], stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    try:
        printed = []
        while not printed or not printed[-1].startswith("  AWS_SHARED_CREDENTIALS_FILE="):
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"opsworks up exited: see {log.name}\n{''.join(printed)}")
            printed.append(line)
        creds = configparser.ConfigParser()
        creds.read(data / "root-credentials")
        client = boto3.client(
            "opsworks", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id=creds["default"]["aws_access_key_id"],
            aws_secret_access_key=creds["default"]["aws_secret_access_key"],
            config=Config(retries={"max_attempts": 1}))
        yield {"printed": "".join(printed), "endpoint": f"http://127.0.0.1:{port}", "data": data, "client": client}
        stop_all_instances(client)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_quickstart_script_serves_the_sample_app_with_the_custom_recipe(up, workdir):
    assert "OpsWorks is up." in up["printed"] and "root secret key:" in up["printed"], up["printed"]
    env = dict(
        os.environ,
        # awscli as the user has it: the venv's, on PATH.
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        OPSWORKS_ENDPOINT=up["endpoint"],
        OPSWORKS_DATA_DIR=str(up["data"]),
        # serve-examples.sh's repositories go under it: the test's, not the user's home.
        XDG_DATA_HOME=str(workdir / "quickstart-home"),
        # Whatever AWS settings the caller has, the script uses the root credentials `up` wrote.
        AWS_ACCESS_KEY_ID="AKIDNOTTHEROOT", AWS_SECRET_ACCESS_KEY="not-the-root-secret",
    )
    run = subprocess.run([str(REPO / "examples/quickstart.sh")], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    out = run.stdout
    assert run.returncode == 0, f"quickstart.sh failed ({run.returncode})\n{out}\n{run.stderr}"

    c = up["client"]
    stacks = [s for s in c.describe_stacks()["Stacks"] if s["Name"] == "hello"]
    assert len(stacks) == 1
    (inst,) = c.describe_instances(StackId=stacks[0]["StackId"])["Instances"]
    assert inst["Status"] == "online"
    host = inst["Hostname"]
    motd = f'This is {host} of stack "hello", set up by the hello cookbook.\napp: hello\n'
    page = f"Hello from {host}, hello-app v1\n{motd}"
    # The app as the script showed it and as anyone on the host reaches it.
    assert page in out, out
    assert http_get(f"http://{inst['PrivateIp']}/") == page
    # The second deployment and its log.
    (cmd_line,) = [line for line in out.splitlines() if line.startswith("deploy\t")]
    kind, status, log_url = cmd_line.split("\t")
    assert status == "successful"
    assert "hello" in http_get(log_url)
    # `opsworks exec ... -- cat /etc/hello/motd.txt`, the script's last command.
    assert out.endswith(motd), out
    # The repositories serve-examples.sh made hold the examples as they are in this checkout.
    repos = workdir / "quickstart-home/opsworks-examples"
    listed = subprocess.run(["git", "--git-dir", str(repos / "hello-app.git"), "ls-tree", "-r", "--name-only",
                             "main"], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(listed) == sorted(p.name for p in (REPO / "examples/hello-app").iterdir())
