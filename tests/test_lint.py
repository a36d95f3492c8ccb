"""ruff over the whole tree (rules in pyproject.toml): an undefined name, an unused import or a
syntax error anywhere fails CI, and so does a file the formatter would change; ruff's own report
is the message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_finds_nothing():
    done = _ruff("check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_changes_nothing():
    done = _ruff("format", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
