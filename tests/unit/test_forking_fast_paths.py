# The proxy's fast paths must not change behaviour: a response is claimed without a Via parse
# only when its top Via is exactly the one we sent; anything else (a device that stamped
# received=, a Via that does not parse) goes the general way and gets the same treatment.
from __future__ import annotations

from _forking_support import answer, branches, drops, replies, sent, statuses
from test_forking import aor_harness, call, settle

from sansmidreg import Fork


def test_a_device_that_stamps_received_on_our_via_is_still_matched() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h))
    ours = b1.data.split(b"\r\nVia: ", 1)[1].split(b"\r\n", 1)[0]
    ringing = answer(b1.data, 180, tag="a").replace(ours, ours + b";received=192.0.2.7", 1)
    relayed = h.send(ringing, b1.dest)
    assert statuses(relayed) == [180]
    assert len(replies(relayed)[0].vias) == 2  # ours popped, the two upstream Vias kept
    ok = h.send(answer(b1.data, 200, tag="a").replace(ours, ours + b";received=192.0.2.7", 1),
                b1.dest)
    assert statuses(ok) == [200]
    settle(h)


def test_a_response_whose_top_via_does_not_parse_is_dropped() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h))
    ours = b1.data.split(b"\r\nVia: ", 1)[1].split(b"\r\n", 1)[0]
    broken = answer(b1.data, 180, tag="a").replace(ours, ours + b";;", 1)
    assert drops(h.send(broken, b1.dest)) == ["bad-response"]
    assert statuses(h.send(answer(b1.data, 486, tag="a"), b1.dest)) == [486]
    settle(h)


def test_fork_outputs_do_not_depend_on_the_fast_paths() -> None:
    # three branches: each carries its own Via (one branch id each) over one shared tail
    h = aor_harness(3)
    actions = call(h)
    forks = [a for a in actions if isinstance(a, Fork)]
    assert len(forks) == 1 and len(forks[0].branches) == 3
    tails = {b.data.split(b"\r\nVia: ", 1)[1].split(b"\r\n", 1)[1] for b in forks[0].branches}
    assert len(tails) == 1
    vias = {b.data.split(b"\r\nVia: ", 1)[1].split(b"\r\n", 1)[0] for b in forks[0].branches}
    assert len(vias) == 3
    b1, b2, b3 = forks[0].branches
    for b in (b2, b3):
        h.respond(b, 100)
    h.respond(b1, 180, tag="a")
    answered = h.respond(b1, 200, tag="a")
    assert statuses(answered) == [200] and len(sent(answered, "CANCEL")) == 2
    for cancel in sent(answered, "CANCEL"):
        h.respond(cancel, 200)
    for b in (b2, b3):
        assert len(sent(h.respond(b, 487, tag="z"), "ACK")) == 1
    settle(h)

