#!/usr/bin/env bash
# The whole test suite: every crate's tests, then the conformance suite with the real AWS clients.
# Usage: scripts/test.sh            (from anywhere; builds what it needs)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo test --workspace"
cargo test --workspace --no-fail-fast

echo "== conformance suite (boto3 1.35.99, awscli 1.36.40)"
cargo build -p opsworks
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
OPSWORKS_BIN="$target_dir/debug/opsworks" bash tests/conformance/run.sh

echo "== lifecycle suite (local instances: root, Linux namespaces, overlayfs)"
OPSWORKS_BIN="$target_dir/debug/opsworks" bash tests/lifecycle/run.sh
