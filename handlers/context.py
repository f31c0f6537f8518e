"""What a running command knows and can do: who sent it, from where, and how to answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.domain.events import TextMessage
from bot.domain.lifecycle import Action
from bot.domain.permissions import OFFICE_ROLES, UNIT_WORK, refusal
from bot.domain.records import Ticket
from bot.messages.reply import Command, Reply
from bot.services.channels import Channels
from bot.services.duty import DutyService
from bot.services.sinks import inbox_key
from bot.services.tickets import TicketService
from config.model import BotConfig, Member
from config.vocabulary import Role
from handlers.errors import CommandError
from handlers.refs import find_ticket, ticket_refs_in
from handlers.spec import CommandSpec, ParsedCommand
from store.core import Store

GLOBAL_ROLES = OFFICE_ROLES  # see every unit's tickets (what they may do on them: bot.domain.permissions)
DEDUP_SOURCE = "wecom_command"  # the inbox source under which a command's ticket change is applied once

# queues replies made at the given time (notifiers.replies.ReplyOutbox, wired by the composition root)
ReplySink = Callable[[Sequence[Reply], datetime], Awaitable[None]]


@dataclass(kw_only=True)
class Context:
    """One command being run: who, where, and the means to answer."""

    event: Command
    member: Member
    now: datetime
    config: BotConfig
    service: TicketService
    channels: Channels
    reply: ReplySink
    duty: DutyService

    @property
    def userid(self) -> str:
        return self.member.userid

    @property
    def store(self) -> Store:
        return self.service.store

    @property
    def unit_codes(self) -> list[str]:
        return [unit.code for unit in self.config.units_of(self.userid)]

    @property
    def sees_all(self) -> bool:
        return any(self.config.has_role(self.userid, role) for role in GLOBAL_ROLES)

    def has_role(self, role: Role, unit_code: str | None = None) -> bool:
        return self.config.has_role(self.userid, role, unit_code)

    def may_use(self, spec: CommandSpec) -> bool:
        if spec.roles is None or any(self.has_role(role) for role in spec.roles):
            return True
        # the unit's work, by an office role in no unit, where the configuration lets the office do it
        return spec.action in UNIT_WORK and self.config.permissions.office_may_do_unit_work and self.sees_all

    def may_act_on(self, unit_code: str | None) -> bool:
        """Whether the member sees the unit's tickets (what they may do to them: :meth:`refusal`)."""
        return self.sees_all or (unit_code is not None and unit_code in self.unit_codes)

    def refusal(self, action: Action, ticket: Ticket) -> str | None:
        """Why the member may not ask for ``action`` on ``ticket`` (see :mod:`bot.domain.permissions`), or None."""
        return refusal(self.config, self.userid, action, ticket)

    async def ticket(self, cmd: ParsedCommand) -> Ticket:
        """The ticket the command names: its argument, else the quoted push; resolved among what the member sees.
        Without deadlines and history. A quoted message that names several tickets (a digest, a list)
        names none of them: the member is asked which."""
        ref = cmd.args.get("ticket")
        if not ref and isinstance(self.event, TextMessage) and self.event.quoted_text:
            refs = ticket_refs_in(self.event.quoted_text)
            if len(refs) > 1:
                shown = "、".join(refs[:5]) + ("……" if len(refs) > 5 else "")
                raise CommandError(
                    "ticket_ambiguous",
                    f"引用的消息里有 {len(refs)} 张工单（{shown}），请写明是哪一张，例如：{cmd.spec.zh} {refs[0][-4:]}",
                )
            ref = refs[0] if refs else None
        if not ref:
            raise CommandError(
                "ticket_required", f"请写明工单号（或它的后几位），例如：{cmd.spec.example or cmd.spec.usage}"
            )
        return await find_ticket(self.store, ref, units=None if self.sees_all else self.unit_codes)

    def dedup(self) -> tuple[str, str, str]:
        """The key under which this event's change (to a ticket, or to the duty) is applied once (see the module's
        docstring)."""
        text = self.event.text if isinstance(self.event, TextMessage) else self.event.event_key
        return DEDUP_SOURCE, inbox_key(self.event), text

    async def send(self, replies: Sequence[Reply]) -> None:
        await self.reply(replies, self.now)

    async def say(self, text: str) -> None:
        await self.send([Reply(event=self.event, text=text)])

    @property
    def can_whisper(self) -> bool:
        """Whether :meth:`whisper` can reach the member (a channel for private messages is configured)."""
        return self.channels.private

    async def whisper(self, text: str) -> bool:
        """``text`` to the member alone; False when no channel reaches a member privately."""
        if not self.channels.private:
            return False
        await self.send([Reply(event=self.event, text=text, to="sender")])
        return True

    async def tell(self, userids: Sequence[str], text: str) -> bool:
        """``text`` privately to each of ``userids`` (other members); False when no channel reaches a member
        privately (then nothing is sent)."""
        if not (self.channels.private and userids):
            return False
        await self.send([Reply(event=self.event, text=text, to="member", userid=userid) for userid in userids])
        return True

    @property
    def private_channel(self) -> bool:
        """Whether the bot can write to a member privately (the app, or the robot's long connection)."""
        return self.channels.private
