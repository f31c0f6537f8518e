"""Repeat complaints (重复诉求) in a hand-over's transaction (the rules: :mod:`bot.domain.repeats`).

A new ticket is matched against the stored tickets of its keys within the window, read by the keys' indexes
(:func:`store.repeats.candidates`: one statement for a whole batch on PostgreSQL), and against the other new tickets
of its batch. What it repeats is written into its row before the insert (``repeat_count``, ``repeat_of``,
``repeat_reason``), the pairs (``ticket_repeats``) once the ids are known. A stored ticket dispatched *after* a new
one (an export imported newest first, a hand-over that arrives late) gains it as an earlier ticket and is counted
again, so that the order in which history arrives does not change what is marked.

A hand-over that changes a ticket's phone, address, text or dispatch time matches that ticket again (its own earlier
tickets; those after it keep what they found).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.domain.records import Ticket
from bot.domain.repeats import RepeatRules, Subject, address_key, phone_key, signature
from config.model import BotConfig
from store import repeats as repeats_repo
from store.core import Conn
from store.repeats import Lookup, Signal

_NEW = 2**62  # the order of a new ticket: after every stored one dispatched at the same moment


@dataclass(slots=True)
class _Found:
    """What one ticket repeats: its earlier tickets (a stored id, or a new ticket's number) with what matched each,
    the latest first."""

    earlier: list[tuple[int | str, str, str]] = field(default_factory=list)  # (ref, ticket number, reason)

    def columns(self) -> dict[str, Any]:
        first = self.earlier[0] if self.earlier else None
        return {
            "repeat_count": 1 + len(self.earlier),
            "repeat_of": first[1] if first else None,
            "repeat_reason": first[2] if first else None,
        }


@dataclass(slots=True)
class Pending:
    """New tickets matched before their insert: the pairs to write once their ids are known."""

    found: list[_Found] = field(default_factory=list)
    later: list[tuple[int, int, str]] = field(default_factory=list)  # (stored id, index of the new ticket, reason)


class RepeatMatcher:
    def __init__(self, config: BotConfig) -> None:
        self.rules = RepeatRules(config.repeats)

    @staticmethod
    def keys(
        *, phone: str | None, address: str | None, category: str | None, title: str | None, content: str | None
    ) -> dict[str, Any]:
        """A ticket's key columns and its text's signature, kept whether matching is on or not (switched on again,
        it finds them)."""
        return {
            "repeat_phone": phone_key(phone),
            "repeat_address": address_key(address),
            "repeat_signature": signature(category, title, content, address),
        }

    async def before_insert(self, conn: Conn, rows: Sequence[dict[str, Any]]) -> Pending:
        """Matches the new tickets ``rows`` (insert rows with their :meth:`keys` and ``dispatched_at``), and writes
        into each its repeat columns; :meth:`after_insert` writes the pairs."""
        if not self.rules.enabled or not rows:
            return Pending()
        subjects = [_subject(row, row["ticket_no"], _NEW + i) for i, row in enumerate(rows)]
        pending = await self._match(conn, subjects, later=True)
        for row, found in zip(rows, pending.found, strict=True):
            row.update(found.columns())
        return pending

    async def after_insert(
        self, conn: Conn, pending: Pending, rows: Sequence[Mapping[str, Any]], ids: Sequence[int]
    ) -> None:
        if not pending.found and not pending.later:
            return
        id_of = {row["ticket_no"]: ticket_id for row, ticket_id in zip(rows, ids, strict=True)}
        pairs = [
            {"ticket_id": ticket_id, "earlier_id": ref if isinstance(ref, int) else id_of[ref], "reason": reason}
            for ticket_id, found in zip(ids, pending.found, strict=True)
            for ref, _, reason in found.earlier
        ]
        pairs += [{"ticket_id": stored, "earlier_id": ids[i], "reason": reason} for stored, i, reason in pending.later]
        await repeats_repo.add_links(conn, pairs)
        await repeats_repo.recount(conn, [stored for stored, _, _ in pending.later])

    async def rematch(self, conn: Conn, ticket: Ticket) -> dict[str, Any]:
        """``ticket`` as a hand-over changed it (its phone, address, text or dispatch time): its keys, and its repeat
        columns matched again against the tickets before it; its pairs rewritten. Returns the columns to write."""
        values = self.keys(
            phone=ticket.citizen_phone,
            address=ticket.address,
            category=ticket.category,
            title=ticket.title,
            content=ticket.content,
        )
        if not self.rules.enabled:
            return values
        subject = _subject(
            {"ticket_no": ticket.ticket_no, "dispatched_at": ticket.dispatched_at, **values}, ticket.id, ticket.id
        )
        [found] = (await self._match(conn, [subject], later=False, exclude=ticket.id)).found
        await repeats_repo.drop_links(conn, ticket.id)
        await repeats_repo.add_links(
            conn, [{"ticket_id": ticket.id, "earlier_id": ref, "reason": reason} for ref, _, reason in found.earlier]
        )
        return {**values, **found.columns()}

    async def _match(
        self, conn: Conn, subjects: Sequence[Subject], *, later: bool, exclude: int | None = None
    ) -> Pending:
        rules = self.rules
        window = rules.window
        lookups: list[Lookup] = []
        owners: list[int] = []
        peers: dict[tuple[str, str], list[int]] = {}
        for i, subject in enumerate(subjects):
            until = subject.at + window if later else subject.at
            for signal, key in self._keys(subject):
                lookups.append(Lookup(signal, key, subject.at - window, until))
                owners.append(i)
                peers.setdefault((signal, key), []).append(i)
        found_by_lookup = await repeats_repo.candidates(conn, lookups)
        stored: list[dict[int, Subject]] = [{} for _ in subjects]
        for owner, found in zip(owners, found_by_lookup, strict=True):
            for c in found:
                if c.id != exclude:
                    stored[owner].setdefault(
                        c.id,
                        Subject(
                            ref=c.id,
                            ticket_no=c.ticket_no,
                            at=c.dispatched_at,
                            order=c.id,
                            phone=c.repeat_phone,
                            address=c.repeat_address,
                            signature=c.repeat_signature,
                        ),
                    )
        pending = Pending()
        for i, subject in enumerate(subjects):
            earlier: list[tuple[datetime, int, int | str, str, str]] = []
            others = list(stored[i].values())
            batch = {j for key in self._keys(subject) for j in peers[key] if j != i}
            others += [subjects[j] for j in sorted(batch)]
            for old in others:
                if rules.earlier(subject, old):
                    reason = rules.reason(subject, old)
                    if reason is not None:
                        earlier.append((old.at, old.order, old.ref, old.ticket_no, reason))
                elif later and isinstance(old.ref, int) and rules.earlier(old, subject):
                    reason = rules.reason(old, subject)
                    if reason is not None:
                        pending.later.append((old.ref, i, reason))
            earlier.sort(key=lambda e: (e[0], e[1]), reverse=True)
            pending.found.append(_Found([(ref, no, reason) for _, _, ref, no, reason in earlier]))
        return pending

    def _keys(self, subject: Subject) -> list[tuple[Signal, str]]:
        """The keys ``subject`` is matched by, as the rules count them."""
        keys: list[tuple[Signal, str]] = []
        phone, address = self.rules.phone_of(subject), self.rules.address_of(subject)
        if phone is not None:
            keys.append(("phone", phone))
        if address is not None:
            keys.append(("address", address))
        return keys


def _subject(row: Mapping[str, Any], ref: int | str, order: int) -> Subject:
    return Subject(
        ref=ref,
        ticket_no=row["ticket_no"],
        at=row["dispatched_at"],
        order=order,
        phone=row["repeat_phone"],
        address=row["repeat_address"],
        signature=row["repeat_signature"],
    )
