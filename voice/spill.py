"""The spill file: what the database would not take, kept on local disk until it does.

A session holds unsaved utterances in memory and retries them with backoff (`voice.session`). What
does not fit its bounded buffer, or is still unsaved when the call ends, is appended here as JSON
Lines, one file per call (`DATA_DIR/spill/CA….jsonl`); so is the call's end (status, duration, phase
timeline, prompts, metrics and inferred outcome) when it can't be recorded. `replay` writes a file into
the store (idempotently: the upsert on `(call_sid, seq)`, and the end's fields set again) and removes it
only once its rows are in, so nothing a call produced is lost to a database outage. It runs at start-up,
before any call, and for one call when that call's stream comes back (`voice.calls.open_session`), so a
reconnecting call numbers its utterances after the spilled ones and its new end supersedes the spilled one.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from dialog.store import CallStore, StoreError
from dialog.types import Utterance
from voice.ids import CALL_SID
from voice.types import Word

log = logging.getLogger(__name__)

#: The call columns a spilled end may set (a subset of `CallStore.update_call`'s).
END_FIELDS = frozenset({"status", "ended_at", "duration", "frame_errors", "recording", "phases", "prompts",
                        "metrics"})


def _line(call_sid: str, utterance: Utterance) -> str:
    words = [[w.text, round(w.start, 3), round(w.end, 3), round(w.confidence, 3)] for w in utterance.words]
    return json.dumps({"call_sid": call_sid, **utterance.to_json(), "words": words}) + "\n"


def _utterance(entry: dict[str, Any]) -> Utterance:
    words = tuple(Word(str(w[0]), float(w[1]), float(w[2]), float(w[3])) for w in entry.get("words", []))
    return Utterance(int(entry["seq"]), entry["speaker"], float(entry["start"]), float(entry["end"]),
                     str(entry["text"]), entry["phase"], float(entry["confidence"]), words)


class Spill:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, call_sid: str) -> Path:
        if not CALL_SID.match(call_sid):  # the SID names a file: never let it name another one
            raise ValueError(f"bad call SID {call_sid!r:.60}")
        return self.directory / f"{call_sid}.jsonl"

    def write(self, call_sid: str, utterances: Sequence[Utterance]) -> Path:
        """Append `utterances` (blocking: call it off the event loop). Raises OSError if even this fails."""
        return self._append(call_sid, "".join(_line(call_sid, u) for u in utterances))

    def write_end(self, call_sid: str, fields: Mapping[str, Any], outcome: Mapping[str, Any]) -> Path:
        """Append the call's end: `fields` for `CallStore.update_call` (keys in END_FIELDS) and its inferred
        `outcome` (blocking: call it off the event loop). Raises OSError if even this fails."""
        if not set(fields) <= END_FIELDS:
            raise ValueError(f"not end fields: {sorted(set(fields) - END_FIELDS)}")
        return self._append(call_sid, json.dumps({"call_sid": call_sid, "call_end": dict(fields),
                                                  "outcome": dict(outcome)}) + "\n")

    def _append(self, call_sid: str, text: str) -> Path:
        path = self.path(call_sid)
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
        return path

    def pending(self) -> list[Path]:
        return sorted(self.directory.glob("*.jsonl")) if self.directory.is_dir() else []

    def _files(self, only: str | None) -> list[Path]:
        """Claims (a crashed or a live replay's) first, then unclaimed files; only `only`'s if given."""
        if only is not None:
            self.path(only)  # checks the SID: it can hold no wildcards
        if not self.directory.is_dir():
            return []
        pattern = only or "*"
        return [*sorted(self.directory.glob(f"{pattern}.jsonl{_CLAIMED}*")),
                *sorted(self.directory.glob(f"{pattern}.jsonl"))]

    async def replay(self, store: CallStore, only: str | None = None) -> int:
        """Write every spill file (or `only` that call's) into `store`: its utterances, then its call's end if
        it has one; returns how many utterances. A file whose rows can't be written (the database still
        failing, its call unknown) is kept for a later replay.

        Replicas may share DATA_DIR (one volume): a file is first claimed by renaming it to a name of
        its own, so a replica appending to it meanwhile starts a fresh file instead of adding lines that
        the delete would lose, and the claim is held under an exclusive lock while it is written in. A
        claim nobody holds (its replay crashed) is taken over; one a live replay holds is left to it, so
        two replicas starting together never replay one file twice, nor delete what the other gave back
        (a call's own replay waits for it: `_ONE_CALL_WAIT`). The locks need a file system with working
        `flock` (local disk, NFSv4). The file system is used off the event loop (a call's start runs this
        too)."""
        total = 0
        for path in await asyncio.to_thread(self._files, only):
            call_sid = path.name.split(".", 1)[0]
            unclaimed = self.directory / f"{call_sid}.jsonl"
            claim = await asyncio.to_thread(_claim, path, unclaimed, 0.0 if only is None else _ONE_CALL_WAIT)
            if claim is None:
                continue  # another replica has it
            try:
                total += await _write_in(store, call_sid, claim, unclaimed)
            finally:
                claim.close()  # releases the lock
        return total


async def _write_in(store: CallStore, call_sid: str, claim: _Claim, unclaimed: Path) -> int:
    """Write one claimed file into `store` and delete it; give it back if it can't be. Returns utterances."""
    claimed = claim.path
    try:
        entries = await asyncio.to_thread(claim.read)
        utterances = [_utterance(e) for e in entries if "call_end" not in e]
        ends = [_end(e) for e in entries if "call_end" in e]
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        log.error("spill file %s is unreadable (%s); left in place", unclaimed, exc)
        await asyncio.to_thread(_unclaim, claimed, unclaimed)
        return 0
    try:
        if utterances:
            await store.append_utterances(call_sid, utterances)
        if ends:
            fields, outcome = ends[-1]
            if not await store.update_call(call_sid, **fields):
                raise StoreError(f"no call {call_sid} in the database", retryable=False)
            await store.set_inferred_outcome(call_sid, outcome)  # an agent's own outcome stays
    except StoreError as exc:
        log.error("spill file %s: %d utterance(s)%s still not written (%s); kept for a later replay",
                  unclaimed, len(utterances), " and the call's end" if ends else "", exc)
        await asyncio.to_thread(_unclaim, claimed, unclaimed)
        return 0
    await asyncio.to_thread(claimed.unlink, missing_ok=True)
    log.warning("call %s: %d utterance(s)%s from the spill file written to the database", call_sid,
                len(utterances), " and its end" if ends else "")
    return len(utterances)


#: Suffix of a spill file a replay has claimed; a token unique to the claim follows it.
_CLAIMED = ".replaying"
#: How long a call that streams again waits for another replica's replay of its spill file (seconds):
#: its new utterances are numbered after what that replay writes in.
_ONE_CALL_WAIT = 10.0


class _Claim:
    """A claimed spill file, held open under an exclusive lock until :meth:`close` (or until it is garbage
    collected, so a replay cancelled while claiming does not keep the lock)."""

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path, self._file = path, file

    def read(self) -> list[dict[str, Any]]:
        self._file.seek(0)
        return [json.loads(line) for line in self._file.read().decode("utf-8").splitlines() if line]

    def close(self) -> None:
        self._file.close()


def _claim(path: Path, unclaimed: Path, wait: float = 0.0) -> _Claim | None:
    """Claim `path` (an unclaimed file, or a claim to take over) and lock it; None if another replica has it.

    A fresh claim gets a name of its own, so a rename never lands on another replay's claim. A claim is
    taken over only if nobody holds its lock (a crashed replay's locks died with it); a live replay's is
    waited for up to `wait` seconds (a call that streams again must see its spilled data first)."""
    if path == unclaimed:
        claimed = path.with_name(f"{path.name}{_CLAIMED}-{uuid.uuid4().hex[:12]}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            return None  # another replica claimed it first
        path = claimed
    file: BinaryIO | None = None
    try:
        file = open(path, "r+b")  # r+: over NFS an exclusive flock needs a descriptor open for writing
        # The lock alone is not the claim: its name must still name this file, as its owner may have written
        # it in and deleted it, or given it back (renamed it to <sid>.jsonl), just before we locked it.
        if _lock(file, wait) and os.path.samestat(os.stat(path), os.fstat(file.fileno())):
            return _Claim(path, file)
    except FileNotFoundError:
        pass  # written in (or given back) by its owner since we listed it
    except OSError as exc:
        log.error("spill file %s can't be claimed (%s); left for a later replay", path, exc)
    if file is not None:
        file.close()
    return None


def _lock(file: BinaryIO, wait: float) -> bool:
    """Take `file`'s exclusive lock, waiting up to `wait` seconds; False if a live replay still holds it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _end(entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A spilled call end: its update_call fields and its outcome. ValueError if it isn't one."""
    fields, outcome = entry["call_end"], entry["outcome"]
    if not isinstance(fields, dict) or not isinstance(outcome, dict) or not fields or not set(fields) <= END_FIELDS:
        raise ValueError("malformed call end")
    return fields, outcome


def _unclaim(claimed: Path, unclaimed: Path) -> None:
    """Give a claimed file back, followed by whatever was appended under its name since the claim (in that
    order: the last call end in a file is the newest)."""
    appended = unclaimed.read_text(encoding="utf-8") if unclaimed.exists() else ""
    claimed.write_text(claimed.read_text(encoding="utf-8") + appended, encoding="utf-8")
    claimed.replace(unclaimed)
