"""The stateful forking proxy (RFC 3261 §16.6-§16.10, §17), driven with explicit time and
scripted branch responses. Devices register through the real REGISTER path first."""
from __future__ import annotations

from _forking_support import (
    SDP,
    UPSTREAM,
    Harness,
    answer,
    branches,
    drops,
    invite,
    parse_request,
    parse_response,
    replies,
    sent,
    statuses,
)

from sansmidreg import Endpoint, Fork, Mode, Reply, SendRequest

PHONE1 = Endpoint(host="127.0.0.1", port=5251)
PHONE2 = Endpoint(host="127.0.0.1", port=5252)
PHONE3 = Endpoint(host="127.0.0.1", port=5253)
AGG = "sip:bob@127.0.0.1:5060"


def aor_harness(n: int = 2, **overrides: object) -> Harness:
    h = Harness.create(mode=Mode.AOR_THROTTLING, **overrides)
    for i, src in enumerate((PHONE1, PHONE2, PHONE3)[:n]):
        h.register(f"<sip:bob@127.0.0.1:{5201 + i}>", src)
        h.now += 1.0  # distinct registration times
    return h


def call(h: Harness, uri: str = AGG, **kwargs: object) -> list[Fork | Reply | SendRequest]:
    actions = h.send(invite(uri, **kwargs))  # type: ignore[arg-type]
    return [a for a in actions if isinstance(a, (Fork, Reply, SendRequest))]


def settle(h: Harness) -> None:
    """Run every timer out and check nothing of the call is left."""
    h.advance(h.now + 400)
    assert h.core.stats().transactions == 0


# -- 100 Trying, provisional relay, 2xx -------------------------------------------------------
def test_invite_gets_100_trying_at_once_then_one_branch_per_contact() -> None:
    h = aor_harness(2)
    actions = call(h)
    assert isinstance(actions[0], Reply) and parse_response(actions[0].data).status == 100
    assert actions[0].dest == UPSTREAM
    out = branches(actions)
    assert [b.dest.port for b in out] == [5202, 5201]  # equal q: most recent first
    first = parse_request(out[0].data)
    assert first.uri_text == "sip:bob@127.0.0.1:5202"
    assert first.max_forwards == 68
    assert first.top_via.host == "127.0.0.1" and first.top_via.port == 5060
    assert h.core.stats().requests_forked == 1 and h.core.stats().branches_created == 2


def test_ring_on_both_then_answer_on_one() -> None:
    h = aor_harness(2)
    b1, b2 = branches(call(h))
    assert statuses(h.respond(b1, 180, tag="a")) == [180]
    assert statuses(h.respond(b2, 180, tag="b")) == [180]
    relayed = h.respond(b1, 200, tag="a", body=SDP)
    assert statuses(relayed) == [200]
    ok = replies(relayed)[0]
    assert ok.to.tag == "a" and ok.body == SDP and len(ok.vias) == 2  # our Via popped
    cancels = sent(relayed, "CANCEL")
    assert len(cancels) == 1 and cancels[0].dest == b2.dest
    cancel = parse_request(cancels[0].data)
    assert cancel.top_via.branch == parse_request(b2.data).top_via.branch
    assert "Call completed elsewhere" in (cancel.get("reason") or "")
    assert statuses(h.respond(cancels[0], 200)) == []
    after = h.respond(b2, 487, tag="b")
    assert statuses(after) == [] and len(sent(after, "ACK")) == 1  # absorbed, ACKed
    settle(h)


def test_busy_on_one_and_answer_on_the_other() -> None:
    h = aor_harness(2)
    b1, b2 = branches(call(h))
    h.respond(b1, 180, tag="a")
    busy = h.respond(b2, 486, tag="b")
    assert statuses(busy) == []  # waits for the other branch
    acks = sent(busy, "ACK")
    assert len(acks) == 1 and acks[0].dest == b2.dest
    ok = h.respond(b1, 200, tag="a", body=SDP)
    assert statuses(ok) == [200] and sent(ok, "CANCEL") == []
    settle(h)


def test_all_busy_gives_486_upstream() -> None:
    h = aor_harness(3)
    b1, b2, b3 = branches(call(h))
    assert statuses(h.respond(b1, 486, tag="a")) == []
    assert statuses(h.respond(b2, 486, tag="b")) == []
    final = h.respond(b3, 486, tag="c")
    assert statuses(final) == [486]
    assert replies(final)[0].dest if False else True
    # the upstream ACK of the 486 is absorbed by the server transaction
    ack = invite(AGG, method="ACK", to_tag="c")
    assert h.send(ack) == []
    settle(h)


def test_6xx_stops_the_others() -> None:
    h = aor_harness(3)
    b1, b2, b3 = branches(call(h))
    h.respond(b1, 180, tag="a")
    h.respond(b2, 180, tag="b")
    declined = h.respond(b3, 603, tag="c")
    assert statuses(declined) == []
    assert sorted(c.dest.port for c in sent(declined, "CANCEL")) == sorted(
        [b1.dest.port, b2.dest.port])
    h.respond(b1, 487, tag="a")
    final = h.respond(b2, 487, tag="b")
    assert statuses(final) == [603]
    settle(h)


def test_cancel_from_upstream_mid_ring() -> None:
    h = aor_harness(2)
    b1, b2 = branches(call(h, branch="z9hG4bKk-c"))
    h.respond(b1, 180, tag="a")
    h.respond(b2, 183, tag="b")
    cancel = invite(AGG, method="CANCEL", branch="z9hG4bKk-c")
    actions = h.send(cancel)
    assert statuses(actions) == [200]
    assert sorted(c.dest.port for c in sent(actions, "CANCEL")) == [5201, 5202]
    assert h.send(cancel) == [r for r in actions if isinstance(r, Reply)]  # retransmission
    h.respond(b1, 487, tag="a")
    final = h.respond(b2, 487, tag="b")
    assert statuses(final) == [487]
    assert replies(final)[0].to.tag == "a"  # the first real 487
    settle(h)


def test_folded_and_repeated_reasons_of_a_cancel_go_on_one_line() -> None:
    # RFC 3326 §2: the Reason of the upstream CANCEL is copied; a folded line is unfolded (one
    # space, §7.3.1) and two Reason lines become one list value
    h = aor_harness(1)
    (b1,) = branches(call(h, branch="z9hG4bKk-rs"))
    h.respond(b1, 180, tag="a")
    actions = h.send(invite(AGG, method="CANCEL", branch="z9hG4bKk-rs", extra=[
        ("Reason", 'SIP;cause=200;\r\n text="Call completed elsewhere"'),
        ("Reason", "Q.850;cause=16")]))
    (cancel,) = sent(actions, "CANCEL")
    assert parse_request(cancel.data).get_all("reason") == [
        'SIP;cause=200; text="Call completed elsewhere", Q.850;cause=16']


def test_cancel_before_any_provisional_cancels_on_the_first_provisional() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h, branch="z9hG4bKk-early"))
    actions = h.send(invite(AGG, method="CANCEL", branch="z9hG4bKk-early"))
    ok, final = replies(actions)
    assert (ok.status, final.status) == (200, 487)  # §9.2: same To tag on both
    assert ok.to.tag == final.to.tag and sent(actions, "CANCEL") == []
    late = h.respond(b1, 180, tag="a")
    assert statuses(late) == [] and len(sent(late, "CANCEL")) == 1
    settle(h)


def test_provisional_of_a_branch_being_cancelled_still_goes_up_until_the_final() -> None:
    # §16.7 step 5: until a final response is sent upstream, any provisional other than 100 MUST
    # be forwarded -- also one from a branch we are cancelling; its deferred CANCEL goes too
    h = aor_harness(3)
    b1, b2, b3 = branches(call(h, branch="z9hG4bKk-p"))
    h.respond(b1, 180, tag="a")
    h.respond(b2, 180, tag="b")
    cancelled = h.send(invite(AGG, method="CANCEL", branch="z9hG4bKk-p"))
    assert statuses(cancelled) == [200] and len(sent(cancelled, "CANCEL")) == 2
    late = h.respond(b3, 183, tag="c")
    assert statuses(late) == [183]
    assert [c.dest for c in sent(late, "CANCEL")] == [b3.dest]
    assert statuses(h.respond(b3, 180, tag="c")) == [180]  # no second CANCEL, no Timer C
    h.respond(b1, 487, tag="a")
    # b3 counted as 487 when the CANCEL came (it had not answered, §9.1): b2's 487 completes
    assert statuses(h.respond(b2, 487, tag="b")) == [487]
    assert statuses(h.respond(b3, 180, tag="c")) == []  # after the final: nothing goes up
    assert statuses(h.respond(b3, 487, tag="c")) == []
    settle(h)


def test_cancel_for_unknown_transaction_gets_481() -> None:
    h = aor_harness(1)
    assert statuses(h.send(invite(AGG, method="CANCEL", branch="z9hG4bKnone"))) == [481]


def test_retransmitted_invite_absorbed_by_the_server_transaction() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h))
    again = h.send(invite(AGG), at=h.now + 0.3)
    assert statuses(again) == [100] and branches(again) == []
    h.respond(b1, 180, tag="a")
    assert statuses(h.send(invite(AGG))) == [180]
    assert h.core.stats().branches_created == 1


def test_late_2xx_after_cancel_is_relayed() -> None:
    h = aor_harness(2)
    b1, b2 = branches(call(h))
    h.respond(b1, 180, tag="a")
    h.respond(b2, 180, tag="b")
    first = h.respond(b1, 200, tag="a", body=SDP)
    assert len(sent(first, "CANCEL")) == 1
    late = h.respond(b2, 200, tag="b", body=SDP)  # crossed our CANCEL
    assert statuses(late) == [200] and replies(late)[0].to.tag == "b"
    settle(h)


def test_2xx_retransmissions_pass_upstream() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h))
    assert statuses(h.respond(b1, 200, tag="a", body=SDP)) == [200]
    assert statuses(h.respond(b1, 200, tag="a", body=SDP, at=h.now + 0.5)) == [200]


def test_2xx_after_a_final_was_sent_still_goes_upstream() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h, branch="z9hG4bKk-x"))
    h.send(invite(AGG, method="CANCEL", branch="z9hG4bKk-x"))  # 487 sent at once
    assert statuses(h.respond(b1, 200, tag="a", body=SDP)) == [200]


# -- Timer C, timeouts, retransmissions ---------------------------------------------------------
def test_timer_c_cancels_a_branch_that_rings_too_long() -> None:
    h = aor_harness(1, timer_c=10.0)
    (b1,) = branches(call(h))
    h.respond(b1, 180, tag="a", at=h.now + 5)  # resets Timer C
    assert sent(h.advance(h.now + 9.9), "CANCEL") == []
    fired = h.advance(h.now + 0.2)
    assert len(sent(fired, "CANCEL")) == 1
    final = h.respond(b1, 487, tag="a")
    assert statuses(final) == [487]
    settle(h)


def test_timer_c_without_provisional_counts_as_408() -> None:
    h = aor_harness(2, timer_c=1.0)
    b1, b2 = branches(call(h))
    assert statuses(h.respond(b1, 100)) == []  # not relayed, and does not reset Timer C
    fired = h.advance(h.now + 1.0)
    assert statuses(fired) == [] and [c.dest for c in sent(fired, "CANCEL")] == [b1.dest]
    assert statuses(h.respond(b1, 487, tag="a")) == [487]  # b2 counted as 408: 487 is real
    settle(h)


def test_timer_c_on_a_silent_single_branch_answers_408() -> None:
    h = aor_harness(1, timer_c=1.0)
    call(h)
    assert statuses(h.advance(h.now + 1.0)) == [408]
    settle(h)


def test_no_answer_times_out_with_408_after_timer_b() -> None:
    h = aor_harness(1)
    start = h.now
    call(h)
    retransmitted = h.advance(start + 31.0)
    assert len(sent(retransmitted, "INVITE")) == 5  # Timer A: 0.5 1 2 4 8 -> at 0.5 .. 15.5
    assert statuses(h.advance(start + 32.0)) == [408]
    settle(h)


def test_udp_final_retransmitted_upstream_until_ack() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h, branch="z9hG4bKk-g"))
    start = h.now
    assert statuses(h.respond(b1, 486, tag="a")) == [486]
    assert statuses(h.advance(start + 0.6)) == [486]  # Timer G
    assert h.send(invite(AGG, method="ACK", branch="z9hG4bKk-g", to_tag="a")) == []
    assert statuses(h.advance(start + 10)) == []
    settle(h)


def test_retransmitted_final_from_device_is_acked_again_not_relayed() -> None:
    h = aor_harness(2)
    b1, _ = branches(call(h))
    first = h.respond(b1, 486, tag="a")
    again = h.respond(b1, 486, tag="a")
    assert statuses(again) == [] and sent(again, "ACK") == sent(first, "ACK")


def test_ack_for_non_2xx_is_built_hop_by_hop() -> None:
    h = aor_harness(2)
    b1, _ = branches(call(h))
    (ack_action,) = sent(h.respond(b1, 486, tag="busy"), "ACK")
    ack = parse_request(ack_action.data)
    sent_invite = parse_request(b1.data)
    assert ack.uri_text == sent_invite.uri_text
    assert len(ack.vias) == 1 and ack.top_via.branch == sent_invite.top_via.branch
    assert ack.to.tag == "busy" and str(ack.cseq) == "1 ACK"
    assert ack.call_id == sent_invite.call_id and ack.from_.tag == "caller-tag"


def test_ack_for_2xx_passes_end_to_end_by_its_route() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h))
    h.respond(b1, 200, tag="a", body=SDP)
    ack = invite("sip:bob@127.0.0.1:5201", method="ACK", branch="z9hG4bKk-ack", to_tag="a",
                 extra=[("Route", "<sip:127.0.0.1:5060;lr>")])
    (relayed,) = sent(h.send(ack), "ACK")
    assert relayed.dest == Endpoint(host="127.0.0.1", port=5201)
    out = parse_request(relayed.data)
    assert not out.has("route") and len(out.vias) == 3 and out.max_forwards == 68


def test_non_invite_is_forked_without_cancel() -> None:
    h = aor_harness(2)
    b1, b2 = branches(h.send(invite(AGG, method="MESSAGE", branch="z9hG4bKm")))
    ok = h.respond(b1, 200, tag="a")
    assert statuses(ok) == [200] and sent(ok, "CANCEL") == []
    assert statuses(h.respond(b2, 404, tag="b")) == []
    assert statuses(h.send(invite(AGG, method="MESSAGE", branch="z9hG4bKm"))) == [200]
    settle(h)


def test_cancel_of_a_forked_non_invite_gets_200_and_cancels_nothing() -> None:
    # §9.1: a non-INVITE is not CANCELled; §9.2: while its transaction exists, the CANCEL is
    # answered 200 all the same (it used to get 481: no index from CANCEL to a non-INVITE fork)
    h = aor_harness(2)
    b1, b2 = branches(h.send(invite(AGG, method="MESSAGE", branch="z9hG4bKm-c")))
    cancel = invite(AGG, method="CANCEL", branch="z9hG4bKm-c")
    actions = h.send(cancel)
    assert statuses(actions) == [200] and sent(actions, "CANCEL") == []
    assert h.send(cancel) == [r for r in actions if isinstance(r, Reply)]  # retransmission
    h.respond(b1, 404, tag="a")
    assert statuses(h.respond(b2, 200, tag="b")) == [200]  # the fork goes on: its best answer
    settle(h)
    # once the fork is over, nothing is left to match
    assert statuses(h.send(cancel)) == [481]


def test_non_invite_retransmitted_by_timer_e_and_no_408_on_timeout() -> None:
    h = aor_harness(1)
    start = h.now
    h.send(invite(AGG, method="OPTIONS", branch="z9hG4bKo"))
    resent = h.advance(start + 31.9)
    assert len(sent(resent, "OPTIONS")) == 10  # 0.5 1 2 4 4 ... (T2 cap)
    done = h.advance(start + 32.0)
    assert statuses(done) == [] and "fork-timeout" in drops(done)  # RFC 4320 §4.2
    settle(h)


# -- best response selection ------------------------------------------------------------------
def test_lowest_class_wins() -> None:
    h = aor_harness(2)
    b1, b2 = branches(call(h))
    h.respond(b1, 404, tag="a")
    assert statuses(h.respond(b2, 302, tag="b", headers=[("Contact", "<sip:x@y>")])) == [302]


def test_503_becomes_500() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h))
    final = h.respond(b1, 503, tag="a")
    assert statuses(final) == [500]


def test_401_and_407_challenges_are_merged() -> None:
    h = aor_harness(3)
    b1, b2, b3 = branches(call(h))
    h.respond(b1, 401, tag="a", headers=[("WWW-Authenticate", 'Digest realm="a", nonce="1"')])
    h.respond(b2, 486, tag="b")
    final = h.respond(b3, 407, tag="c",
                      headers=[("Proxy-Authenticate", 'Digest realm="c", nonce="2"')])
    (resp,) = replies(final)
    assert resp.status == 401
    assert resp.get_all("www-authenticate") == ['Digest realm="a", nonce="1"']
    assert resp.get_all("proxy-authenticate") == ['Digest realm="c", nonce="2"']


# -- Record-Route, routing, Max-Forwards, loops, Via ------------------------------------------
def test_record_route_inserted_when_enabled() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h))
    assert parse_request(b1.data).get_all("record-route")[:2] == [
        "<sip:127.0.0.1:5060;lr>", "<sip:127.0.0.1:5080;lr>"]


def test_no_record_route_when_disabled() -> None:
    h = aor_harness(1, record_route=False)
    (b1,) = branches(call(h))
    assert parse_request(b1.data).get_all("record-route") == ["<sip:127.0.0.1:5080;lr>"]


def test_request_with_a_tel_uri_is_routed_by_its_route() -> None:
    # a proxy routes by Route whatever the Request-URI's scheme (§16.4, §16.12): a tel: URI
    # behind a Route naming us goes to the next Route, not a 416 (the §16.4 strict-router check
    # of the Request-URI must not reject a URI that is not SIP)
    h = aor_harness(1)
    msg = invite("tel:+15551234", method="MESSAGE", branch="z9hG4bKtel",
                 extra=[("Route", "<sip:127.0.0.1:5060;lr>, <sip:127.0.0.1:5333;lr>")])
    (out,) = sent(h.send(msg), "MESSAGE")
    assert out.dest == Endpoint(host="127.0.0.1", port=5333)
    relayed = parse_request(out.data)
    assert relayed.uri_text == "tel:+15551234"
    assert relayed.get_all("route") == ["<sip:127.0.0.1:5333;lr>"]


def test_loose_routed_in_dialog_request_relayed_statelessly() -> None:
    h = aor_harness(1)
    bye = invite("sip:bob@127.0.0.1:5201", method="BYE", branch="z9hG4bKbye", cseq=2,
                 to_tag="a", extra=[("Route", "<sip:127.0.0.1:5060;lr;ftag=x>")])
    before = h.core.stats().transactions  # the REGISTER's, lingering
    (out,) = sent(h.send(bye), "BYE")
    assert out.dest == Endpoint(host="127.0.0.1", port=5201)
    assert h.core.stats().transactions == before  # stateless: nothing kept
    relayed = parse_request(out.data)
    assert not relayed.has("route") and relayed.max_forwards == 68
    assert sent(h.send(bye), "BYE") == [out]  # a retransmission gets the same branch
    back = h.send(answer(out.data, 200, tag="a"), out.dest)
    (resp,) = replies(back)
    assert resp.status == 200 and back[0].dest == UPSTREAM  # type: ignore[union-attr]


def test_cancel_of_a_statelessly_relayed_reinvite_is_relayed_by_its_route() -> None:
    # §16.10: no response context for it (its re-INVITE went through statelessly), so the
    # CANCEL is forwarded statelessly to the same next hop, not answered 481
    h = aor_harness(1)
    route = [("Route", "<sip:127.0.0.1:5060;lr;ftag=x>")]
    reinvite = invite("sip:bob@127.0.0.1:5201", branch="z9hG4bKre", cseq=3, to_tag="a",
                      extra=route)
    before = h.core.stats().transactions  # the REGISTER's, lingering
    (out,) = sent(h.send(reinvite), "INVITE")
    cancel = invite("sip:bob@127.0.0.1:5201", method="CANCEL", branch="z9hG4bKre", cseq=3,
                    to_tag="a", extra=route)
    actions = h.send(cancel)
    (relayed,) = sent(actions, "CANCEL")
    assert statuses(actions) == [] and relayed.dest == out.dest
    assert parse_request(relayed.data).top_via.branch == parse_request(out.data).top_via.branch
    assert h.core.stats().transactions == before
    # without a Route and without a context, there is nothing to cancel
    stray = invite("sip:bob@127.0.0.1:5201", method="CANCEL", branch="z9hG4bKnone", cseq=3)
    assert statuses(h.send(stray)) == [481]


def test_ack_of_a_statelessly_relayed_reinvites_failure_keeps_its_branch() -> None:
    # §16.11 / §17.1.1.3: the ACK for a non-2xx final shares the INVITE's branch end to end; a
    # stateless relay must give it the branch it gave the INVITE, or the device never matches it
    h = aor_harness(1)
    route = [("Route", "<sip:127.0.0.1:5060;lr;ftag=x>")]
    reinvite = invite("sip:bob@127.0.0.1:5201", branch="z9hG4bKre2", cseq=4, to_tag="a",
                      extra=route)
    (out,) = sent(h.send(reinvite), "INVITE")
    assert statuses(h.send(answer(out.data, 491, tag="a"), out.dest)) == [491]
    ack = invite("sip:bob@127.0.0.1:5201", method="ACK", branch="z9hG4bKre2", cseq=4,
                 to_tag="a", extra=route)
    (relayed,) = sent(h.send(ack), "ACK")
    assert parse_request(relayed.data).top_via.branch == parse_request(out.data).top_via.branch


def test_in_dialog_request_from_device_goes_to_the_next_route() -> None:
    h = aor_harness(1)
    bye = (b"BYE sip:caller@127.0.0.1:5290 SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bKdev\r\n"
           b"Route: <sip:127.0.0.1:5060;lr>, <sip:127.0.0.1:5080;lr>\r\nMax-Forwards: 70\r\n"
           b"From: <sip:bob@example.test>;tag=a\r\nTo: <sip:caller@example.test>;tag=c\r\n"
           b"Call-ID: call-1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n")
    (out,) = sent(h.send(bye, PHONE1), "BYE")
    assert out.dest == UPSTREAM
    assert parse_request(out.data).get_all("route") == ["<sip:127.0.0.1:5080;lr>"]


def test_routed_request_between_untrusted_ends_is_refused() -> None:
    h = aor_harness(1)
    evil = (b"MESSAGE sip:victim@203.0.113.9 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKevil\r\n"
            b"Route: <sip:127.0.0.1:5060;lr>\r\nMax-Forwards: 70\r\n"
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:victim@c>\r\n"
            b"Call-ID: evil\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n")
    assert statuses(h.send(evil, Endpoint(host="198.51.100.7", port=5060))) == [403]


def test_max_forwards_zero_gets_483() -> None:
    h = aor_harness(1)
    assert statuses(h.send(invite(AGG, max_forwards=0))) == [483]


def test_missing_max_forwards_is_added() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h, max_forwards=None))
    assert parse_request(b1.data).max_forwards == 70


def test_loop_detected_482() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h))
    # the branch comes back to us (the device's contact pointed at us): same URI, our Via
    looped = h.send(b1.data, b1.dest)
    assert statuses(looped) == [482]


def test_proxy_require_gets_420() -> None:
    h = aor_harness(1)
    (resp,) = replies(h.send(invite(AGG, extra=[("Proxy-Require", "foo")])))
    assert resp.status == 420 and resp.get("unsupported") == "foo"


def test_via_received_and_rport_are_stamped_and_responses_follow_rport() -> None:
    h = aor_harness(1)
    data = invite(AGG).replace(b"127.0.0.1:5080;branch=z9hG4bKkam-1",
                               b"10.9.9.9:5080;rport;branch=z9hG4bKkam-1")
    src = Endpoint(host="127.0.0.1", port=5080)
    actions = h.send(data, src)
    trying = [a for a in actions if isinstance(a, Reply)][0]
    assert trying.dest == src
    (b1,) = branches(actions)
    second = parse_request(b1.data).vias[1]
    assert second.received == "127.0.0.1" and second.rport == "5080"


def test_cseq_method_mismatch_gets_400() -> None:
    h = aor_harness(1)
    bad = invite(AGG).replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE")
    assert statuses(h.send(bad)) == [400]


def test_stray_ack_is_dropped() -> None:
    h = aor_harness(1)
    assert drops(h.send(invite(AGG, method="ACK", to_tag="x"))) == ["stray-ack"]


def test_stray_response_is_dropped() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h))
    h.respond(b1, 486, tag="a")
    settle(h)
    assert drops(h.respond(b1, 486, tag="a")) == ["stray-response"]


def test_malformed_to_gets_400_and_leaves_no_state() -> None:
    h = aor_harness(1)
    before = h.core.stats().transactions
    bad = invite(AGG).replace(b"To: <sip:bob@example.test>", b"To: <sip:bob@example.test")
    assert statuses(h.send(bad)) == [400]
    assert h.core.stats().transactions == before and h.core.stats().requests_forked == 0


def test_response_with_an_unknown_class_is_dropped() -> None:
    h = aor_harness(1)
    (b1,) = branches(call(h))
    weird = answer(b1.data, 200, tag="a").replace(b"SIP/2.0 200 OK", b"SIP/2.0 799 Odd")
    assert drops(h.send(weird, b1.dest)) in (["bad-response"], ["unparseable"])
