"""Real processes for the system tests and the crash and outage runs (``tests/system``, ``bench/crash_run.py``,
``bench/outage_run.py``): the bot (``run_bot.py serve``) as a subprocess, a PostgreSQL and a Redis of their own
(own data directory, own port: the shared servers are never stopped), the fake WeCom served in the caller's event
loop over real HTTP, and the traffic a hotline office sends it: signed hand-overs and members' commands as signed,
encrypted callbacks, each sent until the bot accepts it, as the platform and WeCom retry.

What reached WeCom is read from the fake afterwards (:meth:`Traffic.tally`): each ticket's push and each command's
answer, counted, with the resends marked ``【补发】`` told apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from bot.hotline.signing import signed_headers
from bot.sandbox import simulate
from bot.sandbox.fake import FakeWeCom, make_app
from bot.sandbox.fake.model import Chat as FakeChat
from bot.wecom.crypto import CallbackCrypto
from config.loader import load_config
from config.model import BotConfig

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
RESEND_MARK = "【补发】"
INGEST_SECRET = "system-ingest-secret"
UNIT_WORD = {"SRJG": "店招", "HW": "垃圾"}  # routes the hand-over's content to the unit (config/sandbox.yaml)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binaries(*paths: str | Path) -> None:
    """Like ``require_service`` (tests/conftest.py): a missing program is a skip on a developer's machine, a failure
    in CI."""
    missing = [str(p) for p in paths if not (Path(p).exists() or shutil.which(str(p)))]
    if not missing:
        return
    message = f"not installed: {', '.join(missing)}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    within: float,
    what: str,
    every: float = 0.05,
    detail: Callable[[], object] | None = None,
) -> float:
    """Polls ``condition`` until it holds; the seconds it took. A :class:`TimeoutError` naming ``what`` after
    ``within`` seconds, with what ``detail`` says then (a real process is polled, never slept on for a fixed
    time)."""
    start = time.monotonic()
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            said = f" ({detail()})" if detail is not None else ""
            raise TimeoutError(f"{what}: not within {within:g} s{said}")
        await asyncio.sleep(every)


def _as_postgres() -> list[str]:
    """PostgreSQL refuses to run as root: then its programs run as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


# -- servers of our own -----------------------------------------------------------------------------------------


class OwnPostgres:
    """A PostgreSQL cluster of its own in a temporary directory, on a free loopback port (socket directory in the
    same place), made for speed (no fsync: the machine does not crash, only the server is stopped), with every
    commit written before it is acknowledged (synchronous_commit stays on: an immediate stop would otherwise lose
    commits the bot was told were made): for tests that stop the database under the bot."""

    def __init__(self) -> None:
        require_binaries(PG_BIN / "initdb", PG_BIN / "pg_ctl")
        if os.geteuid() == 0:
            require_binaries("runuser")
        self.dir = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str | Path) -> None:
        done = subprocess.run(
            [*_as_postgres(), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(str(args[0])).name} failed: {done.stderr.strip() or done.stdout.strip()}")

    async def start(self) -> None:
        """Starts the server, in a thread: the caller's event loop (the fake WeCom, the traffic) runs meanwhile."""
        await asyncio.to_thread(self.start_now)

    async def stop(self, mode: str = "immediate") -> None:
        """``immediate``: as a crash or a cut cable looks to the bot (connections dropped, no goodbye)."""
        await asyncio.to_thread(self.stop_now, mode)

    def start_now(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.log, "-w", "-t", "30", "start")

    def stop_now(self, mode: str = "immediate") -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            if self.running:
                self.stop_now()
        shutil.rmtree(self.dir, ignore_errors=True)


class OwnRedis:
    """A Redis of its own on a free loopback port, nothing saved to disk."""

    def __init__(self) -> None:
        require_binaries("redis-server")
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


# -- the fake WeCom, and the callbacks members send --------------------------------------------------------------


def system_config(directory: Path, *, extra_members: int = 0) -> Path:
    """The sandbox config, with the service window all day and no quiet hours (pushes go out at once whatever the
    hour), and ``extra_members`` more handlers in each unit with a work group besides the office's (a member may send
    10 commands a minute: a big run spreads its commands over many)."""
    data = yaml.safe_load((ROOT / "config" / "sandbox.yaml").read_text(encoding="utf-8"))
    data["service_window"] = {"start": "00:00", "end": "24:00"}
    data.pop("quiet_hours", None)
    for unit in data["units"]:
        if unit["code"] == data["office"]["unit"]:
            continue
        for i in range(extra_members):
            userid = f"{unit['code'].lower()}{i:03d}"
            data["members"].append({"userid": userid, "name": f"组员{i}", "roles": ["handler"]})
            unit["members"].append(userid)
    path = directory / "bot.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


class WeComSide:
    """The fake WeCom (served here, over real HTTP) with the config's members and work groups as app chats, and the
    credentials the bot gets: the app (API and callback) and the intelligent robot's callback."""

    CORP_ID = "wwsystemtest0001"
    AGENT_ID = 1000002
    APP_SECRET = "system-app-secret"
    APP_TOKEN = "SystemAppToken"
    APP_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    ROBOT_TOKEN = "SystemRobotToken"
    ROBOT_KEY = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
    ROBOT_ID = "aibsystemtest"
    ROBOT_SECRET = "system-robot-secret"

    def __init__(self, config: BotConfig, *, long_connection: bool = False) -> None:
        self.config = config
        self.long_connection = long_connection  # the robot's long connection too (its leader is one process)
        self.fake = FakeWeCom(
            corp_id=self.CORP_ID,
            secrets={self.APP_SECRET: self.AGENT_ID},
            webhook_keys=[],
            members=[m.userid for m in config.members],
            aibots={self.ROBOT_ID: self.ROBOT_SECRET} if long_connection else None,
        )
        for unit in config.units:
            if unit.group.chatid:
                members = list(dict.fromkeys([unit.head, *unit.deputies, *unit.members]))
                self.fake.chats[unit.group.chatid] = FakeChat(
                    chatid=unit.group.chatid, name=unit.name, owner=unit.head, userlist=members, agentid=self.AGENT_ID
                )
        self.app_crypto = CallbackCrypto(self.APP_TOKEN, self.APP_KEY, self.CORP_ID)
        self.robot_crypto = CallbackCrypto(self.ROBOT_TOKEN, self.ROBOT_KEY, "")
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        # as bot.sandbox.fake.serve, but a request still held by an injected delay does not hold up the end
        self.runner = web.AppRunner(make_app(self.fake), access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.fake.base_url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def env(self) -> dict[str, str]:
        """The bot's WeCom settings: the fake's address (once started) and the credentials."""
        assert self.fake.base_url is not None, "start() first"
        env = {"WECOM_API_BASE": self.fake.base_url, **self.credentials()}
        if self.long_connection:
            env.update(
                WECOM_AIBOT_BOT_ID=self.ROBOT_ID,
                WECOM_AIBOT_SECRET=self.ROBOT_SECRET,
                WECOM_AIBOT_WS_URL=self.fake.aibot.url,
            )
        return env

    def credentials(self) -> dict[str, str]:
        return {
            "WECOM_CORP_ID": self.CORP_ID,
            "WECOM_APP_AGENT_ID": str(self.AGENT_ID),
            "WECOM_APP_SECRET": self.APP_SECRET,
            "WECOM_APP_TOKEN": self.APP_TOKEN,
            "WECOM_APP_AES_KEY": self.APP_KEY,
            "WECOM_AIBOT_TOKEN": self.ROBOT_TOKEN,
            "WECOM_AIBOT_AES_KEY": self.ROBOT_KEY,
        }

    def group_command(
        self, userid: str, chatid: str, text: str, seq: int | str, *, timestamp: int | None = None
    ) -> simulate.Sealed:
        """A member's command to the robot in a work group; its answer's ``response_url`` carries ``seq``, so the
        answer the fake receives says which command it answers."""
        url = self.fake.response_url({"chatid": chatid, "userid": userid, "seq": seq})
        plain = simulate.robot_text(
            aibot_id=self.ROBOT_ID, robot_name="机器人", chatid=chatid, userid=userid, text=text, response_url=url
        )
        return simulate.seal_robot(self.robot_crypto, plain, timestamp=timestamp or int(time.time()))

    def private_command(self, userid: str, text: str, *, timestamp: int | None = None) -> simulate.Sealed:
        """A member's private message to the app."""
        timestamp = timestamp or int(time.time())
        plain = simulate.app_text(
            corp_id=self.CORP_ID,
            agent_id=self.AGENT_ID,
            userid=userid,
            text=text,
            create_time=timestamp,
            msg_id=simulate.new_app_msgid(),
        )
        return simulate.seal_app(
            self.app_crypto, plain, corp_id=self.CORP_ID, agent_id=self.AGENT_ID, timestamp=timestamp
        )


# -- the bot in its own process ---------------------------------------------------------------------------------


class BotProcess:
    """``run_bot.py serve`` as a subprocess on a port of its own, logging (text) to a file; started again on the
    same port after a kill."""

    def __init__(self, directory: Path, env: dict[str, str], *, config: Path | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "bot.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("WECOM_", "REDIS_", "DATABASE_"))},
            "BOT_HOST": "127.0.0.1",
            "BOT_PORT": str(self.port),
            "BOT_CONFIG": str(config or system_config(directory)),
            "HOTLINE_INGEST_SECRET": INGEST_SECRET,
            "API_TOKEN": "system-api-token",
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "INFO",
            "SANDBOX": "off",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "run_bot.py"), "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, within: float = 30.0) -> float:
        """Until the bot answers HTTP (any status: it listens once its start-up is done); the seconds it took."""

        async def answers() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the bot exited before it was ready:\n{self.log()[-3000:]}")
            try:
                async with aiohttp.ClientSession() as session, session.get(self.base + "/openapi.json") as response:
                    return response.status < 500
            except aiohttp.ClientError:
                return False

        return await wait_for(answers, within=within, what="the bot to answer")

    async def kill(self) -> float:
        """SIGKILL, at once; the moment it was sent (``time.time()``)."""
        assert self.proc is not None
        at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait, 10)
        return at

    async def stop(self) -> None:
        """SIGTERM, and wait for the graceful end (the event loop, serving the fake WeCom, runs meanwhile)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait, 10)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


@dataclass(frozen=True)
class Front:
    """What the office's traffic is sent to instead of one bot process: a proxy in front of several (its URL)."""

    base: str


# -- traffic ----------------------------------------------------------------------------------------------------


@dataclass
class Sent:
    """One request the office sent: its answers (status codes) over the attempts until one was accepted."""

    kind: str  # "handover" or "command"
    key: str  # the ticket number, or the command's key
    n: int  # the ticket's number in the run
    statuses: list[int | str] = field(default_factory=list)  # an HTTP status, or the client's error
    codes: list[str | None] = field(default_factory=list)  # the error code of each refusal
    accepted_at: float | None = None
    started_at: float = field(default_factory=time.time)  # the first attempt


@dataclass
class Tally:
    """What the fake WeCom received, per ticket push and per command answer."""

    pushes: dict[str, list[str]]  # ticket number -> the texts of its new-ticket pushes (in order)
    pushed_at: dict[str, float]  # ticket number -> when its first push arrived (epoch seconds)
    answers: dict[str, list[float]]  # command key -> when each answer arrived (epoch seconds)

    def lost(self, tickets: list[str], commands: list[str]) -> list[str]:
        return [f"push {t}" for t in tickets if not self.pushes.get(t)] + [
            f"answer {c}" for c in commands if not self.answers.get(c)
        ]

    def duplicated(self) -> list[str]:
        """Tickets pushed more than once unmarked (or resent more than once), and commands answered more than
        once."""
        out = [
            t
            for t, texts in self.pushes.items()
            if sum(RESEND_MARK not in x for x in texts) > 1 or sum(RESEND_MARK in x for x in texts) > 1
        ]
        out += [f"answer {c}" for c, times in self.answers.items() if len(times) > 1]
        return out

    def marked(self) -> int:
        return sum(RESEND_MARK in x for texts in self.pushes.values() for x in texts)


class Traffic:
    """A hotline office's traffic to one bot: hand-overs (``POST /api/tickets``, signed) and members' commands in
    the work groups (the robot's callback), each sent again until the bot accepts it (2xx), as the platform and
    WeCom do; what the bot answered each time is kept."""

    def __init__(
        self, bot: BotProcess | Front, wecom: WeComSide, *, prefix: str = "SYS", retry_every: float = 0.2
    ) -> None:
        self.bot = bot
        self.retry_every = retry_every
        self.wecom = wecom
        self.prefix = prefix
        self.sent: list[Sent] = []
        self.tickets: list[str] = []
        self.commands: list[str] = []  # the commands' keys: "<prefix>-<seq>"
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Traffic:
        # a front's certificate is the test's own: not checked
        connector = aiohttp.TCPConnector(ssl=False) if isinstance(self.bot, Front) else None
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), connector=connector)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    def ticket_no(self, n: int) -> str:
        return f"{self.prefix}{n:06d}"

    @staticmethod
    def unit_of(n: int) -> str:
        return "SRJG" if n % 2 == 0 else "HW"

    def handover_body(self, n: int) -> bytes:
        unit = self.unit_of(n)
        return json.dumps(
            {
                "ticket_no": self.ticket_no(n),
                "content": f"{UNIT_WORD[unit]}问题第{n}号，请尽快处理",
                "kind": "urgent",  # pushed at once (regular tickets wait for the digest)
            },
            ensure_ascii=False,
        ).encode()

    async def _post(
        self, record: Sent, build: Callable[[], tuple[str, bytes, dict[str, str]]], until: float, attempts: int
    ) -> Sent:
        assert self.session is not None
        for _ in range(attempts):
            url, body, headers = build()
            try:
                async with self.session.post(url, data=body, headers=headers) as response:
                    text = await response.text()
                    record.statuses.append(response.status)
                    if 200 <= response.status < 300:
                        record.accepted_at = time.time()
                        return record
                    record.codes.append(_error_code(text))
            except (aiohttp.ClientError, TimeoutError) as exc:
                record.statuses.append(type(exc).__name__)
                record.codes.append(None)
            if time.monotonic() >= until:
                break
            await asyncio.sleep(self.retry_every)
        return record

    async def handover(self, n: int, *, within: float = 60.0, attempts: int = 1000) -> Sent:
        """Hands ticket ``n`` over until the bot accepts it (a new signature each attempt, as the platform signs
        each request), for at most ``within`` seconds and ``attempts`` attempts."""
        no = self.ticket_no(n)
        if no not in self.tickets:
            self.tickets.append(no)
        record = Sent("handover", no, n)
        self.sent.append(record)
        body = self.handover_body(n)

        def build() -> tuple[str, bytes, dict[str, str]]:
            headers = {"Content-Type": "application/json", **signed_headers(INGEST_SECRET, int(time.time()), body)}
            return self.bot.base + "/api/tickets", body, headers

        return await self._post(record, build, time.monotonic() + within, attempts)

    async def command(self, seq: int, n: int, *, within: float = 60.0, attempts: int = 1000) -> Sent:
        """A ``/查`` of ticket ``n`` by one of its unit's members (in turn) in the unit's group; the same callback (same
        msgid) is sent again until accepted, as WeCom retries."""
        unit = self.wecom.config.unit(self.unit_of(n))
        assert unit is not None
        key = f"{self.prefix}-{seq}"  # unique across the Traffic objects sharing one fake WeCom
        member = unit.members[seq % len(unit.members)]  # spread: a member may send 10 commands a minute
        sealed = self.wecom.group_command(member, unit.group.chatid or "", f"/查 {self.ticket_no(n)}", key)
        self.commands.append(key)
        record = Sent("command", key, n)
        self.sent.append(record)

        def build() -> tuple[str, bytes, dict[str, str]]:
            headers = {"Content-Type": sealed.content_type}
            return f"{self.bot.base}/wecom/aibot?{sealed.query}", sealed.body, headers

        return await self._post(record, build, time.monotonic() + within, attempts)

    def tally(self) -> Tally:
        pushes: dict[str, list[str]] = {}
        pushed_at: dict[str, float] = {}
        answers: dict[str, list[float]] = {}
        expected = set(self.tickets)
        for d in self.wecom.fake.delivered:
            if d.kind == "response_url" and "seq" in d.to:
                answers.setdefault(str(d.to["seq"]), []).append(d.at.timestamp())
            elif d.kind == "appchat":
                text = _text_of(d.body)
                found = _NEW_TICKET.search(text)
                if found and found[1] in expected:
                    pushes.setdefault(found[1], []).append(text)
                    pushed_at.setdefault(found[1], d.at.timestamp())
        return Tally(pushes, pushed_at, answers)

    def statuses(self) -> Counter[int | str]:
        return Counter(s for r in self.sent for s in r.statuses)


_NEW_TICKET = re.compile(r"新工单 ([A-Za-z0-9_-]+)")


def _error_code(text: str) -> str | None:
    """``{"error": {"code": …}}``, the bot's error body; None for anything else."""
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return None
    return error.get("code") if isinstance(error, dict) else None


def _text_of(body: dict[str, Any]) -> str:
    for part in ("markdown", "text"):
        content = body.get(part)
        if isinstance(content, dict):
            return str(content.get("content", ""))
    return json.dumps(body, ensure_ascii=False)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@contextlib.contextmanager
def temporary_directory(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def sandbox_config(path: Path | None = None) -> BotConfig:
    return load_config(path or ROOT / "config" / "sandbox.yaml")
