"""Lookup of requests toward registered devices (OPENSIPS-BEHAVIOUR.md §1.1 i, §1.3 i) and the
NAT policy choosing where each branch goes (DESIGN.md §4)."""
from __future__ import annotations

import pytest
from _forking_support import UPSTREAM, Harness, branches, drops, invite, parse_request, replies, statuses

from sansmidreg import Endpoint, Mode, SendRequest
from sansmidreg._lookup import is_shared_range, uri_dest
from sansmidreg.sip import Uri

PHONE1 = Endpoint(host="127.0.0.1", port=5251)
PHONE2 = Endpoint(host="127.0.0.1", port=5252)
AGG = "sip:bob@127.0.0.1:5060"


def dests(h: Harness, uri: str, **kwargs: object) -> list[Endpoint]:
    return [b.dest for b in branches(h.send(invite(uri, **kwargs)))]  # type: ignore[arg-type]


# -- contact id (mirror, contact throttling) ----------------------------------------------------
@pytest.mark.parametrize("mode", [Mode.MIRROR, Mode.CONTACT_THROTTLING])
def test_ctid_param_resolves_to_exactly_one_device(mode: Mode) -> None:
    h = Harness.create(mode=mode)
    h.register("<sip:bob@127.0.0.1:5201>", PHONE1)
    d2 = h.register("<sip:bob@127.0.0.1:5202>", PHONE2)
    (b,) = branches(h.send(invite(d2.uri)))
    assert b.dest == Endpoint(host="127.0.0.1", port=5202)  # the Contact, not the REGISTER port
    assert parse_request(b.data).uri_text == "sip:bob@127.0.0.1:5202"


def test_ctid_in_user_part() -> None:
    h = Harness.create(contact_id_in_user=True)
    d = h.register("<sip:bob@127.0.0.1:5201>", PHONE1)
    assert dests(h, f"sip:{d.ctid}@127.0.0.1:5060") == [Endpoint(host="127.0.0.1", port=5201)]


def test_unknown_contact_id_gets_404() -> None:
    h = Harness.create()
    h.register("<sip:bob@127.0.0.1:5201>", PHONE1)
    assert statuses(h.send(invite("sip:bob@127.0.0.1:5060;ctid=12345"))) == [404]
    assert statuses(h.send(invite("sip:bob@127.0.0.1:5060", branch="z9hG4bKx"))) == [404]


def test_expired_contact_gets_404() -> None:
    h = Harness.create()
    d = h.register("<sip:bob@127.0.0.1:5201>", PHONE1, expires=60)
    h.advance(60.5)
    assert statuses(h.send(invite(d.uri))) == [404]


def test_non_sip_request_uri_gets_416() -> None:
    h = Harness.create()
    assert statuses(h.send(invite("tel:+15551234"))) == [416]


# -- aggregate contact (AOR throttling) ------------------------------------------------------------
def test_aor_aggregate_forks_to_every_live_contact() -> None:
    h = Harness.create(mode=Mode.AOR_THROTTLING)
    h.register("<sip:bob@127.0.0.1:5201>", PHONE1)
    h.register("<sip:bob@127.0.0.1:5202>", PHONE2)
    assert sorted(d.port for d in dests(h, AGG)) == [5201, 5202]


def test_aor_aggregate_with_domain_is_decoded() -> None:
    h = Harness.create(mode=Mode.AOR_THROTTLING, use_domain=True)
    d = h.register("<sip:bob@127.0.0.1:5201>", PHONE1)
    assert "bob%40example.test@" in d.aggregate
    assert dests(h, d.aggregate) == [Endpoint(host="127.0.0.1", port=5201)]


def test_unknown_aor_gets_404() -> None:
    h = Harness.create(mode=Mode.AOR_THROTTLING)
    h.register("<sip:bob@127.0.0.1:5201>", PHONE1)
    assert statuses(h.send(invite("sip:alice@127.0.0.1:5060"))) == [404]


def test_known_aor_without_live_contact_gets_480() -> None:
    h = Harness.create(mode=Mode.AOR_THROTTLING)
    register = (b"REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5251;branch=z9hG4bKp\r\n"
                b"From: <sip:bob@example.test>;tag=1\r\nTo: <sip:bob@example.test>\r\n"
                b"Call-ID: p\r\nCSeq: 1 REGISTER\r\nContact: <sip:bob@127.0.0.1:5201>\r\n"
                b"Content-Length: 0\r\n\r\n")
    h.send(register, PHONE1)  # relayed, not answered yet: the AOR exists without contacts
    assert statuses(h.send(invite(AGG))) == [480]


def test_contacts_are_filtered_by_their_methods() -> None:
    h = Harness.create(mode=Mode.AOR_THROTTLING)
    h.register('<sip:bob@127.0.0.1:5201>;methods="INVITE,ACK,CANCEL,BYE"', PHONE1)
    h.register("<sip:bob@127.0.0.1:5202>", PHONE2)
    assert [d.port for d in dests(h, AGG, method="MESSAGE")] == [5202]
    assert len(dests(h, AGG, branch="z9hG4bKi")) == 2


def test_no_contact_accepting_the_method_gets_405() -> None:
    h = Harness.create(mode=Mode.AOR_THROTTLING)
    h.register('<sip:bob@127.0.0.1:5201>;methods="INVITE,BYE"', PHONE1)
    (resp,) = replies(h.send(invite(AGG, method="MESSAGE")))
    assert resp.status == 405 and resp.get("allow") == "BYE, INVITE"


def test_branches_ordered_by_q_then_most_recent_registration() -> None:
    h = Harness.create(mode=Mode.AOR_THROTTLING)
    for port, q in ((5201, "0.5"), (5202, "1.0"), (5203, "0.5"), (5204, None)):
        contact = f"<sip:bob@127.0.0.1:{port}>" + (f";q={q}" if q else "")
        h.register(contact, Endpoint(host="127.0.0.1", port=port + 50))
        h.now += 1
    assert [d.port for d in dests(h, AGG)] == [5204, 5202, 5203, 5201]


# -- trust -------------------------------------------------------------------------------------
def test_untrusted_source_gets_403() -> None:
    h = Harness.create()
    d = h.register("<sip:bob@127.0.0.1:5201>", PHONE1)
    stranger = Endpoint(host="198.51.100.7", port=5060)
    assert statuses(h.send(invite(d.uri), stranger)) == [403]
    assert h.core.stats().requests_forked == 0


def test_untrusted_source_dropped_when_configured() -> None:
    h = Harness.create(untrusted="drop")
    d = h.register("<sip:bob@127.0.0.1:5201>", PHONE1)
    assert drops(h.send(invite(d.uri), Endpoint(host="198.51.100.7", port=5060))) == ["untrusted"]


def test_configured_trusted_source_is_accepted() -> None:
    h = Harness.create(trusted=("192.0.2.10",))
    d = h.register("<sip:bob@127.0.0.1:5201>", PHONE1)
    assert len(branches(h.send(invite(d.uri), Endpoint(host="192.0.2.10", port=5060)))) == 1


# -- NAT policy ----------------------------------------------------------------------------------
NATTED = Endpoint(host="203.0.113.5", port=40000)


@pytest.mark.parametrize(("contact", "source", "expected"), [
    ("<sip:bob@192.168.1.10:5060>", NATTED, NATTED),  # RFC 1918 behind another address
    ("<sip:bob@100.64.7.1:5060>", NATTED, NATTED),  # RFC 6598 shared range
    ("<sip:bob@10.0.0.5>", Endpoint(host="10.0.0.5", port=5070),
     Endpoint(host="10.0.0.5", port=5060)),  # private but sent from itself: the Contact
    ("<sip:bob@198.51.100.20:5062>", NATTED, Endpoint(host="198.51.100.20", port=5062)),
    ("<sip:bob@198.51.100.20;ob>", NATTED, NATTED),  # RFC 5626 outbound
    ('<sip:bob@198.51.100.20>;+sip.instance="<urn:uuid:1>";reg-id=1', NATTED, NATTED),
])
def test_nat_detect(contact: str, source: Endpoint, expected: Endpoint) -> None:
    h = Harness.create(trusted=())
    d = h.register(contact, source)
    assert dests(h, d.uri) == [expected]


def test_tcp_registration_reuses_its_connection() -> None:
    h = Harness.create()
    flow = Endpoint(transport="tcp", host="127.0.0.1", port=40001, flow=7)
    d = h.register("<sip:bob@127.0.0.1:5201;transport=tcp>", flow, transport="TCP")
    assert dests(h, d.uri) == [flow]


@pytest.mark.parametrize(("policy", "expected"), [
    ("never", Endpoint(host="192.168.1.10", port=5060)), ("always", NATTED)])
def test_nat_policy_never_and_always(policy: str, expected: Endpoint) -> None:
    h = Harness.create(nat=policy)
    d = h.register("<sip:bob@192.168.1.10:5060>", NATTED)
    assert dests(h, d.uri) == [expected]
    h2 = Harness.create(nat=policy)
    d2 = h2.register("<sip:bob@127.0.0.1:5201>", PHONE1)
    assert dests(h2, d2.uri) == [PHONE1 if policy == "always" else
                                 Endpoint(host="127.0.0.1", port=5201)]


def test_stored_path_becomes_the_route_set() -> None:
    h = Harness.create()
    d = h.register("<sip:bob@192.168.1.10:5060>", Endpoint(host="192.0.2.30", port=5070),
                   extra=[("Path", "<sip:edge.example.test:5070;lr>"), ("Supported", "path")])
    (b,) = branches(h.send(invite(d.uri)))
    assert b.dest == Endpoint(host="edge.example.test", port=5070)
    assert parse_request(b.data).get_all("route") == ["<sip:edge.example.test:5070;lr>"]


def test_natted_device_in_dialog_requests_follow_its_flow() -> None:
    h = Harness.create()
    d = h.register("<sip:bob@192.168.1.10:5060>", NATTED)
    (b,) = branches(h.send(invite(d.uri)))
    rr = parse_request(b.data).get_all("record-route")[0]
    assert rr == f"<sip:127.0.0.1:5060;lr;ctid={d.ctid}>"
    bye = invite("sip:bob@192.168.1.10:5060", method="BYE", branch="z9hG4bKb2", cseq=2,
                 to_tag="a", extra=[("Route", rr)])
    (out,) = [a for a in h.send(bye) if isinstance(a, SendRequest)]
    assert out.dest == NATTED


def test_double_record_route_when_the_device_uses_another_transport() -> None:
    h = Harness.create()
    flow = Endpoint(transport="tcp", host="127.0.0.1", port=40001, flow=7)
    d = h.register("<sip:bob@127.0.0.1:5201;transport=tcp>", flow, transport="TCP")
    (b,) = branches(h.send(invite(d.uri)))
    assert parse_request(b.data).get_all("record-route")[:2] == [
        f"<sip:127.0.0.1:5060;transport=tcp;lr;ctid={d.ctid}>", "<sip:127.0.0.1:5060;lr>"]
    assert b.data.startswith(b"INVITE sip:bob@127.0.0.1:5201;transport=tcp ")
    assert UPSTREAM.transport == "udp"


# -- helpers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("host", "shared"), [
    ("10.1.2.3", True), ("172.20.0.1", True), ("192.168.0.1", True), ("100.64.0.1", True),
    ("100.128.0.1", False), ("8.8.8.8", False), ("127.0.0.1", False), ("fd00::1", True),
    ("2001:db8::1", False), ("phone.example.test", False)])
def test_shared_ranges(host: str, shared: bool) -> None:
    assert is_shared_range(host) is shared


def test_uri_destinations() -> None:
    assert uri_dest(Uri.parse("sip:a@h")) == Endpoint(host="h", port=5060)
    assert uri_dest(Uri.parse("sips:a@h")) == Endpoint(transport="tls", host="h", port=5061)
    assert uri_dest(Uri.parse("sip:a@h:5080;transport=TCP")) == Endpoint(
        transport="tcp", host="h", port=5080)
    assert uri_dest(Uri.parse("tel:+1555")) is None
