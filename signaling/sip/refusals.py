"""How a SIP exchange of the stack (#14) fails, as exceptions the gateway catches or raises.

``Refusal``: a final 3xx-6xx answer with reason and Warning text (raised by on_invite or on_reinvite
to refuse, raised by ``Call.reinvite`` when the room refuses ours; ``refusal`` makes one Vietnamese
first); ``refusal_of`` is the one place
that turns what a handler raised into that answer (OfferRefused: 488 with its text as Warning);
``DialFailed``: a dial that got no 2xx; ``CallGone``: answering a call the room already ended.
"""

from __future__ import annotations

from mcu.api import OfferRefused


class Refusal(Exception):
    """Raised by ``on_invite``/``on_reinvite`` (or given to ``reject``): answer with this status, reason and Warning."""

    def __init__(self, code: int, reason: str, warning: str | None = None) -> None:
        super().__init__(f"{code} {reason}")
        self.code, self.reason, self.warning = code, reason, warning

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.warning}" if self.warning else f"{self.code} {self.reason}"


def refusal(code: int, reason: str, vietnamese: str, english: str) -> Refusal:
    """A refusal as a room shows it: the reason phrase English (ASCII, shown raw), the Warning
    Vietnamese first and the English after it (the one place this text is made)."""
    return Refusal(code, reason, f"{vietnamese} ({english})")


def refusal_of(exc: BaseException) -> Refusal | None:
    """The final answer a handler's exception asks for, or None (an error of ours: 500 and a log)."""
    if isinstance(exc, Refusal):
        return exc
    if isinstance(exc, OfferRefused):  # the leg takes nothing offered: its text names what was offered and taken
        return Refusal(488, "Not Acceptable Here", str(exc))
    code, reason = getattr(exc, "code", None), getattr(exc, "reason", None)
    if isinstance(code, int) and 300 <= code < 700 and isinstance(reason, str):  # a refusal of another kind
        return Refusal(code, reason, getattr(exc, "warning", None) or None)
    return None


class CallGone(RuntimeError):
    """answer() on a call that already ended (the room cancelled or hung up while we set up media)."""


class DialFailed(Exception):
    """A dial ended without a 2xx: ``code``/``reason`` of the final answer (408 when none came)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code, self.reason = code, reason
