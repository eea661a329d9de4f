"""Instances: CreateInstance, DescribeInstances, UpdateInstance, DeleteInstance, StartInstance,
StopInstance, RebootInstance."""

import re
import time

import pytest

from harness import CREATED_AT_RE, REGION, UUID_RE, aws_error, missing_id

START_PATH = {"requested", "pending", "booting", "running_setup", "online"}
STOP_PATH = {"stopping", "shutting_down", "terminating", "terminated", "stopped"}


def describe_instance(ow, iid):
    insts = ow.describe_instances(InstanceIds=[iid])["Instances"]
    assert len(insts) == 1
    return insts[0]


def wait_stopped(ow, iid, deadline_s=30.0):
    """Poll until the instance reports `stopped` (bounded, so a stuck state fails instead of hanging)."""
    end = time.monotonic() + deadline_s
    status = None
    while time.monotonic() < end:
        status = describe_instance(ow, iid)["Status"]
        if status == "stopped":
            return status
        time.sleep(0.2)
    raise AssertionError(f"instance {iid} still {status!r} after StopInstance")


def test_create_instance_and_describe(ow, layer, make_instance):
    stack_id, lid = layer
    iid = make_instance(stack_id, [lid], Os="Ubuntu 18.04 LTS", SshKeyName="k1", Architecture="x86_64")
    assert UUID_RE.match(iid), iid
    inst = describe_instance(ow, iid)
    assert inst["InstanceId"] == iid
    assert inst["StackId"] == stack_id
    assert inst["LayerIds"] == [lid]
    assert inst["InstanceType"] == "t2.micro"
    assert inst["Status"] == "stopped"
    assert inst["Os"] == "Ubuntu 18.04 LTS"
    assert inst["SshKeyName"] == "k1"
    assert inst["Architecture"] == "x86_64"
    assert inst["AgentVersion"] == "INHERIT"
    assert re.match(rf"^arn:aws:opsworks:{REGION}:\d{{12}}:instance/{iid}$", inst["Arn"]), inst["Arn"]
    assert CREATED_AT_RE.match(inst["CreatedAt"]), inst["CreatedAt"]
    assert inst["Hostname"]


def test_create_instance_hostname_from_theme_or_given(ow, stack, make_layer, make_instance):
    lid = make_layer(stack, Name="App", Shortname="app")
    a = make_instance(stack, [lid])
    b = make_instance(stack, [lid], Hostname="explicit-host")
    c = make_instance(stack, [lid])
    assert describe_instance(ow, a)["Hostname"] == "app1"
    assert describe_instance(ow, b)["Hostname"] == "explicit-host"
    assert describe_instance(ow, c)["Hostname"] == "app2"


def test_create_instance_inherits_stack_defaults(ow, make_stack, make_layer, make_instance):
    sid = make_stack(DefaultOs="Ubuntu 16.04 LTS", DefaultSshKeyName="stack-key")
    lid = make_layer(sid)
    inst = describe_instance(ow, make_instance(sid, [lid]))
    assert inst["Os"] == "Ubuntu 16.04 LTS"
    assert inst["SshKeyName"] == "stack-key"


def test_create_instance_in_several_layers(ow, stack, make_layer, make_instance):
    l1, l2 = make_layer(stack), make_layer(stack)
    iid = make_instance(stack, [l1, l2])
    assert sorted(describe_instance(ow, iid)["LayerIds"]) == sorted([l1, l2])
    assert [i["InstanceId"] for i in ow.describe_instances(LayerId=l2)["Instances"]] == [iid]


def test_create_instance_errors(ow, ow_raw, layer, make_stack, make_layer, make_instance):
    stack_id, lid = layer
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.create_instance(StackId=bad, LayerIds=[lid], InstanceType="t2.micro")
    with aws_error("ResourceNotFoundException", bad):
        ow.create_instance(StackId=stack_id, LayerIds=[bad], InstanceType="t2.micro")
    other = make_stack()
    foreign = make_layer(other)
    with aws_error("ValidationException"):
        ow.create_instance(StackId=stack_id, LayerIds=[foreign], InstanceType="t2.micro")
    for missing in ("StackId", "LayerIds", "InstanceType"):
        params = {"StackId": stack_id, "LayerIds": [lid], "InstanceType": "t2.micro"}
        del params[missing]
        with aws_error("ValidationException"):
            ow_raw.create_instance(**params)
    with aws_error("ValidationException"):
        ow_raw.create_instance(StackId=stack_id, LayerIds=[lid], InstanceType="t2.micro", Architecture="arm64")
    with aws_error("ValidationException"):
        ow_raw.create_instance(StackId=stack_id, LayerIds=[lid], InstanceType="t2.micro", RootDeviceType="floppy")
    with aws_error("ValidationException"):
        ow_raw.create_instance(StackId=stack_id, LayerIds=[lid], InstanceType="t2.micro", AutoScalingType="always")
    with aws_error("ValidationException"):
        ow.create_instance(StackId=stack_id, LayerIds=[lid], InstanceType="t2.micro", Hostname="Not_A_Host!")
    with aws_error("ValidationException"):  # an instance belongs to at least one layer
        ow.create_instance(StackId=stack_id, LayerIds=[], InstanceType="t2.micro")
    with aws_error("ValidationException"):  # Linux host names: at most 63 characters
        ow.create_instance(StackId=stack_id, LayerIds=[lid], InstanceType="t2.micro", Hostname="h" * 64)
    with aws_error("ValidationException"):  # "If you specify a custom AMI, you must set Os to Custom."
        ow.create_instance(StackId=stack_id, LayerIds=[lid], InstanceType="t2.micro", AmiId="ami-12345678")
    # Nothing was created by the refused calls.
    assert ow.describe_instances(StackId=stack_id)["Instances"] == []


def test_custom_ami_instance(ow, layer, make_instance):
    stack_id, lid = layer
    iid = make_instance(stack_id, [lid], Os="Custom", AmiId="ami-12345678", Hostname="h" * 63)
    inst = describe_instance(ow, iid)
    assert (inst["Os"], inst["AmiId"], inst["Hostname"]) == ("Custom", "ami-12345678", "h" * 63)


def test_custom_ami_takes_no_block_device_mappings(ow, layer, make_instance):
    # The model: "block device mappings are not supported for custom AMIs".
    stack_id, lid = layer
    with aws_error("ValidationException"):
        make_instance(
            stack_id,
            [lid],
            Os="Custom",
            AmiId="ami-12345678",
            BlockDeviceMappings=[{"DeviceName": "ROOT_DEVICE", "Ebs": {"VolumeSize": 20}}],
        )


def test_update_instance_ami_rules(ow, layer, make_instance):
    # The model: AmiId "must be the same AMI ID that the instance is already using"; and "You cannot
    # update an instance that is using a custom AMI" to another Os.
    stack_id, lid = layer
    iid = make_instance(stack_id, [lid], Os="Custom", AmiId="ami-12345678")
    ow.update_instance(InstanceId=iid, AmiId="ami-12345678", InstanceType="t2.small")
    assert describe_instance(ow, iid)["InstanceType"] == "t2.small"
    with aws_error("ValidationException"):
        ow.update_instance(InstanceId=iid, AmiId="ami-87654321")
    with aws_error("ValidationException"):
        ow.update_instance(InstanceId=iid, Os="Amazon Linux 2")
    inst = describe_instance(ow, iid)
    assert (inst["Os"], inst["AmiId"]) == ("Custom", "ami-12345678")


def test_tenancy_values(ow, layer, make_instance):
    # The model: "valid values for this parameter: dedicated, default, or host".
    stack_id, lid = layer
    iid = make_instance(stack_id, [lid], Tenancy="dedicated")
    assert describe_instance(ow, iid)["Tenancy"] == "dedicated"
    with aws_error("ValidationException", names=("shared",)):
        make_instance(stack_id, [lid], Tenancy="shared")


def test_duplicate_hostname_in_stack_refused(ow, layer, make_instance):
    stack_id, lid = layer
    make_instance(stack_id, [lid], Hostname="twin")
    with aws_error("ValidationException", "twin"):
        make_instance(stack_id, [lid], Hostname="twin")
    other = make_instance(stack_id, [lid], Hostname="single")
    with aws_error("ValidationException", "twin"):
        ow.update_instance(InstanceId=other, Hostname="twin")
    assert describe_instance(ow, other)["Hostname"] == "single"


# ---- DescribeInstances identifiers -------------------------------------------------------------------


def test_describe_instances_by_each_identifier(ow, stack, make_layer, make_instance):
    l1, l2 = make_layer(stack), make_layer(stack)
    a = make_instance(stack, [l1])
    b = make_instance(stack, [l2])
    assert {i["InstanceId"] for i in ow.describe_instances(StackId=stack)["Instances"]} == {a, b}
    assert [i["InstanceId"] for i in ow.describe_instances(LayerId=l1)["Instances"]] == [a]
    assert {i["InstanceId"] for i in ow.describe_instances(InstanceIds=[a, b])["Instances"]} == {a, b}


def test_describe_instances_identifier_rules(ow, layer, make_instance):
    stack_id, lid = layer
    iid = make_instance(stack_id, [lid])
    # AWS: "Please provide either one or more instance ID(s) or one stack ID or one layer ID".
    with aws_error("ValidationException", "Please provide"):
        ow.describe_instances()
    with aws_error("ValidationException", "Please provide"):
        ow.describe_instances(StackId=stack_id, LayerId=lid)
    with aws_error("ValidationException", "Please provide"):
        ow.describe_instances(StackId=stack_id, InstanceIds=[iid])


def test_describe_instances_unknown(ow, layer):
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.describe_instances(StackId=bad)
    with aws_error("ResourceNotFoundException", message=f"Unable to find layer with ID {bad}"):
        ow.describe_instances(LayerId=bad)
    with aws_error("ResourceNotFoundException", bad):
        ow.describe_instances(InstanceIds=[bad])


# ---- Start / Stop / Reboot / Update / Delete ---------------------------------------------------------


def test_start_stop_reboot_lifecycle_and_delete(ow, layer, make_instance):
    stack_id, lid = layer
    iid = make_instance(stack_id, [lid])
    ow.start_instance(InstanceId=iid)
    assert describe_instance(ow, iid)["Status"] in START_PATH
    # Edits and deletion are refused while the instance is not stopped.
    with aws_error("ValidationException"):
        ow.delete_instance(InstanceId=iid)
    with aws_error("ValidationException"):
        ow.update_instance(InstanceId=iid, InstanceType="m5.large")
    ow.stop_instance(InstanceId=iid)
    assert describe_instance(ow, iid)["Status"] in STOP_PATH
    wait_stopped(ow, iid)
    ow.delete_instance(InstanceId=iid, DeleteElasticIp=False, DeleteVolumes=False)
    with aws_error("ResourceNotFoundException", iid):
        ow.describe_instances(InstanceIds=[iid])
    assert ow.describe_instances(StackId=stack_id)["Instances"] == []


def test_reboot_needs_a_running_instance(ow, layer, make_instance):
    # A soft reboot restarts an online machine; a stopped instance has none. (The success path needs
    # an online instance, i.e. an agent: it belongs to the agent issue's tests.)
    stack_id, lid = layer
    iid = make_instance(stack_id, [lid])
    with aws_error("ValidationException"):
        ow.reboot_instance(InstanceId=iid)
    assert describe_instance(ow, iid)["Status"] == "stopped"


def test_stop_instance_force(ow, layer, make_instance):
    stack_id, lid = layer
    iid = make_instance(stack_id, [lid])
    ow.start_instance(InstanceId=iid)
    ow.stop_instance(InstanceId=iid, Force=True)
    assert describe_instance(ow, iid)["Status"] in STOP_PATH


def test_update_instance_while_stopped(ow, stack, make_layer, make_instance):
    l1, l2 = make_layer(stack), make_layer(stack)
    iid = make_instance(stack, [l1])
    ow.update_instance(
        InstanceId=iid,
        LayerIds=[l1, l2],
        InstanceType="m5.large",
        Hostname="renamed-host",
        SshKeyName="other-key",
        InstallUpdatesOnBoot=False,
    )
    inst = describe_instance(ow, iid)
    assert sorted(inst["LayerIds"]) == sorted([l1, l2])
    assert inst["InstanceType"] == "m5.large"
    assert inst["Hostname"] == "renamed-host"
    assert inst["SshKeyName"] == "other-key"
    assert inst["InstallUpdatesOnBoot"] is False


def test_update_instance_errors(ow, ow_raw, layer, make_stack, make_layer, make_instance):
    stack_id, lid = layer
    iid = make_instance(stack_id, [lid])
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find instance with ID {bad}"):
        ow.update_instance(InstanceId=bad, InstanceType="t2.small")
    with aws_error("ResourceNotFoundException", bad):
        ow.update_instance(InstanceId=iid, LayerIds=[bad])
    foreign = make_layer(make_stack())
    with aws_error("ValidationException"):
        ow.update_instance(InstanceId=iid, LayerIds=[foreign])
    with aws_error("ValidationException"):
        ow_raw.update_instance(InstanceId=iid, Architecture="sparc")
    with aws_error("ValidationException"):
        ow_raw.update_instance(InstanceType="t2.small")


@pytest.mark.parametrize("op", ["start_instance", "stop_instance", "reboot_instance", "delete_instance"])
def test_instance_actions_unknown_id(ow, ow_raw, op):
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find instance with ID {bad}"):
        getattr(ow, op)(InstanceId=bad)
    with aws_error("ValidationException"):
        getattr(ow_raw, op)()


# ---- Windows stacks -----------------------------------------------------------------------------------

WINDOWS = "Microsoft Windows Server 2012 R2 Base"


@pytest.fixture
def windows_layer(ow, make_stack, make_layer):
    sid = make_stack(DefaultOs=WINDOWS, ConfigurationManager={"Name": "Chef", "Version": "12.2"})
    return sid, make_layer(sid)


def test_windows_hostnames_at_most_15_characters(ow, windows_layer, make_instance):
    stack_id, lid = windows_layer
    iid = make_instance(stack_id, [lid], Hostname="w" * 15)
    assert describe_instance(ow, iid)["Os"] == WINDOWS
    with aws_error("ValidationException"):
        make_instance(stack_id, [lid], Hostname="w" * 16)


def test_windows_instances_only_time_based(ow, windows_layer, make_instance):
    # The model: "Windows stacks can use only time-based instances."
    stack_id, lid = windows_layer
    make_instance(stack_id, [lid], AutoScalingType="timer")
    with aws_error("ValidationException"):
        make_instance(stack_id, [lid], AutoScalingType="load")


def test_no_mixing_linux_and_windows(ow, layer, windows_layer, make_instance):
    stack_id, lid = layer
    with aws_error("ValidationException"):
        make_instance(stack_id, [lid], Os=WINDOWS)
    wstack, wlid = windows_layer
    with aws_error("ValidationException"):
        make_instance(wstack, [wlid], Os="Amazon Linux 2")


def test_instance_unknown_os(ow, layer, make_instance):
    stack_id, lid = layer
    with aws_error("ValidationException", "Solaris 10"):
        make_instance(stack_id, [lid], Os="Solaris 10")
