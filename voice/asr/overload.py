"""Graceful ASR overload: one engine-wide state, `normal` or `degraded`, with hysteresis.

Owns: the decision (from the engine's ASR lag) and its bookkeeping. The session acts on it: while
`degraded`, new *agent* utterances are recorded and VAD-timed but not sent to the recogniser, so the
decoders serve the customer, whose words drive the coaching. Nothing else is dropped: both tracks are
still recorded in full, customer utterances are still all recognised, and agent utterances already
in the recogniser finish normally.

ASR lag is what the engine reports through an optional `lag()` method: seconds the oldest piece of
ASR work has been waiting (an utterance queued for a decoder, or one the VAD closed whose final is not
back yet). An engine without `lag()` never degrades. Pure and synchronous; the caller passes the
time (its injected monotonic clock), so tests drive it without sleeping.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Literal

OverloadState = Literal["normal", "degraded"]

#: Enter `degraded` when the ASR lag reaches this: a customer's final would then arrive more than
#: endpoint silence (0.4 s) + 1 s after they stopped, beyond the 1 s the capacity benchmark allows. Healthy
#: lag is 0.05-0.15 s; 0.6 s was tried and shed agent speech on brief spikes of a machine shared with other
#: jobs (12 state changes and 19 of ~40 agent turns shed at 4 calls) for little customer gain.
DEGRADE_LAG = 1.0
#: Leave `degraded` only once the lag has stayed at or below RECOVER_LAG for RECOVER_HOLD seconds, so the
#: state doesn't flap each time one queued utterance gets a decoder (a 3 s hold flipped 16 times in 70 s
#: on a machine starved by other jobs).
RECOVER_LAG = 0.3
RECOVER_HOLD = 10.0


@dataclass(frozen=True, slots=True)
class OverloadChange:
    kind: Literal["overload"]
    state: OverloadState
    lag: float
    at: float  # the caller's monotonic time


class OverloadGuard:
    """Hysteresis on ASR lag. `update(now, lag)` returns an `OverloadChange` when the state flips."""

    def __init__(self, *, degrade_lag: float = DEGRADE_LAG, recover_lag: float = RECOVER_LAG,
                 recover_hold: float = RECOVER_HOLD) -> None:
        if not 0 <= recover_lag < degrade_lag:
            raise ValueError("need 0 <= recover_lag < degrade_lag")
        self.degrade_lag = degrade_lag
        self.recover_lag = recover_lag
        self.recover_hold = recover_hold
        self.state: OverloadState = "normal"
        self.lag = 0.0
        self.changes = 0
        self._calm_since: float | None = None

    @property
    def degraded(self) -> bool:
        return self.state == "degraded"

    def update(self, now: float, lag: float) -> OverloadChange | None:
        self.lag = lag
        if self.state == "normal":
            if lag >= self.degrade_lag:
                return self._flip("degraded", now)
            return None
        if lag > self.recover_lag:
            self._calm_since = None
            return None
        if self._calm_since is None:
            self._calm_since = now
        if now - self._calm_since >= self.recover_hold:
            return self._flip("normal", now)
        return None

    def _flip(self, state: OverloadState, now: float) -> OverloadChange:
        self.state = state
        self._calm_since = None
        self.changes += 1
        return OverloadChange("overload", state, self.lag, now)


_GUARDS: weakref.WeakKeyDictionary[object, OverloadGuard] = weakref.WeakKeyDictionary()


def guard_for(engine: object) -> OverloadGuard:
    """The one guard of an engine: every call on that engine shares its recognisers, so they share
    its overload state too."""
    guard = _GUARDS.get(engine)
    if guard is None:
        guard = _GUARDS[engine] = OverloadGuard()
    return guard


def engine_lag(engine: object) -> float:
    """The engine's ASR lag in seconds (0.0 for engines that don't report one)."""
    lag = getattr(engine, "lag", None)
    return float(lag()) if callable(lag) else 0.0
