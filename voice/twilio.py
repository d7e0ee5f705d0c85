"""Twilio at the edge: Media Streams messages parsed into a closed set of typed frames, the frames we
send back, the TwiML we answer `/twilio/voice` with, and `X-Twilio-Signature` checks.

Nothing past this module sees Twilio's JSON: a message is either one of the frozen dataclasses below
or a `FrameError` that names what was wrong with it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Dial, VoiceResponse
from twilio.twiml.voice_response import Start as TwimlStart

from voice.types import Speaker

#: Twilio's track names → our speakers. inbound = the caller (customer), outbound = what the caller
#: hears (the agent), because the stream is started on the customer's leg.
TRACK_SPEAKER: dict[str, Speaker] = {"inbound": "customer", "outbound": "agent"}


class FrameError(ValueError):
    """A message that could not be understood. The call goes on; the frame is counted and logged."""


@dataclass(frozen=True, slots=True)
class Connected:
    event: Literal["connected"]
    protocol: str


@dataclass(frozen=True, slots=True)
class Start:
    event: Literal["start"]
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    parameters: Mapping[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000


@dataclass(frozen=True, slots=True)
class Media:
    event: Literal["media"]
    speaker: Speaker
    chunk: int
    timestamp_ms: int
    payload: bytes  # μ-law bytes, already base64-decoded


@dataclass(frozen=True, slots=True)
class Dtmf:
    event: Literal["dtmf"]
    speaker: Speaker
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    event: Literal["mark"]
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    event: Literal["stop"]


@dataclass(frozen=True, slots=True)
class Unknown:
    event: Literal["unknown"]
    name: str


TwilioMessage = Connected | Start | Media | Dtmf | Mark | Stop | Unknown


def _obj(message: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = message.get(key)
    if not isinstance(value, dict):
        raise FrameError(f"'{key}' must be an object")
    return value


def _int(container: Mapping[str, Any], key: str) -> int:
    # Twilio sends numeric fields as strings; accept real numbers too.
    value = container.get(key)
    try:
        number = int(value)  # type: ignore[arg-type]  # any failure is reported below
    except (TypeError, ValueError, OverflowError):
        raise FrameError(f"'{key}' must be an integer, got {value!r:.40}") from None
    if number < 0:
        raise FrameError(f"'{key}' must not be negative")
    return number


def _str(container: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = container.get(key, default)
    if not isinstance(value, str):
        raise FrameError(f"'{key}' must be a string")
    return value


def _speaker(track: object) -> Speaker:
    # dtmf uses "inbound_track"; media uses "inbound".
    name = str(track).removesuffix("_track")
    if name not in TRACK_SPEAKER:
        raise FrameError(f"unknown track {track!r:.40}")
    return TRACK_SPEAKER[name]


def parse_message(text: str | bytes) -> TwilioMessage:
    """Parse one WebSocket text message from Twilio."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FrameError("not JSON") from None
    if not isinstance(message, dict):
        raise FrameError("not a JSON object")
    event = message.get("event")
    match event:
        case "media":
            media = _obj(message, "media")
            try:
                payload = base64.b64decode(_str(media, "payload"), validate=True)
            except (binascii.Error, ValueError):
                raise FrameError("payload is not valid base64") from None
            return Media("media", _speaker(media.get("track", "inbound")), _int(media, "chunk"),
                         _int(media, "timestamp"), payload)
        case "start":
            start = _obj(message, "start")
            params = start.get("customParameters") or {}
            if not isinstance(params, dict):
                raise FrameError("'customParameters' must be an object")
            fmt = start.get("mediaFormat") or {}
            if not isinstance(fmt, dict):
                raise FrameError("'mediaFormat' must be an object")
            tracks = start.get("tracks") or ["inbound"]
            if not isinstance(tracks, list):
                raise FrameError("'tracks' must be a list")
            stream_sid = _str(start, "streamSid", message.get("streamSid"))
            encoding = str(fmt.get("encoding", "audio/x-mulaw"))
            rate = _int(fmt, "sampleRate") if "sampleRate" in fmt else 8000
            if encoding != "audio/x-mulaw" or rate != 8000:
                raise FrameError(f"unsupported media format {encoding} at {rate} Hz")
            return Start("start", stream_sid, _str(start, "callSid"), _str(start, "accountSid", ""),
                         tuple(str(t) for t in tracks), {str(k): str(v) for k, v in params.items()},
                         encoding, rate)
        case "dtmf":
            dtmf = _obj(message, "dtmf")
            return Dtmf("dtmf", _speaker(dtmf.get("track", "inbound_track")), _str(dtmf, "digit"))
        case "mark":
            return Mark("mark", _str(_obj(message, "mark"), "name"))
        case "connected":
            return Connected("connected", str(message.get("protocol", "")))
        case "stop":
            return Stop("stop")
        case str():
            return Unknown("unknown", event)
        case _:
            raise FrameError("missing 'event'")


def media_message(stream_sid: str, ulaw: bytes) -> str:
    """An outbound `media` message for a bidirectional stream (used by the whisper leg)."""
    payload = base64.b64encode(ulaw).decode("ascii")
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark_message(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


# --- URLs and signatures -------------------------------------------------------------------------


def public_base(public_url: str | None, scheme: str, host: str) -> str:
    """The service's public base URL: the configured one, or the one this request arrived on."""
    return public_url.rstrip("/") if public_url else f"{scheme}://{host}"


def stream_url(base: str) -> str:
    """The WebSocket URL the TwiML advertises (and that Twilio signs on the upgrade)."""
    parts = urlsplit(base)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/twilio/stream", "", ""))


def signature_valid(auth_token: str, url: str, params: Mapping[str, str], signature: str | None) -> bool:
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))


def sign(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Compute the signature Twilio would send (used by `carecoach simulate` and tests)."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params or {})))


# --- TwiML ---------------------------------------------------------------------------------------


def _start_stream(response: VoiceResponse, stream: str, params: Mapping[str, str]) -> None:
    """`<Start><Stream track="both_tracks">` with the call's data as `<Parameter>`s."""
    start = TwimlStart()
    twiml_stream = start.stream(url=stream, track="both_tracks")
    for name, value in params.items():
        if value:
            twiml_stream.parameter(name=name, value=value)
    response.append(start)


def _dial(agent_dial: str) -> Dial:
    dial = Dial()
    if agent_dial.startswith("sip:"):
        dial.sip(agent_dial)
    elif agent_dial.startswith("client:"):
        dial.client(agent_dial.removeprefix("client:"))
    else:
        dial.number(agent_dial)
    return dial


def voice_twiml(stream: str, params: Mapping[str, str], agent_dial: str | None) -> str:
    """`<Start><Stream track="both_tracks">`, then `<Dial>` to the agent."""
    response = VoiceResponse()
    _start_stream(response, stream, params)
    if agent_dial is None:
        response.say("Sorry, no agent line is configured for this number.")
        response.hangup()
        return str(response)
    response.append(_dial(agent_dial))
    return str(response)


def dial_twiml(agent_dial: str) -> str:
    """Just the `<Dial>`: for redirecting a call whose `<Start><Stream>` is already running."""
    response = VoiceResponse()
    response.append(_dial(agent_dial))
    return str(response)


def conference_twiml(stream: str, params: Mapping[str, str], conference: str, status_callback: str) -> str:
    """`/twilio/voice` for an agent with audio whispers: coaching needs the call in a `<Conference>`.

    Same `<Start><Stream track="both_tracks">` as `voice_twiml` (inbound = customer; outbound = what
    the customer hears = the agent, since a coach is inaudible to everyone but the agent), then the
    customer joins `conference`. The agent is added with `CoachingLegs.add_agent`, and the conference
    callbacks (`participant-join`) go to `status_callback`.
    """
    response = VoiceResponse()
    _start_stream(response, stream, params)
    dial = Dial()
    dial.conference(
        conference, beep="false", start_conference_on_enter=True, end_conference_on_exit=True, wait_url="",
        status_callback=status_callback, status_callback_method="POST",
        status_callback_event="start end join leave",
    )
    response.append(dial)
    return str(response)
