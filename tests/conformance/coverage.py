"""Coverage report: which of the model's operations the server implements.

Reads service-2.json from the installed botocore (the same model boto3 and awscli use), calls every
operation once with a minimal input against a real server, and prints `implemented N/74`. An
operation counts as implemented when the answer is anything but `UnsupportedOperationException`.
Answers that no AWS service gives (HTTP 5xx, non-JSON errors) are listed as anomalies.

The minimal input fills exactly the required members, with values of the modelled types (enums take
their first value, IDs are fresh UUIDs), so a server that validates before it dispatches still
reaches its "not supported" answer for the operations it lacks.

Usage: python coverage.py [--endpoint URL] [-v]   (without --endpoint it starts its own server)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness import Server, load_model, minimal_input, raw_call


def report(endpoint: str, verbose: bool = False) -> tuple[int, int]:
    model = load_model()
    ops = sorted(model["operations"])
    unsupported: list[str] = []
    anomalies: list[str] = []
    for op in ops:
        try:
            resp = raw_call(endpoint, op, minimal_input(model, op))
        except Exception as exc:  # noqa: BLE001 -- a dropped connection is an anomaly of the server, not of the report
            anomalies.append(f"{op}: request failed: {exc}")
            continue
        if resp.code == "UnsupportedOperationException":
            unsupported.append(op)
            if op not in resp.message:
                anomalies.append(f"{op}: UnsupportedOperationException message does not name it: {resp.message!r}")
            continue
        if verbose:
            print(f"  {op}: HTTP {resp.status} {resp.code or ''} {resp.message[:100]}")
        if resp.status >= 500:
            anomalies.append(f"{op}: HTTP {resp.status} {resp.body[:200]!r}")
        elif resp.status != 200 and resp.code is None:
            anomalies.append(f"{op}: HTTP {resp.status} without an AWS error body: {resp.body[:200]!r}")
    implemented = len(ops) - len(unsupported)
    print(f"implemented {implemented}/{len(ops)}")
    if unsupported:
        print(f"unsupported ({len(unsupported)}): {', '.join(unsupported)}")
    for line in anomalies:
        print(f"anomaly: {line}")
    return implemented, len(ops)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="an already running server (root credentials of harness.py)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each implemented operation's answer")
    args = parser.parse_args()
    if args.endpoint:
        report(args.endpoint, args.verbose)
        return 0
    with tempfile.TemporaryDirectory(prefix="opsworks-coverage-") as tmp:
        server = Server(Path(tmp) / "data", Path(tmp) / "server.log")
        endpoint = server.start()
        try:
            report(endpoint, args.verbose)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
