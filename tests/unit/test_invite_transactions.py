"""The proxy's transaction state machines (RFC 3261 §17.1.1, §17.1.2, §17.2.1; RFC 6026) as
tables: every (state, event) pair, and the timers each state plans."""
from __future__ import annotations

import itertools
from typing import cast

import pytest

from sansmidreg import Endpoint
from sansmidreg._fork_context import ForkBranch, ResponseContext
from sansmidreg._invite import (
    INVITE_CLIENT,
    INVITE_SERVER,
    NON_INVITE_CLIENT,
    ClientTransaction,
    Eff,
    Ev,
    InviteServer,
    St,
)

UDP = Endpoint(host="127.0.0.1", port=5201)
TCP = Endpoint(transport="tcp", host="127.0.0.1", port=5201, flow=1)
OWNER = cast(ForkBranch, object())
CONTEXT = cast(ResponseContext, object())


def client(method: str = "INVITE", dest: Endpoint = UDP, now: float = 0.0) -> ClientTransaction:
    return ClientTransaction(branch="z9hG4bKx", method=method, data=b"", dest=dest, owner=OWNER,
                             now=now, t1=0.5, t2=4.0, t4=5.0)


def deadline(txn: ClientTransaction | InviteServer) -> float | None:
    return txn.next_at


def server(reliable: bool = False) -> InviteServer:
    return InviteServer(key=("k",), dest=UDP, reliable=reliable, context=CONTEXT, t1=0.5, t2=4.0,
                        t4=5.0)


@pytest.mark.parametrize("table", [INVITE_CLIENT, NON_INVITE_CLIENT, INVITE_SERVER])
def test_terminated_is_absorbing_and_reachable(table: dict[tuple[St, Ev], tuple[St, Eff]]) -> None:
    assert not any(state is St.TERMINATED for state, _ in table)
    assert any(target is St.TERMINATED for target, _ in table.values())


@pytest.mark.parametrize(("state", "event"), list(itertools.product(St, Ev)))
def test_every_pair_of_the_client_tables_is_total(state: St, event: Ev) -> None:
    for method in ("INVITE", "MESSAGE"):
        txn = client(method)
        txn.state = state
        effect = txn.step(event)
        if (state, event) not in txn.table:
            assert (txn.state, effect) == (state, Eff.ABSORB)


@pytest.mark.parametrize(("state", "event"), list(itertools.product(St, Ev)))
def test_every_pair_of_the_server_table_is_total(state: St, event: Ev) -> None:
    txn = server()
    txn.state = state
    effect = txn.step(event, 1.0)
    if (state, event) not in INVITE_SERVER:
        assert (txn.state, effect) == (state, Eff.ABSORB)


def test_invite_client_timer_a_doubles_until_timer_b() -> None:
    txn = client()
    fired = []
    while txn.next_at is not None and txn.state is St.CALLING:
        now = txn.next_at
        event = txn.due_event(now)
        fired.append((now, event))
        txn.step(event)  # type: ignore[arg-type]
    assert [t for t, e in fired if e is Ev.TIMER_A] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert fired[-1] == (32.0, Ev.TIMER_B) and txn.state is St.TERMINATED


def test_invite_client_over_tcp_has_no_timer_a() -> None:
    txn = client(dest=TCP)
    assert txn.next_at == 32.0 and txn.due_event(32.0) is Ev.TIMER_B


def test_invite_client_proceeding_has_no_timer_then_d_and_m() -> None:
    txn = client()
    txn.step(Ev.PROVISIONAL)
    txn.after_response(St.CALLING, 1.0)
    assert txn.state is St.PROCEEDING and deadline(txn) is None
    assert txn.step(Ev.FAILURE) is Eff.PASS_ACK
    txn.after_response(St.PROCEEDING, 2.0)
    assert deadline(txn) == 34.0 and txn.due_event(34.0) is Ev.TIMER_D  # 32 s on UDP
    accepted = client(dest=TCP)
    assert accepted.step(Ev.SUCCESS) is Eff.PASS
    accepted.after_response(St.CALLING, 1.0)
    assert accepted.next_at == 33.0 and accepted.due_event(33.0) is Ev.TIMER_M
    assert accepted.step(Ev.SUCCESS) is Eff.PASS  # RFC 6026: retransmitted 2xx go upstream


def test_completed_invite_client_acks_retransmitted_finals() -> None:
    txn = client()
    txn.step(Ev.FAILURE)
    assert txn.step(Ev.FAILURE) is Eff.ACK and txn.step(Ev.PROVISIONAL) is Eff.ABSORB


def test_non_invite_client_timer_e_caps_at_t2() -> None:
    txn = client("OPTIONS")
    times = []
    while txn.state is not St.TERMINATED:
        assert txn.next_at is not None
        now = txn.next_at
        event = txn.due_event(now)
        if event is Ev.TIMER_E:
            times.append(now)
        txn.step(event)  # type: ignore[arg-type]
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]


def test_non_invite_client_timer_k() -> None:
    txn = client("CANCEL")
    txn.step(Ev.SUCCESS)
    txn.after_response(St.TRYING, 1.0)
    assert txn.next_at == 6.0 and txn.due_event(6.0) is Ev.TIMER_K
    assert txn.step(Ev.TIMER_K) is Eff.NONE and txn.state is St.TERMINATED


def test_invite_server_timer_g_doubles_to_t2_until_h() -> None:
    txn = server()
    assert txn.step(Ev.SEND_FAILURE, 0.0) is Eff.SEND
    resends = []
    while txn.state is St.COMPLETED:
        assert txn.next_at is not None
        now = txn.next_at
        event = txn.due_event(now)
        if event is Ev.TIMER_G:
            resends.append(now)
        txn.step(event, now)  # type: ignore[arg-type]
    assert resends[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5] and resends[-1] < 32.0
    assert txn.state is St.TERMINATED


def test_invite_server_ack_confirms_then_timer_i() -> None:
    txn = server()
    txn.step(Ev.SEND_FAILURE, 0.0)
    assert txn.step(Ev.REQUEST, 0.1) is Eff.RESEND
    assert txn.step(Ev.ACK, 1.0) is Eff.ABSORB and txn.state is St.CONFIRMED
    assert txn.next_at == 6.0 and txn.due_event(6.0) is Ev.TIMER_I
    reliable = server(reliable=True)
    reliable.step(Ev.SEND_FAILURE, 0.0)
    assert reliable.next_at == 32.0  # no Timer G over TCP
    reliable.step(Ev.ACK, 1.0)
    assert reliable.next_at == 1.0  # Timer I is 0 over TCP


def test_invite_server_accepted_sends_later_2xx_and_ends_with_timer_l() -> None:
    txn = server()
    assert txn.step(Ev.SEND_SUCCESS, 0.0) is Eff.SEND and txn.state is St.ACCEPTED
    assert txn.step(Ev.SEND_SUCCESS, 1.0) is Eff.SEND
    assert txn.step(Ev.REQUEST, 1.0) is Eff.ABSORB
    assert txn.step(Ev.SEND_FAILURE, 1.0) is Eff.ABSORB
    assert txn.next_at == 32.0 and txn.due_event(32.0) is Ev.TIMER_L
