"""Who may act on which unit's tickets: the rule ``docs/roles.md`` writes out as a matrix.

* The office roles (dispatcher, center lead, admin) see every unit's tickets and take the office's decisions on
  them: the return visit, the assignment of a contested ticket, the decision on an extension, the review of a
  return, a re-dispatch, and (over the ticket service, without a chat command) a cancellation.
* A handler's return is signed by the head or a deputy of the ticket's unit (确认 or 不同意), by nobody else.
* The unit's work (claim, contact, on site, submit, return, transfer, asking for an extension) stays with the
  members of the ticket's unit: its handlers, head and deputies. Office roles do it only on their own unit's tickets
  (the office's unit, where unrouted tickets land), unless ``permissions.office_may_do_unit_work`` says otherwise.

Both the chat (:mod:`handlers.commands`) and the ticket service (:meth:`bot.services.tickets.TicketService.act`, for
every actor who is a member rather than the hotline platform) ask :func:`refusal`; the platform's own events are
not a member's and are not checked here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from bot.domain.lifecycle import Action, TicketState
from bot.domain.records import Ticket
from config.model import BotConfig
from config.vocabulary import ROLE_LABELS, Role

OFFICE_ROLES: Final = (Role.DISPATCHER, Role.CENTER_LEAD, Role.ADMIN)

# the unit's own work: its members do it, on their unit's tickets
UNIT_WORK: Final = frozenset(
    {
        Action.CLAIM,
        Action.CONTACT,
        Action.ON_SITE,
        Action.SUBMIT,
        Action.REQUEST_RETURN,
        Action.TRANSFER,
        Action.REQUEST_EXTENSION,
        Action.REQUEST_EXCLUSION,
    }
)
EXTENSION_DECISIONS: Final = frozenset({Action.APPROVE_EXTENSION, Action.REJECT_EXTENSION})
# a handler's return is signed (or not) by the head or a deputy of the ticket's unit, and by nobody else
RETURN_SIGNATURES: Final = frozenset({Action.CONFIRM_RETURN, Action.DECLINE_RETURN})
# the office's work, on every unit's tickets: by these roles (the others: by any office role)
OFFICE_WORK: Final[Mapping[Action, frozenset[Role]]] = {
    Action.VISIT: frozenset({Role.DISPATCHER}),
    Action.ASSIGN: frozenset({Role.CENTER_LEAD}),
    Action.APPROVE_EXCLUSION: frozenset({Role.DISPATCHER, Role.CENTER_LEAD}),
    Action.REJECT_EXCLUSION: frozenset({Role.DISPATCHER, Role.CENTER_LEAD}),
}


def is_office(config: BotConfig, userid: str) -> bool:
    """Whether ``userid`` holds an office role: sees every unit's tickets."""
    return any(config.has_role(userid, role) for role in OFFICE_ROLES)


def is_unit_member(config: BotConfig, userid: str, unit_code: str | None) -> bool:
    """Whether ``userid`` is a member (handler, head or deputy) of the unit ``unit_code``."""
    unit = config.unit(unit_code) if unit_code else None
    return unit is not None and (unit.is_member(userid) or userid in unit.heads)


def office_roles_for(action: Action) -> frozenset[Role]:
    """The office roles that take ``action`` on every unit's tickets (none for the unit's own work)."""
    if action in UNIT_WORK:
        return frozenset()
    return OFFICE_WORK.get(action, frozenset(OFFICE_ROLES))


def may_act(config: BotConfig, userid: str, action: Action, ticket: Ticket) -> bool:
    """Whether the member ``userid`` may ask for ``action`` on ``ticket`` (its ``unit_code``, and
    ``extension_requested_by`` for a decision on an extension). The lifecycle's own rules are asked afterwards."""
    unit_code = ticket.unit_code
    if action in RETURN_SIGNATURES:
        unit = config.unit(unit_code) if unit_code else None
        return unit is not None and userid in unit.heads
    if action in UNIT_WORK:
        if is_unit_member(config, userid, unit_code):
            return True
        return config.permissions.office_may_do_unit_work and is_office(config, userid)
    if any(config.has_role(userid, role) for role in office_roles_for(action)):
        return True
    if action in EXTENSION_DECISIONS:
        # the unit's head or a deputy decides a handler's request; a head's request goes to the office
        unit = config.unit(unit_code) if unit_code else None
        return unit is not None and userid in unit.heads and ticket.extension_requested_by not in unit.heads
    return False


def refusal(config: BotConfig, userid: str, action: Action, ticket: Ticket) -> str | None:
    """None when :func:`may_act`; else why not, politely, in Chinese."""
    if may_act(config, userid, action, ticket):
        return None
    unit_code = ticket.unit_code
    unit = config.unit(unit_code) if unit_code else None
    where = unit.name if unit is not None else "未分派单位"
    if action in UNIT_WORK:
        return f"抱歉，工单 {ticket.ticket_no} 属于{where}，只有{where}的承办人或负责人可以{action.label}。"
    if action in EXTENSION_DECISIONS:
        return f"抱歉，工单 {ticket.ticket_no} 的延期申请由{where}负责人或热线办审批。"
    if action in RETURN_SIGNATURES:
        return f"抱歉，工单 {ticket.ticket_no} 的退单申请由{where}负责人确认。"
    roles = "、".join(ROLE_LABELS[role] for role in OFFICE_ROLES if role in office_roles_for(action))
    return f"抱歉，{action.label}只有{roles}可以操作。"


# --- what a member sees on the board (bot.board) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sight:
    """The tickets a member sees on the board: every unit's (the office roles), those of the units they head or
    deputise (``units``), those they handle themselves, and the unclaimed ones of the units they work in
    (``unclaimed_units``: a handler claims them from the group's push, and sees them there anyway)."""

    userid: str
    everything: bool = False
    units: tuple[str, ...] = ()
    unclaimed_units: tuple[str, ...] = ()

    def sees(self, ticket: Ticket) -> bool:
        if self.everything or ticket.handler_userid == self.userid:
            return True
        unit = ticket.unit_code or ""
        return unit in self.units or (unit in self.unclaimed_units and ticket.state == TicketState.DISPATCHED)

    def sees_unit(self, code: str) -> bool:
        """Whether the unit's whole board (its tickets, its reports) is this member's to see."""
        return self.everything or code in self.units


def sight_of(config: BotConfig, userid: str) -> Sight | None:
    """What ``userid`` sees on the board; None for someone who is not a configured member."""
    if config.member(userid) is None and not config.units_of(userid) and not config.units_led_by(userid):
        return None
    if is_office(config, userid):
        return Sight(userid, everything=True)
    return Sight(
        userid,
        units=tuple(u.code for u in config.units_led_by(userid)),
        unclaimed_units=tuple(u.code for u in config.units_of(userid)),
    )
