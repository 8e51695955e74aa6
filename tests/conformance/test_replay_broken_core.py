# A deliberately broken core must fail the traces that show the behaviour it broke: the runner is
# only worth something if it notices. Each break is small and realistic: the registrar relays
# every refresh (no throttling), our own de-REGISTERs get lost, every message goes out twice, the
# Expires of relayed REGISTERs is left as the device asked.
from __future__ import annotations

from pathlib import Path

import pytest

from sansmidreg import Action, Config, Endpoint, IdSource, MidRegistrar, SendUpstream
from sansmidreg._registrar import Registrar
from sansmidreg.conformance import (
    CoreFactory,
    CoreLike,
    Trace,
    load_trace,
    replay_trace,
)

ROOT = Path(__file__).resolve().parents[2] / "conformance"


def trace(name: str, corpus: str = "ours") -> Trace:
    folder = ROOT / "traces" if corpus == "ours" else ROOT / "oracle" / "traces"
    return load_trace(folder / f"{name}.txt")


class _Wrapped:
    """A core whose actions pass through ``filter`` (on receive, on timers, or both)."""

    def __init__(self, core: MidRegistrar, on_receive: bool, on_timer: bool) -> None:
        self.core = core
        self.on_receive = on_receive
        self.on_timer = on_timer

    def filter(self, actions: list[Action]) -> list[Action]:
        raise NotImplementedError

    def receive(self, data: bytes, source: Endpoint, now: float) -> list[Action]:
        actions = self.core.receive(data, source, now)
        return self.filter(actions) if self.on_receive else actions

    def handle_timer(self, now: float) -> list[Action]:
        actions = self.core.handle_timer(now)
        return self.filter(actions) if self.on_timer else actions

    def next_deadline(self) -> float | None:
        return self.core.next_deadline()


class _LosesDeregisters(_Wrapped):
    def filter(self, actions: list[Action]) -> list[Action]:
        return [a for a in actions if not isinstance(a, SendUpstream)]


class _SendsTwice(_Wrapped):
    def filter(self, actions: list[Action]) -> list[Action]:
        return [b for a in actions for b in ((a, a) if isinstance(a, SendUpstream) else (a,))]


def _factory(kind: type[_Wrapped], *, on_receive: bool, on_timer: bool) -> CoreFactory:
    def make(config: Config, ids: IdSource) -> CoreLike:
        return kind(MidRegistrar(config, ids=ids), on_receive, on_timer)
    return make


def test_the_unbroken_core_passes() -> None:
    for name in ("ctthrottle-refresh", "ctthrottle-expire", "aorthrottle-expire"):
        assert replay_trace(trace(name)).passed


def test_lost_deregister_fails_the_expiry_traces() -> None:
    broken = _factory(_LosesDeregisters, on_receive=False, on_timer=True)
    result = replay_trace(trace("ctthrottle-expire"), core_factory=broken)
    assert result.failure is not None and result.failure.block == 9
    assert result.failure.summary == ("expected message not sent (nothing to 127.0.0.1:5080 "
                                      "within 0.5 s)")
    oracle = replay_trace(trace("expire-ctthrottle", "oracle"), core_factory=broken)
    assert not oracle.passed
    aor = replay_trace(trace("aorthrottle-expire"), core_factory=broken)
    assert aor.failure is not None and aor.failure.block == 9


def test_duplicated_upstream_requests_fail() -> None:
    broken = _factory(_SendsTwice, on_receive=True, on_timer=False)
    result = replay_trace(trace("mirror-refresh"), core_factory=broken)
    assert result.failure is not None
    assert result.failure.summary.startswith("unexpected message to 127.0.0.1:5080")


def test_a_registrar_that_relays_every_refresh_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # the absorbed-refresh fast path (sansmidreg._fastpath) must be switched off too
    monkeypatch.setattr("sansmidreg._core.absorb_fast", lambda *args: None)
    monkeypatch.setattr(Registrar, "_plan_contact", lambda self, *args: None)
    monkeypatch.setattr(Registrar, "_plan_aor", lambda self, *args: None)
    result = replay_trace(trace("ctthrottle-refresh"))
    # block 6 is the locally answered refresh: nothing comes back to the phone in time
    assert result.failure is not None and result.failure.block == 6
    assert result.failure.summary.startswith("expected message not sent")
    assert not replay_trace(trace("refresh-aorthrottle", "oracle")).passed
    assert not replay_trace(trace("aorthrottle-window")).passed


def test_unthrottled_expires_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Registrar._relay

    def relay_without_outgoing_expires(self: Registrar, *args: object, **kwargs: object
                                       ) -> list[Action]:
        object.__setattr__(self.ctx.cfg, "outgoing_expires", 60)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Registrar, "_relay", relay_without_outgoing_expires)
    result = replay_trace(trace("ctthrottle-refresh"))
    assert result.failure is not None and result.failure.block == 2
    assert result.failure.summary in ("Contact set differs", "Expires differs")
    assert "expected <sip:alice@127.0.0.1:5060;ctid=" in result.report()
