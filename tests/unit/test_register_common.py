# What every mode shares (OPENSIPS-BEHAVIOUR.md §1 "common", §3.5, §3.6, §4; RFC 3261 §10.3,
# §16, §17): validation errors with the right status, binding queries, `Contact: *` rules, 423,
# 483, 420, 416, CSeq ordering, retransmissions absorbed by the server transaction and the last
# response resent, and a REGISTER we answered ourselves answered the same again (its To tag a
# function of the request), timer F -> 408, stray responses, Path stored and stripped upstream,
# max_contacts with and without force-registration (lowest q, then oldest, evicted first), and
# the statistics snapshot.
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from sansmidreg import (
    Config,
    Drop,
    Endpoint,
    MidRegistrar,
    Mode,
    Reply,
    SeededIds,
    SendUpstream,
)

if (_tests := str(Path(__file__).resolve().parents[1])) not in sys.path:
    sys.path.insert(0, _tests)  # tests/ holds the shared simulation harness, tests/sim

from sim import Behaviour, Network
from sim.wire import contact_expires, contacts, request, response

BASE = Config(mode=Mode.CONTACT_THROTTLING, outgoing_expires=600, min_expires=5)
UA = Endpoint(host="127.0.0.1", port=5201)
MODES = [Mode.MIRROR, Mode.CONTACT_THROTTLING, Mode.AOR_THROTTLING]


def make(**overrides: Any) -> Network:
    return Network(dataclasses.replace(BASE, **overrides))



HEADERS: list[tuple[str, str]] = [
    ("Via", "SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bKraw1"),
    ("Max-Forwards", "70"),
    ("From", "<sip:alice@example.test>;tag=f1"),
    ("To", "<sip:alice@example.test>"),
    ("Call-ID", "raw-1@127.0.0.1"),
    ("CSeq", "1 REGISTER"),
    ("Contact", "<sip:alice@127.0.0.1:5201>"),
    ("Expires", "60"),
]


def raw(uri: str = "sip:example.test", method: str = "REGISTER",
        **changes: str | None) -> bytes:
    """A REGISTER with header values changed (name_with_underscores=value) or removed (None)."""
    lines = [f"{method} {uri} SIP/2.0"]
    keys = {k.lower().replace("_", "-"): v for k, v in changes.items()}
    for name, value in HEADERS:
        new = keys.pop(name.lower(), value)
        if new is not None:
            lines.append(f"{name}: {new}")
    lines += [f"{k}: {v}" for k, v in keys.items() if v is not None]
    return ("\r\n".join(lines + ["Content-Length: 0", "", ""])).encode()


def answer(data: bytes, mode: Mode = Mode.CONTACT_THROTTLING, ids_seed: int = 1,
           **overrides: Any) -> Reply:
    core = MidRegistrar(dataclasses.replace(BASE, mode=mode, **overrides),
                        ids=SeededIds(ids_seed))
    actions = core.receive(data, UA, 0.0)
    replies = [a for a in actions if isinstance(a, Reply)]
    assert len(replies) == 1 and not any(isinstance(a, SendUpstream) for a in actions), actions
    assert core.stats().internal_errors == 0
    return replies[0]


# -- validation (§1 common step 1-3) -------------------------------------------------------------
@pytest.mark.parametrize(("change", "status"), [
    ({"to": None}, 400),
    ({"from": None}, 400),
    ({"call_id": None}, 400),
    ({"cseq": None}, 400),
    ({"cseq": "x REGISTER"}, 400),
    ({"cseq": "1 INVITE"}, 400),
    ({"expires": "soon"}, 400),
    ({"contact": "<sip:alice@127.0.0.1:5201"}, 400),
    ({"contact": "<sip:alice@127.0.0.1:5201>;q=7"}, 400),
    ({"to": "<sip:example.test>"}, 400),  # empty AOR user part (#2232)
    ({"to": "<sip:" + "a" * 65 + "@example.test>"}, 500),  # AOR too long
    ({"contact": "<sip:" + "c" * 260 + "@127.0.0.1>"}, 400),  # Contact URI too long
    ({"to": "<tel:+15551234567>"}, 404),
    ({"max_forwards": "0"}, 483),
    ({"max_forwards": "many"}, 400),
    ({"require": "foo, path"}, 420),
    ({"contact": "*"}, 400),  # `*` needs Expires: 0
    ({"contact": "*, <sip:alice@127.0.0.1:5201>", "expires": "0"}, 400),
    ({"expires": "3"}, 423),
])
def test_common_invalid_register_is_rejected_with_status(change: dict[str, str | None],
                                                        status: int) -> None:
    for mode in MODES:
        reply = response(answer(raw(**change), mode).data)  # type: ignore[arg-type]
        assert reply.status == status, (mode, change, reply.status, reply.reason)
        if "call_id" not in change:
            assert reply.call_id == "raw-1@127.0.0.1"


def test_common_non_sip_request_uri_is_416() -> None:
    reply = response(answer(raw(uri="tel:+15551234567")).data)
    assert reply.status == 416


def test_common_bad_extension_lists_unsupported() -> None:
    reply = response(answer(raw(require="foo, path")).data)
    assert reply.status == 420 and reply.get("unsupported") == "foo"


def test_common_interval_too_brief_carries_min_expires() -> None:
    reply = response(answer(raw(expires="3")).data)
    assert reply.status == 423 and reply.get("min-expires") == "5"


def test_common_compat_clamps_a_too_brief_interval_instead_of_423() -> None:
    net = make(compat="opensips")
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 3).response
    assert reply.status == 200 and contacts(reply) == [(ua.contact_uri, "5")]


def test_common_domain_not_served_is_403() -> None:
    reply = response(answer(raw(), domains=("other.test",)).data)
    assert reply.status == 403


def test_common_too_many_contacts_in_one_register_is_400() -> None:
    many = ", ".join(f"<sip:alice@127.0.0.1:{6000 + i}>" for i in range(5))
    reply = response(answer(raw(contact=many), max_contacts_per_aor=4).data)
    assert reply.status == 400


def test_common_error_reply_has_to_tag_and_copies_dialog_headers() -> None:
    reply = response(answer(raw(max_forwards="0")).data)
    assert reply.to.tag and reply.from_.tag == "f1" and reply.cseq.seq == 1
    assert reply.vias[0].branch == "z9hG4bKraw1"


def test_common_rejections_are_counted_by_status() -> None:
    core = MidRegistrar(BASE, ids=SeededIds(1))
    core.receive(raw(max_forwards="0"), UA, 0.0)
    core.receive(raw(expires="3", call_id="x2"), UA, 0.0)
    core.receive(raw(expires="3", call_id="x3"), UA, 0.0)
    stats = core.stats()
    assert stats.registers_rejected == 3 and dict(stats.rejected_by_status) == {423: 2, 483: 1}


def test_common_unparseable_garbage_is_dropped() -> None:
    core = MidRegistrar(BASE, ids=SeededIds(1))
    actions = core.receive(b"\x00\x01garbage", UA, 0.0)
    assert [type(a) for a in actions] == [Drop]
    assert core.stats().internal_errors == 0


def test_common_request_without_via_is_dropped() -> None:
    core = MidRegistrar(BASE, ids=SeededIds(1))
    actions = core.receive(raw(via=None), UA, 0.0)
    assert len(actions) == 1 and isinstance(actions[0], Drop)


def test_common_bad_header_syntax_is_answered_400_when_via_is_readable() -> None:
    data = raw().replace(b"Expires: 60", b"Expires 60")
    reply = response(answer(data).data)
    assert reply.status == 400 and reply.vias[0].branch == "z9hG4bKraw1"


# -- query (§1 common step 4; RFC 3261 §10.3 step 8) ------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_common_query_is_answered_locally_in_every_mode(mode: Mode) -> None:
    net = make(mode=mode)
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(10.0)
    reply = net.register(ua, None, query=True).response
    assert reply.status == 200 and contacts(reply) == [(ua.contact_uri, "50")]
    assert len(net.registrar.seen) == 1 and net.core.stats().queries_answered == 1


# -- CSeq ordering (§3.6) ------------------------------------------------------------------------------
def test_common_repeated_cseq_is_accepted_with_allow_dup_cseq() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(10.0)
    net.register(ua, 60, cseq=2)
    net.advance(40.0)
    assert net.register(ua, 60, cseq=2).response.status == 200


def test_common_repeated_cseq_without_allow_dup_cseq_only_within_20_s() -> None:
    net = make(allow_dup_cseq=False)
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(10.0)
    net.register(ua, 60, cseq=2)
    net.advance(25.0)
    assert net.register(ua, 60, cseq=2).response.status == 200  # a "retransmission"
    net.advance(50.0)
    assert net.register(ua, 60, cseq=2).response.status == 400


def test_common_lower_cseq_is_rejected_in_aor_mode() -> None:
    net = make(mode=Mode.AOR_THROTTLING)
    ua = net.ua("alice", 5201)
    net.register(ua, 60, cseq=10)
    net.advance(10.0)
    reply = net.register(ua, 60, cseq=4).response
    assert reply.status == 400 and reply.reason == "Invalid CSeq number"


# -- retransmissions (§4.6; RFC 3261 §17.2.2) -----------------------------------------------------------
def test_common_retransmission_before_the_answer_is_absorbed() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.registrar.expect(Behaviour.DROP_FIRST)
    data = ua.register(60)
    net.send(ua, data, retransmit=False)
    net.settle(0.1)
    net.inject(data, ua.endpoint)  # the UA's own retransmission: nothing to send yet
    assert net.outputs[-1] == [] and net.core.stats().retransmissions_absorbed == 1
    net.settle(1.0)  # our timer E gets it through
    assert ua.last_answer.response.status == 200 and len(net.registrar.seen) == 1


def test_common_retransmission_after_the_answer_gets_the_same_response() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    first = net.sent_to(ua)[-1]
    actions = net.inject(ua.retransmit(), ua.endpoint)
    replies = [a for a in actions if isinstance(a, Reply)]
    assert len(replies) == 1 and replies[0].data == first
    assert len(net.registrar.seen) == 1


def test_common_retransmission_of_an_absorbed_register_is_answered_again() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(10.0)
    net.register(ua, 60)
    again = [a for a in net.inject(ua.retransmit(), ua.endpoint) if isinstance(a, Reply)]
    assert len(again) == 1 and response(again[0].data).status == 200
    assert len(net.registrar.seen) == 1


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "general-path"])
@pytest.mark.parametrize("mode", [Mode.CONTACT_THROTTLING, Mode.AOR_THROTTLING])
def test_common_retransmitted_absorbed_register_gets_a_byte_identical_answer(
        mode: Mode, fast: bool) -> None:
    # our 200 to an absorbed refresh was lost and the UA sends the REGISTER again: no
    # transaction absorbs it, it is processed again, and its answer must be the same response
    # (RFC 3261 §17.2.2) -- the same To tag, not a new one
    net = make(mode=mode)
    net.core._fast = fast
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(10.0)
    net.register(ua, 60)
    assert net.core.stats().registers_absorbed == 1
    first = net.sent_to(ua)[-1]
    net.advance(10.5)
    again = [a.data for a in net.inject(ua.retransmit(), ua.endpoint) if isinstance(a, Reply)]
    assert again == [first] and len(net.registrar.seen) == 1


def test_common_retransmitted_refused_register_or_query_gets_the_same_answer() -> None:
    core = MidRegistrar(BASE, ids=SeededIds(1))
    for i, data in enumerate((raw(expires="3"), raw(max_forwards="0"), raw(contact=None))):
        first = [a.data for a in core.receive(data, UA, i + 1.0) if isinstance(a, Reply)]
        again = [a.data for a in core.receive(data, UA, i + 1.5) if isinstance(a, Reply)]
        assert len(first) == 1 and again == first


def test_common_local_to_tag_is_a_function_of_the_request_not_of_the_id_source() -> None:
    # no id is drawn for it (DESIGN.md §2.5), and no per-process salt enters it (builtin hash()
    # of a str would differ from run to run): the tag of this request is fixed
    tags = {response(answer(raw(expires="3"), ids_seed=seed).data).to.tag for seed in (1, 2)}
    assert tags == {"a52b9d16e9370b28"}  # blake2b of branch, Call-ID, CSeq
    others = {
        response(answer(raw(expires="3", **change)).data).to.tag for change in (
            {"via": "SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bKraw2"},
            {"call_id": "raw-2@127.0.0.1"},
            {"cseq": "2 REGISTER"})}
    assert len(others) == 3 and not others & tags


def test_common_upstream_retransmissions_follow_timer_e() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.registrar.expect(Behaviour.DROP)
    net.send(ua, ua.register(60), retransmit=False)
    net.advance(31.9)
    times = [i.now for i, out in zip(net.inputs, net.outputs)
             if any(isinstance(a, SendUpstream) for a in out)]
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert net.core.stats().retransmissions_sent == 10


def test_common_timer_f_answers_408_to_the_ua() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.registrar.expect(Behaviour.DROP)
    net.send(ua, ua.register(60), retransmit=False)
    net.advance(31.999)
    assert not ua.answers
    net.advance(32.0)
    reply = ua.last_answer.response
    assert reply.status == 408 and reply.to.tag and reply.vias[0].branch == ua.last_branch
    stats = net.core.stats()
    assert stats.relayed_timeouts == 1 and stats.relayed_failed == 1 and stats.contacts == 0


def test_common_reliable_transport_has_no_timer_e() -> None:
    net = make(upstream=Endpoint(transport="tcp", host="127.0.0.1", port=5080))
    ua = net.ua("alice", 5201)
    net.registrar.expect(Behaviour.DROP)
    net.send(ua, ua.register(60), retransmit=False)
    net.advance(40.0)
    assert len(net.upstream()) == 1 and ua.last_answer.response.status == 408
    (uri, _), = contacts(net.registrar.seen[0].request)
    assert uri.endswith(";transport=tcp")


# -- responses ----------------------------------------------------------------------------------------
def test_common_stray_response_is_dropped() -> None:
    core = MidRegistrar(BASE, ids=SeededIds(1))
    data = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnobody\r\n"
            b"From: <sip:a@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: s\r\nCSeq: 1 REGISTER\r\n"
            b"Content-Length: 0\r\n\r\n")
    actions = core.receive(data, Endpoint(host="127.0.0.1", port=5080), 0.0)
    assert [a.reason for a in actions if isinstance(a, Drop)] == ["stray-response"]


def test_common_response_retransmission_is_absorbed_by_the_client_transaction() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    answer_bytes = net.registrar._txns[net.registrar.seen[0].request.top_via.branch or ""].response
    assert answer_bytes is not None
    actions = net.inject(answer_bytes, net.registrar.endpoint)
    assert not any(isinstance(a, Reply) for a in actions)
    assert len(ua.answers) == 1


def test_common_100_trying_is_not_relayed() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.registrar.expect(Behaviour.DROP)
    net.send(ua, ua.register(60), retransmit=False)
    net.settle(0.1)
    (sent,) = net.registrar.seen
    trying = ("SIP/2.0 100 Trying\r\n" + "".join(f"Via: {v}\r\n" for v in sent.request.get_all(
        "via")) + f"From: {sent.request.get('from')}\r\nTo: {sent.request.get('to')}\r\n"
        f"Call-ID: {sent.request.call_id}\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")
    actions = net.inject(trying.encode(), net.registrar.endpoint)
    assert not any(isinstance(a, Reply) for a in actions)


def test_common_bad_2xx_from_upstream_becomes_502_without_local_change() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.registrar.expect(Behaviour.DROP)
    net.send(ua, ua.register(60), retransmit=False)
    net.settle(0.1)
    (sent,) = net.registrar.seen
    bad = ("SIP/2.0 200 OK\r\n" + "".join(f"Via: {v}\r\n" for v in sent.request.get_all("via"))
           + f"From: {sent.request.get('from')}\r\nTo: {sent.request.get('to')};tag=9\r\n"
           f"Call-ID: {sent.request.call_id}\r\nCSeq: 1 REGISTER\r\nContact: <sip:broken\r\n"
           "Content-Length: 0\r\n\r\n")
    net.inject(bad.encode(), net.registrar.endpoint)
    net.settle(0.1)
    assert ua.last_answer.response.status == 502
    assert net.core.stats().contacts == 0 and net.core.stats().internal_errors == 0


# -- Path (RFC 3327, §3.5) ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_common_path_is_stored_stripped_upstream_and_echoed(mode: Mode) -> None:
    net = make(mode=mode)
    ua = net.ua("alice", 5201)
    path = ["<sip:edge1.example.test;lr>", "<sip:edge2.example.test;lr>"]
    reply = net.register(ua, 60, path=path, supported=["path"]).response
    assert not net.registrar.relayed[0].request.has("path")
    assert reply.get_all("path") == path
    query = net.register(ua, None, query=True, supported=["path"]).response
    assert query.get_all("path") == path


def test_common_path_is_not_echoed_without_supported_path() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60, path=["<sip:edge1.example.test;lr>"]).response
    assert not reply.has("path")


def test_common_absorbed_refresh_echoes_its_path() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60, path=["<sip:edge1.example.test;lr>"], supported=["path"])
    net.advance(10.0)
    reply = net.register(ua, 60, path=["<sip:edge1.example.test;lr>"], supported=["path"]
                     ).response
    assert len(net.registrar.relayed) == 1 and reply.get_all("path") == [
        "<sip:edge1.example.test;lr>"]


# -- max_contacts (§4.5) -------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_common_max_contacts_without_force_refuses_the_extra_device(mode: Mode) -> None:
    net = make(mode=mode, max_contacts=1)
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    net.register(a, 60)
    reply = net.register(b, 60).response
    assert reply.status == 503 and reply.get("retry-after") == "60"
    assert len(net.registrar.relayed) == 1  # refused before it reached the main registrar
    assert contacts(net.register(a, 60).response) == [(a.contact_uri, "60")]


def test_common_max_contacts_with_force_evicts_the_oldest_and_deregisters_it() -> None:
    net = make(max_contacts=1, force_registration=True)
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    net.register(a, 60)
    net.advance(5.0)
    reply = net.register(b, 60).response
    assert contacts(reply) == [(b.contact_uri, "60")]
    (dereg,) = net.registrar.deregisters
    assert dereg.request.call_id == a.call_id  # mode 1: the evicted contact goes upstream too
    (binding,) = net.registrar.live(net.now)
    assert binding.uri.startswith("sip:alice@127.0.0.1:5060") and binding.call_id == b.call_id


@pytest.mark.parametrize("mode", [Mode.MIRROR, Mode.CONTACT_THROTTLING])
def test_common_max_contacts_with_force_evicts_the_lowest_q_first(mode: Mode) -> None:
    net = make(mode=mode, max_contacts=2, force_registration=True)
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    c = net.ua("alice", 5203)
    net.register(a, 60, q="0.9")  # the oldest, but preferred
    net.advance(5.0)
    net.register(b, 60, q="0.2")
    net.advance(10.0)
    reply = net.register(c, 60, q="0.5").response
    assert sorted(u for u, _ in contacts(reply)) == sorted([a.contact_uri, c.contact_uri])
    if mode is Mode.CONTACT_THROTTLING:
        (dereg,) = net.registrar.deregisters
        assert dereg.request.call_id == b.call_id


def test_common_max_contacts_with_force_equal_q_evicts_the_oldest() -> None:
    net = make(mode=Mode.AOR_THROTTLING, max_contacts=2, force_registration=True)
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    c = net.ua("alice", 5203)
    net.register(a, 60, q="0.5")
    net.advance(5.0)
    net.register(b, 60)  # no q: as 1.0
    net.advance(10.0)
    net.register(c, 60, q="0.5")
    reply = net.register(net.ua("alice", 5299), None, query=True).response
    assert sorted(u for u, _ in contacts(reply)) == sorted([b.contact_uri, c.contact_uri])


def test_common_max_contacts_with_force_keeps_the_device_that_registers() -> None:
    # the new device has the lowest q, but force_registration makes room for it: the least
    # preferred of the others goes
    net = make(mode=Mode.MIRROR, max_contacts=2, force_registration=True)
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    c = net.ua("alice", 5203)
    net.register(a, 60, q="1.0")
    net.register(b, 60, q="0.5")
    reply = net.register(c, 60, q="0.1").response
    assert sorted(u for u, _ in contacts(reply)) == sorted([a.contact_uri, c.contact_uri])


def test_common_max_contacts_with_force_in_aor_mode_keeps_the_aggregate() -> None:
    net = make(mode=Mode.AOR_THROTTLING, max_contacts=1, force_registration=True)
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    net.register(a, 60)
    net.advance(5.0)
    reply = net.register(b, 60).response
    assert contacts(reply) == [(b.contact_uri, "60")]
    assert net.registrar.deregisters == [] and len(net.registrar.live(net.now)) == 1


def test_common_max_aors_refuses_a_new_aor() -> None:
    net = make(max_aors=1)
    net.register(net.ua("alice", 5201), 60)
    reply = net.register(net.ua("bob", 5202), 60).response
    assert reply.status == 503


# -- statistics (DESIGN.md §5.6) -----------------------------------------------------------------------
def test_common_stats_snapshot_counts_every_outcome() -> None:
    net = make()
    a = net.ua("alice", 5201)
    b = net.ua("bob", 5202)
    net.register(a, 60)  # relayed
    net.register(b, 60)  # relayed
    net.advance(10.0)
    net.register(a, 60)  # absorbed
    net.register(a, None, query=True)  # query
    net.register(b, 3)  # 423
    net.advance(61.0)  # b (registered at 0.1 s) expires: de-REGISTER
    stats = net.core.stats()
    assert (stats.registers_received, stats.registers_relayed, stats.registers_absorbed) == (
        5, 2, 1)
    assert stats.queries_answered == 1 and stats.rejected_by_status == ((423, 1),)
    assert stats.deregisters_sent == 1 and stats.deregisters_failed == 0
    assert (stats.aors, stats.contacts) == (1, 1)
    assert stats.internal_errors == 0 and stats.drops == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.aors = 5  # type: ignore[misc]


def test_common_replies_to_tcp_go_back_on_the_same_flow() -> None:
    core = MidRegistrar(BASE, ids=SeededIds(1))
    flow = Endpoint(transport="tcp", host="127.0.0.1", port=40000, flow=7)
    actions = core.receive(raw(via="SIP/2.0/TCP 127.0.0.1:5201;branch=z9hG4bKt1",
                               query_marker=None, contact=None), flow, 0.0)
    (reply,) = [a for a in actions if isinstance(a, Reply)]
    assert reply.dest == flow


def test_common_reply_to_udp_without_rport_goes_to_the_via_port_with_received() -> None:
    core = MidRegistrar(BASE, ids=SeededIds(1))
    src = Endpoint(host="192.0.2.10", port=40000)
    actions = core.receive(raw(contact=None), src, 0.0)
    (reply,) = [a for a in actions if isinstance(a, Reply)]
    assert reply.dest == Endpoint(host="192.0.2.10", port=5201)
    assert response(reply.data).vias[0].received == "192.0.2.10"


def test_common_relayed_register_keeps_unknown_headers_and_request_uri() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60, extra_headers=[("X-Custom", "kept; as=is")],
             request_uri="sip:registrar.example.test")
    req = net.registrar.relayed[0].request
    assert req.get("x-custom") == "kept; as=is" and req.uri_text == "sip:registrar.example.test"
    assert request(net.upstream()[0]).get("x-custom") == "kept; as=is"


def test_common_upstream_uri_replaces_the_request_uri() -> None:
    net = make(upstream_uri="sip:main.example.test")
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    assert net.registrar.relayed[0].request.uri_text == "sip:main.example.test"
    net.advance(60.0)
    assert net.registrar.deregisters[0].request.uri_text == "sip:main.example.test"


def test_common_expired_contact_leaves_no_empty_aor() -> None:
    net = make(mode=Mode.MIRROR)
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(61.0)
    stats = net.core.stats()
    assert (stats.aors, stats.contacts) == (0, 0)
    assert contact_expires(net.register(ua, None, query=True).response, ua.contact_uri) is None
