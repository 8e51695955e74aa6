# `sansmidreg conformance ...` (also `python -m sansmidreg.conformance ...`):
#   run PATH... [--strict] [-k PATTERN] [--junit FILE] [--seed N] [--deviations FILE] [-v]
#   import CAPTURE --mid ADDR [--mid ADDR ...] [--upstream ADDR] [--title T] [--config k=v ...]
#          [--time-tolerance S] [-o OUT]
# `run` replays trace files (folders are searched for *.txt) and prints one line per trace, the
# failure report under a failing one, and a total; exit status 0 when every trace passed, 1 when
# one failed, 2 for a usage error (bad option, no trace found). `--strict` compares bytes for the
# traces our recorder made with a fixed seed (a `# seed:` header, or --seed); the others stay
# semantic.
# `import` turns a libpcap/pcapng capture into a trace (to stdout or -o).
from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO
from xml.sax.saxutils import escape, quoteattr

from .._errors import UsageError
from ._deviations import (
    Deviation,
    DeviationError,
    find_deviation_file,
    load_deviation_file,
)
from ._pcap import PcapError, import_pcap
from ._replay import Failure, TraceResult, replay_trace, trace_seed
from ._trace import TraceAddress, TraceFormatError, format_trace, load_trace

__all__ = ["cli_main", "collect_traces"]

_PROG = "sansmidreg conformance"


class _Usage(Exception):
    pass


def collect_traces(paths: Sequence[str]) -> list[Path]:
    """Trace files named by ``paths``: files as given, folders searched for ``*.txt``."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.txt") if p.is_file()
                            and p.name.lower() != "readme.txt")
        elif path.is_file():
            found.append(path)
        else:
            raise _Usage(f"{text}: no such file or folder")
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve())
    return list(unique)


def _selected(name: str, patterns: Sequence[str]) -> bool:
    if not patterns:
        return True
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            if fnmatch.fnmatchcase(name, pattern):
                return True
        elif pattern in name:
            return True
    return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_PROG, description="Replay, and import, SIP traces of "
                                     "a mid-registrar (the sansmidreg conformance suite).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,import}")
    run = sub.add_parser("run", help="replay trace files against the core",
                         description="Replay trace files (folders: every *.txt inside) against "
                         "a fresh core each; exit 0 when all pass.")
    run.add_argument("paths", nargs="+", metavar="PATH", help="trace files or folders")
    run.add_argument("--strict", action="store_true",
                     help="compare bytes for traces recorded with a fixed seed (a # seed: "
                     "header, or --seed); the others stay semantic")
    run.add_argument("-k", dest="patterns", action="append", default=[], metavar="PATTERN",
                     help="only traces whose name contains PATTERN (or matches the glob); "
                     "repeatable")
    run.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report")
    run.add_argument("--seed", type=int, help="SeededIds seed (default: the trace's # seed:, "
                     "else 0)")
    run.add_argument("--deviations", metavar="FILE", help="deviations.toml to use (default: "
                     "the nearest one in the trace's folder or above)")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="also list the documented deviations each trace used")
    imp = sub.add_parser("import", help="convert a packet capture into a trace",
                         description="Convert a libpcap/pcapng capture (UDP, or TCP "
                         "reassembled) into a trace.")
    imp.add_argument("capture", metavar="CAPTURE")
    imp.add_argument("--mid", action="append", required=True, metavar="ADDR",
                     help="an address of the system under test ([udp:|tcp:]host:port); "
                     "repeatable")
    imp.add_argument("--upstream", metavar="ADDR", help="the main registrar's address")
    imp.add_argument("--title", default="imported from a packet capture")
    imp.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                     help="a config pair for the header (repeatable)")
    imp.add_argument("--time-tolerance", type=float, metavar="SECONDS")
    imp.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    return parser


def cli_main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
             stderr: TextIO | None = None) -> int:
    """Run ``sansmidreg conformance ARGS``; return the exit status (0 ok, 1 failed, 2 usage)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse printed the problem
        return 0 if exc.code == 0 else 2
    try:
        if args.command == "run":
            return _run(args, out)
        return _import(args, out)
    except (_Usage, UsageError, DeviationError, TraceFormatError, PcapError, OSError) as exc:
        print(f"{_PROG}: error: {exc}", file=err)
        return 2


def _run(args: argparse.Namespace, out: TextIO) -> int:
    paths = [p for p in collect_traces(args.paths) if _selected(p.stem, args.patterns)]
    if not paths:
        raise _Usage("no trace matched" + (f" -k {' '.join(args.patterns)}" if args.patterns
                                           else ""))
    forced: dict[str, tuple[Deviation, ...]] | None = (
        load_deviation_file(args.deviations) if args.deviations else None)
    cache: dict[Path, dict[str, tuple[Deviation, ...]]] = {}
    results: list[tuple[TraceResult, float]] = []
    for path in paths:
        started = time.perf_counter()
        result = _run_one(path, args, forced, cache)
        results.append((result, time.perf_counter() - started))
        print(result.report(), file=out)
        if args.verbose:
            for text in result.deviations_used:
                print(f"    deviation: {text}", file=out)
    failed = sum(1 for r, _ in results if not r.passed)
    skipped = sum(1 for r, _ in results if r.skipped_reason is not None)
    used = sum(len(r.deviations_used) for r, _ in results)
    total = f"{len(results) - failed - skipped} passed, {failed} failed"
    if skipped:
        total += f", {skipped} skipped"
    if used:
        total += f" ({used} documented deviations)"
    print(total, file=out)
    if args.junit:
        _write_junit(args.junit, results)
    return 1 if failed else 0


def _run_one(path: Path, args: argparse.Namespace,
             forced: dict[str, tuple[Deviation, ...]] | None,
             cache: dict[Path, dict[str, tuple[Deviation, ...]]]) -> TraceResult:
    name = path.stem
    try:
        trace = load_trace(path)
        if forced is not None:
            devs = forced.get(name, ())
        else:
            found = find_deviation_file(path)
            if found is not None and found not in cache:
                cache[found] = load_deviation_file(found)
            devs = cache[found].get(name, ()) if found is not None else ()
        # bytes only make sense with the recorder's seed: the header's, or one given here
        strict = bool(args.strict) and (trace_seed(trace) is not None or args.seed is not None)
    except (TraceFormatError, DeviationError, UsageError, OSError) as exc:
        return TraceResult(name, "", str(path), False,
                           Failure(None, 0, 0.0, f"cannot load the trace: {exc}"))
    return replay_trace(trace, strict=strict, seed=args.seed, deviations=devs, path=str(path))


def _write_junit(filename: str, results: Sequence[tuple[TraceResult, float]]) -> None:
    failures = sum(1 for r, _ in results if not r.passed)
    skips = sum(1 for r, _ in results if r.skipped_reason is not None)
    total_time = sum(t for _, t in results)
    counts = f'tests="{len(results)}" failures="{failures}"'
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuites {counts} time="{total_time:.3f}">',
             (f'  <testsuite name="sansmidreg-conformance" {counts} errors="0" '
              f'skipped="{skips}" time="{total_time:.3f}">')]
    for result, seconds in results:
        folder = os.path.basename(os.path.dirname(result.path or "")) or "traces"
        head = (f'    <testcase classname={quoteattr("conformance." + folder)} '
                f'name={quoteattr(result.name)} time="{seconds:.3f}"')
        if result.skipped_reason is not None:
            lines.append(head + ">")
            lines.append(f"      <skipped message={quoteattr(result.skipped_reason)}/>")
            lines.append("    </testcase>")
        elif result.passed:
            lines.append(head + ">")
            if result.deviations_used:
                lines.append("      <system-out>" + escape(
                    "\n".join(f"deviation: {d}" for d in result.deviations_used)) +
                    "</system-out>")
            lines.append("    </testcase>")
        else:
            assert result.failure is not None
            lines.append(head + ">")
            lines.append(f"      <failure message={quoteattr(result.summary_line())}>"
                         f"{escape(result.report())}</failure>")
            lines.append("    </testcase>")
    lines += ["  </testsuite>", "</testsuites>", ""]
    with open(filename, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def _import(args: argparse.Namespace, out: TextIO) -> int:
    with open(args.capture, "rb") as f:
        data = f.read()
    pairs: list[tuple[str, str]] = []
    for item in args.config:
        key, eq, value = item.partition("=")
        if not key or not eq:
            raise _Usage(f"--config {item!r}: write KEY=VALUE")
        pairs.append((key, value))
    trace = import_pcap(
        data,
        mid=[TraceAddress.parse(m) for m in args.mid],
        upstream=TraceAddress.parse(args.upstream) if args.upstream else None,
        title=args.title,
        config=pairs,
        time_tolerance=args.time_tolerance,
        name=Path(args.capture).stem,
    )
    text = format_trace(trace)
    if args.output:
        with open(args.output, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
            f.write(text)
        print(f"{args.output}: {len(trace.blocks)} messages, "
              f"{sum(1 for b in trace.blocks if trace.is_expectation(b))} expectations", file=out)
    else:
        out.write(text)
    return 0
