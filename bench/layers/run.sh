#!/usr/bin/env bash
# Layers benchmark (BENCHMARKS.md "Layers"): StartStack to online, then a deploy under load through
# the lb layer: lb + nodejs-app (test_bench_layers.py), then rails-app, java-app and
# monitoring-master (test_bench_app_layers.py). Needs root (local instances) and the conformance
# venv, like tests/lifecycle.
#   OPSWORKS_BIN=target/debug/opsworks bench/layers/run.sh [test file...]   env: BENCH_CLIENTS (default 8)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${OPSWORKS_VENV:-$HOME/.cache/opsworks-conformance-venv}"
: "${OPSWORKS_BIN:?set OPSWORKS_BIN to the opsworks binary}"
cd "$here"
if [ $# -eq 0 ]; then set -- test_bench_layers.py test_bench_app_layers.py; fi
exec "$venv/bin/python" -m pytest -x -q -s -p no:cacheprovider "$@"
