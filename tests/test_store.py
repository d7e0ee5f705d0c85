"""dialog.store.CallStore against a real SQLite file and a real PostgreSQL server: every test that is not
about SQLite itself runs on both backends (`database_url` is parametrised), so they really share one code
path. PostgreSQL-only behaviour (migrations racing, lost connections) is in test_store_postgres.py."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dialog.store import CallStore, StoreError
from dialog.types import NewCall, Utterance
from voice.types import Word


def url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "carecoach.db"  # the parent does not exist yet


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    if request.param == "sqlite":
        return url(db_path)
    postgres_url: str = request.getfixturevalue("postgres_url")  # a fresh database on the test server
    return postgres_url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[CallStore]:
    s = CallStore(database_url)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[CallStore]:
    s = CallStore(url(db_path))
    await s.open()
    yield s
    await s.close()


def new_call(sid: str, started_at: str = "2026-11-23T10:00:00Z", **kw: str) -> NewCall:
    return NewCall(call_sid=sid, stream_sid="MZ" + sid, started_at=started_at, **kw)


def utt(seq: int, start: float, text: str = "hello", speaker: str = "customer") -> Utterance:
    return Utterance(seq=seq, speaker=speaker, start=start, end=start + 1.0, text=text,  # type: ignore[arg-type]
                     phase="other", confidence=0.8, words=(Word(text.split()[0], start, start + 0.3, 0.9),))


def test_rejects_an_unknown_url_scheme() -> None:
    with pytest.raises(ValueError, match="mysql"):
        CallStore("mysql://db/cc")


async def test_open_creates_schema_in_wal_mode(sqlite_store: CallStore, db_path: Path) -> None:
    assert await sqlite_store.ping()
    with sqlite3.connect(db_path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in other.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"calls", "utterances", "status_events"} <= tables
        assert other.execute("PRAGMA user_version").fetchone()[0] >= 1
    other.close()


async def test_reopening_an_existing_database_keeps_schema_and_data(database_url: str) -> None:
    first = CallStore(database_url)
    await first.open()
    await first.create_call(new_call("CA1", from_number="+14155550100"))
    await first.append_utterances("CA1", [utt(0, 1.0, "my bill is wrong")])
    await first.close()  # as after a crash-restart: nothing is held in memory

    second = CallStore(database_url)
    await second.open()
    try:
        call = await second.get_call("CA1")
        assert call is not None
        assert call["from"] == "+14155550100"
        assert [u["text"] for u in call["utterances"]] == ["my bill is wrong"]
    finally:
        await second.close()


async def test_data_is_visible_to_another_connection_before_close(sqlite_store: CallStore,
                                                                  db_path: Path) -> None:
    # Committed per operation: a crash right after append loses nothing.
    await sqlite_store.create_call(new_call("CA1"))
    await sqlite_store.append_utterances("CA1", [utt(0, 1.0)])
    other = sqlite3.connect(db_path)
    try:
        assert other.execute("SELECT count(*) FROM utterances WHERE call_sid='CA1'").fetchone()[0] == 1
    finally:
        other.close()


async def test_call_round_trip(store: CallStore) -> None:
    await store.create_call(new_call("CA1", from_number="+14155550100", to_number="+18005550000",
                                     agent="alice"))
    call = await store.get_call("CA1")
    assert call is not None
    assert call["call_sid"] == "CA1" and call["stream_sid"] == "MZCA1"
    assert (call["from"], call["to"], call["agent"]) == ("+14155550100", "+18005550000", "alice")
    assert call["status"] == "live" and call["ended_at"] is None
    assert call["utterances"] == [] and call["status_events"] == []
    assert call["outcome"] == {"disposition": None, "source": None, "note": ""}

    phases = [{"phase": "venting", "start": 1.2, "end": 22.5}]
    prompts = [{"id": "let-them-vent", "at": 5.1, "text": "Let them finish.", "whispered": False}]
    outcome = {"disposition": "resolved", "source": "agent", "note": "refunded"}
    metrics = {"talk_ratio": 0.42, "interruptions": 2}
    await store.update_call("CA1", status="ended", ended_at="2026-11-23T10:01:35Z", duration=95.2,
                            phases=phases, prompts=prompts, outcome=outcome, disposition="resolved",
                            metrics=metrics, recording="/r/CA1/recording.wav")
    call = await store.get_call("CA1")
    assert call is not None
    assert call["status"] == "ended" and call["ended_at"] == "2026-11-23T10:01:35Z"
    assert call["duration"] == 95.2
    assert (call["phases"], call["prompts"], call["outcome"], call["metrics"]) == (phases, prompts, outcome,
                                                                                   metrics)
    assert call["has_recording"] is True


async def test_get_unknown_call_is_none(store: CallStore) -> None:
    assert await store.get_call("CAnope") is None


async def test_update_call_rejects_unknown_fields(store: CallStore) -> None:
    await store.create_call(new_call("CA1"))
    with pytest.raises(ValueError, match="started_at"):
        await store.update_call("CA1", started_at="2026-01-01T00:00:00Z")


async def test_create_call_again_resumes_the_same_call(store: CallStore) -> None:
    await store.create_call(new_call("CA1"))
    await store.append_utterances("CA1", [utt(0, 1.0)])
    await store.update_call("CA1", status="interrupted", ended_at="2026-11-23T10:00:30Z")
    await store.create_call(NewCall("CA1", "MZsecond", "2026-11-23T10:00:40Z"))
    call = await store.get_call("CA1")
    assert call is not None
    assert call["status"] == "live" and call["ended_at"] is None and call["stream_sid"] == "MZsecond"
    assert call["started_at"] == "2026-11-23T10:00:00Z"
    assert len(call["utterances"]) == 1


async def test_utterances_ordered_by_start_and_retry_is_idempotent(store: CallStore) -> None:
    await store.create_call(new_call("CA1"))
    # Finalised out of order: the agent's short turn finishes before the customer's long one.
    await store.append_utterances("CA1", [utt(1, 4.0, "second", "agent"), utt(0, 1.0, "first")])
    await store.append_utterances("CA1", [utt(2, 9.0, "third")])
    await store.append_utterances("CA1", [utt(2, 9.0, "third")])  # a retried batch
    call = await store.get_call("CA1")
    assert call is not None
    assert [(u["seq"], u["text"], u["speaker"]) for u in call["utterances"]] == [
        (0, "first", "customer"), (1, "second", "agent"), (2, "third", "customer")]
    first = call["utterances"][0]
    assert first == {"seq": 0, "speaker": "customer", "start": 1.0, "end": 2.0, "text": "first",
                     "phase": "other", "confidence": 0.8}


async def test_utterances_for_unknown_call_are_refused(store: CallStore) -> None:
    with pytest.raises(StoreError) as info:
        await store.append_utterances("CAnope", [utt(0, 1.0)])
    assert info.value.retryable is False


async def test_a_failing_batch_writes_nothing(store: CallStore) -> None:
    await store.create_call(new_call("CA1"))
    broken = Utterance(1, "customer", 2.0, 3.0, None, "other", 0.5)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await store.append_utterances("CA1", [utt(0, 1.0), broken])
    call = await store.get_call("CA1")
    assert call is not None and call["utterances"] == []


async def test_status_events_attached_to_call(store: CallStore) -> None:
    await store.create_call(new_call("CA1"))
    await store.add_status_event("CA1", "2026-11-23T10:00:01Z", {"CallStatus": "ringing"})
    await store.add_status_event("CA1", "2026-11-23T10:00:02Z", {"CallStatus": "in-progress"})
    await store.add_status_event("CA2", "2026-11-23T10:00:03Z", {"CallStatus": "completed"})
    call = await store.get_call("CA1")
    assert call is not None
    assert call["status_events"] == [
        {"received_at": "2026-11-23T10:00:01Z", "CallStatus": "ringing"},
        {"received_at": "2026-11-23T10:00:02Z", "CallStatus": "in-progress"},
    ]


async def test_interrupt_stale_calls(store: CallStore) -> None:
    for sid in ("CA1", "CA2", "CA3"):
        await store.create_call(new_call(sid))
        await store.append_utterances(sid, [utt(0, 1.0)])
    await store.update_call("CA3", status="ended", ended_at="2026-11-23T10:05:00Z")
    assert await store.interrupt_stale_calls("2026-11-23T11:00:00Z") == 2
    for sid in ("CA1", "CA2"):
        call = await store.get_call(sid)
        assert call is not None
        assert call["status"] == "interrupted" and call["ended_at"] == "2026-11-23T11:00:00Z"
        assert len(call["utterances"]) == 1  # kept
    ended = await store.get_call("CA3")
    assert ended is not None and ended["status"] == "ended" and ended["ended_at"] == "2026-11-23T10:05:00Z"
    assert await store.interrupt_stale_calls("2026-11-23T12:00:00Z") == 0


async def test_orphaned_calls_are_those_of_replicas_whose_lease_ran_out(database_url: str) -> None:
    a, b = CallStore(database_url, replica="a"), CallStore(database_url, replica="b")
    await a.open()
    await b.open()
    try:
        for replica in (a, b):
            await replica.renew_lease("2026-11-23T10:00:00Z")
        await a.create_call(new_call("CA1"))
        await b.create_call(new_call("CA2"))
        await a.append_utterances("CA1", [utt(0, 1.0)])
        await a.renew_lease("2026-11-23T10:01:00Z")  # b stopped renewing: it crashed
        assert await a.interrupt_orphaned_calls("2026-11-23T10:01:00Z", alive_since="2026-11-23T10:00:30Z") == 1
        kept, orphan = await a.get_call("CA1"), await a.get_call("CA2")
        assert kept is not None and kept["status"] == "live" and len(kept["utterances"]) == 1
        assert orphan is not None and (orphan["status"], orphan["ended_at"]) == ("interrupted", "2026-11-23T10:01:00Z")
        assert await a.interrupt_orphaned_calls("2026-11-23T10:01:10Z", alive_since="2026-11-23T10:00:40Z") == 0
        await a.create_call(new_call("CA2"))  # the caller's stream reconnects, to replica a: a owns it now
        assert await a.interrupt_orphaned_calls("2026-11-23T10:01:20Z", alive_since="2026-11-23T10:00:50Z") == 0
        resumed = await b.get_call("CA2")
        assert resumed is not None and resumed["status"] == "live"
    finally:
        await a.close()
        await b.close()


# --- listing ---------------------------------------------------------------------------------------


@pytest.fixture
async def listed(store: CallStore) -> CallStore:
    calls = [
        ("CA1", "2026-11-20T09:00:00Z", "alice", "ended", "resolved", "my bill is wrong"),
        ("CA2", "2026-11-21T09:00:00Z", "bob", "ended", "escalated", "I want 100% of it back"),
        ("CA3", "2026-11-22T09:00:00Z", "alice", "interrupted", None, "account_id please"),
        ("CA4", "2026-11-23T09:00:00Z", "bob", "live", None, "where is my refund"),
        ("CA5", "2026-11-23T09:00:00Z", "carol", "ended", "resolved", "the 100 dollar accountXid charge"),
    ]
    for sid, started, agent, status, disposition, text in calls:
        await store.create_call(new_call(sid, started, agent=agent))
        await store.append_utterances(sid, [utt(0, 1.0, text)])
        await store.update_call(sid, status=status, disposition=disposition)
    return store


async def sids(store: CallStore, **filters: object) -> list[str]:
    calls, _ = await store.search_calls(**filters)  # type: ignore[arg-type]
    return [c["call_sid"] for c in calls]


async def test_list_newest_first_without_utterances(listed: CallStore) -> None:
    calls, _ = await listed.search_calls()
    # CA4 and CA5 started at the same instant: the later-created one comes first.
    assert [c["call_sid"] for c in calls] == ["CA5", "CA4", "CA3", "CA2", "CA1"]
    assert all("utterances" not in c for c in calls)


async def test_list_limit(listed: CallStore) -> None:
    assert await sids(listed, limit=2) == ["CA5", "CA4"]


@pytest.mark.parametrize(("filters", "expected"), [
    ({"status": "ended"}, ["CA5", "CA2", "CA1"]),
    ({"status": "interrupted"}, ["CA3"]),
    ({"outcome": "resolved"}, ["CA5", "CA1"]),
    ({"outcome": "escalated"}, ["CA2"]),
    ({"agent": "alice"}, ["CA3", "CA1"]),
    ({"since": "2026-11-22T00:00:00Z"}, ["CA5", "CA4", "CA3"]),
    ({"agent": "bob", "status": "ended"}, ["CA2"]),
    ({"q": "refund"}, ["CA4"]),
    ({"q": "MY BILL"}, ["CA1"]),
    ({"q": "100%"}, ["CA2"]),  # % is literal: "the 100 dollar" does not match
    ({"q": "account_id"}, ["CA3"]),  # _ is literal: "accountXid" does not match
    ({"q": "%"}, ["CA2"]),
    ({"q": "nothing like this"}, []),
    ({"status": "ended", "q": "100", "limit": 1}, ["CA5"]),
])
async def test_list_filters(listed: CallStore, filters: dict[str, object], expected: list[str]) -> None:
    assert await sids(listed, **filters) == expected


async def test_list_q_backslash_is_literal(store: CallStore) -> None:
    await store.create_call(new_call("CA1"))
    await store.append_utterances("CA1", [utt(0, 1.0, r"path c:\temp")])
    await store.create_call(new_call("CA2"))
    await store.append_utterances("CA2", [utt(0, 1.0, "path c:temp")])
    assert await sids(store, q="c:\\t") == ["CA1"]


# --- failures ----------------------------------------------------------------------------------------


async def test_locked_database_is_retryable(sqlite_store: CallStore, db_path: Path) -> None:
    store = sqlite_store
    # The store waits up to 5 s for a lock; shorten that for the test (white-box: via the store's own
    # connection thread) so the lock error arrives at once.
    await store._run(lambda db: db.execute("PRAGMA busy_timeout=50"))
    holder = sqlite3.connect(db_path, isolation_level=None, timeout=0.05)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError) as info:
            await store.create_call(new_call("CA1"))
        assert info.value.retryable is True
        assert "locked" in str(info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await store.create_call(new_call("CA1"))  # the retry succeeds once the lock is gone
    assert await store.get_call("CA1") is not None


async def test_open_failure_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    s = CallStore(url(blocker / "carecoach.db"))
    with pytest.raises(StoreError):
        await s.open()
    await s.close()


async def test_operations_before_open_fail_cleanly(database_url: str) -> None:
    s = CallStore(database_url)
    assert await s.ping() is False
    with pytest.raises(StoreError) as info:
        await s.get_call("CA1")
    assert info.value.retryable is False
    await s.close()


async def test_ping_is_false_after_close(database_url: str) -> None:
    s = CallStore(database_url)
    await s.open()
    assert await s.ping() is True
    await s.close()
    assert await s.ping() is False


async def test_writes_after_close_raise_store_error(database_url: str) -> None:
    s = CallStore(database_url)
    await s.open()
    await s.close()
    with pytest.raises((StoreError, RuntimeError)):
        await s.create_call(new_call("CA1"))


async def test_no_cursor_leaves_the_store_thread_open(store: CallStore) -> None:
    """A cursor freed on the event loop's thread while the store thread reuses its cached statement was SQLite
    API misuse (concurrent utterance writes hit it): the store closes every cursor on its own thread."""
    cursor = await store._run(lambda db: db.execute("SELECT 1"))
    with pytest.raises(Exception, match="closed"):
        cursor.fetchone()
    assert await store.ping()
