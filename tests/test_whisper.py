"""voice.whisper: the whisper Media Stream over a real aiohttp WebSocket pair (we are the server, the
test plays Twilio), in virtual time; and the coaching-leg REST calls against a local fake of Twilio's
REST API."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from voice.twilio import conference_twiml
from voice.whisper import (
    CoachingLegs,
    WhisperChannel,
    WhisperError,
    WhisperRegistry,
    whisper_stream_url,
    whisper_twiml,
)

ACCOUNT = "AC" + "a" * 32
TOKEN = "test-auth-token"
APP = "AP" + "b" * 32
CUSTOMER_CALL = "CA" + "1" * 32
AGENT_LEG = "CA" + "2" * 32
WHISPER_LEG = "CA" + "3" * 32
CONFERENCE = "CF" + "4" * 32
STREAM = "MZ" + "5" * 32


class VirtualClock:
    """`clock` and `sleep` for WhisperChannel: time passes only when it sleeps; `hold()` parks sleepers."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.parked = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if not self.gate.is_set():
            self.parked.set()
        await self.gate.wait()
        await asyncio.sleep(0)


@dataclass
class Pair:
    channel: WhisperChannel
    twilio: aiohttp.ClientWebSocketResponse
    clock: VirtualClock
    registry: WhisperRegistry
    frames: list[dict[str, Any]] = field(default_factory=list)

    async def read_until_mark(self, name: str) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while True:
            frame = json.loads(await asyncio.wait_for(self.twilio.receive_str(), 5))
            got.append(frame)
            if frame["event"] == "mark" and frame["mark"]["name"] == name:
                return got

    async def echo_mark(self, name: str) -> None:
        await self.twilio.send_str(json.dumps({"event": "mark", "sequenceNumber": "9", "streamSid": STREAM,
                                               "mark": {"name": name}}))


PairFactory = Callable[..., Awaitable[Pair]]


@pytest_asyncio.fixture
async def make_pair() -> AsyncIterator[PairFactory]:
    servers: list[TestServer] = []
    sessions: list[aiohttp.ClientSession] = []

    async def factory(lead: float = 0.0) -> Pair:
        clock = VirtualClock()
        registry = WhisperRegistry()
        channels: asyncio.Queue[WhisperChannel] = asyncio.Queue()

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            channel = WhisperChannel(ws, sleep=clock.sleep, clock=clock, lead=lead)
            channels.put_nowait(channel)
            await registry.serve(channel)
            return ws

        app = web.Application()
        app.router.add_get("/twilio/whisper", handler)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        session = aiohttp.ClientSession()
        sessions.append(session)
        twilio = await session.ws_connect(server.make_url("/twilio/whisper"))
        await twilio.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await twilio.send_str(json.dumps({
            "event": "start", "sequenceNumber": "1", "streamSid": STREAM,
            "start": {"streamSid": STREAM, "accountSid": ACCOUNT, "callSid": WHISPER_LEG, "tracks": ["inbound"],
                      "customParameters": {"call_sid": CUSTOMER_CALL, "agent_call_sid": AGENT_LEG},
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
        }))
        channel = await asyncio.wait_for(channels.get(), 5)
        async with asyncio.timeout(5):
            await channel.wait_started()
        return Pair(channel, twilio, clock, registry)

    yield factory
    for session in sessions:
        await session.close()
    for server in servers:
        await server.close()


def _payload(frame: dict[str, Any]) -> bytes:
    return base64.b64decode(frame["media"]["payload"])


# --- WhisperChannel -------------------------------------------------------------------------------


async def test_say_sends_paced_160_byte_media_then_one_mark(make_pair: PairFactory) -> None:
    pair = await make_pair(lead=0.0)
    assert pair.channel.stream_sid == STREAM
    assert pair.channel.coached_call_sid == CUSTOMER_CALL
    assert pair.registry.get(CUSTOMER_CALL) is pair.channel
    audio = bytes(range(256)) * 31 + b"\x7f" * 50  # 7986 bytes: 49 full chunks and one of 146
    assert await pair.channel.say(audio, "let-them-vent#1") is True
    frames = await pair.read_until_mark("let-them-vent#1")
    media, mark = frames[:-1], frames[-1]
    assert all(f["event"] == "media" and f["streamSid"] == STREAM for f in media)
    assert set(media[0]) == {"event", "streamSid", "media"} and set(media[0]["media"]) == {"payload"}
    sizes = [len(_payload(f)) for f in media]
    assert sizes[:-1] == [160] * (len(sizes) - 1) and 0 < sizes[-1] <= 160
    assert b"".join(_payload(f) for f in media) == audio
    assert mark == {"event": "mark", "streamSid": STREAM, "mark": {"name": "let-them-vent#1"}}
    # Real-time pacing, in virtual time: one 20 ms sleep per chunk, summing to the audio's duration.
    assert pair.clock.sleeps[:-1] == pytest.approx([0.02] * (len(sizes) - 1))
    assert sum(pair.clock.sleeps) == pytest.approx(len(audio) / 8000)


async def test_lead_sends_the_first_100ms_ahead(make_pair: PairFactory) -> None:
    pair = await make_pair(lead=0.1)
    audio = b"\x55" * 8000
    assert await pair.channel.say(audio, "one-second")
    await pair.read_until_mark("one-second")
    assert sum(pair.clock.sleeps) == pytest.approx(1.0 - 0.1)


async def test_higher_priority_whisper_clears_the_one_playing(make_pair: PairFactory) -> None:
    pair = await make_pair()
    pair.clock.gate.clear()  # park the first whisper in its first sleep
    low = asyncio.create_task(pair.channel.say(b"\x11" * 8000, "low", priority=1))
    await asyncio.wait_for(pair.clock.parked.wait(), 5)
    high = asyncio.create_task(pair.channel.say(b"\x22" * 480, "high", priority=5))
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["event"] != "clear":  # the clear goes out while "low" is still parked
        frames.append(json.loads(await asyncio.wait_for(pair.twilio.receive_str(), 5)))
    pair.clock.gate.set()
    assert await high is True
    assert await low is False
    frames += await pair.read_until_mark("high")
    events = [f["event"] for f in frames]
    cleared = events.index("clear")
    assert frames[cleared] == {"event": "clear", "streamSid": STREAM}
    assert all(_payload(f) == b"\x11" * 160 for f in frames[:cleared])  # only the low one's audio before
    after = frames[cleared + 1:]
    assert [f["event"] for f in after] == ["media"] * 3 + ["mark"]
    assert all(set(_payload(f)) == {0x22} for f in after[:-1])
    assert not any(f["event"] == "mark" and f["mark"]["name"] == "low" for f in frames)


async def test_equal_priority_whispers_queue_without_clear(make_pair: PairFactory) -> None:
    pair = await make_pair()
    results = await asyncio.gather(pair.channel.say(b"\x11" * 320, "a"), pair.channel.say(b"\x22" * 320, "b"))
    assert results == [True, True]
    frames = await pair.read_until_mark("b")
    assert [f["event"] for f in frames] == ["media", "media", "mark", "media", "media", "mark"]
    assert frames[2]["mark"]["name"] == "a"


async def test_echoed_marks_mark_whispers_played(make_pair: PairFactory) -> None:
    pair = await make_pair()
    assert await pair.channel.say(b"\x33" * 800, "card-1")
    await pair.read_until_mark("card-1")
    assert "card-1" not in pair.channel.played
    waiter = asyncio.create_task(pair.channel.wait_played("card-1"))
    await pair.echo_mark("card-1")
    assert await asyncio.wait_for(waiter, 5) is True
    assert pair.channel.played == {"card-1"}


async def test_clear_interrupts_a_sent_but_unplayed_whisper(make_pair: PairFactory) -> None:
    pair = await make_pair()
    assert await pair.channel.say(b"\x33" * 800, "calm", priority=0)
    waiter = asyncio.create_task(pair.channel.wait_played("calm"))
    assert await pair.channel.say(b"\x44" * 160, "urgent", priority=9)
    frames = await pair.read_until_mark("urgent")
    assert [f["event"] for f in frames][-3:] == ["clear", "media", "mark"]
    assert await asyncio.wait_for(waiter, 5) is False
    await pair.echo_mark("calm")  # Twilio returns the pending mark when it clears
    await pair.echo_mark("urgent")
    assert await asyncio.wait_for(pair.channel.wait_played("urgent"), 5) is True
    assert pair.channel.interrupted == {"calm"}
    assert pair.channel.played == {"urgent"}


async def test_stop_closes_the_channel_and_unregisters_it(make_pair: PairFactory) -> None:
    pair = await make_pair()
    await pair.twilio.send_str(json.dumps({"event": "stop", "streamSid": STREAM, "stop": {}}))
    await pair.twilio.receive()  # the server closes after `stop`
    assert pair.channel.closed
    assert pair.registry.get(CUSTOMER_CALL) is None and len(pair.registry) == 0
    with pytest.raises(WhisperError) as info:
        await pair.channel.say(b"\x00" * 160, "late")
    assert info.value.retryable is False


async def test_say_before_start_is_retryable() -> None:
    channel = WhisperChannel(web.WebSocketResponse())
    with pytest.raises(WhisperError) as info:
        await channel.say(b"\x00" * 160, "early")
    assert info.value.retryable is True


# --- TwiML -----------------------------------------------------------------------------------------


def test_whisper_twiml_connects_a_stream_with_parameters() -> None:
    url = whisper_stream_url("https://coach.example.com/")
    assert url == "wss://coach.example.com/twilio/whisper"
    root = ET.fromstring(whisper_twiml(url, {"call_sid": CUSTOMER_CALL, "agent_call_sid": AGENT_LEG}))
    assert root.tag == "Response" and [c.tag for c in root] == ["Connect"]
    stream = root.find("Connect/Stream")
    assert stream is not None and stream.get("url") == url
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"call_sid": CUSTOMER_CALL, "agent_call_sid": AGENT_LEG}


def test_conference_twiml_streams_then_joins_the_conference() -> None:
    xml = conference_twiml("wss://coach.example.com/twilio/stream", {"from": "+15550001111", "agent": ""},
                           f"cc-{CUSTOMER_CALL}", "https://coach.example.com/twilio/status")
    root = ET.fromstring(xml)
    assert [c.tag for c in root] == ["Start", "Dial"]
    stream = root.find("Start/Stream")
    assert stream is not None and stream.get("track") == "both_tracks"
    assert [p.get("name") for p in stream.findall("Parameter")] == ["from"]
    conference = root.find("Dial/Conference")
    assert conference is not None and conference.text == f"cc-{CUSTOMER_CALL}"
    assert conference.get("statusCallback") == "https://coach.example.com/twilio/status"
    assert conference.get("statusCallbackEvent") == "start end join leave"
    assert conference.get("endConferenceOnExit") == "true" and conference.get("beep") == "false"


# --- CoachingLegs against a fake Twilio REST API -----------------------------------------------------


@dataclass
class FakeTwilio:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 201


@pytest_asyncio.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio("")

    async def participants(request: web.Request) -> web.Response:
        form = await request.post()
        fake.requests.append({"method": request.method, "path": request.path, "match": dict(request.match_info),
                              "form": {k: str(v) for k, v in form.items()},
                              "events": [str(v) for v in form.getall("StatusCallbackEvent", [])],
                              "authorization": request.headers.get("Authorization", ""),
                              "accept": request.headers.get("Accept", "")})
        account, conference = request.match_info["account"], request.match_info["conference"]
        if fake.status >= 400:
            return web.json_response({"code": 20404 if fake.status == 404 else 20500,
                                      "message": "fake failure", "more_info": "https://www.twilio.com/docs/errors",
                                      "status": fake.status}, status=fake.status)
        call_sid = WHISPER_LEG if form.get("Coaching") == "true" else AGENT_LEG
        return web.json_response({
            "account_sid": account, "call_sid": call_sid, "label": form.get("Label"),
            "call_sid_to_coach": form.get("CallSidToCoach"), "coaching": form.get("Coaching") == "true",
            "conference_sid": conference, "date_created": "Mon, 23 Nov 2026 10:00:00 +0000",
            "date_updated": "Mon, 23 Nov 2026 10:00:00 +0000", "end_conference_on_exit": False, "muted": False,
            "hold": False, "start_conference_on_enter": False, "status": "queued", "queue_time": "0",
            "uri": f"/2010-04-01/Accounts/{account}/Conferences/{conference}/Participants/{call_sid}.json",
        }, status=201)

    async def participant(request: web.Request) -> web.Response:
        fake.requests.append({"method": request.method, "path": request.path})
        return web.Response(status=204)

    app = web.Application()
    base = "/2010-04-01/Accounts/{account}/Conferences/{conference}/Participants"
    app.router.add_post(base + ".json", participants)
    app.router.add_delete(base + "/{call}.json", participant)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


def _legs(base_url: str) -> CoachingLegs:
    return CoachingLegs(ACCOUNT, TOKEN, whisper_to=f"app:{APP}", caller_id="+15550009999", base_url=base_url,
                        timeout=5)


async def test_start_creates_a_coaching_participant(fake_twilio: FakeTwilio) -> None:
    legs = _legs(fake_twilio.url)
    try:
        assert await legs.start(CONFERENCE, AGENT_LEG, call_sid=CUSTOMER_CALL) == WHISPER_LEG
    finally:
        legs.close()
    [request] = fake_twilio.requests
    assert request["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Conferences/{CONFERENCE}/Participants.json"
    form = request["form"]
    assert form["Coaching"] == "true"
    assert form["CallSidToCoach"] == AGENT_LEG
    assert form["To"] == f"app:{APP}?call_sid={CUSTOMER_CALL}&agent_call_sid={AGENT_LEG}"
    assert form["From"] == "+15550009999"
    assert form["Label"] == "carecoach-whisper"
    assert form["Beep"] == "false"
    assert "Twiml" not in form and "Url" not in form  # the Participants API has neither
    expected = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert request["authorization"] == f"Basic {expected}"
    assert request["accept"] == "application/json"


async def test_add_agent_and_stop(fake_twilio: FakeTwilio) -> None:
    legs = _legs(fake_twilio.url)
    try:
        sid = await legs.add_agent(f"cc-{CUSTOMER_CALL}", "sip:agent7@pbx.example.com", "+15550009999",
                                   status_callback="https://coach.example.com/twilio/status")
        assert sid == AGENT_LEG
        await legs.stop(CONFERENCE, WHISPER_LEG)
    finally:
        legs.close()
    create, delete = fake_twilio.requests
    assert create["match"]["conference"] == f"cc-{CUSTOMER_CALL}"
    assert create["form"]["To"] == "sip:agent7@pbx.example.com"
    assert create["form"]["EndConferenceOnExit"] == "true" and "Coaching" not in create["form"]
    assert create["events"] == ["answered", "completed"]  # a list: the field repeats
    assert delete["method"] == "DELETE" and delete["path"].endswith(f"/Participants/{WHISPER_LEG}.json")


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (404, False), (429, True), (500, True),
                                                   (503, True)])
async def test_rest_errors_map_to_whisper_error(fake_twilio: FakeTwilio, status: int, retryable: bool) -> None:
    fake_twilio.status = status
    legs = _legs(fake_twilio.url)
    try:
        with pytest.raises(WhisperError) as info:
            await legs.start(CONFERENCE, AGENT_LEG)
    finally:
        legs.close()
    assert info.value.retryable is retryable
    assert info.value.status == status


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    legs = _legs(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(WhisperError) as info:
            await legs.start(CONFERENCE, AGENT_LEG)
    finally:
        legs.close()
    assert info.value.retryable is True


async def test_bad_identifiers_never_reach_twilio(fake_twilio: FakeTwilio) -> None:
    legs = _legs(fake_twilio.url)
    try:
        for conference, agent in [("../Calls", AGENT_LEG), (CONFERENCE, "CA-not-a-sid")]:
            with pytest.raises(WhisperError) as info:
                await legs.start(conference, agent)
            assert info.value.retryable is False
    finally:
        legs.close()
    assert fake_twilio.requests == []
    with pytest.raises(ValueError, match="TwiML App"):
        CoachingLegs(ACCOUNT, TOKEN, whisper_to="+15550001111", caller_id="+15550009999")
