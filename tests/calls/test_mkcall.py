"""Tests for the call scripts, their generated WAV/truth files, the shipped demo call, and mkcall's layout."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import mkcall
import numpy as np
import pytest

HERE = Path(__file__).parent
DATA = HERE.parent.parent / "voice" / "data"
SCRIPTS = sorted(p for p in HERE.glob("*.json") if not p.name.endswith(".truth.json"))


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, mkcall.SR)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)


def test_expected_scripts_exist() -> None:
    assert {"angry_billing", "calm_questions", "refund_refer", "demo"} <= {p.stem for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_generated_call_matches_its_truth(script: Path) -> None:
    meta, turns = mkcall.load_script(script)
    truth = json.loads(script.with_suffix(".truth.json").read_text())
    x = read_wav(script.with_suffix(".wav"))
    assert truth["name"] == meta["name"] == script.stem
    assert 30 <= truth["duration"] <= 70
    assert len(x) == pytest.approx(truth["duration"] * mkcall.SR, abs=4)  # 1 ms rounding
    assert [(t["speaker"], t["text"], t["expect"]) for t in truth["turns"]] == \
        [(t.speaker, t.text, t.expect) for t in turns]
    for turn in truth["turns"]:
        ch = mkcall.SPEAKERS.index(turn["speaker"])
        a, b = round(turn["start"] * mkcall.SR), round(turn["end"] * mkcall.SR)
        assert b > a
        # Speech starts at `start` (edges were trimmed) and the speaker's channel is quiet just before.
        assert np.abs(x[a - 40: a + 40, ch]).max() > mkcall.SILENCE_THRESHOLD
        assert np.abs(x[a - 400: a - 80, ch]).max() <= mkcall.SILENCE_THRESHOLD


def test_scripts_cover_their_scenarios() -> None:
    def load(name: str) -> tuple[dict[str, object], list[mkcall.Turn]]:
        return mkcall.load_script(HERE / f"{name}.json")

    _, angry = load("angry_billing")
    assert any(t.overlap > 0 and t.speaker == "agent" for t in angry)
    assert sum(t.expect == "venting" for t in angry) >= 2
    assert "fine" in angry[-1].text.lower() and angry[-1].speaker == "customer"
    _, calm = load("calm_questions")
    assert not any(t.expect == "venting" for t in calm)
    assert all(t.expect == "question" for t in calm if t.speaker == "customer" and t is not calm[-1])
    meta, refer = load("refund_refer")
    assert meta["outcome"] == "referred"
    assert any("not able to" in t.text and t.speaker == "agent" for t in refer)
    _, demo = load("demo")
    assert {"venting", "question", "other"} == {t.expect for t in demo}


def test_demo_call_is_shipped_unchanged_and_small() -> None:
    wav, truth = DATA / "demo_call.wav", DATA / "demo_call.truth.json"
    assert wav.read_bytes() == (HERE / "demo.wav").read_bytes()
    assert truth.read_text() == (HERE / "demo.truth.json").read_text()
    assert wav.stat().st_size < 1_500_000
    duration = json.loads(truth.read_text())["duration"]
    assert len(read_wav(wav)) / mkcall.SR == pytest.approx(duration, abs=1e-3)


def fake_speak(text: str, speed: float, pitch_cents: int) -> np.ndarray:
    # One second of constant "speech" per word, so layout is easy to predict.
    return np.full(len(text.split()) * mkcall.SR, 1000.0, np.float32)


def test_render_lays_out_turns_gaps_overlap_and_channels() -> None:
    turns = [
        mkcall.Turn("agent", "hello there", "other", gap=0.0),
        mkcall.Turn("customer", "one two three", "venting", gap=0.5, gain_db=6.0),
        mkcall.Turn("agent", "sorry", "other", gap=0.0, overlap=1.0),
        mkcall.Turn("customer", "ok", "other", gap=0.5),
    ]
    stereo, truth = mkcall.render(turns, lead=1.0, tail=0.5, speak=fake_speak)
    assert [(t["start"], t["end"]) for t in truth] == [(1.0, 3.0), (3.5, 6.5), (5.5, 6.5), (7.0, 8.0)]
    assert len(stereo) == 8.5 * mkcall.SR + 1
    sr = mkcall.SR
    assert stereo[int(1.5 * sr), 1] == 1000 and stereo[int(1.5 * sr), 0] == 0  # agent on the right
    assert stereo[int(4.0 * sr), 0] == round(1000 * 10 ** (6 / 20))  # customer on the left, +6 dB
    assert stereo[int(6.0 * sr), 1] == 1000 and stereo[int(6.0 * sr), 0] > 0  # the interruption overlaps


@pytest.mark.parametrize(("turn", "message"), [
    ({"speaker": "caller", "text": "hi", "expect": "other"}, "speaker must be one of"),
    ({"speaker": "agent", "text": "hi", "expect": "angry"}, "expect must be one of"),
    ({"speaker": "agent", "text": " ", "expect": "other"}, "empty text"),
    ({"speaker": "agent", "text": "hi", "expect": "other", "pitch": 3}, "unknown field"),
])
def test_load_script_rejects_bad_turns(tmp_path: Path, turn: dict[str, object], message: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"name": "bad", "turns": [turn]}))
    with pytest.raises(mkcall.ScriptError, match=message):
        mkcall.load_script(p)


def test_main_writes_files_and_skips_truth_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "tiny.json"
    script.write_text(json.dumps({"name": "tiny", "outcome": "resolved", "turns": [
        {"speaker": "customer", "text": "where is my order", "expect": "question"}]}))
    (tmp_path / "tiny.truth.json").write_text("{}")
    monkeypatch.setattr(mkcall, "synth", fake_speak)
    assert mkcall.main([str(script), str(tmp_path / "tiny.truth.json")]) == 0
    truth = json.loads((tmp_path / "tiny.truth.json").read_text())
    assert truth["outcome"] == "resolved" and truth["turns"][0]["start"] == 1.6
    assert read_wav(tmp_path / "tiny.wav")[int(2 * mkcall.SR), 0] == 1000
    assert "tiny:" in capsys.readouterr().out
    assert mkcall.main([]) == 2
