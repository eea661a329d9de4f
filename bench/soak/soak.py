"""Soak benchmark (issue 11 item 18): a real server with local instances under mixed API load and
instance churn for SOAK_SECONDS, its resident memory and open files sampled from /proc. Fails when
any API call or churn step errs, or when RSS or open files grow past the tolerance; prints a
sample table and a summary row for BENCHMARKS.md. Run through bench/soak/run.sh.

API load: one client at SOAK_API_RATE calls a second, a fixed mix of reads (DescribeStacks,
-Layers, -Instances, -Apps, -Deployments, -Commands, -StackSummary, -ServiceErrors) and writes on
a scratch stack (layers, apps and instances created, updated and deleted; tags), each created
resource deleted again, so the store does not grow with the load. Churn: round robin over the
churn stack's instances — stop one and wait for `stopped`, start it and wait for `online`, deploy
a new commit of the app and wait for success — with SOAK_CHURN_PAUSE seconds between steps.

Growth check: the baseline is the median of the samples in the first third after the warm-up
(SOAK_WARMUP seconds, default 10% of the run, at least 60 s), the end the median of the last
third. RSS may end at most SOAK_RSS_TOLERANCE (a fraction, 0.25) above its baseline, open files
at most SOAK_FD_TOLERANCE (16) above theirs.
"""

import os
import random
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[2] / "tests/lifecycle"))
from conftest import Server, client_for, commit, make_repo, stop_all_instances  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "3600"))
SAMPLE = float(os.environ.get("SOAK_SAMPLE_SECONDS", "30"))
API_RATE = float(os.environ.get("SOAK_API_RATE", "20"))
CHURN_PAUSE = float(os.environ.get("SOAK_CHURN_PAUSE", "5"))
INSTANCES = int(os.environ.get("SOAK_INSTANCES", "3"))
RSS_TOLERANCE = float(os.environ.get("SOAK_RSS_TOLERANCE", "0.25"))
FD_TOLERANCE = int(os.environ.get("SOAK_FD_TOLERANCE", "16"))
WARMUP = float(os.environ.get("SOAK_WARMUP", str(max(60.0, SECONDS * 0.1))))
WAIT = {"Delay": 1, "MaxAttempts": 180}
ARN = {"ServiceRoleArn": "arn:aws:iam::123456789012:role/aws-opsworks-service-role",
       "DefaultInstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role"}


class Tally:
    """Counts shared by the load threads and the sampler."""

    def __init__(self):
        self.lock = threading.Lock()
        self.api_calls = 0
        self.churn = {"start": 0, "stop": 0, "deploy": 0}
        self.errors = []

    def error(self, where, e):
        with self.lock:
            self.errors.append(f"{time.strftime('%H:%M:%S')} {where}: {type(e).__name__}: {e}")


def proc_sample(pid):
    """RSS (KiB), open files and threads of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = int(fields["VmRSS"].split()[0])
    threads = int(fields["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def api_load(c, stop, tally, churn_stack, churn_instances):
    """Mixed API calls at API_RATE a second until `stop`; creates are deleted again."""
    rng = random.Random(11)
    scratch = c.create_stack(Name="soak-scratch", Region="us-east-1", **ARN)["StackId"]
    stack_arn = c.describe_stacks(StackIds=[scratch])["Stacks"][0]["Arn"]
    layers, apps, instances = [], [], []
    base = c.create_layer(StackId=scratch, Type="custom", Name="base", Shortname="base")["LayerId"]
    n = 0

    def write():
        nonlocal n
        n += 1
        kind = rng.choice(["layer", "app", "instance", "tag"])
        if kind == "layer":
            if layers:
                lid = layers.pop()
                c.update_layer(LayerId=lid, Name=f"renamed-{n}")
                c.delete_layer(LayerId=lid)
            else:
                layers.append(c.create_layer(StackId=scratch, Type="custom", Name=f"l{n}", Shortname=f"l{n}")["LayerId"])
        elif kind == "app":
            if apps:
                aid = apps.pop()
                c.update_app(AppId=aid, Description=f"update {n}",
                             Environment=[{"Key": "N", "Value": str(n), "Secure": True}])
                c.delete_app(AppId=aid)
            else:
                apps.append(c.create_app(StackId=scratch, Name=f"a{n}", Type="other",
                                         AppSource={"Type": "git", "Url": "https://git.invalid/a.git"})["AppId"])
        elif kind == "instance":
            if instances:
                iid = instances.pop()
                c.update_instance(InstanceId=iid, Hostname=f"soak{n}")
                c.delete_instance(InstanceId=iid)
            else:
                instances.append(c.create_instance(StackId=scratch, LayerIds=[base],
                                                   InstanceType="t3.micro")["InstanceId"])
        else:
            c.tag_resource(ResourceArn=stack_arn, Tags={"n": str(n)})
            c.list_tags(ResourceArn=stack_arn)
            c.untag_resource(ResourceArn=stack_arn, TagKeys=["n"])

    reads = [
        lambda: c.describe_stacks(),
        lambda: c.describe_layers(StackId=churn_stack),
        lambda: c.describe_instances(StackId=churn_stack),
        lambda: c.describe_apps(StackId=churn_stack),
        lambda: c.describe_deployments(StackId=churn_stack),
        lambda: c.describe_commands(InstanceId=rng.choice(churn_instances)),
        lambda: c.describe_stack_summary(StackId=churn_stack),
        lambda: c.describe_service_errors(StackId=churn_stack),
    ]
    period = 1.0 / API_RATE
    next_at = time.monotonic()
    while not stop.is_set():
        op = write if rng.random() < 0.3 else rng.choice(reads)
        try:
            op()
        except Exception as e:  # noqa: BLE001 - every failure is reported and fails the soak
            tally.error("api", e)
        with tally.lock:
            tally.api_calls += 1
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            next_at = time.monotonic()  # behind: no burst to catch up
    for lid in layers:
        c.delete_layer(LayerId=lid)
    for aid in apps:
        c.delete_app(AppId=aid)
    for iid in instances:
        c.delete_instance(InstanceId=iid)


def churn(c, stop, tally, stack, app, repo, ids):
    """Stop, start and deploy round robin until `stop`; each step waited for."""
    step = 0
    while not stop.is_set():
        iid = ids[step // 3 % len(ids)]
        action = ("stop", "start", "deploy")[step % 3]
        try:
            if action == "stop":
                c.stop_instance(InstanceId=iid)
                c.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig=WAIT)
            elif action == "start":
                c.start_instance(InstanceId=iid)
                c.get_waiter("instance_online").wait(InstanceIds=[iid], WaiterConfig=WAIT)
            else:
                commit(repo, {"VERSION": f"{step}\n"}, f"soak {step}")
                d = c.create_deployment(StackId=stack, AppId=app, Command={"Name": "deploy"})["DeploymentId"]
                c.get_waiter("deployment_successful").wait(DeploymentIds=[d], WaiterConfig=WAIT)
            with tally.lock:
                tally.churn[action] += 1
        except Exception as e:  # noqa: BLE001 - reported, fails the soak
            tally.error(f"churn {action} {iid}", e)
        step += 1
        stop.wait(CHURN_PAUSE)


def median(values):
    return statistics.median(values) if values else float("nan")


def main():
    workdir = Path(os.environ.get("SOAK_DIR") or f"/var/tmp/opsworks-soak-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    srv = Server(workdir / "data", workdir / "server.log", env={"OPSWORKS_LOG": "warn"})
    srv.start()
    c = client_for(srv)
    tally = Tally()
    stop = threading.Event()
    samples = []  # (elapsed s, rss KiB, fds, threads, api calls, churn steps, errors)
    try:
        repo = make_repo(workdir / "soak-app", {"VERSION": "0\n"})
        stack = c.create_stack(Name="soak", Region="us-east-1", **ARN)["StackId"]
        layer = c.create_layer(StackId=stack, Type="custom", Name="Churn", Shortname="churn")["LayerId"]
        app = c.create_app(StackId=stack, Name="Soak", Shortname="soak", Type="other",
                           AppSource={"Type": "git", "Url": str(repo), "Revision": "main"})["AppId"]
        ids = [c.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro",
                                 RootDeviceType="ebs" if i % 2 == 0 else "instance-store")["InstanceId"]
               for i in range(INSTANCES)]
        for iid in ids:
            c.start_instance(InstanceId=iid)
        c.get_waiter("instance_online").wait(InstanceIds=ids, WaiterConfig=WAIT)

        threads = [threading.Thread(target=api_load, args=(client_for(srv), stop, tally, stack, ids), daemon=True),
                   threading.Thread(target=churn, args=(client_for(srv), stop, tally, stack, app, repo, ids),
                                    daemon=True)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        print(f"soak: {SECONDS} s, API {API_RATE:g}/s, {INSTANCES} churning instances, sample every {SAMPLE:g} s; "
              f"server pid {srv.proc.pid}, dir {workdir}", flush=True)
        print(f"{'t (s)':>7} {'RSS MiB':>8} {'fds':>5} {'threads':>7} {'API calls':>9} {'churn':>6} {'errors':>6}")
        while True:
            elapsed = time.monotonic() - t0
            rss, fds, nthreads = proc_sample(srv.proc.pid)
            with tally.lock:
                steps = sum(tally.churn.values())
                row = (elapsed, rss, fds, nthreads, tally.api_calls, steps, len(tally.errors))
            samples.append(row)
            print(f"{row[0]:7.0f} {row[1] / 1024:8.1f} {row[2]:5d} {row[3]:7d} {row[4]:9d} {row[5]:6d} {row[6]:6d}",
                  flush=True)
            if elapsed >= SECONDS or any(not t.is_alive() for t in threads):
                break
            time.sleep(min(SAMPLE, max(0.0, SECONDS - elapsed)))
        stop.set()
        for t in threads:
            t.join(300)
    except Exception:
        traceback.print_exc()
        tally.error("soak", RuntimeError("the soak itself failed (traceback above)"))
    finally:
        stop.set()
        try:
            stop_all_instances(c, delete=True, seconds=120)
        finally:
            srv.stop()
    return report(samples, tally)


def report(samples, tally):
    """Prints the verdict and a BENCHMARKS.md row; the exit status."""
    after = [s for s in samples if s[0] >= WARMUP]
    third = max(1, len(after) // 3)
    first, last = after[:third], after[-third:]
    rss0, rss1 = median([s[1] for s in first]), median([s[1] for s in last])
    fd0, fd1 = median([s[2] for s in first]), median([s[2] for s in last])
    duration = samples[-1][0] if samples else 0
    calls = samples[-1][4] if samples else 0
    problems = list(tally.errors)
    if len(after) < 3:
        problems.append(f"too few samples after the {WARMUP:.0f} s warm-up ({len(after)}): run longer or sample more often")
    else:
        if rss1 > rss0 * (1 + RSS_TOLERANCE):
            problems.append(f"RSS grew from {rss0 / 1024:.1f} to {rss1 / 1024:.1f} MiB (tolerance {RSS_TOLERANCE:.0%})")
        if fd1 > fd0 + FD_TOLERANCE:
            problems.append(f"open files grew from {fd0:.0f} to {fd1:.0f} (tolerance +{FD_TOLERANCE})")
    ch = tally.churn
    print()
    print("| duration | API calls (rate) | churn: stops / starts / deploys | errors | RSS MiB: after warm-up → end (max) | open files: after warm-up → end (max) |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {duration / 60:.1f} min | {calls:,} ({calls / max(duration, 1):.1f}/s) | {ch['stop']} / {ch['start']} / {ch['deploy']} "
          f"| {len(tally.errors)} | {rss0 / 1024:.1f} → {rss1 / 1024:.1f} ({max((s[1] for s in samples), default=0) / 1024:.1f}) "
          f"| {fd0:.0f} → {fd1:.0f} ({max((s[2] for s in samples), default=0)}) |")
    for p in problems[:20]:
        print(f"FAIL: {p}")
    if len(problems) > 20:
        print(f"FAIL: ... and {len(problems) - 20} more")
    print("soak: " + ("failed" if problems else "passed"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
