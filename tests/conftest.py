"""Shared fixtures: one started PocketSphinx engine for the whole run, real in-process servers, and
the synthetic calls in tests/calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

# The throwaway PostgreSQL server (session) and a fresh database on it (per test): see tests/pg.py.
from dialog.classify import UtteranceClassifier
from dialog.store import CallStore
from tests.pg import postgres, postgres_url  # noqa: F401
from voice.app import build_app
from voice.asr.sphinx_engine import SphinxEngine
from voice.config import Config
from voice.simulate import load_stereo
from voice.tts import Synthesizer

CALLS = Path(__file__).parent / "calls"


@pytest.fixture(scope="session")
def clf() -> UtteranceClassifier:
    """One classifier for every classifier test (it is stateless between calls)."""
    return UtteranceClassifier()


@pytest_asyncio.fixture(scope="session")
async def sphinx_engine() -> AsyncIterator[SphinxEngine]:
    engine = SphinxEngine()
    await engine.start()
    yield engine
    await engine.aclose()


ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest_asyncio.fixture
async def make_server(tmp_path: Path, sphinx_engine: SphinxEngine) -> AsyncIterator[ServerFactory]:
    """Start a real carecoach server on loopback with the shared engine; `**overrides` patch the Config, and a
    `synthesizer` (the whisper speech engine) may be supplied."""
    servers: list[TestServer] = []

    async def start(synthesizer: Synthesizer | None = None, **overrides: Any) -> TestServer:
        config = replace(Config(data_dir=tmp_path / f"data{len(servers)}"), **overrides)
        server = TestServer(build_app(config, engine=sphinx_engine, synthesizer=synthesizer), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def load_call(name: str) -> tuple[np.ndarray, dict[str, Any]]:
    samples = load_stereo(CALLS / f"{name}.wav")
    truth = json.loads((CALLS / f"{name}.truth.json").read_text())
    return samples, truth


@pytest.fixture(scope="session")
def calm_call() -> tuple[np.ndarray, dict[str, Any]]:
    return load_call("calm_questions")


# --- helpers for tests that talk to a server --------------------------------------------------------------


def ws_url(server: Any, path: str) -> str:
    return str(server.make_url(path)).replace("http", "ws", 1)


async def get_json(server: Any, path: str, **kwargs: Any) -> Any:
    async with aiohttp.ClientSession() as client, client.get(server.make_url(path), **kwargs) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def wait_stored(server: Any, call_sid: str, **kwargs: Any) -> dict[str, Any]:
    """The stored call once the server has finalised it (it does so when it sees the end): polls the API,
    not the clock."""
    for _ in range(600):
        async with aiohttp.ClientSession() as client, \
                client.get(server.make_url(f"/api/calls/{call_sid}"), **kwargs) as response:
            if response.status == 200 and (stored := await response.json())["status"] != "live":
                return dict(stored)
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_sid} never ended")


def first_turns(call: tuple[np.ndarray, dict[str, Any]], turns: int) -> np.ndarray:
    """A call's audio up to 0.8 s after the end of its `turns`-th turn."""
    samples, truth = call
    return samples[: int((truth["turns"][turns - 1]["end"] + 0.8) * 8000)]


async def live_until_ended(live: aiohttp.ClientWebSocketResponse, events: list[dict[str, Any]]) -> None:
    """Append a live feed's events to `events` up to and including the first `call_ended`."""
    async for message in live:
        events.append(json.loads(message.data))
        if events[-1]["type"] == "call_ended":
            return


@pytest_asyncio.fixture
async def tmp_store(tmp_path: Path) -> AsyncIterator[CallStore]:
    """A real SQLite call store in the test's own directory, closed afterwards."""
    store = CallStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.open()
    yield store
    await store.close()
