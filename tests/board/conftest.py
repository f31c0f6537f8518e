"""The board against the real app with its sandbox: sign-in goes through the fake WeCom over loopback HTTP, as a
browser goes through WeCom."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.domain.clock import FrozenClock
from bot.domain.ticket import TicketInput
from bot.web.keys import TICKETS
from config.model import BotConfig
from config.settings import Settings

Client = TestClient[Any, Any]


@pytest.fixture
async def board(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> Client:
    """The bot with its sandbox, on SQLite and on PostgreSQL; no background workers (nothing moves but the test)."""
    settings = settings_for(database_url, BOARD_SECRET="a-board-secret-for-the-tests-only")
    app = create_app(settings, sandbox_config, clock=clock, run_workers=False, sandbox=True)
    return await aiohttp_client(app)


async def through_wecom(client: Client, userid: str, *, wecom_browser: bool = False) -> aiohttp.ClientResponse:
    """A browser's way through sign-in: to WeCom's page, the member picked there, back to the bot with the code.
    Returns the bot's answer to that last step."""
    headers = {"User-Agent": "Mozilla/5.0 wxwork/4.1.30 MicroMessenger/7.0.1"} if wecom_browser else {}
    client.session.cookie_jar.clear()  # another member on this browser: as after 退出
    started = await client.get("/board/login?next=/board/", allow_redirects=False, headers=headers)
    assert started.status == 302, await started.text()
    to_wecom = started.headers["Location"]
    async with aiohttp.ClientSession() as browser:  # WeCom's site: another origin than the bot's
        page = await browser.get(to_wecom)
        assert page.status == 200, await page.text()
        asked = _query(to_wecom)
        form = {
            "redirect_uri": asked["redirect_uri"],
            "state": asked.get("state", ""),
            "agentid": asked.get("agentid", ""),
            "userid": userid,
        }
        base = to_wecom.split("/connect/")[0].split("/wwlogin/")[0]
        picked = await browser.post(f"{base}/connect/oauth2/picked", data=form, allow_redirects=False)
        assert picked.status == 302, await picked.text()
        back = picked.headers["Location"]
    parts = urlsplit(back)
    return await client.get(f"{parts.path}?{parts.query}", allow_redirects=False)


async def sign_in(client: Client, userid: str, *, wecom_browser: bool = False) -> str:
    """Signs ``userid`` in as a browser does; returns the CSRF token the board gives the page."""
    done = await through_wecom(client, userid, wecom_browser=wecom_browser)
    assert done.status == 302, await done.text()
    assert done.headers["Location"] == "/board/"
    me = await client.get("/board/api/me")
    assert me.status == 200
    return str((await me.json())["csrf"])


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url.split("#")[0]).query))


async def hand_over(client: Client, no: str, **fields: Any) -> None:
    """A ticket handed over by the hotline (the service's own entry, as the signed API takes it)."""
    base: dict[str, Any] = {
        "ticket_no": no,
        "content": "店招松动存在坠落风险，请尽快处理，市民李建国来电，电话13812345678",
        "citizen_name": "李建国",
        "citizen_phone": "13812345678",
        "address": "幸福里小区3号1203室",
    }
    base.update(fields)
    await client.app[TICKETS].upsert([TicketInput(**base)])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """Marks a test whose body failed, so that a browser fixture takes a screenshot as it closes."""
    outcome = yield
    if call.when == "call" and outcome.get_result().failed:
        item.failed_call = True  # type: ignore[attr-defined]
