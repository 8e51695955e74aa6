# Behavioural review of the REGISTER side against RFC 3261 §10 / §16 / §17, RFC 3327 (Path),
# RFC 5626 (outbound flows), RFC 3581 (rport) and the three modes of DESIGN.md /
# OPENSIPS-BEHAVIOUR.md. Tests marked xfail(strict=True) pin a defect found by the review (they
# pass once it is fixed); the others pin correct behaviour no other test covered.
#
# Everything is observed on the wire (what the UA and the simulated main registrar see), except
# where a test says it looks into the core.
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

import sansmidreg._core
from sansmidreg import (
    Action,
    Config,
    Endpoint,
    MidRegistrar,
    Mode,
    Reply,
    SeededIds,
    SendUpstream,
)
from sansmidreg._fastpath import absorb_fast
from sansmidreg.sip import Request, Response

if (_tests := str(Path(__file__).resolve().parents[1])) not in sys.path:
    sys.path.insert(0, _tests)  # tests/ holds the shared simulation harness, tests/sim

from sim import Network
from sim.mainreg import Behaviour
from sim.wire import contact_expires, contacts, request, response

BASE = Config(mode=Mode.CONTACT_THROTTLING, outgoing_expires=600, min_expires=5)
UA = Endpoint(host="127.0.0.1", port=5201)
UPSTREAM = Endpoint(host="127.0.0.1", port=5080)
AOR = "alice@example.test"
THROTTLING = [Mode.CONTACT_THROTTLING, Mode.AOR_THROTTLING]
INSTANCE = '"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"'


def make(mode: Mode = Mode.CONTACT_THROTTLING, latency: float = 0.0, **overrides: Any) -> Network:
    return Network(dataclasses.replace(BASE, mode=mode, **overrides), latency=latency)



# -- raw helpers (one core, no simulated network) ---------------------------------------------
def raw_register(cseq: int = 1, expires: str | None = "60", extra: tuple[str, ...] = (),
                 contact: str | None = "<sip:alice@127.0.0.1:5201>") -> bytes:
    lines = [
        "REGISTER sip:example.test SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bKrv{cseq};rport",
        "Max-Forwards: 70",
        "From: <sip:alice@example.test>;tag=f1",
        "To: <sip:alice@example.test>",
        "Call-ID: review-1@127.0.0.1",
        f"CSeq: {cseq} REGISTER",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    lines += list(extra)
    return "\r\n".join([*lines, "Content-Length: 0", "", ""]).encode()


def upstream_answer(relayed: bytes, status: int, reason: str,
                    headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """The main registrar's response to a REGISTER we relayed (every Via copied)."""
    req = request(relayed)
    lines = [f"SIP/2.0 {status} {reason}", *[f"Via: {v}" for v in req.get_all("via")],
             f"From: {req.get('from')}", f"To: {req.get('to')};tag=up1",
             f"Call-ID: {req.get('call-id')}", f"CSeq: {req.get('cseq')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return "\r\n".join([*lines, "Content-Length: 0", "", ""]).encode()


def sent_upstream(actions: list[Action]) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, SendUpstream)]


def replies(actions: list[Action]) -> list[Response]:
    return [response(a.data) for a in actions if isinstance(a, Reply)]


def relayed_once(core: MidRegistrar, data: bytes, now: float = 0.0) -> Request:
    (out,) = sent_upstream(core.receive(data, UA, now))
    return request(out)


# ============================================================================================
# Defects
# ============================================================================================

# -- RFC 3327 §5.3: the Path a registrar returns is the one of the registration it answers ----
@pytest.mark.parametrize("mode", THROTTLING)
def test_absorbed_refresh_echoes_its_own_path_not_another_devices(mode: Mode) -> None:
    # RFC 3327 §5.3: the registrar stores the Path with the binding and returns it in the 2xx
    # (Supported: path); the relayed answer does so from the request (PendingRegister._ua_reply).
    net = make(mode)
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    edge_a, edge_b = "<sip:edge-a.example.test;lr>", "<sip:edge-b.example.test;lr>"
    net.register(a, path=[edge_a], supported=["path"])
    assert net.register(b, path=[edge_b], supported=["path"]).response.get_all("path") == [edge_b]
    net.advance(10.0)
    relayed = len(net.registrar.relayed)
    refresh = net.register(b, path=[edge_b], supported=["path"]).response
    assert len(net.registrar.relayed) == relayed  # absorbed
    assert refresh.get_all("path") == [edge_b]


# -- RFC 5626 §6: same AOR + instance-id + reg-id replaces the old flow -----------------------
@pytest.mark.parametrize("mode", list(Mode))
def test_outbound_same_instance_and_reg_id_replaces_the_old_flow(mode: Mode) -> None:
    # RFC 5626 §6: a REGISTER whose Contact carries the +sip.instance and reg-id of an existing
    # binding of the AOR replaces that binding (the device's new flow, e.g. after a NAT rebinding
    # or an IP change); the old one must neither be listed nor be reachable upstream.
    net = make(mode)
    ua = net.ua("alice", 5201)
    old = "sip:alice@127.0.0.1:5201;ob"
    new = "sip:alice@127.0.0.1:5301;ob"
    net.register(ua, contacts=[f"<{old}>;+sip.instance={INSTANCE};reg-id=1"],
             supported=["path", "outbound"])
    net.advance(10.0)
    reply = net.register(ua, contacts=[f"<{new}>;+sip.instance={INSTANCE};reg-id=1"],
                     supported=["path", "outbound"]).response
    assert reply.status == 200
    assert [uri for uri, _ in contacts(reply)] == [new]
    assert len(net.registrar.live_for(AOR, net.now)) == 1  # one binding upstream, not two


# -- the invariant: a contact's local expiry must not de-register a binding being renewed -----
def test_contact_expiring_while_its_reboot_register_is_relayed_keeps_the_upstream_binding(
        ) -> None:
    # Contact throttling (OPENSIPS-BEHAVIOUR.md §1.2 e): the de-REGISTER is for a binding nobody
    # refreshes. Here the phone rebooted behind a new NAT port (new Call-ID, new source: relayed,
    # DESIGN.md §5.2) and its REGISTER reaches us 50 ms before its old contact expires; the
    # main registrar's view must stay correct (every live local contact reachable upstream).
    net = make(latency=0.1)
    phone = net.ua("alice", 5201)
    net.send(phone, phone.register(60))  # bound locally at t=0.3 (two round trips of 0.1 s)
    net.advance(60.15)
    rebooted = net.ua("alice", 5301, call_id="after-reboot")
    net.send(rebooted, rebooted.register(60, contacts=[f"<{phone.contact_uri}>"]))
    net.advance(63.0)
    assert rebooted.last_answer.response.status == 200
    assert contact_expires(rebooted.last_answer.response, phone.contact_uri) == 60
    assert net.registrar.live_for(AOR, net.now), "the main registrar lost the renewed binding"


def test_aor_last_contact_expiring_while_a_new_device_is_relayed_keeps_the_aggregate() -> None:
    # AOR throttling (§1.3 e): the aggregate is de-registered when the AOR has no device left.
    # A second device's REGISTER (relayed, DESIGN.md §5.2) is in flight when the first
    # device's contact expires; once its 2xx is in, that device must be reachable upstream.
    net = make(Mode.AOR_THROTTLING, latency=0.1)
    first = net.ua("alice", 5201)
    net.send(first, first.register(60))  # bound locally at t=0.3
    net.advance(60.15)
    second = net.ua("alice", 5202)
    net.send(second, second.register(60))
    net.advance(63.0)
    assert contact_expires(second.last_answer.response, second.contact_uri) == 60
    assert net.registrar.live_for(AOR, net.now), "the main registrar lost the aggregate binding"


@pytest.mark.parametrize("mode", THROTTLING)
def test_expiry_postponed_for_a_relayed_register_that_fails_still_deregisters(
        mode: Mode) -> None:
    # the other half of the two tests above: when the REGISTER that postponed an expiry is
    # refused, the postponed expiry de-registers the binding at the main registrar after all
    # (nothing local is left to justify it)
    net = make(mode, latency=0.1)
    phone = net.ua("alice", 5201)
    net.send(phone, phone.register(60))
    net.advance(60.15)
    net.registrar.expect(Behaviour.FORBIDDEN)
    other = net.ua("alice", 5202 if mode is Mode.AOR_THROTTLING else 5301,
                   call_id="after-reboot")
    uris = None if mode is Mode.AOR_THROTTLING else [f"<{phone.contact_uri}>"]
    net.send(other, other.register(60, contacts=uris))
    net.advance(63.0)
    assert other.last_answer.response.status == 403
    assert net.registrar.live_for(AOR, net.now), "nothing is sent while it is postponed"
    net.advance(100.0)  # the postponed expiry: the binding goes
    assert not net.registrar.live_for(AOR, net.now)
    assert net.registrar.deregisters


def test_refresh_with_a_malformed_supported_is_refused_without_touching_the_binding() -> None:
    # found by test_registrar_fuzz: an absorbable refresh whose Supported header does not parse
    # was absorbed (its Path and CSeq stored) and only then refused, when its answer looked for
    # "path" in Supported; every header the answer reads is now checked before any state
    net = make()
    ua = net.ua("alice", 5201)
    assert net.register(ua, 300).response.status == 200
    table = net.core._ctx.table
    before = [(c.uri, c.cseq, c.path, c.expires_at) for c in table.aors["alice"].contacts]
    net.advance(10.0)
    answer = net.register(ua, 300, path=["<sip:edge.test;lr>"],
                      extra_headers=[("Supported", ',"')]).response
    assert answer.status == 400
    after = [(c.uri, c.cseq, c.path, c.expires_at) for c in table.aors["alice"].contacts]
    assert after == before


# -- RFC 3261 §10.2.8 / §10.3 step 7: a 423 the UA can act on --------------------------------
@pytest.mark.parametrize("mode", THROTTLING)
def test_upstream_423_retry_with_min_expires_is_accepted(mode: Mode) -> None:
    # RFC 3261 §10.2.8: after a 423 the UA retries with an interval >= Min-Expires. In the
    # throttling modes the upstream interval is ours (outgoing_expires, §1.2 a), so relaying the
    # 423 as is gives the UA a requirement it cannot meet. Either the upstream lifetime learns
    # the main registrar's minimum or the 423 is handled upstream; the retry must succeed.
    net = make(mode)
    net.registrar.min_expires = 1200  # the main registrar wants more than outgoing_expires
    ua = net.ua("alice", 5201)
    first = net.register(ua, 60).response
    if first.status == 423:
        minimum = int(first.get("min-expires") or "0")
        assert 0 < minimum <= 3600  # within our own max_expires: the UA can comply
        first = net.register(ua, minimum).response
    assert first.status == 200
    assert contacts(first) and contacts(first)[0][0] == ua.contact_uri


# -- RFC 3261 §16.7 step 6: a proxy does not forward a 503 -----------------------------------
@pytest.mark.parametrize("mode", list(Mode))
def test_upstream_503_reaches_the_ua_as_500(mode: Mode) -> None:
    # RFC 3261 §16.7 step 6: "If the only response that was received is a 503, the proxy SHOULD
    # generate a 500 response and forward that upstream" (a 503 would tell the UA that the
    # mid-registrar itself is unavailable, RFC 3263 failover away from it).
    core = MidRegistrar(dataclasses.replace(BASE, mode=mode), ids=SeededIds(1))
    relayed = relayed_once(core, raw_register())
    out = replies(core.receive(upstream_answer(relayed.serialize(), 503, "Service Unavailable",
                                               (("Retry-After", "30"),)), UPSTREAM, 0.1))
    assert [r.status for r in out] == [500]


# -- RFC 3261 §16.4: our own Route entry is removed before relaying --------------------------
@pytest.mark.parametrize("mode", list(Mode))
def test_register_preloaded_with_our_route_is_relayed_without_it(mode: Mode) -> None:
    # RFC 3261 §16.4: "If the first value in the Route header field indicates this proxy, the
    # proxy MUST remove that value from the request." Phones configured with the mid-registrar
    # as outbound proxy send exactly this; a main registrar that honours the Route (§16.4, §16.5)
    # sends the REGISTER back to us.
    core = MidRegistrar(dataclasses.replace(BASE, mode=mode), ids=SeededIds(1))
    relayed = relayed_once(core, raw_register(extra=("Route: <sip:127.0.0.1:5060;lr>",)))
    assert relayed.get_all("route") == []


# -- RFC 3261 §16.3 step 5: Proxy-Require -----------------------------------------------------
@pytest.mark.parametrize("mode", list(Mode))
def test_register_with_unknown_proxy_require_is_refused_420(mode: Mode) -> None:
    # RFC 3261 §16.3 step 5: a proxy MUST answer 420 (Bad Extension), listing the option-tags in
    # Unsupported, when Proxy-Require names an extension it does not understand; relayed
    # REGISTERs are proxied (DESIGN.md §4).
    core = MidRegistrar(dataclasses.replace(BASE, mode=mode), ids=SeededIds(1))
    actions = core.receive(raw_register(extra=("Proxy-Require: foo",)), UA, 0.0)
    assert sent_upstream(actions) == []
    (reply,) = replies(actions)
    assert reply.status == 420 and reply.get("unsupported") == "foo"


# -- RFC 3261 §10.3 step 7: 423 only below one hour ------------------------------------------
def test_interval_of_an_hour_or_more_is_never_423() -> None:
    # RFC 3261 §10.3 step 7: "If and only if the requested expiration interval is greater than
    # zero AND smaller than one hour AND less than a registrar-configured minimum, the registrar
    # MAY reject the registration with a response of 423".
    core = MidRegistrar(dataclasses.replace(BASE, mode=Mode.MIRROR, min_expires=7200,
                                            max_expires=86400), ids=SeededIds(1))
    actions = core.receive(raw_register(expires="5000"), UA, 0.0)
    assert [r.status for r in replies(actions)] != [423]


# -- RFC 3261 §10.3 step 8: a 2xx lists every current binding --------------------------------
def test_contact_throttling_device_missing_from_a_2xx_is_relayed_again() -> None:
    # RFC 3261 §10.3 step 8: the 2xx enumerates all current bindings of the AOR. When the main
    # registrar dropped a device's binding (Asterisk max_contacts=1/remove_existing, Kamailio
    # overwrite mode, a restart), the next 2xx of the AOR no longer lists its contact id; that
    # device's next refresh must go upstream (invariant: no local contact without an upstream
    # binding), not be absorbed for the rest of the window.
    net = make()
    a = net.ua("alice", 5201)
    b = net.ua("alice", 5202)
    net.register(a)
    net.advance(5.0)
    net.registrar.bindings[AOR].clear()  # a's binding is evicted when b registers
    answer_b = net.register(b).response
    assert contact_expires(answer_b, b.contact_uri) == 60
    net.advance(30.0)
    relayed = len(net.registrar.relayed)
    net.register(a)
    assert len(net.registrar.relayed) == relayed + 1
    assert len(net.registrar.live_for(AOR, net.now)) == 2


# -- mirror: no upstream binding outlives its local contact ----------------------------------
def test_mirror_binding_granted_longer_than_asked_does_not_outlive_the_local_contact() -> None:
    # _registrar.py (header): in mirror mode "no upstream binding outlives its local contact";
    # OPENSIPS-BEHAVIOUR.md §1.1 e relies on both copies having the same lifetime. Registrars
    # that raise short intervals to their minimum instead of answering 423 (Kamailio's and
    # OpenSIPS's registrar min_expires) grant more than asked: then either the local contact
    # lives as long as the upstream binding, or the binding is removed when the contact goes.
    core = MidRegistrar(dataclasses.replace(BASE, mode=Mode.MIRROR), ids=SeededIds(1))
    relayed = relayed_once(core, raw_register())
    (ours,) = [str(item.uri) for item in relayed.contacts.items]
    core.receive(upstream_answer(relayed.serialize(), 200, "OK",
                                 (("Contact", f"<{ours}>;expires=600"),)), UPSTREAM, 0.1)
    later = core.handle_timer(61.0)
    deregistered = [c for d in sent_upstream(later) for c in contacts(d)] == [(ours, "0")]
    (query,) = replies(core.receive(raw_register(cseq=2, expires=None, contact=None), UA, 61.0))
    assert deregistered or contacts(query) != []


# ============================================================================================
# Correct behaviour not covered elsewhere
# ============================================================================================

def _history(mode: Mode, first: bytes, source: Endpoint) -> tuple[list[tuple[bytes, float]],
                                                                   Config]:
    """A first REGISTER relayed and answered by the simulated main registrar (recorded inputs)."""
    cfg = dataclasses.replace(BASE, mode=mode)
    net = Network(cfg)
    net.inject(first, source)
    net.settle(0.5)
    return [(i.data, i.now) for i in net.inputs if i.kind == "receive"], cfg


@pytest.mark.parametrize("mode", THROTTLING)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_fast_path_agrees_after_a_registration_with_path_q_and_instance(
        mode: Mode, transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # _fastpath.py contract: byte-identical answers to the general path. The fuzz of
    # test_register_fastpath.py starts from plain registrations over UDP; here the stored binding
    # carries q, +sip.instance, reg-id and a Path (which a plain refresh clears, RFC 3327 §5.3)
    # and the device is on a TCP flow.
    src = Endpoint(transport=transport, host="127.0.0.1", port=5201,  # type: ignore[arg-type]
                   flow=7 if transport == "tcp" else None)
    via = f"SIP/2.0/{transport.upper()} 127.0.0.1:5201"
    first = raw_register(
        extra=("Path: <sip:edge.example.test;lr>", "Supported: path"),
        contact=f"<sip:alice@127.0.0.1:5201>;q=0.5;+sip.instance={INSTANCE};reg-id=1",
    ).replace(b"SIP/2.0/UDP 127.0.0.1:5201", via.encode())
    history, cfg = _history(mode, first, src)
    refresh = raw_register(cseq=2).replace(b"SIP/2.0/UDP 127.0.0.1:5201", via.encode())
    fast_answers: list[bool] = []

    def counting(*args: Any) -> list[Action] | None:
        out = absorb_fast(*args)
        fast_answers.append(out is not None)
        return out

    monkeypatch.setattr(sansmidreg._core, "absorb_fast", counting)
    outs = []
    taken = []
    for fast in (True, False):
        core = MidRegistrar(cfg, ids=SeededIds(7))
        core._fast = core._fast and fast
        for data, now in history:
            core.receive(data, src if data.startswith(b"REGISTER") else UPSTREAM, now)
        fast_answers.clear()
        out = core.receive(refresh, src, 10.0)
        assert fast_answers == ([True] if fast else [])  # the fast path answered it
        outs.append(out)
        taken.append(core.stats().registers_absorbed)
    assert taken == [1, 1]
    assert outs[0] == outs[1]
    (reply,) = replies(outs[0])
    assert reply.get_all("path") == [] and contacts(reply) == [("sip:alice@127.0.0.1:5201", "60")]


def test_contact_throttling_2xx_without_our_contact_binds_nothing_locally() -> None:
    # Invariant (DESIGN.md §5.1, tests/sim/invariants.py (a)): a contact the main registrar did
    # not bind (its 2xx does not list our contact id) must not be kept locally, else refreshes
    # would be absorbed for a device the main registrar cannot reach.
    core = MidRegistrar(BASE, ids=SeededIds(1))
    relayed = relayed_once(core, raw_register())
    out = replies(core.receive(upstream_answer(
        relayed.serialize(), 200, "OK", (("Contact", "<sip:alice@198.51.100.7:5060>;expires=600"),)),
        UPSTREAM, 0.1))
    assert [r.status for r in out] == [200] and contacts(out[0]) == []
    assert core.stats().contacts == 0
    assert sent_upstream(core.receive(raw_register(cseq=2), UA, 10.0))  # relayed again


@pytest.mark.parametrize("mode", list(Mode))
def test_non_sip_contact_uri_is_accepted_and_listed(mode: Mode) -> None:
    # RFC 3261 §10.2.1: Contact values of a REGISTER "MAY use any URI scheme" (tel, mailto ...).
    net = make(mode)
    ua = net.ua("alice", 5201)
    reply = net.register(ua, contacts=["<tel:+15551234567>"]).response
    assert reply.status == 200 and contacts(reply) == [("tel:+15551234567", "60")]


@pytest.mark.parametrize("mode", list(Mode))
def test_relayed_register_carries_received_and_rport_on_the_uas_via(mode: Mode) -> None:
    # RFC 3581 §4 / RFC 3261 §18.2.1: the server stamps rport with the source port and received
    # (even when equal to the sent-by) on the Via of the request it relays, so that the main
    # registrar's answer comes back through the NAT binding.
    core = MidRegistrar(dataclasses.replace(BASE, mode=mode), ids=SeededIds(1))
    natted = Endpoint(host="203.0.113.9", port=40123)
    (out,) = sent_upstream(core.receive(raw_register(), natted, 0.0))
    vias = request(out).vias
    assert len(vias) == 2
    assert vias[1].param("rport") == "40123" and vias[1].param("received") == "203.0.113.9"


@pytest.mark.parametrize("mode", THROTTLING)
def test_absorbed_answer_carries_no_record_route(mode: Mode) -> None:
    # RFC 3261 §10.3: "Registrars MUST NOT include a Record-Route header field in any response to
    # a REGISTER request" (and MUST ignore one in the request).
    net = make(mode)
    ua = net.ua("alice", 5201)
    rr = [("Record-Route", "<sip:edge.example.test;lr>")]
    net.register(ua, extra_headers=rr)
    net.advance(10.0)
    relayed = len(net.registrar.relayed)
    reply = net.register(ua, extra_headers=rr).response
    assert len(net.registrar.relayed) == relayed and reply.status == 200
    assert not reply.has("record-route")
