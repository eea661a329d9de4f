"""Monitoring end to end: a real local instance's agent samples /proc every second and sends the
samples; they come back from the JSON endpoint (signed as awscurl signs, and with the bearer token),
as an SVG chart, and in the Prometheus exposition with the instance's stack, layer and hostname."""

import json
import re
import time
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import AKID, SECRET, client_for, eventually, running_server

FAST = {"Delay": 1, "MaxAttempts": 120}
TOKEN = "lifecycle-metrics-token"


@pytest.fixture(scope="module")
def metrics_server(workdir):
    yield from running_server(workdir, "metrics", ["--metrics-interval", "1", "--metrics-token", TOKEN])


def get(srv, path, headers=None):
    req = urllib.request.Request(srv.endpoint + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def signed_get(srv, path):
    """A GET signed with SigV4 for service opsworks, as awscurl sends it."""
    req = AWSRequest(method="GET", url=srv.endpoint + path)
    SigV4Auth(Credentials(AKID, SECRET), "opsworks", "us-east-1").add_auth(req)
    return get(srv, path, dict(req.headers.items()))


def parse_exposition(text):
    """(name, labels, value) of every sample, with prometheus_client's parser when installed."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        out = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
            assert m, f"not an exposition line: {line!r}"
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3))))
        return out
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def test_an_instances_metrics_reach_json_svg_and_prometheus(metrics_server):
    c = client_for(metrics_server)
    stack = c.create_stack(Name="mon", Region="us-east-1",
                           ServiceRoleArn="arn:aws:iam::123456789012:role/r",
                           DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/p")["StackId"]
    layer = c.create_layer(StackId=stack, Type="custom", Name="Monitored", Shortname="monitored")["LayerId"]
    iid = c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro")["InstanceId"]
    c.start_instance(InstanceId=iid)
    c.get_waiter("instance_online").wait(InstanceIds=[iid], WaiterConfig=FAST)
    hostname = c.describe_instances(InstanceIds=[iid])["Instances"][0]["Hostname"]

    # Samples arrive every second; wait for a few.
    def series():
        status, text = signed_get(metrics_server, f"/api/metrics?InstanceId={iid}&Period=1h")
        assert status == 200, text
        doc = json.loads(text)
        return doc if len(doc["Timestamps"]) >= 3 else None

    doc = eventually(series, seconds=90)
    metrics = {m["Name"]: m for m in doc["Metrics"]}
    assert len(metrics) == 16
    last = {name: m["Average"][-1] for name, m in metrics.items()}
    assert last["memory_total"] > 0 and 0 < last["memory_used"] <= last["memory_total"]
    assert last["procs"] >= 1
    cpu = sum(last[k] for k in ("cpu_idle", "cpu_nice", "cpu_steal", "cpu_system", "cpu_user", "cpu_waitio"))
    assert cpu == pytest.approx(100, abs=1) or cpu == 0  # a second with no tick reads all zero
    assert abs(doc["Timestamps"][-1] - time.time()) < 30

    # The layer's aggregate and the bearer token.
    status, text = get(metrics_server, f"/api/metrics?LayerId={layer}&Period=1h",
                       {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, text
    assert json.loads(text)["InstanceIds"] == [iid]

    status, svg = get(metrics_server, f"/api/metrics/chart.svg?InstanceId={iid}&Metric=memory_used&Period=1h",
                      {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, svg
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert hostname in root.find("{http://www.w3.org/2000/svg}title").text

    status, text = get(metrics_server, "/metrics")
    assert status == 401 and json.loads(text)["__type"] == "MissingAuthenticationTokenException"
    status, text = get(metrics_server, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, text
    samples = parse_exposition(text)
    mine = [s for s in samples if s[0] == "opsworks_instance_memory_total" and s[1].get("instance_id") == iid]
    assert len(mine) == 1, text
    assert mine[0][1] == {"stack_id": stack, "layer_id": layer, "instance_id": iid, "hostname": hostname}
    assert mine[0][2] > 0
    connected = [s for s in samples if s[0] == "opsworks_agents_connected"]
    assert connected and connected[0][2] >= 1
