"""Text the bot did not write, made inert for WeCom's markdown, text messages and cards (bot.domain.escaping)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.escaping import escape_md

# what would make WeCom interpret a message: its markup characters, a scheme's "://", "www.", and a line that
# starts with a list, rule or heading sign, or is indented
MARKUP = re.compile(
    r"[<>\[\]*_`~#|\\&$\u202a-\u202e\u2066-\u2069]|://|(?i:www\.)|^[ \t]|^[-+=]|^\d{1,9}[.)](?:[ \t]|$)", re.M
)


@pytest.mark.parametrize(
    ("text", "inert"),
    [
        # the ticket
        ("**【系统通知】**<@all>", "＊＊【系统通知】＊＊＜@all＞"),
        ("[热线办紧急通知](http://evil.example/x)", "［热线办紧急通知］(http：//evil.example/x)"),
        ("请 <@huangqiang> 立即处理", "请 ＜@huangqiang＞ 立即处理"),
        # markdown of every kind WeCom renders
        ("# 紧急", "＃ 紧急"),
        ("### 通知", "＃＃＃ 通知"),
        ("> 引用的话", "＞ 引用的话"),
        ("`rm -rf`", "｀rm -rf｀"),
        ("```\n代码块\n```", "｀｀｀\n代码块\n｀｀｀"),
        ('<font color="warning">红字</font>', '＜font color="warning"＞红字＜/font＞'),
        ("*斜体* _斜体_ __粗体__", "＊斜体＊ ＿斜体＿ ＿＿粗体＿＿"),
        ("~~删除线~~", "～～删除线～～"),
        ("![](https://evil.example/a.png)", "!［］(https：//evil.example/a.png)"),
        ("| 姓名 | 电话 |", "｜ 姓名 ｜ 电话 ｜"),
        ("- 第一项\n+ 第二项\n1. 第三项\n2) 第四项", "－ 第一项\n＋ 第二项\n1． 第三项\n2） 第四项"),
        ("标题\n===", "标题\n＝=="),
        ("上文\n---\n下文", "上文\n－--\n下文"),
        ("\n    缩进的代码", "\n缩进的代码"),
        # links without brackets, HTML, entities, id translation, a backslash before the bot's own markup
        ('<a href="http://evil.example">点此</a>', '＜a href="http：//evil.example"＞点此＜/a＞'),
        ("详见 https://evil.example 或 www.evil.example", "详见 https：//evil.example 或 www．evil.example"),
        ("WWW.EVIL.EXAMPLE", "WWW．EVIL.EXAMPLE"),
        ("&lt;@all&gt;", "＆lt;@all＆gt;"),
        ("$userName=huangqiang$", "＄userName=huangqiang＄"),
        ("结尾\\", "结尾＼"),
        # text that reads backwards
        ("正常\u202e文字\u202c", "正常文字"),
        # masked phone numbers: two of them can no longer pair into bold
        ("电话138****5678或139****1234", "电话138＊＊＊＊5678或139＊＊＊＊1234"),
    ],
)
def test_markup_is_made_inert(text: str, inert: str) -> None:
    assert escape_md(text) == inert
    assert not MARKUP.search(inert)


@pytest.mark.parametrize(
    "text",
    [
        "人民路56号店招一角脱落，随时可能掉落",
        "2026年11月23日 9:30，《城市容貌标准》（试行）第3条：店招高度不得超过2.5米。",
        "2026-11-23 14:30 至 17:00，共计1,280.50元（含税）",
        "2026.11.23 上午接到来电",  # a date at a line's start is no list
        "12345热线转来：垃圾箱房两天未清运！请于11月25日前处理？",
        "市民反映“噪音扰民”、‘夜间施工’；要求：停工。",
        "幸福里小区3号楼2单元，绿化带约30㎡被占用，温度-5℃",
        "工单 2026112300123（紧急）",
        "@张三 请跟进",  # a plain @ is no mention
        "多行内容\n第二行\n第三行",
        "",
    ],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert escape_md(text) == text


@given(st.text())
def test_nothing_interpretable_survives_and_escaping_twice_changes_nothing(text: str) -> None:
    inert = escape_md(text)
    assert not MARKUP.search(inert)
    assert escape_md(inert) == inert
