"""Naming a ticket in chat: its full number, its last digits where that is unambiguous, or a quoted push.

``find_ticket`` only finds the ticket: whether the member may act on it is the router's question. A full
number is found in any unit, so that the router can say "this ticket belongs to another unit"; last digits are
matched among the tickets the member can see only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.escaping import echo, group_text
from handlers.errors import CommandError
from handlers.queries import OPEN_STATES
from store import queries as queries_repo
from store import tickets as tickets_repo
from store.core import Store

MIN_SUFFIX = 3
_SHOWN = 5  # candidates listed when last digits are ambiguous

# the hotline's numbers (bot.hotline.schemas.TICKET_NO): letters, digits, "-" and "_", up to 64
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_TOKEN_END = r"(?![A-Za-z0-9_-])"
# as the bot's pushes name a ticket: "工单 2026112200123", "工单号：2026112200123", "工单编号: YS2026…"
_LABELLED = re.compile(r"(?:工单|单号)(?:编号|号码|号)?\s*[:#]?\s*([A-Za-z0-9][A-Za-z0-9_-]{3,63})" + _TOKEN_END)
# otherwise a bare number: 10-20 digits, or letters then digits ("YS20261122093000001", "SH-2026-112200123")
_BARE = re.compile(r"(?<![A-Za-z0-9_-])(\d{10,20}|[A-Za-z]{1,8}[-_]?\d[\d_-]{4,54}\d)" + _TOKEN_END)
# a mainland mobile number is not a ticket (a private full ticket shows the citizen's phone unmasked)
_MOBILE = re.compile(r"1[3-9]\d{9}")


def _normal(text: str) -> str:
    # full-width digits, letters, colons and spaces (typed on a phone) as their ASCII forms
    return unicodedata.normalize("NFKC", text)


def ticket_ref_in(text: str) -> str | None:
    """The ticket number a (quoted) message names, or None: a labelled number ("工单 …", "工单号：…") first, else
    the first bare one (10-20 digits, not a mobile number, or the hotline's letters-and-digits form)."""
    refs = ticket_refs_in(text)
    return refs[0] if refs else None


def ticket_refs_in(text: str) -> list[str]:
    """Every ticket number a (quoted) message names, once each: the labelled ones first, then the bare ones, each in
    the order they appear (a digest or a list names several)."""
    text = _normal(text)
    found: dict[str, str] = {}
    for match in _LABELLED.finditer(text):
        if any(c.isdigit() for c in match.group(1)):
            found.setdefault(match.group(1).upper(), match.group(1))
    for match in _BARE.finditer(text):
        ref = match.group(1)
        if not _MOBILE.fullmatch(ref) and sum(c.isdigit() for c in ref) >= 6:
            found.setdefault(ref.upper(), ref)
    return list(found.values())


def _short(row: Mapping[Any, Any], width: int = 16) -> str:
    # masked before it is cut: a phone number cut short no longer looks like one (the answer may go to a group)
    words = group_text(row["title"] or row["content"] or "", row)
    return words if len(words) <= width else words[: width - 1] + "…"


def _ambiguous(ref: str, rows: Sequence[Mapping[Any, Any]]) -> CommandError:
    lines = [f"尾号 {ref} 对应多张工单，请多输入几位或输入完整工单号："]
    lines += [f"· {row['ticket_no']}「{_short(row)}」" for row in rows[:_SHOWN]]
    if len(rows) > _SHOWN:
        lines.append("……（还有更多）")
    return CommandError("ticket_ambiguous", "\n".join(lines))


async def find_ticket(store: Store, ref: str, *, units: Collection[str] | None) -> Mapping[str, Any]:
    """The ticket ``ref`` names: its row (without deadlines and history).
    ``units``: the codes of the units the member works in, whose tickets last digits are matched against (None:
    every unit, for dispatchers, center leads and admins).

    Raises CommandError: ``bad_ticket_ref`` (not a number, or fewer than 3 characters), ``ticket_ambiguous``
    (the last digits match several tickets; up to 5 are listed), ``ticket_not_found``. Open tickets win over
    closed and cancelled ones with the same last digits."""
    ref = _normal(ref).strip().lstrip("#").strip()
    if len(ref) < MIN_SUFFIX:
        raise CommandError("bad_ticket_ref", f"请输入完整工单号，或工单号的后几位（至少 {MIN_SUFFIX} 位）。")
    if not _REF.fullmatch(ref):
        raise CommandError("bad_ticket_ref", f"「{echo(ref[:20])}」不是工单号：工单号只含数字、字母和连字符。")
    scope = None if units is None else sorted(set(units))

    async def query(conn: AsyncConnection) -> tuple[Mapping[str, Any] | None, Sequence[Mapping[str, Any]]]:
        """(the ticket with the number ``ref``, or None and the tickets ending with it)."""
        for number in dict.fromkeys((ref, ref.upper())):
            row = await tickets_repo.ticket_by_no(conn, number)
            if row is not None:
                return dict(row), []
        if scope == []:
            return None, []
        rows = await queries_repo.tickets_ending_with(conn, ref, units=scope, states=OPEN_STATES, limit=_SHOWN + 1)
        if not rows:
            # no open ticket: then a closed or cancelled one (every remaining match is one)
            rows = await queries_repo.tickets_ending_with(conn, ref, units=scope, states=None, limit=_SHOWN + 1)
        return None, [dict(r) for r in rows]

    exact, rows = await store.read(query, snapshot=False)
    if exact is not None:
        return exact
    if len(rows) == 1:
        return dict(rows[0])
    if rows:
        raise _ambiguous(ref, rows)
    if units is None:
        message = f"没有找到工单号为 {ref} 或以 {ref} 结尾的工单，请核对后重试。"
    else:
        message = f"没有找到工单号为 {ref} 的工单，本单位也没有以 {ref} 结尾的工单，请核对后重试。"
    raise CommandError("ticket_not_found", message)
