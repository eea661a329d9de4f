#!/usr/bin/env bash
# API throughput and latency: signed DescribeStacks and DescribeInstances (a stack of 1,000
# instances) from concurrent clients on loopback, with the server's CPU and peak memory, beside
# moto_server 5.0.28 answering the same calls in the same run; then DescribeStacks signed by an IAM
# user whose policy has 10 statements against the same as root, alternating runs, with the user's
# cost over root's.
#   bench/api/run.sh [seconds-per-run] [concurrency]
# Bounded: each run lasts the given seconds (default 10) against 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-10}"
conc="${2:-16}"
cargo build --release -q -p opsworks -p opsworks-loadgen
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
data="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$data"' EXIT
export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret
OPSWORKS_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID OPSWORKS_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY OPSWORKS_LOG=warn \
    "$target/opsworks" server --listen 127.0.0.1:0 --data-dir "$data/opsworks" >"$data/out" 2>"$data/err" &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$data/out" 2>/dev/null && break; sleep 0.1; done
endpoint="$(sed -n 's/^listening on //p' "$data/out")"

# The peer: moto_server 5.0.28 (the AWS mock most projects test against), in its own venv,
# answering the same operations on the same machine, measured by the same load generator.
moto_venv="${MOTO_VENV:-$HOME/.cache/opsworks-moto-5.0.28-venv}"
if [ ! -x "$moto_venv/bin/moto_server" ]; then
    python3 -m venv "$moto_venv"
    # botocore of moto's time: later releases dropped OpsWorks's regions, and moto with them.
    "$moto_venv/bin/pip" install -q "moto[server]==5.0.28" "boto3==1.35.99" "botocore==1.35.99"
fi
moto_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$moto_venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$data/moto.out" 2>&1 &
pids+=($!)
moto_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$moto_port/" && break; sleep 0.1; done

hz="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run SERVER-NAME PID ENDPOINT OPERATION BODY: one bounded run, one table row.
run() {
    local name="$1" pid="$2" ep="$3" op="$4" body="$5"
    local before after json
    before="$(cpu_ticks "$pid")"
    json="$("$target/opsworks-loadgen" --endpoint "$ep" run --operation "$op" --body "$body" --concurrency "$conc" --seconds "$secs")"
    after="$(cpu_ticks "$pid")"
    python3 - "$json" "$before" "$after" "$hz" "$name" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); before, after, hz = map(float, sys.argv[2:5]); name = sys.argv[5]
cpu = (after - before) / hz / r["seconds"] * 100
print(f'| {name} | {r["operation"]} | {r["concurrency"]} | {r["requests"]} | {r["errors"]} | {r["requests_per_second"]:.0f} | {r["p50_ms"]:.2f} | {r["p99_ms"]:.2f} | {cpu:.0f}% |')
PY
}
# populate ENDPOINT: 10 stacks, one of them with 1,000 instances; prints that stack's ID.
populate() {
    local stack
    stack="$("$target/opsworks-loadgen" --endpoint "$1" populate --instances 1000)"
    for _ in $(seq 9); do "$target/opsworks-loadgen" --endpoint "$1" populate --instances 0 >/dev/null; done
    echo "$stack"
}
stack="$(populate "$endpoint")"
moto_stack="$(populate "http://127.0.0.1:$moto_port")"

echo "| server | operation | clients | requests | errors | requests/s | p50 ms | p99 ms | server CPU |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
run opsworks "${pids[0]}" "$endpoint" DescribeStacks '{}'
run moto_server "$moto_pid" "http://127.0.0.1:$moto_port" DescribeStacks '{}'
run opsworks "${pids[0]}" "$endpoint" DescribeInstances "{\"StackId\": \"$stack\"}"
run moto_server "$moto_pid" "http://127.0.0.1:$moto_port" DescribeInstances "{\"StackId\": \"$moto_stack\"}"

# Root against an IAM user with 10 policy statements, same server, runs alternated (3 each).
read -r user_key user_secret < <("$target/opsworks-loadgen" --endpoint "$endpoint" iam-user --name bench-user --statements 10)
as_user() { AWS_ACCESS_KEY_ID="$user_key" AWS_SECRET_ACCESS_KEY="$user_secret" "$@"; }
echo
echo "| DescribeStacks signed by | operation | clients | requests | errors | requests/s | p50 ms | p99 ms | server CPU |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
rows=()
for i in 1 2 3; do
    rows+=("$(run "root ($i)" "${pids[0]}" "$endpoint" DescribeStacks '{}')")
    rows+=("$(as_user run "IAM user, 10 statements ($i)" "${pids[0]}" "$endpoint" DescribeStacks '{}')")
done
printf '%s\n' "${rows[@]}"
printf '%s\n' "${rows[@]}" | python3 -c '
import sys
root, user = [], []
for line in sys.stdin:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    (user if cells[0].startswith("IAM") else root).append(float(cells[5]))
r, u = sum(root) / len(root), sum(user) / len(user)
print(f"\nmean requests/s: root {r:.0f}, IAM user {u:.0f}: the IAM user costs {(r / u - 1) * 100:.1f} % over root")
'
echo
echo "opsworks peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/${pids[0]}/status"); moto_server peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$moto_pid/status")"
