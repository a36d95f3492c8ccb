"""mypy over the typed core (``[tool.mypy]`` in pyproject.toml names the files and how strict each
module is): a type error there fails CI, with mypy's own report as the message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# TODO(#12): mcu/api.py, mcu/sfu and signaling/auth are being typed; drop this mark when they are.
@pytest.mark.xfail(reason="the typed core is not type-clean yet (#12)", strict=False)
def test_mypy_finds_nothing_in_the_typed_core():
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
