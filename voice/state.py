"""Shared application state: the typed `AppKey`s the composition root fills and the handlers read,
the request's role key, limits shared by the socket handlers, and the wall clock used for records."""

from __future__ import annotations

import weakref
from datetime import UTC, datetime

from aiohttp import web

from dialog.classify import UtteranceClassifier
from dialog.coach import Card
from dialog.store import CallStore
from voice.asr.base import SpeechEngine
from voice.config import Config
from voice.hub import LiveHub
from voice.metrics import Metrics
from voice.session import CallSession
from voice.tts import Synthesizer
from voice.whispers import Whispers

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", CallStore)
HUB = web.AppKey("hub", LiveHub)
ENGINE = web.AppKey("engine", SpeechEngine)
METRICS = web.AppKey("metrics", Metrics)
SESSIONS = web.AppKey("sessions", dict[str, CallSession])
#: Call ids whose sessions are being opened (awaiting the store): counted as taken, so two streams for one
#: call can't both open and a burst of new calls can't overshoot max_calls.
OPENING = web.AppKey("opening", set[str])
#: Every carrier's call WebSocket (whisper legs included), so a shutdown can close them (1001) instead of
#: waiting out the calls. Weak: a socket leaves with its handler, and closing a closed one does nothing.
CALL_SOCKETS = web.AppKey("call_sockets", weakref.WeakSet[web.WebSocketResponse])
CLASSIFIER = web.AppKey("classifier", UtteranceClassifier)
PLAYBOOK = web.AppKey("playbook", tuple[Card, ...])
SYNTHESIZER = web.AppKey("synthesizer", Synthesizer)
ROLE = web.RequestKey("role", str)

#: aiohttp drops the socket above this; our own (smaller) limit drops only the message.
HARD_MESSAGE_LIMIT = 1024 * 1024


def iso_utc(moment: datetime) -> str:
    """A time as CONTRACT text: ISO 8601 in UTC, to the second, with a Z."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso_utc(datetime.now(UTC))


WHISPERS = web.AppKey("whispers", Whispers)
