"""``POST /api/imports`` over real HTTP, on both databases: the bot takes an export with the API token or a signature
and answers the report the command line prints; whatever it refuses (no credentials, a file it cannot read, too
large, not a spreadsheet) is a proper status with a JSON error, and changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import run_bot
from bot.app import create_app
from bot.domain.clock import FrozenClock
from bot.hotline.signing import signed_headers
from bot.web.keys import TICKETS
from config.model import BotConfig
from config.settings import Settings
from store.models import tickets
from tests.conftest import API_TOKEN, INGEST_SECRET, ROOT
from tests.hotline.conftest import Client
from tests.hotline.importer.support import HEADERS, standard_rows, write_csv, write_xlsx
from tests.hotline.test_api import count

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TOKEN = {"Authorization": f"Bearer {API_TOKEN}"}


def form(path: Path, **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("file", path.read_bytes(), filename=path.name, content_type=XLSX)
    for name, value in fields.items():
        data.add_field(name, value)
    return data


async def error_of(response: Any, status: int) -> str:
    assert response.status == status, await response.text()
    body = await response.json()
    return str(body["error"]["code"])


async def test_an_import_with_the_api_token_answers_the_command_lines_report(
    client: Client, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    path = write_xlsx(tmp_path / "工单导出.xlsx", standard_rows())
    # what the command line prints for it, against the same database (a dry run writes nothing)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("BOT_CONFIG", str(ROOT / "config" / "sandbox.yaml"))
    assert await asyncio.to_thread(run_bot.main, ["import", str(path), "--dry-run", "--quiet"]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "未识别的列：备注，已忽略"

    checked = await client.post("/api/imports", data=form(path, dry_run="true"), headers=TOKEN)
    assert checked.status == 200, await checked.text()
    report = await checked.json()
    assert report["lines"] == printed
    assert (report["dry_run"], report["created"], report["ok"]) == (True, 5, False)
    assert await count(client, tickets) == 0

    done = await client.post("/api/imports", data=form(path), headers=TOKEN)
    assert done.status == 200
    report = await done.json()
    assert (report["total"], report["created"], report["updated"], report["unchanged"]) == (10, 5, 0, 0)
    assert report["unrecognised_columns"] == ["备注"]
    assert [e["row"] for e in report["errors"]] == [7, 8, 9, 10, 11]
    assert report["errors"][0] == {"row": 7, "ticket_no": None, "message": "工单编号: 不能为空"}
    assert report["summary"] == "导入完成：共 10 行，新增 5，更新 0，未变 0，错误 5"
    assert report["lines"][1:] == [report["summary"], *printed[2:]]
    assert await count(client, tickets) == 5
    # posting it again is safe: every row recognised, nothing changed
    again = await (await client.post("/api/imports", data=form(path), headers=TOKEN)).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 5)


async def test_a_signed_raw_body_is_imported(client: Client, clock: FrozenClock, tmp_path: Path) -> None:
    body = write_csv(tmp_path / "export.csv", standard_rows(), "gb18030").read_bytes()
    headers = {"Content-Type": "text/csv", **signed_headers(INGEST_SECRET, int(clock.now().timestamp()), body)}
    response = await client.post("/api/imports?filename=export.csv", data=body, headers=headers)
    assert response.status == 200, await response.text()
    assert (await response.json())["created"] == 5
    # the signature covers the body: another body under it is refused
    tampered = await client.post("/api/imports", data=body + b"\n", headers=headers)
    assert await error_of(tampered, 401) == "bad_signature"


async def test_refusals_change_nothing(client: Client, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "export.xlsx", standard_rows())
    raw = {"Content-Type": XLSX}
    assert await error_of(await client.post("/api/imports", data=path.read_bytes(), headers=raw), 401) == (
        "unauthorized"
    )
    wrong = {"Authorization": "Bearer nope", **raw}
    assert await error_of(await client.post("/api/imports", data=path.read_bytes(), headers=wrong), 401) == (
        "unauthorized"
    )
    broken = await client.post("/api/imports", data=b"PK\x03\x04 not really a workbook", headers={**TOKEN, **raw})
    assert await error_of(broken, 422) == "invalid_file"
    headless = write_xlsx(tmp_path / "headless.xlsx", standard_rows(), [h for h in HEADERS if h != "诉求内容"])
    missing = await client.post("/api/imports", data=form(headless), headers=TOKEN)
    assert await error_of(missing, 422) == "invalid_file"
    assert "缺少必需的列：诉求内容" in (await missing.json())["error"]["message"]
    picture = await client.post("/api/imports", data=b"\x89PNG....", headers={**TOKEN, "Content-Type": "image/png"})
    assert await error_of(picture, 415) == "unsupported_media_type"
    no_file = aiohttp.FormData(default_to_multipart=True)
    no_file.add_field("dry_run", "true")
    no_file.add_field("note", "x")
    assert await error_of(await client.post("/api/imports", data=no_file, headers=TOKEN), 400) == "bad_request"
    assert await error_of(await client.post("/api/imports", data=form(path, dry_run="maybe"), headers=TOKEN), 400)
    assert await count(client, tickets) == 0


async def test_a_file_over_the_limit_is_413(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    data = sandbox_config.model_dump(by_alias=True)
    data["import"]["max_upload_bytes"] = 2048
    config = BotConfig.model_validate(data)
    client = await aiohttp_client(create_app(settings_for(database_url), config, clock=clock, run_workers=False))
    path = write_xlsx(tmp_path / "export.xlsx", standard_rows())
    assert path.stat().st_size > 2048
    response = await client.post("/api/imports", data=form(path), headers=TOKEN)
    assert await error_of(response, 413) == "body_too_large"
    assert await count(client, tickets) == 0


async def test_the_openapi_document_describes_the_import(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    post = doc["paths"]["/api/imports"]["post"]
    assert {"multipart/form-data", XLSX, "text/csv"} <= set(post["requestBody"]["content"])
    assert {"200", "401", "413", "415", "422"} <= set(post["responses"])
    assert {"created", "errors", "lines", "unrecognised_columns"} <= set(
        doc["components"]["schemas"]["ImportReport"]["properties"]
    )


async def test_a_database_failure_part_way_is_503_with_what_was_committed(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = client.app[TICKETS]
    upsert = service.upsert

    async def failing(inputs: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(service, "upsert", failing)
    path = write_xlsx(tmp_path / "export.xlsx", standard_rows())
    response = await client.post("/api/imports", data=form(path), headers=TOKEN)
    assert await error_of(response, 503) == "import_interrupted"
    error = (await response.json())["error"]
    assert error["message"].startswith("导入中断：已提交 0 行")
    assert error["details"]["created"] == 0
    monkeypatch.setattr(service, "upsert", upsert)
    again = await client.post("/api/imports", data=form(path), headers=TOKEN)
    assert (await again.json())["created"] == 5


async def test_an_export_uploaded_slowly_is_not_cut_off_by_the_callbacks_body_timeout(
    aiohttp_client: Callable[..., Awaitable[Client]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    """A callback's or a hand-over's body must arrive within HTTP_BODY_TIMEOUT (here 0.3 s); an export uploaded by a
    caller with the API token has an upload's time (as on the board), so a large file over a slow line arrives."""
    settings = settings_for(sqlite_url, HTTP_BODY_TIMEOUT="0.3")
    client = await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))
    body = write_csv(tmp_path / "export.csv", standard_rows(), "gb18030").read_bytes()

    async def slowly() -> AsyncIterator[bytes]:
        third = len(body) // 3 + 1
        for at in range(0, len(body), third):
            yield body[at : at + third]
            await asyncio.sleep(0.2)  # the line's pace: the whole body takes longer than the body timeout

    headers = {**TOKEN, "Content-Type": "text/csv"}
    response = await client.post("/api/imports?filename=export.csv", data=slowly(), headers=headers)
    assert response.status == 200, await response.text()
    assert (await response.json())["created"] == 5
