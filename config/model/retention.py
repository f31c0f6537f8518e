"""How long handled inbound and sent outbound messages, and the record of who was told of a deadline, are kept."""

from __future__ import annotations

from pydantic import Field

from config.model.fields import Model

# 13 months at least: a year of reports (the bi-monthly 通报, the yearly review) and the month after it
NOTIFICATIONS_MIN_DAYS = 395


class Retention(Model):
    """How long the bot keeps what it no longer needs: inbound messages it has handled (WeCom callbacks, the hotline's
    hand-overs and events, kept to recognise a late retry) and outbound messages it has sent; and how long it keeps
    the record of every reminder, overdue notice, escalation and three-misses flag (who was told, when, through which
    channel: ``notifications``), which outlives the outbox so that "they were told" stays provable. The process
    running the deadline engine deletes older ones every hour. Dead letters are kept until an operator replays them.
    Tickets, their deadlines and the audit log are never deleted by this."""

    inbox_days: int = Field(default=90, ge=7, le=3650)
    outbox_days: int = Field(default=90, ge=7, le=3650)
    notifications_days: int = Field(default=400, ge=NOTIFICATIONS_MIN_DAYS, le=3650)
