"""A throwaway PostgreSQL server for the tests: `initdb` + `pg_ctl` from Debian's `postgresql` package, in a
temporary directory, listening on 127.0.0.1 on a free port, torn down at the end of the session.

PostgreSQL refuses to run as root, and CI runs as root: the server then runs as the `postgres` user (created by
the Debian package) through `runuser`. Missing binaries FAIL the tests with a message saying what to install,
because a silently skipped PostgreSQL suite would hide a broken scale-out path; `CARECOACH_SKIP_PG=1` skips
them instead, deliberately (e.g. on a laptop without PostgreSQL).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest


def _pg_bin() -> Path:
    """CARECOACH_PG_BIN, else the newest Debian server (bookworm ships 15, trixie 17)."""
    if "CARECOACH_PG_BIN" in os.environ:
        return Path(os.environ["CARECOACH_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
USER = "carecoach"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One server; `new_database()` hands each test its own empty database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self._names = itertools.count()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr}{tail}")

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")

    def start(self) -> None:
        # Durability is irrelevant for a throwaway server: fsync off makes CREATE DATABASE and commits cheap.
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c synchronous_commit=off"
                   " -c full_page_writes=off -c max_connections=100")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-t", "30", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def terminate_backends(self, database_url: str) -> int:
        """Kill every other connection to the database, as a failover or an admin would."""
        database = database_url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall()
        return len(rows)


def start_server() -> Iterator[PostgresServer]:
    if os.environ.get("CARECOACH_SKIP_PG") == "1":
        pytest.skip("CARECOACH_SKIP_PG=1: PostgreSQL tests skipped on purpose")
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {PG_BIN}: install Debian's postgresql package "
                    "(`make setup-dev` does), point CARECOACH_PG_BIN at them, or set CARECOACH_SKIP_PG=1 to skip",
                    pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="carecoach-pg-"))
    server = PostgresServer(root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.stop("immediate")
        except RuntimeError:
            pass  # never started, or already stopped by a test
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server."""
    yield from start_server()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres.new_database()
