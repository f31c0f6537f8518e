"""The way into the database: :class:`Store`, with one entry for writes and one for reads.

``async with store.transaction() as conn`` is a write transaction; ``async with store.reading() as conn`` a read
(a consistent snapshot that holds up no writer). The other modules of this package are the repositories: every SQL
statement the bot runs, as functions of a :data:`Conn`, one module per aggregate. A repository function runs its
statements on the connection it is given and nothing else: it opens no transaction of its own and commits nothing,
so that a change, its audit entry and the messages it causes are committed together or not at all. Values go in as
plain mappings; a ticket, its deadlines and its history come out as the domain's records
(:mod:`bot.domain.records`), other rows as read-only mappings (:data:`Row`). This package knows nothing of WeCom.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVarTuple, overload

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import CursorResult, Dialect, RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.selectable import TypedReturnsRows

from store.db import READ_ONLY
from store.sqlite import InlineSqlite

_Ts = TypeVarTuple("_Ts")


class Conn(Protocol):
    """An open connection inside a transaction of :class:`Store`: what repositories take. Statements run with
    ``await conn.execute(...)``; ``conn.dialect.name`` tells the backend."""

    @property
    def dialect(self) -> Dialect: ...

    @overload
    async def execute(self, statement: TypedReturnsRows[*_Ts], parameters: Any = None) -> CursorResult[*_Ts]: ...

    @overload
    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[*tuple[Any, ...]]: ...


Row = RowMapping  # a row as repositories return it: a read-only mapping of column to value

# SQLite accepts at most 32766 bound parameters per statement; keep IN-lists well below
CHUNK = 500


class ConcurrentUpdate(Exception):
    """The row changed between read and write (optimistic locking); re-read and decide again."""


class ConstraintViolation(Exception):
    """The database refused a write: a unique key taken (a concurrent insert of the same row), a NOT NULL column left
    empty. The transaction is rolled back."""


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite has one writer at a time: this process's writes queue in its writer, in order
        self._sqlite = InlineSqlite(engine.url) if engine.dialect.name == "sqlite" else None

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @property
    def single_process(self) -> bool:
        """Whether one process at a time uses the database (SQLite): a row leased to another owner was leased by a
        previous run of this one."""
        return self.backend == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A write transaction: committed when the block ends, rolled back if it raises. On SQLite it begins with
        ``BEGIN IMMEDIATE`` (it holds the write lock from the start) behind this process's other writers, and its
        statements run at once (:mod:`store.sqlite`)."""
        try:
            if self._sqlite is None:
                async with self.engine.begin() as conn:
                    yield conn
                return
            async with self._sqlite.transaction() as inline:
                yield inline
        except IntegrityError as exc:
            raise ConstraintViolation(str(exc)) from exc

    async def dispose(self) -> None:
        """Closes every pooled connection (the next use opens new ones)."""
        if self._sqlite is not None:
            self._sqlite.dispose()
        await self.engine.dispose()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Conn]:
        """A read-only transaction: one consistent snapshot, beside the writers (WAL on SQLite; its statements run
        at once, :mod:`store.sqlite`)."""
        if self._sqlite is not None:
            async with self._sqlite.reading() as inline:
                yield inline
            return
        async with self.engine.connect() as conn:
            await conn.execution_options(**{READ_ONLY: True})
            yield conn


def among_ids(column: Any, dialect: str) -> ColumnElement[bool]:
    """``column`` among the ids bound as ``ids``: one array on PostgreSQL (one prepared statement whatever their
    number), an expanding IN list on SQLite (at most 32,766 of them a statement)."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", type_=ARRAY(BigInteger)))
    return column.in_(bindparam("ids", expanding=True))  # type: ignore[no-any-return]


async def ping(conn: Conn) -> None:
    """One trivial statement: raises if the database does not answer."""
    await conn.execute(text("SELECT 1"))
