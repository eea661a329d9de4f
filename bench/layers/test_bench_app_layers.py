"""Benchmark of the rails-app, java-app and monitoring-master layers (BENCHMARKS.md, "Layers"): for
each app layer, the time from StartStack to every instance online and the app answering through
the lb layer (lb + db-master + 2 app instances; the java stack also has its monitoring-master), then
a deploy of a new app revision while clients send requests through the load balancer without
pause: requests, failures and latency over the window (2 s before, the deployment, 3 s after).
For monitoring-master, StartStack to Prometheus's `up` listing every instance."""

import json
import os
import sys
import threading
import time
import urllib.request
from base64 import b64encode
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests/lifecycle"))
from test_app_layers import JSP_FILES, RAILS_FILES, RACK_FILES, SECRET_KEY_BASE, get, new_stack  # noqa: E402

WAIT = {"Delay": 1, "MaxAttempts": 900}
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
ROOT_PW = "bench-root-Pw"
MON_PW = "bench-mon-Pw"


def under_load(url, seconds_before, action, host=None):
    """Runs `action()` while CLIENTS clients send GETs to `url`; (results, action seconds)."""
    stop = threading.Event()
    results = []  # (latency s, ok, body or error)
    lock = threading.Lock()

    def worker():
        while not stop.is_set():
            start = time.perf_counter()
            try:
                body, ok = get(url, host=host, timeout=30), True
            except Exception as e:  # noqa: BLE001 - counted as a failure, by kind
                body, ok = f"{type(e).__name__}: {getattr(e, 'code', '') or getattr(e, 'reason', '') or e}", False
            with lock:
                results.append((time.perf_counter() - start, ok, body))

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(seconds_before)
    t0 = time.time()
    action()
    took = time.time() - t0
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()
    return results, took


def summary(name, online, served, results, deploy_s, want_last):
    lat = sorted(r[0] for r in results)
    fails = [r[2] for r in results if not r[1]]
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000  # noqa: E731
    last = sorted({r[2] for r in results[-CLIENTS * 5:]})
    line = (f"{name}: StartStack -> online {online:.1f} s, served through the lb {served:.1f} s; "
            f"deploy under load ({CLIENTS} clients): deployment {deploy_s:.1f} s, {len(results)} requests, "
            f"{len(fails)} failed, latency p50 {pct(0.5):.1f} ms p99 {pct(0.99):.1f} ms max {lat[-1] * 1000:.1f} ms; "
            f"last responses {last}; failures seen: {sorted(set(fails)) or 'none'}")
    assert last == [want_last], line
    return line


def start_stack(c, lc, sid, layer_ids, counts):
    ids = [c.create_instance(StackId=sid, LayerIds=[layer_ids[t]], InstanceType="t3.micro")["InstanceId"]
           for t, n in counts.items() for _ in range(n)]
    t0 = time.time()
    c.start_stack(StackId=sid)
    c.get_waiter("instance_online").wait(InstanceIds=ids, WaiterConfig=WAIT)
    online = time.time() - t0
    inst = c.describe_instances(InstanceIds=ids)["Instances"]
    by_layer = {t: [i for i in inst if i["LayerIds"] == [layer_ids[t]]] for t in counts}
    return ids, t0, online, by_layer


def deploy(c, sid, app_id):
    d = c.create_deployment(StackId=sid, AppId=app_id, Command={"Name": "deploy"})["DeploymentId"]
    c.get_waiter("deployment_successful").wait(DeploymentIds=[d], WaiterConfig=WAIT)


def test_app_layers_start_and_deploy_under_load(client, server, workdir, git_http):
    import conftest as lc
    c = client
    lines = []

    # rails-app: the Rails app (real Rails 6.1 from Debian) as the default site.
    repo = lc.make_repo(workdir / "bench-rails", RAILS_FILES)
    lc.make_repo(workdir / "bench-rack", RACK_FILES)
    sid = new_stack(c, "bench-rails")
    layers = {t: c.create_layer(StackId=sid, Type=t, Name=t, Shortname=t, **kw)["LayerId"] for t, kw in {
        "lb": {}, "db-master": {"Attributes": {"MysqlRootPassword": ROOT_PW}},
        "rails-app": {"Packages": ["ruby-rails", "ruby-mysql2"]}}.items()}
    db_arn = c.describe_layers(LayerIds=[layers["db-master"]])["Layers"][0]["Arn"]
    app = c.create_app(StackId=sid, Name="Shop", Shortname="shop", Type="rails",
                       AppSource={"Type": "git", "Url": f"{git_http}/bench-rails/.git", "Revision": "main"},
                       DataSources=[{"Type": "OpsworksMysqlInstance", "Arn": db_arn, "DatabaseName": "shop"}],
                       Environment=[{"Key": "SECRET_KEY_BASE", "Value": SECRET_KEY_BASE, "Secure": True},
                                    {"Key": "GREETING", "Value": "hello"}])["AppId"]
    ids, t0, online, by = start_stack(c, lc, sid, layers, {"lb": 1, "db-master": 1, "rails-app": 2})
    lb = by["lb"][0]["PrivateIp"]
    lc.retry(lambda: _want(get(f"http://{lb}/"), "rails production v1 hello"), 180, 0.5)
    served = time.time() - t0
    lc.commit(repo, {"VERSION": "v2\n"}, "v2")
    results, took = under_load(f"http://{lb}/", 2, lambda: deploy(c, sid, app))
    lines.append(summary("rails-app (Rails 6.1 on Puma)", online, served, results, took, "rails production v2 hello"))
    _stop(c, ids)

    # java-app, with the stack's monitoring-master.
    repo = lc.make_repo(workdir / "bench-jsp", JSP_FILES)
    sid = new_stack(c, "bench-java")
    layers = {t: c.create_layer(StackId=sid, Type=t, Name=t, Shortname=t, **kw)["LayerId"] for t, kw in {
        "lb": {}, "db-master": {"Attributes": {"MysqlRootPassword": ROOT_PW}}, "java-app": {},
        "monitoring-master": {"Attributes": {"GangliaPassword": MON_PW}}}.items()}
    db_arn = c.describe_layers(LayerIds=[layers["db-master"]])["Layers"][0]["Arn"]
    app = c.create_app(StackId=sid, Name="JSP", Shortname="jsp", Type="java",
                       AppSource={"Type": "git", "Url": f"{git_http}/bench-jsp/.git", "Revision": "main"},
                       DataSources=[{"Type": "OpsworksMysqlInstance", "Arn": db_arn, "DatabaseName": "jsp"}])["AppId"]
    ids, t0, online, by = start_stack(c, lc, sid, layers, {"lb": 1, "db-master": 1, "java-app": 2, "monitoring-master": 1})
    lb = by["lb"][0]["PrivateIp"]
    lc.retry(lambda: _want(get(f"http://{lb}/"), "java 42 v1"), 180, 0.5)
    served = time.time() - t0
    mon = by["monitoring-master"][0]["PrivateIp"]
    hostnames = {i["Hostname"] for group in by.values() for i in group}
    auth = "Basic " + b64encode(f"opsworks:{MON_PW}".encode()).decode()

    def up_hosts():
        req = urllib.request.Request(f"http://{mon}/api/v1/query?query=up%7Bjob%3D%22node%22%7D",
                                     headers={"Authorization": auth})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = json.loads(r.read())
        return {x["metric"]["hostname"] for x in body["data"]["result"] if x["value"][1] == "1"} == hostnames
    lc.eventually(up_hosts, 180, 1, "every instance up in Prometheus")
    monitored = time.time() - t0
    lc.commit(repo, {"index.jsp": JSP_FILES["index.jsp"].replace("v1", "v2")}, "v2")
    results, took = under_load(f"http://{lb}/", 2, lambda: deploy(c, sid, app))
    lines.append(summary("java-app (Tomcat 10, OpenJDK 17)", online, served, results, took, "java 42 v2"))
    lines.append(f"monitoring-master (Prometheus): StartStack -> every instance of the 5 up in Prometheus {monitored:.1f} s")
    _stop(c, ids)

    report = "\n".join(lines)
    print("\n" + report)
    (workdir.parent / "opsworks-bench-app-layers.txt").write_text(report + "\n")


def _want(got, want):
    if got != want:
        raise AssertionError(f"got {got!r}")
    return got


def _stop(c, ids):
    for i in ids:
        c.stop_instance(InstanceId=i, Force=True)
    c.get_waiter("instance_stopped").wait(InstanceIds=ids, WaiterConfig=WAIT)
