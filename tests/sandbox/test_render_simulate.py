"""The sandbox's pure parts: messages rendered as safe HTML, and callbacks built as WeCom builds them (read back by
the bot's own parsers), passive replies opened."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from bot.domain.clock import TZ
from bot.domain.events import CardClick, TextMessage
from bot.sandbox import render, simulate
from bot.sandbox.chats import Feed
from bot.wecom.crypto import CallbackCrypto
from bot.wecom.parse import parse_aibot_envelope, parse_aibot_json, parse_app_envelope, parse_app_xml

NAMES = {"zhangwei": "张伟", "wuhao": "吴昊"}
APP = CallbackCrypto("apptoken", "a" * 43, "ww-corp")
ROBOT = CallbackCrypto("robottoken", "b" * 43, "")
AT = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)


# -- rendering ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("msgtype", ["text", "markdown", "markdown_v2"])
def test_html_in_messages_is_shown_as_text(msgtype: str) -> None:
    body = {"msgtype": msgtype, msgtype: {"content": '<script>alert("x")</script><img src=x onerror=alert(1)>'}}
    html = render.message(msgtype, body, NAMES)
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_markdown_as_wecom_writes_it() -> None:
    text = (
        "# 新工单\n"
        '**紧急** <font color="warning">20分钟内联系</font> <font color="red">x</font>\n'
        "> 演示街道春晖小区\n"
        "- 接单：`/接单 123`\n"
        "- [详情](https://example.org/t?a=1&b=2) [坏链接](javascript:alert(1))\n"
        "请 <@zhangwei> 处理 <@unknown>"
    )
    html = render.markdown(text, NAMES)
    assert '<div class="md-h md-h1">新工单</div>' in html
    assert '<strong>紧急</strong> <span class="font-warning">20分钟内联系</span> x' in html
    assert "<blockquote>演示街道春晖小区</blockquote>" in html
    assert "<li>接单：<code>/接单 123</code></li>" in html
    assert '<a href="https://example.org/t?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">详情</a>' in html
    assert "坏链接" in html
    assert "javascript" not in html.replace("坏链接", "")
    assert '<span class="mention">@张伟</span>' in html
    assert '<span class="mention">@unknown</span>' in html


def test_code_blocks_and_quotes_in_attributes() -> None:
    html = render.markdown("```\n<b>raw</b>\n```", NAMES)
    assert html == "<pre>&lt;b&gt;raw&lt;/b&gt;</pre>"
    card = {
        "card_type": "button_interaction",
        "task_id": "t",
        "main_title": {"title": "<b>工单</b>"},
        "button_list": [{"text": "接<单>", "key": 'k"><script>x</script>', "style": 2}],
    }
    html = render.template_card(card, NAMES)
    assert 'data-key="k&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in html
    assert '<div class="card-title">&lt;b&gt;工单&lt;/b&gt;</div>' in html
    assert 'class="card-btn style-2"' in html
    assert ">接&lt;单&gt;</button>" in html
    assert render.card_buttons(card) == {'k"><script>x</script>': "接<单>"}


def test_textcard_news_media_and_unknown() -> None:
    textcard = {
        "title": "工单即将超时",
        "description": '<div class="gray">2026年11月23日</div><div class="highlight">还剩 10 分钟</div><b>x</b>',
        "url": "https://example.org/t/1",
        "btntxt": "查看",
    }
    html = render.message("textcard", {"msgtype": "textcard", "textcard": textcard}, NAMES)
    assert '<div class="tc-gray">2026年11月23日</div><div class="tc-highlight">还剩 10 分钟</div>' in html
    assert "<div>&lt;b&gt;x&lt;/b&gt;</div>" in html
    assert ">查看</a>" in html
    news = {"articles": [{"title": "通报", "url": "ftp://x", "description": "第 1 期"}]}
    assert render.message("news", {"msgtype": "news", "news": news}, NAMES) == (
        '<div class="news"><div class="news-item"><div class="news-title">通报</div>'
        '<div class="news-desc">第 1 期</div></div></div>'
    )
    assert render.message("image", {"msgtype": "image", "image": {"base64": "x" * 1000}}, NAMES) == (
        '<span class="media">[图片]</span>'
    )
    weird = render.message("location", {"msgtype": "location", "location": {"name": "<b>"}}, NAMES)
    assert "[location]" in weird
    assert "&lt;b&gt;" in weird
    assert render.preview("markdown", {"markdown": {"content": "## **新工单**\n<font color='info'>已派</font>"}}) == (
        "新工单 已派"
    )
    long_raw = render.raw_json({"image": {"base64": "y" * 5000}})
    assert "共 5000 字符" in long_raw
    assert len(long_raw) < 1000


def test_images_inline_and_files_as_download_links_with_their_names_escaped() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(16)
    image = {"msgtype": "image", "image": {"media_id": "m1"}}
    html = render.message("image", image, NAMES, ("<b>图</b>.png", png))
    assert html.startswith('<img class="media-img" alt="&lt;b&gt;图&lt;/b&gt;.png" src="data:image/png;base64,')
    assert render.message("image", image, NAMES, ("x.gif", b"GIF89a" + bytes(8))) == '<span class="media">[图片]</span>'
    file = {"msgtype": "file", "file": {"media_id": "m2"}}
    html = render.message("file", file, NAMES, ('通报".xlsx', b"PK\x03\x04xx"))
    assert 'download="通报&quot;.xlsx"' in html
    assert 'href="data:application/octet-stream;base64,UEsDBHh4"' in html
    assert render.preview("file", file, "通报.xlsx") == "[文件] 通报.xlsx"
    assert render.message("file", file, NAMES) == '<span class="media">[文件]</span>'  # bytes not known


def test_a_webhook_text_names_who_it_mentions() -> None:
    body = {"msgtype": "text", "text": {"content": "新工单\n请处理", "mentioned_list": ["wuhao", "@all"]}}
    html = render.message("text", body, NAMES)
    assert html.startswith("新工单<br>请处理")
    assert '<span class="mention">@吴昊</span> <span class="mention">@所有人</span>' in html


# -- the feed -----------------------------------------------------------------------------------------------------


async def test_the_feed_numbers_items_and_wakes_waiters() -> None:
    feed = Feed(keep=3)
    assert await feed.wait_after(0, 0) == []
    for n in range(5):
        feed.add("system", AT, "system", text=str(n))
    assert [i.id for i in feed.items()] == [3, 4, 5]
    assert [i.text for i in feed.after(3)] == ["3", "4"]
    assert feed.after(0)[0].id == 3
    assert feed.get(2) is None
    assert feed.get(4) is not None
    assert feed.get(True) is None
    feed.close()
    assert await feed.wait_after(5, 30) == []  # closed: answers at once


# -- callbacks as WeCom sends them --------------------------------------------------------------------------------


def test_robot_text_as_the_bot_reads_it() -> None:
    plain = simulate.robot_text(
        aibot_id="aib1", robot_name="机器人", chatid="sandbox-hw", userid="wuhao", text="/接单 1", response_url="u"
    )
    sealed = simulate.seal_robot(ROBOT, plain, timestamp=1795395600, nonce="n0nce")
    query = dict(part.split("=", 1) for part in sealed.query.split("&"))
    opened = ROBOT.decrypt(
        query["msg_signature"], query["timestamp"], query["nonce"], parse_aibot_envelope(sealed.body)
    )
    assert json.loads(opened)["text"]["content"] == "@机器人 /接单 1"
    event = parse_aibot_json(opened, received_at=AT)
    assert isinstance(event, TextMessage)
    assert (event.chat_type, event.chat_id, event.sender.userid, event.text) == (
        "group",
        "sandbox-hw",
        "wuhao",
        "/接单 1",
    )
    assert (
        simulate.robot_text(aibot_id="a", robot_name="r", chatid=None, userid="u", text="x", response_url="u") != plain
    )


def test_app_text_and_card_click_as_the_bot_reads_them() -> None:
    text = 'a ]]> b <c> & "d"'
    plain = simulate.app_text(corp_id="ww-corp", agent_id=1000002, userid="wuhao", text=text, create_time=1, msg_id="7")
    sealed = simulate.seal_app(APP, plain, corp_id="ww-corp", agent_id=1000002, timestamp=2, nonce="n")
    query = dict(part.split("=", 1) for part in sealed.query.split("&"))
    encrypt, agent = parse_app_envelope(sealed.body)
    assert agent == "1000002"
    event = parse_app_xml(APP.decrypt(query["msg_signature"], query["timestamp"], query["nonce"], encrypt))
    assert isinstance(event, TextMessage)
    assert event.text == text
    assert event.msg_id == "7"
    click = parse_app_xml(
        simulate.app_card_click(
            corp_id="ww-corp",
            agent_id=1000002,
            userid="wuhao",
            task_id="t1",
            event_key="claim",
            card_type="button_interaction",
            response_code="rc",
            create_time=3,
        )
    )
    assert isinstance(click, CardClick)
    assert (click.event_key, click.task_id, click.response_code, click.card_type) == (
        "claim", "t1", "rc", "button_interaction",
    )  # fmt: skip


def test_robot_card_click_as_the_bot_reads_it() -> None:
    plain = simulate.robot_card_click(
        aibot_id="a",
        chatid=None,
        userid="wuhao",
        task_id="t2",
        event_key="k",
        card_type="button_interaction",
        response_url="https://x/cgi-bin/aibot/response?response_code=1",
        create_time=1795395600,
    )
    event = parse_aibot_json(plain)
    assert isinstance(event, CardClick)
    assert (event.chat_type, event.chat_id, event.task_id, event.event_key) == ("single", None, "t2", "k")
    assert event.response_url
    assert event.at == datetime(2026, 11, 23, 9, 0, tzinfo=TZ)


def test_passive_replies_are_opened() -> None:
    robot = ROBOT.encrypt_json_reply({"msgtype": "markdown", "markdown": {"content": "好"}}, "n", "1")
    assert simulate.open_robot_reply(ROBOT, robot.encode())["markdown"] == {"content": "好"}
    app = APP.encrypt_xml_reply("<xml><MsgType>update_button</MsgType><Button><ReplaceName>已接单</ReplaceName>"
                                "</Button></xml>", "n", "1")  # fmt: skip
    assert simulate.open_app_reply(APP, app.encode()) == {
        "MsgType": "update_button",
        "Button": {"ReplaceName": "已接单"},
    }
    with pytest.raises(simulate.ReplyError):
        simulate.open_robot_reply(ROBOT, b'{"encrypt": "x", "msgsignature": "0", "timestamp": "1", "nonce": "n"}')
    with pytest.raises(simulate.ReplyError):
        simulate.open_app_reply(APP, b'<!DOCTYPE x [<!ENTITY a "b">]><xml><Encrypt>&a;</Encrypt></xml>')
    with pytest.raises(simulate.ReplyError):
        simulate.open_robot_reply(ROBOT, b"[1]")
