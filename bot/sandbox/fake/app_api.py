"""A self-built app's API: gettoken (page 91039), message/send (90236), message/update_template_card (94888).
An image, voice, video or file message names a media_id from ``media/upload`` (:mod:`bot.sandbox.fake.media_api`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from bot.sandbox.fake import errors as E
from bot.sandbox.fake import media_api, validate
from bot.sandbox.fake.core import CARD_CODE_TTL, FakeWeCom, agentid_of, json_body, new_id
from bot.sandbox.fake.errors import ApiError
from bot.sandbox.fake.model import App

MAX_TOUSER = 1000
DUPLICATE_CHECK_DEFAULT = 1800  # seconds, enable_duplicate_check's default interval
DUPLICATE_CHECK_MAX = 4 * 3600


async def gettoken(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    """While a token is valid gettoken hands out the same one, with ``expires_in`` the seconds it has left.
    More than ``gettoken_per_minute`` calls for one secret within a minute answer 45009 (WeCom documents that
    frequent gettoken calls are blocked, not the bound)."""
    corpid = request.query.get("corpid", "")
    secret = request.query.get("corpsecret", "")
    if not corpid:
        raise ApiError(E.CORPID_MISSING)
    if not secret:
        raise ApiError(E.SECRET_MISSING)
    if corpid != fake.corp_id:
        raise ApiError(E.INVALID_CORPID)
    app = fake.apps.get(secret)
    if app is None:
        raise ApiError(E.INVALID_SECRET)
    if not fake.admit(("gettoken", secret), ((60, fake.gettoken_per_minute),)):
        raise ApiError(E.FREQUENCY_LIMIT)
    token = fake.issue_token(app)
    expires_in = int((token.expires_at - fake.now()).total_seconds())
    return {"errcode": 0, "errmsg": "ok", "access_token": token.value, "expires_in": expires_in}


def body_agentid(body: dict[str, Any], app: App) -> int:
    if body.get("agentid") in (None, ""):
        raise ApiError(E.AGENTID_MISSING)
    agentid = agentid_of(body["agentid"])
    if agentid != app.agentid:
        raise ApiError(E.AGENT_NOT_ALLOWED, f"the access_token belongs to agent {app.agentid}")
    return agentid


def _ids(value: object) -> list[str]:
    """``"a|b|c"`` as a list; WeCom also tolerates spaces around the bars."""
    if value is None or value == "":
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        return [str(value)]
    if not isinstance(value, str):
        raise ApiError(E.INVALID_PARAMETER, "touser, toparty and totag are strings joined with '|'")
    return [part.strip() for part in value.split("|") if part.strip()]


def recipients(fake: FakeWeCom, body: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The members a message reaches, and the ``invaliduser``/``invalidparty``/``invalidtag`` of the answer."""
    reached: dict[str, str] = {}  # lower-case userid -> userid, in order

    def reach(userids: Iterable[str]) -> None:
        for userid in userids:
            member = fake.member(userid)
            if member is not None:
                reached.setdefault(member.lower(), member)

    touser = _ids(body.get("touser"))
    if len(touser) > MAX_TOUSER:
        raise ApiError(E.USERID_LIST_TOO_LONG)
    invalid_users: list[str] = []
    if touser == ["@all"]:
        reach(fake.members.values())
    else:
        for userid in touser:
            if fake.member(userid) is None:
                invalid_users.append(userid.lower())  # WeCom answers userids in lower case
            reach([userid])
    invalid_parties = [p for p in _ids(body.get("toparty")) if p not in fake.parties]
    for party in _ids(body.get("toparty")):
        reach(fake.parties.get(party, []))
    invalid_tags = [t for t in _ids(body.get("totag")) if t not in fake.tags]
    for tag in _ids(body.get("totag")):
        reach(fake.tags.get(tag, []))
    invalid = {
        "invaliduser": "|".join(invalid_users),
        "invalidparty": "|".join(invalid_parties),
        "invalidtag": "|".join(invalid_tags),
    }
    return list(reached.values()), invalid


def _duplicate_interval(body: dict[str, Any]) -> float | None:
    if body.get("enable_duplicate_check") not in (1, "1", True):
        return None
    interval = body.get("duplicate_check_interval", DUPLICATE_CHECK_DEFAULT)
    if not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0:
        raise ApiError(E.INVALID_PARAMETER, "duplicate_check_interval")
    return min(interval, DUPLICATE_CHECK_MAX)


async def message_send(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    """One delivery record per member reached. Past 30 messages a minute or 1000 an hour from one app to one
    member, WeCom still answers errcode 0 but drops the message (page 90454): the fake records it in ``dropped``."""
    app = fake.authenticate(request)
    body = await json_body(request)
    agentid = body_agentid(body, app)
    msgtype, section = validate.message(body, validate.APP_MESSAGES)
    media_api.check_app_media(fake, msgtype, section)
    users, invalid = recipients(fake, body)
    if not users:
        raise ApiError(E.ALL_RECIPIENTS_INVALID, **invalid)
    interactive = msgtype == "template_card" and section["card_type"] in validate.INTERACTIVE_CARDS
    if interactive:
        fake.register_task_id(agentid, section["task_id"])
    interval = _duplicate_interval(body)
    digest = json.dumps(body, sort_keys=True, ensure_ascii=False)
    duplicate = interval is not None and fake.seen_recently(agentid, digest, interval)
    msgid = new_id(48)
    for user in users:
        to = {"touser": user, "agentid": agentid}
        if duplicate:
            fake.drop("app", to, msgtype, body, "duplicate_check", msgid)
        elif fake.admit(("app", agentid, user.lower()), fake.app_member_limits):
            fake.deliver("app", to, msgtype, body, msgid)
        else:
            fake.drop("app", to, msgtype, body, "member_rate_limit", msgid)
    answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok", **invalid, "msgid": msgid}
    if interactive:
        context = {"msgid": msgid, "task_id": section["task_id"]}
        answer["response_code"] = fake.issue_code("card", CARD_CODE_TTL, agentid=agentid, context=context)
    return answer


async def update_template_card(fake: FakeWeCom, request: web.Request) -> dict[str, Any]:
    """Either ``button.replace_name`` (the buttons greyed out with that text) or a whole new ``template_card``; the
    ``response_code`` (from message/send or a click) works once, within 72 h, for the app that sent the card."""
    app = fake.authenticate(request)
    body = await json_body(request)
    agentid = body_agentid(body, app)
    if "button" in body:
        button = body["button"]
        name = button.get("replace_name") if isinstance(button, dict) else None
        if not isinstance(name, str) or not name:
            raise ApiError(E.INVALID_PARAMETER, "button.replace_name")
        msgtype = "update_button"
    elif "template_card" in body:
        card = body["template_card"]
        if not isinstance(card, dict):
            raise ApiError(E.INVALID_PARAMETER, "template_card")
        validate.template_card(card)
        msgtype = "template_card"
    else:
        raise ApiError(E.INVALID_PARAMETER, "button or template_card required")
    userids = body.get("userids", [])
    if not isinstance(userids, list) or not all(isinstance(u, str) for u in userids):
        raise ApiError(E.INVALID_PARAMETER, "userids must be a list of userids")
    valid = [m for m in (fake.member(u) for u in userids) if m is not None]
    invalid = [u.lower() for u in userids if fake.member(u) is None]
    issued = fake.consume_code(body.get("response_code"), "card", agentid=agentid)
    to = {
        "response_code": issued.code,
        "agentid": agentid,
        "task_id": issued.context.get("task_id"),
        "userids": valid,
        "atall": body.get("atall", 0),
    }
    fake.deliver("update_card", to, msgtype, body)
    return {"errcode": 0, "errmsg": "ok", "invaliduser": invalid}
