"""The coaching playbook as data: load, validate and override the cards the coach shows.

The built-in cards live in ``prompts/cards.toml`` (read through :mod:`importlib.resources`, so it
works from a wheel). A contact centre can point ``CARECOACH_PLAYBOOK`` at an override file with the
same layout:

- a ``[[card]]`` whose ``id`` matches a built-in card replaces it; fields it leaves out keep the
  built-in values, so ``id`` plus ``priority`` is enough to re-rank a card;
- a ``[[card]]`` with a new ``id`` adds a card (then every field is required);
- ``enabled = false`` switches a card off (only ``id`` is needed).

Every problem raises :class:`PlaybookError` with a one-line message naming the file, the card and
the field, e.g. ``playbook.toml: card 'empathy-first': field 'priority': must be an integer 0-100``.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from dialog.coach import CARD_PARAMS, MAX_WHISPER_WORDS, PRIORITY_RANGE, TRIGGERS, Card

BUILTIN_NAME = "prompts/cards.toml"
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_FIELDS = ("id", "trigger", "priority", "cooldown", "principle", "text", "whisper")
_OPTIONAL = ("params", "enabled")
_MAX_TEXT = 200


class PlaybookError(ValueError):
    """An invalid playbook file; the message is one line naming file, card and field."""


def load_playbook(override: Path | None = None) -> tuple[Card, ...]:
    """The built-in cards, with ``override`` (a TOML file of the same layout) applied on top."""
    builtin_text = resources.files("prompts").joinpath("cards.toml").read_text(encoding="utf-8")
    entries = _parse(builtin_text, BUILTIN_NAME)
    cards: dict[str, dict[str, Any]] = {}
    for entry in entries:
        _validate(entry, BUILTIN_NAME, partial=False)
        if entry.get("enabled", True):
            cards[entry["id"]] = entry
    if override is not None:
        name = str(override)
        try:
            text = Path(override).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PlaybookError(f"{name}: cannot read playbook: {exc.__class__.__name__}: {exc}") from None
        builtin = {e["id"]: e for e in entries}
        for entry in _parse(text, name):
            base = builtin.get(entry.get("id")) if isinstance(entry.get("id"), str) else None
            disabled = entry.get("enabled") is False
            _validate(entry, name, partial=base is not None or disabled)
            if disabled:
                cards.pop(entry["id"], None)
                continue
            merged = {**(base or {}), **entry}
            merged.pop("enabled", None)
            _validate(merged, name, partial=False)
            cards[entry["id"]] = merged
    return tuple(_card(entry) for entry in cards.values())


def _parse(text: str, name: str) -> list[dict[str, Any]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlaybookError(f"{name}: not valid TOML: {' '.join(str(exc).split())}") from None
    unknown = sorted(set(data) - {"card"})
    if unknown:
        raise PlaybookError(f"{name}: unknown top-level key {unknown[0]!r} (expected [[card]] tables)")
    entries = data.get("card", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise PlaybookError(f"{name}: 'card' must be an array of tables ([[card]])")
    seen: set[str] = set()
    for index, entry in enumerate(entries, 1):
        card_id = entry.get("id")
        if not isinstance(card_id, str) or not _ID.match(card_id):
            where = f"card #{index}"
            if card_id is None:
                raise PlaybookError(f"{name}: {where}: field 'id': missing")
            raise PlaybookError(f"{name}: {where}: field 'id': must be lowercase words joined by hyphens, "
                                f"got {card_id!r}")
        if card_id in seen:
            raise PlaybookError(f"{name}: card {card_id!r}: field 'id': duplicate id")
        seen.add(card_id)
    return entries


def _validate(entry: dict[str, Any], name: str, *, partial: bool) -> None:
    card_id = entry["id"]

    def fail(field: str, problem: str) -> PlaybookError:
        return PlaybookError(f"{name}: card {card_id!r}: field {field!r}: {problem}")

    for key in entry:
        if key not in _FIELDS and key not in _OPTIONAL:
            raise fail(key, f"unknown field (expected one of {', '.join(_FIELDS + _OPTIONAL)})")
    if not partial:
        for key in _FIELDS:
            if key not in entry:
                raise fail(key, "missing")
    if "enabled" in entry and not isinstance(entry["enabled"], bool):
        raise fail("enabled", f"must be true or false, got {entry['enabled']!r}")
    if "trigger" in entry and entry["trigger"] not in TRIGGERS:
        raise fail("trigger", f"unknown trigger {entry['trigger']!r} (known: {', '.join(TRIGGERS)})")
    if "priority" in entry:
        value = entry["priority"]
        low, high = PRIORITY_RANGE
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise fail("priority", f"must be an integer {low}-{high}, got {value!r}")
    if "cooldown" in entry:
        value = entry["cooldown"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise fail("cooldown", f"must be a number of seconds >= 0, got {value!r}")
    for key in ("text", "whisper", "principle"):
        if key in entry:
            value = entry[key]
            if not isinstance(value, str) or not value.strip():
                raise fail(key, f"must be a non-empty string, got {value!r}")
            if "\n" in value or len(value) > _MAX_TEXT:
                raise fail(key, f"must be one line of at most {_MAX_TEXT} characters")
    if "whisper" in entry and len(entry["whisper"].split()) > MAX_WHISPER_WORDS:
        raise fail("whisper", f"must be at most {MAX_WHISPER_WORDS} words to whisper, "
                              f"got {len(entry['whisper'].split())}")
    if "params" in entry:
        params = entry["params"]
        if not isinstance(params, dict):
            raise fail("params", f"must be a table of numbers, got {params!r}")
        trigger = entry.get("trigger")
        allowed = CARD_PARAMS[trigger] if trigger in TRIGGERS else None
        for key, value in params.items():
            if allowed is not None and key not in allowed:
                raise fail(f"params.{key}", f"unknown parameter for trigger {trigger!r} "
                                            f"(allowed: {', '.join(sorted(allowed))})")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise fail(f"params.{key}", f"must be a number >= 0, got {value!r}")


def _card(entry: dict[str, Any]) -> Card:
    return Card(
        id=entry["id"],
        trigger=entry["trigger"],
        priority=entry["priority"],
        cooldown=float(entry["cooldown"]),
        text=entry["text"].strip(),
        whisper=entry["whisper"].strip(),
        principle=entry["principle"].strip(),
        params={k: float(v) for k, v in entry.get("params", {}).items()},
    )
