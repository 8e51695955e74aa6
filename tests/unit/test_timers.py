# Time (DESIGN.md §2.2, §2.6; STYLE.md §2): the deadline heap (order, ties, lazy cancel,
# compaction) and the core's contract around it -- exact-time expiry, `handle_timer` early returns
# no sends, ArmTimer tracks `next_deadline()`, time going backwards is a UsageError.
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from sansmidreg import (
    ArmTimer,
    Config,
    Drop,
    Endpoint,
    MidRegistrar,
    Mode,
    Reply,
    SeededIds,
    SendUpstream,
    UsageError,
)
from sansmidreg._timers import DeadlineHeap

if (_tests := str(Path(__file__).resolve().parents[1])) not in sys.path:
    sys.path.insert(0, _tests)  # tests/ holds the shared simulation harness, tests/sim

from sim import Network, SimUA


def test_heap_pops_in_deadline_then_insertion_order() -> None:
    heap: DeadlineHeap[str] = DeadlineHeap()
    heap.schedule(2.0, "b")
    heap.schedule(1.0, "a")
    heap.schedule(2.0, "c")
    assert heap.next_deadline() == 1.0 and len(heap) == 3
    assert [heap.pop_due(5.0) for _ in range(4)] == ["a", "b", "c", None]


def test_heap_pop_due_respects_now() -> None:
    heap: DeadlineHeap[str] = DeadlineHeap()
    heap.schedule(1.0, "a")
    assert heap.pop_due(0.999) is None
    assert heap.pop_due(1.0) == "a"
    assert heap.next_deadline() is None


def test_heap_cancel_is_lazy_and_skipped() -> None:
    heap: DeadlineHeap[str] = DeadlineHeap()
    first = heap.schedule(1.0, "a")
    heap.schedule(2.0, "b")
    heap.cancel(first)
    heap.cancel(first)  # twice is harmless
    heap.cancel(None)
    assert len(heap) == 1 and heap.next_deadline() == 2.0
    assert heap.pop_due(10.0) == "b"


def test_heap_compacts_when_dead_entries_dominate() -> None:
    heap: DeadlineHeap[int] = DeadlineHeap()
    handles = [heap.schedule(float(i), i) for i in range(3000)]
    for h in handles[:2500]:
        heap.cancel(h)
    assert len(heap) == 500 and len(heap._heap) < 3000
    assert heap.pop_due(1e9) == 2500


CFG = Config(mode=Mode.CONTACT_THROTTLING, outgoing_expires=600, min_expires=5)


def registered() -> Network:
    net = Network(CFG)
    ua = net.add(SimUA(user="alice", port=5201))
    net.send(ua, ua.register(60))
    net.settle(0.1)
    return net


def test_handle_timer_before_the_deadline_sends_nothing() -> None:
    net = registered()
    deadline = net.core.next_deadline()
    assert deadline is not None
    for t in (net.now, deadline - 1.0, math.nextafter(deadline, 0.0)):
        actions = net.core.handle_timer(t)
        assert not [a for a in actions if isinstance(a, (SendUpstream, Reply))]


def test_contact_expires_exactly_at_its_deadline() -> None:
    net = registered()
    net.advance(59.999999)
    assert net.core.stats().contacts == 1
    net.advance(60.0)
    assert net.core.stats().contacts == 0 and len(net.registrar.deregisters) == 1


def test_arm_timer_tracks_next_deadline() -> None:
    core = MidRegistrar(CFG, ids=SeededIds(3))
    ua = SimUA(user="alice", port=5201)
    actions = core.receive(ua.register(60), ua.endpoint, 0.0)
    arms = [a for a in actions if isinstance(a, ArmTimer)]
    assert arms == [ArmTimer(at=0.5)] and core.next_deadline() == 0.5
    # nothing changed the deadline: no ArmTimer this time
    assert not any(isinstance(a, ArmTimer) for a in core.handle_timer(0.1))


def test_arm_timer_none_when_nothing_is_due() -> None:
    core = MidRegistrar(CFG, ids=SeededIds(3))
    assert core.next_deadline() is None
    actions = core.receive(b"garbage", Endpoint(host="h", port=1), 0.0)
    assert [type(a) for a in actions] == [Drop]


def test_time_going_backwards_is_a_usage_error() -> None:
    core = MidRegistrar(CFG, ids=SeededIds(3))
    core.handle_timer(10.0)
    with pytest.raises(UsageError, match="backwards"):
        core.handle_timer(9.0)
    with pytest.raises(UsageError, match="backwards"):
        core.receive(b"x", Endpoint(host="h", port=1), 5.0)
    with pytest.raises(UsageError):
        core.handle_timer(float("nan"))


def test_late_handle_timer_fires_everything_due() -> None:
    net = registered()
    actions = net.core.handle_timer(100.0)  # one late tick: expiry and de-REGISTER together
    assert len([a for a in actions if isinstance(a, SendUpstream)]) == 1
    assert net.core.stats().contacts == 0


def test_very_late_tick_sends_no_deregister_for_an_upstream_binding_already_gone() -> None:
    net = registered()
    actions = net.core.handle_timer(1000.0)  # the upstream binding ran out at 600 s by itself
    assert not [a for a in actions if isinstance(a, SendUpstream)]
    assert net.core.stats().contacts == 0


def test_refresh_moves_expiry_later_without_a_second_deadline() -> None:
    net = registered()
    ua = net.uas[("127.0.0.1", 5201)]
    net.advance(10.0)
    net.send(ua, ua.register(60))
    net.settle(0.1)
    net.advance(60.0)  # the old deadline fires and re-arms for 70
    assert net.core.stats().contacts == 1 and net.core.next_deadline() == 70.0
    net.advance(70.0)
    assert net.core.stats().contacts == 0


class _Owner:
    """A self-timed owner, as transactions are (DeadlineHeap.arm)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.timer: object = None


def test_heap_arm_is_lazy_keeps_an_earlier_entry_and_replaces_a_later_one() -> None:
    heap: DeadlineHeap[object] = DeadlineHeap()
    a, b = _Owner("a"), _Owner("b")
    heap.arm(a, 5.0)
    heap.arm(a, 9.0)  # later: the entry at 5.0 stays (the owner re-checks when it fires)
    assert heap.next_deadline() == 5.0 and len(heap) == 1
    heap.arm(b, 7.0)
    heap.arm(b, 3.0)  # earlier: a new entry replaces the one at 7.0
    assert heap.next_deadline() == 3.0 and len(heap) == 2
    assert heap.pop_due(10.0) is b and b.timer is None
    assert heap.pop_due(10.0) is a and a.timer is None
    assert heap.pop_due(10.0) is None and heap.next_deadline() is None and len(heap) == 0


def test_heap_disarm_cancels_and_dead_entries_are_counted_out() -> None:
    heap: DeadlineHeap[object] = DeadlineHeap()
    owners = [_Owner(str(i)) for i in range(3000)]
    for i, owner in enumerate(owners):
        heap.arm(owner, float(i))
    for owner in owners[:2000]:
        heap.disarm(owner)
    heap.disarm(owners[0])  # twice: nothing more
    assert len(heap) == 1000 and heap.next_deadline() == 2000.0
    assert heap.pop_due(1e9) is owners[2000]
