"""`aws opsworks register` (awscli 1.36.40) against our server: DescribeStackProvisioningParameters
names an installer tarball the server serves; over SSH the CLI's own remote script downloads it,
writes the preconfig and runs `opsworks-agent-installer/boot-registration`, which downloads the
agent, checks it, registers the machine and installs the agent.

The CLI also creates an IAM group, user and key through the server's IAM (`AWS_ENDPOINT_URL`
sends its IAM client to our server); a server without IAM skips that test and says why. The
installer is also tested on its own, with the CLI's own script and preconfig format and the root
key in the preconfig (which the script deletes afterwards)."""

import os
import re
import subprocess
import time

import boto3
import pytest
from awscli.customizations.opsworks import REMOTE_SCRIPT, OpsWorksRegister
from botocore.config import Config

from conftest import AKID, SECRET, eventually, gone, new_stack, record_figure, register_env


def cli_remote_script(ow, stack_id, access_key, secret, **params):
    """The script `aws opsworks register` runs on the machine, built by the CLI's own code."""
    prov = ow.describe_stack_provisioning_parameters(StackId=stack_id)
    parameters = dict(stack_id=stack_id, **prov["Parameters"])
    parameters.update(access_key_id=access_key, secret_access_key=secret, **params)
    parameters["import"] = False
    return REMOTE_SCRIPT % {
        "agent_installer_url": prov["AgentInstallerUrl"],
        "preconfig": OpsWorksRegister._to_ruby_yaml(parameters),
        "assets_download_bucket": prov["Parameters"]["assets_download_bucket"],
    }


def run_as_the_cli_does(machine, script, timeout=180):
    """`ssh -tt HOST /bin/sh -c SCRIPT`, as the CLI calls it."""
    import shlex
    remote = " ".join(shlex.quote(w) for w in ["/bin/sh", "-c", script])
    return subprocess.run(machine.ssh_args() + ["-tt", remote], capture_output=True, text=True, timeout=timeout)


def test_boot_registration_registers_the_machine_from_the_cli_s_preconfig(ow, server, machines):
    stack_id = new_stack(ow, "boot-registration")
    m = machines("booted")
    started = time.time()
    r = run_as_the_cli_does(m, cli_remote_script(ow, stack_id, AKID, SECRET, hostname="booted-edge"))
    assert r.returncode == 0, r.stdout + r.stderr
    record_figure("boot-registration -> registered (s)", time.time() - started)
    assert "boot-registration: downloading the agent" in r.stdout, r.stdout
    assert "registered this machine as instance" in r.stdout
    iid = re.search(r"registered this machine as instance (\S+)", r.stdout).group(1)
    shown = ow.describe_instances(InstanceIds=[iid])["Instances"][0]
    assert shown["Status"] == "registered"
    assert shown["Hostname"] == "booted-edge"
    assert shown["InfrastructureClass"] == "on-premises"
    assert shown["ReportedOs"]["Name"] == "debian"
    # The script removed its directory (the preconfig with the key in it); the agent has a key of
    # its own.
    assert "opsworks-agent-installer" not in m.root("ls -A /tmp").stdout
    assert SECRET not in m.root("cat /etc/opsworks/agent-credentials.json /etc/opsworks/registration.json").stdout
    ow.deregister_instance(InstanceId=iid)
    eventually(lambda: gone(ow, stack_id, iid), seconds=60, what="the record to go")
    eventually(lambda: not m.exists("/opt/opsworks"), seconds=30, what="the agent to go")


def test_boot_registration_refuses_another_architecture_and_leaves_nothing(ow, server, machines):
    stack_id = new_stack(ow, "boot-arm")
    m = machines("booted-arm")
    m.root("printf '#!/bin/sh\\n[ \"$1\" = -m ] && { echo aarch64; exit 0; }\\nexec /bin/uname \"$@\"\\n'"
           " > /usr/local/bin/uname && chmod 0755 /usr/local/bin/uname")
    r = run_as_the_cli_does(m, cli_remote_script(ow, stack_id, AKID, SECRET))
    # The CLI's script ends with `boot-registration; rm -rf $AGENT_TMP_DIR`, so its exit status is
    # rm's: the refusal is what boot-registration says.
    assert "this machine is aarch64, and this server hands out its agent for x86_64 only" in r.stdout + r.stderr, \
        r.stdout + r.stderr
    assert ow.describe_instances(StackId=stack_id)["Instances"] == []
    assert not m.exists("/opt/opsworks") and not m.exists("/etc/opsworks")
    assert "opsworks-agent-installer" not in m.root("ls -A /tmp").stdout


def iam_missing(server):
    """Why `aws opsworks register` cannot run here yet, or None once the server serves IAM."""
    iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                       aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                       config=Config(retries={"max_attempts": 1}))
    try:
        iam.list_users()
        return None
    except Exception as e:  # noqa: BLE001 - any refusal means IAM is not there
        return f"the server does not serve IAM yet (ListUsers: {e})"


def test_aws_opsworks_register_with_the_cli(ow, server, machines):
    why = iam_missing(server)
    if why:
        pytest.skip(f"aws opsworks register creates an IAM user first: {why}")
    stack_id = new_stack(ow, "aws-cli")
    m = machines("cli-edge")
    ssh = " ".join(m.ssh_args())
    env = register_env(server, m, AWS_ENDPOINT_URL=server.endpoint)
    r = subprocess.run(
        ["aws", "opsworks", "register", "--endpoint-url", server.endpoint, "--region", "us-east-1",
         "--stack-id", stack_id, "--infrastructure-class", "on-premises", "--override-ssh", ssh, m.ip],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    instances = ow.describe_instances(StackId=stack_id)["Instances"]
    assert [i["Status"] for i in instances] == ["registered"]
    assert instances[0]["RegisteredBy"].startswith("arn:aws:iam::") and "OpsWorks-" in instances[0]["RegisteredBy"]
    iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                       aws_access_key_id=AKID, aws_secret_access_key=SECRET)
    users = [u["UserName"] for u in iam.list_users(PathPrefix="/AWS/OpsWorks/")["Users"]]
    assert any(u.startswith("OpsWorks-aws-cli-") for u in users), users
    ow.deregister_instance(InstanceId=instances[0]["InstanceId"])
    eventually(lambda: gone(ow, stack_id, instances[0]["InstanceId"]), seconds=60, what="the record to go")
