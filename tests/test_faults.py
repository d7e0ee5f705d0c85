"""Fault tolerance with real parts: a real SQLite store on a real (tiny tmpfs) disk that fills up, a store that
goes away for good, recordings on a full disk, a recogniser failing in one of two concurrent calls, carrier
messages and request bodies over the limits, and SIGTERM to a real `carecoach serve` mid-call.

The recogniser in the session-level tests is the scripted one of `tests/test_session.py` (it stands in for the
engine, never for the session or store under test); the server-level tests run the real PocketSphinx engine."""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio

from dialog.coach import Coach
from dialog.store import CallStore
from dialog.types import NewCall, Utterance
from prompts import load_playbook
from tests.conftest import ServerFactory, first_turns, get_json, wait_stored, ws_url
from tests.test_cli import ROOT, cli_env, free_port
from tests.test_session import ScriptedEngine, classify, feed, turn
from voice.asr.base import EngineError
from voice.codec import pcm16_to_ulaw
from voice.hub import LiveHub
from voice.metrics import Metrics
from voice.session import CallSession
from voice.simulate import FRAME_SAMPLES, MediaStreamClient, new_call_sid, stream_call
from voice.spill import Spill, _unclaim
from voice.state import HARD_MESSAGE_LIMIT, SESSIONS, STORE
from voice.types import Word

CALL = "CAfaults"


# --- a real, small disk ----------------------------------------------------------------------------


class Disk:
    """A tmpfs of a few hundred KiB mounted for one test: `fill()` takes every free byte, `free()` gives it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass  # ENOSPC: the disk is full
        finally:
            os.close(fd)
        fd = os.open(self.filler, os.O_WRONLY | os.O_APPEND)
        try:  # the last partial block too
            while True:
                os.write(fd, b"\0" * 64)
        except OSError:
            pass
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode}): needs root")
    try:
        yield Disk(mount_point)
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


# --- sessions over a real store ------------------------------------------------------------------------


@pytest_asyncio.fixture
async def opened() -> AsyncIterator[list[CallStore]]:
    stores: list[CallStore] = []
    yield stores
    for store in stores:
        await store.close()


async def session_on(db: Path, engine: ScriptedEngine, spill: Spill | None, stores: list[CallStore],
                     call_sid: str = CALL) -> tuple[CallSession, CallStore, LiveHub]:
    store = CallStore(f"sqlite:///{db}")
    await store.open()
    stores.append(store)
    hub = LiveHub()
    session = CallSession(
        NewCall(call_sid, "MZfaults", "2026-11-23T10:00:00Z"), engine=engine, store=store, hub=hub,
        metrics=Metrics(), classify=classify, redact=None, recorder=None,  # type: ignore[arg-type]
        coach=Coach(load_playbook()), wall_clock=lambda: "2026-11-23T10:01:00Z", spill=spill)
    await session.start()
    return session, store, hub


async def store_with_calls(tmp_path: Path, opened: list[CallStore], *call_sids: str) -> CallStore:
    """A SQLite store under `tmp_path` (closed by the `opened` fixture) that already has `call_sids`' rows."""
    store = CallStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.open()
    opened.append(store)
    for call_sid in call_sids:
        await store.create_call(NewCall(call_sid, "MZ1", "2026-11-23T10:00:00Z"))
    return store


async def stored_texts(store: CallStore, call_sid: str = CALL) -> list[str]:
    call = await store.get_call(call_sid)
    assert call is not None
    return [u["text"] for u in call["utterances"]]


async def until(predicate: Any, seconds: float = 20.0) -> None:
    """Poll an async predicate (bounded): the retry runs on its own backoff, not on the test's clock."""
    for _ in range(int(seconds / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_full_disk_under_the_database_buffers_utterances_and_flushes_when_space_returns(
        disk: Disk, tmp_path: Path, opened: list[CallStore]) -> None:
    engine = ScriptedEngine({"customer": [["one before", "two during", "three during", "four after"]]})
    session, store, hub = await session_on(disk.path / "db.sqlite", engine, Spill(tmp_path / "spill"), opened)
    events = hub.subscribe(CALL)
    stream = events.__aiter__()
    feed(session, "customer", turn(1.0))
    await until(lambda: _has(store, 1))

    disk.fill()  # the database's disk is full: SQLite answers "database or disk is full" (retryable)
    feed(session, "customer", np.concatenate([turn(1.0), turn(1.0)]), start_ms=2000)
    published: list[str] = []
    while len(published) < 3:  # the live events don't wait for the database
        event = await asyncio.wait_for(anext(stream), 10)
        if event["type"] == "utterance":
            published.append(event["text"])
    assert published == ["one before", "two during", "three during"]
    assert await stored_texts(store) == ["one before"]
    assert session.metrics.db_errors.labels("true")._value.get() >= 1

    disk.free()  # space comes back: the background retry writes the buffer without waiting for new speech
    await until(lambda: _has(store, 3))
    feed(session, "customer", turn(1.0), start_ms=6000)
    await session.finish("ended")
    assert await stored_texts(store) == ["one before", "two during", "three during", "four after"]
    call = await store.get_call(CALL)
    assert call is not None and call["status"] == "ended"
    assert session.spilled == 0 and not (tmp_path / "spill").exists()
    events.close()


def _rows(db: Path) -> int:
    reader = sqlite3.connect(db)  # WAL: a reader is never blocked by the writer's lock
    try:
        return int(reader.execute("SELECT count(*) FROM utterances").fetchone()[0])
    finally:
        reader.close()


async def _has(store: CallStore, n: int) -> bool:
    return len(await stored_texts(store)) >= n


@pytest.mark.slow
async def test_database_locked_by_another_process_buffers_and_flushes_when_released(
        tmp_path: Path, opened: list[CallStore]) -> None:
    """No root needed: another connection (a backup, an admin shell left in a transaction) holds the write lock,
    so every write waits out the store's busy timeout (5 s) and fails `database is locked` (retryable)."""
    db = tmp_path / "db.sqlite"
    engine = ScriptedEngine({"customer": [["one before", "two while locked", "three while locked", "four after"]]})
    session, store, _ = await session_on(db, engine, Spill(tmp_path / "spill"), opened)
    feed(session, "customer", turn(1.0))
    await until(lambda: _has(store, 1))
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        feed(session, "customer", np.concatenate([turn(1.0), turn(1.0)]), start_ms=2000)

        async def refused() -> bool:
            return bool(session.metrics.db_errors.labels("true")._value.get() >= 1)

        await until(refused, seconds=30)

        async def all_heard() -> bool:  # the first refused write held its track for the busy timeout only
            return len(session.utterances) == 3

        await until(all_heard, seconds=10)
        assert await asyncio.to_thread(lambda: _rows(db)) == 1  # still locked: only the first is in
    finally:
        blocker.execute("ROLLBACK")  # the other process lets go
        blocker.close()
    await until(lambda: _has(store, 3), seconds=40)  # flushed by the background retry, no new speech needed
    feed(session, "customer", turn(1.0), start_ms=6000)
    await session.finish("ended")
    assert await stored_texts(store) == ["one before", "two while locked", "three while locked", "four after"]
    assert session.spilled == 0


async def test_database_gone_for_good_spills_to_disk_and_the_next_start_writes_it(
        make_server: ServerFactory, tmp_path: Path, opened: list[CallStore],
        caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir()
    spill = Spill(data / "spill")
    engine = ScriptedEngine({"customer": [["kept at once", "after the loss", "and more after"]]})
    session, store, _ = await session_on(data / "carecoach.db", engine, spill, opened)
    feed(session, "customer", turn(1.0))
    await until(lambda: _has(store, 1))

    await store.close()  # the database goes away and never comes back during this call
    with caplog.at_level(logging.WARNING):
        feed(session, "customer", np.concatenate([turn(1.0), turn(1.0)]), start_ms=2000)
        await session.finish("ended")
    assert [u.text for u in session.utterances] == ["kept at once", "after the loss", "and more after"]
    assert session.spilled == 2
    lines = [json.loads(line) for line in (data / "spill" / f"{CALL}.jsonl").read_text().splitlines()]
    assert [entry.get("text") for entry in lines] == ["after the loss", "and more after", None]
    end = lines[-1]  # the call's end, which the database would not take either
    assert end["call_end"]["status"] == "ended" and end["call_end"]["phases"] == session.tracker.timeline()
    assert end["outcome"]["source"] == "inferred"
    assert any("spilled to" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert any("could not record its end" in r.getMessage() for r in caplog.records)

    # The next start (a real server on the same data dir) writes the spill file into the database first.
    server = await make_server(data_dir=data)
    async with aiohttp.ClientSession() as client, client.get(server.make_url(f"/api/calls/{CALL}")) as response:
        call = await response.json()
    assert [u["text"] for u in call["utterances"]] == ["kept at once", "after the loss", "and more after"]
    assert call["status"] == "ended"  # the spilled end overrides the restart's "interrupted"
    assert call["phases"] == end["call_end"]["phases"] and call["outcome"] == end["outcome"]
    assert call["duration"] == end["call_end"]["duration"]
    assert spill.pending() == []


async def test_a_call_coming_back_writes_its_spill_file_first_and_numbers_after_it(
        make_server: ServerFactory, tmp_path: Path, calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    """A call whose utterances and end were spilled during an outage streams again once the database is back:
    its spill file goes in before the new stream's first utterance, the new utterances number after the
    spilled ones, and the new end (not the spilled one) is what the call keeps."""
    data = tmp_path / "data"
    server = await make_server(data_dir=data)
    call_sid = new_call_sid()
    await server.app[STORE].create_call(NewCall(call_sid, "MZold", "2026-11-23T10:00:00Z"))
    spill = Spill(data / "spill")
    spill.write(call_sid, [Utterance(0, "customer", 1.0, 2.0, "said during the outage", "venting", 0.8)])
    spill.write_end(call_sid, {"status": "interrupted", "duration": 3.0, "phases": [], "prompts": [],
                               "metrics": {}}, {"disposition": None, "source": "inferred", "note": "old"})
    await stream_call(first_turns(calm_call, 2), ws_url(server, "/twilio/stream"), speed=0, call_sid=call_sid)
    call = await wait_stored(server, call_sid)
    assert call["utterances"][0]["text"] == "said during the outage"
    seqs = [u["seq"] for u in call["utterances"]]
    assert seqs[0] == 0 and 0 not in seqs[1:] and len(set(seqs)) == len(seqs)  # numbered after it: none lost
    assert len(call["utterances"]) >= 3  # the spilled one and the two new turns' at least
    assert call["status"] == "ended" and call["outcome"]["note"] != "old"
    assert spill.pending() == []


async def test_replay_keeps_spill_files_it_cannot_write(tmp_path: Path, opened: list[CallStore],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    store = await store_with_calls(tmp_path, opened, CALL)
    spill = Spill(tmp_path / "spill")
    spilled = Utterance(4, "customer", 1.0, 2.0, "kept on disk", "other", 0.8,
                        (Word("kept", 1.0, 1.4, 0.8), Word("on", 1.4, 1.6, 0.8)))
    spill.write(CALL, [spilled])
    spill.write("CAunknown", [spilled])  # its call row never made it: the store refuses (foreign key)
    spill.write_end("CAnoutterances", {"status": "ended"}, {})  # an end alone, for a call the database lacks
    (spill.directory / "CAtorn.jsonl").write_text('{"call_sid": "CAtorn", "seq": 1, "spea')  # a torn write
    with caplog.at_level(logging.ERROR):
        assert await spill.replay(store) == 1
    assert await stored_texts(store) == ["kept on disk"]
    assert [p.name for p in spill.pending()] == ["CAnoutterances.jsonl", "CAtorn.jsonl", "CAunknown.jsonl"]
    assert sum("kept for a later replay" in r.getMessage() or "unreadable" in r.getMessage()
               for r in caplog.records) == 3
    with pytest.raises(ValueError):
        spill.path("../../etc/passwd")


async def test_replay_claims_each_file_so_replicas_sharing_the_volume_lose_nothing(
        tmp_path: Path, opened: list[CallStore]) -> None:
    store = await store_with_calls(tmp_path, opened, CALL)
    spill = Spill(tmp_path / "spill")
    first, later = (Utterance(n, "customer", n, n + 1.0, text, "other", 0.8)
                    for n, text in ((1, "claimed by a crashed replay"), (2, "appended after the claim")))
    spill.write(CALL, [first])
    claimed = spill.directory / f"{CALL}.jsonl.replaying"
    spill.path(CALL).replace(claimed)  # a replica claimed the file, then died before writing it in
    spill.write(CALL, [later])  # another replica still on the call appends: a fresh file
    assert await spill.replay(store) == 2
    assert await stored_texts(store) == ["claimed by a crashed replay", "appended after the claim"]
    assert spill.pending() == [] and not claimed.exists()


async def test_a_claim_a_live_replay_holds_is_left_to_it_and_taken_over_once_it_is_not(
        tmp_path: Path, opened: list[CallStore]) -> None:
    """A claim is locked while its replay runs: another replica skips it (and so never writes it in twice or
    deletes what the owner gives back); once no process holds the lock (the owner crashed), it is taken over."""
    store = await store_with_calls(tmp_path, opened, CALL)
    spill = Spill(tmp_path / "spill")
    spill.write(CALL, [Utterance(1, "customer", 1.0, 2.0, "claimed by a replay on another replica", "other", 0.8)])
    claimed = spill.directory / f"{CALL}.jsonl.replaying-otherreplica"
    spill.path(CALL).rename(claimed)
    with open(claimed, "rb") as held:  # noqa: ASYNC230 - opening a local file to lock it takes no time
        fcntl.flock(held, fcntl.LOCK_EX)  # the other replica's replay is still running
        assert await spill.replay(store) == 0
        assert await stored_texts(store) == [] and claimed.exists()
    assert await spill.replay(store) == 1  # its lock died with it
    assert await stored_texts(store) == ["claimed by a replay on another replica"]
    assert not claimed.exists() and spill.pending() == []


async def test_a_call_that_streams_again_waits_for_another_replicas_replay_of_its_file(
        tmp_path: Path, opened: list[CallStore]) -> None:
    """A call's own replay (its stream came back) must see its spilled utterances in the database before it
    numbers new ones, so it waits for a live replay elsewhere instead of skipping the file."""
    store = await store_with_calls(tmp_path, opened, CALL)
    spill = Spill(tmp_path / "spill")
    spill.write(CALL, [Utterance(3, "customer", 1.0, 2.0, "spilled before the reconnect", "other", 0.8)])
    claimed = spill.directory / f"{CALL}.jsonl.replaying-otherreplica"
    spill.path(CALL).rename(claimed)
    held = open(claimed, "rb")  # noqa: ASYNC230 - a local file, locked and released by hand below
    fcntl.flock(held, fcntl.LOCK_EX)
    replay = asyncio.create_task(spill.replay(store, only=CALL))
    await asyncio.sleep(0.3)  # a real file lock between threads: no clock to inject
    assert not replay.done()  # waiting (a start-up replay would have skipped it by now)
    held.close()  # the other replica died (or gave up) without writing it in
    assert await replay == 1
    assert await stored_texts(store) == ["spilled before the reconnect"]


async def test_a_claim_that_cannot_be_opened_is_logged_and_the_others_still_replay(
        tmp_path: Path, opened: list[CallStore], caplog: pytest.LogCaptureFixture) -> None:
    store = await store_with_calls(tmp_path, opened, CALL)
    spill = Spill(tmp_path / "spill")
    spill.write(CALL, [Utterance(0, "customer", 1.0, 2.0, "still written in", "other", 0.8)])
    (spill.directory / "CAbroken.jsonl.replaying-x").mkdir()  # stands in for a volume that refuses the open
    with caplog.at_level(logging.ERROR):
        assert await spill.replay(store) == 1
    assert await stored_texts(store) == ["still written in"]
    assert any("can't be claimed" in r.getMessage() for r in caplog.records)


async def test_replicas_replaying_one_volume_at_once_write_every_file_in(
        tmp_path: Path, opened: list[CallStore]) -> None:
    sids = [f"CAreplica{n:02d}" for n in range(40)]
    store = await store_with_calls(tmp_path, opened, *sids)
    for sid in sids:
        Spill(tmp_path / "spill").write(sid, [Utterance(0, "customer", 0.0, 1.0, f"spilled on {sid}", "other", 0.8)])
    replicas = [Spill(tmp_path / "spill") for _ in range(3)]
    written = await asyncio.gather(*(replica.replay(store) for replica in replicas))
    assert sum(written) == len(sids)  # each file written in by exactly one replica
    assert [await stored_texts(store, sid) for sid in sids] == [[f"spilled on {sid}"] for sid in sids]
    assert list((tmp_path / "spill").iterdir()) == []


async def test_a_broken_recogniser_in_one_call_leaves_a_concurrent_call_untouched(
        tmp_path: Path, opened: list[CallStore]) -> None:
    # Streams are handed out in order: call A opens customer+agent first, then call B.
    engine = ScriptedEngine({"customer": [[EngineError("model file corrupt", retryable=False)],
                                          ["call b is fine", "still fine"]]})
    broken, store, _ = await session_on(tmp_path / "db.sqlite", engine, None, opened, call_sid="CAbroken")
    healthy = CallSession(
        NewCall("CAhealthy", "MZhealthy", "2026-11-23T10:00:00Z"), engine=engine, store=store, hub=LiveHub(),
        metrics=Metrics(), classify=classify, redact=None, recorder=None,  # type: ignore[arg-type]
        coach=Coach(load_playbook()), wall_clock=lambda: "2026-11-23T10:01:00Z")
    await healthy.start()
    audio = np.concatenate([turn(1.0), turn(1.0)])
    feed(broken, "customer", audio)
    feed(healthy, "customer", audio)
    await asyncio.gather(broken.finish("ended"), healthy.finish("ended"))
    assert await stored_texts(store, "CAhealthy") == ["call b is fine", "still fine"]
    assert await stored_texts(store, "CAbroken") == []
    for sid in ("CAbroken", "CAhealthy"):
        call = await store.get_call(sid)
        assert call is not None and call["status"] == "ended"
    assert broken.metrics.asr_errors.labels("scripted")._value.get() == 1
    assert healthy.metrics.asr_errors.labels("scripted")._value.get() == 0


# --- the whole server ------------------------------------------------------------------------------------


async def send_frames(twilio: MediaStreamClient, samples: np.ndarray, first: int = 0) -> int:
    """Send (n, 2) int16 8 kHz audio as 20 ms frames on both tracks from frame `first`; returns the next frame."""
    frames = len(samples) // FRAME_SAMPLES
    customer = pcm16_to_ulaw(samples[:, 0].tobytes())
    agent = pcm16_to_ulaw(samples[:, 1].tobytes())
    for i in range(frames):
        n = first + i
        chunk = slice(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES)
        await twilio.media("inbound", n + 1, n * 20, customer[chunk])
        await twilio.media("outbound", n + 1, n * 20, agent[chunk])
        if i % 50 == 0:
            await asyncio.sleep(0)
    return first + frames


@pytest.mark.slow
async def test_full_disk_stops_the_recording_and_the_call_goes_on(
        make_server: ServerFactory, disk: Disk, tmp_path: Path, calm_call: tuple[np.ndarray, dict[str, Any]],
        caplog: pytest.LogCaptureFixture) -> None:
    samples, _ = calm_call
    # Recordings on the small disk; the database elsewhere, so only the recording meets the full disk.
    server = await make_server(data_dir=disk.path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    call_sid = new_call_sid()
    half = (len(samples) // 2) // FRAME_SAMPLES * FRAME_SAMPLES
    with caplog.at_level(logging.ERROR):
        async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(server, "/twilio/stream")) as ws:
            twilio = MediaStreamClient(ws, call_sid)
            await twilio.start()
            frame = await send_frames(twilio, samples[:8000 * 4])
            raw = disk.path / "recordings" / call_sid / "customer.raw"
            for _ in range(200):  # until the first seconds are on disk (flushed about once a second)
                if raw.exists() and raw.stat().st_size >= 2 * 8000 * 3:
                    break
                await asyncio.sleep(0.02)
            disk.fill()
            await send_frames(twilio, samples[8000 * 4: half], frame)
            await twilio.stop()
            await twilio.wait_closed()
    call = await get_json(server, f"/api/calls/{call_sid}")
    assert call["status"] == "ended"
    assert {u["speaker"] for u in call["utterances"]} == {"customer", "agent"}  # transcription went on
    assert call["prompts"]  # and coaching
    assert call["duration"] == pytest.approx(half / 8000, abs=0.05)
    recording_errors = [r for r in caplog.records if "recording stopped" in r.getMessage()]
    assert len(recording_errors) == 1 and "No space left on device" in recording_errors[0].getMessage()
    async with aiohttp.ClientSession() as client, client.get(server.make_url("/metrics")) as response:
        metrics = await response.text()
    assert "carecoach_recording_errors_total 1.0" in metrics
    # Once space is back, what was written before the disk filled is still playable.
    disk.free()
    async with aiohttp.ClientSession() as client, \
            client.get(server.make_url(f"/api/calls/{call_sid}/recording.wav")) as response:
        assert response.status == 200
        with wave.open(io.BytesIO(await response.read())) as wav:
            kept = wav.getnframes() / wav.getframerate()
            assert wav.getnchannels() == 2
    assert 3.0 <= kept <= 4.0 + 0.1  # flushed about once a second until the disk filled at 4 s


@pytest.mark.slow
async def test_a_message_over_the_hard_limit_drops_that_socket_and_keeps_what_was_heard(
        make_server: ServerFactory, calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    samples, truth = calm_call
    server = await make_server()
    cut = (int(truth["turns"][1]["end"] * 8000) + 8000) // FRAME_SAMPLES * FRAME_SAMPLES
    call_sid = new_call_sid()
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(server, "/twilio/stream")) as ws:
        twilio = MediaStreamClient(ws, call_sid)
        await twilio.start()
        await send_frames(twilio, samples[:cut])
        await ws.send_str("x" * (HARD_MESSAGE_LIMIT + 1))  # aiohttp refuses the frame and closes (1009)
        async for _ in ws:
            pass
        assert ws.close_code == 1009
    call = await wait_stored(server, call_sid)
    assert call["status"] == "interrupted"
    assert call["utterances"] and call["duration"] == pytest.approx(cut / 8000, abs=0.03)


async def test_readiness_follows_the_database_and_liveness_does_not(make_server: ServerFactory) -> None:
    server = await make_server()
    assert (await get_json(server, "/readyz"))["ready"] is True
    await server.app[STORE].close()  # the database is gone
    async with aiohttp.ClientSession() as client:
        async with client.get(server.make_url("/readyz")) as response:
            assert response.status == 503
            assert await response.json() == {**await response.json(), "ready": False, "database": False,
                                             "model_loaded": True}
        async with client.get(server.make_url("/healthz")) as response:
            assert response.status == 200  # liveness: no restart (and no cut calls) for a database outage


async def test_a_call_starting_while_the_database_is_down_is_refused_with_one_clear_line(
        make_server: ServerFactory, caplog: pytest.LogCaptureFixture) -> None:
    server = await make_server()
    await server.app[STORE].close()  # the database is gone before the call starts
    call_sid = new_call_sid()
    with caplog.at_level(logging.INFO):
        async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(server, "/twilio/stream")) as ws:
            twilio = MediaStreamClient(ws, call_sid)
            await twilio.start()
            await twilio.media("inbound", 1, 0, b"\xff" * 160)
            async for _ in ws:  # the server lets the stream go
                pass
    refused = [r for r in caplog.records if "not transcribed: the database is unavailable" in r.getMessage()]
    assert len(refused) == 1 and call_sid in refused[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)  # a clear line, not a traceback
    assert server.app[SESSIONS] == {}
    async with aiohttp.ClientSession() as client, client.get(server.make_url("/metrics")) as response:
        assert 'carecoach_db_errors_total{retryable="false"} 1.0' in await response.text()


async def test_random_hostile_streams_never_break_the_server_or_each_other(
        make_server: ServerFactory, caplog: pytest.LogCaptureFixture) -> None:
    """Seeded fuzz over real sockets: each stream mixes valid media (on time, repeated, late, jumping ahead)
    with garbage text, torn JSON, wrong types, binary frames, oversized messages, a second start, unknown
    events and DTMF, then stops or drops. Every call must be stored with the right status and its bad
    messages counted, no handler may raise, and the server must still answer."""
    server = await make_server(max_message_bytes=4096)
    rng = random.Random(20261123)

    async def hostile(n: int) -> tuple[str, bool, int]:
        call_sid = new_call_sid()
        bad = 0
        async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(server, "/twilio/stream")) as ws:
            twilio = MediaStreamClient(ws, call_sid)
            await twilio.start()
            clock = 0
            for i in range(300):
                kind = rng.choice(["media"] * 6 + ["garbage", "torn", "types", "binary", "oversized", "start",
                                                   "unknown", "dtmf"])
                track = rng.choice(["inbound", "outbound"])
                if kind == "media":
                    clock += 20
                    at = clock + rng.choice([0, 0, 0, -40, -2000, 60, 120_000])
                    await twilio.media(track, i, max(at, 0), bytes(rng.choice([0xFF, 0x7F]) for _ in range(160)))
                    continue
                bad += kind in ("garbage", "torn", "types", "binary", "oversized", "start")
                if kind == "garbage":
                    await ws.send_str("".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 60))))
                elif kind == "torn":
                    await ws.send_str('{"event": "media", "media": {"track": "inbound", "payl')
                elif kind == "types":
                    await ws.send_str(json.dumps({"event": "media", "media": {"track": track, "timestamp": [1],
                                                                                "payload": 7}}))
                elif kind == "binary":
                    await ws.send_bytes(rng.randbytes(rng.randrange(1, 400)))
                elif kind == "oversized":
                    await ws.send_str(json.dumps({"event": "media", "media": {"payload": "A" * 6000}}))
                elif kind == "start":
                    await twilio.start()
                elif kind == "unknown":
                    await ws.send_str(json.dumps({"event": rng.choice(["bogus", "", "MEDIA"]), "x": {}}))
                else:
                    await ws.send_str(json.dumps({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "5"}}))
            stopped = n % 2 == 0
            if stopped:
                await twilio.stop()
                await twilio.wait_closed()
        return call_sid, stopped, bad

    with caplog.at_level(logging.WARNING):
        results = await asyncio.gather(*(hostile(n) for n in range(6)))
    for call_sid, stopped, bad in results:
        call = await wait_stored(server, call_sid)
        assert call["status"] == ("ended" if stopped else "interrupted")
        assert call["frame_errors"] >= bad > 0  # plus any a jumping timestamp added
    assert not [r for r in caplog.records if r.exc_info]  # nothing raised out of a handler
    assert server.app[SESSIONS] == {}
    assert (await get_json(server, "/healthz"))["status"] == "ok"


async def test_request_bodies_over_the_limit_are_refused(make_server: ServerFactory) -> None:
    server = await make_server()
    async with aiohttp.ClientSession() as client:
        async with client.post(server.make_url("/twilio/voice"), data={"From": "x" * 70000}) as response:
            assert response.status == 413
        async with client.post(server.make_url("/api/calls/CA1/outcome"), data=b"{" * 70000,
                               headers={"Content-Type": "application/json"}) as response:
            assert response.status in (404, 413)  # unknown call is checked first; never a 500


# --- SIGTERM ---------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_sigterm_mid_call_exits_0_and_stores_the_call_with_everything_heard(
        tmp_path: Path, calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    samples, truth = calm_call
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voice.cli", "serve", "--port", str(port), cwd=ROOT,
        env=cli_env(tmp_path, CARECOACH_LOG_FORMAT="json"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    call_sid = new_call_sid()
    try:
        assert proc.stdout is not None and proc.stderr is not None
        await asyncio.wait_for(proc.stdout.readline(), 60)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as client:
            for _ in range(300):
                async with client.get(f"{base}/readyz") as response:
                    if (await response.json()).get("ready"):
                        break
                await asyncio.sleep(0.05)
            cut = (int(truth["turns"][2]["end"] * 8000) + 8000) // FRAME_SAMPLES * FRAME_SAMPLES
            # A supervisor's live board stays open through the shutdown too.
            async with client.ws_connect(f"ws://127.0.0.1:{port}/api/live"), \
                    client.ws_connect(f"ws://127.0.0.1:{port}/twilio/stream") as ws:
                twilio = MediaStreamClient(ws, call_sid)
                await twilio.start()
                await send_frames(twilio, samples[:cut])
                heard: list[Any] = []
                for _ in range(400):  # wait until the server has finalised something of this call
                    async with client.get(f"{base}/api/calls/{call_sid}") as response:
                        if response.status == 200:
                            heard = (await response.json())["utterances"]
                    if len(heard) >= 2:
                        break
                    await asyncio.sleep(0.05)
                assert len(heard) >= 2
                loop = asyncio.get_running_loop()
                sent = loop.time()
                proc.send_signal(signal.SIGTERM)  # the socket is still open: the call is in flight
                code = await asyncio.wait_for(proc.wait(), 30)
                took = loop.time() - sent
                print(f"SIGTERM to exit: {took:.2f} s")
        err = (await proc.stderr.read()).decode()
        assert code == 0, err
        assert took < 15
        assert "Traceback" not in err
        db = sqlite3.connect(tmp_path / "carecoach.db")
        status, duration = db.execute("SELECT status, duration FROM calls WHERE call_sid = ?", (call_sid,)).fetchone()
        stored = db.execute("SELECT count(*) FROM utterances WHERE call_sid = ?", (call_sid,)).fetchone()[0]
        db.close()
        assert status == "interrupted"
        assert stored >= len(heard)
        assert duration == pytest.approx(cut / 8000, abs=0.03)
        # Structured logs: every line is JSON, and the call's own lines carry its call_sid.
        records = [json.loads(line) for line in err.splitlines() if line.strip()]
        assert any(r.get("call_sid") == call_sid and "interrupted" in r["msg"] for r in records)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_shutdown_closes_every_carriers_call_socket_and_keeps_each_call(
        make_server: ServerFactory, tmp_path: Path, calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    """A shutdown closes Twilio, AudioHook and FreeSWITCH call sockets alike (1001 going away) instead of
    waiting for the calls to end, and each call is stored `interrupted` with the audio heard so far."""
    from tests.test_audiofork import fork
    from tests.test_audiohook import connect, secured_server

    samples, _ = calm_call
    audio = samples[:8000]  # one second: enough to open each call and put time on it
    server = await secured_server(make_server)
    twilio_sid, fork_sid = new_call_sid(), "5f0c6a1e-1b1d-4c55-9a51-2d8a0e6f7a10"
    async with aiohttp.ClientSession() as client:
        twilio_ws = await client.ws_connect(ws_url(server, "/twilio/stream"))
        twilio = MediaStreamClient(twilio_ws, twilio_sid)
        await twilio.start()
        await send_frames(twilio, audio)
        fork_ws = await client.ws_connect(ws_url(server, "/audiofork"), protocols=("audio.drachtio.org",))
        await fork_ws.send_str(json.dumps({"call_sid": fork_sid, "mix": "stereo", "rate": 8000}))
        await fork(fork_ws, audio)
        genesys = await connect(client, server)
        await genesys.open()
        await genesys.expect("opened")
        await genesys.audio(audio)
        sessions = server.app[SESSIONS]
        for _ in range(400):  # all three calls are open on the server and it has read their second of audio
            if len(sessions) == 3 and all(s.duration >= 0.99 for s in sessions.values()):
                break
            await asyncio.sleep(0.05)
        assert sorted(round(s.duration, 2) for s in sessions.values()) == [1.0, 1.0, 1.0]

        await server.close()

        # (The close frame's code, not `close_code`: the client's reply may meet an already-closed transport.)
        for ws in (twilio_ws, fork_ws):
            closing = await ws.receive()
            assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        await asyncio.wait_for(genesys.reader, 5)  # its reader ends on the close
        assert genesys.ws.close_code == 1001
    db = sqlite3.connect(tmp_path / "data0" / "carecoach.db")
    stored = dict(db.execute("SELECT call_sid, status FROM calls").fetchall())
    durations = [d for (d,) in db.execute("SELECT duration FROM calls")]
    db.close()
    assert stored == {twilio_sid: "interrupted", fork_sid: "interrupted", genesys.conversation_id: "interrupted"}
    assert all(d == pytest.approx(1.0, abs=0.05) for d in durations)


def test_a_claim_given_back_keeps_its_lines_before_those_appended_since(tmp_path: Path) -> None:
    """A refused replay gives its claim back: the claimed (older) lines come first, so the last call end in
    the file is still the newest."""
    spill = Spill(tmp_path / "spill")
    spill.write_end(CALL, {"status": "interrupted"}, {"note": "older"})
    claimed = spill.directory / f"{CALL}.jsonl.replaying"
    spill.path(CALL).replace(claimed)  # claimed by a replay
    spill.write_end(CALL, {"status": "ended"}, {"note": "newer"})  # the call came back and ended meanwhile
    _unclaim(claimed, spill.path(CALL))
    lines = [json.loads(line) for line in spill.path(CALL).read_text().splitlines()]
    assert [entry["outcome"]["note"] for entry in lines] == ["older", "newer"]
    assert not claimed.exists()
