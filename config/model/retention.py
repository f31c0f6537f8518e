"""How long handled inbound and sent outbound messages are kept."""

from __future__ import annotations

from pydantic import Field

from config.model.fields import Model


class Retention(Model):
    """How long the bot keeps what it no longer needs: inbound messages it has handled (WeCom callbacks, the hotline's
    hand-overs and events, kept to recognise a late retry) and outbound messages it has sent. The process running
    the deadline engine deletes older ones every hour. Dead letters are kept until an operator replays them.
    Tickets, their deadlines and the audit log are never deleted by this."""

    inbox_days: int = Field(default=90, ge=7, le=3650)
    outbox_days: int = Field(default=90, ge=7, le=3650)
