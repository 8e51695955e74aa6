# Statistics (DESIGN.md §5.6; OpenSIPS's module has none): counters the core keeps while it runs,
# exposed as a frozen snapshot.
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

__all__ = ["Counters", "Stats"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """A snapshot of the core's counters and gauges."""

    registers_received: int
    registers_absorbed: int
    registers_relayed: int
    registers_rejected: int
    rejected_by_status: tuple[tuple[int, int], ...]
    """(status code, count) of REGISTERs we refused locally."""
    queries_answered: int
    relayed_failed: int
    """Relayed REGISTERs the main registrar refused, or that timed out."""
    relayed_timeouts: int
    deregisters_sent: int
    """Our own de-REGISTERs (e.g. of a device gone silent or evicted, or of an AOR's aggregate
    binding when its last device went); each one is answered 2xx, fails or is superseded."""
    deregisters_failed: int
    """Our de-REGISTERs the main registrar refused, or that timed out."""
    deregisters_superseded: int
    """Our de-REGISTERs of an AOR's aggregate binding given up (no more retransmissions, a late
    answer ignored) because a REGISTER for that AOR was relayed meanwhile and renews the binding
    instead; if that REGISTER fails, a new de-REGISTER is sent (and counted as sent)."""
    retransmissions_sent: int
    retransmissions_absorbed: int
    requests_forked: int
    branches_created: int
    drops: tuple[tuple[str, int], ...]
    internal_errors: int
    aors: int
    contacts: int
    transactions: int


class Counters:
    """The mutable counters behind Stats (one instance per core)."""

    __slots__ = ("registers_received", "registers_absorbed", "registers_relayed",
                 "rejected", "queries_answered", "relayed_failed", "relayed_timeouts",
                 "deregisters_sent", "deregisters_failed", "deregisters_superseded",
                 "retransmissions_sent", "retransmissions_absorbed", "requests_forked",
                 "branches_created", "drops", "internal_errors")

    def __init__(self) -> None:
        self.registers_received = 0
        self.registers_absorbed = 0
        self.registers_relayed = 0
        self.rejected: Counter[int] = Counter()
        self.queries_answered = 0
        self.relayed_failed = 0
        self.relayed_timeouts = 0
        self.deregisters_sent = 0
        self.deregisters_failed = 0
        self.deregisters_superseded = 0
        self.retransmissions_sent = 0
        self.retransmissions_absorbed = 0
        self.requests_forked = 0
        self.branches_created = 0
        self.drops: Counter[str] = Counter()
        self.internal_errors = 0

    def snapshot(self, *, aors: int, contacts: int, transactions: int) -> Stats:
        return Stats(
            registers_received=self.registers_received,
            registers_absorbed=self.registers_absorbed,
            registers_relayed=self.registers_relayed,
            registers_rejected=sum(self.rejected.values()),
            rejected_by_status=tuple(sorted(self.rejected.items())),
            queries_answered=self.queries_answered,
            relayed_failed=self.relayed_failed,
            relayed_timeouts=self.relayed_timeouts,
            deregisters_sent=self.deregisters_sent,
            deregisters_failed=self.deregisters_failed,
            deregisters_superseded=self.deregisters_superseded,
            retransmissions_sent=self.retransmissions_sent,
            retransmissions_absorbed=self.retransmissions_absorbed,
            requests_forked=self.requests_forked,
            branches_created=self.branches_created,
            drops=tuple(sorted(self.drops.items())),
            internal_errors=self.internal_errors,
            aors=aors,
            contacts=contacts,
            transactions=transactions,
        )
