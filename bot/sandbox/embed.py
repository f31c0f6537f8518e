"""The sandbox inside the bot: a fake WeCom of its own, the bot configured against it, and the people's side.

Where the fake runs: on a loopback port of its own (``127.0.0.1``, port 0: the OS picks a free one), started by a
``cleanup_ctx`` of the bot's application, before the database and everything else, and stopped after them. A port
of its own rather than a prefix on the bot's server, because the fake must look like WeCom to the bot's clients:
they build ``{WECOM_API_BASE}/cgi-bin/...`` and the robot's ``response_url`` client accepts only URLs whose path
starts with ``/cgi-bin/`` on the API base's origin; under a prefix the bot's ``/cgi-bin`` would also mix WeCom's
API into the bot's own routes. The port is known only once the fake listens, so ``create_app`` gets settings with
a placeholder base (``http://127.0.0.1:1``, which reaches nothing) and the context replaces ``app[SETTINGS]`` with
the real one before the outbox worker (the only reader of ``WECOM_API_BASE``) starts.

Credentials: generated at every start (corp id ``ww`` + 16 hex digits, app agent 1000002 with a random secret,
random callback tokens and EncodingAESKeys for the app and the intelligent robot). Nothing outside this process
needs them, and new ones each time mean nothing cached from an earlier run (an access token in Redis, a
``response_url``) can be mistaken for valid. ``HOTLINE_INGEST_SECRET`` is kept when set, else a random one is made
so that the demo feed can sign its hand-overs.

What the fake has: the configured members; every unit's ``group.chatid`` as an app chat (created directly in the
fake's state: sandbox chat ids such as ``sandbox-rxb`` are not what ``appchat/create`` would accept, and the app
is taken to have created them), with the unit's members (head and deputies included); every ``group.webhook_key``
as a robot. Every message the fake delivers or drops becomes an item of the page's feed, in the chat it reached.

When: ``create_app(..., sandbox=True)`` (``run_bot.py serve`` passes it) calls :func:`attach`. The sandbox is on
when ``SANDBOX`` is ``auto`` (the default) or ``public`` and no WeCom setting at all is given (any ``WECOM_*``
credential, or a ``WECOM_API_BASE`` of one's own: a half-configured WeCom is a mistake to report, not a reason to
pretend). It is only served on a loopback ``BOT_HOST``: it lets whoever opens the page act as any member. On another
host it stays off, with a warning in the log and on ``/sandbox/``, unless ``SANDBOX=public``.

Who may open it: whoever has the link from the start log, ``/sandbox/?token=…``. The access token is random at
every start (like Jupyter's), and :mod:`bot.sandbox.web` refuses every request without it; unless
``SANDBOX=public``, also every request that did not come straight from this machine (see there).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any, Literal

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bot.domain.clock import Clock
from bot.domain.masking import mask_text
from bot.sandbox import render, simulate
from bot.sandbox.chats import SYSTEM_CHAT, CardInfo, Chat, Directory, Feed, Item
from bot.sandbox.demo import DemoFeed, Injected
from bot.sandbox.fake import Delivered, FakeWeCom, serve
from bot.sandbox.fake.model import Chat as FakeChat
from bot.services.tickets import TicketService
from bot.web.keys import SETTINGS, TICKETS
from bot.wecom.callbacks import AIBOT_PATH, APP_PATH
from bot.wecom.crypto import CallbackCrypto
from config.model import BotConfig
from config.settings import Settings

log = logging.getLogger(__name__)

ROBOT_NAME = "机器人"  # the intelligent robot's display name: the "@机器人 " in front of group messages
API_PLACEHOLDER = "http://127.0.0.1:1"  # until the fake listens; port 1 reaches nothing
KEEP_DELIVERED = 1000  # the fake's own lists are trimmed to this many records
HTTP_TIMEOUT = 15.0

VIA_LABELS = {
    "app": "应用消息",
    "appchat": "应用群聊消息",
    "webhook": "群机器人推送",
    "response_url": "智能机器人回复",
    "passive": "被动回复",
    "update_card": "卡片更新",
}


# -- the decision ---------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``, and ``::ffff:127.0.0.1`` as a dual-stack
    socket reports an IPv4 peer)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def new_token() -> str:
    """The page's access token: 43 URL-safe characters. One that the logs' phone-number mask would change (a run
    of digits that looks like a phone number: about one start in a billion) is drawn again, so that the link in
    the start log always works."""
    while True:
        token = secrets.token_urlsafe(32)
        if mask_text(token) == token:
            return token


def wecom_settings_given(settings: Settings) -> list[str]:
    """The WeCom settings given (env var names): every ``wecom_*`` setting that is not its default (a credential,
    an API base or another endpoint of one's own)."""
    given = []
    for field, var in Settings.ENV_VARS.items():
        if not field.startswith("wecom_"):
            continue
        value = getattr(settings, field, None)
        if value not in (None, "") and value != Settings.model_fields[field].default:
            given.append(var)
    return given


Decision = Literal["on", "off", "refused"]


def decide(settings: Settings) -> Decision:
    """Whether this process embeds the sandbox, logging why not when it does not."""
    if settings.sandbox == "off":
        log.info("sandbox: off (SANDBOX=off)")
        return "off"
    given = wecom_settings_given(settings)
    if given:
        if not settings.wecom_configured:
            log.warning(
                "sandbox: off, because WeCom settings are given (%s) — but they are not enough to reach WeCom",
                ", ".join(given),
            )
        return "off"
    if not is_loopback(settings.host) and settings.sandbox != "public":
        log.warning(
            "sandbox: not started: BOT_HOST=%s is not a loopback address, and the sandbox lets anyone who opens it "
            "act as any member. Listen on 127.0.0.1, or set SANDBOX=public to serve it anyway (training only).",
            settings.host,
        )
        return "refused"
    return "on"


# -- credentials ----------------------------------------------------------------------------------------------


def _aes_key() -> str:
    """A random EncodingAESKey: 43 characters of base64 (32 bytes without the trailing '=')."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")[:43]


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    corp_id: str
    agent_id: int
    app_secret: str
    app_token: str
    app_aes_key: str
    aibot_token: str
    aibot_aes_key: str
    aibot_id: str

    @classmethod
    def generate(cls) -> Credentials:
        return cls(
            corp_id="ww" + secrets.token_hex(8),
            agent_id=1000002,
            app_secret=secrets.token_urlsafe(32),
            app_token=secrets.token_urlsafe(24),
            app_aes_key=_aes_key(),
            aibot_token=secrets.token_urlsafe(24),
            aibot_aes_key=_aes_key(),
            aibot_id="aib" + secrets.token_hex(12),
        )

    def settings(self) -> dict[str, Any]:
        return {
            "wecom_corp_id": self.corp_id,
            "wecom_app_agent_id": str(self.agent_id),
            "wecom_app_secret": self.app_secret,
            "wecom_app_token": self.app_token,
            "wecom_app_aes_key": self.app_aes_key,
            "wecom_aibot_token": self.aibot_token,
            "wecom_aibot_aes_key": self.aibot_aes_key,
        }


# -- the fake, reporting what it records ------------------------------------------------------------------------


class SandboxWeCom(FakeWeCom):
    """The fake WeCom, telling the sandbox about every message it delivers or drops."""

    def __init__(self, on_record: Callable[[Delivered, str | None], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_record = on_record

    def deliver(self, *args: Any, **kwargs: Any) -> Delivered:
        record = super().deliver(*args, **kwargs)
        self._report(record, None)
        del self.delivered[:-KEEP_DELIVERED]
        return record

    def drop(self, *args: Any, **kwargs: Any) -> Any:
        record = super().drop(*args, **kwargs)
        self._report(record, getattr(record, "reason", "") or "dropped")
        del self.dropped[:-KEEP_DELIVERED]
        return record

    def _report(self, record: Delivered, dropped: str | None) -> None:
        try:
            self._on_record(record, dropped)
        except Exception:  # the page is a view: never let it break the fake's answer
            log.exception("sandbox: could not show a %s message", record.kind)


# -- the sandbox ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a callback the sandbox sent to the bot."""

    status: int | None
    error: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.status == 200

    def public(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "status": self.status, "error": self.error}


class Sandbox:
    sleep: Callable[[float], Awaitable[None]] = staticmethod(asyncio.sleep)  # tests drive the demo feed

    def __init__(self, settings: Settings, config: BotConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        # served beyond this machine: SANDBOX=public (a non-loopback BOT_HOST gets here only with it)
        self.public = settings.sandbox == "public" or not is_loopback(settings.host)
        self.token = new_token()  # the page's access token: in the start log's link, and nowhere else in the logs
        self.cookie = f"hotline_sandbox_{settings.port}"  # a bot per port: cookies do not tell ports apart
        self.creds = creds = Credentials.generate()
        self.directory = Directory(config)
        self.names = self.directory.names
        self.feed = Feed()
        self.app_crypto = CallbackCrypto(creds.app_token, creds.app_aes_key, creds.corp_id)
        self.robot_crypto = CallbackCrypto(creds.aibot_token, creds.aibot_aes_key, "")
        self.fake = SandboxWeCom(
            self._recorded,
            corp_id=creds.corp_id,
            secrets={creds.app_secret: creds.agent_id},
            webhook_keys=[c.webhook_key for c in self.directory.groups() if c.webhook_key],
            members=[m.userid for m in config.members],
            clock=clock.now,
        )
        for chat in self.directory.groups():
            unit = config.unit(chat.unit or "")
            if unit is not None and unit.group.chatid:
                self.fake.chats[unit.group.chatid] = FakeChat(
                    chatid=unit.group.chatid,
                    name=chat.title,
                    owner=unit.head,
                    userlist=list(chat.members),
                    agentid=creds.agent_id,
                )
        secret = settings.hotline_ingest_secret or SecretStr(secrets.token_urlsafe(24))
        self.settings = settings.model_copy(
            update={**creds.settings(), "wecom_api_base": API_PLACEHOLDER, "hotline_ingest_secret": secret}
        )
        self.demo = DemoFeed(config, clock)
        self.demo_every = settings.sandbox_demo_every
        self.session: aiohttp.ClientSession | None = None
        self.self_url = _self_url(settings.host, settings.port)
        self.page_url = f"{self.self_url}/sandbox/"  # without the token: for anything but the start line
        self._demo_task: asyncio.Task[None] | None = None

    # -- the page's state -------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "epoch": self.feed.epoch,
            "last": self.feed.last,
            "public": self.public,
            "robot_name": ROBOT_NAME,
            "office_chat": self.directory.office_chat,
            "office": self.config.office.name,
            "chats": self.directory.public(),
            "members": {
                m.userid: {"name": m.name, "roles": self.directory.roles(m.userid)} for m in self.config.members
            },
            "items": [item.public() for item in self.feed.items()],
            "demo_every": _every(self.demo_every),
            "wecom_api_base": self.fake.base_url,
        }

    def note(self, chat: str, text: str, level: Literal["info", "ok", "error"] = "info") -> Item:
        return self.feed.add(chat, self.clock.now(), "system", text=text, level=level)

    def learn_url(self, request: web.Request) -> str:
        """The bot's own URL as this request reached it (the address it was accepted on): callbacks and demo
        hand-overs go there, over real HTTP."""
        sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            host, port = str(sockname[0]), int(sockname[1])
            self.self_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return self.self_url

    # -- deliveries → chat items ------------------------------------------------------------------------------

    def _recorded(self, record: Delivered, dropped: str | None) -> None:
        if record.kind == "update_card" and dropped is None:
            self._card_update(record)
            return
        body = record.body if isinstance(record.body, Mapping) else {}
        via = VIA_LABELS.get(record.kind, record.kind)
        for chat in self._chats_of(record):
            if dropped is not None:
                who = f"（{record.to.get('userid')}）" if record.to.get("userid") else ""
                text = f"企业微信静默丢弃了一条{via}{who}：{dropped}。「{render.preview(record.msgtype, body)}」"
                self.feed.add(chat, record.at, "system", text=text, level="error")
                continue
            card = self._card_info(record, body)
            self.feed.add(
                chat,
                record.at,
                "bot",
                html=render.message(record.msgtype, body, self.names),
                text=render.preview(record.msgtype, body),
                via=record.kind,
                msgtype=record.msgtype,
                raw=render.raw_json(body),
                card=card,
                task=(card.source, card.task_id) if card else _task_of(record, body),
                body=body,
            )

    def _chats_of(self, record: Delivered) -> list[str]:
        to = record.to
        named = to.get("chat")
        if isinstance(named, str) and self.directory.chat(named) is not None:
            return [named]
        chats: list[str] = []
        if record.kind == "webhook":
            chats = self.directory.webhook_chats(to.get("webhook_key"))
        elif to.get("chatid"):
            chats = [c for c in [self.directory.group_chat(to.get("chatid"))] if c]
        elif to.get("touser") or to.get("userid"):
            chats = [c for c in [self.directory.user_chat(to.get("touser") or to.get("userid"))] if c]
        return chats or [SYSTEM_CHAT]

    @staticmethod
    def _card_info(record: Delivered, body: Mapping[str, Any]) -> CardInfo | None:
        if record.msgtype != "template_card" or record.kind in ("webhook", "update_card"):
            return None
        # app messages are the app's cards; robot replies (response_url, long connection) the robot's; a passive
        # reply says whose callback it answered
        source = "app" if record.kind == "app" else record.to.get("source", "aibot")
        return card_info(body.get("template_card"), source)

    def _card_update(self, record: Delivered) -> None:
        """``message/update_template_card``: the app's card changes in the chats of ``userids`` (all, without)."""
        task_id = record.to.get("task_id")
        userids = record.to.get("userids") or []
        chats = [c for c in (self.directory.user_chat(u) for u in userids) if c] if userids else None
        originals = self.feed.find(
            chats,
            lambda i: i.replaces is None and i.task == ("app", task_id),
        )
        if not originals:
            self.note(SYSTEM_CHAT, f"卡片更新（task_id {task_id}）：找不到原卡片")
            return
        for item in originals:
            self.update_card(item, record.msgtype, record.body, at=record.at, via="update_card")

    def update_card(
        self, item: Item, msgtype: str, body: Mapping[str, Any], *, at: Any = None, via: str = "update_card"
    ) -> None:
        """Changes a card on the page: greyed-out buttons (``update_button``) or a whole new card."""
        old = item.body.get("template_card") if item.body else None
        if msgtype == "update_button":
            button = body.get("button")
            replace = button.get("replace_name") if isinstance(button, Mapping) else None
            if not isinstance(old, Mapping):
                return
            item.html = render.template_card(old, self.names, replaced=str(replace or "已处理"))
            item.card = None
        else:
            new = body.get("template_card")
            if not isinstance(new, Mapping):
                return
            source = item.card.source if item.card else ("app" if via == "update_card" else "aibot")
            item.html = render.template_card(new, self.names)
            item.card = card_info(new, source)
            item.body = {"msgtype": "template_card", "template_card": dict(new)}
        self.feed.add(
            item.chat,
            at or self.clock.now(),
            "bot",
            html=item.html,
            text="卡片已更新",
            via=via,
            msgtype=msgtype,
            raw=render.raw_json(body),
            replaces=item.id,
        )

    # -- people's side: typing, clicking ---------------------------------------------------------------------

    async def say(self, base_url: str, member: str, chat: Chat, text: str) -> dict[str, Any]:
        now = self.clock.now()
        typed = self.feed.add(
            chat.key, now, "member", html=render.plain(text), text=text, member=member, name=self.names.get(member)
        )
        ts = int(now.timestamp())
        if chat.kind == "group":
            response_url = self.fake.response_url(
                {"chat": chat.key, "chatid": chat.chatid, "userid": member, "chattype": "group"}
            )
            plain = simulate.robot_text(
                aibot_id=self.creds.aibot_id,
                robot_name=ROBOT_NAME,
                chatid=chat.chatid,
                userid=member,
                text=text,
                response_url=response_url,
            )
            sealed = simulate.seal_robot(self.robot_crypto, plain, timestamp=ts)
            outcome = await self._send(base_url, AIBOT_PATH, sealed, chat, member, "aibot")
        else:
            plain = simulate.app_text(
                corp_id=self.creds.corp_id,
                agent_id=self.creds.agent_id,
                userid=member,
                text=text,
                create_time=ts,
                msg_id=simulate.new_app_msgid(),
            )
            sealed = simulate.seal_app(
                self.app_crypto, plain, corp_id=self.creds.corp_id, agent_id=self.creds.agent_id, timestamp=ts
            )
            outcome = await self._send(base_url, APP_PATH, sealed, chat, member, "app")
        return {"item": typed.id, **outcome.public()}

    async def click(self, base_url: str, member: str, item: Item, key: str) -> dict[str, Any]:
        card = item.card
        chat = self.directory.chat(item.chat)
        if card is None or chat is None:
            raise ValueError("not a clickable card")
        now = self.clock.now()
        label = card.buttons.get(key, key)
        clicked = self.feed.add(
            chat.key,
            now,
            "member",
            html=f'<span class="click">点击了卡片按钮「{escape(label)}」</span>',
            text=f"点击了「{label}」",
            member=member,
            name=self.names.get(member),
        )
        ts = int(now.timestamp())
        if card.source == "app":
            try:
                code = self.fake.card_response_code(agentid=self.creds.agent_id, task_id=card.task_id, userid=member)
            except ValueError as exc:
                self.note(chat.key, f"无法点击：{exc}", "error")
                return {"item": clicked.id, **Outcome(None, {"code": "unknown_card", "message": str(exc)}).public()}
            plain = simulate.app_card_click(
                corp_id=self.creds.corp_id,
                agent_id=self.creds.agent_id,
                userid=member,
                task_id=card.task_id,
                event_key=key,
                card_type=card.card_type,
                response_code=code,
                create_time=ts,
            )
            sealed = simulate.seal_app(
                self.app_crypto, plain, corp_id=self.creds.corp_id, agent_id=self.creds.agent_id, timestamp=ts
            )
            outcome = await self._send(base_url, APP_PATH, sealed, chat, member, "app", card_item=item)
        else:
            group = chat.kind == "group"
            response_url = self.fake.response_url(
                {"chat": chat.key, "chatid": chat.chatid, "userid": member, "chattype": "group" if group else "single"}
            )
            plain = simulate.robot_card_click(
                aibot_id=self.creds.aibot_id,
                chatid=chat.chatid if group else None,
                userid=member,
                task_id=card.task_id,
                event_key=key,
                card_type=card.card_type,
                response_url=response_url,
                create_time=ts,
            )
            sealed = simulate.seal_robot(self.robot_crypto, plain, timestamp=ts)
            outcome = await self._send(base_url, AIBOT_PATH, sealed, chat, member, "aibot", card_item=item)
        return {"item": clicked.id, **outcome.public()}

    async def _send(
        self,
        base_url: str,
        path: str,
        sealed: simulate.Sealed,
        chat: Chat,
        member: str,
        source: Literal["app", "aibot"],
        card_item: Item | None = None,
    ) -> Outcome:
        """POSTs a sealed callback to the bot, notes the answer in the chat and shows a passive reply."""
        if self.session is None:
            raise RuntimeError("the sandbox is not started")
        target = "应用回调 /wecom/callback" if source == "app" else "智能机器人回调 /wecom/aibot"  # the path taken
        try:
            async with self.session.post(
                f"{base_url}{path}?{sealed.query}", data=sealed.body, headers={"Content-Type": sealed.content_type}
            ) as response:
                status, body = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            message = f"{type(exc).__name__}: {exc}"
            self.note(chat.key, f"回调无法送达机器人（{target}）：{message}", "error")
            return Outcome(None, {"code": "unreachable", "message": message})
        if status != 200:
            error = _error_of(body)
            refusal = f"HTTP {status} {error['code']}：{error['message']}"
            self.note(chat.key, f"机器人拒绝了回调（{target}）：{refusal}", "error")
            return Outcome(status, error)
        self.note(chat.key, f"已送达机器人（{target}，HTTP 200）", "ok")
        self._passive(body, chat, member, source, card_item)
        return Outcome(status)

    def _passive(self, body: bytes, chat: Chat, member: str, source: str, card_item: Item | None) -> None:
        """A passive reply in the callback's answer, recorded by the fake like any other message it carried."""
        if not body.strip() or (source == "app" and body.strip() == b"success"):
            return
        try:
            if source == "aibot":
                reply = simulate.open_robot_reply(self.robot_crypto, body)
                if reply.get("response_type") == "update_template_card" and card_item is not None:
                    self.update_card(card_item, "template_card", reply, via="passive")
                    return
                msgtype = str(reply.get("msgtype") or reply.get("response_type") or "unknown")
                payload = reply
            else:
                fields = simulate.open_app_reply(self.app_crypto, body)
                msgtype = str(fields.get("MsgType") or "unknown")
                button = fields.get("Button")
                if msgtype == "update_button" and card_item is not None and isinstance(button, Mapping):
                    replace = {"button": {"replace_name": button.get("ReplaceName")}}
                    self.update_card(card_item, "update_button", replace, via="passive")
                    return
                if msgtype == "text":
                    payload = {"msgtype": "text", "text": {"content": fields.get("Content", "")}}
                else:
                    payload = {"msgtype": msgtype, msgtype: fields}
        except simulate.ReplyError as exc:
            self.note(chat.key, f"被动回复无法解开：{exc}", "error")
            return
        self.fake.deliver("passive", {"chat": chat.key, "userid": member, "source": source}, msgtype, payload)

    # -- demo tickets -----------------------------------------------------------------------------------------

    async def inject_demo(self, app: web.Application, base_url: str, count: int = 1) -> list[Injected]:
        if self.session is None:
            raise RuntimeError("the sandbox is not started")
        secret = app[SETTINGS].hotline_ingest_secret
        assert secret is not None  # the sandbox's settings always have one
        tickets: TicketService = app[TICKETS]
        results = []
        for _ in range(count):
            result = await self.demo.inject(self.session, base_url, secret.get_secret_value(), tickets)
            self.note(self.directory.office_chat, result.note(self.config), "ok" if result.ok else "error")
            results.append(result)
        return results

    async def _demo_loop(self, app: web.Application, every: float) -> None:
        while True:
            await self.sleep(every)
            try:
                await self.inject_demo(app, self.self_url, 1)
            except Exception:
                log.exception("sandbox: the demo feed failed; it tries again next time")

    # -- lifecycle --------------------------------------------------------------------------------------------

    def announce(self) -> None:
        """The only place the token is written: the link to open (the page keeps it in a cookie), among the last
        lines of the start; shown even with LOG_LEVEL=WARNING, since without it nobody can open the page."""
        level = logging.INFO if log.isEnabledFor(logging.INFO) else logging.WARNING
        link = f"{self.page_url}?token={self.token}"
        log.log(level, "sandbox: open %s", link, extra={"fake_wecom": self.fake.base_url})

    async def serve(self, app: web.Application) -> AsyncIterator[None]:
        runner = await serve(self.fake, "127.0.0.1", 0)
        assert self.fake.base_url is not None
        app[SETTINGS] = app[SETTINGS].model_copy(update={"wecom_api_base": self.fake.base_url})
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT))
        if self.public:
            log.warning(
                "sandbox: served beyond this machine (SANDBOX=public): anyone with the link below can act as any "
                "member, and requests through a proxy or from other machines are accepted",
            )
        if self.demo_every is not None:
            every = self.demo_every.total_seconds()
            self._demo_task = asyncio.create_task(self._demo_loop(app, every), name="sandbox-demo")
        try:
            yield
        finally:
            await self.stop()
            await self.session.close()
            await runner.cleanup()

    async def stop(self) -> None:
        """Wakes the page's waiting requests and stops the demo feed (on shutdown, before requests are awaited)."""
        self.feed.close()
        task, self._demo_task = self._demo_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def card_info(card: object, source: object) -> CardInfo | None:
    """A clickable card (button_interaction with a task id), or None."""
    if not isinstance(card, Mapping) or source not in ("app", "aibot"):
        return None
    buttons = render.card_buttons(card)
    task_id = card.get("task_id")
    if not buttons or not isinstance(task_id, str) or not task_id:
        return None
    return CardInfo(
        source="app" if source == "app" else "aibot",
        task_id=task_id,
        card_type=str(card.get("card_type")),
        buttons=buttons,
    )


def _task_of(record: Delivered, body: Mapping[str, Any]) -> tuple[str, str] | None:
    """A card without clickable buttons still has a task id by which later updates find it."""
    card = body.get("template_card")
    if record.msgtype != "template_card" or not isinstance(card, Mapping) or not isinstance(card.get("task_id"), str):
        return None
    return ("app" if record.kind == "app" else "aibot", card["task_id"])


def _error_of(body: bytes) -> dict[str, Any]:
    try:
        error = json.loads(body).get("error")
        if isinstance(error, dict):
            return {"code": str(error.get("code", "")), "message": str(error.get("message", ""))}
    except (ValueError, AttributeError):
        pass
    return {"code": "", "message": body[:200].decode("utf-8", "replace")}


def _self_url(host: str, port: int) -> str:
    """The bot's own URL from its settings (a wildcard address is reached through loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _every(value: Any) -> str | None:
    if value is None:
        return None
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
