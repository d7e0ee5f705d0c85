"""The real `carecoach` command in subprocesses (CONTRACT §1): exit codes, one-line errors, and what
each command prints and stores."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import sys
import wave
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import CALLS, ServerFactory, ws_url

ROOT = Path(__file__).resolve().parent.parent


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any carecoach/Twilio settings, plus a private data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARECOACH_", "TWILIO_"))}
    env["CARECOACH_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


async def run_cli(*args: str, env: dict[str, str], stdin: bytes | None = None,
                  seconds: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voice.cli", *args, cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), seconds)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def error_lines(stderr: str) -> list[str]:
    # Progress output uses \r; what an operator sees is the non-empty lines.
    return [line for line in re.split(r"[\r\n]+", stderr) if line.strip() and not line.startswith("stream")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- demo -----------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_demo_streams_the_bundled_call_prints_it_and_stores_it(tmp_path: Path) -> None:
    code, out, err = await run_cli("demo", "--speed", "0", "--exit", "--port", "0", env=cli_env(tmp_path),
                                   seconds=90)
    assert code == 0, err
    assert "Traceback" not in err
    replay = re.search(r"^replay: http://127\.0\.0\.1:(\d+)/calls/(CA[0-9a-f]{32})$", out, re.M)
    assert replay, out
    port, call_sid = int(replay.group(1)), replay.group(2)
    assert port > 0
    assert f"call {call_sid} started" in out
    lanes = re.findall(r"^\s+\[\s*[\d.]+s\]\s+(customer|agent) \(\s*(venting|question|other)\) \S", out, re.M)
    assert {lane for lane, _ in lanes} == {"customer", "agent"}, out
    assert re.search(r"^stored: status ended, (\d+) utterances \((\d+) customer\)", out, re.M)
    printed = int(re.search(r"^stored: status ended, (\d+) utterances", out, re.M).group(1))  # type: ignore[union-attr]

    with sqlite3.connect(tmp_path / "carecoach.db") as db:
        status, agent, duration = db.execute(
            "SELECT status, agent, duration FROM calls WHERE call_sid = ?", (call_sid,)).fetchone()
        speakers = dict(db.execute(
            "SELECT speaker, COUNT(*) FROM utterances WHERE call_sid = ? GROUP BY speaker", (call_sid,)).fetchall())
    assert status == "ended" and agent == "demo-agent"
    assert duration == pytest.approx(43.5, abs=1.0)
    assert speakers["customer"] > 0 and speakers["agent"] > 0
    assert sum(speakers.values()) == printed == len(lanes)
    assert (tmp_path / "recordings" / call_sid / "recording.wav").is_file()


# --- serve ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "args", "names"), [
    ({"CARECOACH_ASR_ENGINE": "bogus"}, [], "CARECOACH_ASR_ENGINE='bogus'"),
    ({"CARECOACH_RECORDINGS": "maybe"}, [], "CARECOACH_RECORDINGS='maybe'"),
    ({}, ["--host", "0.0.0.0"], "--host 0.0.0.0"),
    ({"CARECOACH_API_TOKENS": "root:secret-value"}, [], "CARECOACH_API_TOKENS"),
    ({}, ["--port", "http"], "--port 'http'"),
    ({}, ["--config", "/nonexistent/carecoach.toml"], "/nonexistent/carecoach.toml"),
])
async def test_serve_with_bad_config_exits_2_with_one_line(tmp_path: Path, env: dict[str, str], args: list[str],
                                                           names: str) -> None:
    code, out, err = await run_cli("serve", "--port", str(free_port()), *args, env=cli_env(tmp_path, **env))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert names in lines[0]
    assert "Traceback" not in err and "secret-value" not in err
    assert "listening" not in out
    assert not (tmp_path / "carecoach.db").exists()  # stopped before opening anything


@pytest.mark.slow
async def test_serve_listens_becomes_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voice.cli", "serve", "--port", str(port), cwd=ROOT, env=cli_env(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.decode() == f"carecoach listening on http://127.0.0.1:{port}\n"
        ready: dict[str, Any] = {}
        async with aiohttp.ClientSession() as client:
            for _ in range(300):  # bounded poll: the engine may still be loading
                async with client.get(f"http://127.0.0.1:{port}/readyz") as response:
                    ready = await response.json()
                if ready.get("ready"):
                    break
                await asyncio.sleep(0.05)
        assert ready["ready"] is True and ready["model_loaded"] is True and ready["database"] is True
        assert ready["engine"] == "pocketsphinx"  # auto, with no Vosk model in the data dir
        assert (tmp_path / "carecoach.db").is_file()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        err = (await proc.stderr.read()).decode()
        assert code == 0, err
        assert "Traceback" not in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# --- simulate -------------------------------------------------------------------------------------


async def wait_ended(server: Any, call_sid: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as client:
        for _ in range(200):
            async with client.get(server.make_url(f"/api/calls/{call_sid}")) as response:
                call: dict[str, Any] = await response.json()
            if call["status"] != "live":
                return call
            await asyncio.sleep(0.05)
    raise AssertionError(f"{call_sid} stayed live")


@pytest.mark.slow
async def test_simulate_streams_a_wav_into_a_running_server(make_server: ServerFactory, tmp_path: Path) -> None:
    server = await make_server()
    code, out, err = await run_cli("simulate", str(CALLS / "demo.wav"), "--url", ws_url(server, "/twilio/stream"),
                                   "--speed", "0", "--call-sid", "CAsimulated0001", env=cli_env(tmp_path),
                                   seconds=90)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["call_sid"] == "CAsimulated0001"
    assert result["stream_sid"].startswith("MZ")
    with wave.open(str(CALLS / "demo.wav")) as w:
        seconds = w.getnframes() / w.getframerate()
    assert result["duration"] == pytest.approx(seconds, abs=0.03)
    call = await wait_ended(server, result["call_sid"])
    assert call["status"] == "ended"
    assert call["stream_sid"] == result["stream_sid"]
    assert call["duration"] == pytest.approx(seconds, abs=0.03)
    assert {u["speaker"] for u in call["utterances"]} == {"customer", "agent"}


async def test_simulate_signs_with_twilio_auth_token(make_server: ServerFactory, calm_call: Any,
                                                     tmp_path: Path) -> None:
    server = await make_server(twilio_auth_token="tok-123")
    wav = tmp_path / "short.wav"
    samples = calm_call[0][: 8000 * 2]
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.tobytes())
    url = ws_url(server, "/twilio/stream")

    code, out, err = await run_cli("simulate", str(wav), "--url", url, "--speed", "0",
                                   env=cli_env(tmp_path, TWILIO_AUTH_TOKEN="wrong"))
    assert code == 1 and out == ""
    lines = error_lines(err)
    assert len(lines) == 1 and "403" in lines[0] and url in lines[0], err
    assert "Traceback" not in err

    code, out, err = await run_cli("simulate", str(wav), "--url", url, "--speed", "0",
                                   env=cli_env(tmp_path, TWILIO_AUTH_TOKEN="tok-123"))
    assert code == 0, err
    call = await wait_ended(server, json.loads(out)["call_sid"])
    assert call["status"] == "ended" and call["duration"] == pytest.approx(2.0, abs=0.03)


async def test_simulate_rejects_a_mono_or_missing_file_with_one_line(tmp_path: Path) -> None:
    mono = tmp_path / "mono.wav"
    with wave.open(str(mono), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 1600)
    url = "ws://127.0.0.1:9/twilio/stream"  # never reached: the file is checked first
    for path, says in ((mono, "stereo"), (tmp_path / "missing.wav", "not a readable WAV")):
        code, out, err = await run_cli("simulate", str(path), "--url", url, "--speed", "0", env=cli_env(tmp_path))
        assert code == 2 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and says in lines[0], err
    code, _, err = await run_cli("simulate", str(mono), env=cli_env(tmp_path))  # --url is required
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--url" in err


# --- classify -------------------------------------------------------------------------------------


async def test_classify_adds_phase_keeping_order_and_fields(tmp_path: Path) -> None:
    lines = [
        {"call": "a", "seq": 0, "speaker": "agent", "text": "thanks for calling how can i help", "start": 0.5,
         "end": 2.0},
        {"call": "b", "seq": 0, "speaker": "customer", "text": "how do i change my plan"},
        {"call": "a", "seq": 1, "speaker": "customer",
         "text": "this is ridiculous ive been charged twice and nobody ever calls me back",
         "start": 2.5, "end": 6.1, "extra": {"nested": [1, 2]}, "ticket": None},
        {"call": "a", "seq": 2, "speaker": "customer", "text": "okay merci café thank you"},
    ]
    stdin = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    code, out, err = await run_cli("classify", env=cli_env(tmp_path), stdin=stdin)
    assert code == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    assert len(got) == len(lines)
    for sent, back in zip(lines, got, strict=True):
        assert {k: v for k, v in back.items() if k != "phase"} == sent
        assert list(back)[:-1] == list(sent) and list(back)[-1] == "phase"  # fields kept in order, phase added
        assert back["phase"] in ("venting", "question", "other")
    assert got[1]["phase"] == "question"
    assert got[2]["phase"] == "venting"
    assert "café" in out  # non-ASCII text is written as is


async def test_classify_with_empty_input_writes_nothing(tmp_path: Path) -> None:
    code, out, _ = await run_cli("classify", env=cli_env(tmp_path), stdin=b"")
    assert (code, out) == (0, "")


# --- models ---------------------------------------------------------------------------------------


async def test_models_list_shows_the_catalog(tmp_path: Path) -> None:
    code, out, err = await run_cli("models", "list", env=cli_env(tmp_path))
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("vosk-model-small-en-us-0.15 "))
    assert "not installed" in row and "en-us" in row


async def test_models_verify_a_missing_directory_fails_clearly(tmp_path: Path) -> None:
    code, out, err = await run_cli("models", "verify", "/nonexistent", env=cli_env(tmp_path))
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "/nonexistent" in lines[0] and "not a directory" in lines[0]
    assert "Traceback" not in err
