"""SQL dialects for the call store: the one place that knows SQLite from PostgreSQL.

The store writes its SQL once, in SQLite's style (`?` placeholders, `"end"` quoted, `ON CONFLICT … DO
UPDATE` upserts, `rowid` for insertion order), and runs every statement through `Db.execute`. A dialect
supplies what genuinely differs: how to connect, the placeholder (`?` → `%s` for psycopg), schema types
(SQLite's REAL is 8 bytes, PostgreSQL's 4: scripts say REAL and mean DOUBLE PRECISION), the implicit
`rowid` (PostgreSQL tables get an explicit BIGSERIAL one), where the schema version lives (SQLite's
`PRAGMA user_version`, PostgreSQL's `carecoach_schema` table behind an advisory lock, so two replicas
starting at once migrate exactly once), and which errors may clear up on a retry.

Rules for SQL written for the store: no literal `?` or `%` in the text (pass them as parameters), no
`SELECT *` (column sets differ by `rowid`), schema scripts made of plain `;`-separated statements.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg.rows import RowMaker


class StoreError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Cursor(Protocol):
    """What `Db.execute` returns, on both backends: rows index by position and by column name."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


class Dialect(Protocol):
    name: str

    def connect(self) -> Any: ...

    def translate(self, sql: str) -> str: ...

    def schema(self, script: str) -> str: ...

    def begin(self, raw: Any) -> None: ...

    def commit(self, raw: Any) -> None: ...

    def rollback(self, raw: Any) -> None: ...

    def lock_schema(self, db: Db) -> None: ...

    def schema_version(self, db: Db) -> int: ...

    def set_schema_version(self, db: Db, version: int) -> None: ...

    def error(self, exc: Exception) -> StoreError | None:
        """The StoreError for a database error, None for anything else (a bug: re-raised as is)."""
        ...

    def broken(self, raw: Any) -> bool:
        """Whether the connection is lost, so the next operation must reconnect."""
        ...


class Db:
    """One open connection, used only on the store's thread."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect
        self._cursors: list[Cursor] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self.raw.execute(self.dialect.translate(sql), tuple(params))
        self._cursors.append(cursor)
        return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        cursor: Cursor
        if isinstance(self.raw, sqlite3.Connection):
            cursor = self.raw.executemany(sql, rows)
        else:
            pg_cursor = self.raw.cursor()
            pg_cursor.executemany(self.dialect.translate(sql), [tuple(r) for r in rows])
            cursor = pg_cursor
        self._cursors.append(cursor)
        return cursor

    def close_cursors(self) -> None:
        """Close every cursor handed out, here on the store's thread. A cursor freed on another thread resets
        its cached statement there, racing this thread's next use of it: SQLite API misuse (CPython issue
        118172; concurrent utterance writes hit it)."""
        cursors, self._cursors = self._cursors, []
        for cursor in cursors:
            cursor.close()


# --- SQLite ------------------------------------------------------------------------------------------


def _sqlite_retryable(exc: sqlite3.Error) -> bool:
    # Full disk, I/O errors and lock contention can clear up; anything else is a programming error.
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in str(exc) for word in ("full", "disk", "I/O", "locked", "busy", "unable to open"))


class SQLite:
    name = "sqlite"

    def __init__(self, url: str) -> None:
        self.path = Path(url.removeprefix("sqlite:///"))
        self.target = str(self.path)

    def connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        raw = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        raw.row_factory = sqlite3.Row
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("PRAGMA busy_timeout=5000")
        raw.execute("PRAGMA foreign_keys=ON")
        return raw

    def translate(self, sql: str) -> str:
        return sql

    def schema(self, script: str) -> str:
        return script

    def begin(self, raw: sqlite3.Connection) -> None:
        raw.execute("BEGIN")

    def commit(self, raw: sqlite3.Connection) -> None:
        raw.execute("COMMIT")

    def rollback(self, raw: sqlite3.Connection) -> None:
        if raw.in_transaction:
            raw.execute("ROLLBACK")

    def lock_schema(self, db: Db) -> None:
        pass  # one node: SQLite's own write lock serialises the migration

    def schema_version(self, db: Db) -> int:
        version: int = db.execute("PRAGMA user_version").fetchone()[0]
        return version

    def set_schema_version(self, db: Db, version: int) -> None:
        db.execute(f"PRAGMA user_version={int(version)}")  # transactional, like the DDL around it

    def error(self, exc: Exception) -> StoreError | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        return StoreError(f"database error: {exc}", retryable=_sqlite_retryable(exc))

    def broken(self, raw: sqlite3.Connection) -> bool:
        return False


# --- PostgreSQL --------------------------------------------------------------------------------------


class Row:
    """A result row indexable by position and by column name, like sqlite3.Row."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> RowMaker[Row]:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> Row:
        return Row(values, index)

    return make


#: pg_advisory_xact_lock key for migrations ("carecoach" in ASCII, truncated to fit a bigint).
MIGRATION_LOCK = 0x6361726563


class Postgres:
    name = "postgresql"

    def __init__(self, url: str, *, connect_timeout: int = 5) -> None:
        self.url = url
        # Shown in errors and logs: host/port/database, never the password.
        info = psycopg.conninfo.conninfo_to_dict(url)
        self.target = f"postgresql://{info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
        self._connect_timeout = connect_timeout

    def connect(self) -> psycopg.Connection[Row]:
        # TCP keepalives: a replica whose database host vanished without a FIN learns it in ~25 s, not hours.
        return psycopg.connect(self.url, row_factory=_row_factory, connect_timeout=self._connect_timeout,
                               keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
                               application_name="carecoach")

    def translate(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def schema(self, script: str) -> str:
        script = re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)
        script = re.sub(r"\bINTEGER\b", "BIGINT", script)  # SQLite integers are 64-bit
        return re.sub(r"CREATE TABLE (\w+) \(", r"CREATE TABLE \1 (rowid BIGSERIAL NOT NULL, ", script)

    def begin(self, raw: psycopg.Connection[Row]) -> None:
        pass  # psycopg opens a transaction with the first statement

    def commit(self, raw: psycopg.Connection[Row]) -> None:
        raw.commit()

    def rollback(self, raw: psycopg.Connection[Row]) -> None:
        if not raw.closed:
            raw.rollback()

    def lock_schema(self, db: Db) -> None:
        # Held to the end of the migration's transaction: a second replica waits, then sees the new version.
        db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS carecoach_schema (version BIGINT NOT NULL)")

    def schema_version(self, db: Db) -> int:
        row = db.execute("SELECT version FROM carecoach_schema").fetchone()
        return int(row[0]) if row is not None else 0

    def set_schema_version(self, db: Db, version: int) -> None:
        if db.execute("UPDATE carecoach_schema SET version = ?", (version,)).rowcount == 0:
            db.execute("INSERT INTO carecoach_schema (version) VALUES (?)", (version,))

    def error(self, exc: Exception) -> StoreError | None:
        if not isinstance(exc, psycopg.Error):
            return None
        # OperationalError covers a lost or refused connection, admin shutdown, serialization failures,
        # deadlocks and a full disk: all may succeed on a retry. Integrity and programming errors never do.
        retryable = isinstance(exc, psycopg.OperationalError)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreError(f"database error: {text}", retryable=retryable)

    def broken(self, raw: psycopg.Connection[Row]) -> bool:
        return bool(raw.closed or raw.broken)


def dialect_for(url: str) -> SQLite | Postgres:
    if url.startswith("sqlite:///"):
        return SQLite(url)
    if url.startswith(("postgresql://", "postgres://")):
        return Postgres(url)
    raise ValueError(f"unsupported database URL scheme: {url.split(':')[0]}")
