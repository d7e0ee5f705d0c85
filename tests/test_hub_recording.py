"""voice.hub.LiveHub fan-out and overflow; voice.recording.Recorder stereo WAVs and failure handling."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import numpy as np

from voice.hub import LiveHub, Subscription
from voice.recording import FLUSH_BYTES, Recorder, build_wav, raw_path
from voice.types import PIPELINE_RATE

# --- LiveHub -------------------------------------------------------------------------------------------


def event(call_sid: str, n: int, type_: str = "utterance") -> dict[str, Any]:
    return {"type": type_, "call_sid": call_sid, "at": float(n), "n": n}


class Reader:
    """One iterator per subscription, as a WebSocket handler would hold it (a discarded async generator
    runs its `finally` and unsubscribes)."""

    def __init__(self, subscription: Subscription) -> None:
        self._iterator = aiter(subscription)

    async def take(self, count: int | None = None) -> list[dict[str, Any]]:
        """`count` events, or (None) everything until the iteration ends. Guarded against hangs."""
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while count is None or len(received) < count:
                try:
                    received.append(await anext(self._iterator))
                except StopAsyncIteration:
                    break
        return received


async def test_per_call_and_all_call_subscriptions() -> None:
    hub = LiveHub()
    one, two, everything = Reader(hub.subscribe("CA1")), Reader(hub.subscribe("CA2")), Reader(hub.subscribe())
    assert hub.subscriber_count == 3
    published = [event("CA1", 0, "call_started"), event("CA2", 1, "call_started"), event("CA1", 2),
                 event("CA1", 3, "phase"), event("CA2", 4), event("CA1", 5, "call_ended")]
    for e in published:
        hub.publish(e)
    assert hub.published == 6
    assert await one.take(4) == [e for e in published if e["call_sid"] == "CA1"]
    assert await two.take(2) == [e for e in published if e["call_sid"] == "CA2"]
    assert await everything.take(6) == published


async def test_events_published_while_a_subscriber_waits_are_delivered() -> None:
    hub = LiveHub()
    reader = asyncio.create_task(Reader(hub.subscribe("CA1")).take(3))
    await asyncio.sleep(0)  # the reader is now blocked on an empty queue
    for n in range(3):
        hub.publish(event("CA1", n))
        await asyncio.sleep(0)
    assert [e["n"] for e in await reader] == [0, 1, 2]


async def test_subscription_only_sees_events_after_subscribing() -> None:
    hub = LiveHub()
    hub.publish(event("CA1", 0))
    late = Reader(hub.subscribe("CA1"))
    hub.publish(event("CA1", 1))
    assert [e["n"] for e in await late.take(1)] == [1]


async def test_slow_subscriber_is_cut_off_and_others_keep_receiving() -> None:
    hub = LiveHub(queue_size=5)
    slow_subscription = hub.subscribe("CA1")
    slow = Reader(slow_subscription)
    fast_subscription = hub.subscribe()
    fast = Reader(fast_subscription)
    fast_seen: list[int] = []
    for n in range(20):
        hub.publish(event("CA1", n))
        # The fast subscriber keeps up: it reads each event as it comes.
        fast_seen += [e["n"] for e in await fast.take(1)]
    assert fast_seen == list(range(20))
    assert not fast_subscription.overflowed

    assert slow_subscription.overflowed
    ns = [e["n"] for e in await slow.take()]  # the iteration ends by itself
    assert 0 < len(ns) < 20
    assert ns == list(range(ns[0], ns[0] + len(ns)))  # what it got is in order, without holes
    # Once its iteration has ended it is unsubscribed; later events still reach the others.
    assert hub.subscriber_count == 1
    hub.publish(event("CA1", 99))
    assert await fast.take(1) == [event("CA1", 99)]
    assert await slow.take() == []


async def test_closed_subscription_stops_receiving() -> None:
    hub = LiveHub()
    subscription = hub.subscribe("CA1")
    subscription.close()
    assert hub.subscriber_count == 0
    hub.publish(event("CA1", 0))  # no error and no delivery
    assert subscription._queue.empty()


# --- Recorder --------------------------------------------------------------------------------------------


def pcm(values: np.ndarray) -> bytes:
    return values.astype("<i2").tobytes()


def read_wav(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path)) as w:
        params = w.getparams()
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, params.nchannels)
    return params, frames


async def test_recorder_writes_a_stereo_wav_customer_left_agent_right(tmp_path: Path) -> None:
    directory = tmp_path / "recordings" / "CA1"
    recorder = Recorder(directory)
    await recorder.open()
    rng = np.random.default_rng(5)
    customer = rng.integers(-20000, 20000, size=3 * PIPELINE_RATE + 123).astype(np.int16)
    agent = rng.integers(-20000, 20000, size=PIPELINE_RATE + 7).astype(np.int16)
    # Interleaved, uneven chunks, several times past the flush threshold.
    c = a = 0
    while c < len(customer) or a < len(agent):
        recorder.write("customer", pcm(customer[c: c + 900]))
        c += 900
        if a < len(agent):
            recorder.write("agent", pcm(agent[a: a + 333]))
            a += 333
        await asyncio.sleep(0)
    assert len(customer) * 2 > 2 * FLUSH_BYTES

    path = await recorder.close()
    assert path == directory / "recording.wav"
    assert recorder.failed is None
    params, frames = read_wav(path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, 8000)
    assert len(frames) == len(customer)
    assert np.array_equal(frames[:, 0], customer)
    assert np.array_equal(frames[: len(agent), 1], agent)
    assert not frames[len(agent):, 1].any()  # the shorter track is padded with silence
    assert not raw_path(directory, "customer").exists() and not raw_path(directory, "agent").exists()
    assert sorted(p.name for p in directory.iterdir()) == ["recording.wav"]


async def test_recorder_agent_longer_than_customer(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "CA2")
    await recorder.open()
    recorder.write("agent", pcm(np.arange(1, 401)))
    recorder.write("customer", pcm(np.full(100, -5)))
    path = await recorder.close()
    assert path is not None
    _, frames = read_wav(path)
    assert frames.shape == (400, 2)
    assert frames[:100, 0].tolist() == [-5] * 100 and not frames[100:, 0].any()
    assert frames[:, 1].tolist() == list(range(1, 401))


async def test_recorder_with_no_audio_keeps_nothing(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "CA3")
    await recorder.open()
    assert await recorder.close() is None
    assert not (tmp_path / "CA3" / "recording.wav").exists()


async def test_unwritable_directory_fails_without_raising(tmp_path: Path) -> None:
    blocker = tmp_path / "recordings"
    blocker.write_text("a regular file where the recordings directory should be")
    recorder = Recorder(blocker / "CA1")
    await recorder.open()
    assert recorder.failed and "recording stopped" in recorder.failed
    recorder.write("customer", b"\x01\x00" * FLUSH_BYTES)  # ignored, no flush task, no error
    await recorder.flush()
    assert await recorder.close() is None
    assert blocker.read_text().startswith("a regular file")


async def test_write_error_mid_call_stops_recording_quietly(tmp_path: Path) -> None:
    directory = tmp_path / "CA1"
    recorder = Recorder(directory)
    await recorder.open()
    recorder.write("customer", b"\x01\x00" * 100)
    await recorder.flush()
    assert raw_path(directory, "customer").read_bytes() == b"\x01\x00" * 100
    # The disk goes away under the call: the directory is replaced by a file.
    raw_path(directory, "customer").unlink()
    directory.rmdir()
    directory.write_text("")
    recorder.write("customer", b"\x02\x00" * 100)
    await recorder.flush()
    assert recorder.failed
    recorder.write("agent", b"\x03\x00" * FLUSH_BYTES)  # ignored from now on
    assert await recorder.close() is None
    assert directory.read_text() == ""


def test_build_wav_from_raw_tracks(tmp_path: Path) -> None:
    raw_path(tmp_path, "customer").write_bytes(pcm(np.array([1, 2, 3])))
    out = build_wav(tmp_path, tmp_path / "out.wav")  # agent track missing altogether
    _, frames = read_wav(out)
    assert frames.tolist() == [[1, 0], [2, 0], [3, 0]]
    assert not (tmp_path / "out.wav.tmp").exists()
