"""voice.config.load_config and the CLI's handling of configuration errors (CONTRACT §1, §2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice.cli import main
from voice.config import Config, ConfigError, load_config

SECRET = "s3cr3t-T0KEN-value"
AUTH_TOKEN = "twilio-auth-0123456789abcdef"


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "carecoach.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(env: dict[str, str], toml_path: Path | None = None, **kw: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(env, toml_path, **kw)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message, f"error must be one line: {message!r}"
    assert message.strip() == message and message
    return message


# --- defaults and precedence ----------------------------------------------------------------------


def test_defaults() -> None:
    config = load_config({})
    assert config.host == "127.0.0.1"
    assert config.port == 8080
    assert config.data_dir == Path("carecoach-data")
    assert config.database == "sqlite:///carecoach-data/carecoach.db"
    assert config.recordings_dir == Path("carecoach-data/recordings")
    assert config.asr_engine == "auto"
    assert config.vosk_model is None
    assert config.public_url is None
    assert config.twilio_auth_token is None
    assert config.agent_dial is None
    assert config.api_tokens == {}
    assert config.auth_enabled is False
    assert config.recordings is True
    assert config.redact_pii is True
    assert config.max_calls > 0 and config.max_message_bytes > 0


def test_unrelated_environment_is_ignored() -> None:
    assert load_config({"PATH": "/bin", "CARECOACH_LOG_LEVEL": "DEBUG", "HOME": "/root"}) == Config()


def test_config_is_frozen() -> None:
    config = load_config({})
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


def test_toml_overrides_defaults(tmp_path: Path) -> None:
    path = write_toml(tmp_path, """
data_dir = "/srv/cc"
asr_engine = "pocketsphinx"
public_url = "https://cc.example.com/"
agent_dial = "sip:agent@pbx.example.com"
recordings = false
redact_pii = "off"
max_calls = 7
port = 9001
twilio_account_sid = "AC123"
""")
    config = load_config({}, path)
    assert config.data_dir == Path("/srv/cc")
    assert config.database == "sqlite:////srv/cc/carecoach.db"
    assert config.asr_engine == "pocketsphinx"
    assert config.public_url == "https://cc.example.com"  # trailing slash dropped
    assert config.agent_dial == "sip:agent@pbx.example.com"
    assert config.recordings is False
    assert config.redact_pii is False
    assert config.max_calls == 7
    assert config.port == 9001
    assert config.twilio_account_sid == "AC123"


def test_env_overrides_toml(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'asr_engine = "pocketsphinx"\nrecordings = "off"\nmax_calls = 7\n')
    config = load_config(
        {"CARECOACH_ASR_ENGINE": "vosk", "CARECOACH_RECORDINGS": "on", "CARECOACH_MAX_CALLS": "9"}, path)
    assert config.asr_engine == "vosk"
    assert config.recordings is True
    assert config.max_calls == 9


def test_empty_env_value_does_not_override_toml(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'asr_engine = "pocketsphinx"\n')
    assert load_config({"CARECOACH_ASR_ENGINE": ""}, path).asr_engine == "pocketsphinx"


def test_command_line_host_and_port_win(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'host = "127.0.0.2"\nport = 9001\n')
    config = load_config({}, path, host="::1", port=7000)
    assert (config.host, config.port) == ("::1", 7000)
    assert load_config({}, path).port == 9001


def test_database_url_accepts_sqlite_and_postgres() -> None:
    assert load_config({"CARECOACH_DATABASE_URL": "sqlite:///x/y.db"}).database == "sqlite:///x/y.db"
    url = "postgresql://cc:pw@db.example.com/cc"
    assert load_config({"CARECOACH_DATABASE_URL": url}).database == url


@pytest.mark.parametrize("dial", ["+14155550100", "sip:agent@pbx.example.com", "client:alice"])
def test_agent_dial_forms(dial: str) -> None:
    assert load_config({"CARECOACH_AGENT_DIAL": dial}).agent_dial == dial


@pytest.mark.parametrize(("text", "value"), [("on", True), ("OFF", False), ("true", True), ("0", False)])
def test_on_off_spellings(text: str, value: bool) -> None:
    assert load_config({"CARECOACH_REDACT_PII": text}).redact_pii is value


def test_api_tokens_parsed() -> None:
    config = load_config({"CARECOACH_API_TOKENS": f" agent:{SECRET}, supervisor:sup-tok ,admin:adm,"})
    assert dict(config.api_tokens) == {SECRET: "agent", "sup-tok": "supervisor", "adm": "admin"}
    assert config.auth_enabled


def test_existing_vosk_model_and_playbook_paths(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    playbook = tmp_path / "playbook.toml"
    playbook.write_text("")
    config = load_config({"CARECOACH_VOSK_MODEL": str(model), "CARECOACH_PLAYBOOK": str(playbook)})
    assert config.vosk_model == model
    assert config.playbook == playbook


# --- invalid values --------------------------------------------------------------------------------


@pytest.mark.parametrize(("var", "value"), [
    ("CARECOACH_ASR_ENGINE", "whisper"),
    ("CARECOACH_RECORDINGS", "maybe"),
    ("CARECOACH_REDACT_PII", "enabled"),
    ("CARECOACH_PUBLIC_URL", "cc.example.com"),
    ("CARECOACH_PUBLIC_URL", "ftp://cc.example.com"),
    ("CARECOACH_PUBLIC_URL", "https://"),
    ("CARECOACH_DATABASE_URL", "mysql://db/cc"),
    ("CARECOACH_DATABASE_URL", "sqlite://relative.db"),
    ("CARECOACH_AGENT_DIAL", "4155550100"),
    ("CARECOACH_AGENT_DIAL", "+1415abc0100"),
    ("CARECOACH_AGENT_DIAL", "sip:"),
    ("CARECOACH_AGENT_DIAL", "client:"),
    ("CARECOACH_MAX_CALLS", "0"),
    ("CARECOACH_MAX_CALLS", "-3"),
    ("CARECOACH_MAX_CALLS", "ten"),
    ("CARECOACH_MAX_MESSAGE_BYTES", "0"),
    ("CARECOACH_ENDPOINT_SILENCE", "0"),
    ("CARECOACH_ENDPOINT_SILENCE", "nan"),
    ("CARECOACH_ENDPOINT_SILENCE", "soon"),
    ("CARECOACH_ENDPOINT_HOLD", "-1"),
    ("CARECOACH_ENDPOINT_HOLD", "0.05"),
    ("CARECOACH_ENDPOINT_HOLD", "later"),
    ("CARECOACH_VOSK_MODEL", "/nonexistent/vosk-model-small-en-us"),
    ("CARECOACH_PLAYBOOK", "/nonexistent/playbook.toml"),
])
def test_invalid_env_value_names_the_variable(var: str, value: str) -> None:
    message = config_error({var: value})
    assert var in message


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("0.7", 0.7)])
def test_endpoint_hold_is_seconds_or_zero_for_off(value: str, seconds: float) -> None:
    assert load_config({"CARECOACH_ENDPOINT_HOLD": value}).endpoint_hold == seconds


@pytest.mark.parametrize("tokens", [
    f"agent:{SECRET},guest:other-token",  # unknown role
    "agent:",  # empty token
    f"agent:{SECRET},supervisor",  # missing token
])
def test_invalid_api_tokens_named_without_leaking(tokens: str) -> None:
    message = config_error({"CARECOACH_API_TOKENS": tokens})
    assert "CARECOACH_API_TOKENS" in message
    assert SECRET not in message and "other-token" not in message


@pytest.mark.parametrize("tokens", [SECRET, f"{SECRET}:agent"])
def test_malformed_token_entry_does_not_leak_the_token(tokens: str) -> None:
    message = config_error({"CARECOACH_API_TOKENS": tokens})
    assert "CARECOACH_API_TOKENS" in message
    assert SECRET not in message


def test_missing_path_error_is_one_line_even_for_odd_values() -> None:
    config_error({"CARECOACH_VOSK_MODEL": "/nonexistent/model\nsecond line"})


@pytest.mark.parametrize(("toml", "name"), [
    ('asr_engine = "whisper"', "CARECOACH_ASR_ENGINE"),
    ('recordings = "maybe"', "CARECOACH_RECORDINGS"),
    ("max_calls = 0", "CARECOACH_MAX_CALLS"),
    ("port = -1", "port"),
    ('public_url = "not a url"', "CARECOACH_PUBLIC_URL"),
])
def test_invalid_toml_value_names_the_variable(tmp_path: Path, toml: str, name: str) -> None:
    assert name in config_error({}, write_toml(tmp_path, toml + "\n"))


def test_unknown_toml_key(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'asr_engin = "vosk"\n')
    message = config_error({}, path)
    assert "asr_engin" in message and str(path) in message


def test_invalid_toml(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "asr_engine = = vosk\n[[\n")
    message = config_error({}, path)
    assert str(path) in message and "TOML" in message


def test_missing_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    assert str(path) in config_error({}, path)


def test_invalid_env_wins_over_valid_toml(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'asr_engine = "vosk"\n')
    assert "CARECOACH_ASR_ENGINE" in config_error({"CARECOACH_ASR_ENGINE": "bogus"}, path)


# --- secrets and exposure --------------------------------------------------------------------------


def test_secrets_not_in_repr() -> None:
    config = load_config({
        "CARECOACH_API_TOKENS": f"agent:{SECRET}",
        "TWILIO_ACCOUNT_SID": "AC0123",
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    })
    assert config.twilio_auth_token == AUTH_TOKEN
    text = repr(config) + str(config)
    assert SECRET not in text
    assert AUTH_TOKEN not in text
    assert "AC0123" in text  # the account SID is not a secret


def test_auth_token_from_toml(tmp_path: Path) -> None:
    path = write_toml(tmp_path, f'twilio_auth_token = "{AUTH_TOKEN}"\n')
    config = load_config({}, path)
    assert config.twilio_auth_token == AUTH_TOKEN
    assert AUTH_TOKEN not in repr(config)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "cc.example.com"])
def test_non_loopback_host_without_tokens_is_refused(host: str) -> None:
    message = config_error({}, host=host)
    assert host in message and "CARECOACH_API_TOKENS" in message


@pytest.mark.parametrize("host", ["0.0.0.0", "cc.example.com"])
def test_non_loopback_host_with_tokens_is_allowed(host: str) -> None:
    config = load_config({"CARECOACH_API_TOKENS": f"admin:{SECRET}"}, host=host)
    assert config.host == host and config.auth_enabled


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_loopback_hosts_need_no_tokens(host: str) -> None:
    assert load_config({}, host=host).host == host


def test_non_loopback_host_from_toml_is_refused(tmp_path: Path) -> None:
    assert "0.0.0.0" in config_error({}, write_toml(tmp_path, 'host = "0.0.0.0"\n'))


# --- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith(("CARECOACH_", "TWILIO_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CARECOACH_DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


def exit_status(argv: list[str]) -> int:
    """`main` returns its status, except argparse errors, which exit (status 2) from inside parse_args."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected exactly one stderr line, got {err!r}"
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(("var", "value"), [
    ("CARECOACH_ASR_ENGINE", "whisper"),
    ("CARECOACH_RECORDINGS", "sometimes"),
    ("CARECOACH_PUBLIC_URL", "cc.example.com"),
])
def test_cli_bad_config_value(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                              var: str, value: str) -> None:
    clean_env.setenv(var, value)
    assert main(["serve"]) == 2
    assert var in one_error_line(capsys)


def test_cli_bad_tokens_do_not_leak(clean_env: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("CARECOACH_API_TOKENS", f"agent:{SECRET},root:{SECRET}2")
    assert main(["serve"]) == 2
    line = one_error_line(capsys)
    assert "CARECOACH_API_TOKENS" in line and SECRET not in line


def test_cli_refuses_open_non_loopback_host(clean_env: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "0.0.0.0" in one_error_line(capsys)


def test_cli_bad_config_file(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                             tmp_path: Path) -> None:
    path = write_toml(tmp_path, "nonsense = 1\n")
    assert main(["serve", "--config", str(path)]) == 2
    assert "nonsense" in one_error_line(capsys)


def test_cli_models_command_checks_config(clean_env: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("CARECOACH_MAX_CALLS", "zero")
    assert main(["models", "list"]) == 2
    assert "CARECOACH_MAX_CALLS" in one_error_line(capsys)


@pytest.mark.parametrize(("argv", "needle"), [
    (["frobnicate"], "frobnicate"),
    (["serve", "--bogus"], "--bogus"),
    (["serve", "--port", "http"], "http"),
    (["serve", "--port", "70000"], "70000"),
    (["demo", "--speed", "-1"], "-1"),
    ([], "command"),
])
def test_cli_usage_errors(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                          argv: list[str], needle: str) -> None:
    assert exit_status(argv) == 2
    assert needle in one_error_line(capsys)
