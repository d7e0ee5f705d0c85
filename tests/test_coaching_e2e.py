"""Coaching, end to end, on calls the coach was not developed on.

Each call in `E2E_CALLS` is streamed into a real server (real PocketSphinx engine) exactly as Twilio
does it: both tracks as 20 ms μ-law `media` messages, timestamped on the telephony clock. Meanwhile
the test listens on `WS /api/calls/{sid}/live`, and afterwards reads `GET /api/calls/{sid}`. The
tests then check the coaching "done when" criteria against the script's truth file:

- every `expect: venting` turn lies inside a `venting` phase of the stored timeline;
- the calm question-only calls have `question` phases and no `venting` phase;
- a `prompt` event comes within 5 s (call time) of the first venting turn starting;
- the agent explaining / interrupting while the customer vents raises `agent_explains` /
  `agent_interrupts` cards;
- a closing "fine" raises the `customer_says_fine` card;
- the outcome is inferred, and its live event precedes `call_ended`;
- `metrics` carries the contract's five fields.

The scripts were written for this file after the coach, in two rounds: `late_delivery_interrupt`,
`plan_questions` and `cancel_threat`, then `line_outage` (telecom outage, venting that turns into
questions), `claim_explain` (insurance claim: the agent cuts in with reasons while the customer
vents), `locked_out_fine` (calm account-access questions, an unsatisfying answer, "fine, whatever")
and `flight_refer` (cancelled flight, referred to the airline). `angry_billing` is a regression.

Why 2x real time, and not unpaced: the session's clock is the media it has received. Ticks (which
end venting after a quiet spell and fire the time-based cards), partials and finals interleave the
way they would live only if the audio arrives at about the pace it was spoken. Unpaced, the whole
call is on the timeline before the first final is decoded, so every prompt would be stamped near
the end of the call and "within 5 s of venting" would be meaningless. 2x keeps the decoder ahead
of the audio on 2 cores (PocketSphinx decodes at about 1/4 of real time), so finals still arrive
within about a second of each turn ending, and keeps the eight calls near 3 minutes (1.5x took 4).
It is the stricter choice for "within 5 s": a final's wall-clock decode lag counts double in call
time. The calls are streamed one after another: two at once compete for the decoders, the ASR lag
passes the overload guard's threshold (voice/asr/overload.py) and the agent's speech is shed, which
these criteria need. On a busy machine that can still happen; a criterion that fails on a call
during which the ASR was overloaded is skipped with that cause (`judged`), not failed.

Run with `-s` to see the per-call report (utterances, phases, prompts, outcome, metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from tests.conftest import CALLS, load_call, ws_url
from voice.app import build_app
from voice.asr.sphinx_engine import SphinxEngine
from voice.config import Config
from voice.simulate import new_call_sid, stream_call

pytestmark = pytest.mark.slow

#: The known failures below are caused by PocketSphinx mishearing words, and its output for the same
#: audio varies a little between runs (which words survive depends on how decoding interleaves with
#: the arriving audio under load). A strict xfail would turn a lucky run red, so they are reported as
#: XPASS instead; the criteria themselves are not loosened.
ASR_STRICT = False
#: Faster than real time to keep the run short, slow enough that the ASR keeps up (see above).
PACE = 2.0
#: ASR slack when comparing scripted turn times with the stored timeline.
SLACK = 1.0
#: The longest a prompt may lag the start of venting, in call seconds.
PROMPT_LATENCY = 5.0

E2E_CALLS = ("late_delivery_interrupt", "plan_questions", "cancel_threat", "angry_billing",
             "line_outage", "claim_explain", "locked_out_fine", "flight_refer")
#: Question-only calls with no venting in the script.
CALM_CALLS = ("plan_questions", "locked_out_fine")
CONTRACT_METRICS = ("talk_ratio", "interruptions", "time_to_empathy", "sentiment_start", "sentiment_end")


async def stream_and_collect(server: TestServer, name: str) -> dict[str, Any]:
    samples, truth = load_call(name)
    call_sid = new_call_sid()
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as client:
        # Subscribe before the stream starts, so call_started is seen too.
        async with client.ws_connect(ws_url(server, f"/api/calls/{call_sid}/live")) as live:
            began = time.monotonic()

            async def listen() -> None:
                async for message in live:
                    event = json.loads(message.data)
                    event["_wall"] = round(time.monotonic() - began, 3)  # seconds since streaming began
                    events.append(event)
                    if event["type"] == "call_ended":
                        return

            listener = asyncio.get_running_loop().create_task(listen())
            await stream_call(samples, ws_url(server, "/twilio/stream"), speed=PACE, call_sid=call_sid,
                              session=client)
            await asyncio.wait_for(listener, 90)
        async with client.get(server.make_url(f"/api/calls/{call_sid}")) as response:
            assert response.status == 200, await response.text()
            call = await response.json()
    # The server sheds agent speech while the ASR is overloaded (voice/asr/overload.py): count it.
    overloaded = sum(1 for e in events if e["type"] == "overload" and e.get("state") == "degraded")
    return {"name": name, "truth": truth, "events": events, "call": call, "overloaded": overloaded,
            "runtime": round(time.monotonic() - began, 1)}


@contextlib.contextmanager
def judged(result: dict[str, Any]) -> Iterator[None]:
    """Wrap a criterion's assertions. If they fail on a call during which the ASR was overloaded (the
    machine was busy: finals lagged and agent speech was shed, so the coach never heard it), the
    criterion cannot be judged on this run: skip with that measured cause instead of failing."""
    try:
        yield
    except AssertionError:
        if result["overloaded"]:
            pytest.skip(f"{result['name']}: ASR overloaded during the call ({result['overloaded']}x), agent "
                        "speech shed and finals late; not judged on this run")
        raise


def report(result: dict[str, Any]) -> str:
    call, truth, events = result["call"], result["truth"], result["events"]
    lines = [f"\n=== {result['name']} ({truth['duration']:.1f} s audio, {result['runtime']} s wall) ==="]
    lines.append("truth turns:")
    for t in truth["turns"]:
        lines.append(f"  {t['start']:6.2f}-{t['end']:6.2f} {t['speaker']:8} {t['expect']:8} {t['text']}")
    lines.append("utterances:")
    for u in call["utterances"]:
        lines.append(f"  {u['start']:6.2f}-{u['end']:6.2f} {u['speaker']:8} {u['phase']:8} {u['text']}")
    lines.append("phases: " + ", ".join(f"{p['phase']} {p['start']:.2f}-{p['end']:.2f}" for p in call["phases"]))
    lines.append("prompt events:")
    for e in events:
        if e["type"] == "prompt":
            lines.append(f"  at {e['at']:6.2f} (wall {e['_wall']:5.1f}) {e['trigger']:20} {e['id']}")
    lines.append("stored prompts: " + ", ".join(f"{p['id']}@{p['at']:.2f} adhered={p.get('adhered')}"
                                                 for p in call["prompts"]))
    lines.append(f"outcome: {call['outcome']}   (script: {truth.get('outcome')})")
    lines.append(f"metrics: {call['metrics']}")
    lines.append("event order: " + " ".join(e["type"] for e in events if e["type"] not in ("partial", "utterance")))
    return "\n".join(lines)


@pytest_asyncio.fixture(scope="module")
async def results(tmp_path_factory: pytest.TempPathFactory,
                  sphinx_engine: SphinxEngine) -> AsyncIterator[dict[str, dict[str, Any]]]:
    """Stream every call once (sequentially) into one server; each test then reads the results."""
    config = Config(data_dir=Path(tmp_path_factory.mktemp("coaching-e2e")))
    server = TestServer(build_app(config, engine=sphinx_engine), host="127.0.0.1")
    await server.start_server()
    try:
        out = {}
        for name in E2E_CALLS:
            out[name] = await stream_and_collect(server, name)
            print(report(out[name]))
        print(summary(out))
        yield out
    finally:
        await server.close()


def venting_turns(truth: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in truth["turns"] if t["expect"] == "venting"]


def covered(span: tuple[float, float], segments: list[tuple[float, float]]) -> bool:
    """`span` lies inside the union of `segments` (touching segments merge)."""
    merged: list[list[float]] = []
    for start, end in sorted(segments):
        if merged and start <= merged[-1][1] + 0.05:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return any(s <= span[0] and span[1] <= e for s, e in merged)


def prompts(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in result["events"] if e["type"] == "prompt"]


def venting_coverage(result: dict[str, Any]) -> float | None:
    """Fraction of the scripted venting turns' time that lies inside stored `venting` phases."""
    turns = venting_turns(result["truth"])
    if not turns:
        return None
    segments = [(p["start"], p["end"]) for p in result["call"]["phases"] if p["phase"] == "venting"]
    inside = sum(max(0.0, min(t["end"], e) - max(t["start"], s)) for t in turns for s, e in segments)
    return float(inside / sum(t["end"] - t["start"] for t in turns))


def prompt_delay(result: dict[str, Any]) -> float | None:
    """Call seconds from the first scripted venting turn's start to the first prompt at or after it."""
    turns = venting_turns(result["truth"])
    if not turns:
        return None
    lags = [p["at"] - turns[0]["start"] for p in prompts(result) if p["at"] >= turns[0]["start"]]
    return min(lags) if lags else None


def summary(results: dict[str, dict[str, Any]]) -> str:
    """The measured numbers, one call per line (printed with -s; quoted in the README)."""
    lines = ["\ncall                     vent-cover  prompt-delay  triggers  outcome (script)"]
    for name, result in results.items():
        cover, delay = venting_coverage(result), prompt_delay(result)
        triggers = ",".join(sorted({p["trigger"] for p in prompts(result)}))
        shed = result["overloaded"]
        lines.append(f"{name:24} {'-' if cover is None else f'{cover:.0%}':>10}  "
                     f"{'-' if delay is None else f'{delay:.1f} s':>12}  "
                     f"{result['call']['outcome']['disposition']} ({result['truth'].get('outcome')})  {triggers}"
                     + (f"  [ASR overloaded {shed}x]" if shed else ""))
    return "\n".join(lines)


# --- venting is tracked ------------------------------------------------------------------------------

def script_truth(name: str) -> dict[str, Any]:
    return dict(json.loads((CALLS / f"{name}.truth.json").read_text()))


VENTING_CALLS = [n for n in E2E_CALLS if venting_turns(script_truth(n))]

# Measured causes of the failures below (run with -s for the transcripts). The tracker joins the
# VAD-split pieces of a turn, and a piece whose partial read as venting stays venting; every venting
# turn is covered in the run of 2026-11-23 05:40. (During the classifier rework that day, runs in
# between had pieces such as 'he charged me twice a month' labelled `other`, with coverage down to 54%:
# if this fails again, look at the per-utterance labels in the -s report first.)
XFAIL_COVERAGE: dict[str, str] = {}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=ASR_STRICT, reason=XFAIL_COVERAGE[n])) if n in XFAIL_COVERAGE else n
    for n in VENTING_CALLS])
async def test_every_venting_turn_lies_inside_a_venting_phase(results: dict[str, dict[str, Any]],
                                                              name: str) -> None:
    result = results[name]
    segments = [(p["start"], p["end"]) for p in result["call"]["phases"] if p["phase"] == "venting"]
    for turn in venting_turns(result["truth"]):
        # ASR slack: the turn's span, less a second at each end, must be venting.
        inner = (turn["start"] + SLACK, turn["end"] - SLACK)
        with judged(result):
            assert covered(inner, segments), (turn, result["call"]["phases"])


@pytest.mark.parametrize("name", CALM_CALLS)
async def test_calm_question_call_has_question_phases_and_no_venting(results: dict[str, dict[str, Any]],
                                                                    name: str) -> None:
    assert not venting_turns(results[name]["truth"])
    phases = [p["phase"] for p in results[name]["call"]["phases"]]
    # No venting cards either: the calm call must not be coached as an angry one.
    triggers = {p["trigger"] for p in prompts(results[name])}
    with judged(results[name]):
        assert "question" in phases
        assert "venting" not in phases
        assert not triggers & {"venting", "agent_interrupts", "agent_explains", "venting_subsides", "no_empathy"}


XFAIL_LATENCY = {
    "late_delivery_interrupt": "ASR: the first piece of the venting turn ('My parcel was meant to arrive on Monday "
        "and it still hasn't come', 4.65-8.1) comes out as 'the cartilage men to arrive on monday and you haven't "
        "come' ('other'; the scripted sentence is 'venting'), the second as 'it had been back in week and around "
        "your drivers have to get my street'; the first venting piece, 'i did a day off work to wait for and nobody "
        "even bothered to call me', ends at 16.78, so let-them-vent comes 11.8 s after the turn began (the phase "
        "itself is back-dated to the turn start)",
}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=ASR_STRICT, reason=XFAIL_LATENCY[n])) if n in XFAIL_LATENCY else n
    for n in VENTING_CALLS])
async def test_a_prompt_arrives_within_5s_of_venting_starting(results: dict[str, dict[str, Any]], name: str) -> None:
    result = results[name]
    start = venting_turns(result["truth"])[0]["start"]
    lags = [round(p["at"] - start, 2) for p in prompts(result)]
    with judged(result):
        assert any(0.0 <= lag <= PROMPT_LATENCY for lag in lags), lags


# --- explaining, interrupting, "fine" ----------------------------------------------------------------

def agent_turns_while_venting(truth: dict[str, Any]) -> list[dict[str, Any]]:
    """Agent turns that start during, or right after, a venting customer turn."""
    turns = truth["turns"]
    return [t for prev, t in itertools.pairwise(turns)
            if t["speaker"] == "agent" and prev["speaker"] == "customer" and prev["expect"] == "venting"]


@pytest.mark.parametrize(("name", "trigger"), [
    ("late_delivery_interrupt", "agent_interrupts"),
    pytest.param("late_delivery_interrupt", "agent_explains", marks=pytest.mark.xfail(strict=ASR_STRICT, reason=(
        "ASR: 'Well, that happens because our system moves late routes to the next day' comes out as 'well that "
        "happened to cover to the moved we went to the next day': no explanation word in the final, and only some "
        "runs have a partial with 'because' (4 runs of 5 on 2026-11-23: card at ~21 s, shown after "
        "stop-talking-over; the fourth: none)"))),
    ("angry_billing", "agent_interrupts"),
    ("angry_billing", "agent_explains"),
    ("claim_explain", "agent_interrupts"),
    ("claim_explain", "agent_explains"),
])
async def test_explaining_or_interrupting_while_venting_raises_its_card(results: dict[str, dict[str, Any]],
                                                                       name: str, trigger: str) -> None:
    result = results[name]
    turns = agent_turns_while_venting(result["truth"])
    fired = [p for p in prompts(result) if p["trigger"] == trigger]
    with judged(result):
        assert fired, [(p["at"], p["trigger"]) for p in prompts(result)]
        # ... and in response to one of those agent turns, not somewhere else in the call.
        assert any(t["start"] - SLACK <= p["at"] <= t["end"] + PROMPT_LATENCY for p in fired for t in turns), \
            ([p["at"] for p in fired], [(t["start"], t["end"]) for t in turns])


@pytest.mark.parametrize("name", [
    "late_delivery_interrupt",
    pytest.param("angry_billing", marks=pytest.mark.xfail(strict=ASR_STRICT, reason=(
        "ASR: 'Fine. Okay. Thanks for actually sorting it out.' came out as 'buying' / 'okay' / 'think for "
        "actually working it out' (earlier runs: 'i mean' / 'okay' / 'think are actually working out'): no "
        "'fine' to detect"))),
    "locked_out_fine",
])
async def test_fine_at_the_end_raises_the_fine_card(results: dict[str, dict[str, Any]], name: str) -> None:
    result = results[name]
    last = result["truth"]["turns"][-1]
    assert last["speaker"] == "customer" and "fine" in last["text"].lower()
    fired = [p for p in prompts(result) if p["trigger"] == "customer_says_fine"]
    with judged(result):
        assert fired, [(p["at"], p["trigger"]) for p in prompts(result)]
        assert fired[0]["at"] >= last["start"] - SLACK


# --- outcome and metrics -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", E2E_CALLS)
async def test_outcome_is_inferred_and_published_before_call_ended(results: dict[str, dict[str, Any]],
                                                                   name: str) -> None:
    result = results[name]
    outcome = result["call"]["outcome"]
    assert outcome is not None and outcome["disposition"] is not None, outcome
    assert outcome["source"] == "inferred"
    kinds = [e["type"] for e in result["events"]]
    assert kinds[0] == "call_started" and kinds[-1] == "call_ended"
    assert "outcome" in kinds and kinds.index("outcome") < kinds.index("call_ended")
    event = result["events"][kinds.index("outcome")]
    assert event["disposition"] == outcome["disposition"]


@pytest.mark.parametrize("name", E2E_CALLS)
async def test_metrics_carry_the_contract_fields(results: dict[str, dict[str, Any]], name: str) -> None:
    metrics = results[name]["call"]["metrics"]
    assert set(CONTRACT_METRICS) <= set(metrics), metrics
    assert 0.0 <= metrics["talk_ratio"] <= 1.0
    assert isinstance(metrics["interruptions"], int)
    assert -1.0 <= metrics["sentiment_start"] <= 1.0 and -1.0 <= metrics["sentiment_end"] <= 1.0


# --- beyond the listed criteria: values, not just keys ----------------------------------------------

_STORY = ("ASR: PocketSphinx hears the (pitch-shifted) agent's 'sorry' as 'story' in every call "
          "(\"i'm really story\", \"i'd go story\", \"i'm story\"), so coach.APOLOGY never matches, "
          "time_to_empathy stays null and empathy-first fires after the agent has apologised")


def apologises_with_sorry(name: str) -> bool:
    """The script's agent apologises with "sorry" (claim_explain's agent says "I apologise")."""
    return any(t["speaker"] == "agent" and "sorry" in t["text"].lower() for t in script_truth(name)["turns"])


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=ASR_STRICT, reason=_STORY)) if apologises_with_sorry(n) else n
    for n in VENTING_CALLS])
async def test_time_to_empathy_is_measured_when_the_agent_apologises(results: dict[str, dict[str, Any]],
                                                                     name: str) -> None:
    truth = results[name]["truth"]
    venting_start = next(t["start"] for t in truth["turns"] if t.get("expect") == "venting")
    apology = next(t for t in truth["turns"] if t["speaker"] == "agent" and t["start"] > venting_start
                   and ("sorry" in t["text"].lower() or "apologi" in t["text"].lower()))
    measured = results[name]["call"]["metrics"]["time_to_empathy"]
    # Measured from the real apology, not from any agent words: ± 3 s covers ASR and VAD timing.
    with judged(results[name]):
        assert measured is not None and abs(measured - (apology["start"] - venting_start)) <= 3.0, measured


XFAIL_DISPOSITION = {
    "claim_explain": "ASR: 'I'm escalating your claim to my team leader' came out as 'i'm at school in your claim to "
        "mccain we are now', so there is no escalation to find; the customer's 'Alright. Thanks.' then makes it "
        "'resolved'",
    "plan_questions": "no false closing any more ('take care of' is not a goodbye), but ASR turned the customer's "
        "'okay, thanks, that's really helpful' into 'okay think that's really helpful', so there is no thanks and "
        "no closing phase: 'unresolved' ('The call ended without the customer confirming a fix.')",
    "angry_billing": "ASR: the customer's closing thanks is lost ('Thanks for actually sorting it out' -> 'think for "
        "actually working it out' / 'think are actually working out') and \"I've refunded\" -> 'i held onto', so "
        "there is neither a closing nor a resolution phase: 'unresolved'",
}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=ASR_STRICT, reason=XFAIL_DISPOSITION[n])) if n in XFAIL_DISPOSITION
    else n for n in E2E_CALLS])
async def test_inferred_disposition_matches_the_script(results: dict[str, dict[str, Any]], name: str) -> None:
    with judged(results[name]):
        assert results[name]["call"]["outcome"]["disposition"] == results[name]["truth"]["outcome"]
