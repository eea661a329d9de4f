#!/usr/bin/env bash
# A fleet of simulated agents against one or two servers (issue 16): command delivery p50/p99,
# requests per second, server CPU and RSS.
#
#   bench/agents/run.sh ENGINE AGENTS [SERVERS] [SECONDS] [RATE]
#     ENGINE   sqlite | postgres (postgres: a database of its own on $OPSWORKS_TEST_DATABASE_URL's
#              server, which scripts/postgres-test-setup.sh prints; dropped at the end)
#     AGENTS   simulated agents (each the real agent's client: its own keep-alive connection, a
#              long poll always waiting, heartbeats while no poll waits and metric batches at the
#              real intervals)
#     SERVERS  1 or 2 (2: both on the one PostgreSQL, agents spread over them)
#     SECONDS  measured window (default 60), after the agents' start (AGENTS/200 s) and 10 s
#     RATE     deployments created per second (default 5), each for one agent's instance
#
# Loopback only, bounded in time. Prints one JSON line of figures per run and a table row.
set -euo pipefail
cd "$(dirname "$0")/../.."
engine="${1:?ENGINE: sqlite or postgres}"
agents="${2:?AGENTS}"
servers="${3:-1}"
secs="${4:-60}"
rate="${5:-5}"
per_stack=100
stacks=$(( (agents + per_stack - 1) / per_stack ))
ramp=$(( agents / 200 + 5 ))
# Each simulated agent holds one connection at rest (its poll) and a second for a moment (its
# metric batches), as a real agent does; a process may hold at most `ulimit -n` of them.
per_process=4000

if [ "$engine" = sqlite ] && [ "$servers" != 1 ]; then
    echo "several servers share a PostgreSQL only" >&2
    exit 2
fi

# The first limit a fleet meets is open files: a connection and a half per agent, on the server
# (which raises its soft limit to the hard one at start). Raise the hard limit for the servers
# started below where this shell may (root), and say so.
need=$(( agents * 3 / 2 / servers + 2048 ))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
    if ulimit -Hn "$need" 2>/dev/null && ulimit -Sn "$need"; then
        echo "open-files limit raised to $need for $agents agents (LimitNOFILE= in a systemd unit)" >&2
    else
        echo "the open-files hard limit $(ulimit -Hn) is below the $need this fleet needs: expect refused connections" >&2
    fi
fi

cargo build --release -q -p opsworks -p opsworks-loadgen
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
work="$(mktemp -d /var/tmp/opsworks-bench-agents-XXXXXX)"
pids=()
db_name=""
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$db_name" ]; then
        psql "$OPSWORKS_TEST_DATABASE_URL" -X -q -c "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

export AWS_ACCESS_KEY_ID=AKIDBENCHAGENTS AWS_SECRET_ACCESS_KEY=bench-agents-secret
url=""
if [ "$engine" = postgres ]; then
    : "${OPSWORKS_TEST_DATABASE_URL:?set OPSWORKS_TEST_DATABASE_URL (scripts/postgres-test-setup.sh prints it)}"
    db_name="opsworks_bench_$$"
    psql "$OPSWORKS_TEST_DATABASE_URL" -X -q -c "CREATE DATABASE \"$db_name\""
    url="$(python3 -c 'import sys; u=sys.argv[1]; s,_,r=u.partition("://"); a=r.split("/",1)[0]; print(f"{s}://{a}/{sys.argv[2]}")' "$OPSWORKS_TEST_DATABASE_URL" "$db_name")"
fi

ports=()
for i in $(seq "$servers"); do
    ports+=("$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')")
done
server_pids=()
start_servers() {
    server_pids=()
    for i in $(seq 0 $((servers - 1))); do
        local dir="$work/server$i"
        mkdir -p "$dir"
        [ "$i" -gt 0 ] && [ ! -f "$dir/master.key" ] && install -m 600 "$work/server0/master.key" "$dir/master.key"
        OPSWORKS_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID OPSWORKS_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
            OPSWORKS_LOG=warn OPSWORKS_DATABASE_URL="$url" \
            "$target/opsworks" server --listen "127.0.0.1:${ports[$i]}" --data-dir "$dir" \
            >"$dir/out" 2>>"$dir/err" &
        server_pids+=($!)
        pids+=($!)
        for _ in $(seq 300); do grep -q "listening on" "$dir/out" 2>/dev/null && break; sleep 0.1; done
        grep -q "listening on" "$dir/out" || { cat "$dir/err" >&2; exit 1; }
    done
}
stop_servers() {
    for p in "${server_pids[@]}"; do kill "$p"; done
    for p in "${server_pids[@]}"; do wait "$p" 2>/dev/null || true; done
}

start_servers
endpoints=()
for p in "${ports[@]}"; do endpoints+=("http://127.0.0.1:$p"); done
lg() { "$target/opsworks-loadgen" --endpoint "${endpoints[0]}" "$@"; }
echo "populating $stacks stacks of $per_stack instances" >&2
lg populate --stacks "$stacks" --instances "$per_stack" >/dev/null
stop_servers
lg keys --data-dir "$work/server0" ${url:+--database-url "$url"} --out "$work/ids.jsonl"
start_servers

# Server CPU (ticks) and RSS, every second, while the fleet runs.
hz="$(getconf CLK_TCK)"
sample() {
    while true; do
        local line="$(date +%s.%N)"
        for p in "${server_pids[@]}"; do
            line="$line $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)"
            line="$line $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)"
            line="$line $(ls "/proc/$p/fd" 2>/dev/null | wc -l)"
        done
        echo "$line"
        sleep 1
    done >"$work/samples"
}
sample &
pids+=($!)
started="$(date +%s.%N)"

procs=$(( (agents + per_process - 1) / per_process ))
sim_pids=()
for k in $(seq 0 $((procs - 1))); do
    skip=$(( k * per_process ))
    n=$(( agents - skip < per_process ? agents - skip : per_process ))
    # The deployment rate is split over the processes, as their agents are.
    r="$(python3 -c "print($rate * $n / $agents)")"
    lg agents --servers "$(IFS=,; echo "${endpoints[*]}")" --identities "$work/ids.jsonl" \
        --agents "$n" --skip "$skip" --ramp "$ramp" --seconds "$secs" --rate "$r" \
        --raw "$work/raw$k.json" >"$work/sim$k.json" 2>"$work/sim$k.err" &
    sim_pids+=($!)
    pids+=($!)
done
for p in "${sim_pids[@]}"; do wait "$p"; done

python3 - "$work" "$procs" "$started" "$ramp" "$secs" "$hz" "$agents" "$servers" "$engine" <<'PY'
import json, sys
work, procs, started, ramp, secs, hz, agents, servers, engine = sys.argv[1:]
procs, started, ramp, secs, hz, agents, servers = int(procs), float(started), int(ramp), int(secs), float(hz), int(agents), int(servers)
delivery, cross, calls, seconds, created = [], [], {}, 0.0, 0
for k in range(procs):
    raw = json.load(open(f"{work}/raw{k}.json"))
    delivery += raw["delivery"]
    cross += raw.get("delivery_cross", [])
    seconds = max(seconds, raw["seconds"])
    created += raw["created"]
    for kind, t in raw["calls"].items():
        c = calls.setdefault(kind, {"micros": [], "errors": 0})
        c["micros"] += t["micros"]
        c["errors"] += t["errors"]
def pct(v, p):
    v = sorted(v)
    return round(v[round((len(v) - 1) * p)] / 1000, 1) if v else 0.0
rows = [list(map(float, l.split())) for l in open(f"{work}/samples") if l.strip()]
lo, hi = started + ramp + 10, started + ramp + 10 + seconds
window = [r for r in rows if lo <= r[0] <= hi] or rows
cpu, rss, fds = [], [], []
for i in range(servers):
    t0, t1 = window[0], window[-1]
    cpu.append((t1[1 + 3 * i] - t0[1 + 3 * i]) / hz / max(t1[0] - t0[0], 1e-9) * 100)
    rss.append(max(r[2 + 3 * i] for r in window) / 1024)
    fds.append(max(r[3 + 3 * i] for r in window))
total = sum(len(c["micros"]) for c in calls.values())
errors = sum(c["errors"] for c in calls.values())
figures = {
    "engine": engine, "servers": servers, "agents": agents, "seconds": round(seconds, 1),
    "requests_per_second": round(total / seconds), "errors": errors,
    "deployments_created": created, "deployments_delivered": len(delivery),
    "delivery_p50_ms": pct(delivery, 0.5), "delivery_p99_ms": pct(delivery, 0.99),
    # Deployments created through another server than the one the agent polls: the wake-up
    # crossed servers (LISTEN/NOTIFY).
    "delivered_across_servers": len(cross), "delivery_across_servers_p99_ms": pct(cross, 0.99),
    "server_cpu_percent": [round(c) for c in cpu], "server_rss_mb": [round(r) for r in rss],
    "server_fds": [int(f) for f in fds],
    "calls": {k: {"per_second": round(len(c["micros"]) / seconds), "errors": c["errors"],
                  "p50_ms": pct(c["micros"], 0.5), "p99_ms": pct(c["micros"], 0.99)} for k, c in sorted(calls.items())},
}
print(json.dumps(figures))
per_k = agents / 1000
print(f"| {engine} | {servers} | {agents} | {figures['requests_per_second']} | {errors} | {len(delivery)}/{created} | "
      f"{figures['delivery_p50_ms']} | {figures['delivery_p99_ms']} | "
      f"{figures['delivery_across_servers_p99_ms'] if cross else '-'} | "
      f"{' + '.join(f'{c:.0f}%' for c in cpu)} ({sum(cpu) / per_k:.1f}% per 1,000) | "
      f"{' + '.join(f'{r:.0f}' for r in rss)} MB ({sum(rss) / per_k:.0f} MB per 1,000) |")
PY
for k in $(seq 0 $((procs - 1))); do
    if [ -s "$work/sim$k.err" ]; then echo "simulator $k said:" >&2; tail -5 "$work/sim$k.err" >&2; fi
    # What the failed calls were, by kind (the error's text), so a run names its first limit.
    python3 - "$work/sim$k.json" >&2 <<'PY'
import json, sys
try:
    calls = json.loads(open(sys.argv[1]).read().splitlines()[-1])["calls"]
except (OSError, ValueError, KeyError, IndexError):
    sys.exit(0)
for kind, c in sorted(calls.items()):
    for text, n in sorted(c.get("error_kinds", {}).items(), key=lambda x: -x[1]):
        print(f"  {kind}: {n} x {text}")
PY
done
for i in $(seq 0 $((servers - 1))); do
    if [ -s "$work/server$i/err" ]; then echo "server $i logged:" >&2; sort "$work/server$i/err" | cut -c 29- | sort | uniq -c | sort -rn | head -8 >&2; fi
done
