"""Voice-activity gate and endpointing for one track.

Feeds 20 ms PCM16 frames at PIPELINE_RATE through WebRTC's VAD and turns them into a closed set of
events: `SpeechStarted`, `SpeechAudio` (only the audio the recogniser should hear, with a short
pre-roll so first phonemes are not clipped) and `SpeechEnded` after `silence` seconds without voice.
Silence never reaches the recogniser, which is where most of the per-call CPU saving comes from.
Pure and synchronous: times are the stream times the caller passes in.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Literal

import webrtcvad

from voice.codec import rms
from voice.types import PIPELINE_RATE

FRAME_SECONDS = 0.02
FRAME_SAMPLES = int(PIPELINE_RATE * FRAME_SECONDS)
FRAME_BYTES = FRAME_SAMPLES * 2


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    kind: Literal["started"]
    start: float


@dataclass(frozen=True, slots=True)
class SpeechAudio:
    kind: Literal["audio"]
    pcm: bytes
    start: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    kind: Literal["ended"]
    end: float  # end of the last voiced frame, i.e. when the speaker stopped


VadEvent = SpeechStarted | SpeechAudio | SpeechEnded


class Endpointer:
    """Hysteresis on WebRTC VAD decisions: `start_frames` voiced frames open an utterance, `silence`
    seconds of unvoiced frames close it, and `max_utterance` forces a close so finals keep flowing
    during a monologue."""

    def __init__(
        self,
        *,
        silence: float = 0.4,
        preroll: float = 0.2,
        start_frames: int = 3,
        max_utterance: float = 15.0,
        aggressiveness: int = 2,
        min_rms: float = 100.0,
    ) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._silence_frames = max(1, round(silence / FRAME_SECONDS))
        self._start_frames = start_frames
        self._max_frames = round(max_utterance / FRAME_SECONDS)
        self._min_rms = min_rms
        self._recent: collections.deque[tuple[bytes, float]] = collections.deque(
            maxlen=max(start_frames, round(preroll / FRAME_SECONDS))
        )
        self._voiced_run = 0
        self._in_speech = False
        self._unvoiced_run = 0
        self._frames_in_utterance = 0
        self._last_voiced_end = 0.0

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def is_voiced(self, frame: bytes) -> bool:
        # The RMS floor keeps line hiss and comfort noise out; WebRTC alone fires on those.
        return rms(frame) >= self._min_rms and self._vad.is_speech(frame, PIPELINE_RATE)

    def feed(self, frame: bytes, start: float) -> list[VadEvent]:
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"expected {FRAME_BYTES}-byte frames, got {len(frame)}")
        voiced = self.is_voiced(frame)
        if not self._in_speech:
            self._recent.append((frame, start))
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run < self._start_frames:
                return []
            self._in_speech = True
            self._unvoiced_run = 0
            self._frames_in_utterance = len(self._recent)
            self._last_voiced_end = start + FRAME_SECONDS
            events: list[VadEvent] = [SpeechStarted("started", self._recent[0][1])]
            events.append(SpeechAudio("audio", b"".join(f for f, _ in self._recent), self._recent[0][1]))
            self._recent.clear()
            return events

        self._frames_in_utterance += 1
        events = [SpeechAudio("audio", frame, start)]
        if voiced:
            self._unvoiced_run = 0
            self._last_voiced_end = start + FRAME_SECONDS
        else:
            self._unvoiced_run += 1
        if self._unvoiced_run >= self._silence_frames or self._frames_in_utterance >= self._max_frames:
            events.append(self._close())
        return events

    def finish(self) -> list[VadEvent]:
        """The track ended: close any open utterance."""
        return [self._close()] if self._in_speech else []

    def _close(self) -> SpeechEnded:
        self._in_speech = False
        self._voiced_run = 0
        self._recent.clear()
        return SpeechEnded("ended", self._last_voiced_end)
