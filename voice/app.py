"""The composition root: the only module that wires voice, dialog and prompts together.

`build_app` fills the shared state (`voice.state`) and owns every resource through `cleanup_ctx`: the call
store, the recogniser, the speech synthesizer and whisper tasks, and the live sessions (finalised as
`interrupted` on shutdown). Routes live in `voice.telephony` (Twilio), `voice.api` (JSON API, live events,
health) and `voice.pages`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from dialog.classify import UtteranceClassifier
from dialog.store import CallStore
from prompts import PlaybookError, load_playbook
from voice import api, pages, telephony
from voice.api import access_control
from voice.asr import select_engine
from voice.asr.base import SpeechEngine
from voice.config import Config, ConfigError
from voice.hub import LiveHub
from voice.metrics import Metrics
from voice.state import (
    CLASSIFIER,
    CONFIG,
    ENGINE,
    HUB,
    METRICS,
    PLAYBOOK,
    SESSIONS,
    STORE,
    SYNTHESIZER,
    WHISPERS,
    utc_now,
)
from voice.telephony import finish_session
from voice.tts import Synthesizer, TTSError
from voice.whispers import Whispers

log = logging.getLogger("carecoach")

# --- lifecycle -------------------------------------------------------------------------------------


def build_app(config: Config, *, engine: SpeechEngine | None = None,
              synthesizer: Synthesizer | None = None) -> web.Application:
    """Build the service. A caller-supplied `engine` must already be started; the caller owns it (and a
    caller-supplied `synthesizer`, the speech engine of audio whispers)."""
    app = web.Application(middlewares=[access_control], client_max_size=64 * 1024)
    app[CONFIG] = config
    app[HUB] = LiveHub()
    app[METRICS] = Metrics()
    app[SESSIONS] = {}
    app[CLASSIFIER] = UtteranceClassifier()
    app[SYNTHESIZER] = synthesizer or Synthesizer()
    app[WHISPERS] = Whispers(config, app[METRICS], app[SYNTHESIZER])
    try:
        app[PLAYBOOK] = load_playbook(config.playbook)
    except PlaybookError as exc:
        raise ConfigError(f"CARECOACH_PLAYBOOK: {exc}") from None

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        store = CallStore(config.database)
        await store.open()
        stale = await store.interrupt_stale_calls(utc_now())
        if stale:
            log.warning("marked %d call(s) left live by a previous run as interrupted", stale)
        app[STORE] = store
        yield
        await store.close()

    try:
        own = None if engine is not None else select_engine(config.asr_engine, config.vosk_model,
                                                             config.models_dir)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
        if own is None:
            assert engine is not None
            app[ENGINE] = engine
            yield
            return
        await own.start()
        app[ENGINE] = own
        log.info("ASR engine %s ready", own.name)
        yield
        await own.aclose()

    async def sessions_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        # Shutdown: calls still streaming keep everything heard so far and end as interrupted.
        await asyncio.gather(*(finish_session(app, s, "interrupted") for s in list(app[SESSIONS].values())),
                             return_exceptions=True)

    async def whisper_ctx(app: web.Application) -> AsyncIterator[None]:
        synth = app[SYNTHESIZER]
        if config.whisper_available:
            try:
                await synth.start()
                log.info("audio whispers ready (speech engine %s)", synth.backend)
            except TTSError as exc:
                log.error("audio whispers will be silent: the speech engine failed to start (%s)", exc)
        yield
        # After sessions_ctx's cleanup (reverse order): no call can start a whisper any more.
        await app[WHISPERS].aclose()
        if synthesizer is None:
            synth.close()

    app.cleanup_ctx.extend([store_ctx, engine_ctx, whisper_ctx, sessions_ctx])
    telephony.add_routes(app)
    api.add_routes(app)
    pages.add_routes(app)
    return app


__all__ = ["ENGINE", "build_app"]
