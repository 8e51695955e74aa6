"""Best-response selection of a response context (RFC 3261 §16.7 steps 6-7) as pure rules."""
from __future__ import annotations

from _forking_support import Harness, branches, invite, parse_request, statuses

from sansmidreg import Endpoint
from sansmidreg._fork_response import Candidate, choose, merge_challenges
from sansmidreg.sip import Response, make_response, parse_message

REQUEST = parse_request(invite("sip:bob@127.0.0.1:5060"))


def real(status: int, order: int, headers: tuple[tuple[str, str], ...] = ()) -> Candidate:
    return Candidate(status=status, response=make_response(REQUEST, status, None, to_tag=str(order),
                                                           headers=headers), order=order)


def synthetic(status: int, order: int) -> Candidate:
    return Candidate(status=status, response=None, order=order)


def pick(*cands: Candidate, cancelled: bool = False, invite: bool = True) -> int | None:
    best = choose(cands, cancelled=cancelled, invite=invite)
    return None if best is None else best.status


def test_6xx_beats_everything() -> None:
    assert pick(real(302, 0), real(486, 1), real(603, 2)) == 603


def test_lowest_class_then_arrival_order() -> None:
    assert pick(real(500, 0), real(404, 1), real(486, 2)) == 404
    assert pick(real(404, 0), real(302, 1)) == 302


def test_preferred_4xx_codes() -> None:
    assert pick(real(486, 0), real(407, 1)) == 407
    assert pick(real(404, 0), real(484, 1)) == 484


def test_real_response_beats_a_synthesised_one() -> None:
    assert pick(synthetic(408, 0), real(486, 1)) == 486
    best = choose([synthetic(408, 0), synthetic(487, 1)], cancelled=False, invite=True)
    assert best is not None and best.response is None and best.status == 408


def test_after_upstream_cancel_the_answer_is_487() -> None:
    assert pick(real(486, 0), real(487, 1), cancelled=True) == 487
    best = choose([real(486, 0)], cancelled=True, invite=True)
    assert best is not None and best.status == 487 and best.response is None


def test_non_invite_sends_no_408_when_everything_timed_out() -> None:
    assert pick(synthetic(408, 0), synthetic(408, 1), invite=False) is None
    assert pick(synthetic(408, 0), real(404, 1), invite=False) == 404


def test_non_invite_timeout_does_not_hide_a_real_answer() -> None:
    # the 408 we may not send (RFC 4320 §4.2) used to outrank a 5xx a device gave, and then
    # nothing went up at all
    assert pick(synthetic(408, 0), real(500, 1), invite=False) == 500
    assert pick(real(503, 0), synthetic(408, 1), real(486, 2), invite=False) == 486


def test_challenges_are_merged_unmodified() -> None:
    www = ("WWW-Authenticate", 'Digest realm="a", nonce="1"')
    proxy = ("Proxy-Authenticate", 'Digest realm="b", nonce="2"')
    cands = [real(401, 0, (www,)), real(407, 1, (proxy,)), real(401, 2, (www,))]
    best = cands[0].response
    assert best is not None
    merged = parse_message(merge_challenges(best, cands).serialize())
    assert isinstance(merged, Response)
    assert merged.get_all("www-authenticate") == [www[1]]  # no duplicate
    assert merged.get_all("proxy-authenticate") == [proxy[1]]


def test_compat_opensips_record_route_carries_the_from_tag() -> None:
    h = Harness.create(compat="opensips")
    d = h.register("<sip:bob@127.0.0.1:5201>", Endpoint(host="127.0.0.1", port=5251))
    (b,) = branches(h.send(invite(d.uri)))
    assert parse_request(b.data).get_all("record-route")[0] == (
        "<sip:127.0.0.1:5060;lr;ftag=caller-tag>")


def test_routed_request_with_max_forwards_zero_gets_483() -> None:
    h = Harness.create()
    bye = invite("sip:bob@127.0.0.1:5201", method="BYE", to_tag="a", max_forwards=0,
                 extra=[("Route", "<sip:127.0.0.1:5060;lr>")])
    assert statuses(h.send(bye)) == [483]
