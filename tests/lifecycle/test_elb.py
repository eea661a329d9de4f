"""A classic load balancer in front of an OpsWorks layer, end to end: `aws elb` makes it (HAProxy in
its own machine), AttachElasticLoadBalancer puts it in front of a nodejs-app layer, requests through
it reach every online instance of the layer, and while one instance stops — drained from the load
balancer before its Shutdown runs — no request fails. Driven only through boto3 and HTTP."""

import threading
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config

from conftest import AKID, SECRET, client_for, eventually, make_repo

WAIT = {"Delay": 1, "MaxAttempts": 400}

SERVER_JS = r'''// Test app of tests/lifecycle/test_elb.py: answers with its hostname; /slow takes 1.5 s.
const http = require("http");
const os = require("os");
const server = http.createServer((req, res) => {
  const reply = () => { res.writeHead(200, { "Content-Type": "text/plain" }); res.end(os.hostname() + "\n"); };
  if (req.url === "/slow") return setTimeout(reply, 1500);
  reply();
});
server.listen(Number(process.env.PORT));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
'''


def elb_for(srv):
    return boto3.client("elb", endpoint_url=srv.endpoint, region_name="us-east-1", aws_access_key_id=AKID,
                        aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}, read_timeout=120))


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode().strip()


def answers_http(url):
    try:
        get(url, timeout=3)
        return True
    except (urllib.error.URLError, OSError):
        return False


def hosts_behind(dns, n=20):
    return {get(f"http://{dns}/")[1] for _ in range(n)}


class Load:
    """Clients sending requests (a new connection each, some slow) through the load balancer until
    stopped, counting what failed."""

    def __init__(self, url, clients=4):
        self.url, self.stop, self.ok, self.failures = url, threading.Event(), 0, []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(clients)]

    def run(self, i):
        n = 0
        while not self.stop.is_set():
            path = "/slow" if (n + i) % 5 == 0 else "/"
            n += 1
            try:
                status, _ = get(self.url + path)
                with self.lock:
                    if status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"{path}: {status}")
            except (urllib.error.URLError, OSError) as e:
                with self.lock:
                    self.failures.append(f"{path}: {e}")

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


@pytest.fixture(scope="module")
def app_layer(server, workdir, git_http):
    c = client_for(server)
    make_repo(workdir / "elbapp", {"server.js": SERVER_JS, "package.json": '{"name": "elbapp", "version": "1.0.0"}\n'})
    sid = c.create_stack(
        Name="elb", Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
    )["StackId"]
    lid = c.create_layer(StackId=sid, Type="nodejs-app", Name="app", Shortname="nodejs-app")["LayerId"]
    c.create_app(StackId=sid, Name="Site", Shortname="site", Type="nodejs",
                 AppSource={"Type": "git", "Url": f"{git_http}/elbapp/.git", "Revision": "main"})
    ids = [c.create_instance(StackId=sid, LayerIds=[lid], InstanceType="t3.micro")["InstanceId"] for _ in range(2)]
    yield {"stack": sid, "layer": lid, "instances": ids}
    elb = elb_for(server)
    for lb in elb.describe_load_balancers()["LoadBalancerDescriptions"]:
        elb.delete_load_balancer(LoadBalancerName=lb["LoadBalancerName"])


def test_requests_reach_every_instance_and_none_fails_while_one_stops(server, app_layer):
    c, elb = client_for(server), elb_for(server)
    sid, lid, ids = app_layer["stack"], app_layer["layer"], app_layer["instances"]
    dns = elb.create_load_balancer(LoadBalancerName="site", Listeners=[
        {"Protocol": "HTTP", "LoadBalancerPort": 80, "InstanceProtocol": "HTTP", "InstancePort": 80}])["DNSName"]
    elb.configure_health_check(LoadBalancerName="site", HealthCheck={
        "Target": "HTTP:80/", "Interval": 5, "Timeout": 2, "UnhealthyThreshold": 2, "HealthyThreshold": 2})
    c.attach_elastic_load_balancer(ElasticLoadBalancerName="site", LayerId=lid)

    for i in ids:
        c.start_instance(InstanceId=i)
    c.get_waiter("instance_online").wait(InstanceIds=ids, WaiterConfig=WAIT)
    instances = {i["InstanceId"]: i for i in c.describe_instances(InstanceIds=ids)["Instances"]}
    ec2 = {i: instances[i]["Ec2InstanceId"] for i in ids}
    hostnames = {instances[i]["Hostname"] for i in ids}

    # Registered as they came online, both in service, both reached.
    eventually(lambda: sorted(c.describe_elastic_load_balancers(LayerIds=[lid])["ElasticLoadBalancers"][0]
                              ["Ec2InstanceIds"]) == sorted(ec2.values()), 30, what="both instances registered")
    d = c.describe_elastic_load_balancers(StackId=sid)["ElasticLoadBalancers"][0]
    assert d["DnsName"] == dns and d["LayerId"] == lid and d["StackId"] == sid
    eventually(lambda: all(s["State"] == "InService" for s in
                           elb.describe_instance_health(LoadBalancerName="site")["InstanceStates"]), 30,
               what="both instances in service")
    assert {s["InstanceId"] for s in elb.describe_instance_health(LoadBalancerName="site")["InstanceStates"]} \
        == set(ec2.values())
    eventually(lambda: hosts_behind(dns) == hostnames, 30, what="requests reaching both instances")

    # One instance stops under load: drained before its Shutdown, no request fails.
    leaving, staying = ids[0], ids[1]
    with Load(f"http://{dns}") as load:
        time.sleep(2)
        c.stop_instance(InstanceId=leaving)
        c.get_waiter("instance_stopped").wait(InstanceIds=[leaving], WaiterConfig=WAIT)
        time.sleep(2)
    assert load.failures == [], f"{len(load.failures)} of {load.ok + len(load.failures)} requests failed: " \
                                f"{load.failures[:5]}"
    assert load.ok > 20, load.ok
    print(f"\n{load.ok} requests through the load balancer while {leaving} stopped, none failed")
    assert c.describe_elastic_load_balancers(LayerIds=[lid])["ElasticLoadBalancers"][0]["Ec2InstanceIds"] \
        == [ec2[staying]]
    assert hosts_behind(dns, 10) == {instances[staying]["Hostname"]}

    # Started again, it is registered again once online.
    c.start_instance(InstanceId=leaving)
    c.get_waiter("instance_online").wait(InstanceIds=[leaving], WaiterConfig=WAIT)
    eventually(lambda: hosts_behind(dns) == hostnames, 60, what="the restarted instance back behind the LB")

    # `aws elb` registers and deregisters instances itself, on a load balancer of its own (TCP).
    direct = elb.create_load_balancer(LoadBalancerName="direct", Listeners=[
        {"Protocol": "TCP", "LoadBalancerPort": 8000, "InstancePort": 80}])["DNSName"]
    got = elb.register_instances_with_load_balancer(LoadBalancerName="direct",
                                                    Instances=[{"InstanceId": ec2[staying]}])
    assert got["Instances"] == [{"InstanceId": ec2[staying]}]
    eventually(lambda: get(f"http://{direct}:8000/")[1] == instances[staying]["Hostname"], 30,
               what="the registered instance answering through the TCP load balancer")
    eventually(lambda: elb.describe_instance_health(LoadBalancerName="direct")["InstanceStates"][0]["State"]
               == "InService", 60, what="the registered instance in service")
    got = elb.deregister_instances_from_load_balancer(LoadBalancerName="direct",
                                                      Instances=[{"InstanceId": ec2[staying]}])
    assert got["Instances"] == []
    state = elb.describe_instance_health(LoadBalancerName="direct",
                                         Instances=[{"InstanceId": ec2[staying]}])["InstanceStates"][0]
    assert (state["State"], state["ReasonCode"]) == ("OutOfService", "Instance")
    eventually(lambda: not answers_http(f"http://{direct}:8000/"), 30, what="the deregistered instance gone")
    elb.delete_load_balancer(LoadBalancerName="direct")

    c.detach_elastic_load_balancer(ElasticLoadBalancerName="site", LayerId=lid)
    assert c.describe_elastic_load_balancers(StackId=sid)["ElasticLoadBalancers"] == []
    for i in ids:
        c.stop_instance(InstanceId=i)
    c.get_waiter("instance_stopped").wait(InstanceIds=ids, WaiterConfig=WAIT)
