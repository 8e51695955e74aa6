"""Shared pieces of the adapter tests: SIP messages a phone and a main registrar send, a core on
loopback, and a runner that serves any backend from a background thread (for the tests written
once for every backend with blocking sockets: bad input, the asyncio example)."""

from __future__ import annotations

import queue
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import anyio.from_thread
import trio

from sansmidreg import Config, Endpoint, MidRegistrar, Mode, SeededIds
from sansmidreg.sip import StreamFramer
from sansmidreg_adapters._common import ServerOptions
from sansmidreg_adapters.anyio_backend import AnyioServer
from sansmidreg_adapters.sockets import SocketServer
from sansmidreg_adapters.trio_backend import TrioServer

LOOPBACK: Final = "127.0.0.1"
TIMEOUT: Final = 5.0
BACKENDS: Final = ("sockets", "anyio-asyncio", "anyio-trio", "trio")


def register(user: str, cseq: int, port: int, *, transport: str = "UDP", expires: int = 60,
             call_id: str | None = None, contact_port: int | None = None) -> bytes:
    """A phone's REGISTER from 127.0.0.1:``port``."""
    return (
        f"REGISTER sip:example.test SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {LOOPBACK}:{port};branch=z9hG4bK{user}{cseq}x{port}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@example.test>;tag=f{user}\r\n"
        f"To: <sip:{user}@example.test>\r\n"
        f"Call-ID: {call_id or 'call-' + user}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:{user}@{LOOPBACK}:{contact_port or port}>\r\n"
        f"Expires: {expires}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


_KEEP: Final = re.compile(rb"^(via|from|to|call-id|cseq|contact)\s*:.*$", re.I | re.M)


def ok_for(request: bytes, *, to_tag: str = "main") -> bytes:
    """The main registrar's 200 OK to a REGISTER (Vias, From, To + tag, Call-ID, CSeq, Contact
    copied; a Contact without ``expires`` gets the Expires header's value)."""
    head = request.split(b"\r\n\r\n", 1)[0]
    expires = re.search(rb"^Expires:\s*(\d+)", head, re.I | re.M)
    lines = []
    for m in _KEEP.finditer(head):
        line = m.group(0).rstrip(b"\r")
        if line.lower().startswith(b"to:"):
            line += b";tag=" + to_tag.encode()
        elif line.lower().startswith(b"contact:") and b"expires=" not in line and expires:
            line += b";expires=" + expires.group(1)
        lines.append(line)
    return b"SIP/2.0 200 OK\r\n" + b"\r\n".join(lines) + b"\r\nContent-Length: 0\r\n\r\n"


def status(response: bytes) -> int:
    assert response.startswith(b"SIP/2.0 "), response[:80]
    return int(response[8:11])


def header(message: bytes, name: str) -> str | None:
    m = re.search(rb"^" + name.encode() + rb"\s*:\s*(.*?)\r?$", message, re.I | re.M)
    return None if m is None else m.group(1).decode()


def make_core(upstream: Endpoint, *, mode: Mode = Mode.CONTACT_THROTTLING,
              **fields: object) -> MidRegistrar:
    """A core that believes it is 127.0.0.1 (ports are what the test binds)."""
    config = Config(mode=mode, upstream=upstream, local=(Endpoint(host=LOOPBACK, port=0),),
                    **fields)  # type: ignore[arg-type]
    return MidRegistrar(config, ids=SeededIds(5))


LISTEN_UDP_TCP: Final = (Endpoint(host=LOOPBACK, port=0),
                         Endpoint(transport="tcp", host=LOOPBACK, port=0))


class Messages:
    """Whole SIP messages out of a byte stream, one at a time (several may share a chunk)."""

    def __init__(self) -> None:
        self._framer = StreamFramer()
        self._ready: list[bytes] = []

    def feed(self, data: bytes | bytearray) -> None:
        self._ready += self._framer.feed(bytes(data))

    def pop(self) -> bytes | None:
        return self._ready.pop(0) if self._ready else None


class Udp:
    """A blocking UDP peer on loopback (a phone or the main registrar), bounded by TIMEOUT."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(TIMEOUT)
        self.port: int = self.sock.getsockname()[1]

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(host=LOOPBACK, port=self.port)

    def send(self, data: bytes, to: Endpoint | tuple[str, int]) -> None:
        self.sock.sendto(data, to if isinstance(to, tuple) else (to.host, to.port))

    def recv(self) -> tuple[bytes, tuple[str, int]]:
        data, addr = self.sock.recvfrom(65536)
        return data, (addr[0], addr[1])

    def close(self) -> None:
        self.sock.close()


@contextmanager
def serving(backend: str, core: MidRegistrar,
            options: ServerOptions) -> Iterator[tuple[Endpoint, ...]]:
    """Serve ``core`` with ``backend`` from a thread; yield the bound addresses; stop it."""
    if backend == "sockets":
        server = SocketServer(core, options)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.addresses
        finally:
            server.stop()
            thread.join(TIMEOUT)
            assert not thread.is_alive(), "sockets server did not stop"
    elif backend.startswith("anyio-"):
        with anyio.from_thread.start_blocking_portal(backend.removeprefix("anyio-")) as portal:
            anyio_server = AnyioServer(core, options)
            future, addresses = portal.start_task(anyio_server.run)
            try:
                yield addresses
            finally:
                portal.call(anyio_server.stop)
                future.result(TIMEOUT)
    else:
        yield from _serving_trio(core, options)


def _serving_trio(core: MidRegistrar, options: ServerOptions) -> Iterator[tuple[Endpoint, ...]]:
    server = TrioServer(core, options)
    started: queue.Queue[tuple[trio.lowlevel.TrioToken, tuple[Endpoint, ...]]] = queue.Queue()
    failed: list[BaseException] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(server.run)
            started.put((trio.lowlevel.current_trio_token(), addresses))

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # reported by the test thread
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    token, addresses = started.get(timeout=TIMEOUT)
    try:
        yield addresses
    finally:
        trio.from_thread.run_sync(server.stop, trio_token=token)
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "trio server did not stop"
        assert not failed, failed
