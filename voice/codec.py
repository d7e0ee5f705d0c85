"""Sample formats: G.711 μ-law ↔ PCM16 and streaming resampling.

μ-law uses the C codec in `audioop` (stdlib up to 3.12, `audioop-lts` after); resampling uses soxr,
with one stateful `Resampler` per stream so chunk boundaries leave no clicks.
"""

from __future__ import annotations

import warnings

import numpy as np
import soxr

with warnings.catch_warnings():
    # audioop is deprecated in 3.11-3.12 and provided by audioop-lts from 3.13; both are the same C code.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def ulaw_to_pcm16(data: bytes) -> bytes:
    return audioop.ulaw2lin(data, 2)


def pcm16_to_ulaw(data: bytes) -> bytes:
    return audioop.lin2ulaw(data, 2)


def rms(pcm: bytes) -> float:
    return float(audioop.rms(pcm, 2)) if pcm else 0.0


class Resampler:
    """Stateful mono PCM16 resampler; `process(last=True)` drains the filter tail."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16")

    def process(self, pcm: bytes, last: bool = False) -> bytes:
        if self._stream is None:
            return pcm
        samples = np.frombuffer(pcm, dtype=np.int16)
        out: np.ndarray = self._stream.resample_chunk(samples, last=last)
        return out.astype(np.int16, copy=False).tobytes()


def resample(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """One-shot resampling of a whole int16 (or float) array, mono or (n, channels)."""
    if in_rate == out_rate:
        return samples
    return np.asarray(soxr.resample(samples, in_rate, out_rate))
