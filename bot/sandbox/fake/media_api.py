"""Temporary media: the apps' ``media/upload`` (page 90253, 上传临时素材), the multipart form it and the robot's
``webhook/upload_media`` share, and the check of a media_id a message names.

WeCom's rules (page 90253): ``type`` is image, voice, video or file (40005 otherwise); the file comes as
multipart/form-data in the part named ``media``, whose ``filename`` is the name WeCom shows with a file; every file
is more than 5 bytes; an image at most 10 MB, JPG or PNG; a voice 2 MB, AMR; a video 10 MB, MP4; a file 20 MB. The
media_id is valid 3 days and shared by the corp's apps; a robot's upload serves only that robot.

Errcodes (the global errcode page): 40005 a bad ``type``; 44001 no media part (多媒体文件为空); 40006 a size outside
the limits (40009 an image, 40011 a video: 上传图片/视频大小不是有效值); 40004 a format the type does not take
(不合法的媒体文件类型). Which code an image of the wrong format gets, and that WeCom tells a format by the file's first
bytes rather than its name, are not documented (?). The ``filelength`` the page shows in the part's header is
recorded, not required: Tencent's and others' SDKs (wechatpy) upload without it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import BodyPartReader, web

from bot.sandbox.fake import errors as E
from bot.sandbox.fake.core import MEDIA_TTL, FakeWeCom, new_id
from bot.sandbox.fake.errors import ApiError
from bot.sandbox.fake.model import Media

MEDIA_MIN = 6  # "所有文件size必须大于5个字节"
APP_MEDIA_MAX = {
    "image": 10 * 1024 * 1024,
    "voice": 2 * 1024 * 1024,
    "video": 10 * 1024 * 1024,
    "file": 20 * 1024 * 1024,
}
_SIZE_ERRORS = {"image": E.INVALID_IMAGE_SIZE, "video": E.INVALID_VIDEO_SIZE}


def format_ok(kind: str, data: bytes) -> bool:
    """Whether ``data`` looks like a ``kind`` WeCom takes: JPG or PNG, AMR, MP4; any file."""
    if kind == "image":
        return data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"))
    if kind == "voice":
        return data.startswith(b"#!AMR")
    if kind == "video":
        return data[4:8] == b"ftyp"
    return True


async def read_media(request: web.Request) -> tuple[str, bytes]:
    """The filename and bytes of the form's ``media`` part; 44001 without one."""
    if not request.content_type.startswith("multipart/"):
        raise ApiError(E.MEDIA_EMPTY)
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.name == "media":
            return part.filename or "media", bytes(await part.read())
    raise ApiError(E.MEDIA_EMPTY)


def store(fake: FakeWeCom, *, kind: str, filename: str, data: bytes, key: str = "") -> dict[str, Any]:
    """Keep an upload (its bytes too) and answer as WeCom does."""
    now = fake.now()
    media_id = new_id(48)
    fake.media[media_id] = Media(
        media_id=media_id,
        key=key,
        type=kind,
        filename=filename,
        size=len(data),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        created_at=now,
        expires_at=now + MEDIA_TTL,
        data=data,
    )
    return {"errcode": 0, "errmsg": "ok", "type": kind, "media_id": media_id, "created_at": str(int(now.timestamp()))}


async def upload(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    """``POST /cgi-bin/media/upload?access_token=&type=``."""
    fake.authenticate(request)
    kind = request.query.get("type", "")
    if kind not in APP_MEDIA_MAX:
        raise ApiError(E.INVALID_MEDIA_TYPE)
    filename, data = await read_media(request)
    if not MEDIA_MIN <= len(data) <= APP_MEDIA_MAX[kind]:
        raise ApiError(_SIZE_ERRORS.get(kind, E.INVALID_FILE_SIZE), f"{len(data)} bytes")
    if not format_ok(kind, data):
        raise ApiError(E.BAD_MEDIA_FORMAT, f"{kind} format")
    return store(fake, kind=kind, filename=filename, data=data)


def check_app_media(fake: FakeWeCom, msgtype: str, section: dict[str, Any]) -> None:
    """An app's image/voice/video/file message names a media_id the apps uploaded, of its own type, within 3 days:
    40007 otherwise."""
    if msgtype not in APP_MEDIA_MAX:
        return
    media = fake.media.get(section.get("media_id", ""))
    if media is None or media.key != "" or media.type != msgtype or fake.now() >= media.expires_at:
        raise ApiError(E.INVALID_MEDIA_ID)
