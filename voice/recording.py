"""Call recordings: each track's PCM is appended to its own raw file while the call runs, and joined
into one stereo WAV (left = customer, right = agent) when the call ends.

Audio is buffered in memory and written from a worker thread about once a second, so the event loop
never touches the disk. A write error (a full disk, say) stops the recording of that call, is logged
once, and leaves transcription running; what was written before stays playable.
"""

from __future__ import annotations

import asyncio
import logging
import wave
from pathlib import Path

import numpy as np

from voice.types import PIPELINE_RATE, SPEAKERS, Speaker

log = logging.getLogger(__name__)

FLUSH_BYTES = PIPELINE_RATE * 2  # ~1 s of one track


def raw_path(directory: Path, speaker: Speaker) -> Path:
    return directory / f"{speaker}.raw"


def build_wav(directory: Path, out: Path) -> Path:
    """Interleave the two raw tracks into a stereo WAV; the shorter track is padded with silence."""
    tracks = []
    for speaker in SPEAKERS:
        path = raw_path(directory, speaker)
        tracks.append(np.fromfile(path, dtype="<i2") if path.exists() else np.zeros(0, dtype="<i2"))
    length = max(len(t) for t in tracks)
    stereo = np.zeros((length, 2), dtype="<i2")
    for channel, track in enumerate(tracks):
        stereo[: len(track), channel] = track
    tmp = out.with_suffix(".wav.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(PIPELINE_RATE)
        w.writeframes(stereo.tobytes())
    tmp.replace(out)
    return out


class Recorder:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.wav_path = directory / "recording.wav"
        self._buffers: dict[Speaker, bytearray] = {s: bytearray() for s in SPEAKERS}
        self._lock = asyncio.Lock()
        self.failed: str | None = None
        self._flush_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            self._fail(exc)

    def write(self, speaker: Speaker, pcm: bytes) -> None:
        if self.failed:
            return
        buffer = self._buffers[speaker]
        buffer += pcm
        if len(buffer) >= FLUSH_BYTES and (self._flush_task is None or self._flush_task.done()):
            self._flush_task = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        async with self._lock:
            if self.failed:
                return
            pending = {s: bytes(b) for s, b in self._buffers.items() if b}
            for buffer in self._buffers.values():
                buffer.clear()
            if not pending:
                return
            try:
                await asyncio.to_thread(self._append, pending)
            except OSError as exc:
                self._fail(exc)

    def _append(self, pending: dict[Speaker, bytes]) -> None:
        for speaker, pcm in pending.items():
            with open(raw_path(self.directory, speaker), "ab") as f:
                f.write(pcm)

    def _fail(self, exc: OSError) -> None:
        if self.failed:  # logged once per call: joining the tracks at the end may hit the same full disk
            log.debug("recording %s: %s", self.directory, exc.strerror or exc)
            return
        self.failed = f"recording stopped: {exc.strerror or exc}"
        log.error("%s (%s); the call goes on without it", self.failed, self.directory)

    async def close(self) -> Path | None:
        """Flush, build the stereo WAV and remove the raw tracks. Returns the WAV, if any audio was kept."""
        if self._flush_task is not None:
            await self._flush_task
        await self.flush()
        try:
            return await asyncio.to_thread(self._finalise)
        except OSError as exc:
            self._fail(exc)
            # The raw tracks stay on disk; the recording endpoint can still join them later.
            return None

    def _finalise(self) -> Path | None:
        if not any(raw_path(self.directory, s).exists() for s in SPEAKERS):
            return None
        build_wav(self.directory, self.wav_path)
        for speaker in SPEAKERS:
            raw_path(self.directory, speaker).unlink(missing_ok=True)
        return self.wav_path
