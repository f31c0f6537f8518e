"""Signing in with WeCom (网页授权 and the QR login) through a third party's client (wechatpy 1.8.18's enterprise
``WeChatClient``: its ``oauth.authorize_url`` and ``oauth.get_user_info``) and a browser against the fake WeCom:
the link it builds is followed, the member picked comes back with a code, the code names that member once, and
what WeCom refuses (a redirect off the trusted domain, a used or expired code) is refused as WeCom refuses it."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from wechatpy.exceptions import WeChatClientException

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom
from tests.wecom.client.test_wechatpy_media import AGENT, CORP, SECRET, FakeBackedClient
from tests.wecom.conftest import ServeFake

TRUSTED = "board.example.gov.cn"
BACK = f"https://{TRUSTED}/board/auth"


@pytest.fixture
async def fake(serve_fake: ServeFake) -> FakeWeCom:
    return await serve_fake(
        corp_id=CORP,
        secrets={SECRET: AGENT},
        members=["wuhao", "ZhangWei"],
        names={"wuhao": "吴昊"},
        trusted_domains=[TRUSTED],
    )


@pytest.fixture
def client(fake: FakeWeCom) -> FakeBackedClient:
    assert fake.base_url is not None
    client = FakeBackedClient(fake.base_url)
    client.oauth.OAUTH_BASE_URL = f"{fake.base_url}/connect/oauth2/authorize"
    return client


async def pick(link: str, userid: str) -> tuple[int, dict[str, list[str]], str]:
    """A browser on the link: the page it shows, then the member chosen; the redirect's status and its query."""
    async with aiohttp.ClientSession() as browser:
        page = await browser.get(link.split("#")[0])
        text = await page.text()
        if page.status != 200:
            return page.status, {}, text
        asked = {k: v[0] for k, v in parse_qs(urlsplit(link.split("#")[0]).query).items()}
        form = {k: asked.get(k, "") for k in ("redirect_uri", "state", "agentid")} | {"userid": userid}
        base = link.split("/connect/")[0].split("/wwlogin/")[0]
        chosen = await browser.post(f"{base}/connect/oauth2/picked", data=form, allow_redirects=False)
        location = chosen.headers.get("Location", "")
        return chosen.status, parse_qs(urlsplit(location).query), text


async def _errcode(call: Any, *args: Any, **kwargs: Any) -> int:
    with pytest.raises(WeChatClientException) as raised:
        await asyncio.to_thread(call, *args, **kwargs)
    return int(raised.value.errcode)


async def test_the_sdks_link_comes_back_with_a_code_that_names_the_member_once(client: FakeBackedClient) -> None:
    link = client.oauth.authorize_url(BACK, state="s1")
    status, query, page = await pick(link, "wuhao")
    assert "吴昊（wuhao）" in page  # the picker names the members
    assert status == 302
    assert query["state"] == ["s1"]
    code = query["code"][0]
    info = await asyncio.to_thread(client.oauth.get_user_info, code)
    assert info["UserId"] == "wuhao"
    assert await _errcode(client.oauth.get_user_info, code) == 40029  # used
    assert await _errcode(client.oauth.get_user_info, "no-such-code") == 40029


async def test_the_current_api_answers_userid_and_a_code_expires_after_five_minutes(
    fake: FakeWeCom, client: FakeBackedClient, clock: FrozenClock
) -> None:
    link = client.oauth.authorize_url(BACK, state="s2")
    _, query, _ = await pick(link, "zhangwei")  # userids are matched without regard to case
    info = await asyncio.to_thread(client.get, "auth/getuserinfo", params={"code": query["code"][0]})
    assert info["userid"] == "ZhangWei"
    _, query, _ = await pick(link, "wuhao")
    clock.advance(minutes=5)
    assert await _errcode(client.get, "auth/getuserinfo", params={"code": query["code"][0]}) == 40029
    assert await _errcode(client.get, "auth/getuserinfo", params={}) == 41008  # no code


async def test_the_qr_login_takes_the_apps_agentid(fake: FakeWeCom) -> None:
    assert fake.base_url is not None
    query = {"login_type": "CorpApp", "appid": CORP, "agentid": AGENT, "redirect_uri": BACK, "state": "q1"}
    status, answered, _ = await pick(f"{fake.base_url}/wwlogin/sso/login?{urlencode(query)}", "wuhao")
    assert status == 302
    assert answered["state"] == ["q1"]
    status, _, page = await pick(f"{fake.base_url}/wwlogin/sso/login?{urlencode(query | {'agentid': 999})}", "wuhao")
    assert status == 400
    assert "agentid参数错误" in page


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"redirect_uri": "https://evil.example/board/auth"}, "redirect_uri参数错误"),
        ({"redirect_uri": f"https://{TRUSTED}:8443/board/auth"}, "redirect_uri参数错误"),  # the port is the domain's
        ({"appid": "another-corp"}, "appid参数错误"),
        ({"scope": "snsapi_login"}, "scope参数错误"),
        ({"state": "has spaces"}, "state参数错误"),
    ],
)
async def test_what_wecom_will_not_follow_is_refused(fake: FakeWeCom, change: dict[str, str], refusal: str) -> None:
    assert fake.base_url is not None
    query = {"appid": CORP, "redirect_uri": BACK, "response_type": "code", "scope": "snsapi_base", "state": "s"}
    status, _, page = await pick(f"{fake.base_url}/connect/oauth2/authorize?{urlencode(query | change)}", "wuhao")
    assert status == 400
    assert refusal in page
