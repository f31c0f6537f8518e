"""Text that the bot did not write (the platform's titles and contents, members' reasons, results and notes, names
members typed), made inert before it goes into a message the bot signs: no link, no @-mention, no formatting.

WeCom interprets, depending on the message:

* markdown (the app's ``markdown``, the group robot's webhook ``markdown``, the intelligent robot's replies and
  proactive messages): headings ``#``, bold ``**``, links ``[..](..)``, inline code and code blocks with backticks,
  quotes ``>``, ``<font color=…>``, ``<@userid>`` mentions (``<@all>`` too); the robot's markdown also italics,
  lists, rules ``---``, images ``![](..)``, tables ``|`` and strikethrough ``~~``;
* the app's ``text`` message: ``<a href="…">`` links;
* text, cards and markdown alike: ``$userName=…$`` id translation where a message asks for it, and the clients
  turn bare addresses (``http://…``, ``www.…``) into links.

WeCom documents no backslash escape, and a backslash would not stop ``<@userid>`` or ``<font>`` anyway. So the
characters that start these are replaced by their full-width look-alikes, which a Chinese reader meets every day
and reads as the same text (``＜＞［］＊＿｀～＃｜＼＆＄``); a scheme's ``://`` becomes ``：//`` and ``www.``
becomes ``www．``; a line that would start a list, a rule or a heading starts with the full-width sign instead
(``－``, ``＋``, ``＝``, ``1．``) and loses its indentation; bidirectional controls (which can make text read backwards)
are dropped. Digits, dates, amounts, Chinese punctuation (《》（）：，。) and letters stay as they are.

Escape after masking (:mod:`bot.domain.masking`; :func:`group_text` does both for a ticket's text): a masked phone
number reads ``138＊＊＊＊5678``, whose stars can no longer pair with another masked number's into bold.
"""

from __future__ import annotations

import re

from bot.domain.masking import Citizen, NamesCitizen, mask_text

_LOOKALIKE = str.maketrans(
    {
        "<": "＜",
        ">": "＞",
        "[": "［",
        "]": "］",
        "*": "＊",
        "_": "＿",
        "`": "｀",
        "~": "～",
        "#": "＃",
        "|": "｜",
        "\\": "＼",
        "&": "＆",
        "$": "＄",
        # bidirectional embeddings, overrides and isolates: never needed in Chinese text
        **dict.fromkeys(map(chr, (*range(0x202A, 0x202F), *range(0x2066, 0x206A))), None),
    }
)
_SCHEME = re.compile(r"(?<=[A-Za-z0-9])://")
_WWW = re.compile(r"(?i)(?<![A-Za-z0-9])(www)\.")
# at a line's start: indentation (a code block), "-", "+", "=" (lists, rules, setext headings), "1." / "1)" (lists)
_LINE_START = re.compile(r"^[ \t]*(?:([-+=])|(\d{1,9})([.)])(?=[ \t]|$))?", re.M)
_WIDE_SIGNS = {"-": "－", "+": "＋", "=": "＝", ".": "．", ")": "）"}


def _line_start(match: re.Match[str]) -> str:
    sign, number, after = match.group(1), match.group(2), match.group(3)
    if sign:
        return _WIDE_SIGNS[sign]
    if number:
        return number + _WIDE_SIGNS[after]
    return ""


def escape_md(text: str) -> str:
    """``text`` with nothing WeCom would interpret: see the module's docstring. Ordinary Chinese text is returned
    unchanged."""
    text = text.translate(_LOOKALIKE)
    text = _SCHEME.sub("：//", text)
    text = _WWW.sub(r"\1．", text)
    return _LINE_START.sub(_line_start, text)


def group_text(text: object, ticket: NamesCitizen) -> str:
    """A ticket's text as a group may read it on one line: whitespace collapsed, the citizen masked
    (:func:`bot.domain.masking.mask_text` with the ticket's :class:`~bot.domain.masking.Citizen`), then escaped."""
    return escape_md(mask_text(" ".join(str(text or "").split()), Citizen.of(ticket)))


def echo(text: str) -> str:
    """What a member typed, said back in a chat the group reads (an unknown command, ticket number, member or unit):
    whitespace collapsed, masked (:func:`~bot.domain.masking.mask_text`: a phone number or name typed by mistake),
    then escaped."""
    return escape_md(mask_text(" ".join(text.split())))
