"""What a work group, the masked API and the logs may see of a citizen: 李某某, 138****5678, 幸福里小区3号***室.

:func:`mask_text` masks free text (a ticket's content, title, notes, reasons, results; a log line): phone numbers
however they are written, ID-card numbers, flat numbers, and names introduced the usual way (市民李建国, 王建国先生).
Given the ticket's :class:`Citizen`, it also masks that citizen's own name and address wherever they occur. Dates,
amounts, street names and ticket numbers stay as they are. Full details go only to the claimer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

_COMPOUND_SURNAMES = (
    "欧阳",
    "司马",
    "上官",
    "诸葛",
    "东方",
    "皇甫",
    "尉迟",
    "公孙",
    "慕容",
    "长孙",
    "宇文",
    "司徒",
    "夏侯",
    "轩辕",
    "令狐",
    "澹台",
    "公冶",
    "宗政",
    "濮阳",
    "淳于",
    "单于",
    "太叔",
    "申屠",
    "闻人",
    "西门",
    "南宫",
    "端木",
    "百里",
)
# the common single-character surnames (those that are also everyday words, 和 时 路 车 安 …, are left out: a name
# after 市民 is recognised by its surname, and "业主车辆" must stay readable)
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔汤温康施牛"
    "樊葛邢齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕季裴霍涂苗谷盛曲翁冉骆蓝"
    "游辛靳柴蒙鲍喻祁蒲滕屈饶艾尤穆农卓吉缪简项芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂佟臧闵苟邬边卞姬仇"
    "栾隋刁沙荣巫寇桑郎甄丛仲虞敖巩佘池查苑迟邝"
)
_POLITE = ("先生", "女士", "小姐", "阿姨", "师傅", "老师")
_PLACE_WORDS = frozenset("路街道巷弄里村镇桥区园苑站")  # after a two-character name, a place: 黄河路
_HAN = r"[\u4e00-\u9fff]"
_SURNAME = "(?:" + "|".join(_COMPOUND_SURNAMES) + f"|[{_SURNAMES}])"

# --- numbers --------------------------------------------------------------------------------------------------------
#
# Numbers are looked for in a "shadow" of the text, the same length, in which every way of writing a digit or a
# separator is its plain form: full-width digits, Chinese numerals (一三八…, 幺 for one), non-breaking and other
# spaces, full-width and long dashes. A match is then replaced in the text itself, by a masked plain form.

_NUMERALS = "〇零一幺二三四五六七八九壹贰叁肆伍陆柒捌玖"  # the last nine: the financial numerals
_SHADOW = str.maketrans(
    {
        **{chr(0xFF10 + i): str(i) for i in range(10)},  # ０-９
        **dict(zip(_NUMERALS, "001123456789123456789", strict=True)),
        **dict.fromkeys("\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u3000\t", " "),
        **dict.fromkeys("－—–‒―−‐‑", "-"),
        **dict(zip("．·・／＿＋（）Ｘｘ", ".../_+()Xx", strict=True)),
    }
)
# between two digits of a phone number: nothing, a space, or a dash, a dot, an underscore, a slash or a bracket (or
# two) with a space either side or none: 138-1234-5678, (138)1234-5678. Written so that each text between two digits
# matches it one way only: a number repeats it up to 17 times, and a separator that could match a space two ways
# would have the pattern try 2^17 ways on a long run of spaced digits
_SEP = r"(?:[ ]?[-._/()]{1,2}[ ]?|[ ])?"
# an ID-card number: 6 digits of region, the birth date, 3 digits and the check character (X); or the old 15-digit
# form (a 2-digit year). Never a part of a longer run of digits or letters (a ticket number)
_ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])(?P<n>[1-9]\d{5}(?:18|19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
    r"|[1-9]\d{7}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3})(?![0-9A-Za-z])"
)
# an ID-card number written in groups: 310101 19800101 1234, 3101 0119 8001 0112 34 (its digits then checked as
# :data:`_ID_CARD`'s)
_ID_GROUPED = re.compile(rf"(?<![0-9A-Za-z])(?P<n>[1-9](?:{_SEP}\d){{16}}{_SEP}[\dXx])(?![0-9A-Za-z])")
# a mainland mobile number, 11 digits from 13 to 19, with or without +86 / 86 / 0086 and separators anywhere
_MOBILE = re.compile(rf"(?<!\d)(?=[+\d])(?P<n>(?:(?:\+|00)?86{_SEP})?1{_SEP}[3-9](?:{_SEP}\d){{9}})(?!\d)")
# a landline with its area code (010 and 02x have 3 digits, the others 4): 021-62859811, (021)62859811,
# 0571 8765 4321, +86 21 6285 9811 (the 0 dropped after the country code)
_LANDLINE = re.compile(
    rf"(?<!\d)(?=[+(\d])(?P<n>(?:(?:\+|00)?86{_SEP}\(?(?P<intl>10|2\d|[3-9]\d\d)\)?|\(?(?P<area>0(?:10|2\d|[3-9]\d\d))\)?)"
    rf"{_SEP}\d(?:{_SEP}\d){{6,7}})(?!\d)"
)
# any other number given as a phone number: 电话：62859811, 联系方式 8765-4321 (a local number without its area code
# is recognised only so: on its own, 8 digits are too often something else)
_CALLED = re.compile(
    r"(?:电话|手机|座机|固话|联系方式|tel|Tel|TEL)(?:号码?)?[:：]?[ ]?(?:是|为)?[:：]?[ ]?"
    rf"(?P<n>\d(?:{_SEP}\d){{6,11}})(?!\d)"
)
# a flat: 1203室, 502户, 1203房, A1203室 (two digits at least: 3室2厅 is a floor plan); after a building or unit
# number also without 室: 3号1203, 5号楼2单元1203, 3栋502
_FLAT = re.compile(
    r"(?<![\dA-Za-z])(?P<n>[A-Za-z]?\d{2,5})(?=[室户]|房(?!间)|号房(?![\u4e00-\u9fff]))"
    r"|(?<=[\dA-Za-z])(?:(?<=\d)(?:号楼?|栋|幢|单元)|座)[ ]?(?P<m>[A-Za-z]?\d{3,4})(?![\d年月日时点分号元万%])"
)
# building-flat or building-unit-flat with dashes, where an address is given: 住2-1203, 地址：3-2-502 (on its own,
# 80-120 is a range and 130-2011 a standard's number)
_DASHED_FLAT = re.compile(r"(?:住|址[:：]?)[ ]?\d{1,3}-(?:\d{1,2}-)?(?P<n>\d{3,4})(?![\d年月日时点分号元万%-])")
# the most specific number of an address, when it has no flat (the last one): 光明路88弄5号 → 光明路88弄***号
_LAST_HOUSE_NUMBER = re.compile(r"\d+(?=[ ]?[号弄栋幢座][^\d]*$)")


def _digits(match: re.Match[str]) -> str:
    return re.sub(r"\D", "", match.group("n"))


def _masked_mobile(match: re.Match[str]) -> str:
    digits = _digits(match)[-11:]  # without the country code
    return f"{digits[:3]}****{digits[-4:]}"


def _masked_landline(match: re.Match[str]) -> str:
    area = match.group("area") or "0" + match.group("intl")
    return f"{area}-****{_digits(match)[-4:]}"


def _masked_id(match: re.Match[str]) -> str:
    number = match.group("n")
    return "*" * (len(number) - 4) + number[-4:]


def _masked_grouped_id(match: re.Match[str]) -> str | None:
    number = re.sub(r"[^\dXx]", "", match.group("n"))
    return "*" * (len(number) - 4) + number[-4:] if _ID_CARD.fullmatch(number) else None


def _masked_number(match: re.Match[str]) -> str:
    digits = _digits(match)
    return "*" * (len(digits) - 4) + digits[-4:]


def _replace_numbers(
    pattern: re.Pattern[str], mask: Callable[[re.Match[str]], str | None], text: str, shadow: str | None = None
) -> str:
    """``text`` with each match of ``pattern`` in its shadow (its group ``n``, or ``m``) replaced by ``mask`` (None:
    left as it is)."""
    shadow = text.translate(_SHADOW) if shadow is None else shadow
    parts: list[str] = []
    last = 0
    for match in pattern.finditer(shadow):
        group = "n" if match.group("n") is not None else "m"
        masked = mask(match)
        if masked is None:
            continue
        start, end = match.span(group)
        parts += [text[last:start], masked]
        last = end
    return "".join(parts) + text[last:] if parts else text


_NUMBER_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str | None]], ...] = (
    (_ID_CARD, _masked_id),
    (_ID_GROUPED, _masked_grouped_id),
    (_MOBILE, _masked_mobile),
    (_LANDLINE, _masked_landline),
    (_CALLED, _masked_number),
    (_FLAT, lambda _: "***"),
    (_DASHED_FLAT, lambda _: "***"),
)


# every rule above needs a digit in the shadow, that is a digit or a Chinese numeral in the text: text without one
# has no number to mask (most titles, once their citizen's address is masked)
_DIGIT = re.compile(rf"[\d{_NUMERALS}]")


# the shadow without the Chinese numerals: a number in digits right after one (张三13800000013, 十一13912345678) is
# found in it, where the full shadow makes the two one longer number
_ARABIC_SHADOW = str.maketrans({k: v for k, v in _SHADOW.items() if chr(k) not in _NUMERALS})
_HAN_NUMERAL = re.compile(f"[{_NUMERALS}][0-9０-９]")  # such a place: only there is the second shadow needed


def _numbers(text: str) -> str:
    if _DIGIT.search(text) is None:
        return text
    shadows = (_SHADOW, _ARABIC_SHADOW) if _HAN_NUMERAL.search(text) else (_SHADOW,)
    for table in shadows:
        shadow = text.translate(table)
        for pattern, mask in _NUMBER_RULES:
            masked = _replace_numbers(pattern, mask, text, shadow)
            if masked is not text:
                text, shadow = masked, masked.translate(table)
    return text


# --- names ----------------------------------------------------------------------------------------------------------

# the words that introduce a citizen in a ticket: 市民李建国来电, 来电人：王芳, 业主陈立新反映
_LEADS = (
    "市民|来电人|来电者|来电市民|居民|诉求人|反映人|投诉人|举报人|求助人|咨询人|业主|群众|住户|租户|村民|"
    "当事人|联系人|户主|姓名"
)
# what follows a name (so that 市民李明来电 takes 李明, not 李明来): not a Chinese character, or one of these words
_AFTER = (
    r"(?=[^\u4e00-\u9fff]|$|来电|致电|来信|反映|反应|称|表示|投诉|举报|求助|咨询|诉|要求|希望|建议|说|讲|家|于|在|"
    r"的|住|等|及|和|与|向|对|因|一家|夫妇|本人|电话|手机|联系|身份证|先生|女士|小姐|阿姨|师傅|老师|同志|也|又|"
    r"多次|再次|现|已|自称|拨打|发现|认为|请求|提出|通过)"
)
# a surname is not followed by these: 市民张先生 is already as a group may see it, 市民于今日来电 and 居民张贴 have
# no name
_NOT_GIVEN = "(?!先生|女士|小姐|阿姨|师傅|老师|今|昨|前|近|本|多|再|已|曾|某某|贴|末|边|围|路|色|额|空|地|楼|款)"
_INTRODUCED = re.compile(rf"(?P<lead>(?:{_LEADS})[：:]?[ ]?)(?P<surname>{_SURNAME}){_NOT_GIVEN}{_HAN}{{1,2}}?{_AFTER}")
# a full name with its polite form, not after another Chinese character: 王建国先生 → 王先生
_POLITELY = re.compile(
    rf"(?<![\u4e00-\u9fff])(?P<surname>{_SURNAME}){_NOT_GIVEN}{_HAN}{{1,2}}?(?=(?:{'|'.join(_POLITE)}))"
)


def _masked_introduced(match: re.Match[str]) -> str:
    # 市民李建国先生: 李先生, as a group may see it; 市民李建国: 李某某
    polite = match.string.startswith(_POLITE, match.end())
    return match.group("lead") + match.group("surname") + ("" if polite else "某某")


def _names(text: str) -> str:
    text = _INTRODUCED.sub(_masked_introduced, text)
    return _POLITELY.sub(lambda m: m.group("surname"), text)


# --- the ticket's own citizen --------------------------------------------------------------------------------------


class NamesCitizen(Protocol):
    """A ticket, whole or as a list shows it: what it says of its citizen."""

    @property
    def citizen_name(self) -> str | None: ...

    @property
    def address(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Citizen:
    """What a ticket says of its citizen: their name and address are masked wherever they occur in its texts."""

    name: str | None = None
    address: str | None = None

    @classmethod
    def of(cls, ticket: NamesCitizen) -> Citizen:
        """From a ticket (its ``citizen_name`` and ``address``; either may be None)."""
        return cls(ticket.citizen_name or None, ticket.address or None)

    def mask(self, text: str) -> str:
        """``text`` with this citizen's address and name masked (not yet the rest: :func:`mask_text` does both)."""
        address = (self.address or "").strip()
        if len(address) >= 4 and address in text:
            text = text.replace(address, mask_address(address))
        name = _bare_name(self.name)
        if len(name) >= 2 and name in text:
            # found by plain search (a pattern per citizen would be compiled anew for nearly every ticket)
            surname = _surname(name) if not name.isascii() else name[:1]
            masked = mask_name(name)
            parts: list[str] = []
            last = start = 0
            while (at := text.find(name, start)) >= 0:
                end = at + len(name)
                # a name that is also the start of a place (市民黄河 on 黄河路) is left where a place word follows it
                if len(name) == 2 and text[end : end + 1] in _PLACE_WORDS:
                    start = at + 1
                    continue
                parts += [text[last:at], surname if text.startswith(_POLITE, end) else masked]
                last = start = end
            text = "".join(parts) + text[last:] if parts else text
        if len(name) >= 2 and not name.isascii() and (" " in text or "\u3000" in text) and name[0] in text:
            # written with spaces between its characters: 李 建国, 李　建　国 (as the plain name: not before a place
            # word, its surname only before a polite form)
            text = re.sub(r"[ \u3000]*".join(map(re.escape, name)), partial(_spaced, name), text)
        return text


def _spaced(name: str, match: re.Match[str]) -> str:
    """A citizen's name found with spaces between its characters, masked as :meth:`Citizen.mask` masks it plain."""
    found = match.group()
    after = match.string[match.end() :]
    if found == name or (len(name) == 2 and after[:1] in _PLACE_WORDS):
        return found  # the plain name: masked already, or a place's start (黄河路) left on purpose
    surname = _surname(name) if not name.isascii() else name[:1]
    return surname if after.startswith(_POLITE) else mask_name(name)


def _bare_name(name: str | None) -> str:
    """The name without a polite form after it: 李建国先生 → 李建国; 李先生 → 李 (nothing to mask)."""
    name = (name or "").strip()
    if not name.endswith(_POLITE):  # most names: one test, not one per polite form
        return name
    for polite in _POLITE:
        if name.endswith(polite):
            return name[: -len(polite)]
    return name


def mask_address(address: str | None) -> str:
    """幸福里小区3号1203室 → 幸福里小区3号***室; without a flat, its last house number: 光明路88弄5号 →
    光明路88弄***号."""
    if not address:
        return ""
    masked = _replace_numbers(_FLAT, lambda _: "***", address)
    if masked == address:
        masked = _LAST_HOUSE_NUMBER.sub("***", address)
    return _numbers(masked)


def mask_text(text: str, citizen: Citizen | None = None) -> str:
    """Masks free text for a group, the masked API or a log: phone numbers, ID-card numbers, flats, names after
    市民/来电人/业主…, and, given the ticket's :class:`Citizen`, its citizen's own name and address anywhere."""
    if not text:
        return text
    if citizen is not None:
        text = citizen.mask(text)
    return _names(_numbers(text))


# --- a ticket's own contact fields ---------------------------------------------------------------------------------


def mask_phone(phone: str | None) -> str:
    """138****1234 for a mobile number; 021-****9811 for a landline; stars but the last 4 otherwise."""
    if not phone:
        return ""
    text = phone.translate(_SHADOW).strip()
    for pattern, mask in ((_MOBILE, _masked_mobile), (_LANDLINE, _masked_landline)):
        match = pattern.fullmatch(text)
        if match:
            return mask(match)
    digits = re.sub(r"\D", "", text)
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def _surname(name: str) -> str:
    return name[:2] if name.startswith(_COMPOUND_SURNAMES) else name[:1]


def mask_name(name: str | None) -> str:
    """张先生 stays 张先生, 李明女士 becomes 李女士; a full name becomes surname + 某某 (李某某, 欧阳某某); a Latin name
    keeps its initial."""
    if not name:
        return ""
    name = name.strip()
    for polite in _POLITE if name.endswith(_POLITE) else ():
        if name.endswith(polite) and len(name) > len(polite):
            return _surname(name) + polite
    if name.isascii():
        return name[:1] + "***"
    return _surname(name) + "某某"


# --- logs ----------------------------------------------------------------------------------------------------------

# the database drivers: below WARNING they log statements' parameters and result rows (SQLAlchemy's "Row %r",
# aiosqlite's "executing %s" of the call with its arguments)
_DRIVERS = ("sqlalchemy", "aiosqlite", "asyncpg")


class MaskingFilter(logging.Filter):
    """Masks a record's message, its exception text and the citizen extras; a database driver's record below
    WARNING keeps its format string only, never its arguments.

    It never raises: a record whose arguments do not fit its format string is left for logging's own
    error handling.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and record.name.startswith(_DRIVERS) and record.args:
            record.msg, record.args = f"{record.msg} [arguments not shown]", None
        try:
            message = record.getMessage()
        except Exception:
            return True
        record.msg, record.args = mask_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        phone = record.__dict__.get("citizen_phone")
        if phone is not None:
            record.__dict__["citizen_phone"] = mask_phone(str(phone))
        name = record.__dict__.get("citizen_name")
        if isinstance(name, str):
            record.__dict__["citizen_name"] = mask_name(name)
        return True
