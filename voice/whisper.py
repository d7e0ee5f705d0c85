"""Audio whispers over Twilio: the agent-only channel that speaks coaching cards into the agent's ear.

This module owns the whole whisper path on the Twilio side:

- `WhisperChannel`: one bidirectional Media Stream WebSocket (`WS /twilio/whisper`), opened by the
  coaching leg's `<Connect><Stream>`. It sends μ-law `media` in 20 ms chunks at real-time pace, then a
  `mark`; a higher-priority whisper first sends `clear` to cut what is playing. Twilio echoes a mark
  when the audio before it has played (or was cleared), which fills `played` / `interrupted`.
- `WhisperRegistry`: the live channels of this replica, by the coached (customer) call's CallSid.
- `CoachingLegs`: the Twilio REST side (twilio's `Client`, blocking, run in a small thread pool):
  adds the coaching participant with `coaching=True, call_sid_to_coach=AGENT_LEG`, and (optionally)
  the agent's own leg to the conference. Failures raise `WhisperError(retryable=…)`.
- TwiML: `whisper_twiml` (the coaching leg's `<Connect><Stream>`); `voice.twilio.conference_twiml` is what
  `/twilio/voice` answers for an agent who opted in to audio whispers.

How the coaching leg reaches us: in twilio 9.x, `participants.create` has no `twiml` or `url`
parameter (the REST API has none); it dials `to`. So the coaching participant dials a TwiML App,
`to="app:AP…?call_sid=…&agent_call_sid=…"` — the Participant API passes those custom parameters to
the App's Voice URL (ours, `POST /twilio/whisper/voice`), which answers with `whisper_twiml(...)`
carrying them as `<Parameter>`s, and they come back in the stream's `start.customParameters`.
No phone number or PSTN leg is involved, and every replica can serve the webhook.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from aiohttp import ClientWebSocketResponse, WSMsgType, web
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client
from twilio.twiml.voice_response import Connect, VoiceResponse

from voice.twilio import FrameError, Mark, Start, Stop, TwilioMessage, mark_message, media_message, parse_message

log = logging.getLogger("carecoach.whisper")

T = TypeVar("T")

#: 20 ms of μ-law at 8 kHz: Twilio's own frame size.
CHUNK_BYTES = 160
SAMPLE_RATE = 8000
#: Audio sent ahead of real time, so network jitter never starves Twilio's playout buffer.
DEFAULT_LEAD = 0.1
#: Conference SIDs (CF…) and the friendly names we generate (`cc-CA…`); Twilio's library does not
#: percent-encode the path, so anything else is refused rather than sent.
_CONFERENCE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")

Socket = web.WebSocketResponse | ClientWebSocketResponse
Sleep = Callable[[float], Awaitable[None]]


class WhisperError(RuntimeError):
    """A whisper could not be set up or sent. `retryable` says whether trying again may work."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


def clear_message(stream_sid: str) -> str:
    """Twilio's `clear`: drop all audio buffered on a bidirectional stream (pending marks come back)."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})


# --- the media stream ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Whisper:
    name: str
    priority: int
    cut: bool = False


class WhisperChannel:
    """One coaching leg's bidirectional Media Stream. Created by the `/twilio/whisper` handler.

    Feed it Twilio's messages with `run()` (reads the socket) or `handle()` (already parsed). `say`
    may be called from any task; whispers of equal or lower priority than the one outstanding queue
    behind it, a strictly higher one cuts everything outstanding (`clear`) and plays next.
    """

    def __init__(self, ws: Socket, *, sleep: Sleep = asyncio.sleep, clock: Callable[[], float] = time.monotonic,
                 lead: float = DEFAULT_LEAD) -> None:
        self._ws = ws
        self._sleep = sleep
        self._clock = clock
        self._lead = lead
        self.stream_sid: str | None = None
        self.call_sid: str | None = None  # the coaching leg's own CallSid
        self.parameters: Mapping[str, str] = {}
        self.played: set[str] = set()
        self.interrupted: set[str] = set()
        self.malformed = 0
        self.started = asyncio.Event()
        self.closed = False
        self._play_lock = asyncio.Lock()  # one whisper's chunks at a time
        self._wire = asyncio.Lock()  # one frame at a time, and no media after a clear
        self._outstanding: list[_Whisper] = []  # queued or sending
        self._unplayed: dict[str, _Whisper] = {}  # mark sent, echo not yet back
        self._waiters: dict[str, list[asyncio.Future[bool]]] = {}
        self._settled = asyncio.Event()  # started, or closed before starting

    @property
    def coached_call_sid(self) -> str | None:
        """The customer call this leg coaches (the `call_sid` `<Parameter>`), the key for prompts."""
        return self.parameters.get("call_sid")

    # --- from Twilio --------------------------------------------------------------------------

    def handle(self, message: TwilioMessage) -> None:
        if isinstance(message, Start):
            self.stream_sid, self.call_sid = message.stream_sid, message.call_sid
            self.parameters = dict(message.parameters)
            self.started.set()
            self._settled.set()
        elif isinstance(message, Mark):
            whisper = self._unplayed.pop(message.name, None)
            if whisper is None and message.name in self.interrupted:
                return  # the echo Twilio sends for a mark we cleared
            self.played.add(message.name)
            self._resolve(message.name, True)
        elif isinstance(message, Stop):
            self._close()

    async def run(self, on_start: Callable[[WhisperChannel], None] | None = None) -> None:
        """Read the socket until Twilio stops the stream or it drops; `on_start` runs after `start`."""
        try:
            async for msg in self._ws:
                if msg.type is not WSMsgType.TEXT:
                    if msg.type is WSMsgType.BINARY:
                        self.malformed += 1
                    continue
                try:
                    message = parse_message(msg.data)
                except FrameError as exc:
                    self.malformed += 1
                    log.warning("whisper stream %s: malformed message: %s", self.stream_sid, exc)
                    continue
                self.handle(message)
                if isinstance(message, Start) and on_start is not None:
                    on_start(self)
                if isinstance(message, Stop):
                    break
        finally:
            self._close()

    async def wait_started(self) -> None:
        """Wait for Twilio's `start` (bound it with `asyncio.timeout`); raises if the socket ended first."""
        await self._settled.wait()
        if self.stream_sid is None:
            raise WhisperError("the whisper stream ended before it started", retryable=True)

    # --- to Twilio ----------------------------------------------------------------------------

    async def say(self, ulaw: bytes, name: str, *, priority: int = 0) -> bool:
        """Play μ-law 8 kHz audio to the agent, then send mark `name` (make names unique per whisper).

        Returns True when all audio and the mark were sent, False if a higher-priority whisper cut it
        first. Use `wait_played(name)` to learn whether Twilio actually played it.
        """
        if self.closed:
            raise WhisperError("the whisper stream is closed", retryable=False)
        if self.stream_sid is None:
            raise WhisperError("the whisper stream has not started", retryable=True)
        outstanding = self._outstanding + list(self._unplayed.values())
        if outstanding and priority > max(w.priority for w in outstanding):
            await self._cut()
        whisper = _Whisper(name, priority)
        self._outstanding.append(whisper)
        try:
            async with self._play_lock:
                if whisper.cut:
                    return False
                return await self._play(whisper, ulaw)
        finally:
            self._outstanding.remove(whisper)

    async def _play(self, whisper: _Whisper, ulaw: bytes) -> bool:
        assert self.stream_sid is not None
        t0 = self._clock()
        for offset in range(0, len(ulaw), CHUNK_BYTES):
            chunk = ulaw[offset:offset + CHUNK_BYTES]
            if not await self._send(media_message(self.stream_sid, chunk), whisper):
                return False
            # Pace against the clock (not per-sleep) so oversleeping never accumulates.
            delay = t0 + (offset + len(chunk)) / SAMPLE_RATE - self._lead - self._clock()
            if delay > 0:
                await self._sleep(delay)
        self._unplayed[whisper.name] = whisper
        if not await self._send(mark_message(self.stream_sid, whisper.name), whisper):
            self._unplayed.pop(whisper.name, None)
            return False
        return True

    async def clear(self) -> None:
        """Cut everything queued, sending or buffered at Twilio."""
        await self._cut()

    async def _cut(self) -> None:
        for whisper in self._outstanding:
            whisper.cut = True
        for name, whisper in list(self._unplayed.items()):
            whisper.cut = True
            self.interrupted.add(name)
            self._resolve(name, False)
        self._unplayed.clear()
        assert self.stream_sid is not None
        await self._send(clear_message(self.stream_sid), None)

    async def _send(self, text: str, whisper: _Whisper | None) -> bool:
        """Send one frame unless `whisper` was cut; the check and the write are atomic w.r.t. `clear`."""
        async with self._wire:
            if whisper is not None and whisper.cut:
                return False
            if self.closed:
                raise WhisperError("the whisper stream is closed", retryable=False)
            try:
                await self._ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:  # aiohttp: ClientConnectionResetError / closing
                self._close()
                raise WhisperError(f"the whisper stream dropped: {exc}", retryable=False) from None
            return True

    async def wait_played(self, name: str) -> bool:
        """True once Twilio echoed mark `name` after playing it; False if it was cut or the leg ended."""
        if name in self.played:
            return True
        if name in self.interrupted or self.closed:
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, []).append(future)
        return await future

    def _resolve(self, name: str, played: bool) -> None:
        for future in self._waiters.pop(name, []):
            if not future.done():
                future.set_result(played)

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for whisper in self._outstanding:
            whisper.cut = True
        for name in list(self._waiters):
            self._resolve(name, False)
        self._settled.set()


class WhisperRegistry:
    """The whisper channels live on this replica, keyed by the coached (customer) call's CallSid."""

    def __init__(self) -> None:
        self._channels: dict[str, WhisperChannel] = {}

    def get(self, call_sid: str) -> WhisperChannel | None:
        channel = self._channels.get(call_sid)
        return channel if channel is not None and not channel.closed else None

    def __len__(self) -> int:
        return len(self._channels)

    async def serve(self, channel: WhisperChannel) -> None:
        """Run `channel` until its stream ends, registered under its `call_sid` parameter meanwhile."""
        def register(ch: WhisperChannel) -> None:
            key = ch.coached_call_sid or ch.call_sid
            if key:
                self._channels[key] = ch

        try:
            await channel.run(on_start=register)
        finally:
            for key, ch in list(self._channels.items()):
                if ch is channel:
                    del self._channels[key]


# --- TwiML -----------------------------------------------------------------------------------------


def whisper_stream_url(base: str) -> str:
    """`wss://PUBLIC/twilio/whisper` (or `ws://`): the URL `whisper_twiml` advertises and Twilio signs."""
    parts = urlsplit(base)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/twilio/whisper", "", ""))


def whisper_twiml(whisper_url: str, params: Mapping[str, str] | None = None) -> str:
    """The coaching leg's TwiML: `<Connect><Stream>` back to us, with `params` as `<Parameter>`s.

    Pass at least `call_sid` (the customer call the prompts belong to) so the socket can be matched.
    """
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=whisper_url)
    for name, value in (params or {}).items():
        if value:
            stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


# --- Twilio REST -----------------------------------------------------------------------------------


class _RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints for mypy
    """Sends every Twilio API request to `base_url` instead of `https://*.twilio.com` (tests, proxies)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        base = urlsplit(base_url)
        self._scheme, self._netloc, self._prefix = base.scheme, base.netloc, base.path.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        parts = urlsplit(url)
        url = urlunsplit((self._scheme, self._netloc, self._prefix + parts.path, parts.query, ""))
        return super().request(method, url, *args, **kwargs)


def _rest_error(action: str, exc: Exception) -> WhisperError:
    if isinstance(exc, TwilioRestException):
        status = int(exc.status)
        retryable = status >= 500 or status in (408, 429)
        detail = f"HTTP {status}" + (f", code {exc.code}" if exc.code else "") + f": {exc.msg}"
        return WhisperError(f"{action} failed ({detail})", retryable=retryable, status=status)
    if isinstance(exc, requests.RequestException):  # refused, reset, timed out, DNS
        return WhisperError(f"{action} failed: cannot reach Twilio ({type(exc).__name__})", retryable=True)
    return WhisperError(f"{action} failed: {exc}", retryable=True)


class CoachingLegs:
    """Adds and removes conference legs through Twilio's REST API (one instance per process).

    `whisper_to` is what the coaching participant dials: `app:AP…`, a TwiML App whose Voice URL is our
    `POST /twilio/whisper/voice`. `caller_id` is its From: a Twilio number of the account.
    `base_url` replaces `https://api.twilio.com` (a local fake in tests, or an egress proxy).
    """

    def __init__(self, account_sid: str, auth_token: str, *, whisper_to: str, caller_id: str,
                 base_url: str | None = None, timeout: float = 10.0, max_workers: int = 4,
                 client: Client | None = None) -> None:
        if not re.match(r"^app:AP[0-9a-fA-F]{32}$", whisper_to):
            # Only a TwiML App both reaches our webhook and carries custom parameters to it.
            raise ValueError("whisper_to must be a TwiML App, app:AP… (32 hex digits)")
        self.account_sid = account_sid
        self.whisper_to = whisper_to
        self.caller_id = caller_id
        http_client = _RebasedHttpClient(base_url, timeout) if base_url else TwilioHttpClient(timeout=timeout)
        self._client = client or Client(account_sid, auth_token, http_client=http_client)
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="carecoach-twilio")

    async def _call(self, action: str, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except (TwilioException, requests.RequestException) as exc:
            raise _rest_error(action, exc) from exc

    @staticmethod
    def _check(conference: str, *call_sids: str) -> None:
        if not _CONFERENCE.match(conference):
            raise WhisperError(f"bad conference id {conference!r:.60}", retryable=False)
        for sid in call_sids:
            if not _CALL_SID.match(sid):
                raise WhisperError(f"bad call SID {sid!r:.60}", retryable=False)

    async def start(self, conference: str, agent_call_sid: str, *, call_sid: str | None = None,
                    label: str = "carecoach-whisper") -> str:
        """Add the coaching (whisper) participant for the agent's leg; returns its CallSid.

        `conference` is the ConferenceSid (CF…) or its friendly name; `agent_call_sid` is the agent's
        leg *in the conference* (it must already have joined); `call_sid` is the customer call the
        prompts belong to (defaults to `agent_call_sid`). Both travel to the whisper voice webhook as
        custom parameters and come back on the stream's `start`.
        """
        self._check(conference, agent_call_sid, *([call_sid] if call_sid else []))
        params = {"call_sid": call_sid or agent_call_sid, "agent_call_sid": agent_call_sid}
        to = f"{self.whisper_to}?{urlencode(params)}"

        def create() -> str:
            participant = self._client.conferences(conference).participants.create(
                from_=self.caller_id, to=to, label=label, coaching=True, call_sid_to_coach=agent_call_sid,
                beep="false", early_media=False, end_conference_on_exit=False, start_conference_on_enter=False,
            )
            return str(participant.call_sid)

        return await self._call("adding the whisper leg", create)

    async def add_agent(self, conference: str, to: str, caller_id: str, *, label: str = "agent",
                        status_callback: str | None = None, ring_seconds: int = 30) -> str:
        """Dial the agent (`+E164`, `sip:…`, `client:…`) into `conference`; returns the agent leg's CallSid."""
        self._check(conference)
        extra: dict[str, Any] = {}
        if status_callback:
            extra = {"status_callback": status_callback, "status_callback_event": ["answered", "completed"]}

        def create() -> str:
            participant = self._client.conferences(conference).participants.create(
                from_=caller_id, to=to, label=label, timeout=ring_seconds, beep="false",
                start_conference_on_enter=True, end_conference_on_exit=True, **extra,
            )
            return str(participant.call_sid)

        return await self._call("adding the agent leg", create)

    async def stop(self, conference: str, participant_call_sid: str) -> None:
        """Hang up a leg (e.g. the whisper leg when the agent opts out mid-call)."""
        self._check(conference, participant_call_sid)
        await self._call("removing a leg",
                         lambda: self._client.conferences(conference).participants(participant_call_sid).delete())

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
