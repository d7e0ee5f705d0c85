"""Live events across replicas through PostgreSQL `LISTEN/NOTIFY` (DESIGN "Scale-out"): no extra broker.

Every event published on this replica's hub is sent with `NOTIFY carecoach_events`, tagged with this process's
origin id. A listener connection hands the other replicas' events to the local hub through `LiveHub.deliver`
(which does not relay them again); this replica's own events come back too and are dropped by origin. So a
supervisor on `/api/live` of any replica sees every call, wherever its media stream landed.

Payload size: PostgreSQL refuses a NOTIFY payload of 8000 bytes or more. Nothing is truncated: the event's
JSON (ASCII-only, so one character is one byte) is cut into frames `origin seq index count chunk` of at most
`FRAME_BYTES`, all sent in one statement, hence one transaction, so they are delivered together and in
order, and the receiver joins them. An event above `MAX_EVENT_BYTES` (far above any real one) is logged and
not sent.

Delivery is best-effort, like the hub's own: publishing never waits (a bounded outbox; a full one drops and
counts); the sender and the listener each reconnect with capped exponential backoff; events NOTIFYed while a
listener is disconnected are missed, and the call store keeps the durable record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
from aiohttp import web

from voice.hub import Event, LiveHub
from voice.state import CONFIG, HUB, STORE

log = logging.getLogger(__name__)

CHANNEL = "carecoach_events"
FRAME_BYTES = 7900  # the payload limit is 8000 bytes; the header takes < 60
MAX_EVENT_BYTES = 1 << 20
OUTBOX = 10_000
SEND_BATCH = 64  # events per NOTIFY statement (one transaction)


def encode(origin: str, seq: int, event: Event) -> list[str]:
    """The NOTIFY payloads carrying `event`."""
    body = json.dumps(event, ensure_ascii=True, separators=(",", ":"))
    chunks = [body[i:i + FRAME_BYTES] for i in range(0, len(body), FRAME_BYTES)]
    return [f"{origin} {seq} {index} {len(chunks)} {chunk}" for index, chunk in enumerate(chunks)]


class Reassembler:
    """Joins frames back into events, skipping this process's own."""

    MAX_PARTIAL = 64

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self._partial: dict[tuple[str, str], list[str]] = {}

    def feed(self, payload: str) -> Event | None:
        try:
            origin, seq, index_text, count_text, chunk = payload.split(" ", 4)
            index, count = int(index_text), int(count_text)
        except ValueError:
            log.warning("ignored a malformed %s notification (%d bytes)", CHANNEL, len(payload))
            return None
        if origin == self.origin:
            return None
        if count == 1:
            return _decode(chunk)
        key = (origin, seq)
        parts = self._partial.setdefault(key, [])
        if index != len(parts):  # a frame was missed (the listener reconnected mid-event): drop the event
            del self._partial[key]
            return None
        parts.append(chunk)
        if len(parts) < count:
            if len(self._partial) > self.MAX_PARTIAL:  # never completed: forget the oldest
                del self._partial[next(iter(self._partial))]
            return None
        del self._partial[key]
        return _decode("".join(parts))


def _decode(body: str) -> Event | None:
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        log.warning("ignored a %s notification that is not a JSON object", CHANNEL)
        return None
    return event


class Fanout:
    """Owns two connections (NOTIFY sender, LISTEN receiver) and their tasks; `start`, then `aclose`."""

    def __init__(self, url: str, hub: LiveHub, *, origin: str | None = None, min_backoff: float = 0.2,
                 max_backoff: float = 5.0) -> None:
        self._url = url
        self._hub = hub
        self.origin = origin or uuid.uuid4().hex[:12]
        self._reassembler = Reassembler(self.origin)
        self._outbox: asyncio.Queue[list[str]] = asyncio.Queue(OUTBOX)
        self._seq = 0
        self._backoff = (min_backoff, max_backoff)
        self._tasks: list[asyncio.Task[None]] = []
        self._remove_relay: Callable[[], None] | None = None
        self.listening = asyncio.Event()
        self.sent = self.received = self.dropped = 0
        self.listens = 0  # LISTENs established: more than 1 means the listener reconnected

    async def start(self, wait: float = 5.0) -> None:
        """Start relaying; waits (up to `wait` seconds) for the listener, so events right after start-up are seen."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen(), name="fanout-listen"),
                       loop.create_task(self._send(), name="fanout-send")]
        self._remove_relay = self._hub.add_relay(self._offer)
        try:
            await asyncio.wait_for(self.listening.wait(), wait)
        except TimeoutError:
            log.warning("live fan-out: not listening yet, retrying in the background")

    async def aclose(self, flush: float = 2.0) -> None:
        """Stop relaying; events already queued (a shutdown's `call_ended`) get `flush` seconds to go out."""
        if self._remove_relay is not None:
            self._remove_relay()
            self._remove_relay = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), flush)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _offer(self, event: Event) -> None:
        self._seq += 1
        frames = encode(self.origin, self._seq, event)
        if sum(map(len, frames)) > MAX_EVENT_BYTES:
            self.dropped += 1
            log.error("live fan-out: %s event of call %s is too large to relay (%d frames)",
                      event.get("type"), event.get("call_sid"), len(frames))
            return
        try:
            self._outbox.put_nowait(frames)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("live fan-out: outbox full (database unreachable?), %d event(s) dropped", self.dropped)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=5, application_name="carecoach-fanout",
            keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)

    async def _send(self) -> None:
        conn: psycopg.AsyncConnection[Any] | None = None
        delay = self._backoff[0]
        try:
            while True:
                # Whatever queued up meanwhile goes in the same statement: one round trip for a burst.
                batch = [await self._outbox.get()]
                while len(batch) < SEND_BATCH and not self._outbox.empty():
                    batch.append(self._outbox.get_nowait())
                frames = [frame for event in batch for frame in event]
                try:
                    while True:
                        try:
                            if conn is None:
                                conn = await self._connect()
                            sql = "SELECT " + ", ".join(["pg_notify(%s, %s)"] * len(frames))
                            await conn.execute(sql, [v for frame in frames for v in (CHANNEL, frame)])
                            self.sent += len(batch)
                            delay = self._backoff[0]
                            break
                        except psycopg.OperationalError as exc:
                            log.warning("live fan-out: cannot send (%s); retrying in %.1f s", _first_line(exc), delay)
                            if conn is not None:
                                await conn.close()
                                conn = None
                            await asyncio.sleep(delay)
                            delay = min(delay * 2, self._backoff[1])
                        except psycopg.Error as exc:  # not the connection: these events can never be sent
                            self.dropped += len(batch)
                            log.error("live fan-out: %d event(s) dropped: %s", len(batch), _first_line(exc))
                            break
                finally:
                    for _ in batch:
                        self._outbox.task_done()
        finally:
            if conn is not None:
                await conn.close()

    async def _listen(self) -> None:
        delay = self._backoff[0]
        while True:
            try:
                async with await self._connect() as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listens += 1
                    self.listening.set()
                    delay = self._backoff[0]
                    log.info("live fan-out: listening on %s as replica %s", CHANNEL, self.origin)
                    async for notify in conn.notifies():
                        event = self._reassembler.feed(notify.payload)
                        if event is not None:
                            self.received += 1
                            self._hub.deliver(event)
            except psycopg.Error as exc:
                log.warning("live fan-out: listener lost (%s); reconnecting in %.1f s", _first_line(exc), delay)
            except Exception:
                # Anything else (a malformed relayed event) must not end cross-replica events for good.
                log.exception("live fan-out: listener failed; reconnecting in %.1f s", delay)
            self.listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


FANOUT = web.AppKey("fanout", Fanout)


async def fanout_ctx(app: web.Application) -> AsyncIterator[None]:
    """`cleanup_ctx` (after the store's): with a PostgreSQL store, relay live events across replicas. SQLite is
    one node, so there is nothing to relay. Its cleanup runs after the sessions' (reverse order), so the
    `call_ended` of calls interrupted by a shutdown still reaches the other replicas."""
    if app[STORE].backend != "postgresql":
        yield
        return
    fanout = Fanout(app[CONFIG].database, app[HUB])
    await fanout.start()
    app[FANOUT] = fanout
    yield
    await fanout.aclose()
