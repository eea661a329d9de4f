"""Scaling and healing latencies for BENCHMARKS.md, through the public API against
`opsworks server --local-instances` with short timings (--scheduler-interval 1s --scaling-minute 1s
--metrics-interval 1 --healing-timeout 10):

1. load-based scale-up: a layer with one 24/7 instance online and one stopped `load` instance, up
   threshold CPU > 80 % for ThresholdsWaitTime 3 (3 s), down CPU < 50 % for 3. Time from two host
   CPU burners starting (local instances read the host's /proc/stat, so the load shows in the
   layer's metrics) to the load instance online; then the burners end and the time to stopped.
2. healing: SIGKILL the 24/7 instance's agent; time until the instance is online again.

Bounded: RUNS rounds of each (default 3), each wait capped at 180 s; every instance is stopped
and deleted at the end and the burners are killed even on failure.

    python bench/lifecycle/scaling.py OPSWORKS_BIN [RUNS]     # as root, the conformance venv's python
"""

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import boto3
from botocore.config import Config

AKID, SECRET = "AKIDBENCH", "bench-secret"
HEAL_TIMEOUT = 10
WAIT = 3
FLAGS = ["--scheduler-interval", "1s", "--scaling-minute", "1s", "--metrics-interval", "1",
         "--healing-timeout", str(HEAL_TIMEOUT)]
CAP = 180


def until(fn, what):
    deadline = time.monotonic() + CAP
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    data = tempfile.mkdtemp(prefix="opsworks-bench-scaling-", dir="/var/tmp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OPSWORKS_ROOT_ACCESS_KEY_ID=AKID, OPSWORKS_ROOT_SECRET_ACCESS_KEY=SECRET, OPSWORKS_LOG="warn")
    server = subprocess.Popen([binary, "server", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                               "--local-instances", *FLAGS], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    while not server.stdout.readline().decode().startswith("listening on"):
        pass
    c = boto3.client("opsworks", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                     aws_access_key_id=AKID, aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))
    burners = []
    stack = None

    def status(i):
        return c.describe_instances(InstanceIds=[i])["Instances"][0]["Status"]

    def stop_burners():
        for b in burners:  # each burner leads its own process group: `timeout` and its `sh`
            try:
                os.killpg(b.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            b.wait()
        burners.clear()

    try:
        stack = c.create_stack(Name="bench", Region="us-east-1", ServiceRoleArn="arn:aws:iam::1:role/r",
                               DefaultInstanceProfileArn="arn:aws:iam::1:instance-profile/p")["StackId"]
        layer = c.create_layer(StackId=stack, Type="custom", Name="Workers", Shortname="workers",
                               EnableAutoHealing=True)["LayerId"]
        steady = c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro")["InstanceId"]
        spare = c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro",
                                  AutoScalingType="load")["InstanceId"]
        c.start_instance(InstanceId=steady)
        until(lambda: status(steady) == "online", "the 24/7 instance online")
        c.set_load_based_auto_scaling(
            LayerId=layer, Enable=True,
            UpScaling={"InstanceCount": 1, "ThresholdsWaitTime": WAIT, "IgnoreMetricsTime": 1, "CpuThreshold": 80},
            DownScaling={"InstanceCount": 1, "ThresholdsWaitTime": WAIT, "IgnoreMetricsTime": 1, "CpuThreshold": 50})

        up, down = [], []
        for _ in range(runs):
            until(lambda: status(spare) == "stopped", "the load instance stopped")
            time.sleep(WAIT + 3)  # a quiet window before the load
            t0 = time.monotonic()
            burners.extend(subprocess.Popen(["timeout", "300", "sh", "-c", "while :; do :; done"],
                                             start_new_session=True) for _ in range(2))
            until(lambda: status(spare) == "online", "the load instance online")
            up.append(time.monotonic() - t0)
            stop_burners()
            t0 = time.monotonic()
            until(lambda: status(spare) == "stopped", "the load instance stopped")
            down.append(time.monotonic() - t0)
        print(f"| Load-based scale-up: CPU burners start to the load instance online (wait {WAIT} s, {runs} runs) | "
              f"median {statistics.median(up):.1f} s, max {max(up):.1f} s ({', '.join(f'{x:.1f}' for x in up)}) |")
        print(f"| Load-based scale-down: burners end to the load instance stopped (Shutdown included, {runs} runs) | "
              f"median {statistics.median(down):.1f} s, max {max(down):.1f} s ({', '.join(f'{x:.1f}' for x in down)}) |")
        c.set_load_based_auto_scaling(LayerId=layer, Enable=False)

        healed = []
        for _ in range(runs):
            until(lambda: status(steady) == "online", "the 24/7 instance online")
            time.sleep(2)
            pids = []
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                    except OSError:
                        continue
                    if b"agent" in argv and steady.encode() in argv:
                        pids.append(int(pid))
            assert pids, "no agent process"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            t0 = time.monotonic()
            until(lambda: status(steady) != "online", "connection_lost")
            until(lambda: status(steady) == "online", "the healed instance online")
            healed.append(time.monotonic() - t0)
        m = statistics.median(healed)
        print(f"| Agent SIGKILLed to the healed instance online (`--healing-timeout {HEAL_TIMEOUT}`, {runs} runs) | "
              f"median {m:.1f} s = timeout + {m - HEAL_TIMEOUT:.1f} s, max {max(healed):.1f} s "
              f"({', '.join(f'{x:.1f}' for x in healed)}) |")
    finally:
        stop_burners()
        if stack:
            for layer_doc in c.describe_layers(StackId=stack)["Layers"]:
                c.set_load_based_auto_scaling(LayerId=layer_doc["LayerId"], Enable=False)
            for inst in c.describe_instances(StackId=stack)["Instances"]:
                if inst["Status"] != "stopped":
                    c.stop_instance(InstanceId=inst["InstanceId"], Force=True)
            deadline = time.time() + 60
            while time.time() < deadline and any(i["Status"] != "stopped" for i in c.describe_instances(StackId=stack)["Instances"]):
                time.sleep(0.2)
            for inst in c.describe_instances(StackId=stack)["Instances"]:
                c.delete_instance(InstanceId=inst["InstanceId"])
        server.terminate()
        server.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
