"""The board in a real browser: Debian's Chromium driven by Playwright, at a phone's size (390×844, as WeCom's
built-in browser on a phone) and a desktop's, against the real app with its sandbox over loopback HTTP. A member
signs in through the fake WeCom's page, reads the board (tiles, the coloured deadline list, a filter), opens a
ticket and claims it. Nothing sleeps: every step waits for something in the page. A failing test leaves a
screenshot in the test's temporary folder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.board.conftest import Client, hand_over
from tests.browser import chromium
from tests.hotline.importer.support import standard_rows, write_xlsx

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
WAIT_MS = 15_000  # a bound on each wait, never a pause


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as running:
        yield running


@pytest.fixture
async def phone(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN")
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    yield page
    if getattr(request.node, "failed_call", False):  # set by this folder's conftest
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
    await context.close()


async def sign_in_in_browser(page: Any, board: Client, userid: str, path: str = "/board/") -> None:
    """As a member opening the board's link: the fake WeCom's page, their name picked, back on the board."""
    await page.goto(str(board.make_url(path)))
    await page.locator(f"button[value='{userid}']").click()
    await page.wait_for_url(f"**{path}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_handler_on_a_phone_signs_in_reads_the_board_and_claims_a_ticket(phone: Any, board: Client) -> None:
    await hand_over(board, "S1", content="店招松动，市民李建国来电", category="市容", is_media=True)
    await hand_over(board, "S2", content="店招脱落", category="市容")
    await sign_in_in_browser(phone, board, "zhouting")
    await phone.locator("#who", has_text="周婷").wait_for()
    await phone.locator("#tiles li[data-key='unclaimed'] .n", has_text="2").wait_for()
    rows = phone.locator("#rows tbody tr")
    await rows.first.wait_for()
    assert await rows.count() >= 2
    assert await phone.locator("#rows tbody tr.band-ok").count() == await rows.count()  # all fresh
    assert "李建国" not in await phone.content()
    assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing off the side
    await phone.select_option("#f-media", "1")  # only the media-flagged one
    await expect(phone.locator("#rows tbody tr[data-ticket='S2']")).to_have_count(0)
    await phone.locator("#rows tbody tr[data-ticket='S1']").first.wait_for()
    assert "media=1" in phone.url
    await phone.locator("#rows tbody tr[data-ticket='S1'] a").first.click()
    await phone.wait_for_url("**/board/ticket/S1")
    await phone.locator("#facts dd", has_text="市容景观所").wait_for()
    await phone.locator("#actions button[data-action='claim']").click()
    await phone.locator("#a-submit").click()
    await phone.locator("#act-result", has_text="已接单").wait_for()
    await phone.locator("#facts dd", has_text="周婷").wait_for()  # the page shows the new handler
    await phone.locator("#full-note").wait_for()  # now theirs: the citizen shown, and the view audited
    await phone.locator("#history li", has_text="接单").wait_for()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_dispatcher_on_a_desktop_sees_every_unit_and_a_refusal_in_chinese(browser: Any, board: Client) -> None:
    await hand_over(board, "S1", content="店招松动", category="市容")
    await hand_over(board, "H1", content="垃圾桶满溢", category="环卫")
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN", color_scheme="dark")
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    try:
        await sign_in_in_browser(page, board, "zhangwei")
        await page.locator("#rows tbody tr[data-ticket='H1']").first.wait_for()
        await page.locator("#rows tbody tr[data-ticket='S1']").first.wait_for()
        await page.locator("#tiles li[data-key='open'] .n", has_text="2").wait_for()
        await page.select_option("#f-unit", "HW")
        await expect(page.locator("#rows tbody tr[data-ticket='S1']")).to_have_count(0)
        # a dispatcher may not claim a unit's ticket: the button is not offered, and the API says why
        await page.goto(str(board.make_url("/board/ticket/H1")))
        await page.locator("#facts dd", has_text="环卫所").wait_for()
        assert await page.locator("#actions button[data-action='claim']").count() == 0
        status = await page.evaluate(
            """async () => {
                const me = await (await fetch('/board/api/me')).json();
                const r = await fetch('/board/api/tickets/H1/actions', {method: 'POST',
                    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf},
                    body: JSON.stringify({action: 'claim'})});
                return [r.status, (await r.json()).error.message];
            }"""
        )
        assert status[0] == 403
        assert "只有环卫所的承办人或负责人可以" in status[1]
    finally:
        await context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_dispatcher_reads_the_months_report_its_chart_and_downloads_the_workbook(
    browser: Any, board: Client
) -> None:
    await hand_over(board, "S1", content="店招松动", category="市容")
    await hand_over(board, "H1", content="垃圾桶满溢", category="环卫")
    context = await browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN", accept_downloads=True
    )
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    # the page's first report (上月) answers only after the one the dispatcher then picks (本月) is shown: the late
    # answer must not replace it
    held: list[Any] = []

    async def hold(route: Any) -> None:
        held.append(route)

    await page.route(lambda url: "/board/api/reports?" in url and "period=%E4%B8%8A%E6%9C%88" in url, hold)
    try:
        await sign_in_in_browser(page, board, "zhangwei")
        await page.locator("#nav-reports").click()
        await page.wait_for_url("**/board/reports**")
        await page.select_option("#r-period", "本月")
        await page.locator("#report tbody th", has_text="市容景观所").wait_for()
        await page.locator("#report tfoot th", has_text="受理 2").wait_for()
        assert [route.request.url for route in held] != []
        await page.unroute("**/*")
        for route in held:
            await route.continue_()
        await page.wait_for_load_state("networkidle")
        assert "11月" in (await page.locator("#report-title").text_content() or "")
        await page.locator("#report tfoot th", has_text="受理 2").wait_for()
        assert "period=" in page.url
        await page.wait_for_function("() => document.getElementById('chart').complete")
        loaded = await page.evaluate("document.getElementById('chart').naturalWidth")
        note = await page.locator("#chart-note").text_content()
        assert loaded > 0 or "图表暂时无法生成" in (note or "")  # drawn, or said why not (no CJK font)
        async with page.expect_download() as waiting:
            await page.locator("#dl-xlsx").click()
        download = await waiting.value
        assert download.suggested_filename.endswith("月报表.xlsx")  # 演示街道12345热线办2026年11月报表.xlsx
        path = await download.path()
        assert (await asyncio.to_thread(Path(path).read_bytes))[:2] == b"PK"
    finally:
        await context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_dispatcher_uploads_an_export_and_reads_the_import_report(
    browser: Any, board: Client, tmp_path: Path
) -> None:
    path = write_xlsx(tmp_path / "平台导出.xlsx", standard_rows())
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    try:
        await sign_in_in_browser(page, board, "zhangwei")
        await page.locator("#nav-import").click()
        await page.wait_for_url("**/board/import")
        await page.set_input_files("#i-file", str(path))
        await page.locator("#i-submit").click()
        await page.locator("#i-stage", has_text="完成").wait_for()
        assert await page.evaluate("document.getElementById('i-progress').value") == 100
        await page.locator("#i-summary dd", has_text="5").first.wait_for()
        errors = page.locator("#i-errors tbody tr")
        assert await errors.count() == 5
        assert "工单编号: 不能为空" in (await errors.first.text_content() or "")
        await page.goto(str(board.make_url("/board/")))
        await page.locator("#rows tbody tr[data-ticket='2026112000005']").first.wait_for()  # on the board at once
    finally:
        await context.close()
