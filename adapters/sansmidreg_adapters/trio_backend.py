# The trio adapter (native): `await nursery.start(TrioServer(core, options).run)` returns the
# bound addresses once every socket listens; `stop()` ends it gracefully.
#
# Tasks: one receive loop per UDP socket, one accept loop per TCP/TLS listener, a reader and a
# writer per connection (the writer drains a bounded memory channel, so a slow peer never blocks
# the others), and one timer task sleeping in a CancelScope whose deadline is the core's one
# deadline (ArmTimer moves it). The core's clock is trio.current_time(), so tests may use
# autojump_clock. Each connection's reader sits in a CancelScope pushed forward by every complete
# message (idle cleanup, and a peer that never finishes a message is closed too).
from __future__ import annotations

import math
import socket
import ssl
from typing import Final, assert_never

import trio

from sansmidreg import Action, ArmTimer, Drop, Endpoint, Fork, MidRegistrar, Reply, SendRequest
from sansmidreg import SendUpstream, Transport
from sansmidreg.sip import KEEPALIVE_PING, SipParseError, StreamFramer

from ._common import Driver, Flows, ListenError, Stream, ServerOptions, describe_bind_error
from ._common import listen_endpoints, size_buffers, unusable_dest

__all__ = ["TrioServer"]

_STREAM_ERRORS: Final = (trio.BrokenResourceError, trio.ClosedResourceError, OSError,
                         ssl.SSLError)


class _Conn(Stream):
    __slots__ = ("send", "recv", "done")

    def __init__(self, transport: Transport, host: str, port: int, queue: int) -> None:
        super().__init__(transport, host, port)
        self.send, self.recv = trio.open_memory_channel[bytes](queue)
        self.done = trio.Event()


class TrioServer:
    """Serve a MidRegistrar with trio (UDP, TCP, TLS)."""

    def __init__(self, core: MidRegistrar, options: ServerOptions = ServerOptions()) -> None:
        self.core, self.options = core, options
        self._driver = Driver(core, options)
        self._report = self._driver.report
        self._flows: Flows[_Conn] = Flows(options, self._report)
        # a UDP socket and its writers' lock: trio lets one task at a time wait for a socket
        # to be writable (BusyResourceError otherwise, when its send buffer is full)
        self._udp: dict[int, tuple[trio.socket.SocketType, trio.Lock]] = {}
        self._stopping = trio.Event()
        armed = core.next_deadline()  # a core may come with timers already
        self._deadline = math.inf if armed is None else armed
        self._timer = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self.addresses: tuple[Endpoint, ...] = ()

    def stop(self) -> None:
        """Finish gracefully: stop reading, flush queued output (bounded), close sockets."""
        self._stopping.set()

    def log_stats(self) -> None:
        """Log the statistics now (call from the event loop, e.g. on SIGUSR1)."""
        self._report.stats()

    async def run(self, *, task_status: trio.TaskStatus[tuple[Endpoint, ...]]
                  = trio.TASK_STATUS_IGNORED) -> None:
        socks: list[trio.socket.SocketType] = []
        listeners: list[tuple[trio.abc.Listener[trio.abc.Stream], Transport]] = []
        try:
            bound = [await self._bind(ep, socks, listeners)
                     for ep in listen_endpoints(self.core, self.options)]
            self.addresses = tuple(bound)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for sock in socks:
                    nursery.start_soon(self._udp_loop, sock)
                for listener, transport in listeners:
                    nursery.start_soon(self._accept_loop, listener, transport)
                nursery.start_soon(self._timer_loop)
                if self.options.stats_interval > 0:
                    nursery.start_soon(self._stats_loop)
                task_status.started(self.addresses)
                await self._stopping.wait()
                await self._drain()
                nursery.cancel_scope.cancel()
        finally:
            for sock in socks:
                sock.close()
            for listener, _ in listeners:
                await trio.aclose_forcefully(listener)

    async def _bind(self, ep: Endpoint, socks: list[trio.socket.SocketType],
                    listeners: list[tuple[trio.abc.Listener[trio.abc.Stream], Transport]]
                    ) -> Endpoint:
        family = socket.AF_INET6 if ":" in ep.host else socket.AF_INET
        try:
            if ep.transport == "udp":
                sock = trio.socket.socket(family, socket.SOCK_DGRAM)
                socks.append(sock)
                size_buffers(sock, self.options.socket_buffer)
                await sock.bind((ep.host, ep.port))
                self._udp.setdefault(family, (sock, trio.Lock()))
                port: int = sock.getsockname()[1]
            else:
                if ep.transport == "tls" and self.options.tls_server is None:
                    raise ListenError(0, f"cannot listen on {ep}: no TLS certificate configured")
                for tcp in await trio.open_tcp_listeners(ep.port, host=ep.host):
                    port = tcp.socket.getsockname()[1]
                    listener: trio.abc.Listener[trio.abc.Stream] = tcp
                    if self.options.tls_server is not None and ep.transport == "tls":
                        listener = trio.SSLListener(tcp, self.options.tls_server)
                    listeners.append((listener, ep.transport))
        except ListenError:
            raise
        except OSError as exc:
            raise describe_bind_error(ep, exc) from None
        return Endpoint(transport=ep.transport, host=ep.host, port=port)

    # -- input -------------------------------------------------------------------------------
    async def _udp_loop(self, sock: trio.socket.SocketType) -> None:
        while True:
            try:
                data, addr = await sock.recvfrom(65536)
            except OSError:  # an ICMP error queued on the socket
                continue
            await self._deliver(data, Endpoint(host=addr[0], port=addr[1]))

    async def _deliver(self, data: bytes, source: Endpoint) -> None:
        now = trio.current_time()
        actions = self._driver.receive(data, source, now)
        with trio.CancelScope(shield=True):  # state is committed: never lose an action
            await self._execute(actions, now)

    async def _timer_loop(self) -> None:
        while True:
            with trio.CancelScope(deadline=self._deadline) as self._timer:
                await trio.sleep_forever()
            now = trio.current_time()
            if now >= self._deadline:
                actions = self._driver.timer(now)
                with trio.CancelScope(shield=True):
                    await self._execute(actions, now)
                if self._deadline <= now:  # (defensive: never spin on a passed deadline)
                    armed = self.core.next_deadline()
                    self._deadline = math.inf if armed is None else armed

    async def _stats_loop(self) -> None:
        while True:
            await trio.sleep(self.options.stats_interval)
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
                    self._deadline = self._timer.deadline = math.inf if at is None else at
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
                    await sock.sendto(data, (dest.host, dest.port))
            except OSError as exc:
                self._report.limited("udp-send", "cannot send to %s: %s", dest, exc)
            return
        conn = self._flows.find(dest) or self._connect(dest)
        if conn is not None:
            self._queue(conn, data)

    def _queue(self, conn: _Conn, data: bytes) -> None:
        try:
            conn.send.send_nowait(data)
        except trio.WouldBlock:
            self._report.limited("send-queue", "dropped a message to %s: send queue full", conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._report.limited("send-closed", "dropped a message to %s: closing", conn)

    # -- connections -------------------------------------------------------------------------
    async def _accept_loop(self, listener: trio.abc.Listener[trio.abc.Stream],
                           transport: Transport) -> None:
        assert self._nursery is not None
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # EMFILE and friends: wait a little, keep serving the others
                self._report.limited("accept", "accept failed: %s", exc)
                await trio.sleep(0.1)
                continue
            tcp = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
            assert isinstance(tcp, trio.SocketStream)
            try:
                host, port = tcp.socket.getpeername()[:2]
            except OSError:  # ENOTCONN: the peer reset before we accepted
                await trio.aclose_forcefully(stream)
                continue
            conn = _Conn(transport, host, port, self.options.send_queue)
            if self._flows.open(conn):
                self._nursery.start_soon(self._connection, stream, conn)
            else:
                self._forget(conn)
                await trio.aclose_forcefully(stream)

    def _connect(self, dest: Endpoint) -> _Conn | None:
        problem = unusable_dest(dest.host, dest.port)
        if problem is not None:
            self._report.limited("connect", "cannot send to %s: %s", dest, problem)
            return None
        if self._nursery is None or not self._flows.may_connect(dest):
            return None
        conn = _Conn(dest.transport, dest.host, dest.port, self.options.send_queue)
        if self._flows.open(conn):
            self._nursery.start_soon(self._outbound, conn)
            return conn
        self._forget(conn)
        return None

    async def _outbound(self, conn: _Conn) -> None:
        try:
            with trio.fail_after(self.options.connect_timeout):
                if conn.transport == "tls":
                    stream: trio.abc.Stream = await trio.open_ssl_over_tcp_stream(
                        conn.host, conn.port, ssl_context=self.options.tls_client)
                else:
                    stream = await trio.open_tcp_stream(conn.host, conn.port)
        except (OSError, trio.TooSlowError) as exc:
            self._forget(conn, f"cannot connect: {exc!r}")
            return
        await self._connection(stream, conn)

    def _forget(self, conn: _Conn, reason: str | None = None) -> None:
        self._flows.remove(conn, reason)
        conn.send.close()
        conn.done.set()

    async def _connection(self, stream: trio.abc.Stream, conn: _Conn) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, stream, conn, nursery.cancel_scope)
                await self._reader(stream, conn)
                nursery.cancel_scope.cancel()
        finally:
            self._forget(conn)
            await trio.aclose_forcefully(stream)

    async def _reader(self, stream: trio.abc.Stream, conn: _Conn) -> None:
        framer = StreamFramer(self.core.config.max_message_size)
        idle = self.options.idle_timeout
        with trio.CancelScope(deadline=trio.current_time() + idle) as scope:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except _STREAM_ERRORS:
                    return
                if not data:
                    return
                try:
                    messages = framer.feed(bytes(data))
                except SipParseError as exc:
                    return self._forget(conn, f"bad stream: {exc}")
                for message in messages:
                    scope.deadline = trio.current_time() + idle
                    if message == KEEPALIVE_PING:
                        self._queue(conn, b"\r\n")  # RFC 5626 §4.4.1 pong
                    else:
                        await self._deliver(message, conn.source)
        if scope.cancelled_caught:
            self._forget(conn, "idle")

    async def _writer(self, stream: trio.abc.Stream, conn: _Conn,
                      scope: trio.CancelScope) -> None:
        try:
            async for data in conn.recv:
                await stream.send_all(data)
        except _STREAM_ERRORS:
            pass
        scope.cancel()  # the channel closed (stopping) or the peer went away

    async def _drain(self) -> None:
        """Close every send channel; writers flush what is queued, within drain_timeout."""
        conns = list(self._flows)
        for conn in conns:
            conn.send.close()
        with trio.move_on_after(self.options.drain_timeout):
            for conn in conns:
                await conn.done.wait()
