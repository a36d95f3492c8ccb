"""Keep tokens and secrets out of every log line, whoever wrote the line.

aiohttp's parser logs a malformed request with the offending header line, so a bad
``Authorization`` header put a whole bearer token in the error log; an access log prints query
strings (``/join?token=...``). ``redact`` replaces what looks like a token or a secret, and the
log formatters (``signaling.logs``) pass every line through it, tracebacks included. A request
aiohttp refused (``BadHttpMessage``) is logged as one line without its traceback: the client
sent garbage, nothing in the server failed.
"""

from __future__ import annotations

import logging
import re

from aiohttp.http_exceptions import HttpProcessingError

HIDDEN = "<redacted>"
_PATTERNS = [
    # our tokens (users' and nodes'), also when an attacker mangled their alphabet or padding
    (re.compile(r"gb1\.[A-Za-z0-9_\-+/=]+(?:\.[A-Za-z0-9_\-+/=]*)?"), "gb1." + HIDDEN),
    # any bearer credential, whatever its shape
    (re.compile(r"(?i)(bearer\s+)[^\s'\"\\,;]+"), r"\1" + HIDDEN),
    # query strings and form fields: ?token=..., &secret=..., password=...
    (re.compile(r"(?i)\b(token|secret|password|node_key)=[^&\s'\"\\]+"), r"\1=" + HIDDEN),
    # passwords in URLs: redis://user:password@host (a store URL in an error message)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1" + HIDDEN + "@"),
    # JSON bodies quoted in an error: "secret": "...", "password": "..."
    (re.compile(r"(?i)(\"(?:token|secret|password|node_key)\"\s*:\s*\")[^\"]*"), r"\1" + HIDDEN),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class QuietBadRequests(logging.Filter):
    """aiohttp's "Error handling request" for a request its parser refused: one line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and record.name.startswith("aiohttp"):
            first = next((line.strip() for line in str(exc.message).splitlines() if line.strip()), "")
            record.msg, record.args = "%s: %s", (record.getMessage(), f"{exc.code} {first}")
            record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, logging.INFO, "INFO"
        return True
