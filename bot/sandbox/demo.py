"""Demo tickets: realistic 12345 hand-overs, sent through the bot's own signed ``POST /api/tickets`` over HTTP.

The samples are the everyday complaints of a sub-district's city-appearance and sanitation lines, in a fictional
演示街道, from fictional citizens (phone numbers 138000000xx). Their categories and keywords match the routing of
``config/sandbox.yaml`` (市容景观 → SRJG, 环卫 → HW; 店招 / 户外广告 → SRJG, 垃圾 / 公厕 → HW); under another
configuration they go wherever its routing sends them. Kinds are mixed: 常规, 紧急, 次紧急, 随身拍, 市级复核, and
预警 — a warning ticket is not something the hotline hands over but what a dissatisfied return visit makes of a
handled one, so for those samples the unit's head submits a result in the bot (as the chat command will) and the
hotline then reports the return visit as 不满意 through the signed ``POST /api/tickets/{no}/events``.

Ticket numbers are ``YS`` (演示) + the time + a counter, so they never collide with real numbers or with an
earlier run's; samples are taken in turn.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from bot.domain.clock import Clock
from bot.domain.lifecycle import Action, ActionRequest, TicketState, TransitionRefused
from bot.hotline.signing import signed_headers
from bot.services.tickets import TicketNotFound, TicketService
from config.model import BotConfig

log = logging.getLogger(__name__)

MAX_COUNT = 20  # tickets per request


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    title: str
    content: str
    category: str | None
    request_type: str  # 咨询 / 求助 / 投诉 / 建议
    urgency: str  # 常规 / 紧急 / 次紧急
    address: str
    citizen_name: str
    citizen_phone: str
    ticket_type: str | None = None  # 随身拍 / 市级复核
    warning: bool = False  # make it a 预警 ticket: handled, then a dissatisfied return visit
    expect_unit: str = ""  # where config/sandbox.yaml routes it (tests check this)

    @property
    def label(self) -> str:
        if self.warning:
            return "预警"
        return self.ticket_type or self.urgency

    def payload(self, ticket_no: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ticket_no": ticket_no,
            "title": self.title,
            "content": self.content,
            "request_type": self.request_type,
            "urgency": self.urgency,
            "address": self.address,
            "area": "演示街道",
            "citizen_name": self.citizen_name,
            "citizen_phone": self.citizen_phone,
            "extra": {"source": "sandbox-demo"},
        }
        if self.category:
            data["category"] = self.category
        if self.ticket_type:
            data["ticket_type"] = self.ticket_type
        return data


SAMPLES: tuple[Sample, ...] = (
    Sample(
        title="夜间烧烤店噪音扰民",
        content="反映演示街道幸福路88弄对面一家烧烤店每天营业到凌晨两点，排风扇声音和顾客喧哗很大，"
        "楼上居民无法休息，多次沟通无果，要求相关部门处理。",
        category="市容景观",
        request_type="投诉",
        urgency="常规",
        address="演示街道幸福路88弄对面沿街商铺",
        citizen_name="刘建国",
        citizen_phone="13800000011",
        expect_unit="SRJG",
    ),
    Sample(
        title="垃圾箱房两天未清运",
        content="演示街道春晖小区3号楼旁的生活垃圾箱房已经两天没有清运，垃圾满溢到路面，气味很大，"
        "容易滋生蚊蝇，请尽快安排清运。",
        category="环卫",
        request_type="投诉",
        urgency="紧急",
        address="演示街道春晖小区3号楼旁垃圾箱房",
        citizen_name="陈美华",
        citizen_phone="13800000012",
        expect_unit="HW",
    ),
    Sample(
        title="路口流动摊贩占道经营",
        content="演示街道光明路与和平路路口每天早上六点到九点有流动摊贩在人行道上卖菜卖早点，"
        "行人只能走机动车道，存在安全隐患，希望加强管理。",
        category="市容景观",
        request_type="投诉",
        urgency="常规",
        address="演示街道光明路与和平路路口东北角",
        citizen_name="王秀英",
        citizen_phone="13800000013",
        expect_unit="SRJG",
    ),
    Sample(
        title="沿街店招破损有坠落危险",
        content="演示街道人民路56号沿街商铺的店招一角已经脱落，刮风时来回晃动，下面是公交站，"
        "担心砸到候车的行人，请尽快处理。",
        category=None,  # routed by the keyword 店招
        request_type="求助",
        urgency="紧急",
        address="演示街道人民路56号",
        citizen_name="张磊",
        citizen_phone="13800000014",
        expect_unit="SRJG",
    ),
    Sample(
        title="路灯连续一周不亮",
        content="演示街道长青路120号至200号一段的路灯和景观灯连续一周晚上不亮，行人和骑车的人看不清路面，"
        "老人晚上不敢出门。",
        category="市容景观",
        request_type="求助",
        urgency="次紧急",
        address="演示街道长青路120号至200号",
        citizen_name="赵丽",
        citizen_phone="13800000015",
        expect_unit="SRJG",
    ),
    Sample(
        title="公园公厕保洁不到位",
        content="演示街道滨河公园东门公厕地面湿滑、异味很重，洗手池没有水，纸篓已满，"
        "保洁明显不到位，希望增加保洁频次。",
        category=None,  # routed by the keyword 公厕
        request_type="建议",
        urgency="常规",
        address="演示街道滨河公园东门公厕",
        citizen_name="孙志强",
        citizen_phone="13800000016",
        expect_unit="HW",
    ),
    Sample(
        title="人行道井盖缺失",
        content="演示街道新华路与建设路交叉口东侧人行道上一处井盖缺失，现在只用一块木板盖着，"
        "晚上经过很危险，已经有人差点踩空。",
        category="市容景观",
        request_type="求助",
        urgency="紧急",
        address="演示街道新华路与建设路交叉口东侧人行道",
        citizen_name="周芳",
        citizen_phone="13800000017",
        expect_unit="SRJG",
    ),
    Sample(
        title="绿化带内倾倒装修垃圾",
        content="市民随手拍：演示街道和平路绿化带内有人倾倒装修垃圾，堆了好几袋碎砖和板材，已经三天没人清理。",
        category="环卫",
        request_type="投诉",
        urgency="常规",
        ticket_type="随身拍",
        address="演示街道和平路12号旁绿化带",
        citizen_name="吴强",
        citizen_phone="13800000018",
        expect_unit="HW",
    ),
    Sample(
        title="户外广告牌锈蚀松动",
        content="演示街道建设路商业楼外墙的户外广告牌锈蚀严重，部分面板已经松动，市级平台复核后要求区里再次核实处置。",
        category=None,  # routed by the keyword 户外广告
        request_type="投诉",
        urgency="常规",
        ticket_type="市级复核",
        address="演示街道建设路200号商业楼外墙",
        citizen_name="郑红",
        citizen_phone="13800000019",
        expect_unit="SRJG",
    ),
    Sample(
        title="垃圾清运不及时（回访不满意）",
        content="演示街道文化路35弄垃圾清运时间不固定，经常中午才来收，上次反映后只清运了一次，之后又恢复原样。",
        category="环卫",
        request_type="投诉",
        urgency="常规",
        address="演示街道文化路35弄",
        citizen_name="黄建华",
        citizen_phone="13800000020",
        warning=True,
        expect_unit="HW",
    ),
    Sample(
        title="道路落叶清扫不及时",
        content="演示街道银杏路人行道落叶和烟头较多，早上八点还没有清扫，建议调整保洁作业时间。",
        category="环卫",
        request_type="建议",
        urgency="常规",
        address="演示街道银杏路全段",
        citizen_name="林晓燕",
        citizen_phone="13800000021",
        expect_unit="HW",
    ),
    Sample(
        title="电线杆小广告乱张贴（回访不满意）",
        content="演示街道向阳小区门口电线杆和配电箱上贴满了小广告，清理后没几天又贴上，希望彻底整治。",
        category="市容景观",
        request_type="投诉",
        urgency="常规",
        address="演示街道向阳小区南门",
        citizen_name="何桂英",
        citizen_phone="13800000022",
        warning=True,
        expect_unit="SRJG",
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Injected:
    """One demo injection: the ticket, where it went, and the note for the office group."""

    ticket_no: str
    sample: Sample
    ok: bool
    status: int | None
    unit: str | None = None
    state: str | None = None
    error: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "ticket_no": self.ticket_no,
            "title": self.sample.title,
            "kind": self.sample.label,
            "ok": self.ok,
            "status": self.status,
            "unit": self.unit,
            "state": self.state,
            "error": self.error,
        }

    def note(self, config: BotConfig) -> str:
        if not self.ok:
            return f"演示：推送工单 {self.ticket_no}「{self.sample.title}」失败：{self.error}"
        unit = config.unit(self.unit) if self.unit else None
        where = unit.name if unit else (self.unit or "未分派")
        try:
            state = TicketState(self.state).label if self.state else ""
        except ValueError:
            state = self.state or ""
        what = f"{self.ticket_no}「{self.sample.title}」（{self.sample.label}）"
        return f"演示：已推送工单 {what} → {where}，状态：{state}"


Poster = Callable[[str, dict[str, Any]], Awaitable[tuple[int, Any]]]


class DemoFeed:
    """Sends demo tickets to the bot as the hotline would: signed JSON over HTTP."""

    def __init__(self, config: BotConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._turn = 0
        self._seq = 0

    def next_sample(self) -> Sample:
        sample = SAMPLES[self._turn % len(SAMPLES)]
        self._turn += 1
        return sample

    def ticket_no(self, now: datetime) -> str:
        self._seq += 1
        return f"YS{now:%Y%m%d%H%M%S}{self._seq:03d}"

    async def inject(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        secret: str,
        tickets: TicketService,
        sample: Sample | None = None,
    ) -> Injected:
        sample = sample or self.next_sample()
        now = self.clock.now()
        ticket_no = self.ticket_no(now)

        async def post(path: str, payload: dict[str, Any]) -> tuple[int, Any]:
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            headers = {"Content-Type": "application/json", **signed_headers(secret, int(now.timestamp()), body)}
            async with session.post(base_url + path, data=body, headers=headers) as response:
                text = await response.text()
                try:
                    return response.status, json.loads(text)
                except ValueError:
                    return response.status, {"error": {"code": "not_json", "message": text[:200]}}

        try:
            status, answer = await post("/api/tickets", sample.payload(ticket_no))
            if status not in (200, 201):
                return Injected(
                    ticket_no=ticket_no, sample=sample, ok=False, status=status, error=_error(status, answer)
                )
            unit, state = answer.get("unit"), answer.get("state")
            if sample.warning and unit:
                state = await self._make_warning(ticket_no, unit, tickets, post)
            return Injected(ticket_no=ticket_no, sample=sample, ok=True, status=status, unit=unit, state=state)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Injected(
                ticket_no=ticket_no,
                sample=sample,
                ok=False,
                status=None,
                error=f"无法连接机器人：{type(exc).__name__} {exc}",
            )
        except _StepFailed as exc:
            return Injected(ticket_no=ticket_no, sample=sample, ok=False, status=exc.status, error=str(exc))

    async def _make_warning(self, ticket_no: str, unit_code: str, tickets: TicketService, post: Poster) -> str:
        """The unit's head submits a result in the bot; the hotline's return visit is dissatisfied: 预警."""
        unit = self.config.unit(unit_code)
        if unit is None:
            raise _StepFailed(None, f"未知承办单位 {unit_code}")
        request = ActionRequest(
            action=Action.SUBMIT,
            actor=unit.head,
            at=self.clock.now(),
            note="（演示）已到现场处置，已电话告知市民处理结果。",
        )
        try:
            await tickets.act(ticket_no, request)
        except (TicketNotFound, TransitionRefused) as exc:
            raise _StepFailed(None, f"演示办结失败：{exc}") from None
        event = {
            "event_id": f"demo-visit-{ticket_no}",
            "type": "visit_result",
            "result": "不满意",
            "note": "回访：市民表示问题没有解决，要求再次处置。",
        }
        status, answer = await post(f"/api/tickets/{ticket_no}/events", event)
        if status != 200:
            raise _StepFailed(status, f"回访结果推送失败：{_error(status, answer)}")
        return str(answer.get("state"))


class _StepFailed(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, answer: Any) -> str:
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        return f"HTTP {status} {error.get('code', '')}：{error.get('message', '')}"
    return f"HTTP {status}"
