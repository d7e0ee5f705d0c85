"""benchmarks/load.py: its pure helpers (fast), and one short real run end to end (benchmark-marked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import latency as lt  # noqa: E402
import load  # noqa: E402


def test_prompt_delay_pairs_a_prompt_with_the_utterance_that_fired_it() -> None:
    events = [
        (10.000, {"type": "utterance", "call_sid": "CA1", "at": 4.2}),
        (10.001, {"type": "phase", "call_sid": "CA1", "at": 4.2}),
        (10.004, {"type": "prompt", "call_sid": "CA1", "at": 4.6}),
        (10.005, {"type": "prompt", "call_sid": "CA1", "at": 4.6}),  # a second card from the same utterance
        (10.400, {"type": "partial", "call_sid": "CA1", "at": 5.0}),
        (10.500, {"type": "prompt", "call_sid": "CA1", "at": 5.0}),  # fired by time passing: not counted
        (10.600, {"type": "prompt", "call_sid": "CA2", "at": 4.2}),  # another call, no utterance yet
    ]
    assert lt.prompt_delays(events) == pytest.approx([0.004, 0.005])


def test_metric_value_sums_label_sets() -> None:
    text = 'x_total{speaker="agent"} 2.0\nx_total{speaker="customer"} 1.0\ny 0.5\n'
    assert lt.metric_value(text, "x_total") == 3.0
    assert lt.metric_value(text, "y") == 0.5
    with pytest.raises(ValueError):
        lt.metric_value(text, "z")


def test_truncate_keeps_only_turns_that_finish_inside() -> None:
    call = lt.CallFile("c", np.zeros((8000 * 30, 2), "<i2"), {"turns": [
        {"speaker": "customer", "start": 1.0, "end": 5.0}, {"speaker": "agent", "start": 20.0, "end": 24.5}]})
    (cut,) = load.truncate([call], 25.0)
    assert len(cut.samples) == 8000 * 25 and [t["end"] for t in cut.truth["turns"]] == [5.0]


def test_rss_per_extra_call_between_levels() -> None:
    def run(n: int, idle: float, peak: float) -> lt.RunResult:
        r = lt.RunResult("pocketsphinx", None, None, n, 1.0)
        r.idle_rss_mb, r.peak_rss_mb = idle, peak
        return r

    got = load.rss_per_extra_call([run(4, 500, 540), run(1, 500, 530), run(2, 500, 532)])
    assert got == {1: 30.0, 2: 2.0, 4: 4.0}


@pytest.mark.benchmark
@pytest.mark.slow
def test_quick_load_run_prints_the_report() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load.py"), "--quick", "--levels", "1",
                          "--baseline-levels"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "| carecoach | 1 |" in out.stdout and "Targets at 4 concurrent" in out.stdout
    assert "| ready s |" in out.stdout and "not measured: no carecoach level with 4 calls" in out.stdout
