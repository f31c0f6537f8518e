"""The visible mark on a message sent again after a send whose fate is unknown (:mod:`notifiers.outbox`).

A group chat (the app's chats, the robot webhook, the intelligent robot's proactive send) has no duplicate check: a
message whose first send did arrive would show twice. Sent again, it carries ``【补发】`` before its title, the rest
unchanged (the same ticket number), so that members read the copy as a copy. The mark goes where WeCom shows the
title: at the head of a text or markdown message (inside its leading bold, when it opens with one, as the bot's
pushes do), on a card's main title, on a news message's first article. A message without text (an image, a file)
is sent unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RESEND_MARK = "【补发】"
_BOLD = "**"


def _marked_text(text: str) -> str:
    if text.startswith(_BOLD):
        return f"{_BOLD}{RESEND_MARK}{text[len(_BOLD) :]}"
    return f"{RESEND_MARK}{text}"


def marked(msgtype: str, content: Mapping[str, Any]) -> dict[str, Any]:
    """``content`` (the section of a ``msgtype`` message) with the resend mark before its title."""
    section = dict(content)
    if msgtype in ("text", "markdown", "markdown_v2") and isinstance(section.get("content"), str):
        section["content"] = _marked_text(section["content"])
    elif msgtype == "template_card":
        title = section.get("main_title")
        if isinstance(title, Mapping) and isinstance(title.get("title"), str):
            section["main_title"] = {**title, "title": RESEND_MARK + title["title"]}
        else:
            section["main_title"] = {**(title if isinstance(title, Mapping) else {}), "title": RESEND_MARK}
    elif msgtype == "textcard" and isinstance(section.get("title"), str):
        section["title"] = RESEND_MARK + section["title"]
    elif msgtype == "news" and isinstance(section.get("articles"), list) and section["articles"]:
        first, *rest = section["articles"]
        if isinstance(first, Mapping) and isinstance(first.get("title"), str):
            section["articles"] = [{**first, "title": RESEND_MARK + first["title"]}, *rest]
    return section
