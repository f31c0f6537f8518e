"""Load the operators' YAML into a BotConfig, reporting every mistake with its path and line.

A user's mistake is never a traceback: :class:`ConfigError` carries one :class:`ConfigIssue` per
problem, e.g. ``config/example.yaml:42: units[3].head: unknown member "lisi"``.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from config.model import BotConfig, CrossReferenceError, Loc, cross_check, format_path
from config.vocabulary import DeadlineName, PushAudience, PushKind, Role, TicketKind

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "StrictSafeLoader",
    "describe_error",
    "load_config",
    "load_config_text",
    "mask_credentials",
]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------------------


class StrictSafeLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads ``17:00`` as text.

    YAML 1.1 (PyYAML) reads unquoted ``17:00`` as the base-60 integer 1020 but ``09:00`` as text;
    this loader drops the base-60 forms of int and float so every HH:MM stays a string.
    """

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            if key in seen:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f'duplicate key "{key}" (first at line {seen[key] + 1})',
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:  # type: ignore[override]
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise ConstructorError(None, None, f'invalid date "{node.value}": {exc}', node.start_mark) from exc


StrictSafeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictSafeLoader.add_implicit_resolver(
    _INT_TAG,
    re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    list("-+0123456789"),
)
StrictSafeLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
StrictSafeLoader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    StrictSafeLoader.construct_yaml_timestamp,  # type: ignore[arg-type]
)


def _yaml_issue(exc: yaml.YAMLError) -> ConfigIssue:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        kind = "invalid YAML" if isinstance(exc, ConstructorError) else "YAML syntax error"
        if mark is None:
            return ConfigIssue("", f"{kind}: {problem}")
        return ConfigIssue("", f"{kind} at column {mark.column + 1}: {problem}", mark.line + 1)
    return ConfigIssue("", f"invalid YAML: {exc}")


def _duplicate_keys(node: Node, loc: Loc, out: list[tuple[Loc, str, int]], seen: set[int]) -> None:
    """Every duplicate key under ``node``, with its path and line."""
    if id(node) in seen:  # aliases share nodes
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if isinstance(key_node, ScalarNode):
                key = (key_node.tag, key_node.value)
                line = key_node.start_mark.line + 1
                if key in first:
                    out.append(((*loc, key_node.value), f"duplicate key (first at line {first[key]})", line))
                else:
                    first[key] = line
                _duplicate_keys(value_node, (*loc, key_node.value), out, seen)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _duplicate_keys(item, (*loc, i), out, seen)


def _child(node: Node, part: str | int) -> tuple[Node, Node] | None:
    """(node whose line names ``part``, node of its value), or None."""
    if isinstance(node, SequenceNode) and isinstance(part, int):
        if 0 <= part < len(node.value):
            return node.value[part], node.value[part]
        return None
    if not isinstance(node, MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG and key_node.value == str(part):
            return key_node, value_node
    for key_node, value_node in node.value:  # keys merged in with <<: *anchor
        if key_node.tag == _MERGE_TAG:
            merged = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in merged:
                found = _child(source, part)
                if found is not None:
                    return found
    return None


def line_of(root: Node | None, loc: Loc) -> int | None:
    """The 1-based line of the node at ``loc``, or of its nearest existing parent."""
    if root is None:
        return None
    node, line = root, root.start_mark.line + 1
    for part in loc:
        found = _child(node, part)
        if found is None:
            break
        named, node = found
        line = named.start_mark.line + 1
    return line


def _parse(text: str, source: str) -> tuple[Any, Node | None]:
    loader = StrictSafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        duplicates: list[tuple[Loc, str, int]] = []
        _duplicate_keys(root, (), duplicates, set())
        if duplicates:
            raise ConfigError(source, [ConfigIssue(format_path(loc), msg, line) for loc, msg, line in duplicates])
        return loader.construct_document(root), root
    except yaml.YAMLError as exc:
        raise ConfigError(source, [_yaml_issue(exc)]) from None
    finally:
        loader.dispose()


# --------------------------------------------------------------------------------------------------
# Validation errors -> issues
# --------------------------------------------------------------------------------------------------


def _show(value: object) -> str:
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
        return loc, f"expected text, got {_show(value)}"
    if kind == "literal_error":
        return loc, f"invalid value {_show(value)}; expected {ctx.get('expected', '?')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return loc, f"expected a mapping (key: value), got {_show(value)}"
    if kind == "list_type":
        return loc, f"expected a list, got {_show(value)}"
    message = error["msg"]
    message = message[:1].lower() + message[1:]
    if isinstance(value, str | int | float | bool) or value is None:
        message += f" (got {_show(value)})"
    return loc, message


def _overlaps(a: Loc, b: Loc) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _validate(data: Any, root: Node | None, source: str, base_dir: Path) -> BotConfig:
    if data is None:
        raise ConfigError(source, [ConfigIssue("", "the configuration is empty")])
    if not isinstance(data, dict):
        raise ConfigError(
            source, [ConfigIssue("", f"the top level must be a mapping (key: value), not {_show(data)}", 1)]
        )
    try:
        return BotConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        field_issues: list[tuple[Loc, str]] = []
        cross_issues: list[tuple[Loc, str]] | None = None
        for error in exc.errors(include_url=False):
            reason = (error.get("ctx") or {}).get("error")
            if isinstance(reason, CrossReferenceError):
                cross_issues = [*(cross_issues or []), *reason.issues]
            else:
                field_issues.append(describe_error(error))
        if cross_issues is None:
            # Fields failed, so BotConfig's own cross-check did not run: run it on the raw data,
            # leaving out what overlaps a field error (that one says what is wrong there).
            cross_issues = [
                (loc, msg)
                for loc, msg in cross_check(data, base_dir)
                if not any(_overlaps(loc, bad) for bad, _ in field_issues)
            ]
        found: list[ConfigIssue] = []
        for loc, msg in [*field_issues, *cross_issues]:
            issue = ConfigIssue(format_path(loc), msg, line_of(root, loc))
            if issue not in found:
                found.append(issue)
        found.sort(key=lambda i: (i.line is None, i.line or 0))
        raise ConfigError(source, found) from None


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


def load_config_text(text: str, source: str = "<string>", base_dir: Path | None = None) -> BotConfig:
    """Parse and validate YAML text; relative paths in it resolve against ``base_dir`` (default: cwd)."""
    data, root = _parse(text, source)
    return _validate(data, root, source, (base_dir or Path.cwd()).resolve())


def load_config(path: Path | str) -> BotConfig:
    """Read and validate a YAML file; raises ConfigError for anything wrong with it."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(source, [ConfigIssue("", "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError(source, [ConfigIssue("", "is a directory, not a file")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [ConfigIssue("", f"not UTF-8 text (byte {exc.start})")]) from None
    except OSError as exc:
        raise ConfigError(source, [ConfigIssue("", f"cannot read: {exc.strerror or exc}")]) from None
    return load_config_text(text, source, path.resolve().parent)
