"""GET /api/reports with the API token, on both databases: JSON with numerators and denominators, CSV, the
workbook; masked; bad parameters answered with a 400 naming them."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from bot.domain.clock import FrozenClock
from tests.conftest import API_TOKEN
from tests.hotline.conftest import Client
from tests.hotline.test_api import TICKET, post_json

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
async def client_with_history(client: Client, clock: FrozenClock) -> Client:
    """Two tickets to 市容景观所 on Monday 11-23; the accept deadline (Tuesday 08:30) passes unmet."""
    for no in ("2026112300123", "2026112300124"):
        answer = await post_json(client, clock, "/api/tickets", {**TICKET, "ticket_no": no})
        assert answer.status == 201
    clock.advance(days=2)
    return client


async def test_json_gives_every_rate_as_numerator_and_denominator(client_with_history: Client) -> None:
    answer = await client_with_history.get("/api/reports?period=2026-11&unit=市容景观所", headers=AUTH)
    assert answer.status == 200
    body = await answer.json()
    assert body["period"] == {"kind": "month", "start": "2026-11-01", "end": "2026-11-30", "label": "2026年11月"}
    [unit] = body["units"]
    assert unit["unit"] == "SRJG"
    assert unit["rates"]["accept"] == {"numerator": 0, "denominator": 2, "rate": 0.0}
    assert unit["rates"]["satisfaction"] == {"numerator": 0, "denominator": 0, "rate": None}
    assert unit["counts"]["received"] == 2
    assert unit["counts"]["accept_misses"] == 2
    assert unit["change_points"]["previous"]["accept"] is None  # October: nothing to compare
    assert body["total"]["rates"]["accept"]["denominator"] == 2
    assert "tickets" not in body
    detailed = await (await client_with_history.get("/api/reports?details=true", headers=AUTH)).json()
    late = {(t["ticket_no"], t["deadline"]) for t in detailed["tickets"]["late"]}
    assert ("2026112300123", "accept") in late
    assert "李女士" not in str(detailed)
    assert "13912345678" not in str(detailed)


async def test_csv_and_the_workbook(client_with_history: Client) -> None:
    answer = await client_with_history.get("/api/reports?period=month&format=csv", headers=AUTH)
    assert answer.status == 200
    assert answer.content_type == "text/csv"
    text = (await answer.read()).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert any("市容景观所" in row for row in rows)
    answer = await client_with_history.get("/api/reports?period=本月&format=xlsx", headers=AUTH)
    assert answer.status == 200
    assert 'filename="report-month-2026-11.xlsx"' in answer.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(await answer.read()), read_only=True)
    assert book.sheetnames[0] == "汇总"
    cells = " ".join(str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row)
    assert "2026112300123" in cells
    assert "李女士" not in cells


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("period=明年", 400, "bad_period"),
        ("period=2026-13", 400, "bad_period"),
        ("format=pdf", 400, "bad_format"),
        ("details=maybe", 400, "bad_details"),
        ("period=2027-01", 400, "future_period"),
        ("unit=不存在的单位", 404, "unit_not_found"),
    ],
)
async def test_bad_parameters(client: Client, query: str, status: int, code: str) -> None:
    answer = await client.get(f"/api/reports?{query}", headers=AUTH)
    assert answer.status == status
    assert (await answer.json())["error"]["code"] == code


async def test_the_token_is_required(client: Client) -> None:
    answer = await client.get("/api/reports")
    assert answer.status == 401
    assert (await answer.json())["error"]["code"] == "unauthorized"


async def test_the_period_follows_the_clock(client: Client, clock: FrozenClock) -> None:
    clock.advance(days=10)  # 12-03
    body = await (await client.get("/api/reports?period=last_month", headers=AUTH)).json()
    assert body["period"]["label"] == "2026年11月"
