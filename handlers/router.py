"""The command router: the inbox's :class:`bot.services.inbox.EventSink`, from a WeCom event to a ticket action and
a reply in the chat.

Transport-neutral: a text message from a group (the robot), from a 1:1 chat with the app or the robot, gets the
same treatment. The sender must be a configured member; the command is parsed (:mod:`handlers.parse`), its ticket
named by number, by its last digits, or by the quoted push (:mod:`handlers.refs`), the member's right to it
checked against the config's units and roles, and the command run. Whatever happens, the member gets one short
answer in Chinese; a refusal changes nothing.

Each run is idempotent under WeCom's retries and crash recovery: the inbox already hands an event over once (at
least once after a crash), ticket and duty changes carry the event's key (``dedup`` of ``TicketService.act``,
``DutyService.take`` and ``hand_back``), and replies' outbox keys derive from it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime

from bot.domain.clock import Clock
from bot.domain.events import CardClick, InboundEvent, TextMessage
from bot.domain.lifecycle import TransitionRefused
from bot.messages.reply import Command, Reply
from bot.services.channels import Channels
from bot.services.duty import DutyService
from bot.services.ratelimit import Limit, LimiterUnavailable, MemoryRateLimiter, RateLimiter
from bot.services.sinks import RecordingSink, describe
from bot.services.tickets import TicketNotFound, TicketService
from config.model import BotConfig
from config.vocabulary import ROLE_LABELS, Role
from handlers import cards
from handlers.context import Context, ReplySink
from handlers.errors import CommandError
from handlers.parse import parse
from handlers.spec import CommandSpec, ParsedCommand

log = logging.getLogger(__name__)

# Per-member flood limit, counted per WeCom userid over every chat and channel (sliding windows). A person types a
# command with a ticket number in 5–10 s, so 10 in a minute is already a fast burst (claiming a handful of tickets at
# the start of a shift, 查 on each); 120 an hour is twice the busiest sustained human pace (a dispatcher recording
# 回访 results after a phone session: 查 + 回访 for 40–60 tickets). Beyond that it is a script, a stuck client or a
# pasted list. Both keep a member's replies well inside WeCom's 30 app messages a minute and 1000 an hour per
# member, which the ticket pushes to that member share.
COMMAND_LIMITS = (Limit(10, 60), Limit(120, 3600))
# Over the limit, the first excess message is answered, the rest of the flood is not: at most one notice a minute.
FLOOD_NOTICE_LIMIT = Limit(1, 60)

NOT_A_MEMBER = "抱歉，您不在本热线系统的成员名单中，无法使用工单命令。请联系热线办管理员。"


class CommandRouter(RecordingSink):
    """Records each event (the last ones, for the sandbox and tests, as :class:`RecordingSink`), then runs it."""

    def __init__(
        self,
        *,
        service: TicketService,
        config: BotConfig,
        clock: Clock,
        channels: Channels,
        send: ReplySink,
        limiter: RateLimiter | None = None,
        limits: Sequence[Limit] | None = None,
        duty: DutyService | None = None,
        board_url: str | None = None,
    ) -> None:
        super().__init__()
        # the flood limit (see COMMAND_LIMITS); shared by every process when the limiter is Redis's
        self.limiter: RateLimiter = limiter if limiter is not None else MemoryRateLimiter()
        self.limits = tuple(limits) if limits is not None else COMMAND_LIMITS
        self.service = service
        self.store = service.store
        self.config = config
        self.clock = clock
        self.channels = channels
        self.board_url = board_url  # PUBLIC_URL: an updated card keeps its link to the ticket's page
        self.send = send
        self.duty = duty if duty is not None else DutyService(service.store, config, clock)

    async def handle(self, event: InboundEvent) -> None:
        await super().handle(event)
        if isinstance(event, TextMessage):
            await self._run(event, lambda: parse(event.text))
        elif isinstance(event, CardClick):
            # a button on a pushed card (handlers.cards): the command it stands for, run as the clicker's own; then
            # the card changed for everyone, if the click changed the ticket
            click = await cards.read_click(self.service, self.config, event)
            await self._run(event, click.command)
            now = self.clock.now()
            await self.send(
                await cards.card_update(click, self.service, self.config, self.channels, now, board_url=self.board_url),
                now,
            )

    async def _run(self, event: Command, parsed: Callable[[], ParsedCommand]) -> None:
        now = self.clock.now()
        if not await self._admitted(event, now):
            return
        member = self.config.member(event.sender.userid)
        if member is None or event.sender.corpid:
            await self.send([Reply(event=event, text=NOT_A_MEMBER)], now)
            return
        ctx = Context(
            event=event,
            member=member,
            now=now,
            config=self.config,
            service=self.service,
            channels=self.channels,
            reply=self.send,
            duty=self.duty,
        )
        try:
            cmd = parsed()
            if not ctx.may_use(cmd.spec):
                raise CommandError("forbidden", f"抱歉，/{cmd.spec.zh} 只有{_roles(cmd.spec)}可以使用。")
            await cmd.spec.handler(ctx, cmd)
        except CommandError as exc:
            await ctx.say(exc.message)
        except TransitionRefused as exc:
            await ctx.say(exc.message)
        except TicketNotFound as exc:
            await ctx.say(f"没有找到工单 {exc}。请核对工单号。")

    async def _admitted(self, event: Command, now: datetime) -> bool:
        """Whether the sender is within the flood limit (the message is then counted). Over it, nothing is done: the
        first excess message within a minute is told when to try again, the others get no answer, so a flood does
        not turn into a flood of replies. A limiter that cannot be asked (Redis down) lets every command through."""
        who = event.sender.userid.lower()
        if event.sender.corpid:
            who = f"{event.sender.corpid}/{who}"
        at = now.timestamp()
        try:
            wait = await self.limiter.acquire(f"command:{who}", self.limits, at)
        except LimiterUnavailable as exc:
            log.warning("flood limit not checked (%s), let through: %s", exc, describe(event))
            return True
        if wait <= 0:
            return True
        try:
            notice = await self.limiter.acquire(f"command_notice:{who}", (FLOOD_NOTICE_LIMIT,), at) <= 0
        except LimiterUnavailable:
            notice = True  # known to be over the limit: better told twice than left guessing
        if notice:
            log.warning("over the command limit, %.0f s to wait: %s", wait, describe(event))
            await self.send([Reply(event=event, text=f"操作太频繁，请稍后再试（{_after(wait)}）。")], now)
        elif log.isEnabledFor(logging.DEBUG):  # describe() masks the text: not for a record nobody sees
            log.debug("over the command limit, not answered: %s", describe(event))
        return False


def _roles(spec: CommandSpec) -> str:
    return "、".join(ROLE_LABELS[role] for role in sorted(spec.roles or (), key=list(Role).index))


def _after(wait: float) -> str:
    """「约 N 秒后」, or minutes once that reads better."""
    seconds = max(1, math.ceil(wait))
    return f"约 {seconds} 秒后" if seconds < 120 else f"约 {math.ceil(seconds / 60)} 分钟后"
