"""Every bad input of `opsworks register` gives one clear message, and leaves nothing behind: no
file of the agent on the machine, no copied executable, no process, no instance in the stack."""

import re

import pytest

import boto3
from botocore.config import Config

from conftest import AKID, SECRET, Server, eventually, gone, new_stack, register
from machine import sh

LEFTOVERS = ["/opt/opsworks", "/etc/opsworks", "/var/lib/opsworks-agent"]


@pytest.fixture(scope="module")
def target(machines):
    m = machines("bad-inputs")
    m.add_user("nosudo", sudo=False)
    m.add_user("deploy", sudo=True)
    return m


@pytest.fixture()
def stack_id(ow):
    return new_stack(ow, "bad-inputs")


def one_clear_line(r, *needles):
    assert r.returncode != 0, r.stdout
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{r.stderr}"
    assert lines[0].startswith("opsworks register: "), lines[0]
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def assert_nothing_left(ow, m, stack_id):
    for path in LEFTOVERS:
        assert not m.exists(path), f"{path} was left on the machine"
    for user in ("root", "deploy"):
        home = m.root(f"ls -A ~{user}").stdout
        assert ".opsworks-register" not in home, f"the copied executable was left in ~{user}"
    assert "opsworks agent" not in m.processes(), m.processes()
    assert ow.describe_instances(StackId=stack_id)["Instances"] == []


def test_an_unknown_stack(binary, server, ow, target, stack_id):
    r = register(binary, server, "0e8b8e6c-0000-4000-8000-000000000000", target)
    one_clear_line(r, "stack 0e8b8e6c-0000-4000-8000-000000000000 does not exist")
    assert "connecting" not in r.stdout
    assert_nothing_left(ow, target, stack_id)


def test_an_unreachable_host(binary, server, ow, target, stack_id, bridge):
    nobody = f"10.220.{bridge.net}.250"
    r = register(binary, server, stack_id, target, host=nobody, timeout=60)
    one_clear_line(r, f"cannot reach {nobody} over SSH")
    assert_nothing_left(ow, target, stack_id)


def test_a_refused_key(binary, server, ow, target, stack_id, workdir):
    other = workdir / "other_key"
    if not other.exists():
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)])
    r = register(binary, server, stack_id, target, key=other)
    one_clear_line(r, "root@", "refused the SSH key", "Permission denied")
    assert_nothing_left(ow, target, stack_id)


def test_a_user_without_sudo(binary, server, ow, target, stack_id):
    r = register(binary, server, stack_id, target, user="nosudo")
    one_clear_line(r, "cannot become root on nosudo@", "sudo")
    assert_nothing_left(ow, target, stack_id)


def test_an_unsupported_os(binary, server, ow, target, stack_id):
    target.root("mv /etc/os-release /etc/os-release.real && "
                "printf 'ID=plan9\\nPRETTY_NAME=\"Plan 9 from Bell Labs\"\\n' > /etc/os-release")
    try:
        r = register(binary, server, stack_id, target)
    finally:
        target.root("rm /etc/os-release && mv /etc/os-release.real /etc/os-release")
    one_clear_line(r, "cannot run the agent", "Plan 9 from Bell Labs (ID=plan9)")
    assert_nothing_left(ow, target, stack_id)


def test_another_architecture(binary, server, ow, target, stack_id):
    # The machine says it is an ARM machine (its uname, first on the PATH, says so).
    target.root("printf '#!/bin/sh\\n[ \"$1\" = -m ] && { echo aarch64; exit 0; }\\nexec /bin/uname \"$@\"\\n'"
                " > /usr/local/bin/uname && chmod 0755 /usr/local/bin/uname")
    try:
        r = register(binary, server, stack_id, target)
    finally:
        target.root("rm -f /usr/local/bin/uname")
    one_clear_line(r, "is aarch64", "built for x86_64")
    assert_nothing_left(ow, target, stack_id)


def test_a_machine_registered_already(binary, server, ow, target, stack_id):
    first = register(binary, server, stack_id, target, user="deploy")
    assert first.returncode == 0, first.stderr
    iid = re.search(r"registered the machine as instance (\S+)", first.stdout).group(1)
    again = register(binary, server, stack_id, target, user="deploy")
    one_clear_line(again, f"already registered as instance {iid} of stack {stack_id}", "deregister it first")
    assert [i["InstanceId"] for i in ow.describe_instances(StackId=stack_id)["Instances"]] == [iid]
    ow.deregister_instance(InstanceId=iid)
    eventually(lambda: gone(ow, stack_id, iid), seconds=60, what="the record to go")
    eventually(lambda: not target.exists("/opt/opsworks"), seconds=30, what="the agent to go")
    assert_nothing_left(ow, target, stack_id)


def test_a_failure_halfway_removes_what_was_written_and_the_instance(binary, server, ow, target, stack_id):
    # The supervisor cannot keep its state where it must: the install fails after it copied the
    # agent and wrote the instance's key.
    target.root("mkdir -p /var/lib/opsworks && rm -rf /var/lib/opsworks/supervisor && "
                "touch /var/lib/opsworks/supervisor")
    try:
        r = register(binary, server, stack_id, target)
    finally:
        target.root("rm -f /var/lib/opsworks/supervisor")
    assert r.returncode != 0
    assert "installing the agent on root@" in r.stderr and "what it wrote was removed" in r.stderr, r.stderr
    for removed in ["removed /opt/opsworks", "removed /etc/opsworks/agent-credentials.json"]:
        assert removed in r.stdout, r.stdout
    assert "deregistered instance" in r.stdout
    assert_nothing_left(ow, target, stack_id)


def test_an_endpoint_the_machine_cannot_reach(binary, bridge, workdir, target):
    # A server on the host's loopback: the caller reaches it, the machine does not.
    srv = Server(binary, bridge, workdir / "loopback-data", workdir / "loopback-server.log",
                 host="127.0.0.1").start()
    try:
        ow = boto3.client("opsworks", endpoint_url=srv.endpoint, region_name="us-east-1",
                          aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                          config=Config(retries={"max_attempts": 1}))
        stack_id = new_stack(ow, "unreachable")
        r = register(binary, srv, stack_id, target)
        one_clear_line(r, "what it wrote was removed", f"this machine cannot reach the server at {srv.endpoint}")
        assert "deregistered instance" in r.stdout
        assert_nothing_left(ow, target, stack_id)
    finally:
        srv.stop()


def test_bad_arguments_are_refused_before_anything_happens(binary, server, ow, target, stack_id):
    for extra, needle in [
        (["--override-hostname", "under_score"], "invalid hostname"),
        (["--override-private-ip", "10.0.0.300"], "is not an IP address"),
        (["--infrastructure-class", "ec2", "--override-public-ip", "1.2.3.4"], "not supported for EC2"),
    ]:
        r = register(binary, server, stack_id, target, *extra)
        one_clear_line(r, needle)
        assert r.stdout == ""
    assert_nothing_left(ow, target, stack_id)
