"""Call-level phase tracker: turns the stream of classified utterances into the call's phase timeline.

Where the utterance classifier labels single turns (``venting | question | other``), the tracker
says where the *conversation* stands, with hysteresis so one odd turn doesn't flip the phase. The
``phases`` list of the ``Call`` record (CONTRACT §5) uses these names:

- ``opening``: greetings and identification, from the start of the stream until the customer's
  first turn that is more than a greeting.
- ``venting``: the customer is voicing frustration or a grievance. It starts at the start of the
  first venting customer turn (so every venting turn lies inside it) and ends only once the customer
  has calmed: ``calm_turns`` (2) non-venting customer turns in a row, or ``calm_seconds`` (8 s) after
  the last venting turn ended, or the agent acting on the problem after the customer's latest turn
  was calm. A single calm turn in between does not end it.

  A *turn* is what one speaker says before the other speaks: the VAD splits a long turn into
  several finals at sentence pauses, so consecutive finals of the customer less than ``turn_gap``
  (1.5 s) apart, with no agent speech starting in between, are one turn (:class:`TurnJoiner`). A turn
  with any venting piece is venting from its start, its calm pieces included, and a calm turn counts
  once towards ``calm_turns`` however many pieces it has. A piece whose interim text (a partial)
  already classified as venting counts as venting even if its final text does not: the ASR often
  revises a word away ("dead since saturday" -> "getting fatter day"), and the venting the partial
  showed was heard. The utterance's own stored ``phase`` stays the classifier's label of the final.
- ``question``: the issue is being worked out: the customer asks for information or help, or
  answers the agent's questions. Every stretch after the opening that is not venting, resolution or
  closing is ``question``; a customer question after a resolution or closing reopens it.
- ``resolution``: the agent acts on the problem or explains the fix ("i've refunded", "i've booked",
  "i'll send", "done", "fixed", ...) while the customer's latest turn is calm (not venting, sentiment
  not clearly negative).
- ``closing``: thanks and goodbyes after the issue has been handled: a customer thanking the agent
  with non-negative sentiment after a resolution or answer, anyone saying goodbye, or the agent's
  "anything else I can help with" after a resolution.

The tracker is pure and synchronous: times are the call's telephony seconds, passed in by the
caller, and there is no clock, I/O or asyncio. Segments are contiguous; a segment that turns out to
have started after newer evidence (a venting turn that began earlier but was finalised later) is
retracted, and the corresponding :class:`PhaseEvent` carries the corrected start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from dialog.classify import normalize
from dialog.types import Phase, Utterance
from voice.types import Speaker

CallPhase = Literal["opening", "venting", "question", "resolution", "closing"]
CALL_PHASES: tuple[CallPhase, ...] = get_args(CallPhase)

#: Verbs in the simple past that report the agent's own action even without "have": ASR often drops
#: the "'ve" ("i booked", "we refunded"). Verbs that as often describe how things work ("we changed
#: the policy", "we moved your route", "i paid") are left to the perfect form.
_BARE_PAST_ACTIONS = (
    "refunded|credited|booked|sent|emailed|texted|fixed|sorted|cancelled|canceled|processed|reset|arranged|"
    "issued|waived|reversed|scheduled|resent|unlocked|replaced|restored|corrected|reactivated|rebooked"
)
#: The agent doing something about the problem, in normalised ASR text (no apostrophes).
ACTION_CUE = re.compile(
    r"(?:^|\b(?:and|so|ok|okay|right|now|then|thanks|thank you|great) )(?:i|we)(?: just| now| already| also)? "
    rf"(?:{_BARE_PAST_ACTIONS})\b"
    r"|\b(?:ive|weve|i have|we have)(?: just| now| already| gone ahead and| also)? "
    r"(?:refunded|credited|booked|sent|emailed|texted|fixed|sorted|cancelled|canceled|processed|split|added|"
    r"updated|reset|arranged|applied|issued|removed|waived|reversed|changed|scheduled|set up|turned off|"
    r"turned on|switched|upgraded|downgraded|activated|reactivated|replaced|resent|unlocked|raised|logged|"
    r"put through|passed|moved|extended|paid|ordered|approved|corrected|restored|refreshed)\b"
    r"|\b(?:ill|i will|im going to|im gonna)(?: just| now| also| personally)? "
    r"(?:send|refund|credit|book|fix|sort|arrange|process|issue|reverse|waive|cancel|reset|schedule|email|text|"
    r"replace|order|approve|correct|restore)\b"
    r"|^(?:ok |okay |right |great |alright )?(?:done|all done|all sorted|thats done)\b"
    r"|\b(?:thats|its|all|ive|weve) (?:done|fixed|sorted)\b"
    r"|\b(?:youre all set|all set now|has been (?:refunded|fixed|sorted|credited)|have been (?:refunded|credited))\b"
)
#: Thanks, from the customer, as a closing signal once the issue has been handled.
THANKS_CUE = re.compile(r"\b(?:thank you|thanks|thank u|cheers|appreciate (?:it|that|your help|you))\b")
#: Goodbyes: a closing signal from either side.
GOODBYE_CUE = re.compile(
    r"\b(?:bye|goodbye|bye bye|have a (?:nice|good|great|lovely|wonderful) (?:day|one|evening|weekend|afternoon)"
    r"|take care(?! of)|thats all|thats everything|nothing else)\b"
)
#: The agent's pre-closing question.
ANYTHING_ELSE_CUE = re.compile(r"\b(?:anything else (?:i|we) can|is there anything else)\b")

#: Longest pause between two finals of one speaker that still counts as one turn (seconds).
TURN_GAP = 1.5

_GREETING_WORDS = frozenset("hi hello hey hiya morning afternoon evening good yes yeah yep ok okay oh um uh".split())
#: Customer sentiment (VADER compound) below which a turn still counts as negative.
NEGATIVE_SENTIMENT = -0.3


@dataclass(frozen=True, slots=True)
class PhaseEvent:
    """The call entered ``phase`` at ``start`` (telephony seconds); ``previous`` is the phase it left."""

    phase: CallPhase
    start: float
    previous: CallPhase | None

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "start": round(self.start, 3), "previous": self.previous}


@dataclass(frozen=True, slots=True)
class Turn:
    """One speaker's turn so far: from ``start`` to ``end``; ``venting`` if any piece was venting;
    ``pieces`` finals joined into it."""

    start: float
    end: float
    venting: bool
    pieces: int = 1


class TurnJoiner:
    """Joins the finals the VAD split at sentence pauses back into turns.

    A final continues its speaker's previous turn when it starts at most ``max_gap`` seconds after
    that turn's last final ended and the other speaker did not start speaking in between (speech
    that began earlier, overlapping the turn, does not break it). Feed every final to :meth:`add`
    and the other speaker's partials to :meth:`heard`, so a reply not yet finalised counts too.
    """

    def __init__(self, max_gap: float = TURN_GAP) -> None:
        self.max_gap = max_gap
        self._turns: dict[str, Turn] = {}
        self._starts: dict[str, list[float]] = {}
        # Per speaker: start of the in-progress piece a partial read as venting.
        self._partial_venting: dict[str, float] = {}

    def partial_venting(self, speaker: str, start: float) -> None:
        """A partial of ``speaker``'s piece that began at ``start`` read as venting: its final counts as
        venting even if the final's text loses the words (see :meth:`add`)."""
        earlier = self._partial_venting.get(speaker)
        self._partial_venting[speaker] = start if earlier is None else min(earlier, start)

    def heard(self, speaker: str, start: float) -> None:
        """``speaker`` was heard speaking from ``start`` (a partial or a final)."""
        starts = self._starts.setdefault(speaker, [])
        if not starts or abs(starts[-1] - start) > 1e-6:
            starts.append(start)
            del starts[:-20]

    def turn(self, speaker: str, start: float) -> Turn | None:
        """The turn a piece of ``speaker`` starting at ``start`` would continue, if any."""
        prev = self._turns.get(speaker)
        if prev is None or start - prev.end > self.max_gap or start < prev.start:
            return None
        for other, starts in self._starts.items():
            if other != speaker and any(prev.end < s <= start for s in starts):
                return None
        return prev

    def add(self, speaker: str, start: float, end: float, venting: bool) -> tuple[Turn, bool]:
        """Record a final; returns its turn (joined or new) and whether it continued an earlier piece."""
        opened = self._partial_venting.get(speaker)
        if opened is not None and opened <= end:
            # This final closes the piece a partial found venting (unless that piece never got a final
            # and this one starts well after it).
            venting = venting or opened >= start - self.max_gap
            del self._partial_venting[speaker]
        self.heard(speaker, start)
        prev = self.turn(speaker, start)
        if prev is None:
            turn = Turn(start, end, venting)
        else:
            turn = Turn(prev.start, max(prev.end, end), prev.venting or venting, prev.pieces + 1)
        self._turns[speaker] = turn
        return turn, prev is not None


class PhaseTracker:
    """Call-level phase state machine with hysteresis; one per call.

    Feed it every final utterance in the order the pipeline produces them (:meth:`observe`), and
    optionally customer partials (:meth:`observe_partial`) so venting shows up before a long turn is
    finalised; call :meth:`tick` as telephony time advances so quiet stretches end venting.
    """

    def __init__(self, *, calm_turns: int = 2, calm_seconds: float = 8.0, start: float = 0.0,
                 turn_gap: float = TURN_GAP) -> None:
        if calm_turns < 1 or calm_seconds <= 0:
            raise ValueError("calm_turns must be >= 1 and calm_seconds > 0")
        self.calm_turns = calm_turns
        self.calm_seconds = calm_seconds
        self._segments: list[tuple[CallPhase, float]] = [("opening", start)]
        self._latest = start
        self._customer_spoke = False
        self._calm_count = 0
        self._last_vent_end: float | None = None
        self._last_customer: tuple[Phase, float] | None = None  # (label, sentiment) of the latest turn
        self._customer_open: float | None = None  # start of a customer turn still in progress (partials)
        self._calm_since: float | None = None  # start of the first calm customer turn after venting
        self._turns = TurnJoiner(turn_gap)

    # --- public API ------------------------------------------------------------------------------

    @property
    def current(self) -> CallPhase:
        return self._segments[-1][0]

    @property
    def current_start(self) -> float:
        return self._segments[-1][1]

    def observe(self, utterance: Utterance, sentiment: float) -> list[PhaseEvent]:
        """Update the phase with one final utterance (``utterance.phase`` is the classifier's label)."""
        events: list[PhaseEvent] = []
        customer = utterance.speaker == "customer"
        if not customer:
            self._turns.heard(utterance.speaker, utterance.start)
        # A customer turn shows the customer was talking from its start, so it only proves silence
        # up to its start; an agent turn proves the customer had no venting turn up to its end.
        self._advance(utterance.start if customer else utterance.end, events)
        self._latest = max(self._latest, utterance.end)
        text = normalize(utterance.text)
        if customer:
            self._observe_customer(utterance, text, sentiment, events)
        else:
            self._observe_agent(utterance, text, events)
        return events

    def observe_partial(self, speaker: Speaker, start: float, now: float, phase: Phase) -> list[PhaseEvent]:
        """A customer's interim text already classifies as venting: open venting without waiting for
        the final. Other partials only advance time."""
        events: list[PhaseEvent] = []
        self._advance(start if speaker == "customer" else now, events)
        self._latest = max(self._latest, now)
        if speaker == "customer":
            self._customer_open = start
        else:
            self._turns.heard(speaker, start)
        if speaker == "customer" and phase == "venting":
            self._turns.partial_venting(speaker, start)
            self._customer_spoke = True
            self._calm_count = 0
            self._calm_since = None
            self._last_vent_end = max(self._last_vent_end or 0.0, now)
            turn = self._turns.turn(speaker, start)
            self._enter("venting", start if turn is None else turn.start, events, retro=True)
        return events

    def tick(self, now: float) -> list[PhaseEvent]:
        """Advance telephony time; ends venting after ``calm_seconds`` without a venting turn."""
        events: list[PhaseEvent] = []
        self._advance(now, events)
        self._latest = max(self._latest, now)
        return events

    def timeline(self) -> list[dict[str, Any]]:
        """CONTRACT ``phases``: closed segments plus the open one, which ends at the latest time seen."""
        out: list[dict[str, Any]] = []
        for i, (phase, start) in enumerate(self._segments):
            end = self._segments[i + 1][1] if i + 1 < len(self._segments) else max(self._latest, start)
            out.append({"phase": phase, "start": round(start, 3), "end": round(end, 3)})
        return out

    # --- rules -----------------------------------------------------------------------------------

    def _advance(self, now: float, events: list[PhaseEvent]) -> None:
        if self.current == "venting" and self._last_vent_end is not None:
            calm_at = self._last_vent_end + self.calm_seconds
            if self._customer_open is not None and self._customer_open < calm_at:
                return  # the customer is still talking: wait for that turn before calling it calm
            if now >= calm_at:
                # Venting ended where the customer first spoke calmly, or when the quiet ran out.
                self._enter("question", calm_at if self._calm_since is None else min(calm_at, self._calm_since), events)

    def _observe_customer(self, utterance: Utterance, text: str, sentiment: float,
                          events: list[PhaseEvent]) -> None:
        tokens = text.split()
        if self._customer_open is not None and self._customer_open <= utterance.end:
            self._customer_open = None
        turn, joined = self._turns.add("customer", utterance.start, utterance.end, utterance.phase == "venting")
        if not self._customer_spoke and not turn.venting \
                and (not tokens or all(t in _GREETING_WORDS for t in tokens)):
            return  # "hi", "hello yes": still the opening
        self._customer_spoke = True
        # A calm piece of a venting turn (the VAD split it at a pause) is still that venting turn.
        self._last_customer = ("venting" if turn.venting else utterance.phase, sentiment)
        if turn.venting:
            self._calm_count = 0
            self._calm_since = None
            self._last_vent_end = max(self._last_vent_end or 0.0, utterance.end)
            self._enter("venting", turn.start, events, retro=True)
            return
        current = self.current
        if current == "venting":
            if not joined:  # a calm turn counts once, however many pieces the VAD cut it into
                self._calm_count += 1
            if self._calm_since is None:
                self._calm_since = turn.start
            if self._calm_count >= self.calm_turns:
                self._enter("question", self._calm_since, events)
            return
        if GOODBYE_CUE.search(text) and current != "opening":
            self._enter("closing", utterance.start, events)
        elif current == "opening":
            self._enter("question", utterance.start, events)
        elif utterance.phase == "question":
            if current in ("resolution", "closing"):
                self._enter("question", utterance.start, events)
        elif THANKS_CUE.search(text) and sentiment >= 0.0 and current in ("resolution", "question"):
            if current == "resolution" or sentiment >= 0.3:
                self._enter("closing", utterance.start, events)

    def _observe_agent(self, utterance: Utterance, text: str, events: list[PhaseEvent]) -> None:
        if not self._customer_spoke:
            return
        current = self.current
        if current != "closing" and ACTION_CUE.search(text) and self._customer_calm():
            self._enter("resolution", utterance.start, events)
        elif current in ("resolution", "closing", "question") and GOODBYE_CUE.search(text) \
                and self._customer_calm():
            self._enter("closing", utterance.start, events)
        elif current == "resolution" and ANYTHING_ELSE_CUE.search(text):
            self._enter("closing", utterance.start, events)

    def _customer_calm(self) -> bool:
        last = self._last_customer
        return last is not None and last[0] != "venting" and last[1] > NEGATIVE_SENTIMENT

    def _enter(self, phase: CallPhase, at: float, events: list[PhaseEvent], *, retro: bool = False) -> None:
        previous, previous_start = self.current, self.current_start
        segments = self._segments
        if retro:
            # Newer evidence about an earlier moment (a venting turn finalised late): segments that
            # began at or after it are retracted, and a same-phase segment underneath is reopened.
            while len(segments) > 1 and segments[-1][1] >= at:
                segments.pop()
        else:
            at = max(at, previous_start)
        if segments[-1][0] != phase:
            if segments[-1][1] >= at:
                segments[-1] = (phase, segments[-1][1])  # a zero-length segment is replaced
                if len(segments) > 1 and segments[-2][0] == phase:
                    segments.pop()
            else:
                segments.append((phase, at))
        if (self.current, self.current_start) != (previous, previous_start):
            events.append(PhaseEvent(self.current, self.current_start, previous))
