"""PocketSphinx streaming ASR: worker processes with pooled decoders lent per active utterance.

Owns: the worker processes, the decoder-slot pool, and the pipes between them and the event loop.

Why this shape (measured, see DESIGN.md "ASR"): PocketSphinx holds the GIL while decoding, so
threads don't scale and decoding must leave the process; a `Decoder` costs ~90 MB and up to ~1 s
to create, so decoders are created once at start-up and *lent* to whichever stream has an active
utterance. Most tracks are silent at any moment (the VAD gate drops silence), so a few decoders
serve many tracks.

Plumbing: each worker has one duplex pipe, a sender thread (drains a `queue.Queue`, so `push()`
never blocks the loop on a full pipe) and a receiver thread (hands results to the owning stream's
loop with `call_soon_threadsafe`, and notices a dead worker by EOF). Pool state is shared by those
threads and the loop, so it lives under one lock and every critical section is short.

Overload: when every decoder is lent, utterances wait (their audio buffered, bounded); a freed decoder goes
to the oldest waiting *customer* utterance first. `lag()` reports how long the oldest owed work has waited,
which `voice.asr.overload` turns into the engine-wide degraded state.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing as mp
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from voice.asr.base import EngineError, Results, Timeline
from voice.types import Transcript, Word

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # the bundled en-us model
FRAME_RATE = 100  # PocketSphinx frames per second (-frate default)
PARTIAL_EVERY = 0.3  # seconds of audio between partial hypotheses
MAX_QUEUED_SECONDS = 30.0  # per waiting utterance; beyond this, audio is dropped *and logged*
# Messages a worker's send queue may hold (~30 s of 20 ms pushes for each of its decoders) before audio
# for it is dropped and logged: a starved worker costs bounded memory, never an unbounded backlog.
MAX_SEND_QUEUE = 1500
READY_TIMEOUT = 30.0
PARTIAL_CONFIDENCE = 0.5  # partials carry no posterior; a neutral value
# The flat-lexicon second pass runs over the whole utterance at end_utt(), i.e. after the speaker has
# stopped: on our telephone calls it cost 229 ms p50 / 508 ms p95 of end-of-speech latency for a WER
# change of 0.413 -> 0.419 (benchmarks/latency.py, README). Without it, end_utt() takes ~5 ms.
FWDFLAT = False

# Initial cepstral mean for a track's first utterance. Live CMN only starts adapting after ~5 s of
# audio, so with the model's default (tuned for wideband speech) short first utterances of
# 8 kHz telephone audio, upsampled to 16 kHz, decode terribly: WER 0.89 vs 0.34 with this value
# on our telephone test set. It is the mean PocketSphinx settled on after 40 Asterisk prompts
# (vm-*, queue-*, ...; disjoint from the test set) sent through 8 kHz mu-law and upsampled.
# Later utterances carry over the track's own adapted mean.
TELEPHONE_CMN = "49.7,33.4,-33.8,37.9,-26.1,-0.8,6.0,-20.9,26.7,-16.4,-6.1,5.9,-13.1"


def clean_word(word: str) -> str | None:
    """Strip a pronunciation variant (`was(2)`); None for fillers/silences (`<sil>`, `[NOISE]`, `++UH++`)."""
    w = word.split("(", 1)[0].strip()
    if not w or w[0] in "<[+" or w.startswith("++"):
        return None
    return w


# ----------------------------------------------------------------------------------------------
# worker process side
# ----------------------------------------------------------------------------------------------
def _worker_main(conn: Connection, n_decoders: int, cmn_init: str | None) -> None:
    """Child process: own `n_decoders` decoders; obey start/audio/end messages tagged by slot."""
    from pocketsphinx import Decoder

    decoders = [Decoder(loglevel="FATAL", fwdflat=FWDFLAT) for _ in range(n_decoders)]
    initial_cmn = [cmn_init or d.get_cmn() for d in decoders]
    tokens: list[int | None] = [None] * n_decoders
    since = [0] * n_decoders  # samples since the last partial
    last = [""] * n_decoders
    every = int(PARTIAL_EVERY * SAMPLE_RATE)
    conn.send(("ready",))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        op = msg[0]
        if op == "stop":
            return
        slot, token = msg[1], msg[2]
        d = decoders[slot]
        if op == "start":
            if tokens[slot] is not None:  # defensive: the parent never double-books a slot
                d.end_utt()
            # This track's channel normalisation from its last utterance, or the model's initial
            # one for a new track: never the previous borrower's, so results don't depend on lending.
            d.set_cmn(msg[3] or initial_cmn[slot])
            d.start_utt()
            tokens[slot], since[slot], last[slot] = token, 0, ""
        elif tokens[slot] != token:
            continue
        elif op == "audio":
            d.process_raw(msg[3], False, False)
            since[slot] += len(msg[3]) // 2
            if since[slot] >= every:
                since[slot] = 0
                hyp = d.hyp()
                text = hyp.hypstr if hyp is not None else ""
                if text and text != last[slot]:
                    last[slot] = text
                    conn.send(("partial", slot, token, text))
        elif op == "end":
            d.end_utt()
            hyp = d.hyp()
            segs = [(s.word, s.start_frame, s.end_frame, float(s.prob)) for s in d.seg()] if hyp else []
            conn.send(("final", slot, token, segs, d.get_cmn()))
            tokens[slot] = None


# ----------------------------------------------------------------------------------------------
# parent side
# ----------------------------------------------------------------------------------------------
Slot = tuple[int, int]  # (worker index, decoder index)


@dataclass(eq=False)
class _Utt:
    stream: SphinxStream
    token: int
    base: float  # the stream's fed-audio clock (seconds) where this utterance starts
    slot: Slot | None = None
    buffered: list[bytes] = field(default_factory=list)
    buffered_samples: int = 0
    dropped_samples: int = 0
    ended: bool = False
    abandoned: bool = False
    customer: bool = False  # served first when utterances queue for a decoder
    ended_at: float | None = None  # monotonic time of flush(): its final is owed from then on


class _Worker:
    def __init__(self, ctx: Any, idx: int, n_decoders: int, cmn_init: str | None) -> None:
        self.idx = idx
        parent, child = ctx.Pipe(duplex=True)
        self.conn: Connection = parent
        self.proc = ctx.Process(
            target=_worker_main, args=(child, n_decoders, cmn_init), name=f"sphinx-worker-{idx}", daemon=True
        )
        self.proc.start()
        child.close()  # so the parent sees EOF as soon as the child dies
        self.sendq: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []

    def wait_ready(self) -> None:
        if not self.conn.poll(READY_TIMEOUT):
            raise EngineError(f"sphinx worker {self.idx} did not start", retryable=True)
        msg = self.conn.recv()
        if msg != ("ready",):
            raise EngineError(f"sphinx worker {self.idx} sent {msg!r}", retryable=True)

    def send(self, msg: tuple[Any, ...]) -> None:
        self.sendq.put(msg)

    def sender(self) -> None:
        while (msg := self.sendq.get()) is not None:
            try:
                self.conn.send(msg)
            except (OSError, ValueError):
                return  # the receiver reports the death




class SphinxStream:
    """One track. Utterances are opened by the first push after a flush and closed by flush()."""

    def __init__(self, engine: SphinxEngine, label: str) -> None:
        self.label = label
        self._engine = engine
        self._loop = asyncio.get_running_loop()
        self._timeline = Timeline(SAMPLE_RATE)
        self._out = Results()
        self._utt: _Utt | None = None  # the open utterance
        self._order: deque[_Utt] = deque()  # flushed utterances whose final is not yet delivered
        self._results: dict[int, Transcript | None] = {}
        self.cmn: str | None = None  # last cepstral mean, carried to whichever decoder we borrow next
        # Session labels are CALL/SPEAKER: the customer's utterances jump the decoder queue.
        self._customer = label.endswith("/customer")
        self._ending = False
        self._dead = False

    # -- input (on the loop) -----------------------------------------------------------------------
    def push(self, pcm: bytes, start: float) -> None:
        if self._ending or self._dead or not pcm:
            return
        n = len(pcm) // 2
        if self._utt is None:
            self._utt = _Utt(self, next(self._engine._tokens), self._timeline.fed_seconds,
                             customer=self._customer)
            self._timeline.push(n, start)
            self._engine._begin(self._utt)
        else:
            self._timeline.push(n, start)
        self._engine._feed(self._utt, pcm)

    def flush(self) -> None:
        if self._dead or self._utt is None:
            return
        utt, self._utt = self._utt, None
        self._order.append(utt)
        self._engine._end(utt)

    def end(self) -> None:
        if self._ending:
            return
        self.flush()
        self._ending = True
        self._maybe_finish()

    async def aclose(self) -> None:
        if self._dead:
            return
        self._abandon()
        self._out.finish()

    @property
    def worker_pid(self) -> int | None:
        """The pid of the worker decoding the open utterance (None if idle or queued)."""
        utt = self._utt
        if utt is None or utt.slot is None:
            return None
        pid: int | None = self._engine._workers[utt.slot[0]].proc.pid
        return pid

    # -- output ------------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Transcript]:
        return self

    async def __anext__(self) -> Transcript:
        return await self._out.__anext__()

    # -- results (called on the loop via call_soon_threadsafe) -------------------------------------
    def _on_partial(self, utt: _Utt, text: str) -> None:
        # Only the open utterance, and only once earlier finals are out: keeps output in order.
        if self._dead or utt is not self._utt or self._order:
            return
        start = self._timeline.absolute(utt.base)
        end = max(start, self._timeline.absolute(self._timeline.fed_seconds))
        words = [w for w in (clean_word(x) for x in text.split()) if w]
        if words:
            self._out.put(
                Transcript("partial", " ".join(words), round(start, 3), round(end, 3), PARTIAL_CONFIDENCE)
            )

    def _on_final(self, utt: _Utt, segs: list[tuple[str, int, int, float]], cmn: str) -> None:
        if self._dead:
            return
        self.cmn = cmn
        tl = self._timeline
        words = []
        for raw, sf, ef, prob in segs:
            w = clean_word(raw)
            if w is None:
                continue
            start = tl.absolute(utt.base + sf / FRAME_RATE)
            end = tl.absolute(utt.base + (ef + 1) / FRAME_RATE)
            conf = prob if 0.0 < prob <= 1.0 else PARTIAL_CONFIDENCE
            words.append(Word(w, round(start, 3), round(end, 3), round(conf, 3)))
        self._results[utt.token] = (
            Transcript(
                "final",
                " ".join(w.text for w in words),
                words[0].start,
                words[-1].end,
                round(sum(w.confidence for w in words) / len(words), 3),
                tuple(words),
            )
            if words
            else None
        )
        while self._order and self._order[0].token in self._results:
            t = self._results.pop(self._order.popleft().token)
            if t is not None:
                self._out.put(t)
        self._maybe_finish()

    def _on_error(self, exc: EngineError) -> None:
        if self._dead:
            return
        self._abandon()
        self._out.fail(exc)

    def _maybe_finish(self) -> None:
        if self._ending and not self._order and not self._dead:
            self._dead = True
            self._out.finish()

    def _abandon(self) -> None:
        self._dead = True
        for utt in [*self._order, *([self._utt] if self._utt else [])]:
            self._engine._abandon(utt)
        self._order.clear()
        self._utt = None


class SphinxEngine:
    """`workers` processes x `decoders_per_worker` pre-created decoders, lent per utterance.

    `cmn_init` is the first-utterance cepstral mean: telephone audio by default (the pipeline's
    input); None uses the model's wideband default (e.g. for 16 kHz microphone audio).
    """

    name = "pocketsphinx"
    sample_rate = SAMPLE_RATE

    def __init__(
        self, workers: int = 2, decoders_per_worker: int = 2, cmn_init: str | None = TELEPHONE_CMN
    ) -> None:
        self.cmn_init = cmn_init
        self.n_workers = max(1, workers)
        self.n_decoders = max(1, decoders_per_worker)
        self._ctx = mp.get_context("spawn")
        self._lock = threading.RLock()
        self._workers: list[_Worker] = []
        self._free: deque[Slot] = deque()
        self._active: dict[Slot, _Utt] = {}
        self._waiting: deque[_Utt] = deque()
        self._tokens = itertools.count(1)
        self._started = False
        self._closing = False
        #: set while every worker is up; cleared during a respawn
        self.all_workers_up = threading.Event()
        self.respawns = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        # Spawn all workers first so their decoders are built in parallel, then wait for each.
        workers = [_Worker(self._ctx, i, self.n_decoders, self.cmn_init) for i in range(self.n_workers)]
        try:
            await asyncio.gather(*(asyncio.to_thread(w.wait_ready) for w in workers))
        except BaseException:
            for w in workers:
                w.proc.kill()
            raise
        with self._lock:
            self._workers = workers
            for w in workers:
                self._attach(w)
            self._started = True
            self.all_workers_up.set()

    @property
    def ready(self) -> bool:
        return self._started and not self._closing

    def stream(self, label: str) -> SphinxStream:
        if not self.ready:
            raise EngineError("SphinxEngine.start() has not completed", retryable=False)
        return SphinxStream(self, label)

    async def aclose(self) -> None:
        if self._closing:
            return
        with self._lock:
            self._closing = True
            workers = list(self._workers)
        for w in workers:
            w.send(("stop",))
            w.sendq.put(None)
        await asyncio.gather(*(asyncio.to_thread(self._reap, w) for w in workers))

    @staticmethod
    def _reap(w: _Worker) -> None:
        w.proc.join(5)
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join()
        w.conn.close()
        for t in w.threads:
            if t is not threading.current_thread():
                t.join(5)

    # -- worker plumbing (lock held by callers where noted) ----------------------------------------
    def _attach(self, w: _Worker) -> None:
        """Start w's threads and add its slots to the pool. Lock held."""
        w.threads = [
            threading.Thread(target=w.sender, name=f"sphinx-send-{w.idx}", daemon=True),
            threading.Thread(target=self._receiver, args=(w,), name=f"sphinx-recv-{w.idx}", daemon=True),
        ]
        for t in w.threads:
            t.start()
        for d in range(self.n_decoders):
            self._release((w.idx, d))

    def _receiver(self, w: _Worker) -> None:
        while True:
            try:
                msg = w.conn.recv()
            except (EOFError, OSError):
                break
            kind, slot_idx, token = msg[0], msg[1], msg[2]
            slot = (w.idx, slot_idx)
            with self._lock:
                utt = self._active.get(slot)
                if utt is None or utt.token != token:
                    continue
                if kind == "final":
                    del self._active[slot]
                    self._release(slot)
            if utt.abandoned:
                continue
            s = utt.stream
            if kind == "partial":
                self._call(s, s._on_partial, utt, msg[3])
            else:
                self._call(s, s._on_final, utt, msg[3], msg[4])
        self._on_worker_exit(w)

    @staticmethod
    def _call(s: SphinxStream, fn: Callable[..., None], *args: Any) -> None:
        try:
            s._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # that stream's loop is closed: nobody is listening any more

    def _on_worker_exit(self, w: _Worker) -> None:
        with self._lock:
            if self._closing:
                return
            self.all_workers_up.clear()
            self._free = deque(s for s in self._free if s[0] != w.idx)
            lost = [(slot, u) for slot, u in self._active.items() if slot[0] == w.idx]
            for slot, _ in lost:
                del self._active[slot]
        code = w.proc.exitcode if not w.proc.is_alive() else None
        log.error("sphinx worker %d died (exit %s); %d utterance(s) lost", w.idx, code, len(lost))
        for _, utt in lost:
            if not utt.abandoned:
                err = EngineError(f"sphinx worker {w.idx} died mid-utterance", retryable=True)
                self._call(utt.stream, utt.stream._on_error, err)
        w.sendq.put(None)
        self._respawn(w.idx)

    def _respawn(self, idx: int) -> None:
        """Runs on the dead worker's receiver thread, so the loop never waits for it."""
        for attempt in range(3):
            if self._closing:
                return
            try:
                nw = _Worker(self._ctx, idx, self.n_decoders, self.cmn_init)
                nw.wait_ready()
            except Exception:
                log.exception("respawning sphinx worker %d (attempt %d) failed", idx, attempt + 1)
                continue
            with self._lock:
                if self._closing:
                    nw.proc.kill()
                    return
                self._workers[idx] = nw
                self._attach(nw)
                self.respawns += 1
                if all(x.proc.is_alive() for x in self._workers):
                    self.all_workers_up.set()
            log.info("sphinx worker %d respawned", idx)
            return

    # -- the decoder pool --------------------------------------------------------------------------
    def _release(self, slot: Slot) -> None:
        """A slot became free: hand it to a waiting utterance, else pool it. Lock held.

        Customer utterances go first, and within a speaker an ended one (the speaker stopped: its final is
        owed now, and its buffered audio decodes at ~5x real time, so it holds the slot briefly) before an
        open one (which holds the slot for as long as the speaker goes on); then the oldest."""
        self._waiting = deque(u for u in self._waiting if not u.abandoned)
        if not self._waiting:
            self._free.append(slot)
            return
        utt = min(self._waiting, key=lambda u: (not u.customer, not u.ended))  # min() keeps the oldest of ties
        self._waiting.remove(utt)
        self._grant(slot, utt)

    def lag(self) -> float:
        """ASR lag, s: how long the oldest owed final has been owed, i.e. since its speaker stopped (flush),
        whether the utterance is still queued for a decoder or being finished. Healthy: ~0.05 s. An open
        utterance waiting for a decoder is not late yet (its audio is buffered and decodes at ~5x real time
        once it gets one), so it does not count until it ends. Read by `voice.asr.overload`."""
        now = time.monotonic()
        with self._lock:
            since = [u.ended_at for u in (*self._waiting, *self._active.values())
                     if u.ended_at is not None and not u.abandoned]
        return max(0.0, now - min(since)) if since else 0.0

    @property
    def queued(self) -> int:
        """Utterances waiting for a decoder."""
        with self._lock:
            return sum(1 for u in self._waiting if not u.abandoned)

    def _grant(self, slot: Slot, utt: _Utt) -> None:
        """Lock held."""
        utt.slot = slot
        self._active[slot] = utt
        w = self._workers[slot[0]]
        w.send(("start", slot[1], utt.token, utt.stream.cmn))
        for pcm in utt.buffered:
            w.send(("audio", slot[1], utt.token, pcm))
        utt.buffered.clear()
        if utt.ended:
            w.send(("end", slot[1], utt.token))

    def _begin(self, utt: _Utt) -> None:
        with self._lock:
            if self._free:
                self._grant(self._free.popleft(), utt)
            else:
                log.info("all %d decoders busy; queueing %s", len(self._active), utt.stream.label)
                self._waiting.append(utt)

    def _feed(self, utt: _Utt, pcm: bytes) -> None:
        with self._lock:
            if utt.slot is not None:
                w = self._workers[utt.slot[0]]
                if w.sendq.qsize() > MAX_SEND_QUEUE * self.n_decoders:
                    if not utt.dropped_samples:
                        log.warning("%s: sphinx worker %d is far behind; dropping audio", utt.stream.label, w.idx)
                    utt.dropped_samples += len(pcm) // 2
                    return
                w.send(("audio", utt.slot[1], utt.token, pcm))
                return
            n = len(pcm) // 2
            if utt.buffered_samples + n > MAX_QUEUED_SECONDS * SAMPLE_RATE:
                if not utt.dropped_samples:
                    log.warning("%s: decoder queue full; dropping audio", utt.stream.label)
                utt.dropped_samples += n
                return
            utt.buffered.append(pcm)
            utt.buffered_samples += n

    def _end(self, utt: _Utt) -> None:
        with self._lock:
            utt.ended = True
            utt.ended_at = time.monotonic()
            if utt.dropped_samples:
                log.warning(
                    "%s: dropped %.1f s of audio while waiting for a decoder",
                    utt.stream.label,
                    utt.dropped_samples / SAMPLE_RATE,
                )
            if utt.slot is not None:
                self._workers[utt.slot[0]].send(("end", utt.slot[1], utt.token))

    def _abandon(self, utt: _Utt) -> None:
        """The stream no longer wants this utterance: free its slot as soon as possible."""
        with self._lock:
            utt.abandoned = True
            if utt.slot is None:
                try:
                    self._waiting.remove(utt)
                except ValueError:
                    pass
            elif not utt.ended:
                utt.ended = True
                self._workers[utt.slot[0]].send(("end", utt.slot[1], utt.token))
