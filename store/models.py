"""Tables: tickets, their deadlines, the append-only audit log, the inbox, the outbox, the duty takeovers and the
accept deadlines units missed, the tickets waiting for their unit's digest, the append-only record of who was told
of which deadline (notifications), and the tickets each repeat complaint repeats (ticket_repeats).

The same schema runs on SQLite (embedded default) and PostgreSQL. Datetimes are stored in UTC
and come back aware, in Asia/Shanghai. Store code knows nothing of WeCom.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

_TZ = ZoneInfo("Asia/Shanghai")

# BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer, "sqlite")


def sqlite_text(value: datetime) -> str:
    """An aware datetime as SQLite stores it here: UTC, SQLAlchemy's DATETIME text format."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware datetime")
    u = value.astimezone(UTC)
    return f"{u.year:04d}-{u.month:02d}-{u.day:02d} {u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}"


class TZDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware datetimes (Asia/Shanghai) out; UTC on disk.

    SQLite has no timezone type: values are stored as UTC text in SQLAlchemy's own DATETIME format
    (``2026-11-22 01:30:00.000000``), which sorts in time order, so indexed range queries
    (``next_due_at <= now``) behave the same on both backends. The text is written and read here directly:
    the generic processor costs several times more per value, and bulk imports bind hundreds of thousands.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware datetime")
        if dialect.name == "sqlite":
            return sqlite_text(value)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(_TZ)


# cancelled tickets and tickets approved 不纳入测评 count in no report's rate (bot.domain.reports.figures)
UNCOUNTED = "state = 'cancelled' OR evaluation = 'excluded'"
# the tickets that repeat an earlier one (the platform's flag or the bot's match), written out as their index's
# condition (ix_tickets_repeated), so that SQLite matches it too
REPEATED = "is_repeat OR repeat_count > 1"

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: TZDateTime(), dict[str, Any]: JSON()}


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index(
            "ix_tickets_repeat_phone",
            "repeat_phone",
            "dispatched_at",
            sqlite_where=text("repeat_phone IS NOT NULL"),
            postgresql_where=text("repeat_phone IS NOT NULL"),
        ),
        Index(
            "ix_tickets_repeat_address",
            "repeat_address",
            "dispatched_at",
            sqlite_where=text("repeat_address IS NOT NULL"),
            postgresql_where=text("repeat_address IS NOT NULL"),
        ),
        # one unit's tickets received, visits and platform deadlines in a period (/报表 of a unit; migration 0012)
        Index("ix_tickets_unit_dispatched", "unit_code", "dispatched_at"),
        Index("ix_tickets_visit_unit", "visit_unit", "visited_at"),
        Index("ix_tickets_unit_hotline_deadline", "unit_code", "hotline_deadline"),
        # the few tickets the reports' rates leave out (store.reports.UNCOUNTED; migration 0012)
        Index("ix_tickets_uncounted", "id", sqlite_where=text(UNCOUNTED), postgresql_where=text(UNCOUNTED)),
        # the workbook's lists of a period: dissatisfied visits, repeat complaints (migration 0013)
        Index("ix_tickets_satisfaction_visited", "satisfaction", "visited_at"),
        Index("ix_tickets_repeated", "dispatched_at", sqlite_where=text(REPEATED), postgresql_where=text(REPEATED)),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_no: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    request_type: Mapped[str | None] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(64))
    area: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(500))
    citizen_name: Mapped[str | None] = mapped_column(String(64))
    citizen_phone: Mapped[str | None] = mapped_column(String(32))
    is_repeat: Mapped[bool] = mapped_column(Boolean, default=False)
    is_media: Mapped[bool] = mapped_column(Boolean, default=False)
    unit_code: Mapped[str | None] = mapped_column(String(32), index=True)
    handler_userid: Mapped[str | None] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(24), index=True)
    # the state a pending return request will go back to when it is rejected
    state_before_return: Mapped[str | None] = mapped_column(String(24))
    evaluation: Mapped[str] = mapped_column(String(16), default="normal")
    return_count: Mapped[int] = mapped_column(Integer, default=0)
    redispatch_count: Mapped[int] = mapped_column(Integer, default=0)
    rehandle_count: Mapped[int] = mapped_column(Integer, default=0)
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    satisfaction: Mapped[str | None] = mapped_column(String(24))
    routed_by: Mapped[str | None] = mapped_column(String(64))
    # the 承办单位 as the platform last named it (code or name; kept even when no unit of ours matches it)
    hotline_unit: Mapped[str | None] = mapped_column(String(64))
    hotline_deadline: Mapped[datetime | None] = mapped_column(index=True)
    dispatched_at: Mapped[datetime] = mapped_column(index=True)
    received_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # "closed today" and reports by period read it by range
    closed_at: Mapped[datetime | None] = mapped_column(index=True)
    # the reports (migration 0012): the unit's first submission (办结提交; 及时回复率 compares it with
    # hotline_deadline) and the time of the return visit whose results the ticket carries (实际解决率, 满意率)
    submitted_at: Mapped[datetime | None] = mapped_column(index=True)
    visited_at: Mapped[datetime | None] = mapped_column(index=True)
    visit_unit: Mapped[str | None] = mapped_column(String(32))  # the unit that had the ticket at that visit
    # 延期: the pending extension request (working days asked for, why, who asked, when; NULL when none is
    # pending) and how many extensions were approved
    extension_days: Mapped[int | None] = mapped_column(Integer)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    extension_requested_by: Mapped[str | None] = mapped_column(String(64))
    extension_requested_at: Mapped[datetime | None]
    extension_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # 退单: the pending return request (why, the suggested unit, who asked and when, the head who signed it; NULL
    # when none is pending). A handler's request waits for a head's signature (return_signed_by NULL), then, in the
    # state return_requested, for the office's review
    return_reason: Mapped[str | None] = mapped_column(Text)
    return_unit: Mapped[str | None] = mapped_column(String(64))
    return_requested_by: Mapped[str | None] = mapped_column(String(64))
    return_requested_at: Mapped[datetime | None]
    return_signed_by: Mapped[str | None] = mapped_column(String(64))
    # 实际解决: as the unit declared it when submitting (solved | partly | unsolved), and as the citizen saw it at
    # the return visit; the visit's note
    solved: Mapped[str | None] = mapped_column(String(16))
    visit_solved: Mapped[str | None] = mapped_column(String(16))
    visit_note: Mapped[str | None] = mapped_column(Text)
    # 重复诉求 (bot.domain.repeats; migration 0011): the keys a ticket is matched by (hashes of the normalised phone
    # and place, each indexed with dispatched_at: matching reads one key's window, never the table) and its text's
    # signature (512 bits, one per character pair), its place among the tickets of the same matter within the window
    # (1: none before it), the number of the one just before it and what matched it (phone, address,
    # phone+address). The earlier tickets are in ticket_repeats.
    repeat_phone: Mapped[str | None] = mapped_column(String(32))
    repeat_address: Mapped[str | None] = mapped_column(String(32))
    repeat_signature: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    repeat_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    repeat_of: Mapped[str | None] = mapped_column(String(64))
    repeat_reason: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    payload_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Deadline(Base):
    """One deadline of one ticket in one cycle (dispatch, re-dispatch, warning … each start a cycle).

    ``next_due_at`` is the next moment the deadline engine must look at this row (a reminder point, the
    due time, an escalation); NULL once nothing more is due. The engine selects by that index only.
    """

    __tablename__ = "deadlines"
    __table_args__ = (
        UniqueConstraint("ticket_id", "name", "cycle", name="uq_deadlines_ticket_name_cycle"),
        Index(
            "ix_deadlines_next_due",
            "next_due_at",
            sqlite_where=text("next_due_at IS NOT NULL"),
            postgresql_where=text("next_due_at IS NOT NULL"),
        ),
        # the reports count the deadlines of some names due in a period (migration 0012): on PostgreSQL from the
        # index alone (what they count is included), never the table's other names or rows
        Index(
            "ix_deadlines_report", "name", "due_at", postgresql_include=["unit_code", "status", "met_at", "ticket_id"]
        ),
        # the board's deadline list and its tiles: the open deadlines by due time (migration 0014)
        Index(
            "ix_deadlines_open_due",
            "due_at",
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
            postgresql_include=["ticket_id", "name"],
        ),
        # and one unit's (/报表 of a unit)
        Index(
            "ix_deadlines_unit_report",
            "unit_code",
            "due_at",
            postgresql_include=["name", "status", "met_at", "ticket_id"],
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(24))
    cycle: Mapped[int] = mapped_column(Integer)
    policy: Mapped[str] = mapped_column(String(16))  # the duration as configured, e.g. "5wd"
    started_at: Mapped[datetime]
    due_at: Mapped[datetime]
    # the unit that had the ticket when the deadline started: whose rate it counts in (a re-dispatched ticket
    # carries deadlines of several units)
    unit_code: Mapped[str | None] = mapped_column(String(32))
    # open | met | missed (was overdue when it stopped being due) | cancelled (stopped being due in time)
    status: Mapped[str] = mapped_column(String(12))
    met_at: Mapped[datetime | None]
    next_due_at: Mapped[datetime | None]
    stage: Mapped[int] = mapped_column(Integer, default=0)
    # working days approved extensions (延期) added to the due time the policy gives
    extended_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AuditEvent(Base):
    """Append-only: database triggers refuse UPDATE and DELETE (see the initial migration)."""

    __tablename__ = "audit_log"
    # the reports count returns and warnings (a visit that made a warning ticket: not every visit) by action and
    # time (migration 0012)
    __table_args__ = (
        Index("ix_audit_log_action_at", "action", "to_state", "at"),
        # and one unit's (/报表 of a unit)
        Index("ix_audit_log_unit_action_at", "unit_code", "action", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int | None] = mapped_column(BigId, index=True)
    ticket_no: Mapped[str | None] = mapped_column(String(64))
    # the unit the ticket was with when it happened (migration 0012; NULL before it, and for entries of no unit's
    # doing): whose returns and warnings the reports count it in
    unit_code: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str | None] = mapped_column(String(24))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class InboxMessage(Base):
    """Every inbound message, persisted before it is acknowledged; the unique key deduplicates retries."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("source", "dedup_key", name="uq_inbox_source_dedup_key"),
        Index(
            "ix_inbox_pending",
            "received_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(24))
    dedup_key: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime]
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | done | failed
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    # the process handling the message, and until when; another recovers it only once the lease has run out
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]


class OutboxMessage(Base):
    """Everything that must be sent. Written in the same transaction as the change that causes it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_due",
            "priority",
            "next_attempt_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        # the dead letters by channel (/metrics counts them at every scrape): migration 0015
        Index(
            "ix_outbox_dead",
            "channel",
            sqlite_where=text("status = 'dead'"),
            postgresql_where=text("status = 'dead'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(24))
    destination: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    ordering_key: Mapped[str | None] = mapped_column(String(100), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=5)  # 0 = most urgent
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # pending | sent | dead | void (superseded before it went out: a held push whose ticket moved on)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    # when it first became due: kept through paced and failed attempts, so that /metrics can say how long a message
    # has waited however often its next attempt moved (migration 0015); a replay makes it due again
    due_since: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class DutyTakeover(Base):
    """A member on duty in place of the roster (/值班 接班), from ``starts_at`` until ``ends_at``, or until ``ended_at``
    when handed back (交班) or relieved by another member's takeover earlier (``ended_by`` says who ended it). Rows
    are never deleted: with the audit log they are the duty's history.

    "Who is on duty at t" reads ``ends_at > t`` by its index: a takeover lasts a day at most, so that is the last
    day's rows, however long the history grows.
    """

    __tablename__ = "duty_takeovers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    userid: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)


class DeadlineMiss(Base):
    """An accept deadline that passed unmet, counted once against the unit that had the ticket then (the "three
    misses" of the bi-monthly report). Written by the deadline engine when it finds the deadline open after its due
    time, or by the ticket service when a late claim (or a transition) closes it first; the key makes either a
    no-op after the other."""

    __tablename__ = "deadline_misses"
    __table_args__ = (Index("ix_deadline_misses_unit_period", "unit_code", "period_start"),)

    deadline_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("deadlines.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    ticket_id: Mapped[int] = mapped_column(BigId)
    unit_code: Mapped[str] = mapped_column(String(32))
    period_start: Mapped[date] = mapped_column(Date)  # the reporting period the due time fell in
    missed_at: Mapped[datetime]  # the due time


class UnitMissCount(Base):
    """Misses per unit and reporting period: incremented atomically with each new miss; ``flagged_at`` is set once,
    when the count reaches the threshold, and ``notified_at`` when the engine has queued the flag for the
    dispatchers (a flag outside the service window waits for it)."""

    __tablename__ = "unit_miss_counts"

    unit_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    misses: Mapped[int] = mapped_column(Integer)
    flagged_at: Mapped[datetime | None]
    notified_at: Mapped[datetime | None]


class DigestItem(Base):
    """A new ticket waiting for its unit's next digest (pushes of the kinds the config gathers, see
    :mod:`notifiers.pushes`): queued in the ticket change's own transaction, taken by the flush of the digest period
    after it (``digest_key``, the digest message's outbox key, and ``flushed_at`` set then). One row per ticket and
    cycle: a hand-over retried or applied twice queues nothing twice. The flush reads the waiting rows only, by a
    partial index."""

    __tablename__ = "digest_items"
    __table_args__ = (
        UniqueConstraint("ticket_id", "cycle", name="uq_digest_items_ticket_cycle"),
        Index(
            "ix_digest_items_waiting",
            "queued_at",
            sqlite_where=text("flushed_at IS NULL"),
            postgresql_where=text("flushed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("tickets.id", ondelete="CASCADE"))
    ticket_no: Mapped[str] = mapped_column(String(64))
    cycle: Mapped[int] = mapped_column(Integer)
    unit_code: Mapped[str] = mapped_column(String(32))
    queued_at: Mapped[datetime]
    flushed_at: Mapped[datetime | None]
    digest_key: Mapped[str | None] = mapped_column(String(200))


class TicketRepeat(Base):
    """A ticket and an earlier one of the same matter within the repeat window (重复诉求), and what matched them
    (phone, address, phone+address). Written when the later ticket arrives (or, for an earlier one imported after
    it, when that one does); ``tickets.repeat_count`` is one more than a ticket's rows here. Indexed both ways: a
    ticket's earlier ones, and the later ones that repeat it. No foreign keys, as in the audit log: tickets are never
    deleted, and checking two keys a pair made writing them four times slower on PostgreSQL (an import writes
    thousands a batch)."""

    __tablename__ = "ticket_repeats"

    ticket_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    earlier_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False, index=True)
    reason: Mapped[str] = mapped_column(String(16))


class Notification(Base):
    """Who was told of a deadline or a ticket, when, through which channel: one row per reminder, overdue notice,
    escalation, repeat, duty call or three-misses flag and recipient (a unit's work group or a member), written in the
    transaction that queues its outbox message, so a row exists if and only if the message was queued. The record
    outlives the outbox (``outbox_key`` and ``outbox_id`` join its delivery while the outbox still has it).

    Append-only: database triggers refuse UPDATE (see migration 0009); rows are deleted only by the retention purge,
    once older than ``retention.notifications_days`` (at least 13 months)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_ticket_id", "ticket_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)  # when it was queued; the purge reads by it
    # reminder | overdue | escalation | repeat | duty | three_misses
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[int | None] = mapped_column(Integer)  # escalation level (overdue: 1); a repeat's number
    ticket_id: Mapped[int] = mapped_column(BigId)
    ticket_no: Mapped[str] = mapped_column(String(64))
    deadline_id: Mapped[int | None] = mapped_column(BigId)
    deadline_name: Mapped[str | None] = mapped_column(String(24))
    due_at: Mapped[datetime | None]
    unit_code: Mapped[str | None] = mapped_column(String(32))  # the unit whose deadline it was (flagged: that unit)
    recipient_kind: Mapped[str] = mapped_column(String(8))  # group | member
    recipient: Mapped[str] = mapped_column(String(64))  # the group's unit code, or the member's userid
    channel: Mapped[str] = mapped_column(String(24))  # the outbox channel: wecom_app, wecom_webhook, aibot_ws …
    outbox_key: Mapped[str] = mapped_column(String(200))
    outbox_id: Mapped[int | None] = mapped_column(BigId)


class DeploymentFact(Base):
    """What the serving bot tells other processes on the same database about itself, by name: ``channels``, the
    channels its outbox sends through (so that a ``run_bot.py import`` run elsewhere addresses its pushes to them,
    whatever channels its own environment has). Written at each start."""

    __tablename__ = "deployment"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class ReportRun(Base):
    """A scheduled report queued (the weekly data, a 通报, a morning brief), by its key (``weekly:week-2026-11-30``):
    written in the transaction that queues its messages, so that a report is queued once whichever process or
    restart looks for it again."""

    __tablename__ = "report_runs"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    queued_at: Mapped[datetime]


class SettledFigures(Base):
    """One kind of the counts behind a settled period's figures, of one unit (rows of store.reports.Facts, as
    JSON), kept once counted: a period that ended a week ago changes only when one of its tickets does, and every
    such change clears the periods it could touch (store.settled)."""

    __tablename__ = "settled_figures"

    starts: Mapped[datetime] = mapped_column(primary_key=True)
    ends: Mapped[datetime] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    unit: Mapped[str] = mapped_column(String(32), primary_key=True)  # "" for tickets of no unit, "*" a marker
    facts: Mapped[dict[str, Any]]
    made_at: Mapped[datetime]


class SettledEpoch(Base):
    """One row: a number every clearing of settled figures raises, so that figures counted before a change are not
    kept after it (store.settled)."""

    __tablename__ = "settled_epoch"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(BigInteger)


# the Core tables, for the repositories' statements
tickets = cast(Table, Ticket.__table__)
deadlines = cast(Table, Deadline.__table__)
audit_log = cast(Table, AuditEvent.__table__)
inbox = cast(Table, InboxMessage.__table__)
outbox = cast(Table, OutboxMessage.__table__)
duty_takeovers = cast(Table, DutyTakeover.__table__)
deadline_misses = cast(Table, DeadlineMiss.__table__)
unit_miss_counts = cast(Table, UnitMissCount.__table__)


digest_items = cast(Table, DigestItem.__table__)
notifications = cast(Table, Notification.__table__)


deployment = cast(Table, DeploymentFact.__table__)
ticket_repeats = cast(Table, TicketRepeat.__table__)
report_runs = cast(Table, ReportRun.__table__)
settled_figures = cast(Table, SettledFigures.__table__)
settled_epoch = cast(Table, SettledEpoch.__table__)
