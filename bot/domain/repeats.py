"""Repeat complaints (重复工单): the keys a ticket is matched by, and when two tickets are the same matter.

Two signals, each a key stored with the ticket and indexed with its 派单时间 (so that matching reads the few tickets
of one key within the window, never the whole table):

* **the phone** (:func:`phone_key`): the citizen's number however it is written. Full-width digits, spaces, dashes
  and brackets are dropped, and so are the country code (+86, 0086, 86) and an extension (转 8001). A mobile number
  is its 11 digits; a landline is its local number, with or without its area code (021-62859811, (021)6285 9811
  and 62859811 are one line). A number of fewer than 7 digits, or of one digit repeated, is no key.
* **the place** (:func:`address_key`): the address without what only tells one flat from another, so that
  neighbours in one building, complaining of the same thing, are one place. Full-width letters and digits become
  half-width, spaces and punctuation go, Chinese numerals before 号/弄/栋… become digits, 号楼/栋/幢/座/# become 号,
  the province, city, district and sub-district in front are dropped (上海市浦东新区…街道), and everything after the
  building's number (单元, floor, 室, 户, the flat's number) is cut: 上海市浦东新区幸福里小区3号楼2单元1203室 and
  幸福里小区３号１５０２室 are both 幸福里小区3号. What is left must have at least 4 characters: a road without a
  number (人民路) or a district alone (浦东新区) names no place.

Both keys are stored as a hash (:func:`_digest`, SHA-256 of the normalised form): the phone and the address are in
the ticket's own columns already, so the key adds no copy of them in clear to another column and its index. The
hash is not a secret (a phone number's hash can be found by trying them all), only no second plain copy.

A phone match suffices (with ``repeats.phone_similarity`` above 0, the texts must also be that similar); a place
match needs similar texts (:func:`similarity` at least ``repeats.similarity``): the share of character pairs
(bigrams) two tickets' category, title and text have in common (Jaccard), digits, punctuation, the hotline's
stock phrases (市民来电反映, 请尽快处理 …) and the pairs of the ticket's own address left out. The pairs are stored with
the ticket as a 512-bit signature (:func:`signature`), so that comparing the few tickets the keys found costs two
integer operations each (:func:`likeness`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from config.model import Repeats

PHONE, ADDRESS = "phone", "address"
BOTH = "phone+address"
KEY_CHARS = 32  # of the hex digest
WORDS_CHARS = 160  # of the ticket's text compared (its start says what it is about)
SIGNATURE_BITS = 512  # of a text's stored signature (64 bytes)
MIN_ADDRESS_CHARS = 4

# --- phones --------------------------------------------------------------------------------------------------------

_EXTENSION = re.compile(r"(?:转|分机|ext\.?|x)\s*\d+\s*$", re.IGNORECASE)
_MOBILE = re.compile(r"1[3-9]\d{9}")


def normalise_phone(phone: str | None) -> str | None:
    """The number a phone field holds, as matching compares it: a mobile's 11 digits, a landline's local number
    (without its area code), another number's digits; None when it holds no usable number."""
    if not phone:
        return None
    text = _EXTENSION.sub("", unicodedata.normalize("NFKC", phone).strip())
    international = text.startswith("+")
    digits = re.sub(r"\D", "", text)
    if digits.startswith("0086"):
        digits, international = digits[4:], True
    elif digits.startswith("86") and (international or (len(digits) == 13 and digits[2] == "1")):
        digits, international = digits[2:], True
    if digits.startswith("01") and _MOBILE.fullmatch(digits[1:]):
        digits = digits[1:]  # a mobile dialled with the long-distance 0
    if _MOBILE.fullmatch(digits):
        return digits
    if international and not digits.startswith("0"):
        digits = "0" + digits  # +86 21 … : the area code lost its 0
    if digits.startswith("0") and len(digits) >= 10:
        digits = digits[3:] if digits[1] in "12" else digits[4:]  # 010, 02x: 3 digits; the others 4
    if len(digits) < 7 or len(set(digits)) == 1:
        return None
    return digits


def phone_key(phone: str | None) -> str | None:
    normal = normalise_phone(phone)
    return None if normal is None else _digest("p:" + normal)


# --- addresses -----------------------------------------------------------------------------------------------------

_CN_DIGITS = dict(zip("〇零一二两三四五六七八九", "001223456789", strict=True))
_CN_NUMBER = re.compile(r"[〇零一二两三四五六七八九十百]+(?=[号弄栋幢座楼单元室层户])")
_BUILDING_WORDS = re.compile(r"号楼|[栋幢座#]")
_PUNCTUATION = re.compile(r"[\s,，。.、·・;；:：()（）\[\]【】<>《》\"'“”‘’_~～/\\|]+")
# the administrative parts in front: province, city, district or county, sub-district or town (each at most once)
_PREFIX = re.compile(
    r"^(?:[^\d]{2,3}?省)?(?:[^\d]{2,3}?市)?(?:[^\d]{2,4}?(?:新区|(?<![小社园景校厂营])区|县))?"
    r"(?:[^\d]{2,4}?(?:街道|镇|乡))?"
)
# the building's (or the house's) number: 3号, 88弄5号, a座 — everything after the last one is the flat
_BUILDING = re.compile(r"(?:\d+|[a-z])号")
# without a building number: a flat, floor or unit at the end (幸福里小区1203室, 5楼)
_FLAT_TAIL = re.compile(r"[a-z]?\d+(?:单元|层|楼|室|户|房).*$")


def _cn_number(match: re.Match[str]) -> str:
    text = match.group(0)
    if "百" in text:
        return text  # 三百号: rare enough to leave as written
    if "十" in text:
        tens, _, ones = text.partition("十")
        return str((int(_CN_DIGITS.get(tens, "1")) if tens else 1) * 10 + (int(_CN_DIGITS[ones]) if ones else 0))
    return "".join(_CN_DIGITS[c] for c in text)


def normalise_address(address: str | None) -> str | None:
    """The place an address names, as matching compares it (see the module's docstring), or None when too little is
    left of it to name a place."""
    if not address:
        return None
    if not unicodedata.is_normalized("NFKC", address):  # most are (and the check costs a fraction of the change)
        address = unicodedata.normalize("NFKC", address)
    text = _PUNCTUATION.sub("", address.casefold())
    text = _CN_NUMBER.sub(_cn_number, text)
    text = _BUILDING_WORDS.sub("号", text)
    text = re.sub(r"(\d+)-\d+.*$", r"\1号", text)  # 56弄3-1203: building 3, flat 1203
    text = re.sub(r"号+", "号", text)
    text = _PREFIX.sub("", text, count=1)  # a district alone (浦东新区) names no place: nothing is left
    numbers = list(_BUILDING.finditer(text))
    text = text[: numbers[-1].end()] if numbers else _FLAT_TAIL.sub("", text)
    return text if len(text) >= MIN_ADDRESS_CHARS else None


def address_key(address: str | None) -> str | None:
    normal = normalise_address(address)
    return None if normal is None else _digest("a:" + normal)


def _digest(text: str) -> str:
    """The stored key (the same as PostgreSQL's ``left(encode(sha256(convert_to(text, 'UTF8')), 'hex'), 32)``)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_CHARS]


# --- texts ---------------------------------------------------------------------------------------------------------

# the hotline's stock phrases: in nearly every ticket, they say nothing of what it is about
_STOCK = re.compile(
    r"市民来电反映|来电反映|市民反映|市民来电|来电人|诉求人|来电称|反映|要求|希望|请相关部门|相关部门|请尽快|尽快|处理|解决"
)
_NOT_WORDS = re.compile(r"[^a-z\u4e00-\u9fff]+")


def words(category: str | None, title: str | None, content: str | None, address: str | None = None) -> frozenset[str]:
    """The character pairs (bigrams) a ticket's text is compared by: category, title and the start of its text,
    without digits, punctuation, stock phrases and the pairs of its own address (the place is the other signal:
    two matters at one place, each text naming it, are not alike for that)."""
    found = _bigrams(f"{category or ''} {title or ''} {(content or '')[:WORDS_CHARS]}")
    return found - _bigrams(address) if address else found


def _bigrams(text: str | None) -> frozenset[str]:
    # no NFKC here (it costs more than the rest): what it would fold, full-width digits and punctuation, goes anyway
    text = _NOT_WORDS.sub(" ", _STOCK.sub(" ", (text or "").casefold()))
    return frozenset(part[i : i + 2] for part in text.split() for i in range(len(part) - 1))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard: the pairs both have, of those either has (0 when either has none)."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def signature(category: str | None, title: str | None, content: str | None, address: str | None = None) -> bytes | None:
    """:func:`words` as stored with the ticket: each pair sets one of :data:`SIGNATURE_BITS` bits (by its CRC-32), so
    that matching compares two tickets by two integers, never by reading and splitting their texts again. None for a
    text without any pair."""
    found = words(category, title, content, address)
    if not found:
        return None
    bits = 0
    for pair in found:
        bit = _BITS.get(pair)
        if bit is None:
            bit = zlib.crc32(pair.encode("utf-8")) % SIGNATURE_BITS
            if len(_BITS) < _BITS_KEPT:
                _BITS[pair] = bit
        bits |= 1 << bit
    return bits.to_bytes(SIGNATURE_BITS // 8, "big")


# each pair's bit, as computed so far: the pairs of a hotline's texts are a few tens of thousands, met again and again
_BITS: dict[str, int] = {}
_BITS_KEPT = 200_000


def likeness(a: bytes | None, b: bytes | None) -> float:
    """:func:`similarity` of two tickets from their signatures: the bits both have set, of those either has (with 512
    bits, a text's pairs rarely share one: within a few hundredths of the exact figure)."""
    if not a or not b:
        return 0.0
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    union = (x | y).bit_count()
    return (x & y).bit_count() / union if union else 0.0


# --- the rules -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    """A ticket as matching sees it: its keys and signature, when it was dispatched. ``order`` breaks a tie of two
    tickets dispatched at the same moment (the one the bot had first is the earlier)."""

    ref: int | str  # the stored ticket's id, or the new ticket's number
    ticket_no: str
    at: datetime
    order: int
    phone: str | None
    address: str | None
    signature: bytes | None = None


class RepeatRules:
    """``repeats`` of the config, as a decision: whether a ticket repeats an earlier one, and by what."""

    def __init__(self, settings: Repeats) -> None:
        self.enabled = settings.enabled
        self.window: timedelta = settings.window.natural()
        self.by_phone = PHONE in settings.signals
        self.by_address = ADDRESS in settings.signals
        self.similarity = settings.similarity
        self.phone_similarity = settings.phone_similarity
        self.ignored = frozenset(k for k in (phone_key(p) for p in settings.ignore_phones) if k is not None)

    def phone_of(self, subject: Subject) -> str | None:
        """The phone key matching uses (None: no phone, an ignored one, or phones are no signal)."""
        return subject.phone if self.by_phone and subject.phone not in self.ignored else None

    def address_of(self, subject: Subject) -> str | None:
        return subject.address if self.by_address else None

    def earlier(self, new: Subject, old: Subject) -> bool:
        """Whether ``old`` came before ``new`` and within the window before it."""
        if (old.at, old.order) >= (new.at, new.order):
            return False
        return new.at - old.at <= self.window

    def reason(self, new: Subject, old: Subject) -> str | None:
        """Why ``new`` and ``old`` are the same matter (``phone``, ``address`` or ``phone+address``), or None. The
        window is :meth:`earlier`'s to check."""
        phone = self.phone_of(new)
        by_phone = phone is not None and phone == old.phone
        if by_phone and self.phone_similarity > 0:
            by_phone = likeness(new.signature, old.signature) >= self.phone_similarity
        address = self.address_of(new)
        by_address = (
            address is not None and address == old.address and likeness(new.signature, old.signature) >= self.similarity
        )
        if by_phone and by_address:
            return BOTH
        return PHONE if by_phone else ADDRESS if by_address else None


def reasons_label(reasons: Iterable[str]) -> str:
    """同一来电号码、同一地址: what matched, in words (never the number or the address themselves)."""
    found = {part for reason in reasons for part in reason.split("+")}
    labels = [label for key, label in ((PHONE, "同一来电号码"), (ADDRESS, "同一地址")) if key in found]
    return "、".join(labels)
