"""Robots: the group robot's webhook/send and webhook/upload_media (pages 91770/99110), and the intelligent robot's
response_url (101138)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from aiohttp import web

from bot.sandbox.fake import errors as E
from bot.sandbox.fake import media_api, validate
from bot.sandbox.fake.core import FakeWeCom, json_body
from bot.sandbox.fake.errors import ApiError

IMAGE_MAX = 2 * 1024 * 1024  # the image before base64
UPLOAD_MIN = 6  # "文件大小必须大于5个字节"
UPLOAD_MAX = {"file": 20 * 1024 * 1024, "voice": 2 * 1024 * 1024}


def _robot(fake: FakeWeCom, request: web.Request) -> str:
    key = request.query.get("key", "")
    if key not in fake.webhook_keys:
        raise ApiError(E.WEBHOOK_KEY_INVALID)
    return key


def _check_mentions(section: dict[str, Any]) -> None:
    for field in ("mentioned_list", "mentioned_mobile_list"):
        value = section.get(field)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise ApiError(E.INVALID_PARAMETER, f"{field} must be a list of strings")


def _check_image(section: dict[str, Any]) -> None:
    """``base64`` of a JPG/PNG of at most 2 MB and the ``md5`` of the bytes before encoding. A size over 2 MB
    answers 40009; bad base64 or an md5 that does not match answers 40058 (?), another format 40004 (?): WeCom does
    not document which."""
    encoded, md5 = section.get("base64"), section.get("md5")
    if not isinstance(encoded, str) or not isinstance(md5, str) or not encoded or not md5:
        raise ApiError(E.INVALID_PARAMETER, "image needs base64 and md5")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(E.INVALID_PARAMETER, "image base64 does not decode") from None
    if len(data) > IMAGE_MAX:
        raise ApiError(E.INVALID_IMAGE_SIZE, f"{len(data)} bytes, at most {IMAGE_MAX}")
    if hashlib.md5(data, usedforsecurity=False).hexdigest() != md5.lower():
        raise ApiError(E.INVALID_PARAMETER, "image md5 does not match its content")
    if not media_api.format_ok("image", data):
        raise ApiError(E.BAD_MEDIA_FORMAT, "the robot takes a JPG or PNG image")


def _check_media(fake: FakeWeCom, key: str, media_id: str, msgtype: str) -> None:
    """A media_id works for 3 days, only for the robot that uploaded it, only as its own type."""
    media = fake.media.get(media_id)
    if media is None or media.key != key or media.type != msgtype or fake.now() >= media.expires_at:
        raise ApiError(E.INVALID_MEDIA_ID)


async def webhook_send(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    """More than ``webhook_per_minute`` (20) accepted messages from one robot within a minute answer 45009."""
    key = _robot(fake, request)
    body = await json_body(request)
    msgtype, section = validate.message(body, validate.WEBHOOK_MESSAGES)
    if msgtype == "text":
        _check_mentions(section)
    elif msgtype == "image":
        _check_image(section)
    elif msgtype in ("file", "voice"):
        _check_media(fake, key, section["media_id"], msgtype)
    if not fake.admit(("webhook", key), ((60, fake.webhook_per_minute),)):
        raise ApiError(E.FREQUENCY_LIMIT)
    fake.deliver("webhook", {"webhook_key": key}, msgtype, body)
    return {"errcode": 0, "errmsg": "ok"}


async def upload_media(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    """multipart/form-data with the file in the part named ``media``; ``type`` is ``file`` (up to 20 MB) or
    ``voice`` (AMR, up to 2 MB); every file more than 5 bytes."""
    key = _robot(fake, request)
    kind = request.query.get("type", "")
    if kind not in UPLOAD_MAX:
        raise ApiError(E.INVALID_MEDIA_TYPE)
    filename, data = await media_api.read_media(request)
    if not UPLOAD_MIN <= len(data) <= UPLOAD_MAX[kind]:
        raise ApiError(E.INVALID_FILE_SIZE, f"{len(data)} bytes")
    return media_api.store(fake, kind=kind, filename=filename, data=data, key=key)


async def aibot_response(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    """A reply through a ``response_url``: markdown or a template card, once, within an hour of the callback."""
    code = request.query.get("response_code", "")
    body = await json_body(request)
    msgtype, _ = validate.message(body, validate.AIBOT_REPLIES)
    issued = fake.consume_code(code, "aibot")
    fake.deliver("response_url", {"response_code": issued.code, **issued.context}, msgtype, body)
    return {"errcode": 0, "errmsg": "ok"}
