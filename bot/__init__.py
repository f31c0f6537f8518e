"""hotline-bot: 12345 hotline tickets into WeCom work groups."""

from __future__ import annotations


def version() -> str:
    """The installed distribution's version (a checkout that was never installed says so)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("hotline-bot")
    except PackageNotFoundError:
        return "0+unknown (not installed: pip install -e .)"
