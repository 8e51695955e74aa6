# The replay engine: runs a trace against a fresh MidRegistrar and says where it diverges.
#
# The core is built from the trace header (config pairs, mid-registrar and upstream addresses,
# `seed` for SeededIds). Blocks are walked in file order. An input (a block sent *to* a
# mid-registrar address by anyone else) is fed with `receive` at its time, after every deadline
# due at or before that time has been fired with `handle_timer` at the deadline itself; blocks
# between two other parties are context and are not fed. What the core sends is queued per
# destination, stamped with the time the core was told. An expectation (a block sent *by* a
# mid-registrar address) is matched with the next unmatched message our core sent to the same
# destination: in order, within the trace's time tolerance, semantically (_match.py) or, in
# strict mode, byte for byte. If nothing is queued yet, deadlines up to the end of the
# expectation's window (never past the next input) are fired first.
#
# Failures, each stopping the replay at the first divergence: a message that differs; an
# expectation whose window closed with nothing sent ("missing"); a message whose window closed
# with no expectation ("unexpected", unless an `extra` deviation allows it); a message sent out
# of the tolerance. Documented deviations (_deviations.py) skip, relax or allow exactly what they
# name. Block numbers in reports count the trace's `@` blocks from 1.
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .._actions import (
    Action,
    ArmTimer,
    Drop,
    Endpoint,
    Fork,
    Reply,
    SendRequest,
    SendUpstream,
)
from .._config import Config
from .._core import MidRegistrar
from .._errors import UsageError
from .._ids import IdSource, SeededIds
from ._deviations import HEADER_KEY, Deviation, DeviationError, parse_deviation
from ._match import Captures, InputLog, compare_bytes, compare_messages, message_diff
from ._trace import Trace, TraceAddress, TraceBlock

__all__ = [
    "CoreFactory",
    "CoreLike",
    "Emission",
    "Failure",
    "TraceResult",
    "build_config",
    "replay_trace",
    "trace_deviations",
    "trace_seed",
]

_TIMER_GUARD = 1_000_000


class CoreLike(Protocol):
    """What the engine drives: MidRegistrar, or a test's wrapper around it."""

    def receive(self, data: bytes, source: Endpoint, now: float) -> list[Action]: ...

    def handle_timer(self, now: float) -> list[Action]: ...

    def next_deadline(self) -> float | None: ...


CoreFactory = Callable[[Config, IdSource], CoreLike]


def _default_core(config: Config, ids: IdSource) -> CoreLike:
    return MidRegistrar(config, ids=ids)


@dataclass(frozen=True, slots=True)
class Emission:
    """One message our core sent during the replay."""

    time: float
    dest: Endpoint
    data: bytes
    action: str
    cause: int | None
    """The number of the last input block fed before it was sent (None: before any)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """The first divergence: where (block number from 1, its line and time), what, and detail."""

    block: int | None
    line: int
    time: float
    summary: str
    details: str = ""


@dataclass(frozen=True, slots=True)
class TraceResult:
    """The outcome of one replay."""

    name: str
    title: str
    path: str | None
    strict: bool
    failure: Failure | None
    inputs: int = 0
    expectations: int = 0
    matched: int = 0
    skipped: int = 0
    deviations_used: tuple[str, ...] = ()
    deviations_unused: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    skipped_reason: str | None = None
    """Set when there was nothing to replay (no mid-registrar address in the header)."""

    @property
    def passed(self) -> bool:
        return self.failure is None

    def summary_line(self) -> str:
        """``PASS name: ...`` or ``FAIL name: block N (line L, @T): what``."""
        if self.failure is not None:
            f = self.failure
            where = "" if f.block is None else f"block {f.block} (line {f.line}, @{f.time:.3f}): "
            return f"FAIL {self.name}: {where}{f.summary}"
        if self.skipped_reason is not None:
            return f"SKIP {self.name}: {self.skipped_reason}"
        parts = [f"{self.matched} messages matched", f"{self.inputs} inputs fed"]
        if self.skipped:
            parts.append(f"{self.skipped} blocks skipped")
        if self.deviations_used:
            parts.append(f"{len(self.deviations_used)} documented deviation"
                         f"{'s' if len(self.deviations_used) != 1 else ''}")
        mode = "strict" if self.strict else "semantic"
        return f"PASS {self.name}: {', '.join(parts)} ({mode})"

    def report(self) -> str:
        """The summary line, then the failure's details and any notes, indented."""
        lines = [self.summary_line()]
        if self.failure is not None and self.failure.details:
            lines += ["    " + line for line in self.failure.details.splitlines()]
        for note in self.notes:
            lines.append(f"    note: {note}")
        for text in self.deviations_unused:
            lines.append(f"    note: deviation not needed any more: {text}")
        return "\n".join(lines)


class _Diverged(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.summary)
        self.failure = failure


def build_config(trace: Trace) -> Config:
    """The Config a trace header describes (``config:`` pairs, mid-registrar and upstream)."""
    overrides: dict[str, object] = {}
    if trace.mid:
        overrides["local"] = tuple(_endpoint(m) for m in trace.mid)
    if trace.upstream is not None:
        overrides["upstream"] = _endpoint(trace.upstream)
    return Config.from_mapping(trace.config_dict(), **overrides)


def trace_seed(trace: Trace) -> int | None:
    """The ``# seed:`` header (the SeededIds seed the recorder used), if any."""
    values = trace.header_values("seed")
    if not values:
        return None
    try:
        return int(values[-1])
    except ValueError:
        raise UsageError(f"{trace.name}: '# seed: {values[-1]}' is not an integer") from None


def trace_deviations(trace: Trace) -> tuple[Deviation, ...]:
    """The ``# expected-deviation:`` entries of a trace header."""
    try:
        return tuple(parse_deviation(v, f"{trace.name} header") for v in
                     trace.header_values(HEADER_KEY))
    except DeviationError as exc:
        raise UsageError(str(exc)) from None


def _endpoint(addr: TraceAddress) -> Endpoint:
    return Endpoint(transport=addr.transport, host=addr.host, port=addr.port)


def _key(transport: str, host: str, port: int) -> tuple[str, str, int]:
    return transport, host.lower().strip("[]"), port


def _where(block: TraceBlock) -> str:
    return f"@{block.time:.3f} {block.src} -> {block.dst}"


def _first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode("utf-8", "replace")[:100]


class _Replay:
    def __init__(self, trace: Trace, core: CoreLike, *, strict: bool,
                 deviations: Sequence[Deviation]) -> None:
        self.trace = trace
        self.core = core
        self.strict = strict
        self.tol = trace.time_tolerance
        self.deviations = tuple(deviations)
        self.used: dict[str, None] = {}
        self.captures = Captures()
        self.log = InputLog()
        self.now = 0.0
        self.last_input: int | None = None
        self.unmatched: dict[tuple[str, str, int], deque[Emission]] = {}
        self.outstanding: dict[tuple[str, str, int], deque[TraceBlock]] = {}
        self.drops: list[tuple[float, int | None, Drop]] = []
        self.flows: dict[tuple[str, str, int], int] = {}
        self.inputs = self.expectations = self.matched = self.skipped = 0
        blocks = trace.blocks
        # extra windows: [time of first named block, time of last named block + tolerance]
        self.extra_windows: list[tuple[float, float, Deviation]] = []
        for dev in self.deviations:
            if dev.kind != "extra":
                continue
            named = [b.time for b in blocks if dev.covers(b.index + 1)]
            if dev.blocks is None:
                self.extra_windows.append((-math.inf, math.inf, dev))
            elif named:
                self.extra_windows.append((min(named), max(named) + self.tol, dev))

    # -- deviations ----------------------------------------------------------------------------
    def _deviation(self, kind: str, number: int) -> Deviation | None:
        for dev in self.deviations:
            if dev.kind == kind and dev.covers(number):
                return dev
        return None

    def _use(self, dev: Deviation) -> None:
        self.used.setdefault(dev.text)

    def _extra_allowed(self, em: Emission) -> Deviation | None:
        for start, end, dev in self.extra_windows:
            if start <= em.time <= end:
                return dev
        return None

    # -- driving the core ----------------------------------------------------------------------
    def _collect(self, actions: Iterable[Action], at: float) -> None:
        for action in actions:
            match action:
                case SendUpstream() | Reply() | SendRequest():
                    self._emit(at, action.dest, action.data, type(action).__name__)
                case Fork(branches=branches):
                    for branch in branches:
                        self._emit(at, branch.dest, branch.data, "Fork")
                case Drop():
                    self.drops.append((at, self.last_input, action))
                case ArmTimer():
                    pass

    def _emit(self, at: float, dest: Endpoint, data: bytes, kind: str) -> None:
        key = _key(dest.transport, dest.host, dest.port)
        em = Emission(at, dest, data, kind, self.last_input)
        self.unmatched.setdefault(key, deque()).append(em)

    def _advance(self, limit: float) -> None:
        """Fire every deadline at or before ``limit``, each at its own time."""
        for _ in range(_TIMER_GUARD):
            deadline = self.core.next_deadline()
            if deadline is None or deadline > limit:
                return
            self.now = max(self.now, deadline)
            self._collect(self.core.handle_timer(self.now), self.now)
        raise _Diverged(Failure(None, 0, self.now, "the core's timers never settle "
                                f"(more than {_TIMER_GUARD} firings)"))

    def _source(self, addr: TraceAddress) -> Endpoint:
        flow = None
        if addr.transport != "udp":
            key = _key(addr.transport, addr.host, addr.port)
            flow = self.flows.setdefault(key, len(self.flows) + 1)
        return Endpoint(transport=addr.transport, host=addr.host, port=addr.port, flow=flow)

    def _ours(self, addr: TraceAddress) -> bool:
        return any(addr.host == m.host and addr.port == m.port for m in self.trace.mid)

    # -- the walk ------------------------------------------------------------------------------
    def run(self) -> Failure | None:
        blocks = self.trace.blocks
        next_input: list[float | None] = [None] * len(blocks)
        upcoming: float | None = None
        for i in range(len(blocks) - 1, -1, -1):
            next_input[i] = upcoming
            b = blocks[i]
            if not self.trace.is_expectation(b) and self._ours(b.dst) and not self._deviation(
                    "skip", i + 1):
                upcoming = b.time
        try:
            for i, block in enumerate(blocks):
                number = i + 1
                skip = self._deviation("skip", number)
                if skip is not None:
                    self._use(skip)
                    self.skipped += 1
                    continue
                if self.trace.is_expectation(block):
                    self._expect(block, next_input[i])
                elif self._ours(block.dst):
                    self._feed(block)
            end = max((b.time for b in blocks), default=0.0) + self.tol
            self._advance(end)
            self._settle()
            self._overdue(math.inf)
        except _Diverged as exc:
            return exc.failure
        return None

    def _feed(self, block: TraceBlock) -> None:
        self._advance(block.time)
        self._settle()
        self._overdue(block.time)
        number = block.index + 1
        data = block.data if self.strict else self.captures.rewrite(block.data)
        self.log.add(block.data)
        self.now = max(self.now, block.time)
        self.last_input = number
        self.inputs += 1
        self._collect(self.core.receive(data, self._source(block.src), self.now), self.now)
        self._settle()

    def _expect(self, block: TraceBlock, next_input: float | None) -> None:
        self.expectations += 1
        key = _key(block.dst.transport, block.dst.host, block.dst.port)
        queue = self.outstanding.setdefault(key, deque())
        queue.append(block)
        self._settle()
        if any(b is block for b in queue):  # nothing sent for it yet
            limit = block.time + self.tol
            if next_input is not None:
                limit = min(limit, next_input)
            self._advance(limit)
            self._settle()

    def _settle(self) -> None:
        """Pair outstanding expectations with what the core sent, destination by destination."""
        for key, expected in self.outstanding.items():
            sent = self.unmatched.get(key)
            while expected and sent:
                self._pair(expected, sent)

    def _pair(self, expected: deque[TraceBlock], sent: deque[Emission]) -> None:
        block, em = expected[0], sent[0]
        number = block.index + 1
        if em.time < block.time - self.tol:
            # sent before anything was expected there: an extra message, if allowed
            allowed = self._extra_allowed(em)
            if allowed is None:
                raise _Diverged(self._unexpected(em, block))
            self._use(allowed)
            sent.popleft()
            return
        if em.time > block.time + self.tol:
            raise _Diverged(self._fail(block, f"sent {em.time - block.time:.3f} s late (tolerance "
                                       f"{self.tol:g} s)", em, []))
        differ = self._deviation("differ", number)
        if self.strict:
            diffs = compare_bytes(block.data, em.data)
        else:
            diffs = compare_messages(block.data, em.data, self.captures, self.log,
                                     lenient=differ is not None)
        if diffs and differ is not None and all(differ.forgives(d.what) for d in diffs):
            self._use(differ)
            diffs = []
        if diffs:
            allowed = self._extra_allowed(em)
            if allowed is not None and len(sent) > 1:
                self._use(allowed)
                sent.popleft()  # an allowed extra message; try the next one
                return
            raise _Diverged(self._fail(block, f"{diffs[0].what} differs", em, diffs))
        expected.popleft()
        sent.popleft()
        self.matched += 1

    def _overdue(self, now: float) -> None:
        """Expectations whose window closed unanswered; messages nobody expected."""
        for key, expected in self.outstanding.items():
            if expected and expected[0].time + self.tol < now:
                block = expected[0]
                raise _Diverged(self._fail(block, f"expected message not sent (nothing to "
                                           f"{block.dst} within {self.tol:g} s)", None, []))
        for key, sent in self.unmatched.items():
            while sent and sent[0].time + self.tol < now and not self.outstanding.get(key):
                em = sent[0]
                allowed = self._extra_allowed(em)
                if allowed is None:
                    raise _Diverged(self._unexpected(em, None))
                self._use(allowed)
                sent.popleft()

    # -- reports -------------------------------------------------------------------------------
    def _context(self, around: float) -> list[str]:
        lines = []
        for at, cause, drop in self.drops:
            if abs(at - around) <= max(self.tol, 1.0) * 2:
                after = f" (input block {cause})" if cause is not None else ""
                lines.append(f"our core dropped input @{at:.3f}{after}: {drop.reason}: "
                             f"{drop.detail}")
        return lines

    def _fail(self, block: TraceBlock, summary: str, em: Emission | None,
              diffs: Sequence[object]) -> Failure:
        number = block.index + 1
        lines = [f"trace: {self.trace.name}" + (f" -- {self.trace.title}" if self.trace.title
                                                  else ""),
                 f"block {number}, line {block.line}: {_where(block)}: {_first_line(block.data)}"]
        if diffs:
            lines.append("differences:")
            lines += [f"  {d}" for d in diffs]
        if em is not None:
            lines.append(f"our core sent @{em.time:.3f} to {em.dest} ({em.action}):")
            lines += message_diff(block.data, em.data, got_label=f"got (our core, @{em.time:.3f})"
                                  ).splitlines()
        else:
            lines.append("expected:")
            lines += ["  " + ln for ln in block.data.decode("utf-8", "replace").splitlines()]
        lines += self._context(block.time)
        return Failure(number, block.line, block.time, summary, "\n".join(lines))

    def _unexpected(self, em: Emission, next_block: TraceBlock | None) -> Failure:
        """A message nobody expected. It is attributed to the input that caused it when it was
        sent at that input's time, else (a timer) to the first block after it."""
        blocks = self.trace.blocks
        cause = blocks[em.cause - 1] if em.cause is not None else None
        where = cause
        if cause is None or em.time > cause.time:
            where = next((b for b in blocks if b.time > em.time), blocks[-1] if blocks else None)
        lines = [f"trace: {self.trace.name}" + (f" -- {self.trace.title}" if self.trace.title
                                                  else "")]
        if cause is not None:
            lines.append(f"after input block {cause.index + 1}, line {cause.line}: "
                         f"{_where(cause)}: {_first_line(cause.data)}")
        if next_block is not None:
            lines.append(f"the next message the trace expects to {em.dest} is block "
                         f"{next_block.index + 1} {_where(next_block)}")
        lines.append(f"our core sent @{em.time:.3f} to {em.dest} ({em.action}), with no "
                     "expectation in the trace:")
        lines += ["  " + ln for ln in em.data.decode("utf-8", "replace").splitlines()]
        lines += self._context(em.time)
        summary = f"unexpected message to {em.dest} @{em.time:.3f}: {_first_line(em.data)}"
        if where is None:
            return Failure(None, 0, em.time, summary, "\n".join(lines))
        return Failure(where.index + 1, where.line, where.time, summary, "\n".join(lines))


def replay_trace(trace: Trace, *, strict: bool = False, seed: int | None = None,
                 deviations: Iterable[Deviation] = (), path: str | None = None,
                 core_factory: CoreFactory | None = None) -> TraceResult:
    """Replay ``trace`` against a fresh core and compare what it sends with the expectations.

    :param strict: compare bytes instead of meaning (for traces our recorder made with a seed).
    :param seed: SeededIds seed; default the trace's ``# seed:`` header, else 0.
    :param deviations: documented expected deviations besides the trace's own header entries.
    :param core_factory: ``(config, ids) -> core`` (tests wrap the core to break it).
    :returns: the result; a trace whose header cannot be turned into a core fails at block None.
    """
    try:
        config = build_config(trace)
        header_seed = trace_seed(trace)
        all_devs = trace_deviations(trace) + tuple(deviations)
    except UsageError as exc:
        return TraceResult(trace.name, trace.title, path, strict,
                           Failure(None, 0, 0.0, f"bad trace header: {exc}"))
    if not trace.mid:
        return TraceResult(trace.name, trace.title, path, strict, None, skipped_reason=(
            "no mid-registrar address in the header: a baseline trace without the system under "
            "test, nothing to replay"))
    chosen = seed if seed is not None else header_seed if header_seed is not None else 0
    core = (core_factory or _default_core)(config, SeededIds(chosen))
    replay = _Replay(trace, core, strict=strict, deviations=all_devs)
    failure = replay.run()
    unused = tuple(d.text for d in all_devs if d.text not in replay.used)
    notes: tuple[str, ...] = ()
    if failure is None and not strict and header_seed is not None and seed is not None and (
            seed != header_seed):
        notes = (f"replayed with seed {seed}, recorded with {header_seed}",)
    return TraceResult(
        trace.name, trace.title, path, strict, failure, inputs=replay.inputs,
        expectations=replay.expectations, matched=replay.matched, skipped=replay.skipped,
        deviations_used=tuple(replay.used), deviations_unused=unused if failure is None else (),
        notes=notes)
