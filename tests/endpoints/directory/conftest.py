"""The sample Hà Giang directory (config/hagiang.yaml, 211 endpoints), loaded once per test module."""

from __future__ import annotations

import pytest

from endpoints.directory import Directory, load_directory
from tests.support.harness import HAGIANG


@pytest.fixture(scope="module")
def hg() -> Directory:
    return load_directory(HAGIANG)
