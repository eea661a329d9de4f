#!/usr/bin/env bash
# Registration suite (issue 15): real OpenSSH servers in network namespaces over copy-on-write
# roots (made by the suite, not local instances), a real server, `opsworks register`, the agent's
# install, updates, roll-back and removal, and `aws opsworks register`. Root; Debian's
# openssh-server, openssh-client, sudo, curl, iproute2 and git.
#   tests/register/run.sh [pytest args...]     env: OPSWORKS_BIN (required), OPSWORKS_VENV
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${OPSWORKS_VENV:-$HOME/.cache/opsworks-conformance-venv}"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "register: the conformance venv $venv is missing; run tests/conformance/run.sh first" >&2
    exit 2
fi
: "${OPSWORKS_BIN:?set OPSWORKS_BIN to the opsworks binary}"
for tool in sshd ssh ssh-keygen sudo curl ip unshare git; do
    command -v "$tool" >/dev/null 2>&1 || { echo "register: $tool is missing (Debian: openssh-server openssh-client sudo curl iproute2 util-linux git)" >&2; exit 2; }
done
cd "$here"
# The CLI's `aws opsworks register` runs from the venv.
export PATH="$venv/bin:$PATH"
exec "$venv/bin/python" -m pytest -x -q -rs "$@"
