"""Repeat complaints' rules (bot.domain.repeats): one number or place however it is written, what is too vague to
match by, how alike two texts are, and when a ticket repeats another."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.domain.clock import TZ
from bot.domain.repeats import (
    BOTH,
    RepeatRules,
    Subject,
    address_key,
    likeness,
    normalise_address,
    normalise_phone,
    phone_key,
    reasons_label,
    signature,
    similarity,
    words,
)
from config.model import Repeats

AT = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)


@pytest.mark.parametrize(
    "written",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "+86 138 1234 5678",
        "+86-13812345678",
        "008613812345678",
        "8613812345678",
        "013812345678",
        "１３８１２３４５６７８",
        "(+86) 138 1234 5678",
        "13812345678转8001",
    ],
)
def test_a_mobile_number_is_one_key_however_it_is_written(written: str) -> None:
    assert normalise_phone(written) == "13812345678"
    assert phone_key(written) == phone_key("13812345678")


@pytest.mark.parametrize(
    "written", ["021-62859811", "(021)62859811", "021 6285 9811", "62859811", "+86 21 6285 9811", "0086-21-62859811"]
)
def test_a_landline_is_its_local_number_with_or_without_its_area_code(written: str) -> None:
    assert normalise_phone(written) == "62859811"


def test_other_area_codes_and_service_numbers() -> None:
    assert normalise_phone("0571-87654321") == "87654321"
    assert normalise_phone("010-6512 3456") == "65123456"
    assert normalise_phone("400-820-8820") == "4008208820"


@pytest.mark.parametrize("written", [None, "", "无", "12345", "000000000", "11111111111", "--"])
def test_no_usable_number_is_no_key(written: str | None) -> None:
    assert phone_key(written) is None


def test_the_key_is_a_hash_not_the_number() -> None:
    key = phone_key("13812345678")
    assert key is not None
    assert len(key) == 32
    assert "13812345678" not in key
    assert "5678" not in key


@pytest.mark.parametrize(
    ("written", "place"),
    [
        ("上海市浦东新区幸福里小区3号楼2单元1203室", "幸福里小区3号"),
        ("幸福里小区３号１５０２室", "幸福里小区3号"),
        ("幸福里小区 3 号 402 室", "幸福里小区3号"),
        ("幸福里小区3#楼502", "幸福里小区3号"),
        ("幸福里小区三号楼", "幸福里小区3号"),
        ("浦东新区幸福里小区3栋", "幸福里小区3号"),
        ("光明路88弄5号402室", "光明路88弄5号"),
        ("光明路88弄5-402", "光明路88弄5号"),
        ("演示街道人民路56号", "人民路56号"),
        ("人民路56号3楼", "人民路56号"),
        ("徐汇区漕溪北路二十号", "漕溪北路20号"),
        ("ＸＸ大厦Ａ座1502", "xx大厦a号"),
        ("幸福里小区1203室", "幸福里小区"),
        ("幸福里小区门口", "幸福里小区门口"),
    ],
)
def test_an_address_names_its_building_without_the_flat(written: str, place: str) -> None:
    assert normalise_address(written) == place


@pytest.mark.parametrize("written", [None, "", "人民路", "浦东新区", "上海市徐汇区", "3号1203室"])
def test_too_vague_an_address_is_no_key(written: str | None) -> None:
    assert address_key(written) is None


def test_neighbours_in_one_building_are_one_place_but_the_next_building_is_not() -> None:
    assert address_key("幸福里小区3号1203室") == address_key("幸福里小区3号502室")
    assert address_key("幸福里小区3号1203室") != address_key("幸福里小区4号1203室")
    assert address_key("幸福里小区3号") != address_key("光明里小区3号")


def test_similar_texts_share_most_of_their_character_pairs() -> None:
    a = words("环卫", None, "市民来电反映：小区门口垃圾桶满溢，垃圾清运不及时，气味很大")
    b = words("环卫", None, "小区门口垃圾桶又满了，三天没人清运，臭味很大，请尽快处理")
    c = words("市容景观", None, "楼道内有人堆放杂物，影响消防通道")
    assert similarity(a, b) >= 0.3
    assert similarity(a, c) < 0.1
    assert similarity(a, frozenset()) == 0.0
    # the stock phrases and the numbers say nothing of the matter
    assert words(None, None, "市民来电反映 2026 请尽快处理") == frozenset()
    # nor does the ticket's own address, which its text names
    here = words("环卫", None, "幸福里小区3号门口垃圾桶满溢", "幸福里小区3号1203室")
    there = words("市容景观", None, "幸福里小区3号门口店招脱落", "幸福里小区3号502室")
    assert "福里" not in here
    assert similarity(here, there) < Repeats().similarity


def test_the_stored_signature_compares_as_the_pairs_do() -> None:
    texts = [
        ("环卫", "小区门口垃圾桶满溢，垃圾清运不及时，气味很大"),
        ("环卫", "小区门口垃圾桶又满了，三天没人清运，臭味很大，请尽快处理"),
        ("市容景观", "楼道内有人堆放杂物，影响消防通道"),
        ("市容景观", "店招一角脱落，随时可能掉落，存在安全隐患"),
    ]
    for i, (c1, t1) in enumerate(texts):
        for c2, t2 in texts[i:]:
            exact = similarity(words(c1, None, t1), words(c2, None, t2))
            assert abs(likeness(signature(c1, None, t1), signature(c2, None, t2)) - exact) < 0.1
    first = signature("环卫", None, texts[0][1])
    assert first is not None
    assert len(first) == 64
    assert signature(None, None, "2026，请尽快处理") is None
    assert likeness(None, first) == 0.0


def _subject(
    ref: str, at: datetime, *, phone: str | None = None, address: str | None = None, text: str = ""
) -> Subject:
    return Subject(
        ref=ref,
        ticket_no=ref,
        at=at,
        order=0,
        phone=phone_key(phone),
        address=address_key(address),
        signature=signature("环卫", None, text, address),
    )


GARBAGE = "小区门口垃圾桶满溢，垃圾清运不及时"
GARBAGE_AGAIN = "小区门口垃圾桶又满溢了，没人清运"
CLUTTER = "楼道内有人堆放杂物，影响消防通道"


def test_the_same_phone_repeats_whatever_the_text_within_the_window() -> None:
    rules = RepeatRules(Repeats())
    old = _subject("A", AT - timedelta(days=29), phone="13812345678", text=GARBAGE)
    new = _subject("B", AT, phone="+86 138-1234-5678", text=CLUTTER)
    assert rules.earlier(new, old)
    assert rules.reason(new, old) == "phone"
    assert not rules.earlier(_subject("C", AT + timedelta(days=2), phone="13812345678"), old)  # 31 days later
    assert not rules.earlier(old, new)  # the later is never the earlier


def test_the_same_place_repeats_only_with_a_similar_text() -> None:
    rules = RepeatRules(Repeats())
    old = _subject("A", AT - timedelta(days=3), address="幸福里小区3号1203室", text=GARBAGE)
    assert rules.reason(_subject("B", AT, address="幸福里小区3号502室", text=GARBAGE_AGAIN), old) == "address"
    assert rules.reason(_subject("C", AT, address="幸福里小区3号502室", text=CLUTTER), old) is None
    both = _subject("D", AT, phone="13812345678", address="幸福里小区3号", text=GARBAGE_AGAIN)
    assert rules.reason(both, _subject("E", AT, phone="13812345678", address="幸福里小区3号", text=GARBAGE)) == BOTH


def test_the_signals_thresholds_and_ignored_numbers_are_configuration() -> None:
    old = _subject("A", AT - timedelta(days=3), phone="13812345678", address="幸福里小区3号", text=GARBAGE)
    new = _subject("B", AT, phone="13812345678", address="幸福里小区3号", text=CLUTTER)
    assert RepeatRules(Repeats(signals=["address"])).reason(new, old) is None
    assert RepeatRules(Repeats(phone_similarity=0.3)).reason(new, old) is None
    assert RepeatRules(Repeats(ignore_phones=["138 1234 5678"])).reason(new, old) is None
    again = _subject("C", AT, address="幸福里小区3号", text=GARBAGE_AGAIN)
    assert RepeatRules(Repeats(similarity=0.9)).reason(again, old) is None
    assert RepeatRules(Repeats(window="2d")).earlier(new, old) is False


def test_the_reasons_in_words_never_carry_the_number_or_the_address() -> None:
    assert reasons_label(["phone"]) == "同一来电号码"
    assert reasons_label(["address", "phone+address"]) == "同一来电号码、同一地址"
    assert reasons_label([""]) == ""


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"window": "3wd"}, "natural time"),
        ({"window": "30m"}, "between 1h and 366d"),
        ({"window": "400d"}, "between 1h and 366d"),
        ({"signals": ["phone", "phone"]}, "at most once"),
        ({"signals": ["email"]}, "phone"),
        ({"similarity": 0}, "greater than 0"),
        ({"similarity": 1.5}, "less than or equal to 1"),
    ],
)
def test_the_configuration_refuses_what_makes_no_sense(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Repeats.model_validate(settings)
