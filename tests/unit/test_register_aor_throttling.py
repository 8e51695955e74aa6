# AOR throttling (OPENSIPS-BEHAVIOUR.md §1.3, mode 2), event by event, on the wire: the main
# registrar sees ONE aggregate binding per AOR (`<sip:alice@us>`, with use_domain
# `<sip:alice%40example.test@us>`); we keep every device. With the DESIGN.md §5 policies
# (conservative window, new devices relayed, Expires never leaked) and their compat=opensips
# variants (max-diff window, new devices absorbed, the main registrar's Expires left in 2xx).
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from sansmidreg import Config, Mode

if (_tests := str(Path(__file__).resolve().parents[1])) not in sys.path:
    sys.path.insert(0, _tests)  # tests/ holds the shared simulation harness, tests/sim

from sim import Behaviour, Network, SimUA
from sim.wire import contact_expires, contacts

BASE = Config(mode=Mode.AOR_THROTTLING, outgoing_expires=600, min_expires=5)
US = "127.0.0.1:5060"
AGG = f"sip:alice@{US}"


def make(**overrides: Any) -> Network:
    return Network(dataclasses.replace(BASE, **overrides))



def two_devices(net: Network, a_expires: int = 60, b_expires: int = 120) -> tuple[SimUA, SimUA]:
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    net.register(a, a_expires)
    net.register(b, b_expires)
    return a, b


# -- (a) first REGISTER ------------------------------------------------------------------------
def test_aor_throttling_first_register_relays_one_aggregate_contact() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60).response
    (seen,) = net.registrar.relayed
    # with an Expires header, the aggregate carries no ;expires and the header says 600 (§1.3 a)
    assert contacts(seen.request) == [(AGG, None)]
    assert seen.request.get("expires") == "600"
    assert seen.request.max_forwards == 69
    assert contacts(reply) == [(ua.contact_uri, "60")]
    assert not reply.has("expires")


def test_aor_throttling_first_register_without_expires_header_puts_it_on_the_contact() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60, style="param")
    (seen,) = net.registrar.relayed
    assert contacts(seen.request) == [(AGG, "600")]
    assert not seen.request.has("expires")


def test_aor_throttling_aggregate_contact_with_use_domain_escapes_the_at() -> None:
    net = make(use_domain=True)
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    (uri, _), = contacts(net.registrar.relayed[0].request)
    assert uri == f"sip:alice%40example.test@{US}"


def test_aor_throttling_aggregate_contact_with_custom_at_escape() -> None:
    net = make(use_domain=True, at_escape="-at-")
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60).response
    (uri, _), = contacts(net.registrar.relayed[0].request)
    assert uri == f"sip:alice-at-example.test@{US}"
    assert contacts(reply) == [(ua.contact_uri, "60")]  # the 2xx found its aggregate


def test_aor_throttling_several_contacts_become_one_aggregate() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60, contacts=[f"<{ua.contact_uri}>", "<sip:alice@127.0.0.1:5209>"]
                     ).response
    assert contacts(net.registrar.relayed[0].request) == [(AGG, None)]
    assert len(contacts(reply)) == 2


# -- (f) 2xx --------------------------------------------------------------------------------------
def test_aor_throttling_2xx_local_lifetime_is_min_of_asked_and_granted() -> None:
    net = make()
    net.registrar.expect(Behaviour.SHORTEN)
    net.registrar.shorten_to = 45
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60).response
    assert contacts(reply) == [(ua.contact_uri, "45")]


def test_aor_throttling_2xx_strips_main_registrar_expires_and_foreign_contacts() -> None:
    net = make()
    net.registrar.add_foreign("alice@example.test", "sip:alice@198.51.100.7:5060", 900, 0.0)
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60).response
    assert contacts(reply) == [(ua.contact_uri, "60")]
    assert not reply.has("expires")


def test_aor_throttling_compat_2xx_keeps_main_registrar_expires_header() -> None:
    # OpenSIPS leaves MainReg's Expires in mode 2 (issues #1845, #2680); compat replays that
    net = make(compat="opensips")
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60).response
    assert reply.get("expires") == "3600"
    assert contacts(reply) == [(ua.contact_uri, "60")]


def test_aor_throttling_2xx_lists_every_live_device() -> None:
    net = make()
    a, b = two_devices(net)
    net.advance(10.0)
    reply = net.register(a, 60).response
    assert sorted(contacts(reply)) == sorted([(a.contact_uri, "60"), (b.contact_uri, "110")])


# -- (b) refresh inside / (c) outside the window ------------------------------------------------------
def test_aor_throttling_refresh_inside_window_is_absorbed() -> None:
    net = make()
    a, b = two_devices(net)
    net.advance(30.0)
    reply = net.register(a, 60).response
    assert len(net.registrar.relayed) == 2
    assert sorted(contacts(reply)) == sorted([(a.contact_uri, "60"), (b.contact_uri, "90")])
    assert net.core.stats().registers_absorbed == 1


def test_aor_throttling_refresh_outside_window_is_relayed() -> None:
    net = make()
    a = net.ua("alice", 5201)
    net.register(a, 60)
    for t in range(50, 600, 50):
        net.advance(float(t))
        net.register(a, 60)
    relayed = net.registrar.relayed
    assert [s.at for s in relayed] == [0.0, 550.0]  # 550 + 60 >= 600
    assert contacts(relayed[1].request) == [(AGG, None)]


def test_aor_throttling_new_device_is_relayed() -> None:
    # DESIGN.md §5.2: a device unknown to us is authenticated upstream
    net = make()
    a = net.ua("alice", 5201)
    net.register(a, 60)
    b = net.ua("alice", 5202)
    net.advance(5.0)
    net.registrar.expect(Behaviour.CHALLENGE)
    reply = net.register(b, 60).response
    assert [x.response.status for x in b.answers] == [401, 200]
    assert len(net.registrar.relayed) == 3
    assert contact_expires(reply, b.contact_uri) == 60


def test_aor_throttling_compat_new_device_is_absorbed() -> None:
    # OpenSIPS absorbs a new device without the main registrar seeing it (#2536, #3193)
    net = make(compat="opensips")
    a = net.ua("alice", 5201)
    net.register(a, 60)
    b = net.ua("alice", 5202)
    net.advance(5.0)
    reply = net.register(b, 60).response
    assert len(net.registrar.relayed) == 1
    assert contact_expires(reply, b.contact_uri) == 60


def test_aor_throttling_conservative_window_forwards_when_any_contact_would_outlive() -> None:
    # A 60 s, B 500 s, upstream 600 s at t=0; at t=200 B's refresh would end at 700 > 600
    net = make()
    a, b = two_devices(net, 60, 500)
    for t in (50.0, 100.0, 150.0, 199.0):
        net.advance(t)
        net.register(a, 60)  # absorbed: A stays well inside the window
    net.advance(200.0)
    net.register(b, 500)
    assert len(net.registrar.relayed) == 3 and net.registrar.relayed[-1].at == 200.0


def test_aor_throttling_compat_max_diff_window_absorbs_and_can_outlive_upstream() -> None:
    # OpenSIPS forwards iff LRTs + max(expO - exp) <= now: max diff 540 (A) -> absorbed at 200;
    # B is then cut to min(500, expO) = 500 s and outlives the upstream binding (issue #2368)
    net = make(compat="opensips")
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    net.register(a, 60)
    net.register(b, 500)  # absorbed: a new device (compat)
    for t in (50.0, 100.0, 150.0, 199.0):
        net.advance(t)
        net.register(a, 60)
    net.advance(200.0)
    reply = net.register(b, 500).response
    assert len(net.registrar.relayed) == 1
    assert contact_expires(reply, b.contact_uri) == 500
    (binding,) = net.registrar.live(net.now)
    assert binding.expires_at == 600.0 < 200.0 + 500  # the defect the policy avoids


# -- (d) un-REGISTER -------------------------------------------------------------------------------
def test_aor_throttling_unregister_of_non_last_contact_is_absorbed() -> None:
    net = make()
    a, b = two_devices(net)
    net.advance(10.0)
    reply = net.register(a, 0).response
    assert len(net.registrar.relayed) == 2
    assert contacts(reply) == [(b.contact_uri, "110")]
    assert len(net.registrar.live(net.now)) == 1  # the aggregate stays


def test_aor_throttling_unregister_of_last_contact_is_relayed_with_expires_zero() -> None:
    net = make()
    a = net.ua("alice", 5201)
    net.register(a, 60)
    net.advance(10.0)
    reply = net.register(a, 0, style="param").response
    seen = net.registrar.relayed[-1].request
    assert contacts(seen) == [(AGG, "0")]
    assert contacts(reply) == []
    assert net.registrar.live(net.now) == []
    net.advance(1000.0)
    assert net.registrar.deregisters == []  # no extra de-REGISTER for the aggregate


def test_aor_throttling_unregister_header_zero_of_last_contact_sets_expires_header_zero() -> None:
    net = make()
    a = net.ua("alice", 5201)
    net.register(a, 60)
    net.advance(10.0)
    net.register(a, 0, style="header")
    seen = net.registrar.relayed[-1].request
    assert contacts(seen) == [(AGG, None)] and seen.get("expires") == "0"
    assert net.registrar.live(net.now) == []


def test_aor_throttling_unregister_of_all_of_two_contacts_is_relayed() -> None:
    # commit 502f1ab662 (#2615): removing all of 2+ contacts goes upstream
    net = make()
    a, b = two_devices(net)
    net.advance(10.0)
    reply = net.register(a, 0, contacts=[f"<{a.contact_uri}>", f"<{b.contact_uri}>"]).response
    assert len(net.registrar.relayed) == 3
    assert contacts(reply) == [] and net.registrar.live(net.now) == []


def test_aor_throttling_star_is_relayed_and_clears_every_device() -> None:
    net = make()
    a, _ = two_devices(net)
    net.advance(10.0)
    reply = net.register(a, 0, star=True).response
    seen = net.registrar.relayed[-1].request
    assert seen.get("contact") == "*"
    assert contacts(reply) == []
    net.advance(1000.0)
    assert net.registrar.deregisters == [] and net.core.stats().contacts == 0


# -- query ---------------------------------------------------------------------------------------------
def test_aor_throttling_query_lists_every_device() -> None:
    net = make()
    a, b = two_devices(net)
    net.advance(5.0)
    reply = net.register(net.ua("alice", 5299), None, query=True).response
    assert sorted(contacts(reply)) == sorted([(a.contact_uri, "55"), (b.contact_uri, "115")])
    assert len(net.registrar.seen) == 2


# -- (e) local expiry -----------------------------------------------------------------------------------
def test_aor_throttling_expiry_of_non_last_contact_sends_nothing() -> None:
    net = make()
    two_devices(net)
    net.advance(61.0)
    assert net.registrar.deregisters == []
    assert net.core.stats().contacts == 1


def test_aor_throttling_expiry_of_last_contact_deregisters_the_aggregate() -> None:
    net = make()
    _, b = two_devices(net)
    net.advance(30.0)
    net.register(b, 120, cseq=7)  # absorbed; B's Call-ID was the last relayed one
    net.advance(149.999)
    assert net.registrar.deregisters == []
    net.advance(150.0)
    (seen,) = net.registrar.deregisters
    req = seen.request
    assert seen.at == 150.0
    assert contacts(req) == [(AGG, "0")]
    assert req.call_id == b.call_id and req.cseq.seq == 8
    assert req.from_.tag != b.from_tag and req.to.tag is None and not req.has("expires")
    assert net.registrar.live(net.now) == [] and net.core.stats().aors == 0


def test_aor_throttling_deregister_failure_is_counted() -> None:
    net = make()
    a = net.ua("alice", 5201)
    net.register(a, 60)
    net.registrar.expect_deregister(Behaviour.FORBIDDEN)
    net.advance(60.0)
    assert net.core.stats().deregisters_failed == 1


# -- (g) errors, (h) challenges ------------------------------------------------------------------------
def test_aor_throttling_error_is_relayed_without_local_change() -> None:
    net = make()
    a, b = two_devices(net)
    c = net.ua("alice", 5203)
    net.registrar.expect(Behaviour.FORBIDDEN)
    assert net.register(c, 60).response.status == 403
    reply = net.register(net.ua("alice", 5299), None, query=True).response
    assert sorted(u for u, _ in contacts(reply)) == sorted([a.contact_uri, b.contact_uri])


def test_aor_throttling_timeout_gives_408_without_local_change() -> None:
    net = make()
    two_devices(net)
    c = net.ua("alice", 5203)
    net.registrar.expect(Behaviour.DROP)
    net.send(c, c.register(60))
    net.advance(40.0)
    assert c.last_answer.response.status == 408
    assert net.core.stats().contacts == 2


def test_aor_throttling_challenged_refresh_keeps_the_window_until_2xx() -> None:
    net = make()
    a = net.ua("alice", 5201, auto_auth=False)
    net.register(a, 60)
    for t in range(50, 550, 50):
        net.advance(float(t))
        net.register(a, 60)
    net.advance(550.0)
    net.registrar.expect(Behaviour.CHALLENGE)
    assert net.register(a, 60).response.status == 401
    net.advance(551.0)
    assert net.register(a, 60).response.status == 200
    assert len(net.registrar.relayed) == 3


def test_aor_throttling_shortened_aggregate_forwards_refreshes_earlier() -> None:
    net = make()
    net.registrar.expect(Behaviour.SHORTEN)
    net.registrar.shorten_to = 100
    a = net.ua("alice", 5201)
    net.register(a, 60)
    net.advance(30.0)
    net.register(a, 60)  # 30 + 60 < 100: absorbed
    net.advance(45.0)
    net.register(a, 60)  # 45 + 60 >= 100: relayed
    assert [s.at for s in net.registrar.relayed] == [0.0, 45.0]


def test_aor_throttling_shortened_aggregate_cuts_every_device_to_it() -> None:
    # DESIGN.md §5.1: no local contact outlives its upstream binding, even when a later 2xx
    # grants the aggregate less than the devices registered earlier were given
    net = make()
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    net.register(a, 300)
    net.advance(10.0)
    net.registrar.expect(Behaviour.SHORTEN)
    net.registrar.shorten_to = 45
    reply = net.register(b, 120).response  # a new device: relayed, aggregate now until 55
    assert sorted(contacts(reply)) == sorted([(a.contact_uri, "45"), (b.contact_uri, "45")])
    net.advance(55.0)
    assert net.core.stats().contacts == 0 and net.registrar.live(net.now) == []
    assert net.registrar.deregisters == []  # the aggregate ran out by itself


def test_aor_throttling_compat_shortened_aggregate_leaves_other_devices_alone() -> None:
    net = make(compat="opensips")
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    net.register(a, 60)  # relayed: aggregate until 600
    for t in range(50, 550, 50):
        net.advance(float(t))
        net.register(a if t != 100 else b, 60 if t != 100 else 500)  # B absorbed: until 600
    net.advance(545.0)
    net.registrar.expect(Behaviour.SHORTEN)
    net.registrar.shorten_to = 45
    net.register(a, 60)  # LRTs + max diff (540) <= 545: relayed, aggregate until 590
    assert len(net.registrar.relayed) == 2
    reply = net.register(net.ua("alice", 5299), None, query=True).response
    assert contact_expires(reply, b.contact_uri) == 55  # B keeps its 600: past the aggregate


def _register_while_our_deregister_is_lost(*, challenged: bool) -> tuple[Network, SimUA]:
    """alice's only device expires at 60.0 and the first copy of our de-REGISTER is lost; a new
    device registers (answered 401 when ``challenged``) before timer E would resend it."""
    net = make()
    a = net.ua("alice", 5201)
    net.register(a, 60)
    net.registrar.expect_deregister(Behaviour.DROP_FIRST)
    net.advance(60.05)  # a expired at 60.0: de-REGISTER sent, lost
    b = net.ua("alice", 5202, auto_auth=not challenged)
    if challenged:
        net.registrar.expect(Behaviour.CHALLENGE)
    net.send(b, b.register(60))
    net.advance(70.0)  # past the retransmission it would have had at 60.5
    return net, b


def test_aor_throttling_register_while_our_deregister_is_retransmitted_keeps_the_binding() -> None:
    # the resend must not remove the aggregate the new device just renewed
    net, _ = _register_while_our_deregister_is_lost(challenged=False)
    assert len(net.registrar.deregisters) == 1
    (binding,) = net.registrar.live(net.now)
    assert binding.expires_at > 600.0 and net.core.stats().contacts == 1
    assert net.core.stats().deregisters_failed == 0


def test_aor_throttling_failed_register_while_our_deregister_is_pending_finishes_it() -> None:
    net, b = _register_while_our_deregister_is_lost(challenged=True)
    assert b.last_answer.response.status == 401
    assert len(net.registrar.deregisters) == 2  # sent again once the REGISTER bound nothing
    assert net.registrar.live(net.now) == [] and net.core.stats().contacts == 0


def test_aor_throttling_superseded_deregister_is_counted() -> None:
    # our de-REGISTER given up for a relayed REGISTER ends neither answered nor failed: it is
    # counted as superseded (sent = answered + failed + superseded)
    net, _ = _register_while_our_deregister_is_lost(challenged=False)
    stats = net.core.stats()
    assert (stats.deregisters_sent, stats.deregisters_superseded, stats.deregisters_failed) == (
        1, 1, 0)


def test_aor_throttling_superseded_deregister_sent_again_is_counted_once_more() -> None:
    net, _ = _register_while_our_deregister_is_lost(challenged=True)
    stats = net.core.stats()
    assert (stats.deregisters_sent, stats.deregisters_superseded, stats.deregisters_failed) == (
        2, 1, 0)
