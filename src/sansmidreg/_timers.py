# The deadline heap (DESIGN.md §2.6: exact-time expiry, no periodic sweep).
#
# One binary heap of (deadline, sequence, handle) tuples (compared natively, no Python-level
# __lt__ on the hot path). Cancelling is lazy: a cancelled entry stays in the
# heap and is skipped when it surfaces, so cancel is O(1) and schedule O(log n). Owners that move
# a deadline later often (a refreshed contact) may instead leave the old entry and re-check when it
# fires; either way `next_deadline()` may be earlier than the next real event, never later, so an
# early `handle_timer` is harmless. The heap is compacted when dead entries outnumber live ones.
from __future__ import annotations

import heapq
from typing import Generic, Hashable, TypeVar

__all__ = ["DeadlineHeap", "TimerHandle"]

K = TypeVar("K", bound=Hashable)


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
        self._heap: list[tuple[float, int, TimerHandle[K]]] = []
        self._seq = 0
        self._dead = 0

    def __len__(self) -> int:
        return len(self._heap) - self._dead

    def schedule(self, at: float, key: K) -> TimerHandle[K]:
        self._seq += 1
        handle = TimerHandle(at, self._seq, key)
        heapq.heappush(self._heap, (at, self._seq, handle))
        return handle

    def cancel(self, handle: TimerHandle[K] | None) -> None:
        if handle is None or not handle.live:
            return
        handle.live = False
        self._dead += 1
        if self._dead > 1024 and self._dead * 2 > len(self._heap):
            self._heap = [e for e in self._heap if e[2].live]
            heapq.heapify(self._heap)
            self._dead = 0

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and not heap[0][2].live:
            heapq.heappop(heap)
            self._dead -= 1
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> K | None:
        """Remove and return the key of the earliest live deadline at or before ``now``."""
        heap = self._heap
        while heap:
            top = heap[0][2]
            if not top.live:
                heapq.heappop(heap)
                self._dead -= 1
                continue
            if top.at > now:
                return None
            heapq.heappop(heap)
            top.live = False
            return top.key
        return None
