"""HTTP Message Signatures (RFC 9421), the hmac-sha256 subset Genesys AudioHook signs its upgrade with.

Written from RFC 9421 (§2.1 component values, §2.3 `@signature-params`, §2.5 the signature base, §3.3.3
HMAC-SHA256) and RFC 8941 (the Structured Field dictionaries `Signature-Input` and `Signature` are), and
from Genesys' AudioHook protocol documentation ("Establishing connection"): the client covers
`@request-target`, `@authority`, `audiohook-organization-id`, `audiohook-session-id`,
`audiohook-correlation-id` and `x-api-key`, with `keyid` = the API key, `alg="hmac-sha256"`, a `nonce`,
`created` and `expires`; the key is the base64-decoded client secret. The documentation's worked example
is a test vector in tests/test_audiohook.py.

Verification is strict: everything it doesn't understand fails; `@signature-params` is re-serialised
from the parsed input rather than copied, so a sloppy encoding can't change what was signed; a nonce
is accepted once within the signature's lifetime (replays fail).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

#: The components AudioHook signs; a signature covering fewer is refused.
AUDIOHOOK_COMPONENTS = ("@request-target", "@authority", "audiohook-organization-id", "audiohook-session-id",
                        "audiohook-correlation-id", "x-api-key")
#: Clock difference tolerated between Genesys and us, and the oldest `created` accepted (seconds).
CLOCK_SKEW = 5
MAX_AGE = 30

ParamValue = str | int


class SignatureError(ValueError):
    """A signature that does not verify; the message says why (safe to log: it holds no secret)."""


@dataclass(frozen=True, slots=True)
class SignatureInput:
    label: str
    components: tuple[str, ...]
    params: tuple[tuple[str, ParamValue], ...]

    def param(self, name: str) -> ParamValue | None:
        return next((v for k, v in self.params if k == name), None)

    def serialize(self) -> str:
        """The `@signature-params` value (RFC 9421 §2.3): the inner list exactly as RFC 8941 writes it."""
        inner = "(" + " ".join(_sf_string(c) for c in self.components) + ")"
        return inner + "".join(f";{k}={_sf_string(v) if isinstance(v, str) else v}" for k, v in self.params)


def _sf_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- RFC 8941 dictionaries, the subset the two signature fields use -------------------------------------

_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_INTEGER = re.compile(r"-?[0-9]{1,15}")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")
_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def fail(self, what: str) -> SignatureError:
        return SignatureError(f"malformed structured field: {what} at {self.i}")

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def skip(self, chars: str = " ") -> None:
        while self.peek() and self.peek() in chars:
            self.i += 1

    def match(self, pattern: re.Pattern[str], what: str) -> str:
        m = pattern.match(self.text, self.i)
        if m is None:
            raise self.fail(what)
        self.i = m.end()
        return m.group(0)

    def string(self) -> str:
        if self.peek() != '"':
            raise self.fail("string expected")
        self.i += 1
        out: list[str] = []
        while True:
            c = self.peek()
            if not c:
                raise self.fail("unterminated string")
            self.i += 1
            if c == '"':
                return "".join(out)
            if c == "\\":
                c = self.peek()
                if c not in ('"', "\\"):
                    raise self.fail("bad escape")
                self.i += 1
            elif not " " <= c <= "~":
                raise self.fail("non-ASCII in string")
            out.append(c)

    def bare_item(self) -> ParamValue | bytes:
        c = self.peek()
        if c == '"':
            return self.string()
        if c == ":":
            try:
                return base64.b64decode(self.match(_BYTES, "byte sequence")[1:-1], validate=True)
            except binascii.Error:
                raise self.fail("bad base64") from None
        if c == "-" or c.isdigit():
            return int(self.match(_INTEGER, "integer"))
        return self.match(_TOKEN, "item")

    def params(self) -> tuple[tuple[str, ParamValue], ...]:
        params: list[tuple[str, ParamValue]] = []
        while self.peek() == ";":
            self.i += 1
            self.skip()
            key = self.match(_KEY, "parameter key")
            value: ParamValue | bytes = True if self.peek() != "=" else 0
            if self.peek() == "=":
                self.i += 1
                value = self.bare_item()
            if isinstance(value, bytes | bool):
                raise self.fail(f"unsupported value for parameter {key}")
            params.append((key, value))
        return tuple(params)


def _dictionary(text: str, member: Callable[[_Reader], object]) -> dict[str, object]:
    reader = _Reader(text.strip())
    out: dict[str, object] = {}
    while True:
        key = reader.match(_KEY, "dictionary key")
        if reader.peek() != "=":
            raise reader.fail("'=' expected")
        reader.i += 1
        out[key] = member(reader)
        reader.skip(" \t")
        if not reader.peek():
            return out
        if reader.peek() != ",":
            raise reader.fail("',' expected")
        reader.i += 1
        reader.skip(" \t")


def parse_signature_input(text: str) -> dict[str, SignatureInput]:
    def member(reader: _Reader) -> tuple[tuple[str, ...], tuple[tuple[str, ParamValue], ...]]:
        if reader.peek() != "(":
            raise reader.fail("inner list expected")
        reader.i += 1
        components: list[str] = []
        while True:
            reader.skip()
            if reader.peek() == ")":
                reader.i += 1
                break
            components.append(reader.string())
            if reader.peek() == ";":
                raise reader.fail("component parameters are not supported")
            if reader.peek() not in (" ", ")"):
                raise reader.fail("' ' or ')' expected")
        return tuple(components), reader.params()

    parsed = _dictionary(text, member)
    return {label: SignatureInput(label, *value) for label, value in parsed.items()}  # type: ignore[misc]


def parse_signature(text: str) -> dict[str, bytes]:
    def member(reader: _Reader) -> bytes:
        value = reader.bare_item()
        if not isinstance(value, bytes):
            raise reader.fail("byte sequence expected")
        if reader.params():
            raise reader.fail("signature parameters are not supported")
        return value

    return {label: value for label, value in _dictionary(text, member).items()}  # type: ignore[misc]


# --- signing and verifying ------------------------------------------------------------------------------


def _field_value(values: Sequence[str]) -> str:
    # RFC 9421 §2.1: trim each line, join repeated fields with ", ".
    return ", ".join(" ".join(v.strip().split("\r\n")) for v in values)


def signature_base(sig: SignatureInput, derived: Mapping[str, str], fields: Mapping[str, Sequence[str]]) -> str:
    lines: list[str] = []
    seen: set[str] = set()
    for name in sig.components:
        if name in seen:
            raise SignatureError(f"component {name} listed twice")
        seen.add(name)
        if name.startswith("@"):
            if name not in derived:
                raise SignatureError(f"unsupported derived component {name}")
            value = derived[name]
        else:
            if name != name.lower() or name in ("signature", "signature-input"):
                raise SignatureError(f"unsupported component {name}")
            values = fields.get(name)
            if not values:
                raise SignatureError(f"signed header {name} is missing")
            value = _field_value(values)
        lines.append(f"{_sf_string(name)}: {value}")
    lines.append(f'"@signature-params": {sig.serialize()}')
    return "\n".join(lines)


def _hmac(secret: bytes, base: str) -> bytes:
    try:
        data = base.encode("ascii", "strict")
    except UnicodeEncodeError:
        # RFC 9421 signs ASCII field values; anything else can't carry a valid signature (a 403, not a 500).
        raise SignatureError("a signed component is not ASCII") from None
    return hmac.new(secret, data, hashlib.sha256).digest()


class NonceCache:
    """Nonces seen within their signature's lifetime: a replayed upgrade is refused."""

    def __init__(self, limit: int = 100_000) -> None:
        self._seen: dict[str, float] = {}
        self._limit = limit

    def first_use(self, nonce: str, until: float, now: float) -> bool:
        if len(self._seen) >= self._limit:
            self._seen = {n: t for n, t in self._seen.items() if t > now}
            if len(self._seen) >= self._limit:  # still full of live nonces: forget the oldest half
                keep = sorted(self._seen.items(), key=lambda item: item[1])[self._limit // 2:]
                self._seen = dict(keep)
        if self._seen.get(nonce, 0.0) > now:
            return False
        self._seen[nonce] = until
        return True


def verify(
    *,
    signature_input: str | None,
    signature: str | None,
    derived: Mapping[str, str],
    fields: Mapping[str, Sequence[str]],
    key_id: str,
    secret: bytes,
    required: Sequence[str] = AUDIOHOOK_COMPONENTS,
    now: float | None = None,
    nonces: NonceCache | None = None,
) -> None:
    """Raise `SignatureError` unless one signature over at least `required`, by `key_id`, verifies."""
    now = time.time() if now is None else now
    if not signature_input or not signature:
        raise SignatureError("no Signature / Signature-Input header")
    inputs = parse_signature_input(signature_input)
    signatures = parse_signature(signature)
    sig = next((s for s in inputs.values() if set(required) <= set(s.components)), None)
    if sig is None:
        raise SignatureError(f"no signature covers {', '.join(required)}")
    if sig.label not in signatures:
        raise SignatureError(f"Signature has no {sig.label}")
    known = {"alg", "created", "expires", "keyid", "nonce", "tag"}
    if any(k not in known for k, _ in sig.params):
        raise SignatureError("unknown signature parameter")
    if sig.param("alg") not in (None, "hmac-sha256"):
        raise SignatureError(f"unsupported alg {sig.param('alg')!r}")
    if sig.param("keyid") != key_id:
        raise SignatureError("keyid does not match X-API-KEY")
    created, expires, nonce = sig.param("created"), sig.param("expires"), sig.param("nonce")
    if not isinstance(created, int):
        raise SignatureError("no created time")
    if created > now + CLOCK_SKEW:
        raise SignatureError("created in the future")
    if created < now - MAX_AGE - CLOCK_SKEW:
        raise SignatureError("signature too old")
    if expires is not None and (not isinstance(expires, int) or expires < now - CLOCK_SKEW):
        raise SignatureError("signature expired")
    if not isinstance(nonce, str) or len(nonce) < 16:
        raise SignatureError("no nonce, or one too short")
    expected = _hmac(secret, signature_base(sig, derived, fields))
    if not hmac.compare_digest(expected, signatures[sig.label]):
        raise SignatureError("signature mismatch")
    # Only a valid signature consumes its nonce, so garbage can't burn a legitimate client's nonce.
    if nonces is not None and not nonces.first_use(nonce, created + MAX_AGE + 2 * CLOCK_SKEW, now):
        raise SignatureError("nonce replayed")


def sign(
    *,
    derived: Mapping[str, str],
    fields: Mapping[str, str],
    key_id: str,
    secret: bytes,
    nonce: str,
    created: int,
    expires: int | None = None,
    components: Sequence[str] = AUDIOHOOK_COMPONENTS,
    label: str = "sig1",
) -> dict[str, str]:
    """The `Signature-Input` and `Signature` headers a Genesys client sends (used by tests and simulators)."""
    params: list[tuple[str, ParamValue]] = [("keyid", key_id), ("nonce", nonce), ("alg", "hmac-sha256"),
                                            ("created", created)]
    if expires is not None:
        params.append(("expires", expires))
    sig = SignatureInput(label, tuple(components), tuple(params))
    base = signature_base(sig, derived, {k.lower(): [v] for k, v in fields.items()})
    value = base64.b64encode(_hmac(secret, base)).decode("ascii")
    return {"Signature-Input": f"{label}={sig.serialize()}", "Signature": f"{label}=:{value}:"}
