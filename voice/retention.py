"""Data retention (`CARECOACH_RETENTION_DAYS`): deletes finished calls older than the retention period, with
their utterances, status callbacks and recording files.

`purge_expired` does one pass; `retention_ctx` is the `cleanup_ctx` that owns the periodic task running it
(once at start-up, then every `interval` seconds) and cancels and awaits it on shutdown. The clock and the
sleep are injected, so tests move time instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from dialog.sql import StoreError
from dialog.store import CallStore
from voice.ids import CALL_SID
from voice.state import CONFIG, METRICS, STORE, iso_utc

log = logging.getLogger("carecoach")

#: How often the clean-up runs: retention is counted in days, so hourly is precise enough.
INTERVAL = 3600.0


def _wall_clock() -> datetime:
    return datetime.now(UTC)



def _remove_recordings(recordings_dir: Path, call_sids: list[str]) -> None:
    for call_sid in call_sids:
        # The id comes from our own table, but a path built from data is checked before anything is deleted.
        if CALL_SID.match(call_sid) and call_sid not in (".", ".."):
            shutil.rmtree(recordings_dir / call_sid, ignore_errors=True)


async def purge_expired(store: CallStore, recordings_dir: Path, days: int, now: datetime) -> list[str]:
    """Delete every finished call started more than `days` days before `now`; returns their ids."""
    deleted = await store.delete_calls_before(iso_utc(now - timedelta(days=days)))
    if deleted:
        await asyncio.to_thread(_remove_recordings, recordings_dir, deleted)
        log.info("retention: deleted %d call(s) older than %d days", len(deleted), days)
    return deleted


def retention_ctx(clock: Callable[[], datetime] = _wall_clock,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                  interval: float = INTERVAL) -> Callable[[web.Application], AsyncIterator[None]]:
    """The `cleanup_ctx` of the clean-up task (a no-op when retention is off). Put it after the store's."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        days = app[CONFIG].retention_days
        if days is None:
            yield
            return

        async def run() -> None:
            while True:
                try:
                    await purge_expired(app[STORE], app[CONFIG].recordings_dir, days, clock())
                except StoreError as exc:
                    # The next pass retries; a failed clean-up never stops the service.
                    app[METRICS].count_db_error(exc)
                    log.warning("retention: clean-up failed (%s); retrying in %.0f s", exc, interval)
                await sleep(interval)

        task = asyncio.get_running_loop().create_task(run(), name="retention")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return ctx
