"""Twilio's side of the service: `/twilio/voice` TwiML, status and conference callbacks, the Media
Stream socket that feeds each call's session, and the whisper leg's webhook and socket. Every request
is checked against `X-Twilio-Signature` when an auth token is configured."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from aiohttp import WSMsgType, web
from twilio.twiml.voice_response import VoiceResponse

from dialog.types import CallStatus, NewCall
from voice.calls import CallRefused, StreamErrors, at_capacity, finish_shielded, open_session
from voice.ids import CALL_SID, E164, TWILIO_CALL_SID
from voice.logs import CALL_SID as CALL_SID_LOG
from voice.logs import bind_call
from voice.session import CallSession
from voice.state import (
    CALL_SOCKETS,
    CONFIG,
    HARD_MESSAGE_LIMIT,
    METRICS,
    STORE,
    WHISPERS,
    utc_now,
)
from voice.twilio import (
    Dtmf,
    FrameError,
    Media,
    Start,
    Stop,
    conference_twiml,
    parse_message,
    public_base,
    signature_valid,
    stream_url,
    voice_twiml,
)
from voice.whisper import (
    WhisperChannel,
    whisper_stream_url,
    whisper_twiml,
)
from voice.whispers import AGENT_LABEL, CONFERENCE_PREFIX

log = logging.getLogger("carecoach")

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
    app[CALL_SOCKETS].add(ws)  # the coaching leg is a call too: a shutdown closes it like the others
    channel = WhisperChannel(ws)
    await whispers.registry.serve(channel)
    log.info("whisper stream %s for call %s ended", channel.stream_sid, channel.coached_call_sid)
    await ws.close()
    return ws


async def _open_session(request: web.Request, start: Start) -> CallSession:
    params = start.parameters
    call = NewCall(start.call_sid, start.stream_sid, utc_now(), params.get("from", ""), params.get("to", ""),
                   params.get("agent", ""), "twilio")
    return await open_session(request.app, call)


async def twilio_stream(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    config = app[CONFIG]
    # Twilio signs the upgrade over the URL the TwiML advertised, with no parameters.
    _check_twilio_signature(request, stream_url(_base_url(request)), {})
    if at_capacity(app):
        raise web.HTTPServiceUnavailable(text="too many calls in progress")
    ws = web.WebSocketResponse(max_msg_size=HARD_MESSAGE_LIMIT, heartbeat=30)
    await ws.prepare(request)
    app[CALL_SOCKETS].add(ws)
    session: CallSession | None = None
    stopped = False
    errors = StreamErrors(app[METRICS], "stream")
    reject = errors.reject

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
                    # Every log line of this handler and of the tasks the session starts carries the call.
                    bound = bind_call(message.call_sid)
                    try:
                        session = await _open_session(request, message)
                    except CallRefused as exc:
                        CALL_SID_LOG.reset(bound)
                        if exc.reason == "database":
                            # Nothing could be kept: say so once and let the stream go (the phone call itself
                            # goes on; /readyz already reports the database down so new calls go elsewhere).
                            log.error("%s", exc)
                            break
                        reject(exc.reason, str(exc))
                        continue
                    errors.attach(session)
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
            status: CallStatus = "ended" if stopped else "interrupted"
            await finish_shielded(app, session, status)
    await ws.close()
    return ws


def add_routes(app: web.Application) -> None:
    app.router.add_post("/twilio/voice", twilio_voice)
    app.router.add_post("/twilio/status", twilio_status)
    app.router.add_get("/twilio/stream", twilio_stream)
    app.router.add_post("/twilio/whisper/voice", twilio_whisper_voice)
    app.router.add_get("/twilio/whisper", twilio_whisper)
