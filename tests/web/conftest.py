"""Browser fixtures: Debian's chromium driven by PyPI's playwright (async API, on the test's own
event loop, next to the signaling node it talks to). Never `playwright install`: no downloads.
Test modules import ``tests.web.browser`` first, which skips them when chromium or playwright is missing."""

from __future__ import annotations

import pytest


@pytest.fixture
async def browser():
    from tests.web.browser import CHROMIUM, FLAGS, async_api

    async with async_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page(browser):
    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, locale="vi-VN")
    pg = await context.new_page()
    pg.js_errors = []  # uncaught exceptions in the page; tests assert there are none
    pg.on("pageerror", lambda exc: pg.js_errors.append(str(exc)))
    try:
        yield pg
    finally:
        await context.close()
