"""Value types of the endpoint directory: tiers, endpoint kinds, links, endpoints and their errors.

Kept apart from the YAML loader so that synthetic endpoints (tests, load tests) and the
signaling layer can use the model without pulling in YAML parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}[a-z0-9]")
ID_RULE = "2-64 characters from a-z, 0-9 and '-', not starting or ending with '-'"
CREDENTIAL_PATTERN = re.compile(r"[a-z0-9][a-z0-9._/-]{0,127}")
CREDENTIAL_RULE = "1-128 characters from a-z, 0-9 and '._/-', starting with a letter or digit"


def is_valid_id(text: str) -> bool:
    """Ids appear in URLs, selectors and credential names, hence the narrow ASCII alphabet."""
    return ID_PATTERN.fullmatch(text) is not None


def allowed(values: Any) -> str:
    """'a, b or c' for an enum or an iterable of strings, used in every 'allowed values' message."""
    items = [str(v) for v in values]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


class _Choice(StrEnum):
    @classmethod
    def parse(cls, text: str) -> "_Choice":
        """The member named by text; ValueError listing the allowed values otherwise."""
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"unknown {cls.label()} {text!r}: use {allowed(cls)}") from None

    @classmethod
    def label(cls) -> str:
        return cls.__name__.lower()


class Tier(_Choice):
    """The four administrative tiers, top first; ``rank`` is the depth (central 0 .. commune 3)."""

    CENTRAL = "central"
    PROVINCE = "province"
    DISTRICT = "district"
    COMMUNE = "commune"

    @property
    def rank(self) -> int:
        return list(Tier).index(self)

    @property
    def above(self) -> "Tier | None":
        """The tier a parent of this tier must have (None for central: central endpoints are roots)."""
        return None if self.rank == 0 else list(Tier)[self.rank - 1]


class Kind(_Choice):
    ROOM_TERMINAL = "room_terminal"
    LAPTOP = "laptop"
    STUDIO = "studio"


class Link(_Choice):
    FIBRE = "fibre"
    THIN = "thin"
    MOBILE = "mobile"


SIP_CODECS = ("PCMU", "PCMA", "G722", "OPUS", "H264", "VP8")


@dataclass(frozen=True, slots=True)
class SipAccess:
    """How a SIP room system (e.g. a Polycom-class room) reaches this endpoint (#14).

    ``allowed_sources`` are normalised IP networks (text); empty = no address restriction, the
    SIP credential alone decides. ``codecs`` are upper case, most preferred first; empty = the
    gateway's own order. No secret lives here: a SIP password belongs in the credential store.
    """

    uri: str
    auth_user: str | None = None
    allowed_sources: tuple[str, ...] = ()
    codecs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "uri": self.uri,
            "auth_user": self.auth_user,
            "allowed_sources": list(self.allowed_sources),
            "codecs": list(self.codecs),
        }


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One conference endpoint ("điểm cầu"). ``credential`` names its secret in the credential store."""

    id: str
    name: str
    tier: Tier
    kind: Kind
    link: Link
    parent: str | None
    credential: str
    sip: SipAccess | None = None  # set for endpoints a SIP room system may stand for

    def to_dict(self, with_sip: bool = True) -> dict[str, object]:
        """The endpoint's fields; ``sip`` only when set (and wanted: it names the room's addresses)."""
        out: dict[str, object] = {
            "id": self.id,
            "name": self.name,
            "tier": str(self.tier),
            "kind": str(self.kind),
            "link": str(self.link),
            "parent": self.parent,
            "credential": self.credential,
        }
        if with_sip and self.sip is not None:
            out["sip"] = self.sip.to_dict()
        return out


class DirectoryError(ValueError):
    """A mistake in a directory file; str() is 'file:line: message' so editors can jump to it.

    ``errors`` holds every mistake found (this one first), for tools that report them all.
    """

    def __init__(self, file: str, line: int, message: str, errors: tuple["DirectoryError", ...] = ()) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message
        self.errors: tuple[DirectoryError, ...] = errors or (self,)

    def report(self) -> str:
        """All mistakes, one 'file:line: message' per line."""
        return "\n".join(str(e) for e in self.errors)


class UnknownEndpointError(LookupError):
    """An endpoint id that is not in the directory."""

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"unknown endpoint id {endpoint_id!r}")
        self.endpoint_id = endpoint_id

    def __str__(self) -> str:
        return str(self.args[0])
