"""The chat command parser: names, normalisation, arguments by kind, errors, and properties over arbitrary text."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.domain.lifecycle import Action, VisitResult
from handlers.commands import COMMANDS, all_names, find
from handlers.context import Context
from handlers.errors import CommandError
from handlers.parse import KEPT_PUNCTUATION, normalize, parse
from handlers.spec import ArgSpec, CommandSpec, ParsedCommand, build_index, command

# the smallest arguments each command accepts ("" for none), to put after any of its names
MINIMAL_ARGS: dict[str, str] = {
    "claim": "0123",
    "contact": "0123",
    "on_site": "0123",
    "submit": "0123 已清理完毕",
    "return": "0123 不属于本单位职责",
    "transfer": "0123 @张三",
    "extend": "0123 需协调物业",
    "exclude": "0123 重复来电",
    "show": "0123",
    "mine": "",
    "todo": "",
    "overdue": "",
    "visit": "0123 满意",
    "assign": "0123 L01",
    "redispatch": "0123 L01",
    "duty": "",
    "stats": "",
    "report": "双月",
    "help": "",
}

NAMES = [(spec, name) for spec in COMMANDS for name in spec.names]
CHINESE_TICKET_NAMES = [(spec, name) for spec, name in NAMES if not name.isascii() and spec.takes_ticket]


def _ids(pairs: list[tuple[CommandSpec, str]]) -> list[str]:
    return [f"{spec.name}-{name}" for spec, name in pairs]


ERROR_CODES = ("empty_command", "unknown_command", "bad_arguments")


def _outcome(text: str) -> tuple[ParsedCommand | None, CommandError | None]:
    """What parse() does with ``text``: a command or a CommandError; any other exception propagates."""
    try:
        return parse(text), None
    except CommandError as error:
        return None, error


def _error(text: str) -> CommandError:
    with pytest.raises(CommandError) as info:
        parse(text)
    return info.value


# -- the specs ---------------------------------------------------------------------------------------------------


def test_every_command_of_the_issue_is_declared() -> None:
    zh = {spec.zh for spec in COMMANDS}
    assert zh == {
        "报表",
        "接单",
        "联系",
        "到场",
        "办结",
        "退单",
        "转派",
        "延期",
        "不纳入测评",
        "查",
        "我的",
        "待办",
        "逾期",
        "回访",
        "签派",
        "改派",
        "值班",
        "统计",
        "帮助",
    }
    assert set(MINIMAL_ARGS) == {spec.name for spec in COMMANDS}


def test_names_and_aliases_are_unique_across_commands() -> None:
    keys = [name.casefold() if name.isascii() else name for name in all_names()]
    assert len(keys) == len(set(keys))
    assert all(name and not any(ch.isspace() for ch in name) for name in keys)


def test_every_name_finds_its_own_command_english_ones_in_any_case() -> None:
    for spec in COMMANDS:
        for name in spec.names:
            assert find(name) is spec, name
            if name.isascii():
                assert (find(name.upper()), find(name.lower())) == (spec, spec), name
    assert find("不存在的命令") is None


async def _noop(_ctx: Context, _cmd: ParsedCommand) -> None:
    return None


def test_a_duplicate_name_is_refused_when_the_index_is_built() -> None:
    a = command(name="alpha", zh="甲", aliases=("one",), summary="甲")(_noop)
    b = command(name="beta", zh="乙", aliases=("ONE",), summary="乙")(_noop)
    with pytest.raises(ValueError, match="(?i)one.*alpha.*beta"):
        build_index((a, b))


def test_a_command_is_declared_with_its_handler() -> None:
    spec = command(name="alpha", zh="甲", aliases=("one",), summary="甲")(_noop)
    assert (spec.name, spec.handler) == ("alpha", _noop)
    with pytest.raises(TypeError, match="handler"):
        CommandSpec(name="beta", zh="乙", aliases=(), summary="乙")  # type: ignore[call-arg]


def test_every_command_has_chinese_and_english_names_an_example_and_a_summary() -> None:
    for spec in COMMANDS:
        assert spec.chinese[0] == spec.zh
        assert len(spec.english) >= 2, spec.name  # the canonical name and at least one English alias
        assert len(spec.chinese) >= 2, spec.name  # the Chinese name and at least one synonym
        assert spec.summary, spec.name
        assert spec.example, spec.name
        assert spec.example.startswith(f"/{spec.zh}"), spec.name


@pytest.mark.parametrize("spec", COMMANDS, ids=[s.name for s in COMMANDS])
def test_every_example_parses_to_its_command(spec: CommandSpec) -> None:
    assert spec.example is not None
    assert parse(spec.example).spec is spec


def test_roles_scopes_and_actions() -> None:
    assert find("签派").roles == frozenset({"center_lead"})  # type: ignore[union-attr]
    assert find("回访").roles == frozenset({"dispatcher"})  # type: ignore[union-attr]
    assert find("我的").scope == "self"  # type: ignore[union-attr]
    assert find("待办").scope == "unit"  # type: ignore[union-attr]
    assert find("逾期").scope == "unit"  # type: ignore[union-attr]
    assert find("帮助").roles is None  # type: ignore[union-attr]
    actions = {spec.name: spec.action for spec in COMMANDS if spec.action}
    assert actions == {
        "claim": Action.CLAIM,
        "contact": Action.CONTACT,
        "on_site": Action.ON_SITE,
        "submit": Action.SUBMIT,
        "return": Action.REQUEST_RETURN,  # and its signature and review, by "确认" / "同意" / "驳回"
        "transfer": Action.TRANSFER,
        "visit": Action.VISIT,
        "assign": Action.ASSIGN,
        "redispatch": Action.REDISPATCH,
        "extend": Action.REQUEST_EXTENSION,  # and its decisions, by "同意" / "驳回"
        "exclude": Action.REQUEST_EXCLUSION,  # and its decisions, by "同意" / "驳回"
    }


def test_visit_choices_cover_every_visit_result() -> None:
    arg = find("回访").arg("result")  # type: ignore[union-attr]
    assert arg is not None
    assert {value for value, _words in arg.choices} == {r.value for r in VisitResult}
    for result in VisitResult:
        assert arg.choice_value(result.label) == result.value


def test_find_chinese_exact_english_case_insensitive() -> None:
    assert find("接单") is find("claim") is find("CLAIM") is find("Claim")
    assert find("show") is find("INFO") is find("查")
    assert find("接") is None
    assert find("") is None
    assert find("claim ") is None


def test_usage_shows_required_and_optional_arguments() -> None:
    assert find("办结").usage == "/办结 <工单号> [已解决/部分解决/未解决] <处理结果>"  # type: ignore[union-attr]
    assert find("联系").usage == "/联系 <工单号> [联系情况]"  # type: ignore[union-attr]
    assert find("退单").usage == "/退单 <工单号> [确认/同意/驳回] [退单理由] [建议:单位]"  # type: ignore[union-attr]
    assert find("我的").usage == "/我的"  # type: ignore[union-attr]
    assert find("延期").usage == "/延期 <工单号> [同意/驳回] [天数] [理由]"  # type: ignore[union-attr]


# -- every name, every way of writing it ------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "name"), NAMES, ids=_ids(NAMES))
@pytest.mark.parametrize(
    "template",
    [
        "{name} {args}",
        "/{name} {args}",
        "／{name}　{args}",
        "\\{name} {args}",
        "、{name} {args}",
        "@机器人 {name} {args}",
        "@robot /{name} {args}",
        "  /{name}   {args}  ",
    ],
)
def test_every_name_parses_to_its_command(spec: CommandSpec, name: str, template: str) -> None:
    text = template.format(name=name, args=MINIMAL_ARGS[spec.name])
    parsed = parse(text)
    assert parsed.spec is spec
    assert parsed.name == spec.name


@pytest.mark.parametrize(("spec", "name"), NAMES, ids=_ids(NAMES))
def test_english_names_are_case_insensitive(spec: CommandSpec, name: str) -> None:
    assert parse(f"/{name.upper()} {MINIMAL_ARGS[spec.name]}").spec is spec


@pytest.mark.parametrize(("spec", "name"), CHINESE_TICKET_NAMES, ids=_ids(CHINESE_TICKET_NAMES))
def test_chinese_names_glued_to_the_number(spec: CommandSpec, name: str) -> None:
    args = MINIMAL_ARGS[spec.name]
    assert args.startswith("0123")
    parsed = parse(f"/{name}{args}")
    assert parsed.spec is spec
    assert parsed.ticket == "0123"
    assert parse(f"{name}#0123{args[4:]}").ticket == "0123"


def test_full_width_everything() -> None:
    parsed = parse("／接单　２０２６１１２２００１２３")
    assert parsed.spec.name == "claim"
    assert parsed.ticket == "2026112200123"
    assert parse("ｃｌａｉｍ ０１２３").ticket == "0123"


def test_colon_after_the_command_word() -> None:
    assert parse("办结：已清理完毕").args == {"result": "已清理完毕"}
    assert parse("/办结: 已清理完毕").args == {"result": "已清理完毕"}
    assert parse("submit:0123 已清理").args == {"ticket": "0123", "result": "已清理"}


def test_the_text_keeps_the_normalised_message() -> None:
    parsed = parse("@robot  ／办结　0123  已清理\n\n  居民认可  ")
    assert parsed.text == "@robot /办结 0123 已清理\n\n居民认可"


# -- tickets ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ticket"),
    [
        ("/接单 2026112200123", "2026112200123"),
        ("/接单 0123", "0123"),
        ("/接单 123", "123"),
        ("/接单 #0123", "0123"),
        ("/接单 工单号0123", "0123"),
        ("/接单 工单号：0123", "0123"),
        ("/接单 工单号 0123", "0123"),
        ("/接单 0123。", "0123"),
        ("/接单 SH-2026-0001", "SH-2026-0001"),
        ("/查 " + "1" * 32, "1" * 32),
    ],
)
def test_ticket_references(text: str, ticket: str) -> None:
    assert parse(text).ticket == ticket


@pytest.mark.parametrize("name", ["接单", "查", "到场", "办结", "退单", "转派", "回访", "签派"])
def test_a_missing_ticket_is_absent_not_an_error(name: str) -> None:
    spec = find(name)
    assert spec is not None
    args = MINIMAL_ARGS[spec.name].removeprefix("0123").strip()
    parsed = parse(f"/{name} {args}")
    assert "ticket" not in parsed.args
    assert parsed.ticket is None


@pytest.mark.parametrize("arg", ["收到", "ab", "12", "abc", "1" * 33, "0123-好"])
def test_a_word_that_is_no_ticket_is_refused_when_nothing_else_takes_it(arg: str) -> None:
    error = _error(f"/接单 {arg}")
    assert error.code == "bad_arguments"
    assert "工单号" in error.message
    assert "/接单 <工单号>" in error.message


def test_a_ticket_glued_to_text() -> None:
    assert parse("/办结 0123已清理").args == {"ticket": "0123", "result": "已清理"}
    assert parse("/办结 0123，已清理").args == {"ticket": "0123", "result": "已清理"}
    assert parse("/回访0123满意").args == {"ticket": "0123", "result": "satisfied"}


def test_a_second_ticket_is_refused() -> None:
    error = _error("/接单 0123 0124")
    assert error.code == "bad_arguments"
    assert "0124" in error.message


# -- text ------------------------------------------------------------------------------------------------------


def test_multi_line_result_is_kept() -> None:
    parsed = parse("@robot /办结 2026112200123\n已清理绿化带垃圾  3 袋\n\n已回复市民，市民表示认可！\n")
    assert parsed.args == {
        "ticket": "2026112200123",
        "result": "已清理绿化带垃圾 3 袋\n\n已回复市民，市民表示认可！",
    }


def test_full_width_punctuation_in_text_is_kept() -> None:
    result = parse("/办结 0123 已清理（约5处）；市民：满意？是！～…")
    assert result.args["result"] == "已清理（约5处）；市民：满意？是！～…"


def test_a_required_text_missing() -> None:
    for text in ("/办结 0123", "/办结", "/办结 0123 ，", "/办结\n0123\n"):
        error = _error(text)
        assert error.code == "bad_arguments"
        assert error.message.startswith("请写明处理结果")
        assert "/办结 <工单号> [已解决/部分解决/未解决] <处理结果>" in error.message
        assert "例如：/办结 0123" in error.message
    # a request without a reason parses: "/延期 0123 同意" needs none, the command asks for it (tests/handlers)
    assert parse("/延期 0123").args == {"ticket": "0123"}
    assert parse("/退单 0123").args == {"ticket": "0123"}  # "/退单 0123 确认" needs none either


def test_optional_text() -> None:
    assert parse("/联系 0123").args == {"ticket": "0123"}
    assert parse("/联系 0123 已电话联系，约下午到场").args == {"ticket": "0123", "note": "已电话联系，约下午到场"}
    assert parse("/联系 已电话联系").args == {"note": "已电话联系"}
    assert parse("/到场 0123\n现场拍照").args == {"ticket": "0123", "note": "现场拍照"}


# -- members and units -----------------------------------------------------------------------------------------


def test_member_arguments() -> None:
    assert parse("/转派 0123 @张三").args == {"ticket": "0123", "member": "张三"}
    assert parse("/转派 0123 zhangsan").args == {"ticket": "0123", "member": "zhangsan"}
    assert parse("/转派 0123 张三").args == {"ticket": "0123", "member": "张三"}
    # WeCom separates a mention by U+2005, NFKC makes it a space
    assert parse("/转派 0123 @张三\u2005").args == {"ticket": "0123", "member": "张三"}
    # one token: it names the colleague, the ticket comes from the quote
    assert parse("/转派 zhang3").args == {"member": "zhang3"}
    assert parse("/转派 @张三").args == {"member": "张三"}


def test_member_missing_or_empty() -> None:
    error = _error("/转派")
    assert error.code == "bad_arguments"
    assert "请写明同事" in error.message
    assert _error("/转派 0123 @").code == "bad_arguments"
    assert "看不懂" in _error("/转派 0123 @张三 @李四").message


def test_unit_arguments() -> None:
    assert parse("/签派 0123 市容所").args == {"ticket": "0123", "unit": "市容所"}
    assert parse("/签派 L01").args == {"unit": "L01"}
    assert parse("/待办").args == {}
    assert parse("/待办 绿化所").args == {"unit": "绿化所"}
    assert parse("/逾期 L01").args == {"unit": "L01"}
    assert parse("/统计 L01").args == {"unit": "L01"}
    error = _error("/签派")
    assert error.code == "bad_arguments"
    assert "请写明承办单位" in error.message
    assert _error("/待办 绿化所 市容所").code == "bad_arguments"


@pytest.mark.parametrize(
    ("text", "reason", "unit"),
    [
        ("/退单 0123 该路段属市政道路 建议:市政所", "该路段属市政道路", "市政所"),
        ("/退单 0123 该路段属市政道路 建议：市政所", "该路段属市政道路", "市政所"),
        ("/退单 0123 建议单位：市政所 该路段属市政道路", "该路段属市政道路", "市政所"),
        ("/退单 0123 该路段属市政道路\n建议单位 市政所", "该路段属市政道路", "市政所"),
        ("/退单 0123 该路段属市政道路 to:L02", "该路段属市政道路", "L02"),
        ("/退单 0123 该路段属市政道路 →市政所", "该路段属市政道路", "市政所"),
        # inside a sentence: the sentence stays whole
        ("/退单 0123 该路段属市政道路，建议派市政所处理", "该路段属市政道路，建议派市政所处理", "市政所"),
        ("/退单 0123 不归我们管，建议转给市容所。", "不归我们管，建议转给市容所。", "市容所"),
        # no suggested unit: the router asks for one (the lifecycle requires it)
        ("/退单 0123 不属于本单位职责", "不属于本单位职责", None),
        ("/退单 0123 建议居民自行联系物业", "建议居民自行联系物业", None),
        ("/退单 不属于本单位 建议:市政所", "不属于本单位", "市政所"),
    ],
)
def test_return_reason_and_suggested_unit(text: str, reason: str, unit: str | None) -> None:
    args = parse(text).args
    assert args.get("reason") == reason
    assert args.get("unit") == unit


def test_return_with_a_unit_but_no_reason() -> None:
    # parses: the command asks for the reason (tests/handlers/test_returns.py)
    assert parse("/退单 0123 建议:市政所").args == {"ticket": "0123", "unit": "市政所"}


# -- choices ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("满意", "satisfied"),
        ("基本满意", "basically_satisfied"),
        ("不满意", "dissatisfied"),
        ("联系不上", "unreachable"),
        ("联系不到", "unreachable"),
        ("satisfied", "satisfied"),
        ("Basically", "basically_satisfied"),
        ("DISSATISFIED", "dissatisfied"),
        ("unreachable", "unreachable"),
    ],
)
def test_visit_results(word: str, value: str) -> None:
    assert parse(f"/回访 0123 {word}").args == {"ticket": "0123", "result": value}
    assert parse(f"/回访 {word} 备注").args == {"result": value, "note": "备注"}


def test_visit_result_glued_to_the_note() -> None:
    assert parse("/回访 0123 不满意，要求重新处理").args == {
        "ticket": "0123",
        "result": "dissatisfied",
        "note": "要求重新处理",
    }
    assert parse("/回访 0123 基本满意希望尽快").args["result"] == "basically_satisfied"
    # an English word needs its boundary
    assert _error("/回访 0123 satisfiedly").code == "bad_arguments"


def test_visit_result_missing_or_wrong() -> None:
    error = _error("/回访 0123")
    assert error.code == "bad_arguments"
    assert "满意、基本满意、不满意或联系不上" in error.message
    error = _error("/回访 0123 还行")
    assert error.code == "bad_arguments"
    assert "「还行」" in error.message


def test_duty() -> None:
    assert parse("/值班").args == {}
    assert parse("/值班 接班").args == {"shift": "take"}
    assert parse("/duty TAKE").args == {"shift": "take"}
    assert parse("/值班 交班").args == {"shift": "hand_back"}
    assert parse("/值班交班").args == {"shift": "hand_back"}  # glued
    assert parse("/oncall release").args == {"shift": "hand_back"}
    assert parse("/duty Off").args == {"shift": "hand_back"}
    assert parse("值班接班").args == {"shift": "take"}
    error = _error("/值班 换班")
    assert error.code == "bad_arguments"
    assert "接班或交班" in error.message


@pytest.mark.parametrize(("text", "meant"), [("接班", "/值班 接班"), ("/交班", "/值班 交班")])
def test_a_duty_word_alone_points_to_the_duty_command_not_a_lookalike(text: str, meant: str) -> None:
    error = _error(text)
    assert error.code == "unknown_command"
    assert f"您是不是想用 {meant}？" in error.message
    assert "接单" not in error.message  # 接班 is not 接单


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("/延期 0123 3 需协调物业，预计下周完成", {"days": "3", "reason": "需协调物业，预计下周完成"}),
        ("/延期 0123 3天 需协调物业", {"days": "3", "reason": "需协调物业"}),
        ("/延期 0123 3 天，需协调物业", {"days": "3", "reason": "需协调物业"}),
        ("延期0123 3个工作日，需协调物业", {"days": "3", "reason": "需协调物业"}),
        ("/延期 0123 3 个工作日 需协调物业", {"days": "3", "reason": "需协调物业"}),
        ("/延期 0123 ３日：需协调物业", {"days": "3", "reason": "需协调物业"}),  # full-width
        ("/延期 0123 三天 需协调物业", {"days": "3", "reason": "需协调物业"}),
        ("/延期 0123 两个工作日 需协调物业", {"days": "2", "reason": "需协调物业"}),
        ("/延期 0123 十天 需协调物业", {"days": "10", "reason": "需协调物业"}),
        ("/延期 0123 十二天 需协调物业", {"days": "12", "reason": "需协调物业"}),  # too many: the lifecycle says so
        ("/postpone 0123 05 wait", {"days": "5", "reason": "wait"}),
        ("/延期 0123 需协调物业", {"reason": "需协调物业"}),  # no number: the configured default
        # a number that is part of the text is text
        ("/延期 0123 3号楼物业需协调", {"reason": "3号楼物业需协调"}),
        ("/延期 0123 3天内无法完成", {"reason": "3天内无法完成"}),
        ("/延期 0123 二十 需协调", {"reason": "二十 需协调"}),
        ("/延期 0123 3", {"days": "3"}),
        # decisions
        ("/延期 0123 同意", {"decision": "approve"}),
        ("/延期 0123 批准，情况属实", {"decision": "approve", "reason": "情况属实"}),
        ("/延期 0123 同意 2天", {"decision": "approve", "days": "2"}),
        ("/延期 0123 驳回 请按期办结", {"decision": "reject", "reason": "请按期办结"}),
        ("/延期 0123 不同意：请按期办结", {"decision": "reject", "reason": "请按期办结"}),
        ("/postpone 0123 APPROVE", {"decision": "approve"}),
        ("/postpone 0123 reject too long", {"decision": "reject", "reason": "too long"}),
    ],
)
def test_extension_days_and_decisions(text: str, args: dict[str, str]) -> None:
    assert parse(text).args == {"ticket": "0123", **args}


def test_extension_with_a_quoted_ticket() -> None:
    assert parse("/延期 3天 需协调").args == {"days": "3", "reason": "需协调"}
    assert parse("/延期 同意").args == {"decision": "approve"}
    assert parse("/延期 驳回 请按期办结").args == {"decision": "reject", "reason": "请按期办结"}


def test_help_with_a_command_name() -> None:
    assert parse("/帮助").args == {}
    assert parse("/帮助 接单").args == {"command": "claim"}
    assert parse("/help /CLAIM").args == {"command": "claim"}
    assert parse("? 到场").args == {"command": "on_site"}
    error = _error("/帮助 cliam")
    assert error.code == "bad_arguments"
    assert "/claim" in error.message


def test_commands_without_arguments_refuse_extra_words() -> None:
    error = _error("/我的 工单")
    assert error.code == "bad_arguments"
    assert "「工单」" in error.message
    assert "用法：/我的" in error.message


# -- unknown and empty -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "suggested"),
    [
        ("/接箪 0123", "/接单 0123"),
        ("接箪0123", "/接单 0123"),
        ("/办节 0123 已处理", "/办结"),
        ("/到厂", "/到场"),
        ("/值斑", "/值班"),
        ("/cliam 0123", "/claim 0123（/接单）"),
        ("/retrun 0123", "/return"),
        ("/hlep", "/help"),
        ("/stat", "/stats"),
        ("/接单了 0123", "/接单"),
    ],
)
def test_unknown_commands_suggest_the_near_miss(text: str, suggested: str) -> None:
    error = _error(text)
    assert error.code == "unknown_command"
    assert "您是不是想用" in error.message
    assert suggested in error.message


@pytest.mark.parametrize("text", ["/jiedan 0123", "好的", "谢谢", "请问这个工单怎么处理", "/xyz", "0123"])
def test_unknown_commands_without_a_near_miss_get_the_help_hint(text: str) -> None:
    error = _error(text)
    assert error.code == "unknown_command"
    assert "发送 /帮助 查看可用命令" in error.message
    assert "您是不是想用" not in error.message


def test_an_unknown_word_is_shortened_in_the_reply() -> None:
    error = _error("/" + "很" * 200)
    assert len(error.message) < 80


@pytest.mark.parametrize("text", ["", "   ", "\u3000", "\n\n", "/", "／", "@robot", "@robot  /", "\u200b"])
def test_blank_text(text: str) -> None:
    error = _error(text)
    assert error.code == "empty_command"
    assert "/帮助" in error.message


# -- normalisation ---------------------------------------------------------------------------------------------


def test_normalize() -> None:
    assert normalize("／接单　０１２３") == "/接单 0123"
    assert normalize("  a \t b  \r\n\r\n c\u200bd  \n\n") == "a b\n\nc d"
    assert normalize("已处理，市民认可！") == "已处理，市民认可！"
    assert normalize("\u2028x\u2029") == "x"
    assert set(KEPT_PUNCTUATION) <= set(normalize(KEPT_PUNCTUATION))


@given(st.text())
@settings(max_examples=500)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(st.text())
@settings(max_examples=500)
def test_parse_returns_a_command_or_raises_command_error(text: str) -> None:
    parsed, error = _outcome(text)
    if error is not None:
        assert error.code in ERROR_CODES
        assert error.message
    else:
        assert isinstance(parsed, ParsedCommand)
        assert parsed.text == normalize(text)


@given(
    st.sampled_from(all_names()),
    st.sampled_from(["", "/", "／", "@robot ", "@robot /"]),
    st.text(),
)
@settings(max_examples=1000)
def test_parse_after_a_real_command_name_never_fails_otherwise(name: str, prefix: str, rest: str) -> None:
    for text in (f"{prefix}{name} {rest}", f"{prefix}{name}{rest}"):
        parsed, error = _outcome(text)
        if error is not None:
            assert error.code in ERROR_CODES
        else:
            assert parsed is not None
            assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in parsed.args.items())
            assert set(parsed.args) <= {a.name for a in parsed.spec.args}


_NOTE = st.text(alphabet="已清理完毕市民认可abcXYZ12 \n\t　，。！？", min_size=1)


@given(st.from_regex(r"[0-9]{3,20}", fullmatch=True), _NOTE)
def test_submit_keeps_the_result_as_written(ticket: str, note: str) -> None:
    expected = normalize(note).lstrip(" \n,;:.、。，：；").strip()
    text = f"/办结 {ticket} {note}"
    if not expected:
        assert _error(text).code == "bad_arguments"
        return
    assume(not expected[0].isdigit())  # "0123 45…" would make the ticket "0123"; fine, but not this property
    parsed = parse(text)
    assert parsed.args == {"ticket": ticket, "result": expected}


@given(st.from_regex(r"[0-9]{3,32}", fullmatch=True), st.sampled_from([s for s in COMMANDS if s.takes_ticket]))
def test_any_ticket_number_is_read(ticket: str, spec: CommandSpec) -> None:
    args = MINIMAL_ARGS[spec.name].removeprefix("0123")
    assert parse(f"/{spec.zh} {ticket}{args}").ticket == ticket
    assert parse(f"{spec.zh}{ticket}{args}").ticket == ticket


def test_argspec_helpers() -> None:
    arg = ArgSpec(name="x", kind="choice", label="测试", choices=(("a", ("甲", "alpha")),))
    assert arg.choice_value("ALPHA") == "a"
    assert arg.choice_value("甲") == "a"
    assert arg.choice_value("乙") is None
    assert arg.usage == "<测试>"
