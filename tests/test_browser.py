"""The pages in a real headless Chromium (Debian's, driven by Playwright) against a real server, with a call
streamed into the real `/twilio/stream` as Twilio would.

- the agent console, signed in through the /login form (cookie), shows partials, utterances and the prompt
  card while the call is going on, and its outcome buttons store the agent's disposition;
- the supervisors' live board shows the call and raises the long-venting alert;
- the replay page shows the transcript, a venting band and the prompts, and clicking a line seeks the audio;
- the call list searches server-side; an agent sees only its own calls; without a token a page goes to /login;
- with recordings off the replay page says so instead of showing a dead player.

Screenshots at 1280x800 go to $CARECOACH_SCREENS (default /work/screens) when that directory can be made.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

from tests.conftest import ServerFactory, load_call
from voice.config import load_config
from voice.simulate import new_call_sid, stream_call
from voice.state import HUB

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
TOKENS = load_config({"CARECOACH_API_TOKENS": "supervisor:sup-token,agent/alice:alice-token,agent/bob:bob-token"})
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
#: Faster than real time, slow enough for the ASR to keep up so partials and prompts arrive during the call.
PACE = 2.0


def screens() -> Path | None:
    directory = Path(os.environ.get("CARECOACH_SCREENS", "/work/screens"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return directory


async def shot(page: Page, name: str) -> None:
    directory = screens()
    if directory is not None:
        await page.screenshot(path=str(directory / f"{name}.png"))


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        await b.close()


async def text(page: Page, selector: str) -> str:
    return await page.text_content(selector) or ""


async def until(page: Page, expression: str, seconds: float = 10.0) -> None:
    """Poll a JS expression. (Playwright's wait_for_function compiles its predicate with eval, which the
    pages' CSP rightly refuses; evaluate goes through the DevTools protocol instead.)"""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await page.evaluate(expression):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        await asyncio.sleep(0.1)


def base(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def ws(server: TestServer) -> str:
    return base(server).replace("http", "ws", 1) + "/twilio/stream"


async def sign_in(browser: Browser, server: TestServer, path: str, token: str) -> Page:
    """A fresh browser profile opens `path`, is sent to /login, types the token and comes back signed in."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    await page.goto(base(server) + path)
    assert "/login" in page.url
    await page.fill("#token", token)
    await page.click("#login button")
    await page.wait_for_url(base(server) + path)
    cookies = await context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [("carecoach_token", True, "Strict")]
    return page


async def test_console_board_replay_and_list_in_chromium(make_server: ServerFactory, browser: Browser) -> None:
    server = await make_server(api_tokens=TOKENS.api_tokens, token_agents=TOKENS.token_agents)
    angry, _ = load_call("angry_billing")
    calm, _ = load_call("calm_questions")

    console = await sign_in(browser, server, "/console", "alice-token")
    board_context = await browser.new_context(viewport=VIEWPORT)
    board = await board_context.new_page()
    await board.goto(base(server) + "/live?venting=5&token=sup-token")
    await console.wait_for_selector("#conn.live")
    await board.wait_for_selector("#conn.live")
    # A dropped socket comes back by itself (after 1 s, the first backoff step).
    await console.evaluate("cc.active[0].socket.close()")
    await console.wait_for_selector("#conn.reconnecting")
    await console.wait_for_selector("#conn.live", timeout=5000)

    sid = new_call_sid()
    call = asyncio.ensure_future(stream_call(angry[: 8000 * 36], ws(server), speed=PACE, call_sid=sid,
                                             parameters={"agent": "alice", "from": "+15550100"}))
    try:
        # The console follows Alice's new call: partial text, then finals in the lanes, then a prompt.
        await console.wait_for_selector("#lanes li.partial .text", timeout=20000)
        await console.wait_for_selector("#lanes li.final.customer", timeout=20000)
        await console.wait_for_selector("#prompt-card:not(.empty) .prompt-text", timeout=20000)
        assert sid in await text(console, "#callinfo")
        assert await text(console, "#phase") in ("opening", "venting", "question", "other")
        await console.wait_for_selector("#trend .bar", timeout=10000)
        await shot(console, "console")
        # The board lists the call and raises the long-venting alert (threshold 5 s here).
        await board.wait_for_selector(f'#live tr[data-sid="{sid}"]')
        await board.wait_for_selector("#alerts li.venting", timeout=20000)
        assert "venting" in await text(board, f'#live tr[data-sid="{sid}"]')
        await shot(board, "live-board")
        await asyncio.wait_for(call, 60)
    finally:
        call.cancel()
    await console.wait_for_selector("text=call ended")
    prompts_seen = await console.locator("#prompt-history li").count() + 1
    # From the board, a click on the (ended) call opens the console on that call, history included.
    await board.click(f'#live tr[data-sid="{sid}"] td:nth-child(2)')
    await board.wait_for_url(f"**/console?call={sid}&token=sup-token")
    await board.wait_for_selector("#lanes li.final")
    assert sid in await text(board, "#callinfo")
    # Outcome buttons store the agent's disposition.
    await console.click('#outcome-buttons button[data-disposition="resolved"]')
    await console.wait_for_selector("#outcome-buttons button.chosen[data-disposition='resolved']")
    assert "resolved (agent)" in await text(console, "#outcome-status")

    # Bob's call, which Alice must not see.
    bob_sid = (await stream_call(calm[: 8000 * 4], ws(server), speed=0, parameters={"agent": "bob"})).call_sid

    # Replay (Alice's own call): transcript, venting band, prompt markers and list, metrics, exports.
    replay = console
    await replay.goto(base(server) + f"/calls/{sid}")
    await replay.wait_for_selector("#transcript li")
    assert await replay.locator("#timeline .band.venting").count() >= 1
    assert await replay.locator("#timeline .marker").count() == await replay.locator("#prompts li").count()
    assert await replay.locator("#prompts li").count() >= prompts_seen
    assert "resolved" in await text(replay, "#outcome")
    metrics = await text(replay, "#metrics")
    for name in ("Talk ratio", "Interruptions", "Time to empathy", "Customer sentiment"):
        assert name in metrics
    assert await replay.locator("#exports a").count() == 2
    await until(replay, "document.getElementById('audio').readyState >= 1")
    lines = replay.locator("#transcript li")
    target = lines.nth(min(3, await lines.count() - 1))
    start = float(await target.get_attribute("data-start") or "nan")
    await target.click()
    current = await replay.evaluate("document.getElementById('audio').currentTime")
    assert abs(current - start) < 0.5, (current, start)
    await replay.wait_for_selector("#transcript li.current")
    await replay.evaluate("document.getElementById('audio').pause()")
    await shot(replay, "replay")

    # Alice's call list shows her call only; another agent's replay is "not found" to her.
    await replay.goto(base(server) + "/calls")
    await replay.wait_for_selector(f"#calls a[href='/calls/{sid}']")
    assert await replay.locator(f"#calls a[href='/calls/{bob_sid}']").count() == 0
    await replay.goto(base(server) + f"/calls/{bob_sid}")
    await replay.wait_for_selector("text=Call not found.")

    # The supervisor's list: both calls, server-side search and filters.
    page = board
    await page.goto(base(server) + "/calls?token=sup-token")
    await page.wait_for_selector(f"#calls a[href*='{bob_sid}']")
    assert await page.locator("#calls tbody tr").count() == 2
    await page.fill("#filters input[name=q]", "alice")
    await page.press("#filters input[name=q]", "Enter")
    await until(page, "document.querySelectorAll('#calls tbody tr').length === 1")
    assert sid in await text(page, "#calls tbody")
    await page.fill("#filters input[name=q]", "")
    await page.select_option("#filters select[name=phase]", "venting")
    await until(page, "document.querySelectorAll('#calls tbody tr').length === 1")
    assert "q=" not in page.url and "phase=venting" in page.url  # the filters live in the URL
    await page.select_option("#filters select[name=phase]", "")
    await until(page, "document.querySelectorAll('#calls tbody tr').length === 2")
    await shot(page, "calls")


async def test_without_a_token_pages_go_to_login_and_no_recording_is_handled(make_server: ServerFactory,
                                                                             browser: Browser) -> None:
    server = await make_server(api_tokens=TOKENS.api_tokens, token_agents=TOKENS.token_agents, recordings=False)
    calm, _ = load_call("calm_questions")
    call = await stream_call(calm[: 8000 * 8], ws(server), speed=0, parameters={"agent": "bob"})
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    for path in ("/console", "/live", "/calls", f"/calls/{call.call_sid}"):
        response = await page.goto(base(server) + path)
        assert response is not None and response.ok
        assert page.url.startswith(base(server) + "/login?next="), path
        assert await page.locator("#token").count() == 1
    # A wrong token is refused on the form; the right one returns to the replay page.
    await page.fill("#token", "nope")
    await page.click("#login button")
    await page.wait_for_selector("text=That token is not valid.")
    await page.fill("#token", "bob-token")
    await page.click("#login button")
    await page.wait_for_url(base(server) + f"/calls/{call.call_sid}")
    await page.wait_for_selector("#transcript li")
    assert await page.is_visible("#no-recording") and not await page.is_visible("#audio")
    await page.locator("#transcript li").first.click()  # no player: the line is still highlighted
    await page.wait_for_selector("#transcript li.current")
    await shot(page, "replay-no-recording")
    # Signing out drops the cookie.
    await page.click("header form button")
    await page.wait_for_url(base(server) + "/login")
    assert await context.cookies() == []


async def test_the_board_raises_each_kind_of_alert(make_server: ServerFactory, browser: Browser) -> None:
    """The board's alert rules, fed by events published on the server's real hub (the coach's own triggers are
    tested in test_coach.py; here the question is what the board does with them)."""
    server = await make_server()
    page = await (await browser.new_context(viewport=VIEWPORT)).new_page()
    await page.goto(base(server) + "/live?venting=5")
    await page.wait_for_selector("#conn.live")
    hub = server.app[HUB]
    a, b = new_call_sid(), new_call_sid()
    for sid, agent in ((a, "alice"), (b, "bob")):
        hub.publish({"type": "call_started", "call_sid": sid, "at": 0.0, "agent": agent, "from": "+15550100"})
        hub.publish({"type": "phase", "call_sid": sid, "at": 1.0, "phase": "venting", "previous": "opening"})
        hub.publish({"type": "utterance", "call_sid": sid, "at": 4.0, "seq": 0, "speaker": "customer", "start": 1.0,
                     "end": 4.0, "text": "you charged my bill twice", "phase": "venting", "confidence": 0.9})
    await page.wait_for_selector("#alerts li.systemic")
    assert "billing on 2 calls" in await text(page, "#alerts li.systemic")
    hub.publish({"type": "utterance", "call_sid": a, "at": 9.0, "seq": 1, "speaker": "customer", "start": 5.0,
                 "end": 9.0, "text": "this is ridiculous", "phase": "venting", "confidence": 0.9})
    await page.wait_for_selector("#alerts li.venting")  # venting since 1.0, now at 9.0 > 5 s
    hub.publish({"type": "prompt", "call_sid": b, "at": 16.0, "id": "acknowledge", "text": "Apologise.",
                 "trigger": "no_empathy", "priority": 90, "whisper": ""})
    await page.wait_for_selector("#alerts li.empathy")
    assert "bob" in await text(page, "#alerts li.empathy")
    hub.publish({"type": "prompt", "call_sid": a, "at": 20.0, "id": "check-on-agent", "text": "Check on them.",
                 "trigger": "hostile_call_ended", "priority": 50, "whisper": ""})
    hub.publish({"type": "call_ended", "call_sid": a, "at": 20.0, "status": "ended", "duration": 20.0})
    await page.wait_for_selector("#alerts li.hostile")
    assert "check on alice" in await text(page, "#alerts li.hostile")
    await page.wait_for_selector(f'#live tr.ended[data-sid="{a}"]')
    assert await text(page, "#count") == "1 live call"
    # Sentiment arrives on utterance events (the server scores them): the board shows the latest.
    assert (await text(page, f'#live tr[data-sid="{b}"] .sentiment')).startswith("-")
    await shot(page, "live-board-alerts")
