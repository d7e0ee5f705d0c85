"""The JSON API (CONTRACT §5), live-event sockets, health/readiness/metrics, and the access-control
middleware that guards the API and the pages with role tokens."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from dialog.phases import CALL_PHASES
from dialog.store import CALL_SORTS, StoreError
from dialog.types import DISPOSITIONS
from voice.config import Config, Role
from voice.ids import AGENT, CALL_SID
from voice.recording import build_wav
from voice.state import (
    CLASSIFIER,
    CONFIG,
    ENGINE,
    HUB,
    METRICS,
    ROLE,
    SESSIONS,
    STORE,
)

log = logging.getLogger("carecoach")

# --- access control ------------------------------------------------------------------------------


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip()
    return request.query.get("token") or request.cookies.get(TOKEN_COOKIE)


#: The agent a request's token belongs to (`agent/NAME:token`); '' for every other token and with no auth.
AGENT_ID = web.RequestKey("agent_id", str)
#: The HttpOnly cookie `/login` sets (`_token` reads it).
TOKEN_COOKIE = "carecoach_token"


def _role(config: Config, token: str | None) -> Role | None:
    if token is None:
        return None
    # Constant-time comparison against every configured token.
    found: Role | None = None
    for candidate, role in config.api_tokens.items():
        if hmac.compare_digest(candidate.encode(), token.encode()):
            found = role
    return found


def _cross_site(request: web.Request, token: str | None) -> bool:
    """A browser sends the sign-in cookie by itself, so a cookie-authenticated request from another site's page
    (a WebSocket to the live feed, a POST) is refused. SameSite=Strict already keeps the cookie off such
    requests in today's browsers; this holds even where it doesn't."""
    origin = request.headers.get("Origin")
    if origin is None or token is None or token != request.cookies.get(TOKEN_COOKIE):
        return False
    own = {request.host, urlsplit(request.app[CONFIG].public_url or "").netloc}
    return urlsplit(origin).netloc not in own


# Twilio authenticates with signatures, probes and scrapers carry no token, and static assets hold no data.
# /twilio/ and /audiohook check their carrier's own signatures (Twilio and Genesys can't send our tokens).
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/twilio/", "/audiohook", "/static/", "/login", "/logout")


@web.middleware
async def access_control(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    config = request.app[CONFIG]
    if config.auth_enabled and not request.path.startswith(OPEN_PATHS):
        token = _token(request)
        role = _role(config, token)
        if role is None:
            if not request.path.startswith("/api/") and request.method == "GET":
                # A person at a page: send them to sign in, and back here afterwards.
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
            raise web.HTTPUnauthorized(text='{"error": "a valid token is required"}',
                                       content_type="application/json")
        if _cross_site(request, token):
            raise web.HTTPForbidden(text='{"error": "cross-site request refused"}', content_type="application/json")
        request[ROLE] = role
        request[AGENT_ID] = config.token_agents.get(token or "", "")
    else:
        request[ROLE] = "admin"
        request[AGENT_ID] = ""
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


# --- JSON API ----------------------------------------------------------------------------------------


def _call_sid(request: web.Request) -> str:
    call_sid = request.match_info["call_sid"]
    if not CALL_SID.match(call_sid):
        raise web.HTTPNotFound(text='{"error": "unknown call"}', content_type="application/json")
    return call_sid


async def _get_call_or_404(request: web.Request) -> dict[str, Any]:
    call = await request.app[STORE].get_call(_call_sid(request))
    # Another agent's call is "unknown" to an agent: its existence is not theirs to learn either.
    if call is None or (request[AGENT_ID] and call["agent"] != request[AGENT_ID]):
        raise web.HTTPNotFound(text='{"error": "unknown call"}', content_type="application/json")
    return call


async def call_owner(request: web.Request, call_sid: str) -> str | None:
    """The agent of a call, live or stored; None if there is no such call."""
    session = request.app[SESSIONS].get(call_sid)
    return session.call.agent if session is not None else await request.app[STORE].call_agent(call_sid)


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(request.query.get(name, str(default))), low), high)
    except ValueError:
        raise web.HTTPBadRequest(text=f'{{"error": "{name} must be an integer"}}',
                                 content_type="application/json") from None


async def api_calls(request: web.Request) -> web.Response:
    q = request.query
    limit = _int_param(request, "limit", 50, 1, 500)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    sort = q.get("sort") or "newest"
    if sort not in CALL_SORTS:
        raise web.HTTPBadRequest(text=f'{{"error": "sort must be one of {", ".join(CALL_SORTS)}"}}',
                                 content_type="application/json")
    phase = q.get("phase") or None
    if phase is not None and phase not in CALL_PHASES:
        raise web.HTTPBadRequest(text=f'{{"error": "phase must be one of {", ".join(CALL_PHASES)}"}}',
                                 content_type="application/json")
    # An agent's token lists that agent's calls, whatever `agent=` says.
    agent = request[AGENT_ID] or q.get("agent") or None
    calls, total = await request.app[STORE].search_calls(
        status=q.get("status") or None, outcome=q.get("outcome") or None, agent=agent,
        since=q.get("since") or None, until=q.get("until") or None, q=q.get("q") or None,
        phase=phase, sort=sort, limit=limit, offset=offset)
    return web.json_response({"calls": calls, "total": total, "offset": offset, "limit": limit})


async def api_call(request: web.Request) -> web.Response:
    call = await _get_call_or_404(request)
    if request.query.get("sentiment") == "1":
        # `?sentiment=1` adds each customer utterance's sentiment (as live `utterance` events carry it), for the
        # console's trend; scored off the event loop, since a long call has hundreds of lines.
        classifier = request.app[CLASSIFIER]

        def score() -> None:
            for u in call["utterances"]:
                if u["speaker"] == "customer":
                    u["sentiment"] = round(classifier.classify(u["text"], "customer").sentiment, 3)

        await asyncio.to_thread(score)
    return web.json_response(call)


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
    wav = await asyncio.to_thread(_recording_file, directory)  # file system calls stay off the loop
    if wav is None:
        raise web.HTTPNotFound(text='{"error": "no recording for this call"}', content_type="application/json")
    return web.FileResponse(wav, headers={"Content-Type": "audio/wav"})


def _recording_file(directory: Path) -> Path | None:
    """The call's WAV; for a live (or crashed) call, one joined from the raw tracks so far; None if neither."""
    wav = directory / "recording.wav"
    if wav.exists():
        return wav
    if not any((directory / f"{s}.raw").exists() for s in ("customer", "agent")):
        return None
    return build_wav(directory, directory / "partial.wav")


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
    if request[AGENT_ID] and agent != request[AGENT_ID]:
        raise web.HTTPForbidden(text='{"error": "an agent token can only read and change its own settings"}',
                                content_type="application/json")
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


async def _live(request: web.Request, call_sid: str | None,
                allowed: Callable[[dict[str, Any]], Awaitable[bool]] | None = None) -> web.WebSocketResponse:
    """Serve live events (those `allowed` lets through) until either side closes the socket. The handler
    reads (to notice the client leaving); an owned task writes events as they are published."""
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    metrics = request.app[METRICS]
    classifier = request.app[CLASSIFIER]
    subscription = request.app[HUB].subscribe(call_sid)
    metrics.live_subscribers.inc()

    async def send_events() -> None:
        async for event in subscription:
            if allowed is not None and not await allowed(event):
                continue
            if event["type"] == "utterance" and "sentiment" not in event:
                # For the pages' sentiment trend. The event dict is shared by every subscriber, so the
                # first one to send it scores it (VADER, a fraction of a millisecond) for all.
                event["sentiment"] = round(classifier.classify(event["text"], event["speaker"]).sentiment, 3)
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
    call_sid = _call_sid(request)
    if request[AGENT_ID] and await call_owner(request, call_sid) != request[AGENT_ID]:
        raise web.HTTPNotFound(text='{"error": "unknown call"}', content_type="application/json")
    return await _live(request, call_sid)


async def api_live(request: web.Request) -> web.WebSocketResponse:
    # Every call's events: the supervisors' board. An agent with an identity gets its own calls' events
    # (its console); an agent token without one gets nothing.
    agent = request[AGENT_ID]
    if request[ROLE] == "agent" and not agent:
        raise web.HTTPForbidden(text='{"error": "the all-calls feed needs a supervisor or admin token"}',
                                content_type="application/json")
    if not agent:
        return await _live(request, None)
    owners: dict[str, str | None] = {}

    async def own_call(event: dict[str, Any]) -> bool:
        sid = str(event.get("call_sid", ""))
        if event["type"] == "call_started":
            owners[sid] = str(event.get("agent", ""))
        elif sid not in owners:
            try:
                owners[sid] = await call_owner(request, sid)
            except StoreError as exc:
                # Unknown for now (not cached): skip this event rather than end the feed, whose sender
                # task would otherwise die while the socket stays open.
                request.app[METRICS].count_db_error(exc)
                return False
        return owners[sid] == agent

    return await _live(request, None, own_call)


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



def add_routes(app: web.Application) -> None:
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
