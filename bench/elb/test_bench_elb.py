"""Benchmark of classic load balancers (BENCHMARKS.md, "Load balancers"): two nodejs-app instances
behind a load balancer made with `aws elb` and attached with AttachElasticLoadBalancer. Clients
(keep-alive connections, one per client) measure requests/s and p99 through the load balancer, then
through HAProxy started directly on the host with the very configuration the load balancer runs (same
backends, same run), then the requests dropped (new connection per request, a fifth of them slow)
while one instance stops behind the load balancer."""

import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests/lifecycle"))
from test_elb import SERVER_JS, Load, elb_for, hosts_behind  # noqa: E402

WAIT = {"Delay": 1, "MaxAttempts": 400}
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))


def measure(host, port, seconds=SECONDS, clients=CLIENTS):
    """Requests/s, p50 and p99 (ms) and errors of `clients` keep-alive clients for `seconds`."""
    lat, errors, stop = [], [0], threading.Event()
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection(host, port, timeout=10)
        mine = []
        while not stop.is_set():
            t = time.perf_counter()
            try:
                conn.request("GET", "/")
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    raise OSError(r.status)
                mine.append(time.perf_counter() - t)
            except (OSError, http.client.HTTPException):
                with lock:
                    errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    lat.sort()
    pct = lambda p: 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")  # noqa: E731
    return {"rps": len(lat) / elapsed, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": errors[0],
            "requests": len(lat)}


def test_load_balancer_against_haproxy_direct_and_a_stop_under_load(client, server, workdir, git_http):
    import conftest
    c, elb = client, elb_for(server)
    conftest.make_repo(workdir / "benchelb", {"server.js": SERVER_JS,
                                             "package.json": '{"name": "benchelb", "version": "1.0.0"}\n'})
    sid = c.create_stack(
        Name="bench-elb", Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
    )["StackId"]
    lid = c.create_layer(StackId=sid, Type="nodejs-app", Name="app", Shortname="nodejs-app")["LayerId"]
    c.create_app(StackId=sid, Name="Bench", Shortname="bench", Type="nodejs",
                 AppSource={"Type": "git", "Url": f"{git_http}/benchelb/.git", "Revision": "main"})
    ids = [c.create_instance(StackId=sid, LayerIds=[lid], InstanceType="t3.micro")["InstanceId"] for _ in range(2)]
    dns = elb.create_load_balancer(LoadBalancerName="bench", Listeners=[
        {"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}])["DNSName"]
    elb.configure_health_check(LoadBalancerName="bench", HealthCheck={
        "Target": "HTTP:80/", "Interval": 5, "Timeout": 2, "UnhealthyThreshold": 2, "HealthyThreshold": 2})
    c.attach_elastic_load_balancer(ElasticLoadBalancerName="bench", LayerId=lid)
    for i in ids:
        c.start_instance(InstanceId=i)
    c.get_waiter("instance_online").wait(InstanceIds=ids, WaiterConfig=WAIT)
    hostnames = {i["Hostname"] for i in c.describe_instances(InstanceIds=ids)["Instances"]}

    def both_behind(addr):
        assert hosts_behind(addr) == hostnames
        return True

    conftest.retry(lambda: both_behind(dns), 60)

    # The configuration the load balancer runs, run directly on the host on another port.
    machine = next(Path(server.data_dir, "machines").rglob("etc/opsworks-elb/haproxy.cfg"), None)
    assert machine is not None, "the load balancer's configuration was not found under the data dir"
    direct_port = 18480
    cfg = machine.read_text().replace("bind *:80", f"bind 10.217.0.1:{direct_port}")
    cfg = "\n".join(line for line in cfg.splitlines()
                    if "stats socket" not in line and "server-state-file" not in line
                    and "load-server-state-from-file" not in line)
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(cfg)
    direct = subprocess.Popen(["haproxy", "-db", "-f", f.name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conftest.retry(lambda: both_behind(f"10.217.0.1:{direct_port}"), 30)
        through_lb = measure(dns, 80)
        through_direct = measure("10.217.0.1", direct_port)
        through_lb_again = measure(dns, 80)
    finally:
        direct.terminate()
        direct.wait(10)
        os.unlink(f.name)

    with Load(f"http://{dns}", clients=CLIENTS) as load:
        time.sleep(3)
        t0 = time.time()
        c.stop_instance(InstanceId=ids[0])
        c.get_waiter("instance_stopped").wait(InstanceIds=[ids[0]], WaiterConfig=WAIT)
        stop_seconds = time.time() - t0
        time.sleep(2)

    print(f"\nELB benchmark: {CLIENTS} clients, {SECONDS:.0f} s each, 2 nodejs-app instances (t3.micro)")
    for name, r in (("through the load balancer", through_lb), ("HAProxy directly on the host", through_direct),
                    ("through the load balancer (again)", through_lb_again)):
        print(f"  {name:36s} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
              f"errors {r['errors']} of {r['requests'] + r['errors']}")
    print(f"  stop under load: {load.ok} requests served, {len(load.failures)} failed, "
          f"instance stopped in {stop_seconds:.1f} s")
    assert load.failures == [], load.failures[:5]
    assert through_lb["errors"] == 0 and through_direct["errors"] == 0
    c.detach_elastic_load_balancer(ElasticLoadBalancerName="bench", LayerId=lid)
    elb.delete_load_balancer(LoadBalancerName="bench")
