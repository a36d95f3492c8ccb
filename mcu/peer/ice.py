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

A server behind a 1:1 NAT (one public address forwarded whole to its private one) also gives its
public addresses: each host candidate then has a server-reflexive twin on the public address and
the same port, as a STUN server would have found (``nat_candidates``), so a client outside reaches
it through the NAT while one on the LAN still uses the host candidate.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority

from mcu.fence import ComponentCandidates, replace_component_candidates, replace_host_addresses

_lock = threading.Lock()
_original: Callable[[bool, bool], list[str]] | None = None
_pinned: tuple[str, ...] = ()
_public: tuple[str, ...] = ()
_original_components: ComponentCandidates | None = None
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


def nat_candidates(candidates: Sequence[Candidate], public: Sequence[str]) -> list[Candidate]:
    """A server-reflexive candidate on each public address for each host candidate of its family."""
    out = []
    for host in candidates:
        for address in public:
            if host.type != "host" or (":" in address) != (":" in host.host):
                continue
            out.append(
                Candidate(
                    foundation=candidate_foundation("srflx", host.transport, host.host),
                    component=host.component,
                    transport=host.transport,
                    priority=candidate_priority(host.component, "srflx"),
                    host=address,
                    port=host.port,
                    type="srflx",
                    related_address=host.host,
                    related_port=host.port,
                )
            )
    return out


async def _with_public(connection: Any, component: int, addresses: list[str], timeout: int = 5) -> list[Candidate]:
    assert _original_components is not None
    candidates = await _original_components(connection, component, addresses, timeout)
    return candidates + nat_candidates(candidates, _public)


class HostPin:
    """Handle for one active pin; ``release()`` is idempotent."""

    def __init__(self, addresses: tuple[str, ...], public: tuple[str, ...] = ()) -> None:
        self.addresses, self.public = addresses, public
        self._released = False

    def release(self) -> None:
        global _original, _original_components, _pinned, _public, _refs
        with _lock:
            if self._released:
                return
            self._released = True
            _refs -= 1
            if _refs == 0 and _original is not None:
                replace_host_addresses(_original)
                _original = None
                _pinned = ()
            if _refs == 0 and _original_components is not None:
                replace_component_candidates(_original_components)
                _original_components, _public = None, ()


def pin_host_addresses(addresses: Sequence[str], public: Sequence[str] = ()) -> HostPin:
    """Make aioice gather host candidates only on ``addresses`` (e.g. ["127.0.0.1"]), and with
    ``public`` (a 1:1 NAT's public addresses) a server-reflexive twin of each on those."""
    global _original, _original_components, _pinned, _public, _refs
    wanted, mapped = tuple(addresses), tuple(public)
    if not wanted:
        raise ValueError("pin_host_addresses needs at least one address")
    with _lock:
        if _refs and (wanted, mapped) != (_pinned, _public):
            raise IcePinError(f"ICE host addresses already pinned to {_pinned} (public {_public}), not {wanted}")
        if _refs == 0:
            _pinned = wanted
            _original = replace_host_addresses(_pinned_host_addresses)
            if mapped:
                _public = mapped
                _original_components = replace_component_candidates(_with_public)
        _refs += 1
    return HostPin(wanted, mapped)


def pinned_addresses() -> tuple[str, ...]:
    return _pinned
