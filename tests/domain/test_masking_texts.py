"""Real-looking 12345 ticket texts, in the platform's style, through :func:`bot.domain.masking.mask_text`: what must
be masked (the citizen's name, phone however written, ID-card number, flat) and what must stay readable (dates,
amounts, street names, ticket numbers, and the masked forms themselves: 李某某, 3号***室, 138****5678)."""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

import pytest

from bot.domain.masking import Citizen, mask_address, mask_text


class Case(NamedTuple):
    text: str
    hidden: tuple[str, ...]  # must not appear in the masked text
    kept: tuple[str, ...]  # must appear in it, as written here
    citizen: Citizen | None = None  # the ticket's own name and address


LJG = Citizen("李建国", "上海市黄浦区幸福里小区3号1203室")
WXY = Citizen("王秀英", "演示街道人民路56号")
CLX = Citizen("陈立新先生", "光明路88弄5号")
OYNN = Citizen("欧阳娜娜", "建国西路120弄7号602室")
ZHANG = Citizen("张先生", None)

CASES = [
    # the ticket's own citizen: name and address anywhere, with or without a word before them
    Case(
        "市民李建国来电反映：幸福里小区3号1203室楼上漏水已一周，身份证310101198001011234，要求尽快处理。",
        ("李建国", "1203", "310101198001011234"),
        ("市民李某某来电反映", "幸福里小区3号***室", "已一周", "1234，要求"),
        LJG,
    ),
    Case(
        "李建国称上海市黄浦区幸福里小区3号1203室下水道堵塞，2026年11月20日已报修未果。",
        ("李建国", "1203"),
        ("李某某称", "上海市黄浦区幸福里小区3号***室", "2026年11月20日"),
        LJG,
    ),
    Case("处理结果：已电话联系李建国，约定11月25日上门。", ("李建国",), ("联系李某某", "11月25日"), LJG),
    Case("李建国先生对处理结果表示满意。", ("李建国",), ("李先生对处理结果",), LJG),
    Case(
        "王秀英反映演示街道人民路56号店招一角脱落，随时可能掉落，联系电话13800000013。",
        ("王秀英", "人民路56号", "13800000013"),
        ("王某某反映", "演示街道人民路***号", "138****0013"),
        WXY,
    ),
    Case("回访：王秀英女士表示问题已解决。", ("王秀英",), ("王女士表示",), WXY),
    Case("陈立新反映光明路88弄5号门前污水外溢。", ("陈立新", "88弄5号"), ("陈某某反映", "光明路88弄***号门前"), CLX),
    Case(
        "市民欧阳娜娜称建国西路120弄7号602室噪音扰民。", ("娜娜", "602"), ("欧阳某某称", "建国西路120弄7号***室"), OYNN
    ),
    Case("市民张先生反映小区绿化带被毁。", (), ("市民张先生反映小区绿化带被毁。",), ZHANG),
    # names introduced by the usual words
    Case(
        "来电人王芳（身份证号31010119850315002X）称小区垃圾清运不及时。",
        ("王芳", "31010119850315002X"),
        ("来电人王某某", "002X"),
    ),
    Case("居民赵志刚反映楼道堆物，存在消防隐患。", ("赵志刚",), ("居民赵某某反映楼道堆物",)),
    Case("诉求人：孙丽华，反映漕溪北路绿化修剪不及时。", ("孙丽华",), ("诉求人：孙某某", "漕溪北路")),
    Case("反映人周建平称共康路路灯不亮已有三天。", ("周建平",), ("反映人周某某称", "共康路", "三天")),
    Case("业主陈立新反映物业私自改建绿地。", ("陈立新",), ("业主陈某某反映",)),
    Case("群众吴晓东多次反映夜间施工扰民。", ("吴晓东",), ("群众吴某某多次反映",)),
    Case("投诉人刘海涛称饭店油烟直排。", ("刘海涛",), ("投诉人刘某某称",)),
    Case("举报人黄丽娟：凯旋路口有人倾倒建筑垃圾。", ("黄丽娟",), ("举报人黄某某：", "凯旋路口")),
    Case("求助人郑国强家中化粪池满溢。", ("郑国强",), ("求助人郑某某家中",)),
    Case("村民马德华反映村口垃圾房未清理。", ("马德华",), ("村民马某某反映",)),
    Case("住户何美玲称楼上空调滴水。", ("何美玲",), ("住户何某某称",)),
    Case("联系人：林小军，电话138 1234 5678。", ("林小军", "138 1234 5678"), ("联系人：林某某", "138****5678")),
    Case("姓名：诸葛明亮；地址：天山路600弄3号1801室。", ("明亮", "1801"), ("姓名：诸葛某某", "天山路600弄3号***室")),
    Case("市民李明来电，称长寿路隔离栏倒伏。", ("李明",), ("市民李某某来电", "长寿路")),
    Case("王建国先生来电反映小区门口占道经营。", ("王建国",), ("王先生来电",)),
    Case("市民杨秀兰女士反映公园厕所无人保洁。", ("杨秀兰",), ("市民杨女士反映",)),
    Case("市民 徐卫东 反映共和新路有大件垃圾。", ("徐卫东",), ("市民 徐某某 反映", "共和新路")),
    # ID-card numbers, 18 digits with the check character, and 15
    Case("身份证：310104199203154417，要求核实。", ("310104199203154417",), ("4417",)),
    Case("提供身份证号码44030119780621381x办理。", ("44030119780621381x",), ("381x",)),
    Case("老身份证号310101800101123已过期。", ("310101800101123",), ("1123已过期",)),
    Case("身份证３１０１０４１９９２０３１５４４１７", ("３１０１０４１９９２０３１５４４１７",), ("4417",)),
    # flats
    Case("光明路88弄5号602室漏水。", ("602",), ("光明路88弄5号***室",)),
    Case("天钥桥路100号5号楼2单元1203室门口堆放杂物。", ("1203",), ("天钥桥路100号5号楼2单元***室",)),
    Case("某小区12栋1502室装修噪音。", ("1502",), ("12栋***室",)),
    Case("幸福里3号1203楼上渗水。", ("1203",), ("幸福里3号***楼上渗水",)),
    Case("3号楼2单元1102噪音扰民。", ("1102",), ("3号楼2单元***噪音",)),
    Case("浦东南路1200弄9号A1201室", ("A1201",), ("浦东南路1200弄9号***室",)),
    # phones, every writing
    Case("电话138.1234.5678", ("138.1234.5678",), ("138****5678",)),
    Case("电话138_1234_5678", ("138_1234_5678",), ("138****5678",)),
    Case("电话138/1234/5678", ("138/1234/5678",), ("138****5678",)),
    Case("电话138－1234－5678", ("138－1234－5678",), ("138****5678",)),
    Case("电话138—1234—5678", ("138—1234—5678",), ("138****5678",)),
    Case("电话138 1234 5678", ("138 1234 5678",), ("138****5678",)),
    Case("电话138\u00a01234\u00a05678", ("138\u00a01234\u00a05678",), ("138****5678",)),
    Case("电话１３８１２３４５６７８", ("１３８１２３４５６７８",), ("138****5678",)),
    Case("请回电一三八一二三四五六七八", ("一三八一二三四五六七八",), ("请回电138****5678",)),
    Case("手机幺三八幺二三四五六七八", ("幺三八幺二三四五六七八",), ("138****5678",)),
    Case("联系方式+86 138 1234 5678", ("138 1234 5678",), ("138****5678",)),
    Case("联系方式+8613812345678或8613912345678", ("13812345678", "13912345678"), ("138****5678", "139****5678")),
    Case("座机021-62859811，分机号除外", ("62859811",), ("021-****9811",)),
    Case("座机(021)6285 9811", ("6285 9811",), ("021-****9811",)),
    Case("座机+86-21-6285-9811", ("6285-9811",), ("021-****9811",)),
    Case("座机0571－87654321", ("87654321",), ("0571-****4321",)),
    Case("联系电话：62859811（白天）", ("62859811",), ("****9811",)),
    # what stays readable
    Case(
        "工单2026112300101：2026年11月23日9时派单，罚款2000元，整改金额1.5万元，淮海中路1号。",
        (),
        ("2026112300101", "2026年11月23日9时", "2000元", "1.5万元", "淮海中路1号"),
    ),
    Case("重复工单YS20261122093000001，原工单SH-2026-112200123。", (), ("YS20261122093000001", "SH-2026-112200123")),
    Case("于2026-11-22 15:00到场，三室一厅，面积120平方米。", (), ("2026-11-22 15:00", "三室一厅", "120平方米")),
    Case("市民于今日来电，居民张贴小广告，业主车辆乱停。", (), ("市民于今日来电，居民张贴小广告，业主车辆乱停。",)),
    Case("12345热线转办，请于3个工作日内办结。", (), ("12345热线转办，请于3个工作日内办结。",)),
]


# what a citizen's number looks like once every way of writing it is undone: 11 mobile digits, an ID number
_NUMERALS = str.maketrans("〇零一幺二三四五六七八九", "001123456789")
_BETWEEN_DIGITS = re.compile(r"(?<=\d)[\s\u00a0\-—–._/]+(?=\d)")
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)|(?<!\d)\d{15}(?!\d)")


def plain(text: str) -> str:
    return _BETWEEN_DIGITS.sub("", unicodedata.normalize("NFKC", text).translate(_NUMERALS)).replace("+86", "")


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=[c.text[:16] for c in CASES])
def test_a_ticket_text(case: Case) -> None:
    masked = mask_text(case.text, case.citizen)
    for secret in case.hidden:
        assert secret not in masked, masked
    for shown in case.kept:
        assert shown in masked, masked
    assert not _MOBILE.search(plain(masked)), masked
    assert not _ID.search(plain(masked)), masked
    assert mask_text(masked, case.citizen) == masked  # masked twice reads the same


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("上海市黄浦区幸福里小区3号1203室", "上海市黄浦区幸福里小区3号***室"),
        ("天钥桥路100号5号楼2单元1203室", "天钥桥路100号5号楼2单元***室"),
        ("光明路88弄5号", "光明路88弄***号"),  # no flat: the house number
        ("某区某路 8 号", "某区某路 *** 号"),
        ("幸福里小区", "幸福里小区"),  # no number: nothing that points at a household
        ("", ""),
    ],
)
def test_an_address(address: str, masked: str) -> None:
    assert mask_address(address) == masked


def test_the_ticket_without_a_citizen_still_masks_what_it_can_recognise() -> None:
    text = "李建国来电，幸福里小区3号1203室，身份证310101198001011234"
    assert mask_text(text) == "李建国来电，幸福里小区3号***室，身份证**************1234"  # a bare name needs the ticket
    assert mask_text(text, LJG) == "李某某来电，幸福里小区3号***室，身份证**************1234"


def test_a_two_character_name_that_starts_a_place_leaves_the_place_readable() -> None:
    """市民黄河 living on 黄河路: the street's name stays, the person's does not."""
    citizen = Citizen("黄河", "黄河路12号")
    masked = mask_text("市民黄河反映黄河路12号门口积水，黄河称已多次反映。", citizen)
    assert masked == "市民黄某某反映黄河路***号门口积水，黄某某称已多次反映。"
