"""The app's audio-whisper service: who gets audio, the Twilio REST legs of the coaching conference,
the whisper channels live on this replica, and the session hook that speaks a prompt to the agent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from itertools import count

import requests
from prometheus_client import Counter
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient

from dialog.coach import PromptEvent
from dialog.store import CallStore, StoreError
from voice.config import Config
from voice.ids import AGENT, E164
from voice.metrics import Metrics
from voice.tts import Synthesizer, TTSError
from voice.twilio import dial_twiml
from voice.whisper import (
    CoachingLegs,
    WhisperError,
    WhisperRegistry,
)

log = logging.getLogger("carecoach")

#: The conference of an opted-in agent's call is named after the customer's CallSid.
CONFERENCE_PREFIX = "cc-"
AGENT_LABEL = "agent"
#: Audio beyond its own length that a whisper may take to be played and echoed before we give up.
PLAYOUT_SLACK = 5.0

# --- audio whispers ----------------------------------------------------------------------------------


class Whispers:
    """The app's audio-whisper plumbing (DESIGN "Audio whisper (Twilio)").

    Owns the whisper channels live on this replica, the Twilio REST clients that add conference legs, and
    every background task those REST calls run in (tracked, cancelled and awaited on shutdown). A failure
    here is logged and counted and never breaks the call: the on-screen prompt always goes out.
    """

    def __init__(self, config: Config, metrics: Metrics, synthesizer: Synthesizer) -> None:
        self.config = config
        self.available = config.whisper_available
        self.registry = WhisperRegistry()
        self.synthesizer = synthesizer
        self.errors = Counter("carecoach_whisper_errors", "Audio whisper failures, by stage", ["stage"],
                              registry=metrics.registry)
        self.results = Counter("carecoach_whispers", "Prompts offered as audio whispers, by result", ["result"],
                               registry=metrics.registry)
        self._legs: dict[str, CoachingLegs] = {}
        self._rest: TwilioClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._coached: dict[str, None] = {}  # conferences whose coaching leg was requested (bounded)
        self._warned = False

    # --- who gets audio --------------------------------------------------------------------------

    async def wanted(self, store: CallStore, agent: str) -> bool:
        """Whether `agent`'s calls get audio whispers: they opted in and whisper is configured."""
        if not agent or not AGENT.match(agent):
            return False
        try:
            opted_in = await store.get_whisper(agent)
        except StoreError as exc:
            self.errors.labels("store").inc()
            log.warning("agent %s: whisper setting unavailable (%s); prompts stay on screen only", agent, exc)
            return False
        if opted_in and not self.available:
            if not self._warned:
                self._warned = True
                log.warning("agent %s opted in to audio whispers, but TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
                            "CARECOACH_WHISPER_APP_SID are not all set: prompts show on screen only", agent)
            return False
        return opted_in

    def caller_id(self, called: str) -> str | None:
        """The From of the legs we add: the configured number, else the number the customer called."""
        if self.config.whisper_caller_id:
            return self.config.whisper_caller_id
        return called if E164.match(called) else None

    # --- Twilio REST -----------------------------------------------------------------------------

    def legs(self, caller_id: str) -> CoachingLegs:
        legs = self._legs.get(caller_id)
        if legs is None:
            config = self.config
            assert config.twilio_account_sid and config.twilio_auth_token and config.whisper_app_sid
            legs = CoachingLegs(config.twilio_account_sid, config.twilio_auth_token,
                                whisper_to=f"app:{config.whisper_app_sid}", caller_id=caller_id,
                                base_url=config.twilio_api_url)
            self._legs[caller_id] = legs
        return legs

    def spawn(self, what: str, work: Awaitable[None]) -> None:
        """Run `work` as an app-owned task; its failure is logged and counted, never raised."""
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors.labels("task").inc()
                log.exception("%s failed", what)

        task = asyncio.get_running_loop().create_task(guarded(), name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def add_agent(self, conference: str, call_sid: str, agent_dial: str, caller_id: str,
                        status_callback: str) -> None:
        """Dial the agent into the customer's conference; if Twilio refuses, send the call straight to them."""
        try:
            leg = await self.legs(caller_id).add_agent(conference, agent_dial, caller_id, label=AGENT_LABEL,
                                                       status_callback=status_callback)
        except WhisperError as exc:
            self.errors.labels("add_agent").inc()
            log.error("call %s: %s; dialling the agent directly, without audio whispers", call_sid, exc)
            await self._redirect(call_sid, dial_twiml(agent_dial))
            return
        log.info("call %s: agent leg %s added to %s", call_sid, leg, conference)

    async def _redirect(self, call_sid: str, twiml: str) -> None:
        config = self.config
        if self._rest is None:
            self._rest = TwilioClient(config.twilio_account_sid, config.twilio_auth_token,
                                      http_client=TwilioHttpClient(timeout=10))
            if config.twilio_api_url:
                self._rest.api.base_url = config.twilio_api_url
        rest = self._rest
        try:
            await asyncio.to_thread(lambda: rest.calls(call_sid).update(twiml=twiml))
        except (TwilioException, requests.RequestException) as exc:
            self.errors.labels("redirect").inc()
            log.error("call %s: could not redirect the call to the agent: %s", call_sid, exc)

    def start_coaching(self, conference_sid: str, agent_leg: str, call_sid: str, caller_id: str) -> None:
        """Add the coaching leg for the agent's leg of `call_sid`'s conference (once per conference)."""
        key = f"{conference_sid}/{agent_leg}"
        if key in self._coached:
            return  # a redelivered participant-join
        self._coached[key] = None
        while len(self._coached) > 10_000:
            del self._coached[next(iter(self._coached))]

        async def start() -> None:
            try:
                leg = await self.legs(caller_id).start(conference_sid, agent_leg, call_sid=call_sid)
            except WhisperError as exc:
                self.errors.labels("coaching_leg").inc()
                log.error("call %s: no audio whispers: %s", call_sid, exc)
                return
            log.info("call %s: whisper leg %s coaches agent leg %s", call_sid, leg, agent_leg)

        self.spawn(f"call {call_sid}: adding the whisper leg", start())

    # --- the session hook ------------------------------------------------------------------------

    def for_call(self, call_sid: str) -> Callable[[PromptEvent], Awaitable[bool]]:
        """The session's `whisper`: speak a prompt into the agent's ear; True once Twilio played it."""
        numbers = count(1)

        async def whisper(event: PromptEvent) -> bool:
            channel = self.registry.get(call_sid)
            if channel is None or not event.whisper.strip():
                self.results.labels("no_channel" if channel is None else "no_text").inc()
                return False
            name = f"{event.id}#{next(numbers)}"
            try:
                # The synthesizer bounds each step itself; this also covers its engine start-up.
                async with asyncio.timeout(2 * self.synthesizer.timeout + 1):
                    ulaw = await self.synthesizer.render(event.whisper)
            except (TTSError, TimeoutError) as exc:
                self.errors.labels("tts").inc()
                self.results.labels("tts_failed").inc()
                log.warning("call %s: prompt %s not whispered, speech failed: %s", call_sid, event.id, exc)
                return False
            try:
                async with asyncio.timeout(len(ulaw) / 8000 + PLAYOUT_SLACK):
                    played = await channel.say(ulaw, name, priority=event.priority) and await channel.wait_played(name)
            except (WhisperError, TimeoutError) as exc:
                self.errors.labels("stream").inc()
                self.results.labels("failed").inc()
                log.warning("call %s: prompt %s not whispered: %s", call_sid, event.id, exc or "timed out")
                return False
            self.results.labels("played" if played else "cut").inc()
            return played

        return whisper

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for legs in self._legs.values():
            legs.close()
        self._legs.clear()



