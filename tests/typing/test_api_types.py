# The public API's types, as a user's type checker sees them (STYLE.md §9, h2's tests/typing):
# `assert_type` is checked by mypy (`python3 -m mypy` covers tests/), and the file also runs under
# pytest so every line stays executable. An adapter's `match` over the Action union ending in
# `assert_never` must type-check: adding an action without handling it is a mypy error.
from __future__ import annotations

from typing import assert_never, assert_type

import sansmidreg
from sansmidreg import (
    Action,
    ArmTimer,
    Branch,
    Config,
    Drop,
    Endpoint,
    Fork,
    IdSource,
    MidRegistrar,
    Mode,
    Reply,
    SeededIds,
    SendRequest,
    SendUpstream,
    Stats,
    SystemIds,
    Transport,
    UsageError,
    parse_endpoint,
)


def describe(action: Action) -> str:
    """What an adapter's executor looks like: exhaustive over the closed union."""
    match action:
        case SendUpstream(data=data, dest=dest):
            assert_type(data, bytes)
            assert_type(dest, Endpoint)
            return f"upstream {len(data)} bytes to {dest}"
        case Reply(data=data, dest=dest):
            return f"reply {len(data)} bytes to {dest}"
        case Fork(branches=branches):
            assert_type(branches, tuple[Branch, ...])
            return f"fork to {len(branches)}"
        case SendRequest(data=data, dest=dest):
            return f"request to {dest}"
        case ArmTimer(at=at):
            assert_type(at, float | None)
            return f"timer {at}"
        case Drop(reason=reason, detail=detail, source=source):
            assert_type(reason, str)
            assert_type(source, Endpoint | None)
            return f"drop {reason}: {detail}"
        case _:
            assert_never(action)


def test_core_entry_points_are_typed() -> None:
    config = Config(mode=Mode.CONTACT_THROTTLING)
    assert_type(config, Config)
    assert_type(Config.from_mapping({"mode": "mirror"}), Config)
    ids: IdSource = SeededIds(7)
    core = MidRegistrar(config, ids=ids)
    assert_type(core.config, Config)
    source = Endpoint(host="127.0.0.1", port=5201)
    actions = core.receive(b"REGISTER sip:x SIP/2.0\r\n\r\n", source, 0.0)
    assert_type(actions, list[Action])
    assert_type(core.handle_timer(1.0), list[Action])
    assert_type(core.next_deadline(), float | None)
    stats = core.stats()
    assert_type(stats, Stats)
    assert_type(stats.internal_errors, int)
    assert_type(stats.rejected_by_status, tuple[tuple[int, int], ...])
    assert all(isinstance(describe(a), str) for a in actions)


def test_values_and_helpers_are_typed() -> None:
    endpoint = parse_endpoint("tcp:127.0.0.1:5080")
    assert_type(endpoint, Endpoint)
    assert_type(endpoint.transport, Transport)
    assert_type(endpoint.flow, int | None)
    assert_type(endpoint.is_reliable, bool)
    assert_type(Mode.parse("aor"), Mode)
    assert_type(Config().clamp_expires(60), int)
    assert_type(Config().advertised_endpoint, Endpoint)
    assert_type(SeededIds(1).token(), str)
    assert_type(SystemIds().contact_id(), int)
    assert_type(sansmidreg.__version__, str)
    error = UsageError("x")
    assert_type(error, UsageError)
    assert isinstance(error, Exception)
