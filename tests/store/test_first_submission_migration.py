"""Migration 0016 (the first submission) on a database in use, on both backends: a reopened ticket, whose time kept
was cleared, and a ticket re-dispatched after its submission, whose time kept was its second unit's, get their first
办结 from the audit log; an imported ticket, with no 办结 in the audit log, keeps its export's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import text

from store.db import create_engine, migrate
from tests.store.test_repeats_migration import alembic_config

BEFORE = "0015"


async def test_each_ticket_gets_its_first_submission(database_url: str) -> None:
    engine = create_engine(database_url)
    postgres = engine.dialect.name == "postgresql"
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def stamp(at: datetime | None) -> datetime | str | None:
        if at is None or postgres:
            return at
        return f"{at:%Y-%m-%d %H:%M:%S}.000000"  # SQLite: as the store writes it

    first, second = t0 + timedelta(days=1), t0 + timedelta(days=8)
    claimed, warning = "claimed", "warning"
    tickets = {  # ticket: (submitted_at kept before, its 办结 in the audit log: when, from which state)
        "REOPENED": (None, [(first, claimed)]),
        "MOVED": (second, [(first, claimed), (second, claimed)]),
        "IMPORTED": (first, []),
        "IMPORTED_THEN_SUBMITTED": (first, [(second, claimed)]),
        "OPEN": (None, []),
        "REHANDLED_ONLY": (None, [(second, warning)]),  # imported as a warning ticket: its re-handling is no reply
    }
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), BEFORE))
            for no, (kept, submits) in tickets.items():
                inserted = await conn.execute(
                    text(
                        "INSERT INTO tickets (ticket_no, kind, content, is_repeat, is_media, state, evaluation, "
                        "return_count, redispatch_count, rehandle_count, cycle, dispatched_at, received_at, "
                        "updated_at, source, payload_hash, version, extra, repeat_count, submitted_at) VALUES (:no, "
                        "'regular', 'x', false, false, 'dispatched', 'normal', 0, 0, 0, 1, :at, :at, :at, 'api', "
                        "'h', 1, '{}', 1, :kept) RETURNING id"
                    ),
                    {"no": no, "at": stamp(t0), "kept": stamp(kept)},
                )
                ticket_id = inserted.scalar_one()
                for at, state in submits:
                    await conn.execute(
                        text(
                            "INSERT INTO audit_log (ticket_id, ticket_no, at, actor, action, from_state, data) "
                            "VALUES (:id, :no, :at, 'wuhao', 'submit', :state, '{}')"
                        ),
                        {"id": ticket_id, "no": no, "at": stamp(at), "state": state},
                    )
        await migrate(engine)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT ticket_no, submitted_at FROM tickets"))).all()
        found = {no: at if at is None or isinstance(at, str) else at.astimezone(UTC) for no, at in rows}
        assert found == {
            "REOPENED": stamp(first),
            "MOVED": stamp(first),
            "IMPORTED": stamp(first),
            "IMPORTED_THEN_SUBMITTED": stamp(first),
            "OPEN": None,
            "REHANDLED_ONLY": None,
        }
    finally:
        await engine.dispose()
