# The proxy's fast paths must not change behaviour: a response is claimed without a Via parse
# only when its top Via is exactly the one we sent; anything else (a device that stamped
# received=, a Via that does not parse) goes the general way and gets the same treatment.
from __future__ import annotations

from typing import Any

import pytest
from _forking_support import answer, branches, drops, replies, sent, statuses
from test_forking import aor_harness, call, settle

from sansmidreg import Fork, Reply, _core
from sansmidreg.sip import Request, Response, parse_message


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



def _only_our_via(response: bytes, ours: bytes) -> bytes:
    """A device's response that kept our Via and dropped the ones below it (a broken UAS)."""
    head, _, rest = response.partition(b"\r\nVia: ")
    _, _, after = rest.partition(b"\r\n")
    lines = [line for line in after.split(b"\r\n") if not line.lower().startswith(b"via:")]
    return head + b"\r\nVia: " + ours + b"\r\n" + b"\r\n".join(lines)


def test_a_response_left_without_via_goes_up_with_the_requests_vias() -> None:
    # RFC 3261 §16.7 step 3: with our Via gone nothing would route it upstream; the main
    # registrar must still get a response it can match (and ACK), never one without a Via
    h = aor_harness(2)
    b1, b2 = branches(call(h))
    ours = b1.data.split(b"\r\nVia: ", 1)[1].split(b"\r\n", 1)[0]
    ringing = h.send(_only_our_via(answer(b1.data, 180, tag="a"), ours), b1.dest)
    assert statuses(ringing) == [180]
    upstream_vias = [str(v) for v in replies(ringing)[0].vias]
    assert [v.split(";branch=")[1] for v in upstream_vias] == ["z9hG4bKkam-1",
                                                               "z9hG4bK-caller-1"]
    ours2 = b2.data.split(b"\r\nVia: ", 1)[1].split(b"\r\n", 1)[0]
    busy = h.send(_only_our_via(answer(b2.data, 486, tag="b"), ours2), b2.dest)
    assert statuses(busy) == [] and len(sent(busy, "ACK")) == 1
    final = h.send(_only_our_via(answer(b1.data, 603, tag="a"), ours), b1.dest)
    (decline,) = replies(final)
    assert decline.status == 603 and len(decline.vias) == 2 and decline.to.tag == "a"
    settle(h)


def test_relayed_responses_keep_every_byte_but_our_via() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h))
    ringing = answer(b1.data, 180, tag="a")
    relayed = h.send(ringing, b1.dest)
    (out,) = [a.data for a in relayed if isinstance(a, Reply)]
    ours = b1.data.split(b"\r\nVia: ", 1)[1].split(b"\r\n", 1)[0]
    assert b"\r\nVia: " + ours + b"\r\n" in ringing  # our Via is a line of its own here
    assert out == ringing.replace(b"Via: " + ours + b"\r\n", b"", 1)
    settle(h)


def test_late_finals_are_acked_with_their_own_to_whichever_path_takes_them() -> None:
    # after the 200 went upstream, the other branch's 487 goes nowhere: Proxy.absorb ACKs it
    # from its To line; a folded To makes it take the general path, with the same ACK
    h = aor_harness(3)
    b1, b2, b3 = branches(call(h))
    for b in (b2, b3):
        h.respond(b, 180, tag=f"t{b.dest.port}")
    answered = h.respond(b1, 200, tag="a")
    for cancel in sent(answered, "CANCEL"):
        assert statuses(h.respond(cancel, 200)) == []
    plain = h.respond(b2, 487, tag="t5202")
    folded = answer(b3.data, 487, tag="t5201").replace(b"\r\nTo: ", b"\r\nTo:\r\n  ", 1)
    folded_acks = sent(h.send(folded, b3.dest), "ACK")
    (ack2,) = sent(plain, "ACK")
    (ack3,) = folded_acks
    assert b"\r\nTo: <sip:bob@example.test>;tag=t5202\r\n" in ack2.data
    assert b"\r\nTo: <sip:bob@example.test>;tag=t5201\r\n" in ack3.data
    # a retransmitted 487 is ACKed again, byte for byte
    assert [a.data for a in sent(h.respond(b2, 487, tag="t5202"), "ACK")] == [ack2.data]
    settle(h)


def _variants(response: bytes, ours: bytes) -> dict[str, bytes]:
    """A device's 180/200 written in the ways the no-parse relay must either handle exactly as
    the general path does, or leave to it."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    via_at = next(i for i, line in enumerate(lines) if line.startswith(b"Via: " + ours))
    vias = lines[via_at][len(b"Via: "):].split(b", ")
    split = lines[:via_at] + [b"Via: " + v for v in vias] + lines[via_at + 1:]
    moved = [lines[0]] + [x for i, x in enumerate(lines[1:], 1) if i != via_at] + [lines[via_at]]
    return {
        "as sent": response,
        "separate via lines": b"\r\n".join(split) + b"\r\n\r\n" + body,
        "compact via": response.replace(b"\r\nVia: ", b"\r\nv: ", 1),
        "space before the comma": response.replace(ours + b", ", ours + b" ,  ", 1),
        "folded after the comma": response.replace(ours + b", ", ours + b",\r\n   ", 1),
        "via not first": b"\r\n".join(moved) + b"\r\n\r\n" + body,
        "body longer than content-length": response + b"trailing",
        "two content-lengths": response.replace(b"\r\nContent-Length:", b"\r\nl: 0\r\nContent-Length:"),
        "only our via": b"\r\n".join(lines[:via_at] + [b"Via: " + ours] + lines[via_at + 1:])
        + b"\r\n\r\n" + body,
    }


def _relay_run(variant: str, absorb: bool) -> list[object]:
    h = aor_harness(2)
    h.core._absorb = absorb
    b1, b2 = branches(call(h))
    ours = b1.data.split(b"\r\nVia: ", 1)[1].split(b"\r\n", 1)[0]
    out: list[object] = [h.respond(b2, 100)]
    for status in (180, 200):
        data = _variants(answer(b1.data, status, tag="a", body=b"v=0\r\n" if status == 200
                                else b""), ours)[variant]
        out.append(h.send(data, b1.dest))
    settle(h)
    return out


def test_relays_without_a_parse_send_what_the_general_path_sends() -> None:
    for variant in _variants(b"SIP/2.0 180 Ringing\r\nVia: x, y\r\nContent-Length: 0\r\n\r\n",
                             b"x"):
        assert _relay_run(variant, True) == _relay_run(variant, False), variant


def test_answers_that_go_nowhere_and_plain_relays_skip_the_parser(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the comparisons above would hold with Proxy.absorb never taking anything: check it does
    parsed: list[bytes] = []

    def counting(data: bytes, **kwargs: Any) -> Request | Response:
        parsed.append(data)
        return parse_message(data, **kwargs)

    monkeypatch.setattr(_core, "parse_message", counting)
    for absorb, expected in ((True, 0), (False, 6)):
        h = aor_harness(2)
        h.core._absorb = absorb
        b1, b2 = branches(call(h))
        parsed.clear()
        h.respond(b2, 100)
        h.respond(b1, 180, tag="a")
        answered = h.respond(b1, 200, tag="a")
        (cancel,) = sent(answered, "CANCEL")
        h.respond(cancel, 200)
        assert len(sent(h.respond(b2, 487, tag="b"), "ACK")) == 1
        h.respond(b2, 487, tag="b")  # a retransmission: our ACK again
        assert len(parsed) == expected, absorb
        settle(h)
