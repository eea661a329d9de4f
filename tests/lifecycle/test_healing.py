"""Agents that go silent: the instance becomes connection_lost and, when its layers auto-heal, is
stopped and started again until it is back online, and the stack's other online instances run
Configure; with auto-healing off it stays lost. The agent is
killed from the host, as a crash would; everything else goes through boto3."""

import os
import signal
import time

import pytest

from conftest import client_for, eventually, running_server

FAST = {"Delay": 1, "MaxAttempts": 120}
TIMEOUT = 4  # seconds of silence before connection_lost (the server's --healing-timeout)


@pytest.fixture(scope="module")
def healing_server(workdir):
    # Its instances are stopped, and waited for, before the server stops.
    yield from running_server(workdir, "heal", ["--healing-timeout", str(TIMEOUT)])


def kill_agent(instance_id):
    """SIGKILL the agent of an instance, found among the host's processes."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"agent" in argv and instance_id.encode() in argv:
            os.kill(int(pid), signal.SIGKILL)
            return int(pid)
    raise AssertionError(f"no agent process for {instance_id}")


def setup_stack(c, healing: bool, count=1):
    """A stack with `count` online instances in one layer; returns the stack and the first instance
    (and the list of all of them when count > 1)."""
    stack = c.create_stack(Name="heal", Region="us-east-1",
                           ServiceRoleArn="arn:aws:iam::123456789012:role/r",
                           DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/p")["StackId"]
    layer = c.create_layer(StackId=stack, Type="custom", Name="Workers", Shortname="workers",
                           EnableAutoHealing=healing)["LayerId"]
    ids = [c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro", RootDeviceType="ebs")["InstanceId"]
           for _ in range(count)]
    for iid in ids:
        c.start_instance(InstanceId=iid)
    c.get_waiter("instance_online").wait(InstanceIds=ids, WaiterConfig=FAST)
    return (stack, ids[0]) if count == 1 else (stack, ids)


def stop_and_delete(c, stack):
    for inst in c.describe_instances(StackId=stack)["Instances"]:
        if inst["Status"] != "stopped":
            c.stop_instance(InstanceId=inst["InstanceId"], Force=True)
    deadline = time.time() + 60
    while time.time() < deadline and any(i["Status"] != "stopped" for i in c.describe_instances(StackId=stack)["Instances"]):
        time.sleep(0.5)
    for inst in c.describe_instances(StackId=stack)["Instances"]:
        if inst["Status"] == "stopped":
            c.delete_instance(InstanceId=inst["InstanceId"])


def test_a_killed_agent_is_healed_back_online(healing_server):
    c = client_for(healing_server)
    stack, iid = setup_stack(c, healing=True)
    setups_before = sum(x["Type"] == "setup" for x in c.describe_commands(InstanceId=iid)["Commands"])
    kill_agent(iid)
    errors = eventually(lambda: [e for e in c.describe_service_errors(InstanceId=iid)["ServiceErrors"]
                               if e["Type"] == "auto_healing"])
    assert "healed" in errors[0]["Message"]
    types = {e["Type"] for e in c.describe_service_errors(InstanceId=iid)["ServiceErrors"]}
    assert "connection_lost" in types
    # The heal stops the instance first (the InstanceOnline waiter treats that as failure), then
    # starts it: wait for it to be on its way up again, then for online.
    eventually(lambda: c.describe_instances(InstanceIds=[iid])["Instances"][0]["Status"]
             in ("requested", "pending", "booting", "running_setup", "online"))
    c.get_waiter("instance_online").wait(InstanceIds=[iid], WaiterConfig=FAST)
    setups_after = sum(x["Type"] == "setup" for x in c.describe_commands(InstanceId=iid)["Commands"])
    assert setups_after == setups_before + 1, "a healed instance runs Setup again"


def test_a_healed_instance_back_online_makes_the_others_configure(healing_server):
    c = client_for(healing_server)
    stack, (victim, other) = setup_stack(c, healing=True, count=2)
    try:
        # Let the Configure of the two joins finish, so what follows is the heal's.
        eventually(lambda: all(x["Status"] not in ("pending",) for x in c.describe_commands(InstanceId=other)["Commands"]))
        before = {x["CommandId"] for x in c.describe_commands(InstanceId=other)["Commands"]}
        kill_agent(victim)
        eventually(lambda: c.describe_instances(InstanceIds=[victim])["Instances"][0]["Status"] != "online")
        eventually(lambda: c.describe_instances(InstanceIds=[victim])["Instances"][0]["Status"]
                 in ("requested", "pending", "booting", "running_setup", "online"))
        c.get_waiter("instance_online").wait(InstanceIds=[victim], WaiterConfig=FAST)
        assert service_error_types(c, victim).count("auto_healing") == 1, "one heal, not one per boot"
        assert c.describe_instances(InstanceIds=[other])["Instances"][0]["Status"] == "online", \
            "the other instance is never touched by the heal"

        def configure_with_victim():
            """A Configure the other instance ran, of a deployment that includes the healed instance:
            the one created when it came back online (the one when it went down excludes it)."""
            for cmd in c.describe_commands(InstanceId=other)["Commands"]:
                if cmd["Type"] != "configure" or cmd["CommandId"] in before or cmd["Status"] != "successful":
                    continue
                dep = c.describe_deployments(DeploymentIds=[cmd["DeploymentId"]])["Deployments"][0]
                if victim in dep["InstanceIds"]:
                    return cmd
            return None

        eventually(configure_with_victim)
    finally:
        stop_and_delete(c, stack)


def service_error_types(c, iid):
    return [e["Type"] for e in c.describe_service_errors(InstanceId=iid)["ServiceErrors"]]


def test_instances_booting_on_a_server_older_than_the_timeout_are_not_taken_for_lost(healing_server):
    """An agent gets a whole healing timeout from its boot to speak. The watchdog used to count a
    booting instance's silence from the agent's last word before the boot (or from the server's
    start for a new instance): on a server up for longer than the timeout, a watchdog pass between
    the boot and the new agent's first request took the instance for lost (and healed it again),
    which made the heal test above fail now and then."""
    c = client_for(healing_server)
    eventually(lambda: time.monotonic() - healing_server.started_at > TIMEOUT + 1, seconds=TIMEOUT + 2,
               what="the server to be older than the healing timeout")
    stack = c.create_stack(Name="boot", Region="us-east-1", ServiceRoleArn="arn:aws:iam::123456789012:role/r",
                           DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/p")["StackId"]
    layer = c.create_layer(StackId=stack, Type="custom", Name="Boot", Shortname="boot",
                           EnableAutoHealing=False)["LayerId"]
    ids = [c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro")["InstanceId"]
           for _ in range(4)]
    try:
        # The watchdog looks once a second (TIMEOUT / 4); starts spread over that second put a
        # boot-to-first-request gap across every phase of it, so one of them meets a pass.
        for iid in ids:
            c.start_instance(InstanceId=iid)
            time.sleep(TIMEOUT / 4 / len(ids))
        c.get_waiter("instance_online").wait(InstanceIds=ids, WaiterConfig=FAST)
        lost = {iid: service_error_types(c, iid) for iid in ids}
        assert all("connection_lost" not in types for types in lost.values()), lost
    finally:
        stop_and_delete(c, stack)


def test_without_auto_healing_the_instance_stays_connection_lost(healing_server):
    c = client_for(healing_server)
    stack, iid = setup_stack(c, healing=False)
    kill_agent(iid)
    eventually(lambda: c.describe_instances(InstanceIds=[iid])["Instances"][0]["Status"] == "connection_lost")
    time.sleep(TIMEOUT + 1)
    assert c.describe_instances(InstanceIds=[iid])["Instances"][0]["Status"] == "connection_lost"
    types = [e["Type"] for e in c.describe_service_errors(InstanceId=iid)["ServiceErrors"]]
    assert "connection_lost" in types and "auto_healing" not in types
