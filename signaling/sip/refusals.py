"""How a SIP exchange of the stack (#14) fails, as exceptions the gateway catches or raises.

``Refusal``: a final 3xx-6xx answer with reason and Warning text (raised by on_reinvite to refuse a
re-INVITE, raised by ``Call.reinvite`` when the room refuses ours); ``DialFailed``: a dial that got
no 2xx; ``CallGone``: answering a call the room already ended.
"""

from __future__ import annotations


class Refusal(Exception):
    """Raised by ``on_reinvite`` (or given to ``reject``): answer with this status, reason and Warning."""

    def __init__(self, code: int, reason: str, warning: str | None = None) -> None:
        super().__init__(f"{code} {reason}")
        self.code, self.reason, self.warning = code, reason, warning


class CallGone(RuntimeError):
    """answer() on a call that already ended (the room cancelled or hung up while we set up media)."""


class DialFailed(Exception):
    """A dial ended without a 2xx: ``code``/``reason`` of the final answer (408 when none came)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code, self.reason = code, reason
