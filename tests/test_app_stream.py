"""End to end over real sockets: a Twilio Media Stream into a real server with the real PocketSphinx
engine, checked through the JSON API, live events, recordings and metrics."""

from __future__ import annotations

import asyncio
import io
import json
import re
import wave
from dataclasses import replace
from typing import Any

import aiohttp
import numpy as np
import pytest

from dialog.types import NewCall
from tests.conftest import ServerFactory, get_json, live_until_ended, ws_url
from tests.wer import wer
from voice.calls import CallRefused, finish_session, open_session
from voice.codec import pcm16_to_ulaw
from voice.session import CallSession
from voice.simulate import MediaStreamClient, new_call_sid, stream_call
from voice.state import METRICS, OPENING, SESSIONS, STORE, utc_now

pytestmark = pytest.mark.slow


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


async def test_call_is_transcribed_stored_and_published_live(make_server: ServerFactory,
                                                             calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    samples, truth = calm_call
    server = await make_server()
    call_sid = new_call_sid()
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(server, "/api/live")) as live:
        listener = asyncio.get_running_loop().create_task(live_until_ended(live, events))
        await stream_call(samples, ws_url(server, "/twilio/stream"), speed=0, call_sid=call_sid,
                          parameters={"from": "+15550100", "to": "+15550199", "agent": "dana"})
        await asyncio.wait_for(listener, 30)

    kinds = [e["type"] for e in events]
    assert kinds[0] == "call_started" and kinds[-1] == "call_ended"
    assert "utterance" in kinds
    assert all(e["call_sid"] == call_sid and isinstance(e["at"], float | int) for e in events)
    assert events[-1]["status"] == "ended"

    call = await get_json(server, f"/api/calls/{call_sid}")
    assert call["status"] == "ended"
    assert call["from"] == "+15550100" and call["agent"] == "dana"
    assert call["duration"] == pytest.approx(len(samples) / 8000, abs=0.03)
    utterances = call["utterances"]
    assert {u["speaker"] for u in utterances} == {"customer", "agent"}
    assert [u["start"] for u in utterances] == sorted(u["start"] for u in utterances)
    for u in utterances:
        assert set(u) >= {"seq", "speaker", "start", "end", "text", "phase", "confidence"}
        assert 0 <= u["confidence"] <= 1 and u["phase"] in ("venting", "question", "other")
        # Time-aligned: every utterance lies on a true turn of the same speaker (telephony clock).
        best = max(overlaps((u["start"], u["end"]), (t["start"], t["end"]))
                   for t in truth["turns"] if t["speaker"] == u["speaker"])
        assert best > 0, u

    # Customer word error rate against the script, turn by turn.
    refs, hyps = [], []
    for turn in (t for t in truth["turns"] if t["speaker"] == "customer"):
        refs.append(turn["text"])
        hyps.append(" ".join(u["text"] for u in utterances if u["speaker"] == "customer"
                             and overlaps((u["start"], u["end"]), (turn["start"], turn["end"])) > 0))
    customer_wer = wer(refs, hyps)
    print(f"customer WER {customer_wer:.2f}")
    assert customer_wer < 0.72  # measured 0.67 with PocketSphinx en-us on this call (README: ASR accuracy)

    # Every final utterance event matches what was stored.
    live_utterances = [e for e in events if e["type"] == "utterance"]
    assert sorted(e["seq"] for e in live_utterances) == sorted(u["seq"] for u in utterances)


async def test_customer_utterance_is_published_before_the_call_ends(make_server: ServerFactory,
                                                                    calm_call: tuple[np.ndarray, dict[str, Any]]
                                                                    ) -> None:
    samples, truth = calm_call
    first_customer_turn = next(t for t in truth["turns"] if t["speaker"] == "customer")
    upto = int((first_customer_turn["end"] + 1.0) * 8000)
    server = await make_server()
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(ws_url(server, "/api/live")) as live, \
                client.ws_connect(ws_url(server, "/twilio/stream")) as ws:
            twilio = MediaStreamClient(ws, new_call_sid())
            await twilio.start()
            loop = asyncio.get_running_loop()
            began = loop.time()
            for i in range(0, upto, 160):
                # Paced near real time (1.5x) so partials are decoded while the turn is still arriving.
                await asyncio.sleep(max(0.0, began + i / 8000 / 1.5 - loop.time()))
                for track, channel in (("inbound", 0), ("outbound", 1)):
                    chunk = pcm16_to_ulaw(samples[i:i + 160, channel].tobytes())
                    await twilio.media(track, i // 160 + 1, i // 8, chunk)
            # No stop yet: the call is still live, and the customer's words must already be out.
            seen: list[dict[str, Any]] = []

            async def first_customer_utterance() -> dict[str, Any]:
                async for message in live:
                    seen.append(json.loads(message.data))
                    event = seen[-1]
                    # The turn opens with a short "hi"; wait for the sentence after it.
                    if event["type"] == "utterance" and event["speaker"] == "customer" \
                            and len(event["text"].split()) > 3:
                        return event
                raise AssertionError("live feed closed")

            event = await asyncio.wait_for(first_customer_utterance(), 20)
            assert any(e["type"] == "partial" and e["speaker"] == "customer" for e in seen), seen
            assert first_customer_turn["start"] - 0.3 <= event["start"] <= first_customer_turn["end"]
            assert event["text"]
            call = await get_json(server, f"/api/calls/{twilio.call_sid}")
            assert call["status"] == "live"
            assert any(u["seq"] == event["seq"] for u in call["utterances"])  # stored as it was finalised
            await twilio.stop()
            await twilio.wait_closed()


async def test_dropped_socket_keeps_everything_as_interrupted(make_server: ServerFactory,
                                                              calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    samples, truth = calm_call
    server = await make_server()
    cut = int(truth["turns"][2]["end"] * 8000) + 8000
    call = await stream_call(samples[:cut], ws_url(server, "/twilio/stream"), speed=0, send_stop=False)
    for _ in range(200):  # the server finalises once it sees the close; poll the API, not the clock
        stored = await get_json(server, f"/api/calls/{call.call_sid}")
        if stored["status"] != "live":
            break
        await asyncio.sleep(0.05)
    assert stored["status"] == "interrupted"
    assert stored["ended_at"] is not None
    assert {u["speaker"] for u in stored["utterances"]} == {"customer", "agent"}
    assert stored["duration"] == pytest.approx(cut / 8000, abs=0.03)


async def test_recording_is_stereo_customer_left_agent_right(make_server: ServerFactory,
                                                            calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    samples, _ = calm_call
    server = await make_server()
    call = await stream_call(samples[: 8000 * 12], ws_url(server, "/twilio/stream"), speed=0)
    async with aiohttp.ClientSession() as client, \
            client.get(server.make_url(f"/api/calls/{call.call_sid}/recording.wav")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "audio/wav"
        body = await response.read()
    with wave.open(io.BytesIO(body)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        recorded = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2).astype(float)
    sent = samples[: len(recorded)].astype(float)
    for channel in (0, 1):  # μ-law is lossy, so compare by correlation
        assert np.corrcoef(recorded[:, channel], sent[:, channel])[0, 1] > 0.99
    assert np.corrcoef(recorded[:, 0], sent[:, 1])[0, 1] < 0.5  # not swapped


async def test_bad_frames_are_counted_and_the_call_goes_on(make_server: ServerFactory,
                                                           calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    samples, _ = calm_call
    server = await make_server(max_message_bytes=4096)
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(server, "/twilio/stream")) as ws:
        twilio = MediaStreamClient(ws, new_call_sid())
        await twilio.media("inbound", 1, 0, b"\xff" * 160)  # media before start
        await twilio.start()
        await ws.send_str("this is not json")
        await ws.send_str('{"event": "media", "media": {"track": "inbound", "chunk": "2", "timestamp": "20",'
                          ' "payload": "***not base64***"}}')
        await ws.send_str(json.dumps({"event": "media", "media": {"payload": "A" * 8000}}))  # oversized
        await ws.send_str('{"event": "a_future_event", "x": 1}')  # unknown: ignored, not an error
        await ws.send_bytes(b"\x00\x01")
        await ws.send_str('{"event": "media", "media": {"track": "sideways", "chunk": "1", "timestamp": "0",'
                          ' "payload": ""}}')
        for i in range(0, 8000 * 8, 160):
            for track, channel in (("inbound", 0), ("outbound", 1)):
                await twilio.media(track, i // 160 + 1, i // 8, pcm16_to_ulaw(samples[i:i + 160, channel].tobytes()))
        await twilio.stop()
        await twilio.wait_closed()
    call = await get_json(server, f"/api/calls/{twilio.call_sid}")
    assert call["status"] == "ended"
    assert call["frame_errors"] == 6  # before start, not JSON, bad base64, oversized, binary, bad track
    assert call["duration"] == pytest.approx(8.0, abs=0.03)
    async with aiohttp.ClientSession() as client, client.get(server.make_url("/metrics")) as response:
        metrics = await response.text()
    for reason in ("malformed", "oversized", "binary", "media_before_start"):
        assert f'carecoach_frame_errors_total{{reason="{reason}"}}' in metrics


async def test_missing_and_repeated_chunks_keep_the_telephony_clock(make_server: ServerFactory) -> None:
    server = await make_server()
    tone = (np.sin(np.arange(160) / 8000 * 2 * np.pi * 440) * 8000).astype("<i2").tobytes()
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(server, "/twilio/stream")) as ws:
        twilio = MediaStreamClient(ws, new_call_sid())
        await twilio.start()
        sent_ms = [0, 20, 40, 40, 60, 20, 500, 520]  # a repeat, an old chunk, then 420 ms missing
        for n, ms in enumerate(sent_ms):
            await twilio.media("inbound", n + 1, ms, pcm16_to_ulaw(tone))
        await twilio.stop()
        await twilio.wait_closed()
    call = await get_json(server, f"/api/calls/{twilio.call_sid}")
    assert call["status"] == "ended"
    assert call["duration"] == pytest.approx(0.54, abs=0.001)
    async with aiohttp.ClientSession() as client, \
            client.get(server.make_url(f"/api/calls/{twilio.call_sid}/recording.wav")) as response:
        with wave.open(io.BytesIO(await response.read())) as w:
            left = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)[:, 0]
    assert len(left) == 540 * 8
    assert np.abs(left[80 * 8: 500 * 8]).max() == 0  # the hole is silence, in place
    assert np.abs(left[500 * 8:]).max() > 1000  # the late chunks sit at their timestamps
    async with aiohttp.ClientSession() as client, client.get(server.make_url("/metrics")) as response:
        metrics = await response.text()
    repaired = dict(re.findall(r'carecoach_media_repaired_seconds_total\{kind="(\w+)",speaker="customer"\} (\S+)',
                               metrics))
    assert float(repaired["gap"]) == pytest.approx(0.42)  # 80 ms → 500 ms
    assert float(repaired["repeat"]) == pytest.approx(0.04)  # the repeated 40 ms chunk and the old 20 ms one


async def test_one_broken_call_does_not_affect_another(make_server: ServerFactory,
                                                       calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    samples, _ = calm_call
    server = await make_server()

    async def broken() -> str:
        async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(server, "/twilio/stream")) as ws:
            twilio = MediaStreamClient(ws, new_call_sid())
            await twilio.start()
            for n in range(50):
                await ws.send_str("{garbage" * n)
            await twilio.media("inbound", 1, 0, b"\x7f" * 160)
            return twilio.call_sid  # leaving the block drops the socket without stop

    healthy, broken_sid = await asyncio.gather(
        stream_call(samples[: 8000 * 20], ws_url(server, "/twilio/stream"), speed=0), broken())
    call = await get_json(server, f"/api/calls/{healthy.call_sid}")
    assert call["status"] == "ended" and call["frame_errors"] == 0
    assert any(u["speaker"] == "customer" for u in call["utterances"])
    for _ in range(200):
        other = await get_json(server, f"/api/calls/{broken_sid}")
        if other["status"] != "live":
            break
        await asyncio.sleep(0.05)
    assert other["status"] == "interrupted" and other["frame_errors"] == 50  # "{garbage" * n, n = 0…49


async def test_too_many_calls_is_refused_before_upgrade(make_server: ServerFactory) -> None:
    server = await make_server(max_calls=1)
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(server, "/twilio/stream")) as ws:
        twilio = MediaStreamClient(ws, new_call_sid())
        await twilio.start()
        await twilio.media("inbound", 1, 0, b"\xff" * 160)
        for _ in range(100):
            if (await get_json(server, "/readyz"))["active_calls"] == 1:
                break
            await asyncio.sleep(0.02)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(ws_url(server, "/twilio/stream"))
        assert refused.value.status == 503
        await twilio.stop()
        await twilio.wait_closed()


async def test_two_streams_for_one_call_cannot_both_open(make_server: ServerFactory) -> None:
    # Opening awaits the store; a second stream for the same call arriving meanwhile must be refused, not
    # open a twin session whose utterances would overwrite the first's.
    server = await make_server()
    app = server.app
    call = NewCall(new_call_sid(), "MZfirst", utc_now())
    results = await asyncio.gather(open_session(app, call), open_session(app, replace(call, stream_sid="MZtwin")),
                                   return_exceptions=True)
    sessions = [r for r in results if isinstance(r, CallSession)]
    refused = [r for r in results if isinstance(r, CallRefused)]
    assert len(sessions) == 1 and [r.reason for r in refused] == ["duplicate_call"]
    assert app[SESSIONS] == {call.call_sid: sessions[0]} and not app[OPENING]
    await finish_session(app, sessions[0], "ended")
    assert not app[SESSIONS]


async def test_a_database_outage_at_call_start_refuses_the_call_on_every_carrier_path(
        make_server: ServerFactory) -> None:
    server = await make_server()
    app = server.app
    await app[STORE].close()
    with pytest.raises(CallRefused) as refused:
        await open_session(app, NewCall(new_call_sid(), "MZ1", utc_now(), carrier="audiohook"))
    assert refused.value.reason == "database" and not app[SESSIONS] and not app[OPENING]
    assert "carecoach_db_errors_total" in app[METRICS].render().decode()
