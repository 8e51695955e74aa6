# The recorder hook of `sansmidreg serve --record FILE`: every message in and out, written as a
# conformance trace (issue 6 format, through sansmidreg.conformance's TraceWriter) that
# `sansmidreg conformance run` replays -- byte for byte with --strict when the server ran with
# --seed (the seed goes in the trace header).
from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import TextIO

from sansmidreg import Config, Endpoint, Transport
from sansmidreg.conformance._trace import TraceWriter

from ._common import LOG

__all__ = ["TraceRecorder", "config_pairs"]


def _text(value: object) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    return str(value)


def config_pairs(config: Config) -> list[tuple[str, str]]:
    """The ``# config:`` pairs of a trace: ``mode`` and every field that differs from the
    default (addresses go in the trace's own header lines)."""
    default = Config()
    pairs = [("mode", _text(config.mode))]
    for f in dataclasses.fields(Config):
        if f.name in ("mode", "local", "upstream", "extra"):
            continue
        value = getattr(config, f.name)
        if value != getattr(default, f.name):
            pairs.append((f.name, _text(value)))
    return pairs


class TraceRecorder:
    """Writes every message in and out as a conformance trace (a ``Recorder``).

    Our side of each block is the listening address of the message's transport, so the replay
    engine recognises our messages as expectations; peers appear with their transport prefix.
    """

    __slots__ = ("_writer", "_ours", "_stream")

    def __init__(self, stream: TextIO, config: Config, listen: Sequence[Endpoint],
                 title: str = "recorded by sansmidreg serve --record",
                 seed: int | None = None) -> None:
        self._stream = stream
        ours = [Endpoint(transport=e.transport, host=e.host, port=e.port) for e in listen]
        self._ours = {e.transport: e for e in reversed(ours)}
        extra = () if seed is None else (("seed", str(seed)),)  # replay --strict: same ids
        self._writer = TraceWriter(stream, title, [str(e) for e in ours], str(config.upstream),
                                   config_pairs(config), extra_headers=extra)

    def _us(self, transport: Transport) -> str:
        return str(self._ours.get(transport) or next(iter(self._ours.values())))

    def inbound(self, now: float, source: Endpoint, data: bytes) -> None:
        self._write(now, str(source), self._us(source.transport), data)

    def outbound(self, now: float, dest: Endpoint, data: bytes) -> None:
        self._write(now, self._us(dest.transport), str(dest), data)

    def _write(self, now: float, src: str, dst: str, data: bytes) -> None:
        try:
            self._writer.write(now, src, dst, data)
        except ValueError as exc:  # TraceFormatError: bytes the text form cannot carry
            LOG.warning("record: message %s -> %s not recorded: %s", src, dst, exc)

    def close(self) -> None:
        self._stream.close()

