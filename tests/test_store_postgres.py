"""dialog.store.CallStore on PostgreSQL only: migrations from an empty database and racing replicas, and a
database that goes away and comes back. (The shared behaviour runs on both backends in test_store.py.)"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from dialog.sql import Postgres, statements
from dialog.store import SCHEMA, CallStore, StoreError
from tests.conftest import CALLS, ServerFactory
from tests.pg import PostgresServer
from tests.test_store import new_call, utt
from voice.simulate import load_stereo, new_call_sid, stream_call
from voice.state import HUB, STORE


def columns(url: str, table: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
                            (table,)).fetchall()
    return {name: kind for name, kind in rows}


async def test_migrates_an_empty_database(postgres_url: str) -> None:
    store = CallStore(postgres_url)
    await store.open()
    try:
        assert store.backend == "postgresql" and await store.ping()
    finally:
        await store.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM carecoach_schema").fetchall() == [(len(SCHEMA),)]
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"calls", "utterances", "status_events", "agent_settings", "carecoach_schema"} <= tables
    # SQLite's REAL is 8 bytes: PostgreSQL's must be too, or 95.2 s comes back as 95.19999694824219.
    calls = columns(postgres_url, "calls")
    assert calls["duration"] == "double precision" and calls["frame_errors"] == "bigint"
    assert calls["rowid"] == "bigint"  # insertion order, as SQLite's implicit rowid


async def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    stores = [CallStore(postgres_url) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))  # each on its own thread and connection
        await stores[0].create_call(new_call("CA1"))
        await stores[1].append_utterances("CA1", [utt(0, 1.0, "written by another replica")])
        call = await stores[3].get_call("CA1")
        assert call is not None and [u["text"] for u in call["utterances"]] == ["written by another replica"]
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM carecoach_schema").fetchall() == [(len(SCHEMA),)]

    again = CallStore(postgres_url)  # an up-to-date database: nothing to do, data kept
    await again.open()
    try:
        assert await again.get_call("CA1") is not None
    finally:
        await again.close()


async def test_an_older_schema_is_brought_up_to_date(postgres_url: str) -> None:
    dialect = Postgres(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        for script in SCHEMA[:2]:
            for statement in statements(dialect.schema(script)):
                conn.execute(statement)
        conn.execute("CREATE TABLE carecoach_schema (version BIGINT NOT NULL)")
        conn.execute("INSERT INTO carecoach_schema VALUES (2)")
    store = CallStore(postgres_url)
    await store.open()
    try:
        await store.set_whisper("alice", True)  # agent_settings arrived with version 3
        assert await store.get_whisper("alice") is True
    finally:
        await store.close()


async def test_a_lost_connection_is_retryable_and_the_store_reconnects(postgres: PostgresServer,
                                                                       postgres_url: str) -> None:
    store = CallStore(postgres_url)
    await store.open()
    try:
        await store.create_call(new_call("CA1"))
        assert postgres.terminate_backends(postgres_url) == 1  # as a failover or an admin would
        with pytest.raises(StoreError) as info:
            await store.append_utterances("CA1", [utt(0, 1.0, "lost")])
        assert info.value.retryable is True
        await store.append_utterances("CA1", [utt(0, 1.0, "retried")])  # the next call reconnects
        call = await store.get_call("CA1")
        assert call is not None and [u["text"] for u in call["utterances"]] == ["retried"]
    finally:
        await store.close()


async def test_the_database_going_away_mid_call_and_coming_back(postgres: PostgresServer,
                                                                postgres_url: str) -> None:
    store = CallStore(postgres_url)
    await store.open()
    try:
        await store.create_call(new_call("CA1"))
        await store.append_utterances("CA1", [utt(0, 1.0, "before")])
        postgres.stop()
        try:
            for attempt in range(2):  # the lost connection, then a refused reconnect: both retryable
                with pytest.raises(StoreError) as info:
                    await store.append_utterances("CA1", [utt(1, 2.0, f"during {attempt}")])
                assert info.value.retryable is True, info.value
            assert await store.ping() is False  # /readyz reports the database down
        finally:
            postgres.start()
        assert await store.ping() is True
        await store.append_utterances("CA1", [utt(1, 2.0, "after")])
        call = await store.get_call("CA1")
        assert call is not None and [u["text"] for u in call["utterances"]] == ["before", "after"]
    finally:
        await store.close()


async def test_errors_never_show_the_password(postgres: PostgresServer) -> None:
    closed_port = postgres.url().replace(f":{postgres.port}/", ":1/").replace("carecoach@", "carecoach:s3cret@")
    store = CallStore(closed_port)
    with pytest.raises(StoreError) as info:
        await store.open()
    await store.close()
    assert "s3cret" not in str(info.value) and "127.0.0.1:1/" in str(info.value)
    assert info.value.retryable is True  # a refused connection may work later


async def test_integrity_errors_are_not_retryable(postgres_url: str) -> None:
    store = CallStore(postgres_url)
    await store.open()
    try:
        with pytest.raises(StoreError) as info:
            await store.append_utterances("CAnope", [utt(0, 1.0)])  # no such call: foreign key
        assert info.value.retryable is False
        assert await store.ping()  # the connection survives a failed statement
    finally:
        await store.close()


@pytest.mark.slow
async def test_a_call_survives_the_database_going_away_and_coming_back(make_server: ServerFactory,
                                                                      postgres: PostgresServer, postgres_url: str,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    server = await make_server(database_url=postgres_url)
    samples = load_stereo(CALLS / "locked_out_fine.wav")
    call_sid = new_call_sid()
    events = aiter(server.app[HUB].subscribe(call_sid))
    url = str(server.make_url("/twilio/stream")).replace("http", "ws", 1)
    streaming = asyncio.create_task(stream_call(samples, url, speed=4, call_sid=call_sid))
    published: list[str] = []
    during_outage = 0
    try:
        async with asyncio.timeout(60):
            async for event in events:
                if event["type"] == "utterance":
                    published.append(event["text"])
                    if len(published) == 1:  # the first utterance is stored; then the database goes away
                        await asyncio.to_thread(postgres.stop)
                    elif during_outage < 2:  # finalised with the database down: kept in memory and retried
                        during_outage += 1
                        if during_outage == 2:
                            await asyncio.to_thread(postgres.start)
                if event["type"] == "call_ended":
                    break
        await streaming
    finally:
        if not streaming.done():
            streaming.cancel()
        if during_outage < 2:
            await asyncio.to_thread(postgres.start)  # the session's server serves the next tests
    assert during_outage == 2 and len(published) >= 4
    assert any("utterance(s) kept in memory and retried" in r.getMessage() for r in caplog.records)
    assert any("database back after" in r.getMessage() for r in caplog.records)
    stored = await server.app[STORE].get_call(call_sid)
    assert stored is not None and stored["status"] == "ended"
    assert sorted(u["text"] for u in stored["utterances"]) == sorted(published)  # nothing lost
