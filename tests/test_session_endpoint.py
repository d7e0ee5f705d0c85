"""CallSession hands the recogniser's partials to the endpointer (hypothesis-aware endpointing): with
`endpoint_hold` set, a pause after a partial that ends mid-phrase does not split the utterance, the same pause
after a finished-sounding partial does. The recogniser is scripted (tests/test_session.py's engine, extended to
send a partial), the session, VAD, store and hub are real."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from dialog.coach import Coach
from dialog.store import CallStore
from dialog.types import NewCall
from prompts import load_playbook
from tests.test_session import ScriptedEngine, ScriptedStream, classify, feed, speech
from voice.hub import LiveHub
from voice.metrics import Metrics
from voice.session import CallSession
from voice.types import Transcript


class PartialStream(ScriptedStream):
    """Also sends `partial` as a partial hypothesis once per utterance, on its first push."""

    def __init__(self, script: list[str | Exception], partial: str) -> None:
        super().__init__(script)
        self.partial = partial

    def push(self, pcm: bytes, start: float) -> None:
        if not self._span:
            self.queue.put_nowait(Transcript("partial", self.partial, start, start + 0.3, 0.5))
        super().push(pcm, start)


class PartialEngine(ScriptedEngine):
    def __init__(self, partial: str) -> None:
        super().__init__({"customer": [["one utterance", "another"]]})
        self.partial = partial

    def stream(self, label: str) -> ScriptedStream:
        speaker = label.rsplit("/", 1)[1]
        queue = self.scripts.get(speaker, [])
        stream = PartialStream(queue.pop(0) if queue else [], self.partial)
        self.streams[speaker].append(stream)
        return stream


@pytest.mark.parametrize(("partial", "hold", "utterances"), [
    ("i want to cancel my", 0.8, 1),
    ("i want to cancel", 0.8, 2),
    ("i want to cancel my", None, 2),  # hold off: the fixed silence splits
])
async def test_a_pause_after_a_mid_phrase_partial_is_held(tmp_path: Path, partial: str, hold: float | None,
                                                          utterances: int) -> None:
    store = CallStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.open()
    session = CallSession(
        NewCall("CAhold", "MZhold", "2026-11-23T10:00:00Z"), engine=PartialEngine(partial), store=store,
        hub=LiveHub(), metrics=Metrics(), classify=classify, redact=None, recorder=None,  # type: ignore[arg-type]
        coach=Coach(load_playbook()), wall_clock=lambda: "2026-11-23T10:01:00Z",
        endpoint_silence=0.3, endpoint_hold=hold)
    await session.start()
    pause = np.zeros(int(0.5 * 8000), "<i2")  # longer than the silence, shorter than the hold
    chunks = [np.zeros(4000, "<i2"), speech(1.0), pause, speech(1.0), np.zeros(12000, "<i2")]
    at_ms = 0
    for chunk in chunks:
        feed(session, "customer", chunk, at_ms)
        at_ms += len(chunk) // 8
        for _ in range(5):  # let the consumer deliver the partial, as it would between media messages
            await asyncio.sleep(0)
    await session.finish("ended")
    call = await store.get_call("CAhold")
    assert call is not None and len(call["utterances"]) == utterances
    await store.close()
