"""A day of the real app, and nothing of a citizen where the groups, the masked API or the log (at DEBUG) can see it.

Tickets written as the platform writes them (the citizen named in the text, an ID-card number, a flat, phone numbers
in several writings) come in through the signed API; pushes and a digest go to the units' groups over the robot's
long connection; members use /查 /我的 /待办 /接单 in the groups, return a ticket with a reason, ask for an extension
and have it refused, submit a result; the deadline engine reminds as the clock moves. Then everything the fake WeCom
delivered into a group, every masked API answer and every log line is searched for the citizens' names, phone
numbers (any writing), ID numbers and flats. The claimer's private message and ``?contact=full`` keep them.

Members and units are the sandbox config's (SRJG 市容景观所: chenjing head, sunlei, zhouting; HW 环卫所: huangqiang
head, wuhao), its "three twos" turned off so that regular tickets wait for the digest.
"""

from __future__ import annotations

import io
import json
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app, push_channels
from bot.domain.clock import TZ, FrozenClock
from bot.logging import setup_logging
from bot.sandbox.fake import Delivered, FakeWeCom
from bot.services.deadline_engine import DeadlineEngine
from bot.web.keys import CALENDAR, DUTY, STORE, WECOM_INBOUND
from bot.wecom.longconn import AIBOT_CONNECTION
from config.model import BotConfig
from config.settings import Settings
from notifiers.aibot_ws import AIBOT_WS, AibotWsSender
from notifiers.keys import PUSHES
from notifiers.outbox import OutboxWorker
from notifiers.ratelimit import MemoryRateLimiter
from tests.conftest import API_TOKEN
from tests.handlers.test_cards import AGENT, APP_SECRET, BOT, BOT_SECRET, fake  # noqa: F401 (the fake WeCom)
from tests.hotline.test_api import post_json
from tests.senders import fake_senders
from tests.wecom.test_crypto import SAMPLE_CORP

Client = TestClient[Any, Any]

GROUPS = {"SRJG": "sandbox-srjg", "HW": "sandbox-hw"}
A, B, C, D = "2026112300301", "2026112300302", "2026112300303", "2026112300304"
TICKETS = [
    {
        "ticket_no": A,
        "urgency": "紧急",
        "category": "市容景观",
        "title": "幸福里小区3号1203室李建国家楼上漏水",
        "content": "市民李建国来电反映：幸福里小区3号1203室楼上漏水已一周，身份证310101198001011234，"
        "联系电话138.1234.5678，请尽快处理。",
        "citizen_name": "李建国",
        "citizen_phone": "13812345678",
        "address": "上海市黄浦区幸福里小区3号1203室",
    },
    {
        "ticket_no": B,
        "urgency": "常规",
        "category": "市容景观",
        "content": "来电人王秀英（身份证31010119850315002X）称光明路88弄5号2702室窗外店招松动，电话139 0000 1111。",
        "citizen_name": "王秀英",
        "citizen_phone": "13900001111",
        "address": "光明路88弄5号2702室",
    },
    {
        "ticket_no": C,
        "urgency": "常规",
        "category": "市容景观",
        "content": "业主陈立新先生反映天钥桥路100号5号楼2单元1806室门口绿化带被毁，座机(021)6285\u00a09811，"
        "手机一三七零零零零二二二二。",
        "citizen_name": "陈立新",
        "citizen_phone": "021-62859811",
        "address": "天钥桥路100号5号楼2单元1806室",
    },
    {
        "ticket_no": D,
        "urgency": "紧急",
        "category": "环卫",
        "content": "市民欧阳娜娜称建国西路120弄7号门口垃圾满溢，电话158—0000—3333，身份证440301197806213816。",
        "citizen_name": "欧阳娜娜",
        "citizen_phone": "+86 158 0000 3333",
        "address": "建国西路120弄7号",
    },
]
NAMES = ("李建国", "王秀英", "陈立新", "娜娜")
PHONES = ("13812345678", "13900001111", "62859811", "13700002222", "15800003333")
ID_NUMBERS = ("310101198001011234", "31010119850315002X", "440301197806213816")
FLATS = ("1203室", "2702室", "1806室", "120弄7号")
# still readable where they are shown: the masked forms (a group shows the stars full-width: escaped markdown),
# ticket numbers, streets; and what the day did
READABLE = ("李某某", "3号＊＊＊室", "138＊＊＊＊5678", A, "光明路88弄5号＊＊＊室", "天钥桥路100号")
DONE = ("【新工单汇总】", "申请退单", "延期申请待审批", "驳回延期申请", "已联系诉求人", "已提交办结结果", "已超时")

_NUMERALS = str.maketrans("〇零一幺二三四五六七八九", "001123456789")
_BETWEEN_DIGITS = re.compile(r"(?<=\d)[\s\u00a0\-—–._/()]+(?=\d)")


def plain(text: str) -> str:
    """``text`` with every way of writing a number undone: what a reader could still dial or copy."""
    return _BETWEEN_DIGITS.sub("", unicodedata.normalize("NFKC", text).translate(_NUMERALS))


def leaks(text: str) -> list[str]:
    """The citizens' details found in ``text``."""
    flat = plain(text)
    found = [name for name in NAMES if name in text]
    found += [number for number in (*PHONES, *ID_NUMBERS) if number in flat or number.lower() in flat]
    return found + [flat_no for flat_no in FLATS if flat_no in flat]


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """The app's own log set-up (JSON lines, the masking filter) at DEBUG, written here; SQLAlchemy's engine logger
    too (it keeps itself at WARNING unless told otherwise: an operator debugging the database would turn it on)."""
    root, engine = logging.getLogger(), logging.getLogger("sqlalchemy.engine")
    saved = root.handlers[:], root.level, engine.level
    stream = io.StringIO()
    setup_logging("json", "DEBUG", stream=stream)
    engine.setLevel(logging.DEBUG)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    engine.setLevel(saved[2])


@dataclass
class Day:
    client: Client
    fake: FakeWeCom
    clock: FrozenClock
    worker: OutboxWorker
    engine: DeadlineEngine

    async def settle(self) -> None:
        await self.client.app[WECOM_INBOUND].drain()
        while await self.worker.run_once():
            pass

    async def say(self, userid: str, unit: str, text: str) -> None:
        """``userid`` writes ``text`` to the robot in ``unit``'s group; the answer is sent."""
        connection = self.client.app[AIBOT_CONNECTION]
        taken = connection.frames_taken
        await self.fake.aibot.push_message(BOT, text, userid=userid, chatid=GROUPS[unit])
        await connection.wait_taken(taken + 1)
        await self.settle()

    async def api(self, ticket_no: str, query: str = "") -> str:
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        response = await self.client.get(f"/api/tickets/{ticket_no}{query}", headers=auth)
        assert response.status == 200
        return json.dumps(await response.json(), ensure_ascii=False)

    def in_groups(self) -> list[Delivered]:
        chats = set(GROUPS.values())
        return [d for d in self.fake.delivered if d.to.get("chatid") in chats]

    def private(self) -> list[Delivered]:
        return [d for d in self.fake.delivered if d.kind == "app"]


@pytest.fixture
async def day(
    log: io.StringIO,
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
    fake: FakeWeCom,  # noqa: F811
    session: aiohttp.ClientSession,
) -> Day:
    assert fake.base_url is not None
    data = sandbox_config.model_dump(by_alias=True)
    data["deadlines"]["three_twos"]["categories"] = []
    config = BotConfig.model_validate(data)
    settings = settings_for(
        database_url,
        WECOM_CORP_ID=SAMPLE_CORP,
        WECOM_APP_SECRET=APP_SECRET,
        WECOM_APP_AGENT_ID=str(AGENT),
        WECOM_API_BASE=fake.base_url,
        WECOM_AIBOT_BOT_ID=BOT,
        WECOM_AIBOT_SECRET=BOT_SECRET,
        WECOM_AIBOT_WS_URL=fake.aibot.url,
    )
    client = await aiohttp_client(create_app(settings, config, clock=clock, run_workers=False))
    app = client.app
    await app[AIBOT_CONNECTION].wait_subscribed()
    limiter = MemoryRateLimiter()
    senders = fake_senders(session, fake, clock, secret=APP_SECRET, agent=AGENT, limiter=limiter)
    senders[AIBOT_WS] = AibotWsSender(app[AIBOT_CONNECTION], limiter, clock)
    worker = OutboxWorker(app[STORE], senders, clock, owner="test")
    engine = DeadlineEngine(app[STORE], config, app[CALENDAR], clock, duty=app[DUTY], channels=push_channels(settings))
    return Day(client, fake, clock, worker, engine)


async def test_a_day_shows_no_citizen_details_in_groups_the_masked_api_or_the_log(day: Day, log: io.StringIO) -> None:
    # 09:00 the platform hands four tickets over; the urgent ones are pushed at once, the others wait for the digest
    for ticket in TICKETS:
        response = await post_json(day.client, day.clock, "/api/tickets", ticket)
        assert response.status in (200, 201), await response.text()
    await day.settle()
    day.clock.set(datetime(2026, 11, 23, 9, 8, tzinfo=TZ))
    assert await day.client.app[PUSHES].flush() == 1
    await day.settle()

    # the morning in the groups
    await day.say("zhouting", "SRJG", f"/查 {A}")
    await day.say("zhouting", "SRJG", f"/接单 {A}")
    await day.say("wuhao", "HW", "/待办")
    await day.say("wuhao", "HW", f"/接单 {D}")
    await day.say(
        "wuhao", "HW", f"/退单 {D} 市民欧阳娜娜说建国西路120弄7号的垃圾箱房属物业，电话15800003333 建议:市容所"
    )
    await day.say("zhouting", "SRJG", f"/延期 {A} 3 李建国家1203室需协调物业，李建国电话138 1234 5678")
    await day.say("zhouting", "SRJG", f"/查 {A}")  # with the pending extension's line
    await day.say("zhouting", "SRJG", "/我的")
    await day.say("sunlei", "SRJG", "/待办")
    await day.say("chenjing", "SRJG", f"/延期 {A} 驳回 李建国家1203室的问题请按时办结")
    await day.say("sunlei", "SRJG", f"/接单 {B}")
    await day.say("sunlei", "SRJG", f"/联系 {B} 已联系王秀英，约定到光明路88弄5号2702室查看")
    await day.say(
        "zhouting",
        "SRJG",
        f"/办结 {A} 已联系李建国（１３８１２３４５６７８），幸福里小区3号1203室漏水已修复，身份证310101198001011234核实",
    )
    await day.say("sunlei", "SRJG", f"/查 {B}")

    # the engine, as the clock moves: the evening's reminders, the next morning's overdue notices
    for hour, day_of_month in ((21, 23), (10, 24), (15, 24)):
        day.clock.set(datetime(2026, 11, day_of_month, hour, 0, tzinfo=TZ))
        await day.engine.tick()
        await day.settle()

    groups = day.in_groups()
    kinds = {d.kind for d in groups}
    assert {"aibot_send", "response_url"} <= kinds  # pushes, a digest, reminders; the answers to the commands
    reminders = [d for d in groups if "【时限提醒】" in json.dumps(d.body, ensure_ascii=False)]
    assert reminders
    assert len(groups) >= 20
    # the claimer's private message keeps everything; every other private message is masked as well
    private = day.private()
    details = [d for d in private if "含联系方式" in json.dumps(d.body, ensure_ascii=False)]
    assert details
    assert "李建国" in json.dumps(details[0].body, ensure_ascii=False)
    others = [d for d in private if d not in details]

    api = [await day.api(ticket["ticket_no"]) for ticket in TICKETS]
    full = await day.api(A, "?contact=full")
    assert "李建国" in full
    assert "310101198001011234" in full

    found = {
        f"{d.kind} to {d.to}: {json.dumps(d.body, ensure_ascii=False)[:200]}": leaks(
            json.dumps(d.body, ensure_ascii=False)
        )
        for d in [*groups, *others]
    }
    found.update({f"API {TICKETS[i]['ticket_no']}": leaks(body) for i, body in enumerate(api)})
    lines = log.getvalue().splitlines()
    assert any('"level": "debug"' in line for line in lines)  # the log was at DEBUG throughout
    found.update({f"log: {line[:300]}": leaks(line) for line in lines})
    assert {where: what for where, what in found.items() if what} == {}
    # and what the groups read is still readable
    shown = "\n".join(json.dumps(d.body, ensure_ascii=False) for d in groups)
    for readable in (*READABLE, *DONE):
        assert readable in shown
