"""The deployment recipe, run on this machine: ``deploy/nginx/hotline-bot.conf`` served by Debian's nginx (its
certificate made here, its ports the test's; nothing else of the file changed) in front of two bot processes that
share PostgreSQL and Redis, started as ``deploy/systemd/hotline-bot@.service`` starts them (``SANDBOX=off``, one
port each). The hotline platform's hand-overs and the members' commands in the work groups go through nginx; the
process that leads (the deadline engine, the robot's long connection) is killed with SIGKILL in the middle of the
traffic. Nothing accepted is lost, nothing doubled but marked resends, and the other process takes both over.
The figures are printed (``-s``) and kept in the test's report."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.procs import (
    ROOT,
    BotProcess,
    Front,
    OwnPostgres,
    OwnRedis,
    Traffic,
    WeComSide,
    free_port,
    sandbox_config,
    system_config,
    wait_for,
)
from tests.system.test_crash import missing, outbox_settled, traffic_round

NGINX = "/usr/sbin/nginx"
SITE = ROOT / "deploy" / "nginx" / "hotline-bot.conf"
TAKEOVER = 20.0  # seconds: the survivor leads within this long of the kill (PostgreSQL's lock is freed at once)


def site_for(upstreams: tuple[int, int], https: int, http: int, cert: Path, key: Path) -> str:
    """The recipe's site with this machine's ports and certificate: only the lines that name them are changed."""
    text = SITE.read_text(encoding="utf-8")
    swaps = {
        "server 127.0.0.1:8081 ": f"server 127.0.0.1:{upstreams[0]} ",
        "server 127.0.0.1:8082 ": f"server 127.0.0.1:{upstreams[1]} ",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "listen 80;": f"listen 127.0.0.1:{http};",
        "listen [::]:80;": "",
        "/etc/ssl/certs/hotline.example.gov.cn.pem": str(cert),
        "/etc/ssl/private/hotline.example.gov.cn.key": str(key),
        "/var/log/nginx/hotline-bot.access.log": str(cert.parent / "hotline-bot.access.log"),
    }
    for old, new in swaps.items():
        assert old in text, f"the recipe no longer has {old!r}: update this test with it"
        text = text.replace(old, new)
    return text


@pytest.fixture
def nginx_files(tmp_path: Path) -> Path:
    if shutil.which(NGINX) is None:
        message = f"nginx is not installed at {NGINX} (make test installs it: apt-get install nginx-light)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path / "nginx"
    for sub in ("", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / sub).mkdir(exist_ok=True)
        (folder / sub).chmod(0o777)  # nginx's workers run as another user when the test runs as root
    return folder


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class Nginx:
    def __init__(self, folder: Path, upstreams: tuple[int, int]) -> None:
        self.folder = folder
        self.https, self.http = free_port(), free_port()
        cert, key = make_certificate(folder)
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = f"""
{user}
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    {site_for(upstreams, self.https, self.http, cert, key)}
}}
"""
        self.conf = folder / "nginx.conf"
        self.conf.write_text(conf, encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def check(self) -> None:
        done = subprocess.run([NGINX, "-t", "-p", str(self.folder), "-c", str(self.conf)], capture_output=True)
        assert done.returncode == 0, done.stderr.decode()

    def spawn(self) -> None:
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.folder), "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    async def start(self) -> None:
        self.spawn()

        async def listening() -> bool:
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"http://127.0.0.1:{self.http}/", allow_redirects=False) as r,
                ):
                    return r.status == 301  # the plain port sends browsers to https
            except aiohttp.ClientError:
                return False

        await wait_for(listening, within=15, what="nginx to listen")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def recipe_config(directory: Path) -> Path:
    """The system tests' configuration, the groups' pushes through the app's chats (the robot's long connection
    runs beside them, for its leader to be taken over), more members to spread the commands over."""
    path = system_config(directory, extra_members=6)  # a member may send 10 commands a minute: spread them
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for unit in data["units"]:
        unit["group"]["transport"] = "app"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return recipe_config(tmp_path)


@pytest.fixture
async def robot_wecom(config_path: Path) -> AsyncIterator[WeComSide]:
    """The fake WeCom with the recipe's members (the traffic spreads its commands over them) and the robot."""
    side = WeComSide(sandbox_config(config_path), long_connection=True)
    await side.start()
    yield side
    await side.stop()


async def readyz(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(base + "/readyz") as response:
        return dict(await response.json())


async def leads(base: str) -> bool:
    """Whether the process at ``base`` runs the deadline engine and holds the robot's long connection."""
    try:
        checks = (await readyz(base))["checks"]
    except (aiohttp.ClientError, ValueError, KeyError):
        return False
    return checks["deadline_engine"]["status"] == "ok" and checks["wecom_aibot"]["status"] == "ok"


async def test_two_processes_behind_the_recipes_nginx_lose_nothing_when_the_leader_dies(
    own_postgres: tuple[OwnPostgres, str],
    own_redis: OwnRedis,
    robot_wecom: WeComSide,
    nginx_files: Path,
    tmp_path: Path,
    config_path: Path,
    record_property: Any,
) -> None:
    _, database_url = own_postgres
    config = config_path
    env = {**robot_wecom.env(), "DATABASE_URL": database_url, "REDIS_URL": own_redis.url}
    bots = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        bots.append(BotProcess(folder, env, config=config))
    first, second = bots
    nginx = Nginx(nginx_files, (first.port, second.port))
    nginx.check()
    try:
        first.start()
        await first.ready()
        await wait_for(lambda: leads(first.base), within=TAKEOVER, what="the first process to lead")
        second.start()
        await second.ready()
        assert (await readyz(second.base))["checks"]["deadline_engine"]["status"] == "standby"
        await nginx.start()
        front = Front(f"https://127.0.0.1:{nginx.https}")
        async with Traffic(front, robot_wecom, prefix="NGX") as traffic:
            await traffic_round(traffic, range(0, 10))
            await wait_for(lambda: not missing(traffic), within=20, what="round 1", detail=lambda: missing(traffic))
            # the leader dies while the office keeps sending through nginx
            sending = asyncio.ensure_future(traffic_round(traffic, range(10, 30)))
            await asyncio.sleep(0.05)  # the round is under way: some requests are at the dying process
            killed_at = await first.kill()
            await sending
            await wait_for(lambda: leads(second.base), within=TAKEOVER, what="the survivor to lead")
            took_over = time.time() - killed_at
            await traffic_round(traffic, range(30, 40))
            await wait_for(
                lambda: not missing(traffic), within=30, what="every push and answer", detail=lambda: missing(traffic)
            )
            await wait_for(lambda: outbox_settled(database_url), within=20, what="the outbox to settle")
            tally = traffic.tally()
            lost, doubled = tally.lost(traffic.tickets, traffic.commands), tally.duplicated()
            statuses = traffic.statuses()
            figures = (
                f"recipe: {len(traffic.tickets)} hand-overs and {len(traffic.commands)} commands through nginx; "
                f"answers {dict(statuses)}; lost {len(lost)}, doubled {len(doubled)}, marked resends "
                f"{tally.marked()}; the survivor led {took_over:.1f} s after the kill"
            )
            sys.stdout.write(figures + "\n")  # shown with pytest -s
            record_property("figures", figures)
            assert lost == []
            assert doubled == []
            assert took_over <= TAKEOVER
        # one request id from nginx's access log to the bot's answer (and its log lines)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"https://127.0.0.1:{nginx.https}/api/openapi.json", ssl=False) as answer,
        ):
            assert answer.status == 200
            request_id = answer.headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        access_log = nginx_files / "hotline-bot.access.log"  # written once nginx has finished the request
        await wait_for(lambda: f"request_id={request_id}" in access_log.read_text(), within=5, what="the access log")
    finally:
        nginx.stop()
        for bot in bots:
            await bot.stop()
