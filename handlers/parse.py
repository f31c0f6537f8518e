"""Chat text → a command and its arguments, by the command specs (:mod:`handlers.commands`).

What arrives is what the transport left: in a group the robot's own ``@Name`` is already gone ("@robot 接单 0123"
arrives as "接单 0123"), but a leftover leading mention is tolerated. The text is normalised first (NFKC: full-width
slashes, letters and digits, ideographic spaces; zero-width spaces; runs of spaces collapsed; line breaks kept), the
leading "/" is optional ("／", "\\" and the Chinese IME's "、" count as one), and the command word is the first
token — a Chinese name may be glued to a number ("接单0123").

Arguments, by kind:

* ticket — ``[A-Za-z0-9-]{3,32}`` with at least one digit (a full number, or its last digits), optionally written
  "#0123" or "工单号0123". It may always be missing: the message may quote a pushed ticket, which only the router
  can see. A missing ticket is *absent* from ``args``; it is never an error here. A token that does not look like
  a ticket is left to the next argument (a note, a member …); only when nothing else could take it is it refused.
  When a required one-token argument follows (转派's member, 签派's unit), a single token goes to that argument:
  "/转派 zhang3" names the colleague, the ticket comes from the quote.
* text — the rest of the message, stripped, line breaks kept; refused when empty and required.
* member — one token, a userid, a name or an @mention; the leading "@" is dropped.
* unit — one token, a unit code or name, resolved by the router. An argument with ``markers`` (退单's suggested
  unit) is found by its marker anywhere in the text ("建议:市政所", "建议派市政所处理"); a marker standing as a
  word of its own is cut from the text, one inside a sentence leaves the sentence whole.
* choice — one of the accepted words (English case-insensitively), stored as the canonical value; a Chinese word
  may be glued to the text that follows ("满意居民认可"), and a command's leading choice to the command's Chinese
  name ("值班接班"). Such a word sent alone ("接班") is answered with the command it belongs to.
* command — the name of a command (for /帮助), stored as the command's canonical ``name``.
* days — a number of working days, stored as decimal digits: "3", "3天", "3日", "3个工作日", "3 工作日", or in
  Chinese numerals with their unit ("三天", "两个工作日", "十天"). It must stand as a word of its own ("3号楼"
  and "3天内完成" are text, not days); anything else is left to the next argument, so it is always optional.

Every refusal is a :class:`CommandError` whose message is a short, polite Chinese sentence for the chat.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from types import MappingProxyType

from bot.domain.escaping import echo
from handlers.commands import COMMANDS, all_names, find
from handlers.errors import CommandError
from handlers.spec import ArgSpec, CommandSpec, ParsedCommand

HELP_HINT = "发送 /帮助 查看可用命令。"

_ZERO_WIDTH = str.maketrans({"\u200b": " ", "\u2060": " ", "\ufeff": " ", "\u180e": " "})
# Full-width punctuation of Chinese prose, kept as written (NFKC would turn "，" into ","): notes and results are
# stored and synced as the member wrote them. The parser takes both forms as separators.
KEPT_PUNCTUATION = "，：；！？（）～…＂＇［］｛｝"
_KEPT = re.compile("([" + re.escape(KEPT_PUNCTUATION) + "])")
_LEADING_SLASH = re.compile(r"^[/\\、]+\s*")
# separators tolerated between arguments (after NFKC: full-width commas, colons … are ASCII)
_SEPARATORS = " \n,;:.、。，：；"
# where a ticket, an English word or a unit token may end: the end, whitespace, punctuation, or a non-ASCII char
_ASCII_END = r"(?=$|[\s,;:.!?。、()]|[^\x00-\x7f])"
_TICKET_AT = re.compile(r"(?:(?:工单号|工单|单号)\s?[:：]?\s?)?#?([A-Za-z0-9-]{3,32})" + _ASCII_END)
_TOKEN = re.compile(r"\S+")
_UNIT_VALUE = r"(?P<value>[^\s,;:.!?。、，：；！？（）()\[\]<>{}\"'“”‘’「」【】]+)"
_TRAILING_VERB = re.compile(r"(?<=.)(?:处理|办理|负责|承办|解决|管辖)$")
_CHINESE_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_DAYS_UNIT = r"(?:个)?\s?(?:工作日|工作天|天|日)"
_WORD_END = r"(?=$|[\s,;:.!?。、，：；！？（）()])"
_DAYS = re.compile(
    r"(?:(?P<digits>\d{1,3})\s?(?:" + _DAYS_UNIT + r")?"
    r"|(?P<chinese>[一二两三四五六七八九十]{1,3})" + _DAYS_UNIT + r")" + _WORD_END
)
_ECHO_MAX = 20


def normalize(text: str) -> str:
    """NFKC (except :data:`KEPT_PUNCTUATION`), zero-width spaces to spaces, each line's whitespace collapsed to single
    spaces and trimmed, blank lines at the start and end dropped. Idempotent."""
    parts = _KEPT.split(text)
    parts[::2] = [unicodedata.normalize("NFKC", part) for part in parts[::2]]
    text = "".join(parts).translate(_ZERO_WIDTH)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    start, end = 0, len(lines)
    while start < end and not lines[start]:
        start += 1
    while end > start and not lines[end - 1]:
        end -= 1
    return "\n".join(lines[start:end])


# -- helpers ---------------------------------------------------------------------------------------------------


def _echo(text: str) -> str:
    """A few words of what the member typed, to say back in the chat: inert there (:mod:`bot.domain.escaping`)."""
    text = echo(text)
    return text if len(text) <= _ECHO_MAX else text[: _ECHO_MAX - 1] + "…"


def _usage(spec: CommandSpec) -> str:
    lines = [f"用法：{spec.usage}"]
    if spec.example:
        lines.append(f"例如：{spec.example}")
    return "\n".join(lines)


def _bad(spec: CommandSpec, sentence: str) -> CommandError:
    return CommandError("bad_arguments", f"{sentence}\n{_usage(spec)}")


def _choice_list(arg: ArgSpec) -> str:
    words = [next((w for w in words if not w.isascii()), words[0]) for _v, words in arg.choices]
    if len(words) <= 1:
        return "".join(words)
    return "、".join(words[:-1]) + "或" + words[-1]


def _first_token(rest: str) -> str | None:
    match = _TOKEN.match(rest)
    return match.group() if match else None


def _skip(rest: str) -> str:
    return rest.lstrip(_SEPARATORS)


def _suggestions(word: str) -> list[tuple[str, str]]:
    """(name, the command's Chinese name) for names close to ``word``, best first, one per command, at most 3."""
    word = word[:32]
    key = word.casefold() if word.isascii() else word
    scored: list[tuple[float, int, str, CommandSpec]] = []
    for i, name in enumerate(all_names()):
        spec = find(name)
        if spec is None or not key:
            continue
        other = name.casefold() if name.isascii() else name
        ratio = difflib.SequenceMatcher(None, key, other).ratio()
        close = ratio >= 0.6 or (not name.isascii() and ratio >= 0.5 and key[0] == other[0])
        if close:
            scored.append((ratio, -i, name, spec))
    scored.sort(reverse=True)
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for _ratio, _i, name, spec in scored:
        if spec.name in seen:
            continue
        seen.add(spec.name)
        out.append((name, spec.zh))
        if len(out) == 3:
            break
    return out


def _unknown(word: str, rest: str, code: str = "unknown_command") -> CommandError:
    shown = _echo(word)
    names = _suggestions(word)
    if not names:
        return CommandError(code, f"没有「{shown}」这个命令。{HELP_HINT}")
    if len(names) == 1:
        name, zh = names[0]
        tail = rest.strip()
        args = f" {echo(tail)}" if tail and "\n" not in tail and len(tail) <= _ECHO_MAX else ""
        also = f"（/{zh}）" if zh != name else ""
        return CommandError(code, f"没有「{shown}」这个命令，您是不是想用 /{name}{args}{also}？")
    options = " 或 ".join(f"/{n}" if n == zh else f"/{n}（/{zh}）" for n, zh in names)
    return CommandError(code, f"没有「{shown}」这个命令，您是不是想用 {options}？")


def _strip_prefix(text: str) -> str:
    """Drop leftover leading @mentions and the optional leading slash."""
    while text.startswith("@"):
        token = _first_token(text) or text
        text = text[len(token) :].lstrip()
    text = _LEADING_SLASH.sub("", text, count=1)
    while text.startswith("@"):  # "/@robot 接单" is unlikely, but harmless
        token = _first_token(text) or text
        text = text[len(token) :].lstrip()
    return text


_SPLIT_AT = re.compile(r"[:,;：，；#0-9]")
_GLUE = ":,;：，；"


def _leading_choice(spec: CommandSpec) -> ArgSpec | None:
    """The command's first argument when it is a choice (/值班's 接班 or 交班)."""
    return spec.args[0] if spec.args and spec.args[0].kind == "choice" else None


def _glued_choice(word: str) -> tuple[CommandSpec, str] | None:
    """A Chinese command name glued to a word of its leading choice ("值班接班"): the command and the rest."""
    for spec in COMMANDS:
        arg = _leading_choice(spec)
        if arg is None:
            continue
        for name in spec.chinese:
            tail = word[len(name) :]
            if tail and word.startswith(name) and _match_choice(arg, tail) is not None:
                return spec, tail
    return None


def _choice_owner(word: str) -> CommandSpec | None:
    """The command whose leading choice ``word`` (Chinese) is, when it is sent alone ("接班" for /值班 接班)."""
    if word.isascii():
        return None
    for spec in COMMANDS:
        arg = _leading_choice(spec)
        if arg is not None and word in arg.choice_words:
            return spec
    return None


def _command(text: str) -> tuple[CommandSpec, str]:
    """The command at the start of ``text`` and what follows it."""
    word = _first_token(text)
    if word is None:
        raise CommandError("empty_command", f"请写上命令，例如 /接单 0123。{HELP_HINT}")
    rest = text[len(word) :]
    spec = find(word)
    if spec is not None:
        return spec, rest
    glued = None if word.isascii() else _glued_choice(word)
    if glued is not None:
        return glued[0], glued[1] + rest
    split = _SPLIT_AT.search(word)
    if split and split.start() > 0:
        head, sep = word[: split.start()], split.group()
        spec = find(head)
        glued_ok = sep in _GLUE or not head.isascii()
        if spec is not None and glued_ok:
            tail = word[split.start() + (1 if sep in _GLUE else 0) :]
            return spec, tail + rest
        if not head.isascii():
            # "接箪0123": suggest for the word before the number, keep the number for the suggestion
            raise _unknown(head, word[split.start() :] + rest)
    owner = _choice_owner(word)
    if owner is not None:
        # not a command of its own, and not the command it looks like ("接班" is not 接单)
        shown = echo(word)
        raise CommandError("unknown_command", f"没有「{_echo(word)}」这个命令，您是不是想用 /{owner.zh} {shown}？")
    raise _unknown(word, rest)


# -- arguments -------------------------------------------------------------------------------------------------


def _match_choice(arg: ArgSpec, rest: str) -> tuple[str, int] | None:
    """(canonical value, length consumed) when ``rest`` starts with one of the accepted words."""
    for word in sorted(arg.choice_words, key=len, reverse=True):
        n = len(word)
        if word.isascii():
            if rest[:n].lower() == word.lower() and re.match(_ASCII_END, rest[n:]):
                value = arg.choice_value(word)
                if value is not None:
                    return value, n
        elif rest.startswith(word):
            value = arg.choice_value(word)
            if value is not None:
                return value, n
    return None


def _chinese_number(text: str) -> int | None:
    """一 .. 九十九 written in Chinese numerals ("十", "十二", "二十", "二十五"), else None."""
    if "十" not in text:
        return _CHINESE_DIGITS.get(text) if len(text) == 1 else None
    tens, _, ones = text.partition("十")
    if "十" in ones or (tens and tens not in _CHINESE_DIGITS) or (ones and ones not in _CHINESE_DIGITS):
        return None
    return (_CHINESE_DIGITS[tens] if tens else 1) * 10 + (_CHINESE_DIGITS[ones] if ones else 0)


def _match_days(rest: str) -> tuple[str, int] | None:
    """(the number of days as digits, length consumed) when ``rest`` starts with a number of days."""
    match = _DAYS.match(rest)
    if match is None:
        return None
    if match.group("digits") is not None:
        return str(int(match.group("digits"))), match.end()
    value = _chinese_number(match.group("chinese"))
    return (str(value), match.end()) if value is not None else None


def _marker_pattern(arg: ArgSpec) -> re.Pattern[str]:
    parts = []
    for marker in sorted(arg.markers, key=len, reverse=True):
        escaped = re.escape(marker)
        if marker[:1].isascii() and marker[:1].isalnum():
            escaped = r"(?<![A-Za-z0-9])" + escaped
        if marker.endswith(":"):
            escaped = escaped[: -len(re.escape(":"))] + "[:：]"
        else:
            escaped += r"\s*[:：]?"
        parts.append(escaped)
    return re.compile(r"(?P<marker>" + "|".join(parts) + r")\s*" + _UNIT_VALUE, re.IGNORECASE)


_MARKER_PATTERNS: dict[tuple[str, ...], re.Pattern[str]] = {}


def _take_marked(rest: str, marked: list[ArgSpec], values: dict[str, str]) -> str:
    """Find each marked argument in ``rest``; return ``rest`` without the markers that stand as words of their own."""
    for arg in marked:
        if arg.name in values:
            continue
        pattern = _MARKER_PATTERNS.get(arg.markers)
        if pattern is None:
            pattern = _MARKER_PATTERNS[arg.markers] = _marker_pattern(arg)
        match = pattern.search(rest)
        if match is None:
            continue
        value = match.group("value")
        if not match.group("marker").endswith((":", "：")):
            value = _TRAILING_VERB.sub("", value)
        values[arg.name] = value
        start, end = match.span()
        alone = (start == 0 or rest[start - 1].isspace()) and (end == len(rest) or rest[end].isspace())
        if alone:
            before, after = rest[:start].rstrip(" "), rest[end:].lstrip(" ")
            joint = "" if not before or not after or before.endswith("\n") or after.startswith("\n") else " "
            rest = before + joint + after
    return rest


def _required_tokens(args: list[ArgSpec]) -> int:
    return sum(1 for a in args if a.required and a.kind in ("member", "unit", "choice", "command"))


def _parse_args(spec: CommandSpec, rest: str) -> dict[str, str]:
    values: dict[str, str] = {}
    positional = [a for a in spec.args if not a.markers]
    marked = [a for a in spec.args if a.markers]
    rest = _skip(rest)
    text_taken = False
    for i, arg in enumerate(positional):
        rest = _skip(rest)
        later = positional[i + 1 :]
        token = _first_token(rest)
        if arg.kind == "ticket":
            match = _TICKET_AT.match(rest)
            if match and any(c.isdigit() for c in match.group(1)):
                after = rest[match.end() :]
                if len(after.split()) >= _required_tokens(later):
                    values[arg.name] = match.group(1)
                    rest = after
                    continue
            if token is not None and not later and not marked:
                raise _bad(spec, f"「{_echo(token)}」不是有效的工单号，请写完整工单号或末尾至少3位数字。")
            continue
        if arg.kind == "text":
            rest = _take_marked(rest, marked, values).strip()
            text_taken = True
            if rest:
                values[arg.name] = rest
            elif arg.required:
                raise _bad(spec, f"请写明{arg.label}。")
            rest = ""
            continue
        if arg.kind == "days":
            days = _match_days(rest)
            if days is not None:
                values[arg.name], used = days
                rest = rest[used:]
            continue
        if arg.kind == "choice":
            found = _match_choice(arg, rest)
            if found is not None:
                values[arg.name], used = found
                rest = rest[used:]
            elif token is None:
                if arg.required:
                    raise _bad(spec, f"请写明{arg.label}：{_choice_list(arg)}。")
            elif arg.required or not any(a.kind == "text" for a in later):
                raise _bad(spec, f"「{_echo(token)}」不是有效的{arg.label}，请写：{_choice_list(arg)}。")
            continue
        # one-token kinds: member, unit, command
        if token is None:
            if arg.required:
                raise _bad(spec, f"请写明{arg.label}。")
            continue
        rest = rest[len(token) :]
        if arg.kind == "member":
            value = token.lstrip("@")
            if not value:
                raise _bad(spec, f"请写明{arg.label}（姓名、账号或 @同事）。")
            values[arg.name] = value
        elif arg.kind == "command":
            name = _LEADING_SLASH.sub("", token)
            target = find(name) if name else None
            if target is None:
                raise _unknown(name or token, "", code="bad_arguments")
            values[arg.name] = target.name
        else:
            values[arg.name] = token
    if marked and not text_taken:
        rest = _take_marked(rest, marked, values)
    extra = _skip(rest).strip()
    if extra:
        raise _bad(spec, f"看不懂「{_echo(extra)}」。")
    for arg in marked:
        if arg.required and arg.name not in values:
            raise _bad(spec, f"请写明{arg.label}。")
    return values


def parse(text: str) -> ParsedCommand:
    """The command in a chat message. Raises :class:`CommandError` (``empty_command``, ``unknown_command``,
    ``bad_arguments``) with a Chinese message for the chat; never anything else."""
    normalized = normalize(text)
    body = _strip_prefix(normalized)
    spec, rest = _command(body)
    values = _parse_args(spec, rest)
    return ParsedCommand(spec=spec, args=MappingProxyType(values), text=normalized)


__all__ = ["HELP_HINT", "normalize", "parse"]
