"""Vosk (Kaldi) streaming ASR: one shared `vosk.Model`, one `KaldiRecognizer` per stream.

Owns: model loading, the bounded decode thread pool shared by every stream, and the mapping of
Vosk's word times onto absolute stream time. Vosk releases the GIL while decoding, so threads
(not processes) give real parallelism; the event loop only shuffles bytes.

Vosk's word times are seconds of audio fed to the recogniser since it was created, and they keep
growing across `Result()`/`FinalResult()` calls (measured on vosk 0.3.45). `Timeline` maps that
internal clock onto stream time, since the VAD gate upstream only feeds speech.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from voice.asr.base import EngineError, Results, Timeline
from voice.types import Transcript, Word

log = logging.getLogger(__name__)

DEFAULT_RATE = 16000
#: Audio a stream may queue while decoding lags; beyond it audio is dropped (logged, counted): bounded memory.
MAX_QUEUED_SECONDS = 30.0
_EPS = 5e-6  # > Vosk's 1 us rounding of word times


def model_sample_rate(model_path: Path) -> int:
    """The rate the model's features were trained at (`--sample-frequency` in conf/mfcc.conf)."""
    conf = model_path / "conf" / "mfcc.conf"
    try:
        text = conf.read_text(encoding="utf-8")
    except OSError:
        return DEFAULT_RATE
    m = re.search(r"--sample-frequency\s*=\s*(\d+(?:\.\d+)?)", text)
    return int(float(m.group(1))) if m else DEFAULT_RATE


class _Decoder:
    """Recogniser state touched only inside executor jobs, which are serialised per stream."""

    def __init__(self, model: Any, rate: int, stats: set[int]) -> None:
        import vosk

        self._rec = vosk.KaldiRecognizer(model, rate)
        self._rec.SetWords(True)
        self._rec.SetPartialWords(True)
        self._rate = rate
        self._fed = 0  # samples accepted so far (the recogniser's own clock)
        self._seg_base = 0.0  # internal seconds where the current Vosk segment began
        self._segments: list[list[dict[str, Any]]] = []  # endpointed inside this utterance
        self._threads = stats

    def _words(self, result: dict[str, Any], key: str) -> list[dict[str, Any]]:
        words: list[dict[str, Any]] = list(result.get(key) or [])
        # Defensive: should a Vosk build restart its clock per result, shift onto the fed clock.
        if words and float(words[0]["start"]) < self._seg_base - 0.05:
            for w in words:
                w["start"] = float(w["start"]) + self._seg_base
                w["end"] = float(w["end"]) + self._seg_base
        return words

    def accept(self, pcm: bytes) -> list[dict[str, Any]]:
        """Feed audio; return the utterance's words so far (endpointed + current partial)."""
        self._threads.add(threading.get_ident())
        if self._rec.AcceptWaveform(pcm):
            # Vosk's own endpointer closed a segment; keep it, the VAD decides utterance ends.
            self._segments.append(self._words(json.loads(self._rec.Result()), "result"))
            self._seg_base = (self._fed + len(pcm) // 2) / self._rate
        self._fed += len(pcm) // 2
        partial = self._words(json.loads(self._rec.PartialResult()), "partial_result")
        return [w for seg in self._segments for w in seg] + partial

    def finish(self) -> list[dict[str, Any]]:
        """Close the utterance; return all its words."""
        self._threads.add(threading.get_ident())
        last = self._words(json.loads(self._rec.FinalResult()), "result")
        words = [w for seg in self._segments for w in seg] + last
        self._segments = []
        self._seg_base = self._fed / self._rate
        return words




class VoskStream:
    """One track's stream. Its own task drains its input queue, so per-stream order holds."""

    def __init__(self, engine: VoskEngine, label: str) -> None:
        self.label = label
        self._engine = engine
        self._loop = asyncio.get_running_loop()
        self._timeline = Timeline(engine.sample_rate)
        self._in: deque[bytes | str] = deque()  # audio, "flush" or "end", in push order
        self._since: deque[float] = deque()  # monotonic enqueue time of each item of _in
        self._queued_bytes = 0
        self._busy_since: float | None = None  # enqueue time of the oldest item being decoded now
        self.dropped_seconds = 0.0
        self._wake = asyncio.Event()
        self._out = Results()
        self._decoder: _Decoder | None = None
        self._last_partial = ""
        self._ended = False
        self._closed = False
        self._task = self._loop.create_task(self._run(), name=f"vosk-stream-{label}")
        self._task.add_done_callback(lambda _t: engine._forget(self))

    # -- input (sync, called on the loop) --------------------------------------------------------
    def push(self, pcm: bytes, start: float) -> None:
        if self._ended or not pcm:
            return
        self._timeline.push(len(pcm) // 2, start)
        if self._queued_bytes + len(pcm) > MAX_QUEUED_SECONDS * self._engine.sample_rate * 2:
            if not self.dropped_seconds:
                log.warning("vosk stream %s: decoding is %.0f s behind; dropping audio", self.label,
                            MAX_QUEUED_SECONDS)
            self.dropped_seconds += len(pcm) / 2 / self._engine.sample_rate
            return
        self._queued_bytes += len(pcm)
        self._enqueue(pcm)

    def flush(self) -> None:
        if not self._ended:
            self._enqueue("flush")

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._enqueue("end")

    def _enqueue(self, item: bytes | str) -> None:
        self._in.append(item)
        self._since.append(time.monotonic())
        self._wake.set()

    def lag(self, now: float) -> float:
        """Seconds the oldest queued or in-progress item has waited."""
        oldest = self._busy_since if self._busy_since is not None else (self._since[0] if self._since else None)
        return max(0.0, now - oldest) if oldest is not None else 0.0

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ended = True
        self._task.cancel()
        # gather(return_exceptions) absorbs the task's own cancellation but not ours.
        await asyncio.gather(self._task, return_exceptions=True)
        # An in-flight executor job keeps its own reference to the recogniser, so dropping ours
        # here is safe: it is freed once that job returns.
        self._decoder = None
        self._out.finish()
        self._engine._forget(self)

    # -- output ------------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Transcript]:
        return self

    async def __anext__(self) -> Transcript:
        return await self._out.__anext__()

    # -- the owned task ----------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while True:
                if not self._in:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item = self._in.popleft()
                self._busy_since = self._since.popleft()
                if isinstance(item, bytes):
                    # Coalesce audio that queued up meanwhile: fewer executor hops when decoding lags.
                    chunks = [item]
                    while self._in and isinstance(self._in[0], bytes):
                        chunks.append(self._in.popleft())  # type: ignore[arg-type]
                        self._since.popleft()
                    audio = b"".join(chunks)
                    await self._accept(audio)
                    self._queued_bytes -= len(audio)
                elif item == "flush":
                    await self._finish()
                else:  # "end"
                    await self._finish()
                    self._busy_since = None
                    break
                self._busy_since = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a decoder failure ends this stream only
            log.exception("vosk stream %s failed", self.label)
            self._out.fail(EngineError(f"vosk decode failed: {exc}", retryable=True))
            return
        self._out.finish()

    async def _decoder_ready(self) -> _Decoder:
        if self._decoder is None:
            eng = self._engine
            self._decoder = await self._loop.run_in_executor(
                eng._executor, _Decoder, eng._model, eng.sample_rate, eng.decode_threads
            )
        return self._decoder

    async def _accept(self, pcm: bytes) -> None:
        dec = await self._decoder_ready()
        words = await self._loop.run_in_executor(self._engine._executor, dec.accept, pcm)
        text = " ".join(str(w["word"]) for w in words)
        if text and text != self._last_partial:
            self._last_partial = text
            self._out.put(self._transcript("partial", words))

    async def _finish(self) -> None:
        self._last_partial = ""
        if self._decoder is None:
            return  # nothing was ever pushed
        dec = self._decoder
        words = await self._loop.run_in_executor(self._engine._executor, dec.finish)
        if words:
            self._out.put(self._transcript("final", words))

    def _transcript(self, kind: str, raw: list[dict[str, Any]]) -> Transcript:
        tl = self._timeline
        words = []
        for w in raw:
            # Vosk rounds times to 1 us, so a word starting exactly where a run starts can read a
            # hair early and land at the end of the previous run (i.e. in a dropped gap). Nudge
            # starts forward and ends backward by more than that rounding before mapping.
            start = tl.absolute(float(w["start"]) + _EPS)
            end = max(start, tl.absolute(float(w["end"]) - _EPS) + _EPS)
            words.append(Word(str(w["word"]), round(start, 3), round(end, 3), float(w.get("conf", 1.0))))
        conf = sum(w.confidence for w in words) / len(words)
        return Transcript(
            kind="partial" if kind == "partial" else "final",
            text=" ".join(w.text for w in words),
            start=words[0].start,
            end=max(w.end for w in words),
            confidence=round(conf, 3),
            words=tuple(words),
        )


class VoskEngine:
    """The shared Vosk model plus a bounded decode pool; `stream()` is cheap (~4 MB each)."""

    name = "vosk"

    def __init__(self, model_path: Path, max_threads: int = 2) -> None:
        self.model_path = Path(model_path)
        self.sample_rate = model_sample_rate(self.model_path)
        self._executor = ThreadPoolExecutor(max_workers=max(1, max_threads), thread_name_prefix="vosk")
        self._model: Any = None
        self._streams: set[VoskStream] = set()
        #: thread idents that ran decode jobs (lets tests prove decoding is off the loop)
        self.decode_threads: set[int] = set()

    async def start(self) -> None:
        if self._model is not None:
            return
        import vosk

        vosk.SetLogLevel(-1)
        loop = asyncio.get_running_loop()
        try:
            self._model = await loop.run_in_executor(self._executor, vosk.Model, str(self.model_path))
        except Exception as exc:
            raise EngineError(f"cannot load Vosk model {self.model_path}: {exc}", retryable=False) from exc

    @property
    def ready(self) -> bool:
        return self._model is not None

    def stream(self, label: str) -> VoskStream:
        if self._model is None:
            raise EngineError("VoskEngine.start() has not completed", retryable=False)
        s = VoskStream(self, label)
        self._streams.add(s)
        return s

    def lag(self) -> float:
        """ASR lag, s: the oldest audio or end-of-utterance any stream has waiting (see voice.asr.overload)."""
        now = time.monotonic()
        return max((s.lag(now) for s in self._streams), default=0.0)

    def _forget(self, s: VoskStream) -> None:
        self._streams.discard(s)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        for s in list(self._streams):
            if s._loop is loop:
                await s.aclose()
        self._streams.clear()
        # Don't block the loop on in-flight jobs; they finish on their own threads.
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._model = None
