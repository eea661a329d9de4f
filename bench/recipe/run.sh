#!/usr/bin/env bash
# Benchmark of the recipe engine against its peers on the issue's two workloads:
#   w1: one directory + 100 files rendered from one template (name, host, port = 8000+i)
#   w2: 100 directories + 100 static files + 100 templates
# Tools: `opsworks converge` (this repository), salt-call --local (salt==3008.4) and
# ansible-playbook with connection: local (ansible-core==2.21.5, Python 3.12). For each tool and
# workload: a fresh run (empty target directory) and a no-op run (already converged), wall time
# and peak RSS. Prints a markdown table with ratios to opsworks, after checking that every tool
# left the same files as opsworks (names, types, modes and contents); it fails when they differ.
#
# Environment:
#   BENCH_WORK   scratch directory (default /tmp/opsworks-bench-recipe)
#   BENCH_PEERS  where the peer venvs live (default $BENCH_WORK/peers; reused when present)
#   BENCH_RUNS   hyperfine runs for opsworks (default 20); peers run once per measurement
#   BENCH_SKIP   comma-separated peers to skip: salt,ansible
#   BENCH_ENGINE opsworks|example|auto (default auto: the opsworks binary once it links the engine,
#                else the engine's `converge` example, which runs the same cli::run)
#   PY312        a Python 3.12 interpreter (default /root/.pyenv/versions/3.12.1/bin/python3)
#   CARGO_TARGET_DIR  cargo target directory (default /work/target-recipe)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${BENCH_WORK:-/tmp/opsworks-bench-recipe}
PEERS=${BENCH_PEERS:-$WORK/peers}
RUNS=${BENCH_RUNS:-20}
SKIP=${BENCH_SKIP:-}
PY312=${PY312:-/root/.pyenv/versions/3.12.1/bin/python3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-recipe}
COUNT=100

mkdir -p "$WORK" "$PEERS"
LOG="$WORK/bench.log"
: > "$LOG"
say() { echo "== $*" >&2; }
skipped() { [[ ",$SKIP," == *",$1,"* ]]; }

# --- tools ----------------------------------------------------------------------------------
if ! command -v hyperfine >/dev/null; then
  say "installing hyperfine (apt)"
  apt-get install -y hyperfine >>"$LOG" 2>&1 || say "hyperfine unavailable; falling back to a date +%s%N loop"
fi
if [[ ! -x /usr/bin/time ]]; then
  apt-get install -y time >>"$LOG" 2>&1
fi

# BENCH_ENGINE=opsworks|example|auto: auto builds the `opsworks` binary when it links the engine.
ENGINE=${BENCH_ENGINE:-auto}
if [[ $ENGINE == auto ]]; then
  ENGINE=example
  grep -q opsworks-recipe "$REPO/crates/opsworks/Cargo.toml" 2>/dev/null && ENGINE=opsworks
fi
OW=()
if [[ $ENGINE == opsworks ]] && say "building opsworks (release)" \
   && (cd "$REPO" && cargo build --release -p opsworks >>"$LOG" 2>&1) \
   && "$CARGO_TARGET_DIR/release/opsworks" converge --help >/dev/null 2>&1; then
  OW=("$CARGO_TARGET_DIR/release/opsworks" converge)
  OW_NAME="opsworks converge"
else
  say "using the engine's example binary (BENCH_ENGINE=$ENGINE; same cli::run code path as opsworks converge)"
  (cd "$REPO" && cargo build --release -p opsworks-recipe --example converge >>"$LOG" 2>&1)
  OW=("$CARGO_TARGET_DIR/release/examples/converge")
  OW_NAME="opsworks-recipe example converge"
fi

if ! skipped salt && [[ ! -x "$PEERS/salt-venv/bin/salt-call" ]]; then
  say "installing salt==3008.4 into $PEERS/salt-venv (takes a few minutes)"
  "$PY312" -m venv "$PEERS/salt-venv"
  "$PEERS/salt-venv/bin/pip" install -q 'salt==3008.4' >>"$LOG" 2>&1
fi
if ! skipped ansible && [[ ! -x "$PEERS/ansible-venv/bin/ansible-playbook" ]]; then
  say "installing ansible-core==2.21.5 into $PEERS/ansible-venv"
  "$PY312" -m venv "$PEERS/ansible-venv"
  "$PEERS/ansible-venv/bin/pip" install -q 'ansible-core==2.21.5' >>"$LOG" 2>&1
fi

# --- workloads --------------------------------------------------------------------------------
OUT="$WORK/out"
mkdir -p "$OUT"
TEMPLATE=$'name = {{ name }}\nhost = {{ host }}\nport = {{ port }}\n'

# opsworks: the bench cookbook shipped with the engine (recipes default = w1, mixed = w2).
COOKBOOKS="$REPO/crates/opsworks-recipe/examples/cookbooks"
for w in w1 w2; do
  printf '{"bench": {"root": "%s", "count": %d}}\n' "$OUT/opsworks-$w" "$COUNT" > "$WORK/opsworks-$w.json"
done

# salt (masterless)
S="$WORK/salt"
mkdir -p "$S/conf" "$S/srv/salt" "$S/root"
cat > "$S/conf/minion" <<EOF
file_client: local
root_dir: $S/root
file_roots:
  base:
    - $S/srv/salt
EOF
printf '%s' "$TEMPLATE" > "$S/srv/salt/item.conf.j2"
cat > "$S/srv/salt/w1.sls" <<EOF
bench_dir:
  file.directory:
    - name: $OUT/salt-w1
    - mode: '0755'
{% for i in range(1, $COUNT + 1) %}
item{{ i }}:
  file.managed:
    - name: $OUT/salt-w1/item{{ i }}.conf
    - source: salt://item.conf.j2
    - template: jinja
    - mode: '0644'
    - context:
        name: item{{ i }}
        host: localhost
        port: {{ 8000 + i }}
    - require:
      - file: bench_dir
{% endfor %}
EOF
cat > "$S/srv/salt/w2.sls" <<EOF
bench_root:
  file.directory:
    - name: $OUT/salt-w2
    - mode: '0755'
{% for i in range(1, $COUNT + 1) %}
dir{{ i }}:
  file.directory:
    - name: $OUT/salt-w2/d{{ i }}
    - mode: '0755'
    - require:
      - file: bench_root
static{{ i }}:
  file.managed:
    - name: $OUT/salt-w2/d{{ i }}/static.txt
    - contents: "static file {{ i }}"
    - mode: '0644'
    - require:
      - file: dir{{ i }}
item{{ i }}:
  file.managed:
    - name: $OUT/salt-w2/d{{ i }}/item.conf
    - source: salt://item.conf.j2
    - template: jinja
    - mode: '0644'
    - context:
        name: item{{ i }}
        host: localhost
        port: {{ 8000 + i }}
    - require:
      - file: dir{{ i }}
{% endfor %}
EOF

# ansible (connection: local, no fact gathering)
A="$WORK/ansible"
mkdir -p "$A"
printf '%s' "$TEMPLATE" > "$A/item.conf.j2"
echo "localhost ansible_connection=local ansible_python_interpreter=$PEERS/ansible-venv/bin/python3" > "$A/inventory.ini"
cat > "$A/w1.yml" <<EOF
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.file: {path: "$OUT/ansible-w1", state: directory, mode: "0755"}
    - ansible.builtin.template: {src: item.conf.j2, dest: "$OUT/ansible-w1/item{{ item }}.conf", mode: "0644"}
      vars: {name: "item{{ item }}", host: localhost, port: "{{ 8000 + item }}"}
      loop: "{{ range(1, $COUNT + 1) | list }}"
EOF
cat > "$A/w2.yml" <<EOF
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.file: {path: "$OUT/ansible-w2", state: directory, mode: "0755"}
    - ansible.builtin.file: {path: "$OUT/ansible-w2/d{{ item }}", state: directory, mode: "0755"}
      loop: "{{ range(1, $COUNT + 1) | list }}"
    - ansible.builtin.copy: {content: "static file {{ item }}\n", dest: "$OUT/ansible-w2/d{{ item }}/static.txt", mode: "0644"}
      loop: "{{ range(1, $COUNT + 1) | list }}"
    - ansible.builtin.template: {src: item.conf.j2, dest: "$OUT/ansible-w2/d{{ item }}/item.conf", mode: "0644"}
      vars: {name: "item{{ item }}", host: localhost, port: "{{ 8000 + item }}"}
      loop: "{{ range(1, $COUNT + 1) | list }}"
EOF

cmd_for() { # tool workload -> prints a shell command
  local tool=$1 w=$2
  case $tool in
    opsworks)
      local rl=bench::default; [[ $w == w2 ]] && rl=bench::mixed
      printf '%q ' "${OW[@]}"; printf -- '--cookbooks %q --run-list %s --json %q' "$COOKBOOKS" "$rl" "$WORK/opsworks-$w.json" ;;
    salt) printf '%q --local -c %q --state-output=terse state.apply %s' "$PEERS/salt-venv/bin/salt-call" "$S/conf" "$w" ;;
    ansible) printf 'cd %q && %q -i inventory.ini %s.yml' "$A" "$PEERS/ansible-venv/bin/ansible-playbook" "$w" ;;
  esac
}

# --- measurement --------------------------------------------------------------------------------
# ms_of CMD PREPARE RUNS -> mean wall time in ms
ms_of() {
  local cmd=$1 prep=$2 runs=$3
  if command -v hyperfine >/dev/null; then
    local json="$WORK/hf.json"
    local args=(--runs "$runs" --export-json "$json" --style none --shell bash)
    [[ -n $prep ]] && args+=(--prepare "$prep")
    hyperfine "${args[@]}" "$cmd" >>"$LOG" 2>&1 || { echo "FAIL"; return; }
    python3 -c "import json,sys; print('%.1f' % (json.load(open(sys.argv[1]))['results'][0]['mean']*1000))" "$json"
  else
    local total=0 i t0 t1
    for ((i = 0; i < runs; i++)); do
      [[ -n $prep ]] && bash -c "$prep"
      t0=$(date +%s%N); bash -c "$cmd" >>"$LOG" 2>&1; t1=$(date +%s%N)
      total=$((total + t1 - t0))
    done
    awk -v t="$total" -v n="$runs" 'BEGIN { printf "%.1f", t / n / 1e6 }'
  fi
}
# rss_of CMD -> peak RSS in MB of one run
rss_of() {
  /usr/bin/time -f '%M' -o "$WORK/rss.txt" bash -c "$1" >>"$LOG" 2>&1 || true
  awk '{ printf "%.1f", $1 / 1024 }' "$WORK/rss.txt"
}

# once CMD -> "wall_ms rss_mb" of a single run (FAIL when it exits non-zero)
once() {
  local t0 t1 rc=0
  t0=$(date +%s%N)
  /usr/bin/time -f '%M' -o "$WORK/rss.txt" bash -c "$1" >>"$LOG" 2>&1 || rc=$?
  t1=$(date +%s%N)
  if (( rc != 0 )); then echo "FAIL FAIL"; return; fi
  awk -v t="$((t1 - t0))" '{ printf "%.1f %.1f\n", t / 1e6, $1 / 1024 }' "$WORK/rss.txt"
}

declare -A FRESH NOOP RSS
for w in w1 w2; do
  for tool in opsworks salt ansible; do
    [[ $tool != opsworks ]] && skipped "$tool" && continue
    cmd=$(cmd_for "$tool" "$w")
    clean="rm -rf $OUT/$tool-$w"
    runs=1; [[ $tool == opsworks ]] && runs=$RUNS
    say "$tool $w: fresh"
    if [[ $tool == opsworks ]]; then
      FRESH[$tool-$w]=$(ms_of "$cmd" "$clean" "$runs")
      bash -c "$cmd" >>"$LOG" 2>&1   # converged before the no-op runs
      say "$tool $w: no-op"
      NOOP[$tool-$w]=$(ms_of "$cmd" "" "$runs")
      RSS[$tool-$w]=$(rss_of "$cmd")
    else
      # Peers take seconds to minutes: one run each, wall time and peak RSS from the same run.
      bash -c "$clean"
      read -r FRESH[$tool-$w] _ < <(once "$cmd")
      say "$tool $w: no-op"
      read -r NOOP[$tool-$w] RSS[$tool-$w] < <(once "$cmd")
    fi
    n=$(find "$OUT/$tool-$w" -type f | wc -l)
    echo "$tool $w: $n files" >>"$LOG"
  done
done

# The tools must leave the same result: the same files and directories, with the same modes and
# the same bytes, or the comparison above measures different work.
listing() { (cd "$1" && find . -mindepth 1 -printf '%y %m %P\n' | LC_ALL=C sort); }
SAME=yes
for w in w1 w2; do
  for tool in salt ansible; do
    skipped "$tool" && continue
    a="$OUT/opsworks-$w" b="$OUT/$tool-$w"
    if ! diff <(listing "$a") <(listing "$b") >>"$LOG" 2>&1 || ! diff -r "$a" "$b" >>"$LOG" 2>&1; then
      say "$tool $w: output differs from opsworks's (see $LOG)"
      SAME=no
    fi
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0 || a == "FAIL") print "–"; else printf "%.0f×", a / b }'; }
{
  echo
  echo "Recipe engine benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $OW_NAME (release); opsworks: mean of $RUNS runs (hyperfine, whole process), peers: one run each (whole process)."
  echo
  echo "| workload | tool | fresh (ms) | no-op (ms) | peak RSS no-op (MB) | fresh vs opsworks | no-op vs opsworks |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for w in w1 w2; do
    label="1 dir + $COUNT templates"; [[ $w == w2 ]] && label="$COUNT dirs + $COUNT files + $COUNT templates"
    for tool in opsworks salt ansible; do
      [[ $tool != opsworks ]] && skipped "$tool" && continue
      echo "| $label | $tool | ${FRESH[$tool-$w]} | ${NOOP[$tool-$w]} | ${RSS[$tool-$w]} | $(ratio "${FRESH[$tool-$w]}" "${FRESH[opsworks-$w]}") | $(ratio "${NOOP[$tool-$w]}" "${NOOP[opsworks-$w]}") |"
    done
  done
  echo
  echo "Output files of every tool identical to opsworks's (names, types, modes, bytes): $SAME."
  echo "Log: $LOG"
} | tee "$WORK/results.md"
if [[ $SAME != yes ]]; then
  say "the tools' output files differ: the figures above compare different work"
  exit 1
fi
