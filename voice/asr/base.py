"""The one streaming speech-to-text contract every engine implements.

A `SpeechStream` belongs to one track of one call:

* `push(pcm, start)` feeds mono PCM16 at the engine's `sample_rate`; `start` is the absolute stream
  time of the first sample. Pushes may skip time (the VAD gate drops silence), never go back.
* `flush()` ends the current utterance: the engine emits a `final` Transcript for it (if it heard
  any words) and is ready for the next one.
* `end()` flushes and closes the input; iteration stops once every result has been delivered.
* `async for t in stream` yields `Transcript`s (partials and finals) with absolute times.
* `aclose()` abandons the stream at once and frees engine resources (idempotent).

Decoding never runs on the event loop: engines use threads (Vosk releases the GIL) or worker
processes (PocketSphinx does not).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator
from typing import Protocol

from voice.types import Transcript


class SpeechStream(Protocol):
    def push(self, pcm: bytes, start: float) -> None: ...

    def flush(self) -> None: ...

    def end(self) -> None: ...

    async def aclose(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[Transcript]: ...


class SpeechEngine(Protocol):
    """A loaded recogniser shared by all calls. `start()` loads models; `stream()` is cheap."""

    name: str
    sample_rate: int

    async def start(self) -> None: ...

    @property
    def ready(self) -> bool: ...

    def stream(self, label: str) -> SpeechStream: ...

    async def aclose(self) -> None: ...


class EngineError(Exception):
    """An engine failure. `retryable` says whether a new stream may succeed (e.g. a worker died)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Results:
    """A stream's output side: transcripts in order, then either the end or one error.

    Engines `put` results and finally `finish()` (or `fail(exc)`, which also ends iteration); after
    the end every further `__anext__` stops at once.
    """

    _END = object()

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Transcript | BaseException | object] = asyncio.Queue()

    def put(self, transcript: Transcript) -> None:
        self._queue.put_nowait(transcript)

    def fail(self, exc: BaseException) -> None:
        self._queue.put_nowait(exc)

    def finish(self) -> None:
        self._queue.put_nowait(self._END)

    def __aiter__(self) -> Results:
        return self

    async def __anext__(self) -> Transcript:
        item = await self._queue.get()
        if item is self._END:
            self._queue.put_nowait(self._END)  # keep later calls terminating too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._queue.put_nowait(self._END)
            raise item
        assert isinstance(item, Transcript)
        return item


class Timeline:
    """Maps a recogniser's internal clock (seconds of audio it was fed) to absolute stream time.

    The VAD gate feeds the recogniser only speech, so its clock runs behind the stream's; each
    push records where a contiguous run of fed audio sits on the stream.
    """

    def __init__(self, sample_rate: int) -> None:
        self._rate = sample_rate
        self._fed = 0  # samples fed so far
        self._offsets: list[float] = []  # internal seconds where each run starts
        self._starts: list[float] = []  # absolute seconds where each run starts

    def push(self, n_samples: int, start: float) -> None:
        internal = self._fed / self._rate
        if not self._starts or abs(self.absolute(internal) - start) > 1e-3:
            self._offsets.append(internal)
            self._starts.append(start)
        self._fed += n_samples

    @property
    def fed_seconds(self) -> float:
        return self._fed / self._rate

    def absolute(self, internal: float) -> float:
        if not self._starts:
            return internal
        i = max(0, bisect.bisect_right(self._offsets, internal) - 1)
        return self._starts[i] + (internal - self._offsets[i])
