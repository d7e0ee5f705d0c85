"""Synthesise scripted two-party test calls: script JSON -> stereo 8 kHz WAV + `.truth.json`.

Owns the script format used by the call fixtures in this folder and by the bundled demo call:

    {"name": "...", "lead": 1.0, "tail": 2.0, "outcome": "resolved",   # extra top-level keys pass through
     "turns": [{"speaker": "customer" | "agent", "text": "...", "expect": "venting" | "question" | "other",
                "gap": 0.6, "overlap": 0.0, "speed": 1.0, "gain_db": 0.0}, ...]}

The WAV's left channel is the customer and its right channel is the agent (CONTRACT §1 `simulate`).
The truth file lists each turn's speaker, text, expected label, start and end in seconds since the
start of the stream, with the synthesised speech's leading and trailing silence trimmed so that the
times bracket the words themselves.

Speech comes from `hibari-tts` (bundled offline "heart" voice). The agent is pitch-shifted with sox so
the two parties sound like different people. Usage: `python tests/calls/mkcall.py tests/calls/*.json`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

SR = 8000
SPEAKERS = ("customer", "agent")  # channel order: left, right
LABELS = ("venting", "question", "other")
AGENT_PITCH_CENTS = -450
SEED = 7  # fixes hibari's noise component so regenerating gives identical audio
SILENCE_THRESHOLD = 300  # PCM16 amplitude below which leading/trailing samples count as silence
_TURN_KEYS = {"speaker", "text", "expect", "gap", "overlap", "speed", "gain_db"}
_AUDIO_ONLY_KEYS = ("gap", "overlap", "speed", "gain_db")  # shape the audio; not part of the truth


class ScriptError(ValueError):
    """A call script is malformed; the message names the file, turn and field."""


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str
    expect: str
    gap: float = 0.6
    overlap: float = 0.0
    speed: float = 1.0
    gain_db: float = 0.0


def load_script(path: Path) -> tuple[dict[str, Any], list[Turn]]:
    """Parse and validate a script; returns (top-level metadata without turns, turns)."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("turns"), list) or not data["turns"]:
        raise ScriptError(f"{path}: expected an object with a non-empty 'turns' list")
    if not isinstance(data.get("name"), str):
        raise ScriptError(f"{path}: missing 'name'")
    turns = []
    for i, raw in enumerate(data["turns"]):
        unknown = set(raw) - _TURN_KEYS
        if unknown:
            raise ScriptError(f"{path}: turn {i}: unknown field(s) {sorted(unknown)}")
        if raw.get("speaker") not in SPEAKERS:
            raise ScriptError(f"{path}: turn {i}: speaker must be one of {SPEAKERS}, "
                              f"got {raw.get('speaker')!r}")
        if raw.get("expect") not in LABELS:
            raise ScriptError(f"{path}: turn {i}: expect must be one of {LABELS}, got {raw.get('expect')!r}")
        if not str(raw.get("text", "")).strip():
            raise ScriptError(f"{path}: turn {i}: empty text")
        turns.append(Turn(**raw))
    meta = {k: v for k, v in data.items() if k != "turns"}
    return meta, turns


@cache
def _tts() -> Any:
    # Imported lazily so the module (and load_script) can be used where hibari is not installed.
    import hibari

    return hibari.Hibari()


def synth(text: str, speed: float = 1.0, pitch_cents: int = 0) -> np.ndarray:
    """Speak `text`; returns float32 PCM16-scaled samples at 8 kHz with edge silence trimmed."""
    tts = _tts()
    audio = np.asarray(tts(text, speed=speed, seed=SEED), dtype=np.float32)
    # sox via pipes (no temp files): float 24 kHz in -> optional pitch shift -> PCM16 8 kHz out.
    # -D: no dither, so regenerating gives byte-identical files.
    cmd = ["sox", "-D",
           "-t", "raw", "-r", str(tts.sample_rate), "-e", "floating-point", "-b", "32", "-c", "1", "-",
           "-t", "raw", "-r", str(SR), "-e", "signed-integer", "-b", "16", "-c", "1", "-"]
    if pitch_cents:
        cmd += ["pitch", str(pitch_cents)]
    cmd += ["rate", str(SR)]
    out = subprocess.run(cmd, input=audio.astype("<f4").tobytes(), check=True, capture_output=True).stdout
    x = np.frombuffer(out, "<i2").astype(np.float32)
    voiced = np.nonzero(np.abs(x) > SILENCE_THRESHOLD)[0]
    return x[voiced[0]: voiced[-1] + 1] if len(voiced) else x


Speak = Callable[[str, float, int], np.ndarray]


def render(turns: Sequence[Turn], lead: float = 1.0, tail: float = 2.0,
           speak: Speak | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Lay turns out on a stereo timeline; returns (int16 array of shape (n, 2), truth turns).

    `speak(text, speed, pitch_cents) -> float32 samples at SR` defaults to `synth`; it is injectable
    so the layout is testable without TTS.
    """
    speak = speak or synth
    t = lead
    placed: list[tuple[int, float, np.ndarray]] = []
    truth = []
    for turn in turns:
        pitch = AGENT_PITCH_CENTS if turn.speaker == "agent" else 0
        x = speak(turn.text, turn.speed, pitch) * (10 ** (turn.gain_db / 20))
        # `overlap` pulls the start back into the previous turn (an interruption); `gap` pushes it forward.
        start = max(0.0, t - turn.overlap) + turn.gap
        end = start + len(x) / SR
        placed.append((SPEAKERS.index(turn.speaker), start, x))
        truth.append({"speaker": turn.speaker, "text": turn.text, "expect": turn.expect,
                      "start": round(start, 3), "end": round(end, 3)})
        # Timeline continues from the later of the two ends, so an interruption that finishes first
        # does not make the next turn overlap the still-talking speaker.
        t = max(t, end)
    # +1 sample: rounding a start up must never push a turn past the end of the buffer.
    stereo = np.zeros((int((t + tail) * SR) + 1, 2), np.float32)
    for ch, start, x in placed:
        i = round(start * SR)
        stereo[i: i + len(x), ch] += x
    return np.clip(stereo, -32768, 32767).astype(np.int16), truth


def write_wav(path: Path, stereo: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(stereo.astype("<i2").tobytes())


def build(script: Path, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Synthesise one script; writes NAME.wav and NAME.truth.json (beside the script by default)."""
    script = Path(script)
    meta, turns = load_script(script)
    stereo, truth = render(turns, lead=float(meta.get("lead", 1.0)), tail=float(meta.get("tail", 2.0)))
    out = Path(out_dir) if out_dir else script.parent
    wav_path = out / f"{script.stem}.wav"
    truth_path = out / f"{script.stem}.truth.json"
    write_wav(wav_path, stereo)
    duration = round(len(stereo) / SR, 3)
    extra = {k: v for k, v in meta.items() if k not in ("name", "lead", "tail")}
    truth_path.write_text(json.dumps({"name": meta["name"], "duration": duration, **extra, "turns": truth},
                                     indent=1) + "\n")
    return wav_path, truth_path


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: mkcall.py SCRIPT.json ...", file=sys.stderr)
        return 2
    for arg in args:
        if arg.endswith(".truth.json"):  # so `tests/calls/*.json` globs work after a first run
            continue
        try:
            wav_path, truth_path = build(Path(arg))
        except ScriptError as e:
            print(f"mkcall: {e}", file=sys.stderr)
            return 2
        truth = json.loads(truth_path.read_text())
        print(f"{wav_path.stem}: {truth['duration']:.1f}s, {len(truth['turns'])} turns, "
              f"{wav_path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
