# The anyio adapter: runs on asyncio and on trio. `await task_group.start(AnyioServer(core,
# options).run)` returns the bound addresses once every socket listens; `stop()` ends it
# gracefully.
#
# The same shape as trio_backend.py, in anyio's words: one receive loop per UDP socket, one accept
# loop per TCP/TLS listener, a reader and a writer per connection (the writer drains a bounded
# memory object stream), and one timer task sleeping in a CancelScope whose deadline is the core's
# one deadline. The core's clock is anyio.current_time(). A connection's reader scope is pushed
# forward by every complete message (idle cleanup; TLS handshakes are bounded by it too).
# UDP uses plain non-blocking sockets with anyio.wait_readable/wait_writable, not anyio's
# UDPSocket: on asyncio that one queues at most 100 received datagrams and silently drops the
# oldest beyond (a burst of REGISTERs lost whatever SO_RCVBUF held), and it reports send errors
# to nobody.
from __future__ import annotations

import math
import socket
import ssl
from typing import Final, Literal, assert_never

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from anyio.streams.tls import TLSStream

from sansmidreg import Action, ArmTimer, Drop, Endpoint, Fork, MidRegistrar, Reply, SendRequest
from sansmidreg import SendUpstream, Transport
from sansmidreg.sip import KEEPALIVE_PING, SipParseError, StreamFramer

from anyio import wait_readable, wait_writable  # anyio >= 4.7 (pyproject.toml)

from ._common import Driver, Flows, ListenError, Stream, ServerOptions, describe_bind_error
from ._common import listen_endpoints, size_buffers, unusable_dest

__all__ = ["AnyioServer"]

UDP_BATCH: Final = 256  # datagrams read per wake-up before the loop waits (and yields) again

_STREAM_ERRORS: Final = (anyio.EndOfStream, anyio.BrokenResourceError,
                         anyio.ClosedResourceError, OSError, ssl.SSLError)


class _Conn(Stream):
    __slots__ = ("send", "recv", "done")

    def __init__(self, transport: Transport, host: str, port: int, queue: int) -> None:
        super().__init__(transport, host, port)
        self.send: MemoryObjectSendStream[bytes]
        self.recv: MemoryObjectReceiveStream[bytes]
        self.send, self.recv = anyio.create_memory_object_stream[bytes](queue)
        self.done = anyio.Event()


class AnyioServer:
    """Serve a MidRegistrar with anyio (UDP, TCP, TLS) on asyncio or trio."""

    def __init__(self, core: MidRegistrar, options: ServerOptions = ServerOptions()) -> None:
        self.core, self.options = core, options
        self._driver = Driver(core, options)
        self._report = self._driver.report
        self._flows: Flows[_Conn] = Flows(options, self._report)
        self._udp: dict[int, tuple[socket.socket, anyio.Lock]] = {}
        """By address family: a UDP socket and the lock its writers take (one task at a time
        may wait for a socket to be writable: BusyResourceError for a second, and we send from
        every connection's reader, the UDP loop and the timer)."""
        self._stopping: anyio.Event | None = None  # anyio objects need a running event loop
        self._stop_requested = False
        armed = core.next_deadline()  # a core may come with timers already
        self._deadline = math.inf if armed is None else armed
        self._timer: anyio.CancelScope | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self.addresses: tuple[Endpoint, ...] = ()

    def stop(self) -> None:
        """Finish gracefully: stop reading, flush queued output (bounded), close sockets."""
        self._stop_requested = True
        if self._stopping is not None:
            self._stopping.set()

    def log_stats(self) -> None:
        """Log the statistics now (call from the event loop, e.g. on SIGUSR1)."""
        self._report.stats()

    async def run(self, *, task_status: anyio.abc.TaskStatus[tuple[Endpoint, ...]]
                  = anyio.TASK_STATUS_IGNORED) -> None:
        self._stopping = anyio.Event()
        if self._stop_requested:
            self._stopping.set()
        socks: list[socket.socket] = []
        listeners: list[tuple[anyio.abc.SocketListener, Transport]] = []
        try:
            bound = [await self._bind(ep, socks, listeners)
                     for ep in listen_endpoints(self.core, self.options)]
            self.addresses = tuple(bound)
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for sock in socks:
                    tg.start_soon(self._udp_loop, sock)
                for listener, transport in listeners:
                    tg.start_soon(self._accept_loop, listener, transport)
                tg.start_soon(self._timer_loop)
                if self.options.stats_interval > 0:
                    tg.start_soon(self._stats_loop)
                task_status.started(self.addresses)
                await self._stopping.wait()
                await self._drain()
                tg.cancel_scope.cancel()
        finally:
            for sock in socks:
                sock.close()
            for listener, _ in listeners:
                await anyio.aclose_forcefully(listener)

    async def _bind(self, ep: Endpoint, socks: list[socket.socket],
                    listeners: list[tuple[anyio.abc.SocketListener, Transport]]) -> Endpoint:
        family: Literal[socket.AddressFamily.AF_INET, socket.AddressFamily.AF_INET6] = (
            socket.AF_INET6 if ":" in ep.host else socket.AF_INET)
        try:
            if ep.transport == "tls" and self.options.tls_server is None:
                raise ListenError(0, f"cannot listen on {ep}: no TLS certificate configured")
            if ep.transport == "udp":
                sock = socket.socket(family, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.setblocking(False)
                size_buffers(sock, self.options.socket_buffer)
                sock.bind((ep.host, ep.port))
                self._udp.setdefault(family, (sock, anyio.Lock()))
                port: int = sock.getsockname()[1]
            else:
                multi = await anyio.create_tcp_listener(local_host=ep.host, local_port=ep.port)
                for listener in multi.listeners:
                    assert isinstance(listener, anyio.abc.SocketListener)
                    port = listener.extra(SocketAttribute.local_port)
                    listeners.append((listener, ep.transport))
        except OSError as exc:
            raise exc if isinstance(exc, ListenError) else describe_bind_error(ep, exc) from None
        return Endpoint(transport=ep.transport, host=ep.host, port=port)

    # -- input -------------------------------------------------------------------------------
    async def _udp_loop(self, sock: socket.socket) -> None:
        recvfrom = sock.recvfrom
        while True:
            await wait_readable(sock)
            for _ in range(UDP_BATCH):
                try:
                    data, addr = recvfrom(65536)
                except BlockingIOError:
                    break
                except OSError:  # an ICMP error queued on the socket
                    continue
                await self._deliver(data, Endpoint(host=addr[0], port=addr[1]))

    async def _deliver(self, data: bytes, source: Endpoint) -> None:
        now = anyio.current_time()
        actions = self._driver.receive(data, source, now)
        with anyio.CancelScope(shield=True):  # state is committed: never lose an action
            await self._execute(actions, now)

    async def _timer_loop(self) -> None:
        while True:
            with anyio.CancelScope(deadline=self._deadline) as self._timer:
                await anyio.sleep_forever()
            now = anyio.current_time()
            if now >= self._deadline:
                actions = self._driver.timer(now)
                with anyio.CancelScope(shield=True):
                    await self._execute(actions, now)
                if self._deadline <= now:  # (defensive: never spin on a passed deadline)
                    armed = self.core.next_deadline()
                    self._deadline = math.inf if armed is None else armed

    async def _stats_loop(self) -> None:
        while True:
            await anyio.sleep(self.options.stats_interval)
            self._report.stats()

    # -- output ------------------------------------------------------------------------------
    async def _execute(self, actions: list[Action], now: float) -> None:
        for action in actions:
            match action:
                case Reply(data=data, dest=dest) | SendUpstream(data=data, dest=dest):
                    await self._send(data, dest, now)
                case SendRequest(data=data, dest=dest):
                    await self._send(data, dest, now)
                case Fork(branches=branches):
                    for branch in branches:
                        await self._send(branch.data, branch.dest, now)
                case ArmTimer(at=at):
                    self._deadline = math.inf if at is None else at
                    if self._timer is not None:
                        self._timer.deadline = self._deadline
                case Drop():
                    self._report.drop(action)
                case _:
                    assert_never(action)

    async def _send(self, data: bytes, dest: Endpoint, now: float) -> None:
        self._driver.sent(now, dest, data)
        if dest.transport == "udp":
            udp = self._udp.get(socket.AF_INET6 if ":" in dest.host else socket.AF_INET)
            try:
                problem = unusable_dest(dest.host, dest.port)
                if problem is not None:
                    raise OSError(problem)
                if udp is None:
                    raise OSError("no UDP listener of that address family")
                sock, lock = udp
                async with lock:
                    while True:
                        try:
                            sock.sendto(data, (dest.host, dest.port))
                            break
                        except BlockingIOError:  # send buffer full
                            await wait_writable(sock)
            except OSError as exc:
                self._report.limited("udp-send", "cannot send to %s: %s", dest, exc)
            return
        conn = self._flows.find(dest) or self._connect(dest)
        if conn is not None:
            self._queue(conn, data)

    def _queue(self, conn: _Conn, data: bytes) -> None:
        try:
            conn.send.send_nowait(data)
        except anyio.WouldBlock:
            self._report.limited("send-queue", "dropped a message to %s: send queue full", conn)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._report.limited("send-closed", "dropped a message to %s: closing", conn)

    # -- connections -------------------------------------------------------------------------
    async def _accept_loop(self, listener: anyio.abc.SocketListener,
                           transport: Transport) -> None:
        assert self._tg is not None
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # EMFILE and friends: wait a little, keep serving the others
                self._report.limited("accept", "accept failed: %s", exc)
                await anyio.sleep(0.1)
                continue
            try:  # a peer that reset before we accepted has no address any more
                address = stream.extra(SocketAttribute.remote_address)
            except (OSError, anyio.TypedAttributeLookupError):
                await anyio.aclose_forcefully(stream)
                continue
            assert isinstance(address, tuple)
            host, port = address[:2]
            conn = _Conn(transport, str(host), int(port), self.options.send_queue)
            if self._flows.open(conn):
                self._tg.start_soon(self._connection, stream, conn, transport == "tls")
            else:
                self._forget(conn)
                await anyio.aclose_forcefully(stream)

    def _connect(self, dest: Endpoint) -> _Conn | None:
        problem = unusable_dest(dest.host, dest.port)
        if problem is not None:
            self._report.limited("connect", "cannot send to %s: %s", dest, problem)
            return None
        if self._tg is None or not self._flows.may_connect(dest):
            return None
        conn = _Conn(dest.transport, dest.host, dest.port, self.options.send_queue)
        if self._flows.open(conn):
            self._tg.start_soon(self._outbound, conn)
            return conn
        self._forget(conn)
        return None

    async def _outbound(self, conn: _Conn) -> None:
        try:
            with anyio.fail_after(self.options.connect_timeout):
                stream: anyio.abc.ByteStream = await anyio.connect_tcp(conn.host, conn.port)
                if conn.transport == "tls":
                    stream = await TLSStream.wrap(stream, hostname=conn.host,
                                                  ssl_context=self.options.tls_client,
                                                  standard_compatible=False)
        except (OSError, TimeoutError, *_STREAM_ERRORS) as exc:
            self._forget(conn, f"cannot connect: {exc!r}")
            return
        await self._connection(stream, conn)

    def _forget(self, conn: _Conn, reason: str | None = None) -> None:
        self._flows.remove(conn, reason)
        conn.send.close()
        conn.recv.close()
        conn.done.set()

    async def _connection(self, stream: anyio.abc.ByteStream, conn: _Conn,
                          handshake: bool = False) -> None:
        try:
            if handshake:  # inbound TLS: bounded like a connect
                with anyio.move_on_after(self.options.connect_timeout):
                    stream = await TLSStream.wrap(stream, server_side=True,
                                                  ssl_context=self.options.tls_server,
                                                  standard_compatible=False)
                if not isinstance(stream, TLSStream):
                    return
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer, stream, conn, tg.cancel_scope)
                await self._reader(stream, conn)
                tg.cancel_scope.cancel()
        except _STREAM_ERRORS as exc:
            self._forget(conn, repr(exc))
        finally:
            self._forget(conn)
            await anyio.aclose_forcefully(stream)

    async def _reader(self, stream: anyio.abc.ByteStream, conn: _Conn) -> None:
        framer = StreamFramer(self.core.config.max_message_size)
        idle = self.options.idle_timeout
        with anyio.CancelScope(deadline=anyio.current_time() + idle) as scope:
            while True:
                try:
                    data = await stream.receive(65536)
                except _STREAM_ERRORS:
                    return
                try:
                    messages = framer.feed(data)
                except SipParseError as exc:
                    return self._forget(conn, f"bad stream: {exc}")
                for message in messages:
                    scope.deadline = anyio.current_time() + idle
                    if message == KEEPALIVE_PING:
                        self._queue(conn, b"\r\n")  # RFC 5626 §4.4.1 pong
                    else:
                        await self._deliver(message, conn.source)
        if scope.cancelled_caught:
            self._forget(conn, "idle")

    async def _writer(self, stream: anyio.abc.ByteStream, conn: _Conn,
                      scope: anyio.CancelScope) -> None:
        try:
            async for data in conn.recv:
                await stream.send(data)
        except _STREAM_ERRORS:
            pass
        scope.cancel()

    async def _drain(self) -> None:
        """Close every send stream; writers flush what is queued, within drain_timeout."""
        conns = list(self._flows)
        for conn in conns:
            conn.send.close()
        with anyio.move_on_after(self.options.drain_timeout):
            for conn in conns:
                await conn.done.wait()
