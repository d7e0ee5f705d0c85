"""Structured logs (voice/logs.py): one JSON object per line carrying the call's `call_sid` (also in the tasks a
call starts), the text form, and the redacting filter that keeps tokens, auth headers and signatures out of
every line, tracebacks included. Plus the command line's handling of the log settings, in subprocesses."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ServerFactory
from tests.test_cli import cli_env, error_lines, run_cli
from voice.logs import REDACTED, bind_call, redact_secrets, setup_logging

TOKEN = "s3cr3t-admin-token-42"
TWILIO_TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    """The process-wide setup writing into a buffer; the root logger's handlers are restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buffer = io.StringIO()
    setup_logging("json", "INFO", secrets=[TOKEN, TWILIO_TOKEN], stream=buffer)
    yield buffer, logging.getLogger("carecoach.test")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    records = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [r for r in records if r["logger"] == "carecoach.test"]


async def test_each_record_is_one_json_line_with_the_call_sid_of_its_task(
        captured: tuple[io.StringIO, logging.Logger]) -> None:
    buffer, log = captured

    async def call(call_sid: str) -> None:
        bind_call(call_sid)
        log.info("stream started")

        async def recogniser() -> None:  # a task the call starts inherits the call
            log.warning("recogniser says\nhello")

        await asyncio.get_running_loop().create_task(recogniser())

    await asyncio.gather(call("CAone"), call("CAtwo"))
    log.info("no call here")
    records = lines(buffer)
    assert len(records) == 5  # the message's newline stays inside its JSON string
    by_call = {(r.get("call_sid"), r["msg"]) for r in records}
    assert ("CAone", "stream started") in by_call and ("CAtwo", "recogniser says\nhello") in by_call
    assert records[-1] == {**records[-1], "msg": "no call here", "level": "INFO", "logger": "carecoach.test"}
    assert "call_sid" not in records[-1]
    assert all(str(r["ts"]).endswith("Z") for r in records)


@pytest.mark.parametrize("leak", [
    f"GET /api/calls?token={TOKEN}&limit=5",
    f"headers: {{'Authorization': 'Bearer {TOKEN}'}}",
    f"Authorization: Basic {TOKEN}",
    "x-twilio-signature: Ao3Kj9Q1zZbWq8lK0VwYtq8QyBM=",
    "{'X-Twilio-Signature': 'Ao3Kj9Q1zZbWq8lK0VwYtq8QyBM='}",
    "X-API-KEY: key-abcdef-123456",
    "connecting to postgresql://carecoach:pg-pass-9@db.internal:5432/carecoach",
    f"twilio said: {TWILIO_TOKEN} is not valid",
    "config: auth_token='abc123456789'",
])
def test_secrets_never_reach_the_log(captured: tuple[io.StringIO, logging.Logger], leak: str) -> None:
    buffer, log = captured
    log.warning("request failed: %s", leak)
    record = lines(buffer)[0]
    text = buffer.getvalue()
    for secret in (TOKEN, TWILIO_TOKEN, "Ao3Kj9Q1zZbWq8lK0VwYtq8QyBM=", "key-abcdef-123456", "pg-pass-9",
                   "abc123456789"):
        assert secret not in text
    assert REDACTED in str(record["msg"])
    assert str(record["msg"]).startswith("request failed: ")


def test_tracebacks_are_scrubbed_too(captured: tuple[io.StringIO, logging.Logger]) -> None:
    buffer, log = captured
    try:
        raise RuntimeError(f"upstream refused Bearer {TOKEN}")
    except RuntimeError:
        log.exception("whisper failed")
    record = lines(buffer)[0]
    assert TOKEN not in buffer.getvalue()
    assert "RuntimeError: upstream refused Bearer [redacted]" in str(record["exc"])


def test_what_is_not_a_secret_is_left_alone() -> None:
    text = "call CA123: 4 utterances, token count 12, signature check passed, agent sip:alice@pbx"
    assert redact_secrets(text) == text


def test_text_format_tags_the_call(captured: tuple[io.StringIO, logging.Logger]) -> None:
    buffer = io.StringIO()
    setup_logging("text", "INFO", stream=buffer)
    bind_call("CAtext")
    logging.getLogger("carecoach").info("hello %s", "there")
    bind_call(None)
    assert buffer.getvalue().rstrip().endswith("INFO carecoach [CAtext]: hello there")
    # A carrier's malformed id (newlines, anything) never reaches a log line.
    bind_call("CAbad\nINFO carecoach [CAforged]: forged")
    logging.getLogger("carecoach").info("after")
    bind_call(None)
    assert "forged" not in buffer.getvalue() and buffer.getvalue().rstrip().endswith("INFO carecoach: after")


async def test_bad_log_settings_stop_start_up_with_one_line(tmp_path: Path) -> None:
    for extra, named in (({"CARECOACH_LOG_FORMAT": "xml"}, "CARECOACH_LOG_FORMAT"),
                         ({"CARECOACH_LOG_LEVEL": "LOUD"}, "CARECOACH_LOG_LEVEL")):
        code, _out, err = await run_cli("serve", "--port", "0", env=cli_env(tmp_path, **extra), seconds=60)
        assert code == 2, err
        assert len(error_lines(err)) == 1 and named in err and "Traceback" not in err


async def test_a_real_server_logs_no_credentials_it_is_sent(make_server: ServerFactory,
                                                            captured: tuple[io.StringIO, logging.Logger]) -> None:
    """Requests carrying wrong tokens, signatures and auth headers, with every logger at DEBUG."""
    buffer, _ = captured
    logging.getLogger().setLevel(logging.DEBUG)
    server = await make_server(api_tokens={TOKEN: "admin"}, twilio_auth_token=TWILIO_TOKEN)
    wrong = "wrong-token-0123456789"
    signature = "bm90LWEtcmVhbC1zaWduYXR1cmU="
    async with aiohttp.ClientSession() as client:
        async with client.get(server.make_url("/api/calls"), params={"token": wrong}) as response:
            assert response.status == 401
        async with client.get(server.make_url("/api/calls"), headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200
        async with client.post(server.make_url("/twilio/voice"), data={"CallSid": "CA1"},
                               headers={"X-Twilio-Signature": signature}) as response:
            assert response.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await client.ws_connect(str(server.make_url("/twilio/stream")).replace("http", "ws", 1),
                                    headers={"x-twilio-signature": signature})
    text = buffer.getvalue()
    assert "bad or missing X-Twilio-Signature" in text  # the refusals are logged…
    for secret in (TOKEN, TWILIO_TOKEN, wrong, signature):  # …without what was presented or configured
        assert secret not in text
