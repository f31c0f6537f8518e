"""What the sandbox's fake WeCom records, as the page's chat items: each message delivered (or silently dropped)
in the chats it reached, rendered, and cards that change in place."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.domain.clock import Clock
from bot.sandbox import render
from bot.sandbox.chats import SYSTEM_CHAT, CardInfo, Directory, Feed, Item
from bot.sandbox.fake import Delivered

VIA_LABELS = {
    "app": "应用消息",
    "appchat": "应用群聊消息",
    "webhook": "群机器人推送",
    "response_url": "智能机器人回复",
    "passive": "被动回复",
    "update_card": "卡片更新",
    "aibot_send": "智能机器人推送（长连接）",
    "aibot_respond": "智能机器人回复（长连接）",
    "aibot_welcome": "智能机器人欢迎语",
    "aibot_update_card": "卡片更新（长连接）",
}
CARD_UPDATES = ("update_card", "aibot_update_card")


class Records:
    """Turns the fake's records into items of ``feed``."""

    def __init__(self, directory: Directory, feed: Feed, clock: Clock) -> None:
        self.directory = directory
        self.names = directory.names
        self.feed = feed
        self.clock = clock
        # the fake's uploads, for an image or file message's bytes (set once the fake exists)
        self.media_of: Callable[[Delivered], render.Media | None] = lambda _record: None

    def recorded(self, record: Delivered, dropped: str | None) -> None:
        if record.kind in CARD_UPDATES and dropped is None:
            self._card_update(record)
            return
        body = record.body if isinstance(record.body, Mapping) else {}
        via = VIA_LABELS.get(record.kind, record.kind)
        for chat in self._chats_of(record):
            if dropped is not None:
                who = f"（{record.to.get('userid')}）" if record.to.get("userid") else ""
                text = f"企业微信静默丢弃了一条{via}{who}：{dropped}。「{render.preview(record.msgtype, body)}」"
                self.feed.add(chat, record.at, "system", text=text, level="error")
                continue
            card = self._card_info(record, body)
            media = self.media_of(record)
            self.feed.add(
                chat,
                record.at,
                "bot",
                html=render.message(record.msgtype, body, self.names, media),
                text=render.preview(record.msgtype, body, media[0] if media else ""),
                via=record.kind,
                msgtype=record.msgtype,
                raw=render.raw_json(body),
                card=card,
                task=(card.source, card.task_id) if card else task_of(record, body),
                body=body,
            )

    def _chats_of(self, record: Delivered) -> list[str]:
        to = record.to
        named = to.get("chat")
        if isinstance(named, str) and self.directory.chat(named) is not None:
            return [named]
        chats: list[str] = []
        if record.kind == "webhook":
            chats = self.directory.webhook_chats(to.get("webhook_key"))
        elif to.get("chatid"):  # a group's chatid, or a userid: the robot's 1:1 chat (long connection)
            chatid = to.get("chatid")
            chats = [c for c in [self.directory.group_chat(chatid) or self.directory.user_chat(chatid)] if c]
        elif to.get("touser") or to.get("userid"):
            chats = [c for c in [self.directory.user_chat(to.get("touser") or to.get("userid"))] if c]
        return chats or [SYSTEM_CHAT]

    @staticmethod
    def _card_info(record: Delivered, body: Mapping[str, Any]) -> CardInfo | None:
        if record.msgtype != "template_card" or record.kind in ("webhook", *CARD_UPDATES):
            return None
        # app messages are the app's cards; robot replies (response_url, long connection) the robot's; a passive
        # reply says whose callback it answered
        source = "app" if record.kind == "app" else record.to.get("source", "aibot")
        return card_info(body.get("template_card"), source)

    def _card_update(self, record: Delivered) -> None:
        """A card changed for those who have it: the app's by ``message/update_template_card`` (in the chats of
        ``userids``; all, without), the robot's by ``aibot_respond_update_msg`` (in the chat it was clicked in, for
        everyone there: WeCom's ``userids`` narrows it to some members, which one page cannot show)."""
        chats: list[str] | None
        if record.kind == "aibot_update_card":
            card = record.body.get("template_card") if isinstance(record.body, Mapping) else None
            task_id = card.get("task_id") if isinstance(card, Mapping) else None
            source = "aibot"
            chats = self._chats_of(record)
        else:
            task_id = record.to.get("task_id")
            source = "app"
            userids = record.to.get("userids") or []
            chats = [c for c in (self.directory.user_chat(u) for u in userids) if c] if userids else None
        originals = self.feed.find(
            chats,
            lambda i: i.replaces is None and i.task == (source, task_id),
        )
        if not originals:
            text = f"卡片更新（task_id {task_id}）：找不到原卡片"
            self.feed.add(SYSTEM_CHAT, self.clock.now(), "system", text=text, level="info")
            return
        for item in originals:
            self.update_card(item, record.msgtype, record.body, at=record.at, via=record.kind)

    def update_card(
        self, item: Item, msgtype: str, body: Mapping[str, Any], *, at: Any = None, via: str = "update_card"
    ) -> None:
        """Changes a card on the page: greyed-out buttons (``update_button``) or a whole new card."""
        old = item.body.get("template_card") if item.body else None
        if msgtype == "update_button":
            button = body.get("button")
            replace = button.get("replace_name") if isinstance(button, Mapping) else None
            if not isinstance(old, Mapping):
                return
            item.html = render.template_card(old, self.names, replaced=str(replace or "已处理"))
            item.card = None
        else:
            new = body.get("template_card")
            if not isinstance(new, Mapping):
                return
            source = item.card.source if item.card else ("app" if via == "update_card" else "aibot")
            item.html = render.template_card(new, self.names)
            item.card = card_info(new, source)
            item.body = {"msgtype": "template_card", "template_card": dict(new)}
        self.feed.add(
            item.chat,
            at or self.clock.now(),
            "bot",
            html=item.html,
            text="卡片已更新",
            via=via,
            msgtype=msgtype,
            raw=render.raw_json(body),
            replaces=item.id,
        )


def card_info(card: object, source: object) -> CardInfo | None:
    """A clickable card (button_interaction with a task id), or None."""
    if not isinstance(card, Mapping) or source not in ("app", "aibot"):
        return None
    buttons = render.card_buttons(card)
    task_id = card.get("task_id")
    if not buttons or not isinstance(task_id, str) or not task_id:
        return None
    return CardInfo(
        source="app" if source == "app" else "aibot",
        task_id=task_id,
        card_type=str(card.get("card_type")),
        buttons=buttons,
    )


def task_of(record: Delivered, body: Mapping[str, Any]) -> tuple[str, str] | None:
    """A card without clickable buttons still has a task id by which later updates find it."""
    card = body.get("template_card")
    if record.msgtype != "template_card" or not isinstance(card, Mapping) or not isinstance(card.get("task_id"), str):
        return None
    return ("app" if record.kind == "app" else "aibot", card["task_id"])
