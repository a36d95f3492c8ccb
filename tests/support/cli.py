"""The ``giaoban`` command line as the tests run it: this interpreter's ``-m signaling.cli`` (what the
``giaoban`` script runs), on the sample directory unless told otherwise. Run it with ``cwd=ROOT``."""

from __future__ import annotations

import sys
from os import PathLike

from tests.support.harness import HAGIANG


def giaoban_command(
    data_dir: str | PathLike[str], *command: str, store: str | None = None, directory: str = HAGIANG
) -> list[str]:
    """``giaoban --directory D --data-dir X [--store S] <command...>``."""
    store_option = ["--store", store] if store is not None else []
    return [
        sys.executable,
        "-m",
        "signaling.cli",
        "--directory",
        directory,
        "--data-dir",
        str(data_dir),
        *store_option,
        *command,
    ]


def serve_command(
    data_dir: str | PathLike[str], port: int, *options: str, store: str | None = None, host: str | None = "127.0.0.1"
) -> list[str]:
    """``giaoban ... serve [--host H] --port P <options...>`` (``host=None``: the settings' host)."""
    host_option = ["--host", host] if host is not None else []
    return giaoban_command(data_dir, "serve", *host_option, "--port", str(port), *options, store=store)
