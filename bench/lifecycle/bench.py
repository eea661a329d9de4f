"""Lifecycle figures for BENCHMARKS.md, measured through the public API against a release server
with local instances: StartInstance to online (trivial Setup), command delivery latency
(CreateDeployment to the agent acknowledging), Configure fan-out to N instances, and the idle
agent's memory and CPU. Bounded: at most N instances, all stopped and deleted at the end.

    python bench/lifecycle/bench.py OPSWORKS_BIN [N]
"""

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

import boto3
from botocore.config import Config

AKID, SECRET = "AKIDBENCH", "bench-secret"
HEAL_TIMEOUT = 10  # seconds of agent silence before connection_lost


def parse(ts):
    return datetime.fromisoformat(ts)


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    data = tempfile.mkdtemp(prefix="opsworks-bench-", dir="/var/tmp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OPSWORKS_ROOT_ACCESS_KEY_ID=AKID, OPSWORKS_ROOT_SECRET_ACCESS_KEY=SECRET, OPSWORKS_LOG="warn")
    server = subprocess.Popen([binary, "server", "--listen", f"127.0.0.1:{port}", "--data-dir", data, "--local-instances",
                               "--healing-timeout", str(HEAL_TIMEOUT)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    while not server.stdout.readline().decode().startswith("listening on"):
        pass
    c = boto3.client("opsworks", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                     aws_access_key_id=AKID, aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))
    try:
        stack = c.create_stack(Name="bench", Region="us-east-1", ServiceRoleArn="arn:aws:iam::1:role/r",
                               DefaultInstanceProfileArn="arn:aws:iam::1:instance-profile/p")["StackId"]
        layer = c.create_layer(StackId=stack, Type="custom", Name="Workers", Shortname="workers")["LayerId"]

        # 1. StartInstance to online, one instance at a time (trivial Setup: the built-in recipes).
        ids = [c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro")["InstanceId"] for _ in range(5)]
        start_times = []
        for i in ids:
            t0 = time.monotonic()
            c.start_instance(InstanceId=i)
            while c.describe_instances(InstanceIds=[i])["Instances"][0]["Status"] != "online":
                time.sleep(0.02)
            start_times.append(time.monotonic() - t0)
        print(f"| StartInstance to online (5 instances, one at a time) | median {statistics.median(start_times):.2f} s, max {max(start_times):.2f} s |")

        # 2. Command delivery latency: CreateDeployment to the agent's acknowledgement (AcknowledgedAt),
        # on idle agents that are long-polling.
        lat = []
        for _ in range(20):
            time.sleep(0.2)
            d = c.create_deployment(StackId=stack, Command={"Name": "execute_recipes", "Args": {"recipes": ["opsworks_initial_setup"]}},
                                    InstanceIds=ids[:1])["DeploymentId"]
            while True:
                cmds = c.describe_commands(DeploymentId=d)["Commands"]
                if cmds and cmds[0]["Status"] != "pending":
                    break
                time.sleep(0.01)
            dep = c.describe_deployments(DeploymentIds=[d])["Deployments"][0]
            lat.append((parse(cmds[0]["AcknowledgedAt"]) - parse(dep["CreatedAt"])).total_seconds())
        lat.sort()
        print(f"| Command delivery, CreateDeployment to acknowledged (20 runs, 1 s timestamp resolution) | p50 {lat[len(lat)//2]:.0f} s, max {lat[-1]:.0f} s |")
        t_create, t_done = [], []
        for _ in range(20):
            time.sleep(0.2)
            t0 = time.monotonic()
            d = c.create_deployment(StackId=stack, Command={"Name": "execute_recipes", "Args": {"recipes": ["opsworks_initial_setup"]}},
                                    InstanceIds=ids[:1])["DeploymentId"]
            while c.describe_deployments(DeploymentIds=[d])["Deployments"][0]["Status"] == "running":
                time.sleep(0.005)
            t_done.append(time.monotonic() - t0)
        t_done.sort()
        print(f"| Empty command round trip, CreateDeployment to deployment successful (20 runs) | p50 {t_done[10]*1000:.0f} ms, p99 {t_done[-1]*1000:.0f} ms |")

        # 3. Configure fan-out: N online instances, then one configure deployment to all of them.
        more = [c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro")["InstanceId"]
                for _ in range(n - len(ids))]
        t0 = time.monotonic()
        for i in more:
            c.start_instance(InstanceId=i)
        while sum(x["Status"] == "online" for x in c.describe_instances(StackId=stack)["Instances"]) < n:
            time.sleep(0.1)
        boot_all = time.monotonic() - t0
        print(f"| {len(more)} more instances started at once, until all {n} online | {boot_all:.1f} s |")
        time.sleep(3)  # let the Configure storm of the joins settle
        t0 = time.monotonic()
        d = c.create_deployment(StackId=stack, Command={"Name": "configure"})["DeploymentId"]
        while c.describe_deployments(DeploymentIds=[d])["Deployments"][0]["Status"] == "running":
            time.sleep(0.02)
        print(f"| Configure fan-out to {n} online instances, CreateDeployment to all successful | {time.monotonic() - t0:.2f} s |")

        # 4. Healing: SIGKILL one instance's agent (its machine stops with it), time until online again.
        victim = ids[0]
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                except OSError:
                    continue
                if b"agent" in argv and victim.encode() in argv:
                    os.kill(int(pid), 9)
        t0 = time.monotonic()
        # Still "online" until the watchdog notices the silence; then the heal; then online again.
        while c.describe_instances(InstanceIds=[victim])["Instances"][0]["Status"] == "online":
            time.sleep(0.05)
        while c.describe_instances(InstanceIds=[victim])["Instances"][0]["Status"] != "online":
            time.sleep(0.05)
        healed = time.monotonic() - t0
        print(f"| Agent killed to the healed instance online (healing timeout {HEAL_TIMEOUT} s) | {healed:.1f} s = timeout + {healed - HEAL_TIMEOUT:.1f} s |")

        # 5. The idle agent: memory and CPU of `opsworks agent` processes over 30 s of idling.
        time.sleep(2)
        pids = [p for p in os.listdir("/proc") if p.isdigit() and b"\0agent\0" in open(f"/proc/{p}/cmdline", "rb").read()]
        rss = sorted(int(l.split()[1]) for p in pids for l in open(f"/proc/{p}/status") if l.startswith("VmRSS"))

        def ticks():
            return sum(int(open(f"/proc/{p}/stat").read().split(")")[1].split()[11]) +
                       int(open(f"/proc/{p}/stat").read().split(")")[1].split()[12]) for p in pids)
        t1 = ticks()
        time.sleep(30)
        cpu = (ticks() - t1) / os.sysconf("SC_CLK_TCK") / 30 / len(pids) * 100
        print(f"| Idle agent ({len(pids)} agents) | RSS median {rss[len(rss)//2]/1024:.1f} MB, max {rss[-1]/1024:.1f} MB; CPU {cpu:.3f} % of a core each |")
    finally:
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


if __name__ == "__main__":
    main()
