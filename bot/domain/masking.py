"""What a work group may see of a citizen: 张先生, 138****1234. Full details go only to the claimer."""

from __future__ import annotations

import logging
import re

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
_POLITE = ("先生", "女士", "小姐", "阿姨", "师傅", "老师")
# full-width digits and separators (１３８－１２３４) are read as their ASCII forms
_WIDE = str.maketrans("０１２３４５６７８９＋－　", "0123456789+- ")
# a mainland mobile number, optionally +86, optionally split by spaces or dashes: 138 1234 5678
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[ -]?)?(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?!\d)")
# a landline with its area code: 021-62859811, (021)62859811, 0571 8888 1234, or 02162859811 (010 and 02x
# have 3 digits). A local number without its area code is not recognised in free text: 8 digits are too
# often something else (a date, an amount)
_LANDLINE = re.compile(r"(?<!\d)\(?(0(?:10|2\d|[3-9]\d\d))\)?[ -]?(\d{3,4})[ -]?(\d{4})(?!\d)")
_ANY_DIGITS = re.compile(r"[\d０-９]")
_WIDE_DIGITS = re.compile(r"[０-９]")


def _mask_mobile(match: re.Match[str]) -> str:
    return f"{match.group(1)}****{match.group(3)}"


def _mask_landline(match: re.Match[str]) -> str:
    return f"{match.group(1)}-****{match.group(3)}"


def mask_phone(phone: str | None) -> str:
    """138****1234 for a mobile number; 021-****9811 for a landline; stars but the last 4 otherwise."""
    if not phone:
        return ""
    text = phone.translate(_WIDE).strip()
    for pattern, mask in ((_MOBILE, _mask_mobile), (_LANDLINE, _mask_landline)):
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
    """张先生 stays 张先生, 李明女士 becomes 李女士; a full name becomes surname + 某 (张某, 欧阳某);
    a Latin name keeps its initial."""
    if not name:
        return ""
    name = name.strip()
    for polite in _POLITE:
        if name.endswith(polite) and len(name) > len(polite):
            return _surname(name) + polite
    if name.isascii():
        return name[:1] + "***"
    return _surname(name) + "某"


def mask_text(text: str) -> str:
    """Masks every phone number inside free text (ticket content, log lines); dates and ticket numbers stay."""
    if not _ANY_DIGITS.search(text):
        return text
    if _WIDE_DIGITS.search(text):
        text = text.translate(_WIDE)
    text = _MOBILE.sub(_mask_mobile, text)
    return _LANDLINE.sub(_mask_landline, text)


class MaskingFilter(logging.Filter):
    """Masks phone numbers in a record's message, its exception text and the citizen extras.

    It never raises: a record whose arguments do not fit its format string is left for logging's own
    error handling.
    """

    def filter(self, record: logging.LogRecord) -> bool:
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
