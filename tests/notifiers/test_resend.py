"""The 【补发】 mark on a message resent after an unsure send: before the title, the rest unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from notifiers.resend import marked


@pytest.mark.parametrize(
    ("msgtype", "content", "expected"),
    [
        (
            "markdown",
            {"content": "**【紧急】新工单 2026112300001**\n路灯不亮"},
            {"content": "**【补发】【紧急】新工单 2026112300001**\n路灯不亮"},
        ),
        ("markdown", {"content": "工单 2026112300001 已改派"}, {"content": "【补发】工单 2026112300001 已改派"}),
        (
            "text",
            {"content": "工单 2026112300001 即将超时", "mentioned_list": ["wuhao"]},
            {"content": "【补发】工单 2026112300001 即将超时", "mentioned_list": ["wuhao"]},
        ),
        (
            "template_card",
            {"card_type": "button_interaction", "main_title": {"title": "【紧急】路灯不亮", "desc": "环卫所"}},
            {"card_type": "button_interaction", "main_title": {"title": "【补发】【紧急】路灯不亮", "desc": "环卫所"}},
        ),
        (
            "template_card",
            {"card_type": "text_notice", "sub_title_text": "工单 2026112300001"},
            {"card_type": "text_notice", "sub_title_text": "工单 2026112300001", "main_title": {"title": "【补发】"}},
        ),
        (
            "textcard",
            {"title": "新工单", "description": "d", "url": "u"},
            {"title": "【补发】新工单", "description": "d", "url": "u"},
        ),
        (
            "news",
            {"articles": [{"title": "新工单", "url": "u"}, {"title": "另一件", "url": "v"}]},
            {"articles": [{"title": "【补发】新工单", "url": "u"}, {"title": "另一件", "url": "v"}]},
        ),
        (
            "image",
            {"base64": "aGk=", "md5": "49f68a5c8493ec2c0bf489821c21fc3b"},
            {"base64": "aGk=", "md5": "49f68a5c8493ec2c0bf489821c21fc3b"},
        ),
    ],
)
def test_the_mark_goes_before_the_title_and_leaves_the_rest(
    msgtype: str, content: dict[str, Any], expected: dict[str, Any]
) -> None:
    original = repr(content)
    assert marked(msgtype, content) == expected
    assert repr(content) == original  # the message itself is not changed
