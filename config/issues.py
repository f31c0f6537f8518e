"""What is wrong with a configuration, said for the operator: one :class:`ConfigIssue` per problem with its path and
line, pydantic's errors worded (with "did you mean"), and any credential in an echoed value masked."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from config.model import BotConfig, Loc
from config.vocabulary import DeadlineName, PushAudience, PushKind, Role, TicketKind

# a URL's user information (user:password@) and its query parameters that carry a credential
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/?#\s\"']*)@")
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:key|token|access_token|secret|corpsecret|password|passwd|pwd|sign|signature)=)[^&;#\s\"']*"
)


def mask_credentials(text: str) -> str:
    """``text`` with the credentials in any URL it holds masked: ``ftp://user:pass@host/?key=k`` becomes
    ``ftp://user:***@host/?key=***``. Every message that echoes a value the configuration refused goes through this:
    the value may be a URL with a password in it."""

    def userinfo(match: re.Match[str]) -> str:
        user, sep, _password = match.group(2).partition(":")
        return f"{match.group(1)}{user}:***@" if sep else f"{match.group(1)}***@"

    return _SECRET_PARAM.sub(r"\1***", _URL_USERINFO.sub(userinfo, text))


@dataclass(frozen=True)
class ConfigIssue:
    path: str  # 'units[3].head'; '' for the whole file; an env var name for Settings
    message: str  # with the credentials of any URL it quotes masked (mask_credentials)
    line: int | None = None  # 1-based line in the YAML

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", mask_credentials(self.message))

    def format(self, source: str | None = None) -> str:
        """'config/example.yaml:42: units[3].head: unknown member "lisi"'."""
        where = ""
        if source:
            where = f"{source}:{self.line}: " if self.line is not None else f"{source}: "
        elif self.line is not None:
            where = f"line {self.line}: "
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"

    def __str__(self) -> str:
        return self.format()


class ConfigError(Exception):
    """Everything wrong with one configuration source (a YAML file, or the environment)."""

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        super().__init__(self.report())

    def report(self) -> str:
        """One line per issue, each prefixed with the source (and line)."""
        return "\n".join(issue.format(self.source) for issue in self.issues)


def show(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _fields_at(loc: Loc) -> list[str]:
    """The YAML keys allowed at ``loc`` (a path to a mapping), for 'did you mean'."""
    tp: Any = BotConfig
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {(f.alias or name): f for name, f in tp.model_fields.items()}
            if part not in fields:
                return []
            tp = fields[str(part)].annotation
        else:
            args = get_args(tp)
            if not args:
                return []
            tp = args[-1]  # list[X] -> X; dict[K, V] -> V
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or name for name, f in tp.model_fields.items()]
    return []


def _enum_at(loc: Loc, is_key: bool) -> tuple[str, type[StrEnum]] | None:
    if "roles" in loc:
        return "role", Role
    if loc[:2] == ("pushes", "rules"):
        if len(loc) == 3 and is_key:
            return "push kind", PushKind
        return "audience", PushAudience
    if "kinds" in loc or "kind_labels" in loc:
        return "ticket kind", TicketKind
    if loc[:2] == ("deadlines", "policies"):
        if len(loc) == 3 and is_key:
            return "ticket kind", TicketKind
        return "deadline name", DeadlineName
    return None


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def describe_error(error: ErrorDetails) -> tuple[Loc, str]:
    """A pydantic error as (path, short English message)."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    is_key = bool(loc) and loc[-1] == "[key]"
    if is_key:
        loc = loc[:-1]

    if kind == "missing":
        return loc, "required, but missing"
    if kind == "extra_forbidden":
        allowed = _fields_at(loc[:-1])
        name = str(loc[-1]) if loc else "?"
        hint = _did_you_mean(name, allowed) or (f"; allowed: {', '.join(allowed)}" if allowed else "")
        return loc, f'unknown field "{name}"{hint}'
    if kind == "enum":
        named = _enum_at(loc, is_key)
        what, choices = (named[0], [e.value for e in named[1]]) if named else ("value", [])
        shown = str(value)
        hint = _did_you_mean(shown, choices)
        expected = f"; expected one of: {', '.join(choices)}" if choices and not hint else ""
        return loc, f'unknown {what} "{shown}"{hint}{expected}'
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return loc, str(ctx["error"])
    if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        return loc, f'expected text, got the number {value}; put it in quotes ("{value}")'
    if kind == "string_type":
        return loc, f"expected text, got {show(value)}"
    if kind == "literal_error":
        return loc, f"invalid value {show(value)}; expected {ctx.get('expected', '?')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return loc, f"expected a mapping (key: value), got {show(value)}"
    if kind == "list_type":
        return loc, f"expected a list, got {show(value)}"
    message = error["msg"]
    message = message[:1].lower() + message[1:]
    if isinstance(value, str | int | float | bool) or value is None:
        message += f" (got {show(value)})"
    return loc, message
