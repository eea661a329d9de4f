#!/usr/bin/env bash
# The whole test suite: every crate's tests, the conformance suite with the real AWS clients, and
# the lifecycle suite with real local instances. Installs what it needs (as root, from Debian's
# mirrors and PyPI); run as another user it says exactly what to install instead.
#
#   scripts/test.sh            (from anywhere; builds what it needs)
#
# Needs: root (local instances, users, services), Debian's packages below, PostgreSQL (set up by
# scripts/postgres-test-setup.sh), PyPI for the conformance venv.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export DEBIAN_FRONTEND=noninteractive

# Debian packages the tests use: git, cron and procps for the recipe engine's resources; chromium
# and its WebDriver for the console's browser tests; the built-in layers' servers, which local
# instances see through their copy-on-write view of the host; OpenSSH and sudo for SSH users on
# instances and, with iproute2, for the machines the registration suite registers over SSH; xfsprogs
# for volumes; postgresql-15 for RDS database machines (and the store's PostgreSQL tests); Ruby,
# Puma and Rails, Tomcat 10 on OpenJDK 17, Prometheus and its node exporter for the rails-app,
# java-app and monitoring-master layers.
packages=(git cron procps ca-certificates curl chromium chromium-driver haproxy nginx nodejs
    php-fpm mariadb-server memcached openssh-server openssh-client sudo iproute2 xfsprogs
    postgresql-15 ruby ruby-rack puma ruby-bundler ruby-rails ruby-mysql2 tomcat10
    openjdk-17-jdk-headless libmariadb-java prometheus prometheus-node-exporter)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "test.sh: these Debian packages are missing; install them first:" >&2
        echo "    sudo apt-get install -y ${missing[*]}" >&2
        echo "and run the suite as root (local instances need namespaces and overlayfs)." >&2
        exit 2
    fi
    echo "== installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: run the suite as root (local instances need namespaces, overlayfs and cgroups)" >&2
    exit 2
fi

# PostgreSQL for the store's second engine: installed, started and given a test role if absent.
if [ -z "${OPSWORKS_TEST_DATABASE_URL:-}" ]; then
    echo "== PostgreSQL (scripts/postgres-test-setup.sh)"
    OPSWORKS_TEST_DATABASE_URL="$(scripts/postgres-test-setup.sh | tail -n 1)"
fi
export OPSWORKS_TEST_DATABASE_URL

# Tests that boot local instances share the host's bridge with anything else doing so.
lock=/var/tmp/opsworks-instances.lock
touch "$lock"

# The machines' package proxy connects only to public addresses unless told otherwise. Hosts
# whose apt mirrors resolve into a private or reserved range (a LAN mirror, a registry gateway)
# allow exactly those addresses, as an operator would with --package-proxy-allow.
if [ -z "${OPSWORKS_PACKAGE_PROXY_ALLOW:-}" ]; then
    # Whichever of the classic and deb822 source files exist (a missing one is no error).
    mirror_hosts="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -oE '^(URIs:|deb) +[a-z+]+://[^/ ]+' |
        sed -E 's#.*://([^/ :]+).*#\1#' | sort -u || true)"
    allow=()
    for h in $mirror_hosts; do
        for ip in $(getent ahostsv4 "$h" | awk '{print $1}' | sort -u); do
            python3 -c 'import ipaddress,sys; sys.exit(0 if ipaddress.ip_address(sys.argv[1]).is_global else 1)' "$ip" ||
                allow+=("$ip/32")
        done
    done
    if [ "${#allow[@]}" -gt 0 ]; then
        OPSWORKS_PACKAGE_PROXY_ALLOW="$(IFS=,; echo "${allow[*]}")"
        export OPSWORKS_PACKAGE_PROXY_ALLOW
        echo "== apt mirrors on non-public addresses, allowed to the package proxy: $OPSWORKS_PACKAGE_PROXY_ALLOW"
    fi
fi

echo "== cargo test --workspace"
flock "$lock" cargo test --workspace --no-fail-fast

echo "== conformance suite (boto3 1.35.99, awscli 1.36.40)"
cargo build -p opsworks
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
# Under the lock: test_elb.py's server boots load-balancer machines on the bridge.
OPSWORKS_BIN="$target_dir/debug/opsworks" flock "$lock" bash tests/conformance/run.sh

echo "== lifecycle suite (local instances: root, Linux namespaces, overlayfs)"
OPSWORKS_BIN="$target_dir/debug/opsworks" flock "$lock" bash tests/lifecycle/run.sh

echo "== registration suite (machines of its own: root, network namespaces, overlayfs, OpenSSH)"
OPSWORKS_BIN="$target_dir/debug/opsworks" bash tests/register/run.sh

# The same suites with every server on PostgreSQL (a database per data dir, dropped after). Of the
# lifecycle suite, the files that exercise the control plane's state (the chain of commands,
# healing, restarts, the console, deploys under load); the layers' cookbooks, databases and
# volumes do not depend on the store's engine and run once, above.
echo "== conformance suite on PostgreSQL"
OPSWORKS_TEST_ENGINE=postgres OPSWORKS_BIN="$target_dir/debug/opsworks" flock "$lock" bash tests/conformance/run.sh
echo "== lifecycle suite on PostgreSQL (control-plane files)"
OPSWORKS_TEST_ENGINE=postgres OPSWORKS_BIN="$target_dir/debug/opsworks" flock "$lock" bash tests/lifecycle/run.sh \
    test_lifecycle.py test_healing.py test_console.py test_console_iam.py test_rolling_deploy.py test_metrics.py
echo "== registration suite on PostgreSQL"
OPSWORKS_TEST_ENGINE=postgres OPSWORKS_BIN="$target_dir/debug/opsworks" bash tests/register/run.sh
