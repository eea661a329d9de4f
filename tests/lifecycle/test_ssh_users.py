"""OpsWorks users on real instances, with the host's OpenSSH client: a user with AllowSsh logs in
to a running instance with their key, `sudo` works only with AllowSudo, access is gone once
revoked, and GrantAccess's temporary login works and expires. Each change reaches the instance as
a `sync_remote_users` command (an execute_recipes of ssh_users), without Setup."""

import os
import shutil
import stat
import subprocess
import time

import boto3
import pytest
from botocore.config import Config

from conftest import AKID, SECRET, client_for, eventually, running_server

WAIT = {"Delay": 1, "MaxAttempts": 300}

# One GrantAccess minute lasts 0.2 s here: its shortest login (60 minutes) expires in 12 s.
ACCESS_MINUTE = "200ms"


@pytest.fixture(scope="module")
def server(workdir):
    if shutil.which("ssh") is None or not os.path.exists("/usr/sbin/sshd"):
        pytest.fail("these tests need OpenSSH on the host: apt-get install openssh-server openssh-client sudo")
    yield from running_server(workdir, "ssh", env={"OPSWORKS_ACCESS_MINUTE": ACCESS_MINUTE})


def iam_for(srv):
    return boto3.client("iam", endpoint_url=srv.endpoint, region_name="us-east-1", aws_access_key_id=AKID,
                        aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))


def keypair(workdir, name):
    key = workdir / f"{name}_ed25519"
    if key.exists():
        key.unlink()
        (workdir / f"{name}_ed25519.pub").unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key, (workdir / f"{name}_ed25519.pub").read_text().strip()


SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
            "-o", "LogLevel=ERROR"]


def ssh(key, user, ip, *command):
    return subprocess.run(
        ["ssh", *SSH_OPTS, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(key), f"{user}@{ip}", *command],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )


def ssh_password(workdir, user, password, ip, *command):
    """Logs in with a password through SSH_ASKPASS (OpenSSH 8.4+), no terminal needed."""
    askpass = workdir / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\necho '{password}'\n")
    askpass.chmod(stat.S_IRWXU)
    env = dict(os.environ, SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY="none")
    return subprocess.run(
        ["ssh", *SSH_OPTS, "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
         "-o", "NumberOfPasswordPrompts=1", f"{user}@{ip}", *command],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
    )


def synced(c, iid, before):
    """Waits for a sync_remote_users command newer than the `before` commands to succeed."""
    def done():
        cmds = [x for x in c.describe_commands(InstanceId=iid)["Commands"]
                if x["Type"] == "execute_recipes" and x["CommandId"] not in before]
        failed = [x for x in cmds if x["Status"] == "failed"]
        assert not failed, f"sync_remote_users failed: {failed}"
        return cmds and all(x["Status"] == "successful" for x in cmds)
    eventually(done, seconds=120, what="sync_remote_users to succeed")


def command_ids(c, iid):
    return {x["CommandId"] for x in c.describe_commands(InstanceId=iid)["Commands"]}


def test_users_log_in_with_their_keys_sudo_only_when_allowed_and_lose_access_when_revoked(server, workdir):
    c, iam = client_for(server), iam_for(server)
    sid = c.create_stack(
        Name="ssh", Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
    )["StackId"]
    lid = c.create_layer(StackId=sid, Type="custom", Name="Box", Shortname="box")["LayerId"]
    iid = c.create_instance(StackId=sid, LayerIds=[lid], InstanceType="t3.micro")["InstanceId"]
    arn = iam.create_user(UserName="sshalice")["User"]["Arn"]
    key, pub = keypair(workdir, "alice")
    c.create_user_profile(IamUserArn=arn, SshUsername="alice", SshPublicKey=pub)
    c.set_permission(StackId=sid, IamUserArn=arn, AllowSsh=True, AllowSudo=False, Level="show")
    try:
        c.start_instance(InstanceId=iid)
        c.get_waiter("instance_online").wait(InstanceIds=[iid], WaiterConfig=WAIT)
        ip = c.describe_instances(InstanceIds=[iid])["Instances"][0]["PrivateIp"]
        setup = next(x for x in c.describe_commands(InstanceId=iid)["Commands"] if x["Type"] == "setup")
        assert setup["Status"] == "successful"

        # Set up at Setup: the key logs in, sudo is refused.
        r = eventually(lambda: (lambda p: p if p.returncode == 0 else None)(ssh(key, "alice", ip, "id", "-un")),
                       seconds=30, what="alice's ssh login")
        assert r.stdout.strip() == "alice"
        assert ssh(key, "alice", ip, "sudo", "-n", "true").returncode != 0
        # The instance's host key is its own, not the host's.
        scanned = subprocess.run(["ssh-keyscan", "-t", "ed25519", ip], capture_output=True, text=True, timeout=20)
        assert scanned.stdout.strip(), scanned.stderr
        host_pub = "/etc/ssh/ssh_host_ed25519_key.pub"
        if os.path.exists(host_pub):
            assert open(host_pub).read().split()[1] not in scanned.stdout

        # AllowSudo reaches the running instance as a command, without Setup.
        before = command_ids(c, iid)
        c.set_permission(StackId=sid, IamUserArn=arn, AllowSudo=True)
        synced(c, iid, before)
        r = ssh(key, "alice", ip, "sudo", "-n", "id", "-u")
        assert r.returncode == 0 and r.stdout.strip() == "0", r.stderr
        assert [x["Type"] for x in c.describe_commands(InstanceId=iid)["Commands"]].count("setup") == 1

        # A new key replaces the old one.
        before = command_ids(c, iid)
        key2, pub2 = keypair(workdir, "alice2")
        c.update_user_profile(IamUserArn=arn, SshPublicKey=pub2)
        synced(c, iid, before)
        assert ssh(key2, "alice", ip, "true").returncode == 0
        assert ssh(key, "alice", ip, "true").returncode != 0

        # Revoked: no login, the account is gone.
        before = command_ids(c, iid)
        c.set_permission(StackId=sid, IamUserArn=arn, AllowSsh=False)
        synced(c, iid, before)
        r = ssh(key2, "alice", ip, "true")
        assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr

        # GrantAccess: a temporary password login, gone when its time runs out.
        before = command_ids(c, iid)
        cred = c.grant_access(InstanceId=iid, ValidForInMinutes=60)["TemporaryCredential"]
        assert cred["InstanceId"] == iid and cred["ValidForInMinutes"] == 60
        synced(c, iid, before)
        granted_at = time.time()
        r = ssh_password(workdir, cred["Username"], cred["Password"], ip, "id", "-un")
        assert r.returncode == 0 and r.stdout.strip() == cred["Username"], r.stderr
        assert ssh_password(workdir, cred["Username"], "wrong-password", ip, "true").returncode != 0

        def gone():
            p = ssh_password(workdir, cred["Username"], cred["Password"], ip, "true")
            return p.returncode != 0
        eventually(gone, seconds=90, every=2, what="the temporary login to expire")
        assert time.time() - granted_at >= 10
    finally:
        c.stop_instance(InstanceId=iid, Force=True)
        c.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig=WAIT)
