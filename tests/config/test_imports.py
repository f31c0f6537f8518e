"""config/model/imports.py: the export's columns, urgency labels, state, visit and solved words."""

from __future__ import annotations

import pytest

from config.loader import ConfigError
from config.vocabulary import TicketKind
from tests.config.yaml_cases import BASE, load


def test_import_overrides_and_removal() -> None:
    config = load(
        BASE
        + """\
import:
  columns: {工单号: ticket_no, 标题: null}
  kind_labels: {一般: null, 特急: urgent}
"""
    )
    assert config.import_columns["工单号"] == "ticket_no"
    assert "标题" not in config.import_columns
    assert "一般" not in config.kind_labels
    assert config.kind_labels["特急"] is TicketKind.URGENT


def test_header_synonyms_and_history_columns_are_known_by_default() -> None:
    columns = load(BASE).import_columns
    for header in ("来电人", "反映人", "联系人"):
        assert columns[header] == "citizen_name"
    for header in ("地址", "诉求地址", "事发地址"):
        assert columns[header] == "address"
    assert (columns["联系电话"], columns["来电号码"]) == ("citizen_phone", "citizen_phone")
    assert (columns["办理状态"], columns["工单状态"], columns["接单时间"], columns["满意度"]) == (
        "state",
        "state",
        "accepted_at",
        "satisfaction",
    )


def test_state_visit_and_solved_words_override_the_defaults() -> None:
    config = load(
        BASE
        + """\
import:
  states: {已挂起: claimed, 已关闭: null}
  visit_labels: {一般: basically_satisfied}
  solved_labels: {是: null}
  awaiting_visit: 3d
"""
    )
    words = config.imports.state_words()
    assert (words["已挂起"], words["已回访"], words["已办结"], words["待接单"]) == (
        "claimed",
        "closed",
        "finished",
        "dispatched",
    )
    assert "已关闭" not in words
    assert config.imports.visit_words()["一般"] == "basically_satisfied"
    assert "是" not in config.imports.solved_words()
    assert config.imports.awaiting_visit.natural().days == 3


def test_an_unknown_state_meaning_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load(BASE + "import:\n  states: {已挂起: paused}\n")
    assert "import.states" in caught.value.report()
