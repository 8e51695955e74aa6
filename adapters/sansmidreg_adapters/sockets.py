# The raw-sockets adapter: stdlib `selectors`, no dependency, the CLI's default backend.
#
# One thread, one loop: select() on every socket with a timeout up to the core's one deadline
# (ArmTimer / next_deadline) or the next housekeeping tick (idle connections, periodic stats).
# UDP is read fast: each wake-up loops recvfrom until EAGAIN (bounded batch), with large
# SO_RCVBUF/SO_SNDBUF. TCP: per-connection StreamFramer, flows by id and by peer (replies and
# requests reuse connections), non-blocking connects, bounded output buffers, idle cleanup; a
# listener whose accept() fails (EMFILE) is not selected for ACCEPT_PAUSE (it stays readable).
# TLS is not offered here (use the anyio or trio backend). stop() is safe from a signal handler
# or another thread: it wakes the loop, which flushes queued output (bounded) and closes sockets.
from __future__ import annotations

import errno
import selectors
import socket
import time
from collections.abc import Callable
from typing import Final, assert_never

from sansmidreg import Action, ArmTimer, Drop, Endpoint, Fork, MidRegistrar, Reply, SendRequest
from sansmidreg import SendUpstream, Transport
from sansmidreg.sip import KEEPALIVE_PING, SipParseError, StreamFramer

from ._common import Driver, Flows, ListenError, Stream, ServerOptions, describe_bind_error
from ._common import listen_endpoints, size_buffers, unusable_dest

__all__ = ["SocketServer"]

_READ: Final = selectors.EVENT_READ
_WRITE: Final = selectors.EVENT_WRITE
UDP_BATCH: Final = 256  # datagrams per wake-up before other sockets get their turn
MAX_OUTPUT: Final = 1 << 20  # bytes queued per connection before it is closed as too slow
TICK: Final = 1.0  # housekeeping period (idle connections, periodic stats)
ACCEPT_PAUSE: Final = 0.1  # accept() failed (EMFILE...): leave the listener alone this long


class _Conn(Stream):
    __slots__ = ("sock", "framer", "out", "last", "connecting")

    def __init__(self, sock: socket.socket, transport: Transport, host: str, port: int,
                 max_size: int, now: float, connecting: bool = False) -> None:
        super().__init__(transport, host, port)
        self.sock, self.framer, self.out = sock, StreamFramer(max_size), bytearray()
        self.last, self.connecting = now, connecting


_V4: Final = socket.AF_INET
_V6: Final = socket.AF_INET6


def _family(host: str) -> socket.AddressFamily:
    return _V6 if ":" in host else _V4


class SocketServer:
    """Serve a MidRegistrar on plain sockets. Binds on construction (raises ListenError);
    :meth:`serve_forever` runs until :meth:`stop`."""

    def __init__(self, core: MidRegistrar, options: ServerOptions = ServerOptions(), *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.core, self.options, self._clock = core, options, clock
        self._driver = Driver(core, options)
        self._report, self._recorder = self._driver.report, options.recorder
        self._flows: Flows[_Conn] = Flows(options, self._report)
        self._sel = selectors.DefaultSelector()
        self._udp: dict[socket.AddressFamily, socket.socket] = {}
        self._listeners: list[socket.socket] = []
        self._paused: list[tuple[socket.socket, Callable[[int], None]]] = []
        """Listeners whose accept() failed (EMFILE): still readable, so not selected (a busy loop
        otherwise) until ``_resume``."""
        self._resume = 0.0
        self._deadline = core.next_deadline()
        self._stopping = self._want_stats = False
        self._endpoints: dict[tuple[str, int], Endpoint] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        self._sel.register(self._wake_r, _READ, self._on_wake)
        bound: list[Endpoint] = []
        try:
            for ep in listen_endpoints(core, options):
                bound.append(self._bind(ep))
        except BaseException:
            self.close()
            raise
        self.addresses: tuple[Endpoint, ...] = tuple(bound)

    def _bind(self, ep: Endpoint) -> Endpoint:
        if ep.transport == "tls":
            raise ListenError(0, f"cannot listen on {ep}: TLS needs --backend anyio or trio")
        kind = socket.SOCK_DGRAM if ep.transport == "udp" else socket.SOCK_STREAM
        sock = socket.socket(_family(ep.host), kind)
        try:
            if ep.transport == "udp":
                size_buffers(sock, self.options.socket_buffer)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((ep.host, ep.port))
            sock.setblocking(False)
            if ep.transport == "udp":
                self._udp.setdefault(sock.family, sock)
                self._sel.register(sock, _READ, self._udp_reader(sock))
            else:
                sock.listen(512)
                self._sel.register(sock, _READ, lambda mask: self._accept(sock, ep.transport))
            self._listeners.append(sock)
        except OSError as exc:
            sock.close()
            raise describe_bind_error(ep, exc) from None
        return Endpoint(transport=ep.transport, host=ep.host, port=sock.getsockname()[1])

    # -- control (signal handlers, other threads) -------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish: flush queued output (bounded), close every socket."""
        self._stopping = True
        self._wake()

    def log_stats(self) -> None:
        """Log the statistics from the loop's thread soon (safe in a signal handler)."""
        self._want_stats = True
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def _on_wake(self, mask: int) -> None:
        try:
            while self._wake_r.recv(512):
                pass
        except OSError:
            pass

    # -- the loop ---------------------------------------------------------------------------
    def serve_forever(self) -> None:
        clock, select = self._clock, self._sel.select
        tick = clock() + TICK
        next_stats = clock() + (self.options.stats_interval or float("inf"))
        try:
            while not self._stopping:
                now = clock()
                deadline = self._deadline
                if deadline is not None and now >= deadline:
                    self._execute(self._driver.timer(now), now)
                    continue
                wake = tick if deadline is None or deadline > tick else deadline
                if self._paused and self._resume < wake:
                    wake = self._resume
                for key, mask in select(max(0.0, wake - now)):
                    key.data(mask)
                now = clock()
                if self._paused and now >= self._resume:
                    for listener, on_ready in self._paused:
                        self._sel.register(listener, _READ, on_ready)
                    self._paused = []
                if now >= tick:
                    tick = now + TICK
                    self._sweep(now)
                if self._want_stats or now >= next_stats:
                    self._want_stats = False
                    next_stats = now + (self.options.stats_interval or float("inf"))
                    self._report.stats()
            self._drain()
        finally:
            self.close()

    def _deliver(self, data: bytes, source: Endpoint, now: float) -> None:
        self._execute(self._driver.receive(data, source, now), now)

    def _udp_reader(self, sock: socket.socket) -> Callable[[int], None]:
        recvfrom, receive, execute = sock.recvfrom, self.core.receive, self._execute
        clock, endpoints = self._clock, self._endpoints
        plain = self._driver.plain

        def on_readable(mask: int) -> None:
            for _ in range(UDP_BATCH):
                try:
                    data, addr = recvfrom(65536)
                except BlockingIOError:
                    return
                except OSError:  # an ICMP error queued on the socket: nothing to read
                    continue
                source = endpoints.get(addr)
                if source is None:
                    if len(endpoints) >= 65536:
                        endpoints.clear()
                    source = endpoints[addr] = Endpoint(host=addr[0], port=addr[1])
                now = clock()
                if plain:
                    execute(receive(data, source, now), now)
                else:
                    self._deliver(data, source, now)

        return on_readable

    def _execute(self, actions: list[Action], now: float) -> None:
        for action in actions:
            match action:
                case Reply(data=data, dest=dest) | SendUpstream(data=data, dest=dest):
                    self._send(data, dest, now)
                case SendRequest(data=data, dest=dest):
                    self._send(data, dest, now)
                case Fork(branches=branches):
                    for branch in branches:
                        self._send(branch.data, branch.dest, now)
                case ArmTimer(at=at):
                    self._deadline = at
                case Drop():
                    self._report.drop(action)
                case _:
                    assert_never(action)

    def _send(self, data: bytes, dest: Endpoint, now: float) -> None:
        if self._recorder is not None:
            self._recorder.outbound(now, dest, data)
        if dest.transport == "udp":
            problem = unusable_dest(dest.host, dest.port)
            if problem is not None:
                self._report.limited("udp-send", "cannot send to %s: %s", dest, problem)
                return
            try:  # full send buffer, unreachable: UDP loss, which SIP retransmissions cover
                self._udp[_V6 if ":" in dest.host else _V4].sendto(data, (dest.host, dest.port))
            except (KeyError, OSError) as exc:
                self._report.limited("udp-send", "cannot send to %s: %r", dest, exc)
            return
        if dest.transport == "tls":
            self._report.limited("tls", "cannot send to %s: TLS needs --backend anyio or trio",
                                 dest)
            return
        conn = self._flows.find(dest) or self._connect(dest, now)
        if conn is not None:
            self._write(conn, data)

    # -- TCP ------------------------------------------------------------------------------
    def _accept(self, listener: socket.socket, transport: Transport) -> None:
        for _ in range(64):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, ConnectionAbortedError):
                return
            except OSError as exc:  # EMFILE and friends: keep serving the others
                self._report.limited("accept", "accept failed: %s", exc)
                self._paused.append((listener, self._sel.get_key(listener).data))
                self._sel.unregister(listener)
                self._resume = self._clock() + ACCEPT_PAUSE
                return
            conn = _Conn(sock, transport, addr[0], addr[1], self.core.config.max_message_size,
                         self._clock())
            if not self._flows.open(conn):
                sock.close()
                continue
            sock.setblocking(False)
            self._sel.register(sock, _READ, lambda mask, c=conn: self._on_conn(c, mask))

    def _connect(self, dest: Endpoint, now: float) -> _Conn | None:
        problem = unusable_dest(dest.host, dest.port)
        if problem is not None:
            self._report.limited("connect", "cannot send to %s: %s", dest, problem)
            return None
        if not self._flows.may_connect(dest):
            return None
        try:  # EMFILE; a host name that does not resolve (gaierror)
            sock = socket.socket(_family(dest.host), socket.SOCK_STREAM)
        except OSError as exc:
            self._report.limited("connect", "cannot connect to %s: %s", dest, exc)
            return None
        try:
            sock.setblocking(False)
            err = sock.connect_ex((dest.host, dest.port))
        except OSError as exc:
            sock.close()
            self._report.limited("connect", "cannot connect to %s: %s", dest, exc)
            return None
        conn = _Conn(sock, dest.transport, dest.host, dest.port,
                     self.core.config.max_message_size, now, connecting=True)
        if err not in (0, errno.EINPROGRESS) or not self._flows.open(conn):
            sock.close()
            self._report.limited("connect", "cannot connect to %s: %s", dest,
                                 errno.errorcode.get(err, err))
            return None
        self._sel.register(sock, _READ | _WRITE, lambda mask: self._on_conn(conn, mask))
        return conn

    def _on_conn(self, conn: _Conn, mask: int) -> None:
        if mask & _WRITE:
            if conn.connecting:
                err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    return self._close(conn, f"connect failed: {errno.errorcode.get(err, err)}")
                conn.connecting = False
            self._flush(conn)
        if not mask & _READ or conn.sock.fileno() < 0:  # closed while flushing
            return
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            return self._close(conn, str(exc))
        if not data:
            return self._close(conn, None)
        try:
            messages = conn.framer.feed(data)
        except SipParseError as exc:
            return self._close(conn, f"bad stream: {exc}")
        for message in messages:
            now = conn.last = self._clock()
            if message == KEEPALIVE_PING:
                self._write(conn, b"\r\n")  # RFC 5626 §4.4.1 pong
            else:
                self._deliver(message, conn.source, now)

    def _write(self, conn: _Conn, data: bytes) -> None:
        if not conn.out and not conn.connecting:
            try:
                sent = conn.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                return self._close(conn, str(exc))
            if sent == len(data):
                return
            data = data[sent:]
            self._sel.modify(conn.sock, _READ | _WRITE, lambda mask: self._on_conn(conn, mask))
        if len(conn.out) + len(data) > MAX_OUTPUT:
            return self._close(conn, "peer does not read (output buffer full)")
        conn.out += data

    def _flush(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out) if conn.out else 0
        except BlockingIOError:
            return
        except OSError as exc:
            return self._close(conn, str(exc))
        del conn.out[:sent]
        if not conn.out:
            self._sel.modify(conn.sock, _READ, lambda mask: self._on_conn(conn, mask))

    def _close(self, conn: _Conn, reason: str | None) -> None:
        if conn.sock.fileno() < 0:
            return
        self._flows.remove(conn, reason)
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _sweep(self, now: float) -> None:
        opts = self.options
        for conn in self._flows:
            limit = opts.connect_timeout if conn.connecting else opts.idle_timeout
            if now - conn.last > limit:
                self._close(conn, "connect timeout" if conn.connecting else "idle")

    # -- stopping ---------------------------------------------------------------------------
    def _drain(self) -> None:
        """Stop reading; give queued TCP output up to ``drain_timeout`` to leave."""
        paused = {listener for listener, _ in self._paused}
        for sock in (*self._listeners, self._wake_r):
            if sock not in paused:
                self._sel.unregister(sock)
        end = self._clock() + self.options.drain_timeout
        while any(c.out for c in self._flows) and self._clock() < end:
            for key, mask in self._sel.select(max(0.0, end - self._clock())):
                if mask & _WRITE:
                    key.data(_WRITE)

    def close(self) -> None:
        """Close every socket (idempotent; serve_forever does it when it returns)."""
        for conn in self._flows:
            self._close(conn, None)
        for sock in (*self._listeners, self._wake_r, self._wake_w):
            sock.close()
        self._listeners = []
        self._udp = {}
        self._sel.close()
