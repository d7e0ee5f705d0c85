"""FreeSWITCH mod_audio_fork at `WS /audiofork`, written from the module's README: a real aiohttp client
plays FreeSWITCH (metadata text frame, then interleaved L16 binary frames) against a real server."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.conftest import ServerFactory, get_json, wait_stored, ws_url
from voice.audiofork import parse_metadata
from voice.codec import resample

FRAME_MS = 20


async def fork(ws: aiohttp.ClientWebSocketResponse, stereo: np.ndarray, rate: int = 8000) -> None:
    step = rate * FRAME_MS // 1000
    for i in range(0, len(stereo), step):
        if i % (step * 50) == 0:
            await asyncio.sleep(0)
        await ws.send_bytes(np.ascontiguousarray(stereo[i:i + step]).astype("<i2").tobytes())


def test_metadata() -> None:
    assert parse_metadata('{"call_sid": "abc"}')["call_sid"] == "abc"
    assert parse_metadata("{'call_sid':'abc','mix':'mono','rate':'16k'}")["mix"] == "mono"
    for bad in ("nope", "[]", "{}", '{"call_sid": "a", "mix": "mixed"}', '{"call_sid": "a", "rate": 44100}'):
        with pytest.raises(ValueError):
            parse_metadata(bad)


async def test_forked_call_arrives_like_a_twilio_call(make_server: ServerFactory,
                                                      calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    samples, truth = calm_call
    audio = samples[: int((truth["turns"][1]["end"] + 0.8) * 8000)]
    server = await make_server()
    call_sid = str(uuid.uuid4())
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(ws_url(server, "/audiofork"), protocols=("audio.drachtio.org",)) as ws:
            await ws.send_str(json.dumps({"call_sid": call_sid, "from": "+15550100", "to": "+15550199",
                                          "agent": "dana", "mix": "stereo", "rate": 8000}))
            await fork(ws, audio)
            await ws.send_bytes(b"\x01\x02\x03")  # not whole stereo samples: counted, dropped
        call = await wait_stored(server, call_sid)
    assert call["carrier"] == "freeswitch" and call["status"] == "ended" and call["frame_errors"] == 1
    assert call["from"] == "+15550100" and call["agent"] == "dana"
    assert call["duration"] == pytest.approx(len(audio) / 8000, abs=0.03)
    assert {u["speaker"] for u in call["utterances"]} == {"customer", "agent"}


async def test_16k_is_resampled_and_a_dropped_connection_is_interrupted(make_server: ServerFactory) -> None:
    server = await make_server()
    call_sid = str(uuid.uuid4())
    tone = (np.sin(np.arange(16000) * 2 * np.pi * 300 / 16000) * 3000).astype(np.int16)
    async with aiohttp.ClientSession() as client:
        ws = await client.ws_connect(ws_url(server, "/audiofork"))
        await ws.send_str(f"{{'call_sid':'{call_sid}','mix':'mono','rate':'16k'}}")
        await fork(ws, tone[:, None], rate=16000)
        await asyncio.sleep(0.2)
    # The client session is gone without a close frame: the TCP connection just ended.
    call = await wait_stored(server, call_sid)
    assert call["status"] == "interrupted"
    assert call["duration"] == pytest.approx(1.0, abs=0.03)
    assert resample(tone, 16000, 8000).shape == (8000,)


@pytest.mark.parametrize("first", ["audio", "bad_metadata", "mixed"])
async def test_bad_start_stores_nothing(make_server: ServerFactory, first: str) -> None:
    server = await make_server()
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(ws_url(server, "/audiofork")) as ws:
            if first == "audio":
                await ws.send_bytes(bytes(640))
            else:
                await ws.send_str("{not json" if first == "bad_metadata" else
                                  json.dumps({"call_sid": str(uuid.uuid4()), "mix": "mixed"}))
            assert (await ws.receive(timeout=10)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert (await get_json(server, "/api/calls"))["calls"] == []


async def test_needs_a_token_when_the_service_has_them(make_server: ServerFactory) -> None:
    server = await make_server(api_tokens={"sup-token": "supervisor"})
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(ws_url(server, "/audiofork"))
        assert refused.value.request_info.url.path == "/login"  # the service's own sign-in, not a socket
        call_sid = str(uuid.uuid4())
        async with client.ws_connect(ws_url(server, "/audiofork?token=sup-token")) as ws:
            await ws.send_str(json.dumps({"call_sid": call_sid}))
            await fork(ws, np.zeros((800, 2), dtype=np.int16))
    assert (await wait_stored(server, call_sid, headers={"Authorization": "Bearer sup-token"}))["status"] == "ended"
