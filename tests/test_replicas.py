"""Live events across replicas (voice/fanout.py): NOTIFY framing, the relay between two hubs through a real
PostgreSQL server, and two real `carecoach serve` processes sharing one database, where a call streamed to
one shows on `/api/live` of the other."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from dialog.store import CallStore
from dialog.types import NewCall
from tests.conftest import CALLS, ServerFactory
from tests.pg import PostgresServer
from tests.test_cli import cli_env, free_port, run_cli
from voice.fanout import CHANNEL, FRAME_BYTES, Fanout, Reassembler, encode
from voice.hub import LiveHub
from voice.simulate import load_stereo, new_call_sid, stream_call
from voice.state import STORE

ROOT = Path(__file__).resolve().parent.parent


# --- framing -----------------------------------------------------------------------------------------


def test_small_events_are_one_frame_and_round_trip() -> None:
    event = {"type": "utterance", "call_sid": "CA1", "at": 1.5, "text": "my bill is wrong"}
    frames = encode("a", 1, event)
    assert len(frames) == 1
    assert Reassembler("b").feed(frames[0]) == event


def test_big_events_are_split_under_the_payload_limit_and_joined_intact() -> None:
    # 8000 bytes is PostgreSQL's NOTIFY limit; non-ASCII text must not push a frame over it either.
    event = {"type": "utterance", "call_sid": "CA1", "at": 1.0, "text": "ça coûte € " * 3000}
    frames = encode("a", 7, event)
    assert len(frames) > 3
    assert all(len(f.encode()) < 8000 and len(f) <= FRAME_BYTES + 40 for f in frames)
    receiver = Reassembler("b")
    assert [receiver.feed(f) for f in frames[:-1]] == [None] * (len(frames) - 1)
    assert receiver.feed(frames[-1]) == event


def test_own_events_malformed_payloads_and_broken_sequences_are_dropped() -> None:
    receiver = Reassembler("me")
    assert receiver.feed(encode("me", 1, {"type": "x"})[0]) is None  # our own, echoed back
    assert receiver.feed("not a frame") is None
    assert receiver.feed("other 1 0 1 [1, 2]") is None  # JSON, but not an event
    frames = encode("other", 2, {"type": "partial", "text": "x" * 20000})
    assert receiver.feed(frames[0]) is None
    assert receiver.feed(frames[2]) is None  # frame 1 was missed: the event is dropped, not garbled
    assert receiver.feed(encode("other", 3, {"type": "phase"})[0]) == {"type": "phase"}


# --- two hubs, one database ------------------------------------------------------------------------------


@pytest.fixture
async def pair(postgres_url: str) -> AsyncIterator[tuple[LiveHub, LiveHub, Fanout, Fanout]]:
    hubs = LiveHub(), LiveHub()
    fanouts = [Fanout(postgres_url, hub, min_backoff=0.05, max_backoff=0.2) for hub in hubs]
    for fanout in fanouts:
        await fanout.start()
        assert fanout.listening.is_set()
    yield hubs[0], hubs[1], fanouts[0], fanouts[1]
    for fanout in fanouts:
        await fanout.aclose()


Events = AsyncIterator[dict[str, Any]]


def watch(hub: LiveHub, call_sid: str | None = None) -> Events:
    return aiter(hub.subscribe(call_sid))  # one iterator per subscription: closing it unsubscribes


async def next_event(events: Events, within: float = 5.0) -> dict[str, Any]:
    return await asyncio.wait_for(anext(events), within)


async def test_an_event_published_on_one_replica_reaches_the_other_once(
        pair: tuple[LiveHub, LiveHub, Fanout, Fanout]) -> None:
    hub_a, hub_b, _, fanout_b = pair
    watch_a, watch_b = watch(hub_a), watch(hub_b, "CA1")
    big = {"type": "utterance", "call_sid": "CA1", "at": 2.0, "text": "word " * 4000}
    hub_a.publish({"type": "call_started", "call_sid": "CA1", "at": 0.0})
    hub_a.publish({"type": "call_started", "call_sid": "CA2", "at": 0.0})  # another call: B's filter drops it
    hub_a.publish(big)
    assert await next_event(watch_b) == {"type": "call_started", "call_sid": "CA1", "at": 0.0}
    assert await next_event(watch_b) == big  # 20 kB: several NOTIFYs, joined intact
    # A saw its own three events once each: its listener dropped the echoes.
    assert [(await next_event(watch_a))["call_sid"] for _ in range(3)] == ["CA1", "CA2", "CA1"]
    hub_b.publish({"type": "outcome", "call_sid": "CA1", "at": 3.0})  # and back the other way
    assert (await next_event(watch_a))["type"] == "outcome"
    assert (await next_event(watch_b))["type"] == "outcome"  # B's own subscriber, locally
    hub_a.publish({"type": "call_ended", "call_sid": "CA1", "at": 4.0})
    assert (await next_event(watch_b))["type"] == "call_ended"  # nothing duplicated came before it
    assert (await next_event(watch_a))["type"] == "call_ended"  # nor the outcome's echo on A
    assert fanout_b.received == 4


async def test_the_relay_survives_lost_connections(postgres: PostgresServer, postgres_url: str,
                                                   pair: tuple[LiveHub, LiveHub, Fanout, Fanout]) -> None:
    hub_a, hub_b, fanout_a, fanout_b = pair
    watch_b = watch(hub_b)
    for hub in (hub_a, hub_b):  # senders connect on their first event
        hub.publish({"type": "call_started", "call_sid": "CA0", "at": 0.0})
    assert [(await next_event(watch_b))["call_sid"] for _ in range(2)] == ["CA0", "CA0"]  # B's own, A's
    deadline = time.monotonic() + 10
    while not (fanout_a.sent == fanout_b.sent == 1):
        assert time.monotonic() < deadline, "senders did not send"
        await asyncio.sleep(0.01)
    assert postgres.terminate_backends(postgres_url) == 4  # both senders' and both listeners' connections
    while not (fanout_a.listens == fanout_b.listens == 2):  # reconnecting with backoff
        assert time.monotonic() < deadline, "listeners did not reconnect"
        await asyncio.sleep(0.05)
    hub_a.publish({"type": "call_started", "call_sid": "CA9", "at": 0.0})  # the sender reconnects too
    assert (await next_event(watch_b, within=10))["call_sid"] == "CA9"


async def test_notifications_from_outside_are_ignored(postgres_url: str,
                                                      pair: tuple[LiveHub, LiveHub, Fanout, Fanout]) -> None:
    hub_a, hub_b, _, _ = pair
    watch_b = watch(hub_b)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, 'garbage')", (CHANNEL,))
    hub_a.publish({"type": "phase", "call_sid": "CA1", "at": 1.0})
    assert (await next_event(watch_b))["type"] == "phase"  # the garbage was skipped, the relay goes on


# --- two real replicas ----------------------------------------------------------------------------------


def start_replica(data_dir: Path, database_url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = cli_env(data_dir, CARECOACH_DATABASE_URL=database_url, CARECOACH_ASR_ENGINE="pocketsphinx")
    log = open(data_dir.parent / f"{data_dir.name}.log", "wb")  # the child keeps its own copy
    proc = subprocess.Popen([sys.executable, "-m", "voice.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[list[int]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = []
        for name in ("a", "b"):  # started together: both migrate the empty database at once
            proc, port = start_replica(tmp_path / name, postgres_url)
            procs.append(proc)
            ports.append(port)
        yield ports
    finally:
        for proc in procs:
            stop(proc)


async def wait_ready(session: aiohttp.ClientSession, port: int, logs: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.2)
    tail = await asyncio.to_thread(logs.read_text)
    raise AssertionError(f"replica on port {port} not ready:\n{tail[-3000:]}")


async def collect(ws: aiohttp.ClientWebSocketResponse, call_sid: str, events: list[dict[str, Any]]) -> None:
    async for message in ws:
        event = json.loads(message.data)
        if event["call_sid"] == call_sid:
            events.append(event)
            if event["type"] == "call_ended":
                return


@pytest.mark.slow
async def test_a_call_streamed_to_one_replica_shows_on_the_others_live_feed(replicas: list[int],
                                                                            tmp_path: Path) -> None:
    port_a, port_b = replicas
    samples = load_stereo(CALLS / "locked_out_fine.wav")[: 12 * 8000]  # greeting and the question
    call_sid = new_call_sid()
    async with aiohttp.ClientSession() as session:
        for port, name in ((port_a, "a"), (port_b, "b")):
            await wait_ready(session, port, tmp_path / f"{name}.log")
        seen_a: list[dict[str, Any]] = []
        seen_b: list[dict[str, Any]] = []
        async with session.ws_connect(f"ws://127.0.0.1:{port_b}/api/live") as live_b, \
                session.ws_connect(f"ws://127.0.0.1:{port_a}/api/live") as live_a:
            watchers = [asyncio.create_task(collect(live_b, call_sid, seen_b)),
                        asyncio.create_task(collect(live_a, call_sid, seen_a))]
            await stream_call(samples, f"ws://127.0.0.1:{port_a}/twilio/stream", speed=0, call_sid=call_sid,
                              session=session)
            _, pending = await asyncio.wait(watchers, timeout=30)
            for task in pending:
                task.cancel()
            assert not pending, f"B saw {[e['type'] for e in seen_b]}"

        types_b = [e["type"] for e in seen_b]
        assert types_b[0] == "call_started" and types_b[-1] == "call_ended"
        assert types_b.count("call_started") == 1 and types_b.count("call_ended") == 1
        utterances = [e for e in seen_b if e["type"] == "utterance"]
        assert any(u["speaker"] == "customer" and u["text"] for u in utterances)
        # B sees exactly what A's own supervisors see, in the same order: relayed, never duplicated.
        assert seen_b == seen_a

        async with session.get(f"http://127.0.0.1:{port_b}/api/calls/{call_sid}") as response:
            assert response.status == 200
            call = await response.json()
        assert call["status"] == "ended"
        assert [u["text"] for u in call["utterances"]] == [u["text"] for u in
                                                            sorted(utterances, key=lambda u: (u["start"], u["seq"]))]


# --- replica leases: a starting replica leaves the others' live calls alone -----------------------------------


async def test_a_starting_replica_interrupts_only_calls_of_replicas_that_are_gone(make_server: ServerFactory,
                                                                                 postgres_url: str) -> None:
    ghost = CallStore(postgres_url, replica="ghost")  # a replica that crashed long ago, mid-call
    await ghost.open()
    await ghost.renew_lease("2000-01-01T00:00:00Z")
    await ghost.create_call(NewCall("CAghost", "MZghost", "2000-01-01T00:00:00Z"))
    await ghost.close()

    first = await make_server(database_url=postgres_url)
    await first.app[STORE].create_call(NewCall("CAlive", "MZlive", "2026-11-23T10:00:00Z"))  # streaming on first
    second = await make_server(database_url=postgres_url)
    async with aiohttp.ClientSession() as session:
        for sid, status in (("CAlive", "live"), ("CAghost", "interrupted")):
            async with session.get(second.make_url(f"/api/calls/{sid}")) as response:
                assert (await response.json())["status"] == status, sid


async def test_serve_with_an_unreachable_database_fails_with_one_line_and_no_password(tmp_path: Path) -> None:
    url = f"postgresql://carecoach:s3cret@127.0.0.1:{free_port()}/carecoach"  # nothing listens there
    code, _, err = await run_cli("serve", "--port", "0",
                                 env=cli_env(tmp_path, CARECOACH_DATABASE_URL=url, CARECOACH_ASR_ENGINE="pocketsphinx"))
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("carecoach: error:")]
    assert len(errors) == 1 and "cannot open database postgresql://127.0.0.1:" in errors[0], err
    assert "Traceback" not in err and "s3cret" not in err
