#!/usr/bin/env bash
# Soak benchmark (BENCHMARKS.md "Soak"; not in CI): an hour of mixed API load and instance churn
# (stop, start, deploy) against a real server with local instances, its RSS and open files sampled
# from /proc; fails on any API error or on growth past the tolerance. Root (local instances) and
# the conformance venv, like tests/lifecycle; run it under the instances lock:
#   flock /var/tmp/opsworks-instances.lock env OPSWORKS_BIN=target/release/opsworks bench/soak/run.sh
# env: SOAK_SECONDS (3600), SOAK_SAMPLE_SECONDS (30), SOAK_API_RATE (calls/s, 20),
#      SOAK_CHURN_PAUSE (s between churn steps, 5), SOAK_INSTANCES (3), SOAK_WARMUP (s, 10% >= 60),
#      SOAK_RSS_TOLERANCE (0.25), SOAK_FD_TOLERANCE (16), SOAK_DIR (work dir; removed after a pass)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${OPSWORKS_VENV:-$HOME/.cache/opsworks-conformance-venv}"
: "${OPSWORKS_BIN:?set OPSWORKS_BIN to the opsworks binary (a release build for the recorded figures)}"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "soak: the conformance venv $venv is missing; run tests/conformance/run.sh first" >&2
    exit 2
fi
export SOAK_DIR="${SOAK_DIR:-$(mktemp -d -p /var/tmp opsworks-soak-XXXXXX)}"
if "$venv/bin/python" "$here/soak.py"; then
    rm -rf "$SOAK_DIR"
else
    echo "soak: failed; the server's log and data are kept in $SOAK_DIR" >&2
    exit 1
fi
