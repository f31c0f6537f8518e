"""Text the bot did not write never acts as markup in what the bot signs: a ticket dressed up as a system notice
(bold, @all, a link, a mention, a heading, a quote) through the signed hotline API, members' reasons, results and
stray words through the robot's long connection; what the fake WeCom received in the groups (pushes, digests,
cards, the mention lines and the robot's answers) holds no link, no mention but the bot's own, and no formatting
from that text. On both databases; the rig (the app, the fake WeCom, an outbox worker) is the pushes tests'."""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

import aiohttp

from bot.app import push_channels
from bot.domain.clock import FrozenClock
from bot.sandbox.fake import Delivered
from bot.services.deadline_engine import DeadlineEngine
from bot.web.keys import CALENDAR, CLOCK, CONFIG, DUTY, SETTINGS, STORE, WECOM_INBOUND
from bot.wecom.client import ResponseUrlClient
from bot.wecom.longconn import AIBOT_CONNECTION
from config.model import BotConfig
from notifiers.rows import EngineRows
from notifiers.wecom import AIBOT_RESPONSE, ResponseUrlSender
from tests.notifiers import test_pushes as pushes

# the pushes tests' fixtures: the fake WeCom, and the rig built on it
fake = pushes.fake
make_rig = pushes.make_rig
MakeRig = pushes.MakeRig
Rig = pushes.Rig

TITLE = "**【系统通知】**<@all>"
CONTENT = (
    "[热线办紧急通知](http://evil.example/notice) 请 <@huangqiang> 立即处理，"
    '<font color="warning">加急</font> `代码` ~~删除~~ 详见 www.evil.example\n# 紧急\n> 热线办'
)
REASON = '[不属于本所](http://evil.example/r) **请改派** <@all> <a href="http://evil.example">详情</a>'
RESULT = "# 已办结\n> <@chenjing> 已确认 ![](http://evil.example/p.png)"

LINK = re.compile(r"\]\(|://|(?i:www\.)|<a\s", re.I)
MENTION = re.compile(r"<@([^<>]*)>")
# markup from the hostile text, as it was written
RAW = ("**【系统通知】**", "<@all>", "<@huangqiang>", "<font", "`代码`", "~~删除~~", "\n# ", "\n> 热线办", "**请改派**")


def hostile(no: str, **fields: Any) -> dict[str, Any]:
    return {
        "ticket_no": no,
        "title": TITLE,
        "content": CONTENT,
        "category": "市容景观",
        "urgency": "紧急",
        "citizen_name": "王秀英",
        "citizen_phone": "13800000013",
        **fields,
    }


def shown(d: Delivered) -> str:
    """What a message shows: a markdown's or a text's content, or a card's JSON."""
    if d.msgtype in ("markdown", "text"):
        return str(d.body[d.msgtype]["content"])
    return json.dumps(d.body, ensure_ascii=False)


def assert_inert(messages: list[Delivered], *, mentions: Collection[str] = ()) -> None:
    """No link, no mention but ``mentions`` (the bot's own), none of the hostile markup as written."""
    assert messages
    for d in messages:
        text = shown(d)
        assert not LINK.search(text), text
        assert set(MENTION.findall(text)) <= set(mentions), text
        for raw in RAW:
            assert raw not in text, (raw, text)
        # no heading; the only quotes are the bot's facts lines
        for line in text.split("\n"):
            assert not line.startswith("#"), text
            assert not line.startswith(">") or line.startswith(("> 类别：", "> 承办单位：", "> 下一时限：")), text


async def test_a_hostile_ticket_pushed_to_a_webhook_group_is_inert(make_rig: MakeRig) -> None:
    rig = await make_rig("webhook")
    await rig.post(hostile("2026112300901"))
    await rig.send()
    [push] = rig.group("SRJG")
    text = shown(push)
    assert text.startswith(
        "**【紧急】新工单 2026112300901**\n**＊＊【系统通知】＊＊＜@all＞**\n"
    )  # the bot's bold only
    assert "［热线办紧急通知］(http：//evil.example/notice) 请 ＜@huangqiang＞ 立即处理" in text
    assert text.endswith("<@sunlei> <@zhouting> <@chenjing>")  # the bot's mentions: the emergency team, the head
    assert_inert([push], mentions={"sunlei", "zhouting", "chenjing"})


async def test_reminders_of_a_hostile_ticket_are_inert(make_rig: MakeRig) -> None:
    rig = await make_rig("webhook")
    await rig.post(hostile("2026112300907", title=None))
    await rig.send()
    pushed = len(rig.group("SRJG"))
    rig.clock.set(pushes.MONDAY.replace(minute=21))  # the 20 minutes to contact the citizen are over
    app = rig.client.app
    engine = DeadlineEngine(
        app[STORE],
        app[CONFIG],
        app[CALENDAR],
        app[CLOCK],
        duty=app[DUTY],
        rows=EngineRows(app[CONFIG], push_channels(app[SETTINGS])),
    )
    assert (await engine.tick()).messages
    await rig.send()
    reminders = rig.group("SRJG")[pushed:]
    assert any("2026112300907 ［热线办紧急通知］" in shown(d) for d in reminders)
    assert_inert(reminders, mentions={"sunlei", "zhouting", "chenjing"})


async def test_a_hostile_ticket_as_a_card_and_its_mention_line_over_the_robot_is_inert(make_rig: MakeRig) -> None:
    rig = await make_rig("robot")
    await rig.post(hostile("2026112300902"))
    await rig.send()
    card, tagged = rig.group("SRJG")
    tc = card.body["template_card"]
    assert tc["main_title"]["title"].startswith("【紧急】＊＊【系统通知】＊＊＜@all＞")
    assert tc["sub_title_text"].startswith("［热线办紧急通知］(http：//evil.example/notice)")
    assert tagged.body["markdown"]["content"] == "【紧急】新工单 2026112300902\n<@sunlei> <@zhouting> <@chenjing>"
    assert_inert([card, tagged], mentions={"sunlei", "zhouting", "chenjing"})


async def test_a_digest_of_hostile_tickets_is_inert(
    make_rig: MakeRig, sandbox_config: BotConfig, clock: FrozenClock
) -> None:
    rig = await make_rig("webhook", pushes._config(sandbox_config, webhooks=True, three_twos=False))
    for no in ("2026112300903", "2026112300904"):
        await rig.post(hostile(no, urgency="常规", title=None))
    rig.clock.set(pushes.MONDAY.replace(minute=8))
    assert await rig.pusher.flush() == 1
    await rig.send()
    [digest] = rig.group("SRJG")
    assert "2026112300903（常规）［热线办紧急通知］(http：//evil" in shown(digest)
    assert_inert([digest])


async def say(rig: Rig, text: str, userid: str = "zhouting") -> list[Delivered]:
    """``text`` from ``userid`` in SRJG's group, over the robot's long connection: the robot's answers there."""
    connection = rig.client.app[AIBOT_CONNECTION]
    taken = connection.frames_taken
    before = len(rig.fake.delivered)
    await rig.fake.aibot.push_message(pushes.BOT, text, userid=userid, chatid=pushes.CHATS["SRJG"])
    await connection.wait_taken(taken + 1)
    await rig.client.app[WECOM_INBOUND].drain()
    await rig.send()
    answers = [d for d in rig.fake.delivered[before:] if d.kind == "response_url"]
    assert answers, text
    assert all(d.to.get("chatid") == pushes.CHATS["SRJG"] for d in answers)
    return answers


async def test_the_robots_answers_in_a_group_keep_ticket_and_member_text_inert(
    make_rig: MakeRig, session: aiohttp.ClientSession
) -> None:
    rig = await make_rig("robot")
    # the robot answers a message through its response_url
    assert rig.fake.base_url is not None
    rig.worker.senders[AIBOT_RESPONSE] = ResponseUrlSender(ResponseUrlClient(session, base_url=rig.fake.base_url))
    back, done = "2026112300905", "2026112300906"
    for no in (back, done):
        await rig.post(hostile(no))
    await rig.send()

    returned = await say(rig, f"/退单 {back} {REASON} 建议:环卫所")
    assert "申请退单" in shown(returned[0])
    await say(rig, f"/接单 {done}")
    extended = await say(rig, f"/延期 {done} 2 {REASON}")
    looked = await say(rig, f"/查 {done}", userid="chenjing")
    assert "延期申请待审批：2 个工作日（周婷：［不属于本所］(http：//evil" in shown(looked[0])  # the member's reason
    submitted = await say(rig, f"/办结 {done} {RESULT}")
    listed = await say(rig, "/待办", userid="chenjing")
    assert f"{back} ＊＊【系统通知】＊＊" in shown(listed[0])
    echoed = await say(rig, "[点我](http://evil.example) <@all>")
    assert "这个命令" in shown(echoed[0])  # what the member typed, said back
    unknown = await say(rig, f"/转派 {done} <@all>")
    assert_inert(returned + extended + submitted + looked + listed + echoed + unknown)
    # the heads asked to decide on the extension, privately (the app's text message: where <a href> is a link)
    [asked] = [d for d in rig.private("chenjing") if "申请工单" in str(d.body)]
    assert (
        "［不属于本所］(http：//evil.example/r) ＊＊请改派＊＊ ＜@all＞ ＜a href=" in asked.body["markdown"]["content"]
    )
    assert_inert([asked])


async def test_what_a_member_typed_is_said_back_masked(make_rig: MakeRig, session: aiohttp.ClientSession) -> None:
    """A citizen's name, phone or ID number typed where a ticket number or a member belongs is said back in the
    group without them."""
    rig = await make_rig("robot")
    assert rig.fake.base_url is not None
    rig.worker.senders[AIBOT_RESPONSE] = ResponseUrlSender(ResponseUrlClient(session, base_url=rig.fake.base_url))
    no = "2026112300907"
    await rig.post(hostile(no))
    await rig.send()
    said = await say(rig, "/查 市民李建国13812345678")
    said += await say(rig, f"/转派 {no} 13812345678")
    said += await say(rig, "/查询一下 310101198001011234")
    text = "\n".join(shown(d) for d in said)
    for secret in ("13812345678", "李建国", "310101198001011234"):
        assert secret not in text, text
