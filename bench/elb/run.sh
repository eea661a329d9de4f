#!/usr/bin/env bash
# ELB benchmark (BENCHMARKS.md "Load balancers"): requests/s and p99 through a load balancer (HAProxy in
# its appliance machine) against the same HAProxy configuration run directly on the host, same
# backends, same run; then the requests dropped while an instance behind it stops (goal 0).
# Needs root (local instances) and the conformance venv; run under flock /var/tmp/opsworks-instances.lock.
#   OPSWORKS_BIN=target/debug/opsworks bench/elb/run.sh      env: BENCH_CLIENTS (8), BENCH_SECONDS (10)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${OPSWORKS_VENV:-$HOME/.cache/opsworks-conformance-venv}"
: "${OPSWORKS_BIN:?set OPSWORKS_BIN to the opsworks binary}"
cd "$here"
exec "$venv/bin/python" -m pytest -x -q -s -p no:cacheprovider test_bench_elb.py "$@"
