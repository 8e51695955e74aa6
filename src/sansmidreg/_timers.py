# The deadline heap (DESIGN.md §2.6: exact-time expiry, no periodic sweep).
#
# One binary heap of (deadline, tie, entry) tuples (compared natively, no Python-level __lt__ on
# the hot path). Two kinds of entries:
# - a TimerHandle (`schedule`/`cancel`): tie is a sequence number (from 2**63 up), so equal
#   deadlines pop in insertion order;
# - a self-timed owner, which keeps the entry tuple in its `timer` attribute: the entry is live
#   while `owner.timer is entry`, and it is cancelled by setting `owner.timer = None`. Two uses:
#   `schedule_self` for the one-per-contact expiry deadlines, where a handle object would cost
#   more memory than the contact's other fields (tie: the contact id, below 2**63); and
#   `arm`/`disarm` for transactions and fork branches, which move their deadline at almost every
#   message (tie: the sequence number, so equal (deadline, tie) pairs never compare owners).
#   `arm` is lazy: an entry earlier than the new deadline is kept and the owner re-checks its
#   real deadline when it fires, so most moves cost nothing.
# Cancelling is lazy: a cancelled entry stays in the heap and is skipped when it surfaces, so
# cancel is O(1) and schedule O(log n). Owners that move a deadline later often (a refreshed
# contact) may instead leave the old entry and re-check when it fires; either way
# `next_deadline()` may be earlier than the next real event, never later, so an early
# `handle_timer` is harmless. The heap is compacted when dead handles outnumber live entries.
from __future__ import annotations

import heapq
from typing import Any, Generic, Hashable, Protocol, TypeVar

__all__ = ["SELF_TIE_LIMIT", "DeadlineHeap", "SelfTimed", "TimerHandle"]

K = TypeVar("K", bound=Hashable)
SELF_TIE_LIMIT = 1 << 63
"""Ties of self-timed entries are below this; handle sequence numbers start at 2**63."""


class SelfTimed(Protocol):
    """An owner that is its own heap entry (see the module comment)."""

    timer: Any


class TimerHandle(Generic[K]):
    """A scheduled deadline; pass it to ``DeadlineHeap.cancel``."""

    __slots__ = ("at", "key", "seq", "live")

    def __init__(self, at: float, seq: int, key: K) -> None:
        self.at = at
        self.seq = seq
        self.key = key
        self.live = True

    def __lt__(self, other: TimerHandle[K]) -> bool:
        return (self.at, self.seq) < (other.at, other.seq)


class DeadlineHeap(Generic[K]):
    """Deadlines keyed by an opaque value, popped in (deadline, insertion) order."""

    __slots__ = ("_heap", "_seq", "_dead")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = 1 << 63
        self._dead = 0

    def __len__(self) -> int:
        return len(self._heap) - self._dead

    def schedule(self, at: float, key: K) -> TimerHandle[K]:
        self._seq += 1
        handle = TimerHandle(at, self._seq, key)
        heapq.heappush(self._heap, (at, self._seq, handle))
        return handle

    def schedule_self(self, at: float, tie: int, owner: SelfTimed) -> tuple[float, int, Any]:
        """Schedule ``owner`` itself at ``at`` (0 <= tie < SELF_TIE_LIMIT); the caller stores the
        returned entry in ``owner.timer`` (and sets it to None to cancel)."""
        entry = (at, tie, owner)
        heapq.heappush(self._heap, entry)
        return entry

    def arm(self, owner: SelfTimed, at: float) -> None:
        """Make ``owner`` fire at or before ``at``: an entry of its own that is already due no
        later is kept (the owner re-checks its deadline when it fires), else a new one replaces
        it. The key popped is the owner itself, with ``owner.timer`` set to None."""
        entry = owner.timer
        if entry is not None:
            if entry[0] <= at:
                return
            self._dead += 1
        self._seq += 1
        owner.timer = entry = (at, self._seq, owner)
        heapq.heappush(self._heap, entry)

    def disarm(self, owner: SelfTimed) -> None:
        """Cancel the entry ``arm`` gave ``owner`` (if any)."""
        if owner.timer is not None:
            owner.timer = None
            self._dead += 1
            if self._dead > 1024 and self._dead * 2 > len(self._heap):
                self._compact()

    def cancel(self, handle: TimerHandle[K] | None) -> None:
        if handle is None or not handle.live:
            return
        handle.live = False
        self._dead += 1
        if self._dead > 1024 and self._dead * 2 > len(self._heap):
            self._compact()

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if _live(e)]
        heapq.heapify(self._heap)
        self._dead = 0

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            entry = heap[0]
            top = entry[2]
            if top.live if type(top) is TimerHandle else top.timer is entry:
                return entry[0]
            if heapq.heappop(heap)[1] >= SELF_TIE_LIMIT:  # a handle, or an entry of `arm`
                self._dead -= 1
        return None

    def pop_due(self, now: float) -> K | None:
        """Remove and return the key of the earliest live deadline at or before ``now``."""
        heap = self._heap
        while heap:
            entry = heap[0]
            top = entry[2]
            if type(top) is TimerHandle:
                if not top.live:
                    heapq.heappop(heap)
                    self._dead -= 1
                    continue
                if top.at > now:
                    return None
                heapq.heappop(heap)
                top.live = False
                return top.key  # type: ignore[no-any-return]
            if top.timer is not entry:  # a self-timed owner that moved on or was cancelled
                heapq.heappop(heap)
                if entry[1] >= SELF_TIE_LIMIT:  # `arm` entries are counted, contacts' are not
                    self._dead -= 1
                continue
            if entry[0] > now:
                return None
            heapq.heappop(heap)
            top.timer = None
            return top  # type: ignore[no-any-return]
        return None


def _live(entry: tuple[float, int, Any]) -> bool:
    top = entry[2]
    return top.live if type(top) is TimerHandle else top.timer is entry
