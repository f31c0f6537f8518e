#!/usr/bin/env python3
"""The bot's command line in a checkout: ``python run_bot.py --help``. Installed, the same is ``hotline-bot``
(bot/app/cli.py)."""

import sys

from bot.app.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
