"""Audio whispers wired into the service, over real sockets: the per-agent opt-in API, `/twilio/voice`'s
conference TwiML, conference status callbacks adding legs through a local fake of Twilio's REST API,
the whisper TwiML App webhook, and a whisper socket that speaks a live call's prompts (real TTS) into
the agent's ear. Nothing of ours is mocked: the test plays Twilio on every socket."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from dialog.store import SCHEMA, CallStore
from tests.conftest import ServerFactory, load_call, ws_url
from voice.codec import pcm16_to_ulaw
from voice.config import ConfigError, load_config
from voice.simulate import FRAME_SAMPLES, MediaStreamClient, new_call_sid
from voice.tts import Synthesizer
from voice.twilio import sign

PUBLIC = "https://cc.example.com"
ACCOUNT = "AC" + "a" * 32
TOKEN = "twilio-test-auth-token"
APP_SID = "AP" + "b" * 32
CALLER_ID = "+15550009999"
AGENT_DIAL = "sip:agent7@pbx.example.com"
AGENT_LEG = "CA" + "2" * 32
WHISPER_LEG = "CA" + "3" * 32
CONFERENCE_SID = "CF" + "4" * 32
WHISPER_STREAM = "MZ" + "5" * 32


# --- a local fake of Twilio's REST API -----------------------------------------------------------------


@dataclass
class FakeTwilio:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    participant_status: int = 201

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == kind]

    async def wait_for(self, kind: str, n: int = 1) -> list[dict[str, Any]]:
        for _ in range(200):
            if len(self.of(kind)) >= n:
                return self.of(kind)
            await asyncio.sleep(0.025)
        raise AssertionError(f"the fake Twilio never got {n} {kind} request(s): {self.requests}")


@pytest_asyncio.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()

    async def record(request: web.Request, kind: str) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.post()).items()}
        fake.requests.append({"kind": kind, "path": request.path, "match": dict(request.match_info), "form": form,
                              "authorization": request.headers.get("Authorization", "")})
        return form

    async def participants(request: web.Request) -> web.Response:
        form = await record(request, "coaching" if (await request.post()).get("Coaching") == "true" else "agent")
        account, conference = request.match_info["account"], request.match_info["conference"]
        if fake.participant_status >= 400:
            return web.json_response({"code": 20500, "message": "fake failure", "status": fake.participant_status,
                                      "more_info": "https://www.twilio.com/docs/errors"},
                                     status=fake.participant_status)
        call_sid = WHISPER_LEG if form.get("Coaching") == "true" else AGENT_LEG
        return web.json_response({
            "account_sid": account, "call_sid": call_sid, "conference_sid": conference, "label": form.get("Label"),
            "coaching": form.get("Coaching") == "true", "call_sid_to_coach": form.get("CallSidToCoach"),
            "status": "queued", "muted": False, "hold": False, "end_conference_on_exit": False,
            "start_conference_on_enter": False, "date_created": "Mon, 23 Nov 2026 10:00:00 +0000",
            "date_updated": "Mon, 23 Nov 2026 10:00:00 +0000", "queue_time": "0",
            "uri": f"/2010-04-01/Accounts/{account}/Conferences/{conference}/Participants/{call_sid}.json",
        }, status=201)

    async def call_update(request: web.Request) -> web.Response:
        await record(request, "redirect")
        account, sid = request.match_info["account"], request.match_info["call"]
        return web.json_response({"sid": sid, "account_sid": account, "status": "in-progress",
                                  "uri": f"/2010-04-01/Accounts/{account}/Calls/{sid}.json"})

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Conferences/{conference}/Participants.json", participants)
    app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", call_update)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


# --- the service -------------------------------------------------------------------------------------

Factory = Callable[..., Awaitable[TestServer]]


@pytest_asyncio.fixture
async def make_app(make_server: ServerFactory, fake_twilio: FakeTwilio) -> Factory:
    """A real carecoach server with audio whispers configured against the fake Twilio (unless overridden)."""
    whisper_config = {"public_url": PUBLIC, "agent_dial": AGENT_DIAL, "twilio_account_sid": ACCOUNT,
                      "twilio_auth_token": TOKEN, "whisper_app_sid": APP_SID, "whisper_caller_id": CALLER_ID,
                      "twilio_api_url": fake_twilio.url}

    async def start(synthesizer: Synthesizer | None = None, **overrides: Any) -> TestServer:
        return await make_server(synthesizer, **{**whisper_config, **overrides})

    return start


async def call_api(server: TestServer, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as client, client.request(method, server.make_url(path), **kwargs) as r:
        body = await r.read()
        try:
            return r.status, json.loads(body)
        except ValueError:
            return r.status, body.decode()


async def twilio_post(server: TestServer, path: str, form: dict[str, str]) -> tuple[int, bytes]:
    """POST a form as Twilio does: signed over the public URL (path with query) and the form."""
    headers = {"X-Twilio-Signature": sign(TOKEN, PUBLIC + path, form)}
    async with aiohttp.ClientSession() as client, \
            client.post(server.make_url(path), data=form, headers=headers) as r:
        return r.status, await r.read()


def voice_form(call_sid: str) -> dict[str, str]:
    return {"CallSid": call_sid, "AccountSid": ACCOUNT, "From": "+15550100", "To": "+15550199",
            "CallStatus": "ringing", "Direction": "inbound"}


def join_form(customer: str, leg: str, label: str, coaching: str = "false") -> dict[str, str]:
    return {"AccountSid": ACCOUNT, "ConferenceSid": CONFERENCE_SID, "FriendlyName": f"cc-{customer}",
            "StatusCallbackEvent": "participant-join", "CallSid": leg, "ParticipantLabel": label,
            "Coaching": coaching, "Muted": "false", "Hold": "false", "EndConferenceOnExit": "true",
            "StartConferenceOnEnter": "true", "SequenceNumber": "2", "Timestamp": "Mon, 23 Nov 2026 10:00:05 +0000"}


async def opt_in(server: TestServer, agent: str = AGENT_DIAL, enabled: bool = True) -> None:
    status, body = await call_api(server, "PUT", f"/api/agents/{agent}/whisper", json={"enabled": enabled})
    assert (status, body) == (200, {"agent": agent, "whisper": enabled})


# --- the opt-in ------------------------------------------------------------------------------------------


async def test_agent_whisper_setting_round_trip_and_validation(make_app: Factory) -> None:
    server = await make_app()
    assert await call_api(server, "GET", f"/api/agents/{AGENT_DIAL}") == (200, {"agent": AGENT_DIAL,
                                                                               "whisper": False})
    await opt_in(server)
    assert await call_api(server, "GET", f"/api/agents/{AGENT_DIAL}") == (200, {"agent": AGENT_DIAL,
                                                                               "whisper": True})
    await opt_in(server, "+15550142")
    await opt_in(server, AGENT_DIAL, enabled=False)
    assert (await call_api(server, "GET", f"/api/agents/{AGENT_DIAL}"))[1]["whisper"] is False
    assert (await call_api(server, "GET", "/api/agents/+15550142"))[1]["whisper"] is True

    path = f"/api/agents/{AGENT_DIAL}/whisper"
    bodies: list[dict[str, Any]] = [{"data": b"not json"}, {"json": {"enabled": "yes"}}, {"json": {"enabled": 1}},
                                    {"json": {}}, {"json": [True]}]
    for kwargs in bodies:
        status, body = await call_api(server, "PUT", path, **kwargs)
        assert status == 400 and "error" in body, (kwargs, body)
    for bad in ("bad!agent", "x" * 129, "a%20b"):
        status, body = await call_api(server, "PUT", f"/api/agents/{bad}/whisper", json={"enabled": True})
        assert status == 400 and body == {"error": "invalid agent id"}
        assert (await call_api(server, "GET", f"/api/agents/{bad}"))[0] == 400
    assert (await call_api(server, "GET", f"/api/agents/{AGENT_DIAL}"))[1]["whisper"] is False


async def test_agent_api_needs_a_token_when_tokens_are_configured(make_app: Factory) -> None:
    server = await make_app(api_tokens={"sup-token": "supervisor"})
    assert (await call_api(server, "GET", f"/api/agents/{AGENT_DIAL}"))[0] == 401
    status, _ = await call_api(server, "PUT", f"/api/agents/{AGENT_DIAL}/whisper", json={"enabled": True})
    assert status == 401
    status, body = await call_api(server, "PUT", f"/api/agents/{AGENT_DIAL}/whisper", json={"enabled": True},
                                  headers={"Authorization": "Bearer sup-token"})
    assert (status, body) == (200, {"agent": AGENT_DIAL, "whisper": True})


async def test_store_migrates_a_version_2_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        for number, script in enumerate(SCHEMA[:2], start=1):
            db.executescript(f"{script}; PRAGMA user_version={number};")
    store = CallStore(f"sqlite:///{path}")
    await store.open()
    try:
        assert await store.get_whisper("alice") is False
        await store.set_whisper("alice", True)
        await store.set_whisper("alice", True)  # idempotent upsert
        assert await store.get_whisper("alice") is True
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(SCHEMA) >= 3


# --- /twilio/voice and the conference legs ----------------------------------------------------------------


def twiml(body: bytes) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == "Response"
    return root


async def test_opted_in_agent_gets_a_conference_and_is_dialled_in(make_app: Factory,
                                                                   fake_twilio: FakeTwilio) -> None:
    server = await make_app()
    customer = new_call_sid()

    # Not opted in: the plain <Dial>, and Twilio's REST API is not touched.
    status, body = await twilio_post(server, "/twilio/voice", voice_form(new_call_sid()))
    assert status == 200
    assert [c.tag for c in twiml(body)] == ["Start", "Dial"] and twiml(body).find("Dial/Sip") is not None

    await opt_in(server)
    status, body = await twilio_post(server, "/twilio/voice", voice_form(customer))
    assert status == 200
    root = twiml(body)
    assert [c.tag for c in root] == ["Start", "Dial"]
    stream = root.find("Start/Stream")
    assert stream is not None and stream.get("url") == "wss://cc.example.com/twilio/stream"
    assert stream.get("track") == "both_tracks"
    assert {p.get("name"): p.get("value") for p in stream.findall("Parameter")} == {
        "from": "+15550100", "to": "+15550199", "agent": AGENT_DIAL}
    conference = root.find("Dial/Conference")
    assert conference is not None and conference.text == f"cc-{customer}"
    assert conference.get("statusCallback") == f"{PUBLIC}/twilio/status"
    assert "join" in (conference.get("statusCallbackEvent") or "").split()

    [add] = await fake_twilio.wait_for("agent")
    assert add["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Conferences/cc-{customer}/Participants.json"
    assert add["form"]["To"] == AGENT_DIAL and add["form"]["From"] == CALLER_ID
    assert add["form"]["Label"] == "agent" and "Coaching" not in add["form"]
    assert add["authorization"] == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()

    # Opted out again: back to the plain <Dial>.
    await opt_in(server, enabled=False)
    _, body = await twilio_post(server, "/twilio/voice", voice_form(new_call_sid()))
    assert twiml(body).find("Dial/Conference") is None
    assert len(fake_twilio.requests) == 1


async def test_opted_in_agent_without_whisper_config_gets_a_plain_dial(make_app: Factory,
                                                                       fake_twilio: FakeTwilio) -> None:
    server = await make_app(whisper_app_sid=None)
    await opt_in(server)
    status, body = await twilio_post(server, "/twilio/voice", voice_form(new_call_sid()))
    assert status == 200 and twiml(body).find("Dial/Sip") is not None
    await asyncio.sleep(0.1)
    assert fake_twilio.requests == []
    async with aiohttp.ClientSession() as client:  # and there is no whisper socket to connect to
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await client.ws_connect(ws_url(server, "/twilio/whisper"))
        assert info.value.status == 404


async def test_without_a_caller_id_the_dialled_number_is_used(make_app: Factory, fake_twilio: FakeTwilio) -> None:
    server = await make_app(whisper_caller_id=None)
    await opt_in(server)
    customer = new_call_sid()
    _, body = await twilio_post(server, "/twilio/voice", voice_form(customer))
    conference = twiml(body).find("Dial/Conference")
    assert conference is not None
    callback = conference.get("statusCallback") or ""
    assert parse_qs(urlsplit(callback).query) == {"caller": ["+15550199"]}
    [add] = await fake_twilio.wait_for("agent")
    assert add["form"]["From"] == "+15550199"
    status, _ = await twilio_post(server, callback.removeprefix(PUBLIC), join_form(customer, AGENT_LEG, "agent"))
    assert status == 204
    [coach] = await fake_twilio.wait_for("coaching")
    assert coach["form"]["From"] == "+15550199"


async def test_agent_join_adds_the_coaching_leg_once(make_app: Factory, fake_twilio: FakeTwilio) -> None:
    server = await make_app()
    customer = new_call_sid()
    # The customer's own join and the coaching leg's join add nothing.
    for form in (join_form(customer, customer, ""), join_form(customer, WHISPER_LEG, "carecoach-whisper", "true")):
        assert (await twilio_post(server, "/twilio/status", form))[0] == 204
    assert (await twilio_post(server, "/twilio/status", join_form(customer, AGENT_LEG, "agent")))[0] == 204
    [coach] = await fake_twilio.wait_for("coaching")
    assert coach["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Conferences/{CONFERENCE_SID}/Participants.json"
    form = coach["form"]
    assert form["Coaching"] == "true" and form["CallSidToCoach"] == AGENT_LEG
    assert form["To"] == f"app:{APP_SID}?call_sid={customer}&agent_call_sid={AGENT_LEG}"
    assert form["From"] == CALLER_ID
    # A redelivered callback does not add a second whisper leg.
    assert (await twilio_post(server, "/twilio/status", join_form(customer, AGENT_LEG, "agent")))[0] == 204
    await asyncio.sleep(0.2)
    assert len(fake_twilio.of("coaching")) == 1 and fake_twilio.of("agent") == []
    # Conference events are signed like every /twilio/* callback, and plain call callbacks still work.
    forged = {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    async with aiohttp.ClientSession() as client, client.post(
            server.make_url("/twilio/status"), data=join_form(customer, AGENT_LEG, "agent"), headers=forged) as r:
        assert r.status == 403
    status, _ = await twilio_post(server, "/twilio/status", {"CallSid": customer, "CallStatus": "completed"})
    assert status == 204


async def test_when_the_agent_cannot_be_added_the_call_is_sent_straight_to_them(
        make_app: Factory, fake_twilio: FakeTwilio) -> None:
    fake_twilio.participant_status = 500
    server = await make_app()
    await opt_in(server)
    customer = new_call_sid()
    status, body = await twilio_post(server, "/twilio/voice", voice_form(customer))
    assert status == 200 and twiml(body).find("Dial/Conference") is not None
    [redirect] = await fake_twilio.wait_for("redirect")
    assert redirect["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{customer}.json"
    root = twiml(redirect["form"]["Twiml"].encode())
    assert [c.tag for c in root] == ["Dial"] and root.findtext("Dial/Sip") == AGENT_DIAL
    _, metrics = await call_api(server, "GET", "/metrics")
    assert 'carecoach_whisper_errors_total{stage="add_agent"} 1.0' in metrics


async def test_whisper_voice_webhook_connects_the_stream_back(make_app: Factory) -> None:
    server = await make_app()
    customer = new_call_sid()
    form = {"CallSid": WHISPER_LEG, "AccountSid": ACCOUNT, "From": CALLER_ID, "To": f"app:{APP_SID}",
            "call_sid": customer, "agent_call_sid": AGENT_LEG}
    status, body = await twilio_post(server, "/twilio/whisper/voice", form)
    assert status == 200
    root = twiml(body)
    assert [c.tag for c in root] == ["Connect"]
    stream = root.find("Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://cc.example.com/twilio/whisper"
    assert {p.get("name"): p.get("value") for p in stream.findall("Parameter")} == {
        "call_sid": customer, "agent_call_sid": AGENT_LEG}
    # The parameters may also arrive on the query string.
    status, body = await twilio_post(server, f"/twilio/whisper/voice?call_sid={customer}",
                                     {"CallSid": WHISPER_LEG, "AccountSid": ACCOUNT})
    assert status == 200 and twiml(body).find("Connect/Stream") is not None
    # No (valid) call to coach: hang up, don't fail (Twilio would read an error to the agent).
    status, body = await twilio_post(server, "/twilio/whisper/voice", {**form, "call_sid": "CA-nope"})
    assert status == 200 and [c.tag for c in twiml(body)] == ["Hangup"]
    async with aiohttp.ClientSession() as client, client.post(server.make_url("/twilio/whisper/voice"),
                                                              data=form) as r:
        assert r.status == 403  # unsigned


# --- end to end: a live call's prompts spoken on the whisper stream ---------------------------------------


@dataclass
class TwilioWhisperLeg:
    """Twilio's side of the coaching leg's bidirectional stream: collects what we send, echoes marks."""

    ws: aiohttp.ClientWebSocketResponse
    frames: list[dict[str, Any]] = field(default_factory=list)
    echoed: list[str] = field(default_factory=list)
    played: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, customer: str) -> None:
        await self.ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await self.ws.send_str(json.dumps({
            "event": "start", "sequenceNumber": "1", "streamSid": WHISPER_STREAM,
            "start": {"streamSid": WHISPER_STREAM, "accountSid": ACCOUNT, "callSid": WHISPER_LEG,
                      "tracks": ["inbound"], "customParameters": {"call_sid": customer, "agent_call_sid": AGENT_LEG},
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))

    async def read(self) -> None:
        async for msg in self.ws:
            frame = json.loads(msg.data)
            self.frames.append(frame)
            if frame["event"] == "mark":  # "played": Twilio echoes the mark
                self.echoed.append(frame["mark"]["name"])
                await self.ws.send_str(json.dumps({"event": "mark", "sequenceNumber": str(len(self.frames)),
                                                   "streamSid": WHISPER_STREAM, "mark": frame["mark"]}))
                self.played.set()


async def stream_customer_call(ws: aiohttp.ClientWebSocketResponse, call_sid: str, samples: np.ndarray,
                               speed: float) -> MediaStreamClient:
    """Stream `samples` as Twilio's `<Start><Stream>` of the customer's call, paced at `speed`; no stop."""
    twilio = MediaStreamClient(ws, call_sid)
    await twilio.start({"from": "+15550100", "to": "+15550199", "agent": AGENT_DIAL})
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(len(samples) // FRAME_SAMPLES):
        delay = started + i * 0.02 / speed - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        chunk = samples[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]
        for track, channel in (("inbound", 0), ("outbound", 1)):
            await twilio.media(track, i + 1, i * 20, pcm16_to_ulaw(np.ascontiguousarray(chunk[:, channel]).tobytes()))
    return twilio


@pytest.fixture(scope="module")
def angry_start() -> np.ndarray:
    samples = load_call("angry_billing")[0]
    return samples[: 20 * 8000]


async def test_prompts_are_whispered_to_the_agent_and_marked_whispered(make_app: Factory,
                                                                       angry_start: np.ndarray) -> None:
    server = await make_app()
    await opt_in(server)
    customer = new_call_sid()
    stream_url, whisper_url = "wss://cc.example.com/twilio/stream", "wss://cc.example.com/twilio/whisper"
    async with aiohttp.ClientSession() as client:
        # Unsigned whisper upgrades are refused.
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await client.ws_connect(ws_url(server, "/twilio/whisper"))
        assert info.value.status == 403
        leg = TwilioWhisperLeg(await client.ws_connect(ws_url(server, "/twilio/whisper"),
                                                       headers={"x-twilio-signature": sign(TOKEN, whisper_url)}))
        await leg.start(customer)
        reader = asyncio.create_task(leg.read())
        call_ws = await client.ws_connect(ws_url(server, "/twilio/stream"),
                                          headers={"x-twilio-signature": sign(TOKEN, stream_url)})
        twilio = await stream_customer_call(call_ws, customer, angry_start, speed=1.5)
        async with asyncio.timeout(20):
            await leg.played.wait()
        await asyncio.sleep(0.5)  # the echo reaches the session before the call ends
        await twilio.stop()
        await twilio.wait_closed()
        await call_ws.close()
        await leg.ws.close()
        await reader

    first_mark = next(i for i, f in enumerate(leg.frames) if f["event"] == "mark")
    media = leg.frames[:first_mark]
    assert len(media) > 25 and all(f["event"] == "media" for f in media)  # > 0.5 s of speech
    assert all(f["streamSid"] == WHISPER_STREAM for f in leg.frames)
    audio = b"".join(base64.b64decode(f["media"]["payload"], validate=True) for f in media)
    assert {len(base64.b64decode(f["media"]["payload"])) for f in media[:-1]} == {160}
    assert len(set(audio)) > 50  # speech, not a constant
    name = leg.frames[first_mark]["mark"]["name"]
    prompt_id, _, number = name.partition("#")
    assert number == "1"

    _, call = await call_api(server, "GET", f"/api/calls/{customer}")
    assert call["status"] == "ended"
    prompts = {p["id"]: p for p in call["prompts"]}
    assert prompts[prompt_id]["whispered"] is True
    echoed_ids = {n.partition("#")[0] for n in leg.echoed}
    assert all(p["id"] in echoed_ids for p in call["prompts"] if p["whispered"]), call["prompts"]
    _, metrics = await call_api(server, "GET", "/metrics")
    assert 'carecoach_whispers_total{result="played"}' in metrics


async def test_when_speech_fails_the_prompt_still_shows_and_is_not_whispered(
        make_app: Factory, angry_start: np.ndarray) -> None:
    synthesizer = Synthesizer(backend="espeak-ng", voice="nosuchvoice")  # fails deterministically
    server = await make_app(synthesizer=synthesizer)
    await opt_in(server)
    customer = new_call_sid()
    async with aiohttp.ClientSession() as client:
        live = await client.ws_connect(ws_url(server, f"/api/calls/{customer}/live"))
        leg = TwilioWhisperLeg(await client.ws_connect(
            ws_url(server, "/twilio/whisper"),
            headers={"x-twilio-signature": sign(TOKEN, "wss://cc.example.com/twilio/whisper")}))
        await leg.start(customer)
        reader = asyncio.create_task(leg.read())
        call_ws = await client.ws_connect(ws_url(server, "/twilio/stream"), headers={
            "x-twilio-signature": sign(TOKEN, "wss://cc.example.com/twilio/stream")})
        twilio = await stream_customer_call(call_ws, customer, angry_start[: 12 * 8000], speed=1.5)
        prompt: dict[str, Any] | None = None
        async with asyncio.timeout(20):
            while prompt is None:
                event = await live.receive_json()
                if event["type"] == "prompt":
                    prompt = event
        await asyncio.sleep(0.5)
        await twilio.stop()
        await twilio.wait_closed()
        await call_ws.close()
        await live.close()
        await leg.ws.close()
        await reader

    assert prompt["whisper"] and prompt["call_sid"] == customer
    assert leg.frames == []  # nothing was spoken
    _, call = await call_api(server, "GET", f"/api/calls/{customer}")
    assert call["prompts"] and all(p["whispered"] is False for p in call["prompts"])
    _, metrics = await call_api(server, "GET", "/metrics")
    assert 'carecoach_whisper_errors_total{stage="tts"}' in metrics
    synthesizer.close()


# --- configuration ------------------------------------------------------------------------------------


def test_whisper_configuration_is_validated_and_needs_credentials_and_app() -> None:
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "CARECOACH_WHISPER_APP_SID": APP_SID,
           "CARECOACH_WHISPER_CALLER_ID": CALLER_ID, "CARECOACH_TWILIO_API_URL": "http://127.0.0.1:9/"}
    config = load_config(env)
    assert (config.whisper_app_sid, config.whisper_caller_id, config.twilio_api_url) == (
        APP_SID, CALLER_ID, "http://127.0.0.1:9")
    assert config.whisper_available and TOKEN not in repr(config)
    assert load_config({}).twilio_api_url is None  # Twilio's own API
    for missing in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "CARECOACH_WHISPER_APP_SID"):
        assert not load_config({k: v for k, v in env.items() if k != missing}).whisper_available
    for name, bad in (("CARECOACH_WHISPER_APP_SID", "AP123"), ("CARECOACH_WHISPER_APP_SID", "PN" + "b" * 32),
                      ("CARECOACH_WHISPER_CALLER_ID", "5550009999"), ("CARECOACH_TWILIO_API_URL", "ftp://x")):
        with pytest.raises(ConfigError) as info:
            load_config({**env, name: bad})
        assert str(info.value).startswith(f"{name}=") and "\n" not in str(info.value)


def test_whisper_configuration_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "carecoach.toml"
    path.write_text(f'whisper_app_sid = "{APP_SID}"\nwhisper_caller_id = "{CALLER_ID}"\n'
                    'twilio_api_url = "https://api.twilio.com"\n')
    config = load_config({}, path)
    assert config.whisper_app_sid == APP_SID and config.twilio_api_url == "https://api.twilio.com"
    assert not config.whisper_available  # no credentials


async def test_shutdown_closes_the_whisper_leg_like_a_call(make_app: Factory) -> None:
    server = await make_app()
    async with aiohttp.ClientSession() as client:
        leg = TwilioWhisperLeg(await client.ws_connect(
            ws_url(server, "/twilio/whisper"),
            headers={"x-twilio-signature": sign(TOKEN, "wss://cc.example.com/twilio/whisper")}))
        await leg.start(new_call_sid())
        await server.close()  # runs the app's shutdown, as SIGTERM does
        closing = await leg.ws.receive()
    assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1001)
