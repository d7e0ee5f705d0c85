"""Conversation-level types: the finalised utterance and the call record's JSON shapes (CONTRACT §5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from voice.types import Speaker, Word

Phase = Literal["venting", "question", "other"]
CallStatus = Literal["live", "ended", "interrupted"]
Disposition = Literal["resolved", "unresolved", "escalated", "follow_up", "referred"]
DISPOSITIONS: tuple[Disposition, ...] = ("resolved", "unresolved", "escalated", "follow_up", "referred")


@dataclass(frozen=True, slots=True)
class Utterance:
    seq: int
    speaker: Speaker
    start: float
    end: float
    text: str
    phase: Phase
    confidence: float
    words: tuple[Word, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "speaker": self.speaker,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "phase": self.phase,
            "confidence": round(self.confidence, 3),
        }


@dataclass(frozen=True, slots=True)
class NewCall:
    """What is known when a stream starts."""

    call_sid: str
    stream_sid: str
    started_at: str  # ISO 8601 UTC
    from_number: str = ""
    to_number: str = ""
    agent: str = ""
    carrier: str = "twilio"
