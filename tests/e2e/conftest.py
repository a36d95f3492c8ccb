"""Whole-chain fixtures: the browser fixtures of tests/web (Debian's chromium driven by playwright;
skipped where either is missing); the server node with its media node is tests/conftest.py's mnode."""

from __future__ import annotations

from tests.web.conftest import browser, page  # noqa: F401  (fixtures shared with the page tests)
