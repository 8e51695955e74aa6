# The closed union of actions the core returns (DESIGN.md §2.3), and the Endpoint they go to.
# Every action is a frozen, slotted, keyword-only dataclass of immutable fields; adapters dispatch
# on them with `match` ending in `assert_never`, so a new action is a type error in every adapter
# until it is handled. The core builds the ones it emits per message through `new_reply`,
# `new_branch`, `new_send_request`, `new_fork` and `new_arm_timer` (equal objects, built by their
# slot descriptors: a keyword call of a frozen dataclass costs about twice as much, and a fork
# makes a dozen).
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

__all__ = [
    "Action",
    "ArmTimer",
    "Branch",
    "Drop",
    "Endpoint",
    "Fork",
    "Reply",
    "SendRequest",
    "SendUpstream",
    "Transport",
]

Transport: TypeAlias = Literal["udp", "tcp", "tls"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where bytes come from or go to.

    ``flow`` names a connection of a connection-oriented transport (the adapter's own id for a TCP
    or TLS connection); it is ``None`` for UDP and for "open a connection to host:port".
    """

    transport: Transport = "udp"
    host: str
    port: int
    flow: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        prefix = "" if self.transport == "udp" else f"{self.transport}:"
        return f"{prefix}{host}:{self.port}"

    @property
    def is_reliable(self) -> bool:
        """True for TCP and TLS: no retransmissions are due (RFC 3261 §17.1.1.2)."""
        return self.transport != "udp"


@dataclass(frozen=True, slots=True, kw_only=True)
class SendUpstream:
    """A request toward the main registrar (a relayed REGISTER, our own de-REGISTER, a
    retransmission of either, or an ACK/CANCEL of one of our upstream transactions)."""

    data: bytes
    dest: Endpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """A response we send: built locally, or relayed from the main registrar or a device."""

    data: bytes
    dest: Endpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class Branch:
    """One request toward one registered device."""

    data: bytes
    dest: Endpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class Fork:
    """New client transactions toward registered devices: one branch per target (RFC 3261 §16.6)."""

    branches: tuple[Branch, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendRequest:
    """Any other request we send: a retransmission of a branch, a CANCEL or hop-by-hop ACK toward
    a device, or a statelessly relayed in-dialog request (RFC 3261 §16.12)."""

    data: bytes
    dest: Endpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class ArmTimer:
    """The earliest deadline changed: call ``handle_timer`` at ``at`` (absolute, in the caller's
    clock), or never if ``at`` is None. Only the latest ArmTimer counts."""

    at: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Drop:
    """Input discarded without an answer. ``reason`` is a short stable token (for counters and
    tests), ``detail`` a human sentence for the log."""

    reason: str
    detail: str
    source: Endpoint | None = None


Action: TypeAlias = SendUpstream | Reply | Fork | SendRequest | ArmTimer | Drop


_D = TypeVar("_D", SendUpstream, Reply, Branch, SendRequest)
_new = object.__new__


def _setter(cls: type, field: str) -> Callable[[Any, Any], None]:
    """The slot descriptor's ``__set__`` of ``cls.field`` (bypasses the frozen __setattr__)."""
    setter: Callable[[Any, Any], None] = getattr(cls, field).__set__
    return setter


def data_action(cls: type[_D]) -> Callable[[bytes, Endpoint], _D]:
    """A positional constructor ``(data, dest)`` of ``cls`` (equal to ``cls(data=, dest=)``)."""
    set_data = _setter(cls, "data")
    set_dest = _setter(cls, "dest")

    def make(data: bytes, dest: Endpoint) -> _D:
        action: _D = _new(cls)
        set_data(action, data)
        set_dest(action, dest)
        return action

    return make


new_reply = data_action(Reply)
new_branch = data_action(Branch)
new_send_request = data_action(SendRequest)
_set_at = _setter(ArmTimer, "at")
_set_branches = _setter(Fork, "branches")


def new_arm_timer(at: float | None) -> ArmTimer:
    timer: ArmTimer = _new(ArmTimer)
    _set_at(timer, at)
    return timer


def new_fork(branches: tuple[Branch, ...]) -> Fork:
    fork: Fork = _new(Fork)
    _set_branches(fork, branches)
    return fork
