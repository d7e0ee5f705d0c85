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


# --- second round: reproaches aimed at the listener, and what is not the speaker's grievance ---------


@pytest.mark.parametrize("text", [
    "i cant believe you didnt tell me about the party",
    "fine if thats how you feel go on your own",
    "knock it off i am trying to sleep",
    "dont give me excuses i want the shelf fixed by friday",
    "you cant do that to me",
    "i wont wait any longer for that parcel",
    "oh shut upthats not what i said",
])
def test_reproaches_at_the_listener_are_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=[("agent", "calm down a moment")]).phase == "venting"


@pytest.mark.parametrize("text", [
    "why did you choose to study law",
    "why isnt she coming to the picnic",
    "why dont we take the train instead",
])
def test_an_opening_why_about_a_persons_choices_is_not_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text).phase != "venting"


@pytest.mark.parametrize("text", [
    "why did you cancel my order",
    "why is my bill so high this month",
    "why are you doing this",
])
def test_an_opening_why_about_the_speakers_loss_is_still_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text).phase == "venting"


@pytest.mark.parametrize("text", [
    "you look really annoyed is everything ok",
    "if the jacket doesnt fit can i swap it next week",
    "a late frost would ruin the apple harvest",
    "these glasses can be broken easily so wrap them well",
    "good morning front desk what can i do for you",
    "the old castle is supposed to be beautiful in spring",
    "get out of here you won the lottery",
    "it was an unbelievable concert",
    "oh what the heck ill have dessert too",
    "lets open it up and see what the problem is",
    "why dont you let me carry that bag",
])
def test_others_feelings_hypotheticals_and_surprise_are_not_venting(clf: UtteranceClassifier, text: str) -> None:
    assert clf.classify(text, context=[("agent", "how was your weekend")]).phase != "venting"


def test_a_link_token_left_by_stripped_punctuation_is_ignored(clf: UtteranceClassifier) -> None:
    assert clf.classify("why are you doing this httpstcoab12cd").phase == "venting"


def test_a_third_persons_failure_towards_the_caller_is_still_venting(clf: UtteranceClassifier) -> None:
    ctx = [("agent", "the engineer was booked for nine")]
    assert clf.classify("why wont he call me back", context=ctx).phase == "venting"
    assert clf.classify("why isnt she coming to the picnic", context=ctx).phase != "venting"
