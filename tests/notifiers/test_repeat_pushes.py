"""A repeat complaint's push, end to end on both databases: signed hand-overs into the real app, the pushes sent by an
outbox worker to the fake WeCom over loopback, and what each group received (the rig of test_pushes.py)."""

from __future__ import annotations

from bot.domain.lifecycle import Action, ActionRequest
from tests.conftest import API_TOKEN
from tests.notifiers.test_pushes import (  # noqa: F401  (fake and make_rig are fixtures)
    NAME,
    PHONE,
    MakeRig,
    _assert_masked,
    _text,
    fake,
    make_rig,
    regular,
    urgent,
)

FIRST, SECOND = "2026112300201", "2026112300202"


async def test_the_push_of_a_repeat_says_so_with_how_the_one_before_ended_and_stays_masked(make_rig: MakeRig) -> None:  # noqa: F811
    rig = await make_rig("webhook")
    await rig.post(urgent(FIRST))
    now = rig.clock.now()
    await rig.service.act(FIRST, ActionRequest(action=Action.CLAIM, actor="zhouting", at=now))
    await rig.service.act(FIRST, ActionRequest(action=Action.SUBMIT, actor="zhouting", at=now, note="已加固店招"))
    await rig.event(FIRST, {"event_id": "v1", "type": "visit_result", "result": "满意"})
    rig.clock.advance(days=3)
    # the same citizen calls again, the number written the platform's other way, about something else
    written = f"+86 {PHONE[:3]}-{PHONE[3:7]}-{PHONE[7:]}"
    answer = await rig.post(
        urgent(SECOND, citizen_phone=written, title="人行道树枝遮挡", content="人行道树枝遮挡视线", address=None)
    )
    assert answer["status"] == "created"
    await rig.send()
    first, second = rig.group("SRJG")
    assert "重复诉求" not in _text(first)
    text = _text(second)
    assert text.startswith(f"**【紧急】新工单 {SECOND}**\n")
    assert f"重复诉求：30天内第2次（同一来电号码），前次 {FIRST} 已办结（满意）" in text
    _assert_masked([first, second])
    assert written not in text
    assert PHONE[-4:] + "，" not in text
    # the read API shows the same link, masked or not
    response = await rig.client.get(f"/api/tickets/{SECOND}", headers={"Authorization": f"Bearer {API_TOKEN}"})
    repeat = (await response.json())["ticket"]["repeat"]
    assert (repeat["found"], repeat["nth"], repeat["previous"], repeat["reason"]) == (True, 2, FIRST, "phone")


async def test_a_repeat_card_over_the_robot_and_a_digest_line(make_rig: MakeRig) -> None:  # noqa: F811
    rig = await make_rig("robot")
    await rig.post(urgent(FIRST, address="幸福里小区3号1203室", content="店招一角脱落，随时可能掉落"))
    rig.clock.advance(hours=2)
    # a neighbour in the same building, another phone, the same matter
    await rig.post(
        urgent(SECOND, address="幸福里小区３号502室", citizen_phone="13900000099", content="店招脱落一角，随时可能掉落")
    )
    await rig.send()
    cards = [d for d in rig.group("SRJG") if d.msgtype == "template_card"]
    assert len(cards) == 2
    subtitle = cards[1].body["template_card"]["sub_title_text"]
    assert subtitle.splitlines()[0] == f"重复诉求：30天内第2次（同一地址），前次 {FIRST} 待接单"
    assert "重复诉求" not in cards[0].body["template_card"]["sub_title_text"]
    _assert_masked(rig.group("SRJG"))
    assert "幸福里小区" not in subtitle
    # regular tickets of the same caller gathered into the digest: the line of the repeat says so
    rig.clock.advance(minutes=5)
    await rig.post(regular("2026112300203"))
    await rig.post(regular("2026112300204", content="路口流动摊贩又来占道经营"))
    rig.clock.advance(minutes=40)
    assert await rig.pusher.flush() == 1
    await rig.send()
    digest = _text(rig.group("SRJG")[-1])
    assert "【新工单汇总】" in digest
    # the first urgent one had the same phone (the neighbour's had another): the 2nd and the 3rd
    assert "2026112300203（常规）路口流动摊贩占道经营" in digest
    assert "｜重复第2次" in digest
    assert "2026112300204（常规）路口流动摊贩又来占道经营｜重复第3次" in digest
    assert NAME not in digest
    assert PHONE not in digest
