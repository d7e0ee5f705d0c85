"""The composition root: the only module that wires voice, dialog and prompts together.

`build_app` fills the shared state (`voice.state`) and owns every resource through `cleanup_ctx`: the call
store, the recogniser, the speech synthesizer and whisper tasks, and the live sessions (finalised as
`interrupted` on shutdown). Routes live in `voice.telephony` (Twilio), `voice.audiohook` (Genesys),
`voice.audiofork` (FreeSWITCH), `voice.api` (JSON API, live events, health) and `voice.pages`;
`voice.audiosocket` (Asterisk) is a TCP listener of its own, in a cleanup_ctx.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator

from aiohttp import web

from dialog.classify import UtteranceClassifier
from dialog.store import CallStore
from prompts import PlaybookError, load_playbook
from voice import api, audiofork, audiohook, pages, telephony
from voice.api import access_control
from voice.asr import select_engine
from voice.asr.base import SpeechEngine
from voice.audiosocket import audiosocket_ctx
from voice.calls import close_call_sockets, finish_session
from voice.config import Config, ConfigError
from voice.fanout import fanout_ctx
from voice.hub import LiveHub
from voice.metrics import Metrics
from voice.replicas import replicas_ctx
from voice.retention import retention_ctx
from voice.spill import Spill
from voice.state import (
    CALL_SOCKETS,
    CLASSIFIER,
    CONFIG,
    ENGINE,
    HUB,
    METRICS,
    OPENING,
    PLAYBOOK,
    SESSIONS,
    STORE,
    SYNTHESIZER,
    WHISPERS,
    utc_now,
)
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
    app[OPENING] = set()
    app[CALL_SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(close_call_sockets)
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
        # One node: every call still live was left by a previous run. Replicas sharing PostgreSQL sweep by
        # lease instead (voice.replicas): the others' calls are really live.
        stale = await store.interrupt_stale_calls(utc_now()) if store.backend == "sqlite" else 0
        if stale:
            log.warning("marked %d call(s) left live by a previous run as interrupted", stale)
        # Utterances a database outage left in the spill file go in before any new call starts.
        await Spill(config.spill_dir).replay(store)
        app[STORE] = store
        yield
        await store.close()

    try:
        own = None if engine is not None else select_engine(config.asr_engine, config.vosk_model,
                                                             config.models_dir, decoders=config.asr_decoders)
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

    # audiosocket_ctx last: on shutdown its legs end (as interrupted) before sessions_ctx sweeps the rest.
    app.cleanup_ctx.extend([store_ctx, fanout_ctx, replicas_ctx(), retention_ctx(), engine_ctx, whisper_ctx,
                            sessions_ctx, audiosocket_ctx])
    telephony.add_routes(app)
    audiohook.add_routes(app)
    audiofork.add_routes(app)
    api.add_routes(app)
    pages.add_routes(app)
    return app


__all__ = ["ENGINE", "build_app"]
