"""The aiohttp application and composition root: the only module that wires voice, dialog and prompts.

It owns the app's resources through `cleanup_ctx` (store, recogniser, speech synthesizer and audio-whisper
tasks, live sessions), the Twilio endpoints (with the audio-whisper conference, webhook and stream), the
JSON API (with per-agent settings), live-event WebSockets, health/readiness/metrics, and access control.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from itertools import count
from typing import Any
from urllib.parse import urlencode

import requests
from aiohttp import WSMsgType, web
from prometheus_client import Counter
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient
from twilio.twiml.voice_response import Dial, VoiceResponse

from dialog.classify import AudioCues, UtteranceClassifier
from dialog.coach import Card, Coach, PromptEvent
from dialog.redact import redact
from dialog.store import CallStore, StoreError
from dialog.types import DISPOSITIONS, NewCall, Phase
from prompts import PlaybookError, load_playbook
from voice import pages
from voice.asr import select_engine
from voice.asr.base import SpeechEngine
from voice.config import Config, ConfigError, Role
from voice.hub import LiveHub
from voice.metrics import Metrics
from voice.recording import Recorder, build_wav
from voice.session import AudioCueValues, CallSession
from voice.tts import Synthesizer, TTSError
from voice.twilio import (
    Dtmf,
    FrameError,
    Media,
    Start,
    Stop,
    parse_message,
    public_base,
    signature_valid,
    stream_url,
    voice_twiml,
)
from voice.types import Speaker
from voice.whisper import (
    CoachingLegs,
    WhisperChannel,
    WhisperError,
    WhisperRegistry,
    conference_twiml,
    whisper_stream_url,
    whisper_twiml,
)

log = logging.getLogger("carecoach")

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", CallStore)
HUB = web.AppKey("hub", LiveHub)
ENGINE = web.AppKey("engine", SpeechEngine)
METRICS = web.AppKey("metrics", Metrics)
SESSIONS = web.AppKey("sessions", dict[str, CallSession])
CLASSIFIER = web.AppKey("classifier", UtteranceClassifier)
PLAYBOOK = web.AppKey("playbook", tuple[Card, ...])
SYNTHESIZER = web.AppKey("synthesizer", Synthesizer)
ROLE = web.RequestKey("role", str)

#: aiohttp drops the socket above this; our own (smaller) limit drops only the message.
HARD_MESSAGE_LIMIT = 1024 * 1024
CALL_SID = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")
#: Agent ids are what CARECOACH_AGENT_DIAL holds for now (`+E164`, `sip:user@host`, `client:name`).
AGENT = re.compile(r"^[A-Za-z0-9_\-.:+@]{1,128}$")
#: A real Twilio CallSid: what conference names and the coaching leg's parameters are built from.
TWILIO_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
E164 = re.compile(r"^\+[0-9]{7,15}$")
#: The conference of an opted-in agent's call is named after the customer's CallSid.
CONFERENCE_PREFIX = "cc-"
AGENT_LABEL = "agent"
#: Audio beyond its own length that a whisper may take to be played and echoed before we give up.
PLAYOUT_SLACK = 5.0


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- access control ------------------------------------------------------------------------------


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip()
    return request.query.get("token") or request.cookies.get("carecoach_token")


def _role(config: Config, token: str | None) -> Role | None:
    if token is None:
        return None
    # Constant-time comparison against every configured token.
    found: Role | None = None
    for candidate, role in config.api_tokens.items():
        if hmac.compare_digest(candidate.encode(), token.encode()):
            found = role
    return found


# Twilio authenticates with signatures, probes and scrapers carry no token, and static assets hold no data.
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/twilio/", "/static/")


@web.middleware
async def access_control(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    config = request.app[CONFIG]
    if config.auth_enabled and not request.path.startswith(OPEN_PATHS):
        role = _role(config, _token(request))
        if role is None:
            raise web.HTTPUnauthorized(text='{"error": "a valid token is required"}',
                                       content_type="application/json")
        request[ROLE] = role
    else:
        request[ROLE] = "admin"
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


# --- audio whispers ----------------------------------------------------------------------------------


def _dial_twiml(agent_dial: str) -> str:
    """Just the `<Dial>` to the agent: the fallback when an opted-in agent can't be added to the conference
    (the call's `<Start><Stream>` keeps running across the redirect)."""
    response = VoiceResponse()
    dial = Dial()
    if agent_dial.startswith("sip:"):
        dial.sip(agent_dial)
    elif agent_dial.startswith("client:"):
        dial.client(agent_dial.removeprefix("client:"))
    else:
        dial.number(agent_dial)
    response.append(dial)
    return str(response)


class Whispers:
    """The app's audio-whisper plumbing (DESIGN "Audio whisper (Twilio)").

    Owns the whisper channels live on this replica, the Twilio REST clients that add conference legs, and
    every background task those REST calls run in (tracked, cancelled and awaited on shutdown). A failure
    here is logged and counted and never breaks the call: the on-screen prompt always goes out.
    """

    def __init__(self, config: Config, metrics: Metrics, synthesizer: Synthesizer) -> None:
        self.config = config
        self.available = config.whisper_available
        self.registry = WhisperRegistry()
        self.synthesizer = synthesizer
        self.errors = Counter("carecoach_whisper_errors", "Audio whisper failures, by stage", ["stage"],
                              registry=metrics.registry)
        self.results = Counter("carecoach_whispers", "Prompts offered as audio whispers, by result", ["result"],
                               registry=metrics.registry)
        self._legs: dict[str, CoachingLegs] = {}
        self._rest: TwilioClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._coached: dict[str, None] = {}  # conferences whose coaching leg was requested (bounded)
        self._warned = False

    # --- who gets audio --------------------------------------------------------------------------

    async def wanted(self, store: CallStore, agent: str) -> bool:
        """Whether `agent`'s calls get audio whispers: they opted in and whisper is configured."""
        if not agent or not AGENT.match(agent):
            return False
        try:
            opted_in = await store.get_whisper(agent)
        except StoreError as exc:
            self.errors.labels("store").inc()
            log.warning("agent %s: whisper setting unavailable (%s); prompts stay on screen only", agent, exc)
            return False
        if opted_in and not self.available:
            if not self._warned:
                self._warned = True
                log.warning("agent %s opted in to audio whispers, but TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
                            "CARECOACH_WHISPER_APP_SID are not all set: prompts show on screen only", agent)
            return False
        return opted_in

    def caller_id(self, called: str) -> str | None:
        """The From of the legs we add: the configured number, else the number the customer called."""
        if self.config.whisper_caller_id:
            return self.config.whisper_caller_id
        return called if E164.match(called) else None

    # --- Twilio REST -----------------------------------------------------------------------------

    def legs(self, caller_id: str) -> CoachingLegs:
        legs = self._legs.get(caller_id)
        if legs is None:
            config = self.config
            assert config.twilio_account_sid and config.twilio_auth_token and config.whisper_app_sid
            legs = CoachingLegs(config.twilio_account_sid, config.twilio_auth_token,
                                whisper_to=f"app:{config.whisper_app_sid}", caller_id=caller_id,
                                base_url=config.twilio_api_url)
            self._legs[caller_id] = legs
        return legs

    def spawn(self, what: str, work: Awaitable[None]) -> None:
        """Run `work` as an app-owned task; its failure is logged and counted, never raised."""
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors.labels("task").inc()
                log.exception("%s failed", what)

        task = asyncio.get_running_loop().create_task(guarded(), name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def add_agent(self, conference: str, call_sid: str, agent_dial: str, caller_id: str,
                        status_callback: str) -> None:
        """Dial the agent into the customer's conference; if Twilio refuses, send the call straight to them."""
        try:
            leg = await self.legs(caller_id).add_agent(conference, agent_dial, caller_id, label=AGENT_LABEL,
                                                       status_callback=status_callback)
        except WhisperError as exc:
            self.errors.labels("add_agent").inc()
            log.error("call %s: %s; dialling the agent directly, without audio whispers", call_sid, exc)
            await self._redirect(call_sid, _dial_twiml(agent_dial))
            return
        log.info("call %s: agent leg %s added to %s", call_sid, leg, conference)

    async def _redirect(self, call_sid: str, twiml: str) -> None:
        config = self.config
        if self._rest is None:
            self._rest = TwilioClient(config.twilio_account_sid, config.twilio_auth_token,
                                      http_client=TwilioHttpClient(timeout=10))
            if config.twilio_api_url:
                self._rest.api.base_url = config.twilio_api_url
        rest = self._rest
        try:
            await asyncio.to_thread(lambda: rest.calls(call_sid).update(twiml=twiml))
        except (TwilioException, requests.RequestException) as exc:
            self.errors.labels("redirect").inc()
            log.error("call %s: could not redirect the call to the agent: %s", call_sid, exc)

    def start_coaching(self, conference_sid: str, agent_leg: str, call_sid: str, caller_id: str) -> None:
        """Add the coaching leg for the agent's leg of `call_sid`'s conference (once per conference)."""
        key = f"{conference_sid}/{agent_leg}"
        if key in self._coached:
            return  # a redelivered participant-join
        self._coached[key] = None
        while len(self._coached) > 10_000:
            del self._coached[next(iter(self._coached))]

        async def start() -> None:
            try:
                leg = await self.legs(caller_id).start(conference_sid, agent_leg, call_sid=call_sid)
            except WhisperError as exc:
                self.errors.labels("coaching_leg").inc()
                log.error("call %s: no audio whispers: %s", call_sid, exc)
                return
            log.info("call %s: whisper leg %s coaches agent leg %s", call_sid, leg, agent_leg)

        self.spawn(f"call {call_sid}: adding the whisper leg", start())

    # --- the session hook ------------------------------------------------------------------------

    def for_call(self, call_sid: str) -> Callable[[PromptEvent], Awaitable[bool]]:
        """The session's `whisper`: speak a prompt into the agent's ear; True once Twilio played it."""
        numbers = count(1)

        async def whisper(event: PromptEvent) -> bool:
            channel = self.registry.get(call_sid)
            if channel is None or not event.whisper.strip():
                self.results.labels("no_channel" if channel is None else "no_text").inc()
                return False
            name = f"{event.id}#{next(numbers)}"
            try:
                # The synthesizer bounds each step itself; this also covers its engine start-up.
                async with asyncio.timeout(2 * self.synthesizer.timeout + 1):
                    ulaw = await self.synthesizer.render(event.whisper)
            except (TTSError, TimeoutError) as exc:
                self.errors.labels("tts").inc()
                self.results.labels("tts_failed").inc()
                log.warning("call %s: prompt %s not whispered, speech failed: %s", call_sid, event.id, exc)
                return False
            try:
                async with asyncio.timeout(len(ulaw) / 8000 + PLAYOUT_SLACK):
                    played = await channel.say(ulaw, name, priority=event.priority) and await channel.wait_played(name)
            except (WhisperError, TimeoutError) as exc:
                self.errors.labels("stream").inc()
                self.results.labels("failed").inc()
                log.warning("call %s: prompt %s not whispered: %s", call_sid, event.id, exc or "timed out")
                return False
            self.results.labels("played" if played else "cut").inc()
            return played

        return whisper

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for legs in self._legs.values():
            legs.close()
        self._legs.clear()


WHISPERS = web.AppKey("whispers", Whispers)


# --- Twilio ----------------------------------------------------------------------------------------


def _base_url(request: web.Request) -> str:
    proto = request.headers.get("X-Forwarded-Proto", request.scheme)
    return public_base(request.app[CONFIG].public_url, proto, request.host)


def _check_twilio_signature(request: web.Request, url: str, params: dict[str, str]) -> None:
    config = request.app[CONFIG]
    if not config.twilio_auth_token:
        return
    if not signature_valid(config.twilio_auth_token, url, params, request.headers.get("X-Twilio-Signature")):
        request.app[METRICS].signature_failures.inc()
        log.warning("refused %s %s: bad or missing X-Twilio-Signature", request.method, request.path)
        raise web.HTTPForbidden(text="invalid Twilio signature")


async def _signed_form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    params = {k: str(v) for k, v in form.items()}
    url = _base_url(request) + request.path_qs
    _check_twilio_signature(request, url, params)
    return params


async def twilio_voice(request: web.Request) -> web.Response:
    params = await _signed_form(request)
    app = request.app
    config = app[CONFIG]
    base = _base_url(request)
    stream_params = {"from": params.get("From", ""), "to": params.get("To", ""), "agent": config.agent_dial or ""}
    call_sid = params.get("CallSid", "")
    whispers = app[WHISPERS]
    if config.agent_dial and await whispers.wanted(app[STORE], config.agent_dial):
        # Coaching needs a conference: the customer joins it here, the agent is added over REST, and
        # the agent's participant-join (on /twilio/status) adds the whisper leg.
        caller_id = whispers.caller_id(params.get("To", ""))
        if caller_id is not None and TWILIO_CALL_SID.match(call_sid):
            conference = CONFERENCE_PREFIX + call_sid
            callback = base + "/twilio/status"
            if not config.whisper_caller_id:
                callback += "?" + urlencode({"caller": caller_id})
            twiml = conference_twiml(stream_url(base), stream_params, conference, callback)
            whispers.spawn(f"call {call_sid}: adding the agent",
                           whispers.add_agent(conference, call_sid, config.agent_dial, caller_id, callback))
            return web.Response(text=twiml, content_type="application/xml")
        log.warning("call %s: no audio whispers: set CARECOACH_WHISPER_CALLER_ID (the call's To %r is not a "
                    "+E164 number)", call_sid, params.get("To", ""))
    twiml = voice_twiml(stream_url(base), stream_params, config.agent_dial)
    return web.Response(text=twiml, content_type="application/xml")


_STATUS_FIELDS = ("CallStatus", "StreamEvent", "StreamName", "StreamSid", "StreamError", "CallDuration", "Timestamp",
                  "SequenceNumber", "Direction")
_CONFERENCE_FIELDS = ("StatusCallbackEvent", "ConferenceSid", "FriendlyName", "CallSid", "ParticipantLabel",
                      "Coaching", "Timestamp", "SequenceNumber", "ReasonConferenceEnded", "CallSidEndingConference")


async def twilio_status(request: web.Request) -> web.Response:
    params = await _signed_form(request)
    app = request.app
    customer = params.get("FriendlyName", "").removeprefix(CONFERENCE_PREFIX)
    if params.get("ConferenceSid") and params.get("FriendlyName", "").startswith(CONFERENCE_PREFIX) \
            and TWILIO_CALL_SID.match(customer):
        # One of our coaching conferences: recorded on the customer's call (conference-start/end carry
        # no CallSid; a participant's CallSid is kept in the event).
        keep = {k: v for k, v in params.items() if k in _CONFERENCE_FIELDS}
        await app[STORE].add_status_event(customer, utc_now(), keep)
        await _on_conference_event(request, params, customer)
        return web.Response(status=204)
    call_sid = params.get("CallSid", "")
    if not CALL_SID.match(call_sid):
        raise web.HTTPBadRequest(text="CallSid is required")
    keep = {k: v for k, v in params.items() if k in _STATUS_FIELDS}
    await app[STORE].add_status_event(call_sid, utc_now(), keep)
    return web.Response(status=204)


async def _on_conference_event(request: web.Request, params: dict[str, str], customer: str) -> None:
    """The agent's leg joined the customer's conference: add the coaching leg that whispers to it."""
    whispers = request.app[WHISPERS]
    leg = params.get("CallSid", "")
    if (params.get("StatusCallbackEvent") != "participant-join" or not whispers.available
            or not TWILIO_CALL_SID.match(leg) or leg == customer or params.get("Coaching") == "true"
            or params.get("ParticipantLabel", AGENT_LABEL) != AGENT_LABEL):
        return
    conference_sid = params["ConferenceSid"]
    caller_id = whispers.config.whisper_caller_id or request.query.get("caller", "")
    if not E164.match(caller_id):
        whispers.errors.labels("coaching_leg").inc()
        log.error("call %s: no audio whispers: no caller ID for the whisper leg (set CARECOACH_WHISPER_CALLER_ID)",
                  customer)
        return
    whispers.start_coaching(conference_sid, leg, customer, caller_id)


async def twilio_whisper_voice(request: web.Request) -> web.Response:
    """The whisper TwiML App's Voice URL: the coaching leg `<Connect>`s its stream back to us."""
    params = await _signed_form(request)
    app = request.app

    def param(name: str) -> str:
        # Twilio passes the `app:AP…?…` custom parameters as request parameters.
        return params.get(name) or request.query.get(name, "")

    call_sid, agent_leg = param("call_sid"), param("agent_call_sid")
    if not app[WHISPERS].available or not TWILIO_CALL_SID.match(call_sid):
        # Hang up rather than fail: a failing webhook would be read out to the agent.
        log.warning("whisper leg %s: refused (whisper not configured or no valid call_sid)", params.get("CallSid"))
        response = VoiceResponse()
        response.hangup()
        return web.Response(text=str(response), content_type="application/xml")
    twiml = whisper_twiml(whisper_stream_url(_base_url(request)), {
        "call_sid": call_sid, "agent_call_sid": agent_leg if TWILIO_CALL_SID.match(agent_leg) else ""})
    return web.Response(text=twiml, content_type="application/xml")


async def twilio_whisper(request: web.Request) -> web.WebSocketResponse:
    """The coaching leg's bidirectional Media Stream: we speak prompts into the agent's ear on it."""
    app = request.app
    whispers = app[WHISPERS]
    if not whispers.available:
        raise web.HTTPNotFound(text="audio whispers are not configured")
    # Signed like /twilio/stream: over the URL the TwiML advertised, with no parameters.
    _check_twilio_signature(request, whisper_stream_url(_base_url(request)), {})
    if len(whispers.registry) >= app[CONFIG].max_calls:
        raise web.HTTPServiceUnavailable(text="too many whisper streams")
    ws = web.WebSocketResponse(max_msg_size=HARD_MESSAGE_LIMIT, heartbeat=30)
    await ws.prepare(request)
    channel = WhisperChannel(ws)
    await whispers.registry.serve(channel)
    log.info("whisper stream %s for call %s ended", channel.stream_sid, channel.coached_call_sid)
    await ws.close()
    return ws


def _classify_with(classifier: UtteranceClassifier) -> Callable[..., tuple[Phase, float]]:
    def classify(text: str, speaker: Speaker, context: Sequence[tuple[str, str]],
                 cues: AudioCueValues) -> tuple[Phase, float]:
        result = classifier.classify(text, speaker, context=context,
                                     cues=AudioCues(cues.loudness_ratio, cues.rate_ratio, cues.overlap))
        return result.phase, result.sentiment

    return classify


async def _open_session(request: web.Request, start: Start) -> CallSession:
    app = request.app
    config = app[CONFIG]
    if not CALL_SID.match(start.call_sid):
        raise FrameError("invalid callSid")
    params = start.parameters
    call = NewCall(start.call_sid, start.stream_sid, utc_now(), params.get("from", ""), params.get("to", ""),
                   params.get("agent", ""), "twilio")
    existing = await app[STORE].get_call(call.call_sid)
    first_seq = 1 + max((u["seq"] for u in existing["utterances"]), default=-1) if existing else 0
    recorder = Recorder(config.recordings_dir / call.call_sid) if config.recordings else None
    cards: tuple[Card, ...] = app[PLAYBOOK]
    whispers = app[WHISPERS]
    whisper = whispers.for_call(call.call_sid) if await whispers.wanted(app[STORE], call.agent) else None
    session = CallSession(
        call, engine=app[ENGINE], store=app[STORE], hub=app[HUB], metrics=app[METRICS],
        classify=_classify_with(app[CLASSIFIER]), redact=redact if config.redact_pii else None,
        recorder=recorder, coach=Coach(cards), whisper=whisper, endpoint_silence=config.endpoint_silence,
        wall_clock=utc_now)
    await session.start(first_seq)
    return session


async def twilio_stream(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    config = app[CONFIG]
    # Twilio signs the upgrade over the URL the TwiML advertised, with no parameters.
    _check_twilio_signature(request, stream_url(_base_url(request)), {})
    if len(app[SESSIONS]) >= config.max_calls:
        raise web.HTTPServiceUnavailable(text="too many calls in progress")
    ws = web.WebSocketResponse(max_msg_size=HARD_MESSAGE_LIMIT, heartbeat=30)
    await ws.prepare(request)
    session: CallSession | None = None
    stopped = False
    errors_before_start = 0
    metrics = app[METRICS]

    def reject(reason: str, detail: str) -> None:
        nonlocal errors_before_start
        if session is not None:
            session.count_error(reason)
            count = session.frame_errors
        else:
            metrics.frame_errors.labels(reason).inc()
            errors_before_start += 1
            count = errors_before_start
        if count <= 5 or count % 100 == 0:  # keep a flood of bad frames from flooding the log
            log.warning("stream %s: dropped a message (%s): %s [%d so far]",
                        session.call_sid if session else "(no start yet)", reason, detail, count)

    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                reject("binary", "binary frames are not part of the protocol")
                continue
            if msg.type != WSMsgType.TEXT:
                break
            if len(msg.data) > config.max_message_bytes:
                reject("oversized", f"{len(msg.data)} bytes > {config.max_message_bytes}")
                continue
            try:
                message = parse_message(msg.data)
            except FrameError as exc:
                reject("malformed", str(exc))
                continue
            match message:
                case Media():
                    if session is None:
                        reject("media_before_start", "media before start")
                    else:
                        session.on_media(message.speaker, message.timestamp_ms, message.payload)
                case Start():
                    if session is not None:
                        reject("duplicate_start", "a second start on one stream")
                        continue
                    if message.call_sid in app[SESSIONS]:
                        reject("duplicate_call", f"call {message.call_sid} is already streaming")
                        continue
                    try:
                        session = await _open_session(request, message)
                    except FrameError as exc:
                        reject("malformed", str(exc))
                        continue
                    app[SESSIONS][session.call_sid] = session
                    for _ in range(errors_before_start):
                        session.count_error("before_start")
                    log.info("call %s: stream %s started", session.call_sid, message.stream_sid)
                case Stop():
                    stopped = True
                    break
                case Dtmf():
                    log.info("call %s: DTMF from %s", session.call_sid if session else "?", message.speaker)
                case _:
                    pass  # connected, mark and unknown events need no action
    finally:
        if session is not None:
            status = "ended" if stopped else "interrupted"
            # Shielded: a cancelled handler (server shutdown) must still finalise what was heard.
            await asyncio.shield(_finish(app, session, status))
    await ws.close()
    return ws


async def _finish(app: web.Application, session: CallSession, status: Any) -> None:
    try:
        await session.finish(status)
    finally:
        app[SESSIONS].pop(session.call_sid, None)
        log.info("call %s: %s after %.1f s, %d utterances, %d bad frames", session.call_sid, status,
                 session.duration, len(session.utterances), session.frame_errors)


# --- JSON API ----------------------------------------------------------------------------------------


def _call_sid(request: web.Request) -> str:
    call_sid = request.match_info["call_sid"]
    if not CALL_SID.match(call_sid):
        raise web.HTTPNotFound(text='{"error": "unknown call"}', content_type="application/json")
    return call_sid


async def _get_call_or_404(request: web.Request) -> dict[str, Any]:
    call = await request.app[STORE].get_call(_call_sid(request))
    if call is None:
        raise web.HTTPNotFound(text='{"error": "unknown call"}', content_type="application/json")
    return call


async def api_calls(request: web.Request) -> web.Response:
    q = request.query
    try:
        limit = min(max(int(q.get("limit", "50")), 1), 500)
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "limit must be an integer"}',
                                 content_type="application/json") from None
    calls = await request.app[STORE].list_calls(
        status=q.get("status") or None, outcome=q.get("outcome") or None, agent=q.get("agent") or None,
        since=q.get("since") or None, q=q.get("q") or None, limit=limit)
    return web.json_response({"calls": calls})


async def api_call(request: web.Request) -> web.Response:
    return web.json_response(await _get_call_or_404(request))


async def api_outcome(request: web.Request) -> web.Response:
    call = await _get_call_or_404(request)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") from None
    disposition = body.get("disposition") if isinstance(body, dict) else None
    if disposition not in DISPOSITIONS:
        raise web.HTTPBadRequest(text=f'{{"error": "disposition must be one of {", ".join(DISPOSITIONS)}"}}',
                                 content_type="application/json")
    note = str(body.get("note", ""))[:2000]
    outcome = {"disposition": disposition, "source": "agent", "note": note}
    await request.app[STORE].update_call(call["call_sid"], outcome=outcome, disposition=disposition,
                                         outcome_source="agent")
    session = request.app[SESSIONS].get(call["call_sid"])
    at = session.duration if session else (call["duration"] or 0.0)
    request.app[HUB].publish({"type": "outcome", "call_sid": call["call_sid"], "at": round(at, 3), **outcome})
    return web.json_response(outcome)


async def api_recording(request: web.Request) -> web.StreamResponse:
    call = await _get_call_or_404(request)
    directory = request.app[CONFIG].recordings_dir / call["call_sid"]
    wav = directory / "recording.wav"
    if not wav.exists():
        # A live (or crashed) call still has raw tracks: join what there is so far.
        if not any((directory / f"{s}.raw").exists() for s in ("customer", "agent")):
            raise web.HTTPNotFound(text='{"error": "no recording for this call"}', content_type="application/json")
        wav = await asyncio.to_thread(build_wav, directory, directory / "partial.wav")
    return web.FileResponse(wav, headers={"Content-Type": "audio/wav"})


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


async def api_export(request: web.Request) -> web.Response:
    call = await _get_call_or_404(request)
    fmt = request.query.get("format", "json")
    if fmt == "json":
        return web.json_response(call, headers={
            "Content-Disposition": f'attachment; filename="{call["call_sid"]}.json"'})
    if fmt == "vtt":
        lines = ["WEBVTT", ""]
        for u in call["utterances"]:
            lines += [f"{u['seq']}", f"{_vtt_time(u['start'])} --> {_vtt_time(u['end'])}",
                      f"<v {u['speaker']}>[{u['phase']}] {u['text']}", ""]
        return web.Response(text="\n".join(lines), content_type="text/vtt", headers={
            "Content-Disposition": f'attachment; filename="{call["call_sid"]}.vtt"'})
    raise web.HTTPBadRequest(text='{"error": "format must be json or vtt"}', content_type="application/json")


def _agent(request: web.Request) -> str:
    agent = request.match_info["agent"]
    if not AGENT.match(agent):
        raise web.HTTPBadRequest(text='{"error": "invalid agent id"}', content_type="application/json")
    return agent


async def api_agent(request: web.Request) -> web.Response:
    agent = _agent(request)
    return web.json_response({"agent": agent, "whisper": await request.app[STORE].get_whisper(agent)})


async def api_agent_whisper(request: web.Request) -> web.Response:
    agent = _agent(request)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") from None
    enabled = body.get("enabled") if isinstance(body, dict) else None
    if not isinstance(enabled, bool):
        raise web.HTTPBadRequest(text='{"error": "body must be {\\"enabled\\": true or false}"}',
                                 content_type="application/json")
    await request.app[STORE].set_whisper(agent, enabled)
    log.info("agent %s: audio whispers %s", agent, "on" if enabled else "off")
    return web.json_response({"agent": agent, "whisper": enabled})


async def _live(request: web.Request, call_sid: str | None) -> web.WebSocketResponse:
    """Serve live events until either side closes the socket. The handler reads (to notice the client
    leaving); an owned task writes events as they are published."""
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    metrics = request.app[METRICS]
    subscription = request.app[HUB].subscribe(call_sid)
    metrics.live_subscribers.inc()

    async def send_events() -> None:
        async for event in subscription:
            await ws.send_json(event)
        if subscription.overflowed:
            await ws.close(code=1013, message=b"too slow: live events overflowed")

    sender = asyncio.get_running_loop().create_task(send_events())
    try:
        async for _ in ws:  # client messages carry nothing; reading is how we see the close
            pass
    finally:
        subscription.close()
        metrics.live_subscribers.dec()
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    return ws


async def api_live_call(request: web.Request) -> web.WebSocketResponse:
    return await _live(request, _call_sid(request))


async def api_live(request: web.Request) -> web.WebSocketResponse:
    # Every call's events: the supervisors' board, not an agent's.
    if request[ROLE] == "agent":
        raise web.HTTPForbidden(text='{"error": "the all-calls feed needs a supervisor or admin token"}',
                                content_type="application/json")
    return await _live(request, None)


# --- health ----------------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    engine_ready = request.app[ENGINE].ready
    database = await request.app[STORE].ping()
    body = {"ready": engine_ready and database, "engine": request.app[ENGINE].name, "model_loaded": engine_ready,
            "database": database, "active_calls": len(request.app[SESSIONS])}
    return web.json_response(body, status=200 if body["ready"] else 503)


async def metrics_handler(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), content_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"})


# --- lifecycle -------------------------------------------------------------------------------------


def build_app(config: Config, *, engine: SpeechEngine | None = None,
              synthesizer: Synthesizer | None = None) -> web.Application:
    """Build the service. A caller-supplied `engine` must already be started; the caller owns it (and a
    caller-supplied `synthesizer`, the speech engine of audio whispers)."""
    app = web.Application(middlewares=[access_control], client_max_size=64 * 1024)
    app[CONFIG] = config
    app[HUB] = LiveHub()
    app[METRICS] = Metrics()
    app[SESSIONS] = {}
    app[CLASSIFIER] = UtteranceClassifier()
    app[SYNTHESIZER] = synthesizer or Synthesizer()
    app[WHISPERS] = Whispers(config, app[METRICS], app[SYNTHESIZER])
    try:
        app[PLAYBOOK] = load_playbook(config.playbook)
    except PlaybookError as exc:
        raise ConfigError(f"CARECOACH_PLAYBOOK: {exc}") from None

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        store = CallStore(config.database)
        await store.open()
        stale = await store.interrupt_stale_calls(utc_now())
        if stale:
            log.warning("marked %d call(s) left live by a previous run as interrupted", stale)
        app[STORE] = store
        yield
        await store.close()

    try:
        own = None if engine is not None else select_engine(config.asr_engine, config.vosk_model,
                                                             config.models_dir)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
        if own is None:
            assert engine is not None
            app[ENGINE] = engine
            yield
            return
        await own.start()
        app[ENGINE] = own
        log.info("ASR engine %s ready", own.name)
        yield
        await own.aclose()

    async def sessions_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        # Shutdown: calls still streaming keep everything heard so far and end as interrupted.
        await asyncio.gather(*(_finish(app, s, "interrupted") for s in list(app[SESSIONS].values())),
                             return_exceptions=True)

    async def whisper_ctx(app: web.Application) -> AsyncIterator[None]:
        synth = app[SYNTHESIZER]
        if config.whisper_available:
            try:
                await synth.start()
                log.info("audio whispers ready (speech engine %s)", synth.backend)
            except TTSError as exc:
                log.error("audio whispers will be silent: the speech engine failed to start (%s)", exc)
        yield
        # After sessions_ctx's cleanup (reverse order): no call can start a whisper any more.
        await app[WHISPERS].aclose()
        if synthesizer is None:
            synth.close()

    app.cleanup_ctx.extend([store_ctx, engine_ctx, whisper_ctx, sessions_ctx])
    app.router.add_post("/twilio/voice", twilio_voice)
    app.router.add_post("/twilio/status", twilio_status)
    app.router.add_get("/twilio/stream", twilio_stream)
    app.router.add_post("/twilio/whisper/voice", twilio_whisper_voice)
    app.router.add_get("/twilio/whisper", twilio_whisper)
    app.router.add_get("/api/agents/{agent}", api_agent)
    app.router.add_put("/api/agents/{agent}/whisper", api_agent_whisper)
    app.router.add_get("/api/calls", api_calls)
    app.router.add_get("/api/calls/{call_sid}", api_call)
    app.router.add_post("/api/calls/{call_sid}/outcome", api_outcome)
    app.router.add_get("/api/calls/{call_sid}/recording.wav", api_recording)
    app.router.add_get("/api/calls/{call_sid}/export", api_export)
    app.router.add_get("/api/calls/{call_sid}/live", api_live_call)
    app.router.add_get("/api/live", api_live)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    pages.add_routes(app)
    return app


__all__ = ["CONFIG", "ENGINE", "HUB", "METRICS", "SESSIONS", "STORE", "StoreError", "build_app", "utc_now"]
