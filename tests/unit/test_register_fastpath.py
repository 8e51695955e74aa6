# The absorbed-refresh fast path (src/sansmidreg/_fastpath.py) is an optimisation, never a
# behaviour: fed the same traffic, a core with it and a core without it return byte-identical
# actions. Refreshes are generated with every header varied between the shape the fast path
# takes, shapes only the general path takes (display names, compact forms, parameters, escapes,
# IPv6, several Vias ...) and invalid values, from the right or a wrong source, in and out of the
# throttle window, in CSeq order and out of it.
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sansmidreg._core
from sansmidreg import Action, Config, Endpoint, MidRegistrar, Mode, SeededIds
from sansmidreg._fastpath import absorb_fast

if (_tests := str(Path(__file__).resolve().parents[1])) not in sys.path:
    sys.path.insert(0, _tests)  # tests/ holds the shared simulation harness, tests/sim

from sim import Network, SimUA

BASE = Config(mode=Mode.CONTACT_THROTTLING, outgoing_expires=600, min_expires=5)
DEVICES = [("alice", 5201), ("bob", 5202), ("carol", 5203), ("alice", 5204)]


def pair(**overrides: Any) -> tuple[MidRegistrar, MidRegistrar, list[SimUA], float]:
    """Two cores holding the same registrations: the first with the fast path, the second
    without it."""
    cfg = dataclasses.replace(BASE, **overrides)
    net = Network(cfg)
    uas = [net.add(SimUA(user=u, port=p)) for u, p in DEVICES]
    for ua in uas:
        net.send(ua, ua.register(120))
        net.settle(0.1)
    cores = []
    for fast in (True, False):
        core = MidRegistrar(cfg, ids=SeededIds(net.seed))
        core._fast = core._fast and fast
        for item in net.inputs:
            if item.kind == "timer":
                core.handle_timer(item.now)
            else:
                assert item.source is not None
                core.receive(item.data, item.source, item.now)
        cores.append(core)
    assert cores[0].stats().contacts == 4
    return cores[0], cores[1], uas, net.now


def refresh(ua: SimUA, cseq: int, change: dict[str, str | None] | None = None) -> bytes:
    """``ua``'s canonical refresh with header lines replaced (value) or removed (None)."""
    lines = {
        "start": "REGISTER sip:example.test SIP/2.0",
        "via": f"Via: SIP/2.0/UDP {ua.host}:{ua.port};branch=z9hG4bK{ua.user}c{cseq};rport",
        "max-forwards": "Max-Forwards: 70",
        "from": f"From: <{ua.aor_uri}>;tag={ua.from_tag}",
        "to": f"To: <{ua.aor_uri}>",
        "call-id": f"Call-ID: {ua.call_id}",
        "cseq": f"CSeq: {cseq} REGISTER",
        "contact": f"Contact: <{ua.contact_uri}>",
        "expires": "Expires: 120",
        "extra": "User-Agent: sim-ua",
    }
    for key, value in (change or {}).items():
        lines[key] = value  # type: ignore[assignment]
    text = "\r\n".join(v for v in lines.values() if v is not None)
    return f"{text}\r\nContent-Length: 0\r\n\r\n".encode()


def variants(ua: SimUA) -> dict[str, list[str | None]]:
    h, p, u = ua.host, ua.port, ua.user
    aor = ua.aor_uri
    return {
        "start": ["REGISTER sip:example.test:5060 SIP/2.0", "REGISTER sip:EXAMPLE.test SIP/2.0",
                  "REGISTER tel:+15551234 SIP/2.0", "REGISTER sip:example.test;transport=udp SIP/2.0"],
        "via": [f"Via: SIP/2.0/UDP {h}:{p};branch=z9hG4bKv1", f"v: SIP/2.0/UDP {h}:{p};branch=z9hG4bKv2;rport",
                f"Via: SIP/2.0/udp {h}:{p};branch=z9hG4bKv3;rport", f"Via: SIP/2.0/UDP {h}:{p};rport;branch=z9hG4bKv4",
                f"Via: SIP/2.0/UDP {h}:{p};branch=z9hG4bKv5;received=1.2.3.4;rport",
                f"Via: SIP/2.0/UDP {h}:{p};branch=z9hG4bKv6;rport=1", f"Via: SIP/2.0/UDP {h}:0{p};branch=z9hG4bKv7",
                f"Via: SIP/2.0/UDP {h}:{p};branch=v8old", f"Via: SIP/2.0/TCP {h}:{p};branch=z9hG4bKv9;Rport",
                f"Via: SIP/2.0/UDP {h}:{p};branch=z9hG4bKva, SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKx",
                "Via: SIP/2.0/UDP 192.0.2.44:7000;branch=z9hG4bKvb;rport", "Via: SIP/2.0/UDP [::1]:5060;branch=z9hG4bKvc",
                f"Via: SIP/2.0/UDP {h}:{p};branch=z9hG4bKvd;ttl=2;rport", None],
        "max-forwards": ["Max-Forwards: 0", "Max-Forwards: 255", "Max-Forwards: 256", "Max-Forwards: 007",
                         "Max-Forwards: x", None],
        "from": [f"From: \"Al\" <{aor}>;tag=x", f"From: <{aor}>", f"f: <{aor}>;tag=t", f"From: {aor};tag=t",
                 f"From: <{aor}>;tag=t;x=y", "From: <sip:@bad>;tag=t", None],
        "to": [f"To: <{aor}>;tag=old", f"To: \"A\" <{aor}>", f"t: <{aor}>", f"To: <sip:{u}@EXAMPLE.TEST>",
               f"To: <sip:%61{u[1:]}@example.test>", f"To: <sip:{u}@example.test:5060>", "To: <sip:example.test>",
               f"To: <sips:{u}@example.test>", None],
        "call-id": [f"Call-ID: other-{u}", "i: " + ua.call_id, "Call-ID: bad id", None],
        "cseq": ["CSeq: 1 REGISTER", "CSeq: 2 INVITE", "CSeq: x REGISTER", "CSeq:  77  REGISTER", None],
        "contact": [f"Contact: <{ua.contact_uri}>;expires=0", f"Contact: <{ua.contact_uri}>;expires=60",
                    f"Contact: <{ua.contact_uri}>;expires=3", f"Contact: <{ua.contact_uri}>;q=0.5",
                    f"Contact: <{ua.contact_uri}>;expires=599", f"Contact: <{ua.contact_uri};transport=udp>",
                    f"Contact: <{ua.contact_uri};Transport=udp>", f"Contact: <sip:{u}@{h}:0{p}>",
                    f"Contact: <sip:{u}@{h.upper()}:{p}>", f"m: <{ua.contact_uri}>", f"Contact: {ua.contact_uri}",
                    f"Contact: <sip:{u}@{h}:{p + 50}>", "Contact: *", f"Contact: <{ua.contact_uri}>, <sip:x@{h}>",
                    f"Contact: <{ua.contact_uri}>;+sip.instance=\"<urn:uuid:1>\"", f"Contact: \"A\" <{ua.contact_uri}>",
                    None],
        "expires": ["Expires: 0", "Expires: 60", "Expires: 3", "Expires: 3600", "Expires: 5000",
                    "Expires: soon", "Expires: 0600", None],
        "extra": ["Supported: path", "Require: foo", "Path: <sip:edge.example.test;lr>", "Proxy-Require: x",
                  "Max-Forwards: 70", "Expires: 120", None],
    }


@st.composite
def steps(draw: st.DrawFn) -> list[tuple[int, int, dict[str, str | None], float, bool]]:
    out = []
    for _ in range(draw(st.integers(1, 12))):
        i = draw(st.integers(0, len(DEVICES) - 1))
        cseq = draw(st.integers(1, 40))
        ua = SimUA(user=DEVICES[i][0], port=DEVICES[i][1])
        table = variants(ua)
        changes = {}
        for key in draw(st.lists(st.sampled_from(sorted(table)), max_size=3, unique=True)):
            changes[key] = draw(st.sampled_from(table[key]))
        dt = draw(st.sampled_from([0.0, 0.0, 1.0, 30.0, 200.0, 500.0]))
        out.append((i, cseq, changes, dt, draw(st.booleans())))
    return out


@settings(max_examples=int(os.environ.get("SANSMIDREG_FASTPATH_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps(), mode=st.sampled_from([Mode.CONTACT_THROTTLING, Mode.AOR_THROTTLING]))
def test_fast_and_general_paths_answer_byte_for_byte_alike(
        plan: list[tuple[int, int, dict[str, str | None], float, bool]], mode: Mode) -> None:
    fast, general, uas, now = pair(mode=mode)
    for i, cseq, changes, dt, same_source in plan:
        now += dt
        ua = uas[i]
        data = refresh(ua, cseq, changes)
        src = ua.endpoint if same_source else Endpoint(host=ua.host, port=ua.port + 1)
        a: list[Action] = fast.receive(data, src, now)
        b: list[Action] = general.receive(data, src, now)
        assert a == b, (data, a, b)
    assert fast.stats() == general.stats()


@pytest.mark.parametrize("overrides", [{}, {"compat": "opensips"}, {"use_domain": True},
                                       {"case_sensitive": False}, {"allow_dup_cseq": False},
                                       {"mode": Mode.AOR_THROTTLING},
                                       {"mode": Mode.AOR_THROTTLING, "use_domain": True}])
def test_fast_path_takes_the_plain_refresh_and_agrees(overrides: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    taken = []

    def counting(*args: Any) -> list[Action] | None:
        out = absorb_fast(*args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(sansmidreg._core, "absorb_fast", counting)
    fast, general, uas, now = pair(**overrides)
    taken.clear()
    for k, ua in enumerate(uas):
        for cseq in (2, 3, 3):
            data = refresh(ua, cseq)
            assert fast.receive(data, ua.endpoint, now + k) == general.receive(
                data, ua.endpoint, now + k)
    assert taken[:2] == [True, True] and fast.stats() == general.stats()
    assert fast.stats().registers_absorbed == 12


def test_fast_path_is_off_where_it_does_not_apply() -> None:
    assert MidRegistrar(BASE, ids=SeededIds(1))._fast
    assert MidRegistrar(dataclasses.replace(BASE, mode=Mode.AOR_THROTTLING), ids=SeededIds(1))._fast
    for cfg in (dataclasses.replace(BASE, mode=Mode.MIRROR),
                dataclasses.replace(BASE, mode=Mode.AOR_THROTTLING, compat="opensips"),
                dataclasses.replace(BASE, max_contacts=2),
                dataclasses.replace(BASE, domains=("example.test",))):
        assert not MidRegistrar(cfg, ids=SeededIds(1))._fast
