"""Prometheus metrics for one app instance (a registry per app keeps tests independent)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from dialog.store import StoreError

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.active_calls = Gauge("carecoach_active_calls", "Calls streaming right now", registry=r)
        self.calls = Counter("carecoach_calls", "Calls finished, by status", ["status"], registry=r)
        self.frames = Counter("carecoach_media_frames", "Media frames accepted", ["speaker"], registry=r)
        self.media_repaired = Counter(
            "carecoach_media_repaired_seconds", "Audio filled in for missing chunks (gap) or dropped as already"
            " received (repeat)", ["speaker", "kind"], registry=r)
        self.frame_errors = Counter(
            "carecoach_frame_errors", "Carrier messages rejected, by reason", ["reason"], registry=r)
        self.utterances = Counter("carecoach_utterances", "Final utterances", ["speaker"], registry=r)
        self.final_latency = Histogram(
            "carecoach_final_latency_seconds", "End of speech (VAD) to final utterance published",
            ["speaker"], buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_latency = Histogram(
            "carecoach_prompt_latency_seconds", "Utterance published to the prompts it fired published",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1), registry=r)
        self.asr_errors = Counter("carecoach_asr_errors", "Recogniser failures", ["engine"], registry=r)
        self.db_errors = Counter("carecoach_db_errors", "Failed database writes", ["retryable"], registry=r)
        self.recording_errors = Counter("carecoach_recording_errors", "Recordings stopped by I/O errors",
                                        registry=r)
        self.signature_failures = Counter(
            "carecoach_signature_failures", "Requests refused for a bad Twilio signature", registry=r)
        self.live_subscribers = Gauge("carecoach_live_subscribers", "Open live-event sockets", registry=r)
        # Graceful ASR overload (voice/asr/overload.py): the state, the lag it is decided on, and what it shed.
        self.asr_lag = Gauge("carecoach_asr_lag_seconds", "Age of the oldest owed ASR work (queued or finalising)",
                             registry=r)
        self.asr_degraded = Gauge("carecoach_asr_degraded", "1 while ASR is overloaded and agent speech is not"
                                  " recognised (recorded only)", registry=r)
        self.asr_overload_changes = Counter("carecoach_asr_overload_changes", "ASR overload state changes, by new"
                                            " state", ["state"], registry=r)
        self.asr_shed = Counter("carecoach_asr_shed_utterances", "Utterances recorded but not recognised because"
                                " ASR was overloaded", ["speaker"], registry=r)
        self.asr_shed_seconds = Counter("carecoach_asr_shed_seconds", "Speech recorded but not recognised because"
                                        " ASR was overloaded", ["speaker"], registry=r)

    def count_db_error(self, exc: StoreError) -> None:
        self.db_errors.labels("true" if exc.retryable else "false").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
