# Documented expected deviations: where a trace recorded from another implementation (OpenSIPS)
# differs from what our core does *on purpose* (DESIGN.md §5, an OpenSIPS defect we do not copy,
# one of our RFC choices). A deviation names blocks and says why; the replay then tolerates exactly
# that and nothing else, and reports every deviation it used (and every one it did not need).
#
# One grammar, two places:
#   in a trace header     # expected-deviation: skip 36-39: OpenSIPS's redundant de-REGISTERs ...
#   in deviations.toml    [traces."star-ctthrottle"]
#                         expected-deviations = ["differ 14: OpenSIPS lists one of two bindings"]
# Entry: KIND BLOCKS: REASON, BLOCKS = N | N-M | a comma list of those | * (every block); block
# numbers count the trace's `@` blocks from 1. Kinds:
#   skip    these blocks are left out: an input is not fed, an expectation is not required.
#   differ  these expectations must be sent (same destination, in time), their content may differ;
#           values that can be captured still are. `differ 16 [Expires, Contact set]: why` limits
#           the licence to the named parts (the names the failure report uses).
#   extra   messages our core sends while these blocks are replayed (from the time of the first to
#           the time of the last, plus the tolerance) may have no expectation.
# A deviations.toml applies to the traces beside it and below it (found by walking up from a
# trace's folder); its keys are trace names (file names without .txt).
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeAlias

__all__ = [
    "DEVIATION_FILE",
    "Deviation",
    "DeviationError",
    "DeviationKind",
    "find_deviation_file",
    "load_deviation_file",
    "parse_deviation",
]

DeviationKind: TypeAlias = Literal["skip", "differ", "extra"]
DEVIATION_FILE: Final = "deviations.toml"
HEADER_KEY: Final = "expected-deviation"
_ENTRY: Final = re.compile(
    r"\s*(skip|differ|extra)\s+([0-9,\s*-]+?)\s*(?:\[([^\]]*)\]\s*)?:\s*(\S.*)", re.IGNORECASE | re.DOTALL)
_RANGE: Final = re.compile(r"\s*([0-9]+)\s*(?:-\s*([0-9]+))?\s*")


class DeviationError(ValueError):
    """A deviation entry (or deviations file) that cannot be understood; says where."""


@dataclass(frozen=True, slots=True)
class Deviation:
    """One documented expected deviation. ``blocks`` are 1-based block numbers (None: all);
    ``parts`` limits a ``differ`` to differences in these parts (empty: any part)."""

    kind: DeviationKind
    blocks: frozenset[int] | None
    reason: str
    text: str
    origin: str
    parts: tuple[str, ...] = ()

    def covers(self, number: int) -> bool:
        return self.blocks is None or number in self.blocks

    def forgives(self, what: str) -> bool:
        """Does this ``differ`` allow a difference in part ``what`` (e.g. "Via #1 ;branch=")?"""
        if not self.parts:
            return True
        low = what.lower()
        return any(low == p.lower() or low.startswith(p.lower() + " ") for p in self.parts)

    def __str__(self) -> str:
        return self.text


def parse_deviation(text: str, origin: str = "") -> Deviation:
    """Parse ``KIND BLOCKS: REASON``; raises DeviationError naming ``origin``."""
    m = _ENTRY.fullmatch(text)
    if m is None:
        raise DeviationError(
            f"{origin}: {text!r}: write 'skip|differ|extra BLOCKS: reason' (BLOCKS: 12, 3-5 or *;"
            " differ may name parts: 'differ 12 [Expires]: reason')")
    kind = m.group(1).lower()
    spec = m.group(2).strip()
    blocks: frozenset[int] | None
    if spec == "*":
        blocks = None
    else:
        numbers: set[int] = set()
        for part in spec.split(","):
            r = _RANGE.fullmatch(part)
            if r is None:
                raise DeviationError(f"{origin}: bad block list {spec!r} in {text!r}")
            first = int(r.group(1))
            last = int(r.group(2) or first)
            if first < 1 or last < first:
                raise DeviationError(f"{origin}: bad block range {part.strip()!r} (blocks count "
                                     "from 1)")
            numbers.update(range(first, last + 1))
        blocks = frozenset(numbers)
    parts = tuple(p.strip() for p in (m.group(3) or "").split(",") if p.strip())
    if parts and kind != "differ":
        raise DeviationError(f"{origin}: only 'differ' takes [parts]: {text!r}")
    return Deviation(kind, blocks, m.group(4).strip(), " ".join(text.split()),  # type: ignore[arg-type]
                     origin, parts)


def load_deviation_file(path: str | os.PathLike[str]) -> dict[str, tuple[Deviation, ...]]:
    """Read a deviations.toml: ``{trace name: deviations}``."""
    fspath = os.fspath(path)
    try:
        with open(fspath, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise DeviationError(f"{fspath}: {exc}") from None
    traces = data.get("traces", {})
    if not isinstance(traces, dict):
        raise DeviationError(f"{fspath}: [traces] must be a table of trace names")
    out: dict[str, tuple[Deviation, ...]] = {}
    for name, table in traces.items():
        entries = table.get("expected-deviations", []) if isinstance(table, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise DeviationError(
                f"{fspath}: [traces.{name!r}] needs expected-deviations = [\"KIND BLOCKS: why\"]")
        out[name] = tuple(parse_deviation(e, f"{fspath} [traces.{name}]") for e in entries)
    return out


def find_deviation_file(trace_path: str | os.PathLike[str], *, levels: int = 4) -> Path | None:
    """The nearest deviations.toml in the trace's folder or up to ``levels`` folders above."""
    folder = Path(trace_path).resolve().parent
    for _ in range(levels + 1):
        candidate = folder / DEVIATION_FILE
        if candidate.is_file():
            return candidate
        if folder.parent == folder:
            break
        folder = folder.parent
    return None
