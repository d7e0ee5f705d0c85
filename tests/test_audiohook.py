"""Genesys AudioHook v2 conformance, written from Genesys' public protocol documentation: a real aiohttp
WebSocket client plays Genesys against a real server with the real PocketSphinx engine.

The client below is ours (`AudioHookClient`): it keeps `seq`, `serverseq` and `position` as the
specification asks of Genesys, signs the upgrade (RFC 9421) and streams the test calls as interleaved
stereo PCMU, external (customer) then internal (agent).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import uuid
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.conftest import ServerFactory, first_turns, get_json, live_until_ended, wait_stored, ws_url
from voice.audiohook import NULL_UUID, Open, ProtocolError, choose_media, duration, parse_message
from voice.codec import pcm16_to_ulaw
from voice.httpsig import NonceCache, SignatureError, sign, verify
from voice.simulate import stream_call

API_KEY = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"
SECRET_B64 = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
SECRET = base64.b64decode(SECRET_B64)
ORG = "d7934305-0972-4844-938e-9060eef73d05"
FRAME = 160  # samples per channel in one binary frame (20 ms)
STEREO_PCMU = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}


# --- the documented signature example and the verifier's refusals ------------------------------------------

DOC_HEADERS = {
    "audiohook-organization-id": ORG,
    "audiohook-session-id": "30b0e395-84d3-4570-ac13-9a62d8f514c0",
    "audiohook-correlation-id": "e160e428-53e2-487c-977d-96989bf5c99d",
    "x-api-key": API_KEY,
}
DOC_INPUT = ('sig1=("@request-target" "@authority" "audiohook-organization-id" "audiohook-session-id" '
             '"audiohook-correlation-id" "x-api-key");keyid="SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";'
             'nonce="VGhpc0lzQVVuaXF1ZU5vbmNl";alg="hmac-sha256";created=1641013200;expires=3282026430')
DOC_SIGNATURE = "sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:"
DOC_DERIVED = {"@request-target": "/api/v1/voicebiometrics/ws", "@authority": "audiohook.example.com"}


def doc_verify(**changes: Any) -> None:
    args: dict[str, Any] = {
        "signature_input": DOC_INPUT, "signature": DOC_SIGNATURE, "derived": DOC_DERIVED,
        "fields": {k: [v] for k, v in DOC_HEADERS.items()}, "key_id": API_KEY, "secret": SECRET,
        "now": 1641013201}
    args.update(changes)
    verify(**args)


def test_documented_example_signature_verifies() -> None:
    doc_verify()
    signed = sign(derived=DOC_DERIVED, fields=DOC_HEADERS, key_id=API_KEY, secret=SECRET,
                  nonce="VGhpc0lzQVVuaXF1ZU5vbmNl", created=1641013200, expires=3282026430)
    assert signed == {"Signature-Input": DOC_INPUT, "Signature": DOC_SIGNATURE}


@pytest.mark.parametrize(("change", "why"), [
    ({"derived": {**DOC_DERIVED, "@request-target": "/other"}}, "mismatch"),
    ({"fields": {**{k: [v] for k, v in DOC_HEADERS.items()}, "audiohook-session-id": [str(uuid.uuid4())]}},
     "mismatch"),
    ({"secret": b"another secret"}, "mismatch"),
    ({"key_id": "another key"}, "keyid"),
    ({"now": 1641013200 + 3600}, "too old"),
    ({"now": 1641013200 - 60}, "future"),
    ({"signature": None}, "no Signature"),
    ({"signature_input": DOC_INPUT.replace('"x-api-key"', "")}, "covers"),
    ({"signature_input": DOC_INPUT.replace("hmac-sha256", "rsa-pss-sha512")}, "alg"),
    ({"signature_input": DOC_INPUT.replace("sig1=(", "sig1=((")}, "malformed"),
    ({"signature": "sig1=:!!!:"}, "malformed"),
    ({"fields": {k: [v] for k, v in DOC_HEADERS.items() if k != "audiohook-correlation-id"}}, "missing"),
    ({"derived": {**DOC_DERIVED, "@authority": "audiohook.exämple.com"}}, "not ASCII"),
])
def test_signature_refusals(change: dict[str, Any], why: str) -> None:
    with pytest.raises(SignatureError, match=why):
        doc_verify(**change)


def test_a_nonce_is_accepted_once() -> None:
    nonces = NonceCache()
    doc_verify(nonces=nonces)
    with pytest.raises(SignatureError, match="replayed"):
        doc_verify(nonces=nonces)


def test_media_choice_prefers_stereo_pcmu_at_8k() -> None:
    offers = parse_message(json.dumps({
        "version": "2", "id": str(uuid.uuid4()), "type": "open", "seq": 1, "serverseq": 0, "position": "PT0S",
        "parameters": {"organizationId": ORG, "conversationId": str(uuid.uuid4()),
                       "participant": {"id": str(uuid.uuid4()), "ani": "+1555", "aniName": "", "dnis": "+1666"},
                       "media": [{**STEREO_PCMU, "rate": 16000}, {**STEREO_PCMU, "channels": ["external"]},
                                 {**STEREO_PCMU, "format": "L16"}, STEREO_PCMU,
                                 {"type": "video", "format": "H264", "channels": [], "rate": 8000}]}}))
    assert isinstance(offers, Open)
    chosen = choose_media(offers.media)
    assert chosen is not None and chosen.to_json() == STEREO_PCMU
    assert choose_media(()) is None
    assert duration(1.23456) == "PT1.235S" and duration(0) == "PT0.0S"


@pytest.mark.parametrize("text", [
    "not json", "[]", json.dumps({"version": "1", "id": str(uuid.uuid4()), "type": "ping", "seq": 1,
                                  "serverseq": 0, "position": "PT0S", "parameters": {}}),
    json.dumps({"version": "2", "id": "nope", "type": "ping", "seq": 1, "serverseq": 0, "position": "PT0S",
                "parameters": {}}),
    json.dumps({"version": "2", "id": str(uuid.uuid4()), "type": "ping", "seq": -1, "serverseq": 0,
                "position": "PT0S", "parameters": {}}),
    json.dumps({"version": "2", "id": str(uuid.uuid4()), "type": "ping", "seq": 1, "serverseq": 0,
                "position": "1.0", "parameters": {}}),
])
def test_malformed_envelopes_are_refused(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_message(text)


# --- a Genesys client ------------------------------------------------------------------------------------


class AudioHookClient:
    """Genesys' side of one AudioHook session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session_id: str, conversation_id: str) -> None:
        self.ws = ws
        self.id = session_id
        self.conversation_id = conversation_id
        self.seq = 0
        self.serverseq = 0
        self.samples = 0  # position, in samples
        self.received: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                message = json.loads(msg.data)
                self.serverseq = message["seq"]
                self.received.append(message)
                self._arrived.set()

    async def send(self, kind: str, **parameters: Any) -> None:
        self.seq += 1
        await self.ws.send_str(json.dumps({
            "version": "2", "id": self.id, "type": kind, "seq": self.seq, "serverseq": self.serverseq,
            "position": duration(self.samples / 8000), "parameters": parameters}))

    async def open(self, media: list[dict[str, Any]] | None = None, ani: str = "+15550100") -> None:
        await self.send("open", organizationId=ORG, conversationId=self.conversation_id,
                        participant={"id": str(uuid.uuid4()), "ani": ani, "aniName": "Pat", "dnis": "+15550199"},
                        media=media or [STEREO_PCMU], language="en-US")

    async def expect(self, kind: str, within: float = 10) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while True:
                for message in self.received:
                    if message["type"] == kind:
                        return message
                self._arrived.clear()
                await self._arrived.wait()
        return await asyncio.wait_for(wait(), within)

    async def audio(self, stereo: np.ndarray, speed: float = 0) -> None:
        """Stream (n, 2) int16 samples as interleaved PCMU frames: external (left), internal (right)."""
        began = time.monotonic()
        for i in range(0, len(stereo), FRAME):
            if speed > 0:
                await asyncio.sleep(max(0.0, began + i / 8000 / speed - time.monotonic()))
            elif i % (FRAME * 50) == 0:
                await asyncio.sleep(0)
            chunk = np.ascontiguousarray(stereo[i:i + FRAME])
            await self.ws.send_bytes(pcm16_to_ulaw(chunk.tobytes()))
            self.samples += len(chunk)

    async def close(self) -> dict[str, Any]:
        await self.send("close", reason="end")
        closed = await self.expect("closed", within=30)
        await self.ws.close()
        return closed


def upgrade_headers(server: Any, session_id: str, *, api_key: str = API_KEY, secret: bytes | None = SECRET,
                    nonce: str | None = None) -> dict[str, str]:
    headers = {"Audiohook-Organization-Id": ORG, "Audiohook-Session-Id": session_id,
               "Audiohook-Correlation-Id": str(uuid.uuid4()), "X-API-KEY": api_key}
    if secret is not None:
        headers |= sign(derived={"@request-target": "/audiohook", "@authority": f"127.0.0.1:{server.port}"},
                        fields=headers, key_id=api_key, secret=secret,
                        nonce=nonce or base64.b64encode(secrets.token_bytes(18)).decode(),
                        created=int(time.time()), expires=int(time.time()) + 60)
    return headers


async def connect(client: aiohttp.ClientSession, server: Any, conversation_id: str | None = None,
                  **kwargs: Any) -> AudioHookClient:
    session_id = str(uuid.uuid4())
    ws = await client.ws_connect(ws_url(server, "/audiohook"), headers=upgrade_headers(server, session_id, **kwargs))
    return AudioHookClient(ws, session_id, conversation_id or str(uuid.uuid4()))


async def secured_server(make_server: ServerFactory, **overrides: Any) -> Any:
    return await make_server(audiohook_api_key=API_KEY, audiohook_client_secret=SECRET, **overrides)


# --- over the wire ---------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_call_arrives_like_a_twilio_call(make_server: ServerFactory,
                                               calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    samples, _ = calm_call
    server = await secured_server(make_server)
    live_events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(server, "/api/live")) as live:
        listener = asyncio.get_running_loop().create_task(live_until_ended(live, live_events))
        genesys = await connect(client, server)
        await genesys.open()
        opened = await genesys.expect("opened")
        assert opened["parameters"]["media"] == [STEREO_PCMU] and opened["parameters"]["startPaused"] is False
        assert opened["clientseq"] == 1 and opened["seq"] == 1 and opened["id"] == genesys.id
        await genesys.audio(samples)
        await genesys.send("ping")
        pong = await genesys.expect("pong")
        assert pong["clientseq"] == genesys.seq
        closed = await genesys.close()
        assert closed["clientseq"] == genesys.seq
        await asyncio.wait_for(listener, 60)

    call_sid = genesys.conversation_id
    assert {e["call_sid"] for e in live_events} == {call_sid}
    kinds = [e["type"] for e in live_events]
    assert kinds[0] == "call_started" and kinds[-1] == "call_ended" and "utterance" in kinds
    call = await get_json(server, f"/api/calls/{call_sid}")
    assert call["carrier"] == "audiohook" and call["status"] == "ended"
    assert call["from"] == "+15550100" and call["to"] == "+15550199" and call["stream_sid"] == genesys.id
    assert call["duration"] == pytest.approx(len(samples) / 8000, abs=0.05)
    assert {u["speaker"] for u in call["utterances"]} == {"customer", "agent"}
    assert call["frame_errors"] == 0
    # The same record as a Twilio call: listed, with a replay page.
    listed = await get_json(server, "/api/calls")
    assert [c["call_sid"] for c in listed["calls"]] == [call_sid]
    async with aiohttp.ClientSession() as client, client.get(server.make_url(f"/calls/{call_sid}")) as page:
        assert page.status == 200
    # Transcripts went back to Genesys as `event` entities, with server seq numbers in order.
    transcripts = [e for m in genesys.received if m["type"] == "event" for e in m["parameters"]["entities"]
                   if e["type"] == "transcript"]
    assert transcripts and {t["data"]["channel"] for t in transcripts} <= {"external", "internal"}
    assert all(t["data"]["alternatives"][0]["interpretations"][0]["transcript"] for t in transcripts)
    assert [m["seq"] for m in genesys.received] == list(range(1, len(genesys.received) + 1))


@pytest.mark.slow
async def test_same_audio_gives_the_same_customer_transcript_as_twilio(
        make_server: ServerFactory, calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    audio = first_turns(calm_call, 4)
    server = await secured_server(make_server)
    twilio = await stream_call(audio, ws_url(server, "/twilio/stream"), speed=0)
    async with aiohttp.ClientSession() as client:
        genesys = await connect(client, server)
        await genesys.open()
        await genesys.expect("opened")
        await genesys.audio(audio)
        await genesys.close()
    calls = [await wait_stored(server, sid) for sid in (twilio.call_sid, genesys.conversation_id)]

    def customer(call: dict[str, Any]) -> list[dict[str, Any]]:
        return [u for u in call["utterances"] if u["speaker"] == "customer"]

    # Both carriers send G.711 μ-law on the same clock, so the pipeline sees identical audio. (Agent turns may
    # be shed under ASR overload, which depends on machine load, so only the customer's are compared; word
    # times may differ by a frame.)
    twilio_said, genesys_said = customer(calls[0]), customer(calls[1])
    assert twilio_said and [(u["text"], u["phase"]) for u in twilio_said] == [
        (u["text"], u["phase"]) for u in genesys_said]
    for a, b in zip(twilio_said, genesys_said, strict=True):
        assert a["start"] == pytest.approx(b["start"], abs=0.05) and a["end"] == pytest.approx(b["end"], abs=0.05)
    assert [c["carrier"] for c in calls] == ["twilio", "audiohook"]
    assert calls[0]["duration"] == pytest.approx(calls[1]["duration"], abs=0.02)  # Twilio pads the last frame


@pytest.mark.parametrize("headers", ["wrong_key", "no_signature", "bad_secret", "replay"])
async def test_bad_credentials_get_403_and_nothing_is_stored(make_server: ServerFactory, headers: str) -> None:
    server = await secured_server(make_server)
    session_id = str(uuid.uuid4())
    nonce = base64.b64encode(secrets.token_bytes(18)).decode()
    sent = {
        "wrong_key": upgrade_headers(server, session_id, api_key="not-the-key"),
        "no_signature": upgrade_headers(server, session_id, secret=None),
        "bad_secret": upgrade_headers(server, session_id, secret=b"guess"),
        "replay": upgrade_headers(server, session_id, nonce=nonce),
    }[headers]
    async with aiohttp.ClientSession() as client:
        if headers == "replay":  # the first use of the nonce is fine, the second is a replay
            async with client.ws_connect(ws_url(server, "/audiohook"), headers=sent):
                pass
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(ws_url(server, "/audiohook"), headers=sent)
        assert refused.value.status == 403
    assert (await get_json(server, "/api/calls"))["calls"] == []


async def test_api_key_alone_is_checked(make_server: ServerFactory) -> None:
    server = await make_server(audiohook_api_key=API_KEY)
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(ws_url(server, "/audiohook"), headers={"X-API-KEY": "nope"})
        assert refused.value.status == 403
        genesys = await connect(client, server, secret=None)
        await genesys.open()
        await genesys.expect("opened")
        await genesys.close()


async def test_with_api_tokens_on_audiohook_needs_its_own_key(make_server: ServerFactory) -> None:
    server = await make_server(api_tokens={"admin-token": "admin"})
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(ws_url(server, "/audiohook"), headers={"X-API-KEY": "anything"})
        assert refused.value.status == 403
    keyed = await secured_server(make_server, api_tokens={"admin-token": "admin"})
    async with aiohttp.ClientSession() as client:  # no bearer token: the AudioHook key is the credential
        genesys = await connect(client, keyed)
        await genesys.open()
        await genesys.expect("opened")
        await genesys.close()


async def test_probe_connection_is_answered_but_not_stored(make_server: ServerFactory) -> None:
    server = await secured_server(make_server)
    async with aiohttp.ClientSession() as client:
        genesys = await connect(client, server, conversation_id=NULL_UUID)
        await genesys.open()
        opened = await genesys.expect("opened")
        assert opened["parameters"]["media"] == [STEREO_PCMU]
        await genesys.audio(np.zeros((1600, 2), dtype=np.int16))
        await genesys.close()
    assert (await get_json(server, "/api/calls"))["calls"] == []


async def test_audio_before_open_is_refused_with_disconnect(make_server: ServerFactory) -> None:
    server = await secured_server(make_server)
    async with aiohttp.ClientSession() as client:
        genesys = await connect(client, server)
        await genesys.audio(np.zeros((320, 2), dtype=np.int16))
        disconnect = await genesys.expect("disconnect")
        assert disconnect["parameters"]["reason"] == "error" and "open" in disconnect["parameters"]["info"]
        await genesys.ws.close()
    assert (await get_json(server, "/api/calls"))["calls"] == []


async def test_no_open_at_all_times_out(make_server: ServerFactory) -> None:
    server = await secured_server(make_server, handshake_timeout=0.3)
    async with aiohttp.ClientSession() as client:
        genesys = await connect(client, server)
        await asyncio.wait_for(genesys.reader, 10)  # the server hung up on us
        assert genesys.ws.closed
    assert (await get_json(server, "/api/calls"))["calls"] == []


async def test_unusable_media_offer_is_refused(make_server: ServerFactory) -> None:
    server = await secured_server(make_server)
    async with aiohttp.ClientSession() as client:
        genesys = await connect(client, server)
        await genesys.open(media=[{**STEREO_PCMU, "rate": 16000}])
        disconnect = await genesys.expect("disconnect")
        assert disconnect["parameters"]["reason"] == "error"
        await genesys.close()
    assert (await get_json(server, "/api/calls"))["calls"] == []


async def test_malformed_messages_are_counted_and_the_call_goes_on(
        make_server: ServerFactory, calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    server = await secured_server(make_server)
    audio = first_turns(calm_call, 2)
    async with aiohttp.ClientSession() as client:
        genesys = await connect(client, server)
        await genesys.open()
        await genesys.expect("opened")
        await genesys.audio(audio[: len(audio) // 2])
        await genesys.ws.send_str("{not json")
        await genesys.ws.send_str(json.dumps({"version": "2", "id": genesys.id, "type": "ping"}))
        await genesys.ws.send_bytes(b"\x7f" * 3)  # not a whole stereo sample
        await genesys.send("mystery")
        await genesys.send("update", language="en-GB")
        assert (await genesys.expect("updated"))["clientseq"] == genesys.seq
        await genesys.audio(audio[len(audio) // 2:])
        await genesys.send("error", code=500, message="client trouble")
        await genesys.close()
    call = await wait_stored(server, genesys.conversation_id)
    assert call["status"] == "ended" and call["frame_errors"] == 5
    assert any(u["speaker"] == "customer" for u in call["utterances"])
    async with aiohttp.ClientSession() as client, client.get(server.make_url("/metrics")) as response:
        metrics = await response.text()
    for reason in ("malformed", "unknown_type", "client_error"):
        assert f'carecoach_frame_errors_total{{reason="{reason}"}}' in metrics


@pytest.mark.slow
async def test_peer_closing_abruptly_gives_an_interrupted_call_with_its_transcript(
        make_server: ServerFactory, calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    server = await secured_server(make_server)
    async with aiohttp.ClientSession() as client:
        genesys = await connect(client, server)
        await genesys.open()
        await genesys.expect("opened")
        await genesys.audio(first_turns(calm_call, 2))
    # The client session is gone without `close`: the TCP connection simply ended.
    call = await wait_stored(server, genesys.conversation_id)
    assert call["status"] == "interrupted" and call["carrier"] == "audiohook"
    assert {u["speaker"] for u in call["utterances"]} == {"customer", "agent"}


async def test_pause_and_discarded_audio_keep_the_timeline(make_server: ServerFactory) -> None:
    server = await secured_server(make_server)
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 3000).astype(np.int16)
    stereo = np.stack([tone, tone], axis=1)
    async with aiohttp.ClientSession() as client:
        genesys = await connect(client, server)
        await genesys.open()
        await genesys.expect("opened")
        await genesys.audio(stereo)  # 1 s
        await genesys.send("paused")
        genesys.samples += 2 * 8000  # 2 s not sent while paused
        await genesys.send("resumed", start=duration(1.0), discarded=duration(2.0))
        await genesys.audio(stereo)  # 1 s more
        await genesys.close()
    call = await wait_stored(server, genesys.conversation_id)
    assert call["duration"] == pytest.approx(4.0, abs=0.03)
    assert call["frame_errors"] == 0


@pytest.mark.slow
async def test_a_client_that_does_not_read_never_stalls_the_call(
        make_server: ServerFactory, calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    server = await secured_server(make_server)
    audio = first_turns(calm_call, 4)
    async with aiohttp.ClientSession() as client:
        session_id = str(uuid.uuid4())
        ws = await client.ws_connect(ws_url(server, "/audiohook"), headers=upgrade_headers(server, session_id))
        # A raw client: it writes the whole call without ever reading what the server sends back.
        genesys = AudioHookClient.__new__(AudioHookClient)
        genesys.ws, genesys.id, genesys.conversation_id = ws, session_id, str(uuid.uuid4())
        genesys.seq = genesys.serverseq = genesys.samples = 0
        await genesys.open()
        await genesys.audio(audio)
        # Every utterance is stored while the client still hasn't read a byte.
        for _ in range(400):
            stored = await get_json(server, f"/api/calls/{genesys.conversation_id}")
            if {u["speaker"] for u in stored["utterances"]} == {"customer", "agent"}:
                break
            await asyncio.sleep(0.05)
        assert stored["status"] == "live" and stored["utterances"]
        await genesys.send("close", reason="end")
        kinds = []
        async for msg in ws:
            kinds.append(json.loads(msg.data)["type"])
            if kinds[-1] == "closed":
                break
        assert kinds[0] == "opened" and kinds[-1] == "closed" and "event" in kinds
        await ws.close()
    assert (await wait_stored(server, genesys.conversation_id))["status"] == "ended"


async def test_too_many_calls_is_refused_before_the_upgrade(make_server: ServerFactory) -> None:
    server = await secured_server(make_server, max_calls=1)
    async with aiohttp.ClientSession() as client:
        first = await connect(client, server)
        await first.open()
        await first.expect("opened")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await connect(client, server)
        assert refused.value.status == 503
        await first.close()
