"""Tests for dialog.redact: written and spoken (ASR-style) PII is masked, ordinary speech is kept."""

from __future__ import annotations

import pytest

from dialog.redact import redact

VISA_SPOKEN = "four" + " one" * 15  # 4111 1111 1111 1111 passes Luhn


@pytest.mark.parametrize(("text", "expected"), [
    ("card 4111-1111-1111-1111 thanks", "card [card] thanks"),
    ("card 4111 1111 1111 1111", "card [card]"),
    ("amex 378282246310005 ok", "amex [card] ok"),
    (f"my card number is {VISA_SPOKEN} and the expiry", "my card number is [card] and the expiry"),
    # One digit misheard: fails Luhn, still a long number.
    ("card 4111 1111 1111 1112", "card [number]"),
    ("four one one one one one one one one one one one one one one two", "[number]"),
])
def test_cards(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("ssn 123-45-6789 on file", "ssn [ssn] on file"),
    ("it's 123 45 6789", "it's [ssn]"),
    ("my social security number is one two three four five six seven eight nine",
     "my social security number is [ssn]"),
    ("the last nine of my social are one two three four five six seven eight nine",
     "the last nine of my social are [ssn]"),
    ("reference one two three four five six seven eight nine", "reference [number]"),
])
def test_ssn(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("call me at five five five one two three four", "call me at [phone]"),
    ("call +1 (555) 123-4567 now", "call [phone] now"),
    ("my number is (555) 123-4567", "my number is [phone]"),
    ("my number is 555.123.4567.", "my number is [phone]."),
    ("it's five five five oh one two three four five six", "it's [phone]"),
    ("one eight hundred five five five one two one two", "[phone]"),
    ("double five triple seven one two", "[phone]"),
    ("five five five twelve thirty four", "[phone]"),
    ("international +44 20 7946 0958", "international [phone]"),
])
def test_phones(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("email john.smith@example.com please", "email [email] please"),
    ("JOHN_S+bills@mail.example.co.uk", "[email]"),
    ("my email is john at example dot com", "my email is [email]"),
    ("it's john dot smith at example dot com thanks", "it's [email] thanks"),
    ("j o h n at gmail dot co dot uk ok", "[email] ok"),
    ("john at example dot com or jane at example dot org", "[email] or [email]"),
    ("john@example dot com", "[email]"),
])
def test_emails(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "i called two times and three weeks ago nothing happened",
    "i waited for two hours to get through",
    "the order was for two items to ship on the fourth",
    "it cost sixty four dollars twice",
    "back in twenty twenty four",
    "we paid $1,250,000 for the house",
    "i was at the office dot com",
    "call me back at five",
    "order 12345 arrived at 10:30",
    "one or two or three or four or five or six or seven",
    "oh no, oh well",
    "",
])
def test_ordinary_speech_is_untouched(text: str) -> None:
    assert redact(text) == text


def test_homophones_and_oh_only_count_inside_a_run() -> None:
    # "to" after the number and "oh" before it are words of the sentence, not digits.
    assert redact("oh my number is five five five oh one two three to call") == \
        "oh my number is [phone] to call"
    # Inside a run, ASR's homophones ("won", "to", "for") stand for digits.
    assert redact("five five five won two three four") == "[phone]"
    assert redact("five five five to one to three for one two") == "[phone]"
    # At the edges they stay words: the leading "for" is not part of the card number.
    assert redact(f"for {VISA_SPOKEN}") == "for [card]"


def test_mixed_call_transcript() -> None:
    text = ("hi it's jane my card is 4111 1111 1111 1111 and my email is jane dot doe at example dot com "
            "you can call me on five five five one two three four i called two times already")
    assert redact(text) == ("hi it's jane my card is [card] and my email is [email] "
                            "you can call me on [phone] i called two times already")


def test_accounts_and_long_numbers() -> None:
    assert redact("account one two three four five six seven eight") == "account [number]"
    assert redact("tracking 1Z 12345678901") == "tracking 1Z [phone]"  # 11 digits starting with 1
    assert redact("order 2024-01-15-778") == "order [number]"


def test_is_idempotent() -> None:
    once = redact(f"card {VISA_SPOKEN} mail bob at example dot com phone 555 123 4567")
    assert once == "card [card] mail [email] phone [phone]"
    assert redact(once) == once


def test_long_adversarial_input_is_linear() -> None:
    # Many near-miss e-mail and number fragments; a backtracking blow-up would hang here.
    text = ("a dot b at c dot " * 2000) + ("one two three x " * 2000)
    out = redact(text)
    assert "[" not in out and out == text
