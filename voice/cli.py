"""The `carecoach` command line (CONTRACT §1): serve, demo, simulate, classify, models.

Usage and configuration errors print one line naming the bad value and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from voice.config import Config, ConfigError, load_config

log = logging.getLogger("carecoach")
#: How long shutdown waits for open sockets other than calls' before cutting them (seconds).
SHUTDOWN_SECONDS = 3.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage dump: scripts and operators read the first line only.
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed {text!r}: expected a number ≥ 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--speed {text!r}: expected a number ≥ 0")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"--port {text!r}: expected 0-65535")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="carecoach", description="Real-time call coaching for contact centers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=None, help="port (default 8080)")
    serve.add_argument("--config", type=Path, default=None, help="TOML configuration file")

    demo = sub.add_parser("demo", help="serve and stream the bundled demo call through /twilio/stream")
    demo.add_argument("--port", type=_port, default=8080)
    demo.add_argument("--speed", type=_speed, default=1.0, help="1 = real time, 0 = as fast as possible")
    demo.add_argument("--config", type=Path, default=None)
    demo.add_argument("--exit", action="store_true", help="exit after the call instead of serving on")

    simulate = sub.add_parser("simulate", help="act as Twilio: stream a stereo WAV (left=customer, right=agent)")
    simulate.add_argument("call", type=Path, help="stereo WAV, any sample rate")
    simulate.add_argument("--url", required=True, help="ws://HOST:PORT/twilio/stream")
    simulate.add_argument("--speed", type=_speed, default=1.0)
    simulate.add_argument("--call-sid", default=None)

    sub.add_parser("classify", help="JSON Lines utterances on stdin → the same lines with \"phase\" on stdout")

    models = sub.add_parser("models", help="manage Vosk models")
    models_sub = models.add_subparsers(dest="models_command", required=True, parser_class=_Parser)
    models_sub.add_parser("list", help="catalog and installed models")
    fetch = models_sub.add_parser("fetch", help="download, check and unpack a model")
    fetch.add_argument("name", help="catalog name or URL of a .zip")
    fetch.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")
    verify = models_sub.add_parser("verify", help="check a model directory")
    verify.add_argument("path", type=Path)
    verify.add_argument("--load", action="store_true", help="also load it with Vosk")

    twilio = sub.add_parser("twilio", help="Twilio account setup")
    twilio_sub = twilio.add_subparsers(dest="twilio_command", required=True, parser_class=_Parser)
    configure = twilio_sub.add_parser(
        "configure", help="point a number's voice webhook and status callback at this service")
    configure.add_argument("--number", required=True, help="the Twilio number, +E164")
    configure.add_argument("--public-url", default=None,
                           help="this service's public https:// base URL (default CARECOACH_PUBLIC_URL)")
    configure.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    return parser


def _config(args: argparse.Namespace, **overrides: object) -> Config:
    return load_config(os.environ, getattr(args, "config", None), **overrides)  # type: ignore[arg-type]


def _setup_logging(config: Config) -> None:
    from voice.logs import setup_logging

    level = os.environ.get("CARECOACH_LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in logging.getLevelNamesMapping():
        raise ConfigError(f"CARECOACH_LOG_LEVEL={level!r}: expected DEBUG, INFO, WARNING or ERROR")
    # Known secrets are masked by value wherever they appear, on top of the pattern-based scrubbing.
    secrets = [config.twilio_auth_token or "", *config.api_tokens, config.audiohook_api_key or ""]
    if config.audiohook_client_secret:  # configured (and so seen in text) as base64
        secrets.append(base64.b64encode(config.audiohook_client_secret).decode())
    setup_logging("json" if config.log_format == "json" else "text", level, secrets=secrets)


def _serve(config: Config) -> int:
    from aiohttp import web

    from dialog.store import StoreError
    from voice.app import build_app

    _setup_logging(config)
    log.info("starting with %s", config)
    app = build_app(config)
    try:
        # SIGTERM: call sockets (whisper legs too) are closed first (their calls end `interrupted`, keeping what was
        # heard); other long-lived sockets (live boards) are cut after SHUTDOWN_SECONDS instead of aiohttp's
        # 60 s, which would outlast a 30 s Kubernetes grace period and end in SIGKILL.
        web.run_app(app, host=config.host, port=config.port, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS,
                    print=lambda _: print(f"carecoach listening on http://{config.host}:{config.port}", flush=True))
    except OSError as exc:
        print(f"carecoach: error: cannot listen on {config.host}:{config.port}: {exc.strerror}", file=sys.stderr)
        return 2
    except StoreError as exc:  # e.g. PostgreSQL unreachable at start-up: one line, no traceback
        print(f"carecoach: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from voice.simulate import CallFileError, load_stereo, stream_call

    try:
        samples = load_stereo(args.call)
    except CallFileError as exc:
        print(f"carecoach: error: {exc}", file=sys.stderr)
        return 2

    def progress(sent: float, total: float) -> None:
        print(f"\rstreaming {sent:6.1f}/{total:.1f} s", end="", file=sys.stderr, flush=True)

    try:
        call = asyncio.run(stream_call(samples, args.url, speed=args.speed, call_sid=args.call_sid,
                                       auth_token=os.environ.get("TWILIO_AUTH_TOKEN") or None,
                                       on_progress=progress))
    except Exception as exc:  # any connection failure: one line, not a traceback
        print(f"\ncarecoach: error: streaming to {args.url} failed: {exc}", file=sys.stderr)
        return 1
    print(f"\rstreamed {call.duration:.1f} s as call {call.call_sid}", file=sys.stderr)
    print(json.dumps({"call_sid": call.call_sid, "stream_sid": call.stream_sid, "duration": call.duration}))
    return 0


def _models(args: argparse.Namespace) -> int:
    from voice import models

    config = _config(args)
    try:
        if args.models_command == "list":
            for info, path in models.list_models(config.models_dir):
                name = info.name if info else path.name if path else "?"
                where = f"installed at {path}" if path else "not installed"
                extra = f"{info.lang}, {info.size_mb} MB" if info else "local"
                print(f"{name:40} {extra:20} {where}")
            return 0
        if args.models_command == "fetch":
            def progress(done: int, total: int | None) -> None:
                total_text = f"/{total / 1e6:.0f}" if total else ""
                print(f"\rdownloading {done / 1e6:.1f}{total_text} MB", end="", file=sys.stderr, flush=True)

            path = asyncio.run(models.fetch(args.name, config.models_dir, sha256=args.sha256, progress=progress))
            print(f"\ninstalled {path}", file=sys.stderr)
            print(path)
            return 0
        problems = models.verify(args.path, load=args.load)
        for problem in problems:
            print(f"{args.path}: {problem}", file=sys.stderr)
        if not problems:
            print(f"{args.path}: OK")
        return 1 if problems else 0
    except models.ModelError as exc:
        print(f"\ncarecoach: error: {exc}", file=sys.stderr)
        return 1


def _twilio_configure(args: argparse.Namespace) -> int:
    from voice.twilio_setup import SetupError, configure_number

    config = _config(args)
    public_url = args.public_url or config.public_url
    if not public_url:
        print("carecoach: error: --public-url (or CARECOACH_PUBLIC_URL) is required", file=sys.stderr)
        return 2
    try:
        done = configure_number(config.twilio_account_sid, config.twilio_auth_token, args.number, public_url,
                                api_url=config.twilio_api_url)
    except SetupError as exc:
        print(f"carecoach: error: {exc}", file=sys.stderr)
        return 2 if exc.usage else 1
    print(f"{done.phone_number} ({done.sid}): voice webhook POST {done.voice_url}, status callback "
          f"{done.status_callback}")
    if not config.public_url:
        print(f"set CARECOACH_PUBLIC_URL={public_url.rstrip('/')} on the service so signatures verify",
              file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        match args.command:
            case "serve":
                return _serve(_config(args, host=args.host, port=args.port))
            case "demo":
                from voice.demo import run_demo

                config = _config(args, port=args.port)
                _setup_logging(config)
                logging.getLogger().setLevel(logging.WARNING)  # the demo prints its own story
                return asyncio.run(run_demo(config, speed=args.speed, keep_serving=not args.exit))
            case "simulate":
                return _simulate(args)
            case "classify":
                from dialog.classify import classify_jsonl

                return classify_jsonl(sys.stdin, sys.stdout)
            case "models":
                return _models(args)
            case "twilio":
                return _twilio_configure(args)
    except ConfigError as exc:
        print(f"carecoach: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
