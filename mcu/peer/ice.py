"""ICE host-address setting for the media node.

aioice gathers host candidates from every interface address except 127.0.0.1. A media node
may need the opposite: tests and load tests must use only 127.0.0.1, and a production node
usually wants to advertise only its public-facing address. aioice has no per-connection option
for this, so the hook below replaces ``aioice.ice.get_host_addresses`` (the one function
aioice calls while gathering; ``mcu.fence.replace_host_addresses``) for the whole process while
a pin is active.

The pin is reference counted: every ``pin_host_addresses()`` returns a handle whose
``release()`` undoes it, and the original function comes back once the last handle is released.
All active pins must agree on the address list (a process serves one set of interfaces).
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

from mcu.fence import replace_host_addresses

_lock = threading.Lock()
_original: Callable[[bool, bool], list[str]] | None = None
_pinned: tuple[str, ...] = ()
_refs = 0


class IcePinError(RuntimeError):
    """Two different host-address pins were requested in one process."""


def _pinned_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    out = []
    for addr in _pinned:
        if ":" in addr:
            if use_ipv6:
                out.append(addr)
        elif use_ipv4:
            out.append(addr)
    return out


class HostPin:
    """Handle for one active pin; ``release()`` is idempotent."""

    def __init__(self, addresses: tuple[str, ...]) -> None:
        self.addresses = addresses
        self._released = False

    def release(self) -> None:
        global _original, _pinned, _refs
        with _lock:
            if self._released:
                return
            self._released = True
            _refs -= 1
            if _refs == 0 and _original is not None:
                replace_host_addresses(_original)
                _original = None
                _pinned = ()


def pin_host_addresses(addresses: Sequence[str]) -> HostPin:
    """Make aioice gather host candidates only on ``addresses`` (e.g. ["127.0.0.1"])."""
    global _original, _pinned, _refs
    wanted = tuple(addresses)
    if not wanted:
        raise ValueError("pin_host_addresses needs at least one address")
    with _lock:
        if _refs and wanted != _pinned:
            raise IcePinError(f"ICE host addresses already pinned to {_pinned}, not {wanted}")
        if _refs == 0:
            _pinned = wanted
            _original = replace_host_addresses(_pinned_host_addresses)
        _refs += 1
    return HostPin(wanted)


def pinned_addresses() -> tuple[str, ...]:
    return _pinned
