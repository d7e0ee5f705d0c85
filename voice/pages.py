"""Server-rendered pages: sign-in, the agent console, the supervisors' live board, the call list and the
replay page. Plain HTML plus small vanilla JS (`voice/static/`) over the JSON API and the live sockets; no
build step, no inline script (the CSP forbids it).

The pages carry no call data of their own: what a visitor may see is decided by the API they read, under
the access-control middleware in `voice.api` (which sends a visitor without a valid token to `/login`).
`/login` checks a token and keeps it in an HttpOnly, SameSite=Strict cookie, so page scripts never hold it.
"""

from __future__ import annotations

import html
import re
from importlib import resources

from aiohttp import web

from dialog.store import CALL_SORTS
from dialog.types import DISPOSITIONS
from voice.api import AGENT_ID, TOKEN_COOKIE, _role
from voice.ids import AGENT, CALL_SID
from voice.state import CONFIG, ROLE

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; style-src 'self' 'unsafe-inline';"
                               " connect-src 'self' ws: wss:; frame-ancestors 'none'; form-action 'self';"
                               " base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: How long a sign-in lasts: one working shift.
SESSION_SECONDS = 12 * 3600
#: The live board's default "long venting" threshold, in call seconds (`/live?venting=N` changes it).
LONG_VENTING = 30


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _nav(request: web.Request) -> str:
    links = [("/console", "Console"), ("/calls", "Calls")]
    if request.get(ROLE) in ("supervisor", "admin"):
        links.insert(1, ("/live", "Live board"))
    items = "".join(f'<a href="{href}"{" class=active" if request.path == href else ""}>{label}</a>'
                    for href, label in links)
    who = ""
    if request.app[CONFIG].auth_enabled and ROLE in request:
        agent = request.get(AGENT_ID) or ""
        who = (f'<span class="who">{_e(request[ROLE])}{" · " + _e(agent) if agent else ""}</span>'
               '<form method="post" action="/logout"><button>Sign out</button></form>')
    return f'<nav>{items}</nav><span class="spacer"></span>{who}'


def _page(request: web.Request, title: str, body: str, script: str | None, status: int = 200,
          nav: bool = True) -> web.Response:
    scripts = f'<script src="/static/common.js"></script><script src="/static/{script}"></script>' if script else ""
    menu = _nav(request) if nav else ""
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{_e(title)} · carecoach</title><link rel="stylesheet" href="/static/app.css"></head>
<body><header><a href="/calls" class="brand">carecoach</a><span class="title">{_e(title)}</span>{menu}</header>
<main>{body}</main>{scripts}</body></html>"""
    return web.Response(text=document, content_type="text/html", headers=SECURITY_HEADERS, status=status)


def _safe_next(target: str) -> str:
    # Only our own paths: "//host" and "/\\host" would send a fresh sign-in to someone else's site, and
    # browsers drop tabs and newlines from URLs, so "/\t/host" is "//host" too: any control character or
    # backslash refuses the target.
    own = target.startswith("/") and not target.startswith("//") \
        and not any(c == "\\" or ord(c) < 0x20 or ord(c) == 0x7f for c in target)
    return target if own else "/console"


# --- sign-in -------------------------------------------------------------------------------------------


def _login_form(request: web.Request, target: str, error: str = "", status: int = 200) -> web.Response:
    if not request.app[CONFIG].auth_enabled:
        body = ('<section class="card narrow"><h2>Sign in</h2><p>No API tokens are configured, so the pages are'
                ' open on this (loopback) address.</p><p><a href="/console">Go to the console</a></p></section>')
        return _page(request, "Sign in", body, None, status, nav=False)
    message = f'<p class="error" role="alert">{_e(error)}</p>' if error else ""
    body = (f'<section class="card narrow"><h2>Sign in</h2>{message}'
            '<form method="post" action="/login" id="login">'
            f'<input type="hidden" name="next" value="{_e(target)}">'
            '<label for="token">Access token</label>'
            '<input type="password" id="token" name="token" autocomplete="current-password" required autofocus>'
            '<button type="submit">Sign in</button></form>'
            '<p class="muted">Your administrator gives you a token. It is kept in a cookie scripts cannot read,'
            ' until you sign out.</p></section>')
    return _page(request, "Sign in", body, None, status, nav=False)


async def login_page(request: web.Request) -> web.Response:
    return _login_form(request, _safe_next(request.query.get("next", "/console")))


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    target = _safe_next(str(form.get("next", "/console")))
    token = str(form.get("token", "")).strip()
    if not request.app[CONFIG].auth_enabled:
        raise web.HTTPSeeOther(target)
    if _role(request.app[CONFIG], token) is None:
        return _login_form(request, target, "That token is not valid.", status=401)
    response = web.HTTPSeeOther(target)
    # Secure whenever the service is reached over HTTPS, directly or through a TLS-terminating proxy.
    public = request.app[CONFIG].public_url or ""
    response.set_cookie(TOKEN_COOKIE, token, max_age=SESSION_SECONDS, path="/", httponly=True,
                        samesite="Strict", secure=request.secure or public.startswith("https://"))
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(TOKEN_COOKIE, path="/")
    raise response


# --- pages ---------------------------------------------------------------------------------------------


def _query_id(request: web.Request, name: str, pattern: re.Pattern[str]) -> str:
    value = request.query.get(name, "")
    return value if pattern.match(value) else ""


async def console_page(request: web.Request) -> web.Response:
    # An agent's console follows that agent's calls; a supervisor may pick an agent or one call.
    agent = request[AGENT_ID] or _query_id(request, "agent", AGENT)
    call_sid = _query_id(request, "call", CALL_SID)
    buttons = "".join(f'<button type="button" data-disposition="{d}">{d.replace("_", " ")}</button>'
                      for d in DISPOSITIONS)
    body = (f'<section id="console" data-agent="{_e(agent)}" data-call="{_e(call_sid)}">'
            '<div class="bar"><span id="conn" class="conn">connecting…</span><span id="callinfo" class="muted">'
            'waiting for a call…</span><span class="spacer"></span><span class="label">phase</span>'
            '<span id="phase" class="pill">—</span>'
            '<label class="toggle"><input type="checkbox" id="whisper" disabled> audio whispers</label></div>'
            '<div class="console-grid"><div class="pane"><div class="lanes-head"><span>Customer</span>'
            '<span>Agent</span></div><ol id="lanes"></ol></div>'
            '<aside><div id="prompt-card" class="prompt-card empty"><div class="prompt-text">No prompt yet.</div>'
            '</div><h3>Customer sentiment</h3><div id="trend" class="trend" aria-label="customer sentiment">'
            '</div><h3>Outcome</h3><div id="outcome-buttons" class="buttons">' + buttons + '</div>'
            '<div id="outcome-status" class="muted"></div><h3>Earlier prompts</h3><ol id="prompt-history"></ol>'
            '</aside></div></section>')
    return _page(request, "Agent console", body, "console.js")


async def live_page(request: web.Request) -> web.Response:
    if request[ROLE] == "agent":
        return _page(request, "Live board", '<section class="card narrow"><p>The live board is for supervisors.'
                     ' <a href="/console">Open your console</a>.</p></section>', None, status=403)
    try:
        venting = max(5, min(int(request.query.get("venting", LONG_VENTING)), 3600))
    except ValueError:
        venting = LONG_VENTING
    body = (f'<section id="board" data-venting="{venting}"><div class="bar"><span id="conn" class="conn">'
            'connecting…</span><span id="count" class="muted"></span></div><div class="board-grid">'
            '<table id="live"><thead><tr><th>Call</th><th>Agent</th><th>Elapsed</th><th>Phase</th>'
            '<th>Sentiment</th><th>Last prompt</th></tr></thead><tbody></tbody></table>'
            '<aside><h3>Alerts</h3><ol id="alerts"><li class="muted none">No alerts.</li></ol></aside></div>'
            '</section>')
    return _page(request, "Live board", body, "live.js")


async def calls_page(request: web.Request) -> web.Response:
    agent_field = ('<input name="agent" placeholder="agent">' if not request[AGENT_ID] else "")
    outcomes = "".join(f"<option value=\"{d}\">{d.replace('_', ' ')}</option>" for d in DISPOSITIONS)
    phases = "".join(f"<option>{p}</option>" for p in ("venting", "question", "resolution", "closing", "opening"))
    sorts = "".join(f"<option>{s}</option>" for s in CALL_SORTS)
    body = ('<form id="filters"><input name="q" type="search" placeholder="search transcripts, call id, agent">'
            '<select name="status"><option value="">any status</option><option>live</option>'
            '<option>ended</option><option>interrupted</option></select>'
            f'<select name="outcome"><option value="">any outcome</option>{outcomes}</select>'
            f'<select name="phase"><option value="">any phase</option>{phases}</select>{agent_field}'
            '<label>from <input name="since" type="date"></label><label>to <input name="until" type="date"></label>'
            f'<select name="sort">{sorts}</select><button>Search</button></form>'
            '<table id="calls"><thead><tr><th>Started</th><th>Call</th><th>From</th><th>Agent</th><th>Status</th>'
            '<th>Duration</th><th>Phases</th><th>Outcome</th></tr></thead><tbody></tbody></table>'
            '<div class="pager"><button type="button" id="prev">← newer</button><span id="range" class="muted">'
            '</span><button type="button" id="next">older →</button></div>')
    return _page(request, "Calls", body, "calls.js")


async def replay_page(request: web.Request) -> web.Response:
    call_sid = request.match_info["call_sid"]
    body = (f'<section id="replay" data-call-sid="{_e(call_sid)}">'
            '<div id="summary"></div><audio id="audio" controls preload="metadata"></audio>'
            '<p id="no-recording" class="notice" hidden>No recording for this call (recordings are off, or none'
            ' was made). The transcript and timeline are below.</p>'
            '<div id="timeline"><div id="playhead"></div></div><div id="legend"></div>'
            '<div class="replay-grid"><div><h3>Transcript</h3><ol id="transcript"></ol></div>'
            '<aside><h3>Outcome</h3><div id="outcome"></div><h3>Metrics</h3><dl id="metrics"></dl>'
            '<h3>Prompts <span id="adherence" class="muted"></span></h3><ol id="prompts"></ol>'
            '<h3>Export</h3><p id="exports"></p></aside></div></section>')
    return _page(request, f"Call {call_sid}", body, "replay.js")


async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/calls" + (f"?{request.query_string}" if request.query_string else ""))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/console", console_page)
    app.router.add_get("/live", live_page)
    app.router.add_get("/calls", calls_page)
    app.router.add_get("/calls/{call_sid}", replay_page)
    app.router.add_static("/static", str(resources.files("voice") / "static"))
