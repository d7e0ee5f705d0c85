"""The running service's spill replay: spill files reach the database soon after it is back.

`voice.spill` owns the file format and `Spill.replay`; the store's start-up replays once before any call
(`voice.app`). This module owns the task that replays again while the service runs, so a database outage's
utterances and call ends don't wait for the next start to be seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from voice.spill import Spill
from voice.state import CONFIG, SESSIONS, STORE

log = logging.getLogger(__name__)

#: How soon a running service retries spill files, and the longest it waits while they are refused.
RETRY_INTERVAL = 30.0
MAX_RETRY_INTERVAL = 300.0


def spill_ctx(sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, interval: float = RETRY_INTERVAL,
              max_interval: float = MAX_RETRY_INTERVAL) -> Callable[[web.Application], AsyncIterator[None]]:
    """The `cleanup_ctx` that replays spill files while the service runs (put it after the store's): a
    database outage's utterances and call ends reach the database within `interval` of its return, not
    at the next start. While files are refused it waits twice as long each time, up to `max_interval`."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        spill = Spill(app[CONFIG].spill_dir)

        async def run() -> None:
            wait = interval
            while True:
                await sleep(wait)
                if not spill.pending():  # a directory listing: cheap when, as usual, there is nothing
                    wait = interval
                    continue
                try:
                    await spill.replay(app[STORE], busy=app[SESSIONS].keys())
                except Exception:  # a bug must not end the retries: the files stay for the next pass
                    log.exception("spill replay failed")
                # A file of a call still streaming here waits for its call, not for the database.
                refused = [p for p in spill.pending() if p.name.split(".", 1)[0] not in app[SESSIONS]]
                wait = min(wait * 2, max_interval) if refused else interval

        task = asyncio.get_running_loop().create_task(run(), name="spill-replay")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return ctx


