"""The naive per-stream baseline for `benchmarks/latency.py --server naive` (DESIGN.md "Budgets").

A minimal vosk-server-style service: every track of every call gets its OWN PocketSphinx `Decoder`,
created when the call starts, in its own worker process (PocketSphinx holds the GIL, so a per-stream
recogniser has to be a process to use more than one core), and EVERY audio frame goes to it: no VAD
gate. Same engine, model and options as `voice/asr/sphinx_engine.py` (bundled en-us, `fwdflat=False`,
the TELEPHONE_CMN initial cepstral mean, then the track's own adapted mean).

Utterance ends come from the engine's own voice detection. PocketSphinx 5 removed the decoder's
internal VAD (`Decoder.get_in_speech()` now always returns True once `start_utt()` was called), so
the pocketsphinx-5 replacement, `pocketsphinx.Endpointer`, watches the same audio the decoder gets
(it does not gate it): on its speech → silence transition the worker calls `end_utt()`, publishes the
words, and `start_utt()`s again, as the pocketsphinx live examples do. It runs at carecoach's WebRTC
aggressiveness (2) with a 0.3 s window, which makes it decide 0.37 to 0.43 s after the speaker stops on
tests/calls (demo, calm_questions): the same wait as carecoach's default 0.4 s endpoint silence, so the
two servers' latencies differ by decoding and queueing, not by endpointing. (The Endpointer's defaults,
LOOSE mode and 0.3 s, decide 0.40 to 0.48 s after; LOOSE with 0.4 s, 0.49 to 0.57 s.)

Routes: `WS /twilio/stream` (Twilio Media Streams JSON via `voice.twilio.parse_message`, μ-law →
PCM16 with `voice.codec`, 8 → 16 kHz with a stateful `voice.codec.Resampler` per track), `WS /api/live`
(`call_started`, `utterance` {type, call_sid, at, speaker, start, end, text}, `call_ended`),
`GET /readyz`, `GET /metrics` (empty) and `GET /api/calls/{sid}` ({status}), which is what the
benchmark reads.

Run: .venv/bin/python benchmarks/naive_server.py --port P [--host 127.0.0.1] [--endpoint-silence 0.4]
     (--endpoint-silence S sets the window to S - 0.1 s; --window / --vad-mode set them directly)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing as mp
import queue
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Only the standard library at module level: spawned workers re-import this file as `__mp_main__`,
# and a per-track process should pay for PocketSphinx, not for aiohttp and twilio.

log = logging.getLogger("naive_server")

SAMPLE_RATE = 16000
WINDOW = 0.3  # Endpointer decision window, s: see the module docstring
VAD_MODE = 2  # WebRTC aggressiveness, as carecoach's voice/vad.py Endpointer
FRAME_RATE = 100  # PocketSphinx frames per second


# --------------------------------------------------------------------------------------------------
# worker process: one track, one decoder
# --------------------------------------------------------------------------------------------------
def track_worker(conn: Connection, window: float = WINDOW, vad_mode: int = VAD_MODE) -> None:
    """Decode one track. Messages in: bytes (16 kHz PCM16, every frame of the call) or None (the call
    ended). Out: ("final", start s, end s, text) per utterance, then ("done",)."""
    from pocketsphinx import Decoder, Endpointer

    from voice.asr.sphinx_engine import FWDFLAT, TELEPHONE_CMN, clean_word

    decoder = Decoder(loglevel="FATAL", fwdflat=FWDFLAT)
    decoder.set_cmn(TELEPHONE_CMN)
    endpointer = Endpointer(window=window, vad_mode=vad_mode, sample_rate=SAMPLE_RATE)
    frame_bytes = endpointer.frame_bytes
    pending = bytearray()
    fed = 0  # samples given to the decoder so far (the track's stream clock)
    utt_base = 0  # `fed` at the current start_utt()

    def finish_utterance() -> None:
        decoder.end_utt()
        words = []
        if decoder.hyp() is not None:
            for seg in decoder.seg():
                w = clean_word(seg.word)
                if w is not None:
                    words.append((w, (utt_base + seg.start_frame * SAMPLE_RATE // FRAME_RATE) / SAMPLE_RATE,
                                  (utt_base + (seg.end_frame + 1) * SAMPLE_RATE // FRAME_RATE) / SAMPLE_RATE))
        if words:
            conn.send(("final", round(words[0][1], 3), round(words[-1][2], 3), " ".join(w for w, _, _ in words)))

    decoder.start_utt()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            finish_utterance()
            conn.send(("done",))
            return
        if not msg:
            continue
        decoder.process_raw(msg, False, False)  # every frame: no gate
        fed += len(msg) // 2
        pending += msg
        while len(pending) >= frame_bytes:
            frame = bytes(pending[:frame_bytes])
            del pending[:frame_bytes]
            was_in_speech = endpointer.in_speech
            endpointer.process(frame)
            if was_in_speech and not endpointer.in_speech:
                finish_utterance()
                utt_base = fed
                decoder.start_utt()


# --------------------------------------------------------------------------------------------------
# parent side
# --------------------------------------------------------------------------------------------------
class TrackProc:
    """One worker process plus a sender thread (so the loop never blocks on a full pipe, e.g. while
    the worker is still building its decoder) and a receiver thread (results back to the loop)."""

    def __init__(self, ctx: Any, loop: asyncio.AbstractEventLoop, window: float, vad_mode: int,
                 on_final: Any) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn: Connection = parent
        self.proc = ctx.Process(target=track_worker, args=(child, window, vad_mode), daemon=True)
        self.proc.start()
        child.close()
        self.loop = loop
        self.on_final = on_final
        self.done: asyncio.Future[None] = loop.create_future()
        self.sendq: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.closed = False
        threading.Thread(target=self._sender, daemon=True).start()
        threading.Thread(target=self._receiver, daemon=True).start()

    def push(self, pcm: bytes) -> None:
        if not self.closed and pcm:
            self.sendq.put(pcm)

    def end(self) -> None:
        if not self.closed:
            self.closed = True
            self.sendq.put(None)

    def _sender(self) -> None:
        while True:
            msg = self.sendq.get()
            try:
                self.conn.send(msg)
            except (OSError, ValueError):
                return
            if msg is None:
                return

    def _receiver(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                break
            if msg[0] == "final":
                self._call(self.on_final, *msg[1:])
            elif msg[0] == "done":
                break
        self._call(self._set_done)

    def _call(self, fn: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: nobody listens any more
            self.loop.call_soon_threadsafe(fn, *args)

    def _set_done(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def reap(self, timeout: float = 5.0) -> None:
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(2)
        with contextlib.suppress(OSError):
            self.conn.close()


def build_app(window: float = WINDOW, vad_mode: int = VAD_MODE) -> Any:
    from aiohttp import WSMsgType, web

    from voice.codec import Resampler, ulaw_to_pcm16
    from voice.twilio import FrameError, Media, Start, Stop, parse_message

    ctx = mp.get_context("spawn")
    live: set[web.WebSocketResponse] = set()
    statuses: dict[str, str] = {}
    procs: set[TrackProc] = set()

    def publish(event: dict[str, Any]) -> None:
        for ws in list(live):
            if not ws.closed:
                asyncio.get_running_loop().create_task(ws.send_json(event))

    async def api_live(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        live.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            live.discard(ws)
        return ws

    async def twilio_stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        call_sid: str | None = None
        tracks: dict[str, tuple[TrackProc, Any]] = {}
        position: dict[str, float] = {}
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                try:
                    frame = parse_message(msg.data)
                except FrameError:
                    continue
                if isinstance(frame, Start) and call_sid is None:
                    call_sid = frame.call_sid
                    statuses[call_sid] = "active"
                    for speaker in ("customer", "agent"):
                        def on_final(start: float, end: float, text: str, sp: str = speaker,
                                     sid: str = call_sid) -> None:
                            publish({"type": "utterance", "call_sid": sid, "at": end, "speaker": sp,
                                     "start": start, "end": end, "text": text})
                        tp = TrackProc(ctx, loop, window, vad_mode, on_final)
                        procs.add(tp)
                        tracks[speaker] = (tp, Resampler(8000, SAMPLE_RATE))
                        position[speaker] = 0.0
                    publish({"type": "call_started", "call_sid": call_sid, "at": 0.0})
                elif isinstance(frame, Media) and frame.speaker in tracks:
                    tp, resampler = tracks[frame.speaker]
                    tp.push(resampler.process(ulaw_to_pcm16(frame.payload)))
                    position[frame.speaker] += len(frame.payload) / 8000
                elif isinstance(frame, Stop):
                    break
        finally:
            for tp, resampler in tracks.values():
                tp.push(resampler.process(b"", last=True))
                tp.end()
            if tracks:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*(tp.done for tp, _ in tracks.values())), 120)
                await asyncio.gather(*(asyncio.to_thread(tp.reap) for tp, _ in tracks.values()))
                procs.difference_update(tp for tp, _ in tracks.values())
            if call_sid is not None:
                statuses[call_sid] = "ended"
                duration = round(max(position.values(), default=0.0), 3)
                publish({"type": "call_ended", "call_sid": call_sid, "at": duration, "status": "ended",
                         "duration": duration})
        await ws.close()
        return ws

    async def readyz(_request: web.Request) -> web.Response:
        return web.Response(text="ready")

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text="", content_type="text/plain")

    async def call(request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        if sid not in statuses:
            raise web.HTTPNotFound()
        return web.json_response({"call_sid": sid, "status": statuses[sid]})

    async def cleanup(_app: web.Application) -> None:
        for tp in list(procs):
            tp.end()
        for tp in list(procs):
            await asyncio.to_thread(tp.reap, 2.0)
        for ws in list(live):
            await ws.close()

    app = web.Application()
    app.router.add_get("/twilio/stream", twilio_stream)
    app.router.add_get("/api/live", api_live)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/calls/{sid}", call)
    app.on_shutdown.append(cleanup)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--endpoint-silence", type=float, default=None,
                        help="carecoach-equivalent endpoint silence, s: sets --window to this - 0.1")
    parser.add_argument("--window", type=float, default=WINDOW, help="Endpointer decision window, s")
    parser.add_argument("--vad-mode", type=int, default=VAD_MODE, choices=range(4), help="WebRTC aggressiveness")
    args = parser.parse_args()
    if args.endpoint_silence is not None:
        args.window = max(0.09, args.endpoint_silence - 0.1)
    logging.basicConfig(level=logging.WARNING)
    from aiohttp import web

    web.run_app(build_app(args.window, args.vad_mode), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
