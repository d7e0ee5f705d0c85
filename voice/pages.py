"""Server-rendered pages: the call list and the replay page. Plain HTML plus small vanilla JS that
reads the JSON API; no build step. The pages carry no data of their own, so access control is the
API's (the middleware in `voice.app` guards both)."""

from __future__ import annotations

import html
from importlib import resources

from aiohttp import web

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; style-src 'self' 'unsafe-inline';"
                               " connect-src 'self' ws: wss:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _page(title: str, body: str, script: str) -> web.Response:
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{html.escape(title)} · carecoach</title><link rel="stylesheet" href="/static/app.css"></head>
<body><header><a href="/calls" class="brand">carecoach</a><span>{html.escape(title)}</span></header>
<main>{body}</main><script src="/static/{script}"></script></body></html>"""
    return web.Response(text=document, content_type="text/html", headers=SECURITY_HEADERS)


async def calls_page(request: web.Request) -> web.Response:
    return _page("Calls", '<form id="filters"><input name="q" placeholder="search the transcripts">'
                          '<select name="status"><option value="">any status</option><option>live</option>'
                          '<option>ended</option><option>interrupted</option></select>'
                          '<button>Search</button></form><table id="calls"><thead><tr><th>Started</th>'
                          '<th>Call</th><th>From</th><th>Agent</th><th>Status</th><th>Duration</th>'
                          '<th>Outcome</th></tr></thead><tbody></tbody></table>', "calls.js")


async def replay_page(request: web.Request) -> web.Response:
    call_sid = request.match_info["call_sid"]
    body = (f'<section id="replay" data-call-sid="{html.escape(call_sid)}">'
            '<div id="summary"></div><audio id="audio" controls preload="metadata"></audio>'
            '<div id="timeline"></div><div id="legend"></div><h3>Prompts</h3><ol id="prompts"></ol>'
            '<h3>Transcript</h3><ol id="transcript"></ol></section>')
    return _page(f"Call {call_sid}", body, "replay.js")


async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/calls" + (f"?{request.query_string}" if request.query_string else ""))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/calls", calls_page)
    app.router.add_get("/calls/{call_sid}", replay_page)
    app.router.add_static("/static", str(resources.files("voice") / "static"))
