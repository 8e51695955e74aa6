# Unit tests of the replay engine (sansmidreg.conformance._replay): feeding, timers fired at their
# deadlines, matching in order per destination within the tolerance, capture consistency and input
# rewriting, failure reports that name the right block, documented deviations (skip / differ /
# extra, unused ones reported), and traces that cannot be replayed.
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from sansmidreg import Config, Mode
from sansmidreg.conformance import (
    DeviationError,
    Trace,
    TraceBlock,
    build_config,
    load_trace,
    parse_deviation,
    replay_trace,
    trace_seed,
)

ROOT = Path(__file__).resolve().parents[2] / "conformance"
CORPUS = ROOT / "traces"
ORACLE = ROOT / "oracle" / "traces"


def corpus(name: str) -> Trace:
    return load_trace(CORPUS / f"{name}.txt")


def oracle(name: str) -> Trace:
    return load_trace(ORACLE / f"{name}.txt")


def edit(trace: Trace, number: int, change: Callable[[TraceBlock], TraceBlock | None]) -> Trace:
    """The trace with block ``number`` (from 1) changed, or removed when change returns None."""
    blocks: list[TraceBlock] = []
    for block in trace.blocks:
        if block.index + 1 == number:
            new = change(block)
            if new is not None:
                blocks.append(new)
        else:
            blocks.append(block)
    renumbered = tuple(dataclasses.replace(b, index=i) for i, b in enumerate(blocks))
    return dataclasses.replace(trace, blocks=renumbered)


def with_data(old: bytes, new: bytes) -> Callable[[TraceBlock], TraceBlock]:
    def change(block: TraceBlock) -> TraceBlock:
        assert old in block.data, (old, block.data)
        return dataclasses.replace(block, data=block.data.replace(old, new))
    return change


def at(time: float) -> Callable[[TraceBlock], TraceBlock]:
    return lambda block: dataclasses.replace(block, time=time)


def test_config_and_seed_come_from_the_header() -> None:
    trace = corpus("ctthrottle-window")
    config = build_config(trace)
    assert isinstance(config, Config)
    assert config.mode is Mode.CONTACT_THROTTLING and config.outgoing_expires == 20
    assert [(e.host, e.port) for e in config.local] == [("127.0.0.1", 5060)]
    assert (config.upstream.host, config.upstream.port) == ("127.0.0.1", 5080)
    assert trace_seed(trace) == 20240611
    assert trace_seed(oracle("refresh-mirror")) is None


def test_a_recorded_trace_passes_semantically_and_strictly() -> None:
    trace = corpus("ctthrottle-refresh")
    for strict in (False, True):
        result = replay_trace(trace, strict=strict)
        assert result.passed, result.report()
        assert result.matched == 6 and result.inputs == 6 and result.expectations == 6
        assert result.summary_line() == (
            f"PASS ctthrottle-refresh: 6 messages matched, 6 inputs fed "
            f"({'strict' if strict else 'semantic'})")


def test_another_seed_fails_strict_but_not_semantic() -> None:
    trace = corpus("ctthrottle-refresh")
    assert replay_trace(trace, seed=1).passed
    result = replay_trace(trace, seed=1, strict=True)
    assert not result.passed
    assert result.failure is not None and result.failure.block == 2
    assert result.failure.summary == "line 2 differs"  # our Via branch


def test_an_oracle_trace_replays_with_captured_values() -> None:
    # the main registrar's 200 OK echoes OpenSIPS's branch and ctid: rewritten with ours
    result = replay_trace(oracle("refresh-ctthrottle"))
    assert result.passed, result.report()
    assert result.matched == 6


def test_failure_points_at_the_block_that_differs() -> None:
    trace = edit(corpus("ctthrottle-refresh"), 8, with_data(b";expires=60", b";expires=66"))
    result = replay_trace(trace)
    assert result.failure is not None
    block = trace.blocks[7]
    assert (result.failure.block, result.failure.line, result.failure.time) == (
        8, block.line, block.time)
    assert result.failure.summary == "Contact set differs"
    report = result.report()
    assert report.startswith(f"FAIL ctthrottle-refresh: block 8 (line {block.line}, "
                             f"@{block.time:.3f}): Contact set differs")
    assert "-Contact: <sip:alice@127.0.0.1:5201>;expires=66" in report
    assert "+Contact: <sip:alice@127.0.0.1:5201>;expires=60" in report


def test_failure_line_numbers_come_from_the_file() -> None:
    path = CORPUS / "ctthrottle-refresh.txt"
    text = path.read_text().replace("Max-Forwards: 69", "Max-Forwards: 68", 1)
    from sansmidreg.conformance import parse_trace
    trace = parse_trace(text, "edited", filename="edited.txt")
    result = replay_trace(trace)
    assert result.failure is not None and result.failure.block == 2
    assert result.failure.line == trace.blocks[1].line > 0
    assert result.failure.summary == "Max-Forwards differs"


def test_capture_consistency_ctid_of_our_deregister() -> None:
    # the de-REGISTER must carry the ctid of the REGISTER that created the binding
    trace = corpus("ctthrottle-expire")
    block = trace.blocks[8]
    assert b"expires=0" in block.data and block.src.port == 5060
    ctid = block.data.split(b";ctid=")[1].split(b">")[0]
    other = trace.blocks[5].data.split(b";ctid=")[1].split(b">")[0]  # the other device's id
    assert ctid != other
    result = replay_trace(edit(trace, 9, with_data(ctid, other)))
    assert result.failure is not None and result.failure.block == 9
    assert result.failure.summary == "Contact set differs"


def test_timers_fire_at_their_deadline_and_tolerance_applies() -> None:
    trace = corpus("ctthrottle-expire")
    deregister = trace.blocks[8].time  # our own de-REGISTER, fired by the expiry timer
    assert replay_trace(edit(trace, 9, at(deregister + 0.45))).passed
    late = replay_trace(edit(trace, 9, at(deregister - 0.6)))
    assert late.failure is not None and late.failure.block == 9
    assert late.failure.summary == "sent 0.600 s late (tolerance 0.5 s)"
    early = replay_trace(edit(edit(trace, 10, at(deregister + 0.7)), 9, at(deregister + 0.7)))
    assert early.failure is not None
    assert early.failure.summary.startswith("unexpected message to 127.0.0.1:5080 @")


def test_time_tolerance_header_is_used() -> None:
    trace = corpus("ctthrottle-expire")
    moved = edit(trace, 9, at(trace.blocks[8].time + 2))  # recorded 2 s later than we send it
    assert not replay_trace(moved).passed
    relaxed = Trace.build(name=moved.name, title=moved.title, mid=moved.mid,
                          upstream=moved.upstream, config=moved.config, time_tolerance=3.0,
                          extra_headers=[("seed", "20240611")], blocks=moved.blocks)
    assert relaxed.time_tolerance == 3.0
    assert replay_trace(relaxed).passed


def test_missing_expectation_is_reported() -> None:
    trace = corpus("mirror-expire")
    # pretend the recorded system sent something upstream when the binding expired
    fake = dataclasses.replace(trace.blocks[1], time=5.2)  # a copy of our relayed REGISTER
    blocks = list(trace.blocks[:4]) + [fake] + list(trace.blocks[4:])
    blocks = [dataclasses.replace(b, index=i) for i, b in enumerate(blocks)]
    result = replay_trace(dataclasses.replace(trace, blocks=tuple(blocks)))
    assert result.failure is not None and result.failure.block == 5
    assert result.failure.summary == ("expected message not sent (nothing to 127.0.0.1:5080 "
                                      "within 0.5 s)")


def test_extra_message_fails_unless_a_deviation_allows_it() -> None:
    trace = corpus("ctthrottle-expire")
    without = edit(trace, 9, lambda b: None)  # the trace no longer expects our de-REGISTER
    result = replay_trace(without)
    assert result.failure is not None
    assert result.failure.summary.startswith("unexpected message to 127.0.0.1:5080 @5.001: "
                                             "REGISTER sip:example.test SIP/2.0")
    # sent by a timer: reported at the first block after it, the input before it named
    assert result.failure.block == 9 and result.failure.time == without.blocks[8].time
    assert "after input block 7" in result.report()
    allowed = parse_deviation("extra 8-9: we de-register the expired device, they did not")
    ok = replay_trace(without, deviations=[allowed])
    assert ok.passed, ok.report()
    assert ok.deviations_used == (allowed.text,)


def test_skip_and_differ_deviations() -> None:
    trace = edit(corpus("ctthrottle-refresh"), 6, with_data(b";expires=60", b";expires=30"))
    assert not replay_trace(trace).passed
    differ = parse_deviation("differ 6 [Contact set]: they answer 30")
    result = replay_trace(trace, deviations=[differ])
    assert result.passed and result.deviations_used == (differ.text,)
    # a differ limited to other parts does not forgive this one
    assert not replay_trace(trace, deviations=[parse_deviation("differ 6 [Expires]: no")]).passed
    skip = parse_deviation("skip 6: not ours")
    result = replay_trace(trace, deviations=[skip])
    assert not result.passed  # our reply to block 5 has no expectation left
    both = replay_trace(trace, deviations=[skip, parse_deviation("extra 5: our reply")])
    assert both.passed and both.skipped == 1


def test_unused_deviations_are_reported() -> None:
    unused = parse_deviation("differ 2: nothing differs here")
    result = replay_trace(corpus("ctthrottle-refresh"), deviations=[unused])
    assert result.passed and result.deviations_unused == (unused.text,)
    assert "deviation not needed any more: differ 2: nothing differs here" in result.report()


def test_header_deviations_are_read() -> None:
    trace = edit(corpus("ctthrottle-refresh"), 6, with_data(b";expires=60", b";expires=30"))
    header = Trace.build(name=trace.name, title=trace.title, mid=trace.mid,
                         upstream=trace.upstream, config=trace.config,
                         extra_headers=[("seed", "20240611"),
                                        ("expected-deviation", "differ 6: answers 30")],
                         blocks=trace.blocks)
    assert replay_trace(header).passed


def test_deviation_grammar() -> None:
    dev = parse_deviation("skip 3-5, 9: because")
    assert dev.kind == "skip" and dev.blocks == frozenset({3, 4, 5, 9}) and dev.reason == "because"
    assert parse_deviation("extra *: always").blocks is None
    assert parse_deviation("differ 2 [Contact set, Expires]: x").parts == ("Contact set",
                                                                          "Expires")
    for bad in ("skip: no blocks", "ignore 3: unknown kind", "skip 5-3: backwards",
                "skip 0: from one", "skip 3 [Expires]: parts only for differ"):
        with pytest.raises(DeviationError):
            parse_deviation(bad)


def test_context_blocks_are_not_fed() -> None:
    # the oracle fork traces hold the caller <-> main registrar traffic too
    trace = oracle("fork-mirror")
    assert any(not trace.is_expectation(b) and b.dst.port != 5060 for b in trace.blocks)
    result = replay_trace(trace)
    assert result.passed, result.report()
    assert result.inputs == sum(1 for b in trace.blocks if b.dst.port == 5060)


def test_baseline_traces_are_skipped_and_bad_headers_fail() -> None:
    result = replay_trace(oracle("refresh-direct"))
    assert result.passed and result.skipped_reason is not None
    assert result.summary_line().startswith("SKIP refresh-direct: no mid-registrar address")
    trace = corpus("ctthrottle-refresh")
    broken = Trace.build(name="broken", mid=trace.mid, config=[("mode", "sideways")],
                         blocks=trace.blocks)
    result = replay_trace(broken)
    assert result.failure is not None and result.failure.block is None
    assert result.failure.summary.startswith("bad trace header: config key mode='sideways'")
