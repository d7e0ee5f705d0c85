"""Venting-side behaviour of dialog.classify: calm service-failure reports, own mishaps, agents' wording.

Own example sentences, written for these tests (no evaluation text).
"""

from __future__ import annotations

import pytest

from dialog.classify import UtteranceClassifier

_GREETING = [("agent", "thanks for calling northwind how can i help")]


@pytest.fixture(scope="module")
def clf() -> UtteranceClassifier:
    return UtteranceClassifier()


@pytest.mark.parametrize("text", [
    "i emailed support on friday and have heard nothing since",
    "the kettle handle is coming apart after a month",
    "your app logged me out again and errored when i tried to pay",
    "its been three weeks and the engineer still has not come",
    "the router was working fine until yesterday",
    "my account got suspended for no reason",
    "the waiting room was filthy and the toilets were dirty",
    "the store will not allow me to return it",
    "we have had massive issues with the meter since it was fitted",
])
def test_calm_service_failure_reports_are_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, "customer", context=_GREETING).phase == "venting"


@pytest.mark.parametrize("text", [
    "i think i broke my wrist playing football",
    "sorry i have spilled some juice on your sofa",
    "we got lost on the way back from the lake",
    "i feel a bit stupid about it now",
    "ill call my sister later",
    "how many times did you visit paris",
    "she might not get the letter before friday",
    "dont open the window its cold",
    "my cousin works as a lawyer in town",
])
def test_own_mishaps_and_other_senses_are_not_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=[("agent", "how was your weekend")]).phase != "venting"


@pytest.mark.parametrize("text", [
    "stop rushing me i said i would do it",
    "you scared me half to death coming in like that",
    "the least you could do is say sorry",
])
def test_reproaches_are_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=[("agent", "what is it now")]).phase == "venting"


def test_a_polite_sorry_does_not_hide_a_complaint(clf: UtteranceClassifier) -> None:
    assert clf.classify("i apologise but the app keeps crashing", context=_GREETING).phase == "venting"
    assert clf.classify("im so sorry i dropped your phone", context=_GREETING).scores["venting"] < 1.0


def test_an_agents_bad_news_is_not_the_agents_grievance(clf: UtteranceClassifier) -> None:
    text = "unfortunately the delivery was delayed and the parcel is damaged"
    assert clf.classify(text, "agent", context=_GREETING).phase != "venting"
    assert clf.classify(text, "customer", context=_GREETING).phase == "venting"
