"""The call store: calls, utterances, status callbacks and outcomes, in SQLite (default) behind an
async interface.

SQLite runs in WAL mode on one dedicated thread, so the event loop never waits on disk and writes
are serialised without locks. Utterances are appended as they are finalised (a crash loses at most
the one in flight); `finish_call` only stamps the end. Errors surface as `StoreError` carrying
whether a retry may succeed (disk full, database locked) or not (a bug, a bad schema).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

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
]

_SUMMARY_COLUMNS = (
    "call_sid, stream_sid, from_number, to_number, agent, carrier, status, started_at, ended_at, duration,"
    " phases, prompts, outcome, metrics, recording, frame_errors"
)


class StoreError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _classify(exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    # Full disk, I/O errors and lock contention can clear up; anything else is a programming error.
    retryable = isinstance(exc, sqlite3.OperationalError) and any(
        word in text for word in ("full", "disk", "I/O", "locked", "busy", "unable to open")
    )
    return StoreError(f"database error: {text}", retryable=retryable)


class CallStore:
    def __init__(self, url: str) -> None:
        if not url.startswith("sqlite:///"):
            raise ValueError(f"unsupported database URL scheme: {url.split(':')[0]}")
        self.path = Path(url.removeprefix("sqlite:///"))
        self._db: sqlite3.Connection | None = None
        # One thread owns the connection: SQLite writes are serialised anyway, and this keeps the
        # event loop free of disk waits.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carecoach-db")

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise StoreError("database is not open", retryable=False)

        def call() -> T:
            try:
                # One transaction per operation, so a failing batch writes nothing.
                db.execute("BEGIN")
                try:
                    result = fn(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise _classify(exc) from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA foreign_keys=ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(SCHEMA[version:], start=version + 1):
                db.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")
            return db

        try:
            self._db = await asyncio.get_running_loop().run_in_executor(self._executor, connect)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}", retryable=False) from exc

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            return await self._run(lambda db: db.execute("SELECT 1").fetchone()[0] == 1)
        except StoreError:
            return False

    # --- writes ---------------------------------------------------------------------------------

    async def create_call(self, call: NewCall) -> None:
        def write(db: sqlite3.Connection) -> None:
            # A reconnecting stream for the same call keeps its history: upsert, back to live.
            db.execute(
                "INSERT INTO calls (call_sid, stream_sid, from_number, to_number, agent, carrier, status,"
                " started_at) VALUES (?, ?, ?, ?, ?, ?, 'live', ?)"
                " ON CONFLICT(call_sid) DO UPDATE SET stream_sid=excluded.stream_sid, status='live',"
                " ended_at=NULL",
                (call.call_sid, call.stream_sid, call.from_number, call.to_number, call.agent, call.carrier,
                 call.started_at),
            )

        await self._run(write)

    async def append_utterances(self, call_sid: str, utterances: Sequence[Utterance]) -> None:
        rows = [
            (call_sid, u.seq, u.speaker, u.start, u.end, u.text, u.phase, u.confidence,
             json.dumps([[w.text, round(w.start, 3), round(w.end, 3), round(w.confidence, 3)] for w in u.words]))
            for u in utterances
        ]
        # INSERT OR REPLACE makes a retried batch idempotent.
        await self._run(lambda db: db.executemany(
            'INSERT OR REPLACE INTO utterances (call_sid, seq, speaker, start, "end", text, phase, confidence,'
            " words) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows))

    async def update_call(self, call_sid: str, **fields: Any) -> None:
        """Set columns on a call. JSON-typed columns (phases, prompts, outcome, metrics) take Python values."""
        allowed = {"status", "ended_at", "duration", "phases", "prompts", "outcome", "disposition", "metrics",
                   "recording", "frame_errors", "agent", "outcome_source"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown call fields: {sorted(unknown)}")
        json_columns = {"phases", "prompts", "outcome", "metrics"}
        values = [json.dumps(v) if k in json_columns else v for k, v in fields.items()]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        await self._run(lambda db: db.execute(
            f"UPDATE calls SET {assignments} WHERE call_sid = ?", (*values, call_sid)))

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
        """Calls left `live` by a process that died are `interrupted`; their utterances are kept."""
        return await self._run(lambda db: db.execute(
            "UPDATE calls SET status='interrupted', ended_at=? WHERE status='live'", (ended_at,)).rowcount)

    # --- reads ----------------------------------------------------------------------------------

    async def get_call(self, call_sid: str) -> dict[str, Any] | None:
        def read(db: sqlite3.Connection) -> dict[str, Any] | None:
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
        def read(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT whisper FROM agent_settings WHERE agent = ?", (agent,)).fetchone()
            return bool(row["whisper"]) if row is not None else False

        return await self._run(read)

    async def list_calls(
        self,
        *,
        status: str | None = None,
        outcome: str | None = None,
        agent: str | None = None,
        since: str | None = None,
        q: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if status:
            clauses.append("status = ?")
            params.append(status)
        if outcome:
            clauses.append("disposition = ?")
            params.append(outcome)
        if agent:
            clauses.append("agent = ?")
            params.append(agent)
        if since:
            clauses.append("started_at >= ?")
            params.append(since)
        if q:
            clauses.append("call_sid IN (SELECT call_sid FROM utterances WHERE text LIKE ? ESCAPE '\\')")
            escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM calls {where} ORDER BY started_at DESC, rowid DESC LIMIT ?"
        return await self._run(lambda db: [_summary(r) for r in db.execute(sql, (*params, limit))])


def _summary(row: sqlite3.Row) -> dict[str, Any]:
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
