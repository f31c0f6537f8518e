"""What the commands share: the ticket a command names, checked against the member's rights, and the action applied
to it once under the event's key."""

from __future__ import annotations

from bot.domain.lifecycle import Action, ActionRequest
from bot.domain.records import Ticket
from bot.messages import format as fmt
from bot.services.tickets import ActionOutcome, TicketDetail
from config.vocabulary import Role
from handlers.context import Context
from handlers.errors import CommandError
from handlers.spec import ArgSpec, ParsedCommand

# The ticket argument is declared required: the router must find the ticket, from the number or, when the
# message quotes a pushed ticket, from the quote. The parser never refuses a message for lacking it.
TICKET = ArgSpec(name="ticket", kind="ticket", label="工单号")

WORKERS = frozenset({Role.HANDLER, Role.UNIT_HEAD})


def decision(choices: tuple[tuple[str, tuple[str, ...]], ...], placeholder: str) -> ArgSpec:
    """The optional word that makes a request command a decision on the pending request (同意, 驳回 …)."""
    return ArgSpec(
        name="decision", kind="choice", label="审核", required=False, choices=choices, placeholder=placeholder
    )


def require(ctx: Context, action: Action, ticket: Ticket) -> None:
    """Refuses, politely, unless the member may ask for ``action`` on ``ticket`` (:mod:`bot.domain.permissions`)."""
    refused = ctx.refusal(action, ticket)
    if refused is not None:
        raise CommandError("forbidden", refused)


async def checked(ctx: Context, cmd: ParsedCommand, action: Action | None = None) -> Ticket:
    """The named ticket (without deadlines and history), once the member may see it and, when ``action`` is
    given, ask for it (:mod:`bot.domain.permissions`)."""
    row = await ctx.ticket(cmd)
    ticket_no, unit = row.ticket_no, row.unit_code
    if not ctx.may_act_on(unit):
        raise CommandError(
            "other_unit",
            f"抱歉，工单 {ticket_no} 属于{fmt.unit_name(ctx.config, unit)}，您不能对它操作。如有疑问请联系热线办。",
        )
    refused = ctx.refusal(action, row) if action is not None else None
    if refused is not None:
        raise CommandError("forbidden", refused)
    return row


async def checked_ticket(ctx: Context, cmd: ParsedCommand, action: Action) -> tuple[str, str | None]:
    """The named ticket's number and unit, once the member may ask for ``action`` on it."""
    row = await checked(ctx, cmd, action)
    return row.ticket_no, row.unit_code


async def apply_action(
    ctx: Context,
    cmd: ParsedCommand,
    req: ActionRequest,
    ticket_no: str | None = None,
    *,
    history: bool = False,
    viewed: str | None = None,
) -> tuple[ActionOutcome, TicketDetail]:
    """Applies the action once (under the event's key) to ``ticket_no`` (already checked) or the ticket ``cmd``
    names; the outcome and the ticket as it is now, with its deadlines as the action left them (read in its own
    transaction), and its history when asked. ``viewed``: see :meth:`bot.services.tickets.TicketService.act`."""
    row = None
    if ticket_no is None:
        row = await checked(ctx, cmd, req.action)
        ticket_no = row.ticket_no
    outcome = await ctx.service.act(ticket_no, req, dedup=ctx.dedup(), with_deadlines=True, viewed=viewed, row=row)
    if history:
        return outcome, await ctx.service.get(ticket_no)
    return outcome, TicketDetail(outcome.ticket, outcome.deadlines)


async def act(
    ctx: Context, cmd: ParsedCommand, req: ActionRequest, ticket_no: str | None = None, *, viewed: str | None = None
) -> tuple[ActionOutcome, str]:
    """As :func:`apply_action`; the outcome and the ticket's facts as they are now."""
    outcome, detail = await apply_action(ctx, cmd, req, ticket_no, viewed=viewed)
    return outcome, fmt.summary(detail.ticket, detail.deadlines, ctx.config, ctx.now)


async def act_and_say(
    ctx: Context, cmd: ParsedCommand, req: ActionRequest, done: str, ticket_no: str | None = None
) -> None:
    # one answer per message: the robot's response_url takes one reply only
    _, facts = await act(ctx, cmd, req, ticket_no)
    await ctx.say(f"{done}\n{facts}")


def request(ctx: Context, action: Action, **fields: object) -> ActionRequest:
    return ActionRequest(action=action, actor=ctx.userid, at=ctx.now, **fields)  # type: ignore[arg-type]


def display_name(ctx: Context) -> str:
    return ctx.member.name or ctx.userid
