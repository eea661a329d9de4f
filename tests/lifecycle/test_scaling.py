"""Time- and load-based scaling and the event log, end to end: the scheduler (ticking every second)
starts a timer instance scheduled on for this hour and stops one scheduled off; a load-based layer
starts its load instance while an instance is put under CPU load (a burner started by a recipe)
and stops it after the load ends; the event stream (signed SigV4 GET, read as plain server-sent
events) shows an instance's status changes as it starts."""

import datetime
import http.client
import json
import os
import signal
import threading
import time
import urllib.parse
import uuid

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import AKID, SECRET, Server, client_for, eventually, make_repo

FAST = {"Delay": 1, "MaxAttempts": 180}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@pytest.fixture(scope="module")
def scaling_server(workdir):
    # One minute of ThresholdsWaitTime / IgnoreMetricsTime lasts a second; agents sample every second.
    srv = Server(workdir / "scaling-data", workdir / "scaling-server.log",
                 ["--scheduler-interval", "1s", "--scaling-minute", "1s", "--metrics-interval", "1"])
    srv.start()
    yield srv
    c = client_for(srv)
    for stack in c.describe_stacks()["Stacks"]:
        for layer in c.describe_layers(StackId=stack["StackId"])["Layers"]:
            c.set_load_based_auto_scaling(LayerId=layer["LayerId"], Enable=False)  # no restart
        for inst in c.describe_instances(StackId=stack["StackId"])["Instances"]:
            if inst.get("AutoScalingType") == "timer":
                c.set_time_based_auto_scaling(InstanceId=inst["InstanceId"])  # all off: no restart
            if inst["Status"] != "stopped":
                c.stop_instance(InstanceId=inst["InstanceId"], Force=True)
    stop_all(c)
    srv.stop()


def stop_all(c, stack_ids=None, seconds=60):
    """Waits (bounded) until every instance of the stacks is stopped, so no machine outlives the test."""
    stack_ids = stack_ids or [s["StackId"] for s in c.describe_stacks()["Stacks"]]
    deadline = time.time() + seconds
    while time.time() < deadline and any(
        i["Status"] != "stopped" for sid in stack_ids for i in c.describe_instances(StackId=sid)["Instances"]
    ):
        time.sleep(0.5)


def on_now():
    """A schedule on for this UTC hour and the next (so an hour boundary mid-test changes nothing)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    nxt = now + datetime.timedelta(hours=1)
    sched = {}
    for t in (now, nxt):
        sched.setdefault(DAYS[t.weekday()], {})[str(t.hour)] = "on"
    return sched


def setup_stack(c, name):
    stack = c.create_stack(Name=name, Region="us-east-1",
                           ServiceRoleArn="arn:aws:iam::123456789012:role/r",
                           DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/p")["StackId"]
    layer = c.create_layer(StackId=stack, Type="custom", Name="Workers", Shortname="workers")["LayerId"]
    return stack, layer


def status(c, iid):
    return c.describe_instances(InstanceIds=[iid])["Instances"][0]["Status"]


def test_a_timer_instance_scheduled_on_starts_and_one_scheduled_off_stops(scaling_server):
    c = client_for(scaling_server)
    stack, layer = setup_stack(c, "timers")
    iid = c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro",
                            AutoScalingType="timer")["InstanceId"]
    idle = c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro")["InstanceId"]
    c.set_time_based_auto_scaling(InstanceId=iid, AutoScalingSchedule=on_now())
    # Nobody calls StartInstance: the scheduler does (the waiter counts "stopped" as failure, so
    # first wait for the instance to be on its way).
    deadline = time.time() + 30
    while time.time() < deadline and status(c, iid) == "stopped":
        time.sleep(0.2)
    c.get_waiter("instance_online").wait(InstanceIds=[iid], WaiterConfig=FAST)
    assert status(c, idle) == "stopped", "a 24/7 instance is never started by the schedule"
    # Every hour off now: the online instance is stopped (Shutdown runs first).
    c.set_time_based_auto_scaling(InstanceId=iid, AutoScalingSchedule={})
    c.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig=FAST)
    commands = [x["Type"] for x in c.describe_commands(InstanceId=iid)["Commands"]]
    assert "setup" in commands and "shutdown" in commands


def signed_headers(srv, path, query):
    url = f"{srv.endpoint}{path}?{urllib.parse.urlencode(query)}"
    req = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(AKID, SECRET), "opsworks", "us-east-1").add_auth(req)
    return url, dict(req.headers.items())


def get(srv, path, query, headers):
    port = urllib.parse.urlparse(srv.endpoint).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"{path}?{urllib.parse.urlencode(query)}", headers=headers)
    return conn, conn.getresponse()


class StreamReader(threading.Thread):
    """Reads server-sent events into a list until told to stop."""

    def __init__(self, resp):
        super().__init__(daemon=True)
        self.resp = resp
        self.events = []
        self.error = None

    def run(self):
        data, ident = [], None
        try:
            while True:
                line = self.resp.fp.readline()
                if not line:
                    return
                line = line.decode().rstrip("\r\n")
                if line.startswith("id:"):
                    ident = line[3:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    event = json.loads("\n".join(data))
                    assert str(event["Seq"]) == ident
                    self.events.append(event)
                    data, ident = [], None
        except Exception as e:  # the connection closed under us at the end of the test
            self.error = e


def test_the_event_stream_shows_an_instance_starting(scaling_server):
    c = client_for(scaling_server)
    stack, layer = setup_stack(c, "events")
    iid = c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro")["InstanceId"]

    # Unsigned: a clear 401 in the API's error shape.
    conn, resp = get(scaling_server, "/api/events/stream", {"StackId": stack}, {})
    assert resp.status == 401
    assert json.loads(resp.read())["__type"] == "MissingAuthenticationTokenException"
    conn.close()

    _, headers = signed_headers(scaling_server, "/api/events/stream", {"StackId": stack})
    conn, resp = get(scaling_server, "/api/events/stream", {"StackId": stack}, headers)
    assert resp.status == 200
    assert resp.getheader("Content-Type").startswith("text/event-stream")
    reader = StreamReader(resp)
    reader.start()

    c.start_instance(InstanceId=iid)
    c.get_waiter("instance_online").wait(InstanceIds=[iid], WaiterConfig=FAST)
    deadline = time.time() + 30
    def seen():
        return [e["Detail"]["To"] for e in reader.events
                if e["Type"] == "instance_status" and e.get("InstanceId") == iid]
    while time.time() < deadline and "online" not in seen():
        time.sleep(0.2)
    assert seen()[:5] == ["requested", "pending", "booting", "running_setup", "online"], seen()
    assert all(e["StackId"] == stack for e in reader.events)
    seqs = [e["Seq"] for e in reader.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert any(e["Type"] == "command_status" and e["Detail"]["Type"] == "setup" for e in reader.events)
    conn.close()

    # The same events as JSON, for scripts, and resumable from a seq.
    query = {"StackId": stack, "Since": "0"}
    _, headers = signed_headers(scaling_server, "/api/events", query)
    conn, resp = get(scaling_server, "/api/events", query, headers)
    assert resp.status == 200
    body = json.loads(resp.read())
    listed = [e["Seq"] for e in body["Events"]]
    assert set(seqs) <= set(listed)
    assert body["LastSeq"] == listed[-1]
    conn.close()

    # A stream resumed with Last-Event-ID replays what came after it from the table.
    _, headers = signed_headers(scaling_server, "/api/events/stream", {"StackId": stack})
    headers["Last-Event-ID"] = str(seqs[0])
    conn, resp = get(scaling_server, "/api/events/stream", {"StackId": stack}, headers)
    replay = StreamReader(resp)
    replay.start()
    deadline = time.time() + 10
    while time.time() < deadline and len(replay.events) < len(seqs) - 1:
        time.sleep(0.1)
    assert [e["Seq"] for e in replay.events][: len(seqs) - 1] == seqs[1:]
    conn.close()


# Load-based scaling. The burner is a recipe's background `sh` loop, one per core, inside the 24/7
# instance; local instances read the host's /proc/stat, so it shows as ~100 % CPU in the layer's
# averages. Thresholds are far from both ends: an idle 2-core machine reads well under DOWN_CPU,
# two burners read ~100 %.
UP_CPU = 80
DOWN_CPU = 50
# Three (one-second) minutes: the wait must hold samples taken after its start, and a sample (taken
# every second, stamped to the second) reaches the server up to a second later; a one-second wait
# can miss every sample when the agent's and the scheduler's ticks fall badly.
WAIT = 3
BURN_LIMIT = 300  # seconds: the burners' own bound (`timeout`); the test ends them much sooner
BURN_RECIPE = '''
marker = node["burn"]["marker"]
for i in range(2):
    execute("burner %d" % i,
        command = "timeout %d sh -c 'while :; do :; done' %s </dev/null >/dev/null 2>&1 &" % (node["burn"]["limit"], marker))
'''


def burner_pids(marker):
    """The host's processes whose command line carries `marker` (the burners and their `timeout`)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv:
            pids.append(int(pid))
    return pids


def kill_burners(marker):
    for _ in range(5):  # `timeout` may be between fork and exec of its child: look again
        pids = burner_pids(marker)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    assert not burner_pids(marker), "burners survived SIGKILL"


def api_get(srv, path, query):
    _, headers = signed_headers(srv, path, query)
    conn, resp = get(srv, path, query, headers)
    try:
        assert resp.status == 200, resp.read()
        return json.loads(resp.read())
    finally:
        conn.close()


def events_since(srv, stack, seq):
    return api_get(srv, "/api/events", {"StackId": stack, "Since": str(seq)})["Events"]


def layer_cpu(srv, layer, last=3):
    """The layer's last `last` CPU readings (100 - cpu_idle), skipping seconds with no CPU reading."""
    doc = api_get(srv, "/api/metrics", {"LayerId": layer, "Period": "1h"})
    m = {x["Name"]: x["Average"] for x in doc["Metrics"]}
    shares = ["cpu_idle", "cpu_nice", "cpu_steal", "cpu_system", "cpu_user", "cpu_waitio"]
    readings = [100 - m["cpu_idle"][k] for k in range(len(doc["Timestamps"]))
                if m["cpu_idle"][k] is not None and sum(m[n][k] or 0 for n in shares) > 0]
    return readings[-last:]


def test_load_based_scaling_starts_the_load_instance_under_cpu_load_and_stops_it_after(scaling_server, workdir, git_http):
    c = client_for(scaling_server)
    marker = f"opsworks-burn-{uuid.uuid4().hex}"
    repo = workdir / "burn-cookbooks"
    if not repo.exists():
        make_repo(repo, {"burn/metadata.json": json.dumps({"name": "burn", "version": "1.0.0"}),
                         "burn/recipes/default.star": BURN_RECIPE})
    stack = c.create_stack(Name="load", Region="us-east-1",
                           ServiceRoleArn="arn:aws:iam::123456789012:role/r",
                           DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/p",
                           UseCustomCookbooks=True,
                           CustomCookbooksSource={"Type": "git", "Url": f"{git_http}/burn-cookbooks/.git",
                                                  "Revision": "main"})["StackId"]
    layer = c.create_layer(StackId=stack, Type="custom", Name="Workers", Shortname="workers")["LayerId"]
    steady = c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro")["InstanceId"]
    spare = c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro",
                              AutoScalingType="load")["InstanceId"]
    try:
        c.start_instance(InstanceId=steady)
        c.get_waiter("instance_online").wait(InstanceIds=[steady], WaiterConfig=FAST)
        c.set_load_based_auto_scaling(
            LayerId=layer, Enable=True,
            UpScaling={"InstanceCount": 1, "ThresholdsWaitTime": WAIT, "IgnoreMetricsTime": 1, "CpuThreshold": UP_CPU},
            DownScaling={"InstanceCount": 1, "ThresholdsWaitTime": WAIT, "IgnoreMetricsTime": 1,
                         "CpuThreshold": DOWN_CPU})
        got = c.describe_load_based_auto_scaling(LayerIds=[layer])["LoadBasedAutoScalingConfigurations"][0]
        assert got["Enable"] and got["UpScaling"]["CpuThreshold"] == UP_CPU

        # Before the load: a quiet layer (the steady instance's boot is over) and the spare stopped.
        # A correctness wait: on a shared machine others' work may briefly look like load.
        eventually(lambda: status(c, spare) == "stopped"
                   and (lambda r: len(r) == 3 and max(r) < DOWN_CPU)(layer_cpu(scaling_server, layer)),
                   180, every=0.5, what="a quiet layer with its load instance stopped")
        before = api_get(scaling_server, "/api/events", {"StackId": stack, "Since": "0"})["LastSeq"]

        # The load: an execute_recipes deployment starts one burner per core in the steady instance.
        d = c.create_deployment(StackId=stack, InstanceIds=[steady],
                                Command={"Name": "execute_recipes", "Args": {"recipes": ["burn"]}},
                                CustomJson=json.dumps({"burn": {"marker": marker, "limit": BURN_LIMIT}}))["DeploymentId"]
        c.get_waiter("deployment_successful").wait(DeploymentIds=[d], WaiterConfig=FAST)
        assert len([p for p in burner_pids(marker)]) >= 2, "the recipe started no burner"

        # Scale up: the scheduler starts the load instance, which comes online.
        eventually(lambda: status(c, spare) != "stopped", 180, every=0.5, what="the load instance to be started")
        c.get_waiter("instance_online").wait(InstanceIds=[spare], WaiterConfig=FAST)

        # The load ends: scale down stops the load instance (Shutdown runs first).
        kill_burners(marker)
        eventually(lambda: status(c, spare) != "online", 180, every=0.5, what="the load instance to be stopped")
        c.get_waiter("instance_stopped").wait(InstanceIds=[spare], WaiterConfig=FAST)

        events = events_since(scaling_server, stack, before)
        scaling = [e for e in events if e["Type"] == "load_scaling"]
        assert [e["Detail"]["Direction"] for e in scaling][:2] == ["up", "down"], scaling
        for e in scaling[:2]:
            assert e["LayerId"] == layer and e["Detail"]["InstanceIds"] == [spare], e
        # The 24/7 instance is never touched: no status change since the load began.
        assert status(c, steady) == "online"
        assert not [e for e in events if e["Type"] == "instance_status" and e.get("InstanceId") == steady]
        spare_statuses = [e["Detail"]["To"] for e in events
                          if e["Type"] == "instance_status" and e.get("InstanceId") == spare]
        assert "online" in spare_statuses and spare_statuses[-1] == "stopped", spare_statuses
        commands = [x["Type"] for x in c.describe_commands(InstanceId=spare)["Commands"]]
        assert "setup" in commands and "shutdown" in commands
    finally:
        kill_burners(marker)
        c.set_load_based_auto_scaling(LayerId=layer, Enable=False)
        for inst in c.describe_instances(StackId=stack)["Instances"]:
            if inst["Status"] != "stopped":
                c.stop_instance(InstanceId=inst["InstanceId"], Force=True)
        stop_all(c, [stack])
        for inst in c.describe_instances(StackId=stack)["Instances"]:
            if inst["Status"] == "stopped":
                c.delete_instance(InstanceId=inst["InstanceId"])
