"""Asterisk AudioSocket conformance, written from Asterisk's protocol definition: a real asyncio TCP client
plays Asterisk's two legs of a call (customer and agent, paired by the UUID convention in the README)
against a real server with the real PocketSphinx engine."""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.conftest import ServerFactory, first_turns, get_json, live_until_ended, wait_stored, ws_url
from voice.audiosocket import AUDIOSOCKET, KIND_AUDIO, KIND_DTMF, KIND_ERROR, KIND_HANGUP, KIND_UUID, header, leg_of
from voice.config import ConfigError, load_config

FRAME = 160  # samples in one 20 ms slin message, as Asterisk sends them


def call_uuids() -> tuple[uuid.UUID, uuid.UUID, str]:
    """(customer leg, agent leg, call_sid): one UUID, its last hex digit 0 or 1."""
    base = str(uuid.uuid4())[:-1]
    return uuid.UUID(base + "0"), uuid.UUID(base + "1"), base + "0"


class Leg:
    """Asterisk's side of one AudioSocket: the UUID message, then 20 ms of slin per message."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, server: Any, leg_uuid: uuid.UUID | None = None) -> Leg:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.app[AUDIOSOCKET].port)
        leg = cls(reader, writer)
        if leg_uuid is not None:
            await leg.send(KIND_UUID, leg_uuid.bytes)
        return leg

    async def send(self, kind: int, payload: bytes = b"") -> None:
        self.writer.write(header(kind, payload))
        await self.writer.drain()

    async def audio(self, mono: np.ndarray, speed: float = 0) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        for i in range(0, len(mono), FRAME):
            if speed > 0:
                await asyncio.sleep(max(0.0, began + i / 8000 / speed - loop.time()))
            elif i % (FRAME * 50) == 0:
                await asyncio.sleep(0)
            await self.send(KIND_AUDIO, mono[i:i + FRAME].astype("<i2").tobytes())

    async def hangup(self) -> None:
        await self.send(KIND_HANGUP)
        await self.close()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()

    def reset(self) -> None:
        """Drop the connection with a TCP RST, as a crashed peer's kernel would."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def closed_by_server(self) -> bool:
        """True once the server hung up (a reset too: closing with our data unread makes the kernel send one)."""
        try:
            return await asyncio.wait_for(self.reader.read(), 10) == b""
        except ConnectionResetError:
            return True


async def stream_both(server: Any, samples: np.ndarray, *, end: str = "hangup") -> str:
    customer_uuid, agent_uuid, call_sid = call_uuids()
    customer = await Leg.connect(server, customer_uuid)
    agent = await Leg.connect(server, agent_uuid)
    await asyncio.gather(customer.audio(samples[:, 0]), agent.audio(samples[:, 1]))
    if end == "reset":
        # A reset discards whatever the server's kernel still holds unread, so drop the line only once
        # the server has heard (and transcribed) both parties: that much must survive.
        await wait_heard(server, call_sid)
    for leg in (customer, agent):
        if end == "hangup":
            await leg.hangup()
        elif end == "eof":
            await leg.close()
        else:
            leg.reset()
    return call_sid


async def wait_heard(server: Any, call_sid: str, speakers: set[str] | None = None) -> None:
    for _ in range(600):
        # The client's writes finish in the kernel's buffers: on a loaded machine the server may not have
        # read the legs' first message, and so opened the call, yet (404 until then).
        async with aiohttp.ClientSession() as client, \
                client.get(server.make_url(f"/api/calls/{call_sid}")) as response:
            if response.status == 200:
                stored = await response.json()
                if {u["speaker"] for u in stored["utterances"]} >= (speakers or {"customer", "agent"}):
                    assert stored["status"] == "live"
                    return
            else:
                assert response.status == 404, await response.text()
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_sid}: both parties never transcribed")


# --- pieces -----------------------------------------------------------------------------------------------


def test_legs_pair_by_the_last_hex_digit() -> None:
    customer, agent, call_sid = call_uuids()
    assert leg_of(customer) == (call_sid, "customer")
    assert leg_of(agent) == (call_sid, "agent")
    assert leg_of(uuid.UUID(call_sid[:-1] + "7")) is None
    assert header(KIND_AUDIO, b"\x01\x02") == b"\x10\x00\x02\x01\x02"


def test_port_setting_is_validated() -> None:
    assert load_config({"CARECOACH_AUDIOSOCKET_PORT": "9092"}).audiosocket_port == 9092
    assert load_config({}).audiosocket_port is None
    for bad in ("http", "-1", "70000"):
        with pytest.raises(ConfigError, match="CARECOACH_AUDIOSOCKET_PORT"):
            load_config({"CARECOACH_AUDIOSOCKET_PORT": bad})


# --- over TCP -------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_call_arrives_like_a_twilio_call(make_server: ServerFactory,
                                               calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    samples, _ = calm_call
    server = await make_server(audiosocket_port=0)
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(server, "/api/live")) as live:
        listener = asyncio.get_running_loop().create_task(live_until_ended(live, events))
        call_sid = await stream_both(server, samples)
        await asyncio.wait_for(listener, 60)
    assert {e["call_sid"] for e in events} == {call_sid}
    assert "utterance" in [e["type"] for e in events] and events[-1]["status"] == "ended"
    call = await get_json(server, f"/api/calls/{call_sid}")
    assert call["carrier"] == "audiosocket" and call["status"] == "ended" and call["frame_errors"] == 0
    assert call["duration"] == pytest.approx(len(samples) / 8000, abs=0.1)
    assert {u["speaker"] for u in call["utterances"]} == {"customer", "agent"}
    assert [c["call_sid"] for c in (await get_json(server, "/api/calls"))["calls"]] == [call_sid]
    async with aiohttp.ClientSession() as client, client.get(server.make_url(f"/calls/{call_sid}")) as page:
        assert page.status == 200


async def test_closing_at_a_message_boundary_is_a_normal_end(make_server: ServerFactory) -> None:
    # Asterisk hangs up by closing the socket without a hangup message.
    server = await make_server(audiosocket_port=0)
    call_sid = await stream_both(server, np.zeros((4000, 2), dtype=np.int16), end="eof")
    call = await wait_stored(server, call_sid)
    assert call["status"] == "ended" and call["carrier"] == "audiosocket"
    assert call["duration"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.slow
async def test_peer_dropping_gives_an_interrupted_call_with_its_transcript(
        make_server: ServerFactory, calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    server = await make_server(audiosocket_port=0)
    call_sid = await stream_both(server, first_turns(calm_call, 2), end="reset")
    call = await wait_stored(server, call_sid)
    assert call["status"] == "interrupted"
    assert {u["speaker"] for u in call["utterances"]} == {"customer", "agent"}


async def test_a_message_cut_off_midway_interrupts_the_call(make_server: ServerFactory,
                                                             calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    server = await make_server(audiosocket_port=0)
    customer_uuid, _, call_sid = call_uuids()
    leg = await Leg.connect(server, customer_uuid)
    await leg.audio(first_turns(calm_call, 2)[:, 0])
    leg.writer.write(header(KIND_AUDIO, bytes(320))[:100])  # half a message, then gone
    await leg.close()
    call = await wait_stored(server, call_sid)
    assert call["status"] == "interrupted" and call["frame_errors"] == 1
    assert any(u["speaker"] == "customer" for u in call["utterances"])


async def test_malformed_messages_are_counted_and_the_call_goes_on(
        make_server: ServerFactory, calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    server = await make_server(audiosocket_port=0)
    audio = first_turns(calm_call, 2)[:, 0]
    customer_uuid, _, call_sid = call_uuids()
    leg = await Leg.connect(server, customer_uuid)
    await leg.audio(audio[: len(audio) // 2])
    await leg.send(KIND_AUDIO, b"\x01\x02\x03")  # odd length: not 16-bit samples
    await leg.send(0x42, b"what")  # unknown kind
    await leg.send(KIND_UUID, customer_uuid.bytes)  # a second UUID
    await leg.send(KIND_DTMF, b"5")  # fine: logged
    await leg.audio(audio[len(audio) // 2:])
    await leg.hangup()
    call = await wait_stored(server, call_sid)
    assert call["status"] == "ended" and call["frame_errors"] == 3
    assert call["duration"] == pytest.approx((len(audio) + 1) / 8000, abs=0.03)  # the odd message's 1 sample
    assert any(u["speaker"] == "customer" for u in call["utterances"])


async def test_asterisk_error_codes(make_server: ServerFactory) -> None:
    server = await make_server(audiosocket_port=0)
    silence = np.zeros(1600, dtype=np.int16)
    outcomes = {}
    for code, expect in ((0x01, "ended"), (0x02, "interrupted")):
        customer_uuid, _, call_sid = call_uuids()
        leg = await Leg.connect(server, customer_uuid)
        await leg.audio(silence)
        await leg.send(KIND_ERROR, bytes([code]))
        assert await leg.closed_by_server()
        await leg.close()
        outcomes[code] = (await wait_stored(server, call_sid))["status"]
        assert outcomes[code] == expect


@pytest.mark.parametrize("first", ["audio", "nothing", "bad_uuid", "short_uuid"])
async def test_missing_or_bad_handshake_stores_nothing(make_server: ServerFactory, first: str) -> None:
    server = await make_server(audiosocket_port=0, handshake_timeout=0.3)
    leg = await Leg.connect(server)
    if first == "audio":
        await leg.send(KIND_AUDIO, bytes(320))
    elif first == "bad_uuid":
        await leg.send(KIND_UUID, uuid.UUID(str(uuid.uuid4())[:-1] + "9").bytes)
    elif first == "short_uuid":
        await leg.send(KIND_UUID, b"\x00" * 8)
    assert await leg.closed_by_server()
    await leg.close()
    assert (await get_json(server, "/api/calls"))["calls"] == []


async def test_a_peer_trickling_bytes_is_read_correctly(make_server: ServerFactory) -> None:
    server = await make_server(audiosocket_port=0)
    customer_uuid, _, call_sid = call_uuids()
    leg = await Leg.connect(server)
    wire = header(KIND_UUID, customer_uuid.bytes) + b"".join(header(KIND_AUDIO, bytes(320)) for _ in range(25))
    for i in range(0, len(wire), 7):  # a slow link: a few bytes at a time, in pieces that split headers
        leg.writer.write(wire[i:i + 7])
        await leg.writer.drain()
        await asyncio.sleep(0.001)
    await leg.hangup()
    call = await wait_stored(server, call_sid)
    assert call["status"] == "ended" and call["frame_errors"] == 0
    assert call["duration"] == pytest.approx(0.5, abs=0.01)


async def test_a_second_leg_for_the_same_speaker_is_refused(make_server: ServerFactory) -> None:
    server = await make_server(audiosocket_port=0)
    customer_uuid, _, call_sid = call_uuids()
    first = await Leg.connect(server, customer_uuid)
    await first.audio(np.zeros(800, dtype=np.int16))
    second = await Leg.connect(server, customer_uuid)
    assert await second.closed_by_server()
    await second.close()
    await first.audio(np.zeros(800, dtype=np.int16))
    await first.hangup()
    call = await wait_stored(server, call_sid)
    assert call["status"] == "ended" and call["duration"] == pytest.approx(0.2, abs=0.01)


async def test_too_many_calls_refuses_the_new_call_only(make_server: ServerFactory) -> None:
    server = await make_server(audiosocket_port=0, max_calls=1)
    customer_uuid, agent_uuid, call_sid = call_uuids()
    customer = await Leg.connect(server, customer_uuid)
    await customer.audio(np.zeros(800, dtype=np.int16))
    other_uuid, _, _ = call_uuids()
    other = await Leg.connect(server, other_uuid)
    assert await other.closed_by_server()
    await other.close()
    agent = await Leg.connect(server, agent_uuid)  # the live call's own second leg still joins
    await agent.audio(np.zeros(800, dtype=np.int16))
    await agent.hangup()
    await customer.hangup()
    assert (await wait_stored(server, call_sid))["status"] == "ended"
    assert [c["call_sid"] for c in (await get_json(server, "/api/calls"))["calls"]] == [call_sid]


@pytest.mark.slow
async def test_shutdown_ends_live_legs_as_interrupted(make_server: ServerFactory,
                                                      calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    server = await make_server(audiosocket_port=0)
    customer_uuid, _, call_sid = call_uuids()
    leg = await Leg.connect(server, customer_uuid)
    await leg.audio(first_turns(calm_call, 2)[:, 0])
    await wait_heard(server, call_sid, {"customer"})
    await server.app[AUDIOSOCKET].close()  # what the app's cleanup does first on shutdown
    assert await leg.closed_by_server()
    await leg.close()
    call = await wait_stored(server, call_sid)
    assert call["status"] == "interrupted"
    assert any(u["speaker"] == "customer" for u in call["utterances"])
