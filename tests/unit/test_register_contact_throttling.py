# Contact throttling (OPENSIPS-BEHAVIOUR.md §1.2, mode 1), event by event, on the wire: every
# device keeps one upstream binding with a long outgoing_expires; refreshes inside the window are
# answered by us; a contact that stops refreshing is de-registered upstream by us (stored Call-ID,
# CSeq + 1, the Contact the main registrar returned, ;expires=0, retransmitted, failures counted).
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from sansmidreg import Config, Endpoint, Mode

if (_tests := str(Path(__file__).resolve().parents[1])) not in sys.path:
    sys.path.insert(0, _tests)  # tests/ holds the shared simulation harness, tests/sim

from sim import Behaviour, Network, SimUA
from sim.wire import contact_expires, contacts, request, response

BASE = Config(mode=Mode.CONTACT_THROTTLING, outgoing_expires=600, min_expires=5)
US = "127.0.0.1:5060"


def make(**overrides: Any) -> Network:
    return Network(dataclasses.replace(BASE, **overrides))



def registered(net: Network) -> tuple[SimUA, int]:
    """alice registered at t=0 for 60 s; returns her UA and her contact id upstream."""
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    (uri, _), = contacts(net.registrar.relayed[-1].request)
    ctid = int(uri.rsplit("ctid=", 1)[1])
    return ua, ctid


def keep_alive(net: Network, ua: SimUA, until: int, every: int = 50) -> None:
    """Refresh ``ua`` (60 s) every ``every`` seconds up to ``until`` (inside the window)."""
    for t in range(every, until + 1, every):
        net.advance(float(t))
        net.register(ua, 60)


# -- (a) first REGISTER ------------------------------------------------------------------------
def test_contact_throttling_first_register_is_relayed_with_outgoing_expires() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    (seen,) = net.registrar.relayed
    req = seen.request
    (uri, expires), = contacts(req)
    assert uri.startswith(f"sip:alice@{US};ctid=") and expires == "600"
    assert req.get("expires") == "600"  # the header is overridden too (§1.2 a)
    assert req.max_forwards == 69
    assert [v.sent_by for v in req.vias] == [US, "127.0.0.1:5201"]
    assert req.call_id == ua.call_id and req.cseq.seq == 1
    assert req.get("user-agent") == "sim-ua"  # what we do not interpret passes unchanged


def test_contact_throttling_first_register_2xx_gives_ua_its_own_lifetime() -> None:
    net = make()
    ua, _ = registered(net)
    reply = ua.last_answer.response
    assert reply.status == 200
    assert contacts(reply) == [(ua.contact_uri, "60")]
    assert not reply.has("expires")  # the main registrar's Expires never leaks (§5.4)
    assert reply.to.tag is not None and reply.to.tag.startswith("mr")  # its To tag is kept
    assert reply.get("server") == "sim-main-registrar"
    assert [v.sent_by for v in reply.vias] == ["127.0.0.1:5201"]  # our Via popped


def test_contact_throttling_2xx_local_lifetime_is_min_of_asked_and_granted() -> None:
    net = make()
    net.registrar.expect(Behaviour.SHORTEN)
    net.registrar.shorten_to = 40
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60).response
    assert contact_expires(reply, ua.contact_uri) == 40


def test_contact_throttling_foreign_contacts_of_the_main_registrar_never_leak() -> None:
    net = make()
    net.registrar.add_foreign("alice@example.test", "sip:alice@198.51.100.7:5060", 900, 0.0)
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60).response
    assert contacts(reply) == [(ua.contact_uri, "60")]


# -- (b) refresh inside the window ---------------------------------------------------------------
def test_contact_throttling_refresh_inside_window_is_absorbed() -> None:
    net = make()
    ua, _ = registered(net)
    first_tag = ua.last_answer.response.to.tag
    net.advance(30.0)
    reply = net.register(ua, 60).response
    assert len(net.registrar.seen) == 1  # nothing more went upstream
    assert reply.status == 200
    assert contacts(reply) == [(ua.contact_uri, "60")]
    assert reply.cseq.seq == 2 and reply.to.tag not in (None, first_tag)
    assert net.core.stats().registers_absorbed == 1


def test_contact_throttling_absorbed_refresh_moves_the_local_expiry() -> None:
    net = make()
    ua, _ = registered(net)
    net.advance(50.0)
    net.register(ua, 60)
    net.advance(100.0)  # past the first lifetime, inside the refreshed one
    query = net.ua("alice", 5299)
    reply = net.register(query, None, query=True).response
    assert contact_expires(reply, ua.contact_uri) == 10
    assert net.registrar.deregisters == []


def test_contact_throttling_refresh_at_window_edge_is_absorbed_just_before() -> None:
    # worked example §3.7: upstream 600 s, UA 60 s: absorbed while now + 60 < 600
    net = make()
    ua, _ = registered(net)
    for t in range(50, 540, 50):
        net.advance(float(t))
        net.register(ua, 60)
    net.advance(539.0)
    net.register(ua, 60)
    assert len(net.registrar.relayed) == 1
    net.advance(540.0)
    net.register(ua, 60)
    assert len(net.registrar.relayed) == 2


# -- (c) refresh outside the window --------------------------------------------------------------
def test_contact_throttling_refresh_outside_window_is_relayed_with_same_contact_id() -> None:
    net = make()
    ua, ctid = registered(net)
    for t in range(55, 600, 55):
        net.advance(float(t))
        net.register(ua, 60)
    relayed = net.registrar.relayed
    assert len(relayed) == 2 and relayed[1].at == 550.0
    (uri, expires), = contacts(relayed[1].request)
    assert uri == f"sip:alice@{US};ctid={ctid}" and expires == "600"
    assert relayed[1].request.cseq.seq == 11


def test_contact_throttling_relayed_refresh_renews_the_window() -> None:
    net = make()
    ua, _ = registered(net)
    for t in range(55, 1200, 55):
        net.advance(float(t))
        net.register(ua, 60)
    assert [s.at for s in net.registrar.relayed] == [0.0, 550.0, 1100.0]


def test_contact_throttling_relayed_refresh_when_asked_lifetime_grows_past_window() -> None:
    net = make()
    ua, _ = registered(net)
    net.advance(10.0)
    net.register(ua, 595)  # 10 + 595 >= 600: the upstream binding would expire first
    assert len(net.registrar.relayed) == 2


# -- (d) un-REGISTER -------------------------------------------------------------------------------
def test_contact_throttling_unregister_expires_param_zero_is_relayed() -> None:
    net = make()
    ua, ctid = registered(net)
    net.advance(10.0)
    reply = net.register(ua, 0, style="param").response
    seen = net.registrar.relayed[-1].request
    assert contacts(seen) == [(f"sip:alice@{US};ctid={ctid}", "0")]
    assert reply.status == 200 and contacts(reply) == []
    assert net.registrar.live(net.now) == []
    net.advance(1000.0)
    assert net.registrar.deregisters == []  # no duplicate de-REGISTER (noDR, §1.2 d)


def test_contact_throttling_unregister_expires_header_zero_is_relayed() -> None:
    net = make()
    ua, ctid = registered(net)
    net.advance(10.0)
    reply = net.register(ua, 0, style="header").response
    seen = net.registrar.relayed[-1].request
    assert contacts(seen) == [(f"sip:alice@{US};ctid={ctid}", "0")]
    assert seen.get("expires") == "0"
    assert contacts(reply) == []
    net.advance(1000.0)
    assert net.registrar.deregisters == [] and net.core.stats().contacts == 0


def test_contact_throttling_unregister_one_of_two_devices_keeps_the_other() -> None:
    net = make()
    a, _ = registered(net)
    b = net.ua("alice", 5202)
    net.register(b, 120)
    net.advance(10.0)
    reply = net.register(a, 0).response
    assert contacts(reply) == [(b.contact_uri, "110")]


def test_contact_throttling_star_is_relayed_unchanged_and_sends_no_redundant_deregisters() -> None:
    net = make()
    a, _ = registered(net)
    b = net.ua("alice", 5202)
    net.register(b, 120)
    net.advance(10.0)
    reply = net.register(a, 0, star=True).response
    seen = net.registrar.relayed[-1].request
    assert seen.get("contact") == "*" and seen.get("expires") == "0"
    assert reply.status == 200 and contacts(reply) == []
    net.advance(1000.0)
    assert net.registrar.deregisters == [] and net.core.stats().contacts == 0


# -- query -------------------------------------------------------------------------------------------
def test_contact_throttling_query_lists_bindings_without_going_upstream() -> None:
    net = make()
    a, _ = registered(net)
    b = net.ua("alice", 5202)
    net.register(b, 120)
    net.advance(20.0)
    reply = net.register(a, None, query=True).response
    assert sorted(contacts(reply)) == sorted([(a.contact_uri, "40"), (b.contact_uri, "100")])
    assert len(net.registrar.seen) == 2 and net.core.stats().queries_answered == 1


# -- (e) local expiry: our own de-REGISTER --------------------------------------------------------
def test_contact_throttling_local_expiry_sends_deregister_with_stored_dialog() -> None:
    net = make()
    ua, ctid = registered(net)
    net.advance(30.0)
    net.register(ua, 60)  # absorbed, CSeq 2: the de-REGISTER must follow it
    net.advance(89.999)
    assert net.registrar.deregisters == []
    net.advance(90.0)  # exact-time expiry (§5.6), no sweep
    (seen,) = net.registrar.deregisters
    assert seen.at == 90.0
    req = seen.request
    first = net.registrar.relayed[0].request
    assert req.uri_text == first.uri_text
    assert req.call_id == ua.call_id and req.cseq.seq == 3 and req.cseq.method == "REGISTER"
    assert str(req.from_.uri) == ua.aor_uri and req.from_.tag not in (None, ua.from_tag)
    assert str(req.to.uri) == ua.aor_uri and req.to.tag is None
    assert contacts(req) == [(f"sip:alice@{US};ctid={ctid}", "0")]
    assert not req.has("expires") and req.max_forwards == 70
    assert len(req.vias) == 1 and req.vias[0].sent_by == US
    assert net.registrar.live(net.now) == []
    assert net.core.stats().deregisters_sent == 1 and net.core.stats().contacts == 0


def test_contact_throttling_deregister_uses_the_contact_the_main_registrar_returned() -> None:
    net = make(contact_id_in_user=True)
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    (uri, _), = contacts(net.registrar.relayed[0].request)
    assert uri.startswith("sip:") and uri.split("@")[0][4:].isdigit()  # ct-username
    net.advance(60.0)
    (seen,) = net.registrar.deregisters
    assert contacts(seen.request) == [(uri, "0")]


def test_contact_throttling_deregister_uses_a_reformatted_contact_as_returned() -> None:
    net = make()
    net.registrar.echo = lambda uri: uri.replace("sip:alice@", "sip:%61lice@")  # same URI
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    (uri, _), = contacts(net.registrar.relayed[0].request)
    net.advance(60.0)
    (seen,) = net.registrar.deregisters
    assert contacts(seen.request) == [(uri.replace("sip:alice@", "sip:%61lice@"), "0")]
    assert net.registrar.live(net.now) == []


@pytest.mark.parametrize("overrides", [{"use_domain": True}, {"case_sensitive": False}])
def test_contact_throttling_deregister_keeps_the_exact_from_and_to(overrides: dict[str, Any]
                                                                   ) -> None:
    net = make(**overrides)
    ua = net.ua("Alice", 5201, domain="Example.TEST")
    net.register(ua, 60)
    net.advance(60.0)
    (seen,) = net.registrar.deregisters
    assert str(seen.request.to.uri) == "sip:Alice@Example.TEST"
    assert str(seen.request.from_.uri) == "sip:Alice@Example.TEST"


def test_contact_throttling_deregister_is_retransmitted_by_timer_e() -> None:
    net = make()
    registered(net)
    net.registrar.expect_deregister(Behaviour.DROP_FIRST)
    net.advance(61.0)
    data = [d for d in net.upstream() if len(request(d).vias) == 1]
    assert len(data) == 2 and data[0] == data[1]  # the same bytes again after T1
    assert net.registrar.live(net.now) == []
    stats = net.core.stats()
    assert stats.deregisters_failed == 0 and stats.retransmissions_sent >= 0


def test_contact_throttling_deregister_refused_is_counted() -> None:
    net = make()
    registered(net)
    net.registrar.expect_deregister(Behaviour.REJECT)
    net.advance(61.0)
    assert net.core.stats().deregisters_failed == 1
    assert any(d.reason == "deregister-failed" for d in net.drops)


def test_contact_throttling_deregister_timeout_is_counted_after_timer_f() -> None:
    net = make()
    registered(net)
    net.registrar.expect_deregister(Behaviour.DROP)
    net.advance(60.0 + 64 * 0.5 - 0.01)
    assert net.core.stats().deregisters_failed == 0
    net.advance(60.0 + 64 * 0.5)
    assert net.core.stats().deregisters_failed == 1
    sent = [d for d in net.upstream() if len(request(d).vias) == 1]
    assert len(sent) == 11  # first + timer E at 0.5, 1.5, 3.5, 7.5, 11.5 ... 31.5
    assert any(d.reason == "deregister-timeout" for d in net.drops)


def test_contact_throttling_compat_deregister_is_sent_once() -> None:
    net = make(compat="opensips")
    registered(net)
    net.registrar.expect_deregister(Behaviour.DROP)
    net.advance(200.0)
    sent = [d for d in net.upstream() if len(request(d).vias) == 1]
    assert len(sent) == 1


# -- (f) 2xx from the main registrar ----------------------------------------------------------------
def test_contact_throttling_shortened_upstream_lifetime_forwards_refreshes_earlier() -> None:
    net = make()
    net.registrar.expect(Behaviour.SHORTEN)
    net.registrar.shorten_to = 120
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(50.0)
    net.register(ua, 60)  # 50 + 60 < 120: absorbed
    assert len(net.registrar.relayed) == 1
    net.advance(100.0)
    net.register(ua, 60)  # 100 + 60 >= 120: relayed
    assert len(net.registrar.relayed) == 2


# -- (g) errors and timeouts -----------------------------------------------------------------------
def test_contact_throttling_error_is_relayed_without_local_change() -> None:
    net = make()
    ua, _ = registered(net)
    keep_alive(net, ua, 500)
    net.advance(545.0)
    net.registrar.expect(Behaviour.REJECT)
    reply = net.register(ua, 60).response
    assert reply.status == 500
    assert net.core.stats().relayed_failed == 1
    query = net.register(net.ua("alice", 5299), None, query=True).response
    assert contact_expires(query, ua.contact_uri) == 15  # the old local lifetime stands
    net.advance(550.0)
    net.register(ua, 60)  # the window did not move: relayed again
    assert len(net.registrar.relayed) == 3


def test_contact_throttling_timeout_gives_408_without_local_change() -> None:
    net = make()
    ua, _ = registered(net)
    keep_alive(net, ua, 500)
    net.advance(530.0)
    net.register(ua, 60)  # absorbed: lives until 590
    net.advance(545.0)
    net.registrar.expect(Behaviour.DROP)
    net.send(ua, ua.register(60))
    net.advance(545.0 + 32.0)
    reply = ua.last_answer.response
    assert reply.status == 408 and reply.cseq.seq == 13
    stats = net.core.stats()
    assert stats.relayed_timeouts == 1 and stats.retransmissions_absorbed >= 1
    query = net.register(net.ua("alice", 5299), None, query=True).response
    assert contact_expires(query, ua.contact_uri) == 13
    net.advance(590.0)  # nothing renewed it: it expires, and we de-register it upstream
    assert net.core.stats().contacts == 0 and len(net.registrar.deregisters) == 1


# -- (h) 401/407 ------------------------------------------------------------------------------------
def test_contact_throttling_challenge_then_authenticated_retry_is_relayed() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.registrar.expect(Behaviour.CHALLENGE)
    net.register(ua, 60)
    statuses = [a.response.status for a in ua.answers]
    assert statuses == [401, 200]
    first, retry = net.registrar.relayed
    assert first.status == 401 and retry.status == 200
    assert retry.request.has("authorization") and retry.request.cseq.seq == 2
    assert ua.answers[0].response.has("www-authenticate")


def test_contact_throttling_challenged_refresh_does_not_move_the_window() -> None:
    net = make()
    ua, _ = registered(net)
    keep_alive(net, ua, 500)
    ua.auto_auth = False
    net.advance(550.0)
    net.registrar.expect(Behaviour.CHALLENGE)
    assert net.register(ua, 60).response.status == 401
    net.advance(551.0)
    net.register(ua, 60)  # only a 2xx moves the window: relayed again
    assert len(net.registrar.relayed) == 3


# -- CSeq, sources, devices ---------------------------------------------------------------------------
def test_contact_throttling_lower_cseq_on_absorb_path_is_rejected_400() -> None:
    net = make()
    ua, _ = registered(net)
    net.advance(10.0)
    net.register(ua, 60, cseq=5)
    reply = net.register(ua, 60, cseq=3).response
    assert reply.status == 400 and reply.reason == "Invalid CSeq number"
    assert net.core.stats().rejected_by_status == ((400, 1),)


def test_contact_throttling_new_call_id_skips_the_cseq_check() -> None:
    net = make()
    ua, _ = registered(net)
    net.advance(10.0)
    net.register(ua, 60, cseq=9)
    ua.restart("rebooted@127.0.0.1")
    assert net.register(ua, 60).response.status == 200
    assert len(net.registrar.relayed) == 1


def test_contact_throttling_absorbed_cseq_is_followed_by_the_deregister() -> None:
    net = make()
    ua, _ = registered(net)
    net.advance(10.0)
    net.register(ua, 60, cseq=41)
    net.advance(80.0)
    assert net.registrar.deregisters[0].request.cseq.seq == 42


def test_contact_throttling_new_device_of_known_aor_is_relayed() -> None:
    net = make()
    registered(net)
    b = net.ua("alice", 5202)
    net.advance(5.0)
    reply = net.register(b, 120).response
    assert len(net.registrar.relayed) == 2
    assert len(contacts(reply)) == 2  # both devices listed, each with its own lifetime
    assert contact_expires(reply, b.contact_uri) == 120


def test_contact_throttling_refresh_from_another_source_is_relayed() -> None:
    net = make()
    ua, _ = registered(net)
    moved = net.ua("alice", 5301, contact_user="alice", call_id=ua.call_id)
    moved.cseq = ua.cseq
    net.advance(10.0)
    net.register(moved, 60, contacts=[f"<{ua.contact_uri}>"])
    assert len(net.registrar.relayed) == 2  # §5.2: absorbed only from the pinned source


def test_contact_throttling_compat_refresh_from_another_source_is_absorbed() -> None:
    net = make(compat="opensips")
    ua, _ = registered(net)
    moved = net.ua("alice", 5301, call_id=ua.call_id)
    moved.cseq = ua.cseq
    net.advance(10.0)
    net.register(moved, 60, contacts=[f"<{ua.contact_uri}>"])
    assert len(net.registrar.relayed) == 1


def test_contact_throttling_request_with_new_and_known_contact_is_relayed_whole() -> None:
    net = make()
    ua, ctid = registered(net)
    net.advance(10.0)
    net.register(ua, 60, contacts=[f"<{ua.contact_uri}>", "<sip:alice@127.0.0.1:5209>"])
    seen = net.registrar.relayed[-1].request
    uris = [u for u, _ in contacts(seen)]
    assert len(uris) == 2 and uris[0] == f"sip:alice@{US};ctid={ctid}"


def test_contact_throttling_tcp_device_contact_upstream_has_no_transport_param() -> None:
    net = make()
    ua = net.ua("bob", 5401, transport="tcp")
    reply = net.register(ua, 60).response
    assert reply.status == 200
    (uri, _), = contacts(net.registrar.relayed[0].request)
    assert "transport" not in uri  # the main registrar reaches us over our UDP address


def test_contact_throttling_reply_goes_to_rport_source() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.send(ua, ua.register(60))
    net.settle(0.1)
    first = net.sent_to(ua)[0]
    assert response(first).vias[0].rport == "5201"
    assert net.core.stats().internal_errors == 0
    assert Endpoint(host="127.0.0.1", port=5201) == ua.endpoint
