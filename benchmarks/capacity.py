"""Capacity: "calls per core at p95 ≤ 1 s", carecoach vs the naive per-stream baseline, in one run.

`benchmarks/load.py` (`make bench`) reports this together with latency and resources; it reuses this
module's `verdict`, `level_estimate` and `cores`.

Run: .venv/bin/python benchmarks/capacity.py [--levels 1 2 4 6 8 10 12] [--max-calls 12] [--p95 1.0]
                                             [--budget-minutes 12] [--servers carecoach naive] [--json out.json]

For each level N (ascending) and each server still climbing, `benchmarks/latency.py`'s `run_level` starts a
fresh server and streams N concurrent real-time two-track calls (same load generator, same measurement).
A level passes when the customer p95 (end of turn → final `utterance` on `/api/live`) is ≤ `--p95` and no
turn of either speaker is missed and every call ended; a server stops climbing at its first failing level.
Capacity = the largest passing N below the first failure, divided by the cores this process may use
(sched_getaffinity). If a server never failed (levels or the time budget ran out) its capacity is a lower
bound, printed as "≥". The naive baseline is `benchmarks/naive_server.py` (DESIGN.md "Budgets": same
engine and model, every frame to the recogniser, no VAD, one recogniser per track). PocketSphinx only.

Levels are interleaved (naive N, carecoach N, naive next N, ...) so both servers see similar machine load.
A level is only started if its estimated wall time (longest call used + staggered starts + 15 s) fits in
what is left of `--budget-minutes`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import latency as lt


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def verdict(r: lt.RunResult, p95_limit: float) -> tuple[bool, str]:
    p95 = lt.pct(r.latencies["customer"], 95)
    missed = sum(r.missed.values())
    why = []
    if math.isnan(p95) or p95 > p95_limit:
        why.append(f"customer p95 {lt.ms(p95)} ms > {1000 * p95_limit:.0f}")
    if missed:
        why.append(f"{missed} turn(s) missed")
    if r.not_ended:
        why.append(f"{len(r.not_ended)} call(s) not ended")
    return (not why), "; ".join(why) or "pass"


def level_estimate(calls: list[lt.CallFile], n: int, stagger: float) -> float:
    longest = max(len(calls[i % len(calls)].samples) for i in range(n)) / 8000
    return longest + stagger * (n - 1) + 15.0


def report(rows: list[tuple[str, lt.RunResult, bool, str]], capacity: dict[str, tuple[int, bool]],
           args: argparse.Namespace, started_at: str, load_start: str, skipped: list[str]) -> str:
    ncores = cores()
    lines = [
        f"### Capacity: calls per core at customer p95 ≤ {args.p95:g} s ({started_at})",
        "",
        f"- machine: nproc {ncores}, {lt.cpu_model()}; load average at start {load_start}",
        "- engine pocketsphinx, bundled en-us, fwdflat off, telephone initial CMN, on both servers; "
        f"real time, starts staggered by {args.stagger} s; calls cycle through tests/calls",
        "- carecoach = `carecoach serve` (VAD gate, 2 worker processes x 2 pooled decoders); naive = "
        "`benchmarks/naive_server.py` (one decoder process per track, created at call start, every frame "
        "decoded, PocketSphinx's Endpointer for utterance ends)",
        f"- a level passes when customer p95 ≤ {1000 * args.p95:.0f} ms, no turn is missed and every call ends",
        "",
        "| server | calls | customer p50 ms | customer p95 ms | max ms | missed (cust / all) | "
        "CPU s per call-s | CPU cores busy | RSS idle→peak MB | client max send lag ms | load after | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r, _ok, why in rows:
        lat = r.latencies["customer"]
        lines.append(
            f"| {name} | {r.n} | {lt.ms(lt.pct(lat, 50))} | {lt.ms(lt.pct(lat, 95))} | "
            f"{lt.ms(max(lat) if lat else math.nan)} | {r.missed['customer']}/{r.turns['customer']} / "
            f"{sum(r.missed.values())}/{sum(r.turns.values())} | {r.cpu_per_call_second:.3f} | "
            f"{r.cpu_cores_busy:.2f} | {r.idle_rss_mb:.0f}→{r.peak_rss_mb:.0f} | {lt.ms(r.max_send_lag)} | "
            f"{r.load_after.split()[0] if r.load_after else '-'} | {why} |")
    lines += ["", "| server | largest passing N | calls per core at p95 ≤ 1 s |", "|---|---|---|"]
    per_core: dict[str, float] = {}
    for name, (best, bounded) in capacity.items():
        per_core[name] = best / ncores
        mark = "" if bounded else "≥ "
        lines.append(f"| {name} | {mark}{best} | {mark}{per_core[name]:.2f} |")
    if "carecoach" in capacity and "naive" in capacity:
        ours, base = capacity["carecoach"], capacity["naive"]
        if base[0] == 0:
            ratio = "∞ (the baseline passed no level)"
        else:
            qual = "" if ours[1] and base[1] else (" (lower bound)" if base[1] else " (baseline not bounded)")
            ratio = f"{ours[0] / base[0]:.2f}x{qual}"
        lines += ["", f"**Ratio carecoach / naive: {ratio}** (target ≥ 2x)"]
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped)]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    calls = lt.load_calls()
    started_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = lt.loadavg()
    log_dir = Path(tempfile.mkdtemp(prefix="carecoach-capacity-logs-"))
    t0 = time.monotonic()
    budget = 60 * args.budget_minutes
    levels = sorted({n for n in args.levels if n <= args.max_calls})
    climbing = list(args.servers)
    best = {s: 0 for s in args.servers}
    failed: set[str] = set()
    rows: list[tuple[str, lt.RunResult, bool, str]] = []
    skipped: list[str] = []
    results_json = []
    for n in levels:
        for name in list(climbing):
            est = level_estimate(calls, n, args.stagger)
            left = budget - (time.monotonic() - t0)
            if est > left:
                skipped.append(f"{name} N={n} (needs ~{est:.0f} s, {max(left, 0):.0f} s of budget left)")
                climbing.remove(name)
                continue
            run_args = argparse.Namespace(engine="pocketsphinx", server=name, speed=1.0, stagger=args.stagger)
            print(f"… {name} N={n}: load {lt.loadavg()}, {time.monotonic() - t0:.0f} s elapsed",
                  file=sys.stderr, flush=True)
            try:
                r = await lt.run_level(run_args, calls, n, None, log_dir)
            except Exception as exc:  # a crashed server fails its level; the other server goes on
                print(f"  failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                skipped.append(f"{name} N={n} crashed ({type(exc).__name__}: {exc}); counted as a failure")
                failed.add(name)
                climbing.remove(name)
                continue
            ok, why = verdict(r, args.p95)
            lat = r.latencies["customer"]
            print(f"  customer p50 {lt.ms(lt.pct(lat, 50))} p95 {lt.ms(lt.pct(lat, 95))} ms; missed "
                  f"{sum(r.missed.values())}; CPU {r.cpu_per_call_second:.3f} s/call-s; RSS {r.peak_rss_mb:.0f} MB; "
                  f"{why}", file=sys.stderr, flush=True)
            rows.append((name, r, ok, why))
            results_json.append({"server": name, "pass": ok, "verdict": why, **lt.result_json(r)})
            if ok:
                best[name] = n
            else:
                failed.add(name)
                climbing.remove(name)
        if not climbing:
            break
    capacity = {s: (best[s], s in failed) for s in args.servers}
    text = report(rows, capacity, args, started_at, load_start, skipped)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"levels": results_json, "cores": cores(),
                                         "capacity": {s: {"calls": c, "bounded": b, "per_core": c / cores()}
                                                      for s, (c, b) in capacity.items()}},
                                        indent=1, default=str))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 6, 8, 10, 12])
    parser.add_argument("--max-calls", type=int, default=12, help="never run more concurrent calls than this")
    parser.add_argument("--p95", type=float, default=1.0, help="customer p95 limit, s")
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds between call starts")
    parser.add_argument("--budget-minutes", type=float, default=12.0,
                        help="no level is started that would not finish within this")
    parser.add_argument("--servers", nargs="+", choices=lt.SERVERS, default=["naive", "carecoach"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    try:
        return asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; servers stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
