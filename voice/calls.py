"""What every carrier adapter shares: opening a call's session, counting the messages it rejects, and
finishing it.

Twilio (`voice.telephony`), Genesys AudioHook (`voice.audiohook`) and Asterisk AudioSocket
(`voice.audiosocket`) differ only in how audio and control arrive. Each builds a `NewCall` (with its
`carrier`), opens it here, feeds `CallSession.on_media` (μ-law) or `on_pcm` (PCM16), and ends it with
`finish_session`, so the transcript, phases, prompts, storage and pages never know which carrier it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import WSCloseCode, web

from dialog.classify import AudioCues, UtteranceClassifier
from dialog.coach import Card, Coach
from dialog.redact import redact
from dialog.store import StoreError
from dialog.types import CallStatus, NewCall, Phase
from voice.ids import CALL_SID
from voice.metrics import Metrics
from voice.recording import Recorder
from voice.session import AudioCueValues, CallSession
from voice.spill import Spill
from voice.state import (
    CALL_SOCKETS,
    CLASSIFIER,
    CONFIG,
    ENGINE,
    HUB,
    METRICS,
    OPENING,
    PLAYBOOK,
    SESSIONS,
    STORE,
    WHISPERS,
    utc_now,
)
from voice.types import Speaker

log = logging.getLogger("carecoach")


class CallRefused(ValueError):
    """A call that can't be opened; `reason` is the frame-error label it is counted under."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def at_capacity(app: web.Application) -> bool:
    return len(app[SESSIONS]) + len(app[OPENING]) >= app[CONFIG].max_calls


def classify_with(classifier: UtteranceClassifier) -> Callable[..., tuple[Phase, float]]:
    def classify(text: str, speaker: Speaker, context: Sequence[tuple[str, str]],
                 cues: AudioCueValues) -> tuple[Phase, float]:
        result = classifier.classify(text, speaker, context=context,
                                     cues=AudioCues(cues.loudness_ratio, cues.rate_ratio, cues.overlap))
        return result.phase, result.sentiment

    return classify


async def open_session(app: web.Application, call: NewCall) -> CallSession:
    """Start `call`'s session and register it as streaming. A call id seen before continues its history
    (a reconnecting stream): its utterances keep counting from the last stored `seq`."""
    if not CALL_SID.match(call.call_sid):
        raise CallRefused("malformed", f"invalid call id {call.call_sid[:80]!r}")
    if call.call_sid in app[SESSIONS] or call.call_sid in app[OPENING]:
        raise CallRefused("duplicate_call", f"call {call.call_sid} is already streaming")
    app[OPENING].add(call.call_sid)
    try:
        session = await _start_session(app, call)
    except StoreError as exc:
        app[METRICS].count_db_error(exc)
        raise CallRefused("database", f"call {call.call_sid} not transcribed: the database is unavailable "
                                      f"({exc})") from None
    finally:
        app[OPENING].discard(call.call_sid)
    app[SESSIONS][session.call_sid] = session
    return session


async def _start_session(app: web.Application, call: NewCall) -> CallSession:
    config = app[CONFIG]
    # A call coming back after an outage spilled its utterances or end: write those in first, so its new
    # utterances number after them and its new end, not the spilled one, is the last word.
    await Spill(config.spill_dir).replay(app[STORE], only=call.call_sid)
    existing = await app[STORE].get_call(call.call_sid)
    first_seq = 1 + max((u["seq"] for u in existing["utterances"]), default=-1) if existing else 0
    recorder = Recorder(config.recordings_dir / call.call_sid) if config.recordings else None
    cards: tuple[Card, ...] = app[PLAYBOOK]
    whispers = app[WHISPERS]
    # Audio whispers ride a Twilio coaching leg; other carriers get the on-screen prompt only.
    wanted = call.carrier == "twilio" and await whispers.wanted(app[STORE], call.agent)
    session = CallSession(
        call, engine=app[ENGINE], store=app[STORE], hub=app[HUB], metrics=app[METRICS],
        classify=classify_with(app[CLASSIFIER]), redact=redact if config.redact_pii else None,
        recorder=recorder, coach=Coach(cards), whisper=whispers.for_call(call.call_sid) if wanted else None,
        endpoint_silence=config.endpoint_silence, endpoint_hold=config.endpoint_hold, wall_clock=utc_now,
        spill=Spill(config.spill_dir))
    await session.start(first_seq)
    return session


async def finish_session(app: web.Application, session: CallSession, status: Any) -> None:
    try:
        await session.finish(status)
    finally:
        if app[SESSIONS].get(session.call_sid) is session:
            del app[SESSIONS][session.call_sid]
        log.info("call %s: %s after %.1f s, %d utterances, %d bad frames", session.call_sid, status,
                 session.duration, len(session.utterances), session.frame_errors)


#: How long a shutdown waits for call sockets to take their close frames.
CLOSE_SOCKETS_SECONDS = 2.0


async def close_call_sockets(app: web.Application) -> None:
    """On shutdown (SIGTERM), before the server waits for handlers: close every carrier's call socket (1001
    going away), so each handler ends its call `interrupted` with everything heard so far and returns at once
    instead of holding the shutdown until the call ends or aiohttp cancels it."""
    sockets = app[CALL_SOCKETS].copy()  # the set shrinks as handlers return
    # Bounded: a peer that stopped reading can stall a close frame; aiohttp's shutdown timeout cuts the rest.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_SOCKETS_SECONDS):
            await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
                                   for ws in sockets), return_exceptions=True)


async def finish_shielded(app: web.Application, session: CallSession, status: CallStatus) -> None:
    """Finish from a handler's `finally`: a cancelled handler (server shutdown, a dropped peer) must still
    finalise everything heard so far."""
    await asyncio.shield(finish_session(app, session, status))


class StreamErrors:
    """Counts and logs the messages one stream rejects. Before the call exists they are counted on the
    metrics and carried over to the call once it starts; a flood of bad frames doesn't flood the log."""

    def __init__(self, metrics: Metrics, stream: str) -> None:
        self.metrics = metrics
        self.stream = stream
        self.session: CallSession | None = None
        self.before_start = 0

    def attach(self, session: CallSession) -> None:
        self.session = session
        for _ in range(self.before_start):
            session.count_error("before_start")

    @property
    def count(self) -> int:
        return self.session.frame_errors if self.session is not None else self.before_start

    def reject(self, reason: str, detail: str) -> None:
        if self.session is not None:
            self.session.count_error(reason)
        else:
            self.metrics.frame_errors.labels(reason).inc()
            self.before_start += 1
        count = self.count
        if count <= 5 or count % 100 == 0:
            log.warning("%s %s: dropped a message (%s): %s [%d so far]", self.stream,
                        self.session.call_sid if self.session else "(no call yet)", reason, detail, count)
