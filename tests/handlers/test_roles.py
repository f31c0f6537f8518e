"""Who may do what, cell by cell: the role × command matrix is read from ``docs/roles.md``, and every cell is sent
through the real app, as a signed callback to the intelligent robot from a member holding that role, on a ticket
of the member's own unit and on one of another unit. Whether it was allowed is read from what the fake WeCom
received (the answer through the ``response_url``, private messages by the app) and from the ticket.

One app per member: the cells of a role's column run one after the other, the clock a minute further each time
(the per-member flood limit); SQLite, since nothing here is about the store.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.domain.clock import FrozenClock
from bot.domain.lifecycle import Action, ActionRequest, TicketState
from bot.domain.ticket import TicketInput
from bot.sandbox.fake import FakeWeCom, serve
from bot.services.tickets import NotPermitted, TicketService
from bot.web.keys import STORE, TICKETS, WECOM_INBOUND
from config.loader import load_config_text
from config.model import BotConfig
from config.settings import Settings
from config.vocabulary import Role
from handlers.commands import COMMANDS, find
from handlers.spec import CommandSpec
from notifiers.outbox import OutboxWorker
from tests.senders import fake_senders
from tests.wecom.callbacks.test_callbacks import ROBOT, ROBOT_KEY, ROBOT_TOKEN, query, robot_json
from tests.wecom.test_crypto import SAMPLE_CORP, SAMPLE_KEY, SAMPLE_TOKEN

Client = TestClient[Any, Any]

DOC = Path(__file__).resolve().parents[2] / "docs" / "roles.md"
APP_SECRET, AGENT = "app-secret-roles", 1000002
PHONE = "13900001111"

# Three units: the office's (RXB), the unit whose members are tested (SR) and another (HW). Each role is held by
# one member (the unit head by the head and by a deputy); the office's staff are members of the office's unit, and
# a center lead in no unit (lead0) has only the other units' column. The claimer and the colleague of each unit
# prepare tickets and receive transfers.
CONFIG = """
office: {name: 测试热线办, unit: RXB}
members:
  - {userid: d1, name: 派单员甲, roles: [dispatcher]}
  - {userid: lead, name: 领导乙, roles: [center_lead]}
  - {userid: duty1, name: 值班丙, roles: [duty]}
  - {userid: admin1, name: 管理丁, roles: [admin]}
  - {userid: rxbhead, name: 主任戊}
  - {userid: rxb1, name: 热线己}
  - {userid: rxb2, name: 热线庚}
  - {userid: ha, name: 所长甲}
  - {userid: da, name: 副所长乙}
  - {userid: h1, name: 承办丙}
  - {userid: sr1, name: 承办丁}
  - {userid: sr2, name: 承办戊}
  - {userid: hb, name: 队长甲}
  - {userid: hw1, name: 队员乙}
  - {userid: hw2, name: 队员丙}
  - {userid: lead0, name: 局长癸, roles: [center_lead]}
units:
  - {code: RXB, name: 热线办, head: rxbhead, members: [rxbhead, d1, lead, duty1, admin1, rxb1, rxb2]}
  - {code: SR, name: 市容所, head: ha, deputies: [da], members: [ha, da, h1, sr1, sr2]}
  - {code: HW, name: 环卫所, head: hb, members: [hb, hw1, hw2]}
"""
SWITCHED = CONFIG + "permissions: {office_may_do_unit_work: true}\n"

MEMBERS: Mapping[Role, tuple[str, ...]] = {
    Role.HANDLER: ("h1",),
    Role.UNIT_HEAD: ("ha", "da"),
    Role.DISPATCHER: ("d1",),
    Role.CENTER_LEAD: ("lead", "lead0"),
    Role.DUTY: ("duty1",),
    Role.ADMIN: ("admin1",),
}
OWN_UNIT = {"h1": "SR", "ha": "SR", "da": "SR", "d1": "RXB", "lead": "RXB", "duty1": "RXB", "admin1": "RXB"}
OTHER_UNIT = "HW"
CLAIMER = {"RXB": "rxb1", "SR": "sr1", "HW": "hw1"}
COLLEAGUE = {"RXB": "rxb2", "SR": "sr2", "HW": "hw2"}
ELSEWHERE = {"RXB": "HW", "SR": "HW", "HW": "SR"}  # a unit to suggest (退单) or assign (签派) the ticket to
HEAD = {"RXB": "rxbhead", "SR": "ha", "HW": "hb"}  # signs the unit's returns

Mark = Literal["✓", "✗", "⚙"]
Scope = Literal["own", "other", "none"]


# -- the matrix, as the docs write it ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    spec: CommandSpec
    form: str  # what follows the command in the first column: "", "申请", "同意/驳回", "接班"
    aliases: str
    marks: Mapping[Role, tuple[Mark, ...]]  # (own unit, other unit), or one mark for a command that names no unit

    @property
    def key(self) -> tuple[str, str]:
        return self.spec.name, self.form


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def matrix() -> list[Row]:
    text = DOC.read_text(encoding="utf-8").split("\n## The matrix\n", 1)[1]
    lines = [line for line in text.split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    header, _rule, *body = lines
    roles = [Role(re.fullmatch(r".*\((\w+)\)", cell).group(1)) for cell in _cells(header)[2:]]  # type: ignore[union-attr]
    rows = []
    for line in body:
        first, aliases, *marks = _cells(line)
        named = re.fullmatch(r"`/(\S+)`\s*(.*)", first)
        assert named is not None, first
        spec = find(named.group(1))
        assert spec is not None, first
        by_role = {role: tuple(m.strip() for m in mark.split("/")) for role, mark in zip(roles, marks, strict=True)}
        rows.append(Row(spec, named.group(2), aliases, by_role))  # type: ignore[arg-type]
    return rows


ROWS = matrix()


# -- what each command is sent on, and what it does when allowed ---------------------------------------------------


Prep = Literal["dispatched", "claimed", "asked", "submitted", "unsigned", "signed", "returned", "excluding"]


@dataclass(frozen=True)
class Case:
    text: str  # {no}: the ticket; {unit}: its unit's name; {colleague}, {elsewhere}: see above
    prep: Prep | None  # the ticket's state before the command; None: the command names no ticket
    done: Callable[[Mapping[str, Any] | None, str, str], bool]  # (the ticket after, the member, the answer)


def _state(state: TicketState) -> Callable[[Mapping[str, Any] | None, str, str], bool]:
    return lambda ticket, _me, _answer: ticket is not None and ticket.state == state


def _says(words: str) -> Callable[[Mapping[str, Any] | None, str, str], bool]:
    return lambda _ticket, _me, answer: words in answer


CASES: Mapping[tuple[str, str], Case] = {
    ("claim", ""): Case(
        "/接单 {no}",
        "dispatched",
        lambda t, me, _a: t is not None and (t.state, t.handler_userid) == ("claimed", me),
    ),
    ("contact", ""): Case("/联系 {no} 已电话联系市民", "dispatched", _state(TicketState.CONTACTED)),
    ("on_site", ""): Case("/到场 {no}", "claimed", _state(TicketState.ON_SITE)),
    ("submit", ""): Case("/办结 {no} 已清理完毕", "dispatched", _state(TicketState.SUBMITTED)),
    ("return", "申请"): Case(
        "/退单 {no} 非本单位职责 建议:{elsewhere}",
        "dispatched",
        lambda t, me, _a: t is not None and t.return_requested_by == me,
    ),
    ("return", "确认/驳回"): Case("/退单 {no} 确认", "unsigned", _state(TicketState.RETURN_REQUESTED)),
    ("return", "同意/驳回"): Case("/退单 {no} 同意", "signed", _state(TicketState.RETURNED)),
    ("redispatch", ""): Case("/改派 {no} {elsewhere}", "returned", _state(TicketState.DISPATCHED)),
    ("transfer", ""): Case(
        "/转派 {no} {colleague}",
        "claimed",
        lambda t, _me, _a: t is not None and t.handler_userid in COLLEAGUE.values(),
    ),
    ("extend", "申请"): Case(
        "/延期 {no} 3 需协调物业", "claimed", lambda t, me, _a: t is not None and t.extension_requested_by == me
    ),
    ("extend", "同意/驳回"): Case(
        "/延期 {no} 同意", "asked", lambda t, _me, _a: t is not None and t.extension_count == 1
    ),
    ("exclude", "申请"): Case(
        "/不纳入测评 {no} 市民重复来电", "dispatched", lambda t, _me, _a: t is not None and t.evaluation == "requested"
    ),
    ("exclude", "同意/驳回"): Case(
        "/不纳入测评 {no} 同意", "excluding", lambda t, _me, _a: t is not None and t.evaluation == "excluded"
    ),
    ("visit", ""): Case("/回访 {no} 满意", "submitted", _state(TicketState.CLOSED)),
    ("assign", ""): Case("/签派 {no} {elsewhere}", "returned", _state(TicketState.DISPATCHED)),
    ("show", ""): Case("/查 {no}", "dispatched", _says("状态：")),
    ("mine", ""): Case("/我的", None, _says("未办结的工单")),
    ("todo", ""): Case("/待办 {unit}", None, _says("待办工单")),
    ("overdue", ""): Case("/逾期 {unit}", None, _says("逾期工单")),
    ("stats", ""): Case("/统计 {unit}", None, _says("工单概况")),
    ("report", ""): Case("/报表 月 {unit}", None, _says("按时接单率")),
    ("duty", ""): Case("/值班", None, _says("值班")),
    ("duty", "接班"): Case("/值班 接班", None, _says("已接班")),
    ("help", ""): Case("/帮助", None, _says("可用命令")),
}


def test_the_matrix_covers_every_command_and_names_its_aliases() -> None:
    """The docs' table has a row for each form tested here, every command in it, and each command's other names."""
    assert {row.key for row in ROWS} == set(CASES)
    assert {row.spec.name for row in ROWS} == {spec.name for spec in COMMANDS}
    for row in ROWS:
        assert row.aliases == ", ".join(row.spec.names[1:]), row.key
        assert set(row.marks) == set(MEMBERS), row.key
        names_a_unit = CASES[row.key].prep is not None or "{unit}" in CASES[row.key].text
        for marks in row.marks.values():
            assert len(marks) == (2 if names_a_unit else 1), row.key
            assert set(marks) <= {"✓", "✗", "⚙"}, row.key


# -- the app --------------------------------------------------------------------------------------------------------


@dataclass
class Bot:
    client: Client
    fake: FakeWeCom
    clock: FrozenClock
    config: BotConfig
    worker: OutboxWorker
    count: int = 0

    @property
    def service(self) -> TicketService:
        return self.client.app[TICKETS]

    async def ticket(self, unit: str, prep: Prep) -> str:
        """A new ticket of ``unit``, brought to ``prep`` by the unit's claimer (and the dispatcher, for a return)."""
        self.count += 1
        no = f"2026112301{self.count:03d}"
        now = self.clock.now()
        await self.service.upsert(
            [TicketInput(ticket_no=no, content="人行道上店招破损", citizen_name="王秀英", citizen_phone=PHONE, unit_label=unit,
                         dispatched_at=now)]
        )  # fmt: skip
        claimer = CLAIMER[unit]
        steps: list[ActionRequest] = []
        if prep in ("claimed", "asked"):
            steps.append(ActionRequest(action=Action.CLAIM, actor=claimer, at=now))
        if prep == "asked":
            steps.append(ActionRequest(action=Action.REQUEST_EXTENSION, actor=claimer, at=now, note="需协调", days=3))
        if prep == "excluding":
            steps.append(ActionRequest(action=Action.REQUEST_EXCLUSION, actor=claimer, at=now, note="重复来电"))
        if prep == "submitted":
            steps.append(ActionRequest(action=Action.SUBMIT, actor=claimer, at=now, note="已处理"))
        if prep in ("unsigned", "signed", "returned"):
            # a handler's return waits for the head's signature; the head's own goes to the office at once
            asker = claimer if prep == "unsigned" else HEAD[unit]
            steps.append(
                ActionRequest(action=Action.REQUEST_RETURN, actor=asker, at=now, note="非本单位", unit=ELSEWHERE[unit])
            )
        if prep == "returned":
            steps.append(ActionRequest(action=Action.APPROVE_RETURN, actor="d1", at=now))
        for step in steps:
            await self.service.act(no, step)
        return no

    async def say(self, userid: str, text: str) -> str:
        """``text`` from ``userid`` in a group, as a signed robot callback; the answer the fake WeCom received."""
        self.clock.advance(seconds=61)  # under the flood limit: 10 commands a minute
        self.count += 1
        url = self.fake.response_url({"cell": self.count})
        plain = robot_json(
            "text",
            msgid=f"roles-{self.count}",
            chatid="roles-group",
            text={"content": text},
            response_url=url,
            **{"from": {"userid": userid}},
        )
        encrypt = ROBOT.encrypt(plain)
        ts = str(int(self.clock.now().timestamp()))
        response = await self.client.post(
            f"/wecom/aibot?{query(ROBOT, encrypt, ts=ts)}", data=json.dumps({"encrypt": encrypt}).encode()
        )
        assert response.status == 200, await response.text()
        await self.client.app[WECOM_INBOUND].drain()
        while await self.worker.run_once():
            pass
        [answer] = [d for d in self.fake.delivered if d.kind == "response_url" and d.to.get("cell") == self.count]
        return str((answer.body.get("markdown") or answer.body.get("text") or {}).get("content", ""))

    def private_contact(self, userid: str) -> bool:
        """Whether the citizen's phone number has been sent to ``userid`` privately."""
        return any(PHONE in json.dumps(d.body) for d in self.fake.messages_to(userid))


@pytest.fixture
async def make_bot(
    aiohttp_client: Callable[..., Awaitable[Client]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    clock: FrozenClock,
    session: aiohttp.ClientSession,
) -> AsyncIterator[Callable[[str], Awaitable[Bot]]]:
    runners = []

    async def make(yaml: str) -> Bot:
        config = load_config_text(yaml)
        fake = FakeWeCom(
            corp_id=SAMPLE_CORP,
            secrets={APP_SECRET: AGENT},
            webhook_keys=[],
            members=[m.userid for m in config.members],
            clock=clock.now,
        )
        runners.append(await serve(fake))
        assert fake.base_url is not None
        settings = settings_for(
            sqlite_url,
            WECOM_CORP_ID=SAMPLE_CORP,
            WECOM_APP_TOKEN=SAMPLE_TOKEN,
            WECOM_APP_AES_KEY=SAMPLE_KEY,
            WECOM_APP_SECRET=APP_SECRET,
            WECOM_APP_AGENT_ID=str(AGENT),
            WECOM_API_BASE=fake.base_url,
            WECOM_AIBOT_TOKEN=ROBOT_TOKEN,
            WECOM_AIBOT_AES_KEY=ROBOT_KEY,
        )
        client = await aiohttp_client(create_app(settings, config, clock=clock, run_workers=False))
        senders = fake_senders(session, fake, clock, secret=APP_SECRET, agent=AGENT)
        worker = OutboxWorker(client.app[STORE], senders, clock, owner="roles-test")
        return Bot(client, fake, clock, config, worker)

    yield make
    for runner in runners:
        await runner.cleanup()


# -- every cell -----------------------------------------------------------------------------------------------------


async def _cell(bot: Bot, userid: str, row: Row, scope: Scope, expected: bool) -> str | None:
    """Sends the row's command as ``userid`` on a ticket (or unit) of ``scope``; what is wrong, or None."""
    case = CASES[row.key]
    unit = OTHER_UNIT if scope == "other" else OWN_UNIT.get(userid, OTHER_UNIT)
    no = await bot.ticket(unit, case.prep) if case.prep is not None else None
    before = (await bot.service.get(no)).ticket if no is not None else None
    unit_name = bot.config.unit(unit).name  # type: ignore[union-attr]
    elsewhere = bot.config.unit(ELSEWHERE[unit]).name  # type: ignore[union-attr]
    text = case.text.format(no=no, unit=unit_name, colleague=COLLEAGUE[unit], elsewhere=elsewhere)
    seen_contact = bot.private_contact(userid)
    answer = await bot.say(userid, text)
    after = (await bot.service.get(no)).ticket if no is not None else None
    where = f"{userid} {text!r} ({scope}): {answer!r}"
    if expected:
        if answer.startswith("抱歉，") or not case.done(after, userid, answer):
            return f"refused, should be allowed: {where}"
        return None
    if not answer.startswith("抱歉，"):
        return f"allowed or not refused politely, should be refused: {where}"
    if after != before:
        return f"refused but the ticket changed: {where}"
    if bot.private_contact(userid) and not seen_contact:
        return f"refused but the contact details were sent: {where}"
    return None


def _expected(mark: Mark, switched: bool) -> bool:
    return mark == "✓" or (mark == "⚙" and switched)


ALL_MEMBERS = [(role, userid) for role, userids in MEMBERS.items() for userid in userids]


@pytest.mark.parametrize(("role", "userid"), ALL_MEMBERS, ids=[u for _r, u in ALL_MEMBERS])
async def test_every_cell_of_a_roles_column(make_bot: Callable[[str], Awaitable[Bot]], role: Role, userid: str) -> None:
    bot = await make_bot(CONFIG)
    wrong = []
    for row in ROWS:
        marks = row.marks[role]
        scopes: tuple[Scope, ...] = ("own", "other") if len(marks) == 2 else ("none",)
        for scope, mark in zip(scopes, marks, strict=True):
            if scope == "own" and userid not in OWN_UNIT:
                continue  # in no unit: no ticket is its own unit's
            problem = await _cell(bot, userid, row, scope, _expected(mark, switched=False))
            if problem:
                wrong.append(problem)
    assert not wrong, "\n".join(wrong)


OFFICE = [(role, userid) for role, userid in ALL_MEMBERS if role in (Role.DISPATCHER, Role.CENTER_LEAD, Role.ADMIN)]


@pytest.mark.parametrize(("role", "userid"), OFFICE, ids=[u for _r, u in OFFICE])
async def test_the_switch_lets_the_office_do_any_units_work(
    make_bot: Callable[[str], Awaitable[Bot]], role: Role, userid: str
) -> None:
    """``permissions.office_may_do_unit_work: true``: every ⚙ of the office roles' columns is allowed."""
    bot = await make_bot(SWITCHED)
    switched = [row for row in ROWS if row.marks[role][-1] == "⚙"]
    assert switched
    wrong = [problem for row in switched if (problem := await _cell(bot, userid, row, "other", True))]
    assert not wrong, "\n".join(wrong)
    assert bot.private_contact(userid)  # the claim sent the citizen's details, as to any handler


# -- the ticket service, for callers other than the chat ---------------------------------------------------------


async def test_the_service_refuses_a_members_action_the_rule_does_not_allow(
    make_bot: Callable[[str], Awaitable[Bot]],
) -> None:
    """The same rule in the ticket service: a dispatcher's claim on another unit's ticket is refused whoever calls,
    and changes nothing; the hotline platform's own events are not a member's and are not checked."""
    bot = await make_bot(CONFIG)
    no = await bot.ticket("HW", "dispatched")
    before = (await bot.service.get(no)).ticket
    with pytest.raises(NotPermitted) as refused:
        await bot.service.act(no, ActionRequest(action=Action.CLAIM, actor="d1", at=bot.clock.now()))
    assert refused.value.code == "forbidden"
    assert refused.value.message == f"抱歉，工单 {no} 属于环卫所，只有环卫所的承办人或负责人可以接单。"
    assert (await bot.service.get(no)).ticket == before
    with pytest.raises(NotPermitted):  # a handler of another unit may not record the return visit either
        await bot.service.act(no, ActionRequest(action=Action.VISIT, actor="h1", at=bot.clock.now()))
    platform = ActionRequest(action=Action.REDISPATCH, actor="hotline", at=bot.clock.now(), unit="SR", by_hotline=True)
    assert (await bot.service.act(no, platform)).ticket.unit_code == "SR"
