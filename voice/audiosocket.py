"""Asterisk AudioSocket: a TCP listener on `CARECOACH_AUDIOSOCKET_PORT`, one connection per call leg.

Written from the AudioSocket protocol definition in Asterisk's documentation
(docs.asterisk.org, "AudioSocket"; also github.com/CyCoreSystems/audiosocket README) and Asterisk's
`res/res_audiosocket.c`. Every message is a 3-byte header, kind (1 byte) and payload length (uint16
big-endian), then the payload:

| kind | payload |
|---|---|
| `0x00` | hangup (no payload); closing the socket is "also sufficient" |
| `0x01` | the stream's UUID, 16 bytes; Asterisk sends it first |
| `0x03` | one DTMF digit, ASCII |
| `0x10` | audio: signed linear 16-bit, 8 kHz, mono, little-endian |
| `0xff` | error; optional 1-byte code (`0x01` = the calling party hung up) |

One AudioSocket carries one leg, so the two legs of a call are paired by a UUID convention (README
"Asterisk AudioSocket"): the dialplan makes one UUID per call and replaces its last hex digit with
`0` for the customer's leg and `1` for the agent's. The call's `call_sid` is the customer leg's UUID
(`…0`); whichever leg connects first opens the call, the other joins it, and the call ends when its
last connected leg ends. A leg joining late is placed on the call's timeline by the time it joined.

Ending: a hangup message, an end of stream at a message boundary, or error code `0x01` end the leg
normally (Asterisk closes the socket without a hangup message when the channel hangs up). A connection
reset, a message cut off mid-way, another error code, or silence longer than `IDLE_TIMEOUT` interrupt
it; a call with any interrupted leg is stored `interrupted`. Everything heard is kept either way.
Malformed messages (odd-length audio, unknown kinds) are counted and skipped; the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web

from dialog.types import CallStatus, NewCall
from voice.calls import CallRefused, StreamErrors, at_capacity, finish_shielded, open_session
from voice.logs import bind_call
from voice.session import CallSession
from voice.state import CONFIG, METRICS, utc_now
from voice.types import PIPELINE_RATE, Speaker

log = logging.getLogger("carecoach")

KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_AUDIO, KIND_ERROR = 0x00, 0x01, 0x03, 0x10, 0xFF
#: Last hex digit of a leg's UUID → who is on it.
LEG_SPEAKER: dict[str, Speaker] = {"0": "customer", "1": "agent"}
#: A leg that sends nothing for this long (Asterisk sends 20 ms of audio every 20 ms) is dead.
IDLE_TIMEOUT = 30.0
#: Error code Asterisk sends when the calling party hung up: a normal end.
ERROR_HANGUP = 0x01


def header(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


def leg_of(stream_uuid: uuid.UUID) -> tuple[str, Speaker] | None:
    """(call_sid, speaker) for a leg's UUID, or None when it doesn't follow the pairing convention."""
    text = str(stream_uuid)
    speaker = LEG_SPEAKER.get(text[-1])
    return (text[:-1] + "0", speaker) if speaker is not None else None


@dataclass(slots=True)
class _Call:
    session: CallSession
    started: float  # loop time when the first leg joined
    legs: set[Speaker] = field(default_factory=set)
    interrupted: bool = False


class AudioSocketServer:
    """The listener and its connections; owns one task per connection and cancels them on `close()`."""

    def __init__(self, app: web.Application, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.config = app[CONFIG]
        self._monotonic = monotonic
        self._server: asyncio.Server | None = None
        self._calls: dict[str, _Call] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()  # opening a call is async: two legs must not both open it

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._accept, host, port, limit=2**17)
        log.info("AudioSocket listening on %s:%d", host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # server shutdown: the leg was finalised in _serve's finally
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        errors = StreamErrors(self.app[METRICS], f"audiosocket {peer}")
        try:
            kind, payload = await asyncio.wait_for(_read(reader), self.config.handshake_timeout)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            errors.reject("no_uuid", f"no UUID message ({type(exc).__name__})")
            return
        if kind != KIND_UUID or len(payload) != 16:
            errors.reject("media_before_start" if kind == KIND_AUDIO else "malformed",
                          f"the first message must be a 16-byte UUID (kind 0x{kind:02x}, {len(payload)} bytes)")
            return
        stream_uuid = uuid.UUID(bytes=payload)
        leg = leg_of(stream_uuid)
        if leg is None:
            errors.reject("unpaired_uuid", f"UUID {stream_uuid} ends in neither 0 (customer) nor 1 (agent)")
            return
        call_sid, speaker = leg
        bind_call(call_sid)
        call = await self._join(call_sid, speaker, str(stream_uuid), errors)
        if call is None:
            return
        errors.attach(call.session)
        interrupted = True
        try:
            interrupted = await self._stream(reader, call, speaker, errors)
        finally:
            await self._leave(call_sid, call, speaker, interrupted)

    async def _join(self, call_sid: str, speaker: Speaker, leg_uuid: str, errors: StreamErrors) -> _Call | None:
        async with self._lock:
            call = self._calls.get(call_sid)
            if call is None:
                if at_capacity(self.app):
                    errors.reject("capacity", "too many calls in progress")
                    return None
                try:
                    new = NewCall(call_sid, leg_uuid, utc_now(), carrier="audiosocket")
                    session = await open_session(self.app, new)
                except CallRefused as exc:
                    errors.reject(exc.reason, str(exc))
                    return None
                call = self._calls[call_sid] = _Call(session, self._monotonic())
                log.info("call %s: AudioSocket %s leg connected, call opened", call_sid, speaker)
            elif speaker in call.legs:
                errors.reject("duplicate_leg", f"call {call_sid} already has a {speaker} leg")
                return None
            else:
                log.info("call %s: AudioSocket %s leg joined", call_sid, speaker)
            call.legs.add(speaker)
            return call

    async def _leave(self, call_sid: str, call: _Call, speaker: Speaker, interrupted: bool) -> None:
        call.interrupted |= interrupted
        call.legs.discard(speaker)
        log.info("call %s: AudioSocket %s leg %s", call_sid, speaker, "interrupted" if interrupted else "ended")
        if call.legs:
            return
        if self._calls.get(call_sid) is call:
            del self._calls[call_sid]
        status: CallStatus = "interrupted" if call.interrupted else "ended"
        await finish_shielded(self.app, call.session, status)

    async def _stream(self, reader: asyncio.StreamReader, call: _Call, speaker: Speaker,
                      errors: StreamErrors) -> bool:
        """Feed one leg until it ends; True if it was interrupted rather than hung up."""
        session = call.session
        # A leg that joins after the call began starts where the call's clock is now.
        samples = round((self._monotonic() - call.started) * PIPELINE_RATE)
        limit = self.config.max_message_bytes
        while True:
            try:
                kind, payload = await asyncio.wait_for(_read(reader), IDLE_TIMEOUT)
            except asyncio.IncompleteReadError:  # (an EOFError too: caught first)
                errors.reject("truncated", "the connection ended inside a message")
                return True
            except EOFError:
                return False  # closed at a message boundary: Asterisk's normal hangup
            except (ConnectionError, TimeoutError) as exc:
                log.warning("call %s: AudioSocket %s leg lost (%s)", session.call_sid, speaker,
                            type(exc).__name__ if str(exc) == "" else exc)
                return True
            if kind == KIND_AUDIO:
                if len(payload) > limit:
                    errors.reject("oversized", f"{len(payload)} bytes > {limit}")
                elif len(payload) % 2:
                    errors.reject("malformed", f"{len(payload)}-byte audio is not whole 16-bit samples")
                else:
                    # slin is little-endian, which is also our PCM16's byte order.
                    session.on_pcm(speaker, samples * 1000 // PIPELINE_RATE, payload)
                samples += len(payload) // 2  # a dropped message still took its time: it becomes silence
            elif kind == KIND_HANGUP:
                return False
            elif kind == KIND_DTMF:
                log.info("call %s: DTMF %r from %s", session.call_sid, payload[:1].decode("ascii", "replace"),
                         speaker)
            elif kind == KIND_ERROR:
                code = payload[0] if payload else 0
                if code == ERROR_HANGUP:
                    return False
                errors.reject("peer_error", f"Asterisk reported error 0x{code:02x}")
                return True
            elif kind == KIND_UUID:
                errors.reject("duplicate_start", "a second UUID on one leg")
            else:
                errors.reject("unknown_kind", f"message kind 0x{kind:02x} ({len(payload)} bytes)")


async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One message. EOFError at a clean boundary; IncompleteReadError when cut off inside one."""
    head = await reader.read(1)
    if not head:
        raise EOFError
    rest = await reader.readexactly(2)
    length = int.from_bytes(rest, "big")
    return head[0], await reader.readexactly(length) if length else b""


AUDIOSOCKET = web.AppKey("audiosocket", AudioSocketServer)


async def audiosocket_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: listen while the app runs (when a port is configured); on shutdown close the listener
    and end live legs as interrupted, keeping what they carried."""
    config = app[CONFIG]
    if config.audiosocket_port is None:
        yield
        return
    server = AudioSocketServer(app)
    await server.start(config.host, config.audiosocket_port)
    app[AUDIOSOCKET] = server
    yield
    await server.close()
