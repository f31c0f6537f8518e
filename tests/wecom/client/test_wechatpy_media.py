"""Tencent-documented media uploads through a third party's client (wechatpy 1.8.18's enterprise ``WeChatClient``)
against the fake WeCom: what it uploads and sends is taken, what WeCom refuses is refused with WeCom's errcode. The
fake is written from WeCom's pages, wechatpy apart from them; each checks the other over real HTTP."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException

from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom
from tests.wecom.conftest import ServeFake

CORP, SECRET, AGENT = "ww-fake-corp", "app-secret", 1000002
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class FakeBackedClient(WeChatClient):  # type: ignore[misc]
    """wechatpy's client, pointed at the fake (its gettoken URL is written out in full, so it is overridden)."""

    def __init__(self, base_url: str) -> None:
        self.API_BASE_URL = f"{base_url}/cgi-bin/"
        super().__init__(CORP, SECRET)

    def fetch_access_token(self) -> Any:
        return self._fetch_access_token(
            url=f"{self.API_BASE_URL}gettoken", params={"corpid": self.corp_id, "corpsecret": self.secret}
        )


@pytest.fixture
async def fake(serve_fake: ServeFake) -> FakeWeCom:
    return await serve_fake(corp_id=CORP, secrets={SECRET: AGENT}, members=["wuhao"])


@pytest.fixture
def client(fake: FakeWeCom) -> FakeBackedClient:
    assert fake.base_url is not None
    return FakeBackedClient(fake.base_url)


async def _errcode(call: Any, *args: Any) -> int:
    with pytest.raises(WeChatClientException) as raised:
        await asyncio.to_thread(call, *args)
    return int(raised.value.errcode)


async def test_an_uploaded_image_and_file_are_sent_with_their_media_ids(
    fake: FakeWeCom, client: FakeBackedClient
) -> None:
    image = await asyncio.to_thread(client.media.upload, "image", ("chart.png", io.BytesIO(PNG), "image/png"))
    assert image["type"] == "image"
    assert image["media_id"]
    book = await asyncio.to_thread(client.media.upload, "file", ("通报.xlsx", io.BytesIO(b"PK\x03\x04 workbook")))
    await asyncio.to_thread(client.message.send_image, AGENT, ["wuhao"], image["media_id"])
    await asyncio.to_thread(client.message.send_file, AGENT, ["wuhao"], book["media_id"])

    sent = fake.messages_to(userid="wuhao")
    assert [d.msgtype for d in sent] == ["image", "file"]
    assert [fake.media_of(d) for d in sent] == [("chart.png", PNG), ("通报.xlsx", b"PK\x03\x04 workbook")]


async def test_what_wecom_refuses_is_refused_with_its_errcode(
    fake: FakeWeCom, client: FakeBackedClient, clock: FrozenClock
) -> None:
    upload = client.media.upload
    assert await _errcode(upload, "gif", ("a.gif", io.BytesIO(b"GIF89a....."))) == 40005  # no such type
    assert await _errcode(upload, "file", ("a.txt", io.BytesIO(b"12345"))) == 40006  # 5 bytes: not more than 5
    assert await _errcode(upload, "image", ("a.png", io.BytesIO(PNG + bytes(10 * 1024 * 1024)))) == 40009  # > 10 MB
    assert await _errcode(upload, "image", ("a.gif", io.BytesIO(b"GIF89a" + bytes(64)))) == 40004  # not JPG/PNG
    assert await _errcode(upload, "voice", ("a.mp3", io.BytesIO(b"ID3" + bytes(64)))) == 40004  # not AMR
    assert await _errcode(client.message.send_image, AGENT, ["wuhao"], "no-such-media") == 40007

    file = await asyncio.to_thread(upload, "file", ("a.txt", io.BytesIO(b"123456")))
    # a media_id is an image's only if it was uploaded as one
    assert await _errcode(client.message.send_image, AGENT, ["wuhao"], file["media_id"]) == 40007
    clock.advance(days=3)  # valid three days
    assert await _errcode(client.message.send_file, AGENT, ["wuhao"], file["media_id"]) == 40007
    assert fake.messages_to(userid="wuhao") == []
