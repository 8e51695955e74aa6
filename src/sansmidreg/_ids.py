# Identifier sources (DESIGN.md §2.1, §2.5). The core draws no randomness of its own: branches,
# tags, Call-IDs and contact ids all come from an injected IdSource. SeededIds makes a run
# reproducible byte for byte (traces, tests); SystemIds is for production and lives here only so
# that adapters need not each write one -- the core never instantiates it.
from __future__ import annotations

import os
import random
from typing import Protocol

__all__ = ["IdSource", "SeededIds", "SystemIds"]

_MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7: every branch we make starts with the magic cookie


class IdSource(Protocol):
    """Where the core gets the identifiers it must invent."""

    def token(self) -> str:
        """A fresh, unguessable token of URL-safe characters (used for branches, tags, Call-IDs)."""
        ...

    def contact_id(self) -> int:
        """A fresh 63-bit contact id (printed as unsigned decimal in ``;ctid=``)."""
        ...


class SeededIds:
    """Deterministic ids from a seed: the same seed gives the same sequence."""

    __slots__ = ("_rng",)

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def token(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"

    def contact_id(self) -> int:
        return self._rng.getrandbits(63) or 1


class SystemIds:
    """Ids from the operating system's randomness, for production use."""

    __slots__ = ()

    def token(self) -> str:
        return os.urandom(8).hex()

    def contact_id(self) -> int:
        return (int.from_bytes(os.urandom(8), "big") >> 1) or 1


def branch_id(ids: IdSource) -> str:
    """A new RFC 3261 branch parameter value."""
    return _MAGIC + ids.token()
