"""Our recorder: a minimal UDP loop around MidRegistrar that writes every datagram in and out.

Used by ``record_corpus.py`` (it runs in a thread while SIPp phones and Kamailio talk to it).
One UDP socket on the mid-registrar address; every datagram received is written to the trace
and handed to ``core.receive``; every action is executed (``sendto``) and written.

Timing discipline, so that a trace replays byte for byte (``--strict``): the core's clock is the
trace clock. A datagram gets the time ``round(monotonic() - origin, 3)`` -- exactly what the
trace stores -- and, before it is processed, every deadline due at or before that time is fired
with ``handle_timer(deadline)`` (the deadline itself, not the wall clock). While idle the loop
wakes at the next deadline and fires it the same way. The replay engine does exactly this, so
the same seed and the same inputs at the same times produce the same bytes.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterable
from typing import TextIO

from sansmidreg import (
    Action,
    ArmTimer,
    Config,
    Drop,
    Endpoint,
    Fork,
    MidRegistrar,
    Reply,
    SeededIds,
    SendRequest,
    SendUpstream,
)
from sansmidreg.conformance import TraceAddress, TraceWriter

__all__ = ["Recorder"]


def _addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Recorder:
    """Runs a MidRegistrar on ``config.local[0]`` (UDP) and records a trace to ``stream``."""

    def __init__(self, config: Config, *, seed: int, stream: TextIO, title: str,
                 config_pairs: Iterable[tuple[str, str]],
                 extra_headers: Iterable[tuple[str, str]] = ()) -> None:
        self.config = config
        self.local = config.local[0]
        self.core = MidRegistrar(config, ids=SeededIds(seed))
        self.writer = TraceWriter(
            stream, title,
            mid=[TraceAddress("udp", self.local.host, self.local.port)],
            upstream=TraceAddress("udp", config.upstream.host, config.upstream.port),
            config=list(config_pairs),
            extra_headers=[("seed", str(seed)), *extra_headers],
            time_origin=0.0,
        )
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.local.host, self.local.port))
        self.drops: list[tuple[float, Drop]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._origin: float | None = None
        self._last = 0.0

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Recorder:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()
        if self.errors:
            raise RuntimeError(f"recorder failed: {self.errors[0]!r}") from self.errors[0]

    def now(self) -> float:
        """The trace clock: seconds since the first datagram, to the millisecond."""
        if self._origin is None:
            self._origin = time.monotonic()
        return round(time.monotonic() - self._origin, 3)

    def _elapsed(self) -> float:
        return 0.0 if self._origin is None else time.monotonic() - self._origin

    # -- the loop ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                deadline = self.core.next_deadline()
                wait = 0.05
                if deadline is not None:
                    wait = max(0.0, min(wait, deadline - self._elapsed()))
                ready, _, _ = select.select([self.sock], [], [], wait)
                if ready:
                    data, (host, port) = self.sock.recvfrom(65535)
                    at = max(self.now(), self._last)
                    self._fire(at)
                    self._last = at
                    self.writer.write(at, _addr(host, port), _addr(self.local.host,
                                                                   self.local.port), data)
                    source = Endpoint(host=host, port=port)
                    self._execute(self.core.receive(data, source, at), at)
                else:
                    self._fire(self._elapsed())
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.errors.append(exc)

    def _fire(self, limit: float) -> None:
        while (deadline := self.core.next_deadline()) is not None and deadline <= limit:
            at = max(deadline, self._last)
            self._last = at
            self._execute(self.core.handle_timer(at), at)

    def _execute(self, actions: list[Action], at: float) -> None:
        for action in actions:
            match action:
                case SendUpstream() | Reply() | SendRequest():
                    self._send(action.data, action.dest, at)
                case Fork(branches=branches):
                    for branch in branches:
                        self._send(branch.data, branch.dest, at)
                case Drop():
                    self.drops.append((at, action))
                case ArmTimer():
                    pass

    def _send(self, data: bytes, dest: Endpoint, at: float) -> None:
        self.writer.write(at, _addr(self.local.host, self.local.port), _addr(dest.host, dest.port),
                          data)
        self.sock.sendto(data, (dest.host, dest.port))
