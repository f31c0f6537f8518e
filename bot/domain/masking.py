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
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3}-?)?(\d{3,4})(\d{4})(?!\d)")
_ANY_DIGITS = re.compile(r"\d")


def mask_phone(phone: str | None) -> str:
    """138****1234 for a mobile number; 021-****9811 for a landline; stars for anything else."""
    if not phone:
        return ""
    phone = phone.strip()
    mobile = _MOBILE.fullmatch(phone.replace(" ", "").replace("+86", ""))
    if mobile:
        return f"{mobile.group(1)}****{mobile.group(3)}"
    digits = re.sub(r"\D", "", phone)
    if len(digits) <= 4:
        return "*" * len(digits)
    landline = _LANDLINE.fullmatch(phone.replace(" ", ""))
    if landline:
        prefix = landline.group(1) or ""
        return f"{prefix}****{landline.group(3)}"
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_name(name: str | None) -> str:
    """张先生 stays 张先生; a full name becomes surname + 某 (张某, 欧阳某); Latin names keep the initial."""
    if not name:
        return ""
    name = name.strip()
    for polite in _POLITE:
        if name.endswith(polite) and 1 <= len(name) - len(polite) <= 2:
            return name
    if name.isascii():
        return name[:1] + "***"
    surname = name[:2] if name.startswith(_COMPOUND_SURNAMES) else name[:1]
    return surname + "某"


def mask_text(text: str) -> str:
    """Masks every phone number inside free text (ticket content, log lines)."""
    if not _ANY_DIGITS.search(text):
        return text
    text = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return re.sub(r"(?<![\d*])(0\d{2,3}-)(\d{3,4})(\d{4})(?!\d)", lambda m: f"{m.group(1)}****{m.group(3)}", text)


class MaskingFilter(logging.Filter):
    """A logging filter that masks phone numbers in every record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = mask_text(record.msg)
        for key, value in list(record.__dict__.items()):
            if key == "citizen_phone":
                record.__dict__[key] = mask_phone(str(value))
            elif key == "citizen_name" and isinstance(value, str):
                record.__dict__[key] = mask_name(value)
        return True
