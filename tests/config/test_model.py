"""config/model/bot_config.py: the whole YAML as one frozen object, with its defaults."""

from __future__ import annotations

import ast

import pytest
from pydantic import ValidationError

from config.durations import Duration
from config.model import DEFAULT_IMPORT_COLUMNS, DEFAULT_POLICIES, BotConfig
from config.vocabulary import DeadlineName, TicketKind
from tests.config.yaml_cases import BASE, CONFIG_DIR, load


def test_config_is_frozen() -> None:
    config = load(BASE)
    with pytest.raises(ValidationError):
        config.office = config.office  # type: ignore[misc]


def test_config_imports_nothing_of_the_domain() -> None:
    forbidden = ("bot", "store", "handlers", "notifiers")
    for path in CONFIG_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_base_loads_with_defaults() -> None:
    config = load(BASE)
    assert config.timezone == "Asia/Shanghai"
    assert config.service_window.start == "06:00"
    assert config.quiet_hours is None
    for kind in TicketKind:
        assert config.policy_for(kind) == DEFAULT_POLICIES[kind]
    assert config.policy_for(TicketKind.URGENT)[DeadlineName.HANDLE] == Duration(3, "wd")
    assert config.three_twos_for("市容景观") == {}  # off by default
    assert config.import_columns == DEFAULT_IMPORT_COLUMNS
    assert config.hotline.max_body_bytes == 1_048_576
    assert config.hotline.sync_url is None
    extension = config.deadlines.extension  # 延期: 3 working days unless said, at most 10, once a ticket
    assert (extension.default_days, extension.max_days, extension.max_approved) == (3, 10, 1)


def test_direct_validation_also_cross_checks() -> None:
    import yaml

    data = yaml.safe_load(BASE.replace("head: h1", "head: lisi"))
    with pytest.raises(ValidationError, match='unknown member "lisi"'):
        BotConfig.model_validate(data)
