"""The errcodes the fake answers with, and the shape of a WeCom error answer.

Deliberately independent of ``bot.wecom.errors``: a fake that shared the client's table could not catch the client
reading a code wrongly. Codes and texts follow the global errcode page (developer.work.weixin.qq.com 90313/90455)
and the page of each API; the few the documentation leaves open are marked (?) where they are raised.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

OK = 0
BUSY = -1
INVALID_SECRET = 40001
BAD_MEDIA_FORMAT = 40004  # 不合法的媒体文件类型 (not a JPG/PNG image, an AMR voice, an MP4 video)
INVALID_MEDIA_TYPE = 40005  # 不合法的type参数 (upload_media ?type=)
INVALID_FILE_SIZE = 40006
INVALID_MEDIA_ID = 40007
INVALID_MSGTYPE = 40008
INVALID_IMAGE_SIZE = 40009
INVALID_VIDEO_SIZE = 40011  # 上传视频大小不是有效值
INVALID_CORPID = 40013
INVALID_TOKEN = 40014
USERID_LIST_TOO_LONG = 40032  # 发消息接口，最多指定1000人
INVALID_AGENTID = 40056
INVALID_PARAMETER = 40058  # json不合法, a value too long, a required value empty
INVALID_OAUTH_CODE = 40029  # 不合法的oauth_code: unknown, used or older than 5 minutes
TOKEN_MISSING = 41001
CORPID_MISSING = 41002
SECRET_MISSING = 41004
OAUTH_CODE_MISSING = 41008  # 缺少oauth code
MEDIA_ID_MISSING = 41006
URL_MISSING = 41010
AGENTID_MISSING = 41011
TITLE_MISSING = 41016
DESCRIPTION_MISSING = 41033
TOKEN_EXPIRED = 42001
CODE_EXPIRED = 42003  # "code已过期" (?) used for an expired response_code
TASK_ID_INVALID = 42014  # 任务卡片消息的task_id不合法
UPDATE_APP_MISMATCH = 42015  # 更新的消息的应用与发送消息的应用不匹配
CODE_USED = 42022  # "code已经被使用过。只能使用一次" (?) used for a second use of a response_code
CARD_URL_MISSING = 42028
CARD_APPID_MISSING = 42030
CARD_TYPE_INVALID = 42031
CARD_BUTTON_TEXT = 42038
CARD_BUTTON_KEY = 42039
CARD_ACTION_INVALID = 42045
CARD_SUBMIT_KEY = 42046
CONTENT_EMPTY = 44004  # 文本消息content参数为空
MEDIA_EMPTY = 44001  # 多媒体文件为空
CONTENT_TOO_LONG = 45002  # 消息内容大小超过限制 (text > 2048 bytes, ...)
TOO_MANY_ARTICLES = 45008  # 图文消息的文章数量不能超过8条
FREQUENCY_LIMIT = 45009
CONCURRENCY_LIMIT = 45033
IP_NOT_TRUSTED = 60020
ALL_RECIPIENTS_INVALID = 81013
CHATID_INVALID = 86001
CHATID_NOT_FOUND = 86003
CHAT_MEMBER_COUNT = 86006  # 群成员数过多或过少
CHAT_NOT_OWNED = 86008  # 非法操作非自己创建的群
CHATID_REQUIRED = 86201
CHATID_TOO_LONG = 86205
CHAT_OWNER_NOT_MEMBER = 86207
CHATID_EXISTS = 86215
CHAT_MEMBER_INVALID = 86216
WEBHOOK_KEY_INVALID = 93000
AGENT_NOT_ALLOWED = 301002  # the token's app is not the agentid in the body

ERRMSG: dict[int, str] = {
    OK: "ok",
    BUSY: "system busy",
    INVALID_SECRET: "invalid credential, corpsecret is wrong",
    BAD_MEDIA_FORMAT: "invalid media file type",
    INVALID_MEDIA_TYPE: "invalid type",
    INVALID_FILE_SIZE: "invalid file size",
    INVALID_MEDIA_ID: "invalid media_id",
    INVALID_MSGTYPE: "invalid message type",
    INVALID_IMAGE_SIZE: "invalid image size",
    INVALID_VIDEO_SIZE: "invalid video size",
    INVALID_CORPID: "invalid corpid",
    INVALID_TOKEN: "invalid access_token",
    USERID_LIST_TOO_LONG: "invalid userid list size",
    INVALID_AGENTID: "invalid agentid",
    INVALID_PARAMETER: "invalid parameter",
    INVALID_OAUTH_CODE: "invalid code",
    TOKEN_MISSING: "access_token missing",
    CORPID_MISSING: "corpid missing",
    SECRET_MISSING: "corpsecret missing",
    OAUTH_CODE_MISSING: "missing code",
    MEDIA_ID_MISSING: "media_id missing",
    URL_MISSING: "url missing",
    AGENTID_MISSING: "agentid missing",
    TITLE_MISSING: "title missing",
    DESCRIPTION_MISSING: "description missing",
    TOKEN_EXPIRED: "access_token expired",
    CODE_EXPIRED: "response_code expired",
    TASK_ID_INVALID: "invalid task_id",
    UPDATE_APP_MISMATCH: "agentid not match the app that sent the card",
    CODE_USED: "response_code has been used",
    CARD_URL_MISSING: "template_card url missing",
    CARD_APPID_MISSING: "template_card appid missing",
    CARD_TYPE_INVALID: "invalid template_card card_type",
    CARD_BUTTON_TEXT: "invalid template_card button_list text",
    CARD_BUTTON_KEY: "invalid template_card button_list key",
    CARD_ACTION_INVALID: "invalid template_card card_action",
    CARD_SUBMIT_KEY: "invalid template_card submit_button key",
    CONTENT_EMPTY: "empty content",
    MEDIA_EMPTY: "empty media data",
    CONTENT_TOO_LONG: "content size out of limit",
    TOO_MANY_ARTICLES: "article size out of limit",
    FREQUENCY_LIMIT: "api freq out of limit",
    CONCURRENCY_LIMIT: "api concurrent out of limit",
    IP_NOT_TRUSTED: "not allow to access from your ip",
    ALL_RECIPIENTS_INVALID: "user & party & tag all invalid",
    CHATID_INVALID: "invalid chatid",
    CHATID_NOT_FOUND: "chatid not found",
    CHAT_MEMBER_COUNT: "chat member count out of range",
    CHAT_NOT_OWNED: "chat not created by this app",
    CHATID_REQUIRED: "chatid required",
    CHATID_TOO_LONG: "chatid too long",
    CHAT_OWNER_NOT_MEMBER: "owner not in userlist",
    CHATID_EXISTS: "chatid exists",
    CHAT_MEMBER_INVALID: "invalid chat member",
    WEBHOOK_KEY_INVALID: "invalid webhook url, please check",
    AGENT_NOT_ALLOWED: "no privilege to access this agent",
}

_hints = itertools.count(1)


class ApiError(Exception):
    """Raised by a handler; the server answers it as WeCom does: HTTP 200, ``errcode``/``errmsg``, maybe more."""

    def __init__(self, errcode: int, detail: str = "", **extra: Any) -> None:
        super().__init__(f"{errcode} {detail}".strip())
        self.errcode = errcode
        self.detail = detail
        self.extra = extra

    def body(self, ip: str | None) -> dict[str, Any]:
        return {"errcode": self.errcode, "errmsg": errmsg(self.errcode, ip, self.detail), **self.extra}


def errmsg(code: int, ip: str | None, detail: str = "") -> str:
    """``errmsg`` as WeCom words it for an error: the text, a hint, the caller's IP and the errcode lookup link."""
    text = ERRMSG.get(code, "error")
    if detail:
        text = f"{text}: {detail}"
    if code == OK:
        return text
    hint = f"[{int(time.time())}_{next(_hints)}_fake]"
    return f"{text}, hint: {hint}, from ip: {ip or '-'}, more info at https://open.work.weixin.qq.com/devtool/query?e={code}"
