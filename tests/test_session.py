"""CallSession with a scripted recogniser (the one fake here: it stands in for the engine, never for
the session under test), a real SQLite store and the real hub: audio alignment, what the recogniser
is fed, and isolation of engine failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from dialog.coach import Coach
from dialog.store import CallStore
from dialog.types import NewCall
from prompts import load_playbook
from voice.asr.base import EngineError
from voice.codec import pcm16_to_ulaw
from voice.hub import LiveHub
from voice.metrics import Metrics
from voice.session import AudioCueValues, CallSession
from voice.types import Transcript, Word


class ScriptedStream:
    """Records pushes; on each flush emits a final whose text is the next scripted line (or raises it)."""

    def __init__(self, script: list[str | Exception]) -> None:
        self.script = script
        self.pushes: list[tuple[int, float]] = []
        self.queue: asyncio.Queue[Transcript | Exception | None] = asyncio.Queue()
        self._span: list[float] = []

    def push(self, pcm: bytes, start: float) -> None:
        self.pushes.append((len(pcm), start))
        self._span.append(start)

    def flush(self) -> None:
        if not self._span:
            return
        line = self.script.pop(0) if self.script else "more words"
        start, end = self._span[0], self._span[-1] + 0.02
        self._span.clear()
        if isinstance(line, Exception):
            self.queue.put_nowait(line)
        else:
            self.queue.put_nowait(Transcript("final", line, start, end, 0.9, (Word(line, start, end, 0.9),)))

    def end(self) -> None:
        self.queue.put_nowait(None)

    async def aclose(self) -> None:
        self.queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[Transcript]:
        while (item := await self.queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item


class ScriptedEngine:
    name = "scripted"
    sample_rate = 16000
    ready = True

    def __init__(self, scripts: dict[str, list[list[str | Exception]]]) -> None:
        self.scripts = scripts  # per speaker: one script per stream the session opens
        self.streams: dict[str, list[ScriptedStream]] = {"customer": [], "agent": []}
        self.created: asyncio.Queue[str] = asyncio.Queue()  # labels, as streams are opened

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def stream(self, label: str) -> ScriptedStream:
        speaker = label.rsplit("/", 1)[1]
        queue = self.scripts.get(speaker, [])
        stream = ScriptedStream(queue.pop(0) if queue else [])
        self.streams[speaker].append(stream)
        self.created.put_nowait(label)
        return stream


def speech(seconds: float) -> np.ndarray:
    """A voiced-like signal the WebRTC VAD accepts: a 140 Hz pulse train with harmonics."""
    t = np.arange(int(seconds * 8000)) / 8000
    wave = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))
    return (wave / np.max(np.abs(wave)) * 9000 * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype("<i2")


def classify(text: str, speaker: str, context: object, cues: AudioCueValues) -> tuple[str, float]:
    return ("venting" if "angry" in text else "other"), 0.0


async def make_session(tmp_path: Path, engine: ScriptedEngine) -> tuple[CallSession, CallStore, LiveHub]:
    store = CallStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.open()
    hub = LiveHub()
    session = CallSession(
        NewCall("CAsession", "MZsession", "2026-11-23T10:00:00Z"), engine=engine, store=store, hub=hub,
        metrics=Metrics(), classify=classify, redact=None, recorder=None,  # type: ignore[arg-type]
        coach=Coach(load_playbook()), wall_clock=lambda: "2026-11-23T10:01:00Z")
    await session.start()
    return session, store, hub


def feed(session: CallSession, speaker: str, audio: np.ndarray, start_ms: int = 0) -> None:
    """Twilio-style 20 ms chunks with media timestamps."""
    ulaw = pcm16_to_ulaw(audio.tobytes())
    for i in range(0, len(ulaw), 160):
        session.on_media(speaker, start_ms + i // 8, ulaw[i:i + 160])  # type: ignore[arg-type]


def turn(speech_seconds: float, silence_seconds: float = 1.0) -> np.ndarray:
    return np.concatenate([speech(speech_seconds), np.zeros(int(silence_seconds * 8000), "<i2")])


async def test_recogniser_is_fed_only_speech_in_time_order(tmp_path: Path) -> None:
    engine = ScriptedEngine({"customer": [["first words", "second words"]]})
    session, store, _ = await make_session(tmp_path, engine)
    audio = np.concatenate([np.zeros(8000, "<i2"), turn(1.0), turn(1.5)])
    feed(session, "customer", audio)
    await session.finish("ended")
    pushes = engine.streams["customer"][0].pushes
    starts = [start for _, start in pushes]
    assert starts == sorted(starts), "pushes must never go back in time"
    fed_seconds = sum(n for n, _ in pushes) / 2 / 16000
    # 2.5 s of speech plus, per utterance, 0.2 s pre-roll and 0.4 s endpoint silence; the other
    # ~1.9 s of silence never reaches the recogniser.
    assert 2.5 <= fed_seconds <= 3.75
    assert starts[0] == pytest.approx(1.0, abs=0.25)  # speech began 1 s in, pre-roll may start earlier
    call = await store.get_call("CAsession")
    assert call is not None and [u["text"] for u in call["utterances"]] == ["first words", "second words"]
    assert call["status"] == "ended" and call["duration"] == pytest.approx(len(audio) / 8000, abs=0.02)
    await store.close()


async def test_a_retryable_engine_failure_gets_a_fresh_stream(tmp_path: Path) -> None:
    crash = EngineError("worker died", retryable=True)
    engine = ScriptedEngine({"customer": [["before the crash", crash], ["after the restart"]]})
    session, store, hub = await make_session(tmp_path, engine)
    events = hub.subscribe("CAsession")
    feed(session, "customer", np.concatenate([turn(1.0), turn(1.0)]))
    opened = [await engine.created.get() for _ in range(2)]  # both tracks at start
    restarted = await asyncio.wait_for(engine.created.get(), 10)  # the consumer reopens after the crash
    assert restarted == "CAsession/customer" and "CAsession/customer" in opened
    feed(session, "customer", turn(1.0), start_ms=4000)
    await session.finish("ended")
    call = await store.get_call("CAsession")
    assert call is not None
    assert [u["text"] for u in call["utterances"]] == ["before the crash", "after the restart"]
    assert len(engine.streams["customer"]) == 2
    assert session.metrics.asr_errors.labels("scripted")._value.get() == 1
    events.close()
    await store.close()


async def test_a_fatal_engine_failure_stops_one_track_not_the_call(tmp_path: Path) -> None:
    engine = ScriptedEngine({"customer": [[EngineError("model is corrupt", retryable=False)]],
                             "agent": [["the agent is still heard"]]})
    session, store, _ = await make_session(tmp_path, engine)
    feed(session, "customer", turn(1.0))
    feed(session, "agent", turn(1.0))
    await session.finish("ended")
    call = await store.get_call("CAsession")
    assert call is not None and call["status"] == "ended"
    assert [(u["speaker"], u["text"]) for u in call["utterances"]] == [("agent", "the agent is still heard")]
    assert len(engine.streams["customer"]) == 1  # not restarted
    await store.close()


async def test_finish_is_shared_by_every_caller(tmp_path: Path) -> None:
    engine = ScriptedEngine({"customer": [["only once"]]})
    session, store, hub = await make_session(tmp_path, engine)
    events = hub.subscribe("CAsession")
    feed(session, "customer", turn(1.0, silence_seconds=0.1))  # still speaking when the call ends
    await asyncio.gather(session.finish("ended"), session.finish("interrupted"))
    call = await store.get_call("CAsession")
    assert call is not None and call["status"] == "ended"
    assert [u["text"] for u in call["utterances"]] == ["only once"]  # the open utterance was flushed
    hub.publish({"type": "test_marker", "call_sid": "CAsession"})  # everything before it is in the queue
    kinds = []
    async for event in events:
        if event["type"] == "test_marker":
            break
        kinds.append(event["type"])
    assert kinds.count("call_ended") == 1
    await store.close()
