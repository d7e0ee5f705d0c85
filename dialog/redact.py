"""PII redaction of stored text (CONTRACT §2 `CARECOACH_REDACT_PII`).

Owns `redact(text) -> text`, which masks, in this order:

* e-mail addresses, written (`john@example.com`) or spoken the way ASR writes them
  (`john dot smith at example dot com`, `j o h n at mail dot co dot uk`) -> `[email]`;
* runs of 7 or more digits, written (`4111-1111 1111 1111`, `(555) 123-4567`) or spoken
  (`four one one one ...`, `oh`, `zero`, `double five`, `eight hundred`, `twenty one`), classified as
  `[card]` (13-19 digits passing Luhn), `[ssn]` (written 3-2-4, or 9 digits right after words like
  "social security"), `[phone]` (7 or 10 digits, 11 starting with 1, or `+` and 8-15 digits), or
  else `[number]`.

Shorter numbers are ordinary speech ("i called two times", "three weeks ago", "$64") and are kept.
ASR often writes digits as homophones ("for", "to", "won", "ate"); those count as digits only inside
a run, never at its edges, so "... four five six to call" does not grow the number.

Pure and fast: every pattern is compiled once, and digit runs are found in one linear token scan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_DIGITS = 7

# --- e-mail ---------------------------------------------------------------------------------------

_TLDS = ("com|net|org|edu|gov|mil|io|co|uk|us|ca|au|de|fr|es|it|nl|ie|in|info|biz|me|ai|app|dev|"
         "email|online|xyz|tv|ly")
_WRITTEN_EMAIL = re.compile(r"\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b", re.I)
_WORD = r"[a-z0-9]+"
_SPELLED = r"[a-z0-9](?:\s+[a-z0-9](?![a-z0-9']))+"  # letters spelled out one by one: "j o h n"
_PART = rf"(?:{_SPELLED}|{_WORD})"
_LOCAL_SEP = r"(?:\s*[._-]\s*|\s+(?:dot|underscore|dash|hyphen)\s+)"
_DOT = r"(?:\s*\.\s*|\s+dot\s+)"
_SPOKEN_EMAIL = re.compile(
    rf"\b{_PART}(?:{_LOCAL_SEP}{_PART})*(?:\s*@\s*|\s+at\s+){_WORD}(?:{_DOT}{_WORD}){{0,3}}{_DOT}(?:{_TLDS})\b",
    re.I,
)

# --- digit runs -----------------------------------------------------------------------------------

_UNITS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine".split())}
_TEENS = {w: str(10 + i) for i, w in enumerate(
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: str(i) for w, i in zip("twenty thirty forty fifty sixty seventy eighty ninety".split(),
                                   range(2, 10), strict=True)}
# Digits only in the middle of a run: they are also common words.
_WEAK = {"oh": "0", "o": "0", "for": "4", "fore": "4", "to": "2", "too": "2", "won": "1", "ate": "8"}
_REPEAT = {"double": 2, "triple": 3}
_SEPARATORS = frozenset(",-./()")
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+|[^\sa-z\d]", re.I)
_SSN_CONTEXT = re.compile(r"\b(?:social|ssn|s s n|security)\b[\w\s]{0,40}$", re.I)


@dataclass
class _Item:
    start: int
    end: int
    digits: str
    strong: bool
    written: bool


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _classify(items: list[_Item], text: str, start: int) -> str | None:
    digits = "".join(i.digits for i in items)
    n = len(digits)
    if n < MIN_DIGITS:
        return None
    before = text[:start].rstrip()
    if 13 <= n <= 19 and _luhn(digits):
        return "[card]"
    if n == 9:
        written = [len(i.digits) for i in items if i.written]
        if (written == [3, 2, 4] and len(items) == 3) or _SSN_CONTEXT.search(before):
            return "[ssn]"
    if n in (7, 10) or (n == 11 and digits[0] == "1") or (before.endswith("+") and 8 <= n <= 15):
        return "[phone]"
    return "[number]"


def _runs(text: str) -> list[list[_Item]]:
    """Maximal runs of digit-bearing tokens separated only by whitespace and light punctuation."""
    tokens = [(m.start(), m.end(), m.group().lower()) for m in _TOKEN.finditer(text)]
    runs: list[list[_Item]] = []
    run: list[_Item] = []

    def close() -> None:
        # Homophones and "oh" at the edges are the surrounding sentence, not the number.
        while run and not run[-1].strong:
            run.pop()
        while run and not run[0].strong:
            run.pop(0)
        if run:
            runs.append(run.copy())
        run.clear()

    i = 0
    while i < len(tokens):
        s, e, tok = tokens[i]
        nxt = tokens[i + 1][2] if i + 1 < len(tokens) else ""
        if tok.isascii() and tok.isdigit():
            run.append(_Item(s, e, tok, True, True))
        elif tok in _UNITS:
            run.append(_Item(s, e, _UNITS[tok], True, False))
        elif tok in _TEENS:
            run.append(_Item(s, e, _TEENS[tok], True, False))
        elif tok in _TENS:
            if nxt in _UNITS and nxt != "zero":  # "twenty one" is 21, "twenty" alone is 20
                run.append(_Item(s, tokens[i + 1][1], _TENS[tok] + _UNITS[nxt], True, False))
                i += 1
            else:
                run.append(_Item(s, e, _TENS[tok] + "0", True, False))
        elif tok in _REPEAT and (nxt in _UNITS or nxt in ("oh", "o") or (len(nxt) == 1 and nxt.isdigit())):
            digit = _UNITS.get(nxt) or _WEAK.get(nxt) or nxt
            run.append(_Item(s, tokens[i + 1][1], digit * _REPEAT[tok], True, False))
            i += 1
        elif tok == "hundred" and run and run[-1].strong and len(run[-1].digits) == 1 and not run[-1].written:
            run.append(_Item(s, e, "00", True, False))  # "eight hundred" in "one eight hundred ..."
        elif tok in _WEAK and run:
            run.append(_Item(s, e, _WEAK[tok], False, False))
        elif tok in _SEPARATORS and run:
            pass  # keeps the run going: "555-1234", "(555) 123", "4111, 1111"
        else:
            close()
        i += 1
    close()
    return runs


def _mask_numbers(text: str) -> str:
    out: list[str] = []
    pos = 0
    for run in _runs(text):
        start, end = run[0].start, run[-1].end
        if text[:start].rstrip().endswith("$"):
            continue  # a money amount, not an identifier
        mask = _classify(run, text, start)
        if mask is None:
            continue
        # Take a leading "+" or "(" into the mask so "+1 (555) ..." leaves no stray punctuation.
        while start > pos and text[start - 1] in "+( ":
            start -= 1
        while start < run[0].start and text[start] == " ":
            start += 1
        if end < len(text) and text[end] == ")":
            end += 1
        out += [text[pos:start], mask]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def redact(text: str) -> str:
    """`text` with e-mail addresses, card numbers, SSNs, phone numbers and long numbers masked."""
    if not text:
        return text
    text = _WRITTEN_EMAIL.sub("[email]", text)
    text = _SPOKEN_EMAIL.sub("[email]", text)
    return _mask_numbers(text)
