"""The browser the page tests drive: Debian's Chromium (``/usr/bin/chromium``, installed by ``make test``) under
Playwright; Playwright's own browser downloads are never used."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A running Chromium. Without it, a test fails in CI and is skipped elsewhere, saying how to install it."""
    if shutil.which(CHROMIUM) is None:
        message = f"Chromium is not installed at {CHROMIUM} (make test installs it: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    api = pytest.importorskip("playwright.async_api")
    async with api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            await browser.close()
