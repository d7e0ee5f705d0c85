"""Soak: many short calls streamed as fast as possible through a real server (real PocketSphinx, real SQLite,
real recordings), checking that nothing accumulates: resident memory stays flat after warm-up, and sessions,
tasks, open files and the active-calls gauge return to where they started."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import aiohttp
import numpy as np
import psutil
import pytest

from tests.conftest import ServerFactory, ws_url
from voice.simulate import stream_call
from voice.state import SESSIONS

pytestmark = pytest.mark.slow

CALLS = 40
AT_ONCE = 4
WARM_UP = 8
SECONDS = 3
#: RSS growth allowed between warm-up and the end. Per-call state is ~1 MB while a call runs (README
#: sizing), so a leak of the whole session would show as ~30 MB over the 32 measured calls.
MAX_GROWTH_MB = 12


def rss_mb() -> tuple[float, float]:
    """This process (server and client) and its children (the PocketSphinx decoder workers), in MB."""
    gc.collect()
    me = psutil.Process()
    children = sum(child.memory_info().rss for child in me.children(recursive=True))
    return me.memory_info().rss / 2**20, children / 2**20


async def test_many_short_calls_leave_nothing_behind(make_server: ServerFactory,
                                                     calm_call: tuple[np.ndarray, dict[str, Any]]) -> None:
    samples, _ = calm_call
    server = await make_server()
    url = ws_url(server, "/twilio/stream")
    audio = samples[: 8000 * SECONDS]
    process = psutil.Process()

    async with aiohttp.ClientSession() as client:
        async def batch(n: int) -> list[str]:
            calls = await asyncio.gather(*(stream_call(audio, url, speed=0, session=client) for _ in range(n)))
            return [c.call_sid for c in calls]

        for _ in range(WARM_UP // AT_ONCE):
            await batch(AT_ONCE)
        await asyncio.sleep(0.2)
        tasks_before = len(asyncio.all_tasks())
        files_before = process.num_fds()
        rss_before = rss_mb()

        sids: list[str] = []
        for _ in range((CALLS - WARM_UP) // AT_ONCE):
            sids += await batch(AT_ONCE)
        await asyncio.sleep(0.2)
        rss_after = rss_mb()

        async with client.get(server.make_url("/api/calls"), params={"limit": "100"}) as response:
            stored = {c["call_sid"]: c for c in (await response.json())["calls"]}
        async with client.get(server.make_url("/metrics")) as response:
            metrics = await response.text()

    for _ in range(100):  # the server's keep-alive handlers for the closed client wind down
        if len(asyncio.all_tasks()) <= tasks_before:
            break
        await asyncio.sleep(0.02)
    growth = rss_after[0] - rss_before[0]
    workers_growth = rss_after[1] - rss_before[1]
    print(f"soak: {CALLS} calls of {SECONDS} s, server RSS {rss_before[0]:.1f} -> {rss_after[0]:.1f} MB "
          f"({growth:+.1f}), decoder workers {rss_before[1]:.1f} -> {rss_after[1]:.1f} MB ({workers_growth:+.1f}), "
          f"tasks {tasks_before} -> {len(asyncio.all_tasks())}, fds {files_before} -> {process.num_fds()}")
    assert all(stored[sid]["status"] == "ended" and stored[sid]["has_recording"] for sid in sids)
    assert server.app[SESSIONS] == {}
    assert "carecoach_active_calls 0.0" in metrics
    assert f'carecoach_calls_total{{status="ended"}} {float(CALLS)}' in metrics
    assert len(asyncio.all_tasks()) <= tasks_before
    assert process.num_fds() <= files_before + 2  # a pooled client connection may come and go
    assert growth < MAX_GROWTH_MB, f"RSS grew {growth:.1f} MB over {CALLS - WARM_UP} calls"
    assert workers_growth < MAX_GROWTH_MB, f"decoder workers grew {workers_growth:.1f} MB"
