"""Outcome inference: the call's disposition when the agent hasn't set one (CONTRACT §5 ``outcome``).

Rules, first match wins:

1. ``referred``: the agent referred or transferred the customer elsewhere ("refer you to", "put you
   through to", "pass your case to", "the warranty department").
2. ``escalated``: the agent escalated, or brought in a supervisor or manager.
3. ``follow_up``: the agent promised a follow-up ("follow up", "call you back", "get back to you").
4. ``resolved``: the call ends on customer thanks or goodbyes in their last three turns (or a
   ``closing`` phase) and the customer's sentiment recovered (ends positive, or rose clearly from the
   start, or ends neutral after thanks), with the customer's last turn not venting.
5. ``unresolved`` when the coach found no fix on offer (its ``no_resolution`` card fired).
6. ``resolved`` too when the agent acted on the problem (the call reached a ``resolution`` phase,
   e.g. "i've booked a priority delivery"), the customer's sentiment recovered to non-negative and
   their last turn is calm, even without thanks: a grudging "fine, i guess" after a fix is still a
   fix (the coach raises its "fine" card; the disposition is about the problem).
7. ``unresolved``: anything else.

Agent phrases preceded by a negation ("i can't transfer you") don't count. The result always has
``source: "inferred"``; an agent's own disposition overrides it elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from dialog.classify import normalize
from dialog.phases import GOODBYE_CUE, THANKS_CUE
from dialog.types import Disposition, Utterance

REFERRAL = re.compile(
    r"\b(?:refer(?:ring)? you|transfer(?:ring)? you|put you through|pass (?:your|the) (?:case|details|claim)"
    r"|hand (?:you|this|your case) over|(?:warranty|claims|specialist|complaints|legal|repairs) (?:department|team)"
    r"|contact them for you|connect you (?:to|with))\b"
)
ESCALATION = re.compile(r"\b(?:escalat\w*|supervisor|manager|team lead(?:er)?)\b")
#: A notice that the requested change went through ("we'll email you once it's done") closes the
#: matter rather than leaving it open, so it is not a follow-up.
_DONE_NOTICE = r"(?:its|it is|thats|that is|everything is|the change is) (?:done|complete|completed|through|live)"
FOLLOW_UP = re.compile(
    r"\b(?:follow(?:ing)? up|call you back|ring you back|get back to you|check back|be in touch"
    rf"|(?:call|email|text) you (?:tomorrow|later|next week|once(?! {_DONE_NOTICE})|when(?! {_DONE_NOTICE})|as soon))\b"
)
_NEGATION = frozenset("cant cannot not wont unable dont no never".split())
#: How many of the customer's last turns are searched for thanks or goodbyes.
CLOSING_TURNS = 3
#: The customer's closing sentiment (mean of the last two turns) that counts as recovered.
RECOVERED = 0.05
#: Or: how far it must have risen from the start of the call.
RECOVERY_GAIN = 0.3


def _agent_match(pattern: re.Pattern[str], texts: Sequence[str]) -> str | None:
    for text in texts:
        for match in pattern.finditer(text):
            before = text[: match.start()].split()[-3:]
            if not _NEGATION.intersection(before):
                return match.group(0)
    return None


def _result(disposition: Disposition, note: str) -> dict[str, Any]:
    return {"disposition": disposition, "source": "inferred", "note": note}


def infer_outcome(utterances: Sequence[Utterance], phases_timeline: Sequence[Mapping[str, Any]],
                  prompts: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``{"disposition", "source": "inferred", "note"}`` from the transcript, phases, prompts and metrics."""
    agent = [normalize(u.text) for u in utterances if u.speaker == "agent"]
    customer = [u for u in utterances if u.speaker == "customer"]
    phrase = _agent_match(REFERRAL, agent)
    if phrase:
        return _result("referred", f"The agent referred the customer onward (\"{phrase}\").")
    phrase = _agent_match(ESCALATION, agent)
    if phrase:
        return _result("escalated", f"The agent escalated the call (\"{phrase}\").")
    phrase = _agent_match(FOLLOW_UP, agent)
    if phrase:
        return _result("follow_up", f"The agent promised a follow-up (\"{phrase}\").")

    last_words = [normalize(u.text) for u in customer[-CLOSING_TURNS:]]
    thanked = any(THANKS_CUE.search(text) for text in last_words)
    closing_words = thanked or any(GOODBYE_CUE.search(text) for text in last_words)
    closing_phase = any(p.get("phase") == "closing" for p in phases_timeline)
    start, end = metrics.get("sentiment_start"), metrics.get("sentiment_end")
    # After thanks, a neutral end counts too: what follows a "thank you" is often a goodbye the recogniser
    # turned into neutral noise ("no thats all bye" heard as "yelling at all").
    recovered = end is not None and (end >= RECOVERED or (start is not None and end - start >= RECOVERY_GAIN)
                                     or (thanked and end >= 0))
    last_calm = bool(customer) and customer[-1].phase != "venting"
    if (closing_words or closing_phase) and recovered and last_calm:
        return _result("resolved", "The customer closed with thanks and their sentiment recovered.")
    if any(p.get("trigger") == "no_resolution" for p in prompts):
        return _result("unresolved", "The agent could not offer a fix and no referral was made.")
    acted = any(p.get("phase") == "resolution" for p in phases_timeline)
    if acted and recovered and end is not None and end >= 0 and last_calm:
        return _result("resolved", "The agent acted on the problem and the customer ended calm, without thanks.")
    if not customer:
        return _result("unresolved", "The customer said nothing that was transcribed.")
    if not recovered:
        return _result("unresolved", "The customer's sentiment did not recover by the end of the call.")
    return _result("unresolved", "The call ended without the customer confirming a fix.")
