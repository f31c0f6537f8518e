"""What a work group may see of a citizen (bot.domain.masking): 138****5678, 张先生, 张某某."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.masking import Citizen, MaskingFilter, mask_name, mask_phone, mask_text

# an 11-digit mainland mobile number standing on its own (what must never reach a group or a log)
MOBILE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
DIGITS = re.compile(r"[0-9]")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("身份证号 310101 19800101 1234", "身份证号 **************1234"),
        ("3101 0119 8001 0112 34", "**************1234"),
        ("310101-19800101-1234", "**************1234"),
        ("电话(138)1234-5678", "电话(138****5678"),
        ("壹叁捌壹贰叁肆伍陆柒捌", "138****5678"),
        # a number in digits right after a Chinese numeral: 张三's name is no part of the number
        ("张三13800000013", "张三138****0013"),
        ("市民李四13912345678来电", "市民李某某139****5678来电"),
        ("住2-1203", "住2-***"),
        ("地址：3-2-502", "地址：3-2-***"),
        ("住502号房", "住***号房"),
        ("住B座1203", "住B座***"),
        # left alone: a date, an amount, a list, a range, a number of 18 digits that is no ID
        ("2026-12-03办理", "2026-12-03办理"),
        ("金额1,380,000元", "金额1,380,000元"),
        ("第1、2、3、4条", "第1、2、3、4条"),
        ("共3-5人", "共3-5人"),
        ("编号 1234 5678 9012 3456 78", "编号 1234 5678 9012 3456 78"),
        ("联系电话62859811，3次未接通", "联系电话****9811，3次未接通"),
        ("每月15号房租到期，光明路88号房屋漏水", "每月15号房租到期，光明路88号房屋漏水"),
        ("面积80-120平方米，依据JGJ 130-2011规范", "面积80-120平方米，依据JGJ 130-2011规范"),
        ("QQ号1234", "QQ号1234"),
        ("第1、3、5、7、9、2、4、6、8、0、1条", "第1、3、5、7、9、2、4、6、8、0、1条"),
        # a long run of spaced digits that is no number: each separator matches one way, so this takes no time
        (
            ("1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7号 " * 571)[:20000],
            ("1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7号 " * 571)[:20000],
        ),
    ],
)
def test_numbers_written_in_groups_brackets_or_lists_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked
    assert mask_text(masked) == masked


def test_the_citizens_own_name_written_with_spaces_is_masked() -> None:
    citizen = Citizen("李建国", None)
    assert mask_text("李 建国反映，李　建　国来电，李 建国先生", citizen) == "李某某反映，李某某来电，李先生"
    assert mask_text("市民黄河 反映黄 河路积水", Citizen("黄河")) == "市民黄某某 反映黄 河路积水"


# --------------------------------------------------------------------------------------------------
# mask_phone
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),  # the first three and the last four stay
        ("19987654321", "199****4321"),
        (" 13812345678 ", "138****5678"),
        ("+86 138 1234 5678", "138****5678"),
        ("+8613812345678", "138****5678"),
        ("138 1234 5678", "138****5678"),
        ("021-62859811", "021-****9811"),  # landline: the area code and the last four stay
        ("0571-87654321", "0571-****4321"),
        ("010-1234567", "010-****4567"),  # a 7-digit local number
        ("62859811", "****9811"),  # no area code
        ("1234", "****"),  # four digits or fewer: nothing shown
        ("12", "**"),
        ("8", "*"),
        ("12345", "*2345"),  # anything else: the last four
        ("", ""),
        (None, ""),
        ("无", ""),  # no digits at all: nothing to show
    ],
)
def test_mask_phone(phone: str | None, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize("phone", ["02162859811", "021 62859811"])
def test_mask_phone_landline_without_dash(phone: str) -> None:
    # landlines are shown one way, with the area code split off by a dash
    assert mask_phone(phone) == "021-****9811"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789 +-()#转"), max_size=24))
def test_mask_phone_always_hides_digits(phone: str) -> None:
    masked = mask_phone(phone)
    shown = DIGITS.findall(masked)
    total = DIGITS.findall(phone)
    assert not MOBILE.search(masked)
    if len(total) <= 4:
        assert shown == []  # too short to tell anything: all hidden
    elif len(total) < 7:
        assert len(shown) <= 4  # the last four at most
    else:
        assert len(shown) <= len(total) - 3  # a phone number: at least three digits hidden


# --------------------------------------------------------------------------------------------------
# mask_name
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张先生", "张先生"),  # already what a group may see
        ("王女士", "王女士"),
        ("李阿姨", "李阿姨"),
        ("赵师傅", "赵师傅"),
        ("欧阳先生", "欧阳先生"),  # compound surname + polite form
        ("张三", "张某某"),
        ("张", "张某某"),
        ("李小龙", "李某某"),
        ("欧阳娜娜", "欧阳某某"),
        ("司马光", "司马某某"),
        ("诸葛亮", "诸葛某某"),
        ("  张三  ", "张某某"),
        ("John Smith", "J***"),
        ("alice", "a***"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_name(name: str | None, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(("name", "masked"), [("李明女士", "李女士"), ("张三先生", "张先生")])
def test_mask_name_full_name_with_polite_form(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=2, max_size=4))
def test_mask_name_of_a_chinese_full_name_keeps_only_the_surname(name: str) -> None:
    masked = mask_name(name)
    assert masked.endswith("某某")
    assert len(masked) <= 4
    assert name.startswith(masked[:-2])


# --------------------------------------------------------------------------------------------------
# mask_text
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("请联系13812345678，谢谢", "请联系138****5678，谢谢"),
        ("13812345678", "138****5678"),
        ("电话:13812345678或15900001111。", "电话:138****5678或159****1111。"),
        ("tel:13812345678;", "tel:138****5678;"),
        ("座机021-62859811，手机13812345678", "座机021-****9811，手机138****5678"),
        ("拨打0571-87654321", "拨打0571-****4321"),
        # ticket numbers, dates, times and other long numbers stay
        ("工单2026112200123已派至环卫科", "工单2026112200123已派至环卫科"),
        ("2026-11-22 15:00 派单", "2026-11-22 15:00 派单"),
        ("于2026年10月8日到场", "于2026年10月8日到场"),
        ("订单号138123456789", "订单号138123456789"),  # 12 digits: not a phone
        ("编号1381234567", "编号1381234567"),  # 10 digits: not a phone
        ("身份证310101199001011234", "身份证**************1234"),
        ("12345热线", "12345热线"),
        ("没有数字", "没有数字"),
        ("", ""),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    ["电话+8613812345678", "电话138 1234 5678", "电话138-1234-5678", "电话１３８１２３４５６７８"],
)
def test_mask_text_other_ways_of_writing_a_mobile(text: str) -> None:
    masked = mask_text(text)
    assert "1234" not in masked
    assert "１２３４" not in masked


_alphabet = st.sampled_from(list("0123456789" * 4 + "1313" + " -+*:，。号电话工单年月日abc\n"))
_phoneish = st.lists(
    st.one_of(
        st.builds("1{}{:09d}".format, st.sampled_from("3456789"), st.integers(0, 10**9 - 1)),  # a mobile
        st.builds(  # a landline with its area code
            "0{}-{}".format, st.sampled_from(["10", "21", "571", "755"]), st.integers(10**6, 10**8 - 1)
        ),
        st.builds("20{:011d}".format, st.integers(0, 10**11 - 1)),  # a ticket number
        st.text(alphabet=_alphabet, max_size=6),
    ),
    max_size=8,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.one_of(_phoneish, st.text(alphabet=_alphabet, max_size=60)))
def test_mask_text_leaves_no_mobile_number_and_is_idempotent(text: str) -> None:
    masked = mask_text(text)
    assert not MOBILE.search(masked), masked
    assert mask_text(masked) == masked


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("0123456789" * 3 + "０１２３４５６７８９٠١٢٣٤٥٦٧٨٩ -+*号码\n\u200b")), max_size=60
    )
)
def test_mask_text_with_other_digits_is_idempotent(text: str) -> None:
    masked = mask_text(text)
    assert mask_text(masked) == masked
    if not re.search(r"\d", text):
        assert masked == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("市民来电：一三九一二三四五六七八", "市民来电：139****5678"),
        ("幺三八 一二三四 五六七八", "138****5678"),
        ("号码一三八-一二三四-五六七八", "号码138****5678"),
        ("电话１３９１２３４５６７８", "电话139****5678"),
        ("住一二〇三室", "住***室"),
        ("三号楼五〇二", "三号楼***"),
        ("身份证一一〇一〇五一九九〇〇一〇一一二三四", "身份证**************1234"),
        ("路灯不亮，夜间出行不便", "路灯不亮，夜间出行不便"),
    ],
)
def test_numbers_written_without_an_ascii_digit_are_masked_too(text: str, masked: str) -> None:
    """Text with no digit at all is left as it is at once (most titles); a number written in Chinese numerals or
    full-width digits is not such text."""
    assert mask_text(text) == masked


# --------------------------------------------------------------------------------------------------
# MaskingFilter
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger with the filter and a handler writing name, message and the citizen extras."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s|%(message)s"))
    log = logging.getLogger("test.masking.13812345678")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    log.addFilter(MaskingFilter())
    yield log, stream
    log.removeHandler(handler)
    log.filters.clear()


def record(msg: object, args: object = None, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("test.masking.13812345678", logging.INFO, __file__, 1, msg, args, None)  # type: ignore[arg-type]
    rec.__dict__.update(extra)
    return rec


def test_filter_masks_the_formatted_message_with_its_args() -> None:
    rec = record("市民 %s 来电 %s，回拨 %s", ("张三", "13812345678", "021-62859811"))
    assert MaskingFilter().filter(rec) is True
    assert rec.getMessage() == "市民 张某某 来电 138****5678，回拨 021-****9811"
    assert rec.args is None


def test_filter_masks_a_message_without_args_and_a_mapping_arg() -> None:
    plain = record("回拨13812345678")
    MaskingFilter().filter(plain)
    assert plain.getMessage() == "回拨138****5678"
    mapping = record("回拨%(phone)s", ({"phone": "13812345678"},))
    MaskingFilter().filter(mapping)
    assert mapping.getMessage() == "回拨138****5678"


def test_filter_masks_the_citizen_extras() -> None:
    rec = record("ticket %s", ("2026112200123",), citizen_phone="13812345678", citizen_name="欧阳娜娜")
    MaskingFilter().filter(rec)
    assert rec.citizen_phone == "138****5678"  # type: ignore[attr-defined]
    assert rec.citizen_name == "欧阳某某"  # type: ignore[attr-defined]
    assert rec.getMessage() == "ticket 2026112200123"
    numeric = record("x", citizen_phone=13812345678)
    MaskingFilter().filter(numeric)
    assert numeric.citizen_phone == "138****5678"  # type: ignore[attr-defined]


def test_filter_does_not_touch_the_logger_name(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logger
    log.info("工单 %s 市民 %s", "2026112200123", "13812345678", extra={"citizen_phone": "13812345678"})
    assert stream.getvalue() == "test.masking.13812345678|工单 2026112200123 市民 138****5678\n"


def test_filter_on_a_real_logger_with_extras(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logger
    handler = log.handlers[0]
    handler.setFormatter(logging.Formatter("%(message)s|%(citizen_name)s|%(citizen_phone)s"))
    log.warning("回拨 %s", "13812345678", extra={"citizen_name": "张三", "citizen_phone": "+86 138 1234 5678"})
    assert stream.getvalue() == "回拨 138****5678|张某某|138****5678\n"


def test_filter_never_raises_into_the_caller(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, _ = logger
    previous, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        log.info("工单 %s 市民 %s", "2026112200123")
    finally:
        logging.raiseExceptions = previous


def test_filter_masks_a_non_string_message(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logger
    log.info({"citizen": "13812345678"})
    assert "13812345678" not in stream.getvalue().split("|", 1)[1]


def test_filter_masks_exception_text(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logger
    try:
        raise ValueError("回拨失败：13812345678")
    except ValueError:
        log.exception("sync failed")
    assert "13812345678" not in stream.getvalue().split("|", 1)[1]
