"""`carecoach simulate`: act as Twilio and stream a stereo WAV into `/twilio/stream`.

Left channel = customer (Twilio's `inbound` track), right = agent (`outbound`). The audio is resampled
to 8 kHz, μ-law encoded and sent as 20 ms `media` messages on both tracks, paced at `speed` times real time
(0 = as fast as the socket takes them), framed by `connected`, `start` and `stop` exactly as Twilio does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np

from voice.codec import pcm16_to_ulaw, resample
from voice.twilio import sign
from voice.types import PIPELINE_RATE

FRAME_MS = 20
FRAME_SAMPLES = PIPELINE_RATE * FRAME_MS // 1000


class CallFileError(ValueError):
    """The call file can't be streamed; the message names the file and the problem."""


def load_stereo(path: Path) -> np.ndarray:
    """A stereo 16-bit WAV at any rate → int16 array (n, 2) at 8 kHz (customer, agent)."""
    try:
        with wave.open(str(path)) as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (OSError, wave.Error, EOFError) as exc:
        raise CallFileError(f"{path}: not a readable WAV file ({exc})") from None
    if channels != 2:
        raise CallFileError(
            f"{path}: expected a stereo WAV (left = customer, right = agent), got {channels} channel(s)")
    if width != 2:
        raise CallFileError(f"{path}: expected 16-bit samples, got {8 * width}-bit")
    samples = np.frombuffer(frames, dtype="<i2").reshape(-1, 2)
    if rate != PIPELINE_RATE:
        samples = np.clip(resample(samples.astype(np.float32), rate, PIPELINE_RATE), -32768, 32767).astype("<i2")
    return samples


@dataclass(frozen=True, slots=True)
class SimulatedCall:
    call_sid: str
    stream_sid: str
    duration: float
    frames: int
    started: float  # time.monotonic() when the first media frame was sent


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


class MediaStreamClient:
    """The Twilio side of one Media Stream: `start`, `media` per track, `stop` — or raw text for tests."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, call_sid: str) -> None:
        self.ws = ws
        self.call_sid = call_sid
        self.stream_sid = "MZ" + secrets.token_hex(16)
        self._sequence = 0

    async def _send(self, event: str, **body: object) -> None:
        self._sequence += 1
        await self.ws.send_str(json.dumps(
            {"event": event, "sequenceNumber": str(self._sequence), "streamSid": self.stream_sid, **body}))

    async def start(self, parameters: dict[str, str] | None = None) -> None:
        await self.ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await self._send("start", start={
            "accountSid": ACCOUNT_SID, "streamSid": self.stream_sid, "callSid": self.call_sid,
            "tracks": ["inbound", "outbound"], "customParameters": parameters or {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}})

    async def media(self, track: str, chunk: int, timestamp_ms: int, ulaw: bytes) -> None:
        await self._send("media", media={"track": track, "chunk": str(chunk), "timestamp": str(timestamp_ms),
                                         "payload": base64.b64encode(ulaw).decode("ascii")})

    async def stop(self) -> None:
        await self._send("stop", stop={"accountSid": ACCOUNT_SID, "callSid": self.call_sid})

    async def wait_closed(self) -> None:
        """After `stop`, the server drains its recognisers, stores the call, then closes."""
        async for _ in self.ws:
            pass


ACCOUNT_SID = "AC" + "0" * 32


def signed_headers(url: str, auth_token: str | None) -> dict[str, str]:
    return {"x-twilio-signature": sign(auth_token, url)} if auth_token else {}


async def stream_call(
    samples: np.ndarray,
    url: str,
    *,
    speed: float = 1.0,
    call_sid: str | None = None,
    auth_token: str | None = None,
    parameters: dict[str, str] | None = None,
    on_progress: Callable[[float, float], None] | None = None,
    send_stop: bool = True,
    session: aiohttp.ClientSession | None = None,
) -> SimulatedCall:
    """Stream an (n, 2) int16 8 kHz call to `url` as Twilio Media Streams does."""
    n_frames = -(-len(samples) // FRAME_SAMPLES)
    padded = np.zeros((n_frames * FRAME_SAMPLES, 2), dtype="<i2")
    padded[: len(samples)] = samples
    tracks = [
        ("inbound", pcm16_to_ulaw(padded[:, 0].tobytes())),
        ("outbound", pcm16_to_ulaw(padded[:, 1].tobytes())),
    ]
    own_session = session is None
    client = session or aiohttp.ClientSession()
    try:
        async with client.ws_connect(url, headers=signed_headers(url, auth_token), max_msg_size=0) as ws:
            twilio = MediaStreamClient(ws, call_sid or new_call_sid())
            await twilio.start(parameters)
            started = time.monotonic()
            for i in range(n_frames):
                if speed > 0:
                    delay = started + i * FRAME_MS / 1000 / speed - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif i % 50 == 0:
                    await asyncio.sleep(0)  # let the socket breathe when unpaced
                for track, ulaw in tracks:
                    await twilio.media(track, i + 1, i * FRAME_MS, ulaw[i * FRAME_SAMPLES: (i + 1) * FRAME_SAMPLES])
                if on_progress is not None and i % 50 == 0:
                    on_progress(i * FRAME_MS / 1000, n_frames * FRAME_MS / 1000)
            if send_stop:
                await twilio.stop()
                await twilio.wait_closed()
    finally:
        if own_session:
            await client.close()
    return SimulatedCall(twilio.call_sid, twilio.stream_sid, n_frames * FRAME_MS / 1000, n_frames, started)
