"""Playbook: the built-in cards, validation errors, and contact-centre overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dialog.coach import MAX_WHISPER_WORDS, TRIGGERS, Card
from prompts import PlaybookError, load_playbook

METHOD = Path("/work/shared/METHOD.md")


def test_builtin_playbook_covers_every_trigger() -> None:
    cards = load_playbook()
    assert all(isinstance(c, Card) for c in cards)
    assert len(cards) >= 14
    assert {c.trigger for c in cards} == set(TRIGGERS)
    assert len({c.id for c in cards}) == len(cards)
    for c in cards:
        assert c.text and c.principle and 0 <= c.priority <= 100 and c.cooldown >= 0
        assert 1 <= len(c.whisper.split()) <= MAX_WHISPER_WORDS
    by_trigger = {c.trigger: c for c in cards}
    # the cards that must be able to cut in while the customer vents
    for trigger in ("venting", "agent_interrupts", "agent_explains", "no_empathy", "venting_subsides"):
        assert by_trigger[trigger].high
    assert by_trigger["no_empathy"].param("seconds") > 0


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.sub(r"[^a-z' ]+", " ", text.lower()).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@pytest.mark.skipif(not METHOD.exists(), reason="METHOD.md not available")
def test_card_wording_is_our_own() -> None:
    method = _ngrams(METHOD.read_text(), 5)
    for c in load_playbook():
        copied = (_ngrams(c.text, 5) | _ngrams(c.whisper, 5)) & method
        assert not copied, (c.id, copied)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "override.toml"
    path.write_text(body)
    return path


def test_override_replaces_amends_adds_and_disables(tmp_path: Path) -> None:
    path = write(tmp_path, '''
[[card]]
id = "straight-answer"
priority = 66
text = "Answer the question directly."

[[card]]
id = "fine-is-not-great"
enabled = false

[[card]]
id = "mention-the-app"
trigger = "customer_question"
priority = 40
cooldown = 300
principle = "12. CARE: enrich the experience"
text = "If it helps, point them to the self-service app."
whisper = "Mention the app."
params = { window = 30 }
''')
    builtin = {c.id: c for c in load_playbook()}
    cards = {c.id: c for c in load_playbook(path)}
    assert cards["straight-answer"].priority == 66
    assert cards["straight-answer"].text == "Answer the question directly."
    assert cards["straight-answer"].whisper == builtin["straight-answer"].whisper  # kept
    assert "fine-is-not-great" not in cards
    assert cards["mention-the-app"].params == {"window": 30.0}
    assert len(cards) == len(builtin)  # one removed, one added


@pytest.mark.parametrize(("body", "fragment"), [
    ('[[card]]\nid = "x-new"\ntrigger = "venting"\n', "card 'x-new': field 'priority': missing"),
    ('[[card]]\nid = "straight-answer"\ntrigger = "shouting"\n', "card 'straight-answer': field 'trigger': unknown"),
    ('[[card]]\nid = "straight-answer"\npriority = "high"\n', "field 'priority': must be an integer 0-100"),
    ('[[card]]\nid = "straight-answer"\npriority = 101\n', "field 'priority': must be an integer 0-100"),
    ('[[card]]\nid = "straight-answer"\npriority = true\n', "field 'priority'"),
    ('[[card]]\nid = "straight-answer"\ncooldown = -1\n', "field 'cooldown': must be a number of seconds >= 0"),
    ('[[card]]\nid = "straight-answer"\nwhisper = "one two three four five six seven eight nine ten eleven '
     'twelve thirteen"\n', "field 'whisper': must be at most 12 words"),
    ('[[card]]\nid = "straight-answer"\ntext = ""\n', "field 'text': must be a non-empty string"),
    ('[[card]]\nid = "straight-answer"\ncolour = "red"\n', "field 'colour': unknown field"),
    ('[[card]]\nid = "straight-answer"\nparams = { seconds = 5 }\n', "field 'params.seconds': unknown parameter"),
    ('[[card]]\nid = "empathy-first"\nparams = { seconds = "soon" }\n', "field 'params.seconds': must be a number"),
    ('[[card]]\nid = "straight-answer"\nenabled = "no"\n', "field 'enabled'"),
    ('[[card]]\nid = "a"\nenabled = false\n[[card]]\nid = "a"\nenabled = false\n', "card 'a': field 'id': duplicate"),
    ('[[card]]\ntrigger = "venting"\n', "card #1: field 'id': missing"),
    ('[[card]]\nid = "Not An Id"\n', "card #1: field 'id': must be lowercase"),
    ('cards = []\n', "unknown top-level key 'cards'"),
    ('[[card]\nid = \n', "not valid TOML"),
])
def test_invalid_override_gives_a_one_line_error(tmp_path: Path, body: str, fragment: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert fragment in message


def test_missing_override_file(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match=r"override\.toml: cannot read playbook"):
        load_playbook(tmp_path / "override.toml")


def test_disabling_every_card_is_allowed(tmp_path: Path) -> None:
    body = "".join(f'[[card]]\nid = "{c.id}"\nenabled = false\n' for c in load_playbook())
    assert load_playbook(write(tmp_path, body)) == ()


def test_playbook_error_is_a_value_error() -> None:
    assert issubclass(PlaybookError, ValueError)
