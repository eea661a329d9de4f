"""Which database the suites' servers run on.

`OPSWORKS_TEST_ENGINE` unset or `sqlite`: the embedded database in each server's data dir.
`OPSWORKS_TEST_ENGINE=postgres`: each data dir gets a PostgreSQL database of its own on the server
`OPSWORKS_TEST_DATABASE_URL` names (`scripts/postgres-test-setup.sh` prints it), created on first
use and dropped when the suite ends; a server restarted on the same data dir finds its database
again. The URL reaches the server through its environment (`OPSWORKS_DATABASE_URL`), never its
command line, where other users could read the password.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import uuid

ENGINE = os.environ.get("OPSWORKS_TEST_ENGINE", "sqlite").strip() or "sqlite"
if ENGINE not in ("sqlite", "postgres"):
    raise RuntimeError(f"OPSWORKS_TEST_ENGINE must be sqlite or postgres, not {ENGINE!r}")

SETUP_HINT = (
    "OPSWORKS_TEST_ENGINE=postgres needs OPSWORKS_TEST_DATABASE_URL: set one up (as root) with\n"
    '    export OPSWORKS_TEST_DATABASE_URL="$(sudo scripts/postgres-test-setup.sh)"'
)

_databases: dict[str, str] = {}


def _admin_url() -> str:
    url = os.environ.get("OPSWORKS_TEST_DATABASE_URL", "").strip()
    if not url:
        raise RuntimeError(SETUP_HINT)
    return url


def _with_database(url: str, name: str) -> str:
    scheme, _, rest = url.partition("://")
    end = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0], default=len(rest))
    authority, tail = rest[:end], rest[end:]
    query = tail[tail.find("?"):] if "?" in tail else ""
    return f"{scheme}://{authority}/{name}{query}"


def _psql(url: str, sql: str) -> str:
    out = subprocess.run(
        ["psql", url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()}")
    return out.stdout


def database_url(data_dir) -> str | None:
    """The database URL of the server on `data_dir` (made on first use); None on SQLite."""
    if ENGINE == "sqlite":
        return None
    key = str(os.path.abspath(data_dir))
    if key not in _databases:
        name = f"opsworks_t_suite_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        admin = _admin_url()
        _psql(admin, f'CREATE DATABASE "{name}"')
        _databases[key] = _with_database(admin, name)
    return _databases[key]


def server_env(data_dir) -> dict[str, str]:
    """What to add to the environment of a server on `data_dir`."""
    url = database_url(data_dir)
    return {"OPSWORKS_DATABASE_URL": url} if url else {}


def database_dump(data_dir) -> bytes:
    """Everything the server's PostgreSQL database holds, as SQL text (b"" on SQLite, whose
    database is a file in the data dir)."""
    url = database_url(data_dir)
    if url is None:
        return b""
    out = subprocess.run(["pg_dump", "--no-owner", url], capture_output=True, timeout=120, check=True)
    return out.stdout


@atexit.register
def _drop_databases() -> None:
    if not _databases:
        return
    admin = _admin_url()
    for url in _databases.values():
        name = url.rsplit("/", 1)[1].split("?")[0]
        try:
            _psql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as e:  # noqa: BLE001 - the setup script drops stale ones later
            print(f"could not drop test database {name}: {e}")
