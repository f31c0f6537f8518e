"""``POST /api/imports``: the running bot takes an export itself and answers with the report the command line prints.

**Who.** The API token (``Authorization: Bearer <API_TOKEN>``), or the hand-over's signature over the raw body
(``X-Hotline-Timestamp``, ``X-Hotline-Signature``, :mod:`bot.hotline.signing`). With a token the body is read only
once the token is right.

**What.** The file as ``multipart/form-data`` (field ``file``, with its file name; optional fields ``dry_run`` and
``sheet``), or the file itself as the body (``Content-Type`` of .xlsx, .xls, .ods, ``text/csv`` or
``application/octet-stream``; its kind from ``?filename=``, the content type, else its first bytes), with
``?dry_run=true`` and ``?sheet=`` as options. At most ``import.max_upload_bytes`` (64 MiB) (413 beyond).

**The answer** comes once the whole file is imported (100,000 rows take about half a minute): 200 with
:meth:`bot.hotline.importer.ImportReport.as_json`, row errors included (``ok`` false). The import commits one
transaction per 1,000 rows; should the database fail part-way, the answer is 503 ``import_interrupted`` with the
report of what was committed, and posting the same file again carries on (committed rows come back unchanged). A
file that cannot be read, or whose header lacks a required column, is 422 ``invalid_file`` and changes nothing;
one import at a time per process (409 ``import_running``).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.hotline.api import authorize, check_signature
from bot.hotline.importer import CSV_SUFFIXES, EXCEL_SUFFIXES, ImportFormatError, ImportInterrupted, import_file
from bot.hotline.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from bot.web.body import UPLOAD_SECONDS, read_body
from bot.web.errors import ApiError, json_response
from bot.web.keys import CONFIG, SETTINGS, TICKETS

routes = web.RouteTableDef()
IMPORT_LOCK = web.AppKey("import_lock", asyncio.Lock)

# the body's content type -> the file's kind; octet-stream (and a multipart part without a known type) by its name
# or its first bytes
CONTENT_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel.sheet.macroenabled.12": ".xlsm",
    "application/vnd.ms-excel.sheet.binary.macroenabled.12": ".xlsb",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
    "text/csv": ".csv",
    "text/plain": ".csv",
    "text/tab-separated-values": ".tsv",
    "application/octet-stream": "",
}
_TRUE = {"1", "true", "yes", "on", "是"}
_FALSE = {"", "0", "false", "no", "off", "否"}


def setup(app: web.Application) -> None:
    """The route, and the lock that keeps imports one at a time in this process."""
    app[IMPORT_LOCK] = asyncio.Lock()
    app.add_routes(routes)


@dataclass(frozen=True, slots=True)
class Upload:
    data: bytes
    name: str  # what the report calls the file: its own name (without folders), else 上传文件.xlsx …
    dry_run: bool
    sheet: str | None


async def _authenticated_body(request: web.Request, limit: int) -> bytes:
    """The body, once the caller is known: by the API token (checked first), or by the body's signature."""
    settings = request.app[SETTINGS]
    if "Authorization" in request.headers:
        authorize(request)
        return await read_body(request, limit, within=UPLOAD_SECONDS)
    signed = TIMESTAMP_HEADER in request.headers or SIGNATURE_HEADER in request.headers
    secret = settings.hotline_ingest_secret
    if not signed or secret is None:
        if settings.api_token is None and secret is None:
            raise ApiError(503, "api_disabled", "neither API_TOKEN nor HOTLINE_INGEST_SECRET is configured")
        raise ApiError(
            401,
            "unauthorized",
            "send the API token as 'Authorization: Bearer <API_TOKEN>', or sign the body "
            f"({TIMESTAMP_HEADER}, {SIGNATURE_HEADER})",
        )
    # the signature is checked once the body is read: an upload that says it is signed has the upload's time
    body = await read_body(request, limit, within=UPLOAD_SECONDS)
    check_signature(request, secret.get_secret_value(), body)
    return body


def _flag(value: str | None, name: str) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ApiError(400, "bad_request", f"{name} must be true or false")


def _suffix(name: str | None, content_type: str, data: bytes) -> str:
    """The file's kind: by its name, else its content type, else its first bytes (a zip: .xlsx; OLE: .xls)."""
    if name:
        suffix = Path(name).suffix.lower()
        if suffix in EXCEL_SUFFIXES | CSV_SUFFIXES:
            return suffix
    known = CONTENT_TYPES.get(content_type)
    if known:
        return known
    if data.startswith(b"PK\x03\x04"):
        return ".xlsx"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        return ".xls"
    return ".csv"


def _parts(body: bytes, boundary: str) -> list[tuple[Message, bytes]]:
    """The parts of a ``multipart/form-data`` body (headers, content)."""
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = body.split(delimiter)
    if len(pieces) < 3:
        raise ApiError(400, "bad_request", "the multipart body has no parts")
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        piece = piece.removeprefix(b"\r\n")
        head, found, content = piece.partition(b"\r\n\r\n")
        if not found:
            raise ApiError(400, "bad_request", "a part of the multipart body has no headers")
        parts.append((BytesHeaderParser().parsebytes(head + b"\r\n\r\n"), content.removesuffix(b"\r\n")))
    return parts


def upload_of(request: web.Request, body: bytes) -> Upload:
    """The export in the request's body: a multipart form's ``file`` field, or the body itself (see the module)."""
    query = request.query
    dry_run = _flag(query.get("dry_run"), "dry_run")
    sheet = query.get("sheet") or None
    if request.content_type == "multipart/form-data":
        boundary = _boundary(request)
        file: tuple[Message, bytes] | None = None
        for headers, content in _parts(body, boundary):
            name = headers.get_param("name", header="content-disposition")
            if name == "file":
                file = (headers, content)
            elif name == "dry_run":
                dry_run = _flag(content.decode("utf-8", "replace"), "dry_run")
            elif name == "sheet":
                sheet = content.decode("utf-8", "replace").strip() or None
        if file is None:
            raise ApiError(400, "bad_request", "the multipart body has no 'file' part")
        headers, data = file
        filename = headers.get_filename()
        return Upload(data, _name(filename, _suffix(filename, headers.get_content_type(), data)), dry_run, sheet)
    if request.content_type not in CONTENT_TYPES:
        kinds = ", ".join(["multipart/form-data", *CONTENT_TYPES])
        raise ApiError(415, "unsupported_media_type", f"send the export as one of: {kinds}")
    filename = query.get("filename")
    return Upload(body, _name(filename, _suffix(filename, request.content_type, body)), dry_run, sheet)


def _name(filename: str | None, suffix: str) -> str:
    """A safe name for the file: its own (no folders, the kind's suffix), else 上传文件 with the suffix."""
    text = filename or ""
    with contextlib.suppress(UnicodeError):  # raw UTF-8 bytes in the part's header come as surrogate escapes
        text = text.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    stem = Path(text.replace("\\", "/").replace("\x00", "")).stem.strip(". ")[:100]
    return f"{stem or '上传文件'}{suffix}"


def _boundary(request: web.Request) -> str:
    message = Message()
    message["content-type"] = request.headers.get("Content-Type", "")
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ApiError(400, "bad_request", "multipart/form-data without a boundary")
    return boundary


def write_temp(data: bytes, name: str) -> Path:
    """The upload as a file of its own name in a folder of its own (the importer reads files)."""
    folder = Path(tempfile.mkdtemp(prefix="hotline-import-"))
    path = folder / name
    path.write_bytes(data)
    return path


def remove_temp(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()


@routes.post("/api/imports")
async def post_import(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    body = await _authenticated_body(request, config.imports.max_upload_bytes)
    upload = upload_of(request, body)
    if not upload.data.strip():
        raise ApiError(422, "invalid_file", "the file is empty")
    lock = request.app[IMPORT_LOCK]
    if lock.locked():
        raise ApiError(409, "import_running", "another import is running in this process: post again when it is done")
    async with lock:
        path = await asyncio.to_thread(write_temp, upload.data, upload.name)
        try:
            report = await import_file(
                path, request.app[TICKETS], config, progress=False, dry_run=upload.dry_run, sheet=upload.sheet
            )
        except ImportFormatError as exc:
            raise ApiError(422, "invalid_file", exc.message) from None
        except ImportInterrupted as exc:
            raise ApiError(503, "import_interrupted", exc.message(), exc.report.as_json()) from None
        finally:
            await asyncio.to_thread(remove_temp, path)
    return json_response(report.as_json())


def report_schema() -> dict[str, Any]:
    """The answer's JSON Schema (the OpenAPI document's ``ImportReport``)."""
    return {
        "type": "object",
        "required": ["ok", "dry_run", "total", "created", "updated", "unchanged", "finished", "errors", "lines"],
        "properties": {
            "ok": {"type": "boolean", "description": "no row was refused"},
            "dry_run": {"type": "boolean", "description": "counts are what an import would do; nothing was written"},
            "total": {"type": "integer", "description": "non-empty data rows"},
            "created": {"type": "integer"},
            "updated": {"type": "integer"},
            "unchanged": {"type": "integer", "description": "rows the bot already had as they are"},
            "finished": {"type": "integer", "description": "of those created or updated, imported finished"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "row": {"type": "integer", "description": "the sheet's own row number"},
                        "ticket_no": {"type": ["string", "null"]},
                        "message": {"type": "string"},
                    },
                },
            },
            "unrecognised_columns": {"type": "array", "items": {"type": "string"}, "description": "ignored"},
            "summary": {"type": "string"},
            "lines": {
                "type": "array",
                "items": {"type": "string"},
                "description": "what `run_bot.py import` prints: the ignored columns, the summary, the first 50 errors",
            },
            "seconds": {"type": "number"},
        },
    }
