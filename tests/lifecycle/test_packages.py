"""Package installs inside local instances reach the package mirrors the host reaches: machines have
no NAT, so apt inside them goes through the server's proxy on the machines' gateway. A layer's
`Packages` are installed at Setup from the mirror, for real."""

import subprocess

import pytest

from conftest import client_for, http_get

WAIT = {"Delay": 1, "MaxAttempts": 300}

# Small, with no dependencies a Debian host lacks, and not installed on the host (so the machine
# must fetch it: the host's copy would show through the machine's copy-on-write view otherwise).
PACKAGE = "sl"


def test_a_layer_package_is_installed_from_the_mirror(server):
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PACKAGE], capture_output=True, text=True)
    if "install ok installed" in installed.stdout:
        pytest.fail(f"{PACKAGE} is installed on this host; the test needs a package the host lacks")
    c = client_for(server)
    sid = c.create_stack(
        Name="packages", Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
    )["StackId"]
    lid = c.create_layer(StackId=sid, Type="custom", Name="Tools", Shortname="tools", Packages=[PACKAGE])["LayerId"]
    iid = c.create_instance(StackId=sid, LayerIds=[lid], InstanceType="t3.micro")["InstanceId"]
    try:
        c.start_instance(InstanceId=iid)
        c.get_waiter("instance_online").wait(InstanceIds=[iid], WaiterConfig=WAIT)
        setup = next(x for x in c.describe_commands(InstanceId=iid)["Commands"] if x["Type"] == "setup")
        assert setup["Status"] == "successful"
        # The package really landed in the machine: its program is in the machine's own layer of
        # its copy-on-write root, and not on the host.
        upper = server.data_dir / "machines" / "machines" / iid / "upper"
        assert (upper / "usr/games/sl").is_file(), sorted(p.name for p in (upper / "usr").glob("*"))
        assert subprocess.run(["dpkg-query", "-W", PACKAGE], capture_output=True).returncode != 0
        assert PACKAGE in http_get(setup["LogUrl"], timeout=10)
    finally:
        c.stop_instance(InstanceId=iid, Force=True)
        c.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig=WAIT)
