"""One live call: owns its two tracks' audio paths, their recogniser streams, and every task it starts.

Carrier adapters hand the session decoded media (`on_media`) keyed by telephony time; the session
aligns each track on that clock (filling gaps, dropping repeats), records it, gates it with the VAD,
feeds speech to the ASR, and turns finals into stored, classified, published utterances. Each final
(and partial) goes through the pure phase tracker and coach; the session owns their clock (the
call's own media time, ticked as audio arrives), the I/O, and the whisper tasks prompts start.
`finish()` ends the tracks, drains the recognisers, infers the outcome, and stamps the call `ended`
or `interrupted` — nothing already heard is dropped on either path.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dialog.coach import Coach, PromptEvent
from dialog.outcome import infer_outcome
from dialog.phases import PhaseEvent, PhaseTracker
from dialog.store import CallStore, StoreError
from dialog.types import CallStatus, NewCall, Phase, Utterance
from voice.asr.base import EngineError, SpeechEngine, SpeechStream
from voice.asr.overload import engine_lag, guard_for
from voice.codec import Resampler, rms, ulaw_to_pcm16
from voice.hub import LiveHub
from voice.logs import bind_call
from voice.metrics import Metrics
from voice.recording import Recorder
from voice.spill import Spill
from voice.types import PIPELINE_RATE, SPEAKERS, Speaker, Transcript
from voice.vad import FRAME_BYTES, Endpointer, SpeechAudio, SpeechEnded, SpeechStarted

log = logging.getLogger(__name__)

#: Tolerated timestamp jitter before a jump counts as missing (or repeated) audio.
JITTER_SAMPLES = 160
#: Larger forward jumps are treated as a bad timestamp, not ten minutes of silence.
MAX_GAP_SAMPLES = PIPELINE_RATE * 60
#: Fresh recogniser streams a track may get after retryable engine failures.
MAX_STREAM_RESTARTS = 3
#: A call whose media runs this far ahead of the wall clock is a faster-than-real-time replay (ASR overload).
REPLAY_AHEAD_SECONDS = 2.0
#: How often (call seconds) the phase tracker and coach see time pass between utterances.
TICK_SECONDS = 0.25
#: Finalised utterances held in memory while the database refuses them; beyond this the oldest go to
#: the spill file, so a long outage costs bounded memory and loses nothing.
MAX_UNSAVED = 500
#: Backoff between retries of unsaved utterances: doubling from the first, capped (seconds).
RETRY_FIRST, RETRY_MAX = 0.5, 8.0
#: How long the end of a call keeps retrying before what is left goes to the spill file. Short enough
#: to fit a SIGTERM grace period (30 s by default on Kubernetes).
FINISH_RETRY_SECONDS = 10.0


class Classify(Protocol):
    def __call__(self, text: str, speaker: Speaker, context: Sequence[tuple[str, str]],
                 cues: AudioCueValues) -> tuple[Phase, float]: ...


@dataclass(frozen=True, slots=True)
class AudioCueValues:
    """Prosody of one utterance relative to the speaker's own earlier utterances."""

    loudness_ratio: float
    rate_ratio: float
    overlap: float


NEUTRAL_CUES = AudioCueValues(1.0, 1.0, 0.0)


@dataclass(slots=True)
class _Track:
    speaker: Speaker
    stream: SpeechStream
    endpointer: Endpointer
    position: int = 0  # samples placed on the call's timeline so far
    pending: bytearray = field(default_factory=bytearray)  # < one VAD frame, waiting for more
    resampler: Resampler | None = None
    speech_energy: list[float] = field(default_factory=list)  # RMS of frames in the open utterance
    loudness_history: list[float] = field(default_factory=list)
    rate_history: list[float] = field(default_factory=list)
    intervals: list[tuple[float, float]] = field(default_factory=list)  # VAD speech spans
    utterance_start: float = 0.0
    pushed_until: float = 0.0  # stream time just after the last audio sent to the recogniser
    ended_at_wall: float | None = None  # when the VAD closed the latest utterance
    shedding: bool = False  # the open utterance is recorded but not recognised (ASR overload)
    consumer: asyncio.Task[None] | None = None


class CallSession:
    def __init__(
        self,
        call: NewCall,
        *,
        engine: SpeechEngine,
        store: CallStore,
        hub: LiveHub,
        metrics: Metrics,
        classify: Classify,
        redact: Callable[[str], str] | None,
        recorder: Recorder | None,
        coach: Coach,
        tracker: PhaseTracker | None = None,
        whisper: Callable[[PromptEvent], Awaitable[bool]] | None = None,
        endpoint_silence: float = 0.4,
        endpoint_hold: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], str],
        spill: Spill | None = None,
    ) -> None:
        self.call = call
        self.engine = engine
        self.store = store
        self.hub = hub
        self.metrics = metrics
        self._classify = classify
        self._redact = redact
        self.recorder = recorder
        self.coach = coach
        self.tracker = tracker or PhaseTracker()
        self._whisper = whisper
        self._whispers: set[asyncio.Task[None]] = set()
        self._last_tick = 0.0
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._endpoint_silence = endpoint_silence
        self._endpoint_hold = endpoint_hold
        self._tracks: dict[Speaker, _Track] = {}
        self._overload = guard_for(engine)  # shared by every call on this engine
        self._overload_seen = "normal"  # the state this call last announced
        self._started_wall = self._monotonic()
        self._live_paced = True  # media arrives at real-time pace (not a faster replay)
        self.shed_utterances = 0
        self._next_seq = 0
        self._unsaved: list[Utterance] = []
        self._context: list[tuple[str, str]] = []
        self.utterances: list[Utterance] = []
        self.frame_errors = 0
        self.finished = False
        self._finishing: asyncio.Task[None] | None = None
        self._save_lock = asyncio.Lock()
        self._spill = spill
        self._retry: asyncio.Task[None] | None = None  # retries unsaved utterances during an outage
        self._outage_since: float | None = None
        self.spilled = 0

    @property
    def call_sid(self) -> str:
        return self.call.call_sid

    @property
    def duration(self) -> float:
        return max((t.position for t in self._tracks.values()), default=0) / PIPELINE_RATE

    def _event(self, kind: str, at: float, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "call_sid": self.call_sid, "at": round(at, 3), **fields}

    async def start(self, first_seq: int = 0) -> None:
        self._next_seq = first_seq
        self._started_wall = self._monotonic()
        await self.store.create_call(self.call)
        if self.recorder is not None:
            await self.recorder.open()
        for speaker in SPEAKERS:
            track = _Track(speaker, self.engine.stream(f"{self.call_sid}/{speaker}"),
                           Endpointer(silence=self._endpoint_silence, hold=self._endpoint_hold))
            track.consumer = asyncio.get_running_loop().create_task(
                self._consume(track), name=f"asr {self.call_sid} {speaker}")
            self._tracks[speaker] = track
        self.metrics.active_calls.inc()
        self.hub.publish(self._event(
            "call_started", 0.0, stream_sid=self.call.stream_sid, started_at=self.call.started_at,
            **{"from": self.call.from_number, "to": self.call.to_number, "agent": self.call.agent}))

    def count_error(self, reason: str) -> None:
        self.frame_errors += 1
        self.metrics.frame_errors.labels(reason).inc()

    # --- audio in ------------------------------------------------------------------------------

    def on_media(self, speaker: Speaker, timestamp_ms: int, ulaw: bytes) -> None:
        self.on_pcm(speaker, timestamp_ms, ulaw_to_pcm16(ulaw))

    def on_pcm(self, speaker: Speaker, timestamp_ms: int, pcm: bytes) -> None:
        """Mono PCM16 (native order) at PIPELINE_RATE: the entry point of carriers that don't send μ-law."""
        if self.finished:
            return
        track = self._tracks[speaker]
        offset = timestamp_ms * PIPELINE_RATE // 1000 - track.position
        if offset > MAX_GAP_SAMPLES:
            self.count_error("timestamp_jump")
            offset = 0
        if offset >= JITTER_SAMPLES:
            # Missing chunks: keep both tracks on the telephony clock by filling the hole with silence.
            self.metrics.media_repaired.labels(speaker, "gap").inc(offset / PIPELINE_RATE)
            self._place(track, bytes(offset * 2))
        elif offset <= -JITTER_SAMPLES:
            # A repeated or overlapping chunk: drop what is already on the timeline.
            overlap = min(-offset, len(pcm) // 2)
            self.metrics.media_repaired.labels(speaker, "repeat").inc(overlap / PIPELINE_RATE)
            pcm = pcm[overlap * 2:]
        if pcm:
            self.metrics.frames.labels(speaker).inc()
            self._place(track, pcm)

    def _place(self, track: _Track, pcm: bytes) -> None:
        if self.recorder is not None:
            self.recorder.write(track.speaker, pcm)
        frame_start = (track.position - len(track.pending) // 2) / PIPELINE_RATE
        track.position += len(pcm) // 2
        track.pending += pcm
        usable = len(track.pending) - len(track.pending) % FRAME_BYTES
        for i in range(0, usable, FRAME_BYTES):
            frame = bytes(track.pending[i:i + FRAME_BYTES])
            self._gate(track, frame, frame_start + i // 2 / PIPELINE_RATE)
        del track.pending[:usable]
        now = self.duration
        if now - self._last_tick >= TICK_SECONDS:
            self._last_tick = now
            self._check_overload(now)
            self._on_phases(self.tracker.tick(now))
            self._on_prompts(self.coach.tick(now, phase_state=self.tracker.current))

    def _gate(self, track: _Track, frame: bytes, start: float) -> None:
        for event in track.endpointer.feed(frame, start):
            match event:
                case SpeechStarted(start=utterance_start):
                    track.utterance_start = utterance_start
                    track.speech_energy.clear()
                    # Under ASR overload the agent's new utterances are recorded, not recognised.
                    track.shedding = track.speaker == "agent" and self._overload.degraded and self._live_paced
                    if not track.shedding:
                        track.resampler = Resampler(PIPELINE_RATE, self.engine.sample_rate)
                case SpeechAudio(pcm=pcm, start=audio_start):
                    track.speech_energy.append(rms(pcm))
                    if track.shedding:
                        continue
                    assert track.resampler is not None
                    track.stream.push(track.resampler.process(pcm), audio_start)
                    track.pushed_until = audio_start + len(pcm) / 2 / PIPELINE_RATE
                case SpeechEnded(end=end):
                    self._close_utterance(track, end)

    def _close_utterance(self, track: _Track, end: float) -> None:
        if track.shedding:
            track.shedding = False
            track.intervals.append((track.utterance_start, end))  # still counts for overlap cues
            self.shed_utterances += 1
            self.metrics.asr_shed.labels(track.speaker).inc()
            self.metrics.asr_shed_seconds.labels(track.speaker).inc(max(0.0, end - track.utterance_start))
            return
        if track.resampler is not None:
            tail = track.resampler.process(b"", last=True)
            if tail:  # the filter's delay line: it continues where the last push ended
                track.stream.push(tail, track.pushed_until)
            track.resampler = None
        track.intervals.append((track.utterance_start, end))
        track.ended_at_wall = self._monotonic()
        track.stream.flush()

    def _check_overload(self, now: float) -> None:
        """Update the engine-wide overload state from the engine's ASR lag; announce changes on this call."""
        lag = engine_lag(self.engine)
        change = self._overload.update(self._monotonic(), lag)
        self.metrics.asr_lag.set(lag)
        if change is not None:
            self.metrics.asr_degraded.set(1 if change.state == "degraded" else 0)
            self.metrics.asr_overload_changes.labels(change.state).inc()
            log.warning("ASR %s (lag %.2f s): agent speech is %s", change.state, lag,
                        "recorded but not recognised" if change.state == "degraded" else "recognised again")
        # A call streamed faster than real time (a replay, `carecoach demo --speed 0`) makes its own backlog:
        # its speech is all still wanted, so it neither sheds nor announces.
        self._live_paced = now <= self._monotonic() - self._started_wall + REPLAY_AHEAD_SECONDS
        state = self._overload.state
        if self._live_paced and state != self._overload_seen:
            self._overload_seen = state
            self.hub.publish(self._event("overload", now, state=state,
                                         dropped="agent" if state == "degraded" else None,
                                         lag=round(lag, 3), shed_utterances=self.shed_utterances))

    # --- transcripts out -----------------------------------------------------------------------

    async def _consume(self, track: _Track) -> None:
        for attempt in range(MAX_STREAM_RESTARTS + 1):
            try:
                async for result in track.stream:
                    if result.kind == "partial":
                        if result.text:
                            self._on_partial(track, result)
                    else:
                        await self._on_final(track, result)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # One engine failure never ends the call or touches another call. A retryable one
                # (a crashed worker) gets a fresh stream; the utterance in flight is lost, and counted.
                self.metrics.asr_errors.labels(self.engine.name).inc()
                retry = isinstance(exc, EngineError) and exc.retryable and attempt < MAX_STREAM_RESTARTS
                log.error("call %s/%s: ASR failed (%s); %s", self.call_sid, track.speaker, exc,
                          "restarting the recogniser" if retry else "this track is no longer transcribed")
                await track.stream.aclose()
                if not retry or self._finishing is not None:
                    return
                track.stream = self.engine.stream(f"{self.call_sid}/{track.speaker}")

    def _on_partial(self, track: _Track, result: Transcript) -> None:
        # Hypothesis-aware endpointing: a phrase left open ("… because") waits the longer hold.
        track.endpointer.hypothesis(result.text.split(), result.start)
        text = self._clean(result.text)
        self.hub.publish(self._event("partial", result.end, speaker=track.speaker, start=round(result.start, 3),
                                     text=text))
        # The coach sees partials so a long venting turn is coached while it is still going on.
        phase, sentiment = self._classify(text, track.speaker, self._context[-8:], NEUTRAL_CUES)
        self._on_phases(self.tracker.observe_partial(track.speaker, result.start, result.end, phase))
        self._on_prompts(self.coach.on_partial(track.speaker, text, result.start, result.end, phase=phase,
                                               sentiment=sentiment, phase_state=self.tracker.current))

    def _on_phases(self, events: list[PhaseEvent]) -> None:
        for event in events:
            self.hub.publish(self._event("phase", event.start, phase=event.phase, previous=event.previous))

    def _on_prompts(self, events: list[PromptEvent]) -> None:
        for event in events:
            self.hub.publish(self._event("prompt", event.at, id=event.id, text=event.text, whisper=event.whisper,
                                         priority=event.priority, trigger=event.trigger))
            if self._whisper is not None and not self.finished:
                task = asyncio.get_running_loop().create_task(self._say(event), name=f"whisper {event.id}")
                self._whispers.add(task)
                task.add_done_callback(self._whispers.discard)

    async def _say(self, event: PromptEvent) -> None:
        assert self._whisper is not None
        try:
            if await self._whisper(event):
                self.coach.mark_whispered(event)
        except Exception:
            # The on-screen card already went out; a failed whisper only loses the audio copy.
            log.exception("call %s: whisper of %s failed", self.call_sid, event.id)

    def _clean(self, text: str) -> str:
        text = " ".join(text.split())
        return self._redact(text) if self._redact is not None else text

    def _cues(self, track: _Track, result: Transcript) -> AudioCueValues:
        loudness = statistics.fmean(track.speech_energy) if track.speech_energy else 0.0
        span = max(result.end - result.start, 0.2)
        rate = len(result.text.split()) / span
        base_loudness = statistics.median(track.loudness_history) if track.loudness_history else loudness
        base_rate = statistics.median(track.rate_history) if track.rate_history else rate
        other = self._tracks["agent" if track.speaker == "customer" else "customer"]
        overlap = sum(max(0.0, min(result.end, e) - max(result.start, s)) for s, e in other.intervals[-20:])
        track.loudness_history.append(loudness)
        track.rate_history.append(rate)
        return AudioCueValues(loudness / base_loudness if base_loudness else 1.0,
                              rate / base_rate if base_rate else 1.0, overlap)

    async def _on_final(self, track: _Track, result: Transcript) -> None:
        text = self._clean(result.text)
        if not text:
            return
        cues = self._cues(track, result)
        phase, sentiment = self._classify(text, track.speaker, self._context[-8:], cues)
        utterance = Utterance(self._next_seq, track.speaker, result.start, result.end, text, phase,
                              result.confidence, result.words)
        self._next_seq += 1
        self._context.append((track.speaker, text))
        self.utterances.append(utterance)
        self._unsaved.append(utterance)
        if self._retry is None or self._retry.done():
            await self._save()
        elif len(self._unsaved) > MAX_UNSAVED and not self._save_lock.locked():
            async with self._save_lock:  # a retry must not copy a batch while it is being spilled
                await self._spill_unsaved(len(self._unsaved) - MAX_UNSAVED)
        # During an outage the retry task owns writing; the live event and coaching don't wait for it.
        self.metrics.utterances.labels(track.speaker).inc()
        self.hub.publish(self._event("utterance", utterance.end, **utterance.to_json()))
        published = self._monotonic()
        if track.ended_at_wall is not None:
            self.metrics.final_latency.labels(track.speaker).observe(published - track.ended_at_wall)
        self._on_phases(self.tracker.observe(utterance, sentiment))
        prompts = self.coach.on_utterance(utterance, phase, sentiment, overlap=cues.overlap,
                                          phase_state=self.tracker.current)
        self._on_prompts(prompts)
        if prompts:
            self.metrics.prompt_latency.observe(self._monotonic() - published)
        await self._save_state()

    async def _save_state(self, **extra: Any) -> bool:
        """Store the call's phase timeline, prompts and metrics as they stand."""
        try:
            await self.store.update_call(self.call_sid, phases=self.tracker.timeline(),
                                         prompts=self.coach.prompts_record(), metrics=self.coach.metrics(), **extra)
        except StoreError as exc:
            self.metrics.count_db_error(exc)
            log.warning("call %s: coaching state not saved: %s", self.call_sid, exc)
            return False
        return True

    async def _save(self) -> bool:
        """Write unsaved utterances; on failure keep them (bounded) and retry in the background with
        backoff. True when all are saved."""
        async with self._save_lock:
            if not self._unsaved:
                return True
            batch = list(self._unsaved)
            try:
                await self.store.append_utterances(self.call_sid, batch)
            except StoreError as exc:
                self.metrics.count_db_error(exc)
                if self._outage_since is None:
                    self._outage_since = self._monotonic()
                    log.warning("call %s: database write failed (%s); %d utterance(s) kept in memory and retried",
                                self.call_sid, exc, len(batch))
                if not exc.retryable:
                    # Retrying can't help (a closed store, a bug): straight to the spill file.
                    await self._spill_unsaved(len(self._unsaved))
                elif len(self._unsaved) > MAX_UNSAVED:
                    await self._spill_unsaved(len(self._unsaved) - MAX_UNSAVED)
                if self._finishing is None and (self._retry is None or self._retry.done()):
                    self._retry = asyncio.get_running_loop().create_task(
                        self._retry_unsaved(), name=f"db retry {self.call_sid}")
                return False
            del self._unsaved[: len(batch)]
            if self._outage_since is not None:
                log.warning("call %s: database back after %.1f s; %d utterance(s) written", self.call_sid,
                            self._monotonic() - self._outage_since, len(batch))
                self._outage_since = None
            return True

    async def _retry_unsaved(self) -> None:
        delay = RETRY_FIRST
        while self._unsaved:
            await asyncio.sleep(delay)
            # A successful batch may have been copied before newer finals arrived: go again at once.
            delay = 0.0 if await self._save() else min(max(delay, RETRY_FIRST) * 2, RETRY_MAX)

    async def _spill_unsaved(self, count: int) -> None:
        """Move the oldest `count` unsaved utterances to the spill file (written in at the next start)."""
        batch = self._unsaved[:count]
        if not batch:
            return
        if self._spill is None:
            log.error("call %s: %d utterance(s) could not be stored and no spill file is configured; kept in "
                      "memory only", self.call_sid, len(batch))
            return
        spill = self._spill
        try:
            path = await asyncio.to_thread(spill.write, self.call_sid, batch)
        except OSError as exc:
            log.critical("call %s: %d utterance(s) could not be stored nor spilled (%s); kept in memory only",
                         self.call_sid, len(batch), exc.strerror or exc)
            return
        del self._unsaved[:count]
        self.spilled += len(batch)
        log.error("call %s: %d utterance(s) the database would not take spilled to %s; they are written to the "
                  "database at the next start or when the call streams again", self.call_sid, len(batch), path)

    async def _spill_end(self, fields: dict[str, Any], outcome: dict[str, Any]) -> None:
        """The database would not take the call's end: keep it, with the phase timeline, prompts, metrics and
        inferred outcome, in the spill file, written in at the next start or when the call streams again."""
        if self._spill is None:
            log.error("call %s: no spill file is configured; the call will be marked interrupted on restart",
                      self.call_sid)
            return
        end = {**fields, "phases": self.tracker.timeline(), "prompts": self.coach.prompts_record(),
               "metrics": self.coach.metrics()}
        try:
            path = await asyncio.to_thread(self._spill.write_end, self.call_sid, end, outcome)
        except (OSError, ValueError) as exc:
            log.critical("call %s: its end could not be stored nor spilled (%s); it will be marked interrupted on "
                         "restart", self.call_sid, getattr(exc, "strerror", None) or exc)
            return
        log.error("call %s: its end (status, phases, prompts, outcome) spilled to %s; it is written to the "
                  "database at the next start or when the call streams again", self.call_sid, path)

    async def _drain_unsaved(self) -> None:
        """End of call: stop the background retry, keep retrying for a bounded time, then spill the rest."""
        if self._retry is not None:
            self._retry.cancel()
            await asyncio.gather(self._retry, return_exceptions=True)
        # The loop's clock, not the injected one: this bounds real waiting (a shutdown's grace period).
        loop = asyncio.get_running_loop()
        delay, deadline = RETRY_FIRST, loop.time() + FINISH_RETRY_SECONDS
        while not await self._save() and self._unsaved:
            if loop.time() + delay > deadline:
                async with self._save_lock:
                    await self._spill_unsaved(len(self._unsaved))
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    # --- ending --------------------------------------------------------------------------------

    async def finish(self, status: CallStatus, *, drain_timeout: float = 120.0) -> None:
        """End the call. Every caller (the socket handler, shutdown) waits for the one real ending,
        which is shielded so a cancelled caller can't cut the finalisation short. `drain_timeout` is
        generous because a call streamed faster than real time leaves a decoding backlog; only a
        hung engine reaches it."""
        if self._finishing is None:
            self.finished = True
            self._finishing = asyncio.get_running_loop().create_task(self._finish(status, drain_timeout),
                                                                     name=f"finish {self.call_sid}")
        await asyncio.shield(self._finishing)

    async def _finish(self, status: CallStatus, drain_timeout: float) -> None:
        bind_call(self.call_sid)  # this task's own context: its log lines carry the call
        for track in self._tracks.values():
            for event in track.endpointer.finish():
                if isinstance(event, SpeechEnded):
                    self._close_utterance(track, event.end)
            track.stream.end()
        consumers = [t.consumer for t in self._tracks.values() if t.consumer is not None]
        if consumers:
            _done, late = await asyncio.wait(consumers, timeout=drain_timeout)
            for task in late:
                log.error("call %s: recogniser did not drain in %.0f s", self.call_sid, drain_timeout)
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for track in self._tracks.values():
            await track.stream.aclose()
        for task in list(self._whispers):
            task.cancel()
        await asyncio.gather(*self._whispers, return_exceptions=True)
        await self._drain_unsaved()
        end = self.duration
        self._on_phases(self.tracker.tick(end))
        self._on_prompts(self.coach.end(end))
        saved = await self._save_state()
        outcome = infer_outcome(self.utterances, self.tracker.timeline(), self.coach.prompts_record(),
                                self.coach.metrics())
        try:
            if await self.store.set_inferred_outcome(self.call_sid, outcome):
                self.hub.publish(self._event("outcome", end, **outcome))
        except StoreError as exc:
            self.metrics.count_db_error(exc)
            saved = False
            log.warning("call %s: outcome not saved: %s", self.call_sid, exc)
        recording = await self.recorder.close() if self.recorder is not None else None
        if self.recorder is not None and self.recorder.failed:
            self.metrics.recording_errors.inc()
        fields: dict[str, Any] = {"status": status, "ended_at": self._wall_clock(),
                                  "duration": round(self.duration, 3), "frame_errors": self.frame_errors}
        if recording is not None:
            fields["recording"] = str(recording)
        try:
            await self.store.update_call(self.call_sid, **fields)
        except StoreError as exc:
            self.metrics.count_db_error(exc)
            saved = False
            log.error("call %s: could not record its end (%s)", self.call_sid, exc)
        if not saved:
            await self._spill_end(fields, outcome)
        self.metrics.active_calls.dec()
        self.metrics.calls.labels(status).inc()
        self.hub.publish(self._event("call_ended", self.duration, status=status,
                                     duration=round(self.duration, 3)))
