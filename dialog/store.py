"""The call store: calls, utterances, status callbacks and outcomes, in SQLite (default) or PostgreSQL
(`postgresql://…`, for several replicas) behind an async interface.

Both backends take the same code path: one connection on one dedicated thread, so the event loop never
waits on the database and writes are serialised without locks, and the same SQL, which `dialog.sql`
adapts (placeholders, types, schema version). SQLite runs in WAL mode. Utterances are appended as they
are finalised (a crash loses at most the one in flight); `finish_call` only stamps the end. Errors
surface as `StoreError` carrying whether a retry may succeed (disk full, database locked, PostgreSQL
connection lost) or not (a bug, a bad schema). A lost PostgreSQL connection is reopened by the next
operation.

Writing store SQL: `?` placeholders through `db.execute`/`db.executemany`, no literal `?` or `%` in the
text, portable syntax (`ON CONFLICT … DO UPDATE`, `LOWER(x) LIKE ?` for case-insensitive search), and
schema scripts that run on both (tests/test_store.py runs every test against both backends).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

# StoreError is re-exported: callers catch `dialog.store.StoreError`.
from dialog.sql import Db, dialect_for, statements
from dialog.sql import StoreError as StoreError
from dialog.types import NewCall, Utterance

T = TypeVar("T")

SCHEMA = [
    # version 1
    """
    CREATE TABLE calls (
        call_sid TEXT PRIMARY KEY,
        stream_sid TEXT NOT NULL DEFAULT '',
        from_number TEXT NOT NULL DEFAULT '',
        to_number TEXT NOT NULL DEFAULT '',
        agent TEXT NOT NULL DEFAULT '',
        carrier TEXT NOT NULL DEFAULT 'twilio',
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        duration REAL,
        phases TEXT NOT NULL DEFAULT '[]',
        prompts TEXT NOT NULL DEFAULT '[]',
        outcome TEXT,
        disposition TEXT,
        metrics TEXT NOT NULL DEFAULT '{}',
        recording TEXT,
        frame_errors INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX calls_started ON calls(started_at);
    CREATE TABLE utterances (
        call_sid TEXT NOT NULL REFERENCES calls(call_sid),
        seq INTEGER NOT NULL,
        speaker TEXT NOT NULL,
        start REAL NOT NULL,
        "end" REAL NOT NULL,
        text TEXT NOT NULL,
        phase TEXT NOT NULL,
        confidence REAL NOT NULL,
        words TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (call_sid, seq)
    );
    CREATE TABLE status_events (
        call_sid TEXT NOT NULL,
        received_at TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX status_events_call ON status_events(call_sid);
    """,
    # version 2: who set the outcome, so an inferred one never replaces the agent's
    """
    ALTER TABLE calls ADD COLUMN outcome_source TEXT;
    """,
    # version 3: per-agent settings (audio whispers are opt-in per agent)
    """
    CREATE TABLE agent_settings (
        agent TEXT PRIMARY KEY,
        whisper INTEGER NOT NULL
    );
    """,
    # version 4: replicas sharing one PostgreSQL database. Each live call names the replica streaming it, and
    # replicas hold leases, so a replica that starts (or sweeps) interrupts only calls whose replica is gone.
    """
    ALTER TABLE calls ADD COLUMN replica TEXT;
    CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        seen_at TEXT NOT NULL
    );
    """,
]

_SUMMARY_COLUMNS = (
    "call_sid, stream_sid, from_number, to_number, agent, carrier, status, started_at, ended_at, duration,"
    " phases, prompts, outcome, metrics, recording, frame_errors"
)


class CallStore:
    def __init__(self, url: str, *, replica: str | None = None) -> None:
        self.dialect = dialect_for(url)  # ValueError for an unknown scheme
        self.backend = self.dialect.name
        #: This process, as recorded on the calls it streams (a fresh id per start: see `renew_lease`).
        self.replica = replica or uuid.uuid4().hex[:12]
        self._db: Db | None = None
        self._open = False
        # One thread owns the connection: writes are serialised anyway, and this keeps the event loop
        # free of database waits.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carecoach-db")

    def _connection(self) -> Db:
        """The open connection, reconnecting first if the last one was lost (store thread only)."""
        if self._db is None:
            self._db = Db(self.dialect.connect(), self.dialect)
        return self._db

    def _transaction(self, fn: Callable[[Db], T]) -> T:
        """Run `fn` in one transaction on the store thread, so a failing batch writes nothing."""
        try:
            db = self._connection()
            self.dialect.begin(db.raw)
            try:
                result = fn(db)
                self.dialect.commit(db.raw)
            except BaseException:
                # Also after a failed COMMIT, so the next operation starts clean; a rollback failing on a
                # lost connection is secondary: the original error is the one to report.
                with contextlib.suppress(Exception):
                    self.dialect.rollback(db.raw)
                raise
            finally:
                with contextlib.suppress(Exception):  # a lost connection's cursors are gone anyway
                    db.close_cursors()
            return result
        except Exception as exc:
            error = self.dialect.error(exc)
            if error is None:
                raise
            if self._db is not None and self.dialect.broken(self._db.raw):
                # Lost connection: drop it; the next operation reconnects (and fails retryably until the
                # database is back).
                self._db = None
            raise error from exc

    async def _run(self, fn: Callable[[Db], T]) -> T:
        if not self._open:
            raise StoreError("database is not open", retryable=False)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, fn)

    def _migrate(self, db: Db) -> None:
        self.dialect.lock_schema(db)
        version = self.dialect.schema_version(db)
        for script in SCHEMA[version:]:
            for statement in statements(self.dialect.schema(script)):
                db.execute(statement)
        if version < len(SCHEMA):
            self.dialect.set_schema_version(db, len(SCHEMA))

    async def open(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, self._migrate)
        except (StoreError, OSError) as exc:
            self._close_connection()
            raise StoreError(f"cannot open database {self.dialect.target}: {exc}",
                             retryable=isinstance(exc, StoreError) and exc.retryable) from exc
        self._open = True

    def _close_connection(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.raw.close()

    async def close(self) -> None:
        if self._open:
            self._open = False
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close_connection)
        self._executor.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            return await self._run(lambda db: db.execute("SELECT 1").fetchone()[0] == 1)
        except StoreError:
            return False

    # --- writes ---------------------------------------------------------------------------------

    async def create_call(self, call: NewCall) -> None:
        def write(db: Db) -> None:
            # A reconnecting stream for the same call keeps its history: upsert, back to live.
            db.execute(
                "INSERT INTO calls (call_sid, stream_sid, from_number, to_number, agent, carrier, status,"
                " started_at, replica) VALUES (?, ?, ?, ?, ?, ?, 'live', ?, ?)"
                " ON CONFLICT(call_sid) DO UPDATE SET stream_sid=excluded.stream_sid, status='live',"
                " ended_at=NULL, replica=excluded.replica",
                (call.call_sid, call.stream_sid, call.from_number, call.to_number, call.agent, call.carrier,
                 call.started_at, self.replica),
            )

        await self._run(write)

    async def append_utterances(self, call_sid: str, utterances: Sequence[Utterance]) -> None:
        rows = [
            (call_sid, u.seq, u.speaker, u.start, u.end, u.text, u.phase, u.confidence,
             json.dumps([[w.text, round(w.start, 3), round(w.end, 3), round(w.confidence, 3)] for w in u.words]))
            for u in utterances
        ]
        # The upsert makes a retried batch idempotent.
        await self._run(lambda db: db.executemany(
            'INSERT INTO utterances (call_sid, seq, speaker, start, "end", text, phase, confidence,'
            " words) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(call_sid, seq) DO UPDATE SET"
            ' speaker=excluded.speaker, start=excluded.start, "end"=excluded."end", text=excluded.text,'
            " phase=excluded.phase, confidence=excluded.confidence, words=excluded.words", rows))

    async def update_call(self, call_sid: str, **fields: Any) -> bool:
        """Set columns on a call; False if there is no such call. JSON-typed columns (phases, prompts, outcome,
        metrics) take Python values."""
        allowed = {"status", "ended_at", "duration", "phases", "prompts", "outcome", "disposition", "metrics",
                   "recording", "frame_errors", "agent", "outcome_source"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown call fields: {sorted(unknown)}")
        json_columns = {"phases", "prompts", "outcome", "metrics"}
        values = [json.dumps(v) if k in json_columns else v for k, v in fields.items()]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        return await self._run(lambda db: db.execute(
            f"UPDATE calls SET {assignments} WHERE call_sid = ?", (*values, call_sid)).rowcount == 1)

    async def set_inferred_outcome(self, call_sid: str, outcome: Mapping[str, Any]) -> bool:
        """Store an inferred outcome unless the agent already set one. True if it was stored."""
        return await self._run(lambda db: db.execute(
            "UPDATE calls SET outcome = ?, disposition = ?, outcome_source = 'inferred' WHERE call_sid = ?"
            " AND (outcome_source IS NULL OR outcome_source != 'agent')",
            (json.dumps(dict(outcome)), outcome.get("disposition"), call_sid)).rowcount == 1)

    async def add_status_event(self, call_sid: str, received_at: str, payload: Mapping[str, str]) -> None:
        await self._run(lambda db: db.execute(
            "INSERT INTO status_events (call_sid, received_at, payload) VALUES (?, ?, ?)",
            (call_sid, received_at, json.dumps(dict(payload)))))

    async def set_whisper(self, agent: str, enabled: bool) -> None:
        """Opt `agent` in to (or out of) audio whispers."""
        await self._run(lambda db: db.execute(
            "INSERT INTO agent_settings (agent, whisper) VALUES (?, ?)"
            " ON CONFLICT(agent) DO UPDATE SET whisper=excluded.whisper", (agent, int(enabled))))

    async def interrupt_stale_calls(self, ended_at: str) -> int:
        """Calls left `live` by a process that died are `interrupted`; their utterances are kept. For one
        node (SQLite) at start-up: every live call is stale. Replicas use `interrupt_orphaned_calls`."""
        return await self._run(lambda db: db.execute(
            "UPDATE calls SET status='interrupted', ended_at=? WHERE status='live'", (ended_at,)).rowcount)

    async def renew_lease(self, now: str) -> None:
        """Record that this replica is alive at `now`."""
        await self._run(lambda db: db.execute(
            "INSERT INTO replicas (id, seen_at) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET seen_at=excluded.seen_at",
            (self.replica, now)))

    async def interrupt_orphaned_calls(self, ended_at: str, alive_since: str) -> int:
        """Interrupt live calls whose replica has not renewed its lease since `alive_since` (it died, or its
        database connection did); forget such replicas. Calls streamed by live replicas are untouched."""
        def sweep(db: Db) -> int:
            count = db.execute(
                "UPDATE calls SET status='interrupted', ended_at=? WHERE status='live' AND (replica IS NULL OR"
                " replica NOT IN (SELECT id FROM replicas WHERE seen_at >= ?))", (ended_at, alive_since)).rowcount
            db.execute("DELETE FROM replicas WHERE seen_at < ?", (alive_since,))
            return count

        return await self._run(sweep)

    # --- reads ----------------------------------------------------------------------------------

    async def get_call(self, call_sid: str) -> dict[str, Any] | None:
        def read(db: Db) -> dict[str, Any] | None:
            row = db.execute(f"SELECT {_SUMMARY_COLUMNS} FROM calls WHERE call_sid = ?", (call_sid,)).fetchone()
            if row is None:
                return None
            call = _summary(row)
            call["utterances"] = [
                {"seq": u["seq"], "speaker": u["speaker"], "start": u["start"], "end": u["end"],
                 "text": u["text"], "phase": u["phase"], "confidence": u["confidence"]}
                for u in db.execute(
                    'SELECT seq, speaker, start, "end", text, phase, confidence FROM utterances'
                    " WHERE call_sid = ? ORDER BY start, seq", (call_sid,))
            ]
            call["status_events"] = [
                {"received_at": e["received_at"], **json.loads(e["payload"])}
                for e in db.execute(
                    "SELECT received_at, payload FROM status_events WHERE call_sid = ? ORDER BY rowid",
                    (call_sid,))
            ]
            return call

        return await self._run(read)

    async def get_whisper(self, agent: str) -> bool:
        """Whether `agent` opted in to audio whispers (never set: no)."""
        def read(db: Db) -> bool:
            row = db.execute("SELECT whisper FROM agent_settings WHERE agent = ?", (agent,)).fetchone()
            return bool(row["whisper"]) if row is not None else False

        return await self._run(read)

    # --- pages: search with paging, ownership, retention (portable SQL: SQLite and PostgreSQL) ------

    async def search_calls(
        self,
        *,
        status: str | None = None,
        outcome: str | None = None,
        agent: str | None = None,
        since: str | None = None,
        until: str | None = None,
        q: str | None = None,
        phase: str | None = None,
        sort: str = "newest",
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of call summaries and the number of calls matching in all. `q` matches the transcript,
        the call id or the agent, case-insensitively; `phase` a phase anywhere on the call's timeline."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("status", status), ("disposition", outcome), ("agent", agent)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since:
            clauses.append("started_at >= ?")
            params.append(since)
        if until:
            clauses.append("started_at < ?")
            params.append(until)
        if q:
            escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
            clauses.append("(call_sid IN (SELECT call_sid FROM utterances WHERE LOWER(text) LIKE ? ESCAPE '\\')"
                           " OR LOWER(call_sid) LIKE ? ESCAPE '\\' OR LOWER(agent) LIKE ? ESCAPE '\\')")
            params += [pattern, pattern, pattern]
        if phase:
            # The timeline is stored as JSON text written by json.dumps: match its exact `"phase": "X"` pair.
            clauses.append("CAST(phases AS TEXT) LIKE ?")
            params.append(f'%"phase": "{phase}"%')
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = CALL_SORTS[sort]
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM calls {where} ORDER BY {order} LIMIT ? OFFSET ?"

        def read(db: Db) -> tuple[list[dict[str, Any]], int]:
            total = int(db.execute(f"SELECT COUNT(*) FROM calls {where}", params).fetchone()[0])
            return [_summary(r) for r in db.execute(sql, (*params, limit, offset))], total

        return await self._run(read)

    async def call_agent(self, call_sid: str) -> str | None:
        """The agent a call belongs to ('' if unknown), or None if there is no such call."""
        def read(db: Db) -> str | None:
            row = db.execute("SELECT agent FROM calls WHERE call_sid = ?", (call_sid,)).fetchone()
            return None if row is None else str(row[0])

        return await self._run(read)

    async def delete_calls_before(self, cutoff: str) -> list[str]:
        """Delete finished calls started before `cutoff` (ISO 8601 UTC) with their utterances and status
        callbacks; live calls are kept. Returns the deleted call ids (their recordings are the caller's)."""
        def delete(db: Db) -> list[str]:
            old = "SELECT call_sid FROM calls WHERE started_at < ? AND status != 'live'"
            sids = [str(r[0]) for r in db.execute(old, (cutoff,)).fetchall()]
            if sids:
                db.execute(f"DELETE FROM utterances WHERE call_sid IN ({old})", (cutoff,))
                db.execute(f"DELETE FROM status_events WHERE call_sid IN ({old})", (cutoff,))
                db.execute("DELETE FROM calls WHERE started_at < ? AND status != 'live'", (cutoff,))
            return sids

        return await self._run(delete)


#: `sort` values of `search_calls` (and `GET /api/calls`), newest first by default.
#: Ties go by insertion order (`rowid`, which `dialog.sql` gives PostgreSQL tables too).
CALL_SORTS = {
    "newest": "started_at DESC, rowid DESC",
    "oldest": "started_at ASC, rowid ASC",
    "longest": "COALESCE(duration, 0) DESC, rowid DESC",
    "shortest": "COALESCE(duration, 0) ASC, rowid ASC",
}


def _summary(row: Any) -> dict[str, Any]:
    outcome = json.loads(row["outcome"]) if row["outcome"] else None
    return {
        "call_sid": row["call_sid"],
        "stream_sid": row["stream_sid"],
        "from": row["from_number"],
        "to": row["to_number"],
        "agent": row["agent"],
        "carrier": row["carrier"],
        "status": row["status"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "duration": row["duration"],
        "phases": json.loads(row["phases"]),
        "prompts": json.loads(row["prompts"]),
        "outcome": outcome or {"disposition": None, "source": None, "note": ""},
        "metrics": json.loads(row["metrics"]),
        "has_recording": bool(row["recording"]),
        "frame_errors": row["frame_errors"],
    }
