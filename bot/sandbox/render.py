"""WeCom messages as the sandbox page shows them: safe HTML fragments, rendered here rather than in the browser.

Everything that came from a message is escaped with :func:`html.escape`; the only markup produced is the small set
of tags written below, with attributes that are either fixed, from a whitelist (``<font color>``: info, comment,
warning) or escaped URLs of scheme http/https. So a delivered ``<script>`` is shown as text, never run, and the page
can insert the fragments as they are. Rendering here also keeps it testable with pytest.

Covered: text (with the webhook's ``mentioned_list``), markdown and markdown_v2 as WeCom documents them (headings,
bold, links, inline code, quotes, lists, ``<font color>``, ``<@userid>`` mentions, code blocks, tables shown as
rows), textcard (its ``<div class="gray|normal|highlight">`` description), news, template_card (titles, key/value
rows, quotes, jump links, buttons) and media: an image inline (a ``data:`` URL of a PNG or JPG the fake received) and
a file as a download link with its name, where the bytes are given; a short label otherwise. Anything else is shown
as escaped JSON.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from html import escape
from typing import Any

Names = Mapping[str, str]  # userid -> display name

_FONT_COLORS = frozenset({"info", "comment", "warning"})
_INLINE = re.compile(
    r'<font\s+color=["\']?(?P<color>\w+)["\']?\s*>(?P<font>.*?)</font>'
    r"|\*\*(?P<bold>.+?)\*\*"
    r"|\[(?P<label>[^\]\n]+)\]\((?P<url>[^)\s]+)\)"
    r"|`(?P<code>[^`\n]+)`"
    r"|<@(?P<mention>[^<>\s]+)>",
    re.S,
)
_TEXTCARD_DIV = re.compile(r'<div\s+class=["\']?(gray|normal|highlight)["\']?\s*>(.*?)</div>', re.S | re.I)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")
_MEDIA_LABELS = {
    "image": "[图片]",
    "voice": "[语音]",
    "video": "[视频]",
    "file": "[文件]",
    "mpnews": "[图文]",
    "miniprogram_notice": "[小程序通知]",
}
MAX_RAW = 4000  # characters of a body's JSON shown under "原始消息"
MAX_INLINE_MEDIA = 5 * 1024 * 1024  # bytes of an image or file put into the page as a data: URL; larger: a label
Media = tuple[str, bytes]  # (filename, bytes) of an image or file message


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def safe_url(url: object) -> str | None:
    """``url`` escaped for an ``href``, or None unless it is http(s)."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not re.match(r"(?i)^https?://[^\s<>\"']+$", url):
        return None
    return esc(url)


def _link(label_html: str, url: object) -> str:
    href = safe_url(url)
    if href is None:
        return label_html
    return f'<a href="{href}" target="_blank" rel="noopener noreferrer">{label_html}</a>'


def _mention(userid: str, names: Names) -> str:
    if userid.lower() in ("all", "@all"):
        return '<span class="mention">@所有人</span>'
    return f'<span class="mention">@{esc(names.get(userid, userid))}</span>'


def inline(text: str, names: Names) -> str:
    """One line of WeCom markdown, inline elements only."""
    out: list[str] = []
    pos = 0
    for match in _INLINE.finditer(text):
        out.append(esc(text[pos : match.start()]))
        pos = match.end()
        if match.group("font") is not None:
            color = match.group("color").lower()
            inner = inline(match.group("font"), names)
            out.append(f'<span class="font-{color}">{inner}</span>' if color in _FONT_COLORS else inner)
        elif match.group("bold") is not None:
            out.append(f"<strong>{inline(match.group('bold'), names)}</strong>")
        elif match.group("label") is not None:
            out.append(_link(inline(match.group("label"), names), match.group("url")))
        elif match.group("code") is not None:
            out.append(f"<code>{esc(match.group('code'))}</code>")
        else:
            out.append(_mention(match.group("mention"), names))
    out.append(esc(text[pos:]))
    return "".join(out)


def markdown(text: str, names: Names) -> str:
    """WeCom's markdown (and markdown_v2) as HTML: block elements line by line, inline elements by :func:`inline`."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            blocks.append("<p>" + "<br>".join(paragraph) + "</p>")
            paragraph.clear()
        if items:
            blocks.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.replace("\r\n", "\n").split("\n"):
        if code is not None:
            if line.strip().startswith("```"):
                blocks.append("<pre>" + esc("\n".join(code)) + "</pre>")
                code = None
            else:
                code.append(line)
            continue
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            code = []
        elif heading := re.match(r"^(#{1,6})\s+(.*)$", stripped):
            flush()
            level = len(heading.group(1))
            blocks.append(f'<div class="md-h md-h{level}">{inline(heading.group(2), names)}</div>')
        elif stripped.startswith(">"):
            flush()
            blocks.append(f"<blockquote>{inline(stripped.lstrip('>').strip(), names)}</blockquote>")
        elif re.fullmatch(r"-{3,}|\*{3,}", stripped):
            flush()
            blocks.append("<hr>")
        elif item := _LIST_ITEM.match(line):
            if paragraph:
                flush()
            items.append(inline(item.group(1), names))
        elif not stripped:
            flush()
        else:
            if items:
                flush()
            paragraph.append(inline(stripped, names))
    if code is not None:
        blocks.append("<pre>" + esc("\n".join(code)) + "</pre>")
    flush()
    return "".join(blocks)


def plain(text: str) -> str:
    """Text as typed: escaped, line breaks kept."""
    return esc(text).replace("\n", "<br>")


def _text(section: Mapping[str, Any], names: Names) -> str:
    body = plain(str(section.get("content", "")))
    mentions = [m for m in section.get("mentioned_list") or [] if isinstance(m, str)]
    mobiles = [m for m in section.get("mentioned_mobile_list") or [] if isinstance(m, str)]
    tags = [_mention(m, names) for m in mentions] + [f'<span class="mention">@{esc(m)}</span>' for m in mobiles]
    return body + (f'<div class="mentions">{" ".join(tags)}</div>' if tags else "")


def _textcard(section: Mapping[str, Any], names: Names) -> str:
    description = str(section.get("description", ""))
    parts: list[str] = []
    pos = 0
    for match in _TEXTCARD_DIV.finditer(description):
        if description[pos : match.start()].strip():
            parts.append(f"<div>{plain(description[pos : match.start()].strip())}</div>")
        parts.append(f'<div class="tc-{match.group(1).lower()}">{plain(match.group(2))}</div>')
        pos = match.end()
    if description[pos:].strip():
        parts.append(f"<div>{plain(description[pos:].strip())}</div>")
    button = esc(section.get("btntxt") or "详情")
    link = _link(button, section.get("url"))
    return (
        '<div class="textcard">'
        f'<div class="tc-title">{esc(section.get("title", ""))}</div>'
        f'<div class="tc-body">{"".join(parts)}</div>'
        f'<div class="tc-link">{link}</div>'
        "</div>"
    )


def _news(section: Mapping[str, Any], names: Names) -> str:
    rows = []
    for article in section.get("articles") or []:
        if not isinstance(article, Mapping):
            continue
        title = _link(esc(article.get("title", "")), article.get("url"))
        desc = article.get("description")
        rows.append(
            f'<div class="news-item"><div class="news-title">{title}</div>'
            + (f'<div class="news-desc">{plain(str(desc))}</div>' if desc else "")
            + "</div>"
        )
    return '<div class="news">' + "".join(rows) + "</div>"


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def card_buttons(card: Mapping[str, Any]) -> dict[str, str]:
    """A button_interaction card's buttons, key -> text (what a click may send)."""
    if card.get("card_type") != "button_interaction":
        return {}
    buttons = card.get("button_list")
    if not isinstance(buttons, list):
        return {}
    return {
        b["key"]: _str(b.get("text")) or b["key"]
        for b in buttons
        if isinstance(b, Mapping) and isinstance(b.get("key"), str) and b["key"]
    }


def template_card(card: Mapping[str, Any], names: Names, *, replaced: str | None = None, clickable: bool = True) -> str:
    """A template card. ``replaced``: the buttons were greyed out with this text (``update_button``)."""
    out = ['<div class="card">']
    source = card.get("source")
    if isinstance(source, Mapping) and source.get("desc"):
        out.append(f'<div class="card-source">{esc(source["desc"])}</div>')
    main = card.get("main_title")
    if isinstance(main, Mapping):
        if main.get("title"):
            out.append(f'<div class="card-title">{esc(main["title"])}</div>')
        if main.get("desc"):
            out.append(f'<div class="card-desc">{esc(main["desc"])}</div>')
    emphasis = card.get("emphasis_content")
    if isinstance(emphasis, Mapping) and (emphasis.get("title") or emphasis.get("desc")):
        out.append(
            '<div class="card-emphasis">'
            f'<div class="card-emphasis-title">{esc(emphasis.get("title", ""))}</div>'
            f'<div class="card-desc">{esc(emphasis.get("desc", ""))}</div></div>'
        )
    quote = card.get("quote_area")
    if isinstance(quote, Mapping) and (quote.get("title") or quote.get("quote_text")):
        out.append(
            f'<div class="card-quote"><div>{esc(quote.get("title", ""))}</div>'
            f"<div>{plain(_str(quote.get('quote_text')))}</div></div>"
        )
    if card.get("sub_title_text"):
        out.append(f'<div class="card-sub">{plain(_str(card["sub_title_text"]))}</div>')
    rows = card.get("horizontal_content_list")
    if isinstance(rows, list) and rows:
        out.append('<div class="card-rows">')
        for row in rows:
            if not isinstance(row, Mapping):
                continue
            value = esc(row.get("value", ""))
            if row.get("type") == 1:
                value = _link(value, row.get("url"))
            elif row.get("type") == 3 and row.get("userid"):
                value = _mention(str(row["userid"]), names)
            out.append(f'<div class="card-row"><span class="k">{esc(row.get("keyname", ""))}</span>{value}</div>')
        out.append("</div>")
    jumps = card.get("jump_list")
    if isinstance(jumps, list) and jumps:
        links = [_link(esc(j.get("title", "")), j.get("url")) for j in jumps if isinstance(j, Mapping)]
        out.append('<div class="card-jumps">' + " ".join(links) + "</div>")
    card_type = _str(card.get("card_type"))
    buttons = card_buttons(card)
    if replaced is not None:
        out.append(f'<div class="card-buttons"><button class="card-btn" disabled>{esc(replaced)}</button></div>')
    elif buttons:
        styles = {b.get("key"): b.get("style") for b in card.get("button_list") or [] if isinstance(b, Mapping)}
        out.append('<div class="card-buttons">')
        for key, label in buttons.items():
            style = styles.get(key)
            css = f" style-{int(style)}" if isinstance(style, int) and 1 <= style <= 4 else ""
            disabled = "" if clickable else " disabled"
            out.append(f'<button class="card-btn{css}" data-key="{esc(key)}"{disabled}>{esc(label)}</button>')
        out.append("</div>")
    elif card_type in ("vote_interaction", "multiple_interaction"):
        out.append('<div class="card-note">（投票/多选卡片：沙箱只展示，不能提交）</div>')
    out.append("</div>")
    return "".join(out)


def _media(msgtype: str) -> Callable[[Mapping[str, Any], Names], str]:
    def render(section: Mapping[str, Any], _names: Names) -> str:
        return f'<span class="media">{_MEDIA_LABELS.get(msgtype, msgtype)}</span>'

    return render


def _markdown(section: Mapping[str, Any], names: Names) -> str:
    return markdown(str(section.get("content", "")), names)


def _card(section: Mapping[str, Any], names: Names) -> str:
    return template_card(section, names)


def _stream(section: Mapping[str, Any], names: Names) -> str:
    return markdown(str(section.get("content", "")), names)


_RENDERERS: dict[str, Callable[[Mapping[str, Any], Names], str]] = {
    "text": _text,
    "markdown": _markdown,
    "markdown_v2": _markdown,
    "textcard": _textcard,
    "news": _news,
    "template_card": _card,
    "stream": _stream,
    **{kind: _media(kind) for kind in _MEDIA_LABELS},
}


def section_of(msgtype: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
    section = body.get(msgtype)
    return section if isinstance(section, Mapping) else {}


def attachment(msgtype: str, media: Media) -> str | None:
    """An image (PNG or JPG) as an inline ``<img>``, a file as a download link with its name, from the bytes the
    fake received; None for anything else."""
    filename, data = media
    if len(data) > MAX_INLINE_MEDIA:
        return None
    encoded = base64.b64encode(data).decode("ascii")
    if msgtype == "image":
        mime = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg" if data.startswith(b"\xff\xd8") else None
        if mime is None:
            return None
        return f'<img class="media-img" alt="{esc(filename or "图片")}" src="data:{mime};base64,{encoded}">'
    if msgtype == "file":
        name = esc(filename or "文件")
        return (
            f'<a class="media-file" download="{name}" href="data:application/octet-stream;base64,{encoded}">'
            f"📎 {name}</a>"
        )
    return None


def message(msgtype: str, body: Mapping[str, Any], names: Names, media: Media | None = None) -> str:
    """A delivered message body (``{"msgtype": t, t: {...}}``) as HTML; ``media``: the bytes of an image or file."""
    if media is not None and (shown := attachment(msgtype, media)) is not None:
        return shown
    renderer = _RENDERERS.get(msgtype)
    if renderer is None:
        return f'<div class="unknown">[{esc(msgtype)}]</div><pre class="raw">{esc(raw_json(body))}</pre>'
    return renderer(section_of(msgtype, body), names)


def preview(msgtype: str, body: Mapping[str, Any], filename: str = "") -> str:
    """One line of plain text for the chat list (the page sets it as text, not HTML)."""
    section = section_of(msgtype, body)
    if msgtype in ("text", "markdown", "markdown_v2", "stream"):
        text = re.sub(r"<[^>]*>|[#*`>]", "", str(section.get("content", "")))
    elif msgtype == "textcard":
        text = f"[卡片] {section.get('title', '')}"
    elif msgtype == "template_card":
        main = section.get("main_title")
        title = main.get("title", "") if isinstance(main, Mapping) else ""
        text = f"[卡片] {title}"
    elif msgtype == "news":
        articles = section.get("articles") or [{}]
        first = articles[0] if isinstance(articles[0], Mapping) else {}
        text = f"[图文] {first.get('title', '')}"
    elif msgtype == "file" and filename:
        text = f"[文件] {filename}"
    else:
        text = _MEDIA_LABELS.get(msgtype, f"[{msgtype}]")
    return " ".join(text.split())[:80]


def raw_json(body: Mapping[str, Any]) -> str:
    """The body as indented JSON for "原始消息", long strings (base64 images) cut short."""

    def cut(value: Any) -> Any:
        if isinstance(value, str) and len(value) > 300:
            return value[:300] + f"…（共 {len(value)} 字符）"
        if isinstance(value, Mapping):
            return {k: cut(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cut(v) for v in value]
        return value

    text = json.dumps(cut(body), ensure_ascii=False, indent=2, default=str)
    return text if len(text) <= MAX_RAW else text[:MAX_RAW] + "\n…"
