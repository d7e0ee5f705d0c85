"""Timeline: mapping a recogniser's fed-audio clock onto absolute stream time across VAD gaps."""

from __future__ import annotations

import itertools

import pytest

from voice.asr.base import Timeline

RATE = 16000


def test_contiguous_pushes_form_one_run() -> None:
    tl = Timeline(RATE)
    tl.push(RATE, 5.0)
    tl.push(RATE // 2, 6.0)  # continues exactly where the first ended
    assert tl.fed_seconds == pytest.approx(1.5)
    assert tl.absolute(0.0) == pytest.approx(5.0)
    assert tl.absolute(1.25) == pytest.approx(6.25)


def test_gaps_shift_later_audio() -> None:
    tl = Timeline(RATE)
    tl.push(RATE, 1.0)  # internal [0, 1) -> stream [1, 2)
    tl.push(RATE, 10.0)  # internal [1, 2) -> stream [10, 11): VAD dropped 8 s
    tl.push(RATE // 2, 20.0)  # internal [2, 2.5) -> stream [20, 20.5)
    assert tl.absolute(0.5) == pytest.approx(1.5)
    assert tl.absolute(0.999) == pytest.approx(1.999)
    assert tl.absolute(1.0) == pytest.approx(10.0)
    assert tl.absolute(1.75) == pytest.approx(10.75)
    assert tl.absolute(2.25) == pytest.approx(20.25)
    assert tl.absolute(2.5) == pytest.approx(20.5)  # end of fed audio


def test_absolute_is_monotonic() -> None:
    tl = Timeline(8000)
    start = 0.0
    for i in range(50):
        tl.push(160, start)
        start += 0.02 if i % 7 else 0.5  # every 7th push skips time
    pts = [i * 0.001 for i in range(int(tl.fed_seconds * 1000))]
    mapped = [tl.absolute(p) for p in pts]
    assert all(b >= a for a, b in itertools.pairwise(mapped))


def test_empty_timeline_is_identity() -> None:
    assert Timeline(RATE).absolute(3.0) == 3.0
