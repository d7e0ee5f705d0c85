"""Outcome inference: rules on invented calls, and the scripted calls' known outcomes."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest

from dialog.classify import UtteranceClassifier
from dialog.coach import Coach
from dialog.outcome import infer_outcome
from dialog.phases import PhaseTracker
from dialog.types import DISPOSITIONS, Phase, Utterance
from prompts import load_playbook

CALLS = Path(__file__).parent / "calls"


def call(*turns: tuple[str, str, Phase]) -> list[Utterance]:
    return [Utterance(i, speaker, i * 3.0, i * 3.0 + 2.5, text, phase, 0.9)  # type: ignore[arg-type]
            for i, (speaker, text, phase) in enumerate(turns)]


def metrics(start: float | None = -0.5, end: float | None = 0.4) -> dict[str, Any]:
    return {"sentiment_start": start, "sentiment_end": end}


def test_referral_wins() -> None:
    out = infer_outcome(call(("customer", "the washer flooded my kitchen", "venting"),
                             ("agent", "i will put you through to our claims team now", "other"),
                             ("customer", "thanks", "other")), [], [], metrics())
    assert out["disposition"] == "referred" and out["source"] == "inferred"
    assert "put you through" in out["note"]


def test_negated_referral_does_not_count() -> None:
    out = infer_outcome(call(("customer", "can i speak to the claims team", "question"),
                             ("agent", "sorry i cant transfer you right now", "other")), [], [], metrics(-0.2, -0.4))
    assert out["disposition"] == "unresolved"


def test_escalation() -> None:
    out = infer_outcome(call(("customer", "this is the fourth time", "venting"),
                             ("agent", "i am going to escalate this to my supervisor today", "other")),
                        [], [], metrics())
    assert out["disposition"] == "escalated"


@pytest.mark.parametrize("line", ["ill follow up on friday", "someone will call you back tomorrow",
                                  "ill get back to you once the lab replies"])
def test_follow_up(line: str) -> None:
    out = infer_outcome(call(("customer", "is my repair ready", "question"), ("agent", line, "other")),
                        [], [], metrics())
    assert out["disposition"] == "follow_up"


def test_a_notice_that_the_change_is_done_is_not_a_follow_up() -> None:
    out = infer_outcome(call(("customer", "when would the change take effect", "question"),
                             ("agent", "within five working days and well email you once its done", "other"),
                             ("customer", "okay thanks thats really helpful", "other")), [], [], metrics(0.2, 0.5))
    assert out["disposition"] == "resolved"


def test_resolved_needs_thanks_and_recovered_sentiment() -> None:
    turns = call(("customer", "my payment bounced", "other"), ("agent", "ive retried it and it went through", "other"),
                 ("customer", "perfect thank you", "other"))
    assert infer_outcome(turns, [], [], metrics(-0.3, 0.5))["disposition"] == "resolved"
    assert infer_outcome(turns, [], [], metrics(-0.3, -0.4))["disposition"] == "unresolved"
    # a closing phase counts as the closing signal too
    quiet = call(("customer", "my payment bounced", "other"), ("agent", "ive retried it", "other"),
                 ("customer", "oh good", "other"))
    closing = [{"phase": "closing", "start": 6.0, "end": 8.5}]
    assert infer_outcome(quiet, closing, [], metrics(-0.3, 0.3))["disposition"] == "resolved"
    assert infer_outcome(quiet, [], [], metrics(-0.3, 0.3))["disposition"] == "unresolved"


def test_thanks_then_neutral_noise_is_resolved() -> None:
    # The demo call: "thank you", then a goodbye the recogniser turned into neutral words.
    turns = call(("customer", "my bill doubled", "venting"), ("agent", "ive split it over three bills", "other"),
                 ("customer", "thank you", "other"), ("customer", "yelling at all", "other"),
                 ("customer", "i", "other"))
    assert infer_outcome(turns, [], [], metrics(0.1, 0.0))["disposition"] == "resolved"
    # Without the thanks, a neutral end is not a recovery; after thanks, a negative end still isn't.
    no_thanks = [*turns[:2], *turns[3:]]
    assert infer_outcome(no_thanks, [], [], metrics(0.1, 0.0))["disposition"] == "unresolved"
    assert infer_outcome(turns, [], [], metrics(0.1, -0.2))["disposition"] == "unresolved"


def test_a_fix_the_customer_accepts_without_thanks_is_resolved() -> None:
    turns = call(("customer", "my parcel never came", "venting"),
                 ("agent", "ive booked a priority delivery for tomorrow", "other"),
                 ("customer", "fine i guess", "other"))
    acted = [{"phase": "venting", "start": 0.0, "end": 3.0}, {"phase": "resolution", "start": 3.0, "end": 8.5}]
    out = infer_outcome(turns, acted, [], metrics(-0.5, 0.1))
    assert out["disposition"] == "resolved" and "acted" in out["note"]
    # no fix (no resolution phase), or the customer still negative or venting at the end: unresolved
    assert infer_outcome(turns, acted[:1], [], metrics(-0.5, 0.1))["disposition"] == "unresolved"
    assert infer_outcome(turns, acted, [], metrics(-0.5, -0.3))["disposition"] == "unresolved"
    angry = [*turns[:2], Utterance(2, "customer", 6.0, 8.5, "thats useless", "venting", 0.9)]
    assert infer_outcome(angry, acted, [], metrics(-0.5, 0.1))["disposition"] == "unresolved"
    # Risen but still negative is not calm, and a fix the coach found impossible is no fix.
    assert infer_outcome(turns, acted, [], metrics(-0.8, -0.45))["disposition"] == "unresolved"
    impossible = [{"id": "refer-onward", "trigger": "no_resolution"}]
    assert infer_outcome(turns, acted, impossible, metrics(-0.5, 0.1))["disposition"] == "unresolved"


def test_unresolved_notes_say_why() -> None:
    turns = call(("customer", "so you wont refund me", "venting"), ("agent", "i cant do that", "other"))
    out = infer_outcome(turns, [], [{"id": "refer-onward", "trigger": "no_resolution"}], metrics(-0.6, -0.7))
    assert out == {"disposition": "unresolved", "source": "inferred",
                   "note": "The agent could not offer a fix and no referral was made."}
    assert infer_outcome([], [], [], metrics(None, None))["disposition"] == "unresolved"


def test_every_disposition_is_a_contract_value() -> None:
    for turns in ([], call(("agent", "let me refer you to the warranty team", "other"))):
        assert infer_outcome(turns, [], [], metrics())["disposition"] in DISPOSITIONS


_PUNCT = str.maketrans({c: " " for c in string.punctuation if c != "'"} | {"'": ""})


@pytest.fixture(scope="module")
def classifier() -> UtteranceClassifier:
    return UtteranceClassifier()


@pytest.mark.parametrize("name", ["angry_billing", "calm_questions", "refund_refer", "demo", "late_delivery_interrupt",
                                  "plan_questions", "cancel_threat", "line_outage", "claim_explain", "locked_out_fine",
                                  "flight_refer"])
def test_scripted_calls_get_their_known_outcome(name: str, classifier: UtteranceClassifier) -> None:
    truth = json.loads((CALLS / f"{name}.truth.json").read_text())
    tracker, coach = PhaseTracker(), Coach(load_playbook())
    utterances: list[Utterance] = []
    context: list[tuple[str, str]] = []
    for turn in sorted(truth["turns"], key=lambda t: t["end"]):
        text = " ".join(turn["text"].lower().translate(_PUNCT).split())
        result = classifier.classify(text, turn["speaker"], context=context[-8:])
        context.append((turn["speaker"], text))
        u = Utterance(len(utterances), turn["speaker"], turn["start"], turn["end"], text, result.phase, 0.9)
        utterances.append(u)
        tracker.observe(u, result.sentiment)
        coach.on_utterance(u, result.phase, result.sentiment, overlap=0.0, phase_state=tracker.current)
        coach.tick(turn["end"], phase_state=tracker.current)
    coach.end(truth["duration"])
    out = infer_outcome(utterances, tracker.timeline(), coach.prompts_record(), coach.metrics())
    assert out["disposition"] == truth["outcome"], out
    assert out["source"] == "inferred" and out["note"].endswith(".")
