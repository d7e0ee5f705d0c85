"""`carecoach demo`: start the service, stream the bundled two-party call into the real
`/twilio/stream` endpoint exactly as Twilio would, and narrate the live events in the terminal."""

from __future__ import annotations

import asyncio
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from voice.app import ENGINE, build_app
from voice.config import Config
from voice.simulate import load_stereo, new_call_sid, stream_call

LANES = {"customer": "customer", "agent": "   agent"}


def demo_call_path() -> Path:
    return Path(str(resources.files("voice") / "data" / "demo_call.wav"))


class Narrator:
    """Prints live events as a readable transcript; partials overwrite one status line on a TTY."""

    def __init__(self, out: Any = sys.stdout) -> None:
        self.out = out
        self.tty = out.isatty()
        self._status = False

    def _clear(self) -> None:
        if self._status:
            self.out.write("\r\033[K")
            self._status = False

    def event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "partial":
            if self.tty:
                self._clear()
                self.out.write(f"  [{event['at']:6.1f}s] {LANES[event['speaker']]} … {event['text'][:90]}")
                self._status = True
                self.out.flush()
            return
        self._clear()
        if kind == "utterance":
            self.out.write(f"  [{event['start']:6.1f}s] {LANES[event['speaker']]} ({event['phase']:>8}) "
                           f"{event['text']}\n")
        elif kind == "phase":
            self.out.write(f"  [{event['at']:6.1f}s] ── phase: {event.get('phase')}\n")
        elif kind == "prompt":
            self.out.write(f"  [{event['at']:6.1f}s] ▶ coach: {event.get('text')}\n")
        elif kind == "outcome":
            self.out.write(f"  outcome: {event.get('disposition')} ({event.get('source')})\n")
        elif kind == "call_started":
            self.out.write(f"call {event['call_sid']} started\n")
        elif kind == "call_ended":
            self.out.write(f"call {event['call_sid']} {event['status']} after {event['duration']:.1f} s\n")
        self.out.flush()


async def run_demo(config: Config, *, speed: float, keep_serving: bool, out: Any = sys.stdout) -> int:
    samples = load_stereo(demo_call_path())
    app = build_app(config)
    runner = web.AppRunner(app, access_log=None)
    started = time.monotonic()
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        try:
            await site.start()
        except OSError as exc:
            print(f"carecoach: error: cannot listen on {config.host}:{config.port}: {exc.strerror}"
                  " (try --port)", file=sys.stderr)
            return 2
        port = runner.addresses[0][1]  # with --port 0 the OS picks one
        base = f"http://{config.host}:{port}"
        out.write(f"carecoach serving {base} (ASR engine: {app[ENGINE].name}, ready in "
                  f"{time.monotonic() - started:.1f} s, data in {config.data_dir})\n")
        call_sid = new_call_sid()
        narrator = Narrator(out)
        out.write(f"streaming the demo call ({len(samples) / 8000:.0f} s at "
                  f"{'full speed' if speed == 0 else f'{speed:g}x'}) into {base.replace('http', 'ws')}"
                  "/twilio/stream as Twilio would\n")
        async with aiohttp.ClientSession() as client:
            async with client.ws_connect(f"{base}/api/calls/{call_sid}/live") as live:
                async def narrate() -> None:
                    async for message in live:
                        event = message.json()
                        narrator.event(event)
                        if event["type"] == "call_ended":
                            return

                narration = asyncio.get_running_loop().create_task(narrate())
                try:
                    await stream_call(samples, base.replace("http", "ws") + "/twilio/stream", speed=speed,
                                      call_sid=call_sid, session=client,
                                      parameters={"from": "+15550100", "to": "+15550199", "agent": "demo-agent"})
                    await asyncio.wait_for(narration, timeout=60)
                finally:
                    narration.cancel()
                    await asyncio.gather(narration, return_exceptions=True)
            async with client.get(f"{base}/api/calls/{call_sid}") as response:
                call = await response.json()
        customer = sum(1 for u in call["utterances"] if u["speaker"] == "customer")
        out.write(f"stored: status {call['status']}, {len(call['utterances'])} utterances "
                  f"({customer} customer), {call['duration']:.1f} s of audio\n")
        out.write(f"replay: {base}/calls/{call_sid}\n")
        out.flush()
        if keep_serving:
            out.write("serving until Ctrl-C …\n")
            out.flush()
            await asyncio.Event().wait()
        return 0
    finally:
        await runner.cleanup()
