"""Help generated from the specs: every command listed, filtered by what the member may use, plain text, short
enough for one WeCom text message."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.messages.help import WECOM_TEXT_LIMIT, command_help, help_text
from config.vocabulary import ROLE_LABELS, Role
from handlers.commands import COMMANDS, find
from handlers.spec import CommandSpec


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def _english(line: str) -> list[str]:
    assert line.startswith("英文命令：")
    return line.removeprefix("英文命令：").split()


def test_help_lists_every_command_with_usage_and_summary() -> None:
    text = help_text(COMMANDS)
    lines = text.splitlines()
    for spec in COMMANDS:
        assert f"{spec.usage} — {spec.summary}" in lines
    assert _bytes(text) <= WECOM_TEXT_LIMIT


def test_help_ends_with_the_english_names() -> None:
    last = help_text(COMMANDS).splitlines()[-1]
    assert last.startswith("英文命令：")
    for spec in COMMANDS:
        assert f"/{spec.english_shown}" in _english(last)
    assert "/onsite" in _english(last)  # the friendlier English name over "on_site"


def test_help_mentions_quoting_instead_of_the_number() -> None:
    assert "引用" in help_text(COMMANDS)
    no_tickets = [spec for spec in COMMANDS if not spec.takes_ticket]
    assert "引用" not in help_text(no_tickets)


def test_help_respects_can_use() -> None:
    def handler_may(spec: CommandSpec) -> bool:
        return spec.roles is None or Role.HANDLER in spec.roles

    text = help_text(COMMANDS, can_use=handler_may)
    shown = [spec for spec in COMMANDS if handler_may(spec)]
    hidden = [spec for spec in COMMANDS if not handler_may(spec)]
    assert hidden  # 回访, 签派, 统计
    for spec in shown:
        assert f"{spec.usage} — {spec.summary}" in text.splitlines()
        assert f"/{spec.english_shown}" in _english(text.splitlines()[-1])
    for spec in hidden:
        assert f"/{spec.zh} " not in text
        assert not any(line.startswith(f"/{spec.zh}") for line in text.splitlines())
        assert f"/{spec.english_shown}" not in _english(text.splitlines()[-1])


def test_help_for_nobody() -> None:
    text = help_text(COMMANDS, can_use=lambda _spec: False)
    assert text
    assert "/" not in text or "管理员" in text


@given(st.sets(st.sampled_from(COMMANDS)))
def test_help_of_any_subset_fits_one_message(specs: set[CommandSpec]) -> None:
    ordered = [spec for spec in COMMANDS if spec in specs]
    text = help_text(ordered)
    assert _bytes(text) <= WECOM_TEXT_LIMIT
    for spec in ordered:
        assert f"/{spec.zh}" in text


def test_help_of_many_commands_still_fits() -> None:
    many = [
        replace(spec, name=f"{spec.name}{i}", zh=f"{spec.zh}{i}", aliases=(f"{spec.name}x{i}",))
        for i in range(6)
        for spec in COMMANDS
    ]
    text = help_text(many)
    assert _bytes(text) <= WECOM_TEXT_LIMIT
    for spec in many:
        assert f"/{spec.zh}" in text


def test_help_is_plain_text() -> None:
    texts = [help_text(COMMANDS), *(command_help(spec) for spec in COMMANDS)]
    for text in texts:
        for html in ("</", "<br", "&lt;", "&nbsp;"):
            assert html not in text
        for markdown in ("**", "]("):
            assert markdown not in text


@pytest.mark.parametrize("spec", COMMANDS, ids=[s.name for s in COMMANDS])
def test_command_help(spec: CommandSpec) -> None:
    text = command_help(spec)
    lines = text.splitlines()
    assert lines[0] == spec.usage
    assert spec.summary in lines
    for name in spec.names:
        if name != spec.zh:
            assert f"/{name}" in text
    assert spec.example is not None
    assert f"例如：{spec.example}" in lines
    if spec.roles is not None:
        for role in spec.roles:
            assert ROLE_LABELS[role] in text
    assert _bytes(text) <= WECOM_TEXT_LIMIT


def test_command_help_details() -> None:
    visit = command_help(find("回访"))  # type: ignore[arg-type]
    for word in ("满意", "基本满意", "不满意", "联系不上", "satisfied", "unreachable"):
        assert word in visit
    assert "派单员" in visit
    assert "建议:单位" in command_help(find("退单"))  # type: ignore[arg-type]
    assert "引用工单消息时可不写" in command_help(find("接单"))  # type: ignore[arg-type]
    assert "中心领导" in command_help(find("签派"))  # type: ignore[arg-type]
    assert "仅限" not in command_help(find("查"))  # type: ignore[arg-type]
    extend = command_help(find("延期"))  # type: ignore[arg-type]
    for line in ("审批：同意（approve）、驳回（reject）", "天数：工作日数，如 3、3天、3个工作日；不写按默认天数。"):
        assert line in extend.splitlines()
    assert "仅限：承办人、负责人、派单员、中心领导、管理员" in extend
    report = command_help(find("报表"))  # type: ignore[arg-type]
    assert (
        "时段 单位：时段为周、月、双月、季、年、上周、上月、上双月、上季、去年或年-月（如 2026-11），不写为本月"
        in report
    )
