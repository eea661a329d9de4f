#!/usr/bin/env bash
# Makes a PostgreSQL ready for the tests that run on it (the store's conformance suite and the
# suites that run a server on PostgreSQL): installs Debian's PostgreSQL 15 if absent, starts its
# cluster, creates the role `opsworks` (allowed to create databases: each test makes its own)
# and the database `opsworks_test` the tests connect to first, and drops test databases left
# behind by runs that were killed. Idempotent; run as root.
#
# Prints the URL the tests read from OPSWORKS_TEST_DATABASE_URL on stdout, and nothing else:
#   export OPSWORKS_TEST_DATABASE_URL="$(scripts/postgres-test-setup.sh)"
set -euo pipefail

version=15
cluster=main
role=opsworks
# A test-only credential for a cluster that listens on localhost only (Debian's default).
password=opsworks
database=opsworks_test

say() { echo "postgres-test-setup: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    say "run me as root (I install packages and start the cluster)"
    exit 1
fi

if ! dpkg-query -W -f='${Status}' "postgresql-$version" 2>/dev/null | grep -q "install ok installed"; then
    say "installing postgresql-$version"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "postgresql-$version" >&2
fi

cluster_field() {
    # pg_lsclusters -h: version cluster port status owner datadir logfile
    pg_lsclusters -h | awk -v v="$version" -v c="$cluster" -v f="$1" '$1 == v && $2 == c { print $f }'
}

if [ -z "$(cluster_field 1)" ]; then
    say "creating cluster $version/$cluster"
    pg_createcluster "$version" "$cluster" >&2
fi
if [ "$(cluster_field 4)" != "online" ]; then
    say "starting cluster $version/$cluster"
    # Its notes ("Removed stale pid file.") go to stderr: stdout is the URL alone.
    pg_ctlcluster "$version" "$cluster" start >&2
fi
port="$(cluster_field 3)"

psql_admin() {
    # From /, which the postgres user may enter (it may not enter the caller's directory).
    (cd / && runuser -u postgres -- psql -p "$port" -X -q -v ON_ERROR_STOP=1 -At "$@")
}

# Wait for the cluster to accept connections (a start returns before recovery ends).
for _ in $(seq 1 60); do
    if psql_admin -c 'SELECT 1' >/dev/null 2>&1; then
        break
    fi
    sleep 0.5
done
psql_admin -c 'SELECT 1' >/dev/null

psql_admin <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
        CREATE ROLE $role LOGIN CREATEDB PASSWORD '$password';
    ELSE
        ALTER ROLE $role LOGIN CREATEDB PASSWORD '$password';
    END IF;
END
\$\$;
SQL
if [ -z "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$database'")" ]; then
    psql_admin -c "CREATE DATABASE $database OWNER $role"
fi

# Each test creates a database named opsworks_t_* and drops it when done; a run killed on the
# way leaves its databases. Those untouched for six hours belong to no running test.
psql_admin -c "SELECT datname FROM pg_database
    WHERE datname LIKE 'opsworks\\_t\\_%'
      AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification < now() - interval '6 hours'" |
    while read -r stale; do
        say "dropping stale test database $stale"
        psql_admin -c "DROP DATABASE IF EXISTS \"$stale\" WITH (FORCE)" >&2
    done

echo "postgres://$role:$password@127.0.0.1:$port/$database"
