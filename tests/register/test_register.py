"""Issue 15 end to end: a machine the server did not create — a real OpenSSH server in a network
namespace — registered over SSH by a sudoer, assigned to a layer (Setup and Deploy of the stack's
app from git), deployed to, unassigned (Shutdown, the machine keeps running), deregistered (the
agent uninstalls itself, the machine keeps its files); `--local`; an IAM user allowed only to
register; an agent update to a new release and the roll-back of one that never reports in (last:
the releases it adds are offered to every stack from then on)."""

import json
import re
import shutil
import subprocess
import time

import pytest

from conftest import (AKID, SECRET, eventually, gone, instance, make_repo, new_stack, record_figure, register,
                      register_env)

SETUP = '''
directory("/var/lib/regtest", mode = "0755")
file("/var/lib/regtest/setup.txt", content = "setup on " + node["hostname"] + "\\n")
'''

DEPLOY = '''
for name, app in node["deploy"].items():
    file("/var/lib/regtest/deployed-" + name, content = app["current_path"] + "\\n")
'''

SHUTDOWN = '''
file("/var/lib/regtest/shutdown.txt", content = "bye\\n")
'''


@pytest.fixture(scope="module")
def stack(ow, workdir, git_http):
    make_repo(workdir / "cookbooks", {
        "regtest/metadata.json": json.dumps({"name": "regtest", "version": "1.0.0"}),
        "regtest/recipes/setup.star": SETUP,
        "regtest/recipes/deploy.star": DEPLOY,
        "regtest/recipes/shutdown.star": SHUTDOWN,
    })
    make_repo(workdir / "app", {"index.html": "hello from a registered machine\n"})
    stack_id = new_stack(ow, "registered", UseCustomCookbooks=True,
                         CustomCookbooksSource={"Type": "git", "Url": f"{git_http}/cookbooks/.git",
                                                "Revision": "main"})
    layer_id = ow.create_layer(
        StackId=stack_id, Type="custom", Name="Edge", Shortname="edge",
        CustomRecipes={"Setup": ["regtest::setup"], "Deploy": ["regtest::deploy"],
                       "Shutdown": ["regtest::shutdown"]},
        LifecycleEventConfiguration={"Shutdown": {"ExecutionTimeout": 30}},
    )["LayerId"]
    app_id = ow.create_app(StackId=stack_id, Name="Site", Shortname="site", Type="other",
                           AppSource={"Type": "git", "Url": f"{git_http}/app/.git", "Revision": "main"})["AppId"]
    return {"stack": stack_id, "layer": layer_id, "app": app_id}


def registered_id(out: str) -> str:
    m = re.search(r"registered the machine as instance (\S+)", out)
    assert m, out
    return m.group(1)


def status(ow, iid):
    return instance(ow, iid)["Status"]


def agent_running(machine) -> bool:
    return "opsworks agent --server" in machine.processes()


def test_a_sudoer_registers_a_machine_over_ssh_which_joins_a_layer_deploys_leaves_and_goes(
        binary, server, ow, machines, stack):
    m = machines("edge-one")
    m.add_user("deploy", sudo=True)
    started = time.time()
    r = register(binary, server, stack["stack"], m, user="deploy")
    took = time.time() - started
    assert r.returncode == 0, r.stderr + r.stdout
    record_figure("register -> registered (s)", took)
    out = r.stdout
    # Each step is printed.
    for step in ["checking stack", "connecting to deploy@", "Debian GNU/Linux", "registered the machine as instance",
                 "copying the agent", "installing the agent on deploy@", "with sudo", "installed the agent",
                 "the instance's own key", "under the opsworks supervisor", "the agent reported in", "is registered"]:
        assert step in out, f"{step!r} missing from:\n{out}"
    iid = registered_id(out)

    shown = instance(ow, iid)
    assert shown["Status"] == "registered"
    assert shown["Hostname"] == "edge-one"
    assert shown["InfrastructureClass"] == "on-premises"
    assert shown["RegisteredBy"].endswith(":root")
    assert shown["ReportedOs"] == {"Family": "debian", "Name": "debian", "Version": "12"}
    assert shown["ReportedAgentVersion"]
    assert shown["PrivateIp"] == m.ip and shown["PublicIp"] == m.ip
    assert "InstanceType" not in shown

    # The machine runs the agent with a key of its own, readable by root only, never the caller's.
    assert agent_running(m)
    mode = m.root("stat -c %a /etc/opsworks/agent-credentials.json").stdout.strip()
    assert mode == "600"
    creds = json.loads(m.read("/etc/opsworks/agent-credentials.json"))
    assert creds["access_key_id"] not in (AKID, "") and SECRET not in json.dumps(creds)
    assert m.ssh("ls -A ~", user="deploy").stdout.count(".opsworks-register") == 0, "the copied executable was left"
    # The server never powers it.
    for call in (ow.stop_instance, ow.start_instance, ow.reboot_instance):
        with pytest.raises(ow.exceptions.ValidationException, match="does not"):
            call(InstanceId=iid)

    # Assigned: Setup, then Deploy of the stack's app, then online.
    started = time.time()
    ow.assign_instance(InstanceId=iid, LayerIds=[stack["layer"]])
    assert status(ow, iid) in ("assigning", "running_setup", "online")
    eventually(lambda: status(ow, iid) in ("online", "setup_failed"), seconds=120, what="online")
    record_figure("assign -> online (s)", time.time() - started)
    assert status(ow, iid) == "online", ow.describe_commands(InstanceId=iid)
    assert m.read("/var/lib/regtest/setup.txt") == "setup on edge-one\n"
    current = m.read("/var/lib/regtest/deployed-site").strip()
    assert m.read(f"{current}/index.html") == "hello from a registered machine\n"

    # A deployment of the app runs on it.
    dep = ow.create_deployment(StackId=stack["stack"], AppId=stack["app"], InstanceIds=[iid],
                               Command={"Name": "deploy"})["DeploymentId"]
    eventually(lambda: ow.describe_deployments(DeploymentIds=[dep])["Deployments"][0]["Status"] != "running",
               seconds=120, what="the deployment")
    assert ow.describe_deployments(DeploymentIds=[dep])["Deployments"][0]["Status"] == "successful"

    # Unassigned: Shutdown runs, the machine keeps running, the instance is registered again.
    ow.unassign_instance(InstanceId=iid)
    eventually(lambda: status(ow, iid) == "registered", seconds=60, what="registered after unassign")
    assert instance(ow, iid)["LayerIds"] == []
    assert m.read("/var/lib/regtest/shutdown.txt") == "bye\n"
    assert agent_running(m)
    kinds = [(c["Type"], c["Status"]) for c in ow.describe_commands(InstanceId=iid)["Commands"]]
    assert ("shutdown", "successful") in kinds, kinds

    # Deregistered: the agent uninstalls itself; the machine keeps running and keeps its files.
    ow.deregister_instance(InstanceId=iid)
    eventually(lambda: gone(ow, stack["stack"], iid), seconds=60, what="the record to go")
    eventually(lambda: not agent_running(m), seconds=30, what="the agent to stop")
    for path in ["/opt/opsworks", "/etc/opsworks", "/var/lib/opsworks-agent"]:
        eventually(lambda: not m.exists(path), seconds=15, what=f"{path} to go")
    # The agent's service is gone; services the recipes defined (the SSH users' sshd) keep running
    # under the supervisor, as the machine keeps everything the stack put on it.
    assert not m.exists("/var/lib/opsworks/supervisor/services/opsworks-agent.json")
    assert not m.exists("/var/lib/opsworks/supervisor/logs/opsworks-agent.log")
    assert m.read("/var/lib/regtest/setup.txt") == "setup on edge-one\n"
    assert m.exists(current) and m.exists("/srv/www/site/current")
    assert m.ssh(["true"]).returncode == 0


def test_local_registers_the_machine_it_runs_on(binary, server, ow, machines):
    stack_id = new_stack(ow, "local")
    m = machines("local-one")
    # The opsworks executable is copied in and run there, with the caller's key in its environment.
    m.put(binary, "/root/opsworks", mode="0755")
    env = f"AWS_ACCESS_KEY_ID={AKID} AWS_SECRET_ACCESS_KEY={SECRET}"
    r = m.ssh(f"{env} /root/opsworks register --endpoint-url {server.endpoint} --stack-id {stack_id} --local",
              check=False, timeout=180)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "looking at this machine" in r.stdout and "[local] the agent reported in" in r.stdout, r.stdout
    iid = registered_id(r.stdout)
    assert status(ow, iid) == "registered"
    assert instance(ow, iid)["Hostname"] == "local-one"
    # --local with SSH options is refused before anything is done.
    bad = m.ssh(f"{env} /root/opsworks register --endpoint-url {server.endpoint} --stack-id {stack_id} --local "
                "--ssh-username root", check=False)
    assert bad.returncode != 0 and "not to --local" in bad.stderr, bad.stderr
    ow.deregister_instance(InstanceId=iid)
    eventually(lambda: gone(ow, stack_id, iid), seconds=60, what="the record to go")
    eventually(lambda: not m.exists("/opt/opsworks"), seconds=30, what="the agent to go")


def test_an_iam_user_allowed_only_to_register_registers_a_machine(binary, server, ow, machines):
    """A user with AWS's AWSOpsWorksInstanceRegistration (DescribeStacks,
    DescribeStackProvisioningParameters, RegisterInstance) registers a machine; the instance is
    registered by that user, and its agent has a key of its own."""
    import boto3
    iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                       aws_access_key_id=AKID, aws_secret_access_key=SECRET)
    iam.create_user(UserName="registrar")
    iam.attach_user_policy(UserName="registrar",
                           PolicyArn="arn:aws:iam::aws:policy/AWSOpsWorksInstanceRegistration")
    key = iam.create_access_key(UserName="registrar")["AccessKey"]
    stack_id = new_stack(ow, "by-a-user")
    m = machines("by-a-user")
    env = register_env(server, m, AWS_ACCESS_KEY_ID=key["AccessKeyId"],
                       AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    r = register(binary, server, stack_id, m, env=env)
    assert r.returncode == 0, r.stderr + r.stdout
    iid = registered_id(r.stdout)
    shown = instance(ow, iid)
    assert shown["Status"] == "registered"
    assert shown["RegisteredBy"].endswith(":user/registrar"), shown["RegisteredBy"]
    assert key["AccessKeyId"] not in m.read("/etc/opsworks/agent-credentials.json")
    ow.deregister_instance(InstanceId=iid)
    eventually(lambda: gone(ow, stack_id, iid), seconds=60, what="the record to go")
    eventually(lambda: not m.exists("/opt/opsworks"), seconds=30, what="the agent to go")


def release_copy(binary, workdir, name, extra: bytes):
    """The same executable with other bytes at its end: another SHA-256, still a working agent."""
    path = workdir / name
    shutil.copy(binary, path)
    with open(path, "ab") as f:
        f.write(extra)
    return path


def add_version(binary, server, path, version):
    r = subprocess.run([binary, "agent-version", "add", str(path), "--version", version,
                        "--endpoint-url", server.endpoint], capture_output=True, text=True, timeout=300,
                       env=register_env(server))
    assert r.returncode == 0, r.stderr
    assert f"agent version {version}" in r.stdout
    return r.stdout


def test_an_agent_updates_itself_and_rolls_back_a_release_that_never_reports_in(
        binary, server, ow, machines, workdir):
    stack_id = new_stack(ow, "updates", AgentVersion="LATEST")
    m = machines("updating")
    r = register(binary, server, stack_id, m)
    assert r.returncode == 0, r.stderr + r.stdout
    iid = registered_id(r.stdout)
    first = instance(ow, iid)["ReportedAgentVersion"]
    pid = m.root("pgrep -f 'opsworks agent --server'").stdout.split()[0]

    # A new release, offered to the instance alone.
    add_version(binary, server, release_copy(binary, workdir, "agent-2", b"release two"), "99.0.0-two")
    listed = [v["Version"] for v in ow.describe_agent_versions(StackId=stack_id)["AgentVersions"]]
    assert "99.0.0-two" in listed and first in listed
    ow.update_instance(InstanceId=iid, AgentVersion="99.0.0-two")
    eventually(lambda: instance(ow, iid)["ReportedAgentVersion"] == "99.0.0-two", seconds=90,
               what="the new release to report in")
    # Downloaded, checked, swapped: the same process runs the new executable.
    assert m.root("readlink /opt/opsworks/current").stdout.strip().startswith("releases/99.0.0-two-")
    assert m.root("pgrep -f 'opsworks agent --server'").stdout.split()[0] == pid
    assert status(ow, iid) == "registered"

    # A release that never reports in (an executable that is not an agent) is put back.
    add_version(binary, server, "/bin/sleep", "99.1.0-broken")
    ow.update_instance(InstanceId=iid, AgentVersion="99.1.0-broken")
    errors = eventually(
        lambda: [e for e in ow.describe_service_errors(InstanceId=iid)["ServiceErrors"]
                 if e["Type"] == "agent_update_failed"],
        seconds=120, what="the roll-back to be reported")
    assert "99.1.0-broken" in errors[0]["Message"] and "did not report in within 15 s" in errors[0]["Message"]
    assert instance(ow, iid)["ReportedAgentVersion"] == "99.0.0-two"
    assert m.root("readlink /opt/opsworks/current").stdout.strip().startswith("releases/99.0.0-two-")
    assert "99.1.0-broken" in m.read("/opt/opsworks/rejected.json")
    # It is not tried again: the agent stays on the release that works.
    time.sleep(5)
    assert agent_running(m) and instance(ow, iid)["ReportedAgentVersion"] == "99.0.0-two"

    # Back to the server's own build by the stack's LATEST? LATEST is the newest offered; an
    # instance pinned to INHERIT with the stack pinned to the first version goes back to it.
    ow.update_stack(StackId=stack_id, AgentVersion=first)
    ow.update_instance(InstanceId=iid, AgentVersion="INHERIT")
    eventually(lambda: instance(ow, iid)["ReportedAgentVersion"] == first, seconds=90,
               what="the stack's version to report in")
    ow.deregister_instance(InstanceId=iid)
    eventually(lambda: gone(ow, stack_id, iid), seconds=60, what="the record to go")
