"""The sandbox page in a real browser: Debian's Chromium (``/usr/bin/chromium``, installed by ``make test``) driven
by Playwright, at a phone's viewport (375×667), against the real app with its sandbox over loopback HTTP. A trainee
injects a ticket, opens the chat (at its newest message, and kept there as messages arrive, unless they scrolled up
to read), claims the ticket by the card's 接单 button (the card changes in place), and closes the intro banner for
good. Nothing sleeps: every step waits for a selector or a condition in the page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.domain.clock import FrozenClock
from bot.sandbox.web import SANDBOX
from bot.wecom.longconn import AIBOT_CONNECTION
from config.model import BotConfig
from config.settings import Settings
from tests.browser import chromium

playwright_api = pytest.importorskip("playwright.async_api")

PHONE = {"width": 375, "height": 667}
WAIT_MS = 15_000  # a bound on each wait for the page, never a pause

Client = TestClient[Any, Any]

# the conversation shows its newest message: scrolled to its end
AT_BOTTOM = (
    "() => { const b = document.getElementById('msgs'); return b.scrollHeight - b.scrollTop - b.clientHeight < 2 }"
)


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    """A new Chromium page at a phone's size."""
    async with chromium() as browser:
        context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN")
        context.set_default_timeout(WAIT_MS)
        yield await context.new_page()


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> Client:
    app = create_app(settings_for(sqlite_url), sandbox_config, clock=clock, run_workers=True, sandbox=True)
    client = await aiohttp_client(app)
    await client.app[AIBOT_CONNECTION].wait_subscribed()
    return client


def link(client: Client) -> str:
    return str(client.make_url(f"/sandbox/?token={client.app[SANDBOX].token}"))


async def say(client: Client, member: str, chat: str, text: str) -> None:
    """Another trainee's line (through the API, as the page sends it)."""
    headers = {"X-Sandbox-Token": client.app[SANDBOX].token}
    response = await client.post(
        "/sandbox/api/say", json={"member": member, "chat": chat, "text": text}, headers=headers
    )
    assert response.status == 200, await response.text()


async def test_a_trainee_on_a_phone_injects_a_ticket_and_claims_it_by_its_card(page: Any, client: Client) -> None:
    for n in range(8):  # a chat with a history longer than the screen
        await say(client, "huangqiang", "group:HW", f"早上好，第 {n + 1} 条")
    await page.goto(link(client))
    # on a phone the chat list comes first; the token has left the address bar
    await page.wait_for_selector("#list .chat >> text=环卫所工作群")
    assert "token" not in page.url
    assert not await page.is_visible("#msgs")
    # a ticket: the demo feed's first sample waits for its unit's digest, the second (紧急) is pushed at once
    for _ in range(2):
        await page.click("#demo")
        await page.wait_for_selector(".toast >> text=已推送演示工单")
        await page.wait_for_selector("#demo:not([disabled])")
    await page.click("#list .chat >> text=环卫所工作群")
    claim = page.locator("#msgs button.card-btn[data-key^='claim:']")
    await claim.wait_for()
    await page.wait_for_function(AT_BOTTOM)  # the chat opened at its newest message, the card
    assert await page.evaluate("document.getElementById('msgs').scrollTop") > 0
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing off the side
    box = await page.locator("#composer").bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= PHONE["height"]  # the composer is on screen
    # claimed by its button, as the ticket's handler: the card changes in place, with the next step's buttons
    await page.select_option("#member", "wuhao")
    key = await claim.get_attribute("data-key")
    assert key is not None
    ticket_no = key.split(":", 1)[1]
    card = page.locator(f"#msgs .bubble:has(button[data-key='{key}'])")
    item = await card.get_attribute("data-item")
    await claim.click()
    changed = page.locator(f"#msgs .bubble[data-item='{item}']")
    await changed.locator("text=吴昊 已接单").wait_for()
    assert await changed.locator(f"button[data-key='claim:{ticket_no}']").count() == 0
    await changed.locator(f"button[data-key='contact:{ticket_no}']").wait_for()
    await page.locator("#msgs .note >> text=卡片已更新").last.wait_for()
    await page.wait_for_function(AT_BOTTOM)  # what arrived kept the reader at the end


async def test_new_messages_keep_the_reader_at_the_end_unless_they_scrolled_up(page: Any, client: Client) -> None:
    for n in range(8):
        await say(client, "huangqiang", "group:HW", f"早上好，第 {n + 1} 条")
    await page.goto(link(client) + "#group:HW")  # a chat named in the link opens at once
    await page.locator("#msgs .msg.out .bubble >> text=早上好，第 8 条").wait_for()
    await page.wait_for_function(AT_BOTTOM)
    await say(client, "wuhao", "group:HW", "收到，马上处理")
    await page.locator("#msgs .msg.out .bubble >> text=收到，马上处理").wait_for()
    await page.wait_for_function(AT_BOTTOM)
    # scrolled up to read: a new message does not pull the reader away
    await page.evaluate("document.getElementById('msgs').scrollTop = 0")
    await say(client, "wuhao", "group:HW", "已到现场")
    await page.locator("#msgs .msg.out .bubble >> text=已到现场").wait_for()
    await page.locator("#msgs .msg.in .bubble >> text=没有「已到现场」这个命令").wait_for()  # and the bot's answer
    assert await page.evaluate("document.getElementById('msgs').scrollTop") == 0
    # typing in the page brings the reader to the end, where the line appears
    await page.fill("#text", "/待办")
    await page.click("#send")
    await page.locator("#msgs .msg.out .bubble >> text=/待办").wait_for()
    await page.wait_for_function(AT_BOTTOM)


async def test_the_intro_banner_closes_for_good(page: Any, client: Client) -> None:
    await page.goto(link(client))
    intro = page.locator("#intro")
    await intro.wait_for()
    assert "群里的工单卡片可以点击" in await intro.inner_text()  # the groups are the robot's, with buttons
    await page.click("#intro-close")
    await intro.wait_for(state="hidden")
    await page.reload()  # by the cookie: the token is gone from the address
    await page.wait_for_selector("#list .chat")
    assert not await intro.is_visible()
    assert await page.evaluate("localStorage.getItem('hotline-sandbox-intro-closed')") == "1"
