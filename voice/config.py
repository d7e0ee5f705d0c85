"""Start-up configuration: built once from defaults, an optional TOML file and the environment, then frozen.

Precedence: environment > TOML file > defaults (CONTRACT §2). Every value is validated here, so a bad
value stops start-up with one line naming it (`ConfigError`, exit status 2) instead of failing later.
TOML keys are the variable names without the `CARECOACH_` prefix, lowercased (`data_dir`, `asr_engine`,
`api_tokens` …); Twilio's are `twilio_account_sid` and `twilio_auth_token`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from voice.ids import AGENT

Role = Literal["agent", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin")
ENGINES = ("auto", "vosk", "pocketsphinx")


class ConfigError(ValueError):
    """An invalid configuration value; its message is the one line shown to the operator."""


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("carecoach-data")
    # repr=False: a postgresql:// URL may carry the password, and the config is logged at start-up.
    database_url: str = field(default="", repr=False)
    asr_engine: str = "auto"
    vosk_model: Path | None = None
    public_url: str | None = None
    twilio_account_sid: str | None = None
    # repr=False: the config is logged at start-up and a secret must never reach the logs.
    twilio_auth_token: str | None = field(default=None, repr=False)
    agent_dial: str | None = None
    # Audio whispers (DESIGN "Audio whisper (Twilio)"): the TwiML App the coaching leg dials, the From of
    # the legs we add, and the REST API's base URL (Twilio's own when unset; a local fake in tests).
    whisper_app_sid: str | None = None
    whisper_caller_id: str | None = None
    twilio_api_url: str | None = None
    api_tokens: Mapping[str, Role] = field(default_factory=dict, repr=False)
    # token -> agent id, for tokens written `agent/NAME:token`: that agent sees only its own calls.
    token_agents: Mapping[str, str] = field(default_factory=dict, repr=False)
    playbook: Path | None = None
    recordings: bool = True
    redact_pii: bool = True
    # Limits: one Twilio media frame is ~250 bytes; 64 KiB leaves room for any legal message.
    max_message_bytes: int = 64 * 1024
    max_calls: int = 200
    # Endpointing: silence that closes an utterance. Shorter is faster, longer splits fewer sentences.
    endpoint_silence: float = 0.3
    # ... and the longer silence while the latest partial ends mid-phrase ("… because"); 0 = always the above.
    # 0.3 / 0.8 is the measured setting that meets the 400 ms p50 budget at the cost of a fixed 0.35 s.
    endpoint_hold: float = 0.8
    # PocketSphinx decoders created at start (~90 MB each), lent per utterance: how many people may be
    # speaking at once across all calls before utterances queue (benchmarks/load.py, README "Sizing").
    asr_decoders: int = 4
    # Logs: `text` lines for people, `json` (one object per line, with call_sid) for log shippers.
    log_format: str = "text"
    # Calls (rows and recordings) older than this many days are deleted; None keeps them forever.
    retention_days: int | None = None
    # Genesys AudioHook (`WS /audiohook`): the X-API-KEY every connection must carry, and the base64 client
    # secret of its RFC 9421 signature (decoded here). Unset: not checked.
    audiohook_api_key: str | None = field(default=None, repr=False)
    audiohook_client_secret: bytes | None = field(default=None, repr=False)
    # Asterisk AudioSocket TCP listener on `host`; None = off, 0 = any free port (tests).
    audiosocket_port: int | None = None
    # Seconds a carrier connection may take to say which call it is (AudioHook `open`, AudioSocket UUID).
    handshake_timeout: float = 10.0

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'carecoach.db'}"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def spill_dir(self) -> Path:
        """What the database would not take (utterances, call ends), until it does (voice.spill)."""
        return self.data_dir / "spill"

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_tokens)

    @property
    def whisper_available(self) -> bool:
        """Audio whispers need Twilio credentials and the whisper TwiML App."""
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.whisper_app_sid)


_ENV_PREFIX = "CARECOACH_"
_TWILIO_KEYS = {"twilio_account_sid": "TWILIO_ACCOUNT_SID", "twilio_auth_token": "TWILIO_AUTH_TOKEN"}
_KEYS = (
    "data_dir", "database_url", "asr_engine", "vosk_model", "public_url", "agent_dial", "api_tokens",
    "playbook", "recordings", "redact_pii", "max_message_bytes", "max_calls", "endpoint_silence", "asr_decoders",
    "endpoint_hold",
    "whisper_app_sid", "whisper_caller_id", "twilio_api_url", "retention_days", "log_format",
    "audiohook_api_key", "audiohook_client_secret", "audiosocket_port",
)
_APP_SID = re.compile(r"^AP[0-9a-fA-F]{32}$")


def _env_name(key: str) -> str:
    return _TWILIO_KEYS.get(key, _ENV_PREFIX + key.upper())


def _on_off(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no"):
        return False
    raise ConfigError(f"{name}={value!r}: expected 'on' or 'off'")


def _positive_int(name: str, value: object) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected a positive integer") from None
    if number <= 0:
        raise ConfigError(f"{name}={value!r}: expected a positive integer")
    return number


def _parse_tokens(name: str, value: object) -> tuple[dict[str, Role], dict[str, str]]:
    """`role:token` entries, plus `agent/NAME:token` for an agent with an identity (agent ids may hold
    colons, `client:alice`, so that form splits at the last colon and its token can't contain one)."""
    tokens: dict[str, Role] = {}
    agents: dict[str, str] = {}
    for number, pair in enumerate(str(value).split(","), start=1):
        pair = pair.strip()
        if not pair:
            continue
        if pair.startswith("agent/"):
            who, sep, token = pair.removeprefix("agent/").rpartition(":")
            if not sep or not token.strip() or not AGENT.match(who.strip()):
                raise ConfigError(f"{name}: entry {number} must be agent/NAME:token with a valid agent id")
            tokens[token.strip()] = "agent"
            agents[token.strip()] = who.strip()
            continue
        role, sep, token = pair.partition(":")
        role = role.strip()
        if not sep or not token.strip() or role not in ROLES:
            # Never echo any part of the entry: a malformed one may be a bare secret.
            raise ConfigError(f"{name}: entry {number} must be role:token with role one of {', '.join(ROLES)}")
        tokens[token.strip()] = role
    return tokens, agents


def _http_url(name: str, value: object) -> str:
    url = str(value).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}={value!r}: expected an http:// or https:// URL")
    return url


def _database_url(name: str, value: object) -> str:
    url = str(value)
    if not (url.startswith("sqlite:///") or url.startswith(("postgresql://", "postgres://"))):
        raise ConfigError(f"{name}: expected sqlite:///PATH or postgresql://… (got scheme {url.split(':')[0]!r})")
    return url


def _dial(name: str, value: object) -> str:
    target = str(value).strip()
    if target.startswith(("sip:", "client:")) and len(target.split(":", 1)[1]) > 0:
        return target
    if target.startswith("+") and target[1:].isdigit() and 8 <= len(target) <= 16:
        return target
    raise ConfigError(f"{name}={value!r}: expected +E164, sip:… or client:…")


def _e164(name: str, value: object) -> str:
    number = str(value).strip()
    if number.startswith("+") and number[1:].isdigit() and 8 <= len(number) <= 16:
        return number
    raise ConfigError(f"{name}={value!r}: expected a +E164 phone number")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(
    env: Mapping[str, str],
    toml_path: Path | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
) -> Config:
    """Build the frozen config. `host`/`port` come from the command line and win over everything."""
    raw: dict[str, object] = {}
    if toml_path is not None:
        try:
            with open(toml_path, "rb") as f:
                file_values = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"--config {toml_path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config {toml_path}: invalid TOML ({exc})") from None
        known = set(_KEYS) | set(_TWILIO_KEYS) | {"host", "port"}
        for key, value in file_values.items():
            if key not in known:
                raise ConfigError(f"--config {toml_path}: unknown key {key!r}")
            raw[key] = value
    for key in (*_KEYS, *_TWILIO_KEYS):
        if _env_name(key) in env and env[_env_name(key)] != "":
            raw[key] = env[_env_name(key)]

    values: dict[str, object] = {}
    for key, value in raw.items():
        name = _env_name(key) if key not in ("host", "port") else key
        match key:
            case "data_dir":
                values[key] = Path(str(value))
            case "vosk_model" | "playbook":
                path = Path(str(value))
                if not path.exists():
                    raise ConfigError(f"{name}={str(value)!r}: no such file or directory")
                values[key] = path
            case "database_url":
                values[key] = _database_url(name, value)
            case "asr_engine":
                if value not in ENGINES:
                    raise ConfigError(f"{name}={value!r}: expected one of {', '.join(ENGINES)}")
                values[key] = value
            case "public_url" | "twilio_api_url":
                values[key] = _http_url(name, value)
            case "whisper_app_sid":
                if not _APP_SID.match(str(value).strip()):
                    raise ConfigError(f"{name}={value!r}: expected a TwiML App SID, AP followed by 32 hex digits")
                values[key] = str(value).strip()
            case "whisper_caller_id":
                values[key] = _e164(name, value)
            case "log_format":
                if str(value).strip().lower() not in ("text", "json"):
                    raise ConfigError(f"{name}={value!r}: expected 'text' or 'json'")
                values[key] = str(value).strip().lower()
            case "agent_dial":
                values[key] = _dial(name, value)
            case "api_tokens":
                values[key], values["token_agents"] = _parse_tokens(name, value)
            case "retention_days":
                off = str(value).strip().lower() in ("off", "0", "none")
                values[key] = None if off else _positive_int(name, value)
            case "recordings" | "redact_pii":
                values[key] = _on_off(name, value)
            case "max_message_bytes" | "max_calls":
                values[key] = _positive_int(name, value)
            case "asr_decoders":
                values[key] = _positive_int(name, value)
                if values[key] > 64:  # type: ignore[operator]  # just set to an int
                    raise ConfigError(f"{name}={value!r}: expected 1-64")
            case "port":
                values[key] = _positive_int(name, value)
                if values[key] > 65535:  # type: ignore[operator]  # just set to an int
                    raise ConfigError(f"port={value!r}: expected 1-65535")
            case "audiohook_api_key":
                if not str(value).strip() or any(c.isspace() for c in str(value).strip()):
                    raise ConfigError(f"{name}: expected a non-empty key without spaces")
                values[key] = str(value).strip()
            case "audiohook_client_secret":
                try:
                    values[key] = base64.b64decode(str(value).strip(), validate=True)
                except (binascii.Error, ValueError):
                    # Never echo the value: it is a secret.
                    raise ConfigError(f"{name}: expected the base64 client secret Genesys shows") from None
                if not values[key]:
                    raise ConfigError(f"{name}: expected the base64 client secret Genesys shows")
            case "audiosocket_port":
                port_text = str(value).strip()
                if not port_text.isdigit() or int(port_text) > 65535:
                    raise ConfigError(f"{name}={value!r}: expected a TCP port 0-65535")
                values[key] = int(port_text)
            case "endpoint_silence" | "endpoint_hold":
                try:
                    seconds = float(str(value))
                except ValueError:
                    seconds = -1.0
                hold = key == "endpoint_hold"
                if not (0.1 <= seconds <= 5.0 or (hold and seconds == 0)):
                    raise ConfigError(f"{name}={value!r}: expected seconds between 0.1 and 5"
                                      + (" (or 0: off)" if hold else ""))
                values[key] = seconds
            case _:
                values[key] = str(value)
    if host is not None:
        values["host"] = host
    if port is not None:
        values["port"] = port
    config = Config(**values)  # type: ignore[arg-type]  # keys and types checked above
    if not config.auth_enabled and not is_loopback(config.host):
        raise ConfigError(
            f"--host {config.host}: refusing to serve without CARECOACH_API_TOKENS on a non-loopback address"
        )
    return config
