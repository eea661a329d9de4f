"""Time-based scaling and the event log, end to end: the scheduler (ticking every second) starts a
timer instance scheduled on for this hour and stops one scheduled off; the event stream (signed
SigV4 GET, read as plain server-sent events) shows an instance's status changes as it starts."""

import datetime
import http.client
import json
import threading
import time
import urllib.parse

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import AKID, SECRET, Server, client_for

FAST = {"Delay": 1, "MaxAttempts": 180}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@pytest.fixture(scope="module")
def scaling_server(workdir):
    srv = Server(workdir / "scaling-data", workdir / "scaling-server.log", ["--scheduler-interval", "1s"])
    srv.start()
    yield srv
    c = client_for(srv)
    for stack in c.describe_stacks()["Stacks"]:
        for inst in c.describe_instances(StackId=stack["StackId"])["Instances"]:
            if inst.get("AutoScalingType") == "timer":
                c.set_time_based_auto_scaling(InstanceId=inst["InstanceId"])  # all off: no restart
            if inst["Status"] != "stopped":
                c.stop_instance(InstanceId=inst["InstanceId"], Force=True)
    time.sleep(2)
    srv.stop()


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
