"""`carecoach twilio configure`: point a Twilio number's voice webhook and status callback at this service.

Through Twilio's own client: `incoming_phone_numbers.list(phone_number=…)` finds the number in the account,
then `.update(voice_url=PUBLIC/twilio/voice, voice_method=POST, status_callback=PUBLIC/twilio/status)`.
Every failure becomes a `SetupError` whose message is the one line the operator sees; `usage` marks a bad
argument or missing setting (exit status 2) as opposed to a refusal from Twilio or the network (1).
The REST base URL can be replaced (`CARECOACH_TWILIO_API_URL`) by the same mechanism audio whispers use,
which is how the tests reach a local fake of Twilio's API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from voice.ids import E164
from voice.whisper import _RebasedHttpClient  # one way to re-point the REST client, shared with whispers

_ACCOUNT_SID_PREFIX = "AC"


class SetupError(Exception):
    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True, slots=True)
class Configured:
    sid: str
    phone_number: str
    voice_url: str
    status_callback: str


def webhook_urls(public_url: str) -> tuple[str, str]:
    """The voice webhook and status callback for a public base URL (checked: http(s), a host, no query)."""
    base = public_url.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SetupError(f"--public-url {public_url!r}: expected https://HOST[/PATH]", usage=True)
    return base + "/twilio/voice", base + "/twilio/status"


def _http_failure(exc: Exception) -> tuple[int, object, str] | None:
    """(status, Twilio error code, message) of a refused request: a `TwilioRestException`, or the bare
    `TwilioException("Unable to fetch page", response)` the client raises when listing fails."""
    if isinstance(exc, TwilioRestException):
        return int(exc.status), exc.code, str(exc.msg)
    response = exc.args[1] if len(exc.args) == 2 else None
    status = getattr(response, "status_code", None)
    if not isinstance(status, int):
        return None
    try:
        body = json.loads(getattr(response, "text", "") or "{}")
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    return status, body.get("code"), str(body.get("message", "")) or str(exc.args[0])


def _failure(action: str, exc: Exception) -> SetupError:
    refused = _http_failure(exc) if isinstance(exc, TwilioException) else None
    if refused is not None:
        status, code, message = refused
        if status in (401, 403):
            return SetupError(f"{action}: Twilio refused the credentials (HTTP {status}); check TWILIO_ACCOUNT_SID "
                              "and TWILIO_AUTH_TOKEN")
        code_text = f", code {code}" if code else ""
        return SetupError(f"{action}: Twilio answered HTTP {status}{code_text}: {message}")
    if isinstance(exc, requests.RequestException):  # refused, reset, timed out, DNS
        return SetupError(f"{action}: cannot reach Twilio ({type(exc).__name__}); check the network or proxy")
    return SetupError(f"{action}: {exc}")


def configure_number(account_sid: str | None, auth_token: str | None, number: str, public_url: str, *,
                     api_url: str | None = None, timeout: float = 10.0) -> Configured:
    """Point `number`'s voice webhook and status callback at `public_url`. Blocking (one CLI command)."""
    if not account_sid or not auth_token:
        raise SetupError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must both be set", usage=True)
    if not account_sid.startswith(_ACCOUNT_SID_PREFIX):
        raise SetupError("TWILIO_ACCOUNT_SID: expected an account SID starting with AC", usage=True)
    if not E164.match(number):
        raise SetupError(f"--number {number!r}: expected a +E164 phone number, e.g. +15551234567", usage=True)
    voice_url, status_url = webhook_urls(public_url)
    http_client = _RebasedHttpClient(api_url, timeout) if api_url else TwilioHttpClient(timeout=timeout)
    client = Client(account_sid, auth_token, http_client=http_client)
    try:
        found = [n for n in client.incoming_phone_numbers.list(phone_number=number, limit=20)
                 if n.phone_number == number]
    except (TwilioException, requests.RequestException) as exc:
        raise _failure(f"looking up {number}", exc) from None
    if not found:
        raise SetupError(f"{number} is not a phone number of account {account_sid}; buy or port it first, or check "
                         "TWILIO_ACCOUNT_SID")
    try:
        updated = found[0].update(voice_url=voice_url, voice_method="POST", status_callback=status_url,
                                  status_callback_method="POST")
    except (TwilioException, requests.RequestException) as exc:
        raise _failure(f"updating {number}", exc) from None
    return Configured(str(updated.sid), str(updated.phone_number), str(updated.voice_url),
                      str(updated.status_callback))
