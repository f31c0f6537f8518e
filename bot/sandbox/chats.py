"""The sandbox's chats and what happened in them.

:class:`Directory`: the chats the configuration implies. Each unit with a work group (``group.chatid`` or
``group.webhook_key``) is one group chat, "市容景观所工作群", whose members are the unit's members (head and deputies
included); each configured member has a private chat with the app. Keys are ``group:<UNIT>`` and ``user:<userid>``;
``system`` collects what fits no chat (a delivery to a chat the config does not know, demo notes when the office has
no group).

:class:`Feed`: the numbered items the page shows, in order: messages WeCom delivered (the fake's records), lines
members typed, system notes. Readers wait for items after a number (long polling) without polling: every new item
sets the event the waiters hold and replaces it with a fresh one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from secrets import token_hex
from typing import Any, Literal

from config.model import BotConfig
from config.vocabulary import ROLE_LABELS, Role

ChatKind = Literal["group", "single", "system"]
Who = Literal["bot", "member", "system"]
SYSTEM_CHAT = "system"


@dataclass(frozen=True, slots=True, kw_only=True)
class Chat:
    key: str
    kind: ChatKind
    title: str
    members: tuple[str, ...] = ()
    unit: str | None = None
    chatid: str | None = None  # the group's chatid in WeCom: app chats and robot callbacks carry it
    webhook_key: str | None = field(default=None, repr=False)

    def public(self, names: Mapping[str, str]) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "title": self.title,
            "unit": self.unit,
            "members": [{"userid": m, "name": names.get(m, m)} for m in self.members],
        }


class Directory:
    """The chats of a configuration, and look-ups from what WeCom deliveries name to chat keys."""

    def __init__(self, config: BotConfig) -> None:
        self.config = config
        self.names = {m.userid: m.name for m in config.members}
        chats: list[Chat] = []
        office = config.office.unit
        units = sorted(config.units, key=lambda u: u.code != office)  # the office's group first
        for unit in units:
            group = unit.group
            if not (group.chatid or group.webhook_key):
                continue
            members = tuple(dict.fromkeys([*unit.heads, *unit.members]))
            chats.append(
                Chat(
                    key=f"group:{unit.code}",
                    kind="group",
                    title=f"{unit.name}工作群",
                    members=members,
                    unit=unit.code,
                    # a webhook-only group has a chatid in WeCom too; the config just does not need it
                    chatid=group.chatid or f"sandbox{unit.code}",
                    webhook_key=group.webhook_key,
                )
            )
        for member in config.members:
            chats.append(Chat(key=f"user:{member.userid}", kind="single", title=member.name, members=(member.userid,)))
        chats.append(Chat(key=SYSTEM_CHAT, kind="system", title="沙箱通知"))
        self.chats = chats
        self._by_key = {c.key: c for c in chats}
        self._by_chatid = {c.chatid: c for c in chats if c.chatid}
        self._by_user = {m.userid.lower(): f"user:{m.userid}" for m in config.members}
        self._by_webhook: dict[str, list[str]] = {}
        for chat in chats:
            if chat.webhook_key:
                self._by_webhook.setdefault(chat.webhook_key, []).append(chat.key)

    def chat(self, key: object) -> Chat | None:
        return self._by_key.get(key) if isinstance(key, str) else None

    def groups(self) -> list[Chat]:
        return [c for c in self.chats if c.kind == "group"]

    @property
    def office_chat(self) -> str:
        """Where demo notes go: the office's work group, else the system chat."""
        key = f"group:{self.config.office.unit}"
        return key if key in self._by_key else SYSTEM_CHAT

    def roles(self, userid: str) -> list[str]:
        member = self.config.member(userid)
        labels = [ROLE_LABELS[Role(r)] for r in member.roles] if member else []
        if self.config.units_led_by(userid) and ROLE_LABELS[Role.UNIT_HEAD] not in labels:
            labels.insert(0, ROLE_LABELS[Role.UNIT_HEAD])
        return labels

    def user_chat(self, userid: object) -> str | None:
        return self._by_user.get(userid.lower()) if isinstance(userid, str) else None

    def group_chat(self, chatid: object) -> str | None:
        chat = self._by_chatid.get(chatid) if isinstance(chatid, str) else None
        return chat.key if chat else None

    def webhook_chats(self, key: object) -> list[str]:
        return list(self._by_webhook.get(key, [])) if isinstance(key, str) else []

    def public(self) -> list[dict[str, Any]]:
        out = []
        for chat in self.chats:
            data = chat.public(self.names)
            if chat.kind == "single":
                data["roles"] = self.roles(chat.members[0])
            out.append(data)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class CardInfo:
    """A card on the page that can be clicked: who sent it (app or robot), its task and its buttons."""

    source: Literal["app", "aibot"]
    task_id: str
    card_type: str
    buttons: Mapping[str, str]  # key -> text


@dataclass(slots=True, kw_only=True)
class Item:
    id: int
    chat: str
    at: datetime
    who: Who
    html: str = ""
    text: str = ""  # plain text: a system note, or the chat list's preview
    via: str | None = None  # the WeCom surface: app, appchat, webhook, response_url, passive, update_card …
    msgtype: str | None = None
    member: str | None = None
    name: str | None = None
    level: Literal["info", "ok", "error"] = "info"
    raw: str | None = None  # the delivered body as JSON, for "原始消息"
    replaces: int | None = None  # a card update: the item it changes
    card: CardInfo | None = None  # set while its buttons can be clicked
    task: tuple[str, str] | None = None  # a card's (source, task_id), to find it when it is updated
    body: Mapping[str, Any] | None = field(default=None, repr=False)  # kept to re-render a card

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chat": self.chat,
            "at": self.at.isoformat(),
            "who": self.who,
            "html": self.html,
            "text": self.text,
            "via": self.via,
            "msgtype": self.msgtype,
            "member": self.member,
            "name": self.name,
            "level": self.level,
            "raw": self.raw,
            "replaces": self.replaces,
            "clickable": self.card is not None and bool(self.card.buttons),
        }


class Feed:
    """Numbered items, the newest ``keep`` of them, and waiting for new ones."""

    def __init__(self, keep: int = 2000) -> None:
        self.epoch = token_hex(4)  # a page from an earlier start of the bot reloads instead of mixing numbers
        self._items: deque[Item] = deque(maxlen=keep)
        self._next = 1
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def last(self) -> int:
        return self._next - 1

    def add(self, chat: str, at: datetime, who: Who, **fields: Any) -> Item:
        item = Item(id=self._next, chat=chat, at=at, who=who, **fields)
        self._next += 1
        self._items.append(item)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return item

    def get(self, item_id: object) -> Item | None:
        if not isinstance(item_id, int) or isinstance(item_id, bool) or not self._items:
            return None
        index = item_id - self._items[0].id
        if 0 <= index < len(self._items):
            return self._items[index]
        return None

    def items(self) -> list[Item]:
        return list(self._items)

    def after(self, item_id: int) -> list[Item]:
        if not self._items or item_id >= self.last:
            return []
        start = max(0, item_id + 1 - self._items[0].id)
        return list(self._items)[start:]

    def find(self, chats: Iterable[str] | None, predicate: Any) -> list[Item]:
        wanted = set(chats) if chats is not None else None
        return [i for i in self._items if (wanted is None or i.chat in wanted) and predicate(i)]

    async def wait_after(self, item_id: int, within: float) -> list[Item]:
        """Items after ``item_id``; when there are none yet, waits up to ``within`` seconds for some."""
        try:
            async with asyncio.timeout(max(0.0, within)):
                while not (items := self.after(item_id)) and not self._closed:
                    await self._changed.wait()
                return items
        except TimeoutError:
            return self.after(item_id)

    def close(self) -> None:
        """Wakes every waiter (shutdown): they answer at once with what there is."""
        self._closed = True
        self._changed.set()
