"""mypy over the typed core (``[tool.mypy]`` in pyproject.toml names the files and how strict each
module is): a type error there fails CI, with mypy's own report as the message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_nothing_in_the_typed_core():
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
