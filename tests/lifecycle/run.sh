#!/usr/bin/env bash
# Lifecycle suite (issue 4): real server, real local instances (root, namespaces), boto3 waiters.
#   tests/lifecycle/run.sh [pytest args...]     env: OPSWORKS_BIN (required), OPSWORKS_VENV
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${OPSWORKS_VENV:-$HOME/.cache/opsworks-conformance-venv}"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "lifecycle: the conformance venv $venv is missing; run tests/conformance/run.sh first" >&2
    exit 2
fi
: "${OPSWORKS_BIN:?set OPSWORKS_BIN to the opsworks binary}"
cd "$here"
exec "$venv/bin/python" -m pytest -x -q "$@"
