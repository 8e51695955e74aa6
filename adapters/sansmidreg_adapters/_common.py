# Small synchronous helpers shared by the three adapters (sockets, anyio, trio): the options every
# adapter takes, a connection's identity (Stream) and the flow table (by flow id and by peer,
# within max_connections), the core calls with their logging (Driver), the log lines a VoIP
# engineer reads (drops, failed de-REGISTERs, one line per REGISTER at debug, stats), the
# Recorder hook (record.py writes it as a conformance trace: serve --record FILE), and the check
# every adapter makes before a UDP send or a new connection (unusable_dest: the network chooses
# many destinations, e.g. a relayed response's Via, and a socket given port 70000 or a host that
# is no name raises errors other than OSError).
#
# Nothing here does I/O except writing log lines and the trace file; nothing here is async, so the
# adapters stay independent of each other (STYLE.md point 7).
from __future__ import annotations

import functools
import ipaddress
import logging
import re
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from sansmidreg import (
    Action,
    Drop,
    Endpoint,
    MidRegistrar,
    Reply,
    SendUpstream,
    Stats,
    Transport,
)


__all__ = [
    "LOG",
    "Driver",
    "Flows",
    "Recorder",
    "Stream",
    "ListenError",
    "Reporter",
    "ServerOptions",
    "format_stats",
    "listen_endpoints",
    "size_buffers",
    "unusable_dest",
]

LOG = logging.getLogger("sansmidreg")

S = TypeVar("S", bound="Stream")


class ListenError(OSError):
    """A listening socket could not be opened (address in use, no permission, bad address)."""


class Recorder(Protocol):
    """Sees every message in and out (``sansmidreg serve --record``: record.TraceRecorder)."""

    def inbound(self, now: float, source: Endpoint, data: bytes) -> None: ...

    def outbound(self, now: float, dest: Endpoint, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    """What every adapter needs besides the core. Limits keep memory bounded (issue 5 §5)."""

    listen: tuple[Endpoint, ...] = ()
    """Addresses to listen on (udp/tcp/tls); empty: the core's ``config.local``. Port 0 binds a
    free port (tests): the bound addresses are reported by the adapter."""
    tls_server: ssl.SSLContext | None = None
    """Server context for ``tls:`` listeners (anyio and trio only)."""
    tls_client: ssl.SSLContext | None = None
    """Client context for connections we open to ``tls:`` destinations; None: never open any."""
    max_connections: int = 1024
    """TCP/TLS connections open at once (inbound + outbound); more are refused/closed."""
    idle_timeout: float = 300.0
    """A connection that delivers no complete message (or CRLF ping) for this long is closed."""
    connect_timeout: float = 10.0
    send_queue: int = 256
    """Messages queued per connection before further sends to it are dropped."""
    socket_buffer: int = 8 * 1024 * 1024
    """UDP socket buffers asked for (SO_RCVBUF/SO_SNDBUF, forced past the system cap when
    privileged)."""
    stats_interval: float = 0.0
    """Log the statistics every so many seconds (0: never; SIGUSR1 still works in the CLI)."""
    drain_timeout: float = 2.0
    """On stop: how long queued TCP/TLS output may take to flush before sockets close."""
    recorder: Recorder | None = None
    """The hook that sees every message in and out (record.TraceRecorder for --record)."""


class _Socket(Protocol):
    def setsockopt(self, level: int, option: int, value: int, /) -> None: ...


# Linux: SO_RCVBUFFORCE / SO_SNDBUFFORCE pass net.core.[rw]mem_max when we may (CAP_NET_ADMIN)
_FORCE: Final = {socket.SO_RCVBUF: 33, socket.SO_SNDBUF: 32} if sys.platform == "linux" else {}


def size_buffers(sock: _Socket, size: int) -> None:
    """Ask for large UDP buffers (bursts of REGISTERs must not overflow them)."""
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, _FORCE[option], size)
        except (KeyError, OSError):  # not Linux, or not privileged: the kernel caps this one
            sock.setsockopt(socket.SOL_SOCKET, option, size)


_HOST_NAME: Final = re.compile(
    r"(?=.{1,253}\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?\Z")


@functools.lru_cache(maxsize=4096)
def unusable_dest(host: str, port: int) -> str | None:
    """Why a socket cannot take ``host``:``port`` (None: it can): a port outside 1..65535, or a
    host that is neither an IP address nor a DNS name. The core passes on what the network wrote
    (a Via's rport or received, a Contact's host), and sockets raise OverflowError, UnicodeError
    or ValueError for these, which no adapter may let escape (asyncio even closes the UDP
    transport for them). With this check, a send fails only with OSError."""
    if not 0 < port < 65536:
        return f"port {port} out of range"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not host.isascii() or _HOST_NAME.match(host) is None:
            return "not an IP address or host name"
    return None


def listen_endpoints(core: MidRegistrar, options: ServerOptions) -> tuple[Endpoint, ...]:
    return options.listen or core.config.local


def describe_bind_error(endpoint: Endpoint, exc: OSError) -> ListenError:
    reason = exc.strerror or str(exc)
    hint = " (is another SIP server running there?)" if exc.errno == 98 else ""
    return ListenError(exc.errno or 0, f"cannot listen on {endpoint}: {reason}{hint}")


class Stream:
    """What every adapter knows about one TCP/TLS connection (each adds its own I/O state)."""

    __slots__ = ("transport", "host", "port", "flow", "source")

    def __init__(self, transport: Transport, host: str, port: int) -> None:
        self.transport, self.host, self.port, self.flow = transport, host, port, 0
        self.source = Endpoint(transport=transport, host=host, port=port)
        """Where its messages come from, for core.receive (with its flow once registered)."""

    def __str__(self) -> str:
        return f"{self.transport}:{self.host}:{self.port}"


class Flows(Generic[S]):
    """Open stream connections by flow id (``Endpoint.flow``) and by (transport, host, port),
    within ``max_connections``; refusals and closings are logged (rate-limited)."""

    __slots__ = ("_by_flow", "_by_peer", "_next", "_options", "_report")

    def __init__(self, options: ServerOptions, report: Reporter) -> None:
        self._by_flow: dict[int, S] = {}
        self._by_peer: dict[tuple[str, str, int], int] = {}
        self._next = 0
        self._options, self._report = options, report

    def __len__(self) -> int:
        return len(self._by_flow)

    def __iter__(self) -> Iterator[S]:
        return iter(list(self._by_flow.values()))

    def open(self, conn: S) -> bool:
        """Register a connection (it gets its flow id); False (logged) when at the limit."""
        if len(self._by_flow) >= self._options.max_connections:
            self._report.limited("connections", "refused %s: %d connections open", conn,
                                 len(self._by_flow))
            return False
        self._next += 1
        conn.flow = self._next
        conn.source = Endpoint(transport=conn.transport, host=conn.host, port=conn.port,
                               flow=conn.flow)
        self._by_flow[conn.flow] = conn
        self._by_peer[(conn.transport, conn.host, conn.port)] = conn.flow
        return True

    def may_connect(self, dest: Endpoint) -> bool:
        """May we open a connection to ``dest``? (False is logged.)"""
        if len(self._by_flow) >= self._options.max_connections:
            self._report.limited("connections", "not connecting to %s: %d connections open",
                                 dest, len(self._by_flow))
            return False
        if dest.transport == "tls" and self._options.tls_client is None:
            self._report.limited("tls-client", "not connecting to %s: no TLS client context",
                                 dest)
            return False
        return True

    def remove(self, conn: S, reason: str | None = None) -> None:
        """Forget a connection (idempotent); log why it closes, if a reason is given."""
        if reason is not None and conn.flow in self._by_flow:
            self._report.limited("connection", "closing %s: %s", conn, reason)
        if self._by_flow.pop(conn.flow, None) is not None:
            key = (conn.transport, conn.host, conn.port)
            if self._by_peer.get(key) == conn.flow:
                del self._by_peer[key]

    def find(self, dest: Endpoint) -> S | None:
        """The connection ``dest`` names by flow, else any open one to its host:port."""
        if dest.flow is not None:
            conn = self._by_flow.get(dest.flow)
            if conn is not None:
                return conn
        flow = self._by_peer.get((dest.transport, dest.host, dest.port))
        return None if flow is None else self._by_flow[flow]


class Driver:
    """Calls the core for an adapter: records the message (``--record``), logs what happened
    (DEBUG: one line per REGISTER or de-REGISTER) and returns the actions to execute."""

    __slots__ = ("core", "report", "recorder", "plain")

    def __init__(self, core: MidRegistrar, options: ServerOptions) -> None:
        self.core = core
        self.report = Reporter(core)
        self.recorder = options.recorder
        self.plain = self.recorder is None and not self.report.debug
        """Nothing to record or log: adapters may call ``core.receive`` directly."""

    def receive(self, data: bytes, source: Endpoint, now: float) -> list[Action]:
        if self.plain:
            return self.core.receive(data, source, now)
        if self.recorder is not None:
            self.recorder.inbound(now, source, data)
        if not self.report.debug:
            return self.core.receive(data, source, now)
        before = self.report.before()
        actions = self.core.receive(data, source, now)
        self.report.received(data, source, actions, before)
        return actions

    def timer(self, now: float) -> list[Action]:
        if not self.report.debug:
            return self.core.handle_timer(now)
        before = self.report.before()
        actions = self.core.handle_timer(now)
        self.report.timer(actions, before)
        return actions

    def sent(self, now: float, dest: Endpoint, data: bytes) -> None:
        """Record one message we send (call for every send when ``recorder`` is set)."""
        if self.recorder is not None:
            self.recorder.outbound(now, dest, data)


def format_stats(stats: Stats) -> str:
    """One log line with every counter a VoIP engineer looks at."""
    drops = ",".join(f"{reason}:{n}" for reason, n in stats.drops) or "none"
    rejected = ",".join(f"{code}:{n}" for code, n in stats.rejected_by_status) or "none"
    return (
        f"stats: REGISTER received={stats.registers_received} absorbed={stats.registers_absorbed}"
        f" relayed={stats.registers_relayed} rejected={stats.registers_rejected} ({rejected})"
        f" queries={stats.queries_answered} relayed_failed={stats.relayed_failed}"
        f" relayed_timeouts={stats.relayed_timeouts}; de-REGISTER sent={stats.deregisters_sent}"
        f" failed={stats.deregisters_failed} superseded={stats.deregisters_superseded};"
        f" forked={stats.requests_forked}"
        f" branches={stats.branches_created}; retransmissions sent={stats.retransmissions_sent}"
        f" absorbed={stats.retransmissions_absorbed}; aors={stats.aors}"
        f" contacts={stats.contacts} transactions={stats.transactions}; drops={drops}"
        f" internal_errors={stats.internal_errors}"
    )


_WARN_ALWAYS = frozenset({"deregister-failed", "deregister-timeout", "internal-error"})


class Reporter:
    """Turns what the core did into log lines.

    Drops are warnings, limited to ``burst`` lines per reason and minute (remote garbage must not
    flood the log; the stats line counts every drop); failed de-REGISTERs and internal errors are
    always logged. At DEBUG, :meth:`received` writes one line per REGISTER saying whether it was
    relayed, absorbed, rejected or answered as a query (from the stats deltas).
    """

    __slots__ = ("debug", "_core", "_logger", "_burst", "_window", "_seen")

    def __init__(self, core: MidRegistrar, logger: logging.Logger = LOG, burst: int = 10) -> None:
        self._core = core
        self._logger = logger
        self.debug = logger.isEnabledFor(logging.DEBUG)
        self._burst = burst
        self._window = 0.0
        self._seen: dict[str, int] = {}

    def limited(self, key: str, message: str, *args: object) -> None:
        """A warning, at most ``burst`` per key and minute."""
        now = time.monotonic()
        if now - self._window >= 60.0:
            for old, count in self._seen.items():
                if count > self._burst:
                    self._logger.warning("%d more %s suppressed", count - self._burst, old)
            self._window, self._seen = now, {}
        count = self._seen[key] = self._seen.get(key, 0) + 1
        if count <= self._burst:
            self._logger.warning(message, *args)

    def drop(self, action: Drop) -> None:
        where = f" from {action.source}" if action.source is not None else ""
        if action.reason in _WARN_ALWAYS:
            level = logging.ERROR if action.reason == "internal-error" else logging.WARNING
            self._logger.log(level, "%s%s: %s", action.reason, where, action.detail)
        else:
            self.limited(action.reason, "dropped (%s)%s: %s", action.reason, where, action.detail)

    def before(self) -> Stats:
        return self._core.stats()

    def received(self, data: bytes, source: Endpoint, actions: list[Action], before: Stats) -> None:
        """DEBUG: one line for a REGISTER (call only when ``debug``; ``before`` from before())."""
        if not data.startswith(b"REGISTER "):
            return
        after = self._core.stats()
        what = _header(data, b"to", b"t") or "?"
        call = f"Call-ID {_header(data, b'call-id', b'i')}, CSeq {_header(data, b'cseq')}"
        if after.registers_relayed > before.registers_relayed:
            dest = next((str(a.dest) for a in actions if isinstance(a, SendUpstream)), "upstream")
            outcome = f"relayed to {dest}"
        elif after.registers_absorbed > before.registers_absorbed:
            outcome = "absorbed (answered locally)"
        elif after.registers_rejected > before.registers_rejected:
            status = next((a.data[8:11].decode() for a in actions if isinstance(a, Reply)), "?")
            outcome = f"rejected with {status}"
        elif after.queries_answered > before.queries_answered:
            outcome = "query answered"
        elif after.retransmissions_absorbed > before.retransmissions_absorbed:
            outcome = "retransmission absorbed"
        else:
            outcome = "handled"
        self._logger.debug("REGISTER %s from %s (%s): %s", what, source, call, outcome)

    def timer(self, actions: list[Action], before: Stats) -> None:
        """DEBUG: our own de-REGISTERs sent by a timer."""
        after = self._core.stats()
        for action in actions:
            if isinstance(action, SendUpstream) and after.deregisters_sent > before.deregisters_sent:
                if action.data.startswith(b"REGISTER "):
                    self._logger.debug("de-REGISTER %s sent to %s (a device stopped refreshing)",
                                       _header(action.data, b"to", b"t") or "?", action.dest)

    def stats(self) -> None:
        self._logger.info("%s", format_stats(self._core.stats()))


def _header(data: bytes, *names: bytes) -> str | None:
    """The first value of a header (any of its names) from raw message bytes, for log lines."""
    head = data.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in names:
            return value.strip().decode("utf-8", "replace")
    return None
