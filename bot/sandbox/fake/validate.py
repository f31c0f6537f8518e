"""Message bodies as WeCom checks them, per surface: app messages, group chats, robot webhooks, robot replies.

Limits from the pages of each API: text 2048 bytes everywhere (90236, 90248, 99110); markdown 2048 bytes from an
app (90236, 90248), 4096 on a webhook (99110); news 1-8 articles; template cards (90236, 99110, 94888).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from bot.sandbox.fake import errors as E
from bot.sandbox.fake.errors import ApiError

TEXT_MAX = 2048
APP_MARKDOWN_MAX = 2048
WEBHOOK_MARKDOWN_MAX = 4096
WEBHOOK_MARKDOWN_V2_MAX = 4096  # (?) the page gives markdown's 4096; assumed the same for markdown_v2
AIBOT_MARKDOWN_MAX = 20480  # (?) not stated on page 101138; the stream reply's 20480-byte bound is assumed
MAX_ARTICLES = 8
MAX_BUTTONS = 6
TASK_ID = re.compile(r"[0-9A-Za-z_\-@]{1,128}")  # 数字、字母和“_-@”, at most 128 bytes, unique per app

NOTICE_CARDS = frozenset({"text_notice", "news_notice"})
INTERACTIVE_CARDS = frozenset({"button_interaction", "vote_interaction", "multiple_interaction"})
ALL_CARDS = NOTICE_CARDS | INTERACTIVE_CARDS

Rule = Callable[[dict[str, Any]], None]


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and value.strip() != ""


def content(section: dict[str, Any], limit: int) -> None:
    text = section.get("content")
    if not isinstance(text, str) or text == "":
        raise ApiError(E.CONTENT_EMPTY)
    size = len(text.encode("utf-8"))
    if size > limit:
        raise ApiError(E.CONTENT_TOO_LONG, f"content is {size} bytes, the limit is {limit}")


def textcard(section: dict[str, Any]) -> None:
    if not _nonempty_str(section.get("title")):
        raise ApiError(E.TITLE_MISSING)
    if not _nonempty_str(section.get("description")):
        raise ApiError(E.DESCRIPTION_MISSING)
    if not _nonempty_str(section.get("url")):
        raise ApiError(E.URL_MISSING)


def media_id(section: dict[str, Any]) -> None:
    if not _nonempty_str(section.get("media_id")):
        raise ApiError(E.MEDIA_ID_MISSING)


def articles(section: dict[str, Any], *, require_url: bool) -> None:
    items = section.get("articles")
    if not isinstance(items, list) or not items:
        raise ApiError(E.INVALID_PARAMETER, "articles must be a non-empty list")
    if len(items) > MAX_ARTICLES:
        raise ApiError(E.TOO_MANY_ARTICLES, f"{len(items)} articles, at most {MAX_ARTICLES}")
    for item in items:
        if not isinstance(item, dict) or not _nonempty_str(item.get("title")):
            raise ApiError(E.TITLE_MISSING)
        if require_url and not _nonempty_str(item.get("url")):
            raise ApiError(E.URL_MISSING)


def mpnews(section: dict[str, Any]) -> None:
    articles(section, require_url=False)
    for item in section["articles"]:
        if not _nonempty_str(item.get("thumb_media_id")):
            raise ApiError(E.MEDIA_ID_MISSING)
        if not _nonempty_str(item.get("content")):
            raise ApiError(E.CONTENT_EMPTY)


def template_card(card: dict[str, Any], allowed: frozenset[str] = ALL_CARDS) -> str:
    """The card's type, once the card passes; notices need a ``card_action``, interactive cards a ``task_id``."""
    card_type = card.get("card_type")
    if not isinstance(card_type, str) or card_type not in allowed:
        raise ApiError(E.CARD_TYPE_INVALID, f"card_type must be one of {', '.join(sorted(allowed))}")
    if card_type in NOTICE_CARDS:
        action = card.get("card_action")
        if not isinstance(action, dict) or action.get("type") not in (1, 2):
            raise ApiError(E.CARD_ACTION_INVALID)
        if action["type"] == 1 and not _nonempty_str(action.get("url")):
            raise ApiError(E.CARD_URL_MISSING)
        if action["type"] == 2 and not _nonempty_str(action.get("appid")):
            raise ApiError(E.CARD_APPID_MISSING)
    if card_type in INTERACTIVE_CARDS:
        task_id = card.get("task_id")
        if not isinstance(task_id, str) or not TASK_ID.fullmatch(task_id):
            raise ApiError(E.TASK_ID_INVALID)
    if card_type == "button_interaction":
        buttons = card.get("button_list")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
            raise ApiError(E.INVALID_PARAMETER, f"button_list needs 1 to {MAX_BUTTONS} buttons")
        for button in buttons:
            if not isinstance(button, dict) or not _nonempty_str(button.get("text")):
                raise ApiError(E.CARD_BUTTON_TEXT)
            if not _nonempty_str(button.get("key")):
                raise ApiError(E.CARD_BUTTON_KEY)
    if card_type in ("vote_interaction", "multiple_interaction"):
        submit = card.get("submit_button")
        if not isinstance(submit, dict) or not _nonempty_str(submit.get("key")):
            raise ApiError(E.CARD_SUBMIT_KEY)
    return card_type


def _card_rule(allowed: frozenset[str]) -> Rule:
    def rule(section: dict[str, Any]) -> None:
        template_card(section, allowed)

    return rule


def _nothing(section: dict[str, Any]) -> None:
    """Checked by the handler, which knows more (the robot's uploads, the image bytes)."""


APP_MESSAGES: Mapping[str, Rule] = {
    "text": partial(content, limit=TEXT_MAX),
    "markdown": partial(content, limit=APP_MARKDOWN_MAX),
    "textcard": textcard,
    "template_card": _card_rule(ALL_CARDS),
    "image": media_id,
    "voice": media_id,
    "video": media_id,
    "file": media_id,
    "news": partial(articles, require_url=False),
    "mpnews": mpnews,
}
APPCHAT_MESSAGES: Mapping[str, Rule] = {k: v for k, v in APP_MESSAGES.items() if k != "template_card"}
WEBHOOK_MESSAGES: Mapping[str, Rule] = {
    "text": partial(content, limit=TEXT_MAX),
    "markdown": partial(content, limit=WEBHOOK_MARKDOWN_MAX),
    "markdown_v2": partial(content, limit=WEBHOOK_MARKDOWN_V2_MAX),
    "image": _nothing,
    "news": partial(articles, require_url=True),
    "file": media_id,
    "voice": media_id,
    "template_card": _card_rule(NOTICE_CARDS),
}
AIBOT_REPLIES: Mapping[str, Rule] = {
    "markdown": partial(content, limit=AIBOT_MARKDOWN_MAX),
    "template_card": _card_rule(ALL_CARDS),
}


def message(body: dict[str, Any], rules: Mapping[str, Rule]) -> tuple[str, dict[str, Any]]:
    """``msgtype`` and its section, once they pass ``rules``: 40008 for a type this surface does not take."""
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in rules:
        raise ApiError(E.INVALID_MSGTYPE)
    section = body.get(msgtype)
    if not isinstance(section, dict):
        if msgtype in ("text", "markdown", "markdown_v2"):
            raise ApiError(E.CONTENT_EMPTY)
        raise ApiError(E.INVALID_PARAMETER, f"{msgtype} missing")
    rules[msgtype](section)
    return msgtype, section
