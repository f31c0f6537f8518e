"""Load the operators' YAML into a BotConfig, reporting every mistake with its path and line.

A user's mistake is never a traceback: :class:`ConfigError` carries one :class:`ConfigIssue` per
problem, e.g. ``config/example.yaml:42: units[3].head: unknown member "lisi"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from yaml.nodes import Node

from config.issues import ConfigError, ConfigIssue, describe_error, mask_credentials, show
from config.model import BotConfig, CrossReferenceError, Loc, cross_check, format_path
from config.yaml_reader import StrictSafeLoader, line_of, parse_yaml

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "StrictSafeLoader",
    "describe_error",
    "load_config",
    "load_config_text",
    "mask_credentials",
]


def _overlaps(a: Loc, b: Loc) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _validate(data: Any, root: Node | None, source: str, base_dir: Path) -> BotConfig:
    if data is None:
        raise ConfigError(source, [ConfigIssue("", "the configuration is empty")])
    if not isinstance(data, dict):
        raise ConfigError(
            source, [ConfigIssue("", f"the top level must be a mapping (key: value), not {show(data)}", 1)]
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


def load_config_text(text: str, source: str = "<string>", base_dir: Path | None = None) -> BotConfig:
    """Parse and validate YAML text; relative paths in it resolve against ``base_dir`` (default: cwd)."""
    data, root = parse_yaml(text, source)
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
