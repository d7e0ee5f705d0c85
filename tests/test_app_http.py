"""The HTTP surface over real sockets: TwiML, Twilio signatures, status callbacks, the JSON API, live
feeds, API tokens, health/readiness/metrics and the pages. Streaming internals are covered in
test_app_stream.py; here a call is streamed only to have something to query."""

from __future__ import annotations

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import ServerFactory, get_json, load_call, ws_url
from voice.codec import pcm16_to_ulaw
from voice.simulate import MediaStreamClient, SimulatedCall, new_call_sid, stream_call
from voice.twilio import sign

PUBLIC = "https://cc.example.com"
TOKEN = "twilio-test-auth-token"
PUBLIC_STREAM = "wss://cc.example.com/twilio/stream"
TWILIO_FORM = {"CallSid": "CA" + "1" * 32, "AccountSid": "AC" + "0" * 32, "From": "+15550100",
               "To": "+15550199", "CallStatus": "ringing", "Direction": "inbound"}


async def request(server: TestServer, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as client, client.request(method, server.make_url(path), **kwargs) as r:
        return r.status, dict(r.headers), await r.read()


async def stream(server: TestServer, samples: np.ndarray, **kwargs: Any) -> SimulatedCall:
    return await stream_call(samples, ws_url(server, "/twilio/stream"), speed=0, **kwargs)


async def stream_with_headers(url: str, samples: np.ndarray, headers: dict[str, str],
                              call_sid: str | None = None) -> str:
    """Like stream_call, but with caller-chosen upgrade headers (e.g. a signature over the public URL)."""
    async with aiohttp.ClientSession() as client, client.ws_connect(url, headers=headers) as ws:
        twilio = MediaStreamClient(ws, call_sid or new_call_sid())
        await twilio.start({"from": "+15550100"})
        for n, i in enumerate(range(0, len(samples), 160)):
            for track, channel in (("inbound", 0), ("outbound", 1)):
                await twilio.media(track, n + 1, i // 8, pcm16_to_ulaw(samples[i:i + 160, channel].tobytes()))
        await twilio.stop()
        await twilio.wait_closed()
        return twilio.call_sid


async def wait_status(server: TestServer, call_sid: str, not_status: str = "live") -> dict[str, Any]:
    for _ in range(200):
        call: dict[str, Any] = await get_json(server, f"/api/calls/{call_sid}")
        if call["status"] != not_status:
            return call
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_sid} stayed {not_status}")


@pytest.fixture(scope="module")
def calm() -> np.ndarray:
    return load_call("calm_questions")[0]


@pytest.fixture(scope="module")
def angry() -> np.ndarray:
    return load_call("angry_billing")[0]


# --- /twilio/voice: TwiML -------------------------------------------------------------------------


def parse_twiml(body: bytes) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == "Response"
    return root


@pytest.mark.parametrize(("dial", "tag", "text"), [
    ("+15550142", "Number", "+15550142"),
    ("sip:agent@pbx.example.com", "Sip", "sip:agent@pbx.example.com"),
    ("client:alice", "Client", "alice"),
])
async def test_voice_twiml_starts_a_both_track_stream_then_dials_the_agent(
        make_server: ServerFactory, dial: str, tag: str, text: str) -> None:
    server = await make_server(agent_dial=dial, public_url=PUBLIC)
    status, headers, body = await request(server, "POST", "/twilio/voice", data=TWILIO_FORM)
    assert status == 200
    assert headers["Content-Type"].startswith("application/xml")
    root = parse_twiml(body)
    assert [child.tag for child in root] == ["Start", "Dial"]
    stream_el = root.find("Start/Stream")
    assert stream_el is not None
    assert stream_el.get("url") == PUBLIC_STREAM
    assert stream_el.get("track") == "both_tracks"
    params = {p.get("name"): p.get("value") for p in stream_el.findall("Parameter")}
    assert params == {"from": "+15550100", "to": "+15550199", "agent": dial}
    dial_el = root.find("Dial")
    assert dial_el is not None and [c.tag for c in dial_el] == [tag]
    assert dial_el[0].text == text


async def test_voice_twiml_without_agent_says_sorry_and_hangs_up(make_server: ServerFactory) -> None:
    server = await make_server(public_url=PUBLIC)
    status, _, body = await request(server, "POST", "/twilio/voice", data=TWILIO_FORM)
    assert status == 200
    root = parse_twiml(body)
    assert [child.tag for child in root] == ["Start", "Say", "Hangup"]
    assert root.find("Dial") is None
    stream_el = root.find("Start/Stream")
    assert stream_el is not None and stream_el.get("url") == PUBLIC_STREAM
    assert "agent" not in {p.get("name") for p in stream_el.findall("Parameter")}  # empty values are left out


async def test_voice_twiml_without_public_url_uses_the_request_host(make_server: ServerFactory) -> None:
    server = await make_server(agent_dial="+15550142")
    host = f"127.0.0.1:{server.port}"
    _, _, body = await request(server, "POST", "/twilio/voice", data=TWILIO_FORM)
    stream_el = parse_twiml(body).find("Start/Stream")
    assert stream_el is not None and stream_el.get("url") == f"ws://{host}/twilio/stream"
    # Behind a TLS-terminating proxy the scheme comes from X-Forwarded-Proto: https → wss.
    _, _, body = await request(server, "POST", "/twilio/voice", data=TWILIO_FORM,
                               headers={"X-Forwarded-Proto": "https"})
    stream_el = parse_twiml(body).find("Start/Stream")
    assert stream_el is not None and stream_el.get("url") == f"wss://{host}/twilio/stream"


# --- Twilio signatures ----------------------------------------------------------------------------


async def test_signed_voice_webhook_is_accepted_and_unsigned_or_forged_ones_refused(
        make_server: ServerFactory) -> None:
    server = await make_server(twilio_auth_token=TOKEN, public_url=PUBLIC, agent_dial="+15550142")
    good = sign(TOKEN, PUBLIC + "/twilio/voice", TWILIO_FORM)
    status, _, body = await request(server, "POST", "/twilio/voice", data=TWILIO_FORM,
                                    headers={"X-Twilio-Signature": good})
    assert status == 200 and parse_twiml(body).find("Dial/Number") is not None
    # The query string is part of what Twilio signs.
    signed_qs = sign(TOKEN, PUBLIC + "/twilio/voice?tenant=7", TWILIO_FORM)
    status, _, _ = await request(server, "POST", "/twilio/voice?tenant=7", data=TWILIO_FORM,
                                 headers={"X-Twilio-Signature": signed_qs})
    assert status == 200
    forged = [
        {},                                                           # missing
        {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},               # wrong
        {"X-Twilio-Signature": sign("other-token", PUBLIC + "/twilio/voice", TWILIO_FORM)},
        {"X-Twilio-Signature": sign(TOKEN, PUBLIC + "/twilio/voice", {**TWILIO_FORM, "From": "+1999"})},
        {"X-Twilio-Signature": signed_qs},                            # signed for another URL
    ]
    for headers in forged:
        status, _, _ = await request(server, "POST", "/twilio/voice", data=TWILIO_FORM, headers=headers)
        assert status == 403, headers
    _, _, metrics = await request(server, "GET", "/metrics")
    assert re.search(rb"^carecoach_signature_failures_total 5\.0$", metrics, re.M)


async def test_status_callback_signature_is_checked_and_a_refused_one_is_not_stored(
        make_server: ServerFactory, calm: np.ndarray) -> None:
    server = await make_server(twilio_auth_token=TOKEN, public_url=PUBLIC)
    headers = {"x-twilio-signature": sign(TOKEN, PUBLIC_STREAM)}
    call_sid = await stream_with_headers(ws_url(server, "/twilio/stream"), calm[: 8000 * 3], headers)

    completed = {**TWILIO_FORM, "CallSid": call_sid, "CallStatus": "completed", "CallDuration": "3"}
    forged = {**completed, "CallStatus": "forged"}
    for bad in ({}, {"X-Twilio-Signature": sign(TOKEN, PUBLIC + "/twilio/status", completed)}):
        status, _, _ = await request(server, "POST", "/twilio/status", data=forged, headers=bad)
        assert status == 403
    status, _, _ = await request(server, "POST", "/twilio/status", data=completed,
                                 headers={"X-Twilio-Signature": sign(TOKEN, PUBLIC + "/twilio/status", completed)})
    assert status == 204
    call = await get_json(server, f"/api/calls/{call_sid}")
    assert [e["CallStatus"] for e in call["status_events"]] == ["completed"]


async def test_stream_upgrade_is_signed_over_the_public_stream_url(make_server: ServerFactory,
                                                                   calm: np.ndarray) -> None:
    server = await make_server(twilio_auth_token=TOKEN, public_url=PUBLIC)
    url = ws_url(server, "/twilio/stream")
    for headers in ({}, {"x-twilio-signature": "bm9wZQ=="},
                    {"x-twilio-signature": sign(TOKEN, url)},  # over the local URL, not the advertised one
                    {"x-twilio-signature": sign(TOKEN, PUBLIC_STREAM, {"x": "1"})}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await stream_with_headers(url, calm[:8000], headers)
        assert refused.value.status == 403
    assert (await get_json(server, "/api/calls"))["calls"] == []

    call_sid = await stream_with_headers(url, calm[: 8000 * 3], {"x-twilio-signature": sign(TOKEN, PUBLIC_STREAM)})
    call = await get_json(server, f"/api/calls/{call_sid}")
    assert call["status"] == "ended"
    assert call["duration"] == pytest.approx(3.0, abs=0.03)
    assert [c["call_sid"] for c in (await get_json(server, "/api/calls"))["calls"]] == [call_sid]


async def test_without_public_url_signatures_cover_the_request_host(make_server: ServerFactory,
                                                                    calm: np.ndarray) -> None:
    server = await make_server(twilio_auth_token=TOKEN)
    local_stream = f"ws://127.0.0.1:{server.port}/twilio/stream"
    assert ws_url(server, "/twilio/stream") == local_stream
    # stream_call signs the URL it connects to, which is exactly what the server derives.
    call = await stream_call(calm[: 8000 * 3], local_stream, speed=0, auth_token=TOKEN)
    assert (await get_json(server, f"/api/calls/{call.call_sid}"))["status"] == "ended"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await stream_with_headers(local_stream, calm[:8000], {"x-twilio-signature": sign(TOKEN, PUBLIC_STREAM)})
    assert refused.value.status == 403

    voice_url = f"http://127.0.0.1:{server.port}/twilio/voice"
    status, _, body = await request(server, "POST", "/twilio/voice", data=TWILIO_FORM,
                                    headers={"X-Twilio-Signature": sign(TOKEN, voice_url, TWILIO_FORM)})
    assert status == 200
    stream_el = parse_twiml(body).find("Start/Stream")
    assert stream_el is not None and stream_el.get("url") == local_stream
    status, _, _ = await request(server, "POST", "/twilio/voice", data=TWILIO_FORM,
                                 headers={"X-Twilio-Signature": sign(TOKEN, PUBLIC + "/twilio/voice", TWILIO_FORM)})
    assert status == 403


# --- /twilio/status -------------------------------------------------------------------------------


async def test_status_callbacks_are_recorded_on_the_call_in_order(make_server: ServerFactory,
                                                                  calm: np.ndarray) -> None:
    server = await make_server()
    call_sid = new_call_sid()
    # Twilio sends call progress before the stream starts, and stream events around it.
    ringing = {**TWILIO_FORM, "CallSid": call_sid, "CallStatus": "ringing"}
    status, _, _ = await request(server, "POST", "/twilio/status", data=ringing)
    assert status == 204
    await stream(server, calm[: 8000 * 3], call_sid=call_sid)
    stopped = {"CallSid": call_sid, "StreamSid": "MZ" + "2" * 32, "StreamEvent": "stream-stopped",
               "Timestamp": "Mon, 23 Nov 2026 10:00:00 +0000"}
    status, _, _ = await request(server, "POST", "/twilio/status", data=stopped)
    assert status == 204

    events = (await get_json(server, f"/api/calls/{call_sid}"))["status_events"]
    assert [e.get("CallStatus") or e.get("StreamEvent") for e in events] == ["ringing", "stream-stopped"]
    assert events[1]["StreamSid"] == stopped["StreamSid"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["received_at"]) for e in events)


async def test_status_callback_without_call_sid_is_a_bad_request(make_server: ServerFactory) -> None:
    server = await make_server()
    for form in ({"CallStatus": "completed"}, {"CallSid": "", "CallStatus": "completed"},
                 {"CallSid": "not a sid!", "CallStatus": "completed"}):
        status, _, _ = await request(server, "POST", "/twilio/status", data=form)
        assert status == 400, form


# --- JSON API ---------------------------------------------------------------------------------------


async def test_call_list_is_newest_first_and_filters(make_server: ServerFactory, calm: np.ndarray,
                                                     angry: np.ndarray) -> None:
    server = await make_server()
    first = await stream(server, calm[: int(12.5 * 8000)], parameters={"agent": "dana", "from": "+15550100"})
    second = await stream(server, angry[: 15 * 8000], parameters={"agent": "eli"}, send_stop=False)
    await wait_status(server, second.call_sid)

    calls = (await get_json(server, "/api/calls"))["calls"]
    assert [c["call_sid"] for c in calls] == [second.call_sid, first.call_sid]
    assert all("utterances" not in c for c in calls)  # CallSummary
    assert calls[1]["from"] == "+15550100" and calls[1]["agent"] == "dana"

    async def sids(query: str) -> list[str]:
        return [c["call_sid"] for c in (await get_json(server, "/api/calls?" + query))["calls"]]

    assert await sids("status=ended") == [first.call_sid]
    assert await sids("status=interrupted") == [second.call_sid]
    assert await sids("status=live") == []
    assert await sids("agent=dana") == [first.call_sid]
    assert await sids("agent=eli&status=interrupted") == [second.call_sid]
    assert await sids("agent=nobody") == []
    assert await sids("limit=1") == [second.call_sid]

    # Text search over the transcripts: a word only the first call's transcript contains.
    texts = {c: " ".join(u["text"] for u in (await get_json(server, f"/api/calls/{c}"))["utterances"])
             for c in (first.call_sid, second.call_sid)}
    only_first = [w for w in texts[first.call_sid].split() if len(w) > 3 and w not in texts[second.call_sid]]
    assert only_first, texts
    assert await sids(f"q={only_first[0]}") == [first.call_sid]
    assert await sids("q=zzqqxx-never-said") == []

    for bad in ("limit=abc", "limit=1.5"):
        status, headers, _ = await request(server, "GET", "/api/calls?" + bad)
        assert status == 400, bad
        assert headers["Content-Type"].startswith("application/json")


async def test_unknown_call_is_a_json_404(make_server: ServerFactory) -> None:
    server = await make_server()
    for path in ("/api/calls/CAUNKNOWN", "/api/calls/CAUNKNOWN/export?format=vtt",
                 "/api/calls/CAUNKNOWN/recording.wav", "/api/calls/bad%20sid%21"):
        status, headers, body = await request(server, "GET", path)
        assert status == 404, path
        assert headers["Content-Type"].startswith("application/json")
        assert "error" in json.loads(body)
    status, _, _ = await request(server, "POST", "/api/calls/CAUNKNOWN/outcome", json={"disposition": "resolved"})
    assert status == 404


async def test_agent_outcome_is_stored_and_published_live(make_server: ServerFactory, calm: np.ndarray) -> None:
    server = await make_server()
    call = await stream(server, calm[: 8000 * 3])
    path = f"/api/calls/{call.call_sid}"
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(server, path + "/live")) as live:
        async with client.post(server.make_url(path + "/outcome"),
                               json={"disposition": "resolved", "note": "x"}) as response:
            assert response.status == 200
            assert await response.json() == {"disposition": "resolved", "source": "agent", "note": "x"}
        event = await live.receive_json(timeout=10)
    assert event["type"] == "outcome" and event["call_sid"] == call.call_sid
    assert event["disposition"] == "resolved" and event["source"] == "agent" and event["note"] == "x"
    assert isinstance(event["at"], float | int)
    stored = await get_json(server, path)
    assert stored["outcome"] == {"disposition": "resolved", "source": "agent", "note": "x"}
    assert [c["call_sid"] for c in (await get_json(server, "/api/calls?outcome=resolved"))["calls"]] == [call.call_sid]

    for kwargs in ({"json": {"disposition": "fixed"}}, {"json": {"note": "no disposition"}},
                   {"json": ["resolved"]}, {"data": b"disposition=resolved"}, {"data": b"{not json"}):
        status, _, _ = await request(server, "POST", path + "/outcome", **kwargs)
        assert status == 400, kwargs
    assert (await get_json(server, path))["outcome"]["disposition"] == "resolved"  # unchanged by the bad posts


async def test_export_json_and_vtt(make_server: ServerFactory, calm: np.ndarray) -> None:
    server = await make_server()
    call = await stream(server, calm[: int(12.5 * 8000)])
    path = f"/api/calls/{call.call_sid}"
    stored = await get_json(server, path)
    assert {u["speaker"] for u in stored["utterances"]} == {"customer", "agent"}

    status, headers, body = await request(server, "GET", path + "/export?format=json")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert "attachment" in headers["Content-Disposition"] and f"{call.call_sid}.json" in headers["Content-Disposition"]
    assert json.loads(body) == stored

    status, headers, body = await request(server, "GET", path + "/export?format=vtt")
    assert status == 200
    assert headers["Content-Type"].startswith("text/vtt")
    assert f"{call.call_sid}.vtt" in headers["Content-Disposition"]
    text = body.decode()
    assert text.startswith("WEBVTT\n")
    cues = re.findall(r"^(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n<v (customer|agent)>(.*)$", text, re.M)
    assert len(cues) == len(stored["utterances"])
    first = stored["utterances"][0]
    seconds = first["start"]
    assert cues[0][0] == f"00:00:{int(seconds):02d}.{round(seconds * 1000) % 1000:03d}"
    assert cues[0][2] == first["speaker"] and first["text"] in cues[0][3]
    assert any(speaker == "customer" for _, _, speaker, _ in cues)

    status, _, _ = await request(server, "GET", path + "/export?format=pdf")
    assert status == 400


async def test_recording_is_404_when_recordings_are_off(make_server: ServerFactory, calm: np.ndarray) -> None:
    server = await make_server(recordings=False)
    call = await stream(server, calm[: 8000 * 3])
    assert (await get_json(server, f"/api/calls/{call.call_sid}"))["status"] == "ended"
    status, headers, body = await request(server, "GET", f"/api/calls/{call.call_sid}/recording.wav")
    assert status == 404
    assert headers["Content-Type"].startswith("application/json") and "error" in json.loads(body)


# --- live feeds -------------------------------------------------------------------------------------


async def test_call_feed_gets_only_its_call_and_supervisor_feed_gets_all(make_server: ServerFactory,
                                                                         calm: np.ndarray,
                                                                         angry: np.ndarray) -> None:
    server = await make_server()
    a, b = new_call_sid(), new_call_sid()

    async def collect(ws: aiohttp.ClientWebSocketResponse, until: set[str]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        ended: set[str] = set()
        async for message in ws:
            events.append(json.loads(message.data))
            if events[-1]["type"] == "call_ended":
                ended.add(events[-1]["call_sid"])
                if ended >= until:
                    return events
        raise AssertionError("live feed closed early")

    async with aiohttp.ClientSession() as client, \
            client.ws_connect(ws_url(server, f"/api/calls/{a}/live")) as one, \
            client.ws_connect(ws_url(server, "/api/live")) as everything:
        one_task = asyncio.ensure_future(collect(one, {a}))
        all_task = asyncio.ensure_future(collect(everything, {a, b}))
        await asyncio.gather(stream(server, calm[: 8000 * 8], call_sid=a),
                             stream(server, angry[: 8000 * 8], call_sid=b))
        one_events, all_events = await asyncio.wait_for(asyncio.gather(one_task, all_task), 30)

    assert {e["call_sid"] for e in one_events} == {a}
    assert one_events[0]["type"] == "call_started"
    assert {e["call_sid"] for e in all_events} == {a, b}
    for sid in (a, b):
        kinds = [e["type"] for e in all_events if e["call_sid"] == sid]
        assert kinds[0] == "call_started" and kinds[-1] == "call_ended"
    assert [e for e in all_events if e["call_sid"] == a] == one_events


# --- API tokens ---------------------------------------------------------------------------------------


TOKENS = {"sup-token": "supervisor", "agent-token": "agent"}


async def test_api_tokens_guard_the_api_pages_and_live_feeds(make_server: ServerFactory) -> None:
    server = await make_server(api_tokens=TOKENS, agent_dial="+15550142")
    status, headers, body = await request(server, "GET", "/api/calls")
    assert status == 401 and headers["Content-Type"].startswith("application/json") and b"token" in body
    assert (await request(server, "GET", "/api/calls", headers={"Authorization": "Bearer sup-token"}))[0] == 200
    assert (await request(server, "GET", "/api/calls?token=agent-token"))[0] == 200
    for bad in ({"headers": {"Authorization": "Bearer wrong"}}, {"params": {"token": "wrong"}},
                {"headers": {"Authorization": "Basic c3VwLXRva2Vu"}}, {"params": {"token": ""}}):
        assert (await request(server, "GET", "/api/calls", **bad))[0] == 401, bad
    assert (await request(server, "GET", "/api/calls/CAUNKNOWN"))[0] == 401  # no leak of existence

    # Pages need a token too: a visitor without one is sent to sign in (tests/test_pages.py covers /login).
    for page in ("/calls", "/calls/CA123"):
        status, headers, _ = await request(server, "GET", page, allow_redirects=False)
        assert status == 303 and headers["Location"].startswith("/login?next="), page
    assert (await request(server, "GET", "/calls?token=sup-token"))[0] == 200

    # WebSockets: the token rides in the query string.
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(ws_url(server, "/api/live"))
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(ws_url(server, "/api/live?token=wrong"))
        assert refused.value.status == 401
        async with client.ws_connect(ws_url(server, "/api/live?token=sup-token")) as ws:
            assert not ws.closed
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # the all-calls feed is for supervisors
            await client.ws_connect(ws_url(server, "/api/live?token=agent-token"))
        assert refused.value.status == 403
        async with client.ws_connect(ws_url(server, "/api/calls/CA123/live"),
                                     headers={"Authorization": "Bearer agent-token"}) as ws:
            assert not ws.closed

    # Health and Twilio (which authenticates with signatures) need no API token.
    assert (await request(server, "GET", "/healthz"))[0] == 200
    assert (await request(server, "GET", "/readyz"))[0] == 200
    status, _, body = await request(server, "POST", "/twilio/voice", data=TWILIO_FORM)
    assert status == 200 and parse_twiml(body).find("Dial/Number") is not None
    assert (await request(server, "POST", "/twilio/status", data=TWILIO_FORM))[0] == 204


async def test_a_page_opened_with_a_token_can_load_its_own_assets(make_server: ServerFactory) -> None:
    server = await make_server(api_tokens=TOKENS)
    status, _, body = await request(server, "GET", "/calls?token=sup-token")
    assert status == 200
    assets = re.findall(rb'(?:src|href)="(/static/[^"]+)"', body)
    assert assets
    for asset in assets:  # as a browser fetches them: the page's own relative URL, no Authorization header
        assert (await request(server, "GET", asset.decode()))[0] == 200, asset


# --- health, readiness, metrics, pages --------------------------------------------------------------


async def test_health_readiness_and_metrics(make_server: ServerFactory, calm: np.ndarray) -> None:
    server = await make_server()
    assert (await get_json(server, "/healthz"))["status"] == "ok"
    ready = await get_json(server, "/readyz")
    assert ready["ready"] is True and ready["model_loaded"] is True and ready["database"] is True
    assert ready["active_calls"] == 0

    status, headers, body = await request(server, "GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert re.search(r"^# TYPE carecoach_active_calls gauge$", text, re.M)
    assert re.search(r"^carecoach_active_calls 0\.0$", text, re.M)
    assert "carecoach_utterances_total{" not in text

    await stream(server, calm[: int(12.5 * 8000)])
    _, _, body = await request(server, "GET", "/metrics")
    text = body.decode()
    counts = dict(re.findall(r'^carecoach_utterances_total\{speaker="(\w+)"\} (\S+)$', text, re.M))
    assert float(counts["customer"]) >= 1 and float(counts["agent"]) >= 1
    assert re.search(r'^carecoach_calls_total\{status="ended"\} 1\.0$', text, re.M)
    assert re.search(r"^carecoach_active_calls 0\.0$", text, re.M)


async def test_pages_carry_security_headers_and_static_files_are_served(make_server: ServerFactory,
                                                                        calm: np.ndarray) -> None:
    server = await make_server()
    call = await stream(server, calm[: 8000 * 2])
    for path, script in (("/calls", "calls.js"), (f"/calls/{call.call_sid}", "replay.js")):
        status, headers, body = await request(server, "GET", path)
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert f'src="/static/{script}"'.encode() in body
    _, _, body = await request(server, "GET", f"/calls/{call.call_sid}")
    assert f'data-call-sid="{call.call_sid}"'.encode() in body
    # The call id is echoed into the page: it must be escaped.
    _, _, body = await request(server, "GET", "/calls/%3Cscript%3E")
    assert b"<script>" not in body.replace(b'<script src="/static/replay.js"></script>', b"")

    status, headers, body = await request(server, "GET", "/static/replay.js")
    assert status == 200 and "javascript" in headers["Content-Type"] and body
    status, headers, _ = await request(server, "GET", "/", allow_redirects=False)
    assert status == 302 and headers["Location"] == "/calls"
