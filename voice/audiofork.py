"""FreeSWITCH `mod_audio_fork` at `WS /audiofork`: FreeSWITCH connects, sends one text frame of metadata,
then binary frames of audio; it closes the WebSocket when the fork stops or the channel hangs up.

Written from the module's public README (github.com/drachtio/drachtio-freeswitch-modules,
`modules/mod_audio_fork/README.md`): `uuid_audio_fork <uuid> start <ws-url> <mix-type> <sampling-rate>
<metadata>` streams "linear 16" (16-bit PCM, little-endian on the hosts FreeSWITCH runs on) at 8k or 16k,
`mono` (the caller) or `stereo` (caller and callee in separate, interleaved channels).

The protocol says nothing about which call it is or what format follows, so carecoach reads both from the
metadata, a JSON object written by the dialplan (README "FreeSWITCH"):
`{"call_sid": "${uuid}", "from": …, "to": …, "agent": …, "mix": "stereo", "rate": 8000}`, where only
`call_sid` is required (FreeSWITCH's metadata examples use single quotes; those are accepted too). The
channel the fork is started on is the customer's: its caller audio (left) is the customer, the callee
(right) the agent. 16 kHz audio is resampled to the pipeline's 8 kHz.

Access is the service's own: with `CARECOACH_API_TOKENS` set, the URL carries `?token=T`. Ending: a
WebSocket close frame ends the call `ended`; a connection that drops without one gives `interrupted`.
Audio before the metadata, bad metadata, `mixed` audio (the parties can't be told apart) and odd-sized
frames are counted; the first three refuse the stream, the last is dropped and the call goes on.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from dialog.types import CallStatus, NewCall
from voice.audiohook import split_l16
from voice.calls import CallRefused, StreamErrors, at_capacity, finish_shielded, open_session
from voice.codec import Resampler
from voice.logs import bind_call
from voice.session import CallSession
from voice.state import CALL_SOCKETS, CONFIG, HARD_MESSAGE_LIMIT, METRICS, utc_now
from voice.types import PIPELINE_RATE, SPEAKERS

log = logging.getLogger("carecoach")

MIX_CHANNELS = {"stereo": 2, "mono": 1}
RATES = (8000, 16000)


def parse_metadata(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        try:  # FreeSWITCH dialplans write JSON with single quotes to avoid XML escaping
            data = json.loads(text.replace("'", '"'))
        except ValueError:
            raise ValueError("metadata is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("metadata must be a JSON object")
    if not isinstance(data.get("call_sid"), str):
        raise ValueError("metadata needs a call_sid (the FreeSWITCH channel's ${uuid})")
    if data.get("mix", "stereo") not in MIX_CHANNELS:
        raise ValueError(f"mix must be stereo or mono, not {str(data.get('mix'))[:20]!r}")
    rate = data.get("rate", PIPELINE_RATE)
    if rate not in RATES and rate not in ("8k", "16k"):
        raise ValueError(f"rate must be 8000 or 16000, not {str(rate)[:20]!r}")
    return data


async def audiofork(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    config = app[CONFIG]
    if at_capacity(app):
        raise web.HTTPServiceUnavailable(text="too many calls in progress")
    ws = web.WebSocketResponse(max_msg_size=HARD_MESSAGE_LIMIT, heartbeat=30, protocols=("audio.drachtio.org",))
    await ws.prepare(request)
    app[CALL_SOCKETS].add(ws)
    errors = StreamErrors(app[METRICS], "audiofork")
    session: CallSession | None = None
    status: CallStatus = "interrupted"
    channels, resamplers, samples = 2, [Resampler(PIPELINE_RATE, PIPELINE_RATE)] * 2, 0
    try:
        while True:
            try:
                msg = await ws.receive(timeout=config.handshake_timeout if session is None else None)
            except TimeoutError:
                errors.reject("no_metadata", f"no metadata within {config.handshake_timeout:g} s")
                break
            if msg.type == WSMsgType.CLOSE:
                status = "ended"  # FreeSWITCH stopped the fork or hung up, and said so
                break
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break  # dropped without a close frame
            if len(msg.data) > config.max_message_bytes:
                errors.reject("oversized", f"{len(msg.data)} bytes > {config.max_message_bytes}")
                continue
            if msg.type == WSMsgType.TEXT:
                if session is not None:
                    log.info("call %s: audio_fork text frame: %.200s", session.call_sid, msg.data)
                    continue
                try:
                    meta = parse_metadata(msg.data)
                except ValueError as exc:
                    errors.reject("malformed", str(exc))
                    break
                rate = {"8k": 8000, "16k": 16000}.get(str(meta.get("rate")), meta.get("rate", PIPELINE_RATE))
                channels = MIX_CHANNELS[meta.get("mix", "stereo")]
                resamplers = [Resampler(int(rate), PIPELINE_RATE) for _ in range(channels)]
                bind_call(str(meta["call_sid"]))
                call = NewCall(meta["call_sid"], meta["call_sid"], utc_now(), str(meta.get("from", "")),
                               str(meta.get("to", "")), str(meta.get("agent", "")), "freeswitch")
                try:
                    session = await open_session(app, call)
                except CallRefused as exc:
                    errors.reject(exc.reason, str(exc))
                    break
                errors.attach(session)
                log.info("call %s: audio_fork stream opened (%s, %d Hz)", call.call_sid, meta.get("mix", "stereo"),
                         rate)
                continue
            if session is None:
                errors.reject("media_before_start", "audio before the metadata")
                break
            if len(msg.data) % (2 * channels):
                errors.reject("malformed", f"{len(msg.data)} bytes is not whole {channels}-channel 16-bit samples")
                continue
            timestamp_ms = samples * 1000 // PIPELINE_RATE
            pcm = b""
            for speaker, channel, resampler in zip(SPEAKERS, split_l16(msg.data, channels), resamplers, strict=False):
                pcm = resampler.process(channel)
                session.on_pcm(speaker, timestamp_ms, pcm)
            samples += len(pcm) // 2
    finally:
        if session is not None:
            # The resamplers hold back their filter's delay: it is audio heard, so it goes in too.
            timestamp_ms = samples * 1000 // PIPELINE_RATE
            for speaker, resampler in zip(SPEAKERS, resamplers, strict=False):
                session.on_pcm(speaker, timestamp_ms, resampler.process(b"", last=True))
            await finish_shielded(app, session, status)
    await ws.close()
    return ws


def add_routes(app: web.Application) -> None:
    app.router.add_get("/audiofork", audiofork)
