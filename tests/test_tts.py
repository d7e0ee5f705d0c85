"""voice.tts: real eSpeak NG speech (through pyttsx3 and through the espeak-ng command) → μ-law 8 kHz."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio

from voice.codec import rms, ulaw_to_pcm16
from voice.tts import OUT_RATE, Synthesizer, TTSError, to_ulaw8k

WHISPER = "Let them vent. Acknowledge the frustration before you fix anything."


@pytest_asyncio.fixture(scope="module")
async def synth() -> AsyncIterator[Synthesizer]:
    # One pyttsx3 synthesizer for the module: the espeak driver is process-global state.
    synthesizer = Synthesizer(backend="pyttsx3")
    yield synthesizer
    synthesizer.close()


def _check_speech(ulaw: bytes) -> None:
    duration = len(ulaw) / OUT_RATE  # μ-law: one byte per sample
    assert 0.5 <= duration <= 6.0, duration
    pcm = ulaw_to_pcm16(ulaw)
    assert rms(pcm) > 1000, rms(pcm)  # normalised speech, not silence
    # The end is trimmed to a short tail: the last 100 ms are not all silence... but nearly.
    tail = np.frombuffer(pcm, dtype=np.int16)[-int(0.2 * OUT_RATE):]
    assert np.abs(tail).max() > 200


async def test_render_pyttsx3_is_plausible_speech(synth: Synthesizer) -> None:
    ulaw = await synth.render(WHISPER)
    assert synth.backend == "pyttsx3"
    _check_speech(ulaw)


async def test_cache_hit_returns_identical_bytes(synth: Synthesizer) -> None:
    first = await synth.render("Ask one open question.")
    renders = synth.renders
    again = await synth.render("  Ask one   open question. ")  # whitespace-normalised key
    assert again == first
    assert synth.renders == renders


async def test_concurrent_requests_share_one_render(synth: Synthesizer) -> None:
    renders = synth.renders
    results = await asyncio.gather(*(synth.render("Summarise and confirm the next step.") for _ in range(5)))
    assert len(set(results)) == 1
    assert synth.renders == renders + 1


@pytest.mark.parametrize("text", ["", "   \n\t"])
async def test_empty_text_raises(synth: Synthesizer, text: str) -> None:
    with pytest.raises(TTSError) as info:
        await synth.render(text)
    assert info.value.retryable is False


async def test_too_long_text_raises(synth: Synthesizer) -> None:
    with pytest.raises(TTSError) as info:
        await synth.render("word " * 200)
    assert info.value.retryable is False


async def test_espeak_ng_command_backend() -> None:
    synthesizer = Synthesizer(backend="espeak-ng")
    ulaw = await synthesizer.render(WHISPER)
    assert synthesizer.backend == "espeak-ng"
    _check_speech(ulaw)
    # Text is passed on stdin, so a leading dash is spoken, not parsed as an option.
    _check_speech(await synthesizer.render("-v xx --help"))


async def test_missing_engine_is_not_retryable() -> None:
    synthesizer = Synthesizer(backend="espeak-ng", espeak_binary="no-such-espeak-binary")
    with pytest.raises(TTSError) as info:
        await synthesizer.render("hello")
    assert info.value.retryable is False


async def test_bad_voice_is_reported() -> None:
    synthesizer = Synthesizer(backend="espeak-ng", voice="nosuchvoice")
    with pytest.raises(TTSError, match="nosuchvoice") as info:
        await synthesizer.render("hello")
    assert info.value.retryable is False


def test_silence_is_an_error() -> None:
    with pytest.raises(TTSError):
        to_ulaw8k(np.zeros(22050, dtype=np.int16), 22050)
