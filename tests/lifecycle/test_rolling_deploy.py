"""A deploy under load drops no request (issue 11 item 16; bench/layers/run.sh measures the same
shape): an `lb` layer (HAProxy) in front of a `nodejs-app` layer with two instances, the app from a
git repository at a local path of the host. Clients send requests through the load balancer
without pause while version 2 is deployed to the stack; not one fails, and every request sent after
the deployment succeeded is answered by version 2, from both app instances. Bounded: a fixed
number of clients, and each stops a fixed number of requests after the deployment."""

import threading
import time
import urllib.request

import pytest

from conftest import client_for, commit, make_repo, retry

WAIT = {"Delay": 1, "MaxAttempts": 300}
CLIENTS = 4
AFTER = 25  # requests each client sends once the deployment has succeeded

SERVER_JS = r'''// tests/lifecycle/test_rolling_deploy.py: its hostname and version; finishes requests on SIGTERM.
const fs = require("fs");
const http = require("http");
const os = require("os");
const version = fs.readFileSync(__dirname + "/VERSION", "utf8").trim();
const server = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(os.hostname() + " " + version + "\n");
});
server.listen(Number(process.env.PORT));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
'''


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode().split()


@pytest.fixture(scope="module")
def rolling(server, workdir):
    c = client_for(server)
    repo = make_repo(workdir / "rolling-app", {"server.js": SERVER_JS, "VERSION": "v1\n"})
    sid = c.create_stack(
        Name="rolling", Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
    )["StackId"]
    layers = {t: c.create_layer(StackId=sid, Type=t, Name=t, Shortname=t)["LayerId"] for t in ("lb", "nodejs-app")}
    app = c.create_app(StackId=sid, Name="Rolling", Shortname="rolling", Type="nodejs",
                       AppSource={"Type": "git", "Url": str(repo), "Revision": "main"})["AppId"]
    ids = {t: [c.create_instance(StackId=sid, LayerIds=[layers[t]], InstanceType="t3.micro")["InstanceId"]
               for _ in range(n)] for t, n in (("lb", 1), ("nodejs-app", 2))}
    every = ids["lb"] + ids["nodejs-app"]
    for iid in every:
        c.start_instance(InstanceId=iid)
    c.get_waiter("instance_online").wait(InstanceIds=every, WaiterConfig=WAIT)
    described = {i["InstanceId"]: i for i in c.describe_instances(InstanceIds=every)["Instances"]}
    yield {"stack": sid, "app": app, "repo": repo, "lb": described[ids["lb"][0]]["PrivateIp"],
           "apps": {described[i]["Hostname"] for i in ids["nodejs-app"]}}
    for iid in every:
        c.stop_instance(InstanceId=iid, Force=True)
    c.get_waiter("instance_stopped").wait(InstanceIds=every, WaiterConfig=WAIT)


def test_a_rolling_deploy_under_load_drops_no_request(server, rolling):
    c = client_for(server)
    url = f"http://{rolling['lb']}/"

    def both_serve_v1():
        seen = {tuple(get(url)[1]) for _ in range(12)}
        assert seen == {(h, "v1") for h in rolling["apps"]}, seen
        return True

    retry(both_serve_v1, 90)
    commit(rolling["repo"], {"VERSION": "v2\n"}, "v2")

    done_at = [None]  # when the deployment was seen successful (monotonic)
    results = []  # (started, ok, hostname or error, version)
    lock = threading.Lock()
    first = threading.Barrier(CLIENTS + 1)

    def client_loop():
        after = 0
        reported = False
        while after < AFTER:
            started = time.monotonic()
            try:
                status, (host, version) = get(url)
                entry = (started, status == 200, host, version)
            except Exception as e:  # noqa: BLE001 - every failure counts, by kind
                entry = (started, False, f"{type(e).__name__}: {e}", None)
            with lock:
                results.append(entry)
            if not reported:
                first.wait(30)  # the deployment starts once every client has been answered
                reported = True
            if done_at[0] is not None and started > done_at[0]:
                after += 1

    threads = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    first.wait(30)
    deploy_started = time.monotonic()
    d = c.create_deployment(StackId=rolling["stack"], AppId=rolling["app"], Command={"Name": "deploy"})["DeploymentId"]
    try:
        c.get_waiter("deployment_successful").wait(DeploymentIds=[d], WaiterConfig=WAIT)
    finally:
        done_at[0] = time.monotonic()
        for t in threads:
            t.join(120)
    assert not any(t.is_alive() for t in threads), "clients still running"

    failed = [r for r in results if not r[1]]
    during = [r for r in results if deploy_started <= r[0] <= done_at[0]]
    after = [r for r in results if r[0] > done_at[0]]
    summary = f"{len(results)} requests, {len(during)} during the deployment, {len(failed)} failed"
    print(f"\nrolling deploy: {summary}, deployment {done_at[0] - deploy_started:.1f} s")
    assert not failed, f"{summary}: {sorted({r[2] for r in failed})}"
    assert during, summary
    assert {r[3] for r in results if r[0] < deploy_started} == {"v1"}
    assert len(after) == CLIENTS * AFTER
    assert {r[3] for r in after} == {"v2"}, f"after the deployment: {sorted({(r[2], r[3]) for r in after})}"
    assert {r[2] for r in after} == rolling["apps"], "both instances serve version 2"
