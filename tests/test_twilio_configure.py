"""`carecoach twilio configure` in a subprocess against a local fake of Twilio's REST API (the same
`FakeTwilio` record and `CARECOACH_TWILIO_API_URL` re-pointing the audio-whisper tests use): the number is
looked up and updated through the real twilio client, and every failure is one line with the right status."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.test_cli import cli_env, error_lines, free_port, run_cli
from tests.test_whisper_app import ACCOUNT, TOKEN, FakeTwilio

NUMBER = "+15557654321"
NUMBER_SID = "PN" + "c" * 32
PUBLIC = "https://cc.example.com"


@pytest_asyncio.fixture
async def fake_numbers() -> AsyncIterator[FakeTwilio]:
    """Twilio's IncomingPhoneNumbers resource: Basic auth checked, one number owned, updates recorded."""
    fake = FakeTwilio()
    owned = {NUMBER_SID: {"sid": NUMBER_SID, "account_sid": ACCOUNT, "phone_number": NUMBER,
                          "friendly_name": "(555) 765-4321", "voice_url": "", "voice_method": "POST",
                          "status_callback": "", "status_callback_method": "POST"}}

    def authorised(request: web.Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        return request.headers.get("Authorization") == expected and request.match_info["account"] == ACCOUNT

    def refused() -> web.Response:
        return web.json_response({"code": 20003, "message": "Authenticate", "more_info":
                                  "https://www.twilio.com/docs/errors/20003", "status": 401}, status=401)

    async def list_numbers(request: web.Request) -> web.Response:
        fake.requests.append({"kind": "list", "query": dict(request.query)})
        if not authorised(request):
            return refused()
        wanted = request.query.get("PhoneNumber")
        records = [n for n in owned.values() if wanted is None or n["phone_number"] == wanted]
        return web.json_response({"incoming_phone_numbers": records, "first_page_uri": "", "next_page_uri": None,
                                  "previous_page_uri": None, "page": 0, "page_size": 20, "uri": request.path,
                                  "end": len(records) - 1, "start": 0})

    async def update_number(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        fake.requests.append({"kind": "update", "form": form, "sid": request.match_info["sid"]})
        if not authorised(request):
            return refused()
        record = owned[request.match_info["sid"]]
        record.update({"voice_url": form.get("VoiceUrl", record["voice_url"]),
                       "voice_method": form.get("VoiceMethod", record["voice_method"]),
                       "status_callback": form.get("StatusCallback", record["status_callback"])})
        return web.json_response(record)

    app = web.Application()
    app.router.add_get("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json", list_numbers)
    app.router.add_post("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{sid}.json", update_number)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


def env_for(tmp_path: Path, fake: FakeTwilio, **extra: str) -> dict[str, str]:
    return cli_env(tmp_path, TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_AUTH_TOKEN=TOKEN,
                   CARECOACH_TWILIO_API_URL=fake.url, **extra)


async def configure(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return await run_cli("twilio", "configure", *args, env=env, seconds=60)


async def test_points_the_number_at_the_service(tmp_path: Path, fake_numbers: FakeTwilio) -> None:
    code, out, err = await configure(env_for(tmp_path, fake_numbers), "--number", NUMBER, "--public-url",
                                     PUBLIC + "/")
    assert code == 0, err
    lookup, update = fake_numbers.of("list"), fake_numbers.of("update")
    assert lookup[0]["query"]["PhoneNumber"] == NUMBER
    assert update[0]["sid"] == NUMBER_SID
    assert update[0]["form"] == {"VoiceUrl": f"{PUBLIC}/twilio/voice", "VoiceMethod": "POST",
                                 "StatusCallback": f"{PUBLIC}/twilio/status", "StatusCallbackMethod": "POST"}
    assert out.strip() == (f"{NUMBER} ({NUMBER_SID}): voice webhook POST {PUBLIC}/twilio/voice, status callback "
                           f"{PUBLIC}/twilio/status")
    assert "CARECOACH_PUBLIC_URL=https://cc.example.com" in err  # the reminder: signatures need it on the service


async def test_public_url_defaults_to_the_configured_one(tmp_path: Path, fake_numbers: FakeTwilio) -> None:
    code, _out, err = await configure(env_for(tmp_path, fake_numbers, CARECOACH_PUBLIC_URL=PUBLIC),
                                      "--number", NUMBER)
    assert code == 0, err
    assert fake_numbers.of("update")[0]["form"]["VoiceUrl"] == f"{PUBLIC}/twilio/voice"
    assert err.strip() == ""


async def one_error(code_and_output: tuple[int, str, str], status: int, *words: str) -> str:
    code, out, err = code_and_output
    lines = error_lines(err)
    assert code == status, err
    assert len(lines) == 1 and "Traceback" not in err and out == "", err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


async def test_usage_and_configuration_errors_exit_2(tmp_path: Path, fake_numbers: FakeTwilio) -> None:
    env = env_for(tmp_path, fake_numbers)
    await one_error(await configure(env, "--number", "5557654321", "--public-url", PUBLIC), 2, "--number", "E164")
    await one_error(await configure(env, "--number", NUMBER, "--public-url", "ftp://x"), 2, "--public-url")
    await one_error(await configure(env, "--number", NUMBER), 2, "CARECOACH_PUBLIC_URL")
    await one_error(await configure(env, "--public-url", PUBLIC), 2, "--number")
    no_creds = cli_env(tmp_path, CARECOACH_TWILIO_API_URL=fake_numbers.url)
    await one_error(await configure(no_creds, "--number", NUMBER, "--public-url", PUBLIC), 2, "TWILIO_AUTH_TOKEN")
    assert fake_numbers.requests == []  # nothing reached Twilio


async def test_a_number_of_another_account_is_named_clearly(tmp_path: Path, fake_numbers: FakeTwilio) -> None:
    line = await one_error(await configure(env_for(tmp_path, fake_numbers), "--number", "+15550000000",
                                           "--public-url", PUBLIC), 1, "+15550000000", "not a phone number of", ACCOUNT)
    assert fake_numbers.of("update") == []
    assert line.startswith("carecoach: error: ")


async def test_wrong_credentials_are_reported_without_the_token(tmp_path: Path, fake_numbers: FakeTwilio) -> None:
    env = env_for(tmp_path, fake_numbers)
    env["TWILIO_AUTH_TOKEN"] = "wrong-token-value"
    line = await one_error(await configure(env, "--number", NUMBER, "--public-url", PUBLIC), 1,
                           "refused the credentials", "HTTP 401", "TWILIO_AUTH_TOKEN")
    assert "wrong-token-value" not in line


async def test_an_unreachable_api_is_a_network_error(tmp_path: Path, fake_numbers: Any) -> None:
    env = env_for(tmp_path, fake_numbers)
    env["CARECOACH_TWILIO_API_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    await one_error(await configure(env, "--number", NUMBER, "--public-url", PUBLIC), 1, "cannot reach Twilio",
                    "ConnectionError")
