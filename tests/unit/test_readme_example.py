# The README's embedding example (docs/embedding_example.py) must keep working: run it for a
# few seconds on 127.0.0.1 between a device socket and a fake main registrar (the simulated
# RFC 3261 registrar of tests/sim behind a real UDP socket), register once (relayed) and refresh
# once (absorbed). Loopback only, every wait bounded.
from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

from sansmidreg import Endpoint, MidRegistrar
from sansmidreg.sip import Response, parse_message

if (_tests := str(Path(__file__).resolve().parents[1])) not in sys.path:
    sys.path.insert(0, _tests)  # tests/ holds the shared simulation harness, tests/sim

from sim import SimMainRegistrar, SimUA

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "embedding_example.py"
RUN_FOR = 4.0


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("embedding_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3.0)
    return sock


def free_port() -> int:
    with udp_socket() as probe:
        port: int = probe.getsockname()[1]
    return port


def fake_registrar(sock: socket.socket, registrar: SimMainRegistrar, stop: threading.Event
                   ) -> None:
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(65535)
        except TimeoutError:
            continue
        answer = registrar.receive(data, time.monotonic())
        if answer is not None:
            sock.sendto(answer, peer)


def exchange(ua_sock: socket.socket, ua: SimUA, data: bytes, mid: tuple[str, int]) -> Response:
    ua_sock.sendto(data, mid)
    while True:
        reply = parse_message(ua_sock.recvfrom(65535)[0])
        assert isinstance(reply, Response)
        if reply.status >= 200:
            ua.on_response(reply.serialize(), time.monotonic())
            return reply


def test_embedding_example_relays_then_absorbs_on_loopback() -> None:
    example = load_example()
    registrar = SimMainRegistrar()
    stop = threading.Event()
    with udp_socket() as upstream_sock, udp_socket() as ua_sock:
        upstream = Endpoint(host="127.0.0.1", port=upstream_sock.getsockname()[1])
        listen = Endpoint(host="127.0.0.1", port=free_port())
        registrar.mid_registrar = listen
        cores: list[MidRegistrar] = []
        server = threading.Thread(
            target=lambda: cores.append(example.serve(listen, upstream, run_for=RUN_FOR)),
            daemon=True)
        fake = threading.Thread(target=fake_registrar, args=(upstream_sock, registrar, stop),
                                daemon=True)
        fake.start()
        server.start()
        try:
            time.sleep(0.3)  # let serve() bind
            ua = SimUA(user="alice", port=ua_sock.getsockname()[1])
            mid = (listen.host, listen.port)
            first = exchange(ua_sock, ua, ua.register(60), mid)
            assert first.status == 200
            assert [(str(c.uri), c.expires) for c in first.contacts.items] == [
                (ua.contact_uri, "60")]
            refresh = exchange(ua_sock, ua, ua.register(60), mid)
            assert refresh.status == 200 and refresh.cseq.seq == 2
            assert len(registrar.seen) == 1  # the refresh was absorbed
            (binding,) = registrar.live(time.monotonic())
            assert binding.uri.startswith(f"sip:alice@127.0.0.1:{listen.port};ctid=")
        finally:
            server.join(RUN_FOR + 5.0)
            stop.set()
            fake.join(5.0)
    assert not server.is_alive() and not fake.is_alive()
    (core,) = cores
    stats = core.stats()
    assert (stats.registers_relayed, stats.registers_absorbed, stats.internal_errors) == (1, 1, 0)
