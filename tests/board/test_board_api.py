"""The board's API as a signed-in member sees it: who sees which tickets, the tiles and the deadline list, a
ticket's page with the citizen masked or shown (and that view audited), actions with the chat's checks, CSRF, and
every refusal a clear JSON error that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from sqlalchemy import select

from bot.domain.clock import FrozenClock
from bot.sandbox.web import SANDBOX
from bot.web.keys import STORE, TICKETS
from store.models import audit_log
from tests.board.conftest import Client, hand_over, sign_in, through_wecom
from tests.hotline.importer.support import standard_rows, write_xlsx

CITIZEN = ("李建国", "13812345678", "1203")


def leaks(payload: Any) -> list[str]:
    text = str(payload)
    return [part for part in CITIZEN if part in text]


async def board_of(client: Client, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/board/api/board{query}")
    assert response.status == 200, await response.text()
    return dict(await response.json())


def tile(data: dict[str, Any], key: str) -> int:
    return next(int(t["count"]) for t in data["tiles"] if t["key"] == key)


async def test_signed_out_the_api_says_401_and_a_page_sends_the_browser_to_sign_in(board: Client) -> None:
    response = await board.get("/board/api/board")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "sign_in_required"
    page = await board.get("/board/ticket/A1", allow_redirects=False)
    assert page.status == 302
    location = urlsplit(page.headers["Location"])
    assert location.path == "/board/login"
    assert parse_qs(location.query) == {"next": ["/board/ticket/A1"]}


async def test_wecom_browser_goes_to_the_web_authorisation_and_desktop_to_the_qr_login(board: Client) -> None:
    inside = await board.get("/board/login", allow_redirects=False, headers={"User-Agent": "wxwork/4.1"})
    assert "/connect/oauth2/authorize?" in inside.headers["Location"]
    assert "scope=snsapi_base" in inside.headers["Location"]
    assert inside.headers["Location"].endswith("#wechat_redirect")
    desktop = await board.get("/board/login", allow_redirects=False)
    assert "/wwlogin/sso/login?login_type=CorpApp" in desktop.headers["Location"]
    assert "hotline_board" in desktop.headers.get("Set-Cookie", "")
    cookie = desktop.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/board" in cookie


async def test_a_code_with_another_browsers_state_is_refused(board: Client) -> None:
    await board.get("/board/login", allow_redirects=False)
    response = await board.get("/board/auth?code=abc&state=not-the-one")
    assert response.status == 400
    assert "登录链接已失效" in await response.text()
    assert (await board.get("/board/api/me")).status == 401


async def test_office_sees_every_unit_a_head_their_own_a_handler_theirs_and_unclaimed(board: Client) -> None:
    await hand_over(board, "S1", content="店招松动", category="市容")  # routed to SRJG
    await hand_over(board, "H1", content="垃圾桶满溢", category="环卫")  # routed to HW
    await sign_in(board, "zhangwei")  # dispatcher
    office = await board_of(board)
    assert {r["ticket_no"] for r in office["rows"]} == {"S1", "H1"}
    assert tile(office, "open") == 2
    assert tile(office, "unclaimed") == 2
    await sign_in(board, "chenjing")  # head of SRJG
    head = await board_of(board)
    assert {r["ticket_no"] for r in head["rows"]} == {"S1"}
    hidden = await board.get("/board/api/tickets/H1")  # not told another unit's ticket exists
    missing = await board.get("/board/api/tickets/NOPE")
    assert hidden.status == missing.status == 404
    assert (await hidden.json())["error"]["message"] == "没有找到工单 H1，请核对工单编号。"
    await sign_in(board, "zhouting")  # a handler of SRJG (not its head or deputy): its unclaimed ones, and their own
    handler = await board_of(board)
    assert {r["ticket_no"] for r in handler["rows"]} == {"S1"}
    assert (await board.get("/board/api/board?unit=HW")).status == 200
    assert (await board_of(board, "?unit=HW"))["rows"] == []


async def test_the_rows_are_coloured_by_the_share_of_time_used_and_never_carry_the_citizen(
    board: Client, clock: FrozenClock
) -> None:
    await hand_over(board, "S1", content="店招松动，市民李建国来电，13812345678，幸福里3号1203室", category="市容")
    await sign_in(board, "zhangwei")
    fresh = await board_of(board)
    assert fresh["rows"][0]["band"] == "ok"
    assert not leaks(fresh)
    clock.advance(days=3)
    late = await board_of(board)
    bands = {r["deadline"]: r["band"] for r in late["rows"]}
    assert bands["接单"] == "overdue"  # one working day, long past
    for row in late["rows"]:  # each row's colour is its share of time used
        expected = "overdue" if row["remaining"].startswith("已超时") else "ok" if row["used"] <= 0.5 else "watch"
        assert row["band"] == expected or (row["band"] == "close" and row["used"] > 0.8)
    assert tile(late, "overdue") == 1


async def test_filters_narrow_tiles_and_list_and_bad_ones_are_refused(board: Client) -> None:
    await hand_over(board, "S1", content="店招松动", category="市容")
    await hand_over(board, "S2", content="店招松动", category="市容", is_media=True)
    await sign_in(board, "zhangwei")
    media = await board_of(board, "?media=1")
    assert {r["ticket_no"] for r in media["rows"]} == {"S2"}
    assert tile(media, "open") == 1
    for bad in ("?unit=NOPE", "?state=closed", "?repeat=maybe", "?kind=x"):
        response = await board.get(f"/board/api/board{bad}")
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "bad_filter"


async def test_a_handler_claims_on_the_page_with_the_chats_checks(board: Client) -> None:
    await hand_over(board, "S1", content="店招松动", category="市容")
    csrf = await sign_in(board, "huangqiang")  # head of HW: not SRJG's work
    assert (await board.get("/board/api/tickets/S1")).status == 404
    csrf = await sign_in(board, "zhouting")
    page = await (await board.get("/board/api/tickets/S1")).json()
    codes = [a["code"] for a in page["actions"]]
    assert codes[0] == "claim"
    assert "visit" not in codes
    assert "redispatch" not in codes
    assert page["full"] is False
    assert not leaks(page)
    headers = {"X-CSRF-Token": csrf}
    without = await board.post("/board/api/tickets/S1/actions", json={"action": "claim"})
    assert without.status == 403
    assert (await without.json())["error"]["code"] == "csrf"
    foreign = await board.post(
        "/board/api/tickets/S1/actions", json={"action": "claim"}, headers={**headers, "Origin": "https://evil.example"}
    )
    assert foreign.status == 403
    wrong = await board.post("/board/api/tickets/S1/actions", json={"action": "visit", "result": "x"}, headers=headers)
    assert wrong.status == 400
    claimed = await board.post("/board/api/tickets/S1/actions", json={"action": "claim"}, headers=headers)
    assert claimed.status == 200, await claimed.text()
    assert (await claimed.json())["state"] == "已接单"
    again = await board.post("/board/api/tickets/S1/actions", json={"action": "claim"}, headers=headers)
    assert again.status == 409  # the lifecycle's refusal, in Chinese
    assert (await again.json())["error"]["message"]
    detail = await board.app[TICKETS].get("S1")
    assert detail.ticket.handler_userid == "zhouting"
    # theirs now: the next steps, a return among them (asked as the service asks it: limits, open deadlines)
    codes = [a["code"] for a in (await (await board.get("/board/api/tickets/S1")).json())["actions"]]
    assert {"contact", "submit", "request_return"} <= set(codes)
    extension = await board.post(
        "/board/api/tickets/S1/actions", json={"action": "request_extension", "note": "需协调"}, headers=headers
    )
    assert extension.status == 400
    assert "/延期" in (await extension.json())["error"]["message"]  # asked in the chat, where the approvers are told
    no_note = await board.post("/board/api/tickets/S1/actions", json={"action": "submit"}, headers=headers)
    assert no_note.status == 400


async def test_the_handler_and_a_dispatcher_see_the_citizen_and_each_view_is_audited(board: Client) -> None:
    await hand_over(board, "S1", content="店招松动", category="市容")
    csrf = await sign_in(board, "zhouting")
    await board.post("/board/api/tickets/S1/actions", json={"action": "claim"}, headers={"X-CSRF-Token": csrf})
    mine = await (await board.get("/board/api/tickets/S1")).json()
    assert mine["full"] is True
    assert "13812345678" in str(mine)
    await sign_in(board, "chenjing")  # the unit's head: masked, as in the group
    head = await (await board.get("/board/api/tickets/S1")).json()
    assert head["full"] is False
    assert not leaks(head)
    await sign_in(board, "zhangwei")
    answer = await board.get("/board/api/tickets/S1")
    assert answer.headers["Cache-Control"] == "no-store"  # the citizen's details: kept by no browser or proxy
    office = await answer.json()
    assert office["full"] is True
    async with board.app[STORE].reading() as conn:
        views = (
            (await conn.execute(select(audit_log.c.actor).where(audit_log.c.action == "view_contact"))).scalars().all()
        )
    assert sorted(views) == ["zhangwei", "zhouting"]


async def test_someone_not_in_the_configuration_is_refused(board: Client) -> None:
    board.app[SANDBOX].fake.members["stranger"] = "stranger"  # in the corp, not in the hotline's configuration
    refused = await through_wecom(board, "stranger")
    assert refused.status == 403
    assert "不在本热线系统的成员名单中" in await refused.text()
    assert (await board.get("/board/api/me")).status == 401


async def test_a_replayed_sign_in_link_is_refused(board: Client) -> None:
    first = await through_wecom(board, "zhangwei")
    assert first.status == 302
    again = await board.get(str(first.url.path_qs), allow_redirects=False)  # the same code and state, replayed
    assert again.status == 400


async def test_in_wecoms_browser_sign_in_takes_the_web_authorisation(board: Client) -> None:
    csrf = await sign_in(board, "chenjing", wecom_browser=True)
    assert csrf
    me = await (await board.get("/board/api/me")).json()
    assert me["name"] == "陈静"
    assert me["everything"] is False
    assert [u["code"] for u in me["units"]] == ["SRJG"]


async def test_reports_for_the_office_and_a_head_and_none_for_a_handler(board: Client) -> None:
    await hand_over(board, "S1", content="店招松动", category="市容")
    await sign_in(board, "zhangwei")
    office = await board.get("/board/api/reports?period=本月")
    assert office.status == 200, await office.text()
    data = await office.json()
    assert {r["code"] for r in data["rows"]} >= {"SRJG", "HW"}
    assert data["total"]["received"] == 1
    assert data["columns"][0] == "按时接单率"
    xlsx = await board.get("/board/api/reports/download?period=本月&format=xlsx")
    assert xlsx.status == 200
    assert (await xlsx.read())[:2] == b"PK"
    assert "filename*=UTF-8''" in xlsx.headers["Content-Disposition"]
    csv = await board.get("/board/api/reports/download?period=本月&format=csv&unit=SRJG")
    assert (await csv.text()).startswith("\ufeff")
    assert (await board.get("/board/api/reports?period=明年")).status == 400
    await sign_in(board, "chenjing")  # head of SRJG: their unit, not another's
    mine = await (await board.get("/board/api/reports?period=本月")).json()
    assert [r["code"] for r in mine["rows"]] == ["SRJG"]
    assert (await board.get("/board/api/reports?period=本月&unit=HW")).status == 403
    await sign_in(board, "zhouting")  # a handler
    refused = await board.get("/board/api/reports?period=本月")
    assert refused.status == 403
    assert "/报表" in (await refused.json())["error"]["message"]


async def test_the_reports_chart_is_a_png(board: Client) -> None:
    await hand_over(board, "S1", content="店招松动", category="市容")
    await sign_in(board, "zhangwei")
    chart = await board.get("/board/api/reports/chart.png?period=本月")
    if chart.status == 503:  # no CJK font on this machine: the error says so (make fonts installs it)
        assert (await chart.json())["error"]["code"] == "chart_unavailable"
        return
    assert chart.status == 200
    assert (await chart.read()).startswith(b"\x89PNG")


async def test_the_office_imports_an_export_and_reads_its_progress_and_report(board: Client, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "export.xlsx", standard_rows())
    csrf = await sign_in(board, "zhangwei")

    def upload(dry: bool = False) -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field("file", path.read_bytes(), filename="平台导出.xlsx")
        data.add_field("dry_run", "true" if dry else "false")
        return data

    assert (await board.post("/board/api/imports", data=upload())).status == 403  # no CSRF token
    response = await board.post("/board/api/imports", data=upload(), headers={"X-CSRF-Token": csrf})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in (await response.text()).splitlines()]
    assert lines[0] == {"done": 0, "total": None}
    assert lines[-2]["done"] == lines[-2]["total"] > 0  # the batch's progress, then the report
    report = lines[-1]["report"]
    assert (report["total"], report["created"], len(report["errors"])) == (10, 5, 5)
    assert (await board.get("/board/api/tickets/" + "2026112000005")).status == 200
    broken = aiohttp.FormData()
    broken.add_field("file", b"PK\x03\x04 not really a workbook", filename="坏文件.xlsx")
    bad = await board.post("/board/api/imports", data=broken, headers={"X-CSRF-Token": csrf})
    assert json.loads((await bad.text()).splitlines()[-1])["error"]["code"] == "invalid_file"
    await sign_in(board, "chenjing")  # a unit head: not the office's import
    me = await (await board.get("/board/api/me")).json()
    refused = await board.post("/board/api/imports", data=upload(), headers={"X-CSRF-Token": me["csrf"]})
    assert refused.status == 403


async def test_signing_out_ends_the_session_and_a_link_cannot_sign_a_member_out(board: Client) -> None:
    csrf = await sign_in(board, "zhangwei")
    again = await board.get("/board/login?next=/board/reports", allow_redirects=False)
    assert again.status == 302
    assert again.headers["Location"] == "/board/reports"  # still signed in: not sent to WeCom
    assert (await board.get("/board/api/me")).status == 200
    out = await board.post("/board/api/logout", headers={"X-CSRF-Token": csrf})
    assert (await out.json())["next"] == "/board/signed-out"
    assert (await board.get("/board/api/me")).status == 401
    page = await board.get("/board/signed-out")
    assert "已退出" in await page.text()


async def test_a_sign_in_link_with_odd_input_is_refused_politely(board: Client) -> None:
    started = await board.get("/board/login?next=/board/%0d%0aSet-Cookie:x=1", allow_redirects=False)
    assert started.status == 302
    assert (await board.get("/board/auth?code=abc&state=%C3%A9", allow_redirects=False)).status == 400


async def test_a_board_address_that_is_no_page_answers_a_page_in_chinese_and_the_api_keeps_json(
    board: Client,
) -> None:
    await sign_in(board, "wuhao")
    missing = await board.get("/board/no-such-page")
    assert (missing.status, missing.content_type) == (404, "text/html")
    page = await missing.text()
    assert "页面不存在" in page
    assert 'href="/board/"' in page
    wrong_way = await board.post("/board/ticket/2026112300001", headers={"Origin": str(board.make_url(""))})
    assert (wrong_way.status, wrong_way.content_type) == (405, "text/html")
    assert "GET" in wrong_way.headers["Allow"]
    api = await board.get("/board/api/no-such-thing")
    assert (api.status, api.content_type) == (404, "application/json")
    assert (await api.json())["error"]["code"] == "not_found"
    elsewhere = await board.get("/api/no-such-thing")
    assert elsewhere.content_type == "application/json"
