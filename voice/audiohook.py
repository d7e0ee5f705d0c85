"""Genesys Cloud AudioHook (protocol version 2) at `WS /audiohook`: Genesys is the client, we are the server.

Written from Genesys' public AudioHook protocol documentation (developer.genesys.cloud/devapps/audiohook:
"Protocol specification" and "Session walkthrough") and the message types of Genesys' open-source
reference server (github.com/purecloudlabs/audiohook-reference-implementation, `protocol/message.ts`,
`protocol/entities-*.ts`). What we implement:

- **Upgrade**: with `CARECOACH_AUDIOHOOK_API_KEY` the `X-API-KEY` header must match; with
  `CARECOACH_AUDIOHOOK_CLIENT_SECRET` the RFC 9421 signature must verify (`voice.httpsig`). Otherwise
  `403` before the socket opens, and nothing is stored. The path is outside `CARECOACH_API_TOKENS` (Genesys
  can't send our tokens), so with tokens set it stays shut until an AudioHook API key is configured.
- **Envelope**: every text message carries `version: "2"`, `id` (the session), `type`, `seq`, and from the
  client `serverseq` and `position` (an ISO 8601 duration); ours carry `clientseq`. We check `seq`
  continuity, `serverseq` and `id`, and count violations rather than end the call.
- **Handshake**: `open` → `opened` as soon as the call is stored, choosing one media offer: `PCMU` (or
  `L16`, little-endian as the reference implementation reads it) at 8000 Hz, preferring one that carries
  both `external` and `internal`. A connection with the all-zero `conversationId` is Genesys' probe: it
  is answered but no call is created. Audio before `open` gets `disconnect` (reason `error`).
- **Control**: `ping`→`pong`, `update`→`updated`, `paused`/`resumed`/`discarded` (the stream position jumps
  over discarded audio and the call's timeline keeps it as silence), `error` is logged and counted,
  `close`→`closed` once the call is finalised (bounded by `CLOSE_GRACE`).
- **Audio**: binary frames of interleaved samples in the offered channel order; `external` is the
  customer and `internal` the agent (CONTRACT §3). `call_sid` is the `conversationId`.
- **Back to Genesys**: final utterances as `transcript` entities and prompts as `agentassist` suggestions
  in `event` messages. A client that doesn't read them never slows the call: events queue up to
  `MAX_PENDING_EVENTS`, then are dropped and counted.
- **Ending**: `close` gives an `ended` call; a socket that drops without `close` gives `interrupted`;
  either way everything heard is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
from aiohttp import WSMsgType, web

from dialog.types import CallStatus, NewCall
from voice.calls import CallRefused, StreamErrors, at_capacity, finish_shielded, open_session
from voice.codec import ulaw_to_pcm16
from voice.httpsig import NonceCache, SignatureError, verify
from voice.logs import bind_call
from voice.session import CallSession
from voice.state import CALL_SOCKETS, CONFIG, HARD_MESSAGE_LIMIT, HUB, METRICS, utc_now
from voice.types import PIPELINE_RATE, Speaker

log = logging.getLogger("carecoach")

NULL_UUID = "00000000-0000-0000-0000-000000000000"
CHANNEL_SPEAKER: dict[str, Speaker] = {"external": "customer", "internal": "agent"}
SPEAKER_CHANNEL = {speaker: channel for channel, speaker in CHANNEL_SPEAKER.items()}
#: Events (transcripts, prompts) waiting for a slow client before new ones are dropped.
MAX_PENDING_EVENTS = 256
#: How long `closed` waits for the call's last utterances, so they can still go out as events.
CLOSE_GRACE = 5.0
#: After `closed` or `disconnect`, how long the client gets to close the socket itself.
LINGER = 5.0

NONCES = web.AppKey("audiohook_nonces", NonceCache)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DURATION = re.compile(r"^PT(\d*\.?\d+)S$")


class ProtocolError(ValueError):
    """A client message we can't use; counted under `reason`, and the call goes on."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# --- messages ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Header:
    id: str
    seq: int
    serverseq: int
    position: float  # seconds


@dataclass(frozen=True, slots=True)
class MediaOffer:
    format: Literal["PCMU", "L16"]
    channels: tuple[str, ...]
    rate: int

    def to_json(self) -> dict[str, Any]:
        return {"type": "audio", "format": self.format, "channels": list(self.channels), "rate": self.rate}

    @property
    def frame_bytes(self) -> int:
        """Bytes of one sample across all channels."""
        return (1 if self.format == "PCMU" else 2) * len(self.channels)


@dataclass(frozen=True, slots=True)
class Open:
    type: Literal["open"]
    header: Header
    organization_id: str
    conversation_id: str
    ani: str
    dnis: str
    media: tuple[MediaOffer, ...]
    language: str | None


@dataclass(frozen=True, slots=True)
class Close:
    type: Literal["close"]
    header: Header
    reason: str


@dataclass(frozen=True, slots=True)
class Control:
    """`ping`, `paused`, `resumed`, `discarded` and `update`: no parameters we act on beyond the position."""

    type: Literal["ping", "paused", "resumed", "discarded", "update"]
    header: Header
    language: str | None = None


@dataclass(frozen=True, slots=True)
class ClientError:
    type: Literal["error"]
    header: Header
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class Unknown:
    type: Literal["unknown"]
    header: Header
    name: str


ClientMessage = Open | Close | Control | ClientError | Unknown


def parse_duration(value: object) -> float:
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ProtocolError("malformed", f"not an ISO 8601 duration in seconds: {str(value)[:40]!r}")
    return float(match.group(1))


def duration(seconds: float) -> str:
    return f"PT{max(0.0, round(seconds, 3))}S"


def _seq(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError("malformed", f"{name} must be a non-negative integer")
    return value


def _media(offers: object) -> tuple[MediaOffer, ...]:
    if not isinstance(offers, list):
        raise ProtocolError("malformed", "open: media must be a list")
    out = []
    for offer in offers:
        if not isinstance(offer, dict):
            raise ProtocolError("malformed", "open: each media offer must be an object")
        channels = offer.get("channels")
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise ProtocolError("malformed", "open: media channels must be a list of names")
        if offer.get("type") == "audio" and offer.get("format") in ("PCMU", "L16") and isinstance(offer.get("rate"),
                                                                                                  int):
            out.append(MediaOffer(offer["format"], tuple(channels), offer["rate"]))
    return tuple(out)


def parse_message(text: str | bytes) -> ClientMessage:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("malformed", f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ProtocolError("malformed", "not a JSON object")
    if data.get("version") != "2":
        raise ProtocolError("malformed", f"version must be \"2\", not {str(data.get('version'))[:10]!r}")
    kind, session_id, params = data.get("type"), data.get("id"), data.get("parameters")
    if not isinstance(kind, str) or not isinstance(session_id, str) or not _UUID.match(session_id):
        raise ProtocolError("malformed", "type and a UUID id are required")
    if not isinstance(params, dict):
        raise ProtocolError("malformed", "parameters must be an object")
    header = Header(session_id, _seq(data.get("seq"), "seq"), _seq(data.get("serverseq"), "serverseq"),
                    parse_duration(data.get("position")))
    match kind:
        case "open":
            participant = params.get("participant") or {}
            conversation, organization = params.get("conversationId"), params.get("organizationId")
            if not isinstance(conversation, str) or not _UUID.match(conversation):
                raise ProtocolError("malformed", "open: conversationId must be a UUID")
            if not isinstance(organization, str) or not _UUID.match(organization):
                raise ProtocolError("malformed", "open: organizationId must be a UUID")
            if not isinstance(participant, dict):
                raise ProtocolError("malformed", "open: participant must be an object")
            language = params.get("language")
            return Open("open", header, organization.lower(), conversation.lower(), str(participant.get("ani", "")),
                        str(participant.get("dnis", "")), _media(params.get("media")),
                        language if isinstance(language, str) else None)
        case "close":
            return Close("close", header, str(params.get("reason", "")))
        case "ping" | "paused" | "resumed" | "discarded" | "update":
            if kind in ("resumed", "discarded"):
                parse_duration(params.get("start"))
                parse_duration(params.get("discarded"))
            language = params.get("language")
            return Control(kind, header, language if isinstance(language, str) else None)
        case "error":
            code = params.get("code")
            return ClientError("error", header, code if isinstance(code, int) else 0, str(params.get("message", "")))
        case _:
            return Unknown("unknown", header, kind[:40])


def choose_media(offers: tuple[MediaOffer, ...]) -> MediaOffer | None:
    """An 8 kHz offer we can decode; both parties beat one, PCMU (what Genesys sends) beats L16."""
    usable = [o for o in offers if o.rate == PIPELINE_RATE and o.channels
              and set(o.channels) <= set(CHANNEL_SPEAKER) and len(set(o.channels)) == len(o.channels)]
    usable.sort(key=lambda o: (-len(o.channels), o.format != "PCMU"))
    return usable[0] if usable else None


def split_l16(data: bytes, channels: int) -> list[bytes]:
    """Interleaved little-endian 16-bit samples → one PCM16 (native order) buffer per channel; the length
    must be a whole number of samples across all channels."""
    samples = np.frombuffer(data, dtype="<i2").reshape(-1, channels)
    return [samples[:, i].astype(np.int16).tobytes() for i in range(channels)]


def decode_frame(media: MediaOffer, data: bytes) -> dict[Speaker, bytes]:
    """One binary frame → mono PCM16 per speaker (the frame's length is already checked)."""
    if media.format == "PCMU":
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, len(media.channels))
        return {CHANNEL_SPEAKER[c]: ulaw_to_pcm16(raw[:, i].tobytes()) for i, c in enumerate(media.channels)}
    return {CHANNEL_SPEAKER[c]: pcm for c, pcm in zip(media.channels, split_l16(data, len(media.channels)),
                                                        strict=True)}


def transcript_entity(event: Mapping[str, Any]) -> dict[str, Any]:
    """A final utterance as AudioHook's `transcript` event entity."""
    start, end = float(event["start"]), float(event["end"])
    return {"type": "transcript", "data": {
        "id": str(uuid.uuid4()), "channel": SPEAKER_CHANNEL[event["speaker"]], "isFinal": True,
        "offset": duration(start), "duration": duration(end - start),
        "alternatives": [{"confidence": float(event.get("confidence") or 0.0),
                          "interpretations": [{"type": "display", "transcript": event["text"]}]}]}}


def prompt_entity(event: Mapping[str, Any]) -> dict[str, Any]:
    """A coaching prompt as an `agentassist` suggestion (the card id as the question, its text the answer)."""
    return {"type": "agentassist", "data": {"id": str(uuid.uuid4()), "suggestions": [{
        "type": "faq", "id": str(uuid.uuid4()), "confidence": 1.0, "position": duration(float(event["at"])),
        "question": str(event["id"]), "answer": str(event["text"])}]}}


# --- the upgrade ---------------------------------------------------------------------------------------

def _refuse(request: web.Request, why: str) -> web.HTTPForbidden:
    request.app[METRICS].signature_failures.inc()
    log.warning("refused /audiohook upgrade from %s: %s", request.remote, why)
    return web.HTTPForbidden(text="invalid AudioHook credentials")


def check_upgrade(request: web.Request) -> None:
    """CONTRACT §3: the API key must match and the signature verify, each when configured; else 403."""
    config = request.app[CONFIG]
    api_key = request.headers.get("X-API-KEY", "")
    if config.auth_enabled and not config.audiohook_api_key:
        # The service is protected (CARECOACH_API_TOKENS) but this door would be open: keep it shut.
        raise _refuse(request, "CARECOACH_API_TOKENS is set but CARECOACH_AUDIOHOOK_API_KEY is not")
    if config.audiohook_api_key and not hmac.compare_digest(api_key.encode(), config.audiohook_api_key.encode()):
        raise _refuse(request, "bad or missing X-API-KEY")
    if config.audiohook_client_secret:
        if not api_key:
            raise _refuse(request, "no X-API-KEY to sign with")
        # Behind a proxy the signed authority and path are the public ones.
        public = urlsplit(config.public_url) if config.public_url else None
        authority = public.netloc if public else request.host
        target = (public.path.rstrip("/") if public else "") + request.raw_path
        fields = {name.lower(): request.headers.getall(name, []) for name in request.headers}
        try:
            verify(signature_input=request.headers.get("Signature-Input"), signature=request.headers.get("Signature"),
                   derived={"@request-target": target, "@authority": authority.lower()}, fields=fields,
                   key_id=api_key, secret=config.audiohook_client_secret, nonces=request.app.get(NONCES))
        except SignatureError as exc:
            raise _refuse(request, f"signature: {exc}") from None


# --- one connection ------------------------------------------------------------------------------------

class AudioHookSession:
    """The server side of one AudioHook WebSocket: its sequence numbers, position, state and call."""

    def __init__(self, app: web.Application, ws: web.WebSocketResponse, headers: Mapping[str, str]) -> None:
        self.app = app
        self.ws = ws
        self.config = app[CONFIG]
        self.id = headers.get("audiohook-session-id", "").lower()
        self.organization = headers.get("audiohook-organization-id", "").lower()
        self.errors = StreamErrors(app[METRICS], "audiohook")
        self.state: Literal["preparing", "active", "paused", "closing", "closed", "disconnected"] = "preparing"
        self.seq = 0  # ours, last sent
        self.clientseq = 0  # theirs, last received
        self.samples = 0  # stream position, in samples at PIPELINE_RATE
        self.media: MediaOffer | None = None
        self.session: CallSession | None = None
        self.probe = False
        self.events_dropped = 0
        self._pending_events = 0
        self._outbox: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
        # The tasks this connection owns; `_end` stops them all.
        self._sender_task: asyncio.Task[None] | None = None
        self._forwarder: asyncio.Task[None] | None = None
        self._finishing: asyncio.Task[None] | None = None

    # -- sending (one task, so a client that doesn't read never blocks the audio path) --

    def send(self, kind: str, parameters: dict[str, Any]) -> None:
        if self.state in ("closed", "disconnected") and kind not in ("closed", "disconnect"):
            return
        if kind == "event":
            if self._pending_events >= MAX_PENDING_EVENTS:
                self.events_dropped += 1
                if self.events_dropped in (1, 100) or self.events_dropped % 1000 == 0:
                    log.warning("audiohook %s: client is not reading; %d event(s) dropped", self.id,
                                self.events_dropped)
                return
            self._pending_events += 1
        self._outbox.put_nowait((kind, parameters))

    async def _sender(self) -> None:
        while (item := await self._outbox.get()) is not None:
            kind, parameters = item
            if kind == "event":
                self._pending_events -= 1
            self.seq += 1
            message = {"version": "2", "type": kind, "seq": self.seq, "clientseq": self.clientseq,
                       "id": self.id or NULL_UUID, "parameters": parameters}
            try:
                await self.ws.send_str(json.dumps(message))
            except (ConnectionError, RuntimeError):
                return  # the socket is gone; the reader sees it and ends the call

    async def _forward_events(self, call_sid: str) -> None:
        async for event in self.app[HUB].subscribe(call_sid):
            if event["type"] == "utterance":
                self.send("event", {"entities": [transcript_entity(event)]})
            elif event["type"] == "prompt":
                self.send("event", {"entities": [prompt_entity(event)]})
            elif event["type"] == "call_ended":
                return

    def disconnect(self, reason: Literal["error", "unauthorized", "completed"], info: str) -> None:
        log.warning("audiohook %s: disconnect (%s): %s", self.id, reason, info)
        self.send("disconnect", {"reason": reason, "info": info})
        self.state = "disconnected"

    # -- receiving --

    async def run(self) -> None:
        self._sender_task = asyncio.get_running_loop().create_task(self._sender(), name=f"audiohook send {self.id}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.handshake_timeout
        linger_until: float | None = None
        try:
            while True:
                if self.state == "preparing":
                    timeout: float | None = deadline - loop.time()
                elif self.state in ("closed", "disconnected"):
                    linger_until = linger_until or loop.time() + LINGER
                    timeout = linger_until - loop.time()
                else:
                    timeout = None
                if timeout is not None and timeout <= 0:
                    if self.state == "preparing":
                        self.errors.reject("no_open", f"no open within {self.config.handshake_timeout:g} s")
                    break
                try:
                    msg = await self.ws.receive(timeout=timeout)
                except TimeoutError:
                    continue
                if msg.type == WSMsgType.BINARY:
                    self._on_audio(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await self._on_text(msg.data)
                else:
                    break  # closed by the client, or the socket failed
        finally:
            await self._end()

    def _on_audio(self, data: bytes) -> None:
        if self.state == "preparing":
            self.errors.reject("media_before_open", "audio before open")
            self.disconnect("error", "audio before open")
            return
        if self.media is None or self.session is None:
            if not self.probe:
                self.errors.reject("media_unexpected", f"audio in state {self.state}")
            return
        width = self.media.frame_bytes
        samples = len(data) // width
        if len(data) > self.config.max_message_bytes:
            self.errors.reject("oversized", f"{len(data)} bytes > {self.config.max_message_bytes}")
            self.samples += samples  # the position still moves on: the hole becomes silence
            return
        if len(data) % width:
            self.errors.reject("malformed", f"{len(data)} bytes is not a whole number of {width}-byte samples")
            self.samples += samples
            return
        if self.state == "paused":
            self.errors.reject("media_while_paused", "audio while paused (kept)")
        timestamp_ms = self.samples * 1000 // PIPELINE_RATE
        for speaker, pcm in decode_frame(self.media, data).items():
            self.session.on_pcm(speaker, timestamp_ms, pcm)
        self.samples += samples

    async def _on_text(self, text: str) -> None:
        if len(text) > self.config.max_message_bytes:
            self.errors.reject("oversized", f"{len(text)} bytes > {self.config.max_message_bytes}")
            return
        try:
            message = parse_message(text)
        except ProtocolError as exc:
            self.errors.reject(exc.reason, str(exc))
            return
        header = message.header
        if header.seq != self.clientseq + 1:
            self.errors.reject("seq", f"seq {header.seq} after {self.clientseq}")
        self.clientseq = max(self.clientseq, header.seq)
        if header.serverseq > self.seq:
            self.errors.reject("serverseq", f"serverseq {header.serverseq} > our seq {self.seq}")
        if not self.id:
            self.id = header.id.lower()
        elif header.id.lower() != self.id:
            self.errors.reject("session_id", f"message for session {header.id}")
        # `position` counts discarded and paused audio too: jump the call's clock over it.
        position = math.floor(header.position * PIPELINE_RATE)
        if position > self.samples:
            self.samples = position
        match message:
            case Open():
                await self._on_open(message)
            case Close():
                await self._on_close(message)
            case Control(type="ping"):
                self.send("pong", {})
            case Control(type="update"):
                log.info("audiohook %s: update (language %s)", self.id, message.language)
                self.send("updated", {})
            case Control(type="paused"):
                if self.state == "active":
                    self.state = "paused"
            case Control(type="resumed"):
                if self.state == "paused":
                    self.state = "active"
            case Control():
                pass  # discarded: the position above already skipped it
            case ClientError():
                self.errors.reject("client_error", f"client error {message.code}: {message.message[:200]}")
            case Unknown():
                self.errors.reject("unknown_type", f"unknown message type {message.name!r}")

    async def _on_open(self, message: Open) -> None:
        if self.state != "preparing":
            self.errors.reject("duplicate_open", f"open in state {self.state}")
            return
        if self.organization and message.organization_id != self.organization:
            self.disconnect("unauthorized", "organizationId does not match the audiohook-organization-id header")
            return
        media = choose_media(message.media)
        if media is None:
            self.errors.reject("no_media", "no PCMU or L16 offer at 8000 Hz")
            self.disconnect("error", "no supported media offer (need PCMU or L16 at 8000 Hz)")
            return
        self.media = media
        if message.conversation_id == NULL_UUID:
            # Genesys' connection probe: answer it like a call, but there is no call to store.
            self.probe = True
            log.info("audiohook %s: connection probe", self.id)
        else:
            bind_call(message.conversation_id)
            call = NewCall(message.conversation_id, self.id, utc_now(), message.ani, message.dnis, "", "audiohook")
            if at_capacity(self.app):
                self.errors.reject("capacity", "too many calls in progress")
                self.disconnect("error", "too many calls in progress")
                return
            try:
                self.session = await open_session(self.app, call)
            except CallRefused as exc:
                self.errors.reject(exc.reason, str(exc))
                self.disconnect("error", str(exc))
                return
            self.errors.attach(self.session)
            self._forwarder = asyncio.get_running_loop().create_task(
                self._forward_events(call.call_sid), name=f"audiohook events {self.id}")
            log.info("call %s: AudioHook session %s opened (%s, %s)", call.call_sid, self.id, media.format,
                     "+".join(media.channels))
        self.send("opened", {"media": [media.to_json()], "startPaused": False})
        self.state = "active"

    async def _on_close(self, message: Close) -> None:
        if self.state in ("closing", "closed"):
            return
        self.state = "closing"
        if self.session is not None:
            status: CallStatus = "ended" if message.reason in ("end", "disconnect", "") else "interrupted"
            self._finishing = asyncio.get_running_loop().create_task(
                finish_shielded(self.app, self.session, status), name=f"audiohook finish {self.id}")
            # Wait (a little) for the last utterances so they still reach Genesys as events.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._finishing), CLOSE_GRACE)
        self.send("closed", {})
        self.state = "closed"

    async def _end(self) -> None:
        try:
            if self._finishing is not None:
                await self._finishing
            elif self.session is not None:
                # No close: the socket dropped (or the server is shutting down). Keep what was heard.
                await finish_shielded(self.app, self.session, "interrupted")
        finally:
            if self._forwarder is not None:
                self._forwarder.cancel()
                await asyncio.gather(self._forwarder, return_exceptions=True)
            # Let queued control messages (closed, disconnect) out, but never wait on a client that won't read.
            self._outbox.put_nowait(None)
            if self._sender_task is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._sender_task), 1.0)
                self._sender_task.cancel()
                await asyncio.gather(self._sender_task, return_exceptions=True)


async def audiohook(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    check_upgrade(request)
    if at_capacity(app):
        raise web.HTTPServiceUnavailable(text="too many calls in progress")
    ws = web.WebSocketResponse(max_msg_size=HARD_MESSAGE_LIMIT, heartbeat=30)
    await ws.prepare(request)
    app[CALL_SOCKETS].add(ws)
    connection = AudioHookSession(app, ws, request.headers)
    await connection.run()
    await ws.close()
    return ws


def add_routes(app: web.Application) -> None:
    app[NONCES] = NonceCache()
    app.router.add_get("/audiohook", audiohook)
