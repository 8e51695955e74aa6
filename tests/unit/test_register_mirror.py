# Mirror mode (OPENSIPS-BEHAVIOUR.md §1.1, mode 0), event by event, on the wire: every REGISTER
# with contacts is relayed; each contact is rewritten to `<sip:user@us;ctid=N>` with the lifetime
# the UA asked, clamped to [min_expires, max_expires] as the local binding's (raw with
# compat=opensips); the 2xx gives the UA its own contacts and lifetimes; nothing is absorbed and
# we never send a de-REGISTER of our own (both sides expire alone).
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from sansmidreg import Config, Mode

if (_tests := str(Path(__file__).resolve().parents[1])) not in sys.path:
    sys.path.insert(0, _tests)  # tests/ holds the shared simulation harness, tests/sim

from sim import Behaviour, Network
from sim.wire import contact_expires, contacts

BASE = Config(mode=Mode.MIRROR, outgoing_expires=600, min_expires=5)
US = "127.0.0.1:5060"


def make(**overrides: Any) -> Network:
    return Network(dataclasses.replace(BASE, **overrides))



def ctid_of(net: Network, index: int = -1) -> int:
    (uri, _), = contacts(net.registrar.relayed[index].request)
    return int(uri.rsplit("ctid=", 1)[1])


# -- first REGISTER ----------------------------------------------------------------------------
def test_mirror_first_register_is_relayed_with_a_contact_id_per_contact() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    req = net.registrar.relayed[0].request
    (uri, expires), = contacts(req)
    assert uri == f"sip:alice@{US};ctid={ctid_of(net)}" and expires == "60"
    assert req.get("expires") == "60"  # mode 0 leaves the Expires header alone (§3.7)
    assert req.max_forwards == 69 and [v.sent_by for v in req.vias] == [US, "127.0.0.1:5201"]


def test_mirror_first_register_2xx_gives_ua_its_contact_and_lifetime() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60).response
    assert reply.status == 200 and contacts(reply) == [(ua.contact_uri, "60")]
    assert not reply.has("expires") and reply.get("server") == "sim-main-registrar"


def test_mirror_contact_params_are_not_relayed_upstream() -> None:
    net = make()
    ua = net.ua("alice", 5201, instance="<urn:uuid:00000000-0000-0000-0000-000000000001>",
                reg_id=1)
    reply = net.register(ua, 60, q="0.5").response
    (uri, _), = contacts(net.registrar.relayed[0].request)
    assert "instance" not in uri and "reg-id" not in uri and "q=" not in uri
    (item,) = reply.contacts.items
    assert item.q == 0.5 and item.instance == "<urn:uuid:00000000-0000-0000-0000-000000000001>"
    assert item.reg_id == 1  # RFC 5626 §6: echoed to the device


def test_mirror_two_contacts_in_one_register_get_two_contact_ids() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60, contacts=[f"<{ua.contact_uri}>",
                                            "<sip:alice@127.0.0.1:5209>;expires=30"]).response
    upstream = contacts(net.registrar.relayed[0].request)
    assert [e for _, e in upstream] == ["60", "30"]
    assert len({u for u, _ in upstream}) == 2
    assert sorted(contacts(reply)) == sorted([(ua.contact_uri, "60"),
                                              ("sip:alice@127.0.0.1:5209", "30")])


def test_mirror_relayed_lifetime_is_clamped_to_max_expires_like_the_local_one() -> None:
    # the upstream binding must not outlive the local one: e_in = clamp(e_raw) both ways, in
    # the ;expires param and in the Expires header
    net = make(max_expires=300)
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 900, style="both").response
    req = net.registrar.relayed[0].request
    (_, upstream), = contacts(req)
    assert upstream == "300" and req.get("expires") == "300"
    assert contacts(reply) == [(ua.contact_uri, "300")]
    net.advance(300.2)  # both sides end together: nothing is left upstream
    assert net.registrar.live(net.now) == [] and net.core.stats().contacts == 0


def test_mirror_lifetimes_within_max_expires_are_relayed_unchanged() -> None:
    net = make(max_expires=300)
    ua = net.ua("alice", 5201)
    net.register(ua, 200, style="both")
    req = net.registrar.relayed[0].request
    assert contacts(req)[0][1] == "200" and req.get("expires") == "200"
    net.register(ua, 900, contacts=[f"<{ua.contact_uri}>;expires=100"])  # header over, param in
    req = net.registrar.relayed[1].request
    assert contacts(req)[0][1] == "100" and req.get("expires") == "300"


def test_mirror_compat_opensips_relays_the_raw_lifetime() -> None:
    # §3.7: OpenSIPS's mode 0 relays e_raw (and the Expires header as it came); locally e_in
    net = make(max_expires=300, compat="opensips")
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 900, style="both").response
    req = net.registrar.relayed[0].request
    (_, upstream), = contacts(req)
    assert upstream == "900" and req.get("expires") == "900"
    assert contacts(reply) == [(ua.contact_uri, "300")]


# -- refresh ---------------------------------------------------------------------------------------
def test_mirror_refresh_is_relayed_with_the_same_contact_id() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(30.0)
    reply = net.register(ua, 60).response
    assert len(net.registrar.relayed) == 2 and ctid_of(net, 0) == ctid_of(net, 1)
    assert contacts(reply) == [(ua.contact_uri, "60")]
    assert net.core.stats().registers_absorbed == 0


def test_mirror_refresh_with_expires_param() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60, style="param")
    net.advance(30.0)
    reply = net.register(ua, 90, style="param").response
    assert contacts(net.registrar.relayed[1].request)[0][1] == "90"
    assert contacts(reply) == [(ua.contact_uri, "90")]


def test_mirror_contact_param_expires_wins_over_header() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 40, style="both", extra_headers=()).response
    assert contacts(reply) == [(ua.contact_uri, "40")]


# -- un-REGISTER -------------------------------------------------------------------------------------
def test_mirror_unregister_expires_param_zero_is_relayed_and_removes_the_contact() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(10.0)
    reply = net.register(ua, 0, style="param").response
    assert contacts(net.registrar.relayed[1].request) == [
        (f"sip:alice@{US};ctid={ctid_of(net, 0)}", "0")]
    assert contacts(reply) == [] and net.core.stats().contacts == 0


def test_mirror_unregister_expires_header_zero_is_relayed() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(10.0)
    reply = net.register(ua, 0, style="header").response
    req = net.registrar.relayed[1].request
    assert req.get("expires") == "0" and contacts(req)[0][1] == "0"
    assert contacts(reply) == [] and net.registrar.live(net.now) == []


def test_mirror_star_is_relayed_unchanged_and_clears_local_bindings() -> None:
    # the oracle shows OpenSIPS keeping a stale binding after `*` in mirror mode: we do not
    net = make()
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    net.register(a, 60)
    net.register(b, 60)
    net.advance(10.0)
    reply = net.register(a, 0, star=True).response
    assert net.registrar.relayed[-1].request.get("contact") == "*"
    assert contacts(reply) == []
    query = net.register(a, None, query=True).response
    assert contacts(query) == []


# -- query ---------------------------------------------------------------------------------------------
def test_mirror_query_is_answered_locally_with_the_bindings() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(25.0)
    reply = net.register(ua, None, query=True).response
    assert contacts(reply) == [(ua.contact_uri, "35")]
    assert len(net.registrar.seen) == 1


def test_mirror_query_of_unknown_aor_lists_nothing() -> None:
    net = make()
    reply = net.register(net.ua("nobody", 5201), None, query=True).response
    assert reply.status == 200 and not reply.has("contact")


# -- expiry --------------------------------------------------------------------------------------------
def test_mirror_local_expiry_sends_nothing_upstream() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(60.0)
    assert net.core.stats().contacts == 0
    assert net.registrar.deregisters == [] and len(net.upstream()) == 1


# -- 2xx, errors, challenges ---------------------------------------------------------------------------
def test_mirror_shortened_upstream_lifetime_shortens_the_local_one() -> None:
    net = make()
    net.registrar.expect(Behaviour.SHORTEN)
    net.registrar.shorten_to = 20
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60).response
    assert contacts(reply) == [(ua.contact_uri, "20")]
    net.advance(20.0)
    assert net.core.stats().contacts == 0


def test_mirror_main_registrar_contacts_and_expires_never_leak() -> None:
    net = make()
    net.registrar.add_foreign("alice@example.test", "sip:alice@198.51.100.7:5060", 900, 0.0)
    ua = net.ua("alice", 5201)
    reply = net.register(ua, 60).response
    assert contacts(reply) == [(ua.contact_uri, "60")] and not reply.has("expires")


def test_mirror_error_is_relayed_without_local_change() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(10.0)
    net.registrar.expect(Behaviour.REJECT)
    reply = net.register(ua, 120).response
    assert reply.status == 500 and reply.get("server") == "sim-main-registrar"
    query = net.register(ua, None, query=True).response
    assert contact_expires(query, ua.contact_uri) == 50


def test_mirror_timeout_gives_408_without_local_change() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.register(ua, 60)
    net.advance(10.0)
    net.registrar.expect(Behaviour.DROP)
    net.send(ua, ua.register(120))
    net.advance(10.0 + 32.0)
    assert ua.last_answer.response.status == 408
    query = net.register(ua, None, query=True).response
    assert contact_expires(query, ua.contact_uri) == 18


def test_mirror_challenge_then_authenticated_retry_is_relayed() -> None:
    net = make()
    ua = net.ua("alice", 5201)
    net.registrar.expect(Behaviour.CHALLENGE)
    reply = net.register(ua, 60).response
    assert [a.response.status for a in ua.answers] == [401, 200]
    assert contacts(reply) == [(ua.contact_uri, "60")]
    (binding,) = net.registrar.live(net.now)  # the challenged attempt bound nothing
    assert binding.uri.endswith(f";ctid={ctid_of(net, 1)}")
    assert ua.answers[0].response.get("www-authenticate") is not None


def test_mirror_second_register_of_a_device_in_flight_reuses_its_contact_id() -> None:
    # the first REGISTER's first transmission is lost upstream; the device (or a late
    # retransmission) registers again before the answer: one binding upstream, not two
    net = make()
    ua = net.ua("alice", 5201)
    net.registrar.expect(Behaviour.DROP_FIRST)
    net.send(ua, ua.register(30), retransmit=False)
    net.settle(0.1)
    net.send(ua, ua.register(60), retransmit=False)
    net.settle(2.0)
    assert len({b.key for b in net.registrar.live(net.now)}) == 1
    first, second = net.registrar.relayed
    assert (first.status, second.status) == (None, 200)
    (uri_1, _), = contacts(first.request)
    (uri_2, _), = contacts(second.request)
    assert uri_1 == uri_2  # the same ;ctid=
    # the lost CSeq 1 got through on timer E after CSeq 2: the main registrar refused it
    assert sorted(a.response.status for a in ua.answers) == [200, 500]
    assert contacts(net.register(ua, None, query=True).response) == [(ua.contact_uri, "58")]
    assert net.core._ctx.table.inflight == {}
