"""What the browser tests need: Debian's chromium and PyPI's playwright, and the page helpers they share.
Importing this module from a test module skips that module, with the reason, when either is missing
(scripts/setup.sh installs both)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GIAOBAN_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not Path(CHROMIUM).exists():
    pytest.skip(
        f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install -y chromium; scripts/setup.sh does it)",
        allow_module_level=True,
    )
async_api = pytest.importorskip(
    "playwright.async_api", reason="browser tests need playwright: pip install -e '.[test]'"
)
expect = async_api.expect


def has_class(*names: str) -> re.Pattern[str]:
    """For ``expect(locator).to_have_class``: the element's classes include one of ``names``."""
    return re.compile(r"(^|\s)(" + "|".join(names) + r")(\s|$)")


PC_STATE = """() => window.giaobanJoin.media.pc && window.giaobanJoin.media.pc.connectionState"""


async def join_in_browser(browser, node, meeting_id: str, name: str):
    """A leader's laptop: a join link for ``name`` opened in a new browser context, camera ready, joined."""
    link = await node.join_link(meeting_id, name=name)
    page = await (await browser.new_context()).new_page()
    page.js_errors = []
    page.on("pageerror", lambda exc, errors=page.js_errors: errors.append(str(exc)))
    await page.goto(link["url"])
    await expect(page.locator("#camera")).to_contain_text("sẵn sàng", timeout=5000)
    await page.locator("#join").click()
    return page
