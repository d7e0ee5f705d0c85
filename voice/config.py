"""Start-up configuration: built once from defaults, an optional TOML file and the environment, then frozen.

Precedence: environment > TOML file > defaults (CONTRACT §2). Every value is validated here, so a bad
value stops start-up with one line naming it (`ConfigError`, exit status 2) instead of failing later.
TOML keys are the variable names without the `CARECOACH_` prefix, lowercased (`data_dir`, `asr_engine`,
`api_tokens` …); Twilio's are `twilio_account_sid` and `twilio_auth_token`.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

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
    database_url: str = ""
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
    playbook: Path | None = None
    recordings: bool = True
    redact_pii: bool = True
    # Limits: one Twilio media frame is ~250 bytes; 64 KiB leaves room for any legal message.
    max_message_bytes: int = 64 * 1024
    max_calls: int = 200
    # Endpointing: silence that closes an utterance. Shorter is faster, longer splits fewer sentences.
    endpoint_silence: float = 0.4

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
    "playbook", "recordings", "redact_pii", "max_message_bytes", "max_calls", "endpoint_silence",
    "whisper_app_sid", "whisper_caller_id", "twilio_api_url",
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


def _parse_tokens(name: str, value: object) -> dict[str, Role]:
    tokens: dict[str, Role] = {}
    for number, pair in enumerate(str(value).split(","), start=1):
        pair = pair.strip()
        if not pair:
            continue
        role, sep, token = pair.partition(":")
        role = role.strip()
        if not sep or not token.strip() or role not in ROLES:
            # Never echo any part of the entry: a malformed one may be a bare secret.
            raise ConfigError(f"{name}: entry {number} must be role:token with role one of {', '.join(ROLES)}")
        tokens[token.strip()] = role
    return tokens


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
            case "agent_dial":
                values[key] = _dial(name, value)
            case "api_tokens":
                values[key] = _parse_tokens(name, value)
            case "recordings" | "redact_pii":
                values[key] = _on_off(name, value)
            case "max_message_bytes" | "max_calls":
                values[key] = _positive_int(name, value)
            case "port":
                values[key] = _positive_int(name, value)
                if values[key] > 65535:  # type: ignore[operator]  # just set to an int
                    raise ConfigError(f"port={value!r}: expected 1-65535")
            case "endpoint_silence":
                try:
                    seconds = float(str(value))
                except ValueError:
                    seconds = -1.0
                if not 0.1 <= seconds <= 5.0:
                    raise ConfigError(f"{name}={value!r}: expected seconds between 0.1 and 5")
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
