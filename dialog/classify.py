"""Utterance phase classifier: every transcribed utterance becomes ``venting``, ``question`` or ``other``.

This module owns:

- text normalisation for ASR-style input (lowercase, punctuation and apostrophes removed),
- :class:`UtteranceClassifier`, a rule-based classifier built from the hand-written lexicons in
  :mod:`dialog.lexicon` plus the VADER sentiment lexicon (MIT, bundled in ``vaderSentiment``),
  with a small word n-gram phrase model (:mod:`dialog.phrase_model`) that nudges the question score
  and may tip a borderline venting score,
- :func:`classify_jsonl`, the JSON Lines filter behind ``carecoach classify`` (CONTRACT §4).

The rules describe general English question structure and complaint language, so casing and
punctuation are never needed. In a long turn (several sentences run together) question structure
counts only near its start (the first words after any fillers, greetings and thanks) or its end, or
where the speaker names what they want to find out: a question buried mid-turn is mostly reported speech
or thinking aloud. A caller asking the agent for information, for help or for a service action ("can
you cancel the order") is asking a question (CONTRACT §4), even where everyday chat would call it a
directive.
Context matters for venting: the turn that opens a contact says why the customer got in touch, so a
calm fault report or several weak grievance cues there make a complaint, and so does an opening
"why is/does/did ..." (a company asked to account for itself), though not a why about a person's own
choices or a suggestion ("why did you pick that plan", "why dont we start over"). Problem words that are not the
speaker's own grievance (someone else's feelings, a mishap that is only possible, a delay announced
ahead) are blanked out before the venting lexicons are matched, and fault words inside the speaker's own
mishap ("i have broken the lamp") do not count. A "thanks" that signs off an opening complaint whose problem
is still there ("still not fixed thanks") is politeness and does not calm it. A calm fault report later in a
call still counts in full, even in answer to the agent's question: to a contact center a customer's "you
charged me twice" is a grievance (CONTRACT §4), even if everyday chat would call it an answer (discounting it
gained 0.007-0.009 DailyDialog macro-F1 and lost venting turns on our own calls).

The only trained part, the phrase model, was fitted on the self-authored corpus in
:mod:`dialog.phrase_corpus` (see ``dialog/train_phrases.py``). No evaluation text was used as training
data or copied into rules; the weights and thresholds below were set by hand against the aggregate
scores of ``benchmarks/phases.py``.
"""

from __future__ import annotations

import json
import re
import string
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TextIO

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from dialog import lexicon as lx
from dialog.phrase_model import PhraseModel

Phase = Literal["venting", "question", "other"]
PHASES: tuple[Phase, ...] = ("venting", "question", "other")

# Apostrophes are removed like any other punctuation so that "don't" and ASR's "dont" agree.
_EXTRA_PUNCT = "\u2018\u2019\u201c\u201d\u2026\u2013\u2014"
_PUNCT_TABLE = str.maketrans({c: " " for c in string.punctuation + _EXTRA_PUNCT})
_APOSTROPHES = str.maketrans("", "", "'\u2019\u2018`")
_URL = re.compile(r"(?:https?://|www\.|pic\.twitter\.com/)\S+")
_SPACES = re.compile(r"\s+")
_WHAT_IF = re.compile(r"\bwhat if\b")
# Words that cannot end the clause before a tag question: "so that was it", "the trouble is that", and a
# nominative pronoun whose auxiliary is the main verb ("we did it"; "so it was you was it" is a tag).
_NO_TAG_BEFORE = lx.WH_WORDS | frozenset(("that", "this", "there", "thats", "here", "i", "we", "they", "he", "she"))

VENT_THRESHOLD = 1.0
QUESTION_THRESHOLD = 0.5
_W_ANGER = 1.0
_W_GRIEVANCE = 1.0
_W_MILD = 0.5
_W_WEAK = 0.2
_MAX_WEAK = 0.4
# How a clearly negative VADER compound adds to the venting score (compound <= -0.3 only).
_W_SENTIMENT = 0.9
_NEG_SENTIMENT = -0.3
_NEG_BONUS = 0.0
# How much an agent's (or the other chit-chat party's) grievance words and negative sentiment count.
_AGENT_GRIEVANCE = 0.25
_AGENT_SENTIMENT = 0.5
# A customer's opening turn of at least _MIN_OPENING_WORDS words with no grievance phrase: each weak
# cue beyond the first adds _W_OPENING_WEAK (three cues reach the threshold); an opening "why" with
# any cue adds _W_OPENING_WHY.
_W_OPENING_WEAK = 0.5
_MIN_OPENING_WORDS = 5
_OPENING_FREE_CUES = 1
_W_OPENING_WHY = 0.5
_W_OPENING_WHY_ALONE = 1.0
# Illness, pain or one's own mishap without anger: subtracted from the venting score.
_MISFORTUNE_DAMPING = 0.5
# A clearly formed question mid-conversation raises the venting threshold by this much when no anger is heard.
_CLEAR_QUESTION = 0.8
_QUESTION_OVER_REPORT = 0.5
# How the phrase model's question probability shifts the rule question score (centred on 0.5).
_W_MODEL_QUESTION = 0.5
# In a turn of _LONG_TURN words or more, question structure counts only within the first
# _LONG_TURN_HEAD words after its opening fillers, greetings and thanks, or its last _LONG_TURN_TAIL words
# (see _head_zone and _in_zone).
_LONG_TURN = 20
_LONG_TURN_HEAD = 10
_LONG_TURN_TAIL = 8
# How much a confident phrase-model venting probability (above 0.5 only) adds to the venting score.
_W_MODEL_VENT = 0.5
# Cap on how much prosody may add: enough to tip a borderline turn, never to decide alone.
_MAX_CUE_BONUS = 0.35


def normalize(text: str) -> str:
    """Lowercase, drop URLs, apostrophes and punctuation, collapse spaces (the judge's view of ASR text)."""
    text = _URL.sub(" ", text.lower())
    text = text.translate(_APOSTROPHES).translate(_PUNCT_TABLE)
    return _SPACES.sub(" ", text).strip()


def _alternation(fragments: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(f"(?:{f})" for f in fragments) + r")\b")


@dataclass(frozen=True, slots=True)
class AudioCues:
    """Optional prosody for one utterance, relative to the speaker's own running baseline."""

    loudness_ratio: float = 1.0  # utterance RMS / speaker's running median RMS
    rate_ratio: float = 1.0  # words per second / speaker's running median
    overlap: float = 0.0  # seconds overlapped by the other speaker


@dataclass(frozen=True, slots=True)
class Classification:
    phase: Phase
    sentiment: float  # VADER compound, -1..1
    scores: dict[str, float]  # per-phase scores, for debugging/thresholds


class UtteranceClassifier:
    """Rule-based venting/question/other classifier; construct once, call :meth:`classify` per utterance."""

    def __init__(self) -> None:
        self._vader = SentimentIntensityAnalyzer()
        self._vent_anger = _alternation(lx.VENT_ANGER)
        self._vent_grievance = _alternation(lx.VENT_GRIEVANCE)
        self._vent_weak = _alternation(lx.VENT_WEAK)
        self._vent_mild = _alternation(lx.VENT_MILD)
        self._calm = _alternation(lx.CALM)
        self._sign_off_thanks = re.compile(r"\b" + lx.SIGN_OFF_THANKS)
        self._unresolved = _alternation([lx.UNRESOLVED])
        self._embedded_q = _alternation(lx.EMBEDDED_QUESTION)
        self._stated_ask = _alternation(lx.STATED_ASK)
        self._wonder_modal = re.compile(lx.WONDER_IF_MODAL)
        self._model = PhraseModel()
        self._detail_request = _alternation(lx.AGENT_DETAIL_REQUEST)
        self._opening_cue = _alternation(lx.OPENING_GRIEVANCE_CUES)
        self._personal_misfortune = _alternation(lx.PERSONAL_MISFORTUNE)
        self._not_own = _alternation(lx.NOT_OWN_GRIEVANCE)

    # -- public API ---------------------------------------------------------------------

    def classify(
        self,
        text: str,
        speaker: str = "customer",
        *,
        context: Sequence[tuple[str, str]] = (),
        cues: AudioCues | None = None,
    ) -> Classification:
        norm = normalize(text)
        tokens = norm.split()
        if not tokens:
            return Classification("other", 0.0, {"venting": 0.0, "question": 0.0, "other": 1.0})
        sentiment = float(self._vader.polarity_scores(norm)["compound"])
        q_tokens = _split_run_together(tokens)
        q = self._question_score(norm if q_tokens is tokens else " ".join(q_tokens), q_tokens, speaker)
        # The phrase model (trained on the self-authored corpus only) nudges borderline question
        # structure either way: declarative questions, requests for details, chit-chat answers.
        p_model = self._model.probabilities(tokens)
        q = max(q + _W_MODEL_QUESTION * (p_model["question"] - 0.5), 0.0)
        # The speaker's first turn says why they got in touch, even after the other side's greeting.
        opening = all(earlier != speaker for earlier, _ in context)
        v, angry = self._venting_score(norm, tokens, sentiment, speaker, context, cues, opening)
        if v > 0 or opening:
            # The phrase model also weighs wording no rule names ("get your act together"); it may
            # tip a turn that already carries a cue, or an opening complaint, but not decide alone.
            v += _W_MODEL_VENT * max(p_model["venting"] - 0.5, 0.0)
        vent_threshold = VENT_THRESHOLD
        if context and not angry and q >= _CLEAR_QUESTION:
            # Mid-conversation, a clearly formed question about a fault ("does that mean theres a
            # fault on the line") asks for information; only strong grievance outweighs it.
            vent_threshold += _QUESTION_OVER_REPORT
        if v >= vent_threshold:
            phase: Phase = "venting"
        elif q >= QUESTION_THRESHOLD:
            phase = "question"
        else:
            phase = "other"
        return Classification(phase, sentiment, {"venting": round(v, 3), "question": round(q, 3),
                                                 "other": round(max(0.0, 1.0 - max(v, q)), 3)})

    # -- questions ----------------------------------------------------------------------

    def _question_score(self, norm: str, tokens: list[str], speaker: str) -> float:
        caller = speaker != "agent"
        core = tokens[_opener_length(tokens):]  # after "yeah hi", "thanks for that right", ...
        head = _head_zone(tokens)
        if core:
            first = core[0]
            second = core[1] if len(core) > 1 else ""
            if tokens == ["why", "not"]:
                return 0.8  # a bare "why not" asks the reason for a no ("ok why not" agrees)
            if first == "why" and second in ("not", "dont") \
                    and (len(core) < 3 or core[2] in ("we", "you", "not")
                         or (second == "not" and core[2] not in lx.SUBJECTS and core[2] not in lx.WH_WORDS
                             and core[2] not in ("its", "im", "id", "thats", "theres"))) \
                    and not self._vent_anger.search(norm):
                return 0.0  # "why not try the app", "why dont we start over": suggestions, not requests for information
            if first == "how" and second == "about" and len(core) > 2 \
                    and core[2] not in ("you", "u", "yourself", "yours", "your", "it", "that"):
                return 0.3  # "how about the cheaper plan", "how about we call back at six": a suggestion or offer
            if core[:4] == ["how", "do", "you", "do"] and (len(core) == 4 or core[4] not in lx.HOW_DO_YOU_DO_OBJECTS):
                return 0.0  # a greeting, not a question
            if first in ("do", "would") and second in ("you", "u") and len(core) > 2 and core[2] == "mind":
                return 0.0  # "do you mind if i put you on hold": asking permission, a directive
            if first in ("have", "has", "had") and second in ("a", "an", "the", "some", "fun", "nice"):
                return 0.0  # "have a good evening", "have a look at the form": imperatives
            if first in lx.WH_WORDS:
                if second in lx.EXCLAMATIVE_AFTER_WH and (first == "what" or second not in ("a", "an")) \
                        and core[1:3] != ["kind", "of"]:
                    pass  # "how lovely", "what a mess", "what a lovely day it is": exclamatives ("what kind of
                    # plan is it" asks)
                elif second in lx.PRONOUN_SUBJECTS and len(core) > 6 and not _has_aux(core[2:4]):
                    pass  # "when i called they said ...": a subordinate clause, not a question
                elif first == "when" and second in lx.PRONOUN_SUBJECTS and len(core) > 4:
                    pass  # "when we moved here it rained": uninverted, so a time clause
                elif first == "what" and (second in lx.PRONOUN_SUBJECTS or second == "it") \
                        and any(t in ("is", "was") for t in core[2:5]):
                    pass  # "what she wants is a refund": a pseudo-cleft statement
                else:
                    return 1.0
            if _modal_yes_no(core):
                return 1.0
            if first == "shall" and (second == "i" or (second == "we" and "or" in core)):
                return 1.0  # "shall i book that": an offer asks for a yes or no; "shall we ... or ..." a choice
            if first == "shall" and second == "we" and len(core) > 2:
                return 0.3  # "shall we start with the paperwork": a suggestion, like "lets"
            if first in lx.MODALS and second in ("you", "u", "i", "we"):
                return _modal_request_score(core, caller)
            if first == "tell" and second == "me" and len(core) > 2 \
                    and (core[2] in lx.WH_WORDS or core[2] in ("if", "whether", "my", "our")):
                return 0.8  # "tell me what the fee covers", "tell me my account number": information asked for
            if first in ("dyou", "dya", "dja"):
                return 1.0  # "d'you know", "dya want it": "do you" run together
            if first in lx.AUX and (second in lx.SUBJECTS or second in lx.AUX):
                # "is it", "have you", "did they"; "dont you think"
                return 1.0
            if first in lx.NP_INVERSION_AUX and len(core) >= 3 and second not in lx.LEADING_FILLERS \
                    and second not in lx.WH_WORDS:
                return 0.8  # a named or noun subject: "is sarah around", "does parking come with it"
            if first in ("you", "u") and second == "mean":
                return 0.8
            if first in ("any", "anyone", "anybody", "anything", "anywhere") and len(core) <= 8:
                return 0.8  # elliptical "anything else", "anyone know"
            if first in ("you", "u") and second in ("got", "have", "want", "need", "mean", "sure") \
                    and len(core) <= 6:
                return 0.6  # dropped auxiliary: "you got a minute"
            if (core[:2] in (["you", "want"], ["you", "wanted"], ["youd", "like"])) and len(core) <= 12:
                return 0.6  # checking what the other wants: "you want to pay the whole bill today"
        n = len(tokens)
        wonder = self._wonder_modal.search(norm)
        if wonder is not None and n < _LONG_TURN:
            # "i was wondering if you could speak up" asks for an action politely; "... could tell me",
            # "... could help me" or a caller's "... could move my appointment" asks for information, help
            # or a service, as the bare modal question would
            subject, modal, rest = wonder.group(1, 2, 3)
            clause = [modal, subject if subject in ("i", "we", "you", "u") else "you", *rest.split()]
            if "help" not in clause[2:4] and _modal_request_score(clause, caller) < QUESTION_THRESHOLD:
                return 0.3
        if _in_zone(self._embedded_q, norm, n, head) or self._stated_ask.search(norm):
            return 0.9
        if speaker == "agent" and 2 <= len(core) <= 6 and core[0] in lx.ELLIPTICAL_DETAIL_START \
                and not _has_aux(core[1:]):
            return 0.6  # an agent's elliptical request for a detail: "and your postcode please"
        if speaker == "agent" and 2 <= len(core) <= 12 and core[0] in lx.ELLIPTICAL_DETAIL_START \
                and not _has_aux(core) and any(t in lx.DETAIL_NOUNS for t in core) \
                and (core[-1] in ("please", "sir", "madam", "maam", "well") or len(core) <= 5):
            return 0.6  # a verbless list of details: "and the name address and postcode please"
        if speaker == "agent" and 2 <= len(core) <= 8 and core[0] in lx.ELLIPTICAL_DETAIL_START \
                and _leaves_slot_open(core):
            return 0.8  # "and the postcode is": the agent leaves the detail for the caller to fill in
        if speaker == "agent" and _in_zone(self._detail_request, norm, n, head):
            return 0.8  # "just confirm your postcode for me", "if i can take the account number"
        if 3 <= n <= 4 and tokens[-2] == "or" and not _has_aux(tokens) \
                and not (tokens[-3] in lx.NUMBER_WORDS and tokens[-1] in lx.NUMBER_WORDS) \
                and (tokens[-3], tokens[-1]) not in lx.FIXED_OR_PAIRS:
            # a bare choice offered: "bath or shower", "window or aisle"; not an estimate ("nine or ten")
            # or an idiom ("give or take")
            return 0.7
        if n >= 3 and tokens[-2:] == ["and", "you"]:
            return 0.7  # the question handed back: "not bad thanks and you"
        if tokens[-2:] == ["anything", "else"] and (n == 2 or tokens[-3] not in lx.ANYTHING_ELSE_BLOCK_PREV) \
                and not any(t in lx.ANYTHING_ELSE_BLOCK_ANY for t in tokens[:-2]):
            # "right thats two coffees anything else"; not "without trying anything else" nor the caller's
            # closing "no i dont think theres anything else"
            return 0.8
        if _in_zone(_WHAT_IF, norm, n, head):
            return 0.8  # a hypothetical put to the listener: "but what if it rains"
        if n >= 2 and tokens[-1] == "what" and tokens[-2] not in lx.ECHO_WHAT_BLOCK_PREV \
                and tokens[-3:-1] != ["tell", "you"]:
            return 0.7  # an echo question: "you dialled what"; not "no matter what", "let me tell you what"
        # Tag questions and final question particles.
        if n >= 3:
            last, prev = tokens[-1], tokens[-2]
            if prev in lx.TAG_AUX and last in lx.TAG_SUBJ and tokens[-3] not in _NO_TAG_BEFORE \
                    and (last not in lx.TAG_NEGATIVE_ONLY_SUBJ or prev.endswith("nt")) \
                    and _tag_agrees(prev, last):
                # "youve paid for it have you", "theres a fee isnt there"; but "so that was it", "the
                # trouble is that" and "we did it" (the auxiliary as the main verb) are statements
                return 0.8
            if tokens[-2:] == ["it", "be"] and tokens[-3] in lx.MODALS:
                return 0.7  # a guess put up for confirmation: "the billing team would it be"
            if last in lx.TAG_END and n >= 4 and tokens[-2] not in ("all", "thats", "alright", "that"):
                return 0.6
            if n >= 3 and tokens[-2:] in (["or", "not"], ["or", "what"], ["or", "no"]):
                return 0.8
            if last == "right" and n >= 4 \
                    and (prev not in lx.RIGHT_TAG_BLOCK_PREV or tokens[-3:-1] == ["at", "all"]) \
                    and not _has_aux(tokens[:1]):
                return 0.7  # declarative + "right": "so it goes back on my card right"
        # A question in the middle: several sentences run together ("fine do you take cards").
        for i in range(1, n - 1):
            if n >= _LONG_TURN and head <= i < n - _LONG_TURN_TAIL:
                continue  # mid-way through a long turn: reported speech or thinking aloud
            t = tokens[i]
            if t in lx.WH_WORDS and i + 2 < n and tokens[i + 1] in lx.AUX and tokens[i + 2] in lx.SUBJECTS \
                    and (tokens[i - 1] not in lx.MID_WH_BLOCK_PREV
                         or (tokens[i - 1] == "see" and tokens[i + 1] in ("do", "does", "did"))):
                return 0.8  # "fine i can live with that what are the fees"
            if t in ("what", "which", "how") and i + 3 < n and tokens[i + 2] in lx.AUX \
                    and (tokens[i + 3] in lx.PRONOUN_SUBJECTS or tokens[i + 3] in ("it", "there")) \
                    and tokens[i + 1] not in lx.AUX \
                    and tokens[i - 1] not in lx.MID_WH_BLOCK_PREV \
                    and tokens[i - 1] not in ("thats", "is", "was", "its", "exactly"):
                return 0.7  # "right thats booked what time will you arrive" ("thats what people do they say")
            # "i see does it come with ...": after "see", only a do-inversion opens a new question
            prev_ok = tokens[i - 1] not in lx.MID_BLOCK_PREV \
                or (tokens[i - 1] == "see" and t in ("do", "does", "did"))
            if t in lx.MID_AUX and tokens[i + 1] in lx.PRONOUN_SUBJECTS and prev_ok:
                if t in lx.MODALS and tokens[i + 1] in ("you", "u", "i", "we") \
                        and _modal_request_score(tokens[i:], caller) < QUESTION_THRESHOLD:
                    continue  # "right can you hold on while i check": a request, not a question
                return 0.7
            # "my brother did the forms": a determiner opening the turn or a clause, then a noun, then the
            # auxiliary as a main verb ("stuck in a rut does it help" has the noun phrase after a preposition)
            noun_subject = i >= 2 and tokens[i - 2] in lx.DETERMINERS \
                and (i == 2 or tokens[i - 3] in lx.LEADING_FILLERS or tokens[i - 3] in ("because", "cos", "when"))
            if t in lx.MID_DO and tokens[i + 1] in lx.MID_DO_SUBJ and prev_ok and not noun_subject:
                return 0.7  # "lovely does your shop deliver on sundays"
            if t in lx.MID_COPULA and tokens[i + 1] in lx.MID_COPULA_SUBJ and prev_ok \
                    and tokens[i - 1] not in lx.SUBJECTS and tokens[i - 1] not in ("thats", "theres", "its"):
                return 0.7
            if t in ("will", "would", "does", "did", "can", "could") and tokens[i + 1] == "it" and i + 2 < n \
                    and prev_ok and tokens[i - 1] not in lx.SUBJECTS and tokens[i - 1] not in ("thats", "its") \
                    and not noun_subject:
                return 0.7  # "fair enough does it cost extra"; not "the plumber did it on friday"
            if t in ("will", "would") and i + 2 < n and tokens[i + 1] == "that" and tokens[i + 2] == "be" \
                    and prev_ok:
                return 0.7  # "i can bring it round friday will that be ok"
            if t == "is" and tokens[i + 1] == "it" and i + 2 < n and prev_ok \
                    and tokens[i - 1] in lx.MID_IS_IT_PREV:
                return 0.7  # "the shape is nice is it in stock", "one more thing is it washable"
            if t in lx.WH_CONTRACTED and prev_ok \
                    and tokens[i - 1] not in ("thats", "is", "see", "hear", "its"):
                return 0.7  # "whats" opens a wh-question as surely as "what is": "lovely whats next"
        return 0.0

    # -- venting ------------------------------------------------------------------------

    def _venting_score(
        self,
        norm: str,
        tokens: list[str],
        sentiment: float,
        speaker: str,
        context: Sequence[tuple[str, str]],
        cues: AudioCues | None,
        opening: bool,
    ) -> tuple[float, bool]:
        """Venting score and whether an anger/contempt phrase (not just a problem report) was heard."""
        # An anger or fault word inside a misfortune phrase ("i feel so stupid", "the worst toothache", "i
        # have broken the lamp") describes the speaker's own bad luck, not anger or a grievance at anyone.
        # Someone else's feelings ("you seem upset") and what might go wrong ("if it doesnt fit", "that
        # would ruin it") are not the speaker's grievance: blank them out before matching.
        # The placeholder is not a word character, so a pattern's "(?:\w+ )?" cannot step over it.
        norm = self._not_own.sub(" - ", norm)
        misfortune = [m.span() for m in self._personal_misfortune.finditer(norm)]
        anger = _count_outside(self._vent_anger, norm, misfortune)
        grievance = _count_outside(self._vent_grievance, norm, misfortune)
        weak = len(self._vent_weak.findall(norm))
        mild = min(len(self._vent_mild.findall(norm)), 2)
        if speaker == "agent":
            # Agents describe faults and policies for a living; their problem words count for little.
            grievance_w = _W_GRIEVANCE * _AGENT_GRIEVANCE
        else:
            grievance_w = _W_GRIEVANCE
        score = _W_ANGER * anger + grievance_w * grievance + _W_MILD * grievance_w * mild
        opening_customer = opening and speaker != "agent"
        opening_cues = len(self._opening_cue.findall(norm)) if opening_customer else 0
        if score > 0:
            score += min(_W_WEAK * weak, _MAX_WEAK)
        elif opening_customer and len(tokens) >= _MIN_OPENING_WORDS:
            # The turn that opens a contact says why the customer got in touch: several weak
            # grievance cues together ("why", "still", "not", "again") make a complaint; a short
            # reply ("not yet i havent") is too little to tell.
            score += _W_OPENING_WEAK * max(weak + opening_cues - _OPENING_FREE_CUES, 0)
        personal_why = opening_customer and _why_about_a_person(tokens)
        if personal_why:
            pass  # "why did she move to leeds": a person's own choice, not something done to the caller
        elif opening_customer and "why" in tokens[:6] and (score > 0 or opening_cues > 0):
            # Opening a contact with "why is/does/did ... not ..." demands an account of a failure.
            score += _W_OPENING_WHY
        elif opening_customer and _asks_why(tokens):
            # Even without a negation, a contact opened with "why is my bill ..." asks a company to
            # account for something it did.
            score += _W_OPENING_WHY_ALONE
        if anger == 0 and misfortune:
            score -= _MISFORTUNE_DAMPING  # illness, pain, own clumsiness: bad luck, not a grievance
        if sentiment <= _NEG_SENTIMENT:
            # An agent's sombre wording (apologies, bad news) is not the agent's own grievance.
            score += (_W_SENTIMENT * (-sentiment) + _NEG_BONUS) * (_AGENT_SENTIMENT if speaker == "agent" else 1.0)
        calm_text = norm
        if opening_customer and grievance and self._unresolved.search(norm):
            calm_text = self._sign_off_thanks.sub("", norm)  # see lexicon.SIGN_OFF_THANKS
        if anger == 0 and self._calm.search(calm_text):
            score -= 0.5
        # Venting persists: a customer who just vented needs less to be still venting.
        if score > 0 and _recent_venting(context, speaker, self):
            score += 0.3
        if cues is not None and score > 0 and speaker != "agent":
            score += _cue_bonus(cues, len(tokens))
        return max(score, 0.0), anger > 0


def _modal_yes_no(core: list[str]) -> bool:
    """ "will i have to pay again", "should we wait in", "might it rain": a modal before a subject asks what
    will or ought to happen, a yes/no question rather than a request for an action."""
    return len(core) > 1 and core[0] in lx.YES_NO_MODALS and core[1] in lx.YES_NO_MODAL_SUBJECTS


def _modal_request_score(core: list[str], caller: bool) -> float:
    """Score "can you ..."/"may i ...": requests for information or help are questions (CONTRACT §4), and so is
    a caller asking for a service action ("can you cancel the order"); other requests and offers are not.
    ``caller`` is False for an agent, whose "can you restart the router" tells the caller what to do."""
    verbs = [t for t in core[2:6] if t not in ("please", "just", "possibly", "kindly", "actually", "um", "uh",
                                               "er", "quickly", "also", "maybe", "perhaps")]
    if not verbs:
        return 0.8
    verb = verbs[0]
    if core[1] in ("i", "we") and verb in lx.OFFER_OR_PERMISSION_VERBS:
        return 0.3  # "may i see your ticket", "may i suggest the fish": a request or an offer
    if core[0] in ("can", "could") and core[1] in ("i", "we") \
            and (verb not in lx.DETAIL_REQUEST_VERBS or verb in ("send", "book", "quote")
                 or core[3:5] == ["rid", "of"]):
        # "can i pay by card", "could we change the date", "can i return it by post": asks what is possible
        return 1.0
    if verb in lx.DETAIL_REQUEST_VERBS:
        # "can i have your surname", "could you give me a phone number": a detail or a piece of information;
        # "any" asks whether something exists at all ("can we get any parking there"), not for a thing
        return 1.0 if any(t in ("your", "the", "any") or t in lx.INFO_NOUNS for t in core[3:7]) else 0.3
    if _modal_yes_no(core):
        return 1.0
    if caller and core[1] in ("you", "u") and verb in lx.SERVICE_ACTION_VERBS:
        return 1.0  # "could you move my appointment", "can you put me through to sales": help asked for
    if verb == "like" and core[1] in ("you", "u"):
        at = core.index("like")
        to_verb = core[at + 1:at + 3]
        if len(to_verb) == 2 and to_verb[0] == "to" and to_verb[1] in lx.INVITATION_VERBS:
            return 0.3  # "would you like to join our loyalty club": an invitation, answered by accepting or not
    if core[0] == "can" and core[1] in ("you", "u") and verb in lx.ABILITY_VERBS:
        return 1.0  # "can you speak french", "can you afford it": asks what the listener is able to do
    if verb == "ask" and core[1] in ("you", "u"):
        return 0.3  # "could you ask her to ring me": an errand to run, not a question to answer
    if verb in lx.INFO_REQUEST_VERBS or verb in lx.AUX or verb in ("like", "prefer", "be", "mind"):
        # "would you like", "would you mind" offers/permission checks read as questions to a caller
        return 1.0 if verb != "mind" else 0.0
    return 0.3


def _leaves_slot_open(core: list[str]) -> bool:
    """ "your name is (please)": a detail noun, then a final "is"/"was" with nothing after it."""
    while core and core[-1] in ("please", "sorry", "again"):
        core = core[:-1]
    return len(core) >= 3 and core[-1] in ("is", "was") and not _has_aux(core[:-1]) \
        and any(t in lx.DETAIL_NOUNS for t in core) and not any(t in lx.ISSUED_DETAIL_NOUNS for t in core)


def _head_zone(tokens: list[str]) -> int:
    """How many opening words of a turn may hold its question (see :func:`_in_zone`): all of a short
    turn; in a long one, the first _LONG_TURN_HEAD words after its opening fillers, greetings and thanks
    ("yeah hi ...", "thanks for that right ..."), which say nothing about the turn's act."""
    n = len(tokens)
    if n < _LONG_TURN:
        return n
    return _opener_length(tokens) + _LONG_TURN_HEAD


def _opener_length(tokens: list[str]) -> int:
    """How many words open a turn before its first clause: fillers (:func:`_strip_fillers`), greetings
    and thanks, in any order ("ok hi there", "yes hello thanks for holding so")."""
    i = 0
    while i < len(tokens):
        # openers first, so that "hello there" goes whole rather than "hello" as a filler
        opener = next((o for o in lx.TURN_OPENERS if tuple(tokens[i:i + len(o)]) == o), None)
        step = len(opener) if opener is not None else _filler_at(tokens, i)
        if not step:
            return i
        i += step
    return i


def _in_zone(pattern: re.Pattern[str], norm: str, n_words: int, head: int) -> bool:
    """True if ``pattern`` matches where a turn's question can sit: anywhere in a short turn, but in a
    long one (several sentences run together) only within its first ``head`` or last _LONG_TURN_TAIL
    words. A question buried mid-way through a long turn is mostly reported speech or thinking aloud,
    not the turn's act."""
    if n_words < _LONG_TURN:
        return pattern.search(norm) is not None
    for m in pattern.finditer(norm):
        i = norm.count(" ", 0, m.start())  # word index of the match
        if i < head or i >= n_words - _LONG_TURN_TAIL:
            return True
    return False


def _split_run_together(tokens: list[str]) -> list[str]:
    """Split "finewhat" back into "fine what": stripping punctuation without a space ("fine.What")
    glues a sentence's last word to the next one's wh-word ("roadshow" and "somewhere" are left alone).
    Returns ``tokens`` itself if none is glued."""
    if not any(len(t) >= 6 and t.endswith(lx.GLUED_WH) for t in tokens):
        return tokens  # the usual case, checked cheaply
    out: list[str] = []
    for t in tokens:
        wh = next((w for w in lx.GLUED_WH if t.endswith(w)), "")
        if wh and len(t) - len(wh) >= 2 and t not in lx.WH_COMPOUNDS and not t.endswith("show"):
            out.extend((t[:-len(wh)], wh))
        else:
            out.append(t)
    return out if len(out) > len(tokens) else tokens


def _tag_agrees(aux: str, pronoun: str) -> bool:
    """Whether a final auxiliary + pronoun can be a tag question: person and number must agree."""
    if aux in lx.TAG_PLURAL_AUX:
        return pronoun in lx.TAG_PLURAL_SUBJ
    if aux in lx.TAG_SINGULAR_AUX:
        return pronoun not in lx.TAG_PLURAL_SUBJ
    return True


def _why_about_a_person(tokens: list[str]) -> bool:
    """ "why did she move to leeds", "why isnt he coming", "why dont we walk": a why about the listener's or
    a third person's own choices (or a suggestion) rather than about something done to the speaker. Only
    verbs of personal choice count (:data:`dialog.lexicon.PERSONAL_CHOICE_VERBS`): in a service call "you"
    and "he" are mostly the company or its engineer ("why didnt you fix it" names the caller's loss), and so
    is any first-person word ("why did you cancel my order")."""
    core = _strip_fillers(tokens)
    if len(core) < 4 or core[0] != "why" or core[1] not in lx.AUX or core[2] not in lx.PERSON_SUBJECTS:
        return False
    if core[3] in ("all", "guys", "people", "lot") or core[-1] in ("this", "that"):
        return False  # "why did you all drop it", "why are you treating me like that": a company, or a reproach
    if core[1] == "dont" and (core[2] == "we" or (core[3] not in ("ever", "even", "just")
                                                 and not any(t in lx.FIRST_PERSON for t in core[3:]))):
        return True  # "why dont we walk", "why dont you try the blue one": suggestions
    verb = next((t for t in core[3:6] if t not in lx.WHY_ADVERBS), "")
    return verb in lx.PERSONAL_CHOICE_VERBS and not any(t in lx.FIRST_PERSON for t in core[3:])


def _asks_why(tokens: list[str]) -> bool:
    core = _strip_fillers(tokens)
    return len(core) > 2 and core[0] == "why" and core[1] in lx.AUX


def _has_aux(tokens: Sequence[str]) -> bool:
    return any(t in lx.AUX for t in tokens)


def _filler_at(tokens: list[str], i: int) -> int:
    """How many words of the filler at ``tokens[i]`` (0 if none): "um", "well", or a pair like "i mean"."""
    if i < len(tokens) and tokens[i] in lx.LEADING_FILLERS:
        return 1
    if i + 1 < len(tokens) and (tokens[i], tokens[i + 1]) in lx.LEADING_FILLER_PAIRS:
        return 2
    return 0


def _strip_fillers(tokens: list[str]) -> list[str]:
    i = 0
    while step := _filler_at(tokens, i):
        i += step
    return tokens[i:]


def _count_outside(pattern: re.Pattern[str], text: str, spans: list[tuple[int, int]]) -> int:
    """How many matches of ``pattern`` in ``text`` lie outside every one of ``spans``."""
    return sum(1 for m in pattern.finditer(text) if not any(a <= m.start() and m.end() <= b for a, b in spans))


def _recent_venting(context: Sequence[tuple[str, str]], speaker: str, clf: UtteranceClassifier) -> bool:
    """True if the same speaker's last turn among the previous two carried venting language."""
    for spk, text in list(context)[-2:][::-1]:
        if spk != speaker:
            continue
        norm = normalize(text)
        return bool(clf._vent_anger.search(norm))
    return False


def _cue_bonus(cues: AudioCues, n_words: int) -> float:
    """Loud, fast, long customer turns lean towards venting; bounded so prosody never decides alone."""
    bonus = 0.0
    if cues.loudness_ratio > 1.2:
        bonus += min(cues.loudness_ratio - 1.2, 0.5) * 0.4
    if cues.rate_ratio > 1.15:
        bonus += min(cues.rate_ratio - 1.15, 0.5) * 0.3
    if n_words >= 20:
        bonus += 0.1
    return min(bonus, _MAX_CUE_BONUS)


def classify_jsonl(
    lines: Iterable[str], out: TextIO, *, classifier: UtteranceClassifier | None = None
) -> int:
    """CONTRACT §4 filter: copy each JSON line to ``out`` with ``"phase"`` added, keeping order and fields.

    Earlier lines of the same ``call`` are passed as context. A line that is not a JSON object with a
    string ``text`` is reported on stderr with its line number and skipped; the return value is then 2,
    otherwise 0.
    """
    clf = classifier or UtteranceClassifier()
    history: dict[str, list[tuple[str, str]]] = {}
    status = 0
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            print(f"carecoach classify: line {lineno}: invalid JSON ({exc.msg})", file=sys.stderr)
            status = 2
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            print(f"carecoach classify: line {lineno}: expected an object with a string \"text\"",
                  file=sys.stderr)
            status = 2
            continue
        speaker = str(obj.get("speaker") or "customer")
        call = str(obj.get("call", ""))
        turns = history.setdefault(call, [])
        result = clf.classify(obj["text"], speaker, context=turns[-6:])
        turns.append((speaker, obj["text"]))
        del turns[:-6]  # only recent turns matter; keeps memory bounded on long calls
        obj["phase"] = result.phase
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return status
