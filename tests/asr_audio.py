"""Real English audio with reference transcripts from Debian packages (shared by tests and benchmarks).

* `pocketsphinx-testdata`: LibriVox clips, 16 kHz.
* `asterisk-core-sounds-en-wav` (+ transcripts in `asterisk-core-sounds-en`): 8 kHz telephone
  prompts, which we send through μ-law and back and upsample to 16 kHz, as the live pipeline does.
"""

from __future__ import annotations

import gzip
import re
import warnings
import wave
from pathlib import Path

import numpy as np
import soxr

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # audioop is fine on 3.11/3.12
    import audioop

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
ASTERISK = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")

# Plain sentences (no digits or spelled letters), ~45 s in all.
TELEPHONE_IDS = (
    "agent-alreadyon",
    "agent-pass",
    "auth-incorrect",
    "cannot-complete-as-dialed",
    "check-number-dial-again",
    "conf-getconfno",
    "conf-invalid",
    "conf-leaderhasleft",
    "conf-onlyperson",
    "conf-placeintoconf",
    "conf-waitforleader",
    "pbx-invalidpark",
    "privacy-prompt",
    "conf-now-recording",
    "conf-roll-callcomplete",
)


def have_librivox() -> bool:
    return (LIBRIVOX / "transcription").is_file()


def have_telephone() -> bool:
    return ASTERISK_TXT.is_file() and ASTERISK.is_dir()


def read_wav(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
        return w.readframes(w.getnframes()), w.getframerate()


def resample(pcm: bytes, src: int, dst: int) -> bytes:
    if src == dst:
        return pcm
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768
    y = soxr.resample(x, src, dst)
    return (np.clip(y, -1, 1) * 32767).astype(np.int16).tobytes()


def librivox() -> list[tuple[str, bytes, str]]:
    """(id, PCM16 at 16 kHz, reference) for every LibriVox clip."""
    out = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
        if m:
            pcm, rate = read_wav(LIBRIVOX / f"{m.group(2)}.wav")
            out.append((m.group(2), resample(pcm, rate, 16000), m.group(1).strip()))
    return out


def telephone(ids: tuple[str, ...] = TELEPHONE_IDS) -> list[tuple[str, bytes, str]]:
    """(id, PCM16 at 16 kHz after an 8 kHz μ-law round trip, reference)."""
    refs: dict[str, str] = {}
    with gzip.open(ASTERISK_TXT, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            key, sep, text = line.partition(":")
            if sep:
                refs[key.strip()] = text.strip()
    out = []
    for key in ids:
        pcm, rate = read_wav(ASTERISK / f"{key}.wav")
        pcm = resample(pcm, rate, 8000)
        pcm = audioop.ulaw2lin(audioop.lin2ulaw(pcm, 2), 2)  # the telephone codec, both ways
        out.append((key, resample(pcm, 8000, 16000), refs[key]))
    return out
