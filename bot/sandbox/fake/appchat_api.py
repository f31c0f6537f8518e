"""Group chats an app creates and pushes to: appchat/create (page 90245), update (98913), get (98914), send (90248).

Only the app that created a chat may get, update or send to it (86008). A member receives at most 200 messages a
minute and 10 000 a day from one app across all its chats; past that WeCom drops the message for that member
without an error (90248, 90454). The fake counts per member, as documented, and records the drop in ``dropped``.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bot.sandbox.fake import errors as E
from bot.sandbox.fake import media_api, validate
from bot.sandbox.fake.core import FakeWeCom, json_body, new_chatid, new_id
from bot.sandbox.fake.errors import ApiError
from bot.sandbox.fake.model import App, Chat

MIN_MEMBERS = 2
MAX_MEMBERS = 2000
MAX_NAME_CHARS = 50  # longer names are cut, not refused
MAX_CHATID = 32
CHATID = re.compile(r"[0-9A-Za-z]+")


def _members(fake: FakeWeCom, value: object, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        raise ApiError(E.INVALID_PARAMETER, f"{field} must be a list of userids")
    found: dict[str, str] = {}
    unknown: list[str] = []
    for userid in value:
        member = fake.member(userid)
        if member is None:
            unknown.append(userid)
        else:
            found.setdefault(member.lower(), member)
    if unknown:
        raise ApiError(E.CHAT_MEMBER_INVALID, f"not in the directory: {'|'.join(unknown)}")
    return list(found.values())


def _own_chat(fake: FakeWeCom, app: App, chatid: object) -> Chat:
    if not isinstance(chatid, str) or not chatid:
        raise ApiError(E.CHATID_REQUIRED)
    chat = fake.chats.get(chatid)
    if chat is None:
        raise ApiError(E.CHATID_NOT_FOUND)
    if chat.agentid != app.agentid:
        raise ApiError(E.CHAT_NOT_OWNED)
    return chat


def _name(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(E.INVALID_PARAMETER, "name")
    return value[:MAX_NAME_CHARS]


async def create(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    app = fake.authenticate(request)
    body = await json_body(request)
    userlist = _members(fake, body.get("userlist"), "userlist")
    if not MIN_MEMBERS <= len(userlist) <= MAX_MEMBERS:
        raise ApiError(E.CHAT_MEMBER_COUNT, f"{len(userlist)} members, {MIN_MEMBERS} to {MAX_MEMBERS} allowed")
    owner = userlist[0]  # WeCom picks one at random without an owner; the fake picks the first, for repeatable tests
    if body.get("owner") not in (None, ""):
        chosen = fake.member(body["owner"])
        if chosen is None or chosen not in userlist:
            raise ApiError(E.CHAT_OWNER_NOT_MEMBER)
        owner = chosen
    chatid = body.get("chatid")
    if chatid in (None, ""):
        chatid = new_chatid()
    elif not isinstance(chatid, str) or not CHATID.fullmatch(chatid):
        raise ApiError(E.CHATID_INVALID, "only 0-9, a-z and A-Z")
    elif len(chatid) > MAX_CHATID:
        raise ApiError(E.CHATID_TOO_LONG)
    elif chatid in fake.chats:
        raise ApiError(E.CHATID_EXISTS)
    fake.chats[chatid] = Chat(
        chatid=chatid, name=_name(body.get("name")), owner=owner, userlist=userlist, agentid=app.agentid
    )
    return {"errcode": 0, "errmsg": "ok", "chatid": chatid}


async def update(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    app = fake.authenticate(request)
    body = await json_body(request)
    chat = _own_chat(fake, app, body.get("chatid"))
    added = _members(fake, body.get("add_user_list"), "add_user_list")
    removed = _members(fake, body.get("del_user_list"), "del_user_list")
    outside = [u for u in removed if u not in chat.userlist]
    if outside:
        raise ApiError(E.CHAT_MEMBER_INVALID, f"not in the chat: {'|'.join(outside)}")
    userlist = [u for u in chat.userlist if u not in removed]
    userlist += [u for u in added if u not in userlist]
    if len(userlist) > MAX_MEMBERS:
        raise ApiError(E.CHAT_MEMBER_COUNT)
    owner = chat.owner if chat.owner in userlist else (userlist[0] if userlist else "")
    if body.get("owner") not in (None, ""):
        chosen = fake.member(body["owner"])
        if chosen is None or chosen not in userlist:
            raise ApiError(E.CHAT_OWNER_NOT_MEMBER)
        owner = chosen
    if "name" in body:
        chat.name = _name(body["name"])
    chat.userlist = userlist
    chat.owner = owner
    return {"errcode": 0, "errmsg": "ok"}


async def get(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    app = fake.authenticate(request)
    chat = _own_chat(fake, app, request.query.get("chatid"))
    info = {"chatid": chat.chatid, "name": chat.name, "owner": chat.owner, "userlist": list(chat.userlist)}
    return {"errcode": 0, "errmsg": "ok", "chat_info": {**info, "chat_type": 0}}


async def send(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    """One delivery record for the chat, listing the ``members`` who got it; a member past the limit gets a drop
    record of their own. If nobody gets it, there is no delivery record at all."""
    app = fake.authenticate(request)
    body = await json_body(request)
    chat = _own_chat(fake, app, body.get("chatid"))
    msgtype, section = validate.message(body, validate.APPCHAT_MESSAGES)
    media_api.check_app_media(fake, msgtype, section)  # an app's upload, of the message's type, within 3 days
    msgid = new_id(48)
    reached: list[str] = []
    for member in chat.userlist:
        if fake.admit(("appchat", app.agentid, member.lower()), fake.appchat_member_limits):
            reached.append(member)
        else:
            to = {"chatid": chat.chatid, "userid": member}
            fake.drop("appchat", to, msgtype, body, "member_rate_limit", msgid)
    if reached:
        fake.deliver("appchat", {"chatid": chat.chatid, "members": reached}, msgtype, body, msgid)
    return {"errcode": 0, "errmsg": "ok"}
