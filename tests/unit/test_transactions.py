# RFC 3261 §17.1.2 / §17.2.2 non-INVITE transactions (src/sansmidreg/_transactions.py): the
# transition tables, timer E doubling up to T2 (and T2 in Proceeding), timer F at 64*T1, timer K
# (T4 on UDP, 0 on TCP), no timer E on reliable transports, server transactions absorbing
# retransmissions before the answer and resending the last response after it, timer J.
from __future__ import annotations

from sansmidreg import Endpoint, Reply, SendRequest, SendUpstream
from sansmidreg._actions import Action
from sansmidreg._stats import Counters
from sansmidreg._timers import DeadlineHeap
from sansmidreg._transactions import (
    CLIENT_TABLE,
    SERVER_TABLE,
    ClientTxn,
    Effect,
    Event,
    ServerTxn,
    TransactionLayer,
    TxnState,
)
from sansmidreg.sip import Response, parse_message

UDP = Endpoint(host="127.0.0.1", port=5080)
TCP = Endpoint(transport="tcp", host="127.0.0.1", port=5080)


class Recorder:
    """A transaction user that records what it is told."""

    def __init__(self) -> None:
        self.responses: list[int] = []
        self.timeouts = 0

    def on_response(self, txn: ClientTxn, response: Response, now: float) -> list[Action]:
        self.responses.append(response.status)
        return []

    def on_timeout(self, txn: ClientTxn, now: float) -> list[Action]:
        self.timeouts += 1
        return []


def ok(status: int = 200) -> Response:
    msg = parse_message(f"SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\r\nFrom: <sip:a@b>"
                        f";tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n"
                        f"Content-Length: 0\r\n\r\n".encode())
    assert isinstance(msg, Response)
    return msg


def client(dest: Endpoint = UDP, *, upstream: bool = True) -> tuple[TransactionLayer, ClientTxn,
                                                                    Recorder]:
    layer = TransactionLayer(DeadlineHeap(), Counters())
    user = Recorder()
    txn = ClientTxn(branch="z9hG4bKb", data=b"REGISTER", dest=dest, user=user, now=0.0, t1=0.5,
                    t2=4.0, t4=5.0, upstream=upstream)
    layer.start_client(txn)
    return layer, txn, user


def run(layer: TransactionLayer, until: float) -> list[tuple[float, Action]]:
    """Fire the layer's client deadlines up to ``until``; (time, action) of every send."""
    out: list[tuple[float, Action]] = []
    while (deadline := layer.heap.next_deadline()) is not None and deadline <= until:
        key = layer.heap.pop_due(deadline)
        assert isinstance(key, ClientTxn)
        out.extend((deadline, a) for a in layer.client_timer(key, deadline))
    return out


def test_client_table_follows_rfc3261_figure_6() -> None:
    S = TxnState
    assert CLIENT_TABLE[(S.TRYING, Event.FINAL)] == (S.COMPLETED, Effect.PASS)
    assert CLIENT_TABLE[(S.TRYING, Event.PROVISIONAL)] == (S.PROCEEDING, Effect.PASS)
    assert CLIENT_TABLE[(S.PROCEEDING, Event.TIMER_F)] == (S.TERMINATED, Effect.TIMEOUT)
    assert CLIENT_TABLE[(S.COMPLETED, Event.FINAL)] == (S.COMPLETED, Effect.ABSORB)
    assert CLIENT_TABLE[(S.COMPLETED, Event.TIMER_K)] == (S.TERMINATED, Effect.NONE)
    assert not any(state is S.TERMINATED for state, _ in CLIENT_TABLE)


def test_server_table_follows_rfc3261_figure_8() -> None:
    S = TxnState
    assert SERVER_TABLE[(S.TRYING, Event.REQUEST)] == (S.TRYING, Effect.ABSORB)
    assert SERVER_TABLE[(S.PROCEEDING, Event.REQUEST)] == (S.PROCEEDING, Effect.RESEND)
    assert SERVER_TABLE[(S.COMPLETED, Event.REQUEST)] == (S.COMPLETED, Effect.RESEND)
    assert SERVER_TABLE[(S.COMPLETED, Event.TIMER_J)] == (S.TERMINATED, Effect.NONE)


def test_unknown_client_transition_changes_nothing() -> None:
    _, txn, _ = client()
    assert txn.step(Event.TIMER_K) is Effect.ABSORB and txn.state is TxnState.TRYING


def test_timer_e_doubles_up_to_t2_then_timer_f_times_out() -> None:
    layer, txn, user = client()
    sends = run(layer, 40.0)
    assert [t for t, _ in sends] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(isinstance(a, SendUpstream) and a.data == b"REGISTER" for _, a in sends)
    assert user.timeouts == 1 and txn.state is TxnState.TERMINATED
    assert "z9hG4bKb" not in layer.clients and layer.counters.retransmissions_sent == 10


def test_timer_e_stays_at_t2_in_proceeding() -> None:
    layer, txn, user = client()
    run(layer, 0.6)  # one retransmission at 0.5, next due at 1.5
    layer.client_response(txn, ok(180), 0.7)
    assert txn.state is TxnState.PROCEEDING and user.responses == [180]
    sends = run(layer, 12.0)
    assert [t for t, _ in sends] == [1.5, 5.5, 9.5]


def test_final_response_stops_retransmissions_and_lingers_timer_k() -> None:
    layer, txn, user = client()
    layer.client_response(txn, ok(), 0.2)
    assert txn.state is TxnState.COMPLETED and user.responses == [200]
    assert layer.client_response(txn, ok(), 0.3) == [] and user.responses == [200]  # absorbed
    assert run(layer, 5.19) == [] and "z9hG4bKb" in layer.clients
    run(layer, 5.2)
    assert "z9hG4bKb" not in layer.clients
    assert txn.state.value == "terminated"
    assert user.timeouts == 0


def test_reliable_transport_has_no_timer_e_and_no_timer_k() -> None:
    layer, _, user = client(TCP)
    assert run(layer, 31.9) == []
    run(layer, 32.0)
    assert user.timeouts == 1
    layer2, txn2, _ = client(TCP)
    layer2.client_response(txn2, ok(), 1.0)
    run(layer2, 1.0)
    assert txn2.state is TxnState.TERMINATED


def test_non_upstream_client_sends_send_request() -> None:
    _, txn, _ = client(upstream=False)
    assert isinstance(txn.send(), SendRequest)


def test_server_transaction_absorbs_then_resends_the_last_response() -> None:
    layer = TransactionLayer(DeadlineHeap())
    key = ("z9hG4bKua", "127.0.0.1:5201", "REGISTER")
    txn = layer.start_server(key, Endpoint(host="127.0.0.1", port=5201), 32.0)
    assert layer.server(key) is txn
    assert layer.server_retransmission(txn) is None  # Trying: absorbed
    trying = Reply(data=b"SIP/2.0 100", dest=txn.source)
    layer.server_send(txn, trying, 100, 0.1)
    assert layer.server_retransmission(txn) == trying  # Proceeding: the provisional again
    final = Reply(data=b"SIP/2.0 200", dest=txn.source)
    layer.server_send(txn, final, 200, 0.2)
    assert txn.state is TxnState.COMPLETED
    assert layer.server_retransmission(txn) == final
    assert layer.heap.next_deadline() == 32.2  # timer J = 64*T1 on UDP
    key_due = layer.heap.pop_due(32.2)
    assert isinstance(key_due, ServerTxn)
    layer.server_timer(key_due)
    assert layer.server(key) is None


def test_server_transaction_on_tcp_ends_at_once() -> None:
    layer = TransactionLayer(DeadlineHeap())
    txn = layer.start_server(("b",), Endpoint(transport="tcp", host="h", port=1, flow=3), 32.0)
    layer.server_send(txn, Reply(data=b"x", dest=txn.source), 200, 5.0)
    assert layer.heap.next_deadline() == 5.0
