"""Process logging: text or one JSON object per line, every record tagged with the call it belongs to,
and secrets scrubbed before anything is written.

The call is carried by a context variable (`bind_call`): the telephony handler binds it when a stream
starts, and every task the session starts from there (recognisers, whispers, the finish) inherits it,
so a line logged anywhere on that call's path carries its `call_sid` without threading it through.
The redacting filter sits on the handler, so it covers every logger (ours, aiohttp's, twilio's).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO

from voice.ids import CALL_SID as WELL_FORMED_CALL_SID

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

CALL_SID: contextvars.ContextVar[str | None] = contextvars.ContextVar("carecoach_call_sid", default=None)

REDACTED = "[redacted]"

# Credentials that can reach a log line through a URL, a header dump or an exception message. Each
# pattern keeps its name (group 1) and replaces the value, so the line still says what was there.
_SECRET_PATTERNS = (
    re.compile(r"((?:authorization|proxy-authorization)\s*[:=]\s*)(?:bearer\s+|basic\s+)?[^\s,;'\"}]+", re.I),
    re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.I),
    re.compile(r"(x-twilio-signature['\"]?\s*[:=]\s*['\"]?)[^\s,;'\"}]+", re.I),
    re.compile(r"(x-api-key['\"]?\s*[:=]\s*['\"]?)[^\s,;'\"}]+", re.I),
    re.compile(r"((?:[?&]|\b)(?:token|auth_token|access_token|signature|password|secret)=)[^\s&'\"]+", re.I),
    re.compile(r"((?:auth_token|api_tokens|password|secret)['\"]?\s*[:=]\s*['\"]?)[^\s,;'\"}]+", re.I),
    # user:password@ in URLs (postgresql://carecoach:secret@db/…)
    re.compile(r"(://[^/\s:@]+:)[^@\s/]+(?=@)"),
)


def bind_call(call_sid: str | None) -> contextvars.Token[str | None]:
    """Tag every log record of the current task (and the tasks it starts from now on) with `call_sid`.
    An id that isn't well formed (carriers send whatever they like) tags nothing: it would otherwise put a
    peer's newlines or megabytes into every log line."""
    return CALL_SID.set(call_sid if call_sid is not None and WELL_FORMED_CALL_SID.match(call_sid) else None)


def redact_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Renders each record's message (and traceback) once, scrubs credentials from it, and adds `call_sid`.

    `secrets` are exact values to mask wherever they appear (the configured Twilio auth token and API
    tokens): a pattern can miss a secret printed in an unexpected shape, the value itself can't hide.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = redact_secrets(record.getMessage(), self.secrets)
        record.msg, record.args = message, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text, self.secrets)
            # The scrubbed text replaces the live exception, so no formatter can render the original.
            record.exc_info = None
        if not hasattr(record, "call_sid"):
            record.call_sid = CALL_SID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, call_sid (when known) and exc (a traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        call_sid = getattr(record, "call_sid", None) or CALL_SID.get()
        if call_sid:
            entry["call_sid"] = call_sid
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic line, with `[CA…]` after the logger name when the record belongs to a call."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(call)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        call_sid = getattr(record, "call_sid", None) or CALL_SID.get()
        record.call = f" [{call_sid}]" if call_sid else ""
        return super().format(record)


def setup_logging(fmt: LogFormat = "text", level: str = "INFO", *, secrets: Iterable[str] = (),
                  stream: TextIO | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one that redacts and formats; returns it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Access lines carry ?token= query strings and add nothing an operator needs per request; the twilio
    # client logs every REST request header by header at INFO.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    return handler
