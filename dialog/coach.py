"""The real-time coach: detects the situations of METHOD.md and decides which playbook card to show.

This module owns:

- :class:`Card`, one coaching card of the playbook (the data lives in ``prompts/cards.toml`` and is
  loaded and validated by :mod:`prompts.playbook`; the coach only consumes cards),
- :class:`PromptEvent`, one card shown to the agent at a telephony time,
- :class:`Coach`, the per-call detector and prompt policy, with adherence tracking and live metrics.

Everything is pure and synchronous. Times are the call's telephony seconds passed in by the caller;
text is ASR-style (lowercase, no punctuation), normalised again here so either form works.

Detection (one trigger per row of METHOD.md's table):

============================ =====================================================================
trigger                      signal
============================ =====================================================================
``venting``                  a customer final or partial the classifier labels ``venting``
``agent_interrupts``         an agent turn starting while the customer speaks or within
                             ``latch_gap`` (0.3 s) of the customer stopping, while venting
``agent_explains``           agent explanation words ("because", "our policy", "the system",
                             "unfortunately we"), in a partial or the final, in an agent turn that
                             began while the customer was venting (judged as of the turn's start,
                             so a quiet-spell tick before the final is processed doesn't hide it)
``venting_subsides``         during venting: a calm customer turn, the tracker leaving venting, or a
                             ``pause`` (2 s) of silence after a venting turn; skipped once the agent
                             has apologised in this episode
``no_empathy``               ``seconds`` (15 s) after venting first began with no agent apology yet
``customer_question``        a customer turn labelled ``question`` (or opening with an inverted
                             auxiliary), outside venting
``issue_unclear``            venting ends and no customer turn has named a concrete issue yet
``systemic_issue``           "again", "every time", "third time", "keeps happening", "for weeks"
``policy_conflict``          the agent cites policy or says "not able to"
``customer_drifting``        the customer threatens to cancel, switch provider, go elsewhere
``no_resolution``            two refusals ("can't", "not able to") in agent speech within 60 s, or a
                             refusal followed by a customer turn that stays negative
``customer_says_fine``       "fine", "whatever", "i guess", "forget it" from the customer after a
                             resolution, or as a short reply (``FINE_MAX_WORDS``) to the agent's
                             answer (not to the agent's question) once an issue was raised
``closing``                  the call enters ``closing`` with the customer's sentiment recovered
``hostile_call_ended``       at :meth:`Coach.end`, when the customer vented for ``venting_seconds``
                             (20 s) or was abusive; a supervisor-facing card
============================ =====================================================================

Customer finals are grouped into turns (:class:`dialog.phases.TurnJoiner`): the VAD splits a long
turn at sentence pauses, and a calm piece that continues a venting turn is still that venting turn.
A piece whose partial already read as venting is venting even if its final text is not (as in
:mod:`dialog.phases`), so "let them finish" isn't followed by "they've paused" while they still vent.

Prompt policy: one card on screen at a time. A card stays current for ``hold_seconds`` (15 s), or
until the agent has done what it asked, or (for the venting cards) until venting ends. Each card has
its own cooldown. Only high-priority cards (priority >= 80) may replace a current card, and only if
they rank at least as high or the current card has been up for ``min_display`` seconds. While the
customer is venting only high-priority cards are shown. Cards about the customer's situation
(systemic issue, drifting, unclear issue, no resolution, "fine", closing) and "no apology yet" that
cannot be shown yet wait up to ``defer_seconds`` (20 s) for the screen to free up, unless their
situation ends first (an apology, the issue named, the agent acting on it). "Act, don't explain"
waits up to ``explain_wait`` (8 s): when the agent cuts in *with* an excuse, "stop talking over"
(higher) shows first and the excuse card follows once it has had ``min_display``, while the advice
is still about the agent's latest reply. The others are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from dialog.classify import normalize
from dialog.phases import TURN_GAP, TurnJoiner
from dialog.types import Phase, Utterance
from voice.types import Speaker

Trigger = Literal[
    "venting",
    "agent_interrupts",
    "agent_explains",
    "venting_subsides",
    "no_empathy",
    "customer_question",
    "issue_unclear",
    "systemic_issue",
    "policy_conflict",
    "customer_drifting",
    "no_resolution",
    "customer_says_fine",
    "closing",
    "hostile_call_ended",
]
TRIGGERS: tuple[Trigger, ...] = get_args(Trigger)

#: Cards at or above this priority may interrupt the current card and are shown during venting.
HIGH_PRIORITY = 80
PRIORITY_RANGE = (0, 100)
#: Longest whisper, in words: it is spoken to the agent over the call.
MAX_WHISPER_WORDS = 12

#: Tunable parameters per trigger, with defaults. ``window`` (seconds the agent has to follow the
#: card, for adherence) is accepted by every card.
DEFAULT_PARAMS: Mapping[Trigger, Mapping[str, float]] = MappingProxyType({
    "no_empathy": {"seconds": 15.0},
    "venting_subsides": {"pause": 2.0},
    "hostile_call_ended": {"venting_seconds": 20.0},
})
CARD_PARAMS: Mapping[Trigger, frozenset[str]] = MappingProxyType(
    {t: frozenset({"window", *DEFAULT_PARAMS.get(t, {})}) for t in TRIGGERS}
)

# Cards about the customer's situation stay relevant for a while, so they may wait for a free
# screen; so does "no apology yet", until the agent apologises. Cards about what the agent just said
# go stale at once (but see ``explain_wait``).
_DEFERRABLE: frozenset[Trigger] = frozenset(
    {"systemic_issue", "customer_drifting", "issue_unclear", "no_resolution", "customer_says_fine", "closing",
     "no_empathy"}
)
# Cards whose situation is over once the customer stops venting.
_VENTING_CARDS: frozenset[Trigger] = frozenset({"venting", "agent_interrupts", "agent_explains"})


@dataclass(frozen=True, slots=True)
class Card:
    """One coaching card. ``text`` is shown on the console, ``whisper`` is the short spoken form."""

    id: str
    trigger: Trigger
    priority: int
    cooldown: float
    text: str
    whisper: str
    principle: str
    params: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def high(self) -> bool:
        return self.priority >= HIGH_PRIORITY

    def param(self, name: str) -> float:
        if name in self.params:
            return float(self.params[name])
        return float(DEFAULT_PARAMS.get(self.trigger, {})[name])


@dataclass(frozen=True, slots=True)
class PromptEvent:
    """A card shown to the agent at telephony time ``at`` (the live ``prompt`` event)."""

    id: str
    at: float
    text: str
    whisper: str
    priority: int
    trigger: Trigger

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": round(self.at, 3), "text": self.text, "whisper": self.whisper,
                "priority": self.priority, "trigger": self.trigger}


# --- cues (normalised ASR text: lowercase, no punctuation, no apostrophes) --------------------------

def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")


APOLOGY = _rx(r"sorry", r"apologi[sz]\w*", r"apologies", r"i (?:completely |totally |really |do |can )?understand",
              r"understand (?:how|why|your|that)", r"i hear you", r"that must (?:be|have)", r"i can imagine")
EXPLAIN = _rx(r"because", r"cause", r"our policy", r"the policy", r"company policy", r"policy (?:says|is)",
              r"the system", r"our system", r"unfortunately (?:we|thats|the|our|its)", r"thats (?:just )?how it works",
              r"the way it works", r"the reason (?:is|why|for)", r"what happened (?:is|was)", r"its just that",
              r"thats just how")
POLICY = _rx(r"polic(?:y|ies)", r"not able to", r"unable to", r"not allowed", r"we dont allow",
             r"against (?:the|our) (?:rules|terms)", r"terms and conditions", r"outside (?:the|our) (?:window|period)")
REFUSAL = _rx(r"cant", r"cannot", r"can not", r"not able to", r"unable to", r"wont be able", r"not possible",
              r"no way (?:to|of)", r"theres nothing (?:i|we) can")
SYSTEMIC = _rx(r"again", r"every (?:single )?time", r"each time", r"(?:second|third|fourth|fifth|sixth) time",
               r"keeps? (?:happening|doing|charging|breaking|dropping|failing|coming back)",
               r"still (?:not|hasnt|havent|isnt|doesnt|broken)", r"same (?:problem|issue|thing|error)",
               r"for (?:two |three |four |several |a few |many )?(?:weeks|months)", r"for a (?:week|month)",
               r"happened before", r"always happens", r"this always", r"not the first time", r"how many times")
_NOT_SYSTEMIC = re.compile(r"\b(?:say (?:that|it) again|try (?:it )?again|call (?:you )?again|again please)\b")
DRIFTING = _rx(r"cancell?ing", r"cancel (?:everything|it all|my|the|our|this)",
               r"(?:going|want|gonna|about|have|like) to cancel", r"ill cancel", r"competitors?",
               r"switch(?:ing)? (?:to (?:another|a different|someone|your)|over to|away|provider\w*|compan\w*)",
               r"go(?:ing)? elsewhere", r"take my (?:business|money|custom) elsewhere", r"close my account",
               r"leav(?:e|ing) (?:you|your company)", r"another (?:provider|company|supplier|bank|carrier|network)",
               r"(?:im|were) done with (?:you|your)")
FINE = _rx(r"fine", r"whatever", r"i guess(?: so)?", r"i suppose(?: so)?", r"if you say so", r"it is what it is",
           r"forget it", r"doesnt matter")
#: Longest customer reply (words) that reads as settling for an answer rather than discussing it.
FINE_MAX_WORDS = 6
ISSUE = _rx(r"bill\w*", r"charg\w*", r"payments?", r"paid", r"pay", r"refunds?", r"invoices?", r"fees?", r"prices?",
            r"costs?", r"money", r"dollars?", r"pounds?", r"euros?", r"orders?", r"deliver\w*", r"package", r"parcel",
            r"shipping", r"account", r"password", r"log ?in", r"internet", r"wifi", r"connection", r"signal",
            r"broadband", r"phone", r"card", r"subscription", r"plan", r"contract", r"broken", r"broke", r"cracked",
            r"damaged", r"faulty", r"missing", r"late", r"delay\w*", r"outage", r"appointment", r"booking",
            r"reservation", r"flight", r"meter", r"router", r"app", r"website", r"error", r"sofa", r"product",
            r"item", r"device", r"engineer", r"technician", r"warranty", r"repair")
PROCESS_FIX = _rx(r"(?:wont|will not|doesnt|shouldnt) happen again", r"make sure", r"flag\w*", r"report\w*",
                  r"raised?", r"going forward", r"from now on", r"changed", r"change (?:the|how|our)",
                  r"put a (?:note|stop)", r"stop (?:this|it) happening", r"turned off", r"fix the")
OFFER = _rx(r"thank you for (?:being|staying|your loyalty|sticking)", r"loyal\w*", r"valued", r"offer\w*",
            r"credit\w*", r"discount\w*", r"free", r"waiv\w*", r"refund\w*", r"goodwill", r"complimentary", r"on us",
            r"upgrade\w*")
REFERRAL = _rx(r"refer(?:ring)? you", r"transfer(?:ring)? you", r"put you through",
               r"pass (?:your|the) (?:case|details)",
               r"hand (?:you|this) over", r"(?:another|the) (?:\w+ )?(?:department|team)", r"specialists?",
               r"contact them for you", r"connect you", r"warranty")
ASK_BETTER = _rx(r"what would", r"what could", r"anything else", r"is there anything", r"how (?:can|could) (?:we|i)",
                 r"make (?:it|this|things) better", r"happy with", r"how did we do", r"anything more")
FOLLOW_UP = _rx(r"follow(?:ing)? up", r"call you back", r"check (?:back|in)", r"get back to you", r"let me know",
                r"email you", r"text you", r"confirm\w*", r"make sure", r"reference", r"anything else",
                r"if (?:it|this|that) happens again", r"keep an eye")
BLAME = _rx(r"you should have", r"your fault", r"you didnt", r"calm down", r"you need to understand",
            r"as i (?:said|told you)", r"like i said")
ABUSE = _rx(r"idiots?", r"morons?", r"incompetent", r"useless", r"pathetic", r"shut up", r"fuck\w*", r"shit\w*",
            r"bastards?", r"liars?", r"clowns?")
_BACKCHANNEL = frozenset("mm mhm hmm hm uh huh um ok okay right yeah yes yep sure aha ah oh i see alright".split())
_WH = frozenset("what whats when where which who whos whose why how hows".split())
_AUX = frozenset("do does did is are was were can could will would should may might have has am".split())
_SUBJ = frozenset("i you we they he she it there that this my your the".split())


def _starts_as_question(tokens: Sequence[str]) -> bool:
    core = [t for t in tokens[:3] if t not in ("and", "so", "but", "ok", "okay", "um", "uh", "well", "then")]
    if not core:
        return False
    return core[0] in _WH or (core[0] in _AUX and len(core) > 1 and core[1] in _SUBJ)


def _is_backchannel(tokens: Sequence[str]) -> bool:
    return 0 < len(tokens) <= 3 and all(t in _BACKCHANNEL for t in tokens)


# --- adherence -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _AgentTurn:
    start: float
    end: float
    tokens: tuple[str, ...]
    text: str
    phase: Phase


@dataclass(frozen=True, slots=True)
class _Rule:
    """What following a card means: ``do`` (an agent turn matching ``test`` within the window),
    ``avoid`` (no such turn), ``no_interrupt`` (no interruption), ``next_turn`` (the agent's next
    turn passes ``test``)."""

    kind: Literal["do", "avoid", "no_interrupt", "next_turn"]
    window: float
    test: Callable[[_AgentTurn], bool] | None = None


def _matches(pattern: re.Pattern[str]) -> Callable[[_AgentTurn], bool]:
    return lambda turn: pattern.search(turn.text) is not None


_RULES: Mapping[Trigger, _Rule] = MappingProxyType({
    "venting": _Rule("no_interrupt", 10.0),
    "agent_interrupts": _Rule("no_interrupt", 10.0),
    "agent_explains": _Rule("avoid", 20.0, _matches(EXPLAIN)),
    "venting_subsides": _Rule("do", 20.0, _matches(APOLOGY)),
    "no_empathy": _Rule("do", 20.0, _matches(APOLOGY)),
    "customer_question": _Rule("next_turn", 20.0, lambda t: bool(t.tokens) and not _starts_as_question(t.tokens)),
    "issue_unclear": _Rule("do", 20.0, lambda t: t.phase == "question" or _starts_as_question(t.tokens)),
    "systemic_issue": _Rule("do", 30.0, _matches(PROCESS_FIX)),
    "policy_conflict": _Rule("avoid", 20.0, _matches(BLAME)),
    "customer_drifting": _Rule("do", 30.0, _matches(OFFER)),
    "no_resolution": _Rule("do", 30.0, _matches(REFERRAL)),
    "customer_says_fine": _Rule("do", 20.0, _matches(ASK_BETTER)),
    "closing": _Rule("do", 30.0, _matches(FOLLOW_UP)),
})
#: A "do" card still open when the call ends is judged only if the agent had at least this long.
_MIN_JUDGED = 5.0


@dataclass(slots=True)
class _Shown:
    event: PromptEvent
    card: Card
    rule: _Rule | None
    adhered: bool | None = None
    whispered: bool = False
    cleared: bool = False

    @property
    def deadline(self) -> float:
        return self.event.at + (self.rule.window if self.rule else 0.0)


# --- the coach -------------------------------------------------------------------------------------

class Coach:
    """Per-call coach. Feed it finals (:meth:`on_utterance`), optionally partials (:meth:`on_partial`),
    and telephony time (:meth:`tick`); call :meth:`end` once when the call ends."""

    def __init__(self, cards: Sequence[Card], *, hold_seconds: float = 15.0, min_display: float = 4.0,
                 defer_seconds: float = 20.0, explain_wait: float = 8.0, latch_gap: float = 0.3,
                 settle_grace: float = 8.0, turn_gap: float = TURN_GAP) -> None:
        self.hold_seconds = hold_seconds
        self.min_display = min_display
        self.defer_seconds = defer_seconds
        self.explain_wait = explain_wait
        self.latch_gap = latch_gap
        self.settle_grace = settle_grace
        self._by_trigger: dict[Trigger, list[Card]] = {}
        for card in cards:
            self._by_trigger.setdefault(card.trigger, []).append(card)
        for group in self._by_trigger.values():
            group.sort(key=lambda c: -c.priority)
        self._now = 0.0
        self._phase_state = "opening"
        self._shown: list[_Shown] = []
        self._current: _Shown | None = None
        self._last_shown: dict[str, float] = {}
        self._deferred: list[tuple[Card, float]] = []
        self._ended = False
        # speech bookkeeping
        self._customer_spans: list[tuple[float, float, Phase]] = []
        self._customer_open: tuple[float, float] | None = None  # (start, latest partial time)
        self._agent_open: float | None = None  # start of the agent's in-progress turn (from partials)
        self._partial_venting = False  # the customer's in-progress turn classifies as venting so far
        self._turns = TurnJoiner(turn_gap)  # customer finals joined back into turns
        self._explained: list[float] = []  # starts of agent turns already coached for explaining
        self._ended_episode: tuple[float, float] | None = None  # (start, end) of the last venting episode
        self._agent_turns: list[_AgentTurn] = []
        self._interrupt_starts: list[float] = []
        self._interrupts_coached: list[float] = []  # starts of interruptions already given their card
        self._talk = {"customer": 0.0, "agent": 0.0}
        self._customer_sentiments: list[float] = []
        self._last_customer: tuple[Phase, float] | None = None
        # venting state
        self._episode: float | None = None  # start of the current venting episode
        self._episode_apology = False
        self._episode_subsided = False
        self._episode_card = False
        self._first_venting: float | None = None
        self._last_vent_end: float | None = None
        self._empathy_at: float | None = None
        self._no_empathy_fired = False
        self._venting_seconds = 0.0
        self._abusive = False
        # other signals
        self._issue_named = False
        self._issue_raised = False  # the customer has asked something or complained (past the greetings)
        self._systemic_flags = 0
        self._refusals: list[float] = []
        self._resolution_seen = False
        self._closing_fired = False

    # --- public API ------------------------------------------------------------------------------

    def on_utterance(self, utterance: Utterance, phase: Phase, sentiment: float, *, overlap: float = 0.0,
                     phase_state: str) -> list[PromptEvent]:
        """One final utterance: ``phase`` is its classifier label, ``phase_state`` the tracker's
        call-level phase after observing it, ``overlap`` the seconds it overlapped the other speaker."""
        now = self._advance(utterance.end)
        text = normalize(utterance.text)
        tokens = tuple(text.split())
        fired: list[Trigger] = []
        duration = max(0.0, utterance.end - utterance.start)
        self._talk[utterance.speaker] += duration
        if utterance.speaker == "customer":
            # A piece a partial read as venting stays venting even if its final's text lost the words.
            turn, _joined = self._turns.add("customer", utterance.start, utterance.end, phase == "venting")
            if turn.venting:
                # A calm piece of a venting turn (the VAD cut it at a pause) is still that turn.
                phase = "venting"
            self._customer_final(utterance, phase, sentiment, text, tokens, duration, fired, turn.start)
        else:
            self._turns.heard(utterance.speaker, utterance.start)
            self._agent_final(utterance, phase, text, tokens, overlap, fired)
        self._update_phase_state(phase_state, now, fired)
        self._settle(now)
        return self._decide(now, fired)

    def on_partial(self, speaker: Speaker, text: str, start: float, now: float, *, phase: Phase = "other",
                   sentiment: float = 0.0, phase_state: str | None = None) -> list[PromptEvent]:
        """Interim ASR text of a turn that began at ``start``; ``phase`` is its classification so far.
        Lets the venting card and interruptions fire before a long turn is finalised."""
        now = self._advance(now)
        tokens = tuple(normalize(text).split())
        fired: list[Trigger] = []
        if speaker == "customer":
            self._customer_open = (start, now)
            turn = self._turns.turn(speaker, start)
            continues_venting = turn is not None and turn.venting
            self._partial_venting = phase == "venting" or continues_venting
            if phase == "venting":
                self._turns.partial_venting(speaker, start)
            if self._partial_venting:
                self._start_episode(start if turn is None else turn.start, fired)
                self._last_vent_end = max(self._last_vent_end or 0.0, now)
        else:
            self._agent_open = start
            self._turns.heard(speaker, start)
            if tokens and not _is_backchannel(tokens):
                self._check_interrupt(start, now, 0.0, fired)
            text_so_far = " ".join(tokens)
            if APOLOGY.search(text_so_far):
                self._apology(start, now)
            self._check_explains(start, text_so_far, fired)
        if phase_state is not None:
            self._update_phase_state(phase_state, now, fired)
        self._settle(now)
        return self._decide(now, fired)

    def tick(self, now: float, *, phase_state: str | None = None) -> list[PromptEvent]:
        """Advance telephony time: time-based triggers (no empathy, pauses) and card expiry."""
        now = self._advance(now)
        fired: list[Trigger] = []
        if phase_state is not None:
            self._update_phase_state(phase_state, now, fired)
        self._time_triggers(now, fired)
        self._settle(now)
        return self._decide(now, fired)

    def end(self, now: float) -> list[PromptEvent]:
        """The call ended: settle adherence and, after a hostile call, raise the supervisor card."""
        now = self._advance(now)
        if self._ended:
            return []
        self._ended = True
        for shown in self._shown:
            if shown.adhered is None and shown.rule is not None:
                if shown.rule.kind in ("avoid", "no_interrupt"):
                    shown.adhered = True
                elif now - shown.event.at >= min(shown.rule.window, _MIN_JUDGED):
                    shown.adhered = False
        events: list[PromptEvent] = []
        if self.hostile:
            card = self._pick("hostile_call_ended", now)
            if card is not None:
                events.append(self._show(card, now))
        return events

    def mark_whispered(self, event: PromptEvent) -> None:
        """Record that ``event`` was also whispered to the agent as audio."""
        for shown in self._shown:
            if shown.event == event:
                shown.whispered = True

    @property
    def current(self) -> PromptEvent | None:
        """The card on screen now, if any."""
        return self._current.event if self._current is not None and self._active(self._now) else None

    @property
    def hostile(self) -> bool:
        cards = self._by_trigger.get("hostile_call_ended")
        limit = cards[0].param("venting_seconds") if cards else DEFAULT_PARAMS["hostile_call_ended"]["venting_seconds"]
        return self._abusive or self._venting_seconds >= limit

    def prompts_record(self) -> list[dict[str, Any]]:
        """CONTRACT ``prompts``: every card shown, with whether the agent then followed it."""
        return [{"id": s.event.id, "at": round(s.event.at, 3), "text": s.event.text, "whispered": s.whispered,
                 "adhered": s.adhered, "trigger": s.event.trigger} for s in self._shown]

    def metrics(self) -> dict[str, Any]:
        """CONTRACT ``metrics`` plus ``venting_seconds``, ``hostile`` and ``systemic_flags``."""
        total = self._talk["agent"] + self._talk["customer"]
        sentiments = self._customer_sentiments
        tte = None
        if self._first_venting is not None and self._empathy_at is not None:
            tte = round(max(0.0, self._empathy_at - self._first_venting), 3)
        return {
            "talk_ratio": round(self._talk["agent"] / total, 3) if total > 0 else None,
            "interruptions": len(self._interrupt_starts),
            "time_to_empathy": tte,
            "sentiment_start": round(sum(sentiments[:2]) / len(sentiments[:2]), 3) if sentiments else None,
            "sentiment_end": round(sum(sentiments[-2:]) / len(sentiments[-2:]), 3) if sentiments else None,
            "venting_seconds": round(self._venting_seconds, 3),
            "hostile": self.hostile,
            "systemic_flags": self._systemic_flags,
        }

    # --- detection -------------------------------------------------------------------------------

    def _advance(self, now: float) -> float:
        self._now = max(self._now, now)
        return self._now

    def _settle(self, now: float) -> None:
        """Judge cards whose window has passed. An agent turn that began inside the window may be
        finalised a while later, so wait ``settle_grace`` more, and longer while such a turn is open."""
        for shown in self._shown:
            if shown.adhered is not None or shown.rule is None:
                continue
            if self._agent_open is not None and self._agent_open <= shown.deadline:
                continue
            if now > shown.deadline + self.settle_grace:
                shown.adhered = shown.rule.kind in ("avoid", "no_interrupt")

    def _customer_final(self, utterance: Utterance, phase: Phase, sentiment: float, text: str,
                        tokens: tuple[str, ...], duration: float, fired: list[Trigger],
                        turn_start: float) -> None:
        self._customer_sentiments.append(sentiment)
        self._last_customer = (phase, sentiment)
        self._customer_spans.append((utterance.start, utterance.end, phase))
        del self._customer_spans[:-20]
        if self._customer_open is not None and self._customer_open[0] <= utterance.end:
            self._customer_open = None
        if ISSUE.search(text):
            self._issue_named = True
            self._clear_card("issue_unclear")
        if ABUSE.search(text):
            self._abusive = True
        # Agent turns already finalised that began inside this customer turn were interruptions; and
        # one already counted from the agent's partials is coached now if this turn proves venting.
        for turn in self._agent_turns[-5:]:
            if utterance.start < turn.start <= utterance.end + self.latch_gap and not _is_backchannel(turn.tokens):
                self._count_interrupt(turn.start, phase == "venting", fired)
        if phase == "venting":
            for cut_in in self._interrupt_starts[-5:]:
                if utterance.start < cut_in <= utterance.end + self.latch_gap:
                    self._count_interrupt(cut_in, True, fired)
            self._venting_seconds += duration
            self._last_vent_end = max(self._last_vent_end or 0.0, utterance.end)
            self._start_episode(turn_start, fired)
        elif self._episode is not None:
            self._subsided(fired)
        if SYSTEMIC.search(_NOT_SYSTEMIC.sub(" ", text)):
            self._systemic_flags += 1
            fired.append("systemic_issue")
        if DRIFTING.search(text):
            fired.append("customer_drifting")
        if phase != "venting":
            if phase == "question" or _starts_as_question(tokens):
                fired.append("customer_question")
            elif self._settles(text, tokens):
                fired.append("customer_says_fine")
        if phase in ("question", "venting") or _starts_as_question(tokens):
            self._issue_raised = True
        recent_refusal = any(utterance.start - t <= 30.0 for t in self._refusals)
        if recent_refusal and (phase == "venting" or sentiment <= -0.3):
            fired.append("no_resolution")

    def _agent_final(self, utterance: Utterance, phase: Phase, text: str, tokens: tuple[str, ...], overlap: float,
                     fired: list[Trigger]) -> None:
        turn = _AgentTurn(utterance.start, utterance.end, tokens, text, phase)
        self._agent_turns.append(turn)
        del self._agent_turns[:-20]
        if self._agent_open is not None and self._agent_open <= utterance.end:
            self._agent_open = None
        if not _is_backchannel(tokens):
            self._check_interrupt(utterance.start, utterance.end, overlap, fired)
        if APOLOGY.search(text):
            self._apology(utterance.start, utterance.end)
        self._check_explains(utterance.start, text, fired)
        if POLICY.search(text):
            fired.append("policy_conflict")
        refusals = len(REFUSAL.findall(text))
        if refusals:
            self._refusals = [t for t in self._refusals if utterance.start - t <= 60.0]
            self._refusals.extend([utterance.start] * refusals)
            if len(self._refusals) >= 2:
                fired.append("no_resolution")
        self._judge(turn)

    def _settles(self, text: str, tokens: Sequence[str]) -> bool:
        """The customer settles with "fine" / "whatever" / "i guess": after the agent acted on the
        problem, or as a short reply to the agent's answer once an issue was raised. A "fine" that
        answers the agent's question ("is tuesday ok?" "tuesday is fine") is a confirmation."""
        if not FINE.search(text):
            return False
        if self._resolution_seen or self._phase_state in ("resolution", "closing"):
            return True
        last = self._agent_turns[-1] if self._agent_turns else None
        return (self._issue_raised and len(tokens) <= FINE_MAX_WORDS and last is not None
                and last.phase != "question" and not _starts_as_question(last.tokens))

    def _check_explains(self, agent_start: float, text: str, fired: list[Trigger]) -> None:
        """Explanation words in an agent turn that began while the customer was venting (once per turn)."""
        if not EXPLAIN.search(text) or not self._venting_as_of(agent_start):
            return
        if any(abs(agent_start - s) < 0.5 for s in self._explained):
            return  # the same agent turn, seen again (another partial, then the final)
        self._explained.append(agent_start)
        del self._explained[:-10]
        fired.append("agent_explains")

    def _venting_as_of(self, at: float) -> bool:
        """The customer was venting at ``at``: now, or inside the episode that has just ended."""
        if self._customer_venting():
            return True
        ended = self._ended_episode
        return ended is not None and ended[0] <= at <= ended[1]

    def _check_interrupt(self, agent_start: float, now: float, overlap: float, fired: list[Trigger]) -> None:
        """The agent began a turn at ``agent_start``: was the customer still talking, or just done?"""
        for start, end, phase in reversed(self._customer_spans[-5:]):
            if start < agent_start <= end + self.latch_gap:
                self._count_interrupt(agent_start, phase == "venting" or self._venting_now(), fired)
                return
        if self._customer_open is not None:
            # A partial's end is the audio fed so far, which runs past the last word by up to the
            # endpointer's closing silence: that already covers the latch gap, so none is added.
            start, seen = self._customer_open
            if start < agent_start <= max(seen, now if overlap > 0 else seen):
                self._count_interrupt(agent_start, self._venting_now(), fired)

    def _count_interrupt(self, agent_start: float, venting: bool, fired: list[Trigger]) -> None:
        """Count an interruption once per agent turn (it is seen again in later partials and the final).
        Its card fires once the customer is known to have been venting, which may only be clear from a
        later look: the customer's final, classified after the agent's partial was checked."""
        if not any(abs(agent_start - s) < 0.5 for s in self._interrupt_starts):
            self._interrupt_starts.append(agent_start)
            for shown in self._shown:
                if shown.adhered is None and shown.rule is not None and shown.rule.kind == "no_interrupt" \
                        and shown.event.at <= agent_start <= shown.deadline:
                    shown.adhered = False
        if venting and not any(abs(agent_start - s) < 0.5 for s in self._interrupts_coached):
            self._interrupts_coached.append(agent_start)
            del self._interrupts_coached[:-10]
            fired.append("agent_interrupts")

    def _judge(self, turn: _AgentTurn) -> None:
        """Adherence of shown cards against one agent turn."""
        for shown in self._shown:
            rule = shown.rule
            if shown.adhered is not None or rule is None or rule.test is None:
                continue
            at = shown.event.at
            if turn.start > shown.deadline:
                continue
            if rule.kind == "do" and turn.end > at and rule.test(turn):
                shown.adhered = True
                shown.cleared = True
            elif rule.kind == "avoid" and turn.start >= at and rule.test(turn):
                shown.adhered = False
            elif rule.kind == "next_turn" and turn.end > at:
                shown.adhered = rule.test(turn)
                shown.cleared = shown.cleared or shown.adhered

    def _apology(self, start: float, end: float) -> None:
        if self._first_venting is None or end < self._first_venting:
            return  # "sorry for the wait" before any venting is not empathy for the complaint
        if self._empathy_at is None:
            self._empathy_at = max(start, self._first_venting)
        self._clear_card("no_empathy")
        if self._episode is not None:
            self._episode_apology = True

    def _venting_now(self) -> bool:
        """Inside a venting episode (the call-level phase, with its hysteresis)."""
        return self._episode is not None or self._phase_state == "venting"

    def _customer_venting(self) -> bool:
        """The customer's latest words are venting: their last turn, or the turn in progress."""
        if self._episode is None:
            return False
        if self._customer_open is not None and self._partial_venting:
            return True
        return self._last_customer is not None and self._last_customer[0] == "venting"

    def _start_episode(self, start: float, fired: list[Trigger]) -> None:
        if self._first_venting is None:
            self._first_venting = start
        if self._episode is None:
            self._episode = start
            self._episode_apology = False
            self._episode_subsided = False
            self._episode_card = False
        if not self._episode_card:
            self._episode_card = True
            fired.append("venting")

    def _subsided(self, fired: list[Trigger]) -> None:
        """The customer finished (a calm turn, a pause, or the phase ending): "let them finish" has
        done its job, and if nobody has apologised yet, now is the moment."""
        self._clear_venting_card()
        if not self._episode_subsided and not self._episode_apology:
            self._episode_subsided = True
            fired.append("venting_subsides")

    def _update_phase_state(self, phase_state: str, now: float, fired: list[Trigger]) -> None:
        previous, self._phase_state = self._phase_state, phase_state
        if phase_state == "resolution":
            self._resolution_seen = True
            self._clear_card("issue_unclear")  # the agent is acting on the problem: it is clear enough
        if self._episode is not None and phase_state != "venting" and previous == "venting":
            self._end_episode(fired)
        if phase_state == "closing" and previous != "closing" and not self._closing_fired:
            last = self._last_customer
            if last is None or (last[0] != "venting" and last[1] >= 0.0):
                self._closing_fired = True
                fired.append("closing")

    def _end_episode(self, fired: list[Trigger]) -> None:
        if self._customer_venting() and self._episode is not None:
            # Remembered so an agent turn that began before the episode ended is judged as of its start.
            self._ended_episode = (self._episode, self._now)
        self._subsided(fired)
        if not self._issue_named:
            fired.append("issue_unclear")
        self._episode = None
        self._clear_venting_card()

    def _clear_card(self, trigger: Trigger) -> None:
        """The situation behind ``trigger`` is over: its card leaves the screen and stops waiting."""
        current = self._current
        if current is not None and current.event.trigger == trigger:
            current.cleared = True
        self._deferred = [(c, t) for c, t in self._deferred if c.trigger != trigger]

    def _clear_venting_card(self) -> None:
        current = self._current
        if current is not None and current.event.trigger in _VENTING_CARDS:
            current.cleared = True

    def _time_triggers(self, now: float, fired: list[Trigger]) -> None:
        if self._first_venting is not None and self._empathy_at is None and not self._no_empathy_fired:
            cards = self._by_trigger.get("no_empathy")
            wait = cards[0].param("seconds") if cards else DEFAULT_PARAMS["no_empathy"]["seconds"]
            if now >= self._first_venting + wait:
                self._no_empathy_fired = True
                fired.append("no_empathy")
        if self._episode is not None and self._last_vent_end is not None and not self._episode_subsided:
            cards = self._by_trigger.get("venting_subsides")
            pause = cards[0].param("pause") if cards else DEFAULT_PARAMS["venting_subsides"]["pause"]
            quiet_since = self._last_vent_end
            customer_talking = self._customer_open is not None and self._customer_open[1] > quiet_since
            agent_talking = self._agent_open is not None or any(t.end > quiet_since for t in self._agent_turns[-3:])
            if now >= quiet_since + pause and not customer_talking and not agent_talking:
                self._subsided(fired)

    # --- prompt policy ---------------------------------------------------------------------------

    def _active(self, now: float) -> bool:
        current = self._current
        return current is not None and not current.cleared and now < current.event.at + self.hold_seconds

    def _cooling(self, card: Card, now: float) -> bool:
        last = self._last_shown.get(card.id)
        return last is not None and now - last < card.cooldown

    def _pick(self, trigger: Trigger, now: float) -> Card | None:
        for card in self._by_trigger.get(trigger, ()):
            if not self._cooling(card, now):
                return card
        return None

    def _can_show(self, card: Card, now: float) -> bool:
        if self._customer_venting() and not card.high:
            return False
        if not self._active(now):
            return True
        current = self._current
        assert current is not None
        if not card.high or card.id == current.card.id:
            return False
        return card.priority >= current.card.priority or now - current.event.at >= self.min_display

    def _decide(self, now: float, fired: list[Trigger]) -> list[PromptEvent]:
        self._deferred = [(c, t) for c, t in self._deferred
                          if now - t <= self._max_wait(c) and not self._cooling(c, now)]
        fresh: list[Card] = []
        for trigger in dict.fromkeys(fired):
            card = self._pick(trigger, now)
            if card is not None:
                fresh.append(card)
        pending = [(c, False) for c in fresh] + [(c, True) for c, _ in self._deferred]
        pending.sort(key=lambda item: (-item[0].priority, item[1]))
        events: list[PromptEvent] = []
        for card, was_deferred in pending:
            if not events and self._can_show(card, now):
                events.append(self._show(card, now))
                if was_deferred:
                    self._deferred = [(c, t) for c, t in self._deferred if c.id != card.id]
            elif not was_deferred and (card.trigger in _DEFERRABLE or card.trigger == "agent_explains") \
                    and all(c.id != card.id for c, _ in self._deferred):
                self._deferred.append((card, now))
        return events

    def _max_wait(self, card: Card) -> float:
        return self.explain_wait if card.trigger == "agent_explains" else self.defer_seconds

    def _show(self, card: Card, now: float) -> PromptEvent:
        event = PromptEvent(card.id, now, card.text, card.whisper, card.priority, card.trigger)
        rule = _RULES.get(card.trigger)
        if rule is not None and "window" in card.params:
            rule = _Rule(rule.kind, float(card.params["window"]), rule.test)
        shown = _Shown(event, card, rule)
        self._shown.append(shown)
        self._last_shown[card.id] = now
        if card.trigger != "hostile_call_ended":  # supervisor-facing: not the agent's screen
            self._current = shown
        return event
