# Hostile input (issue 3, deliverable 4): arbitrary bytes and mutated REGISTERs and responses,
# with timer ticks in between, fed to a core that holds real bindings, in every mode.
#
# Properties: nothing raises out of the core; stats.internal_errors stays 0; the location table
# stays structurally sound (every contact indexed once, counts right, no dangling empty AOR);
# and a message the core refused -- answered >= 300 or dropped, nothing sent upstream -- changed
# no binding at all (DESIGN.md §2.4: "no binding is lost or corrupted by a bad message").
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sansmidreg import (
    Action,
    Config,
    Drop,
    Endpoint,
    MidRegistrar,
    Mode,
    Reply,
    SendUpstream,
)
from sansmidreg.sip import SipParseError, parse_message

if (_tests := str(Path(__file__).resolve().parents[1])) not in sys.path:
    sys.path.insert(0, _tests)  # tests/ holds the shared simulation harness, tests/sim

from sim import Behaviour, Network, SimUA

BASE = Config(outgoing_expires=600, min_expires=5, max_contacts=3, force_registration=True)
UPSTREAM = BASE.upstream
ALPHABET = b"<>;,=@:\"' \t\r\n%*?/0123456789abcdefsipSIP.-_+[]!~"

# -- a world with bindings ------------------------------------------------------------------------


def world(mode: Mode) -> tuple[Network, list[SimUA], list[bytes], bytes]:
    """A core with registered devices, one relayed REGISTER still waiting for its answer, and
    seeds for mutation: valid REGISTERs and a valid 2xx for the waiting transaction."""
    net = Network(dataclasses.replace(BASE, mode=mode), record=True, retransmit=False)
    uas = [net.add(SimUA(user=u, port=p)) for u, p in (("alice", 5201), ("alice", 5202),
                                                        ("bob", 5203))]
    for ua in uas:
        net.send(ua, ua.register(120))
        net.settle(0.01)
    net.registrar.expect(Behaviour.DROP)
    pending = net.add(SimUA(user="carol", port=5204))
    net.send(pending, pending.register(60))
    net.settle(0.01)
    relayed = net.registrar.seen[-1].request
    ok = net.registrar._answer(relayed, 200, "OK", [
        ("Contact", f"{relayed.get('contact')};expires=600"), ("Expires", "600")])
    seeds = [uas[0].register(60), uas[1].register(0), uas[2].register(None, query=True),
             uas[0].register(0, star=True), uas[1].register(300, style="param",
                                                           path=["<sip:edge.test;lr>"],
                                                           supported=["path"])]
    return net, uas, seeds, ok


# -- mutations -------------------------------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "line", "value", "dup",
                                     "truncate"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] = draw(st.sampled_from(list(ALPHABET)))
        elif kind == "insert":
            data[i:i] = draw(st.binary(max_size=8)) if draw(st.booleans()) else bytes(
                draw(st.lists(st.sampled_from(list(ALPHABET)), max_size=8)))
        elif kind == "delete":
            del data[i:i + draw(st.integers(1, 12))]
        elif kind == "truncate":
            del data[i:]
        else:
            lines = bytes(data).split(b"\r\n")
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "line":
                del lines[j]
            elif kind == "dup":
                lines.insert(j, lines[j])
            else:  # replace a header value with SIP-ish junk
                name, colon, _ = lines[j].partition(b":")
                junk = bytes(draw(st.lists(st.sampled_from(list(ALPHABET)), max_size=30)))
                lines[j] = name + colon + b" " + junk if colon else junk
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


# -- checks ------------------------------------------------------------------------------------------
def snapshot(core: MidRegistrar) -> list[tuple[object, ...]]:
    """Everything a binding is: contacts and upstream state, in a comparable form."""
    table = core._ctx.table
    out: list[tuple[object, ...]] = []
    for aor in table.aors.values():
        up = aor.upstream
        if not aor.contacts and up is None:
            continue  # a placeholder for a relayed REGISTER in flight: no binding yet
        out.append(("aor", aor.key, None if up is None else (
            up.call_id, up.cseq, up.contact_uri, up.granted, up.expires_at)))
        for c in aor.contacts:
            cu = c.upstream
            out.append(("contact", c.aor, c.uri, c.ctid, c.expires_at, c.call_id, c.cseq, c.q,
                        c.path, c.instance, c.reg_id, c.methods, c.source,
                        None if cu is None else (cu.call_id, cu.cseq, cu.contact_uri,
                                                 cu.expires_at)))
    return sorted(out, key=repr)


def sound(core: MidRegistrar) -> None:
    table = core._ctx.table
    contacts = [c for aor in table.aors.values() for c in aor.contacts]
    assert table.contact_count == len(contacts)
    assert {id(c) for c in contacts} == {id(c) for c in table.by_ctid.values()}
    for (aor_key, _), (_, count) in table.inflight.items():
        assert count > 0 and table.aors[aor_key].pending > 0, "in-flight id of nothing pending"
    for key, aor in table.aors.items():
        assert aor.key == key and aor.pending >= 0
        assert aor.contacts or aor.pending or aor.upstream is not None, f"dangling AOR {key}"
        assert all(c.aor == key for c in aor.contacts)


def refused(actions: list[Action]) -> bool:
    """True when the core turned the input down: no request upstream, only errors or drops."""
    if any(isinstance(a, SendUpstream) for a in actions):
        return False
    for a in actions:
        if isinstance(a, Reply):
            try:
                msg = parse_message(a.data)
            except SipParseError:
                return False
            status = getattr(msg, "status", 0)
            if not isinstance(status, int) or status < 300:
                return False
    return True


def feed(net: Network, data: bytes, source: Endpoint) -> None:
    core = net.core
    before = snapshot(core)
    actions = core.receive(data, source, net.now)
    assert core.stats().internal_errors == 0, [a for a in actions if isinstance(a, Drop)]
    sound(core)
    if refused(actions):
        assert snapshot(core) == before, f"refused input changed bindings: {data!r}"


OPS = st.lists(st.tuples(st.sampled_from(["request", "response", "garbage", "tick"]),
                         st.integers(0, 4), st.sampled_from([0.0, 0.3, 1.0, 20.0, 70.0])),
               min_size=1, max_size=10)


# SANSMIDREG_FUZZ_EXAMPLES raises the budget for a long local hunt
EXAMPLES = int(os.environ.get("SANSMIDREG_FUZZ_EXAMPLES", "800"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(list(Mode)), ops=OPS, data=st.data())
def test_hostile_traffic_never_raises_nor_corrupts_bindings(mode: Mode,
                                                          ops: list[tuple[str, int, float]],
                                                          data: st.DataObject) -> None:
    net, uas, seeds, ok = world(mode)
    for kind, which, dt in ops:
        if kind == "tick":
            net.now += dt
            net.core.handle_timer(net.now)
            assert net.core.stats().internal_errors == 0
            sound(net.core)
        elif kind == "request":
            payload = data.draw(mutated(seeds[which]), label="request")
            feed(net, payload, uas[which % len(uas)].endpoint)
        elif kind == "response":
            payload = data.draw(mutated(ok), label="response")
            feed(net, payload, UPSTREAM)
        else:
            feed(net, data.draw(st.binary(max_size=300), label="garbage"), uas[0].endpoint)


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(mode=st.sampled_from(list(Mode)), text=st.text(alphabet=ALPHABET.decode(), max_size=200))
def test_register_with_junk_contact_is_refused_without_change(mode: Mode, text: str) -> None:
    net, uas, _, _ = world(mode)
    ua = uas[0]
    request = ua.register(60).replace(f"Contact: <{ua.contact_uri}>".encode(),
                                      f"Contact: {text}".encode("utf-8", "surrogateescape"))
    feed(net, request, ua.endpoint)


def test_seeds_are_valid() -> None:
    """The mutation seeds themselves are accepted (so mutants start from real traffic)."""
    for mode in Mode:
        net, uas, seeds, ok = world(mode)
        actions = net.core.receive(seeds[0], uas[0].endpoint, net.now)
        assert any(isinstance(a, (Reply, SendUpstream)) for a in actions)
        actions = net.core.receive(ok, UPSTREAM, net.now)
        assert any(isinstance(a, Reply) for a in actions)
        assert net.core.stats().internal_errors == 0
