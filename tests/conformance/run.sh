#!/usr/bin/env bash
# Conformance suite of the OpsWorks API with the real clients (boto3, awscli) against the real server.
#
#   tests/conformance/run.sh [pytest args...]
#
# Env: OPSWORKS_BIN      the server binary (default: `cargo build -p opsworks`, then target/debug/opsworks)
#      OPSWORKS_VENV     the Python venv to create or reuse (default: ~/.cache/opsworks-conformance-venv)
#      CARGO_TARGET_DIR  honoured when building
# Needs only PyPI (for the venv) besides this checkout. Exit code: pytest's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${OPSWORKS_VENV:-$HOME/.cache/opsworks-conformance-venv}"

# Pinned: boto3 1.35.99 (botocore 1.35.99) still ships the OpsWorks model and waiters; awscli 1.36.40 is its CLI.
# selenium drives Debian's chromium in the lifecycle suite's console tests.
requirements=(boto3==1.35.99 awscli==1.36.40 pytest==8.3.4 selenium==4.27.1)
stamp="$venv/.conformance-requirements"

python="${PYTHON:-python3}"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "conformance: creating venv $venv" >&2
    "$python" -m venv "$venv"
fi
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "${requirements[*]}" ]]; then
    echo "conformance: installing ${requirements[*]}" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
    printf '%s' "${requirements[*]}" >"$stamp"
fi

if [[ -z "${OPSWORKS_BIN:-}" ]]; then
    echo "conformance: building the server (cargo build -p opsworks)" >&2
    (cd "$repo" && cargo build --quiet -p opsworks)
    OPSWORKS_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/opsworks"
fi
if [[ ! -x "$OPSWORKS_BIN" ]]; then
    echo "conformance: server binary $OPSWORKS_BIN not found" >&2
    exit 2
fi
export OPSWORKS_BIN
echo "conformance: server $OPSWORKS_BIN" >&2

cd "$here"
# Leave no __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1
# Aim the venv's own `aws` and Python first on PATH so the CLI tests run the pinned awscli.
export PATH="$venv/bin:$PATH"
status=0
"$venv/bin/python" -m pytest "$@" || status=$?

# The coverage report is informative: it never changes the exit code.
"$venv/bin/python" coverage.py || echo "conformance: coverage report failed" >&2
exit "$status"
