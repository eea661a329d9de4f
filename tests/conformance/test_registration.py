"""Registered instances as boto3 and awscli see them: RegisterInstance, AssignInstance,
UnassignInstance, DeregisterInstance, the statuses before any agent reports in, the refusals, the
installer `AgentInstallerUrl` names. (The machines themselves, their agents, updates and removal
are tests/register's: real SSH servers in network namespaces.)"""

import gzip
import io
import json
import tarfile
import urllib.request

from harness import aws_error, missing_id, unique


def identity(**over):
    doc = {"hostname": "x", "architecture": "x86_64", "infrastructure_class": "on-premises",
           "os": {"family": "debian", "name": "debian", "version": "12"}}
    doc.update(over)
    return {"Document": json.dumps(doc), "Signature": ""}


def test_register_records_a_registering_machine_and_answers_only_its_id(ow, make_stack):
    stack = make_stack()
    r = ow.register_instance(StackId=stack, Hostname="edge-1", PrivateIp="10.1.2.3", PublicIp="203.0.113.9",
                             InstanceIdentity=identity())
    # The instance's own key goes to the registering caller as a member outside the model:
    # botocore, like awscli's output, shows only what the model names.
    assert set(r) - {"ResponseMetadata"} == {"InstanceId"}
    inst = ow.describe_instances(InstanceIds=[r["InstanceId"]])["Instances"][0]
    assert inst["Status"] == "registering"
    assert inst["InfrastructureClass"] == "on-premises"
    assert inst["RegisteredBy"].startswith("arn:aws:iam::") and inst["RegisteredBy"].endswith(":root")
    assert inst["ReportedOs"] == {"Family": "debian", "Name": "debian", "Version": "12"}
    assert inst["Os"] == "Debian 12"
    assert (inst["PrivateIp"], inst["PublicIp"]) == ("10.1.2.3", "203.0.113.9")
    assert inst["LayerIds"] == [] and "InstanceType" not in inst
    summary = ow.describe_stack_summary(StackId=stack)["StackSummary"]
    assert summary["InstancesCount"]["Registering"] == 1
    # Without an agent that reported in, it goes at once.
    ow.deregister_instance(InstanceId=r["InstanceId"])
    assert ow.describe_instances(StackId=stack)["Instances"] == []


def test_registration_errors(ow, make_stack, make_layer, make_instance):
    with aws_error("ResourceNotFoundException"):
        ow.register_instance(StackId=missing_id(), Hostname="a")
    stack = make_stack()
    layer = make_layer(stack)
    iid = ow.register_instance(StackId=stack, Hostname="dup", InstanceIdentity=identity())["InstanceId"]
    with aws_error("ValidationException", "already in use"):
        ow.register_instance(StackId=stack, Hostname="DUP")
    with aws_error("ValidationException", "Hostname is required"):
        ow.register_instance(StackId=stack)
    with aws_error("ValidationException", "PublicIp"):
        ow.register_instance(StackId=stack, Hostname="b", PublicIp="not-an-ip")
    with aws_error("ValidationException", "infrastructure class"):
        ow.register_instance(StackId=stack, Hostname="c", InstanceIdentity=identity(infrastructure_class="moon"))
    # Until its agent reports in, a machine cannot be assigned.
    with aws_error("ValidationException", "registering"):
        ow.assign_instance(InstanceId=iid, LayerIds=[layer])
    # The server never starts, stops, reboots or deletes a registered machine.
    for call in (ow.start_instance, ow.stop_instance, ow.reboot_instance):
        with aws_error("ValidationException", "does not"):
            call(InstanceId=iid)
    with aws_error("ValidationException", "DeregisterInstance"):
        ow.delete_instance(InstanceId=iid)
    with aws_error("ValidationException", "only its AgentVersion"):
        ow.update_instance(InstanceId=iid, Hostname="other")
    # CreateInstance's instances are not for these operations.
    created = make_instance(stack, [layer])
    with aws_error("ValidationException", "not registered"):
        ow.assign_instance(InstanceId=created, LayerIds=[layer])
    with aws_error("ValidationException", "not registered"):
        ow.deregister_instance(InstanceId=created)
    for call, args in [(ow.assign_instance, {"LayerIds": [layer]}), (ow.unassign_instance, {}),
                       (ow.deregister_instance, {})]:
        with aws_error("ResourceNotFoundException"):
            call(InstanceId=missing_id(), **args)
    ow.deregister_instance(InstanceId=iid)


def test_provisioning_parameters_fit_aws_opsworks_register(ow, make_stack):
    stack = make_stack()
    r = ow.describe_stack_provisioning_parameters(StackId=stack)
    params = r["Parameters"]
    # The CLI builds its preconfig as dict(stack_id=..., **Parameters): no stack_id of ours, and an
    # assets bucket it can put on a shell command line.
    assert "stack_id" not in params
    assert params["assets_download_bucket"].isalnum()
    assert params["ops_works_endpoint"] in r["AgentInstallerUrl"]
    with urllib.request.urlopen(r["AgentInstallerUrl"], timeout=10) as resp:
        body = resp.read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as tar:
        boot = tar.getmember("opsworks-agent-installer/boot-registration")
        assert boot.mode & 0o111
        script = tar.extractfile(boot).read().decode()
    assert script.startswith("#!/bin/sh") and "agent-install --preconfig" in script
    sha = next(l for l in script.splitlines() if l.startswith("sha256=")).split("'")[1]
    with urllib.request.urlopen(f"{params['ops_works_endpoint']}/agent/releases/{sha}", timeout=60) as resp:
        assert resp.status == 200 and resp.read(4) == b"\x7fELF"


def test_agent_versions_name_what_the_server_hands_out(ow, make_stack):
    stack = make_stack()
    versions = [v["Version"] for v in ow.describe_agent_versions(StackId=stack)["AgentVersions"]]
    assert versions
    ow.update_stack(StackId=stack, AgentVersion=versions[0])
    assert ow.describe_stacks(StackIds=[stack])["Stacks"][0]["AgentVersion"] == versions[0]
    with aws_error("ValidationException", "Invalid AgentVersion"):
        ow.update_stack(StackId=stack, AgentVersion=unique("nope"))
    with aws_error("ValidationException", "Invalid AgentVersion"):
        ow.create_stack(Name=unique(), Region="us-east-1",
                        ServiceRoleArn="arn:aws:iam::123456789012:role/r",
                        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/p",
                        AgentVersion="INHERIT")
