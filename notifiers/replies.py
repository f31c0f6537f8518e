"""Commands' answers into the outbox: the router's ``send``. Replies of commands running side by side share one
write (group commit, one round trip on SQLite and PostgreSQL). Replies this process can send now are written leased
to its outbox worker and sent at once (:meth:`notifiers.outbox.OutboxWorker.send_now`), not at its next pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bot.messages.reply import Reply
from bot.services.channels import Channels
from bot.services.groupcommit import GroupCommit
from notifiers.outbox import OutboundMessage, OutboxWorker
from notifiers.rows import Row, reply_rows
from store import outbox as outbox_repo
from store.core import Store


class ReplyOutbox:
    def __init__(
        self,
        store: Store,
        channels: Channels,
        *,
        wake: Callable[[], None] | None = None,
        outbox: Callable[[], OutboxWorker | None] | None = None,
    ) -> None:
        self.store = store
        self.channels = channels
        self.wake = wake
        self.outbox = outbox
        self._replies = GroupCommit[list[Row], dict[str, int]](self._write, name="command-replies")

    async def __call__(self, replies: Sequence[Reply], at: datetime) -> None:
        """Queues ``replies`` (made at ``at``)."""
        await self.enqueue([row for reply in replies for row in reply_rows(reply, self.channels, at=at)])

    async def enqueue(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        worker = self.outbox() if self.outbox is not None else None
        direct: list[Row] = []
        queued: list[Row] = []
        if worker is not None:
            until = worker.lease_until()
            for row in rows:
                if worker.can_send_now(row["channel"]):
                    direct.append({**row, "lease_owner": worker.owner, "lease_until": until})
                else:
                    queued.append(row)
        else:
            queued = list(rows)
        inserted = await self._replies.submit(direct + queued)
        if worker is not None and direct:
            worker.send_now(
                [
                    OutboundMessage(
                        id=inserted[row["idempotency_key"]],
                        channel=row["channel"],
                        destination=row["destination"],
                        idempotency_key=row["idempotency_key"],
                        payload=row["payload"],
                        attempts=row["attempts"],
                    )
                    for row in direct
                    if row["idempotency_key"] in inserted  # not queued before (a re-run after a crash)
                ]
            )
        if queued and self.wake is not None:
            self.wake()

    async def _write(self, batches: Sequence[list[Row]]) -> list[dict[str, int]]:
        rows: list[dict[str, Any]] = [row for batch in batches for row in batch]
        async with self.store.transaction() as conn:
            inserted = await outbox_repo.enqueue(conn, rows)
        return [
            {
                row["idempotency_key"]: inserted[row["idempotency_key"]]
                for row in batch
                if row["idempotency_key"] in inserted
            }
            for batch in batches
        ]
