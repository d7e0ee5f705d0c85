"""The load benchmark, in one command: latency, resources and capacity of `carecoach serve` against the naive baseline.

Run: .venv/bin/python benchmarks/load.py [--quick] [--levels 1 2 4 6 8] [--baseline-levels 1 2 4]
                                         [--speed 1] [--p95 1.0] [--json out.json] [--profile]
     make bench   (runs this, plus the ASR and classifier benchmarks)

For each level N, a fresh server is started (`benchmarks/latency.py` `run_level`: subprocess, free
loopback port, temporary data dir) and N concurrent two-track calls from `tests/calls/` are streamed
into it over the real Twilio Media Streams protocol, in real time (`--speed`), starts staggered by 1 s.
Measured from outside the server, on `WS /api/live`:

- end of speech → final: arrival of a turn's last `utterance` event minus the moment the turn's last
  audio frame was sent (customer and agent turns from the calls' truth files);
- prompt delay: arrival of a `prompt` minus arrival of the `utterance` that fired it;
- ASR lag: the server's own VAD close → publish histogram (`carecoach_final_latency_seconds`), and the
  peak of `carecoach_asr_lag_seconds` (the age of the oldest owed ASR work);
- CPU seconds per call-second and RSS of the server's process tree (psutil), RSS per extra call
  (difference between levels), start-up to ready, overload events and shed agent utterances.

The same load runs against `benchmarks/naive_server.py` (DESIGN.md "Budgets": same engine and model,
every frame to the recogniser, no VAD, one recogniser per track) until its first failing level. A level
passes when customer p95 ≤ `--p95`, no turn is missed and every call ends; capacity is the largest N
passing below the first failure, per core. Levels are interleaved (naive N, carecoach N, ...) so both
servers see similar machine load. Progress goes to stderr; the report (markdown) to stdout.

`--quick` (~3 min): calls cut to their first 25 s, carecoach at 1 and 4 calls, naive at 1 and 2.
`--profile`: while carecoach runs its largest level, `py-spy record` samples the server tree (needs root
or ptrace rights); the report lists the hottest frames and the collapsed stacks are kept next to the logs
(render with any flame-graph tool).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import capacity as cap
import latency as lt

TARGETS = {  # DESIGN.md "Budgets" and issue #5, checked at TARGET_CALLS concurrent real-time calls
    "p50": 0.4, "p95": 0.7, "prompt": 0.020, "rss_per_call_mb": 15.0, "ready": 5.0,
}
TARGET_CALLS = 4
QUICK_SECONDS = 25.0


def truncate(calls: list[lt.CallFile], seconds: float) -> list[lt.CallFile]:
    """The first `seconds` of each call, with only the turns that end (plus the endpoint wait) inside it."""
    out = []
    for c in calls:
        keep = [t for t in c.truth["turns"] if t["end"] + 1.0 <= seconds]
        out.append(lt.CallFile(c.name, c.samples[: int(seconds * 8000)], {**c.truth, "turns": keep}))
    return out


def stats(values: list[float]) -> tuple[float, float, float]:
    return lt.pct(values, 50), lt.pct(values, 95), max(values) if values else math.nan


def fmt3(values: list[float]) -> str:
    p50, p95, mx = stats(values)
    return f"{lt.ms(p50)} / {lt.ms(p95)} / {lt.ms(mx)}"


class Profiler:
    """`py-spy record` over the server's process tree for one level (best effort: skipped if py-spy fails).
    Records on-CPU samples as collapsed stacks (`--format raw`); `summary()` says where the CPU went."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, pid: int, seconds: float) -> None:
        exe = Path(sys.executable).with_name("py-spy")
        if not exe.exists():
            exe = Path(shutil.which("py-spy") or "py-spy")
        with contextlib.suppress(OSError):
            self.proc = subprocess.Popen(
                [str(exe), "record", "--pid", str(pid), "--subprocesses", "--rate", "50",
                 "--duration", str(int(seconds)), "--format", "raw", "--output", str(self.out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> str:
        if self.proc is None:
            return "py-spy not available"
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return str(self.out) if self.out.exists() else f"py-spy exited {self.proc.returncode}, no profile"

    def summary(self, top: int = 12) -> list[str]:
        """Share of on-CPU samples per process kind and the hottest leaf frames."""
        if not self.out.exists():
            return []
        by_kind: dict[str, int] = {}
        leaves: dict[str, int] = {}
        total = 0
        for line in self.out.read_text(errors="replace").split("\n"):
            head, _, count = line.rpartition(" ")
            if not head.startswith("process ") or not count.isdigit() or '";' not in head:
                continue
            _head, _, stack = head.partition('";')
            frames = stack.split(";")
            # py-spy labels child stacks with the root's pid; the worker's entry frame tells them apart.
            kind = "decoder worker" if any("_worker_main" in f or "spawn_main" in f for f in frames) else "server"
            leaf = f"{frames[-1]} [{kind}]" if frames and frames[-1] else f"? [{kind}]"
            n = int(count)
            total += n
            by_kind[kind] = by_kind.get(kind, 0) + n
            leaves[leaf] = leaves.get(leaf, 0) + n
        if not total:
            return []
        out = [f"- on-CPU samples: {total}; " + ", ".join(
            f"{k} {100 * v / total:.0f}%" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1]))]
        hottest = sorted(leaves.items(), key=lambda kv: -kv[1])[:top]
        out += [f"  - {100 * v / total:4.1f}% {leaf}" for leaf, v in hottest]
        return out


async def run_one(name: str, n: int, calls: list[lt.CallFile], args: argparse.Namespace, log_dir: Path,
                  profiler: Profiler | None = None) -> lt.RunResult | None:
    run_args = argparse.Namespace(engine="pocketsphinx", server=name, speed=args.speed, stagger=args.stagger)
    print(f"… {name} N={n}: load {lt.loadavg()}", file=sys.stderr, flush=True)
    server = lt.Server("pocketsphinx", None, log_dir, name)
    if name == "carecoach":
        server.env.update(args.env)
    try:
        await server.start()
        if profiler is not None and server.proc is not None:
            profiler.start(server.proc.pid, cap.level_estimate(calls, n, args.stagger) - 10)
        r = await lt.measure(run_args, server, calls, n, None)
    except Exception as exc:  # a crashed server fails its level; the run goes on
        print(f"  failed: {type(exc).__name__}: {exc}\n{server.log_tail()}", file=sys.stderr, flush=True)
        return None
    finally:
        server.stop()
    lat = r.latencies["customer"]
    print(f"  customer p50 {lt.ms(lt.pct(lat, 50))} p95 {lt.ms(lt.pct(lat, 95))} ms; missed "
          f"{sum(r.missed.values())}; CPU {r.cpu_per_call_second:.3f} s/call-s; RSS {r.peak_rss_mb:.0f} MB; "
          f"ready {r.ready_seconds:.2f} s; shed {r.shed_utterances}", file=sys.stderr, flush=True)
    return r


def customer_served(r: lt.RunResult, p95_limit: float) -> bool:
    """The degraded-service criterion: the customer is served in time, whatever happened to agent speech."""
    p95 = lt.pct(r.latencies["customer"], 95)
    return not math.isnan(p95) and p95 <= p95_limit and not r.missed["customer"] and not r.not_ended


def rss_per_extra_call(results: list[lt.RunResult]) -> dict[int, float]:
    """Peak RSS growth per added call between consecutive levels (level 1: against the idle server)."""
    out: dict[int, float] = {}
    prev: lt.RunResult | None = None
    for r in sorted(results, key=lambda x: x.n):
        if prev is None:
            out[r.n] = (r.peak_rss_mb - r.idle_rss_mb) / r.n
        else:
            out[r.n] = (r.peak_rss_mb - prev.peak_rss_mb) / (r.n - prev.n)
        prev = r
    return out


def report(rows: dict[str, list[tuple[lt.RunResult, bool, str]]], capacity: dict[str, tuple[int, bool]],
           args: argparse.Namespace, started_at: str, load_start: str, wall: float, notes: list[str]) -> str:
    ncores = cap.cores()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=lt.ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=lt.ROOT,
                           capture_output=True, text=True).stdout.strip()
    lines = [
        f"### Load: carecoach vs the naive baseline ({started_at})",
        "",
        f"- command: `{' '.join(['benchmarks/load.py', *sys.argv[1:]])}`, {wall / 60:.1f} min",
        f"- machine: {ncores} cores, {lt.cpu_model()}, {platform.python_implementation()} "
        f"{platform.python_version()}, Linux {platform.release()}; load average at start {load_start}",
        "- engine: PocketSphinx, bundled en-us model (fwdflat off, telephone initial CMN) on both servers; "
        "carecoach: VAD gate, endpoint silence default, worker processes with pooled decoders lent per "
        "utterance; naive: one decoder process per track, every frame decoded, no VAD",
        f"- git {rev.stdout.strip() or '?'}{' (+ uncommitted changes)' if dirty else ''}; "
        + (f"carecoach with {' '.join(f'{k}={v}' for k, v in args.env.items())}; " if args.env else "")
        + f"{args.speed:g}x real time, starts staggered by {args.stagger:g} s, calls cycle through tests/calls"
        + (f" cut to {QUICK_SECONDS:.0f} s (--quick)" if args.quick else ""),
        "- end of speech → final = arrival of the turn's last `utterance` on `/api/live` minus the send time of the "
        "turn's last audio frame (includes the endpoint silence); ASR lag = server-side VAD close → publish",
        "",
        "| server | calls | customer p50 / p95 / max ms | agent p50 / p95 / max ms | missed | "
        "ASR lag p50 / p95 ms (peak) | prompt after utterance p95 / max ms | CPU s per call-s | "
        "RSS peak MB | RSS per extra call MB | ready s | overload: live events, shed agent utts | load avg after | "
        "verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("naive", "carecoach"):
        results = [r for r, _, _ in rows.get(name, [])]
        per_call = rss_per_extra_call(results)
        for r, _ok, why in rows.get(name, []):
            h = r.server_hist.get("all")
            lag = f"{lt.ms(h[0])} / {lt.ms(h[1])}" if h else "-"
            if not math.isnan(r.asr_lag_peak):
                lag += f" ({lt.ms(r.asr_lag_peak)})"
            ph, pd = r.prompt_hist, r.prompt_delays
            prompt = f"{ph[1] * 1000:.1f} / ≤ {ph[2] * 1000:g} (n={ph[3]})" if ph else "-"
            if pd:
                prompt += f"; on the socket {lt.pct(pd, 50) * 1000:.1f} / {max(pd) * 1000:.1f}"
            over = f"{r.overload_changes}, {r.shed_utterances}" if name == "carecoach" else "-"
            lines.append(
                f"| {name} | {r.n} | {fmt3(r.latencies['customer'])} | {fmt3(r.latencies['agent'])} | "
                f"{sum(r.missed.values())}/{sum(r.turns.values())} | {lag} | {prompt} | "
                f"{r.cpu_per_call_second:.3f} | {r.peak_rss_mb:.0f} | {per_call.get(r.n, math.nan):+.1f}"
                f"{' (vs idle)' if r.n == min(per_call) else ''} | {r.ready_seconds:.2f} | {over} | "
                f"{r.load_after.split()[0] if r.load_after else '-'} | {why} |")
    lines += ["", f"| server | largest passing N | calls per core at customer p95 ≤ {args.p95:g} s | under overload: "
              "largest N with customer p95 ≤ the limit and every customer turn (agent speech may be shed) |",
              "|---|---|---|---|"]
    for name, (best, bounded) in capacity.items():
        mark = "" if bounded else "≥ "
        degraded = [r.n for r, _, _ in rows.get(name, []) if customer_served(r, args.p95)]
        lines.append(f"| {name} | {mark}{best} | {mark}{best / ncores:.2f} | {max(degraded, default=0)} |")
    if "carecoach" in capacity and "naive" in capacity:
        (ours, ours_b), (base, base_b) = capacity["carecoach"], capacity["naive"]
        if base == 0:
            ratio = "∞ (the baseline passed no level)"
        else:
            qual = "" if ours_b and base_b else (" (lower bound)" if base_b else " (baseline not bounded)")
            ratio = f"{ours / base:.2f}x{qual}"
        lines += ["", f"**Ratio carecoach / naive, calls per core: {ratio}** (target ≥ 2x)"]
    lines += ["", f"Targets at {TARGET_CALLS} concurrent real-time calls (carecoach):", ""]
    at = next((r for r, _, _ in rows.get("carecoach", []) if r.n == TARGET_CALLS), None)
    if at is None:
        lines.append(f"- not measured: no carecoach level with {TARGET_CALLS} calls")
    else:
        lat = at.latencies["customer"]
        results = [r for r, _, _ in rows["carecoach"]]
        per_call = rss_per_extra_call(results)
        extra = [v for n, v in per_call.items() if n > min(per_call)] or list(per_call.values())
        checks = [
            ("customer p50", lt.pct(lat, 50), TARGETS["p50"], "ms"),
            ("customer p95", lt.pct(lat, 95), TARGETS["p95"], "ms"),
            ("prompt after its utterance (server, max ≤)", at.prompt_hist[2] if at.prompt_hist else math.nan,
             TARGETS["prompt"], "ms"),
            ("prompt after its utterance (on /api/live, max)",
             max(at.prompt_delays) if at.prompt_delays else math.nan, TARGETS["prompt"], "ms"),
            ("RSS per extra call (max over levels)", max(extra) if extra else math.nan,
             TARGETS["rss_per_call_mb"], "MB"),
            ("start-up to ready (max over levels)", max(r.ready_seconds for r in results), TARGETS["ready"], "s"),
        ]
        for label, value, limit, unit in checks:
            scale = 1000.0 if unit == "ms" else 1.0
            if math.isnan(value):
                lines.append(f"- {label}: not measured (target ≤ {limit * scale:g} {unit})")
                continue
            verdict = "met" if value <= limit else f"**missed by {(value - limit) * scale:.1f} {unit}**"
            lines.append(f"- {label}: {value * scale:.1f} {unit} (target ≤ {limit * scale:g} {unit}): {verdict}")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def sizing(capacity: dict[str, tuple[int, bool]], rows: dict[str, list[tuple[lt.RunResult, bool, str]]]) -> str:
    results = [r for r, _, _ in rows.get("carecoach", [])]
    if not results or "carecoach" not in capacity:
        return ""
    best, bounded = capacity["carecoach"]
    per_call = rss_per_extra_call(results)
    extra = [v for n, v in per_call.items() if n > min(per_call)]
    base = min(r.idle_rss_mb for r in results)
    cpu = max(r.cpu_per_call_second for r in results)
    return "\n".join([
        "", "Sizing from this run:", "",
        f"- calls per core at p95 ≤ 1 s: {'' if bounded else '≥ '}{best / cap.cores():.1f}; CPU per call: "
        f"{cpu:.2f} core-seconds per call-second (upper bound over levels)",
        f"- memory: {base:.0f} MB idle (model and decoders, loaded once), "
        + (f"{max(extra):+.1f} MB per extra call (max over levels)" if extra
           else "per extra call: n/a (needs two levels)"),
    ])


async def main_async(args: argparse.Namespace) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    calls = lt.load_calls()
    if args.quick:
        calls = truncate(calls, QUICK_SECONDS)
    started_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = lt.loadavg()
    log_dir = Path(tempfile.mkdtemp(prefix="carecoach-load-logs-"))
    t0 = time.monotonic()
    rows: dict[str, list[tuple[lt.RunResult, bool, str]]] = {"naive": [], "carecoach": []}
    best = {"naive": 0, "carecoach": 0}
    failed: set[str] = set()
    notes: list[str] = []
    profile_level = max(args.levels) if args.profile else None
    profile_out: str | None = None
    profile_lines: list[str] = []
    for n in sorted(set(args.levels) | set(args.baseline_levels)):
        for name in ("naive", "carecoach"):
            wanted = args.baseline_levels if name == "naive" else args.levels
            if n not in wanted or (name == "naive" and name in failed):
                continue  # the baseline stops climbing at its first failure: beyond it, it only hogs the CPU
            profiler = Profiler(log_dir / f"carecoach-{n}-calls.pyspy.txt") if (
                name == "carecoach" and n == profile_level) else None
            r = await run_one(name, n, calls, args, log_dir, profiler)
            if profiler is not None:
                profile_out = profiler.stop()
                profile_lines = profiler.summary()
            if r is None:
                notes.append(f"{name} N={n}: the server crashed (logs in {log_dir}); counted as a failure")
                failed.add(name)
                continue
            ok, why = cap.verdict(r, args.p95)
            rows[name].append((r, ok, why))
            if ok and name not in failed:
                best[name] = n
            elif not ok:
                failed.add(name)
    capacity = {s: (best[s], s in failed) for s in ("carecoach", "naive") if rows[s] or s in failed}
    if profile_out:
        notes += [f"py-spy profile of carecoach at {profile_level} calls (collapsed stacks: {profile_out}); "
                  "where its CPU went:", "", *profile_lines]
    notes.append(f"Server logs: {log_dir}")
    text = report(rows, capacity, args, started_at, load_start, time.monotonic() - t0, notes)
    print(text + sizing(capacity, rows))
    if args.json:
        args.json.write_text(json.dumps(
            {"cores": cap.cores(), "capacity": {s: {"calls": c, "bounded": b} for s, (c, b) in capacity.items()},
             "levels": [{"server": s, "pass": ok, "verdict": why, **lt.result_json(r)}
                        for s, lst in rows.items() for r, ok, why in lst]}, indent=1, default=str))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=None,
                        help="concurrent calls for carecoach (default 1 2 4 6 8; --quick: 1 4)")
    parser.add_argument("--baseline-levels", type=int, nargs="*", default=None,
                        help="concurrent calls for the naive baseline, climbed until it fails (default 1 2 4; "
                        "--quick: 1 2; none: skip it)")
    parser.add_argument("--quick", action="store_true", help=f"calls cut to {QUICK_SECONDS:.0f} s, fewer levels")
    parser.add_argument("--speed", type=float, default=1.0, help="1 = real time")
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds between call starts")
    parser.add_argument("--p95", type=float, default=1.0, help="customer p95 limit for capacity, s")
    parser.add_argument("--profile", action="store_true", help="py-spy flame graph of the largest carecoach level")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument("--env", action="append", default=[], metavar="CARECOACH_X=V",
                        help="configuration for the carecoach server (repeatable), e.g. CARECOACH_ASR_DECODERS=6")
    args = parser.parse_args()
    if args.speed <= 0:
        parser.error("--speed must be > 0")
    if any("=" not in e or not e.startswith("CARECOACH_") for e in args.env):
        parser.error("--env takes CARECOACH_NAME=VALUE")
    args.env = dict(e.split("=", 1) for e in args.env)
    if args.levels is None:
        args.levels = [1, 4] if args.quick else [1, 2, 4, 6, 8]
    if args.baseline_levels is None:
        args.baseline_levels = [1, 2] if args.quick else [1, 2, 4]
    try:
        return asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; servers stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
