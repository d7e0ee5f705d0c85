"""Voice-activity gate and endpointing for one track.

Feeds 20 ms PCM16 frames at PIPELINE_RATE through WebRTC's VAD and turns them into a closed set of
events: `SpeechStarted`, `SpeechAudio` (only the audio the recogniser should hear, with a short
pre-roll so first phonemes are not clipped) and `SpeechEnded` after a pause without voice.
Silence never reaches the recogniser, which is where most of the per-call CPU saving comes from.

The pause that ends an utterance adapts to what was said (hypothesis-aware endpointing): the caller hands
in the recogniser's latest partial hypothesis with `hypothesis()`; if its last word leaves the phrase open
("… because", "… my", "… um") the utterance waits `hold` seconds, otherwise `silence` seconds: a pause
after "and" is rarely the end of a turn, so there the endpointer can wait without costing latency where
the speaker has finished. Partials lag the audio (PocketSphinx sends one per 0.3 s of audio), so the
decision uses whatever hypothesis has arrived; with none yet, the short `silence` applies.
Pure and synchronous: times are the stream times the caller passes in.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
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

# Last words after which a turn rarely ends: conjunctions, articles and possessives, prepositions that need
# an object, subject pronouns, fillers. Words that often end a phrase in service calls stay out even when
# they can also continue one ("in", "on", "out", "up" as in "log in"; "that", "this", "it", "is", "not").
# A miss here costs latency (the long hold), a wrong entry costs a split sentence.
CONTINUING_WORDS = frozenset({
    # conjunctions
    "and", "but", "or", "nor", "because", "cause", "cuz", "so", "if", "than", "unless", "until", "whether",
    "while", "although", "whereas",
    # articles, determiners, possessives
    "the", "a", "an", "every", "my", "your", "our", "their", "his", "its",
    # prepositions that need their object
    "to", "of", "for", "with", "from", "at", "by", "about", "into", "onto", "as", "between", "without",
    "through", "towards", "toward",
    # subject pronouns and contracted auxiliaries: a clause follows
    "i", "i'm", "i've", "i'd", "i'll", "we", "we're", "we've", "you're", "they're", "it's", "he's", "she's",
    "there's",
    # hedges and intensifiers that need a head word
    "very", "really", "gonna", "wanna", "gotta",
    # fillers (PocketSphinx's own ++UH++ fillers never reach the text; some engines spell them out)
    "um", "uh", "uhm", "umm", "er", "erm", "ah",
})


def sounds_continuing(words: Sequence[str]) -> bool:
    """True when the hypothesis ends mid-phrase (its last word is in CONTINUING_WORDS)."""
    return bool(words) and words[-1].lower() in CONTINUING_WORDS


class Endpointer:
    """Hysteresis on WebRTC VAD decisions: `start_frames` voiced frames open an utterance, `silence`
    seconds of unvoiced frames close it (`hold` seconds while the latest hypothesis ends mid-phrase),
    and `max_utterance` forces a close so finals keep flowing during a monologue.

    `hold=None` (or a hold not longer than `silence`) is the plain fixed-silence endpointer."""

    def __init__(
        self,
        *,
        silence: float = 0.4,
        hold: float | None = None,
        preroll: float = 0.2,
        start_frames: int = 3,
        max_utterance: float = 15.0,
        aggressiveness: int = 2,
        min_rms: float = 100.0,
    ) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._silence_frames = max(1, round(silence / FRAME_SECONDS))
        # Never shorter than `silence`: a hold only ever waits longer.
        self._hold_frames = max(self._silence_frames, round((hold or 0.0) / FRAME_SECONDS))
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
        self._utterance_start = 0.0
        self._continuing = False  # the latest hypothesis of the open utterance ends mid-phrase

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def holding(self) -> bool:
        """The open utterance waits the long `hold`: its latest hypothesis ends mid-phrase."""
        return self._in_speech and self._continuing

    def hypothesis(self, words: Sequence[str], start: float) -> None:
        """The recogniser's latest partial for the utterance that began at stream time `start`.

        Partials arrive after the audio they cover, so one for an utterance that has already closed (the
        open one began later, or none is open) is ignored rather than applied to the wrong utterance."""
        if not self._in_speech or start < self._utterance_start - FRAME_SECONDS / 2:
            return
        self._continuing = sounds_continuing(words)

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
            self._continuing = False  # no hypothesis yet: the short pause
            self._utterance_start = self._recent[0][1]
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
        needed = self._hold_frames if self._continuing else self._silence_frames
        if self._unvoiced_run >= needed or self._frames_in_utterance >= self._max_frames:
            events.append(self._close())
        return events

    def finish(self) -> list[VadEvent]:
        """The track ended: close any open utterance."""
        return [self._close()] if self._in_speech else []

    def _close(self) -> SpeechEnded:
        self._in_speech = False
        self._continuing = False
        self._voiced_run = 0
        self._recent.clear()
        return SpeechEnded("ended", self._last_voiced_end)
