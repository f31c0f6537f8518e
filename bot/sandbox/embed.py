"""The sandbox inside the bot, the people's side: the page's state, a member typing or clicking (signed callbacks
to the bot over real HTTP, or frames over the robot's long connection, as WeCom sends them), demo hand-overs, and
the fake's lifetime beside the bot's. When it is on, where the fake runs, the credentials and how the groups reach
the bot: :mod:`bot.sandbox.wiring`; the long connection's side: :mod:`bot.sandbox.frames`; how what the fake
records becomes the page's chat items: :mod:`bot.sandbox.records`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from html import escape
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bot.domain.clock import Clock
from bot.sandbox import render, simulate
from bot.sandbox.chats import Chat, Directory, Feed, Item
from bot.sandbox.demo import DemoFeed, Injected
from bot.sandbox.fake import serve
from bot.sandbox.fake.model import Chat as FakeChat
from bot.sandbox.fake.oauth_api import AUTHORIZE, SSO_LOGIN
from bot.sandbox.frames import Frames, Outcome, Taker
from bot.sandbox.records import Records
from bot.sandbox.wiring import (
    API_PLACEHOLDER,
    Credentials,
    RobotMode,
    SandboxWeCom,
    is_loopback,
    new_token,
    self_url,
)
from bot.services.tickets import TicketService
from bot.web.keys import SETTINGS, TICKETS
from bot.wecom.callbacks import AIBOT_PATH, APP_PATH
from bot.wecom.crypto import CallbackCrypto
from bot.wecom.longconn import AIBOT_CONNECTION
from config.model import BotConfig
from config.settings import Settings

log = logging.getLogger(__name__)

ROBOT_NAME = "机器人"  # the intelligent robot's display name: the "@机器人 " in front of group messages
HTTP_TIMEOUT = 15.0


# -- the sandbox ----------------------------------------------------------------------------------------------


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
        self.robot: RobotMode = settings.sandbox_robot  # how the work groups reach the bot (see wiring)
        self.directory = Directory(config)
        self.names = self.directory.names
        self.feed = Feed()
        self.records = Records(self.directory, self.feed, clock)
        self.app_crypto = CallbackCrypto(creds.app_token, creds.app_aes_key, creds.corp_id)
        self.robot_crypto = CallbackCrypto(creds.aibot_token, creds.aibot_aes_key, "")
        self.fake = SandboxWeCom(
            self.records.recorded,
            corp_id=creds.corp_id,
            secrets={creds.app_secret: creds.agent_id},
            webhook_keys=[c.webhook_key for c in self.directory.groups() if c.webhook_key],
            members=[m.userid for m in config.members],
            names={m.userid: m.name for m in config.members},
            # the board's sign-in comes back to the bot: its PUBLIC_URL's host when set (WeCom's 可信域名)
            trusted_domains=[urlsplit(settings.public_url).netloc] if settings.public_url else None,
            clock=clock.now,
            aibots={creds.aibot_id: creds.aibot_secret} if self.robot == "long_connection" else None,
        )
        self.records.media_of = self.fake.media_of
        self._app: web.Application | None = None  # the bot's, once it starts
        self.frames = Frames(
            self.fake.aibot, creds.aibot_id, self._connection, wait=HTTP_TIMEOUT, robot_name=ROBOT_NAME
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
            update={**creds.settings(self.robot), "wecom_api_base": API_PLACEHOLDER, "hotline_ingest_secret": secret}
        )
        self.demo = DemoFeed(config, clock)
        self.demo_every = settings.sandbox_demo_every
        self.session: aiohttp.ClientSession | None = None
        self.self_url = self_url(settings.host, settings.port)
        self.page_url = f"{self.self_url}/sandbox/"  # without the token: for anything but the start line
        self._demo_task: asyncio.Task[None] | None = None

    # -- the page's state -------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "epoch": self.feed.epoch,
            "last": self.feed.last,
            "public": self.public,
            "robot": self.robot,
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

    # -- people's side: typing, clicking ---------------------------------------------------------------------

    async def say(self, base_url: str, member: str, chat: Chat, text: str) -> dict[str, Any]:
        now = self.clock.now()
        typed = self.feed.add(
            chat.key, now, "member", html=render.plain(text), text=text, member=member, name=self.names.get(member)
        )
        ts = int(now.timestamp())
        if chat.kind == "group" and self.robot == "long_connection":
            outcome = self._noted(chat, await self.frames.message(member=member, chat=chat, text=text))
        elif chat.kind == "group":
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
        elif self.robot == "long_connection":
            clicked_over = await self.frames.click(
                member=member, chat=chat, task_id=card.task_id, event_key=key, card_type=card.card_type
            )
            outcome = self._noted(chat, clicked_over)
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

    def _noted(self, chat: Chat, outcome: Outcome) -> Outcome:
        """Notes in the chat what became of a frame handed over the long connection."""
        target = "智能机器人长连接"
        if outcome.accepted:
            self.note(chat.key, f"已送达机器人（{target}，已存入收件箱）", "ok")
        else:
            message = (outcome.error or {}).get("message", "")
            self.note(chat.key, f"消息未送达机器人（{target}）：{message}", "error")
        return outcome

    def _connection(self) -> Taker | None:
        """The bot's long connection to the robot, once the bot has made it."""
        app = self._app
        return app.get(AIBOT_CONNECTION) if app is not None else None

    def _passive(self, body: bytes, chat: Chat, member: str, source: str, card_item: Item | None) -> None:
        """A passive reply in the callback's answer, recorded by the fake like any other message it carried."""
        if not body.strip() or (source == "app" and body.strip() == b"success"):
            return
        try:
            if source == "aibot":
                reply = simulate.open_robot_reply(self.robot_crypto, body)
                if reply.get("response_type") == "update_template_card" and card_item is not None:
                    self.records.update_card(card_item, "template_card", reply, via="passive")
                    return
                msgtype = str(reply.get("msgtype") or reply.get("response_type") or "unknown")
                payload = reply
            else:
                fields = simulate.open_app_reply(self.app_crypto, body)
                msgtype = str(fields.get("MsgType") or "unknown")
                button = fields.get("Button")
                if msgtype == "update_button" and card_item is not None and isinstance(button, Mapping):
                    replace = {"button": {"replace_name": button.get("ReplaceName")}}
                    self.records.update_card(card_item, "update_button", replace, via="passive")
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
        # the board signs people in through the fake WeCom, which shows a picker of the members
        log.log(level, "board: open %s/board/ (sign in as any member of the sandbox)", self.self_url)
        log.log(level, "sandbox: open %s", link, extra={"fake_wecom": self.fake.base_url})

    async def serve(self, app: web.Application) -> AsyncIterator[None]:
        runner = await serve(self.fake, "127.0.0.1", 0)
        assert self.fake.base_url is not None
        self._app = app
        real: dict[str, Any] = {
            "wecom_api_base": self.fake.base_url,
            # the board's sign-in: the fake's picker of members stands for WeCom's browser and its QR login
            "wecom_oauth_url": self.fake.base_url + AUTHORIZE,
            "wecom_sso_url": self.fake.base_url + SSO_LOGIN,
        }
        if self.robot == "long_connection":
            real["wecom_aibot_ws_url"] = self.fake.aibot.url  # read when the bot connects, after this
        app[SETTINGS] = app[SETTINGS].model_copy(update=real)
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


def _error_of(body: bytes) -> dict[str, Any]:
    try:
        error = json.loads(body).get("error")
        if isinstance(error, dict):
            return {"code": str(error.get("code", "")), "message": str(error.get("message", ""))}
    except (ValueError, AttributeError):
        pass
    return {"code": "", "message": body[:200].decode("utf-8", "replace")}


def _every(value: Any) -> str | None:
    if value is None:
        return None
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
