"""The JSON API (CONTRACT §5), live-event sockets, health/readiness/metrics, and the access-control
middleware that guards the API and the pages with role tokens."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dialog.types import DISPOSITIONS
from voice.config import Config, Role
from voice.ids import AGENT, CALL_SID
from voice.recording import build_wav
from voice.state import (
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
