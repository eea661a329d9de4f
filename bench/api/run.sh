#!/usr/bin/env bash
# API throughput and latency: signed DescribeStacks and DescribeInstances (a stack of 1,000
# instances) from concurrent clients on loopback, with the server's CPU and peak memory.
#   bench/api/run.sh [seconds-per-run] [concurrency]
# Bounded: each run lasts the given seconds (default 10) against 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-10}"
conc="${2:-32}"
cargo build --release -q -p opsworks -p opsworks-loadgen
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
data="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret
OPSWORKS_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID OPSWORKS_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY OPSWORKS_LOG=warn \
    "$target/opsworks" server --listen 127.0.0.1:0 --data-dir "$data" >"$data/out" 2>"$data/err" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$data/out" 2>/dev/null && break; sleep 0.1; done
endpoint="$(sed -n 's/^listening on //p' "$data/out")"
lg() { "$target/opsworks-loadgen" --endpoint "$endpoint" "$@"; }

stack="$(lg populate --instances 1000)"
for i in $(seq 9); do lg populate --instances 0 >/dev/null; done   # 10 stacks in all

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz="$(getconf CLK_TCK)"
run() {
    local op="$1" body="$2"
    local before after
    before="$(cpu_ticks)"
    local json
    json="$(lg run --operation "$op" --body "$body" --concurrency "$conc" --seconds "$secs")"
    after="$(cpu_ticks)"
    python3 - "$json" "$before" "$after" "$hz" "$secs" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); before, after, hz, secs = map(float, sys.argv[2:])
cpu = (after - before) / hz / r["seconds"] * 100
print(f'| {r["operation"]} | {r["concurrency"]} | {r["requests"]} | {r["errors"]} | {r["requests_per_second"]:.0f} | {r["p50_ms"]:.2f} | {r["p99_ms"]:.2f} | {cpu:.0f}% |')
PY
}
echo "| operation | clients | requests | errors | requests/s | p50 ms | p99 ms | server CPU |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
run DescribeStacks '{}'
run DescribeInstances "{\"StackId\": \"$stack\"}"
echo
echo "server peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status); now: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
