"""Classic ELB on the server's own endpoint (`aws elb`, boto3's `elb` client) and OpsWorks'
AttachElasticLoadBalancer / DetachElasticLoadBalancer / DescribeElasticLoadBalancers, against a real
server whose load balancers are real HAProxy processes in machines on the opsw0 bridge.

Needs root (the load balancers run in local machines): run under
`flock /var/tmp/opsworks-instances.lock`. Every load balancer made here is deleted again, and the
test checks its address stops answering."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import harness
from harness import ACCESS_KEY, REGION, SECRET_KEY


def elb_client(endpoint):
    session = boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION)
    return session.client("elb", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}, read_timeout=120))


def code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def answers(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture(scope="module")
def lb_server(workdir):
    """A server of this module's own, running machines (root only)."""
    if os.geteuid() != 0:
        pytest.fail("test_elb needs root: load balancers run in local machines on the opsw0 bridge")
    os.environ["OPSWORKS_LOCAL_INSTANCES"] = "true"
    try:
        srv = harness.Server(workdir / "elb-data", workdir / "elb-server.log")
        srv.start()
    finally:
        os.environ.pop("OPSWORKS_LOCAL_INSTANCES", None)
    yield srv
    elb = elb_client(srv.endpoint)
    for lb in elb.describe_load_balancers()["LoadBalancerDescriptions"]:
        elb.delete_load_balancer(LoadBalancerName=lb["LoadBalancerName"])
    alive = srv.alive()
    srv.stop()
    assert alive, f"the server died:\n{srv.output()[-4000:]}"
    assert "panicked at" not in srv.output()


@pytest.fixture(scope="module")
def elb(lb_server):
    return elb_client(lb_server.endpoint)


@pytest.fixture(scope="module")
def ows(lb_server):
    return harness.boto3_client(lb_server.endpoint)


@pytest.fixture(scope="module")
def web(elb):
    """A load balancer with an HTTP and a TCP listener."""
    out = elb.create_load_balancer(
        LoadBalancerName="web",
        Listeners=[
            {"Protocol": "HTTP", "LoadBalancerPort": 80, "InstanceProtocol": "HTTP", "InstancePort": 8080},
            {"Protocol": "TCP", "LoadBalancerPort": 5000, "InstancePort": 5001},
        ],
        AvailabilityZones=["us-east-1a"],
    )
    return out["DNSName"]


def test_create_gives_an_address_on_the_bridge_answering_on_every_listener(elb, web):
    assert web.startswith("10.217."), web
    assert answers(web, 80) and answers(web, 5000)
    # No instance yet: HAProxy answers, and has nobody to send the request to.
    assert http_status(f"http://{web}/") == 503
    d = elb.describe_load_balancers(LoadBalancerNames=["web"])["LoadBalancerDescriptions"][0]
    assert d["DNSName"] == web
    listeners = sorted((x["Listener"] for x in d["ListenerDescriptions"]), key=lambda l: l["LoadBalancerPort"])
    assert listeners == [
        {"Protocol": "HTTP", "LoadBalancerPort": 80, "InstanceProtocol": "HTTP", "InstancePort": 8080},
        {"Protocol": "TCP", "LoadBalancerPort": 5000, "InstanceProtocol": "TCP", "InstancePort": 5001},
    ]
    assert d["HealthCheck"] == {"Target": "TCP:8080", "Interval": 30, "Timeout": 5,
                                "UnhealthyThreshold": 2, "HealthyThreshold": 10}
    assert d["Instances"] == [] and d["AvailabilityZones"] == ["us-east-1a"]
    assert d["Scheme"] == "internet-facing"
    assert d["CreatedTime"].year >= 2026


def test_create_refusals(elb, web):
    with pytest.raises(ClientError) as e:
        elb.create_load_balancer(LoadBalancerName="web",
                                 Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 81, "InstancePort": 80}])
    assert code(e) == "DuplicateLoadBalancerName"
    assert "web" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        elb.create_load_balancer(LoadBalancerName="-bad-",
                                 Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 81, "InstancePort": 80}])
    assert code(e) == "ValidationError"
    with pytest.raises(ClientError) as e:
        elb.create_load_balancer(LoadBalancerName="tls", Listeners=[
            {"Protocol": "HTTPS", "LoadBalancerPort": 443, "InstancePort": 80,
             "SSLCertificateId": "arn:aws:iam::123456789012:server-certificate/x"}])
    assert code(e) == "UnsupportedProtocol"
    with pytest.raises(ClientError) as e:
        elb.create_load_balancer(LoadBalancerName="twice", Listeners=[
            {"Protocol": "TCP", "LoadBalancerPort": 81, "InstancePort": 80},
            {"Protocol": "TCP", "LoadBalancerPort": 81, "InstancePort": 81}])
    assert code(e) == "InvalidConfigurationRequest"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(ClientError) as e:
        elb.create_load_balancer(LoadBalancerName="tagged", Tags=[{"Key": "k", "Value": "v"}],
                                 Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 81, "InstancePort": 80}])
    assert code(e) == "InvalidConfigurationRequest"
    names = [d["LoadBalancerName"] for d in elb.describe_load_balancers()["LoadBalancerDescriptions"]]
    assert "tagged" not in names and "tls" not in names and "twice" not in names and "-bad-" not in names


def test_unknown_load_balancers_are_refused_by_every_operation(elb, web):
    for call in (
        lambda: elb.describe_load_balancers(LoadBalancerNames=["nope"]),
        lambda: elb.configure_health_check(LoadBalancerName="nope", HealthCheck={
            "Target": "TCP:80", "Interval": 10, "Timeout": 5, "UnhealthyThreshold": 2, "HealthyThreshold": 2}),
        lambda: elb.describe_instance_health(LoadBalancerName="nope"),
        lambda: elb.register_instances_with_load_balancer(LoadBalancerName="nope", Instances=[{"InstanceId": "i-1"}]),
        lambda: elb.deregister_instances_from_load_balancer(LoadBalancerName="nope", Instances=[{"InstanceId": "i-1"}]),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == "LoadBalancerNotFound"
        assert e.value.response["Error"]["Message"] == "There is no ACTIVE Load Balancer named 'nope'"


def test_health_check_is_configured_and_checked(elb, web):
    hc = {"Target": "HTTP:8080/health", "Interval": 5, "Timeout": 2, "UnhealthyThreshold": 2, "HealthyThreshold": 3}
    assert elb.configure_health_check(LoadBalancerName="web", HealthCheck=hc)["HealthCheck"] == hc
    d = elb.describe_load_balancers(LoadBalancerNames=["web"])["LoadBalancerDescriptions"][0]
    assert d["HealthCheck"] == hc
    for bad in ({**hc, "Target": "HTTP:8080"}, {**hc, "Target": "UDP:53"}, {**hc, "Timeout": 5},
                {**hc, "Interval": 301}):
        with pytest.raises(ClientError) as e:
            elb.configure_health_check(LoadBalancerName="web", HealthCheck=bad)
        assert code(e) == "ValidationError", bad
    assert elb.describe_load_balancers(LoadBalancerNames=["web"])["LoadBalancerDescriptions"][0]["HealthCheck"] == hc
    # The load balancer still answers after the reload.
    assert answers(web, 80)


def test_instances_must_exist(elb, web):
    assert elb.describe_instance_health(LoadBalancerName="web")["InstanceStates"] == []
    with pytest.raises(ClientError) as e:
        elb.register_instances_with_load_balancer(LoadBalancerName="web", Instances=[{"InstanceId": "i-0123456789"}])
    assert code(e) == "InvalidInstance"
    with pytest.raises(ClientError) as e:
        elb.describe_instance_health(LoadBalancerName="web", Instances=[{"InstanceId": "i-0123456789"}])
    assert code(e) == "InvalidInstance"


def test_other_operations_are_not_supported_in_elbs_error_shape(elb, web):
    with pytest.raises(ClientError) as e:
        elb.describe_tags(LoadBalancerNames=["web"])
    assert code(e) == "UnsupportedOperation"
    assert "DescribeTags" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        elb.create_load_balancer_listeners(LoadBalancerName="web", Listeners=[
            {"Protocol": "TCP", "LoadBalancerPort": 81, "InstancePort": 80}])
    assert code(e) == "UnsupportedOperation"


def test_awscli_describes_load_balancers(lb_server, web):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION=REGION, AWS_MAX_ATTEMPTS="1", AWS_PAGER="")
    proc = subprocess.run([harness.which_aws(), "elb", "describe-load-balancers", "--load-balancer-names", "web",
                           "--endpoint-url", lb_server.endpoint, "--output", "json"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["LoadBalancerDescriptions"][0]["DNSName"] == web
    proc = subprocess.run([harness.which_aws(), "elb", "describe-load-balancers", "--load-balancer-names", "nope",
                           "--endpoint-url", lb_server.endpoint], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 255
    assert "An error occurred (LoadBalancerNotFound) when calling the DescribeLoadBalancers operation" in proc.stderr


def new_stack(ows, name):
    return ows.create_stack(**harness.stack_params(Name=name))["StackId"]


def new_layer(ows, stack, name):
    return ows.create_layer(StackId=stack, Type="custom", Name=name, Shortname=name)["LayerId"]


def test_opsworks_attaches_one_load_balancer_per_layer_and_one_layer_per_load_balancer(elb, ows, web):
    other = elb.create_load_balancer(LoadBalancerName="other", Listeners=[
        {"Protocol": "TCP", "LoadBalancerPort": 6000, "InstancePort": 6000}])["DNSName"]
    s1, s2 = new_stack(ows, "elb-one"), new_stack(ows, "elb-two")
    l1, l1b, l2 = new_layer(ows, s1, "front"), new_layer(ows, s1, "back"), new_layer(ows, s2, "front")

    ows.attach_elastic_load_balancer(ElasticLoadBalancerName="web", LayerId=l1)
    got = ows.describe_elastic_load_balancers(StackId=s1)["ElasticLoadBalancers"]
    assert got == [{
        "ElasticLoadBalancerName": "web", "Region": REGION, "DnsName": web, "StackId": s1, "LayerId": l1,
        "AvailabilityZones": ["us-east-1a"], "SubnetIds": [], "Ec2InstanceIds": [],
    }]
    assert ows.describe_elastic_load_balancers(LayerIds=[l1])["ElasticLoadBalancers"] == got
    assert ows.describe_elastic_load_balancers(LayerIds=[l1b])["ElasticLoadBalancers"] == []
    assert ows.describe_elastic_load_balancers(StackId=s2)["ElasticLoadBalancers"] == []

    refusals = [
        # A second load balancer on the layer.
        (dict(ElasticLoadBalancerName="other", LayerId=l1), "ValidationException", "at most one"),
        # The load balancer on a second layer of its stack, or of another stack.
        (dict(ElasticLoadBalancerName="web", LayerId=l1b), "ValidationException", "already attached"),
        (dict(ElasticLoadBalancerName="web", LayerId=l2), "ValidationException", "already attached"),
        (dict(ElasticLoadBalancerName="web", LayerId=l1), "ValidationException", "already attached"),
        (dict(ElasticLoadBalancerName="nope", LayerId=l1b), "ResourceNotFoundException", "nope"),
        (dict(ElasticLoadBalancerName="other", LayerId="00000000-0000-0000-0000-000000000000"),
         "ResourceNotFoundException", "layer"),
    ]
    for params, expected, words in refusals:
        with pytest.raises(ClientError) as e:
            ows.attach_elastic_load_balancer(**params)
        assert code(e) == expected, params
        assert words in e.value.response["Error"]["Message"], e.value.response["Error"]["Message"]

    for params in (dict(ElasticLoadBalancerName="other", LayerId=l1), dict(ElasticLoadBalancerName="web", LayerId=l2)):
        with pytest.raises(ClientError) as e:
            ows.detach_elastic_load_balancer(**params)
        assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ows.describe_elastic_load_balancers()
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ows.describe_elastic_load_balancers(StackId=s1, LayerIds=[l1])
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ows.describe_elastic_load_balancers(StackId="00000000-0000-0000-0000-000000000000")
    assert code(e) == "ResourceNotFoundException"

    ows.detach_elastic_load_balancer(ElasticLoadBalancerName="web", LayerId=l1)
    assert ows.describe_elastic_load_balancers(StackId=s1)["ElasticLoadBalancers"] == []
    # Once detached it may serve another stack's layer.
    ows.attach_elastic_load_balancer(ElasticLoadBalancerName="web", LayerId=l2)
    assert [x["LayerId"] for x in ows.describe_elastic_load_balancers(StackId=s2)["ElasticLoadBalancers"]] == [l2]
    ows.detach_elastic_load_balancer(ElasticLoadBalancerName="web", LayerId=l2)

    elb.delete_load_balancer(LoadBalancerName="other")
    assert not any(d["LoadBalancerName"] == "other" for d in elb.describe_load_balancers()["LoadBalancerDescriptions"])
    deadline = time.time() + 10
    while answers(other, 6000, timeout=0.5) and time.time() < deadline:
        time.sleep(0.2)
    assert not answers(other, 6000, timeout=0.5), "a deleted load balancer still answers"
    # Deleting what does not exist succeeds, as ELB's does.
    elb.delete_load_balancer(LoadBalancerName="other")


def test_a_server_without_machines_refuses_to_make_load_balancers(endpoint):
    with pytest.raises(ClientError) as e:
        elb_client(endpoint).create_load_balancer(
            LoadBalancerName="nomachines", Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}])
    assert code(e) == "InvalidConfigurationRequest"
    assert "runs no machines" in e.value.response["Error"]["Message"]
    assert elb_client(endpoint).describe_load_balancers()["LoadBalancerDescriptions"] == []


def test_load_balancers_outlive_a_restart_of_the_control_plane(workdir):
    """The load balancer keeps answering while its server is down, and the server adopts it again."""
    os.environ["OPSWORKS_LOCAL_INSTANCES"] = "true"
    srv = harness.Server(workdir / "elb-restart-data", workdir / "elb-restart.log")
    try:
        srv.start()
        dns = elb_client(srv.endpoint).create_load_balancer(LoadBalancerName="keep", Listeners=[
            {"Protocol": "TCP", "LoadBalancerPort": 7000, "InstancePort": 7000}])["DNSName"]
        srv.stop()
        assert answers(dns, 7000), "the load balancer stopped with its server"
        srv.start()
        elb = elb_client(srv.endpoint)
        assert elb.describe_load_balancers()["LoadBalancerDescriptions"][0]["DNSName"] == dns
        assert answers(dns, 7000)
        elb.configure_health_check(LoadBalancerName="keep", HealthCheck={
            "Target": "TCP:7000", "Interval": 6, "Timeout": 3, "UnhealthyThreshold": 3, "HealthyThreshold": 3})
        elb.delete_load_balancer(LoadBalancerName="keep")
        assert not answers(dns, 7000, timeout=0.5)
    finally:
        os.environ.pop("OPSWORKS_LOCAL_INSTANCES", None)
        srv.stop()
    assert "panicked at" not in srv.output()


def test_iam_users_need_elasticloadbalancing_actions(endpoint):
    import iam_helpers

    iam = iam_helpers.client("iam", endpoint)
    reader = iam_helpers.User(endpoint, iam, policy=iam_helpers.document(
        iam_helpers.allow("elasticloadbalancing:Describe*")))
    elb = reader.client("elb")
    assert elb.describe_load_balancers()["LoadBalancerDescriptions"] == []
    with pytest.raises(ClientError) as e:
        elb.create_load_balancer(LoadBalancerName="denied", Listeners=[
            {"Protocol": "TCP", "LoadBalancerPort": 81, "InstancePort": 80}])
    assert code(e) == "AccessDenied"
    assert "elasticloadbalancing:CreateLoadBalancer" in e.value.response["Error"]["Message"]
    nobody = iam_helpers.User(endpoint, iam)
    with pytest.raises(ClientError) as e:
        nobody.client("elb").describe_load_balancers()
    assert code(e) == "AccessDenied"
