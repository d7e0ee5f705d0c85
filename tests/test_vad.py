"""voice.vad.Endpointer on real (espeak-ng) speech and synthetic silence/noise; voice.codec helpers."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from voice.codec import Resampler, pcm16_to_ulaw, resample, rms, ulaw_to_pcm16
from voice.vad import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    FRAME_SECONDS,
    Endpointer,
    SpeechAudio,
    SpeechEnded,
    SpeechStarted,
    VadEvent,
    sounds_continuing,
)

RATE = 8000
END_TOLERANCE = 0.06


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


def espeak(directory: Path, text: str) -> np.ndarray:
    """Speech at 8 kHz, trimmed to the first/last sample above 1% of peak, scaled to a telephone level."""
    path = directory / f"{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    audio = resample(samples.astype(np.float32) / 32768, rate, RATE)
    loud = np.nonzero(np.abs(audio) > 0.01 * np.abs(audio).max())[0]
    audio = audio[loud[0]: loud[-1] + 1]
    scaled: np.ndarray = (audio / np.abs(audio).max() * 12000).astype(np.int16)
    return scaled


@dataclass
class Speech:
    long: np.ndarray  # ~3.4 s sentence with no pause longer than ~0.3 s
    hello: np.ndarray
    thanks: np.ndarray


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    directory = tmp_path_factory.mktemp("espeak")
    return Speech(
        long=espeak(directory, "I have been waiting for an hour and nobody helped me with my refund"),
        hello=espeak(directory, "hello there"),
        thanks=espeak(directory, "thank you"),
    )


@dataclass
class Run:
    events: list[tuple[VadEvent, float]]  # event, stream time of the frame that produced it

    def of(self, kind: type) -> list[VadEvent]:
        return [e for e, _ in self.events if isinstance(e, kind)]

    def fired_at(self, kind: type) -> list[float]:
        return [t for e, t in self.events if isinstance(e, kind)]


def run(signal: np.ndarray, *, finish: bool = True, **kwargs: float) -> Run:
    endpointer = Endpointer(**kwargs)  # type: ignore[arg-type]
    events: list[tuple[VadEvent, float]] = []
    for i in range(len(signal) // FRAME_SAMPLES):
        frame = signal[i * FRAME_SAMPLES: (i + 1) * FRAME_SAMPLES].tobytes()
        events += [(e, i * FRAME_SECONDS) for e in endpointer.feed(frame, i * FRAME_SECONDS)]
    if finish:
        events += [(e, len(signal) / RATE) for e in endpointer.finish()]
    return Run(events)


def utterances(result: Run) -> list[tuple[float, float]]:
    """(start, end) pairs, checking that events come as started, audio…, ended."""
    spans: list[tuple[float, float]] = []
    open_start: float | None = None
    for event, _ in result.events:
        if isinstance(event, SpeechStarted):
            assert open_start is None, "started twice"
            open_start = event.start
        elif isinstance(event, SpeechAudio):
            assert open_start is not None, "audio outside an utterance"
        else:
            assert open_start is not None, "ended without started"
            spans.append((open_start, event.end))
            open_start = None
    assert open_start is None, "utterance left open"
    return spans


# --- silence and noise --------------------------------------------------------------------------


def test_silence_produces_no_events() -> None:
    assert run(silence(3.0)).events == []


def test_noise_below_the_rms_floor_produces_no_events() -> None:
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 40, 3 * RATE).astype(np.int16)
    assert rms(noise.tobytes()) < 100  # below the default min_rms
    assert run(noise).events == []


def test_wrong_frame_size_raises() -> None:
    endpointer = Endpointer()
    for size in (0, FRAME_BYTES - 2, FRAME_BYTES + 2, 2 * FRAME_BYTES):
        with pytest.raises(ValueError, match=str(FRAME_BYTES)):
            endpointer.feed(b"\x00" * size, 0.0)


# --- speech -------------------------------------------------------------------------------------


@pytest.mark.parametrize("lead", [0.5, 0.51, 0.53])
def test_speech_is_bracketed_by_started_and_ended(speech: Speech, lead: float) -> None:
    true_start, true_end = lead, lead + len(speech.long) / RATE
    signal = np.concatenate([silence(lead), speech.long, silence(1.0)])
    result = run(signal)
    spans = utterances(result)
    assert len(spans) == 1
    start, end = spans[0]
    # The pre-roll (0.2 s) reaches back before the onset but never further.
    assert true_start - 0.2 - FRAME_SECONDS <= start <= true_start
    assert end == pytest.approx(true_end, abs=END_TOLERANCE)
    # The utterance closed `silence` (0.4 s) after the last voiced frame, not at finish().
    assert result.fired_at(SpeechEnded)[0] + FRAME_SECONDS == pytest.approx(end + 0.4)


def test_audio_events_carry_the_input_contiguously(speech: Speech) -> None:
    signal = np.concatenate([silence(0.6), speech.long, silence(1.0)])
    result = run(signal)
    audio = result.of(SpeechAudio)
    started = result.of(SpeechStarted)[0]
    assert audio[0].start == started.start  # type: ignore[union-attr]
    for before, after in itertools.pairwise(audio):
        assert after.start == pytest.approx(  # type: ignore[union-attr]
            before.start + len(before.pcm) / 2 / RATE)  # type: ignore[union-attr,operator]
    first = round(audio[0].start * RATE)  # type: ignore[union-attr]
    joined = b"".join(a.pcm for a in audio)  # type: ignore[union-attr]
    assert joined == signal[first: first + len(joined) // 2].tobytes()


@pytest.mark.parametrize(("silence_s", "count"), [(0.2, 2), (0.6, 1)])
def test_silence_parameter_decides_whether_a_pause_splits(speech: Speech, silence_s: float,
                                                          count: int) -> None:
    gap = 0.4
    signal = np.concatenate([silence(0.5), speech.hello, silence(gap), speech.thanks, silence(1.5)])
    result = run(signal, silence=silence_s)
    spans = utterances(result)
    assert len(spans) == count
    assert spans[-1][1] == pytest.approx(0.5 + (len(speech.hello) + len(speech.thanks)) / RATE + gap,
                                         abs=END_TOLERANCE)
    for (_, end), fired in zip(spans, result.fired_at(SpeechEnded), strict=True):
        assert fired + FRAME_SECONDS == pytest.approx(end + silence_s)


def test_max_utterance_forces_a_close_during_long_speech(speech: Speech) -> None:
    signal = np.concatenate([silence(0.5), speech.long, silence(1.5)])
    result = run(signal, silence=1.0, max_utterance=1.0)
    spans = utterances(result)
    assert len(spans) >= 3
    for start, end in spans[:-1]:
        assert end - start == pytest.approx(1.0, abs=FRAME_SECONDS)
    # Forced splits lose no audio: each piece starts where the previous one ended.
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start == pytest.approx(end)
    assert spans[-1][1] == pytest.approx(0.5 + len(speech.long) / RATE, abs=END_TOLERANCE)


def test_finish_closes_an_open_utterance(speech: Speech) -> None:
    cut = len(speech.long) // 2
    signal = np.concatenate([silence(0.5), speech.long[:cut]])
    unfinished = run(signal, finish=False)
    assert len(unfinished.of(SpeechStarted)) == 1 and unfinished.of(SpeechEnded) == []

    endpointer = Endpointer()
    for i in range(len(signal) // FRAME_SAMPLES):
        endpointer.feed(signal[i * FRAME_SAMPLES: (i + 1) * FRAME_SAMPLES].tobytes(), i * FRAME_SECONDS)
    assert endpointer.in_speech
    (ended,) = endpointer.finish()
    assert isinstance(ended, SpeechEnded)
    assert ended.end == pytest.approx(len(signal) / RATE, abs=END_TOLERANCE)
    assert not endpointer.in_speech
    assert endpointer.finish() == []


def test_raising_the_rms_floor_mutes_quiet_speech(speech: Speech) -> None:
    signal = np.concatenate([silence(0.5), speech.long, silence(1.0)])
    assert run(signal, min_rms=30000).events == []


# --- hypothesis-aware endpointing ---------------------------------------------------------------

SHORT, HOLD = 0.3, 0.7


def run_with_hypotheses(signal: np.ndarray, hypotheses: dict[float, str], *, finish: bool = True,
                        **kwargs: float) -> Run:
    """Like `run`, and at each stream time in `hypotheses` hand the open utterance that partial text, the
    way the session does when the recogniser's partial arrives."""
    endpointer = Endpointer(**kwargs)  # type: ignore[arg-type]
    pending = sorted(hypotheses.items())
    events: list[tuple[VadEvent, float]] = []
    utterance_start = 0.0
    for i in range(len(signal) // FRAME_SAMPLES):
        now = i * FRAME_SECONDS
        while pending and pending[0][0] <= now + 1e-9:
            endpointer.hypothesis(pending.pop(0)[1].split(), utterance_start)
        for event in endpointer.feed(signal[i * FRAME_SAMPLES: (i + 1) * FRAME_SAMPLES].tobytes(), now):
            if isinstance(event, SpeechStarted):
                utterance_start = event.start
            events.append((event, now))
    if finish:
        events += [(e, len(signal) / RATE) for e in endpointer.finish()]
    return Run(events)


def closed_after(result: Run) -> list[float]:
    """Seconds of silence between each utterance's last voiced frame and the frame that closed it."""
    return [fired + FRAME_SECONDS - e.end
            for e, fired in result.events if isinstance(e, SpeechEnded)]


@pytest.mark.parametrize(("text", "wait"), [
    ("i would like a refund", SHORT),  # sounds finished: the short silence
    ("I would like a refund AND", HOLD),  # case does not matter
    ("i would like a refund because", HOLD),
    ("can you check my", HOLD),
    ("i was going to um", HOLD),
])
def test_the_last_word_of_the_hypothesis_picks_the_silence(speech: Speech, text: str, wait: float) -> None:
    speech_end = 0.5 + len(speech.hello) / RATE
    signal = np.concatenate([silence(0.5), speech.hello, silence(1.5)])
    result = run_with_hypotheses(signal, {speech_end - 0.1: text}, silence=SHORT, hold=HOLD)
    assert len(utterances(result)) == 1
    assert closed_after(result) == [pytest.approx(wait, abs=FRAME_SECONDS / 2)]
    assert result.of(SpeechEnded)[0].end == pytest.approx(speech_end, abs=END_TOLERANCE)  # type: ignore[union-attr]


def test_no_hypothesis_yet_closes_after_the_short_silence(speech: Speech) -> None:
    signal = np.concatenate([silence(0.5), speech.hello, silence(1.5)])
    result = run(signal, silence=SHORT, hold=HOLD)
    assert closed_after(result) == [pytest.approx(SHORT, abs=FRAME_SECONDS / 2)]


def test_a_mid_phrase_pause_is_held_together_and_a_finished_one_splits(speech: Speech) -> None:
    gap = 0.45  # longer than the short silence, shorter than the hold
    hello_end = 0.5 + len(speech.hello) / RATE
    signal = np.concatenate([silence(0.5), speech.hello, silence(gap), speech.thanks, silence(1.5)])
    held = run_with_hypotheses(signal, {hello_end - 0.1: "hello and"}, silence=SHORT, hold=HOLD)
    assert len(utterances(held)) == 1
    split = run_with_hypotheses(signal, {hello_end - 0.1: "hello there"}, silence=SHORT, hold=HOLD)
    assert len(utterances(split)) == 2


def test_a_hypothesis_that_finishes_the_phrase_during_the_hold_closes_at_once(speech: Speech) -> None:
    # The partial still ended in "and" when the speaker stopped; a later one (the recogniser caught up)
    # does not: the utterance closes on the next frame, not after the rest of the hold.
    speech_end = 0.5 + len(speech.hello) / RATE
    signal = np.concatenate([silence(0.5), speech.hello, silence(1.5)])
    revised_at = speech_end + 0.4
    result = run_with_hypotheses(signal, {speech_end - 0.1: "hello and", revised_at: "hello andy"},
                                 silence=SHORT, hold=HOLD)
    (fired,) = result.fired_at(SpeechEnded)
    assert fired == pytest.approx(revised_at, abs=FRAME_SECONDS / 2)


def test_the_hold_is_per_utterance(speech: Speech) -> None:
    # The first utterance's mid-phrase hypothesis never carries over to the next one, and a late partial
    # of the first (it began before the open utterance) is ignored.
    first_end = 0.5 + len(speech.hello) / RATE
    second_start = first_end + 1.0
    signal = np.concatenate([silence(0.5), speech.hello, silence(1.0), speech.thanks, silence(1.5)])
    endpointer = Endpointer(silence=SHORT, hold=HOLD)
    closes: list[float] = []
    starts: list[float] = []
    for i in range(len(signal) // FRAME_SAMPLES):
        now = i * FRAME_SECONDS
        if starts and len(starts) == 1 and not closes and now >= first_end - 0.1:
            endpointer.hypothesis(["hello", "and"], starts[0])
        if len(starts) == 2 and now >= second_start + 0.2:
            endpointer.hypothesis(["hello", "and"], starts[0])  # late, from the first utterance
            assert not endpointer.holding
        for event in endpointer.feed(signal[i * FRAME_SAMPLES: (i + 1) * FRAME_SAMPLES].tobytes(), now):
            if isinstance(event, SpeechStarted):
                starts.append(event.start)
            elif isinstance(event, SpeechEnded):
                closes.append(now + FRAME_SECONDS - event.end)
    assert closes == [pytest.approx(HOLD, abs=FRAME_SECONDS / 2), pytest.approx(SHORT, abs=FRAME_SECONDS / 2)]


def test_a_hypothesis_between_utterances_is_ignored(speech: Speech) -> None:
    endpointer = Endpointer(silence=SHORT, hold=HOLD)
    endpointer.hypothesis(["and"], 0.0)  # nothing open: nothing to hold
    signal = np.concatenate([silence(0.5), speech.hello, silence(1.5)])
    events = [e for i in range(len(signal) // FRAME_SAMPLES)
              for e in endpointer.feed(signal[i * FRAME_SAMPLES: (i + 1) * FRAME_SAMPLES].tobytes(),
                                       i * FRAME_SECONDS)]
    assert sum(isinstance(e, SpeechEnded) for e in events) == 1
    assert not endpointer.holding


def test_max_utterance_forces_a_close_while_holding(speech: Speech) -> None:
    signal = np.concatenate([silence(0.5), speech.long, silence(1.5)])
    times = {0.6 + 0.1 * k: "i have been waiting for" for k in range(60)}  # every partial ends mid-phrase
    result = run_with_hypotheses(signal, times, silence=SHORT, hold=5.0, max_utterance=1.0)
    spans = utterances(result)
    assert len(spans) >= 3
    for start, end in spans[:-1]:
        assert end - start == pytest.approx(1.0, abs=FRAME_SECONDS)


@pytest.mark.parametrize("hold", [None, 0.0, 0.1])
def test_a_hold_not_longer_than_the_silence_is_fixed_endpointing(speech: Speech, hold: float | None) -> None:
    speech_end = 0.5 + len(speech.hello) / RATE
    signal = np.concatenate([silence(0.5), speech.hello, silence(1.5)])
    result = run_with_hypotheses(signal, {speech_end - 0.1: "hello and"}, silence=0.4,
                                 hold=hold)  # type: ignore[arg-type]
    assert closed_after(result) == [pytest.approx(0.4, abs=FRAME_SECONDS / 2)]


def test_sounds_continuing() -> None:
    assert sounds_continuing(["i", "paid", "for", "the"])
    assert sounds_continuing(["Because"])
    assert not sounds_continuing([])
    assert not sounds_continuing(["i", "can't", "log", "in"])  # phrasal verbs end turns
    assert not sounds_continuing(["thank", "you"])


# --- codec --------------------------------------------------------------------------------------


def test_ulaw_round_trip_error_bound() -> None:
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    ulaw = pcm16_to_ulaw(pcm.tobytes())
    assert len(ulaw) == len(pcm)  # one byte per sample
    back = np.frombuffer(ulaw_to_pcm16(ulaw), dtype=np.int16).astype(np.int64)
    error = np.abs(back - pcm)
    magnitude = np.abs(pcm.astype(np.int64))
    in_range = magnitude <= 32000
    # G.711 μ-law: logarithmic steps, so the error grows with the magnitude (~3%) plus a small floor.
    assert np.all(error[in_range] <= magnitude[in_range] / 32 + 8)
    assert error.max() <= 700  # values above μ-law's 32124 ceiling clip
    assert ulaw_to_pcm16(b"") == b"" and rms(b"") == 0.0


def test_resampler_streaming_doubles_the_length_and_drains() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(RATE * 2) / RATE
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    resampler = Resampler(8000, 16000)
    out, offset = [], 0
    while offset < len(tone):
        size = int(rng.integers(1, 400))
        out.append(resampler.process(tone[offset: offset + size].tobytes()))
        offset += size
    before_drain = sum(len(o) for o in out) // 2
    out.append(resampler.process(b"", last=True))
    streamed = np.frombuffer(b"".join(out), dtype=np.int16)
    assert before_drain < 2 * len(tone)  # the filter holds a tail back until last=True
    assert abs(len(streamed) - 2 * len(tone)) <= 2
    # Chunk boundaries leave no clicks: the streamed result matches one-shot resampling.
    whole = resample(tone, 8000, 16000)
    n = min(len(whole), len(streamed))
    assert np.max(np.abs(streamed[:n].astype(np.int64) - whole[:n].astype(np.int64))) <= 2


def test_resampler_same_rate_is_identity() -> None:
    data = np.arange(100, dtype=np.int16).tobytes()
    assert Resampler(8000, 8000).process(data) == data
