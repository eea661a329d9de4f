"""Benchmark of the built-in layers (BENCHMARKS.md, "Layers"): the time from StartStack to every
instance online for lb + db-master + memcached + 2 nodejs-app, then a deploy of a new app revision
while clients send requests through the load balancer continuously: errors and latency."""

import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests/lifecycle"))
from test_layers import SERVER_JS, hosts_behind  # noqa: E402

WAIT = {"Delay": 1, "MaxAttempts": 120}
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))


def test_start_stack_then_deploy_under_load(client, server, workdir, git_http):
    import conftest
    lc = conftest
    repo = lc.make_repo(workdir / "benchapp", {"server.js": SERVER_JS, "VERSION": "v1\n"})
    sid = client.create_stack(
        Name="bench-layers", Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
    )["StackId"]
    layers = {t: client.create_layer(StackId=sid, Type=t, Name=t, Shortname=t)["LayerId"]
              for t in ("lb", "nodejs-app", "db-master", "memcached")}
    app_id = client.create_app(
        StackId=sid, Name="Bench", Shortname="bench", Type="nodejs",
        AppSource={"Type": "git", "Url": f"{git_http}/benchapp/.git", "Revision": "main"},
        DataSources=[{"Type": "AutoSelectOpsworksMysqlInstance"}])["AppId"]
    counts = {"lb": 1, "db-master": 1, "memcached": 1, "nodejs-app": 2}
    ids = [client.create_instance(StackId=sid, LayerIds=[layers[t]], InstanceType="t3.micro")["InstanceId"]
           for t, n in counts.items() for _ in range(n)]

    t0 = time.time()
    client.start_stack(StackId=sid)
    client.get_waiter("instance_online").wait(InstanceIds=ids, WaiterConfig=WAIT)
    online = time.time() - t0
    inst = client.describe_instances(InstanceIds=ids)["Instances"]
    lb_ip = next(i["PrivateIp"] for i in inst if i["LayerIds"] == [layers["lb"]])
    apps = {i["Hostname"] for i in inst if i["LayerIds"] == [layers["nodejs-app"]]}
    def both_behind():
        assert hosts_behind(lb_ip) == apps
        return True

    lc.retry(both_behind, 60)
    served = time.time() - t0

    # Continuous requests through the load balancer while v2 is deployed on both app instances.
    lc.commit(repo, {"VERSION": "v2\n"}, "v2")
    stop = threading.Event()
    results = []  # (latency seconds, ok, version)
    lock = threading.Lock()

    def worker():
        while not stop.is_set():
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(f"http://{lb_ip}/", timeout=10) as r:
                    body = r.read().decode().split()
                    ok, version = r.status == 200, body[1]
            except Exception as e:  # noqa: BLE001 - counted as an error, by kind
                ok, version = False, f"{type(e).__name__}: {getattr(e, 'code', '') or getattr(e, 'reason', '') or e}"
            with lock:
                results.append((time.perf_counter() - start, ok, version))

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(2)
    d0 = time.time()
    dep = client.create_deployment(StackId=sid, AppId=app_id, Command={"Name": "deploy"})["DeploymentId"]
    client.get_waiter("deployment_successful").wait(DeploymentIds=[dep], WaiterConfig=WAIT)
    deploy_s = time.time() - d0
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()

    lat = sorted(r[0] for r in results)
    errors = sum(1 for r in results if not r[1])
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000  # noqa: E731
    last = [r[2] for r in results[-CLIENTS * 5:]]
    kinds = sorted({r[2] for r in results if not r[1]})
    report = (
        f"layers bench: StartStack -> 5 instances online {online:.1f} s, app served through lb {served:.1f} s\n"
        f"deploy under load ({CLIENTS} clients): deployment {deploy_s:.1f} s, {len(results)} requests, "
        f"{errors} errors, latency p50 {pct(0.5):.1f} ms p99 {pct(0.99):.1f} ms max {lat[-1] * 1000:.1f} ms; "
        f"last responses {sorted(set(last))}; errors seen: {kinds or 'none'}"
    )
    print("\n" + report)
    (workdir.parent / "opsworks-bench-layers.txt").write_text(report + "\n")
    assert set(last) == {"v2"}, last
    for i in ids:
        client.stop_instance(InstanceId=i, Force=True)
