"""EXPERIMENT benchmark: the MiniLM embedding head alone and blended with the rule classifier.

Same protocol and scoring as ``benchmarks/phases.py`` (its loader, normalisation, datasets and
metrics are imported, not copied): measurement only, nothing is fitted or tuned on these files.
The blend constants below were fixed by hand before running; they are not searched on the dev sets.

    .venv/bin/python benchmarks/phases_embed.py [--encoder int8|fp32] [--data DIR]

Variants:
  rules   the current ``UtteranceClassifier`` (reference)
  embed   (a) argmax of the embedding head's probabilities (class-balanced training prior)
  prior   (a') the same head with an assumed run-time prior PRIOR (Bayes log-prior shift; an a-priori
          guess about calls, not estimated from the dev sets)
  shift   (b1) rule scores shifted by the head, like the phrase-model nudge:
          v += W_V * (p_vent - 0.5), q += W_Q * (p_question - 0.5), same thresholds and precedence
  guard   (b2) the prior-corrected head decides, except that strong rule evidence overrides it:
          rule venting score >= 1.5 -> venting; rule question score >= 0.9 and p_vent < 0.6 -> question
  gate    (b3) the rules decide, and the head (raw probabilities) only vets venting: a rule venting
          verdict with p_vent < GATE_DEMOTE falls back to the rules' question/other decision; a
          non-venting verdict with rule venting score >= 0.5 and p_vent >= GATE_PROMOTE becomes venting
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from phases import DATASETS, TARGETS, judge_normalize, load, prf  # noqa: E402

from dialog.classify import QUESTION_THRESHOLD, VENT_THRESHOLD, UtteranceClassifier  # noqa: E402
from dialog.embed_model import HEAD_PATH, EmbeddingClassifier, OnnxMiniLMEncoder  # noqa: E402

W_V = 1.0
W_Q = 0.6
STRONG_VENT = 1.5
STRONG_Q = 0.9
PRIOR = {"venting": 0.1, "question": 0.3, "other": 0.6}
GATE_DEMOTE = 0.25
GATE_PROMOTE = 0.85
VARIANTS = ("rules", "embed", "prior", "shift", "guard", "gate")


def apply_prior(p: dict[str, float]) -> dict[str, float]:
    """Same as ``EmbeddingClassifier(prior=PRIOR)``: multiply by the prior ratio and renormalise."""
    q = {c: p[c] * PRIOR[c] for c in p}
    s = sum(q.values())
    return {c: v / s for c, v in q.items()}


def blend_shift(scores: dict[str, float], p: dict[str, float]) -> str:
    v = scores["venting"] + W_V * (p["venting"] - 0.5)
    q = scores["question"] + W_Q * (p["question"] - 0.5)
    if v >= VENT_THRESHOLD:
        return "venting"
    if q >= QUESTION_THRESHOLD:
        return "question"
    return "other"


def blend_guard(scores: dict[str, float], p: dict[str, float]) -> str:
    if scores["venting"] >= STRONG_VENT:
        return "venting"
    if scores["question"] >= STRONG_Q and p["venting"] < 0.6:
        return "question"
    return max(p, key=lambda c: p[c])


def blend_gate(phase: str, scores: dict[str, float], p: dict[str, float]) -> str:
    if phase == "venting" and p["venting"] < GATE_DEMOTE:
        return "question" if scores["question"] >= QUESTION_THRESHOLD else "other"
    if phase != "venting" and scores["venting"] >= 0.5 and p["venting"] >= GATE_PROMOTE:
        return "venting"
    return phase


def _pct(ms: list[float]) -> tuple[float, float]:
    s = sorted(ms)
    return s[len(s) // 2], s[min(len(s) - 1, int(len(s) * 0.95))]


def run(data: Path, encoder: str) -> int:
    rules = UtteranceClassifier()
    head = HEAD_PATH if encoder == "int8" else HEAD_PATH.with_name("embed_head_fp32.npz")
    enc = OnnxMiniLMEncoder(quantize=encoder == "int8")
    emb = EmbeddingClassifier(head, encoder=enc)
    ms_rules: list[float] = []
    ms_embed: list[float] = []
    table = ["| dataset | n | headline | target | rules | (a) embed | (a') prior | (b1) shift | (b2) guard "
             "| (b3) gate |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    detail = ["", "| dataset | variant | class | P | R | F1 |", "|---|---|---|---:|---:|---:|"]
    for fname, name, classes, gold_map, pred_map, headline in DATASETS:
        path = data / fname
        if not path.exists():
            print(f"skip {name}: {path} not found", file=sys.stderr)
            continue
        gold: list[str] = []
        preds: dict[str, list[str]] = {v: [] for v in VARIANTS}
        history: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for row in load(path):
            text = judge_normalize(str(row["text"]))
            speaker = str(row.get("speaker") or "customer")
            turns = history[str(row["call"])]
            t0 = time.perf_counter()
            res = rules.classify(text, speaker, context=turns[-6:])
            t1 = time.perf_counter()
            p = emb.predict_proba(text)
            t2 = time.perf_counter()
            pp = apply_prior(p)
            ms_rules.append((t1 - t0) * 1000)
            ms_embed.append((t2 - t1) * 1000)
            turns.append((speaker, text))
            label = row.get("label")
            if label is None:
                continue
            gold.append(gold_map(str(label)))
            out = {"rules": res.phase, "embed": max(p, key=lambda c: p[c]),
                   "prior": max(pp, key=lambda c: pp[c]),
                   "shift": blend_shift(res.scores, p), "guard": blend_guard(res.scores, pp),
                   "gate": blend_gate(res.phase, res.scores, p)}
            for v in VARIANTS:
                preds[v].append(pred_map(out[v]))
        heads = {}
        for v in VARIANTS:
            per = {c: prf(gold, preds[v], c) for c in classes}
            heads[v] = per["venting"][2] if name == "complaints" else sum(f for *_, f in per.values()) / len(per)
            for c in classes:
                detail.append(f"| {name} | {v} | {c} | {per[c][0]:.3f} | {per[c][1]:.3f} | {per[c][2]:.3f} |")
        table.append(f"| {name} | {len(gold)} | {headline} | {TARGETS[name]:.2f} | "
                     + " | ".join(f"{heads[v]:.3f}" for v in VARIANTS) + " |")
    r50, r95 = _pct(ms_rules)
    e50, e95 = _pct(ms_embed)
    b50, b95 = _pct([a + b for a, b in zip(ms_rules, ms_embed, strict=True)])
    table.append("")
    table.append(f"Encoder: all-MiniLM-L6-v2 via onnxruntime, {encoder}, 1 thread. Latency over {len(ms_rules)} "
                 f"utterances: rules p50 {r50:.2f} / p95 {r95:.2f} ms; embedding p50 {e50:.2f} / p95 {e95:.2f} ms; "
                 f"rules+embedding p50 {b50:.2f} / p95 {b95:.2f} ms (limit 10 ms).")
    print("\n".join(table + detail))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "eval" / "phases")
    ap.add_argument("--encoder", choices=("int8", "fp32"), default="int8")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"phases_embed benchmark: --data {args.data} is not a directory", file=sys.stderr)
        return 2
    return run(args.data, args.encoder)


if __name__ == "__main__":
    sys.exit(main())
