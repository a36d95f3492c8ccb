"""Who is calling: operator logins, endpoint credentials, join links -> one ``Identity``.

Operators (province IT staff) log in with a username and password kept as scrypt hashes in the
store (collection ``operators``). Room terminals authenticate with their endpoint id and a secret
issued per endpoint (collection ``credentials``, keyed by the directory's credential reference, so
rotating a secret never touches the directory file). Leaders' laptops use signed join links.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from endpoints.directory import Directory, Endpoint, UnknownEndpointError
from signaling.errors import rate_limited, unauthorized
from signaling.settings import Limits, TokenTtl
from signaling.store.base import Store
from signaling.auth.tokens import Claims, TokenSigner, check_secret, hash_secret, new_secret
from signaling.auth.sip_digest import ha1_fields

log = logging.getLogger("giaoban.auth")
MAX_FAILURES = 10  # failed logins per operator or endpoint from one address ...
NAME_FAILURES = 100  # ... and from all addresses together ...
ADDRESS_CONCURRENCY = 8  # login checks at once from one client address on one node (see _begin)
FAILURE_WINDOW_S = 300  # ... within this window (from the last failure) before logins are refused
FAILURES = "login-failures"  # ephemeral counters: "<kind>:<name>" and "address:<client address>"
WRONG_ENDPOINT = "unknown endpoint id {!r} or wrong secret"  # also for "no credentials yet"
REVOKED = (
    "this token was revoked (account deleted, secret rotated or the meeting's links withdrawn); "
    "log in again or ask the operator for a new link"
)
REVOCATION_MARKER = ("revocations", "latest")  # changes with every revocation (load_revocations)


@functools.cache
def _dummy_hash() -> str:
    """A hash no secret matches, checked for unknown names so they cost the same scrypt as a
    wrong password (the audit told them apart by time: 1.8 ms vs 40 ms)."""
    return hash_secret(secrets.token_urlsafe(24))


def _verify(secret: str, doc: dict[str, Any] | None) -> bool:
    """On a worker thread: the first dummy hash costs a scrypt too, off the event loop."""
    ok = check_secret(secret, doc["hash"] if doc else _dummy_hash())
    return ok and doc is not None


@dataclass(frozen=True)
class Identity:
    kind: str  # operator | endpoint | link
    id: str  # username, endpoint id, or "guest:<name>"
    name: str
    endpoint: Endpoint | None = None  # the directory entry this identity speaks for
    meeting: str | None = None  # links: the only meeting they may join
    role: str | None = None  # links: the role granted by the link
    issued_at: float = 0.0  # its token's iat: a revocation at or after it ends the identity's sessions
    made_by: str | None = None  # links: the operator who made it (None: a link from before #11)

    @property
    def endpoint_id(self) -> str:
        return self.endpoint.id if self.endpoint else self.id

    def revocation_keys(self) -> tuple[str, ...]:
        """Every revocation key that ends this identity's token: its own ``kind:id``; for a link
        also its meeting's ``links:<meeting>`` (DELETE /api/v1/meetings/{id}/links) and, when the
        link names its maker, the maker's ``operator:<name>`` (deleted) and the ``endpoint:<id>``
        it speaks for (secret rotated). Links from before the ``by`` claim keep their old keys
        for those two: a rotation or deletion must not end links nobody tied to it when issued."""
        keys = [f"{self.kind}:{self.id}"]
        if self.kind == "link":
            if self.meeting:
                keys.append(f"links:{self.meeting}")
            if self.made_by:
                keys.append(f"operator:{self.made_by}")
                if self.endpoint is not None:
                    keys.append(f"endpoint:{self.endpoint.id}")
        return tuple(keys)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "id": self.id, "name": self.name}
        if self.endpoint:
            out["endpoint"] = {"id": self.endpoint.id, "tier": str(self.endpoint.tier)}
        if self.meeting:
            out["meeting_id"], out["role"] = self.meeting, self.role
        return out


class AddressGates:
    """One semaphore per client address with logins in progress; forgotten when none is."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._gates: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, address: str) -> AsyncIterator[None]:
        gate, users = self._gates.get(address) or (asyncio.Semaphore(self.concurrency), 0)
        self._gates[address] = (gate, users + 1)
        try:
            async with gate:
                yield
        finally:
            gate, users = self._gates[address]
            if users == 1:
                del self._gates[address]
            else:
                self._gates[address] = (gate, users - 1)


class Authenticator:
    """scrypt runs in threads (hashlib releases the GIL): 200 terminals logging in at 07:50 must
    not stall the event loop for seconds."""

    def __init__(
        self, store: Store, directory: Directory, signer: TokenSigner, ttl: TokenTtl, limits: Limits | None = None
    ) -> None:
        self.store, self.directory, self.signer, self.ttl = store, directory, signer, ttl
        self.per_address = (limits or Limits()).failed_logins_per_address
        self._revoked: dict[str, float] = {}  # "kind:sub" -> revoked at (unix seconds)
        self._marker: dict[str, Any] | None = None  # REVOCATION_MARKER as last read (load_revocations)
        self._address_gates = AddressGates(ADDRESS_CONCURRENCY)

    # --- bootstrap ---------------------------------------------------------------------------
    async def ensure_admin(self, password: str, data_dir: Path) -> str | None:
        """Create operator 'admin' on first start; returns the generated password, if any."""
        if await self.store.list("operators"):
            return None
        generated = not password
        password = password or secrets.token_urlsafe(12)
        doc = {"name": "Quản trị viên", "hash": await asyncio.to_thread(hash_secret, password), "created": time.time()}
        if not await self.store.put_if_absent("operators", "admin", doc):
            return None
        if generated:
            # created 0600 (not written, then chmod-ed: another user could open it in between)
            fd = os.open(data_dir / "admin-password.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # an older file keeps its mode through O_CREAT
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(password + "\n")
            return password
        return None

    async def set_operator(self, username: str, password: str, name: str = "") -> None:
        await self.store.put(
            "operators",
            username,
            {"name": name or username, "hash": await asyncio.to_thread(hash_secret, password), "created": time.time()},
        )

    # --- logins -------------------------------------------------------------------------------
    # Login checks from one client address run ADDRESS_CONCURRENCY at a time on a node (the rest
    # queue: scrypt has no more threads anyway), and each reads the address's failure count first:
    # a burst of guesses at many names gets at most failed_logins_per_address + ADDRESS_CONCURRENCY
    # checks, while 200 terminals behind one NAT logging in at 07:50 all get in.
    # Per name, each attempt takes a slot in an atomic store counter *before* its secret is
    # checked, and a success gives it back, so parallel guessing gets no more checks than serial:
    #   "<kind>:<name>@<addr>" MAX_FAILURES for one name from one address: a stranger who
    #                          guesses 'admin' locks out only himself, not the province's admin;
    #   "<kind>:<name>"       NAME_FAILURES from every address together (distributed guessing).
    async def _begin(self, subject: str, address: str) -> list[str]:
        wait = f"wait {FAILURE_WINDOW_S // 60} minutes or ask the operator"
        if await self._count(f"address:{address}") >= self.per_address:
            raise rate_limited(f"too many failed logins from {address}; {wait}")
        name = subject.split(":", 1)[1]
        counters = [
            (f"{subject}@{address}", MAX_FAILURES, f"too many failed logins for {name!r} from {address}; {wait}"),
            (subject, NAME_FAILURES, f"too many failed logins for {name!r}; {wait}"),
        ]
        taken: list[str] = []
        for key, limit, message in counters:
            if await self._count(key) >= limit or not await self._take(key, limit):
                await self._give_back(taken)  # a refused attempt costs no slot
                raise rate_limited(message)
            taken.append(key)
        return taken

    async def _take(self, key: str, limit: int) -> bool:
        if await self.store.incr_ephemeral(FAILURES, key, FAILURE_WINDOW_S) <= limit:
            return True
        await self.store.incr_ephemeral(FAILURES, key, FAILURE_WINDOW_S, by=-1)
        return False

    async def _give_back(self, keys: list[str]) -> None:
        for key in keys:
            await self.store.incr_ephemeral(FAILURES, key, FAILURE_WINDOW_S, by=-1)

    async def _count(self, key: str) -> int:
        doc = await self.store.get_ephemeral(FAILURES, key)
        return doc.get("count", 0) if doc else 0

    async def _check(self, slots: list[str], address: str, secret: str, doc: dict[str, Any] | None) -> bool:
        """scrypt against the stored hash, or a dummy one when there is none; a success frees its
        slots, a failure counts against the address."""
        ok = await asyncio.to_thread(_verify, secret, doc)
        if ok:
            await self._give_back(slots)
        else:
            await self.store.incr_ephemeral(FAILURES, f"address:{address}", FAILURE_WINDOW_S)
        return ok

    async def login_operator(self, username: str, password: str, address: str = "unknown") -> tuple[str, Claims]:
        async with self._address_gates.hold(address):
            slots = await self._begin(f"operator:{username}", address)
            doc = await self.store.get("operators", username)
            if not await self._check(slots, address, password, doc) or doc is None:  # no doc: never True
                raise unauthorized("wrong operator username or password")
        return self.signer.issue("operator", username, self.ttl.operator_s, name=doc.get("name", username))

    async def login_endpoint(self, endpoint_id: str, secret: str, address: str = "unknown") -> tuple[str, Claims]:
        """Unknown ids, endpoints without credentials and wrong secrets give one answer, in one time."""
        try:
            ep: Endpoint | None = self.directory.get(endpoint_id)
        except UnknownEndpointError:
            ep = None
        async with self._address_gates.hold(address):
            slots = await self._begin(f"endpoint:{ep.id if ep else endpoint_id}", address)
            doc = await self.store.get("credentials", ep.credential) if ep else None
            if not await self._check(slots, address, secret, doc) or ep is None:
                raise unauthorized(WRONG_ENDPOINT.format(endpoint_id))
        return self.signer.issue("endpoint", ep.id, self.ttl.endpoint_s, name=ep.name)

    async def issue_credentials(self, endpoint_id: str) -> str:
        """New secret for an endpoint (replaces the previous one); returns it once, stores the hash."""
        ep = self.directory.get(endpoint_id)
        secret = new_secret()
        await self.store.put(
            "credentials",
            ep.credential,
            {
                "endpoint": ep.id,
                "hash": await asyncio.to_thread(hash_secret, secret),
                "issued": time.time(),
                **(ha1_fields(ep.sip.auth_user, secret) if ep.sip and ep.sip.auth_user else {}),  # SIP digest
            },
        )
        return secret

    def join_link(
        self, meeting_id: str, name: str, role: str, endpoint_id: str | None, ttl_s: int, made_by: str | None = None
    ) -> tuple[str, Claims]:
        """``made_by``: the operator making it; deleting that operator revokes the link."""
        if endpoint_id is not None:
            self.directory.get(endpoint_id)  # unknown ids are refused before anything is signed
        sub = endpoint_id or f"guest:{name}"
        return self.signer.issue(
            "link", sub, ttl_s, name=name, meeting=meeting_id, role=role, endpoint=endpoint_id, by=made_by
        )

    # --- verification ---------------------------------------------------------------------------
    # --- revocation: deleting an operator or rotating an endpoint secret ends its sessions ----
    # (and those of the links it made or that speak for it; an operator can also revoke every
    # link of one meeting: key ``links:<meeting id>``, Identity.revocation_keys)
    # Other processes (the ``giaoban credentials`` CLI on a SQLite node) revoke too, and only the
    # store tells this node. Every revocation rewrites one marker document after its entry, with a
    # fresh nonce, so a node polls one small document every tick and reads the whole collection
    # only when the marker changed: entries written before a marker are seen with it.
    async def load_revocations(self, only_if_changed: bool = False) -> bool:
        """Read every revocation from the store (at start), or, with ``only_if_changed``, only
        when one was written since the last read. True when the entries were read."""
        marker = await self.store.get(*REVOCATION_MARKER)
        if only_if_changed and marker == self._marker:
            return False
        for key, doc in await self.store.list("revoked"):
            self.note_revoked(key, doc["at"])
        self._marker = marker
        return True

    def revoked_at(self, key: str) -> float | None:
        """When ``kind:sub`` was last revoked (unix seconds), or None."""
        return self._revoked.get(key)

    def revoked(self, identity: Identity) -> bool:
        """Is the token this identity came with revoked now? Checked when a token is presented
        and again once its session is registered (WebSocket, WHIP/WHEP): a revocation noted in
        between would otherwise miss it, as would one another process wrote (the CLI) that this
        node reads a moment later, for a session opened after it with a token issued before."""
        return any(self.revokes(key, identity) for key in identity.revocation_keys())

    def revokes(self, key: str, identity: Identity) -> bool:
        """Does the revocation of ``key`` noted here end this identity's token (issued by then)?"""
        at = self._revoked.get(key)
        return at is not None and key in identity.revocation_keys() and identity.issued_at <= at

    def note_revoked(self, key: str, at: float) -> None:
        """Called on every node (through the events channel) when a subject is revoked."""
        self._revoked[key] = max(at, self._revoked.get(key, 0.0))

    async def revoke(self, kind: str, sub: str) -> dict[str, Any]:
        """Tokens of ``kind:sub`` issued before now stop working on every node (``kind`` may also
        be ``links``, ``sub`` a meeting id: every join link of that meeting issued so far)."""
        key, at = f"{kind}:{sub}", time.time()
        await self.store.put("revoked", key, {"at": at})
        await self.store.put(*REVOCATION_MARKER, {"at": at, "nonce": secrets.token_hex(8)})  # after it
        self.note_revoked(key, at)
        return {"type": "revoked", "key": key, "at": at}

    def identify(self, token: str) -> Identity:
        claims = self.signer.verify(token)
        endpoint = None
        ep_id = claims.sub if claims.kind == "endpoint" else claims.endpoint
        if ep_id:
            try:
                endpoint = self.directory.get(ep_id)
            except UnknownEndpointError:
                raise unauthorized(f"endpoint {ep_id!r} of this token is no longer in the directory") from None
        ident = Identity(
            claims.kind,
            claims.sub,
            claims.name or claims.sub,
            endpoint,
            claims.meeting,
            claims.role,
            issued_at=claims.iat or 0.0,
            made_by=claims.by if claims.kind == "link" else None,
        )
        if self.revoked(ident):
            raise unauthorized(REVOKED)
        return ident

    def from_request(self, request: web.Request) -> Identity:
        header = request.headers.get("Authorization", "")
        if not header:
            raise unauthorized("missing Authorization header (expected 'Bearer <token>')")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("Authorization header must be 'Bearer <token>'")
        return self.identify(token.strip())
