"""Question-vs-other rules of the utterance classifier (issue #3): structure found in ASR-style text.

Every phrase here is the test author's own; none comes from an evaluation corpus.
"""

from __future__ import annotations

import pytest

from dialog.classify import UtteranceClassifier, _split_run_together

_ASKED = [("agent", "what seems to be the trouble with it")]


@pytest.fixture(scope="module")
def clf() -> UtteranceClassifier:
    return UtteranceClassifier()


@pytest.mark.parametrize(("text", "speaker"), [
    ("is sarah around this afternoon", "customer"),  # inverted before a name
    ("lovely does your shop deliver on sundays", "customer"),  # "does" + possessive mid-turn
    ("fine by me what is your budget", "customer"),  # wh-question after an object pronoun
    ("right thats booked what time will it arrive", "agent"),  # wh + noun + aux + subject mid-turn
    ("the shape is nice is it in stock", "customer"),
    ("sounds good but will it take long", "customer"),
    ("you dialled what", "agent"),  # echo question
    ("youve paid for it have you", "agent"),  # tag after "it"
    ("and the postcode is", "agent"),  # a slot left open for the caller
    ("could i get a fax number for the council", "customer"),  # information, not a thing handed over
    ("im trying to find the address of the clinic", "customer"),
    ("you dont happen to know if its open on mondays", "customer"),
    ("bath or shower", "agent"),  # a bare choice
    ("not bad thanks and you", "customer"),
    ("right thats two coffees anything else", "agent"),
    ("but what if it rains", "customer"),
    ("whove i got through to", "customer"),
    ("can you swim", "customer"),
    ("can i send it back", "customer"),
    ("you want to pay the whole bill today", "agent"),
    ("the billing team would it be", "customer"),
    ("fine how about your weekend", "customer"),
    # CONTRACT §4: asking for help is a question, with or without question syntax
    ("could you help me with the boxes", "customer"),
    ("i need some help with my bill", "customer"),
    ("please help me", "customer"),
])
def test_questions(clf: UtteranceClassifier, text: str, speaker: str) -> None:
    assert clf.classify(text, speaker, context=_ASKED).phase == "question", text


@pytest.mark.parametrize("text", [
    "could you ask her to ring me tomorrow",  # an errand
    "would you like to come to the match on saturday",  # an invitation
    "i was wondering if you could move my table",  # a polite request for an action
    "shall we take a break",  # a suggestion
    "why not try the other road",
    "when we moved here it rained every day",  # a time clause
    "what she wants is a refund",  # a pseudo-cleft
    "so that was it",
])
def test_requests_suggestions_and_statements(clf: UtteranceClassifier, text: str) -> None:
    # not questions (whether any of them also reads as venting is the venting rules' business)
    assert clf.classify(text, context=_ASKED).phase != "question", text


def test_a_bare_why_not_asks_for_the_reason(clf: UtteranceClassifier) -> None:
    assert clf.classify("why not", context=_ASKED).phase == "question"
    assert clf.classify("ok why not", context=_ASKED).phase == "other"


def test_long_turn_question_counts_only_at_its_edges(clf: UtteranceClassifier) -> None:
    filler = "we moved the desk upstairs last week and the cable was too short so we bought another one"
    buried = f"{filler} and i thought what is it doing there and then {filler}"
    assert clf.classify(buried, context=_ASKED).phase == "other"
    tail_question = f"{filler} {filler} can you tell me when the engineer comes"
    assert clf.classify(tail_question, context=_ASKED).phase == "question"


def test_long_turn_opened_with_thanks_is_not_a_question(clf: UtteranceClassifier) -> None:
    text = ("thanks for that right ive got the account open now and i can see the order from last week "
            "can i take your postcode please")
    assert len(text.split()) >= 20
    assert clf.classify(text, "agent", context=_ASKED).phase == "other"
    # the same request on its own is a question
    assert clf.classify("can i take your postcode please", "agent", context=_ASKED).phase == "question"


def test_run_together_wh_words_are_split() -> None:
    assert _split_run_together("fine thankswhat time is it".split()) == "fine thanks what time is it".split()
    tokens = "i looked everywhere somehow".split()
    assert _split_run_together(tokens) is tokens  # real words ending in a wh-word stay whole
