"""The live event hub: fans each call's events out to WebSocket subscribers on this replica.

Publishing never waits: each subscriber has a bounded queue, and a subscriber too slow to keep up
is cut off (its socket is closed with a reason) instead of slowing the call or the other watchers.
Relays (`add_relay`, e.g. the PostgreSQL fan-out in `voice.fanout`) see every event published here and must
not wait either; events arriving from other replicas come in through `deliver`, which does not relay them
again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

log = logging.getLogger(__name__)

Event = dict[str, Any]


class Subscription:
    def __init__(self, hub: LiveHub, call_sid: str | None, maxsize: int) -> None:
        self.call_sid = call_sid
        self._hub = hub
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            # Make room for the end marker; the subscriber is being dropped anyway.
            self._queue.get_nowait()
            self._queue.put_nowait(None)

    def close(self) -> None:
        self._hub._subscribers.discard(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            while (event := await self._queue.get()) is not None:
                yield event
        finally:
            self.close()


class LiveHub:
    def __init__(self, queue_size: int = 2000) -> None:
        self._subscribers: set[Subscription] = set()
        self._queue_size = queue_size
        self._relays: list[Callable[[Event], None]] = []
        self.published = 0

    def subscribe(self, call_sid: str | None = None) -> Subscription:
        """`call_sid=None` receives every call's events (the supervisors' feed)."""
        subscription = Subscription(self, call_sid, self._queue_size)
        self._subscribers.add(subscription)
        return subscription

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def add_relay(self, relay: Callable[[Event], None]) -> Callable[[], None]:
        """Call `relay` with every event published on this replica; returns the function that removes it."""
        self._relays.append(relay)
        return lambda: self._relays.remove(relay)

    def publish(self, event: Event) -> None:
        self.deliver(event)
        for relay in tuple(self._relays):
            relay(event)

    def deliver(self, event: Event) -> None:
        """Hand `event` to this replica's subscribers only (an event relayed from another replica)."""
        self.published += 1
        for subscription in tuple(self._subscribers):
            if subscription.call_sid is None or subscription.call_sid == event.get("call_sid"):
                subscription.offer(event)
