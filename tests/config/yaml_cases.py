"""The base YAML the config tests vary, and helpers to load it and find its issues."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from config.loader import ConfigError, ConfigIssue, load_config_text
from config.model import BotConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"

BASE = """\
office:
  name: 测试热线办
  unit: RXB
members:
  - userid: disp
    name: 派单员
    roles: [dispatcher]
  - userid: lead
    name: 领导
    roles: [center_lead]
  - userid: h1
    name: 负责人
  - userid: w1
    name: 承办人一
  - userid: w2
    name: 承办人二
units:
  - code: RXB
    name: 热线办
    head: disp
    members: [disp]
  - code: SR
    name: 市容所
    head: h1
    deputies: [w1]
    members: [h1, w1, w2]
    emergency_team: [w2]
routing:
  - unit: SR
    categories: [市容景观]
"""


def load(text: str, base_dir: Path | None = None) -> BotConfig:
    return load_config_text(textwrap.dedent(text), "test.yaml", base_dir)


def issues_of(text: str, base_dir: Path | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load(text, base_dir)
    assert caught.value.source == "test.yaml"
    return caught.value.issues


def issue_at(issues: list[ConfigIssue], path: str) -> ConfigIssue:
    found = [i for i in issues if i.path == path]
    assert found, f"no issue at {path}; got:\n" + "\n".join(map(str, issues))
    return found[0]


def line_with(text: str, needle: str, nth: int = 1) -> int:
    """1-based number of the nth line of ``text`` containing ``needle``."""
    hits = [n for n, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line]
    return hits[nth - 1]
