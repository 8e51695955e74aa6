"""Behavioural review of the forking proxy (RFC 3261 §9, §16.3-§16.12, §17; RFC 6026; RFC 3326;
RFC 3581; RFC 3327/5626 lookup).

Two kinds of tests:
- defects the review found: each was written as a strict xfail, failed on the defect, and lost
  its mark with the fix (strict routing, Reason copying, Via repair, To tags, rport/received,
  Timestamp, one branch per RFC 5626 instance);
- behaviours checked correct that had no test of their own.
"""
from __future__ import annotations

import pytest
from _forking_support import (
    SDP,
    UPSTREAM,
    Harness,
    answer,
    branches,
    config,
    drops,
    invite,
    parse_request,
    replies,
    sent,
    statuses,
)
from test_forking import AGG, aor_harness, call, settle
from test_forking_fast_paths import _only_our_via

from sansmidreg import Endpoint, Mode, Reply

COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'


def _our_via(branch_data: bytes) -> bytes:
    """The Via value we put on a branch (its first Via line)."""
    return branch_data.split(b"\r\nVia: ", 1)[1].split(b"\r\n", 1)[0]


# =============================================================================================
# Defects the review found (each test failed before its fix)
# =============================================================================================
def test_upstream_cancel_reason_is_copied_into_the_cancels_it_causes() -> None:
    # RFC 3326 §2: "Proxies generating a CANCEL request upon the reception of a CANCEL from the
    # previous hop that contains a Reason header field SHOULD copy it into the new CANCEL
    # request." Both the CANCEL sent at once (ringing branch) and the one sent when a silent
    # branch first rings (§9.1 deferral) are caused by the upstream CANCEL.
    h = aor_harness(2)
    b1, b2 = branches(call(h, branch="z9hG4bKrsn"))
    h.respond(b1, 180, tag="a")  # b2 stays silent (Calling)
    reason = 'SIP;cause=200;text="Call completed elsewhere"'
    actions = h.send(invite(AGG, method="CANCEL", branch="z9hG4bKrsn",
                            extra=[("Reason", reason)]))
    (now_cancel,) = sent(actions, "CANCEL")
    assert parse_request(now_cancel.data).get("reason") == reason
    (later_cancel,) = sent(h.respond(b2, 180, tag="b"), "CANCEL")
    assert parse_request(later_cancel.data).get("reason") == reason


def test_branch_first_ringing_after_the_2xx_is_cancelled_as_completed_elsewhere() -> None:
    # RFC 3261 §16.7 step 10: on a 2xx the proxy MUST CANCEL every pending branch; RFC 3326 §3.1:
    # that CANCEL carries 'Reason: SIP;cause=200;text="Call completed elsewhere"' so the phone
    # does not log a missed call. A branch with no provisional yet is CANCELled later (§9.1),
    # but it is the same CANCEL and needs the same Reason as the branches cancelled at once.
    h = aor_harness(3)
    b1, b2, b3 = branches(call(h))
    h.respond(b2, 180, tag="b")
    answered = h.respond(b1, 200, tag="a", body=SDP)
    (at_once,) = sent(answered, "CANCEL")
    assert parse_request(at_once.data).get("reason") == COMPLETED_ELSEWHERE
    (deferred,) = sent(h.respond(b3, 180, tag="c"), "CANCEL")
    assert parse_request(deferred.data).get("reason") == COMPLETED_ELSEWHERE


def test_100_trying_copies_the_requests_timestamp() -> None:
    # RFC 3261 §8.2.6.1 (the 100 of §16.2 is built per §8.2.6): "When a 100 (Trying) response
    # is generated, any Timestamp header field present in the request MUST be copied into this
    # 100 (Trying) response."
    h = aor_harness(1)
    actions = h.send(invite(AGG, extra=[("Timestamp", "54.2")]))
    (trying,) = replies(actions)
    assert trying.status == 100
    assert trying.get("timestamp") == "54.2"


def test_strict_routed_request_takes_its_request_uri_from_the_last_route() -> None:
    # RFC 3261 §16.4: "If the Request-URI contains a value this proxy previously placed into a
    # Record-Route header field, the proxy MUST replace the Request-URI in the request with the
    # last value from the Route header field, and remove that value from the Route header field."
    h = aor_harness(1)
    bye = invite("sip:127.0.0.1:5060;lr", method="BYE", branch="z9hG4bKstrict", cseq=2,
                 to_tag="a", extra=[("Route", "<sip:bob@127.0.0.1:5201>")])
    (out,) = sent(h.send(bye), "BYE")
    assert out.dest == Endpoint(host="127.0.0.1", port=5201)
    relayed = parse_request(out.data)
    assert relayed.uri_text == "sip:bob@127.0.0.1:5201"
    assert not relayed.has("route")


def test_request_toward_a_strict_router_moves_the_request_uri_into_the_route() -> None:
    # RFC 3261 §16.6 step 6 (applied by a stateless relay too, §16.11): "If that URI does not
    # contain an lr parameter, the proxy MUST modify the copy as follows: The proxy MUST place
    # the Request-URI into the Route header field as the last value. The proxy MUST then place
    # the first Route header field value into the Request-URI and remove that value from the
    # Route header field."
    h = aor_harness(1)
    bye = invite("sip:bob@127.0.0.1:5201", method="BYE", branch="z9hG4bKstrict2", cseq=2,
                 to_tag="a", extra=[("Route", "<sip:127.0.0.1:5060;lr>, <sip:127.0.0.1:5333>")])
    (out,) = sent(h.send(bye), "BYE")
    assert out.dest == Endpoint(host="127.0.0.1", port=5333)
    relayed = parse_request(out.data)
    assert relayed.uri_text == "sip:127.0.0.1:5333"
    assert relayed.get_all("route") == ["<sip:bob@127.0.0.1:5201>"]


@pytest.mark.parametrize("status", [401, 407, 503])
def test_chosen_final_from_a_device_that_dropped_the_upstream_vias_goes_up_with_them(
        status: int) -> None:
    # RFC 3261 §16.7 step 3/9 and §8.2.6.2: the response forwarded upstream carries the Vias of
    # the request (the device "MUST" have copied them). The proxy already repairs a 1xx, 2xx or
    # other final that came back with only our Via (_relayed); a chosen 401/407 or a 503 turned
    # into 500 must not reach the main registrar without a Via (it cannot be matched, the
    # caller gets a timeout instead of the challenge).
    h = aor_harness(1)
    (b1,) = branches(call(h))
    challenge = {401: [("WWW-Authenticate", 'Digest realm="a", nonce="1"')],
                 407: [("Proxy-Authenticate", 'Digest realm="a", nonce="1"')]}.get(status, [])
    data = _only_our_via(answer(b1.data, status, tag="a", headers=challenge), _our_via(b1.data))
    (final,) = replies(h.send(data, b1.dest))
    assert final.status == (500 if status == 503 else status)
    assert [v.branch for v in final.vias] == ["z9hG4bKkam-1", "z9hG4bK-caller-1"]


def test_rport_request_gets_received_even_when_the_host_matches() -> None:
    # RFC 3581 §4: with an empty rport the server sets it to the source port and "MUST insert a
    # 'received' parameter containing the source IP address that the request came from, even if
    # it is identical to the value of the 'sent-by' component."
    h = aor_harness(1)
    data = invite(AGG).replace(b"127.0.0.1:5080;branch=z9hG4bKkam-1",
                               b"127.0.0.1:5080;rport;branch=z9hG4bKkam-1")
    (b1,) = branches(h.send(data, UPSTREAM))
    upstream_via = parse_request(b1.data).vias[1]
    assert upstream_via.rport == "5080"
    assert upstream_via.received == "127.0.0.1"


def test_locally_rejected_request_gets_the_same_to_tag_when_retransmitted() -> None:
    # RFC 3261 §8.2.7 (stateless UAS, which is what a rejection without a server transaction
    # is): "To tags MUST be generated for responses in a stateless manner - in a manner that
    # will generate the same tag for the same request consistently." Otherwise the caller sees
    # two different final responses to one INVITE (its ACK matches neither consistently).
    h = aor_harness(1)
    unknown = "sip:bob@127.0.0.1:5060;ctid=999"
    (first,) = replies(h.send(invite(unknown)))
    (again,) = replies(h.send(invite(unknown), at=h.now + 0.5))
    assert (first.status, again.status) == (404, 404)
    assert first.to.tag == again.to.tag
    (hops1,) = replies(h.send(invite(AGG, max_forwards=0, branch="z9hG4bKmf0")))
    (hops2,) = replies(h.send(invite(AGG, max_forwards=0, branch="z9hG4bKmf0")))
    assert (hops1.status, hops1.to.tag) == (483, hops2.to.tag)


def test_two_outbound_flows_of_one_instance_get_one_branch() -> None:
    # RFC 5626 §5.3: "The proxy MUST NOT populate the target set with more than one contact
    # with the same AOR and instance-id at a time." (The device would otherwise receive the
    # INVITE twice and answer the second copy 482 as a merged request.)
    h = Harness.create(mode=Mode.AOR_THROTTLING)
    instance = '"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"'
    for reg_id, port in ((1, 40001), (2, 40002)):
        flow = Endpoint(transport="tcp", host="192.0.2.1", port=port, flow=reg_id)
        h.register(f"<sip:bob@192.0.2.1:{5200 + reg_id};transport=tcp;ob>;"
                   f"+sip.instance={instance};reg-id={reg_id}", flow, transport="TCP",
                   extra=[("Supported", "outbound")])
        h.now += 1.0
    out = branches(h.send(invite(AGG)))
    assert len(out) == 1
    assert out[0].dest.flow == 2  # the most recent flow


# =============================================================================================
# Correct behaviours without a test of their own
# =============================================================================================
def test_cancel_crossing_the_relayed_2xx_gets_200_and_cancels_nothing() -> None:
    # RFC 3261 §16.10: with a matching response context the proxy "MUST immediately return a
    # 200 (OK) response to the CANCEL"; it cancels only *pending* client transactions, and
    # after the 2xx none is (§9.2: a CANCEL has no effect on a request already answered).
    h = aor_harness(1)
    (b1,) = branches(call(h, branch="z9hG4bKx2"))
    h.respond(b1, 180, tag="a")
    assert statuses(h.respond(b1, 200, tag="a", body=SDP)) == [200]
    crossing = h.send(invite(AGG, method="CANCEL", branch="z9hG4bKx2"))
    (ok,) = replies(crossing)
    assert ok.status == 200 and str(ok.cseq) == "1 CANCEL"
    assert sent(crossing, "CANCEL") == [] and statuses(crossing) == [200]
    settle(h)


def test_after_a_2xx_other_branches_provisionals_and_6xx_are_not_forwarded() -> None:
    # RFC 3261 §16.7 step 5: "After a final response has been sent on the server transaction,
    # the following responses MUST be forwarded immediately: Any 2xx response to an INVITE
    # request. A stateful proxy MUST NOT immediately forward any other responses." The 6xx is
    # still ACKed hop by hop (§17.1.1.3).
    h = aor_harness(2)
    b1, b2 = branches(call(h))
    h.respond(b2, 180, tag="b")
    answered = h.respond(b1, 200, tag="a", body=SDP)
    assert statuses(answered) == [200]
    assert statuses(h.respond(b2, 183, tag="b")) == []
    declined = h.respond(b2, 603, tag="b")
    assert statuses(declined) == [] and len(sent(declined, "ACK")) == 1
    settle(h)


def test_retransmitted_invite_gets_the_final_again_until_acked() -> None:
    # RFC 3261 §17.2.1: in "Completed", a retransmitted request makes the server transaction
    # pass the final response to the transport again; after the ACK ("Confirmed") it is
    # absorbed.
    h = aor_harness(1)
    (b1,) = branches(call(h, branch="z9hG4bKre-c"))
    (busy,) = [a for a in h.respond(b1, 486, tag="a") if isinstance(a, Reply)]
    again = h.send(invite(AGG, branch="z9hG4bKre-c"), at=h.now + 0.2)
    assert [a for a in again if isinstance(a, Reply)] == [busy] and branches(again) == []
    assert h.send(invite(AGG, method="ACK", branch="z9hG4bKre-c", to_tag="a")) == []
    assert h.send(invite(AGG, branch="z9hG4bKre-c")) == []
    assert h.core.stats().branches_created == 1
    settle(h)


def test_retransmitted_invite_after_the_2xx_is_absorbed_not_forked_again() -> None:
    # RFC 6026 (abstract: RFC 3261 elements "will misidentify retransmissions of the request as
    # a new, unassociated request"; §7.1, Figure 5): in "Accepted" the INVITE server transaction
    # keeps matching retransmissions of the INVITE; one must not start a second fork.
    h = aor_harness(2)
    b1, _ = branches(call(h, branch="z9hG4bKre-a"))
    h.respond(b1, 200, tag="a", body=SDP)
    again = h.send(invite(AGG, branch="z9hG4bKre-a"), at=h.now + 0.5)
    assert again == []
    assert h.core.stats().branches_created == 2 and h.core.stats().requests_forked == 1
    settle(h)


def test_tcp_upstream_gets_every_response_on_its_connection_without_retransmission() -> None:
    # RFC 3261 §18.2.2: over a reliable transport the response "MUST be sent using the existing
    # connection to the source of the original request"; §17.2.1: Timer G (retransmission of
    # the final) runs only for unreliable transports.
    h = aor_harness(1)
    flow = Endpoint(transport="tcp", host="127.0.0.1", port=40000, flow=3)
    data = invite(AGG, branch="z9hG4bKtcp").replace(b"SIP/2.0/UDP 127.0.0.1:5080",
                                                    b"SIP/2.0/TCP 127.0.0.1:5080")
    actions = h.send(data, flow)
    (trying,) = [a for a in actions if isinstance(a, Reply)]
    assert trying.dest == flow
    (b1,) = branches(actions)
    ringing = [a for a in h.respond(b1, 180, tag="a") if isinstance(a, Reply)]
    busy = [a for a in h.respond(b1, 486, tag="a") if isinstance(a, Reply)]
    assert [r.dest for r in ringing + busy] == [flow, flow]
    assert statuses(h.advance(h.now + 31.0)) == []  # no Timer G over TCP
    settle(h)


def test_timer_c_stays_off_after_our_cancel_and_the_branch_is_abandoned_after_64_t1() -> None:
    # RFC 3261 §16.8 / §9.1: once the branch is CANCELled Timer C has done its job (a later
    # provisional must not restart it and send a second CANCEL); "If there is no final response
    # for the original request in 64*T1 seconds ... the client SHOULD then consider the
    # original transaction cancelled".
    h = aor_harness(1, timer_c=5.0)
    (b1,) = branches(call(h, branch="z9hG4bKtc"))
    h.respond(b1, 180, tag="a")
    actions = h.send(invite(AGG, method="CANCEL", branch="z9hG4bKtc"))
    (cancel,) = sent(actions, "CANCEL")
    assert statuses(h.respond(cancel, 200)) == []
    start = h.now
    assert sent(h.respond(b1, 183, tag="a", at=start + 1.0), "CANCEL") == []
    waiting = h.advance(start + 31.9)  # 64*T1 = 32 s
    assert statuses(waiting) == [] and sent(waiting, "CANCEL") == []
    gave_up = h.advance(start + 32.1)
    assert statuses(gave_up) == [487] and "branch-abandoned" in drops(gave_up)
    settle(h)


def test_2xx_on_a_branch_cancelled_by_timer_c_still_goes_upstream() -> None:
    # RFC 3261 §16.7 step 5 ("Any 2xx response" is forwarded immediately) with RFC 6026: a 2xx
    # crossing our Timer C CANCEL is relayed, not swallowed.
    h = aor_harness(1, timer_c=5.0)
    (b1,) = branches(call(h))
    h.respond(b1, 180, tag="a")
    (cancel,) = sent(h.advance(h.now + 5.0), "CANCEL")
    ok = h.respond(b1, 200, tag="a", body=SDP)
    assert statuses(ok) == [200] and replies(ok)[0].body == SDP
    assert statuses(h.respond(cancel, 200)) == []
    settle(h)


def test_non_invite_fork_forwards_only_the_first_2xx() -> None:
    # RFC 3261 §16.7 step 5: "Until a final response has been sent on the server transaction,
    # the following responses MUST be forwarded immediately: ... Any 2xx response"; after it,
    # only 2xx responses *to an INVITE*: a second 2xx to a MESSAGE stays here.
    h = aor_harness(2)
    b1, b2 = branches(h.send(invite(AGG, method="MESSAGE", branch="z9hG4bKm2")))
    assert statuses(h.respond(b1, 202, tag="a")) == [202]
    assert statuses(h.respond(b2, 200, tag="b")) == []
    settle(h)


def test_non_invite_6xx_waits_for_the_other_branches_and_cancels_nothing() -> None:
    # RFC 3261 §9.1: "A CANCEL request SHOULD NOT be sent to cancel a request other than
    # INVITE"; §16.7 step 5: a 6xx is not forwarded immediately, so the other branch's 2xx
    # (forwarded at once) is what the client gets.
    h = aor_harness(2)
    b1, b2 = branches(h.send(invite(AGG, method="MESSAGE", branch="z9hG4bKm6")))
    declined = h.respond(b1, 603, tag="a")
    assert statuses(declined) == [] and sent(declined) == []
    assert statuses(h.respond(b2, 200, tag="b")) == [200]
    settle(h)


def test_cancel_and_ack_of_a_path_routed_branch_carry_its_route_set() -> None:
    # RFC 3261 §9.1: "If the request being cancelled contains a Route header field, the CANCEL
    # request MUST include that Route header field's values", with a single Via matching the
    # request's top Via; §17.1.1.3: the ACK for a non-2xx carries the INVITE's Route header
    # fields and Request-URI. Here the Route is the device's stored Path (RFC 3327 §5).
    h = Harness.create(mode=Mode.AOR_THROTTLING)
    edge = Endpoint(host="192.0.2.30", port=5070)
    extra = [("Path", "<sip:edge.example.test:5070;lr>"), ("Supported", "path")]
    h.register("<sip:bob@192.168.1.10:5060>", edge, extra=extra)
    h.now += 1.0
    h.register("<sip:bob@192.168.1.11:5060>", edge, extra=extra)
    b1, b2 = branches(call(h, branch="z9hG4bKpath"))
    assert b1.dest == b2.dest == Endpoint(host="edge.example.test", port=5070)
    h.respond(b1, 180, tag="a")
    (ack,) = sent(h.respond(b2, 486, tag="b"), "ACK")
    (cancel,) = sent(h.send(invite(AGG, method="CANCEL", branch="z9hG4bKpath")), "CANCEL")
    for request, hop in ((b1, cancel), (b2, ack)):
        built, original = parse_request(hop.data), parse_request(request.data)
        assert hop.dest == request.dest
        assert built.uri_text == original.uri_text
        assert built.get_all("route") == ["<sip:edge.example.test:5070;lr>"]
        assert [str(v) for v in built.vias] == [str(original.vias[0])]
        assert built.cseq.seq == original.cseq.seq and built.call_id == original.call_id
    assert statuses(h.respond(b1, 487, tag="a")) == [487]
    settle(h)


def test_stray_2xx_after_timer_m_is_not_forwarded() -> None:
    # RFC 6026 (abstract, §8): it "changes the way responses that cannot be matched to an
    # existing transaction are handled to address a security risk": a 2xx that arrives after
    # the client transaction left "Accepted" (Timer M, 64*T1) is not forwarded statelessly.
    h = aor_harness(1)
    (b1,) = branches(call(h))
    assert statuses(h.respond(b1, 200, tag="a", body=SDP)) == [200]
    h.advance(h.now + 32.5)  # Timer M
    late = h.respond(b1, 200, tag="a", body=SDP)
    assert statuses(late) == [] and drops(late) == ["stray-response"]
    settle(h)


def test_408_after_timer_b_on_every_branch_is_built_as_a_uas_response() -> None:
    # RFC 3261 §16.7 step 6: "If there are no final responses in the context, the proxy MUST
    # send a 408 (Request Timeout) response to the server transaction"; it builds it as a UAS
    # (§8.2.6.2): a To tag added, the request's Vias and CSeq copied.
    h = aor_harness(2)
    start = h.now
    call(h)
    (timeout,) = replies(h.advance(start + 32.0))
    assert timeout.status == 408 and timeout.to.tag
    assert str(timeout.cseq) == "1 INVITE"
    assert [v.branch for v in timeout.vias] == ["z9hG4bKkam-1", "z9hG4bK-caller-1"]
    settle(h)
