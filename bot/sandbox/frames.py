"""What became of a member's line or click that the sandbox handed to the bot (:class:`Outcome`), and the hand-over
over the intelligent robot's long connection (:class:`Frames`).

Over the long connection a line typed in a work group, or a click on the robot's card, is a frame the fake WeCom
pushes to the bot's connection (``aibot_msg_callback``, ``aibot_event_callback`` with a ``template_card_event``),
as WeCom does. WeCom's protocol has no answer to such a frame, so the sandbox waits instead until the bot's
connection has taken it in (stored in its inbox, :meth:`bot.wecom.longconn.AibotLongConnection.wait_taken`): then
it is as accepted as a callback answered 200. The frames are handed over one at a time, so that "taken" is this
frame's, not an earlier one's. Nothing sleeps: the waits are on the connection's own events, bounded in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.sandbox.chats import Chat
from bot.sandbox.fake.longconn import AibotHub

Over = Literal["http", "ws"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a callback the sandbox sent to the bot: over HTTP, its status (200: accepted); over the long
    connection (``ws``), whether the bot took the frame in."""

    status: int | None
    error: dict[str, Any] | None = None
    over: Over = "http"

    @property
    def accepted(self) -> bool:
        if self.over == "ws":
            return self.error is None
        return self.status == 200

    def public(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "status": self.status, "error": self.error, "over": self.over}


class Taker(Protocol):
    """What the sandbox reads of the bot's :class:`bot.wecom.longconn.AibotLongConnection`."""

    @property
    def frames_taken(self) -> int: ...

    @property
    def unstored(self) -> int: ...

    async def wait_subscribed(self, count: int = 1) -> None: ...

    async def wait_taken(self, count: int) -> None: ...


class Frames:
    """Members' lines and clicks in the work groups, pushed to the bot over the robot's long connection.
    ``connection`` gives the bot's connection once the bot has made it (None before)."""

    def __init__(
        self, hub: AibotHub, bot_id: str, connection: Callable[[], Taker | None], *, wait: float, robot_name: str
    ) -> None:
        self.hub = hub
        self.bot_id = bot_id
        self.connection = connection
        self.wait = wait
        self.robot_name = robot_name
        self._one_at_a_time = asyncio.Lock()

    async def message(self, *, member: str, chat: Chat, text: str) -> Outcome:
        """``member`` types ``text`` in ``chat`` (a group: the robot's ``@name`` is put in front, as WeCom does)."""
        group = chat.kind == "group"
        return await self._hand_over(
            lambda: self.hub.push_message(
                self.bot_id,
                text,
                userid=member,
                chatid=chat.chatid if group else None,
                robot_name=self.robot_name if group else None,
            )
        )

    async def click(self, *, member: str, chat: Chat, task_id: str, event_key: str, card_type: str) -> Outcome:
        """``member`` clicks button ``event_key`` of the robot's card ``task_id`` in ``chat``."""
        group = chat.kind == "group"
        return await self._hand_over(
            lambda: self.hub.push_event(
                self.bot_id,
                "template_card_event",
                userid=member,
                chatid=chat.chatid if group else None,
                event_key=event_key,
                task_id=task_id,
                card_type=card_type,
            )
        )

    async def _hand_over(self, push: Callable[[], Awaitable[str]]) -> Outcome:
        connection = self.connection()
        if connection is None:
            return _failed("not_connected", "the bot has no long connection to the robot")
        try:
            async with asyncio.timeout(self.wait):
                await connection.wait_subscribed()
        except TimeoutError:
            return _failed("not_connected", f"the bot's long connection is not up (waited {self.wait:.0f} s)")
        async with self._one_at_a_time:
            goal = connection.frames_taken + connection.unstored + 1  # frames are taken in the order they came
            try:
                await push()
            except (LookupError, ConnectionError, RuntimeError) as exc:
                return _failed("unreachable", f"{type(exc).__name__}: {exc}")
            try:
                async with asyncio.timeout(self.wait):
                    await connection.wait_taken(goal)
            except TimeoutError:
                return _failed("not_taken", f"the bot did not take the frame in within {self.wait:.0f} s")
        return Outcome(None, over="ws")


def _failed(code: str, message: str) -> Outcome:
    return Outcome(None, {"code": code, "message": message}, over="ws")
