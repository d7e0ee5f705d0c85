"""The event loop never blocks: a real server handles a streamed call (real PocketSphinx engine, real
SQLite, real recording) and the API and live sockets, with `blockbuster` armed so that any blocking call
made on the loop (file I/O, sqlite, time.sleep, socket calls in blocking mode, ...) raises instead.

Audio file reading and other set-up happen before it is armed; everything after is the server's work
plus aiohttp clients on the same loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from blockbuster import blockbuster_ctx

from tests.conftest import ServerFactory, live_until_ended
from voice.simulate import new_call_sid, stream_call

pytestmark = pytest.mark.slow


@pytest_asyncio.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Exceptions that escaped a task or callback on the loop (blocking errors raised inside server tasks)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    loop.set_exception_handler(previous)


#: Blocking calls are detected when made from these packages (ours, and aiohttp, which runs every
#: request on the loop); pytest's own machinery is left alone.
SCANNED = ["voice", "dialog", "prompts", "aiohttp", "tests"]


async def test_streamed_call_and_api_never_block_the_loop(
        make_server: ServerFactory, calm_call: tuple[np.ndarray, dict[str, Any]],
        loop_errors: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    samples, _truth = calm_call
    samples = samples[: 20 * 8000]  # 20 s: several turns of both speakers
    server = await make_server()
    call_sid = new_call_sid()
    base = str(server.make_url("/"))
    ws_base = base.replace("http", "ws", 1)
    events: list[dict[str, Any]] = []
    caplog.set_level(logging.WARNING)
    with blockbuster_ctx(SCANNED):
        async with aiohttp.ClientSession() as client, client.ws_connect(ws_base + "api/live") as live:
            listener = asyncio.get_running_loop().create_task(live_until_ended(live, events))

            async def poll_api() -> None:
                # API traffic while the call streams: list, call record, live recording, metrics.
                while not listener.done():
                    for path in ("api/calls", f"api/calls/{call_sid}", f"api/calls/{call_sid}/recording.wav",
                                 "metrics", "readyz"):
                        async with client.get(base + path) as r:
                            await r.read()
                    await asyncio.sleep(0.2)

            poller = asyncio.get_running_loop().create_task(poll_api())
            # 4x real time: decoding overlaps the stream, as on a live call.
            await stream_call(samples, ws_base + "twilio/stream", speed=4, call_sid=call_sid, session=client)
            await asyncio.wait_for(listener, 60)
            await poller
            for path in (f"api/calls/{call_sid}", f"api/calls/{call_sid}/recording.wav",
                         f"api/calls/{call_sid}/export?format=vtt", f"api/calls/{call_sid}/export?format=json",
                         "metrics", f"calls/{call_sid}", "calls"):
                async with client.get(base + path) as r:
                    assert r.status == 200, (path, r.status, await r.text())
                    await r.read()

    blocking = [c for c in loop_errors if "BlockingError" in repr(c.get("exception"))]
    assert not blocking, blocking
    assert "BlockingError" not in caplog.text, caplog.text
    kinds = [e["type"] for e in events]
    assert kinds[0] == "call_started" and kinds[-1] == "call_ended" and "utterance" in kinds
    assert events[-1]["status"] == "ended"
