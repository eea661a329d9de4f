#!/usr/bin/env bash
# API throughput and latency: signed DescribeStacks and DescribeInstances (a stack of 1,000
# instances) from concurrent clients on loopback, with the server's CPU and peak memory; then
# DescribeStacks signed by an IAM user whose policy has 10 statements against the same as root,
# alternating runs, with the user's cost over root's.
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
    local op="$1" body="$2" label="${3:-$1}"
    local before after
    before="$(cpu_ticks)"
    local json
    json="$(lg run --operation "$op" --body "$body" --concurrency "$conc" --seconds "$secs")"
    after="$(cpu_ticks)"
    python3 - "$json" "$before" "$after" "$hz" "$secs" "$label" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); before, after, hz, secs = map(float, sys.argv[2:6]); label = sys.argv[6]
cpu = (after - before) / hz / r["seconds"] * 100
print(f'| {label} | {r["concurrency"]} | {r["requests"]} | {r["errors"]} | {r["requests_per_second"]:.0f} | {r["p50_ms"]:.2f} | {r["p99_ms"]:.2f} | {cpu:.0f}% |')
PY
}
echo "| operation | clients | requests | errors | requests/s | p50 ms | p99 ms | server CPU |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
run DescribeStacks '{}'
run DescribeInstances "{\"StackId\": \"$stack\"}"

# Root against an IAM user with 10 policy statements, same server, runs alternated (3 each).
read -r user_key user_secret < <(lg iam-user --name bench-user --statements 10)
as_user() { AWS_ACCESS_KEY_ID="$user_key" AWS_SECRET_ACCESS_KEY="$user_secret" "$@"; }
echo
echo "| DescribeStacks signed by | clients | requests | errors | requests/s | p50 ms | p99 ms | server CPU |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
rows=()
for i in 1 2 3; do
    rows+=("$(run DescribeStacks '{}' "root ($i)")")
    rows+=("$(as_user run DescribeStacks '{}' "IAM user, 10 statements ($i)")")
done
printf '%s\n' "${rows[@]}"
printf '%s\n' "${rows[@]}" | python3 -c '
import sys
root, user = [], []
for line in sys.stdin:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    (user if cells[0].startswith("IAM") else root).append(float(cells[4]))
r, u = sum(root) / len(root), sum(user) / len(user)
print(f"\nmean requests/s: root {r:.0f}, IAM user {u:.0f}: the IAM user costs {(r / u - 1) * 100:.1f} % over root")
'
echo
echo "server peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status); now: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
