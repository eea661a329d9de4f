#!/usr/bin/env python3
"""Vendors botocore 1.35.99's iam, sts, rds, elb and ec2 service models, trimmed.

    scripts/vendor-aws-models.py [--wheel botocore-1.35.99-py3-none-any.whl]

Without --wheel it runs `pip download botocore==1.35.99` into a temporary directory. For each
service it keeps the operations we serve (SERVED below) and every shape they reach (input, output,
errors, recursively), drops every `documentation` string, and adds `allOperations`: the names of
every operation of the full service, so the server can answer an operation it does not serve with
a clear "not supported" error instead of "unknown operation". Output:
crates/opsworks-api/model/<service>.json (compact, sorted keys, so regeneration is byte-stable).
"""

import argparse
import gzip
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

VERSION = "1.35.99"

# service -> (api version directory, operations served)
SERVED = {
    "iam": (
        "2010-05-08",
        [
            "CreateUser", "GetUser", "ListUsers", "UpdateUser", "DeleteUser",
            "CreateAccessKey", "ListAccessKeys", "UpdateAccessKey", "DeleteAccessKey",
            "GetAccessKeyLastUsed",
            "CreateGroup", "GetGroup", "ListGroups", "DeleteGroup",
            "AddUserToGroup", "RemoveUserFromGroup", "ListGroupsForUser",
            "PutUserPolicy", "GetUserPolicy", "ListUserPolicies", "DeleteUserPolicy",
            "PutGroupPolicy", "GetGroupPolicy", "ListGroupPolicies", "DeleteGroupPolicy",
            "CreatePolicy", "GetPolicy", "GetPolicyVersion", "ListPolicies", "DeletePolicy",
            "AttachUserPolicy", "DetachUserPolicy", "ListAttachedUserPolicies",
            "AttachGroupPolicy", "DetachGroupPolicy", "ListAttachedGroupPolicies",
            "CreateLoginProfile", "GetLoginProfile", "UpdateLoginProfile", "DeleteLoginProfile",
        ],
    ),
    "sts": ("2011-06-15", ["GetCallerIdentity"]),
    "rds": (
        "2014-10-31",
        ["CreateDBInstance", "DescribeDBInstances", "ModifyDBInstance", "RebootDBInstance",
         "DeleteDBInstance"],
    ),
    "elb": (
        "2012-06-01",
        ["CreateLoadBalancer", "DescribeLoadBalancers", "DeleteLoadBalancer",
         "ConfigureHealthCheck", "DescribeInstanceHealth", "RegisterInstancesWithLoadBalancer",
         "DeregisterInstancesFromLoadBalancer"],
    ),
    "ec2": (
        "2016-11-15",
        ["AllocateAddress", "DescribeAddresses", "ReleaseAddress", "AssociateAddress",
         "DisassociateAddress", "CreateVolume", "DescribeVolumes", "DeleteVolume", "AttachVolume",
         "DetachVolume",
         # `aws opsworks register` calls it for EC2 hosts (shared/reference/aws-services.md §12.5).
         "DescribeInstances"],
    ),
}


def strip_docs(value):
    if isinstance(value, dict):
        return {k: strip_docs(v) for k, v in value.items()
                if k not in ("documentation", "documentationUrl")}
    if isinstance(value, list):
        return [strip_docs(v) for v in value]
    return value


def reached(model, roots):
    shapes = model["shapes"]
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        refs = list(shape.get("members", {}).values())
        refs += [shape[k] for k in ("member", "key", "value") if k in shape]
        todo.extend(r["shape"] for r in refs)
    return seen


def trim(model, served):
    ops = model["operations"]
    missing = [o for o in served if o not in ops]
    if missing:
        sys.exit(f"operations not in the model: {missing}")
    roots = []
    for name in served:
        op = ops[name]
        roots += [op[k]["shape"] for k in ("input", "output") if k in op]
        roots += [e["shape"] for e in op.get("errors", [])]
    keep = reached(model, roots)
    out = {
        "version": model.get("version", "2.0"),
        "metadata": model["metadata"],
        "operations": {n: ops[n] for n in served},
        "shapes": {n: s for n, s in model["shapes"].items() if n in keep},
        "allOperations": sorted(ops),
    }
    return strip_docs(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", help=f"botocore-{VERSION}-py3-none-any.whl")
    args = parser.parse_args()
    dest = pathlib.Path(__file__).resolve().parent.parent / "crates/opsworks-api/model"
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            f"botocore=={VERSION}", "-d", tmp], check=True)
            wheel = next(pathlib.Path(tmp).glob("botocore-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for service, (api, served) in SERVED.items():
                raw = zf.read(f"botocore/data/{service}/{api}/service-2.json.gz")
                model = json.loads(gzip.decompress(raw))
                trimmed = trim(model, served)
                path = dest / f"{service}.json"
                path.write_text(json.dumps(trimmed, sort_keys=True, separators=(",", ":")) + "\n")
                print(f"{path.name}: {len(trimmed['operations'])} of "
                      f"{len(trimmed['allOperations'])} operations, "
                      f"{len(trimmed['shapes'])} shapes, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
