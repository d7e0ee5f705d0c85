"""The pages' server side, over real servers and real stores: sign-in with an HttpOnly cookie, redirects,
agent identities (`agent/NAME:token`) scoping the API and the live feeds, the call list's search/paging
queries (on SQLite and PostgreSQL), and data retention. What the pages do in a browser is in
tests/test_browser.py."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dialog.store import CallStore
from dialog.types import NewCall, Utterance
from tests.conftest import ServerFactory, ws_url
from voice.config import Config, ConfigError, load_config
from voice.metrics import Metrics
from voice.pages import _safe_next
from voice.retention import purge_expired, retention_ctx
from voice.simulate import stream_call
from voice.state import CONFIG, METRICS, STORE

TOKENS = "supervisor:sup-token,agent/alice:alice-token,agent/client:bob:bob-token,agent:plain-agent"


async def fetch(server: TestServer, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as client, client.request(method, server.make_url(path), **kwargs) as r:
        return r.status, dict(r.headers), (await r.read()).decode("utf-8", "replace")


def bearer(token: str) -> dict[str, dict[str, str]]:
    return {"headers": {"Authorization": f"Bearer {token}"}}


# --- configuration ------------------------------------------------------------------------------------


def test_tokens_may_name_their_agent_and_the_old_form_still_works() -> None:
    config = load_config({"CARECOACH_API_TOKENS": TOKENS})
    assert config.api_tokens == {"sup-token": "supervisor", "alice-token": "agent", "bob-token": "agent",
                                 "plain-agent": "agent"}
    assert config.token_agents == {"alice-token": "alice", "bob-token": "client:bob"}
    for bad in ("agent/:tok", "agent/alice:", "agent/bad name:tok", "agent/alice"):
        with pytest.raises(ConfigError) as error:
            load_config({"CARECOACH_API_TOKENS": bad})
        assert "agent/NAME:token" in str(error.value) and "tok" not in str(error.value).split("entry")[0]


def test_retention_days_setting() -> None:
    assert load_config({}).retention_days is None
    assert load_config({"CARECOACH_RETENTION_DAYS": "90"}).retention_days == 90
    assert load_config({"CARECOACH_RETENTION_DAYS": "off"}).retention_days is None
    for bad in ("-3", "ninety", "1.5"):
        with pytest.raises(ConfigError, match="CARECOACH_RETENTION_DAYS"):
            load_config({"CARECOACH_RETENTION_DAYS": bad})


# --- sign-in --------------------------------------------------------------------------------------------


async def test_pages_send_visitors_without_a_token_to_sign_in_and_the_cookie_lets_them_back(
        make_server: ServerFactory) -> None:
    server = await make_server(api_tokens={"sup-token": "supervisor"})
    for page in ("/console", "/live", "/calls", "/calls/CA1?x=1"):
        status, headers, _ = await fetch(server, "GET", page, allow_redirects=False)
        assert status == 303, page
        location = urlsplit(headers["Location"])
        assert location.path == "/login" and parse_qs(location.query)["next"] == [page]
    status, _, text = await fetch(server, "GET", "/login?next=%2Flive")
    assert status == 200 and 'name="next" value="/live"' in text and 'type="password"' in text
    assert (await fetch(server, "GET", "/api/calls"))[0] == 401  # the API answers, it doesn't redirect

    # unsafe=True: aiohttp's jar otherwise ignores cookies from an IP address (browsers keep them).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.post(server.make_url("/login"), data={"token": "wrong", "next": "/live"},
                               allow_redirects=False) as r:
            assert r.status == 401 and "not valid" in await r.text()
            assert "carecoach_token" not in r.cookies
        async with client.post(server.make_url("/login"), data={"token": "sup-token", "next": "/live"},
                               allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/live"
            cookie = r.headers["Set-Cookie"]
            assert "carecoach_token=sup-token" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # The cookie now opens pages, the API and the live socket.
        async with client.get(server.make_url("/live")) as r:
            assert r.status == 200 and "live.js" in await r.text()
        async with client.get(server.make_url("/api/calls")) as r:
            assert r.status == 200
        async with client.ws_connect(ws_url(server, "/api/live")) as ws:
            assert not ws.closed
        # Another site's page can't ride on the cookie (SameSite aside): its Origin gives it away.
        evil = {"Origin": "http://evil.example"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(ws_url(server, "/api/live"), headers=evil)
        assert refused.value.status == 403
        async with client.post(server.make_url("/api/calls/CA1/outcome"), json={"disposition": "resolved"},
                               headers=evil) as r:
            assert r.status == 403
        own = {"Origin": str(server.make_url("")).rstrip("/")}
        async with client.ws_connect(ws_url(server, "/api/live"), headers=own) as ws:
            assert not ws.closed
        async with client.post(server.make_url("/logout"), allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/login"
        async with client.get(server.make_url("/calls"), allow_redirects=False) as r:
            assert r.status == 303

    # Only our own paths are followed after sign-in.
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        status, headers, _ = await fetch(server, "POST", "/login", data={"token": "sup-token", "next": evil},
                                         allow_redirects=False)
        assert status == 303 and headers["Location"] == "/console", evil


async def test_every_page_renders_with_strict_headers(make_server: ServerFactory) -> None:
    server = await make_server()
    for page, script in (("/console", "console.js"), ("/live", "live.js"), ("/calls", "calls.js"),
                         ("/calls/CA1", "replay.js"), ("/login", None)):
        status, headers, text = await fetch(server, "GET", page)
        assert status == 200, page
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src" not in csp  # scripts: same origin only
        assert not re.search(r"<script(?![^>]*\bsrc=)", text)  # no inline script anywhere
        if script:
            assert f'src="/static/{script}"' in text and 'src="/static/common.js"' in text
    # Values echoed from the URL are escaped (the replay page echoes its path's call id unvalidated).
    _, _, text = await fetch(server, "GET", "/calls/%22%3E%3Cb%3Ex")
    assert "&quot;&gt;&lt;b&gt;x" in text and '"><b>' not in text
    # Query values that aren't ids are dropped before they reach the page.
    _, _, text = await fetch(server, "GET", '/console?call="><b>x&agent=<i>')
    assert "<b>" not in text and "<i>" not in text


def test_sign_in_only_returns_to_our_own_paths() -> None:
    assert _safe_next("/calls?q=refund") == "/calls?q=refund"
    # "//host", "/\\host" and, once a browser drops the tab or newline, "/\t/host" all leave the site.
    for target in ("//evil.example", "/\\evil.example", "/\t/evil.example", "/\n/evil.example", "https://evil.example"):
        assert _safe_next(target) == "/console", target


# --- agent identities ------------------------------------------------------------------------------------


async def stream(server: TestServer, samples: np.ndarray, agent: str, **kwargs: Any) -> str:
    call = await stream_call(samples, ws_url(server, "/twilio/stream"), speed=0, parameters={"agent": agent},
                             **kwargs)
    return call.call_sid


async def test_an_agent_token_sees_only_that_agents_calls(make_server: ServerFactory,
                                                          calm_call: tuple[np.ndarray, Any]) -> None:
    server = await make_server(api_tokens=load_config({"CARECOACH_API_TOKENS": TOKENS}).api_tokens,
                               token_agents=load_config({"CARECOACH_API_TOKENS": TOKENS}).token_agents)
    samples = calm_call[0][: 8000 * 3]
    alice_call = await stream(server, samples, "alice")
    bob_call = await stream(server, samples, "client:bob")

    async def listed(token: str, query: str = "") -> set[str]:
        status, _, text = await fetch(server, "GET", "/api/calls" + query, **bearer(token))
        assert status == 200
        return {c["call_sid"] for c in json.loads(text)["calls"]}

    assert await listed("sup-token") == {alice_call, bob_call}
    assert await listed("alice-token") == {alice_call}
    assert await listed("alice-token", "?agent=client:bob") == {alice_call}  # no peeking through the filter
    assert await listed("bob-token") == {bob_call}
    assert await listed("plain-agent") == {alice_call, bob_call}  # `agent:token` has no identity: as before

    for path in ("", "/export?format=json", "/export?format=vtt", "/recording.wav"):
        assert (await fetch(server, "GET", f"/api/calls/{bob_call}{path}", **bearer("alice-token")))[0] == 404
        assert (await fetch(server, "GET", f"/api/calls/{alice_call}{path}", **bearer("alice-token")))[0] == 200
    assert (await fetch(server, "POST", f"/api/calls/{bob_call}/outcome", json={"disposition": "resolved"},
                        **bearer("alice-token")))[0] == 404
    status, _, text = await fetch(server, "POST", f"/api/calls/{alice_call}/outcome",
                                  json={"disposition": "resolved"}, **bearer("alice-token"))
    assert status == 200 and json.loads(text)["source"] == "agent"
    # Whisper opt-in: an agent's own only.
    assert (await fetch(server, "PUT", "/api/agents/alice/whisper", json={"enabled": True},
                        **bearer("alice-token")))[0] == 200
    assert (await fetch(server, "PUT", "/api/agents/client:bob/whisper", json={"enabled": True},
                        **bearer("alice-token")))[0] == 403
    # The replay page itself is served; its data is not (the API said 404 above).
    assert (await fetch(server, "GET", f"/calls/{bob_call}?token=alice-token"))[0] == 200
    # The live board is for supervisors.
    assert (await fetch(server, "GET", "/live?token=alice-token"))[0] == 403
    assert (await fetch(server, "GET", "/live?token=sup-token"))[0] == 200

    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(ws_url(server, f"/api/calls/{bob_call}/live?token=alice-token"))
        assert refused.value.status == 404
        async with client.ws_connect(ws_url(server, f"/api/calls/{alice_call}/live?token=alice-token")):
            pass
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(ws_url(server, "/api/live?token=plain-agent"))
        assert refused.value.status == 403


async def collect_until_ended(ws: aiohttp.ClientWebSocketResponse, sids: set[str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    ended: set[str] = set()
    while not sids <= ended:
        event = await ws.receive_json()
        events.append(event)
        if event["type"] == "call_ended":
            ended.add(event["call_sid"])
    return events


async def test_an_agent_gets_its_own_calls_on_the_all_calls_feed(make_server: ServerFactory,
                                                                 calm_call: tuple[np.ndarray, Any]) -> None:
    config = load_config({"CARECOACH_API_TOKENS": TOKENS})
    server = await make_server(api_tokens=config.api_tokens, token_agents=config.token_agents)
    samples = calm_call[0][: 8000 * 12]
    async with aiohttp.ClientSession() as client, \
            client.ws_connect(ws_url(server, "/api/live?token=alice-token")) as alice, \
            client.ws_connect(ws_url(server, "/api/live?token=sup-token")) as supervisor:
        sids = await asyncio.gather(stream(server, samples, "alice"), stream(server, samples, "client:bob"))
        everything = await asyncio.wait_for(collect_until_ended(supervisor, set(sids)), 30)
        own = await asyncio.wait_for(collect_until_ended(alice, {sids[0]}), 30)
        # Both calls are over (the supervisor saw them end): anything of Bob's would be waiting by now.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(alice.receive(), 0.5)
    assert {e["call_sid"] for e in everything} == set(sids)
    assert {e["call_sid"] for e in own} == {sids[0]}
    assert own[0]["type"] == "call_started"
    assert own == [e for e in everything if e["call_sid"] == sids[0]]
    # Utterances carry the customer's sentiment for the pages' trend.
    customer = [e for e in own if e["type"] == "utterance" and e["speaker"] == "customer"]
    assert customer and all(-1.0 <= e["sentiment"] <= 1.0 for e in customer)
    status, _, text = await fetch(server, "GET", f"/api/calls/{sids[0]}?sentiment=1", **bearer("alice-token"))
    stored = [u for u in json.loads(text)["utterances"] if u["speaker"] == "customer"]
    assert status == 200 and [u["sentiment"] for u in stored] == [e["sentiment"] for e in customer]


# --- the call list's queries -------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CallStore]:
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    s = CallStore(url)
    await s.open()
    yield s
    await s.close()


def utterance(seq: int, text: str, speaker: str = "customer") -> Utterance:
    return Utterance(seq, speaker, float(seq), seq + 0.9, text, "other", 0.9)  # type: ignore[arg-type]


async def add_call(store: CallStore, sid: str, day: int, agent: str, text: str, duration: float,
                   phases: list[str], disposition: str | None = None, status: str = "ended") -> None:
    await store.create_call(NewCall(sid, "MZ" + sid, f"2026-11-{day:02d}T10:00:00Z", agent=agent))
    await store.append_utterances(sid, [utterance(0, text)])
    fields: dict[str, Any] = {"status": status, "duration": duration,
                              "phases": [{"phase": p, "start": 0.0, "end": 1.0} for p in phases]}
    if disposition:
        fields.update(disposition=disposition, outcome={"disposition": disposition, "source": "agent", "note": ""})
    await store.update_call(sid, **fields)


async def test_search_filters_sorts_and_pages(store: CallStore) -> None:
    await add_call(store, "CA1", 1, "alice", "My BILL is wrong 50%_off", 30.0, ["venting", "question"], "resolved")
    await add_call(store, "CA2", 2, "bob", "where is my parcel", 90.0, ["question"], "escalated")
    await add_call(store, "CA3", 3, "alice", "thanks bye", 10.0, ["closing"])
    await add_call(store, "CA4", 4, "bob", "the bill again", 60.0, ["opening", "venting"], status="live")

    async def sids(**kw: Any) -> list[str]:
        calls, _ = await store.search_calls(**kw)
        return [c["call_sid"] for c in calls]

    assert await sids() == ["CA4", "CA3", "CA2", "CA1"]
    assert await sids(sort="oldest") == ["CA1", "CA2", "CA3", "CA4"]
    assert await sids(sort="longest") == ["CA2", "CA4", "CA1", "CA3"]
    assert await sids(sort="shortest") == ["CA3", "CA1", "CA4", "CA2"]
    assert await sids(q="bill") == ["CA4", "CA1"]  # case-insensitive
    assert await sids(q="50%_") == ["CA1"] and await sids(q="%") == ["CA1"]  # wildcards are literal
    assert await sids(q="bob") == ["CA4", "CA2"]  # the agent
    assert await sids(q="ca3") == ["CA3"]  # the call id
    assert await sids(phase="venting") == ["CA4", "CA1"]
    assert await sids(phase="closing") == ["CA3"]
    assert await sids(outcome="escalated") == ["CA2"]
    assert await sids(agent="alice", status="ended") == ["CA3", "CA1"]
    assert await sids(since="2026-11-02", until="2026-11-04") == ["CA3", "CA2"]
    page, total = await store.search_calls(limit=2, offset=2)
    assert [c["call_sid"] for c in page] == ["CA2", "CA1"] and total == 4
    page, total = await store.search_calls(agent="bob", limit=1, offset=1)
    assert [c["call_sid"] for c in page] == ["CA2"] and total == 2
    assert await store.call_agent("CA2") == "bob" and await store.call_agent("CA9") is None


async def test_the_api_keeps_its_contract_parameters_and_adds_paging(make_server: ServerFactory) -> None:
    server = await make_server()
    status, _, text = await fetch(server, "GET", "/api/calls?status=&outcome=&agent=&since=&q=&limit=5")
    assert status == 200 and json.loads(text) == {"calls": [], "total": 0, "offset": 0, "limit": 5}
    for bad in ("sort=sideways", "offset=x", "limit=ten", "phase=%25"):
        status, _, text = await fetch(server, "GET", f"/api/calls?{bad}")
        assert status == 400 and "error" in json.loads(text), bad


# --- retention ------------------------------------------------------------------------------------------


async def test_retention_deletes_old_finished_calls_rows_and_recordings(tmp_path: Path) -> None:
    store = CallStore(f"sqlite:///{tmp_path / 'c.db'}")
    await store.open()
    recordings = tmp_path / "recordings"
    try:
        await add_call(store, "CAold", 1, "alice", "old call", 30.0, ["venting"])
        await store.add_status_event("CAold", "2026-11-01T10:01:00Z", {"CallStatus": "completed"})
        await add_call(store, "CAoldlive", 1, "alice", "still going", 30.0, [], status="live")
        await add_call(store, "CAnew", 20, "bob", "new call", 30.0, [])
        for sid in ("CAold", "CAnew"):
            (recordings / sid).mkdir(parents=True)
            (recordings / sid / "recording.wav").write_bytes(b"RIFF")
        now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
        assert await purge_expired(store, recordings, 10, now) == ["CAold"]
        assert await store.get_call("CAold") is None
        assert not (recordings / "CAold").exists() and (recordings / "CAnew" / "recording.wav").exists()
        assert await store.get_call("CAoldlive") is not None  # a live call is never deleted
        assert await store.get_call("CAnew") is not None
        assert await purge_expired(store, recordings, 10, now) == []
        # Its utterances and status events went with it (the raw tables, not just the join).
        rows = await store._run(lambda db: db.execute(
            "SELECT COUNT(*) FROM utterances WHERE call_sid = 'CAold'").fetchone()[0]
            + db.execute("SELECT COUNT(*) FROM status_events WHERE call_sid = 'CAold'").fetchone()[0])
        assert rows == 0
    finally:
        await store.close()


async def test_the_retention_task_runs_on_its_clock_and_stops_with_the_app(tmp_path: Path) -> None:
    """The cleanup_ctx task, driven by an injected clock and sleep: each 'hour' moves the clock 4 days on."""
    store = CallStore(f"sqlite:///{tmp_path / 'c.db'}")
    await store.open()
    await add_call(store, "CA5", 5, "alice", "x", 1.0, [])
    await add_call(store, "CA10", 10, "alice", "x", 1.0, [])
    clock = [datetime(2026, 11, 12, tzinfo=UTC)]
    passes = asyncio.Queue[None]()
    hour_passed = asyncio.Event()

    async def sleep(seconds: float) -> None:
        # The task sleeps after each pass: report the pass, then wait until the test lets time move on.
        assert seconds == 3600
        await passes.put(None)
        await hour_passed.wait()
        hour_passed.clear()
        clock[0] += timedelta(days=4)

    app = web.Application()
    app[CONFIG] = Config(data_dir=tmp_path, retention_days=5)
    app[STORE] = store
    app[METRICS] = Metrics()
    ctx = retention_ctx(clock=lambda: clock[0], sleep=sleep)(app)
    try:
        await anext(ctx)
        await asyncio.wait_for(passes.get(), 5)  # first pass, on the 12th: CA5 (on the 5th) is > 5 days old
        assert await store.get_call("CA5") is None and await store.get_call("CA10") is not None
        hour_passed.set()
        await asyncio.wait_for(passes.get(), 5)  # second pass, on the 16th: CA10 is too
        assert await store.get_call("CA10") is None
        with pytest.raises(StopAsyncIteration):
            await anext(ctx)  # shutdown cancels and awaits the task, mid-sleep
    finally:
        await store.close()
