"""Core types shared by every layer: who speaks, and the audio and transcript units that cross boundaries.

Times are seconds since the start of the call's media stream (telephony time, not wall time), so a
replayed call yields identical numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Speaker = Literal["customer", "agent"]
SPEAKERS: tuple[Speaker, Speaker] = ("customer", "agent")

#: The rate every carrier is normalised to before VAD, recording and ASR resampling.
PIPELINE_RATE = 8000


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A run of mono PCM16 samples at PIPELINE_RATE from one speaker, starting at `start` seconds."""

    speaker: Speaker
    pcm: bytes
    start: float

    @property
    def duration(self) -> float:
        return len(self.pcm) / 2 / PIPELINE_RATE


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """One recogniser result. `partial` text may still change; `final` closes an utterance."""

    kind: Literal["partial", "final"]
    text: str
    start: float
    end: float
    confidence: float
    words: tuple[Word, ...] = field(default=())
