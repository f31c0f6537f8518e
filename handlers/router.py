"""The command router: the inbox's :class:`bot.wecom.inbound.EventSink`, from a WeCom event to a ticket action and
a reply in the chat.

Transport-neutral: a text message from a group (the robot), from a 1:1 chat with the app or the robot, gets the
same treatment. The sender must be a configured member; the command is parsed (:mod:`handlers.parse`), its ticket
named by number, by its last digits, or by the quoted push (:mod:`handlers.refs`), the member's right to it
checked against the config's units and roles, and the command run. Whatever happens, the member gets one short
answer in Chinese; a refusal changes nothing.

Each run is idempotent under WeCom's retries and crash recovery: the inbox already hands an event over once (at
least once after a crash), ticket changes carry the event's key (``TicketService.act``'s ``dedup``), and replies'
outbox keys derive from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bot.clock import Clock
from bot.domain.lifecycle import TransitionRefused
from bot.services.tickets import TicketNotFound, TicketService
from bot.wecom.events import CardClick, InboundEvent, TextMessage
from bot.wecom.inbound import RecordingSink
from config.model import BotConfig
from config.vocabulary import ROLE_LABELS, Role
from handlers.commands import HANDLERS, Handler
from handlers.context import Context
from handlers.errors import CommandError
from handlers.parse import ParsedCommand, parse
from handlers.replies import Channels, Command, reply_rows
from handlers.spec import CommandSpec
from store import repo

log = logging.getLogger(__name__)



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
        wake: Callable[[], None] | None = None,
        handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self.store = service.store
        self.config = config
        self.clock = clock
        self.channels = channels
        self.wake = wake
        self.handlers = handlers if handlers is not None else HANDLERS

    async def handle(self, event: InboundEvent) -> None:
        await super().handle(event)
        if isinstance(event, TextMessage):
            await self._run(event, lambda: parse(event.text))
        elif isinstance(event, CardClick):
            log.info("card click %r on %s: card buttons come with the pushes", event.event_key, event.task_id)

    async def _run(self, event: Command, parsed: Callable[[], ParsedCommand]) -> None:
        now = self.clock.now()
        member = self.config.member(event.sender.userid)
        if member is None or event.sender.corpid:
            await self.enqueue(reply_rows(event, NOT_A_MEMBER, at=now))
            return
        ctx = Context(event, member, now, self.config, self.service, self.channels, self.enqueue)
        try:
            cmd = parsed()
            if not ctx.may_use(cmd.spec):
                raise CommandError("forbidden", f"抱歉，/{cmd.spec.zh} 只有{_roles(cmd.spec)}可以使用。")
            handler = self.handlers.get(cmd.spec.name)
            if handler is None:
                raise CommandError("not_available", f"/{cmd.spec.zh} 暂未开放。发送 /帮助 查看现在可用的命令。")
            await handler(ctx, cmd)
        except CommandError as exc:
            await ctx.say(exc.message)
        except TransitionRefused as exc:
            await ctx.say(exc.message)
        except TicketNotFound as exc:
            await ctx.say(f"没有找到工单 {exc}。请核对工单号。")

    async def enqueue(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        async with self.store.transaction() as conn:
            await repo.enqueue(conn, rows)
        if self.wake is not None:
            self.wake()


def _roles(spec: CommandSpec) -> str:
    return "、".join(ROLE_LABELS[role] for role in sorted(spec.roles or (), key=list(Role).index))
