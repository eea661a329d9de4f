"""Issue 14 end to end, Elastic IPs and volumes: an Elastic IP answers from the instance it is
associated with and from the new one after a move (and after a heal, a stop and a start, a server
restart); a file written on a volume by one instance is read by another after the volume moves; a
layer's VolumeConfigurations mount a fresh XFS volume on each new instance. Driven through boto3
(`ec2` and `opsworks` on the server's endpoint), HTTP, and `opsworks exec` to look inside; nothing
(loop device, mount, address) is left behind."""

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from conftest import AKID, SECRET, client_for, eventually, http_get, make_repo, running_server

FAST = {"Delay": 1, "MaxAttempts": 150}
HEALING_TIMEOUT = 4

SETUP = '''
directory("/srv/who", mode = "0755")
file("/srv/who/index.html", content = node["hostname"] + "\\n")
service("who-http",
    command = "python3 -m http.server 80 --bind 0.0.0.0 --directory /srv/who",
    action = ["enable", "start"])
'''

CONFIGURE = '''
eip = node["opsworks"]["instance"]["elastic_ip"]
file("/srv/who/eip.txt", content = (eip or "none") + "\\n")
'''


def ec2_for(srv):
    return boto3.client("ec2", endpoint_url=srv.endpoint, region_name="us-east-1", aws_access_key_id=AKID,
                        aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))


def inside(srv, instance_id, script):
    """Runs a shell script inside a running instance (`opsworks exec`); its stdout, stripped."""
    out = subprocess.run([os.environ["OPSWORKS_BIN"], "exec", "--data-dir", str(srv.data_dir), instance_id, "--",
                          "/bin/sh", "-c", script], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, f"{script}: {out.stderr}"
    return out.stdout.strip()


def answer(url, timeout=2):
    try:
        return http_get(url, timeout=timeout).strip()
    except OSError:
        return None


def time_until(url, body, seconds=30):
    """Seconds until GET `url` answers `body`."""
    started = time.monotonic()
    eventually(lambda: answer(url, timeout=1) == body, seconds=seconds, every=0.02, what=f"{url} to answer {body}")
    return time.monotonic() - started


def loop_devices_of(data_dir: Path):
    """The host's loop devices backed by a file of this data dir."""
    found = []
    for dev in Path("/sys/block").glob("loop*"):
        backing = dev / "loop" / "backing_file"
        if backing.exists() and str(data_dir.resolve()) in backing.read_text():
            found.append(dev.name)
    return found


def lease_owner(ip):
    path = Path("/run/opsworks-sandbox/opsw0.leases") / ip
    return path.read_text() if path.exists() else None


def new_stack(c, git_http, name, **layer):
    stack = c.create_stack(
        Name=name, Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
        UseCustomCookbooks=True,
        CustomCookbooksSource={"Type": "git", "Url": f"{git_http}/resources-cookbooks/.git", "Revision": "main"},
    )["StackId"]
    lid = c.create_layer(StackId=stack, Type="custom", Name="Who", Shortname="who",
                         CustomRecipes={"Setup": ["who::setup"], "Configure": ["who::configure"]}, **layer)["LayerId"]
    return stack, lid


def start(c, ids):
    for i in ids:
        c.start_instance(InstanceId=i)
    c.get_waiter("instance_online").wait(InstanceIds=ids, WaiterConfig=FAST)


def stop(c, ids):
    for i in ids:
        c.stop_instance(InstanceId=i)
    c.get_waiter("instance_stopped").wait(InstanceIds=ids, WaiterConfig=FAST)


@pytest.fixture(scope="module")
def cookbooks(workdir):
    return make_repo(workdir / "resources-cookbooks", {
        "who/metadata.json": json.dumps({"name": "who", "version": "1.0.0"}),
        "who/recipes/setup.star": SETUP,
        "who/recipes/configure.star": CONFIGURE,
    })


@pytest.fixture(scope="module")
def eip_server(workdir, cookbooks):
    yield from running_server(workdir, "eip", ["--healing-timeout", str(HEALING_TIMEOUT)])


@pytest.fixture(scope="module")
def vol_server(workdir, cookbooks):
    yield from running_server(workdir, "volumes")


def test_an_elastic_ip_answers_from_its_instance_and_follows_it(eip_server, git_http):
    c, ec2 = client_for(eip_server), ec2_for(eip_server)
    stack, layer = new_stack(c, git_http, "eip", EnableAutoHealing=True)
    a, b = [c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro",
                              RootDeviceType="ebs")["InstanceId"] for _ in range(2)]
    start(c, [a, b])
    alloc = ec2.allocate_address(Domain="vpc")
    ip = alloc["PublicIp"]
    assert lease_owner(ip).startswith(str(eip_server.data_dir.resolve())), "reserved on the host"
    url = f"http://{ip}/"
    assert answer(url, timeout=1) is None, "nothing answers an unassociated address"
    c.register_elastic_ip(ElasticIp=ip, StackId=stack)
    ha, hb = (c.describe_instances(InstanceIds=[i])["Instances"][0]["Hostname"] for i in (a, b))

    configures = len([x for x in c.describe_commands(InstanceId=a)["Commands"] if x["Type"] == "configure"])
    c.associate_elastic_ip(ElasticIp=ip, InstanceId=a)
    first = time_until(url, ha)
    print(f"\nassociate -> answering from {ha}: {first * 1000:.0f} ms")
    inst = c.describe_instances(InstanceIds=[a])["Instances"][0]
    assert inst["ElasticIp"] == ip and inst["PublicIp"] == ip
    # The association ran Configure, whose stack configuration names the address.
    eventually(lambda: answer(f"http://{inst['PrivateIp']}/eip.txt") == ip, seconds=60, what="Configure with the EIP")
    assert len([x for x in c.describe_commands(InstanceId=a)["Commands"] if x["Type"] == "configure"]) > configures

    c.associate_elastic_ip(ElasticIp=ip, InstanceId=b)
    moved = time_until(url, hb)
    print(f"move {ha} -> {hb}: answering from the new holder after {moved * 1000:.0f} ms")
    assert inside(eip_server, a, "ip -4 -o addr show eth0 | grep -c ' inet ' ") == "1", "A lost the address"
    assert ip in inside(eip_server, b, "ip -4 -o addr show eth0")
    ia, ib = c.describe_instances(InstanceIds=[a, b])["Instances"]
    assert "ElasticIp" not in ia and ia["PublicIp"] == ia["PrivateIp"]
    assert ib["ElasticIp"] == ip and ib["PublicIp"] == ip

    # An auto-healed instance keeps its address: its agent killed, it is stopped and started again.
    killed = kill_agent(b)
    eventually(lambda: any(e["Type"] == "auto_healing" for e in c.describe_service_errors(InstanceId=b)["ServiceErrors"]),
               seconds=60, what="the heal to start")
    eventually(lambda: c.describe_instances(InstanceIds=[b])["Instances"][0]["Status"] == "online", seconds=150,
               what="the healed instance to be online")
    healed = time_until(url, hb, seconds=60)
    print(f"after the heal of {hb} (agent pid {killed} killed): answering again within {healed * 1000:.0f} ms of online")
    assert c.describe_instances(InstanceIds=[b])["Instances"][0]["ElasticIp"] == ip

    # Stopped, it stops answering; started again, it answers from the same instance.
    stop(c, [b])
    assert answer(url, timeout=1) is None
    start(c, [b])
    time_until(url, hb)

    # A server restart changes nothing; the addresses are put back where the store says.
    inside(eip_server, a, f"ip addr add {ip}/32 dev eth0")  # a stray copy a crash could leave
    eip_server.stop()
    eip_server.start()
    c = client_for(eip_server)
    eventually(lambda: ip not in inside(eip_server, a, "ip -4 -o addr show eth0"), seconds=30,
               what="the stray copy to be removed at start")
    time_until(url, hb)

    c.disassociate_elastic_ip(ElasticIp=ip)
    eventually(lambda: answer(url, timeout=1) is None, seconds=10, what="the address to go quiet")
    c.associate_elastic_ip(ElasticIp=ip, InstanceId=a)
    time_until(url, ha)
    stop(c, [a, b])
    c.delete_instance(InstanceId=a, DeleteElasticIp=True)
    c.delete_instance(InstanceId=b)
    assert ec2.describe_addresses()["Addresses"] == []
    assert lease_owner(ip) is None, "the address went back to the host"


def kill_agent(instance_id):
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


def test_a_volume_keeps_its_data_and_moves_to_another_instance(vol_server, git_http):
    c, ec2 = client_for(vol_server), ec2_for(vol_server)
    stack, layer = new_stack(c, git_http, "volumes")
    a, b = [c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro",
                              RootDeviceType="instance-store")["InstanceId"] for _ in range(2)]
    vid = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, VolumeType="gp2")["VolumeId"]
    volume = c.register_volume(StackId=stack, Ec2VolumeId=vid)["VolumeId"]
    c.update_volume(VolumeId=volume, Name="shared", MountPoint="/srv/data")
    c.assign_volume(VolumeId=volume, InstanceId=a)
    start(c, [a])
    assert inside(vol_server, a, "stat -f -c %T /srv/data") == "xfs"
    inside(vol_server, a, "echo written-on-$(hostname) > /srv/data/note && sync")
    note = inside(vol_server, a, "cat /srv/data/note")
    assert loop_devices_of(vol_server.data_dir), "a loop device while mounted"
    with pytest.raises(Exception) as refused:
        c.unassign_volume(VolumeId=volume)
    assert "stopped" in str(refused.value)

    # Stopped and started (a fresh instance-store root), the data is still there.
    stop(c, [a])
    assert loop_devices_of(vol_server.data_dir) == [], "a stopped instance holds no loop device"
    start(c, [a])
    assert inside(vol_server, a, "cat /srv/data/note") == note
    stop(c, [a])

    # Moved to B.
    c.unassign_volume(VolumeId=volume)
    c.assign_volume(VolumeId=volume, InstanceId=b)
    start(c, [b])
    assert inside(vol_server, b, "cat /srv/data/note") == note
    inside(vol_server, b, "echo and-on-$(hostname) >> /srv/data/note")
    described = c.describe_volumes(InstanceId=b)["Volumes"][0]
    assert described["Status"] == "in-use" and described["MountPoint"] == "/srv/data"

    # A server restart leaves the running instance's volume mounted.
    vol_server.stop()
    vol_server.start()
    c = client_for(vol_server)
    assert inside(vol_server, b, "cat /srv/data/note").splitlines() == [note, f"and-on-{inside(vol_server, b, 'hostname')}"]
    assert len(loop_devices_of(vol_server.data_dir)) == 1
    stop(c, [b])
    assert loop_devices_of(vol_server.data_dir) == []
    c.delete_instance(InstanceId=a)
    c.delete_instance(InstanceId=b, DeleteVolumes=True)
    with pytest.raises(Exception):
        ec2.describe_volumes(VolumeIds=[vid])
    assert list((vol_server.data_dir / "volumes").glob("*.img")) == []


def test_a_layers_volume_configurations_mount_a_fresh_volume_on_each_new_instance(vol_server, git_http):
    c, ec2 = client_for(vol_server), ec2_for(vol_server)
    stack, layer = new_stack(c, git_http, "layer-volumes", VolumeConfigurations=[
        {"MountPoint": "/srv/vc", "NumberOfDisks": 1, "Size": 1, "VolumeType": "gp2"}])
    ids = [c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro")["InstanceId"] for _ in range(2)]
    start(c, ids)
    ec2_ids = set()
    for i in ids:
        vols = c.describe_volumes(InstanceId=i)["Volumes"]
        assert len(vols) == 1 and vols[0]["MountPoint"] == "/srv/vc" and vols[0]["Status"] == "in-use"
        ec2_ids.add(vols[0]["Ec2VolumeId"])
        assert inside(vol_server, i, "stat -f -c %T /srv/vc") == "xfs"
        assert inside(vol_server, i, "ls -A /srv/vc | grep -v '^$' | wc -l") == "0", "a fresh file system"
    assert len(ec2_ids) == 2, "one volume each"
    inside(vol_server, ids[0], "touch /srv/vc/only-mine")
    assert inside(vol_server, ids[1], "test -e /srv/vc/only-mine && echo yes || echo no") == "no"
    # A second boot reuses the volume rather than making another.
    stop(c, ids[:1])
    start(c, ids[:1])
    assert inside(vol_server, ids[0], "ls /srv/vc") == "only-mine"
    assert len(c.describe_volumes(StackId=stack)["Volumes"]) == 2
    stop(c, ids)
    for i in ids:
        c.delete_instance(InstanceId=i, DeleteVolumes=True)
    assert c.describe_volumes(StackId=stack)["Volumes"] == []
    assert [v for v in ec2.describe_volumes()["Volumes"] if v["VolumeId"] in ec2_ids] == []
    assert loop_devices_of(vol_server.data_dir) == []


def leases_of(data_dir: Path):
    """The host's address leases held by machines of this data dir."""
    root = Path("/run/opsworks-sandbox/opsw0.leases")
    mine = str(data_dir.resolve())
    return [p.name for p in root.iterdir() if p.is_file() and p.read_text().startswith(mine)] if root.exists() else []


def agents_of(instance_id):
    """Pids of processes whose command line names the instance (its agent, its init)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if instance_id.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                    found.append(int(pid))
            except OSError:
                pass
    return found


def test_a_boot_whose_volume_cannot_be_mounted_fails_and_leaves_nothing_behind(vol_server, git_http):
    c, ec2 = client_for(vol_server), ec2_for(vol_server)
    stack, layer = new_stack(c, git_http, "broken-volume")
    a = c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro")["InstanceId"]
    vid = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    volume = c.register_volume(StackId=stack, Ec2VolumeId=vid)["VolumeId"]
    c.update_volume(VolumeId=volume, MountPoint="/srv/broken")
    c.assign_volume(VolumeId=volume, InstanceId=a)
    # Its XFS superblock overwritten, the image is attached but cannot be mounted.
    image = vol_server.data_dir / "volumes" / f"{vid}.img"
    with open(image, "r+b") as f:
        f.write(b"\0" * 65536)
    c.start_instance(InstanceId=a)
    eventually(lambda: c.describe_instances(InstanceIds=[a])["Instances"][0]["Status"] == "start_failed",
               seconds=120, what="the start to fail")
    errors = [e["Message"] for e in c.describe_service_errors(InstanceId=a)["ServiceErrors"]]
    assert any("/srv/broken" in m or vid in m for m in errors), errors
    # Nothing half-made: no loop device, no process of the machine, no mount of its data dir. (Its
    # private address stays leased, as a stopped instance's does, until the instance is deleted.)
    eventually(lambda: loop_devices_of(vol_server.data_dir) == [], seconds=10, what="the loop device to go")
    assert agents_of(a) == []
    assert not [line for line in Path("/proc/mounts").read_text().splitlines()
                if str(vol_server.data_dir.resolve()) in line]
    with open(image, "r+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no holder left: the lock is free at once

    # The failure blocks nothing: stopped, the volume comes off, and the instance starts without it.
    stop(c, [a])
    c.unassign_volume(VolumeId=volume)
    start(c, [a])
    assert inside(vol_server, a, "test -e /srv/broken && echo yes || echo no") == "no"
    stop(c, [a])
    c.deregister_volume(VolumeId=volume)
    ec2.delete_volume(VolumeId=vid)
    assert not image.exists()
    c.delete_instance(InstanceId=a)
    assert loop_devices_of(vol_server.data_dir) == [] and leases_of(vol_server.data_dir) == []
