"""What the browser tests need: Debian's chromium and PyPI's playwright. Importing this module from a
test module skips that module, with the reason, when either is missing (scripts/setup.sh installs both)."""

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
