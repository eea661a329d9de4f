"""Elastic IPs and volumes (issue 14), driven by boto3 and awscli: `ec2` AllocateAddress,
DescribeAddresses, ReleaseAddress, CreateVolume, DescribeVolumes, DeleteVolume in EC2's own
dialect and error shape, and the OpsWorks operations that register them with stacks and give them
to instances, with the refusals the original made. The conformance server runs no local instances:
addresses are records here (the lifecycle suite checks that they answer), volumes are real XFS disk
images (`mkfs.xfs`, Debian's xfsprogs)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from harness import ACCESS_KEY, REGION, SECRET_KEY, stack_params, unique, which_aws
from iam_helpers import User, allow, client, document

POOL_PREFIX = "10.217.255."


@pytest.fixture(scope="module")
def ec2(endpoint):
    return client("ec2", endpoint)


@pytest.fixture(scope="module")
def iam(endpoint):
    return client("iam", endpoint)


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def message_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Message"]


def status_of(excinfo) -> int:
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def aws(endpoint, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION=REGION,
               AWS_MAX_ATTEMPTS="1", AWS_PAGER="")
    return subprocess.run([which_aws(), *args, "--endpoint-url", endpoint, "--output", "json"], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)


def stack_with_instances(ow, count=2):
    sid = ow.create_stack(**stack_params(Name=unique("res")))["StackId"]
    lid = ow.create_layer(StackId=sid, Type="custom", Name="web", Shortname="web")["LayerId"]
    ids = [ow.create_instance(StackId=sid, LayerIds=[lid], InstanceType="t3.micro")["InstanceId"] for _ in range(count)]
    return sid, lid, ids


# ---- ec2: addresses ---------------------------------------------------------------------------------


def test_addresses_are_allocated_from_the_pool_described_and_released(ec2):
    made = ec2.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": [{"Key": "Name", "Value": "front"}]}])
    ip, alloc = made["PublicIp"], made["AllocationId"]
    assert ip.startswith(POOL_PREFIX) and alloc.startswith("eipalloc-")
    assert made["Domain"] == "vpc" and made["NetworkBorderGroup"] == REGION
    by_ip = ec2.describe_addresses(PublicIps=[ip])["Addresses"]
    assert [(a["PublicIp"], a["AllocationId"]) for a in by_ip] == [(ip, alloc)]
    assert by_ip[0]["Tags"] == [{"Key": "Name", "Value": "front"}]
    assert "InstanceId" not in by_ip[0]
    assert ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]["PublicIp"] == ip
    tagged = ec2.describe_addresses(Filters=[{"Name": "tag:Name", "Values": ["fr*"]}])["Addresses"]
    assert ip in [a["PublicIp"] for a in tagged]
    assert ec2.describe_addresses(Filters=[{"Name": "domain", "Values": ["standard"]}])["Addresses"] == [] or all(
        a["Domain"] == "standard" for a in ec2.describe_addresses(Filters=[{"Name": "domain", "Values": ["standard"]}])["Addresses"])

    # The same address cannot be had twice; one outside the pool not at all.
    with pytest.raises(ClientError) as e:
        ec2.allocate_address(Domain="vpc", Address=ip)
    assert code_of(e) == "InvalidIPAddress.InUse"
    with pytest.raises(ClientError) as e:
        ec2.allocate_address(Domain="vpc", Address="192.0.2.10")
    assert code_of(e) == "InvalidParameterValue" and "outside this server's Elastic IP pool" in message_of(e)

    ec2.release_address(AllocationId=alloc)
    with pytest.raises(ClientError) as e:
        ec2.describe_addresses(PublicIps=[ip])
    assert code_of(e) == "InvalidAddress.NotFound" and message_of(e) == f"Address '{ip}' not found."
    with pytest.raises(ClientError) as e:
        ec2.release_address(AllocationId=alloc)
    assert code_of(e) == "InvalidAllocationID.NotFound" and message_of(e) == f"Allocation ID '{alloc}' not found."
    # Released, the address can be allocated again by name.
    again = ec2.allocate_address(Domain="vpc", Address=ip)
    ec2.release_address(PublicIp=again["PublicIp"])


def test_dry_run_unknown_filters_and_other_operations(ec2):
    with pytest.raises(ClientError) as e:
        ec2.allocate_address(Domain="vpc", DryRun=True)
    assert code_of(e) == "DryRunOperation" and status_of(e) == 412
    with pytest.raises(ClientError) as e:
        ec2.describe_addresses(Filters=[{"Name": "colour", "Values": ["blue"]}])
    assert code_of(e) == "InvalidParameterValue" and "colour" in message_of(e)
    with pytest.raises(ClientError) as e:
        ec2.associate_address(AllocationId="eipalloc-0123456789abcdef0", InstanceId="i-1")
    assert code_of(e) == "UnsupportedOperation" and "AssociateAddress" in message_of(e)
    with pytest.raises(ClientError) as e:
        ec2.describe_images()
    assert code_of(e) == "UnsupportedOperation"


def test_the_error_is_ec2s_xml(endpoint):
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import urllib3

    body = "Action=DeleteVolume&Version=2016-11-15&VolumeId=vol-0000000000000000a"
    req = AWSRequest(method="POST", url=endpoint + "/", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "ec2", REGION).add_auth(req)
    p = req.prepare()
    r = urllib3.PoolManager().request("POST", p.url, body=body.encode(), headers=dict(p.headers.items()))
    assert r.status == 400
    root = ET.fromstring(r.data)
    assert root.tag == "Response"
    err = root.find("Errors/Error")
    assert err.findtext("Code") == "InvalidVolume.NotFound"
    assert err.findtext("Message") == "The volume 'vol-0000000000000000a' does not exist."
    assert root.findtext("RequestID")


# ---- ec2: volumes -------------------------------------------------------------------------------------


def test_volumes_are_created_waited_for_described_in_pages_and_deleted(ec2):
    made = [ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1, VolumeType="gp3",
                              TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "set", "Value": "pages"}]}])
            for _ in range(6)]
    ids = [v["VolumeId"] for v in made]
    assert all(v["State"] == "available" and v["Size"] == 1 and v["VolumeType"] == "gp3" for v in made)
    assert made[0]["Iops"] == 3000 and made[0]["Throughput"] == 125 and made[0]["Encrypted"] is False
    ec2.get_waiter("volume_available").wait(VolumeIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    mine = [{"Name": "tag:set", "Values": ["pages"]}]
    page = ec2.describe_volumes(Filters=mine, MaxResults=5)
    assert len(page["Volumes"]) == 5 and page["NextToken"]
    rest = ec2.describe_volumes(Filters=mine, MaxResults=5, NextToken=page["NextToken"])
    assert len(rest["Volumes"]) == 1 and "NextToken" not in rest
    paged = [v["VolumeId"] for p in ec2.get_paginator("describe_volumes").paginate(
        Filters=mine, PaginationConfig={"PageSize": 5}) for v in p["Volumes"]]
    assert sorted(paged) == sorted(ids)
    got = ec2.describe_volumes(VolumeIds=[ids[0]])["Volumes"][0]
    assert got["Attachments"] == [] and got["AvailabilityZone"] == f"{REGION}a"
    assert got["CreateTime"].year >= 2024
    assert ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [ids[1]]}])["Volumes"][0]["VolumeId"] == ids[1]
    for vid in ids:
        ec2.delete_volume(VolumeId=vid)
    ec2.get_waiter("volume_deleted").wait(VolumeIds=ids[:1], WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(VolumeIds=[ids[0]])
    assert code_of(e) == "InvalidVolume.NotFound" and message_of(e) == f"The volume '{ids[0]}' does not exist."
    with pytest.raises(ClientError) as e:
        ec2.delete_volume(VolumeId=ids[0])
    assert code_of(e) == "InvalidVolume.NotFound"


@pytest.mark.parametrize("params,code", [
    ({"Size": 1, "AvailabilityZone": "mars-1a"}, "InvalidParameterValue"),
    ({"AvailabilityZone": f"{REGION}a"}, "MissingParameter"),
    ({"AvailabilityZone": f"{REGION}a", "SnapshotId": "snap-0123456789abcdef0"}, "InvalidSnapshot.NotFound"),
    ({"AvailabilityZone": f"{REGION}a", "Size": 20000}, "InvalidParameterValue"),
    ({"AvailabilityZone": f"{REGION}a", "Size": 10, "VolumeType": "io1"}, "MissingParameter"),
    ({"AvailabilityZone": f"{REGION}a", "Size": 10, "VolumeType": "gp2", "Iops": 500}, "InvalidParameterCombination"),
    ({"AvailabilityZone": f"{REGION}a", "Size": 10, "Encrypted": True}, "UnsupportedOperation"),
], ids=["zone", "no-size", "snapshot", "too-large", "io1-no-iops", "gp2-iops", "encrypted"])
def test_create_volume_refuses_what_ec2_refuses(ec2, params, code):
    with pytest.raises(ClientError) as e:
        ec2.create_volume(**params)
    assert code_of(e) == code, message_of(e)
    assert status_of(e) == 400


def test_aws_ec2_cli(endpoint):
    r = aws(endpoint, "ec2", "allocate-address", "--domain", "vpc")
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    r = aws(endpoint, "ec2", "describe-addresses", "--public-ips", made["PublicIp"])
    assert json.loads(r.stdout)["Addresses"][0]["AllocationId"] == made["AllocationId"]
    r = aws(endpoint, "ec2", "release-address", "--allocation-id", made["AllocationId"])
    assert r.returncode == 0 and r.stdout.strip() == "", r.stderr
    r = aws(endpoint, "ec2", "create-volume", "--size", "1", "--availability-zone", f"{REGION}b")
    assert r.returncode == 0, r.stderr
    vol = json.loads(r.stdout)
    assert vol["VolumeId"].startswith("vol-") and vol["State"] == "available"
    assert vol["CreateTime"].endswith(".000Z")
    r = aws(endpoint, "ec2", "describe-volumes", "--volume-ids", vol["VolumeId"], "--query", "Volumes[0].Size")
    assert r.stdout.strip() == "1"
    r = aws(endpoint, "ec2", "delete-volume", "--volume-id", vol["VolumeId"])
    assert r.returncode == 0, r.stderr
    r = aws(endpoint, "ec2", "delete-volume", "--volume-id", vol["VolumeId"])
    assert r.returncode == 255
    assert (f"An error occurred (InvalidVolume.NotFound) when calling the DeleteVolume operation: "
            f"The volume '{vol['VolumeId']}' does not exist.") in r.stderr


def test_ec2_calls_are_authorized(endpoint, iam):
    user = User(endpoint, iam, policy=document(allow("ec2:Describe*")))
    ec2u = user.client("ec2")
    ec2u.describe_addresses()
    with pytest.raises(ClientError) as e:
        ec2u.allocate_address(Domain="vpc")
    assert code_of(e) == "UnauthorizedOperation" and status_of(e) == 403
    assert "ec2:AllocateAddress" in message_of(e)
    with pytest.raises(ClientError) as e:
        ec2u.create_volume(AvailabilityZone=f"{REGION}a", Size=1, DryRun=True)
    assert code_of(e) == "UnauthorizedOperation"


# ---- opsworks: Elastic IPs ---------------------------------------------------------------------------


def test_elastic_ips_are_registered_associated_moved_and_deregistered(ow, ec2):
    sid, _, (a, b) = stack_with_instances(ow)
    ip = ec2.allocate_address(Domain="vpc")["PublicIp"]
    assert ow.register_elastic_ip(ElasticIp=ip, StackId=sid)["ElasticIp"] == ip
    ow.associate_elastic_ip(ElasticIp=ip, InstanceId=a)
    inst = ow.describe_instances(InstanceIds=[a])["Instances"][0]
    assert inst["ElasticIp"] == ip and inst["PublicIp"] == ip
    ow.associate_elastic_ip(ElasticIp=ip, InstanceId=b)
    ia, ib = ow.describe_instances(InstanceIds=[a, b])["Instances"]
    assert "ElasticIp" not in ia and ib["ElasticIp"] == ip
    ow.update_elastic_ip(ElasticIp=ip, Name="front door")
    listed = ow.describe_elastic_ips(StackId=sid)["ElasticIps"]
    assert listed == [{"Ip": ip, "Name": "front door", "Domain": "vpc", "Region": REGION, "InstanceId": b}]
    assert ow.describe_elastic_ips(InstanceId=b)["ElasticIps"][0]["Ip"] == ip
    assert ow.describe_elastic_ips(Ips=[ip])["ElasticIps"][0]["InstanceId"] == b
    assert ec2.describe_addresses(PublicIps=[ip])["Addresses"][0]["AssociationId"].startswith("eipassoc-")
    with pytest.raises(ClientError) as e:
        ec2.release_address(PublicIp=ip)
    assert code_of(e) == "InvalidIPAddress.InUse"
    ow.disassociate_elastic_ip(ElasticIp=ip)
    assert "ElasticIp" not in ow.describe_instances(InstanceIds=[b])["Instances"][0]
    ow.deregister_elastic_ip(ElasticIp=ip)
    assert ow.describe_elastic_ips(StackId=sid)["ElasticIps"] == []
    ec2.release_address(PublicIp=ip)


def test_elastic_ip_refusals(ow, ec2):
    sid, _, (a, _) = stack_with_instances(ow)
    other, _, (foreign, _) = stack_with_instances(ow)
    with pytest.raises(ClientError) as e:
        ow.register_elastic_ip(ElasticIp="10.217.255.250", StackId=sid)
    assert code_of(e) == "ResourceNotFoundException"
    ip = ec2.allocate_address(Domain="vpc")["PublicIp"]
    ow.register_elastic_ip(ElasticIp=ip, StackId=sid)
    with pytest.raises(ClientError) as e:
        ow.register_elastic_ip(ElasticIp=ip, StackId=other)
    assert code_of(e) == "ValidationException" and "already registered" in message_of(e)
    with pytest.raises(ClientError) as e:
        ow.associate_elastic_ip(ElasticIp=ip, InstanceId=foreign)
    assert code_of(e) == "ValidationException" and "registered with stack" in message_of(e)
    with pytest.raises(ClientError) as e:
        ow.associate_elastic_ip(ElasticIp=ip, InstanceId="00000000-0000-0000-0000-000000000000")
    assert code_of(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ow.update_elastic_ip(ElasticIp=ip, Name="x" * 33)
    assert code_of(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ow.describe_elastic_ips()
    assert code_of(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ow.disassociate_elastic_ip(ElasticIp=ip)
    assert code_of(e) == "ValidationException"
    # DeleteInstance with DeleteElasticIp releases it.
    ow.associate_elastic_ip(ElasticIp=ip, InstanceId=a)
    ow.delete_instance(InstanceId=a, DeleteElasticIp=True)
    with pytest.raises(ClientError) as e:
        ec2.describe_addresses(PublicIps=[ip])
    assert code_of(e) == "InvalidAddress.NotFound"


# ---- opsworks: volumes ---------------------------------------------------------------------------------


def test_volumes_with_the_cli(endpoint, ow, ec2, cli):
    sid, _, (a, b) = stack_with_instances(ow)
    vid = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    r = cli.run("register-volume", "--stack-id", sid, "--ec2-volume-id", vid)
    assert r.returncode == 0, r.stderr
    volume_id = json.loads(r.stdout)["VolumeId"]
    r = cli.run("assign-volume", "--volume-id", volume_id, "--instance-id", a)
    assert r.returncode == 255 and "ValidationException" in r.stderr and "no mount point" in r.stderr
    assert cli.run("update-volume", "--volume-id", volume_id, "--name", "data", "--mount-point", "/srv/data").returncode == 0
    assert cli.run("assign-volume", "--volume-id", volume_id, "--instance-id", a).returncode == 0
    shown = json.loads(cli.run("describe-volumes", "--instance-id", a).stdout)["Volumes"]
    assert len(shown) == 1
    v = shown[0]
    assert (v["VolumeId"], v["Ec2VolumeId"], v["Name"], v["MountPoint"], v["Status"], v["Device"], v["Size"]) == (
        volume_id, vid, "data", "/srv/data", "in-use", "/dev/sdf", 1)
    assert v["Region"] == REGION and v["AvailabilityZone"] == f"{REGION}a" and v["VolumeType"] == "gp2"
    att = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert att["State"] == "in-use" and att["Attachments"][0]["Device"] == "/dev/sdf"
    r = aws(endpoint, "ec2", "delete-volume", "--volume-id", vid)
    assert r.returncode == 255 and "VolumeInUse" in r.stderr
    r = cli.run("assign-volume", "--volume-id", volume_id, "--instance-id", b)
    assert r.returncode == 255 and "unassign it first" in r.stderr
    assert cli.run("unassign-volume", "--volume-id", volume_id).returncode == 0
    assert cli.run("assign-volume", "--volume-id", volume_id, "--instance-id", b).returncode == 0
    assert json.loads(cli.run("describe-volumes", "--stack-id", sid).stdout)["Volumes"][0]["InstanceId"] == b
    assert cli.run("unassign-volume", "--volume-id", volume_id).returncode == 0
    assert cli.run("deregister-volume", "--volume-id", volume_id).returncode == 0
    r = cli.run("describe-volumes", "--volume-ids", volume_id)
    assert r.returncode == 255 and "ResourceNotFoundException" in r.stderr
    ec2.delete_volume(VolumeId=vid)


def test_volume_refusals(ow, ec2):
    sid, _, (a, _) = stack_with_instances(ow)
    other, _, (foreign, _) = stack_with_instances(ow)
    with pytest.raises(ClientError) as e:
        ow.register_volume(StackId=sid, Ec2VolumeId="vol-0123456789abcdef0")
    assert code_of(e) == "ResourceNotFoundException"
    vid = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    volume_id = ow.register_volume(StackId=sid, Ec2VolumeId=vid)["VolumeId"]
    with pytest.raises(ClientError) as e:
        ow.register_volume(StackId=other, Ec2VolumeId=vid)
    assert code_of(e) == "ValidationException" and "already registered" in message_of(e)
    for bad in ["relative", "/", "/proc/x", "/srv/www"]:
        with pytest.raises(ClientError) as e:
            ow.update_volume(VolumeId=volume_id, MountPoint=bad)
        assert code_of(e) == "ValidationException", bad
    with pytest.raises(ClientError) as e:
        ow.update_volume(VolumeId=volume_id, Name="n" * 129)
    assert code_of(e) == "ValidationException"
    ow.update_volume(VolumeId=volume_id, MountPoint="/data")
    with pytest.raises(ClientError) as e:
        ow.assign_volume(VolumeId=volume_id, InstanceId=foreign)
    assert code_of(e) == "ValidationException" and "registered with stack" in message_of(e)
    with pytest.raises(ClientError) as e:
        ow.assign_volume(VolumeId="00000000-0000-0000-0000-000000000000", InstanceId=a)
    assert code_of(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ow.unassign_volume(VolumeId=volume_id)
    assert code_of(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ow.describe_volumes()
    assert code_of(e) == "ValidationException"
    # DeleteInstance with DeleteVolumes deletes its volumes, data and all.
    ow.assign_volume(VolumeId=volume_id, InstanceId=a)
    ow.delete_instance(InstanceId=a, DeleteVolumes=True)
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(VolumeIds=[vid])
    assert code_of(e) == "InvalidVolume.NotFound"
    assert ow.describe_volumes(StackId=sid)["Volumes"] == []


def test_raid_arrays_are_refused_without_md_and_none_are_described(ow):
    sid = ow.create_stack(**stack_params(Name=unique("raid")))["StackId"]
    raid = [{"MountPoint": "/data", "NumberOfDisks": 2, "Size": 20, "RaidLevel": 0, "VolumeType": "gp2"}]
    with pytest.raises(ClientError) as e:
        ow.create_layer(StackId=sid, Type="custom", Name="db", Shortname="db", VolumeConfigurations=raid)
    assert code_of(e) == "ValidationException" and "RaidLevel 0" in message_of(e)
    if not os.path.exists("/proc/mdstat"):
        assert "no md (software RAID) support" in message_of(e)
    one = [{"MountPoint": "/data", "NumberOfDisks": 1, "Size": 1, "VolumeType": "gp2"}]
    lid = ow.create_layer(StackId=sid, Type="custom", Name="db", Shortname="db", VolumeConfigurations=one)["LayerId"]
    assert ow.describe_layers(LayerIds=[lid])["Layers"][0]["VolumeConfigurations"][0]["MountPoint"] == "/data"
    assert ow.describe_raid_arrays(StackId=sid)["RaidArrays"] == []
    with pytest.raises(ClientError) as e:
        ow.describe_raid_arrays(RaidArrayIds=["00000000-0000-0000-0000-000000000000"])
    assert code_of(e) == "ResourceNotFoundException"


# ---- refusals: online instances, unknown IDs, other stacks ----------------------------------------------

UNKNOWN = "00000000-0000-0000-0000-0000000000aa"


def delete_stack(ow, sid):
    for inst in ow.describe_instances(StackId=sid)["Instances"]:
        ow.delete_instance(InstanceId=inst["InstanceId"])
    for layer in ow.describe_layers(StackId=sid)["Layers"]:
        ow.delete_layer(LayerId=layer["LayerId"])
    ow.delete_stack(StackId=sid)


def wait_stopped(ow, iid, seconds=30.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if ow.describe_instances(InstanceIds=[iid])["Instances"][0]["Status"] == "stopped":
            return
        time.sleep(0.2)
    raise AssertionError(f"instance {iid} did not stop")


def test_a_volume_is_assigned_moved_and_taken_off_only_while_its_instance_is_stopped(ow, ec2):
    sid, _, (a, b) = stack_with_instances(ow)
    vid = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    volume_id = ow.register_volume(StackId=sid, Ec2VolumeId=vid)["VolumeId"]
    ow.update_volume(VolumeId=volume_id, MountPoint="/data")
    ow.start_instance(InstanceId=a)
    with pytest.raises(ClientError) as e:
        ow.assign_volume(VolumeId=volume_id, InstanceId=a)
    assert code_of(e) == "ValidationException" and "only while its instance is stopped" in message_of(e)
    assert a in message_of(e)
    ow.stop_instance(InstanceId=a, Force=True)
    wait_stopped(ow, a)
    ow.assign_volume(VolumeId=volume_id, InstanceId=a)
    ow.assign_volume(VolumeId=volume_id, InstanceId=a)  # again: nothing changes
    assert [v["Device"] for v in ow.describe_volumes(InstanceId=a)["Volumes"]] == ["/dev/sdf"]
    # Started, its volume stays where it is: no unassign, no new mount point, no deregistration.
    ow.start_instance(InstanceId=a)
    for call in (lambda: ow.unassign_volume(VolumeId=volume_id),
                 lambda: ow.update_volume(VolumeId=volume_id, MountPoint="/elsewhere"),
                 lambda: ow.deregister_volume(VolumeId=volume_id)):
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == "ValidationException" and "stopped" in message_of(e)
    ow.update_volume(VolumeId=volume_id, Name="renamed while online")  # a name is no mount
    ow.stop_instance(InstanceId=a, Force=True)
    wait_stopped(ow, a)
    # A second volume at the same mount point of the same instance is refused; elsewhere it is /dev/sdg.
    vid2 = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    second = ow.register_volume(StackId=sid, Ec2VolumeId=vid2)["VolumeId"]
    ow.update_volume(VolumeId=second, MountPoint="/data")
    with pytest.raises(ClientError) as e:
        ow.assign_volume(VolumeId=second, InstanceId=a)
    assert code_of(e) == "ValidationException" and f"already has volume {volume_id} at /data" in message_of(e)
    ow.update_volume(VolumeId=second, MountPoint="/data2")
    ow.assign_volume(VolumeId=second, InstanceId=a)
    assert sorted(v["Device"] for v in ow.describe_volumes(InstanceId=a)["Volumes"]) == ["/dev/sdf", "/dev/sdg"]
    with pytest.raises(ClientError) as e:
        ow.update_volume(VolumeId=second, MountPoint="/data")
    assert code_of(e) == "ValidationException" and "already has volume" in message_of(e)
    # DeleteInstance without DeleteVolumes: the volumes stay registered, unassigned, data and all.
    ow.delete_instance(InstanceId=a)
    left = ow.describe_volumes(StackId=sid)["Volumes"]
    assert sorted(v["VolumeId"] for v in left) == sorted([volume_id, second])
    assert all("InstanceId" not in v and v["Status"] == "available" for v in left)
    assert {v["State"] for v in ec2.describe_volumes(VolumeIds=[vid, vid2])["Volumes"]} == {"available"}
    # DeleteStack deregisters them; the EC2 volumes outlive it.
    ow.delete_instance(InstanceId=b)
    delete_stack(ow, sid)
    assert len(ec2.describe_volumes(VolumeIds=[vid, vid2])["Volumes"]) == 2
    reused, _, _ = stack_with_instances(ow, count=0)
    assert ow.register_volume(StackId=reused, Ec2VolumeId=vid)["VolumeId"]
    ow.deregister_volume(VolumeId=ow.describe_volumes(StackId=reused)["Volumes"][0]["VolumeId"])
    for v in (vid, vid2):
        ec2.delete_volume(VolumeId=v)


def test_an_elastic_ip_of_a_deleted_instance_or_stack_stays_allocated(ow, ec2):
    sid, _, (a, _) = stack_with_instances(ow)
    ip = ec2.allocate_address(Domain="vpc")["PublicIp"]
    ow.register_elastic_ip(ElasticIp=ip, StackId=sid)
    ow.associate_elastic_ip(ElasticIp=ip, InstanceId=a)
    ow.associate_elastic_ip(ElasticIp=ip, InstanceId=a)  # again: nothing changes
    ow.delete_instance(InstanceId=a)
    assert ow.describe_elastic_ips(StackId=sid)["ElasticIps"] == [
        {"Ip": ip, "Domain": "vpc", "Region": REGION}]
    assert "AssociationId" not in ec2.describe_addresses(PublicIps=[ip])["Addresses"][0]
    ow.update_elastic_ip(ElasticIp=ip, Name="kept")
    delete_stack(ow, sid)
    with pytest.raises(ClientError) as e:
        ow.describe_elastic_ips(Ips=[ip])
    assert code_of(e) == "ResourceNotFoundException" and "not registered" in message_of(e)
    ec2.release_address(PublicIp=ip)


@pytest.mark.parametrize("call", [
    "register_elastic_ip", "associate_elastic_ip", "disassociate_elastic_ip", "update_elastic_ip",
    "deregister_elastic_ip", "describe_elastic_ips",
])
def test_an_address_never_allocated_or_outside_the_pool_is_unknown(ow, call):
    sid, _, (a, _) = stack_with_instances(ow)
    for ip in ("10.217.255.249", "192.0.2.7"):
        args = {"register_elastic_ip": {"ElasticIp": ip, "StackId": sid},
                "associate_elastic_ip": {"ElasticIp": ip, "InstanceId": a},
                "describe_elastic_ips": {"Ips": [ip]}}.get(call, {"ElasticIp": ip})
        with pytest.raises(ClientError) as e:
            getattr(ow, call)(**args)
        assert code_of(e) == "ResourceNotFoundException" and ip in message_of(e), (call, message_of(e))


def test_an_allocated_address_not_registered_is_refused_by_what_needs_a_stack(ow, ec2):
    sid, _, (a, _) = stack_with_instances(ow)
    ip = ec2.allocate_address(Domain="vpc")["PublicIp"]
    for call, args in [("associate_elastic_ip", {"InstanceId": a}), ("disassociate_elastic_ip", {}),
                       ("update_elastic_ip", {"Name": "n"}), ("deregister_elastic_ip", {})]:
        with pytest.raises(ClientError) as e:
            getattr(ow, call)(ElasticIp=ip, **args)
        assert code_of(e) == "ResourceNotFoundException" and "not registered with any stack" in message_of(e), call
    with pytest.raises(ClientError) as e:
        ow.register_elastic_ip(ElasticIp=ip, StackId=UNKNOWN)
    assert code_of(e) == "ResourceNotFoundException" and UNKNOWN in message_of(e)
    with pytest.raises(ClientError) as e:
        ow.describe_elastic_ips(StackId=UNKNOWN)
    assert code_of(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ow.describe_elastic_ips(InstanceId=UNKNOWN)
    assert code_of(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ow.describe_elastic_ips(StackId=sid, InstanceId=a)
    assert code_of(e) == "ValidationException"
    ec2.release_address(PublicIp=ip)


def test_unknown_volumes_instances_and_stacks(ow, ec2):
    sid, _, (a, _) = stack_with_instances(ow)
    for call, args in [("update_volume", {"Name": "n"}), ("assign_volume", {"InstanceId": a}),
                       ("unassign_volume", {}), ("deregister_volume", {})]:
        with pytest.raises(ClientError) as e:
            getattr(ow, call)(VolumeId=UNKNOWN, **args)
        assert code_of(e) == "ResourceNotFoundException" and UNKNOWN in message_of(e), call
    with pytest.raises(ClientError) as e:
        ow.describe_volumes(VolumeIds=[UNKNOWN])
    assert code_of(e) == "ResourceNotFoundException" and UNKNOWN in message_of(e)
    for by in ({"StackId": UNKNOWN}, {"InstanceId": UNKNOWN}, {"RaidArrayId": UNKNOWN}):
        with pytest.raises(ClientError) as e:
            ow.describe_volumes(**by)
        assert code_of(e) == "ResourceNotFoundException", by
    with pytest.raises(ClientError) as e:
        ow.describe_volumes(StackId=sid, InstanceId=a)
    assert code_of(e) == "ValidationException"
    vid = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    with pytest.raises(ClientError) as e:
        ow.register_volume(StackId=UNKNOWN, Ec2VolumeId=vid)
    assert code_of(e) == "ResourceNotFoundException" and UNKNOWN in message_of(e)
    volume_id = ow.register_volume(StackId=sid, Ec2VolumeId=vid)["VolumeId"]
    with pytest.raises(ClientError) as e:
        ow.register_volume(StackId=sid, Ec2VolumeId=vid)
    assert code_of(e) == "ValidationException" and f"already registered with this stack as volume {volume_id}" in message_of(e)
    ow.update_volume(VolumeId=volume_id, MountPoint="/data")
    with pytest.raises(ClientError) as e:
        ow.assign_volume(VolumeId=volume_id, InstanceId=UNKNOWN)
    assert code_of(e) == "ResourceNotFoundException" and UNKNOWN in message_of(e)
    # DescribeRaidArrays: none on a known instance, an unknown one refused, one selector at most.
    assert ow.describe_raid_arrays(InstanceId=a)["RaidArrays"] == []
    with pytest.raises(ClientError) as e:
        ow.describe_raid_arrays(InstanceId=UNKNOWN)
    assert code_of(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ow.describe_raid_arrays()
    assert code_of(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ow.describe_raid_arrays(StackId=sid, InstanceId=a)
    assert code_of(e) == "ValidationException"
    ow.deregister_volume(VolumeId=volume_id)
    ec2.delete_volume(VolumeId=vid)


def test_ec2_unknown_addresses(ec2):
    for args, code in [({"PublicIps": ["10.217.255.248"]}, "InvalidAddress.NotFound"),
                       ({"AllocationIds": ["eipalloc-0123456789abcdef0"]}, "InvalidAllocationID.NotFound")]:
        with pytest.raises(ClientError) as e:
            ec2.describe_addresses(**args)
        assert code_of(e) == code and status_of(e) == 400
    with pytest.raises(ClientError) as e:
        ec2.release_address(PublicIp="10.217.255.248")
    assert code_of(e) == "InvalidAddress.NotFound" and "10.217.255.248" in message_of(e)
    with pytest.raises(ClientError) as e:
        ec2.release_address()
    assert code_of(e) == "MissingParameter"


def test_a_raid_level_is_refused_by_update_layer_too(ow):
    sid = ow.create_stack(**stack_params(Name=unique("raid")))["StackId"]
    lid = ow.create_layer(StackId=sid, Type="custom", Name="db", Shortname="db")["LayerId"]
    raid = [{"MountPoint": "/data", "NumberOfDisks": 2, "Size": 2, "RaidLevel": 1}]
    with pytest.raises(ClientError) as e:
        ow.update_layer(LayerId=lid, VolumeConfigurations=raid)
    assert code_of(e) == "ValidationException" and "RaidLevel 1" in message_of(e)
    assert ow.describe_layers(LayerIds=[lid])["Layers"][0].get("VolumeConfigurations", []) == []
    # Several disks without a RAID level cannot be one mount point either.
    with pytest.raises(ClientError) as e:
        ow.update_layer(LayerId=lid, VolumeConfigurations=[{"MountPoint": "/data", "NumberOfDisks": 2, "Size": 2}])
    assert code_of(e) == "ValidationException"


def test_a_registered_instance_takes_neither_an_elastic_ip_nor_a_volume(ow, ec2):
    # The server runs no machine of its own for it: there is nothing to put the address or the
    # disk on.
    sid, _, _ = stack_with_instances(ow, count=0)
    iid = ow.register_instance(StackId=sid, Hostname="edge-1", PrivateIp="10.1.2.3")["InstanceId"]
    ip = ec2.allocate_address(Domain="vpc")["PublicIp"]
    ow.register_elastic_ip(ElasticIp=ip, StackId=sid)
    with pytest.raises(ClientError) as e:
        ow.associate_elastic_ip(ElasticIp=ip, InstanceId=iid)
    assert code_of(e) == "ValidationException" and "registered instance" in message_of(e)
    vid = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    volume_id = ow.register_volume(StackId=sid, Ec2VolumeId=vid)["VolumeId"]
    ow.update_volume(VolumeId=volume_id, MountPoint="/data")
    with pytest.raises(ClientError) as e:
        ow.assign_volume(VolumeId=volume_id, InstanceId=iid)
    assert code_of(e) == "ValidationException" and "registered instance" in message_of(e)
    ow.deregister_instance(InstanceId=iid)
    ow.deregister_volume(VolumeId=volume_id)
    ec2.delete_volume(VolumeId=vid)
    ow.deregister_elastic_ip(ElasticIp=ip)
    ec2.release_address(PublicIp=ip)
