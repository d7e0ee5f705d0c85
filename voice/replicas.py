"""Replica leases: which live calls were left behind by a replica that is gone.

One node (SQLite) marks every call still `live` at start-up as `interrupted` (`voice.app`). Replicas sharing
a PostgreSQL database must not: at start-up the others' calls are genuinely live. Instead each replica
records itself on the calls it streams (`CallStore.replica`) and renews a lease every `RENEW` seconds; every
replica sweeps, at start-up and then at each renewal, the live calls whose replica has not renewed for
`LEASE` seconds (it crashed, or lost the database) and marks them `interrupted`, keeping their utterances.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web

from dialog.store import CallStore, StoreError
from voice.state import STORE, iso_utc

log = logging.getLogger(__name__)

RENEW = 10.0
LEASE = 30.0

Clock = Callable[[], datetime]



async def sweep(store: CallStore, now: datetime, lease: float = LEASE) -> int:
    """Renew this replica's lease, then interrupt the calls of replicas whose lease ran out."""
    await store.renew_lease(iso_utc(now))
    count = await store.interrupt_orphaned_calls(iso_utc(now), iso_utc(now - timedelta(seconds=lease)))
    if count:
        log.warning("marked %d call(s) of a replica that is gone as interrupted", count)
    return count


def replicas_ctx(clock: Clock = lambda: datetime.now(UTC), renew: float = RENEW,
                 lease: float = LEASE) -> Callable[[web.Application], AsyncIterator[None]]:
    """`cleanup_ctx` (after the store's): the lease task, with a PostgreSQL store only."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        store = app[STORE]
        if store.backend != "postgresql":
            yield
            return
        await sweep(store, clock(), lease)  # before serving: our own calls must never look orphaned

        async def keep() -> None:
            while True:
                await asyncio.sleep(renew)
                try:
                    await sweep(store, clock(), lease)
                except StoreError as exc:
                    log.warning("replica lease not renewed: %s", exc)

        task = asyncio.get_running_loop().create_task(keep(), name="replica-lease")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return ctx
