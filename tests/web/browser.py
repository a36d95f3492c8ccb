"""What the browser tests need: Debian's chromium and PyPI's playwright, and the page helpers they share.
Importing this module from a test module skips that module, with the reason, when either is missing
(scripts/setup.sh installs both)."""

from __future__ import annotations

import json
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


def _errors_into(lines: list[str]):
    """A WebSocket frame listener that keeps the signaling server's error messages in ``lines``."""

    def keep(frame: str | bytes) -> None:
        if isinstance(frame, str) and '"type":"error"' in frame:
            lines.append(f"server: {json.loads(frame).get('message')}")

    return keep


async def join_in_browser(browser, node, meeting_id: str, name: str, init_script: str | None = None):
    """A leader's laptop: a join link for ``name`` opened in a new browser context, camera ready, joined.
    ``init_script`` runs in the page before the page's own code (e.g. a codec preference)."""
    link = await node.join_link(meeting_id, name=name)
    context = await browser.new_context()
    if init_script:
        await context.add_init_script(init_script)
    page = await context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda exc, errors=page.js_errors: errors.append(str(exc)))
    page.console_lines = []  # console output and the server's error messages, for failure messages
    page.on("console", lambda msg, lines=page.console_lines: lines.append(f"{msg.type}: {msg.text}"))
    page.on("websocket", lambda ws, lines=page.console_lines: ws.on("framereceived", _errors_into(lines)))
    await page.goto(link["url"])
    await expect(page.locator("#camera")).to_contain_text("sẵn sàng", timeout=5000)
    await page.locator("#join").click()
    return page
