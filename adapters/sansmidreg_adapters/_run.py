# `sansmidreg serve` on each backend: build the core, start the server, wire the signals
# (SIGINT/SIGTERM: graceful stop; SIGUSR1: log the statistics), log the start and the final
# statistics. anyio and trio are imported only when chosen (they are optional extras).
from __future__ import annotations

import dataclasses
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from ._common import LOG, ListenError, ServerOptions
from .cli import Settings, describe, final_stats, make_core, make_recorder, stop_message

if TYPE_CHECKING:
    from sansmidreg import MidRegistrar

__all__ = ["run"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def run(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM; return the exit status (1 when a socket cannot be opened)."""
    core = make_core(settings)
    try:
        recorder = make_recorder(settings)
        options = dataclasses.replace(settings.options, recorder=recorder)
        try:
            {"sockets": _sockets, "anyio": _anyio, "trio": _trio}[settings.backend](
                core, options, settings)
        finally:
            if recorder is not None:
                recorder.close()
    except ListenError as exc:
        return _listen_failed(exc)
    except BaseExceptionGroup as group:
        match, rest = group.split(ListenError)
        if match is None or rest is not None:
            raise
        return _listen_failed(_first(match))
    final_stats(core)
    LOG.info("stopped")
    return 0


def _first(group: BaseExceptionGroup[ListenError]) -> ListenError:
    first = group.exceptions[0]
    return first if isinstance(first, ListenError) else _first(first)


def _listen_failed(exc: ListenError) -> int:
    print(f"sansmidreg serve: {exc.strerror or exc}", file=sys.stderr)
    return 1


def _sockets(core: MidRegistrar, options: ServerOptions, settings: Settings) -> None:
    from .sockets import SocketServer

    server = SocketServer(core, options)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGUSR1:
            server.log_stats()
        else:
            LOG.info("%s", stop_message(signum))
            server.stop()

    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    for sig in _SIGNALS:
        previous[sig] = signal.signal(sig, on_signal)
    try:
        LOG.info("%s", describe(settings))
        server.serve_forever()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _anyio(core: MidRegistrar, options: ServerOptions, settings: Settings) -> None:
    import anyio

    from .anyio_backend import AnyioServer

    async def main() -> None:
        server = AnyioServer(core, options)
        with anyio.open_signal_receiver(*_SIGNALS) as signals:
            async with anyio.create_task_group() as tg:
                await tg.start(server.run)
                LOG.info("%s", describe(settings))
                async for received in signals:
                    if received == signal.SIGUSR1:
                        server.log_stats()
                    else:
                        LOG.info("%s", stop_message(received))
                        server.stop()
                        break

    anyio.run(main)


def _trio(core: MidRegistrar, options: ServerOptions, settings: Settings) -> None:
    import trio

    from .trio_backend import TrioServer

    async def main() -> None:
        server = TrioServer(core, options)
        with trio.open_signal_receiver(*_SIGNALS) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(server.run)
                LOG.info("%s", describe(settings))
                async for signum in signals:
                    if signum == signal.SIGUSR1:
                        server.log_stats()
                    else:
                        LOG.info("%s", stop_message(signum))
                        server.stop()
                        break

    trio.run(main)
