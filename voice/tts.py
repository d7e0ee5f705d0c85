"""Text-to-speech for audio whispers: a card's short whisper text → G.711 μ-law at 8 kHz, mono.

This module owns the speech engine and nothing else: the whisper channel (`voice.whisper`) decides
when and where the audio goes.

Engines, both backed by eSpeak NG (Debian `espeak-ng`):

- **pyttsx3** (the default). pyttsx3 engines are not thread-safe, and the espeak driver keeps
  process-global state (one `espeak_Initialize`, one global synth callback), so the engine is created
  and used only inside ONE dedicated worker thread (`ThreadPoolExecutor(max_workers=1)`), never on
  the event loop. Measured: 10-25 ms per short phrase.
- **espeak-ng subprocess** (`espeak-ng -w FILE`, text on stdin). Used when pyttsx3 is missing or its
  engine fails to start, and from then on if a pyttsx3 render fails or hangs: pyttsx3's
  `runAndWait` polls forever when eSpeak never reports the end of the message, which would wedge
  the single worker thread, so a render that overruns `timeout` switches the synthesizer to the
  subprocess for good. A separate process also cannot take the server down if the C library crashes.

Quirks of pyttsx3 2.99's espeak driver that this module works around, found by testing it here:
it `print()`s "Audio saved to …" to stdout after every file (silenced by shadowing `print` in that
driver module only — redirecting `sys.stdout` would swallow other threads' output); it raises a bare
`AssertionError` on empty text (rejected before it gets there); and the trailing silence it writes
varies by ±50 ms between runs of the same text (trimmed, and the LRU cache makes repeats identical).

Rendering: the engine's PCM16 (22.05 kHz) is resampled with soxr (`voice.codec.resample`), trailing
silence is cut to 60 ms, the level is normalised to a fixed peak, and the result is μ-law encoded.
Results are cached by text (LRU), and concurrent requests for the same text share one render.
"""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import tempfile
import threading
import wave
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from voice.codec import pcm16_to_ulaw, resample

log = logging.getLogger("carecoach.tts")

Backend = Literal["auto", "pyttsx3", "espeak-ng"]

#: Twilio Media Streams carry μ-law at 8 kHz.
OUT_RATE = 8000
#: Whisper texts are one short sentence; anything longer is a playbook mistake, not a whisper.
MAX_CHARS = 400
#: Peak level after normalisation (0.7 of full scale, about -3 dBFS): loud enough under a live call.
TARGET_PEAK = 0.7 * 32767
#: Samples below this magnitude count as silence when trimming the tail.
SILENCE_LEVEL = 200
KEEP_TAIL_SECONDS = 0.06


class TTSError(RuntimeError):
    """Speech could not be rendered. `retryable` says whether the same request may succeed later."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono int16 samples and their rate from a PCM16 WAV file's bytes."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            if w.getsampwidth() != 2:
                raise TTSError(f"engine wrote {8 * w.getsampwidth()}-bit audio, expected 16-bit", retryable=False)
            rate, channels = w.getframerate(), w.getnchannels()
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    except (wave.Error, EOFError) as exc:
        raise TTSError(f"engine wrote an unreadable WAV file ({exc})", retryable=True) from None
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return samples, rate


def to_ulaw8k(samples: np.ndarray, rate: int) -> bytes:
    """Engine PCM16 at any rate → trimmed, normalised μ-law at 8 kHz."""
    pcm = np.asarray(resample(samples, rate, OUT_RATE), dtype=np.float64)
    loud = np.flatnonzero(np.abs(pcm) > SILENCE_LEVEL)
    if loud.size == 0:
        raise TTSError("engine produced silence", retryable=True)
    pcm = pcm[: min(len(pcm), int(loud[-1]) + 1 + int(KEEP_TAIL_SECONDS * OUT_RATE))]
    pcm *= TARGET_PEAK / float(np.max(np.abs(pcm)))
    return pcm16_to_ulaw(np.clip(np.round(pcm), -32768, 32767).astype("<i2").tobytes())


class _Pyttsx3Worker:
    """One pyttsx3 engine, created and used only on its own single worker thread."""

    def __init__(self, rate_wpm: int, voice: str | None) -> None:
        self._rate_wpm = rate_wpm
        self._voice = voice
        self._engine: Any = None
        self._dir = Path(tempfile.mkdtemp(prefix="carecoach-tts-"))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carecoach-tts")
        self._counter = 0

    def _init_engine(self) -> Any:
        # Runs on the worker thread only.
        import pyttsx3
        import pyttsx3.drivers.espeak as espeak_driver

        # The driver prints "Audio saved to …" on stdout after every file; silence it in that module only.
        espeak_driver.print = lambda *args, **kwargs: None
        engine = pyttsx3.init("espeak")
        engine.setProperty("rate", self._rate_wpm)
        if self._voice:
            engine.setProperty("voice", self._voice)
        return engine

    def _render_sync(self, text: str) -> bytes:
        assert threading.current_thread().name.startswith("carecoach-tts")  # never the event loop
        if self._engine is None:
            self._engine = self._init_engine()
        self._counter += 1
        path = self._dir / f"w{self._counter}.wav"
        try:
            self._engine.save_to_file(text, str(path))
            self._engine.runAndWait()
            return path.read_bytes()
        finally:
            path.unlink(missing_ok=True)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._engine = await loop.run_in_executor(self._executor, self._init_engine)

    async def render(self, text: str) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._render_sync, text)

    def close(self) -> None:
        # Don't wait: a wedged render must not block shutdown.
        self._executor.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self._dir, ignore_errors=True)


class Synthesizer:
    """Whisper text → μ-law 8 kHz. Use one per process; `render` is safe to call concurrently."""

    def __init__(
        self,
        *,
        backend: Backend = "auto",
        voice: str | None = "en-us",
        rate_wpm: int = 175,
        cache_size: int = 256,
        timeout: float = 10.0,
        espeak_binary: str = "espeak-ng",
    ) -> None:
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.timeout = timeout
        self._espeak_binary = espeak_binary
        self._requested: Backend = backend
        self._worker: _Pyttsx3Worker | None = None
        self._backend: Literal["pyttsx3", "espeak-ng"] | None = None
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._start_lock = asyncio.Lock()
        self.renders = 0  # engine renders (cache misses), for metrics and tests

    @property
    def backend(self) -> str | None:
        """The engine in use: "pyttsx3", "espeak-ng", or None before the first render/`start()`."""
        return self._backend

    async def start(self) -> None:
        """Pick and warm up the engine (optional: the first `render` does it)."""
        async with self._start_lock:
            if self._backend is not None:
                return
            if self._requested in ("auto", "pyttsx3"):
                worker = _Pyttsx3Worker(self.rate_wpm, self.voice)
                try:
                    await asyncio.wait_for(worker.start(), self.timeout)
                except Exception as exc:  # ImportError, RuntimeError("could not initialize espeak"), timeout …
                    worker.close()
                    if self._requested == "pyttsx3":
                        raise TTSError(f"pyttsx3 could not start: {exc!r}", retryable=False) from exc
                    log.warning("pyttsx3 unavailable (%r); using the espeak-ng command", exc)
                else:
                    self._worker, self._backend = worker, "pyttsx3"
                    return
            if shutil.which(self._espeak_binary) is None:
                raise TTSError(f"{self._espeak_binary} not found on PATH", retryable=False)
            await self._probe_voice()
            self._backend = "espeak-ng"

    async def _probe_voice(self) -> None:
        # With --stdin, espeak-ng silently falls back to its default voice; with text in argv it fails.
        if not self.voice:
            return
        with tempfile.TemporaryDirectory(prefix="carecoach-tts-") as tmp:
            proc = await asyncio.create_subprocess_exec(
                self._espeak_binary, "-v", self.voice, "-w", str(Path(tmp) / "probe.wav"), "probe",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, stderr = await asyncio.wait_for(proc.communicate(), self.timeout)
        if proc.returncode != 0:
            detail = stderr.decode("utf-8", "replace").strip()[:200]
            raise TTSError(f"{self._espeak_binary} voice {self.voice!r}: {detail}", retryable=False)

    async def render(self, text: str) -> bytes:
        """The whisper `text` as μ-law bytes at 8 kHz. Raises `TTSError`."""
        text = " ".join(text.split())
        if not text:
            raise TTSError("nothing to say: the text is empty", retryable=False)
        if len(text) > MAX_CHARS:
            raise TTSError(f"whisper text is {len(text)} characters; the limit is {MAX_CHARS}", retryable=False)
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        pending = self._inflight.get(text)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled
                return await self.render(text)  # the caller that owned the render was: do it here
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[text] = future
        try:
            ulaw = await self._render_uncached(text)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(ulaw)
            self._cache[text] = ulaw
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return ulaw
        finally:
            del self._inflight[text]

    async def _render_uncached(self, text: str) -> bytes:
        await self.start()
        self.renders += 1
        if self._backend == "pyttsx3":
            assert self._worker is not None
            try:
                wav = await asyncio.wait_for(self._worker.render(text), self.timeout)
                samples, rate = _read_wav(wav)
                return await asyncio.to_thread(to_ulaw8k, samples, rate)
            except Exception as exc:
                if self._requested == "pyttsx3":
                    raise TTSError(f"pyttsx3 render failed: {exc!r}", retryable=True) from exc
                # A hung or broken engine would wedge the only worker thread: switch engines for good.
                log.warning("pyttsx3 render failed (%r); switching to the espeak-ng command", exc)
                self._worker.close()
                self._worker = None
                self._backend = "espeak-ng" if shutil.which(self._espeak_binary) else None
                if self._backend is None:
                    raise TTSError(f"pyttsx3 failed and {self._espeak_binary} is missing", retryable=False) from exc
        samples, rate = await self._espeak_subprocess(text)
        return await asyncio.to_thread(to_ulaw8k, samples, rate)

    async def _espeak_subprocess(self, text: str) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory(prefix="carecoach-tts-") as tmp:
            path = Path(tmp) / "whisper.wav"
            # Text goes on stdin (-b 1: UTF-8), never argv, so it can't be read as an option.
            args = [self._espeak_binary, "--stdin", "-b", "1", "-s", str(self.rate_wpm), "-w", str(path)]
            if self.voice:
                args[1:1] = ["-v", self.voice]
            try:
                proc = await asyncio.create_subprocess_exec(
                    *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE)
            except OSError as exc:
                raise TTSError(f"cannot run {self._espeak_binary}: {exc.strerror}", retryable=False) from None
            try:
                _, stderr = await asyncio.wait_for(proc.communicate(text.encode("utf-8")), self.timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise TTSError(f"{self._espeak_binary} took longer than {self.timeout} s", retryable=True) from None
            if proc.returncode != 0:
                detail = stderr.decode("utf-8", "replace").strip()[:200]
                raise TTSError(f"{self._espeak_binary} exited with {proc.returncode}: {detail}", retryable=False)
            return _read_wav(await asyncio.to_thread(path.read_bytes))

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
