"""The aiohttp application and composition root: the only module that wires voice, dialog and prompts.

It owns the app's resources through `cleanup_ctx` (store, recogniser, live sessions), the Twilio
endpoints, the JSON API, live-event WebSockets, health/readiness/metrics, and access control.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from dialog.classify import AudioCues, UtteranceClassifier
from dialog.coach import Card, Coach
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

log = logging.getLogger("carecoach")

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", CallStore)
HUB = web.AppKey("hub", LiveHub)
ENGINE = web.AppKey("engine", SpeechEngine)
METRICS = web.AppKey("metrics", Metrics)
SESSIONS = web.AppKey("sessions", dict[str, CallSession])
CLASSIFIER = web.AppKey("classifier", UtteranceClassifier)
PLAYBOOK = web.AppKey("playbook", tuple[Card, ...])
ROLE = web.RequestKey("role", str)

#: aiohttp drops the socket above this; our own (smaller) limit drops only the message.
HARD_MESSAGE_LIMIT = 1024 * 1024
CALL_SID = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")


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
    config = request.app[CONFIG]
    twiml = voice_twiml(
        stream_url(_base_url(request)),
        {"from": params.get("From", ""), "to": params.get("To", ""), "agent": config.agent_dial or ""},
        config.agent_dial,
    )
    return web.Response(text=twiml, content_type="application/xml")


async def twilio_status(request: web.Request) -> web.Response:
    params = await _signed_form(request)
    call_sid = params.get("CallSid", "")
    if not CALL_SID.match(call_sid):
        raise web.HTTPBadRequest(text="CallSid is required")
    keep = {k: v for k, v in params.items() if k in (
        "CallStatus", "StreamEvent", "StreamName", "StreamSid", "StreamError", "CallDuration", "Timestamp",
        "SequenceNumber", "Direction")}
    await request.app[STORE].add_status_event(call_sid, utc_now(), keep)
    return web.Response(status=204)


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
    session = CallSession(
        call, engine=app[ENGINE], store=app[STORE], hub=app[HUB], metrics=app[METRICS],
        classify=_classify_with(app[CLASSIFIER]), redact=redact if config.redact_pii else None,
        recorder=recorder, coach=Coach(cards), endpoint_silence=config.endpoint_silence,
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


def build_app(config: Config, *, engine: SpeechEngine | None = None) -> web.Application:
    """Build the service. A caller-supplied `engine` must already be started; the caller owns it."""
    app = web.Application(middlewares=[access_control], client_max_size=64 * 1024)
    app[CONFIG] = config
    app[HUB] = LiveHub()
    app[METRICS] = Metrics()
    app[SESSIONS] = {}
    app[CLASSIFIER] = UtteranceClassifier()
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

    app.cleanup_ctx.extend([store_ctx, engine_ctx, sessions_ctx])
    app.router.add_post("/twilio/voice", twilio_voice)
    app.router.add_post("/twilio/status", twilio_status)
    app.router.add_get("/twilio/stream", twilio_stream)
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
