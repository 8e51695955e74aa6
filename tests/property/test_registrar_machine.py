# The registrar against a simulated world (issue 3, deliverable 5): a hypothesis rule-based state
# machine drives a population of simulated UAs (two AORs, several devices) and a scriptable
# simulated main registrar over a virtual clock, in every mode.
#
# Rules: a UA registers / refreshes / un-registers (`;expires=0`, `Expires: 0`) / sends
# `Contact: *` / queries / retransmits / reboots (new Call-ID) / goes silent (time passes); time
# advances, firing every deadline on the way; the main registrar challenges, refuses, loses or
# shortens the next request (or our next de-REGISTER).
# Invariants, after every event of the network and every step (tests/sim/invariants.py):
# (a) every live local contact is reachable through an upstream binding that lives as long;
# (b) no upstream binding outlives its local contacts by more than 64*T1 unless our
#     de-REGISTER of it failed (and the core counted it);
# (c) every 2xx a UA gets lists its own lifetime, never the upstream one, and no Expires;
# (d) handle_timer(t) before next_deadline() sends nothing (rule `early_tick`);
# (e) replaying the recorded inputs into a fresh core with the same seed gives byte-identical
#     actions (teardown);
# and never an exception, never an internal error.
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import ClassVar

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sansmidreg import Config, Fork, Mode, Reply, SendRequest, SendUpstream

if (_tests := str(Path(__file__).resolve().parents[1])) not in sys.path:
    sys.path.insert(0, _tests)  # tests/ holds the shared simulation harness, tests/sim

from sim import Behaviour, Invariants, Network, SimMainRegistrar, SimUA, replay

# SANSMIDREG_MACHINE_EXAMPLES raises the budget for a long local hunt (the default keeps the
# whole property suite well under a minute)
SETTINGS = settings(max_examples=int(os.environ.get("SANSMIDREG_MACHINE_EXAMPLES", "200")),
                    stateful_step_count=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
BASE = Config(mode=Mode.CONTACT_THROTTLING, outgoing_expires=600, min_expires=5,
              max_expires=3600)
DEVICES = (("alice", 5201), ("alice", 5202), ("alice", 5203), ("bob", 5204))
LATENCY = 0.002


class RegistrarMachine(RuleBasedStateMachine):
    """The shared rules; subclasses pick the configuration."""

    CONFIG: ClassVar[Config] = BASE
    EXPIRES: ClassVar[tuple[int, ...]] = (2, 30, 60, 120, 300, 590, 3600, 7200)

    def __init__(self) -> None:
        super().__init__()
        registrar = SimMainRegistrar(shorten_to=45)
        self.net = Network(self.CONFIG, seed=11, latency=LATENCY, registrar=registrar)
        self.inv = Invariants(tolerance=2 * LATENCY + 1e-6)
        self.net.hooks.append(self.inv)
        self.uas = [self.net.add(SimUA(user=u, port=p)) for u, p in DEVICES]
        self.reboots = 0

    # -- UAs -------------------------------------------------------------------------------------
    def _send(self, ua: SimUA, data: bytes) -> None:
        self.net.send(ua, data)
        self.net.settle(0.05)

    def _ready(self, ua: SimUA) -> SimUA:
        """RFC 3261 §10.2: a UA sends no new REGISTER before the previous one got its final
        response (or timed out): wait for it, time passing meanwhile."""
        deadline = self.net.now + 64 * self.net.config.t1 + 1.0
        while ua.awaiting and self.net.now < deadline:
            self.net.advance(self.net.now + 0.5)
        return ua

    @rule(i=st.integers(0, len(DEVICES) - 1), e=st.data(),
          style=st.sampled_from(["header", "param", "both", "none"]))
    def register(self, i: int, e: st.DataObject, style: str) -> None:
        expires = e.draw(st.sampled_from(self.EXPIRES))
        ua = self._ready(self.uas[i])
        self._send(ua, ua.register(None if style == "none" else expires,
                                   style="header" if style == "none" else style))  # type: ignore[arg-type]

    @rule(i=st.integers(0, len(DEVICES) - 1), style=st.sampled_from(["header", "param"]))
    def unregister(self, i: int, style: str) -> None:
        ua = self._ready(self.uas[i])
        self._send(ua, ua.register(0, style=style))  # type: ignore[arg-type]

    @rule(i=st.integers(0, len(DEVICES) - 1))
    def register_two_contacts(self, i: int) -> None:
        ua = self._ready(self.uas[i])
        second = f"<sip:{ua.user}@127.0.0.1:{ua.port + 100}>"
        self._send(ua, ua.register(60, contacts=[f"<{ua.contact_uri}>", second]))

    @rule(i=st.integers(0, len(DEVICES) - 1))
    def star(self, i: int) -> None:
        ua = self._ready(self.uas[i])
        self._send(ua, ua.register(0, star=True))

    @rule(i=st.integers(0, len(DEVICES) - 1))
    def query(self, i: int) -> None:
        ua = self._ready(self.uas[i])
        self._send(ua, ua.register(None, query=True))

    @rule(i=st.integers(0, len(DEVICES) - 1))
    def retransmit(self, i: int) -> None:
        ua = self.uas[i]
        if ua.last_branch is not None:
            self.net.inject(ua.retransmit(), ua.endpoint)
            self.net.settle(0.05)

    @rule(i=st.integers(0, len(DEVICES) - 1))
    def reboot(self, i: int) -> None:
        self.reboots += 1
        ua = self._ready(self.uas[i])
        ua.restart(f"reboot-{self.reboots}@{ua.port}")

    # -- time --------------------------------------------------------------------------------------
    @rule(dt=st.sampled_from([0.05, 0.3, 1.0, 5.0, 20.0, 31.0, 45.0, 59.0, 61.0, 300.0, 900.0,
                              3700.0]))
    def wait(self, dt: float) -> None:
        self.net.advance(self.net.now + dt)

    @rule(frac=st.floats(0.0, 0.999))
    def early_tick(self, frac: float) -> None:
        """(d): handle_timer(t) for a t before next_deadline() sends nothing."""
        self.net.settle(0.05)
        deadline = self.net.core.next_deadline()
        if deadline is None:
            return
        when = self.net.now + frac * (deadline - self.net.now)
        pending = self.net._events
        if pending and pending[0][0] <= when:
            return  # a delivery comes first; the network would run it
        actions = self.net.tick(when)
        sends = [a for a in actions if isinstance(a, (SendUpstream, Reply, Fork, SendRequest))]
        assert not sends, f"handle_timer({when}) before next_deadline {deadline}: {sends}"

    # -- the main registrar --------------------------------------------------------------------------
    @rule(b=st.sampled_from(list(Behaviour)))
    def main_registrar_next(self, b: Behaviour) -> None:
        self.net.registrar.expect(b)

    @rule(b=st.sampled_from([Behaviour.REJECT, Behaviour.DROP, Behaviour.DROP_FIRST]))
    def main_registrar_next_deregister(self, b: Behaviour) -> None:
        self.net.registrar.expect_deregister(b)

    # -- invariants --------------------------------------------------------------------------------
    @invariant()
    def holds(self) -> None:
        self.inv.check(self.net)
        self.inv.raise_if_any()
        stats = self.net.core.stats()
        assert stats.internal_errors == 0
        for name in ("registers_absorbed", "registers_relayed", "deregisters_sent",
                     "deregisters_failed", "relayed_timeouts", "retransmissions_absorbed",
                     "registers_rejected"):
            if getattr(stats, name):
                event(name)  # what the run reached (pytest --hypothesis-show-statistics)
        assert not self.net.stray, self.net.stray[:1]

    def teardown(self) -> None:
        net = self.net
        # let every transaction end, then (b)'s bookkeeping: each refused or lost de-REGISTER
        # of ours was counted by the core
        net.advance(net.now + 64 * net.config.t1 + 10)
        self.inv.raise_if_any()
        assert net.core._ctx.table.inflight == {}  # every relay answered or timed out
        stats = net.core.stats()
        ended = net.now - 64 * net.config.t1 - 1.0
        refused = [t for t in net.registrar.refused_at] + [t for t, _ in net.registrar.lost]
        assert stats.deregisters_failed >= sum(1 for t in refused if t <= ended)
        # (e) determinism: the same inputs into a fresh core give byte-identical actions
        assert replay(net.config, net.seed, net.inputs) == net.outputs


class MirrorMachine(RegistrarMachine):
    CONFIG = dataclasses.replace(BASE, mode=Mode.MIRROR)
    # mirror mode relays the lifetime clamped to max_expires like the local binding (compat
    # "opensips" relays it raw, OPENSIPS-BEHAVIOUR.md §3.7), so lifetimes above it are fine
    EXPIRES = (2, 30, 60, 120, 300, 590, 3600, 7200)


class ContactMachine(RegistrarMachine):
    CONFIG = BASE


class ContactCompatMachine(RegistrarMachine):
    CONFIG = dataclasses.replace(BASE, compat="opensips")


class AorMachine(RegistrarMachine):
    CONFIG = dataclasses.replace(BASE, mode=Mode.AOR_THROTTLING)


class AorDomainMachine(RegistrarMachine):
    CONFIG = dataclasses.replace(BASE, mode=Mode.AOR_THROTTLING, use_domain=True,
                                 max_contacts=2, force_registration=True)


TestMirror = MirrorMachine.TestCase
TestContactThrottling = ContactMachine.TestCase
TestContactThrottlingCompat = ContactCompatMachine.TestCase
TestAorThrottling = AorMachine.TestCase
TestAorThrottlingUseDomain = AorDomainMachine.TestCase
for _case in (TestMirror, TestContactThrottling, TestContactThrottlingCompat, TestAorThrottling,
              TestAorThrottlingUseDomain):
    _case.settings = SETTINGS
del _case
