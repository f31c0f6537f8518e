"""Run the fake WeCom on its own, for the demo sandbox:

    python -m bot.sandbox.fake --corp-id ww1 --secret s3cret=1000002 --webhook-key k1 --member zhangsan --port 8900

Point the bot's WeCom base URL at it; every delivery is logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from bot.sandbox.fake.core import FakeWeCom
from bot.sandbox.fake.server import serve

log = logging.getLogger("bot.sandbox.fake")


def _secret(value: str) -> tuple[str, str]:
    secret, sep, agentid = value.rpartition("=")
    if not sep or not secret or not agentid.isdigit():
        raise argparse.ArgumentTypeError("expected SECRET=AGENTID")
    return secret, agentid


async def _run(args: argparse.Namespace) -> None:
    fake = FakeWeCom(
        corp_id=args.corp_id,
        secrets=dict(args.secret),
        webhook_keys=args.webhook_key,
        members=args.member,
    )
    runner = await serve(fake, args.host, args.port)
    log.info("fake WeCom listening on %s", fake.base_url)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox.fake", description="Serve a fake WeCom API.")
    parser.add_argument("--corp-id", required=True)
    parser.add_argument("--secret", type=_secret, action="append", default=[], help="SECRET=AGENTID, repeatable")
    parser.add_argument("--webhook-key", action="append", default=[], help="repeatable")
    parser.add_argument("--member", action="append", default=[], help="a valid userid, repeatable")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("bot.sandbox.fake").setLevel(logging.DEBUG)  # every delivery and drop
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args))


if __name__ == "__main__":
    main()
