"""config/model/imports.py: the export's columns and urgency labels."""

from __future__ import annotations

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
