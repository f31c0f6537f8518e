"""Migration 0011 (repeat complaints) on a database in use, on both backends: the tickets of the last year get their
keys, older ones none, none is marked as a repeat; the downgrade drops it all again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from bot.domain.repeats import address_key, phone_key
from store.db import MIGRATIONS, create_engine, migrate

BEFORE_REPEATS = "0010"  # the revision 0011_repeats builds on


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def test_the_repeats_migration_keys_last_years_tickets_and_goes_back(database_url: str) -> None:
    engine = create_engine(database_url)
    postgres = engine.dialect.name == "postgresql"

    def stamp(at: datetime) -> datetime | str:
        return at if postgres else f"{at:%Y-%m-%d %H:%M:%S}.000000"  # SQLite: as the store writes it

    recent, old = datetime.now(UTC) - timedelta(days=3), datetime.now(UTC) - timedelta(days=400)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), BEFORE_REPEATS))
            for no, at, phone, address in (
                ("T1", recent, "138 1234 5678", "幸福里小区3号1203室"),
                ("T2", old, "13812345678", "幸福里小区3号"),
                ("T3", recent, None, None),
            ):
                await conn.execute(
                    text(
                        "INSERT INTO tickets (ticket_no, kind, content, citizen_phone, address, is_repeat, is_media, "
                        "state, evaluation, return_count, redispatch_count, rehandle_count, cycle, dispatched_at, "
                        "received_at, updated_at, source, payload_hash, version, extra) VALUES (:no, 'regular', 'x', "
                        ":phone, :address, false, false, 'claimed', 'normal', 0, 0, 0, 1, :at, :at, :at, 'api', 'h', "
                        "1, '{}')"
                    ),
                    {"no": no, "phone": phone, "address": address, "at": stamp(at)},
                )
        await migrate(engine)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT ticket_no, repeat_phone, repeat_address, repeat_count, repeat_of FROM tickets "
                        "ORDER BY ticket_no"
                    )
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("T1", phone_key("13812345678"), address_key("幸福里小区3号"), 1, None),
            ("T2", None, None, 1, None),  # dispatched before the longest window
            ("T3", None, None, 1, None),
        ]
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), BEFORE_REPEATS))
            columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("tickets")})
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            assert not {name for name in columns if name.startswith("repeat_")}
            assert "ticket_repeats" not in names
            assert (await conn.execute(text("SELECT count(*) FROM tickets"))).scalar_one() == 3
    finally:
        await engine.dispose()
