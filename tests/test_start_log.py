"""What a person starting the bot reads: the link to open and where it listens are the last lines of the start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.procs import ROOT, free_port


def serve_once(tmp_path: Path, **settings: str) -> tuple[int, list[str]]:
    """``serve`` as a person runs it (text logs, a SQLite file of its own, no WeCom), started until it listens, then
    stopped with SIGTERM; its port and its log's lines."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECOM_", "SANDBOX"))}
    env.update(
        {
            "BOT_PORT": str(port),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bot.db",
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "INFO",
            **settings,
        }
    )
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        bot = subprocess.Popen(
            [sys.executable, str(ROOT / "run_bot.py"), "serve"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 30
        while "listening on" not in log.read_text() and time.monotonic() < deadline and bot.poll() is None:
            time.sleep(0.05)  # a real process's start, polled with a bound
    finally:
        bot.terminate()
        bot.wait(timeout=30)
    return port, [line for line in log.read_text().splitlines() if line.strip()]


def test_the_sandbox_link_and_the_address_end_the_start(tmp_path: Path) -> None:
    port, lines = serve_once(
        tmp_path,
        BOT_CONFIG=str(ROOT / "config" / "sandbox.yaml"),
        HOTLINE_INGEST_SECRET="sandbox-secret",
        API_TOKEN="sandbox-token",
    )
    start = lines[: next(i for i, line in enumerate(lines) if "listening on" in line) + 1]
    assert "sandbox: open http://127.0.0.1:" in start[-2], start[-3:]
    assert f"board: open http://127.0.0.1:{port}/board/" in start[-3], start[-4:]
    assert start[-1].endswith(f"listening on http://127.0.0.1:{port}"), start[-3:]
    # and a stop says so: the signal, then the end
    stop = lines[len(start) :]
    assert any("stopping: no new connections" in line for line in stop), stop[-5:]
    assert stop[-1].endswith("stopped"), stop[-5:]
    assert "version=" in next(line for line in lines if "starting hotline-bot" in line)


def test_a_deployment_without_wecom_says_at_start_that_nothing_will_be_sent(tmp_path: Path) -> None:
    """SANDBOX=off and no WeCom credentials: the bot serves (hand-overs are taken, deadlines kept), and its start says
    plainly that no push, reminder or answer will reach anyone."""
    _, lines = serve_once(tmp_path, BOT_CONFIG=str(ROOT / "config" / "example.yaml"), SANDBOX="off")
    assert any("listening on" in line for line in lines), lines[-10:]
    assert any("WeCom is not configured and the sandbox is off" in line for line in lines)
